//! `engine: sglang`: `python3 -m sglang.launch_server` in prefill or decode mode; a prefill
//! server also opens the bootstrap port its decode peers pull KV through (`{bootstrap_port}`,
//! picked by the role and published with its address, so the router can name it).

use serde_yaml_ng::Mapping;

use super::flags::to_flags;
use super::{Built, DIST_INIT_HOST, DIST_INIT_PORT, WorkerSpec, port_launch};
use crate::case::CacheTransceiver;

pub fn build(m: &Mapping, w: &WorkerSpec<'_>) -> Built {
    let p = w.parallel;
    let mut argv: Vec<String> = vec![
        "python3".into(),
        "-m".into(),
        "sglang.launch_server".into(),
        "--model-path".into(),
        w.model.into(),
        "--served-model-name".into(),
        w.served_model.into(),
        "--host".into(),
        "{host}".into(),
        "--port".into(),
        "{port}".into(),
        "--tp-size".into(),
        p.tp.to_string(),
        "--disaggregation-mode".into(),
        if w.is_ctx { "prefill" } else { "decode" }.into(),
    ];
    if w.is_ctx {
        argv.extend([
            "--disaggregation-bootstrap-port".into(),
            "{bootstrap_port}".into(),
        ]);
    }
    // SGLang's own backend name; UCX has none (`check` refuses it), and unset keeps SGLang's
    // default (mooncake).
    if w.cache_transceiver == Some(CacheTransceiver::Nixl) {
        argv.extend(["--disaggregation-transfer-backend".into(), "nixl".into()]);
    }
    if p.pp > 1 {
        argv.extend(["--pp-size".into(), p.pp.to_string()]);
    }
    if p.ep > 1 {
        argv.extend(["--ep-size".into(), p.ep.to_string()]);
    }
    if p.attention_dp {
        // Attention DP groups inside the TP group, in the spelling every 0.5.x release takes:
        // `--attn-dp-size N` exists only in builds from mid-2026 on (older ones refuse it at
        // argument parsing), which still take this one, with a deprecation warning.
        argv.extend([
            "--enable-dp-attention".into(),
            "--dp-size".into(),
            p.tp.to_string(),
        ]);
    }
    // Larger than a node: one process per node, the GPUs split evenly (SGLang's `--nnodes`),
    // node rank 0 serving and holding the rendezvous address the others join.
    let nodes = w.nodes();
    if nodes > 1 {
        argv.extend([
            "--nnodes".into(),
            nodes.to_string(),
            "--dist-init-addr".into(),
            format!("{DIST_INIT_HOST}:{DIST_INIT_PORT}"),
        ]);
    }
    // Attention DP within one node: SGLang's processes talk over TCP from a rendezvous port,
    // by default `--port` + 233 and the ports after it, which no role reserves (another
    // role's pick could land there; some releases refuse data parallelism without the flag).
    // So the role picks the span itself, as for a server spanning nodes.
    if nodes == 1 && p.attention_dp {
        argv.extend([
            "--dist-init-addr".into(),
            format!("{DIST_INIT_HOST}:{DIST_INIT_PORT}"),
        ]);
    }
    argv.extend(to_flags(m, &[]));
    let mut launch = port_launch(argv, w.bind_host);
    if nodes == 1 && p.attention_dp {
        launch.dist_span = DERIVED_PORTS + 1 + p.tp;
    }
    if nodes > 1 {
        launch.node_args = (0..nodes)
            .map(|i| vec!["--node-rank".into(), i.to_string()])
            .collect();
        // SGLang derives node rank 0's inter-node sockets from the rendezvous port: its own
        // six after it, and with attention DP one more per rank.
        launch.dist_span = DERIVED_PORTS + 1 + if p.attention_dp { p.tp } else { 0 };
    }
    Built {
        launch,
        ranks: nodes,
        file: None,
    }
}

/// Ports after `--dist-init-addr`'s that SGLang takes on node rank 0 of a server spanning nodes
/// (its `PortArgs`: tokenizer, detokenizer, rpc, metrics, and the scheduler's publisher pair).
pub const DERIVED_PORTS: u32 = 6;

/// The flags of `engine_args` that would contradict what the plan sets itself.
pub const OWNED: &[(&str, &str)] = &[
    (
        "served_model_name",
        "the benchmark sends `model.name`, so that is the served name",
    ),
    ("host", "the role picks the address"),
    ("port", "the role picks a free port"),
    ("model_path", "set `model.path`"),
    ("tp_size", "set `parallel.tp`"),
    ("pp_size", "set `parallel.pp`"),
    ("ep_size", "set `parallel.ep`"),
    ("attn_dp_size", "set `parallel.attention_dp`"),
    ("dp_size", "set `parallel.attention_dp`"),
    ("enable_dp_attention", "set `parallel.attention_dp`"),
    (
        "disaggregation_mode",
        "the group says it: ctx is prefill, gen is decode",
    ),
    (
        "disaggregation_bootstrap_port",
        "the role picks a free port and tells the router",
    ),
    (
        "nnodes",
        "set `parallel` larger than a node: the plan spans nodes",
    ),
    ("node_rank", "each node's rank is the plan's"),
    ("dist_init_addr", "the role picks node rank 0's address"),
];
