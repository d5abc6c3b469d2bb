//! The router's routes that answer about the deployment rather than generate: `/version`
//! (TensorRT-LLM's disaggregated server answers `{"version": ...}` there), and, with the SGLang
//! dialect, those SGLang's PD routers (mini_lb, sgl-router) serve beside generation:
//! - `/get_server_info` (and `/server_info`): every worker's own answer, by role, as
//!   `{"prefill": [...], "decode": [...], "internal_states": [...]}`, the decode workers'
//!   `internal_states` joined (`bench_serving --backend sglang` reads them after a run);
//! - `/health_generate`: 200 once every worker answers its own `/health_generate` with 200.
//!
//! `/get_model_info` goes to a context worker as it is (`app::pass_through`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::{join, join_all};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ProxyError;
use crate::policy::WorkerGroup;

/// How long a worker has to answer `/get_server_info`.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker has to answer `/health_generate` (SGLang's own waits up to 20 s for the
/// one token it generates).
const HEALTH_GENERATE_TIMEOUT: Duration = Duration::from_secs(25);

/// `GET /version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

/// One `GET path` of every worker of `group`, at once: each answer's JSON, or the first worker
/// that gave none and why.
async fn ask_all(
    state: &AppState,
    group: &WorkerGroup,
    path: &str,
    timeout: Duration,
) -> Result<Vec<Value>, ProxyError> {
    let client = &state.0.client;
    let asks = group.workers.iter().map(|w| async move {
        let bad = |reason: String| ProxyError::BadResponse {
            leg: group.leg,
            worker: w.url.clone(),
            reason,
        };
        // No answer at all (refused, reset, timed out) is the worker failing, not an
        // unusable answer.
        let (status, body) = crate::health::fetch(client, &w.url, path, timeout)
            .await
            .map_err(|detail| ProxyError::Transport {
                leg: group.leg,
                worker: w.url.clone(),
                detail,
            })?;
        if status != StatusCode::OK {
            return Err(bad(format!(
                "{path} answered {status}: {}",
                disagg_proto::error::error_message(&body)
            )));
        }
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| bad(format!("{path} answered no JSON: {e}")))
    });
    join_all(asks).await.into_iter().collect()
}

/// `GET /get_server_info` (SGLang dialect).
pub(crate) async fn server_info(State(state): State<AppState>) -> Response {
    let inner = &state.0;
    let (prefill, decode) = join(
        ask_all(&state, &inner.prefill, "/get_server_info", INFO_TIMEOUT),
        ask_all(&state, &inner.decode, "/get_server_info", INFO_TIMEOUT),
    )
    .await;
    let (prefill, decode) = match (prefill, decode) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let internal_states: Vec<Value> = decode
        .iter()
        .filter_map(|d| d.get("internal_states").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    Json(json!({
        "prefill": prefill,
        "decode": decode,
        "internal_states": internal_states,
    }))
    .into_response()
}

/// `GET /health_generate` (SGLang dialect): every worker, context and generation, must answer
/// its own with 200; else 503 naming the first that did not, and why.
pub(crate) async fn health_generate(State(state): State<AppState>) -> Response {
    let inner = &state.0;
    let client = &inner.client;
    let asks = (inner.prefill.workers.iter().map(|w| (inner.prefill.leg, w)))
        .chain(inner.decode.workers.iter().map(|w| (inner.decode.leg, w)))
        .map(|(leg, w)| async move {
            let why = match crate::health::fetch(
                client,
                &w.url,
                "/health_generate",
                HEALTH_GENERATE_TIMEOUT,
            )
            .await
            {
                Ok((StatusCode::OK, _)) => return None,
                Ok((status, body)) => format!(
                    "/health_generate answered {status}: {}",
                    disagg_proto::error::error_message(&body)
                ),
                Err(why) => why,
            };
            Some(ProxyError::GenerateUnhealthy {
                leg,
                worker: w.url.to_string(),
                why,
            })
        });
    match join_all(asks).await.into_iter().flatten().next() {
        None => StatusCode::OK.into_response(),
        Some(failed) => failed.into_response(),
    }
}
