//! The HTTP surface: routes, body limit and shared state. [`app`] builds it without a socket, so
//! tests and embedders can drive it however they like.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::census::census;
use crate::config::RouterConfig;
use crate::error::{Deadline, Leg, ProxyError, RouterError};
use crate::ids::Ids;
use crate::info;
use crate::legs::RequestDeadline;
use crate::metrics::{self, Metrics};
use crate::policy::WorkerGroup;
use crate::relay::{self, Keep};
use crate::request::Endpoint;
use crate::upstream::Target;
use crate::worker::Worker;
use crate::{flow, health, upstream};

/// Copies of a request body the router holds at once, at most: the body itself and one more of
/// about its size (legs share the body's large values rather than copy them, but TensorRT-LLM's
/// context answer brings the prompt back as `prompt_token_ids`, which its generation leg then
/// shares). The in-flight budget counts each body this many times.
pub(crate) const COPIES: usize = 2;

/// `/v1/models` is metadata; it should never wait as long as a generation may.
const MODELS_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

/// What [`AppState`] shares; handlers borrow it for the whole request. Everything but the
/// client is shared by every serving thread ([`AppState::shard`]), so policies, health,
/// metrics, the census and ids see all requests.
pub(crate) struct Inner {
    pub cfg: Arc<RouterConfig>,
    /// This serving thread's own: an HTTP client drives its pooled connections on the
    /// runtime that opened them, so one client shared by threads would wake another thread
    /// for every upstream read.
    pub client: crate::upstream::HttpClient,
    pub prefill: Arc<WorkerGroup>,
    pub decode: Arc<WorkerGroup>,
    pub metrics: Arc<Metrics>,
    pub ids: Arc<Ids>,
    /// One permit per byte of request body held, up to `max_inflight_body_bytes`: the bound
    /// on what all connections together may make the router buffer.
    pub bodies: Arc<Semaphore>,
}

impl Inner {
    /// The group that does `leg`.
    pub fn group(&self, leg: Leg) -> &WorkerGroup {
        match leg {
            Leg::Context => &self.prefill,
            Leg::Generation => &self.decode,
        }
    }

    /// Where and how one call of a leg goes, bounded by the request's deadline.
    pub fn target<'a>(&self, leg: Leg, worker: &'a str, deadline: RequestDeadline) -> Target<'a> {
        Target {
            leg,
            worker,
            deadline: deadline.at,
            request_timeout: self.cfg.request_timeout,
            connect_timeout: self.cfg.connect_timeout,
        }
    }

    /// How long a deadline of `kind` was configured to be, for the 504's message.
    pub fn limit_of(&self, kind: Deadline) -> Duration {
        let cfg = &self.cfg;
        match kind {
            Deadline::Connect => cfg.connect_timeout,
            Deadline::Context => cfg.context_timeout.unwrap_or(cfg.request_timeout),
            Deadline::FirstByte => cfg.first_byte_timeout.unwrap_or(cfg.request_timeout),
            Deadline::Request => cfg.request_timeout,
        }
    }
}

impl AppState {
    pub fn new(cfg: RouterConfig) -> Result<Self, RouterError> {
        let client = upstream::client(&cfg);
        let eject_after = cfg.eject_after.get();
        let cfg_inflight = cfg.max_inflight_body_bytes;
        let prefill_workers = (cfg.prefill.iter().enumerate())
            .map(|(i, url)| Worker::new(url.clone(), cfg.bootstrap_port(i)))
            .collect();
        let decode_workers = cfg
            .decode
            .iter()
            .map(|u| Worker::new(u.clone(), None))
            .collect();
        let prefill = WorkerGroup::new(
            Leg::Context,
            prefill_workers,
            cfg.prefill_policy,
            eject_after,
        )
        .stalled_after(cfg.stall_timeout)
        .first_turn(cfg.first_turn)
        .breaker(cfg.request_failures, cfg.ejection_cooldown);
        let decode = WorkerGroup::new(
            Leg::Generation,
            decode_workers,
            cfg.decode_policy,
            eject_after,
        )
        .stalled_after(cfg.stall_timeout)
        .first_turn(cfg.first_turn)
        .breaker(cfg.request_failures, cfg.ejection_cooldown);
        Ok(Self(Arc::new(Inner {
            cfg: Arc::new(cfg),
            client,
            prefill: Arc::new(prefill),
            decode: Arc::new(decode),
            metrics: Arc::default(),
            ids: Arc::new(Ids::new()),
            bodies: Arc::new(Semaphore::new(cfg_inflight.min(Semaphore::MAX_PERMITS))),
        })))
    }

    /// The same router state with its own upstream client, for another serving thread.
    pub(crate) fn shard(&self) -> Result<Self, RouterError> {
        let s = &self.0;
        Ok(Self(Arc::new(Inner {
            cfg: s.cfg.clone(),
            client: upstream::client(&s.cfg),
            prefill: s.prefill.clone(),
            decode: s.decode.clone(),
            metrics: s.metrics.clone(),
            ids: s.ids.clone(),
            bodies: s.bodies.clone(),
        })))
    }

    pub fn config(&self) -> &RouterConfig {
        &self.0.cfg
    }

    /// The active health checker for this state; `serve` runs it beside the app.
    pub fn health_checker(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        health::watch(self.0.clone())
    }
}

/// The router's HTTP app.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/generate", post(sglang_generate))
        .route("/v1/models", get(models))
        .route("/health", get(health_check))
        .route("/version", get(info::version))
        .route("/workers", get(workers))
        .route("/metrics", get(metrics_text))
        // Where TensorRT-LLM's disaggregated server mounts its Prometheus metrics: a scrape
        // config written for it finds ours there.
        .route("/prometheus/metrics", get(metrics_text));
    if state.0.cfg.dialect == crate::config::Dialect::Sglang {
        router = router
            .route("/get_server_info", get(info::server_info))
            .route("/server_info", get(info::server_info))
            .route("/get_model_info", get(model_info))
            .route("/model_info", get(model_info))
            .route("/health_generate", get(info::health_generate));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn completions(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    generate(state, Endpoint::Completions, headers, body).await
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(state, Endpoint::ChatCompletions, headers, body).await
}

/// SGLang's native API: SGLang's PD routers serve it (mini_lb's `/generate` in
/// `python/sglang/srt/disaggregation/mini_lb.py`; sgl-router's
/// `sgl-router/src/routers/http/pd_router.rs`), and SGLang's `bench_serving --backend sglang`
/// sends every request there. Other dialects' workers have no such route.
async fn sglang_generate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dialect = state.0.cfg.dialect;
    if dialect != crate::config::Dialect::Sglang {
        let refused = Err(ProxyError::NativeOnly {
            dialect: dialect.as_str(),
        });
        return finish(&state, Endpoint::Generate.path(), refused);
    }
    generate(state, Endpoint::Generate, headers, body).await
}

async fn generate(state: AppState, endpoint: Endpoint, headers: HeaderMap, body: Body) -> Response {
    // Dropped before the answer (its client went away: hyper drops this future) counts it.
    let mut unanswered = ClientGone(&state.0.metrics, true);
    let out = match read_body(&state.0, &headers, body).await {
        Ok((body, held)) => {
            let out = flow::handle(&state.0, endpoint, &headers, body).await;
            // The body and its copies in the legs' requests live until here.
            drop(held);
            out
        }
        // Nobody to answer: counted once, as a client gone (when `unanswered` drops).
        Err(e @ ProxyError::ClientGone(_)) => return e.into_response(),
        Err(e) => Err(e),
    };
    unanswered.1 = false;
    finish(&state, endpoint.path(), out)
}

/// Whether a request body's read error is its client's connection ending (closed before the
/// body was whole, reset), not a body the client sent wrong (bad chunked encoding).
fn client_went_away(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            );
        }
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Counts a request whose client went away, when dropped still armed.
struct ClientGone<'a>(&'a crate::metrics::Metrics, bool);

impl Drop for ClientGone<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0
                .clients_gone
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Counts the request by route and status, and turns an error into its response.
fn finish(state: &AppState, route: &'static str, out: Result<Response, ProxyError>) -> Response {
    let resp = out.unwrap_or_else(IntoResponse::into_response);
    state.0.metrics.count_request(route, resp.status().as_u16());
    resp
}

/// Reads a request body, once, within the body deadline and the size limit, holding permits of
/// the in-flight budget for it: [`COPIES`] per byte, since while a leg is sent the request that
/// leg is written from the body lives beside it. A body that declares its length is refused
/// before a byte of it is read when it is too large or the budget cannot take it; one that does
/// not is counted as it arrives.
async fn read_body(
    state: &Inner,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, OwnedSemaphorePermit), ProxyError> {
    let cfg = &state.cfg;
    let limit = cfg.max_body_bytes;
    let too_large = ProxyError::BodyTooLarge { limit };
    let busy = || ProxyError::Busy {
        limit: cfg.max_inflight_body_bytes,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let take = |bytes: usize| {
        // `validate` keeps COPIES × the body limit within u32, and `bytes` within the limit.
        state
            .bodies
            .clone()
            .try_acquire_many_owned(u32::try_from(bytes * COPIES).unwrap_or(u32::MAX))
            .map_err(|_| busy())
    };
    let mut held = take(declared.unwrap_or(0) as usize)?;
    // A body that arrives as one chunk is used as it is; only one of several is gathered (a
    // copy) into one buffer, which the JSON scanner needs.
    let mut one: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + cfg.body_timeout;
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(ProxyError::BodyTimeout {
                    after: cfg.body_timeout,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let text = e.to_string();
                return Err(if client_went_away(&*e.into_inner()) {
                    ProxyError::ClientGone(text)
                } else {
                    ProxyError::BadRequest(format!("cannot read request body: {text}"))
                });
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        let len = buf.len() + one.as_ref().map_or(0, Bytes::len) + chunk.len();
        if len > limit {
            return Err(too_large);
        }
        let counted = held.num_permits() / COPIES;
        if len > counted {
            held.merge(take(len - counted)?);
        }
        match one.take() {
            Some(first) => {
                buf.reserve((declared.unwrap_or(0) as usize).max(len));
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&chunk);
            }
            None if buf.is_empty() => one = Some(chunk),
            None => buf.extend_from_slice(&chunk),
        }
    }
    Ok((one.unwrap_or_else(|| buf.freeze()), held))
}

/// Model metadata comes from a healthy generation worker, which is what clients talk to in
/// effect; it is passed through as is.
async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    pass_through(&state, Leg::Generation, "/v1/models", &headers).await
}

/// SGLang's `/get_model_info`, from a healthy context worker (as SGLang's PD routers ask the
/// first prefill server), passed through as is.
async fn model_info(State(state): State<AppState>, headers: HeaderMap) -> Response {
    pass_through(&state, Leg::Context, "/get_model_info", &headers).await
}

/// `GET path` of a healthy worker of `leg`, its answer passed through as is; the client's
/// `Authorization` goes along, as on the completions (a worker started with an API key
/// refuses the path without it). A worker that cannot be reached, fails, or does not answer
/// within [`MODELS_TIMEOUT`] is passed over for the next healthy one (a benchmark asks
/// `/v1/models` once, at its start, and would fail on the one dead worker the health checker
/// has not ejected yet); a 4xx is the answer. The last failure is the answer when all fail.
async fn pass_through(
    state: &AppState,
    leg: Leg,
    path: &'static str,
    headers: &HeaderMap,
) -> Response {
    let inner = &state.0;
    let group = inner.group(leg);
    let authorization = headers.get(header::AUTHORIZATION);
    let mut last = ProxyError::Unhealthy {
        leg,
        healthy: 0,
        total: group.workers.len(),
    };
    for (i, worker) in group.workers.iter().enumerate() {
        if !worker.is_healthy() {
            continue;
        }
        let deadline = RequestDeadline {
            at: Instant::now() + MODELS_TIMEOUT.min(inner.cfg.request_timeout),
        };
        let t = inner.target(leg, &worker.url, deadline);
        let opened = tokio::time::timeout_at(deadline.at, async {
            let resp = upstream::get(&inner.client, t, path, authorization).await?;
            relay::open(t, resp).await
        })
        .await
        .unwrap_or_else(|_| Err(upstream::timeout(t, Deadline::Request, MODELS_TIMEOUT)));
        match opened {
            Ok(opened) => {
                let keep = Keep {
                    leases: Vec::new(),
                    companion: None,
                };
                let resp = relay::respond(opened, &worker.url, false, keep, &inner.metrics).await;
                return finish(state, path, resp);
            }
            Err(e @ ProxyError::Rejected { .. }) => return finish(state, path, Err(e)),
            Err(e) => {
                group.record_error(i, &e);
                if e.is_unreachable() {
                    group.record_failure(i, &e);
                }
                tracing::info!("{path}: {e}; asking another {leg} worker");
                last = e;
            }
        }
    }
    finish(state, path, Err(last))
}

async fn health_check(State(state): State<AppState>) -> Result<Response, ProxyError> {
    Ok(health::check(&state.0).await?.into_response())
}

async fn workers(State(state): State<AppState>) -> Response {
    axum::Json(census(&state.0)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state.0),
    )
        .into_response()
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
