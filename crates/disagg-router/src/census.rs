//! `GET /workers`: the census. Every worker with its state and load, and per-group counts
//! (SGLang's router reports prefill and decode counts here; ours says more).

use serde_json::{Value, json};

use crate::app::Inner;
use crate::config::{Dialect, DisaggRequestIds};
use crate::policy::WorkerGroup;
use crate::worker::VersionTake;

pub(crate) fn census(state: &Inner) -> Value {
    let mut prefill = group(&state.prefill);
    if state.cfg.dialect == Dialect::Trtllm {
        // Whether context requests to each worker carry a `disagg_request_id`, and why not.
        let mode = state.cfg.disagg_request_id;
        for (w, v) in state.prefill.workers.iter().zip(workers_mut(&mut prefill)) {
            v["disagg_request_id"] = json!(match (mode, w.version_take()) {
                (DisaggRequestIds::Always, _) => "sent",
                (DisaggRequestIds::Never, _) => "omitted",
                (DisaggRequestIds::Auto, VersionTake::Takes) => "sent",
                (DisaggRequestIds::Auto, VersionTake::Refuses) => "omitted (version below 1.3)",
                (DisaggRequestIds::Auto, VersionTake::Pending) => "omitted (version not known yet)",
                (DisaggRequestIds::Auto, VersionTake::Silent) => "omitted (/version not answered)",
            });
        }
    }
    json!({
        "dialect": state.cfg.dialect.as_str(),
        "prefill": prefill,
        "decode": group(&state.decode),
    })
}

fn workers_mut(group: &mut Value) -> impl Iterator<Item = &mut Value> {
    group["workers"]
        .as_array_mut()
        .into_iter()
        .flat_map(|a| a.iter_mut())
}

fn group(g: &WorkerGroup) -> Value {
    let workers: Vec<Value> = g
        .workers
        .iter()
        .map(|w| {
            let mut v = json!({
                "url": w.url,
                "state": if w.is_healthy() { "healthy" } else { "ejected" },
                "in_flight": w.in_flight(),
                "in_flight_tokens": w.in_flight_tokens(),
                "consecutive_failures": w.failures(),
                "consecutive_failed_requests": w.request_failures(),
                "requests": w.requests(),
                "errors": w.errors(),
                "deadline_errors": w.deadline_errors(),
                "rejections": w.rejections(),
                "stalled_ms": w.stalled_for().as_millis() as u64,
                "stalled": g.is_stalled(w),
            });
            if let Some(e) = w.last_error() {
                v["last_error"] = json!(e);
            }
            if let Some(e) = w.last_rejection() {
                v["last_rejection"] = json!(e);
            }
            if let Some(p) = w.bootstrap_port {
                v["bootstrap_port"] = json!(p);
            }
            v
        })
        .collect();
    json!({
        "policy": g.policy.as_str(),
        "count": g.workers.len(),
        "healthy": g.healthy_count(),
        "workers": workers,
    })
}
