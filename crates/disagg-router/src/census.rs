//! `GET /workers`: the census. Every worker with its state and load, and per-group counts
//! (SGLang's router reports prefill and decode counts here; ours says more).

use serde_json::{Value, json};

use crate::app::Inner;
use crate::policy::WorkerGroup;

pub(crate) fn census(state: &Inner) -> Value {
    json!({
        "dialect": state.cfg.dialect.as_str(),
        "prefill": group(&state.prefill),
        "decode": group(&state.decode),
    })
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
            });
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
