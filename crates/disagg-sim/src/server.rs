//! The HTTP app: shared state, routes, and the small informational endpoints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use disagg_proto::ApiError;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::context_len::LengthLimits;
use crate::dialect::trtllm::TrtllmVersion;
use crate::engine::Engine;
use crate::engine::cost::TimingModel;
use crate::error::HttpError;
use crate::faults::{ExitHook, Faults};
use crate::handoff::fetch::KvConfig;
use crate::handoff::store::fetch_record;
use crate::handoff::{KvLayout, KvStore};
use crate::metrics::Metrics;
use crate::request_log::RequestLog;
use crate::response::Header;
use crate::side::{self, SideChannel};
use crate::{Dialect, SimArgs, SimError, SimRole, completions};

/// Request bodies up to this size are read. Long token-id prompts (hundreds of thousands of
/// ids) exceed axum's 2 MiB default, and a benchmark must not fail on those.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Everything the handlers share; cheap to clone.
#[derive(Debug, Clone)]
pub struct SimState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    role: SimRole,
    dialect: Dialect,
    model: String,
    /// Every name served: `model`, then `--model-alias`es.
    served: Vec<String>,
    model_path: String,
    /// `--api-key`: what `Authorization: Bearer` must carry on the API routes.
    api_key: Option<String>,
    /// SGLang's bootstrap server or vLLM's NIXL side channel: where this sim hands KV out.
    side: Option<SideChannel>,
    host: String,
    started: Instant,
    startup_delay: Duration,
    never_ready: bool,
    /// `--overlap-scheduler`: context-only requests are refused.
    overlap_scheduler: bool,
    /// `--version-delay`.
    version_delay: Duration,
    faults: Faults,
    engine: Engine,
    metrics: Arc<Metrics>,
    kv_store: KvStore,
    kv: KvConfig,
    /// What shapes this worker's KV, handed over with each record and checked on receipt.
    kv_layout: KvLayout,
    /// Client for fetching KV records from context sims (loopback or cluster network).
    http: reqwest::Client,
    advertise_host: String,
    /// The bound port, known once [`serve`] has a listener.
    port: OnceLock<u16>,
    request_log: Option<RequestLog>,
    eos_at: Option<u64>,
    /// What requests must fit: the context length, TensorRT-LLM's max_num_tokens check,
    /// SGLang's auto-truncation.
    lengths: LengthLimits,
    /// TensorRT-LLM's `avg_decoded_tokens_per_iter` to report (`--decoded-tokens-per-iter`).
    decoded_per_iter: Option<f64>,
    kv_ttl: Duration,
    /// TensorRT-LLM's `internal_request_auth_key`: protected hand-offs must be signed with it.
    auth_key: Option<String>,
    /// TensorRT-LLM dialect: the version played (`--trtllm-version`).
    trtllm_version: TrtllmVersion,
    /// Source of response ids and `ctx_request_id`s, unique within this server. They stay far
    /// below 2^40, where TensorRT-LLM's global `disagg_request_id`s start, so the two never
    /// share a hand-off key.
    next_id: AtomicU64,
    /// Source of vLLM block ids, unique within this server.
    next_block: AtomicU64,
    /// TensorRT-LLM's gen-only fill gate (`TLLM_BENCHMARK_REQ_QUEUES_SIZE`), generation role.
    fill_gate: Option<FillGate>,
}

/// TensorRT-LLM's gen-only benchmark gate (`PyExecutor`, `TLLM_BENCHMARK_REQ_QUEUES_SIZE`):
/// a disaggregated generation server takes no forward step until that many generation requests
/// have been fetched, so the whole batch starts at once; once open it stays open. A lone
/// request before then waits, as on the real engine.
#[derive(Debug)]
pub(crate) struct FillGate {
    need: u64,
    seen: AtomicU64,
    open: std::sync::atomic::AtomicBool,
    opened: tokio::sync::Notify,
}

impl FillGate {
    /// Counts one generation request in and waits until the gate is open.
    pub(crate) async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let k = self.seen.fetch_add(1, SeqCst) + 1;
        if k >= self.need {
            if !self.open.swap(true, SeqCst) {
                say_err!(
                    "disagg-sim: TLLM_BENCHMARK_REQ_QUEUES_SIZE={}: {k} generation requests in; \
                     the batch starts",
                    self.need
                );
            }
            self.opened.notify_waiters();
            return;
        }
        let opened = self.opened.notified();
        tokio::pin!(opened);
        opened.as_mut().enable();
        if self.open.load(SeqCst) {
            return;
        }
        if k == 1 {
            say_err!(
                "disagg-sim: TLLM_BENCHMARK_REQ_QUEUES_SIZE={}: holding generation until that \
                 many requests are in",
                self.need
            );
        }
        opened.await;
    }
}

impl SimState {
    /// State for a sim configured by `args`. The startup delay counts from here. `exit` runs
    /// when `--fail-after-requests` is reached ([`ExitHook::exit_process`] in production).
    /// Must be called inside a Tokio runtime (the batched engine starts its scheduler task).
    pub fn new(args: &SimArgs, exit: ExitHook) -> Result<Self, SimError> {
        let timing = TimingModel::from_args(&args.timing, args.dialect == Dialect::Trtllm)?;
        args.check_dialect()?;
        let metrics = Arc::new(Metrics::default());
        let request_log = args
            .request_log
            .as_deref()
            .map(|path| {
                RequestLog::open(path).map_err(|source| SimError::RequestLog {
                    path: path.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| SimError::Client(e.to_string()))?;
        let advertise_host = args
            .advertise_host
            .clone()
            .unwrap_or_else(|| default_advertise_host(&args.host));
        let side = SideChannel::bind(args)?;
        Ok(Self(Arc::new(Inner {
            role: args.role,
            dialect: args.dialect,
            model: args.model.clone(),
            served: std::iter::once(&args.model)
                .chain(&args.model_aliases)
                .cloned()
                .collect(),
            model_path: args
                .model_path
                .clone()
                .unwrap_or_else(|| args.model.clone()),
            api_key: args.api_key.clone(),
            side,
            host: args.host.clone(),
            started: Instant::now(),
            startup_delay: args.startup_delay,
            never_ready: args.never_ready,
            overlap_scheduler: args.overlap_scheduler
                && args.dialect == Dialect::Trtllm
                && args
                    .trtllm_version
                    .clone()
                    .unwrap_or_else(TrtllmVersion::current)
                    .refuses_context_only_under_overlap(),
            version_delay: args.version_delay,
            faults: Faults::new(&args.faults, exit),
            engine: Engine::start(timing, metrics.clone()),
            kv_store: KvStore::new(args.kv.ttl(), metrics.clone()),
            metrics,
            kv: KvConfig {
                bytes_per_token: args.kv.kv_bytes_per_token,
                bandwidth_bytes_per_s: args.kv.kv_bandwidth_gbs * 1e9,
                wait_timeout: args.kv.kv_wait_timeout,
                extra_delay: args.faults.kv_transfer_delay,
                bootstrap_timeout: args.kv.bootstrap_timeout,
            },
            kv_layout: KvLayout::of(args),
            http,
            advertise_host,
            port: OnceLock::new(),
            request_log,
            eos_at: args.eos_at,
            lengths: LengthLimits::of(args),
            decoded_per_iter: args.decoded_tokens_per_iter,
            kv_ttl: args.kv.ttl(),
            auth_key: args.internal_request_auth_key.clone(),
            trtllm_version: args
                .trtllm_version
                .clone()
                .unwrap_or_else(TrtllmVersion::current),
            next_id: AtomicU64::new(1),
            next_block: AtomicU64::new(1),
            fill_gate: args
                .benchmark_req_queues_size
                .filter(|&n| {
                    n > 0 && args.dialect == Dialect::Trtllm && args.role == SimRole::Generation
                })
                .map(|need| FillGate {
                    need,
                    seen: AtomicU64::new(0),
                    open: std::sync::atomic::AtomicBool::new(false),
                    opened: tokio::sync::Notify::new(),
                }),
        })))
    }

    /// How late streamed tokens were when the sim released them, at 5 µs resolution: the
    /// number of tokens, the bucket upper bound holding each quantile in `ps` (`None` past
    /// 200 ms), and the worst. For load measurements (`examples/load.rs`); `/metrics` carries
    /// the same at coarse buckets.
    pub fn token_lateness(&self, ps: &[f64]) -> (u64, Vec<Option<Duration>>, Duration) {
        self.0.metrics.token_lateness_fine.summary(ps)
    }

    /// How far each gap between two streamed tokens strayed from the modelled gap, as the sim
    /// released them, in the same form as [`SimState::token_lateness`].
    pub fn token_gap_error(&self, ps: &[f64]) -> (u64, Vec<Option<Duration>>, Duration) {
        self.0.metrics.token_gap_error_fine.summary(ps)
    }

    /// Where this sim hands KV out when that is not its HTTP port: SGLang's bootstrap server
    /// (context role) or vLLM's NIXL side channel, as (host as configured, port as bound).
    pub fn side_channel(&self) -> Option<(String, u16)> {
        self.0.side.as_ref().map(|s| (s.host.clone(), s.port))
    }

    /// Starts serving the side channel, if any, on the current runtime (once).
    pub(crate) fn serve_side_channel(&self) -> Result<(), SimError> {
        match &self.0.side {
            Some(s) => s.serve(self),
            None => Ok(()),
        }
    }

    /// In the vLLM dialect, the one model name served (vLLM answers 404 to any other).
    /// The names a request's `model` must be one of (vLLM's check), when the dialect checks.
    pub(crate) fn checked_model(&self) -> Option<&[String]> {
        (self.0.dialect == Dialect::Vllm).then_some(self.0.served.as_slice())
    }

    /// The port this sim serves on, once known (the KV hand-off advertises it).
    pub(crate) fn set_port(&self, port: u16) {
        let _ = self.0.port.set(port);
    }

    /// The token clock's step in effect (`None` for the batched scheduler).
    pub(crate) fn clock_step(&self) -> Option<Duration> {
        self.0.engine.clock_step()
    }

    /// TensorRT-LLM's gen-only fill gate, when this sim plays a GEN worker under one.
    pub(crate) fn fill_gate(&self) -> Option<&FillGate> {
        self.0.fill_gate.as_ref()
    }

    pub(crate) fn role(&self) -> SimRole {
        self.0.role
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.0.dialect
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.0.faults
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.0.engine
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub(crate) fn kv_store(&self) -> &KvStore {
        &self.0.kv_store
    }

    pub(crate) fn kv_config(&self) -> KvConfig {
        self.0.kv
    }

    pub(crate) fn kv_layout(&self) -> &KvLayout {
        &self.0.kv_layout
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    /// Time since the sim started (vLLM's block expiry is on the prefill's own clock).
    pub(crate) fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    pub(crate) fn kv_ttl(&self) -> Duration {
        self.0.kv_ttl
    }

    pub(crate) fn eos_at(&self) -> Option<u64> {
        self.0.eos_at
    }

    pub(crate) fn overlap_scheduler(&self) -> bool {
        self.0.overlap_scheduler
    }

    pub(crate) fn lengths(&self) -> LengthLimits {
        self.0.lengths
    }

    pub(crate) fn request_log(&self) -> Option<&RequestLog> {
        self.0.request_log.as_ref()
    }

    /// Where generation sims reach this one: (host, port).
    pub(crate) fn advertised(&self) -> (String, u16) {
        (
            self.0.advertise_host.clone(),
            self.0.port.get().copied().unwrap_or(0),
        )
    }

    pub(crate) fn trtllm_version(&self) -> &TrtllmVersion {
        &self.0.trtllm_version
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.0.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `n` fresh, consecutive block ids (at least one).
    pub(crate) fn allocate_blocks(&self, n: usize) -> Vec<u64> {
        let n = n.max(1) as u64;
        let first = self.0.next_block.fetch_add(n, Ordering::Relaxed);
        (first..first + n).collect()
    }

    /// The key protected hand-offs must be signed with (`--internal-request-auth-key`).
    pub(crate) fn auth_key(&self) -> Option<&str> {
        self.0.auth_key.as_deref()
    }

    /// Identity fields for a new response.
    pub(crate) fn header(&self, chat: bool) -> Header {
        let prefix = if chat { "chatcmpl-sim" } else { "cmpl-sim" };
        Header {
            id: format!("{prefix}-{}", self.next_id()),
            created: unix_now(),
            model: self.0.model.clone(),
            chat,
            decoded_per_iter: self.0.decoded_per_iter,
            index: 0,
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
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/version", get(version))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(completions::chat_completions));
    match state.dialect() {
        // Internal: generation sims fetch KV records here (see `handoff`); the other dialects
        // hand KV out on their side channel, as their engines do (see `side`).
        Dialect::Trtllm => router = router.route("/kv/{key}", get(fetch_record)),
        // What routers read of an SGLang worker (`/get_*` are its deprecated names).
        Dialect::Sglang => {
            router = router
                .route("/generate", post(completions::generate))
                .route("/health_generate", get(health_generate))
                .route("/server_info", get(server_info))
                .route("/get_server_info", get(server_info))
                .route("/model_info", get(model_info))
                .route("/get_model_info", get(model_info))
        }
        Dialect::Vllm => {}
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ready_gate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api_key_check,
        ))
        // Outermost, so a hung sim answers nothing at all, not even /health.
        .layer(axum::middleware::from_fn_with_state(state.clone(), hang))
        .with_state(state)
}

/// Serves [`app`] on an already bound listener (and the side channel [`SimState::new`] bound) on
/// the caller's runtime (`--threads 0`) until the process ends.
pub async fn serve(listener: TcpListener, state: SimState) -> Result<(), SimError> {
    serve_sharded(listener, state, 0, false).await
}

/// Serves [`app`] on `listener` from `threads` serving threads (0: on the caller's runtime)
/// until the process ends; with `realtime`, the threads run under SCHED_FIFO (`--realtime`).
/// Accepting runs on the caller's runtime. Fails if a thread cannot start (or cannot get the
/// real-time policy), if one dies, or if the listener fails for good.
pub async fn serve_sharded(
    listener: TcpListener,
    state: SimState,
    threads: usize,
    realtime: bool,
) -> Result<(), SimError> {
    let local = listener.local_addr().map_err(SimError::Serve)?;
    let shards = serving_threads(&state, local, threads, realtime)?;
    state.serve_side_channel()?;
    serve_until_killed(shards, listener).await
}

/// Starts the serving threads of a sim listening at `local` (`disagg-shards`), each with its
/// own event loop and token clock. On a multi-threaded Tokio runtime every token of every
/// stream could wake on either worker: the workers woke each other (a futex and a context
/// switch), stole each other's tasks, and shared one lock around the token clock. At 2500
/// streams that cost 0.66 of a core against 0.51 for a single thread, and made the order in
/// which due tokens left vary from round to round. On a thread of its own with a current-thread
/// runtime, a stream's tokens all wake on one thread, from that thread's own pacer
/// (`engine::pacer`), and no lock is contended on the way. Everything else (the engine, the KV
/// store, metrics, faults) is the one [`SimState`] all threads share.
pub(crate) fn serving_threads(
    state: &SimState,
    local: std::net::SocketAddr,
    threads: usize,
    realtime: bool,
) -> Result<disagg_shards::Shards, SimError> {
    state.set_port(local.port());
    let opts = disagg_shards::Options {
        name: "sim-shard",
        threads,
        scheduler: disagg_shards::Scheduler::CurrentThread,
        realtime,
    };
    let shards = disagg_shards::Shards::start(&opts, local, |i, connections, stop| {
        let serve = axum::serve(connections, app(state.clone())).with_graceful_shutdown(stop);
        async move {
            if let Err(e) = serve.await {
                say_err!("disagg-sim: serving thread sim-shard-{i} failed: {e}");
            }
        }
    })?;
    Ok(shards)
}

/// The sim serves until it is killed (or a scripted crash exits it): nothing asks it to stop.
pub(crate) async fn serve_until_killed(
    shards: disagg_shards::Shards,
    listener: TcpListener,
) -> Result<(), SimError> {
    Ok(shards
        .serve(listener, std::future::pending(), Duration::ZERO)
        .await?)
}

/// `--hang-after-requests`: once reached, requests are read and never answered; the
/// connection stays open, as with an engine stuck in a collective.
/// With `--api-key`, the API routes (`/v1/*`, `/generate`) answer 401 without `Authorization:
/// Bearer <key>`, as vLLM's and SGLang's API-key middleware do; /health, /metrics and the
/// info routes stay open.
async fn api_key_check(State(sim): State<SimState>, req: Request, next: Next) -> Response {
    if let Some(key) = &sim.0.api_key {
        let path = req.uri().path();
        let guarded = path.starts_with("/v1/") || path == "/generate";
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if guarded && given != Some(key.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "Unauthorized"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn hang(State(sim): State<SimState>, req: Request, next: Next) -> Response {
    if sim.faults().hung() {
        std::future::pending::<()>().await;
    }
    next.run(req).await
}

/// Before it is ready the sim serves only `/health` (503), `/version`, `/metrics` and its KV
/// records: a real engine is still loading then and takes no connection at all, so a router or
/// client that sends work before `/health` says 200 must fail here too, not pass.
async fn ready_gate(State(sim): State<SimState>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/health" | "/version" | "/metrics")
        || req.uri().path().starts_with("/kv/");
    match sim.not_ready() {
        Some(why) if !open => HttpError(ApiError::unavailable(format!(
            "{why}; a real engine takes no connection before it has loaded: wait for GET /health \
             to answer 200 before sending {}",
            req.uri().path()
        )))
        .into_response(),
        _ => next.run(req).await,
    }
}

async fn health(State(sim): State<SimState>) -> Response {
    match sim.not_ready() {
        None => StatusCode::OK.into_response(),
        Some(why) => HttpError(ApiError::unavailable(why)).into_response(),
    }
}

/// SGLang's `/health_generate`: the engine generates one token to answer, so an engine whose
/// generation stalls (`--stall-after-requests`) never answers it, while `/health` does.
async fn health_generate(State(sim): State<SimState>) -> Response {
    if sim.faults().completions_hang() {
        std::future::pending::<()>().await;
    }
    health(State(sim)).await
}

async fn metrics(State(sim): State<SimState>) -> Response {
    sim.kv_store().sweep_now();
    let mut r = sim.metrics().render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// `/v1/models`, with the fields vLLM's and SGLang's model cards carry beside OpenAI's: `root`
/// (the model path) and `max_model_len` (the context, when `--max-model-len` gives one; vLLM
/// adds `parent: null`). TensorRT-LLM's card has neither.
async fn models(State(sim): State<SimState>) -> Json<serde_json::Value> {
    let created = unix_now();
    let cards: Vec<_> = sim
        .0
        .served
        .iter()
        .map(|name| {
            let mut card = serde_json::json!({
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "disagg-sim",
            });
            if sim.dialect() != Dialect::Trtllm {
                card["root"] = serde_json::json!(sim.0.model_path);
                if let Some(n) = sim.lengths().max_model_len {
                    card["max_model_len"] = serde_json::json!(n);
                }
                if sim.dialect() == Dialect::Vllm {
                    card["parent"] = serde_json::Value::Null;
                }
            }
            card
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": cards}))
}

async fn version(State(sim): State<SimState>) -> Json<serde_json::Value> {
    if !sim.0.version_delay.is_zero() {
        tokio::time::sleep(sim.0.version_delay).await;
    }
    let mut v = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "engine": "disagg-sim",
        "dialect": sim.dialect().as_str(),
    });
    // The TensorRT-LLM version played: what a router reads to know the fields it takes.
    if sim.dialect() == Dialect::Trtllm {
        v["tensorrt_llm"] = serde_json::json!(sim.trtllm_version().as_str());
    }
    Json(v)
}

/// SGLang's `/model_info`: what a client reads to learn the served model.
async fn model_info(State(sim): State<SimState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "model_path": sim.0.model_path,
        "served_model_name": sim.0.model,
        "tokenizer_path": sim.0.model_path,
        "is_generation": true,
        "preferred_sampling_params": null,
        "weight_version": "default",
        "disaggregation_mode": disaggregation_mode(sim.role()),
        "has_image_understanding": false,
        "has_audio_understanding": false,
        "model_type": null,
        "architectures": null,
    }))
}

/// SGLang's `/server_info`: the server's settings (routers read the parallelism and the
/// bootstrap port here) plus per-rank internal state.
async fn server_info(State(sim): State<SimState>) -> Json<serde_json::Value> {
    let bootstrap = match (&sim.0.side, sim.role()) {
        (Some(s), _) if s.kind == side::Kind::SglangBootstrap => serde_json::json!(s.port),
        _ => serde_json::Value::Null,
    };
    Json(serde_json::json!({
        "model_path": sim.0.model_path,
        "served_model_name": sim.0.model,
        "host": sim.0.host,
        "port": sim.advertised().1,
        "tp_size": 1,
        "pp_size": 1,
        "dp_size": 1,
        "attn_dp_size": 1,
        "disaggregation_mode": disaggregation_mode(sim.role()),
        "disaggregation_bootstrap_port": bootstrap,
        "disaggregation_transfer_backend": "disagg-sim",
        "internal_states": [{"last_gen_throughput": 0.0}],
        "version": concat!("disagg-sim ", env!("CARGO_PKG_VERSION")),
    }))
}

fn disaggregation_mode(role: SimRole) -> &'static str {
    match role {
        SimRole::Context => "prefill",
        SimRole::Generation => "decode",
        SimRole::Both => "null",
    }
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

/// Where generation sims fetch KV from when `--advertise-host` is not given: the bound address,
/// or, for a wildcard bind (a sim other nodes must reach), this machine's hostname, which
/// resolves on the other nodes as it does for any server there.
pub(crate) fn default_advertise_host(bound: &str) -> String {
    let wildcard = bound
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !wildcard {
        return bound.to_string();
    }
    hostname()
}

/// This machine's hostname (`127.0.0.1` if it has none).
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

#[cfg(test)]
mod tests {
    use super::default_advertise_host;

    #[test]
    fn a_wildcard_bind_advertises_the_hostname_not_loopback() {
        let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
        assert_eq!(default_advertise_host("0.0.0.0"), host);
        assert_eq!(default_advertise_host("::"), host);
        assert_eq!(default_advertise_host("[::]"), host);
        assert_eq!(default_advertise_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(default_advertise_host("node-a"), "node-a");
    }
}
