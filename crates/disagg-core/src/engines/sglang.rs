//! `engine: sglang`: `python3 -m sglang.launch_server` in prefill or decode mode; a prefill
//! server also opens the bootstrap port its decode peers pull KV through.

use serde_yaml_ng::Mapping;

use super::flags::to_flags;
use super::{ANY_HOST, Built, WorkerSpec, port_launch};

pub fn build(m: &Mapping, w: &WorkerSpec<'_>) -> Built {
    let p = w.parallel;
    let mut argv: Vec<String> = vec![
        "python3".into(),
        "-m".into(),
        "sglang.launch_server".into(),
        "--model-path".into(),
        w.model.into(),
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
    if p.pp > 1 {
        argv.extend(["--pp-size".into(), p.pp.to_string()]);
    }
    if p.ep > 1 {
        argv.extend(["--ep-size".into(), p.ep.to_string()]);
    }
    if p.attention_dp {
        argv.extend([
            "--enable-dp-attention".into(),
            "--dp-size".into(),
            p.tp.to_string(),
        ]);
    }
    argv.extend(to_flags(m, &[]));
    Built {
        launch: port_launch(argv, ANY_HOST),
        ranks: 1,
        file: None,
    }
}
