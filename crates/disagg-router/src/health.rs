//! Worker health, two ways:
//! - [`watch`]: the active checker. Every `health_interval` it probes every worker's `/health`;
//!   `eject_after` failures in a row take a worker out of rotation, one pass lets it back in.
//!   Failed connections on real requests count as failures too (see `legs::with_retries`), so
//!   a dead worker is usually out before the next probe.
//! - `GET /health` ([`check`]): the router is healthy when every group has a worker answering
//!   its own `/health` with 200 right now. Probed on demand rather than read from the census, so
//!   start-up waits never see a worker that died a second ago; its results feed the census too.
//!
//! With the TensorRT-LLM dialect and `--disagg-request-id auto`, the checker also reads each
//! context worker's `/version` until it knows whether the worker takes a `disagg_request_id`
//! ([`takes_disagg_ids`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::app::Inner;
use crate::config::{Dialect, DisaggRequestIds};
use crate::error::ProxyError;
use crate::policy::WorkerGroup;
use disagg_proto::trtllm::takes_disagg_ids;

/// A worker that cannot answer `/health` this fast is treated as down for this probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

pub(crate) async fn check(state: &Inner) -> Result<Json<Value>, ProxyError> {
    let (ctx_up, gen_up) = futures_util::future::join(
        probe_group(&state.client, &state.prefill, PROBE_TIMEOUT),
        probe_group(&state.client, &state.decode, PROBE_TIMEOUT),
    )
    .await;
    for (group, healthy) in [(&state.prefill, ctx_up), (&state.decode, gen_up)] {
        if healthy == 0 {
            return Err(ProxyError::Unhealthy {
                leg: group.leg,
                healthy,
                total: group.workers.len(),
            });
        }
    }
    Ok(Json(json!({
        "status": "ok",
        "context": {"healthy": ctx_up, "total": state.prefill.workers.len()},
        "generation": {"healthy": gen_up, "total": state.decode.workers.len()},
    })))
}

/// The active checker; runs until dropped (`serve` aborts it on shutdown).
pub(crate) async fn watch(state: Arc<Inner>) {
    let interval = state.cfg.health_interval.max(Duration::from_millis(10));
    let timeout = PROBE_TIMEOUT.min(interval);
    let mut tick = tokio::time::interval(interval);
    // A slow round must not be followed by a burst of catch-up probes.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        futures_util::future::join3(
            probe_group(&state.client, &state.prefill, timeout),
            probe_group(&state.client, &state.decode, timeout),
            learn_versions(&state, timeout),
        )
        .await;
    }
}

/// Reads `/version` of every context worker whose take on `disagg_request_id` is not known yet
/// (only for TensorRT-LLM with `--disagg-request-id auto`). A worker that answers without a
/// usable version is taken as an old one; one that does not answer is asked again next round.
async fn learn_versions(state: &Inner, timeout: Duration) {
    if state.cfg.dialect != Dialect::Trtllm || state.cfg.disagg_request_id != DisaggRequestIds::Auto
    {
        return;
    }
    let asks = state
        .prefill
        .workers
        .iter()
        .filter(|w| w.takes_disagg_ids().is_none())
        .map(|w| async move {
            let Ok((status, body)) = get(&state.client, &w.url, "/version", timeout).await else {
                return;
            };
            let version = (status == http::StatusCode::OK)
                .then(|| serde_json::from_slice::<Value>(&body).ok())
                .flatten();
            let takes = version.as_ref().is_some_and(takes_disagg_ids);
            tracing::info!(
                "context worker {}: /version {} → {} disagg_request_id",
                w.url,
                version.map_or_else(|| format!("answered {status}"), |v| v.to_string()),
                if takes { "sending" } else { "not sending" },
            );
            w.set_takes_disagg_ids(takes);
        });
    join_all(asks).await;
}

/// Probes every worker of `group` at once, records the results, and counts the healthy.
async fn probe_group(
    client: &crate::upstream::HttpClient,
    group: &WorkerGroup,
    timeout: Duration,
) -> usize {
    let probes = group.workers.iter().enumerate().map(|(i, w)| async move {
        let failed = match probe(client, &w.url, timeout).await {
            Ok(status) if status == http::StatusCode::OK => None,
            Ok(status) => Some(format!("/health answered {status}")),
            Err(why) => Some(why),
        };
        match &failed {
            None => group.record_success(i, "/health answered 200"),
            Some(why) => {
                tracing::debug!("{} worker {}: {why}", group.leg, w.url);
                group.record_failure(i, why);
            }
        }
        failed.is_none()
    });
    join_all(probes).await.into_iter().filter(|ok| *ok).count()
}

/// One `GET /health` within `timeout`: its status (the body is read and dropped, so the
/// connection goes back to the pool), or why there was none.
async fn probe(
    client: &crate::upstream::HttpClient,
    worker: &str,
    timeout: Duration,
) -> Result<http::StatusCode, String> {
    get(client, worker, "/health", timeout)
        .await
        .map(|(status, _)| status)
}

/// One `GET path` within `timeout`: its status and whole body, or why there was none.
async fn get(
    client: &crate::upstream::HttpClient,
    worker: &str,
    path: &str,
    timeout: Duration,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let uri = crate::upstream::uri_of(worker, path).map_err(|why| format!("{path}: {why}"))?;
    let request = http::Request::get(uri)
        .body(crate::upstream::Frames::empty())
        .map_err(|e| format!("{path}: {e}"))?;
    let exchange = async {
        let resp = client
            .request(request)
            .await
            .map_err(|e| format!("{path} failed: {}", crate::error::error_chain(&e)))?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| format!("{path} failed: {}", crate::error::error_chain(&e)))?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{path} did not answer within {timeout:?}")))
}
