//! Worker health, two ways:
//! - [`watch`]: the active checker. Every `health_interval` it probes every worker's `/health`;
//!   `eject_after` failures in a row take a worker out of rotation, one pass lets it back in.
//!   Failed connections on real requests count as failures too (see `legs::with_retries`), so
//!   a dead worker is usually out before the next probe.
//! - `GET /health` ([`check`]): the router is healthy when every group has a worker in rotation
//!   answering its own `/health` with 200 right now (one ejected for failing its requests is
//!   out until its cool-down ends, whatever its `/health` says, and requests get 503 meanwhile).
//!   Probed on demand rather than read from the census, so start-up waits never see a worker
//!   that died a second ago; its results feed the census too.
//!
//! With the TensorRT-LLM dialect and `--disagg-request-id auto`, the checker also reads each
//! context worker's `/version` until it knows whether the worker takes a `disagg_request_id`
//! ([`takes_disagg_ids`]), and a context request to a worker never yet answered waits for that
//! answer ([`version_known`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::app::Inner;
use crate::config::{Dialect, DisaggRequestIds};
use crate::error::ProxyError;
use crate::policy::WorkerGroup;
use crate::worker::{VersionTake, Worker};
use disagg_proto::trtllm::takes_disagg_ids;

/// A worker that cannot answer `/health` this fast is treated as down for this probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// SGLang's `/health` generates a token by default (`SGLANG_ENABLE_HEALTH_ENDPOINT_GENERATION`:
/// it is `/health_generate`, which waits at least a second for the answer), so a loaded
/// SGLang worker takes longer than [`PROBE_TIMEOUT`] and would be ejected for being busy.
const SGLANG_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The `/health` probe's timeout for this router's workers.
fn probe_timeout(state: &Inner) -> Duration {
    match state.cfg.dialect {
        Dialect::Sglang => SGLANG_PROBE_TIMEOUT,
        _ => PROBE_TIMEOUT,
    }
}

pub(crate) async fn check(state: &Inner) -> Result<Json<Value>, ProxyError> {
    let timeout = probe_timeout(state);
    let (ctx_up, gen_up) = futures_util::future::join(
        probe_group(&state.client, &state.prefill, timeout),
        probe_group(&state.client, &state.decode, timeout),
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

/// How soon the next round comes while a group has no healthy worker (every request answers
/// 503 meanwhile): a router started before its workers serves as soon as they are up, not up to
/// a whole `--health-interval` later.
const WHILE_DOWN: Duration = Duration::from_millis(500);

/// The active checker; runs until dropped (`serve` aborts it on shutdown). A round every
/// `health_interval` after the last one ended (never a burst of catch-up rounds), every
/// [`WHILE_DOWN`] while a group has no healthy worker.
pub(crate) async fn watch(state: Arc<Inner>) {
    let interval = state.cfg.health_interval.max(Duration::from_millis(10));
    let timeout = probe_timeout(&state).min(interval);
    loop {
        futures_util::future::join3(
            probe_group(&state.client, &state.prefill, timeout),
            probe_group(&state.client, &state.decode, timeout),
            learn_versions(&state, timeout),
        )
        .await;
        let down = state.prefill.healthy_count() == 0 || state.decode.healthy_count() == 0;
        tokio::time::sleep(if down {
            interval.min(WHILE_DOWN)
        } else {
            interval
        })
        .await;
    }
}

/// Reads `/version` of every context worker whose take on `disagg_request_id` is not known yet
/// (only for TensorRT-LLM with `--disagg-request-id auto`): those never answered and those
/// whose last ask went unanswered ([`VersionTake::Silent`]).
async fn learn_versions(state: &Inner, timeout: Duration) {
    if !learns_versions(state) {
        return;
    }
    let asks = state.prefill.workers.iter().map(|w| async move {
        if matches!(w.version_take(), VersionTake::Takes | VersionTake::Refuses) {
            return;
        }
        let _turn = w.version_turn.lock().await;
        // A request may have asked while this waited for its turn.
        if matches!(w.version_take(), VersionTake::Pending | VersionTake::Silent) {
            ask_version(&state.client, w, timeout).await;
        }
    });
    join_all(asks).await;
}

fn learns_versions(state: &Inner) -> bool {
    state.cfg.dialect == Dialect::Trtllm && state.cfg.disagg_request_id == DisaggRequestIds::Auto
}

/// Before a context request goes to `w`: while `w`'s `/version` has never been answered
/// ([`VersionTake::Pending`]), waits until an ask of it ends: the one under way (the health
/// checker's first round starts with the router), or one of its own if none is. So the first
/// requests of a router started a moment ago carry the id exactly when the worker takes it.
/// Bounded by [`PROBE_TIMEOUT`] (1.5 s) per ask: a worker that does not answer in time becomes
/// [`VersionTake::Silent`], and requests stop waiting for it. An ask that could not connect
/// leaves `w` pending (its requests cannot reach it either), and the next request asks again.
/// Once the version is known this is one relaxed atomic load.
pub(crate) async fn version_known(state: &Inner, w: &Worker) {
    if w.version_take() != VersionTake::Pending || !learns_versions(state) {
        return;
    }
    let seen = w.version_asks();
    let _turn = w.version_turn.lock().await;
    // An ask that ended while this one queued is the answer, whatever it was.
    if w.version_take() == VersionTake::Pending && w.version_asks() == seen {
        ask_version(&state.client, w, PROBE_TIMEOUT).await;
    }
}

/// One `GET /version` of context worker `w`, and what it says about `disagg_request_id`.
/// The caller holds `w.version_turn`.
async fn ask_version(client: &crate::upstream::HttpClient, w: &Worker, timeout: Duration) {
    let take = match get(client, &w.url, "/version", timeout).await {
        Ok((status, body)) if status == http::StatusCode::OK => {
            let version = serde_json::from_slice::<Value>(&body).ok();
            // A worker that says which dialect it speaks (disagg sim does) and says another:
            // every request would fail on it, in words about roles, not dialects.
            if let Some(theirs) = version
                .as_ref()
                .and_then(|v| v["dialect"].as_str())
                .filter(|d| *d != "trtllm")
            {
                tracing::warn!(
                    "context worker {}: its /version says it speaks the {theirs} dialect, and \
                     this router speaks trtllm: its requests will fail; start the router with \
                     `--dialect {theirs}`",
                    w.url
                );
            }
            let takes = version.as_ref().is_some_and(takes_disagg_ids);
            tracing::info!(
                "context worker {}: /version {} → {} disagg_request_id",
                w.url,
                version.map_or_else(|| "answered no JSON".to_string(), |v| v.to_string()),
                if takes { "sending" } else { "not sending" },
            );
            if takes {
                VersionTake::Takes
            } else {
                VersionTake::Refuses
            }
        }
        // A server that has no `/version` is no TensorRT-LLM that takes the id.
        Ok((status, _)) if !status.is_server_error() => {
            tracing::info!(
                "context worker {}: /version answered {status} → not sending disagg_request_id",
                w.url
            );
            VersionTake::Refuses
        }
        Ok((status, _)) => silent(w, &format!("/version answered {status}")),
        Err(Unanswered::TimedOut(why)) => silent(w, &why),
        // Not reachable: its requests fail too. Still pending, so the next request asks again.
        Err(Unanswered::Failed(why) | Unanswered::Local(why)) => {
            tracing::debug!("context worker {}: {why}", w.url);
            VersionTake::Pending
        }
    };
    w.version_asked(take);
}

/// A worker whose `/version` went unanswered: logged when it becomes so.
fn silent(w: &Worker, why: &str) -> VersionTake {
    if w.version_take() == VersionTake::Silent {
        tracing::debug!("context worker {}: {why}", w.url);
    } else {
        tracing::warn!(
            "context worker {}: {why}; its requests go without disagg_request_id (as to a \
             version below 1.3) until /version answers (asked again every health round)",
            w.url
        );
    }
    VersionTake::Silent
}

/// Probes every worker of `group` at once, records the results, and counts the healthy ones
/// in rotation (a 200 does not readmit a worker its failed requests ejected).
async fn probe_group(
    client: &crate::upstream::HttpClient,
    group: &WorkerGroup,
    timeout: Duration,
) -> usize {
    let probes = group.workers.iter().enumerate().map(|(i, w)| async move {
        let failed = match probe(client, &w.url, timeout).await {
            Ok(status) if status == http::StatusCode::OK => None,
            Ok(status) => Some(format!("/health answered {status}")),
            // The router's own shortage says nothing of the worker: no verdict this round.
            Err(Unanswered::Local(why)) => {
                tracing::warn!("{} worker {}: {why}", group.leg, w.url);
                return w.is_healthy();
            }
            Err(Unanswered::Failed(why) | Unanswered::TimedOut(why)) => Some(why),
        };
        match &failed {
            None => group.record_success(i, "/health answered 200"),
            Some(why) => {
                tracing::debug!("{} worker {}: {why}", group.leg, w.url);
                group.record_failure(i, why);
            }
        }
        failed.is_none() && w.is_healthy()
    });
    join_all(probes).await.into_iter().filter(|ok| *ok).count()
}

/// One `GET /health` within `timeout`: its status (the body is read and dropped, so the
/// connection goes back to the pool), or why there was none.
async fn probe(
    client: &crate::upstream::HttpClient,
    worker: &str,
    timeout: Duration,
) -> Result<http::StatusCode, Unanswered> {
    get(client, worker, "/health", timeout)
        .await
        .map(|(status, _)| status)
}

/// One `GET path` of `worker` within `timeout`: its status and whole body, or why there was
/// none, in words.
pub(crate) async fn fetch(
    client: &crate::upstream::HttpClient,
    worker: &str,
    path: &str,
    timeout: Duration,
) -> Result<(http::StatusCode, bytes::Bytes), String> {
    get(client, worker, path, timeout).await.map_err(
        |(Unanswered::Failed(why) | Unanswered::TimedOut(why) | Unanswered::Local(why))| why,
    )
}

/// Why a `GET` got no answer.
enum Unanswered {
    /// The exchange failed (refused, reset, ...).
    Failed(String),
    /// No whole answer within the time given.
    TimedOut(String),
    /// The router could not open a socket (out of file descriptors): nothing about the worker.
    Local(String),
}

/// One `GET path` within `timeout`: its status and whole body, or why there was none.
async fn get(
    client: &crate::upstream::HttpClient,
    worker: &str,
    path: &str,
    timeout: Duration,
) -> Result<(http::StatusCode, bytes::Bytes), Unanswered> {
    let uri = crate::upstream::uri_of(worker, path)
        .map_err(|why| Unanswered::Failed(format!("{path}: {why}")))?;
    let request = http::Request::get(uri)
        .body(crate::upstream::Frames::empty())
        .map_err(|e| Unanswered::Failed(format!("{path}: {e}")))?;
    let exchange = async {
        let resp = client.request(request).await.map_err(|e| {
            let why = format!("{path} failed: {}", crate::error::error_chain(&e));
            if e.is_connect() && crate::upstream::out_of_sockets(&e) {
                Unanswered::Local(format!("{why} (the router is out of file descriptors)"))
            } else {
                Unanswered::Failed(why)
            }
        })?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| {
                Unanswered::Failed(format!("{path} failed: {}", crate::error::error_chain(&e)))
            })?;
        Ok((status, body.to_bytes()))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(Unanswered::TimedOut(format!(
            "{path} did not answer within {timeout:?}"
        ))),
    }
}
