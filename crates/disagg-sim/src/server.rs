//! The HTTP app: shared state, routes, and the small informational endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use disagg_proto::ApiError;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::error::HttpError;
use crate::faults::{ExitHook, Faults};
use crate::response::Header;
use crate::timing::Schedule;
use crate::{SimArgs, SimError, SimRole, completions};

/// Request bodies up to this size are read. Long token-id prompts (hundreds of thousands of
/// ids) exceed axum's 2 MiB default, and a benchmark must not fail on those.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Everything the handlers share; cheap to clone.
#[derive(Debug, Clone)]
pub struct SimState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    role: SimRole,
    model: String,
    prefill_per_token: Duration,
    itl: Duration,
    started: Instant,
    startup_delay: Duration,
    never_ready: bool,
    faults: Faults,
    /// Source of response ids and `ctx_request_id`s, unique within this server.
    next_id: AtomicU64,
}

impl SimState {
    /// State for a sim configured by `args`. The startup delay counts from here. `exit` runs
    /// when `--fail-after-requests` is reached ([`ExitHook::exit_process`] in production).
    pub fn new(args: &SimArgs, exit: ExitHook) -> Self {
        Self(Arc::new(Inner {
            role: args.role,
            model: args.model.clone(),
            prefill_per_token: args.prefill_per_token,
            itl: args.itl,
            started: Instant::now(),
            startup_delay: args.startup_delay,
            never_ready: args.never_ready,
            faults: Faults::new(args.fail_after_requests, exit),
            next_id: AtomicU64::new(1),
        }))
    }

    pub(crate) fn role(&self) -> SimRole {
        self.0.role
    }

    pub(crate) fn itl(&self) -> Duration {
        self.0.itl
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.0.faults
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Token 0 after prefilling `prompt_len` tokens from `start`.
    pub(crate) fn prefill_schedule(&self, start: Instant, prompt_len: usize) -> Schedule {
        Schedule::after_prefill(start, self.0.prefill_per_token, prompt_len, self.0.itl)
    }

    /// Identity fields for a new response.
    pub(crate) fn header(&self) -> Header {
        Header {
            id: format!("cmpl-sim-{}", self.next_id()),
            created: unix_now(),
            model: self.0.model.clone(),
        }
    }

    /// Why `/health` is not 200 yet, if it is not.
    fn not_ready(&self) -> Option<String> {
        if self.0.never_ready {
            return Some("not ready: this sim runs with --never-ready".to_string());
        }
        let ready_at = self.0.started + self.0.startup_delay;
        let now = Instant::now();
        (now < ready_at).then(|| {
            let left = ready_at - now;
            format!("starting up: ready in {} ms", left.as_millis().max(1))
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The sim's HTTP app, ready to serve on any listener (tests serve it on port 0 in-process).
pub fn app(state: SimState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/version", get(version))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves [`app`] on an already bound listener until the process ends.
pub async fn serve(listener: TcpListener, state: SimState) -> Result<(), SimError> {
    // Streamed tokens are small writes; Nagle would hold them back and distort measured ITL.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app(state))
        .await
        .map_err(SimError::Serve)
}

async fn health(State(sim): State<SimState>) -> Response {
    match sim.not_ready() {
        None => StatusCode::OK.into_response(),
        Some(why) => HttpError(ApiError::unavailable(why)).into_response(),
    }
}

async fn models(State(sim): State<SimState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": sim.0.model,
            "object": "model",
            "created": unix_now(),
            "owned_by": "disagg-sim",
        }],
    }))
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "engine": "disagg-sim",
        "dialect": "trtllm",
    }))
}

async fn chat_completions() -> HttpError {
    HttpError(ApiError::new(
        501,
        "not_implemented",
        "disagg-sim does not serve /v1/chat/completions yet; use /v1/completions",
    ))
}

async fn not_found(uri: axum::http::Uri) -> HttpError {
    HttpError(ApiError::not_found(format!("no route for {}", uri.path())))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> HttpError {
    HttpError(ApiError::new(
        405,
        "invalid_request_error",
        format!("{method} is not allowed on {}", uri.path()),
    ))
}
