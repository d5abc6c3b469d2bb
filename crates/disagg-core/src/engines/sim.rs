//! `engine: sim`: `disagg sim`, binding port 0 and writing its address to a ready file. Each
//! `engine_args` key is the `disagg sim` flag of the same name.

use std::path::Path;

use super::{Built, WorkerSpec};
use crate::case::{Dialect, SimEngineArgs};
use crate::plan::EngineLaunch;

pub fn build(a: &SimEngineArgs, w: &WorkerSpec<'_>) -> Built {
    let mut argv: Vec<String> = vec![w.exe.into(), "sim".into()];
    let mut flag = |name: &str, value: String| {
        argv.push(format!("--{name}"));
        argv.push(value);
    };
    flag(
        "role",
        if w.is_ctx { "context" } else { "generation" }.into(),
    );
    flag("dialect", w.dialect.as_str().into());
    flag("host", w.bind_host.into());
    flag("port", "0".into());
    flag("ready-file", w.ready_file.display().to_string());
    flag("model", w.served_model.into());
    // The hand-off ports, picked by the role as for the real engines (the sim binds them as
    // SGLang and vLLM do, so a plan that shares one fails).
    match w.dialect {
        Dialect::Sglang if w.is_ctx => flag("bootstrap-port", "{bootstrap_port}".into()),
        Dialect::Vllm => {
            flag("side-channel-host", "{publish_host}".into());
            flag("side-channel-port", "{side_channel_port}".into());
        }
        _ => {}
    }
    let request_log = w.run_dir.join(format!(
        "{}.requests.jsonl",
        w.role.log_file().trim_end_matches(".log")
    ));
    argv.extend(flags(a, &request_log));
    Built {
        launch: EngineLaunch {
            argv,
            ready_file: Some(w.ready_file.clone()),
            host: w.bind_host.into(),
            env: Default::default(),
            side_channel_span: 1,
            node_args: Vec::new(),
            dist_span: 1,
        },
        ranks: 1,
        file: None,
    }
}

/// The `disagg sim` flags a group's `engine_args` set, in the order the plan writes them. Each
/// case key is the sim flag of the same name (`kv_ttl` → `--kv-ttl`); this is the one place
/// that says so, and `disagg-harness/tests/sim_flags.rs` checks every key against the sim's own
/// parser and defaults. `request_log` is the file `request_log: true` names.
pub fn flags(a: &SimEngineArgs, request_log: &Path) -> Vec<String> {
    let d = |v| humantime::format_duration(v).to_string();
    let mut argv: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: String| {
        argv.push(format!("--{name}"));
        argv.push(value);
    };
    flag("startup-delay", d(a.startup_delay));
    flag("prefill-per-token", d(a.prefill_per_token));
    flag("itl", d(a.itl));
    if let Some(p) = a.preset {
        flag("preset", p.as_str().into());
    }
    if let Some(v) = &a.trtllm_version {
        flag("trtllm-version", v.clone());
    }
    if let Some(v) = a.max_logprobs {
        flag("max-logprobs", v.to_string());
    }
    if let Some(v) = &a.kv_cache_dtype {
        flag("kv-cache-dtype", v.clone());
    }
    if let Some(v) = a.kv_block_size {
        flag("kv-block-size", v.to_string());
    }
    if let Some(v) = &a.kv_transfer_backend {
        flag("kv-transfer-backend", v.clone());
    }
    for (name, v) in [
        ("fail-after-requests", a.fail_after_requests),
        ("max-batch-size", a.max_batch_size),
        ("max-num-tokens", a.max_num_tokens),
        ("kv-capacity-tokens", a.kv_capacity_tokens),
        ("kv-bytes-per-token", a.kv_bytes_per_token),
        ("eos-at", a.eos_at),
        ("max-model-len", a.max_model_len),
        ("hang-after-requests", a.hang_after_requests),
        ("stall-after-requests", a.stall_after_requests),
        ("drop-after-tokens", a.drop_after_tokens),
        ("threads", a.threads),
    ] {
        if let Some(v) = v {
            flag(name, v.to_string());
        }
    }
    for (name, v) in [
        ("prefill-base-ms", a.prefill_base_ms),
        ("prefill-per-token-us", a.prefill_per_token_us),
        ("prefill-per-token-sq-ns", a.prefill_per_token_sq_ns),
        ("decode-base-ms", a.decode_base_ms),
        ("decode-per-seq-us", a.decode_per_seq_us),
        ("decode-per-kv-token-ns", a.decode_per_kv_token_ns),
        ("kv-bandwidth-gbs", a.kv_bandwidth_gbs),
        ("decoded-tokens-per-iter", a.decoded_tokens_per_iter),
    ] {
        if let Some(v) = v {
            flag(name, v.to_string());
        }
    }
    for (name, v) in [
        ("kv-ttl", a.kv_ttl),
        ("kv-wait-timeout", a.kv_wait_timeout),
        ("kv-transfer-delay", a.kv_transfer_delay),
        ("clock-step", a.clock_step),
    ] {
        if let Some(v) = v {
            flag(name, d(v));
        }
    }
    for (name, list) in [
        ("error-on-request", &a.error_on_request),
        ("drop-stream-on-request", &a.drop_stream_on_request),
        ("kv-transfer-fail-on", &a.kv_transfer_fail_on),
    ] {
        for n in list {
            flag(name, n.to_string());
        }
    }
    if a.request_log {
        flag("request-log", request_log.display().to_string());
    }
    if a.never_ready {
        argv.push("--never-ready".into());
    }
    if a.disregard_ignore_eos {
        argv.push("--disregard-ignore-eos".into());
    }
    if a.realtime {
        argv.push("--realtime".into());
    }
    if a.enable_chunked_prefill {
        argv.push("--enable-chunked-prefill".into());
    }
    if a.allow_auto_truncate {
        argv.push("--allow-auto-truncate".into());
    }
    argv
}
