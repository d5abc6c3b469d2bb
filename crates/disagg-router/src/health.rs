//! `GET /health`: the router is healthy when it could serve a request right now, i.e. at least
//! one context and one generation worker answer their own `/health` with 200.
//!
//! Workers are probed on demand rather than cached: health is polled rarely (start-up waits, the
//! odd load balancer), and a fresh answer never reports a worker that died a second ago.

use std::time::Duration;

use axum::Json;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::app::Inner;
use crate::error::ProxyError;
use crate::policy::WorkerGroup;

/// A worker that cannot answer `/health` this fast is treated as down for this probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

pub(crate) async fn check(state: &Inner) -> Result<Json<Value>, ProxyError> {
    let (ctx_up, gen_up) = futures_util::future::join(
        healthy(&state.client, &state.prefill),
        healthy(&state.client, &state.decode),
    )
    .await;
    for (group, healthy) in [(&state.prefill, ctx_up), (&state.decode, gen_up)] {
        if healthy == 0 {
            return Err(ProxyError::Unhealthy {
                leg: group.leg,
                healthy,
                total: group.urls.len(),
            });
        }
    }
    Ok(Json(json!({
        "status": "ok",
        "context": {"healthy": ctx_up, "total": state.prefill.urls.len()},
        "generation": {"healthy": gen_up, "total": state.decode.urls.len()},
    })))
}

/// How many workers of `group` answer `/health` with 200, probing them all at once.
async fn healthy(client: &reqwest::Client, group: &WorkerGroup) -> usize {
    let probes = group.urls.iter().map(|url| async move {
        match client
            .get(format!("{url}/health"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
        {
            Ok(resp) => resp.status() == reqwest::StatusCode::OK,
            Err(e) => {
                tracing::debug!("{} worker {url} failed /health: {e}", group.leg);
                false
            }
        }
    });
    join_all(probes).await.into_iter().filter(|ok| *ok).count()
}
