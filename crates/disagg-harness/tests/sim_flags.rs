//! The sim's `engine_args` (the case schema, `disagg-core`) and `disagg sim`'s flags (its CLI,
//! `disagg-sim`) are two descriptions of one thing, joined by `disagg_core::engines::sim::flags`,
//! which the plan and `disagg validate` both use. These tests pin them together: every case key
//! reaches the sim through the argv the plan writes, each key's default is the sim's default,
//! and every sim flag is either a case key or one the plan sets itself. Removing or renaming a
//! sim flag breaks the row below that names its case key.

use std::collections::BTreeSet;
use std::path::Path;

use disagg_core::case::SimEngineArgs;
use disagg_core::engines::EngineArgs;
use disagg_sim::SimArgs;

/// What the sim holds for one key, as its `Debug`.
type Held = fn(&SimArgs) -> String;

/// Every sim `engine_args` key, a value other than its default, and what the sim holds once
/// the plan's argv is parsed.
const KEYS: &[(&str, &str, Held, &str)] = &[
    (
        "startup_delay",
        "3s",
        |a| format!("{:?}", a.startup_delay),
        "3s",
    ),
    (
        "never_ready",
        "true",
        |a| format!("{:?}", a.never_ready),
        "true",
    ),
    (
        "prefill_per_token",
        "7us",
        |a| format!("{:?}", a.timing.prefill_per_token),
        "7µs",
    ),
    ("itl", "9ms", |a| format!("{:?}", a.timing.itl), "9ms"),
    (
        "fail_after_requests",
        "11",
        |a| format!("{:?}", a.faults.fail_after_requests),
        "Some(11)",
    ),
    (
        "preset",
        "batched",
        |a| format!("{:?}", a.timing.preset),
        "Batched",
    ),
    (
        "max_batch_size",
        "12",
        |a| format!("{:?}", a.timing.max_batch_size),
        "Some(12)",
    ),
    (
        "max_num_tokens",
        "13",
        |a| format!("{:?}", a.timing.max_num_tokens),
        "Some(13)",
    ),
    (
        "kv_capacity_tokens",
        "14",
        |a| format!("{:?}", a.timing.kv_capacity_tokens),
        "Some(14)",
    ),
    (
        "prefill_base_ms",
        "1.5",
        |a| format!("{:?}", a.timing.prefill_base_ms),
        "Some(1.5)",
    ),
    (
        "prefill_per_token_us",
        "2.5",
        |a| format!("{:?}", a.timing.prefill_per_token_us),
        "Some(2.5)",
    ),
    (
        "prefill_per_token_sq_ns",
        "3.5",
        |a| format!("{:?}", a.timing.prefill_per_token_sq_ns),
        "Some(3.5)",
    ),
    (
        "decode_base_ms",
        "4.5",
        |a| format!("{:?}", a.timing.decode_base_ms),
        "Some(4.5)",
    ),
    (
        "decode_per_seq_us",
        "5.5",
        |a| format!("{:?}", a.timing.decode_per_seq_us),
        "Some(5.5)",
    ),
    (
        "decode_per_kv_token_ns",
        "6.5",
        |a| format!("{:?}", a.timing.decode_per_kv_token_ns),
        "Some(6.5)",
    ),
    (
        "kv_bytes_per_token",
        "1024",
        |a| format!("{:?}", a.kv.kv_bytes_per_token),
        "1024",
    ),
    (
        "kv_bandwidth_gbs",
        "7.5",
        |a| format!("{:?}", a.kv.kv_bandwidth_gbs),
        "7.5",
    ),
    (
        "decoded_tokens_per_iter",
        "2.4",
        |a| format!("{:?}", a.decoded_tokens_per_iter),
        "Some(2.4)",
    ),
    (
        "trtllm_version",
        "\"1.0.0\"",
        |a| format!("{:?}", a.trtllm_version.as_ref().map(|v| v.as_str())),
        "Some(\"1.0.0\")",
    ),
    (
        "kv_ttl",
        "90s",
        |a| format!("{:?}", a.kv.kv_ttl),
        "Some(90s)",
    ),
    (
        "kv_wait_timeout",
        "45s",
        |a| format!("{:?}", a.kv.kv_wait_timeout),
        "45s",
    ),
    ("eos_at", "15", |a| format!("{:?}", a.eos_at), "Some(15)"),
    (
        "max_model_len",
        "4096",
        |a| format!("{:?}", a.max_model_len),
        "Some(4096)",
    ),
    (
        "enable_chunked_prefill",
        "true",
        |a| format!("{:?}", a.enable_chunked_prefill),
        "true",
    ),
    (
        "allow_auto_truncate",
        "true",
        |a| format!("{:?}", a.allow_auto_truncate),
        "true",
    ),
    (
        "max_logprobs",
        "64",
        |a| format!("{:?}", a.max_logprobs),
        "64",
    ),
    (
        "kv_cache_dtype",
        "fp8",
        |a| format!("{:?}", a.kv.kv_cache_dtype),
        "Some(\"fp8\")",
    ),
    (
        "kv_block_size",
        "32",
        |a| format!("{:?}", a.kv.kv_block_size),
        "Some(32)",
    ),
    (
        "kv_transfer_backend",
        "nixl",
        |a| format!("{:?}", a.kv.kv_transfer_backend),
        "Some(\"nixl\")",
    ),
    (
        "disregard_ignore_eos",
        "true",
        |a| format!("{:?}", a.faults.disregard_ignore_eos),
        "true",
    ),
    (
        "hang_after_requests",
        "16",
        |a| format!("{:?}", a.faults.hang_after_requests),
        "Some(16)",
    ),
    (
        "stall_after_requests",
        "3",
        |a| format!("{:?}", a.faults.stall_after_requests),
        "Some(3)",
    ),
    (
        "error_on_request",
        "[2, 5]",
        |a| format!("{:?}", a.faults.error_on_request),
        "[2, 5]",
    ),
    (
        "drop_stream_on_request",
        "[3]",
        |a| format!("{:?}", a.faults.drop_stream_on_request),
        "[3]",
    ),
    (
        "drop_after_tokens",
        "4",
        |a| format!("{:?}", a.faults.drop_after_tokens),
        "4",
    ),
    (
        "kv_transfer_delay",
        "250ms",
        |a| format!("{:?}", a.faults.kv_transfer_delay),
        "250ms",
    ),
    (
        "kv_transfer_fail_on",
        "[1, 6]",
        |a| format!("{:?}", a.faults.kv_transfer_fail_on),
        "[1, 6]",
    ),
    (
        "request_log",
        "true",
        |a| format!("{:?}", a.request_log),
        "Some(\"/ws/run/ctx_server_0.requests.jsonl\")",
    ),
    (
        "threads",
        "3",
        |a| format!("{:?}", a.serving.threads),
        "Some(3)",
    ),
    ("realtime", "true", |a| format!("{:?}", a.realtime), "true"),
    (
        "clock_step",
        "500us",
        |a| format!("{:?}", a.timing.clock_step),
        "Some(500µs)",
    ),
];

/// Sim flags the plan sets for every worker, whatever its `engine_args`.
const SET_BY_THE_PLAN: &[&str] = &[
    "role",
    "dialect",
    "host",
    "port",
    "ready-file",
    "model",
    "bootstrap-port",
    "side-channel-host",
    "side-channel-port",
];

/// Sim flags a case does not set, and why.
const NOT_CASE_KEYS: &[(&str, &str)] = &[
    ("advertise-host", "the plan publishes each worker's host"),
    (
        "api-key",
        "a stand-in's, read from vLLM's or SGLang's --api-key: a case sets it in engine_args",
    ),
    (
        "benchmark-req-queues-size",
        "TensorRT-LLM's TLLM_BENCHMARK_REQ_QUEUES_SIZE, read from gen.env as the engine does",
    ),
    (
        "model-path",
        "a stand-in's; the case's model.path is the engines'",
    ),
    (
        "model-alias",
        "a vLLM stand-in's, read from --served-model-name's further names",
    ),
    (
        "data-parallel-size",
        "a vLLM stand-in's, read from vLLM's argv",
    ),
    (
        "data-parallel-size-local",
        "a vLLM stand-in's, read from vLLM's argv when its ranks span nodes",
    ),
    (
        "data-parallel-start-rank",
        "a vLLM stand-in's, read from vLLM's argv when its ranks span nodes",
    ),
    (
        "nnodes",
        "a stand-in's, read from the engine's argv when a server spans nodes (the sim engine runs on one node)",
    ),
    ("node-rank", "as --nnodes: each node's rank is the plan's"),
    (
        "bootstrap-timeout",
        "a stand-in's, read from SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT as SGLang does (ctx.env)",
    ),
    (
        "overlap-scheduler",
        "a trtllm-serve stand-in's, read from its extra-options YAML (disable_overlap_scheduler)",
    ),
    (
        "dist-init-addr",
        "as --nnodes: node rank 0's address, picked by the worker role",
    ),
    (
        "dist-timeout",
        "as --nnodes: how long the group may take to form (torch.distributed's default)",
    ),
    (
        "internal-request-auth-key",
        "router.internal_request_auth_key, given in the environment",
    ),
    (
        "version-delay",
        "a fault for the router's tests of its /version wait (crates/disagg/tests/router.rs)",
    ),
];

/// The plan's argv for CTX_0 of a sim case whose ctx group has `engine_args`.
fn ctx_argv(engine_args: &str) -> Vec<String> {
    let text = format!(
        "model: {{name: m}}\nengine: sim\nctx: {{count: 1, engine_args: {engine_args}}}\n\
         gen: {{count: 1}}\nbenchmark: {{isl: 8, osl: 4}}\n"
    );
    let case = disagg_core::parse_case(&text, Path::new("case.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let plan = disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/run"),
        Path::new("/opt/disagg"),
    );
    let ctx = plan.workers().next().expect("CTX_0");
    assert_eq!(ctx.role.to_string(), "CTX_0");
    let engine = ctx.engine.as_ref().expect("a sim engine");
    // The ports and host the role fills in at start, as any valid values.
    (engine.argv.iter())
        .map(|a| {
            a.replace("{bootstrap_port}", "0")
                .replace("{side_channel_port}", "0")
                .replace("{publish_host}", "127.0.0.1")
        })
        .collect()
}

fn parse(argv: &[String]) -> SimArgs {
    disagg_sim::parse_argv(argv).unwrap_or_else(|e| panic!("{e}\nargv: {argv:?}"))
}

#[test]
fn every_case_key_reaches_the_sim_through_the_plans_argv() {
    // One key at a time: the sim accepts each key's flag, and no flag depends on another.
    for (key, value, held, want) in KEYS {
        let argv = ctx_argv(&format!("{{{key}: {value}}}"));
        let sim = disagg_sim::parse_argv(&argv)
            .unwrap_or_else(|e| panic!("engine_args.{key}: {value}: the sim refuses it: {e}"));
        assert_eq!(held(&sim), *want, "engine_args.{key}: {value}");
    }
    // All at once.
    let all: Vec<String> = KEYS
        .iter()
        .map(|(k, v, _, _)| format!("{k}: {v}"))
        .collect();
    let sim = parse(&ctx_argv(&format!("{{{}}}", all.join(", "))));
    for (key, value, held, want) in KEYS {
        assert_eq!(held(&sim), *want, "engine_args.{key}: {value} among all");
    }
}

#[test]
fn each_case_keys_default_is_the_sims_default() {
    // What the case leaves out, against what the sim has with no flags but the plan's own.
    let argv = ctx_argv("{}");
    let plan_only: Vec<String> = {
        let mut out = argv[..2].to_vec();
        let mut rest = argv[2..].iter();
        while let Some(flag) = rest.next() {
            let name = flag.trim_start_matches("--");
            assert!(flag.starts_with("--"), "{flag} in {argv:?}");
            let value = rest.next().expect("every default flag has a value");
            if SET_BY_THE_PLAN.contains(&name) {
                out.extend([flag.clone(), value.clone()]);
            } else {
                let key = name.replace('-', "_");
                assert!(
                    KEYS.iter().any(|(k, ..)| *k == key),
                    "--{name} is neither the plan's nor a case key"
                );
            }
        }
        out
    };
    let (from_case, sims_own) = (parse(&argv), parse(&plan_only));
    for (key, _, held, _) in KEYS {
        assert_eq!(
            held(&from_case),
            held(&sims_own),
            "engine_args.{key}: the case's default is not the sim's"
        );
    }
    // And the schema's own default is what an empty `engine_args` reads as.
    let empty: SimEngineArgs = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(empty, SimEngineArgs::default());
}

#[test]
fn every_sim_flag_is_a_case_key_or_the_plans() {
    let cmd = <SimArgs as clap::Args>::augment_args(clap::Command::new("sim"));
    let sim_flags: BTreeSet<String> = (cmd.get_arguments())
        .filter_map(|a| a.get_long().map(String::from))
        .collect();
    let mut accounted: BTreeSet<String> = KEYS.iter().map(|(k, ..)| k.replace('_', "-")).collect();
    accounted.extend(SET_BY_THE_PLAN.iter().map(|f| f.to_string()));
    accounted.extend(NOT_CASE_KEYS.iter().map(|(f, _)| f.to_string()));
    assert_eq!(
        sim_flags, accounted,
        "a sim flag without a case key (add it to SimEngineArgs and engines::sim::flags, or to \
         NOT_CASE_KEYS with why), or a row here for a flag the sim no longer has"
    );

    // Every key of the schema has its row above, and no row names a key the schema lacks.
    let full: SimEngineArgs = serde_yaml_ng::from_str(&format!(
        "{{{}}}",
        (KEYS.iter().map(|(k, v, ..)| format!("{k}: {v}")))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .unwrap();
    let schema: BTreeSet<String> = match serde_json::to_value(EngineArgs::Sim(Box::new(full))) {
        Ok(serde_json::Value::Object(m)) => m.into_iter().map(|(k, _)| k).collect(),
        other => panic!("{other:?}"),
    };
    let rows: BTreeSet<String> = KEYS.iter().map(|(k, ..)| k.to_string()).collect();
    assert_eq!(schema, rows);
}
