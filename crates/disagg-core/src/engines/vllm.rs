//! `engine: vllm`: `vllm serve` with the KV-transfer config that makes it a disaggregated
//! prefill or decode instance.

use serde_yaml_ng::Mapping;

use super::flags::{scalar, to_flags};
use super::{ANY_HOST, Built, WorkerSpec, port_launch};

pub fn build(m: &Mapping, w: &WorkerSpec<'_>) -> Built {
    let p = w.parallel;
    let kv = m
        .get("kv_transfer_config")
        .map(scalar)
        .unwrap_or_else(|| r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#.into());
    let mut argv: Vec<String> = vec![
        "vllm".into(),
        "serve".into(),
        w.model.into(),
        "--host".into(),
        "{host}".into(),
        "--port".into(),
        "{port}".into(),
        "--tensor-parallel-size".into(),
        p.tp.to_string(),
        "--pipeline-parallel-size".into(),
        p.pp.to_string(),
    ];
    if p.ep > 1 {
        argv.push("--enable-expert-parallel".into());
    }
    argv.extend(["--kv-transfer-config".into(), kv]);
    argv.extend(to_flags(m, &["kv_transfer_config"]));
    Built {
        launch: port_launch(argv, ANY_HOST),
        ranks: 1,
        file: None,
    }
}
