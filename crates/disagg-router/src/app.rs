//! The HTTP surface: routes, body limit and shared state. [`app`] builds it without a socket, so
//! tests and embedders can drive it however they like.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::time::Instant;

use crate::config::RouterConfig;
use crate::dispatch;
use crate::error::{Leg, ProxyError, RouterError};
use crate::health;
use crate::policy::WorkerGroup;
use crate::trtllm::Endpoint;
use crate::upstream;

/// `/v1/models` is metadata; it should never wait as long as a generation may.
const MODELS_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] shares; handlers borrow it for the whole request.
pub(crate) struct Inner {
    pub cfg: RouterConfig,
    pub client: reqwest::Client,
    pub prefill: WorkerGroup,
    pub decode: WorkerGroup,
}

impl AppState {
    pub fn new(cfg: RouterConfig) -> Result<Self, RouterError> {
        let client = upstream::client()?;
        let prefill = WorkerGroup::new(Leg::Context, cfg.prefill.clone(), cfg.prefill_policy);
        let decode = WorkerGroup::new(Leg::Generation, cfg.decode.clone(), cfg.decode_policy);
        Ok(Self(Arc::new(Inner {
            cfg,
            client,
            prefill,
            decode,
        })))
    }

    pub fn config(&self) -> &RouterConfig {
        &self.0.cfg
    }
}

/// The router's HTTP app.
pub fn app(state: AppState) -> Router {
    let limit = state.0.cfg.max_body_bytes;
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/health", get(health_check))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The body is buffered once to be parsed; the limit bounds that buffer.
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ProxyError> {
    dispatch::handle(
        &state.0,
        Endpoint::Completions,
        body_or_error(&state, body)?,
    )
    .await
}

async fn chat_completions(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ProxyError> {
    dispatch::handle(
        &state.0,
        Endpoint::ChatCompletions,
        body_or_error(&state, body)?,
    )
    .await
}

fn body_or_error(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ProxyError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ProxyError::BodyTooLarge {
                limit: state.0.cfg.max_body_bytes,
            }
        } else {
            ProxyError::BadRequest(format!(
                "cannot read request body: {}",
                rejection.body_text()
            ))
        }
    })
}

/// Model metadata comes from the generation side, which is what clients talk to in effect.
async fn models(State(state): State<AppState>) -> Result<Response, ProxyError> {
    let state = &state.0;
    let worker = state.decode.urls.first().ok_or(ProxyError::Unhealthy {
        leg: Leg::Generation,
        healthy: 0,
        total: 0,
    })?;
    let deadline = Instant::now() + MODELS_TIMEOUT.min(state.cfg.request_timeout);
    let resp = upstream::get(
        &state.client,
        Leg::Generation,
        worker,
        "/v1/models",
        deadline,
    )
    .await?;
    Ok(dispatch::relay(resp, Leg::Generation, worker, false))
}

async fn health_check(State(state): State<AppState>) -> Result<Response, ProxyError> {
    use axum::response::IntoResponse;
    Ok(health::check(&state.0).await?.into_response())
}

async fn not_found(method: Method, uri: Uri) -> ProxyError {
    ProxyError::NotFound {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ProxyError {
    ProxyError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
