//! `engine: trtllm`: `trtllm-serve` with an extra-options YAML written per group from
//! `engine_args`; multi-rank servers run under `trtllm-llmapi-launch`, one MPI rank per GPU
//! (a Slurm step of one task per rank), or, on one machine, as one `trtllm-serve` that spawns
//! its ranks itself ([`one_process`]).

use serde_yaml_ng::{Mapping, Value};

use super::{Built, WorkerSpec, port_launch};
use crate::case::CacheTransceiver;

/// One MPI rank per GPU (tp×pp×cp), each on its node's GPU of its local rank.
pub fn ranks(p: crate::case::Parallel) -> u32 {
    p.gpus_per_server()
}

pub fn build(m: &Mapping, w: &WorkerSpec<'_>) -> Built {
    let p = w.parallel;
    let file = format!("{}_config.yaml", if w.is_ctx { "ctx" } else { "gen" });
    // The case's parallelism is the truth; engine_args may add to it but not contradict it.
    let mut config = m.clone();
    let mut set = |k: &str, v: Value| {
        config.insert(Value::String(k.into()), v);
    };
    set("tensor_parallel_size", p.tp.into());
    set("pipeline_parallel_size", p.pp.into());
    set("moe_expert_parallel_size", p.ep.into());
    set("enable_attention_dp", p.attention_dp.into());
    if p.cp > 1 || m.contains_key("context_parallel_size") {
        set("context_parallel_size", p.cp.into());
    }
    if !m.contains_key("cache_transceiver_config") {
        // TensorRT-LLM's own default is UCX, as the config name says.
        let backend = match w.cache_transceiver.unwrap_or_default() {
            CacheTransceiver::Ucx => "UCX",
            CacheTransceiver::Nixl => "NIXL",
        };
        let mut c = Mapping::new();
        c.insert("backend".into(), backend.into());
        set("cache_transceiver_config", Value::Mapping(c));
    }
    // A context server with the overlap scheduler on refuses every context-only request in
    // TensorRT-LLM's PyTorch backend ("Context only requests are not supported in pytorch
    // backend when overlap is enabled", its releases of 2025, 1.0 among them); its own
    // disaggregated configs turn it off there. engine_args may say otherwise.
    if w.is_ctx && !m.contains_key("disable_overlap_scheduler") {
        set("disable_overlap_scheduler", true.into());
    }
    // Routed by TensorRT-LLM's kv_cache_aware router, which learns each worker's cached blocks
    // from its `/kv_cache_events`: they are kept only with block reuse on and an event buffer
    // (TensorRT-LLM's own cache-aware configs set both). What engine_args set stays.
    if w.kv_events {
        let kv = match m.get("kv_cache_config") {
            None | Some(Value::Null) => Some(Mapping::new()),
            Some(Value::Mapping(kv)) => Some(kv.clone()),
            // Not a mapping: TensorRT-LLM refuses the file itself; left as written.
            Some(_) => None,
        };
        if let Some(mut kv) = kv {
            for (k, v) in [
                ("enable_block_reuse", Value::from(true)),
                ("event_buffer_max_size", Value::from(KV_EVENT_BUFFER)),
            ] {
                if !kv.contains_key(k) {
                    kv.insert(k.into(), v);
                }
            }
            set("kv_cache_config", Value::Mapping(kv));
        }
    }
    // TensorRT-LLM's harness gives every worker the server's key in this file.
    if let Some(key) = w.auth_key {
        if !m.contains_key("internal_request_auth_key") {
            set("internal_request_auth_key", key.into());
        }
    }
    // trtllm-serve reads this with PyYAML (YAML 1.1): `yes`/`on` strings must stay strings.
    let text = super::yaml11::to_string(&Value::Mapping(config));
    let ranks = ranks(p);
    let mut argv: Vec<String> = Vec::new();
    if ranks > 1 {
        argv.push(MPI_LAUNCHER.into());
    }
    argv.extend([
        "trtllm-serve".into(),
        w.model.into(),
        "--host".into(),
        "{host}".into(),
        "--port".into(),
        "{port}".into(),
        // The name every TensorRT-LLM release accepts; `--config` is a later alias (2025-11).
        "--extra_llm_api_options".into(),
        w.run_dir.join(&file).display().to_string(),
    ]);
    Built {
        launch: port_launch(argv, w.bind_host),
        ranks,
        file: Some((file, text)),
    }
}

/// Events a worker keeps for TensorRT-LLM's cache-aware router between its polls (the value of
/// TensorRT-LLM's own cache-aware test configs).
const KV_EVENT_BUFFER: u64 = 1024;

/// TensorRT-LLM's wrapper for a server whose MPI ranks the launcher starts (one task per GPU):
/// it takes its world from `SLURM_NTASKS` (else `OMPI_COMM_WORLD_SIZE`, else 1).
pub const MPI_LAUNCHER: &str = "trtllm-llmapi-launch";

/// `launch` as one process runs it (the local launcher starts one per role): plain
/// `trtllm-serve`, which spawns a rank per GPU on its node itself (TensorRT-LLM's own way on
/// one node). Under `trtllm-llmapi-launch` with no launcher's world it would serve one rank
/// whatever its `tensor_parallel_size`. Whether it changed anything.
pub fn one_process(launch: &mut crate::plan::EngineLaunch) -> bool {
    let wrapped = launch.argv.first().map(String::as_str) == Some(MPI_LAUNCHER)
        && launch
            .argv
            .get(1)
            .is_some_and(|p| p.rsplit('/').next() == Some("trtllm-serve"));
    if wrapped {
        launch.argv.remove(0);
    }
    wrapped
}
