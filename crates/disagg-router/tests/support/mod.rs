//! Fake TensorRT-LLM workers for the router's end-to-end tests: real HTTP on 127.0.0.1:0, with
//! scripted behaviour and a record of every body they receive.

#![allow(dead_code)] // each test uses a different part of the kit

pub mod bodies;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use disagg_router::RouterConfig;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// Fires once when the thing holding it is dropped: how a fake observes that the router hung
/// up on a request it was still serving.
pub type Dropped = Arc<Mutex<Option<oneshot::Sender<()>>>>;

pub fn drop_signal() -> (Dropped, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (Arc::new(Mutex::new(Some(tx))), rx)
}

/// How a fake answers a context (prefill) request: TensorRT-LLM `context_only`, vLLM
/// `do_remote_decode`, or anything at all for a fake started as an SGLang prefill worker.
#[derive(Clone)]
pub enum Ctx {
    /// A proper hand-off (`finish_reason: length`).
    Good,
    /// Finished on the first token (`finish_reason: stop`).
    Stop,
    /// No `disaggregated_params` in the choice.
    NoParams,
    /// Refuses the request with 422, as for a prompt that is too long.
    Reject,
    /// Answers 500.
    Fail,
    /// Answers 500 once `release` is notified.
    FailWhen(Arc<Notify>),
    /// Never answers; `dropped` fires when the router hangs up.
    Hang(Dropped),
    /// Answers once `release` is notified; `dropped` fires if the router hangs up first.
    Gated {
        release: Arc<Notify>,
        dropped: Dropped,
    },
}

/// How a fake answers a generation request.
#[derive(Clone)]
pub enum Gen {
    Ok,
    /// Answers 200 with bytes that are neither JSON nor an event stream.
    Garbage,
    Status(StatusCode),
    /// Answers with that status once `release` is notified.
    StatusWhen(StatusCode, Arc<Notify>),
    /// Takes the request, then its connection closes with no answer (a worker dying
    /// mid-request, after it may have pulled the hand-off's KV).
    Crash,
    /// Never answers.
    Hang,
    /// Streams chunk 1, then, 50 ms later, its body fails (the connection is cut under way).
    CutStream,
    /// Never answers; `dropped` fires when the router hangs up.
    HangSignal(Dropped),
    /// Streams chunk 1, then waits for `release` before the rest. `dropped` fires when the
    /// response stream is dropped (the router hung up).
    Gated {
        release: Arc<Notify>,
        dropped: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    },
}

pub const CHUNK_1: &str = "data: {\"choices\":[{\"index\":0,\"text\":\"A\"}]}\n\n";
pub const CHUNK_REST: &str = "data: {\"choices\":[{\"index\":0,\"text\":\"B\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n";

/// One request as a fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub body: Value,
    pub request_id: Option<String>,
    /// The `x-trtllm-disagg-auth` signature, when sent.
    pub auth: Option<String>,
    /// `Authorization`, when sent.
    pub authorization: Option<String>,
    /// `content-length` as sent (none for a chunked body).
    pub content_length: Option<u64>,
    pub transfer_encoding: Option<String>,
}

pub struct Fake {
    pub name: &'static str,
    ctx: Ctx,
    /// Answers every request as a prefill (SGLang sends both legs the same body).
    sglang_prefill: bool,
    generation: Gen,
    health: StatusCode,
    /// How long `/health` takes to answer (SGLang's generates a token first).
    health_delay: std::time::Duration,
    /// Keep a record of each body (off for long runs, where the record itself would grow).
    record: bool,
    /// What `/version` reports as TensorRT-LLM's `{"version": ...}`; `None`: 404. Below 1.3,
    /// a context request carrying `disagg_request_id` is refused with 400, as those versions'
    /// request models (pydantic, `extra="forbid"`) do.
    version: Mutex<Option<&'static str>>,
    /// While set, `/version` answers 503 (a server that is up but cannot say yet).
    pub version_down: std::sync::atomic::AtomicBool,
    pub seen: Mutex<Vec<Seen>>,
}

impl Fake {
    /// The TensorRT-LLM version it plays now.
    pub fn version(&self) -> Option<&'static str> {
        *self.version.lock().unwrap()
    }

    /// Plays another version from now on, as a worker replaced in place (a quick restart on
    /// another build) would.
    pub fn set_version(&self, v: &'static str) {
        *self.version.lock().unwrap() = Some(v);
    }
}

/// A running fake worker.
#[derive(Clone)]
pub struct Worker {
    pub url: String,
    pub fake: Arc<Fake>,
}

impl Worker {
    /// Bodies received on `path`, oldest first.
    pub fn bodies(&self) -> Vec<Value> {
        self.seen().into_iter().map(|s| s.body).collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().unwrap().clone()
    }
}

pub struct FakeBuilder {
    fake: Fake,
}

pub fn fake(name: &'static str) -> FakeBuilder {
    FakeBuilder {
        fake: Fake {
            name,
            ctx: Ctx::Good,
            sglang_prefill: false,
            generation: Gen::Ok,
            health: StatusCode::OK,
            health_delay: std::time::Duration::ZERO,
            record: true,
            version: Mutex::new(None),
            version_down: std::sync::atomic::AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
        },
    }
}

impl FakeBuilder {
    /// Keeps no record of the bodies received.
    pub fn forgetful(mut self) -> Self {
        self.fake.record = false;
        self
    }
    pub fn ctx(mut self, ctx: Ctx) -> Self {
        self.fake.ctx = ctx;
        self
    }
    pub fn generation(mut self, g: Gen) -> Self {
        self.fake.generation = g;
        self
    }
    pub fn health(mut self, status: StatusCode) -> Self {
        self.fake.health = status;
        self
    }
    /// `/health` answers after `delay`.
    pub fn health_delay(mut self, delay: std::time::Duration) -> Self {
        self.fake.health_delay = delay;
        self
    }
    /// Reports this TensorRT-LLM version on `/version` (see [`Fake::version`]).
    pub fn version(mut self, v: &'static str) -> Self {
        self.fake.version = Mutex::new(Some(v));
        self
    }
    pub fn sglang_prefill(mut self) -> Self {
        self.fake.sglang_prefill = true;
        self
    }
    pub async fn start(self) -> Worker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.start_on(listener).await
    }
    /// Starts on a given listener, e.g. one rebound on the port of a worker that "came back".
    pub async fn start_on(self, listener: tokio::net::TcpListener) -> Worker {
        let fake = Arc::new(self.fake);
        let app = Router::new()
            .route("/v1/completions", post(infer))
            .route("/v1/chat/completions", post(infer))
            .route("/generate", post(infer))
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/version", get(version))
            .with_state(fake.clone());
        Worker {
            url: serve_on(listener, app),
            fake,
        }
    }
}

/// Serves `app` on a fresh loopback port. The listener is bound before this returns, so callers
/// can connect at once (the kernel queues the connection): no readiness wait needed.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, app)
}

fn serve_on(listener: tokio::net::TcpListener, app: Router) -> String {
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A loopback port with nothing listening: bound, then released.
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

pub fn config(prefill: &[&Worker], decode: &[&Worker]) -> RouterConfig {
    config_urls(
        prefill.iter().map(|w| w.url.clone()).collect(),
        decode.iter().map(|w| w.url.clone()).collect(),
    )
}

pub fn config_urls(prefill: Vec<String>, decode: Vec<String>) -> RouterConfig {
    let mut cfg = RouterConfig::new(prefill, decode);
    cfg.host = "127.0.0.1".into();
    cfg.port = 0;
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

/// A router config over fakes, speaking `dialect`.
pub fn config_dialect(
    dialect: disagg_router::Dialect,
    prefill: &[&Worker],
    decode: &[&Worker],
) -> RouterConfig {
    let mut cfg = config(prefill, decode);
    cfg.dialect = dialect;
    cfg
}

/// Polls `cond` (every 20 ms, at most `limit`) for state that changes in the background, such
/// as a health checker's verdict. Panics with `what` when it never holds.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(tokio::time::Instant::now() < end, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the router under test through its public `serve`; returns its base URL.
pub async fn router(cfg: RouterConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(disagg_router::serve(listener, cfg, std::future::pending()));
    format!("http://{addr}")
}

async fn health(State(fake): State<Arc<Fake>>) -> StatusCode {
    tokio::time::sleep(fake.health_delay).await;
    fake.health
}

async fn version(State(fake): State<Arc<Fake>>) -> Response {
    if fake.version_down.load(std::sync::atomic::Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match fake.version() {
        Some(v) => axum::Json(json!({"version": v})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Whether a fake of this version refuses `disaggregated_params.disagg_request_id`.
fn refuses_disagg_ids(version: Option<&str>) -> bool {
    let Some(v) = version else { return false };
    let mut n = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0)) < (1, 3)
}

async fn models(
    State(fake): State<Arc<Fake>>,
    headers: axum::http::HeaderMap,
) -> axum::Json<Value> {
    if fake.record {
        fake.seen.lock().unwrap().push(Seen {
            path: "/v1/models".into(),
            body: Value::Null,
            request_id: None,
            auth: None,
            authorization: headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            content_length: None,
            transfer_encoding: None,
        });
    }
    axum::Json(json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}))
}

async fn infer(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let body = body.0;
    if fake.record {
        fake.seen.lock().unwrap().push(Seen {
            path: uri.path().to_string(),
            body: body.clone(),
            request_id: headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_string()),
            auth: headers
                .get(disagg_proto::auth::HEADER)
                .map(|v| v.to_str().unwrap().to_string()),
            authorization: headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            content_length: headers
                .get("content-length")
                .map(|v| v.to_str().unwrap().parse().unwrap()),
            transfer_encoding: headers
                .get("transfer-encoding")
                .map(|v| v.to_str().unwrap().to_string()),
        });
    }
    let chat = uri.path() == "/v1/chat/completions";
    let trtllm_ctx = body["disaggregated_params"]["request_type"] == "context_only";
    let vllm_prefill = body["kv_transfer_params"]["do_remote_decode"] == true;
    let sent_id = &body["disaggregated_params"]["disagg_request_id"];
    if trtllm_ctx && !sent_id.is_null() && refuses_disagg_ids(fake.version()) {
        let msg = "1 validation error for CompletionRequest\ndisaggregated_params.disagg_request_id\n  Extra inputs are not permitted";
        let err =
            json!({"object": "error", "message": msg, "type": "BadRequestError", "code": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(err)).into_response();
    }
    if trtllm_ctx || vllm_prefill || fake.sglang_prefill {
        let mut answer = prefill(&fake.ctx, chat, vllm_prefill).await;
        // A TensorRT-LLM context worker echoes the id it was given.
        if trtllm_ctx && !sent_id.is_null() && answer.status() == StatusCode::OK {
            let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
                .await
                .unwrap();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            if v["choices"][0]["disaggregated_params"].is_object() {
                v["choices"][0]["disaggregated_params"]["disagg_request_id"] = sent_id.clone();
            }
            answer = axum::Json(v).into_response();
        }
        return answer;
    }
    let stream = body["stream"] == json!(true);
    match &fake.generation {
        Gen::Ok if stream => sse(Body::from(format!("{CHUNK_1}{CHUNK_REST}"))),
        Gen::Ok => axum::Json(json!({
            "id": "gen-1", "object": "text_completion", "model": "m",
            "choices": [{"index": 0, "text": " world", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }))
        .into_response(),
        Gen::Garbage => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            &b"\x00\xffNOT JSON <html>"[..],
        )
            .into_response(),
        Gen::Status(status) => says_no(&fake, *status),
        Gen::StatusWhen(status, release) => {
            release.notified().await;
            says_no(&fake, *status)
        }
        // Unwinds the connection's task (without the panic hook's noise): hyper drops the
        // connection unanswered.
        Gen::Crash => std::panic::resume_unwind(Box::new("the fake worker crashed")),
        Gen::Hang => std::future::pending().await,
        Gen::CutStream => {
            let first =
                futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from(CHUNK_1)) });
            // Once the first chunk is on its way to the client: a cut under way.
            let broken = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<Bytes, _>(std::io::Error::other("the fake worker broke its stream"))
            });
            sse(Body::from_stream(first.chain(broken)))
        }
        Gen::HangSignal(dropped) => {
            let _guard = DropSignal(dropped.lock().unwrap().take());
            std::future::pending().await
        }
        Gen::Gated { release, dropped } => {
            let release = release.clone();
            let guard = DropSignal(dropped.lock().unwrap().take());
            let first =
                futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from(CHUNK_1)) });
            let rest = futures_util::stream::once(async move {
                release.notified().await;
                let _keep = &guard;
                Ok(Bytes::from(CHUNK_REST))
            });
            sse(Body::from_stream(first.chain(rest)))
        }
    }
}

async fn prefill(ctx: &Ctx, chat: bool, vllm: bool) -> Response {
    let answer = |ctx: &Ctx| {
        let mut v = context_response(ctx, chat);
        if vllm && matches!(ctx, Ctx::Stop) {
            // NixlConnector keeps no KV for a request that finished on its one token.
            v["kv_transfer_params"] = Value::Null;
        } else if vllm && !matches!(ctx, Ctx::NoParams) {
            v["kv_transfer_params"] = json!({"do_remote_prefill": true, "do_remote_decode": false,
                "remote_engine_id": "engine-7", "remote_block_ids": [4, 5],
                "remote_host": "10.1.1.1", "remote_port": 5600});
        }
        axum::Json(v).into_response()
    };
    match ctx {
        Ctx::Reject => {
            let err = json!({"error": {"message": "prompt too long", "type": "x", "code": 422}});
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(err)).into_response()
        }
        Ctx::Fail => prefill_broke(),
        Ctx::FailWhen(release) => {
            release.notified().await;
            prefill_broke()
        }
        Ctx::Hang(dropped) => {
            let _guard = DropSignal(dropped.lock().unwrap().take());
            std::future::pending().await
        }
        Ctx::Gated { release, dropped } => {
            let mut guard = DropSignal(dropped.lock().unwrap().take());
            release.notified().await;
            guard.0 = None; // answered: not a hang-up
            answer(&Ctx::Good)
        }
        other => answer(other),
    }
}

/// A generation worker's refusal, in its own words.
fn says_no(fake: &Fake, status: StatusCode) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": format!("{} says no", fake.name), "type": "x", "code": status.as_u16()}})),
    )
        .into_response()
}

/// A context worker's 500.
fn prefill_broke() -> Response {
    let err = json!({"error": {"message": "prefill broke", "type": "x", "code": 500}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(err)).into_response()
}

/// Fires its sender when dropped, i.e. when the response stream holding it is dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn sse(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

pub fn context_response(ctx: &Ctx, chat: bool) -> Value {
    let finish_reason = if matches!(ctx, Ctx::Stop) {
        "stop"
    } else {
        "length"
    };
    let mut choice = json!({"index": 0, "finish_reason": finish_reason});
    if matches!(ctx, Ctx::Stop) {
        // What an engine's whole answer carries beside the text, which a re-streamed answer
        // must keep.
        choice["stop_reason"] = json!(7);
        choice["logprobs"] = json!({"content": [{"token": "Hi", "logprob": -0.5}]});
    }
    if chat {
        choice["message"] = json!({"role": "assistant", "content": "Hi"});
    } else {
        choice["text"] = json!("Hi");
    }
    if !matches!(ctx, Ctx::NoParams) {
        choice["disaggregated_params"] = json!({
            "request_type": "context_only",
            "first_gen_tokens": [7],
            "ctx_request_id": 42,
            "encoded_opaque_state": "b3BhcXVl",
            "draft_tokens": null,
            "ctx_dp_rank": 0,
        });
    }
    json!({
        "id": "cmpl-ctx", "object": if chat { "chat.completion" } else { "text_completion" },
        "created": 1, "model": "m",
        "choices": [choice],
        "prompt_token_ids": [1, 2, 3],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    })
}
