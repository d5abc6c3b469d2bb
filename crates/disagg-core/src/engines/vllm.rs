//! `engine: vllm`: `vllm serve` with the KV-transfer config that makes it a disaggregated
//! prefill or decode instance.
//!
//! Every NixlConnector instance binds its handshake side channel at
//! `VLLM_NIXL_SIDE_CHANNEL_HOST:VLLM_NIXL_SIDE_CHANNEL_PORT` (+ its data-parallel index), by
//! default `localhost:5600`, and hands that address to decode in `kv_transfer_params`. So each
//! worker gets a port its role picks (`{side_channel_port}`, one per data-parallel rank) and the
//! host the role publishes for it (`{publish_host}`), which the other nodes can reach.

use std::collections::BTreeMap;

use serde_json::json;
use serde_yaml_ng::Mapping;

use super::flags::{scalar, to_flags};
use super::{Built, DIST_INIT_HOST, DIST_INIT_PORT, WorkerSpec, port_launch};
use crate::case::CacheTransceiver;

pub fn build(m: &Mapping, w: &WorkerSpec<'_>) -> Built {
    let p = w.parallel;
    // Attention data parallelism: one engine per rank, each of TP 1; with experts, expert
    // parallelism spans them (vLLM's "DEP"). GPUs = dp × tp × pp either way.
    let (tp, dp) = if p.attention_dp { (1, p.tp) } else { (p.tp, 1) };
    let kv = kv_transfer_config(m, w.cache_transceiver);
    let mut argv: Vec<String> = vec![
        "vllm".into(),
        "serve".into(),
        w.model.into(),
        "--served-model-name".into(),
        w.served_model.into(),
        "--host".into(),
        "{host}".into(),
        "--port".into(),
        "{port}".into(),
        "--tensor-parallel-size".into(),
        tp.to_string(),
        "--pipeline-parallel-size".into(),
        p.pp.to_string(),
    ];
    if dp > 1 {
        argv.extend(["--data-parallel-size".into(), dp.to_string()]);
    }
    if p.ep > 1 {
        argv.push("--enable-expert-parallel".into());
    }
    let (kv, connector) = kv;
    let nixl = connector.as_deref() == Some("NixlConnector");
    argv.extend(["--kv-transfer-config".into(), kv]);
    argv.extend(to_flags(m, &["kv_transfer_config"]));
    // Larger than a node: one process per node, node rank 0 serving the API and holding the
    // rendezvous address, the others `--headless`. Data-parallel ranks spread over the nodes
    // (vLLM's multi-node data parallelism, each node starting at its first rank); else one
    // TP×PP world over the nodes (vLLM's multiprocessing backend across nodes).
    let nodes = w.nodes();
    let mut node_args = Vec::new();
    if nodes > 1 {
        let headless = |i: u32| (i > 0).then(|| "--headless".to_string());
        if dp > 1 {
            let local = dp / nodes;
            argv.extend([
                "--data-parallel-size-local".into(),
                local.to_string(),
                "--data-parallel-address".into(),
                DIST_INIT_HOST.into(),
                "--data-parallel-rpc-port".into(),
                DIST_INIT_PORT.into(),
            ]);
            node_args = (0..nodes)
                .map(|i| {
                    let start = (i > 0).then(|| {
                        [
                            "--data-parallel-start-rank".to_string(),
                            (i * local).to_string(),
                        ]
                    });
                    start.into_iter().flatten().chain(headless(i)).collect()
                })
                .collect();
        } else {
            argv.extend([
                "--nnodes".into(),
                nodes.to_string(),
                "--master-addr".into(),
                DIST_INIT_HOST.into(),
                "--master-port".into(),
                DIST_INIT_PORT.into(),
            ]);
            node_args = (0..nodes)
                .map(|i| {
                    ["--node-rank".to_string(), i.to_string()]
                        .into_iter()
                        .chain(headless(i))
                        .collect()
                })
                .collect();
        }
    }
    let mut launch = port_launch(argv, w.bind_host);
    launch.node_args = node_args;
    if nixl {
        launch.env = BTreeMap::from([
            (SIDE_CHANNEL_HOST.into(), "{publish_host}".into()),
            (SIDE_CHANNEL_PORT.into(), "{side_channel_port}".into()),
        ]);
        // One port per data-parallel rank in recent vLLM (PORT + the rank); the 0.9-0.11 era
        // had each TP rank listen too (PORT + dp_rank × tp + tp_rank): the span covers both.
        launch.side_channel_span = dp * tp;
    }
    Built {
        launch,
        ranks: nodes,
        file: None,
    }
}

pub const SIDE_CHANNEL_HOST: &str = "VLLM_NIXL_SIDE_CHANNEL_HOST";
pub const SIDE_CHANNEL_PORT: &str = "VLLM_NIXL_SIDE_CHANNEL_PORT";

/// The `--kv-transfer-config` JSON and its connector: the case's `kv_transfer_config` (a
/// mapping, or its JSON as a string), else NixlConnector in both roles. NixlConnector moves KV
/// over UCX unless told otherwise, so UCX and NIXL both mean NixlConnector; an explicit UCX
/// names its backend.
pub fn kv_transfer_config(
    m: &Mapping,
    backend: Option<CacheTransceiver>,
) -> (String, Option<String>) {
    let kv = match m.get("kv_transfer_config") {
        Some(v) => {
            let text = scalar(v);
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(kv) => kv,
                Err(_) => return (text, None),
            }
        }
        None => {
            let mut kv = json!({"kv_connector": "NixlConnector", "kv_role": "kv_both"});
            if backend == Some(CacheTransceiver::Ucx) {
                kv["kv_connector_extra_config"] = json!({"backends": ["UCX"]});
            }
            kv
        }
    };
    let connector = kv
        .get("kv_connector")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    (kv.to_string(), connector)
}

/// The flags of `engine_args` that would contradict what the plan sets itself.
pub const OWNED: &[(&str, &str)] = &[
    (
        "served_model_name",
        "the benchmark sends `model.name`, so that is the served name",
    ),
    ("host", "the role picks the address"),
    ("port", "the role picks a free port"),
    ("tensor_parallel_size", "set `parallel.tp`"),
    ("pipeline_parallel_size", "set `parallel.pp`"),
    ("data_parallel_size", "set `parallel.attention_dp`"),
    ("model", "set `model.path`"),
    (
        "nnodes",
        "set `parallel` larger than a node: the plan spans nodes",
    ),
    ("node_rank", "each node's rank is the plan's"),
    ("master_addr", "the role picks node rank 0's address"),
    ("master_port", "the role picks a free port on node rank 0"),
    (
        "headless",
        "nodes above rank 0 run headless, as the plan says",
    ),
    (
        "data_parallel_size_local",
        "the plan splits the ranks over the nodes",
    ),
    (
        "data_parallel_start_rank",
        "the plan splits the ranks over the nodes",
    ),
    (
        "data_parallel_address",
        "the role picks node rank 0's address",
    ),
    (
        "data_parallel_rpc_port",
        "the role picks a free port on node rank 0",
    ),
];
