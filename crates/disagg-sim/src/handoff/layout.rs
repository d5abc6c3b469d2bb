//! What shapes a worker's KV cache, handed over with every KV record, and which differences
//! between a context and a generation worker the engine refuses.
//!
//! Real engines check their peer before moving any KV (the sources, for whoever updates this):
//! - vLLM's NixlConnector hashes the vLLM version, the model it loaded, its dtype and shape,
//!   the attention backend and `--kv-cache-dtype` (as given: `auto` and `bfloat16` differ),
//!   and refuses a peer of another hash ("NIXL compatibility hash mismatch",
//!   `vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py`,
//!   `compute_nixl_compatibility_hash`). Block sizes may differ as long as the decode's is a
//!   whole multiple of the prefill's (`TpKVTopology.block_size_ratio`); TP sizes may differ.
//! - SGLang's decode reads its prefill's `page_size` and `kv_cache_dtype` from the bootstrap
//!   server and refuses any difference ("Page size mismatch", "KV cache dtype mismatch",
//!   `python/sglang/srt/disaggregation/common/conn.py`, `try_ensure_parallel_info`); TP sizes
//!   may differ. Prefill and decode must run one transfer backend to talk at all.
//! - TensorRT-LLM's cache transceiver compares the two sides' `CacheState` (KV data type,
//!   tokens per block, heads, head size, layers, attention type) and refuses a difference
//!   ("Disagg server does not currently support these cacheState",
//!   `cpp/tensorrt_llm/batch_manager/cacheFormatter.cpp`, `CacheFormatter::inquireSupport`);
//!   TP and PP sizes may differ. `auto` is resolved to the checkpoint's type first.
//!
//! The sim knows no checkpoint, so it compares what it can: the engine, the model loaded (for
//! vLLM, which hashes it), and the settings as the engine's flags give them, with each engine's default resolved. Where a
//! default resolves to something only the checkpoint or the release knows (TensorRT-LLM's
//! `auto` dtype and `DEFAULT` backend), it does not refuse.

use serde::{Deserialize, Serialize};

use crate::{Dialect, SimArgs};

/// A worker's KV layout as its record carries it. A setting left at the engine's default is
/// absent, so that `auto` and no flag at all are one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KvLayout {
    pub(crate) engine: Dialect,
    /// The model the worker loaded (its path), not the name it serves under.
    pub(crate) model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cache_dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) block_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) backend: Option<String>,
}

/// The engine's defaults, which a record leaves out.
struct Defaults {
    dtype: &'static str,
    block_size: u32,
    backend: &'static str,
}

fn defaults(engine: Dialect) -> Defaults {
    match engine {
        // vLLM's CacheConfig on CUDA; the sim stands in for NixlConnector only.
        Dialect::Vllm => Defaults {
            dtype: "auto",
            block_size: 16,
            backend: "NixlConnector",
        },
        // SGLang's ServerArgs: page_size 1, mooncake.
        Dialect::Sglang => Defaults {
            dtype: "auto",
            block_size: 1,
            backend: "mooncake",
        },
        // TensorRT-LLM's KvCacheConfig and CacheTransceiverConfig.
        Dialect::Trtllm => Defaults {
            dtype: "auto",
            block_size: 32,
            backend: "DEFAULT",
        },
    }
}

/// TensorRT-LLM resolves its dtype names to one data type; vLLM and SGLang compare the text.
fn trtllm_dtype(d: &str) -> &str {
    match d {
        "bf16" => "bfloat16",
        "fp16" | "half" => "float16",
        "float" | "fp32" => "float32",
        other => other,
    }
}

impl KvLayout {
    /// This worker's layout, from its flags (a stand-in set them from the engine's argv).
    pub(crate) fn of(args: &SimArgs) -> Self {
        let engine = args.dialect;
        let d = defaults(engine);
        let dtype = args.kv.kv_cache_dtype.as_deref().map(|v| match engine {
            Dialect::Trtllm => trtllm_dtype(v),
            _ => v,
        });
        Self {
            engine,
            model: args
                .model_path
                .clone()
                .unwrap_or_else(|| args.model.clone()),
            cache_dtype: dtype.filter(|v| *v != d.dtype).map(str::to_string),
            block_size: args.kv.kv_block_size.filter(|b| *b != d.block_size),
            backend: args
                .kv
                .kv_transfer_backend
                .clone()
                .filter(|b| b != d.backend),
        }
    }

    /// Whether this (generation) worker can take KV a context worker of layout `ctx` stored:
    /// `Err` says why not, in the engine's words where it has them, naming both values and the
    /// setting that differs.
    pub(crate) fn accept(&self, ctx: &KvLayout) -> Result<(), String> {
        let shown = |v: Option<String>, default: &str| v.unwrap_or_else(|| default.to_string());
        if ctx.engine != self.engine {
            return Err(format!(
                "the context worker runs {}, this worker {} (--dialect, or the engine command a \
                 stand-in runs); prefill and decode must run one engine to exchange KV",
                ctx.engine.as_str(),
                self.engine.as_str()
            ));
        }
        let d = defaults(self.engine);
        // The difference comes first (a router or a report may show only the start of the
        // message), then the engine's own words for it, to search its docs and issues by.
        let said = match self.engine {
            Dialect::Vllm => "vLLM: NIXL compatibility hash mismatch",
            Dialect::Sglang => "",
            Dialect::Trtllm => {
                "TensorRT-LLM: Disagg server does not currently support these cacheState"
            }
        };
        let lead = |s: String| {
            if said.is_empty() {
                s
            } else {
                format!("{s} ({said})")
            }
        };
        // vLLM hashes the model it loaded into the handshake; SGLang and TensorRT-LLM compare
        // only the KV's shape, and would move another model's (not a refusal to play).
        if self.engine == Dialect::Vllm && ctx.model != self.model {
            return Err(lead(format!(
                "the context worker loaded model {}, this worker {} (the model path the \
                 engine is given); prefill and decode must serve one model, or the KV \
                 handed over is another model's",
                ctx.model, self.model
            )));
        }
        // TensorRT-LLM resolves `auto` to the checkpoint's type, which the sim cannot know.
        let dtype_differs = match self.engine {
            Dialect::Trtllm => {
                ctx.cache_dtype.is_some()
                    && self.cache_dtype.is_some()
                    && ctx.cache_dtype != self.cache_dtype
            }
            _ => ctx.cache_dtype != self.cache_dtype,
        };
        if dtype_differs {
            let (a, b) = (
                shown(ctx.cache_dtype.clone(), d.dtype),
                shown(self.cache_dtype.clone(), d.dtype),
            );
            let key = match self.engine {
                Dialect::Trtllm => "kv_cache_config.dtype",
                _ => "--kv-cache-dtype",
            };
            let said = match self.engine {
                Dialect::Sglang => " (SGLang: KV cache dtype mismatch)",
                _ => "",
            };
            return Err(lead(format!(
                "the context worker's KV cache dtype is {a}, this worker's is {b} ({key}); \
                 prefill and decode must store KV alike{said}"
            )));
        }
        let (pb, db) = (
            ctx.block_size.unwrap_or(d.block_size),
            self.block_size.unwrap_or(d.block_size),
        );
        match self.engine {
            // vLLM splits a prefill's blocks into the decode's larger ones, not the reverse.
            Dialect::Vllm if db % pb != 0 => {
                return Err(format!(
                    "this worker's KV block size {db} is not a multiple of the context \
                     worker's {pb} (--block-size); vLLM's NIXL transfer needs the decode's \
                     block size to be a whole multiple of the prefill's (vLLM: Local block \
                     size {db} is not divisible by remote block size {pb})"
                ));
            }
            Dialect::Sglang if pb != db => {
                return Err(format!(
                    "the context worker's page size is {pb}, this worker's is {db} \
                     (--page-size); prefill and decode must use the same (SGLang: Page size \
                     mismatch)"
                ));
            }
            Dialect::Trtllm if pb != db => {
                return Err(lead(format!(
                    "the context worker's KV block is {pb} tokens, this worker's is {db} \
                     (kv_cache_config.tokens_per_block); prefill and decode must use the same"
                )));
            }
            _ => {}
        }
        // TensorRT-LLM's DEFAULT picks a backend by release and environment.
        let backend_differs = match self.engine {
            Dialect::Trtllm => {
                ctx.backend.is_some() && self.backend.is_some() && ctx.backend != self.backend
            }
            _ => ctx.backend != self.backend,
        };
        if backend_differs {
            let key = match self.engine {
                Dialect::Vllm => "--kv-transfer-config's kv_connector",
                Dialect::Sglang => "--disaggregation-transfer-backend",
                Dialect::Trtllm => "cache_transceiver_config.backend",
            };
            return Err(format!(
                "the context worker moves KV with {}, this worker with {} ({key}); prefill \
                 and decode must use one transfer backend to reach each other",
                shown(ctx.backend.clone(), d.backend),
                shown(self.backend.clone(), d.backend)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn layout(flags: &str) -> KvLayout {
        let argv = std::iter::once("sim").chain(flags.split_whitespace());
        KvLayout::of(&Cli::parse_from(argv).sim)
    }

    fn check(engine: &str, ctx: &str, gen_flags: &str) -> Result<(), String> {
        // The engine and model given, unless a side's own flags say otherwise.
        let with = |f: &str| {
            let mut flags = f.to_string();
            for (key, value) in [("--dialect", engine), ("--model-path", "org/m")] {
                if !f.contains(key) {
                    flags.push_str(&format!(" {key} {value}"));
                }
            }
            layout(&flags)
        };
        with(gen_flags).accept(&with(ctx))
    }

    #[test]
    fn defaults_given_explicitly_are_the_defaults() {
        for (engine, flags) in [
            (
                "vllm",
                "--kv-cache-dtype auto --kv-block-size 16 --kv-transfer-backend NixlConnector",
            ),
            (
                "sglang",
                "--kv-cache-dtype auto --kv-block-size 1 --kv-transfer-backend mooncake",
            ),
            (
                "trtllm",
                "--kv-cache-dtype auto --kv-block-size 32 --kv-transfer-backend DEFAULT",
            ),
        ] {
            let explicit = layout(&format!("--dialect {engine} {flags}"));
            assert_eq!(explicit, layout(&format!("--dialect {engine}")), "{engine}");
            assert_eq!(explicit.cache_dtype, None);
            check(engine, flags, "").expect(engine);
            check(engine, "", flags).expect(engine);
        }
    }

    /// Each difference a real engine refuses, with the words a user greps for and the key to fix.
    #[test]
    fn differences_the_engines_refuse() {
        let cases = [
            (
                "vllm",
                "--kv-cache-dtype fp8",
                "",
                "NIXL compatibility hash mismatch",
            ),
            (
                "vllm",
                "--kv-cache-dtype fp8",
                "",
                "KV cache dtype is fp8, this worker's is auto (--kv-cache-dtype)",
            ),
            // vLLM hashes the text: `bfloat16` is not `auto`, whatever the checkpoint.
            (
                "vllm",
                "",
                "--kv-cache-dtype bfloat16",
                "is auto, this worker's is bfloat16",
            ),
            (
                "vllm",
                "--kv-block-size 32",
                "",
                "block size 16 is not a multiple of the context worker's 32 (--block-size)",
            ),
            (
                "vllm",
                "--kv-block-size 32",
                "",
                "(vLLM: Local block size 16 is not divisible by remote block size 32)",
            ),
            (
                "vllm",
                "--model-path org/other",
                "",
                "loaded model org/other, this worker org/m",
            ),
            (
                "sglang",
                "--kv-cache-dtype fp8_e4m3",
                "",
                "the context worker's KV cache dtype is fp8_e4m3, this worker's is auto (--kv-cache-dtype); prefill and decode must store KV alike (SGLang: KV cache dtype mismatch)",
            ),
            (
                "sglang",
                "--kv-block-size 64",
                "",
                "the context worker's page size is 64, this worker's is 1 (--page-size); prefill and decode must use the same (SGLang: Page size mismatch)",
            ),
            (
                "sglang",
                "",
                "--kv-block-size 64",
                "page size is 1, this worker's is 64",
            ),
            (
                "sglang",
                "--kv-transfer-backend nixl",
                "",
                "moves KV with nixl, this worker with mooncake (--disaggregation-transfer-backend)",
            ),
            (
                "trtllm",
                "--kv-cache-dtype fp8",
                "--kv-cache-dtype bf16",
                "Disagg server does not currently support these cacheState",
            ),
            (
                "trtllm",
                "--kv-cache-dtype fp8",
                "--kv-cache-dtype bf16",
                "dtype is fp8, this worker's is bfloat16 (kv_cache_config.dtype)",
            ),
            (
                "trtllm",
                "--kv-block-size 64",
                "",
                "KV block is 64 tokens, this worker's is 32 (kv_cache_config.tokens_per_block)",
            ),
            (
                "trtllm",
                "--kv-transfer-backend UCX",
                "--kv-transfer-backend NIXL",
                "moves KV with UCX, this worker with NIXL (cache_transceiver_config.backend)",
            ),
            (
                "trtllm",
                "--dialect vllm",
                "",
                "runs vllm, this worker trtllm",
            ),
        ];
        for (engine, ctx, gen_flags, needle) in cases {
            let e = check(engine, ctx, gen_flags).expect_err(needle);
            assert!(e.contains(needle), "{engine} {ctx:?} vs {gen_flags:?}: {e}");
        }
    }

    /// Differences the engines take: they must still pass.
    #[test]
    fn differences_the_engines_tolerate() {
        let cases = [
            // vLLM reads a prefill's blocks into the decode's larger ones.
            ("vllm", "--kv-block-size 16", "--kv-block-size 64"),
            ("vllm", "--kv-block-size 8", ""),
            // Another served name for one model is no other model.
            ("vllm", "--model served-a", "--model served-b"),
            ("sglang", "--model a", "--model b"),
            // SGLang and TensorRT-LLM compare the KV's shape, not the model it is of.
            ("sglang", "--model-path org/other", ""),
            ("trtllm", "--model-path org/other", ""),
            // TensorRT-LLM resolves `auto` to the checkpoint's type, and DEFAULT to a backend.
            ("trtllm", "--kv-cache-dtype fp8", ""),
            ("trtllm", "", "--kv-cache-dtype bfloat16"),
            (
                "trtllm",
                "--kv-cache-dtype bf16",
                "--kv-cache-dtype bfloat16",
            ),
            ("trtllm", "--kv-transfer-backend UCX", ""),
            // Nothing here reads parallel sizes: heterogeneous TP is every engine's to take.
            ("sglang", "--data-parallel-size 2", ""),
        ];
        for (engine, ctx, gen_flags) in cases {
            check(engine, ctx, gen_flags)
                .unwrap_or_else(|e| panic!("{engine} {ctx:?} vs {gen_flags:?}: {e}"));
        }
    }

    #[test]
    fn a_record_round_trips_and_leaves_defaults_out() {
        let l = layout("--dialect sglang --model-path org/m --kv-block-size 64");
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(
            json,
            r#"{"engine":"sglang","model":"org/m","block_size":64}"#
        );
        assert_eq!(serde_json::from_str::<KvLayout>(&json).unwrap(), l);
    }
}
