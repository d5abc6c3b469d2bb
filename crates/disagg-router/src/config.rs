//! What the router serves: flags or a TensorRT-LLM `server_config.yaml`, resolved into one
//! [`RouterConfig`].

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use disagg_proto::trtllm::{RouterType, ServerConfig, ServerGroup};

use crate::error::RouterError;

/// Whole-request deadline when nothing else says otherwise. Well below what a CI job allows, well
/// above any sane single request; TensorRT-LLM's own 180 s is too tight for long OSL sweeps.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest request body accepted. Long token-id prompts are big JSON, so this is generous; it
/// exists so one bad client cannot make the router buffer without bound.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Request bodies being read or served at once, in bytes, across all connections, each counted
/// with the copy its leg request makes: past it a request gets 503 at once (before its body is
/// read, when it declares its length). Two of the largest bodies with their copies; bounds the
/// router's memory whatever clients send (see the README).
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 4 * DEFAULT_MAX_BODY_BYTES;

/// A client connection that has not sent a whole request head this long after it opened (or
/// after its previous request) is closed: slow or idle-forever connections cannot pile up.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Reading one request body may take this long; past it the request gets 408.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// A worker that does not accept a TCP connection in this long is down, whatever the request
/// deadline says; the request moves on to another worker.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Failed connections and 5xx answers are retried this many times, each on a worker not yet
/// tried, while no byte has reached the client.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// How often every worker's `/health` is probed. Fast enough that a dead worker stops getting
/// traffic within seconds; slow enough to be noise for the worker.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Consecutive failed probes (or failed connections) that eject a worker. Two, so a single lost
/// probe does not take a worker out of rotation.
pub const DEFAULT_EJECT_AFTER: NonZeroU32 = NonZeroU32::new(2).expect("2 is not zero");

/// How long a worker with requests in flight may go without finishing one or sending a byte of
/// one before new requests avoid it. Long enough for a context server to prefill a long prompt
/// behind a queue of others; short next to the minutes a hung engine holds requests.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Consecutive failed requests that eject a worker whatever its `/health` says: enough that a
/// few unlucky requests do not take a working worker out, few enough that one which answers
/// `/health` but hangs or fails every request stops getting them.
pub const DEFAULT_REQUEST_FAILURES: u32 = 5;

/// How long a worker ejected by failed requests stays out before a passing probe may readmit it.
pub const DEFAULT_EJECTION_COOLDOWN: Duration = Duration::from_secs(30);
/// How long requests in flight get to finish once shutdown is asked for (`--shutdown-grace`).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub use disagg_shards::{MAX_DEFAULT_THREADS, default_threads};

/// Where the router listens when neither `--config` nor `--host`/`--port` say otherwise
/// (the same port `trtllm-serve disaggregated` uses).
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;

pub use disagg_proto::{Dialect, Policy};

/// `disagg router` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// A TensorRT-LLM disaggregated `server_config.yaml` (hostname, port, context_servers, generation_servers).
    #[arg(long, conflicts_with_all = ["prefill", "decode"])]
    pub config: Option<PathBuf>,
    /// Wire dialect spoken to the workers.
    #[arg(long, value_enum, default_value_t = Dialect::Trtllm)]
    pub dialect: Dialect,
    /// A context (prefill) worker, as host:port or http://host:port. Repeat for more. For SGLang,
    /// append `@PORT` to give that worker's bootstrap port (`http://h:30000@8998`).
    #[arg(long, required_unless_present = "config")]
    pub prefill: Vec<String>,
    /// SGLang bootstrap port of every prefill worker that does not carry its own `@PORT`.
    /// Without either, `bootstrap_port` is sent as null.
    #[arg(long)]
    pub bootstrap_port: Option<u16>,
    /// A generation (decode) worker, as host:port or http://host:port. Repeat for more.
    #[arg(long, required_unless_present = "config")]
    pub decode: Vec<String>,
    /// Address to bind (overrides the config's hostname).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind (overrides the config's port); 0 picks a free one.
    #[arg(long)]
    pub port: Option<u16>,
    /// Where to write `host:port` once bound (atomically). Without it, it goes to stdout.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Deadline for a whole request, both legs included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once across all requests, each counted twice (the body
    /// and the leg request written from it); past it requests get 503. At least twice
    /// --max-body-bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_INFLIGHT_BODY_BYTES)]
    pub max_inflight_body_bytes: usize,
    /// A client connection that has not sent a whole request head this long after it opened
    /// (or since its previous request) is closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub header_timeout: Duration,
    /// Deadline for reading one request body; past it the request gets 408.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub body_timeout: Duration,
    /// Policy of the context (prefill) group (overrides the config's `router.type`).
    #[arg(long, value_enum)]
    pub prefill_policy: Option<Policy>,
    /// Policy of the generation (decode) group (overrides the config's `router.type`).
    #[arg(long, value_enum)]
    pub decode_policy: Option<Policy>,
    /// Deadline for opening a TCP connection to a worker; past it the worker counts as down.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
    /// Deadline for the whole context (prefill) leg. Unset: only the request deadline applies.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub context_timeout: Option<Duration>,
    /// Deadline from sending the generation (decode) request to its first body byte.
    /// Unset: only the request deadline applies.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub first_byte_timeout: Option<Duration>,
    /// Retries of failed connections and 5xx answers, each on another worker (a generation
    /// request carrying a KV hand-off is not sent again once its connection broke after it went
    /// out: the worker may have pulled the KV). Default: server_config.yaml's top-level
    /// `max_retries` (TensorRT-LLM's key), else 2.
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Interval between active `/health` probes of every worker.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub health_interval: Duration,
    /// Consecutive failures (probes or connections) that eject a worker until a probe passes.
    #[arg(long, default_value_t = DEFAULT_EJECT_AFTER)]
    pub eject_after: NonZeroU32,
    /// A worker with requests in flight that has finished none of them, nor sent a byte of any,
    /// for this long is stalled (its `/health` may still pass, as a hung engine's often does):
    /// new requests go to the group's other workers while one of them is not stalled, and
    /// return to it as soon as it progresses. It is not ejected for that, and a group with no
    /// other worker keeps using it; but a request that reaches its deadline on a worker that
    /// answered nothing for this long ejects it at once (--ejection-cooldown), where other
    /// failures count towards --request-failures. `/workers` shows it as `stalled`. 0s turns
    /// this off.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub stall_timeout: Duration,
    /// Consecutive requests that failed at a worker (a 5xx, a broken or unusable answer, a
    /// stream it cut under way, one of its deadlines; not a 4xx, which is the request's own
    /// fault) that eject it for --ejection-cooldown, whatever its `/health` answers: a worker
    /// whose `/health` passes while it hangs or fails its requests stops getting them. An
    /// answered request starts the count again (a streamed one once relayed whole, when its
    /// streams have been breaking). 0: never.
    #[arg(long, default_value_t = DEFAULT_REQUEST_FAILURES)]
    pub request_failures: u32,
    /// How long a worker ejected by --request-failures (or a hung request) stays out; then a
    /// passing `/health` probe readmits it, and one more failed request ejects it again, for one
    /// cooldown longer each time (up to 10 cooldowns) until it answers a request.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub ejection_cooldown: Duration,
    /// On SIGTERM or SIGINT the router stops accepting at once, then gives the requests in
    /// flight this long to finish; the answers still running then are cut (an aborted stream,
    /// never a clean end), and how many is logged. Set it to the longest answer a rollout may
    /// wait for, within what your supervisor allows before it kills the process.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub serving: disagg_shards::ServingThreads,
    /// TensorRT-LLM dialect: sign each generation request's protected hand-off fields with this
    /// key (`x-trtllm-disagg-auth`), as `trtllm-serve disaggregated` does with
    /// `internal_request_auth_key`; the workers must have the same key. Also read from
    /// server_config.yaml, and from the environment (so it stays out of the process list).
    #[arg(long, env = "DISAGG_INTERNAL_REQUEST_AUTH_KEY", hide_env_values = true)]
    pub internal_request_auth_key: Option<String>,
    /// TensorRT-LLM dialect: whether the context leg carries a fresh
    /// `disaggregated_params.disagg_request_id` (a new one per attempt). `auto` sends it to
    /// context workers whose `/version` is TensorRT-LLM 1.3 or newer, whose own disaggregated
    /// server sends it; older workers (1.0.x) reject the field with HTTP 400, so they get the
    /// request without it. A request to a worker whose `/version` has not answered yet waits
    /// for it (at most 1.5 s); a worker that does not answer in that time gets requests
    /// without the id until it does.
    #[arg(long, value_enum, default_value_t = DisaggRequestIds::Auto)]
    pub disagg_request_id: DisaggRequestIds,
}

/// Whether the TensorRT-LLM context leg carries a `disagg_request_id` (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DisaggRequestIds {
    /// To context workers that report TensorRT-LLM 1.3 or newer on `/version`.
    #[default]
    Auto,
    /// To every context worker (all must be TensorRT-LLM 1.3 or newer).
    Always,
    /// Never (older TensorRT-LLM workers, 1.0.x among them, reject the field).
    Never,
}

/// Everything the router needs to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    pub host: String,
    pub port: u16,
    pub dialect: Dialect,
    /// Base URLs of context workers, normalised to `http://host:port`.
    pub prefill: Vec<String>,
    /// Base URLs of generation workers, normalised to `http://host:port`.
    pub decode: Vec<String>,
    pub prefill_policy: Policy,
    pub decode_policy: Policy,
    pub request_timeout: Duration,
    /// Largest request body accepted ([`DEFAULT_MAX_BODY_BYTES`] unless set).
    pub max_body_bytes: usize,
    /// See [`DEFAULT_MAX_INFLIGHT_BODY_BYTES`].
    pub max_inflight_body_bytes: usize,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// SGLang bootstrap port of `prefill[i]` at index `i`; missing or `None` is sent as null.
    pub bootstrap_ports: Vec<Option<u16>>,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Deadline of the context leg; `None`: bounded by `request_timeout` only.
    pub context_timeout: Option<Duration>,
    /// Deadline from sending the generation request to its first body byte; `None`: bounded by
    /// `request_timeout` only.
    pub first_byte_timeout: Option<Duration>,
    /// See [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// See [`DEFAULT_HEALTH_INTERVAL`].
    pub health_interval: Duration,
    /// See [`DEFAULT_EJECT_AFTER`].
    pub eject_after: NonZeroU32,
    /// See [`DEFAULT_STALL_TIMEOUT`]; zero: off.
    pub stall_timeout: Duration,
    /// See [`DEFAULT_REQUEST_FAILURES`]; zero: off.
    pub request_failures: u32,
    /// See [`DEFAULT_EJECTION_COOLDOWN`].
    pub ejection_cooldown: Duration,
    /// See [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// Where each group's round robin (and the other policies' tie-breaks) starts: 0 for one
    /// router; replica `i` of several takes `i`, so that routers fed in turn by one client do
    /// not all send their `j`th request to the same worker at once.
    pub first_turn: usize,
    /// Serving threads (`--threads`: see [`disagg_shards::ServingThreads`]); 0: the runtime
    /// that calls `serve` serves. [`default_threads`] unless set.
    pub threads: usize,
    /// TensorRT-LLM's `internal_request_auth_key`: generation requests carrying protected
    /// hand-off fields are signed with it.
    pub internal_request_auth_key: Option<String>,
    /// TensorRT-LLM: which context requests carry a `disagg_request_id`.
    pub disagg_request_id: DisaggRequestIds,
}

impl RouterConfig {
    /// Reads TensorRT-LLM's `server_config.yaml` shape.
    /// Context URLs may carry an SGLang bootstrap port as `URL@PORT`, as on the command line.
    pub fn from_server_config(cfg: &ServerConfig) -> Self {
        let (prefill, ports): (Vec<String>, Vec<Option<u16>>) = cfg
            .context_servers
            .urls
            .iter()
            .map(|spec| match split_bootstrap_port(spec) {
                Ok((url, port)) => (normalise_url(url), port),
                // Out of range: kept whole, so the bad URL shows up in the first error.
                Err(_) => (normalise_url(spec), None),
            })
            .unzip();
        let mut out = Self::new(prefill, normalise_all(&cfg.generation_servers.urls));
        out.bootstrap_ports = ports;
        out.host = cfg.hostname.clone();
        out.port = cfg.port;
        out.prefill_policy = policy_for("context_servers", &cfg.context_servers);
        out.decode_policy = policy_for("generation_servers", &cfg.generation_servers);
        out.internal_request_auth_key = cfg.internal_request_auth_key.clone();
        // TensorRT-LLM's disaggregated server reads a top-level `max_retries` too.
        if let Some(n) = cfg.other.get("max_retries").and_then(|v| v.as_u64()) {
            out.max_retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        out
    }

    /// A TensorRT-LLM router over these (already normalised) workers, with every default.
    pub fn new(prefill: Vec<String>, decode: Vec<String>) -> Self {
        Self {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            dialect: Dialect::Trtllm,
            prefill,
            decode,
            prefill_policy: Policy::RoundRobin,
            decode_policy: Policy::RoundRobin,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            bootstrap_ports: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            context_timeout: None,
            first_byte_timeout: None,
            max_retries: DEFAULT_MAX_RETRIES,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            eject_after: DEFAULT_EJECT_AFTER,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            request_failures: DEFAULT_REQUEST_FAILURES,
            ejection_cooldown: DEFAULT_EJECTION_COOLDOWN,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            first_turn: 0,
            threads: default_threads(),
            internal_request_auth_key: None,
            disagg_request_id: DisaggRequestIds::Auto,
        }
    }

    /// The bootstrap port of prefill worker `i`, if known.
    pub fn bootstrap_port(&self, i: usize) -> Option<u16> {
        self.bootstrap_ports.get(i).copied().flatten()
    }

    /// Refuses what the router could start with but never serve: worker URLs other than
    /// `http://host:port`, bootstrap ports outside SGLang, and limits that contradict each
    /// other. Every request would otherwise fail with a 502 or 503 that hides the cause.
    pub fn validate(&self) -> Result<(), RouterError> {
        for (flag, urls) in [("prefill", &self.prefill), ("decode", &self.decode)] {
            if let Some((_, url)) = urls
                .iter()
                .enumerate()
                .find(|(i, u)| urls[..*i].contains(u))
            {
                return Err(RouterError::Limits(format!(
                    "--{flag} {url} is given twice: give each worker once (twice, it would get \
                     twice its share and count as two workers)"
                )));
            }
            for url in urls {
                check_worker_url(url).map_err(|why| RouterError::WorkerUrl {
                    flag,
                    url: url.clone(),
                    why,
                })?;
            }
        }
        if self.dialect != Dialect::Sglang {
            if let Some(i) = self.bootstrap_ports.iter().position(Option::is_some) {
                return Err(RouterError::BootstrapNotSglang {
                    dialect: self.dialect.as_str(),
                    url: self.prefill.get(i).cloned().unwrap_or_default(),
                });
            }
        }
        if self.health_interval < Duration::from_millis(10) {
            return Err(RouterError::Limits(format!(
                "--health-interval {:?} would probe every worker without pause; give at least \
                 10ms (5s by default)",
                self.health_interval
            )));
        }
        let copies = crate::app::COPIES;
        if self.max_inflight_body_bytes / copies < self.max_body_bytes {
            return Err(RouterError::Limits(format!(
                "--max-inflight-body-bytes ({}) is smaller than {copies} × --max-body-bytes ({}): the largest allowed request (counted with its leg's copy) could never be read",
                self.max_inflight_body_bytes, self.max_body_bytes
            )));
        }
        if self.max_body_bytes > u32::MAX as usize / copies {
            return Err(RouterError::Limits(format!(
                "--max-body-bytes ({}) is above 2 GiB",
                self.max_body_bytes
            )));
        }
        Ok(())
    }
}

/// `http://host:port` with an explicit port, and nothing else: no user info, path, query or
/// fragment, and no TLS (the router's client speaks plain HTTP to workers).
fn check_worker_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https is not supported: the router speaks plain HTTP to its workers".into(),
            );
        }
        other => return Err(format!("the scheme is `{other}`, not http")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "it carries user info (`...@`); a trailing `@PORT` is an SGLang bootstrap port, which must be digits in 0..=65535"
                .into(),
        );
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    // `Url` drops a port equal to the scheme's default, so look at what was written.
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split('/').next().unwrap_or(rest));
    let explicit_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':')
    });
    if !explicit_port || parsed.port_or_known_default().is_none() {
        return Err("it has no port (write host:port)".into());
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(format!(
            "it has a path (`{}`); give the server's base URL",
            parsed.path()
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("it has a query or fragment".into());
    }
    Ok(())
}

impl RouterArgs {
    pub fn into_config(self) -> Result<RouterConfig, RouterError> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| RouterError::Read {
                    path: path.clone(),
                    source,
                })?;
                let server =
                    ServerConfig::from_yaml(&text).map_err(|source| RouterError::Config {
                        path: path.clone(),
                        source,
                    })?;
                if let Some(v) = server
                    .other
                    .get("max_retries")
                    .filter(|v| v.as_u64().is_none())
                    .and(server.other_text("max_retries"))
                {
                    return Err(RouterError::Limits(format!(
                        "{}: key max_retries: {} is not a number of retries\nhint: give 0 or \
                         more (trtllm-serve disaggregated refuses it too), or leave it out for {}",
                        path.display(),
                        v,
                        DEFAULT_MAX_RETRIES
                    )));
                }
                for warning in features_not_served(&server) {
                    tracing::warn!("{}: {warning}", path.display());
                }
                RouterConfig::from_server_config(&server)
            }
            None => {
                // clap enforces these for the command line; this guards programmatic callers.
                if self.prefill.is_empty() {
                    return Err(RouterError::NoWorkers { flag: "prefill" });
                }
                if self.decode.is_empty() {
                    return Err(RouterError::NoWorkers { flag: "decode" });
                }
                let mut urls = Vec::with_capacity(self.prefill.len());
                let mut ports = Vec::with_capacity(self.prefill.len());
                for spec in &self.prefill {
                    let (url, port) = split_bootstrap_port(spec)?;
                    urls.push(normalise_url(url));
                    ports.push(port.or(self.bootstrap_port));
                }
                let mut cfg = RouterConfig::new(urls, normalise_all(&self.decode));
                cfg.bootstrap_ports = ports;
                cfg
            }
        };
        if let Some(host) = self.host {
            cfg.host = host;
        }
        if let Some(port) = self.port {
            cfg.port = port;
        }
        // `--bootstrap-port` fills in every prefill worker that did not name its own.
        cfg.bootstrap_ports.resize(cfg.prefill.len(), None);
        for port in &mut cfg.bootstrap_ports {
            *port = port.or(self.bootstrap_port);
        }
        if let Some(p) = self.prefill_policy {
            cfg.prefill_policy = p;
        }
        if let Some(p) = self.decode_policy {
            cfg.decode_policy = p;
        }
        cfg.dialect = self.dialect;
        cfg.request_timeout = self.request_timeout;
        cfg.max_body_bytes = self.max_body_bytes;
        cfg.max_inflight_body_bytes = self.max_inflight_body_bytes;
        cfg.header_timeout = self.header_timeout;
        cfg.body_timeout = self.body_timeout;
        cfg.connect_timeout = self.connect_timeout;
        cfg.context_timeout = self.context_timeout;
        cfg.first_byte_timeout = self.first_byte_timeout;
        if let Some(n) = self.max_retries {
            cfg.max_retries = n;
        }
        cfg.health_interval = self.health_interval;
        cfg.eject_after = self.eject_after;
        cfg.stall_timeout = self.stall_timeout;
        cfg.request_failures = self.request_failures;
        cfg.ejection_cooldown = self.ejection_cooldown;
        cfg.shutdown_grace = self.shutdown_grace;
        if let Some(n) = self.serving.threads {
            cfg.threads = n;
        }
        if let Some(key) = self.internal_request_auth_key {
            cfg.internal_request_auth_key = Some(key);
        }
        cfg.disagg_request_id = self.disagg_request_id;
        match &self.config {
            Some(path) => cfg.validate().map_err(|e| e.in_file(path))?,
            None => cfg.validate()?,
        }
        Ok(cfg)
    }
}

/// TensorRT-LLM's router types mapped onto ours. `kv_cache_aware` needs the workers' KV events,
/// which we do not consume; prefix affinity is the closest thing that needs none.
fn policy_for(group: &str, g: &ServerGroup) -> Policy {
    if let Some(warning) = ignored_router_keys(group, g) {
        tracing::warn!("{warning}");
    }
    match g.router.kind {
        RouterType::RoundRobin => Policy::RoundRobin,
        RouterType::LoadBalancing if g.router.use_tokens == Some(true) => Policy::LeastTokens,
        RouterType::LoadBalancing => Policy::LeastRequests,
        RouterType::KvCacheAware => {
            tracing::info!("{group}.router.type kv_cache_aware: using prefix_affinity for {group}");
            Policy::PrefixAffinity
        }
    }
}

/// What `server_config.yaml` asks of `trtllm-serve disaggregated` that this router does not do,
/// one warning each: the run would otherwise measure another system than the file describes,
/// without a word.
fn features_not_served(cfg: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    let get = |k: &str| cfg.other.get(k);
    if let Some(v) = get("schedule_style") {
        let context_first = v
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("context_first"))
            || v.as_u64() == Some(0);
        if !context_first {
            out.push(format!(
                "schedule_style {}: this router schedules context first, always",
                cfg.other_text("schedule_style").unwrap_or_default()
            ));
        }
    }
    if get("conditional_disagg_config").is_some() {
        out.push(
            "conditional_disagg_config: this router sends every request through a context \
             server (no conditional disaggregation)"
                .into(),
        );
    }
    if get("perf_metrics_max_requests").is_some_and(|v| v.as_u64().unwrap_or(0) > 0) {
        out.push(
            "perf_metrics_max_requests: this router serves no /perf_metrics (its /metrics has \
             its own counters)"
                .into(),
        );
    }
    out
}

/// The warning for a group's `router:` keys this router does not read, if it has any: a
/// misspelt `use_tokens` would otherwise route by requests without a word.
fn ignored_router_keys(group: &str, g: &ServerGroup) -> Option<String> {
    if g.router.other.is_empty() {
        return None;
    }
    let keys: Vec<&str> = g.router.other.keys().map(String::as_str).collect();
    Some(format!(
        "{group}.router: {} not read by disagg router, which reads `type` and `use_tokens` \
         (load_balancing); ignored, as TensorRT-LLM's routers ignore arguments they do not \
         take: check the spelling if you meant one of those",
        keys.join(", ")
    ))
}

/// `URL@PORT` → (`URL`, `Some(PORT)`). Only a trailing all-digit part after the last `@` counts,
/// so a `user@host` URL is left alone.
fn split_bootstrap_port(spec: &str) -> Result<(&str, Option<u16>), RouterError> {
    match spec.rsplit_once('@') {
        Some((url, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            let port = port.parse().map_err(|_| RouterError::BootstrapPort {
                spec: spec.to_string(),
            })?;
            Ok((url, Some(port)))
        }
        _ => Ok((spec, None)),
    }
}

fn normalise_all(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| normalise_url(u)).collect()
}

/// `host:port`, `http://host:port` and `http://host:port/` all mean the same worker; one spelling
/// keeps URL joins and log lines uniform.
pub fn normalise_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        for (given, want) in [
            ("node-b:34567", "http://node-b:34567"),
            ("http://node-b:34567", "http://node-b:34567"),
            ("http://node-b:34567/", "http://node-b:34567"),
            (" 10.0.0.1:80 ", "http://10.0.0.1:80"),
        ] {
            assert_eq!(normalise_url(given), want, "{given}");
        }
    }
}

#[cfg(test)]
mod args_tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RouterArgs,
    }

    fn args(argv: &[&str]) -> Result<RouterArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("router").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_give_a_config() {
        let cfg = args(&[
            "--prefill",
            "a:1",
            "--prefill",
            "http://b:2/",
            "--decode",
            "c:3",
            "--port",
            "0",
            "--request-timeout",
            "2s",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.prefill, ["http://a:1", "http://b:2"]);
        assert_eq!(cfg.decode, ["http://c:3"]);
        assert_eq!((cfg.host.as_str(), cfg.port), (DEFAULT_HOST, 0));
        assert_eq!(cfg.request_timeout, Duration::from_secs(2));
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(cfg.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(cfg.context_timeout, None);
        assert_eq!(cfg.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(cfg.disagg_request_id, DisaggRequestIds::Auto);
        for (flag, want) in [
            ("always", DisaggRequestIds::Always),
            ("never", DisaggRequestIds::Never),
        ] {
            let cfg = args(&[
                "--prefill",
                "a:1",
                "--decode",
                "c:3",
                "--disagg-request-id",
                flag,
            ])
            .unwrap()
            .into_config()
            .unwrap();
            assert_eq!(cfg.disagg_request_id, want);
        }
    }

    #[test]
    fn sglang_prefill_urls_carry_bootstrap_ports() {
        let cfg = args(&[
            "--dialect",
            "sglang",
            "--prefill",
            "http://a:1@8998",
            "--prefill",
            "b:2",
            "--bootstrap-port",
            "9000",
            "--decode",
            "c:3",
            "--prefill-policy",
            "prefix-affinity",
            "--decode-policy",
            "least-tokens",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.dialect, Dialect::Sglang);
        assert_eq!(cfg.prefill, ["http://a:1", "http://b:2"]);
        assert_eq!(cfg.bootstrap_ports, [Some(8998), Some(9000)]);
        assert_eq!(cfg.prefill_policy, Policy::PrefixAffinity);
        assert_eq!(cfg.decode_policy, Policy::LeastTokens);
        // The snake_case spelling of the case, server_config.yaml and the startup line too.
        for (flag, want) in Policy::ALL.map(|p| (serde_json::to_value(p).unwrap(), p)) {
            let flag = flag.as_str().unwrap().to_string();
            let cfg = args(&[
                "--prefill",
                "a:1",
                "--decode",
                "c:3",
                "--prefill-policy",
                &flag,
            ])
            .unwrap_or_else(|e| panic!("{flag}: {e}"))
            .into_config()
            .unwrap();
            assert_eq!(cfg.prefill_policy, want, "{flag}");
        }

        let err = args(&["--prefill", "a:1@99999", "--decode", "c:3"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(matches!(err, RouterError::BootstrapPort { .. }), "{err}");
        let err = args(&["--prefill", "http://u@a:1", "--decode", "c:3"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--prefill http://u@a:1: it carries user info"),
            "{err}"
        );
    }

    #[test]
    fn worker_urls_it_cannot_use_stop_it_at_start() {
        for (dialect, prefill, decode, says) in [
            (
                "sglang",
                "http://h:1@8998x",
                "c:3",
                "--prefill http://h:1@8998x: it carries user info",
            ),
            (
                "trtllm",
                "ftp://x:1",
                "c:3",
                "--prefill ftp://x:1: the scheme is `ftp`, not http",
            ),
            ("trtllm", "a:1", "::::", "--decode http://::::: not a URL"),
            (
                "trtllm",
                "a:1",
                "http://c",
                "--decode http://c: it has no port",
            ),
            (
                "trtllm",
                "a:1",
                "https://c:443",
                "--decode https://c:443: https is not supported",
            ),
            (
                "trtllm",
                "a:1",
                "http://c:3/v1",
                "--decode http://c:3/v1: it has a path (`/v1`)",
            ),
            (
                "trtllm",
                "a:1@8998",
                "c:3",
                "--prefill http://a:1 has a bootstrap port (`@PORT`), but the trtllm dialect has none",
            ),
            ("vllm", "a:1@8998", "c:3", "but the vllm dialect has none"),
        ] {
            let err = args(&[
                "--dialect",
                dialect,
                "--prefill",
                prefill,
                "--decode",
                decode,
            ])
            .unwrap()
            .into_config()
            .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(says), "{prefill} {decode}: {text}");
            assert!(text.contains("\nhint: "), "{text}");
        }
        // What is fine stays fine: IPv6, names, default-looking ports written out.
        let cfg = args(&[
            "--prefill",
            "[::1]:80",
            "--decode",
            "http://node-7.cluster:8000/",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.prefill, ["http://[::1]:80"]);
        let err = args(&[
            "--prefill",
            "a:1",
            "--decode",
            "c:3",
            "--max-inflight-body-bytes",
            "10",
        ])
        .unwrap()
        .into_config()
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("smaller than 2 × --max-body-bytes"),
            "{err}"
        );
    }

    #[test]
    fn threads_default_to_one_per_cpu() {
        let cfg = args(&["--prefill", "a:1", "--decode", "c:3"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(cfg.threads, default_threads());
        assert!((1..=MAX_DEFAULT_THREADS).contains(&cfg.threads));
        let cfg = args(&["--prefill", "a:1", "--decode", "c:3", "--threads", "0"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(cfg.threads, 0);
    }

    /// A worker given twice (`a:1` and `http://a:1` are one) and a probe interval of nothing are
    /// refused at start, each naming its flag.
    #[test]
    fn a_worker_given_twice_and_a_zero_health_interval_are_refused() {
        let e = args(&[
            "--prefill",
            "a:1",
            "--decode",
            "c:3",
            "--decode",
            "http://c:3",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--decode http://c:3 is given twice"), "{e}");
        let e = args(&[
            "--prefill",
            "a:1",
            "--decode",
            "c:3",
            "--health-interval",
            "0s",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--health-interval 0ns"), "{e}");
    }

    #[test]
    fn workers_are_required_without_config() {
        assert!(args(&["--prefill", "a:1"]).is_err());
        assert!(args(&["--config", "x.yaml", "--prefill", "a:1"]).is_err());
    }

    /// A worker URL the router cannot use, from server_config.yaml: the error names the file
    /// and its key, not a flag the user never typed.
    #[test]
    fn a_bad_url_in_the_config_file_is_said_with_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server_config.yaml");
        std::fs::write(
            &path,
            "context_servers: {urls: [\"https://127.0.0.1:1\"]}\n\
             generation_servers: {urls: [\"127.0.0.1:2\"]}\n",
        )
        .unwrap();
        let e = args(&["--config", path.to_str().unwrap()])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "{}: key context_servers.urls: https://127.0.0.1:1: https is not supported",
                path.display()
            )) && !e.contains("--prefill"),
            "{e}"
        );
    }

    /// server_config.yaml's top-level `max_retries` (TensorRT-LLM's key) is the default; the
    /// flag wins.
    #[test]
    fn max_retries_comes_from_the_file_unless_the_flag_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server_config.yaml");
        std::fs::write(
            &path,
            "max_retries: 7\ncontext_servers: {urls: [\"127.0.0.1:1\"]}\n\
             generation_servers: {urls: [\"127.0.0.1:2\"]}\n",
        )
        .unwrap();
        let cfg = |extra: &[&str]| {
            let mut argv = vec!["--config", path.to_str().unwrap()];
            argv.extend_from_slice(extra);
            args(&argv).unwrap().into_config().unwrap().max_retries
        };
        assert_eq!(cfg(&[]), 7);
        assert_eq!(cfg(&["--max-retries", "1"]), 1);
    }

    /// TensorRT-LLM takes one instance when a group leaves `num_instances` out.
    /// A router type in any case is TensorRT-LLM's (it lowers the name); keys the router does
    /// not read are said, by group and name.
    #[test]
    fn router_types_in_any_case_and_keys_not_read_are_said() {
        let text = "context_servers: {urls: [\"a:1\"], router: {type: Load_Balancing, use_token: true}}\n\
                    generation_servers: {urls: [\"b:1\"], router: {type: ROUND_ROBIN}}\n";
        let cfg = ServerConfig::from_yaml(text).unwrap();
        assert_eq!(
            policy_for("context_servers", &cfg.context_servers),
            Policy::LeastRequests
        );
        let w = ignored_router_keys("context_servers", &cfg.context_servers).unwrap();
        assert!(
            w.starts_with("context_servers.router: use_token not read by disagg router"),
            "{w}"
        );
        assert_eq!(
            ignored_router_keys("generation_servers", &cfg.generation_servers),
            None
        );
        let e = ServerConfig::from_yaml(&text.replace("ROUND_ROBIN", "random"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported router type `random`"), "{e}");
    }

    /// A negative `max_retries` is refused with the file and key (it was read as the default);
    /// what the file asks of trtllm-serve disaggregated that this router does not do is said.
    #[test]
    fn bad_retries_are_refused_and_features_not_served_are_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server_config.yaml");
        let groups = "context_servers: {urls: [\"a:1\"]}\ngeneration_servers: {urls: [\"b:1\"]}\n";
        std::fs::write(&path, format!("max_retries: -1\n{groups}")).unwrap();
        let e = args(&["--config", path.to_str().unwrap()])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("key max_retries: -1 is not a number"), "{e}");
        let cfg = ServerConfig::from_yaml(&format!(
            "schedule_style: generation_first\nconditional_disagg_config: {{max_local_prefill_length: 100}}\n\
             perf_metrics_max_requests: 1000\n{groups}"
        ))
        .unwrap();
        let w = features_not_served(&cfg);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("schedule_style generation_first"), "{w:?}");
        let plain =
            ServerConfig::from_yaml(&format!("schedule_style: context_first\n{groups}")).unwrap();
        assert!(features_not_served(&plain).is_empty());
    }

    #[test]
    fn a_group_without_num_instances_is_one_instance() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let path = dir_tmp.path().join("server_config.yaml");
        std::fs::write(
            &path,
            "port: 0\ncontext_servers: {urls: [\"127.0.0.1:1\"]}\n\
             generation_servers: {urls: [\"127.0.0.1:2\"]}\n",
        )
        .unwrap();
        let cfg = args(&["--config", path.to_str().unwrap()])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(cfg.prefill.len(), 1);
        assert_eq!(cfg.decode.len(), 1);
    }

    #[test]
    fn config_file_with_host_override() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let path = dir.join("server_config.yaml");
        std::fs::write(
            &path,
            "hostname: node-a\nport: 8000\ncontext_servers: {num_instances: 1, urls: [b:1]}\n\
             generation_servers: {num_instances: 1, urls: [c:2]}\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let cfg = args(&["--config", p, "--host", "0.0.0.0"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port), ("0.0.0.0", 8000));
        assert_eq!(cfg.prefill, ["http://b:1"]);

        std::fs::write(
            &path,
            "port: 1\ncontext_servers: {num_instances: 2, urls: [\"b:1@8998\", c:2]}\n\
             generation_servers: {num_instances: 1, urls: [d:3]}\n",
        )
        .unwrap();
        let cfg = args(&[
            "--config",
            p,
            "--dialect",
            "sglang",
            "--bootstrap-port",
            "9",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.prefill, ["http://b:1", "http://c:2"]);
        assert_eq!(cfg.bootstrap_ports, [Some(8998), Some(9)]);
        assert_eq!(cfg.dialect, Dialect::Sglang);

        std::fs::write(&path, "port: 1\n").unwrap();
        let err = args(&["--config", p]).unwrap().into_config().unwrap_err();
        assert!(matches!(err, RouterError::Config { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = args(&["--config", p]).unwrap().into_config().unwrap_err();
        assert!(matches!(err, RouterError::Read { .. }), "{err}");
    }
}
