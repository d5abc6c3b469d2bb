//! Does the benchmark's largest request fit the workers? When a case states what the engines
//! hold a request to (their context length, or TensorRT-LLM's `max_num_tokens`), the largest
//! request the benchmark will send (`isl` and `osl` at the top of `range_ratio`, as the canary
//! sends it) is checked against each worker group before anything is launched, leg by leg, as
//! that group's engine checks it:
//!
//! | engine (or sim dialect) | context key | refused by the engine | served cut short |
//! |---|---|---|---|
//! | vLLM | `max_model_len` | prompt + max_tokens over it (the prefill leg asks 1 token) | never |
//! | SGLang | `context_length` (sim: `max_model_len`) | prompt, or prompt + max_tokens, of it or more, both legs | the same, with `allow_auto_truncate` |
//! | TensorRT-LLM | `max_seq_len` (sim: `max_model_len`) | prompt (its share per rank under `parallel.cp`) of it or more | that share + max_tokens over it (max_tokens cut to the room left) |
//! | TensorRT-LLM | `max_num_tokens` (trtllm-serve's default 8192 when unset; sim: only when set) | a prompt longer (per rank under `parallel.cp`), on the context leg, unless `enable_chunked_prefill` | never |
//!
//! vLLM and SGLang options are read in either spelling (`max_model_len`, `max-model-len`).
//!
//! What the engine refuses is a case error. What it serves cut short is one too when the
//! benchmark would fail it: with `ignore_eos` (the default) an answer must have `osl` tokens
//! (wrong_output_length), and an answer with none always fails (SGLang's truncation of a prompt
//! to the whole context leaves no room). Otherwise (`ignore_eos: false`) it is a note: the run
//! measures shorter requests than the case asks.
//!
//! A limit the case does not state (the engine sizes it from the model or the GPU), a dataset
//! workload (its lengths are the file's) and a `command` engine are not checked. Chat prompts
//! are counted as `isl` tokens, fewer than a real engine counts after its chat template, so
//! what is refused here is refused there too.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::case::{Case, Dialect, Engine, WorkerGroup};
use crate::engines::EngineArgs;
use crate::error::CaseError;
use crate::locate::line_of;

/// trtllm-serve's `--max_num_tokens` default (`BuildConfig.max_num_tokens`).
const TRTLLM_MAX_NUM_TOKENS: u64 = 8192;

/// Refuses a case whose largest request a worker would refuse.
pub fn check(case: &Case, text: &str, path: &Path) -> Result<(), CaseError> {
    match findings(case).into_iter().find(|f| f.refused) {
        None => Ok(()),
        Some(f) => Err(CaseError::new(path, f.key.clone(), f.message)
            .at_line(line_of(text, &f.key))
            .hint(f.hint)),
    }
}

/// What a worker would serve cut short (TensorRT-LLM's cut `max_tokens`, SGLang's
/// auto-truncation) where the benchmark accepts shorter answers (`ignore_eos: false`): the run
/// goes ahead, measuring shorter requests than the case asks.
pub fn notes(case: &Case) -> Vec<String> {
    findings(case)
        .into_iter()
        .filter(|f| !f.refused)
        .map(|f| format!("{} (`{}`); {}", f.message, f.key, f.hint))
        .collect()
}

struct Finding {
    refused: bool,
    /// The key the limit comes from.
    key: String,
    message: String,
    hint: String,
}

/// One limit a group's engine holds requests to, and the key it was read from (`None`: the
/// engine's own default).
#[derive(Clone)]
struct Limit {
    tokens: u64,
    key: Option<String>,
}

/// What one group's engine holds requests to.
#[derive(Default)]
struct Limits {
    context: Option<Limit>,
    /// TensorRT-LLM's prompt check (absent with chunked prefill).
    max_num_tokens: Option<Limit>,
    auto_truncate: bool,
}

/// The largest request: prompt and output tokens, and how they follow from the case.
struct Largest {
    prompt: u64,
    output: u64,
    says: String,
}

fn largest(case: &Case) -> Option<Largest> {
    let b = &case.benchmark;
    if b.dataset.is_some() {
        return None;
    }
    let (_, prompt) = disagg_proto::lengths::bounds(b.isl, b.range_ratio);
    let (_, output) = disagg_proto::lengths::bounds(b.osl, b.range_ratio);
    let says = if prompt == b.isl && output == b.osl {
        format!("isl {prompt} + osl {output}")
    } else {
        format!(
            "isl {} and osl {} at range_ratio {} reach {prompt} + {output}",
            b.isl, b.osl, b.range_ratio
        )
    };
    Some(Largest {
        prompt: u64::from(prompt),
        output: u64::from(output),
        says,
    })
}

fn findings(case: &Case) -> Vec<Finding> {
    let Some(req) = largest(case) else {
        return Vec::new();
    };
    let dialect = match case.engine {
        Engine::Sim => case.router.dialect(),
        Engine::Command => return Vec::new(),
        e => e.native_dialect().unwrap_or_default(),
    };
    // TensorRT-LLM's gen-only benchmark without a context phase: its disaggregated server
    // sends no context request (TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 on the router, as `disagg
    // import trtllm` writes `gen_only_no_context`), so the ctx group, idle, holds no request.
    let no_context = case.engine == Engine::Trtllm
        && case
            .env
            .server
            .get("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
            .is_some_and(|v| v.as_string() == "1");
    let mut out = Vec::new();
    for (group, g, is_ctx) in [("ctx", &case.ctx, true), ("gen", &case.generation, false)] {
        if is_ctx && no_context {
            continue;
        }
        let l = limits(case.engine, dialect, group, g);
        // TensorRT-LLM holds each context-parallel rank to its share of the prompt: the LLM
        // API checks `prompt / cp` against max_num_tokens (`llm.py`, `_check_arguments`), the
        // worker leaves `max_seq_len - int(prompt / cp)` for output (`base_worker.py`,
        // `_deduce_max_tokens`). vLLM and SGLang take no cp (validate refuses it), and the sim
        // does not model it.
        let cp = if case.engine == Engine::Trtllm {
            u64::from(g.parallel.cp.max(1))
        } else {
            1
        };
        let split = req.prompt / cp;
        // vLLM's and TensorRT-LLM's routers send the prefill leg max_tokens 1; SGLang's sends
        // both legs the client's body.
        let asked = if is_ctx && dialect != Dialect::Sglang {
            1
        } else {
            req.output
        };
        if let (true, Some(n)) = (is_ctx, &l.max_num_tokens) {
            // `prompt / cp > max_num_tokens`, in Python's float division.
            if req.prompt > n.tokens * cp {
                out.push(num_tokens(group, &req, n, cp));
            }
        }
        if let Some(c) = &l.context {
            let ignore_eos = case.benchmark.ignore_eos;
            let at = Prompt { tokens: split, cp };
            if let Some(f) = context(
                dialect,
                group,
                &req,
                at,
                asked,
                c,
                l.auto_truncate,
                ignore_eos,
            ) {
                out.push(f);
            }
        }
    }
    out
}

/// The prompt as one engine rank holds it: TensorRT-LLM's share of a context-parallel rank.
#[derive(Clone, Copy)]
struct Prompt {
    tokens: u64,
    cp: u64,
}

/// TensorRT-LLM refuses a prompt over max_num_tokens on the context leg (per context-parallel
/// rank: the prompt over `cp`).
fn num_tokens(group: &str, req: &Largest, n: &Limit, cp: u64) -> Finding {
    let (key, whose) = match &n.key {
        Some(k) => (k.clone(), format!("max_num_tokens {}", n.tokens)),
        None => (
            format!("{group}.engine_args"),
            format!("trtllm-serve's default max_num_tokens {}", n.tokens),
        ),
    };
    let (share, per_rank) = if cp > 1 {
        (
            format!(
                ", {} per rank of its context parallelism {cp}",
                req.prompt.div_ceil(cp)
            ),
            req.prompt.div_ceil(cp),
        )
    } else {
        (String::new(), req.prompt)
    };
    Finding {
        refused: true,
        message: format!(
            "the benchmark's largest prompt ({}: {} tokens{share}) is longer than {whose} of {} \
             workers: TensorRT-LLM refuses such a prompt on the context leg with 400 (\"The sum \
             of prompt length ... should not exceed max_num_tokens\"), so every request would \
             fail",
            req.says,
            req.prompt,
            group.to_uppercase()
        ),
        hint: format!(
            "set {group}.engine_args.max_num_tokens to at least {per_rank}, or \
             `enable_chunked_prefill: true` in {group}.engine_args, or lower benchmark.isl"
        ),
        key,
    }
}

#[allow(clippy::too_many_arguments)]
fn context(
    dialect: Dialect,
    group: &str,
    req: &Largest,
    at: Prompt,
    asked: u64,
    c: &Limit,
    auto_truncate: bool,
    ignore_eos: bool,
) -> Option<Finding> {
    let limit = c.tokens;
    let key = c
        .key
        .clone()
        .unwrap_or_else(|| format!("{group}.engine_args"));
    // The prompt as the engine counts it against the context (a cp rank's share), and with
    // what is asked of this leg.
    let prompt = at.tokens;
    let total = prompt + asked;
    let role = group.to_uppercase();
    // SGLang refuses a total equal to its context length (`>=`); the others only one over it.
    let need = prompt + req.output + u64::from(dialect == Dialect::Sglang);
    let fix = format!(
        "raise {key} to at least {need}, or lower benchmark.isl/osl (or range_ratio) so that \
         isl + osl fit in {limit}"
    );
    let share = if at.cp > 1 {
        format!(
            " ({prompt} + {} per rank of its context parallelism {})",
            req.output, at.cp
        )
    } else {
        String::new()
    };
    let intro = format!(
        "the benchmark's largest request ({}: {} tokens{share}) does not fit {role}'s context \
         of {limit} tokens",
        req.says,
        req.prompt + req.output
    );
    // A shorter answer than asked: with ignore_eos (the default) the benchmark takes it for a
    // server that stopped early, and fails it (wrong_output_length), the canary first.
    let cut = |what: String| {
        if ignore_eos {
            Finding {
                refused: true,
                message: format!(
                    "{intro}: {what}, and with benchmark.ignore_eos every answer must have osl \
                     tokens, so the canary and every such request would fail \
                     (wrong_output_length)"
                ),
                hint: format!("{fix}; or `ignore_eos: false` to accept shorter answers"),
                key: key.clone(),
            }
        } else {
            Finding {
                refused: false,
                message: format!(
                    "{intro}: {what}, so the largest requests produce fewer tokens than osl"
                ),
                hint: fix.clone(),
                key: key.clone(),
            }
        }
    };
    match dialect {
        Dialect::Vllm if total > limit => Some(Finding {
            refused: true,
            message: format!(
                "{intro}: vLLM refuses prompt + max_tokens ({prompt} + {asked}) over \
                 max_model_len with 400, so every request would fail"
            ),
            hint: fix,
            key,
        }),
        // Truncated to the whole context, the prompt leaves no room: no output at all.
        Dialect::Sglang if auto_truncate && prompt >= limit => Some(Finding {
            refused: true,
            message: format!(
                "{intro}: with allow_auto_truncate SGLang cuts a {prompt}-token prompt to the \
                 {limit} tokens of the context, which leaves none for output, so every such \
                 request would fail with no tokens (zero_tokens)"
            ),
            hint: fix,
            key,
        }),
        // A total equal to the context is cut to what it already asks: no change.
        Dialect::Sglang if auto_truncate && total > limit => Some(cut(format!(
            "with allow_auto_truncate SGLang cuts max_new_tokens to the {} tokens left",
            limit - prompt
        ))),
        // `input + max_new_tokens >= context_len` (`_validate_one_request`).
        Dialect::Sglang if prompt >= limit || total >= limit => Some(Finding {
            refused: true,
            message: format!(
                "{intro}: SGLang refuses it with 400 (\"Requested token count exceeds the \
                 model's maximum context length\"), so every request would fail"
            ),
            hint: format!("{fix}; or `allow_auto_truncate: true` to have SGLang cut it"),
            key,
        }),
        Dialect::Trtllm if prompt >= limit => Some(Finding {
            refused: true,
            message: format!(
                "{intro}: a {prompt}-token prompt leaves no room under max_seq_len, which \
                 TensorRT-LLM refuses with 400, so every request would fail"
            ),
            hint: fix,
            key,
        }),
        Dialect::Trtllm if total > limit => Some(cut(format!(
            "TensorRT-LLM cuts max_tokens to the {} tokens left",
            limit - prompt
        ))),
        _ => None,
    }
}

/// What a group's engine holds requests to, from its `engine_args`.
fn limits(engine: Engine, dialect: Dialect, group: &str, g: &WorkerGroup<EngineArgs>) -> Limits {
    let key = |k: &str| Some(format!("{group}.engine_args.{k}"));
    match &g.engine_args {
        EngineArgs::Sim(a) => Limits {
            context: a.max_model_len.map(|tokens| Limit {
                tokens,
                key: key("max_model_len"),
            }),
            max_num_tokens: a
                .max_num_tokens
                .filter(|_| dialect == Dialect::Trtllm && !a.enable_chunked_prefill)
                .map(|tokens| Limit {
                    tokens,
                    key: key("max_num_tokens"),
                }),
            auto_truncate: a.allow_auto_truncate && dialect == Dialect::Sglang,
        },
        EngineArgs::Options(m) => match engine {
            Engine::Vllm => Limits {
                context: count(m, "max_model_len").map(|tokens| Limit {
                    tokens,
                    key: key(&spelled(m, "max_model_len")),
                }),
                ..Limits::default()
            },
            Engine::Sglang => Limits {
                context: count(m, "context_length").map(|tokens| Limit {
                    tokens,
                    key: key(&spelled(m, "context_length")),
                }),
                auto_truncate: switch(m, "allow_auto_truncate"),
                ..Limits::default()
            },
            Engine::Trtllm => Limits {
                context: count(m, "max_seq_len").map(|tokens| Limit {
                    tokens,
                    key: key("max_seq_len"),
                }),
                max_num_tokens: (!switch(m, "enable_chunked_prefill")).then(|| {
                    match count(m, "max_num_tokens") {
                        Some(tokens) => Limit {
                            tokens,
                            key: key("max_num_tokens"),
                        },
                        None => Limit {
                            tokens: TRTLLM_MAX_NUM_TOKENS,
                            key: None,
                        },
                    }
                }),
                auto_truncate: false,
            },
            _ => Limits::default(),
        },
        EngineArgs::Command(_) => Limits::default(),
    }
}

/// A token count an engine option sets: a number, or vLLM's forms (`8k`, `8K`). Anything else
/// (`auto`, a typo) is the engine's to judge.
fn count(m: &Mapping, k: &str) -> Option<u64> {
    match get(m, k)? {
        Value::Number(n) => n.as_u64().filter(|&n| n > 0),
        Value::String(s) => disagg_proto::lengths::parse_count(s).ok().flatten(),
        _ => None,
    }
}

fn switch(m: &Mapping, k: &str) -> bool {
    matches!(get(m, k), Some(Value::Bool(true)))
}

/// How the case spells `k`: `max_model_len` or `max-model-len`.
fn spelled<'a>(m: &Mapping, k: &'a str) -> std::borrow::Cow<'a, str> {
    if m.contains_key(k) {
        k.into()
    } else {
        k.replace('_', "-").into()
    }
}

/// `k` as written with `_` or with `-`: vLLM and SGLang options become `--` + the key with `-`,
/// so `max-model-len` is `max_model_len` (validate refuses a case that has both).
fn get<'a>(m: &'a Mapping, k: &str) -> Option<&'a Value> {
    m.get(k).or_else(|| m.get(k.replace('_', "-").as_str()))
}
