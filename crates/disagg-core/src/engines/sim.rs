//! `engine: sim`: `disagg sim`, binding port 0 and writing its address to a ready file.

use super::{Built, WorkerSpec};
use crate::case::SimEngineArgs;
use crate::plan::EngineLaunch;

pub fn build(a: &SimEngineArgs, w: &WorkerSpec<'_>) -> Built {
    let d = |v| humantime::format_duration(v).to_string();
    let mut argv: Vec<String> = vec![
        w.exe.into(),
        "sim".into(),
        "--role".into(),
        if w.is_ctx { "context" } else { "generation" }.into(),
        "--dialect".into(),
        "trtllm".into(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--ready-file".into(),
        w.ready_file.display().to_string(),
        "--model".into(),
        w.model.into(),
        "--startup-delay".into(),
        d(a.startup_delay),
        "--prefill-per-token".into(),
        d(a.prefill_per_token),
        "--itl".into(),
        d(a.itl),
    ];
    if a.never_ready {
        argv.push("--never-ready".into());
    }
    if let Some(n) = a.fail_after_requests {
        argv.push("--fail-after-requests".into());
        argv.push(n.to_string());
    }
    Built {
        launch: EngineLaunch {
            argv,
            ready_file: Some(w.ready_file.clone()),
            host: "127.0.0.1".into(),
        },
        ranks: 1,
        file: None,
    }
}
