//! The router's two kinds of failure: [`RouterError`] (it cannot run at all) and [`ProxyError`]
//! (one request failed). Every request failure becomes an HTTP response here, and only here.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use disagg_proto::ApiError;

/// Why the router could not run.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        source: disagg_proto::trtllm::ServerConfigError,
    },
    #[error("no --{flag} worker given\nhint: pass --{flag} host:port at least once, or --config")]
    NoWorkers { flag: &'static str },
    #[error("bad bootstrap port in --prefill {spec}\nhint: write URL@PORT with PORT in 0..=65535")]
    BootstrapPort { spec: String },
    #[error(
        "--{flag} {url}: {why}\nhint: give each worker as host:port or http://host:port (SGLang prefill: http://host:port@BOOTSTRAP_PORT with --dialect sglang)"
    )]
    WorkerUrl {
        flag: &'static str,
        url: String,
        why: String,
    },
    #[error(
        "--prefill {url} has a bootstrap port (`@PORT`), but the {dialect} dialect has none\nhint: bootstrap ports are SGLang's; drop `@PORT` and --bootstrap-port, or use --dialect sglang"
    )]
    BootstrapNotSglang { dialect: &'static str, url: String },
    #[error("{0}")]
    Limits(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Threads(#[from] disagg_shards::Error),
}

impl RouterError {
    /// A worker's URL refused as it came from `path` (`server_config.yaml`), not from a flag:
    /// said with the file and its key, which is what the user wrote.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        let group = |flag: &str| {
            if flag == "prefill" {
                "context_servers"
            } else {
                "generation_servers"
            }
        };
        match self {
            RouterError::WorkerUrl { flag, url, why } => RouterError::Limits(format!(
                "{}: key {}.urls: {url}: {why}\nhint: write each server as host:port (an SGLang \
                 prefill as host:port@BOOTSTRAP_PORT, with --dialect sglang)",
                path.display(),
                group(flag)
            )),
            RouterError::BootstrapNotSglang { dialect, url } => RouterError::Limits(format!(
                "{}: key context_servers.urls: {url} carries a bootstrap port (`@PORT`), but the \
                 {dialect} dialect has none\nhint: bootstrap ports are SGLang's: drop `@PORT` from \
                 the file (and --bootstrap-port), or use --dialect sglang",
                path.display()
            )),
            other => other,
        }
    }

    /// A mistake in the flags or the config file (exit 2), not a failure while serving.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RouterError::Read { .. }
                | RouterError::Config { .. }
                | RouterError::NoWorkers { .. }
                | RouterError::BootstrapPort { .. }
                | RouterError::WorkerUrl { .. }
                | RouterError::BootstrapNotSglang { .. }
                | RouterError::Limits(_)
        )
    }
}

/// Which half of a disaggregated request a worker was doing; every upstream error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    Context,
    Generation,
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leg::Context => "context",
            Leg::Generation => "generation",
        })
    }
}

/// Which configured deadline passed; a 504 names it, so the operator knows which flag to turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    Connect,
    Context,
    FirstByte,
    Request,
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deadline::Connect => "connect",
            Deadline::Context => "context-leg",
            Deadline::FirstByte => "first-byte",
            Deadline::Request => "request",
        })
    }
}

/// Why one request failed. Upstream variants carry the worker and the leg, so a 502 in a bench
/// log says which process to look at.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    /// The client closed its connection before its request body was whole: nobody is left to
    /// answer, and the request is counted as a client gone, not as a bad request.
    #[error("the client went away before its request body was complete: {0}")]
    ClientGone(String),
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    /// The request bodies held at once would pass `--max-inflight-body-bytes`.
    #[error(
        "the router is busy: request bodies in flight would pass its {limit}-byte limit (--max-inflight-body-bytes); retry shortly"
    )]
    Busy { limit: usize },
    #[error("the request body was not received within {after:?} (--body-timeout)")]
    BodyTimeout { after: Duration },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// SGLang's native `/generate` sent to a router speaking another dialect, whose workers
    /// have no such route (vLLM's and TensorRT-LLM's routers do not serve it either).
    #[error(
        "no route for POST /generate in the {dialect} dialect: /generate is SGLang's native API, served only with --dialect sglang; send /v1/completions or /v1/chat/completions"
    )]
    NativeOnly { dialect: &'static str },
    /// The router itself could not open a socket (out of file descriptors or kernel memory): no
    /// word on the worker, which is neither blamed nor ejected for it.
    #[error(
        "the router could not open a connection to {leg} worker {worker}: {detail}; the router is out of file descriptors or socket memory (raise its `ulimit -n`, or lower the load); the worker is not blamed"
    )]
    RouterExhausted {
        leg: Leg,
        worker: String,
        detail: String,
    },
    /// No connection could be opened: the worker is down (counts toward ejecting it).
    #[error("{leg} worker {worker} refused the connection: {detail}")]
    Connect {
        leg: Leg,
        worker: String,
        detail: String,
    },
    /// Sending or reading failed on an open connection.
    #[error("{leg} worker {worker} failed: {detail}")]
    Transport {
        leg: Leg,
        worker: String,
        detail: String,
    },
    /// A deadline passed while this worker had the request.
    #[error("{leg} worker {worker} did not answer within the {deadline} deadline ({after:?})")]
    Timeout {
        leg: Leg,
        worker: String,
        deadline: Deadline,
        after: Duration,
    },
    /// The worker answered 5xx: it is broken for now, another one may do.
    #[error("{leg} worker {worker} failed with HTTP {status}: {message}")]
    ServerError {
        leg: Leg,
        worker: String,
        status: StatusCode,
        message: String,
    },
    /// The worker answered, but not with something the router can use.
    #[error("{leg} worker {worker} sent an unusable response: {reason}")]
    BadResponse {
        leg: Leg,
        worker: String,
        reason: String,
    },
    /// The worker refused the request itself (4xx); that is the client's problem, so its status
    /// is passed on.
    #[error("{leg} worker {worker} rejected the request: {message}")]
    Rejected {
        leg: Leg,
        worker: String,
        status: StatusCode,
        message: String,
    },
    /// No worker of a group in rotation: each is out after failed probes or connections, or
    /// for failed requests (`GET /workers` says which, and its last error).
    #[error(
        "no healthy {leg} worker ({healthy} of {total} in rotation: out after failed /health \
         probes, refused connections or failed requests; GET /workers says why each is out)"
    )]
    Unhealthy {
        leg: Leg,
        healthy: usize,
        total: usize,
    },
    /// A worker did not answer its own `/health_generate` with 200 (the router's
    /// `/health_generate`, SGLang dialect).
    #[error("{leg} worker {worker}: {why}")]
    GenerateUnhealthy {
        leg: Leg,
        worker: String,
        why: String,
    },
}

impl ProxyError {
    /// Worth trying another worker for, as long as no byte has reached the client: the worker
    /// could not be reached or is broken. Timeouts of a connected worker and 4xx are not: the
    /// next worker would most likely do the same, and time has already been spent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::Transport { .. }
                | ProxyError::ServerError { .. }
                | ProxyError::Timeout {
                    deadline: Deadline::Connect,
                    ..
                }
        )
    }

    /// Worth sending a generation request that carries a KV hand-off to another worker: the
    /// first never got it (no connection), or answered 5xx, leaving the hand-off to be fetched.
    /// A connection that broke after the request went out is not: the worker may have pulled
    /// the context's KV before it died, which the context worker then frees (TensorRT-LLM
    /// refuses a second fetch; vLLM's blocks may be reused), so the honest answer is a 502
    /// naming it.
    pub fn may_resend_handoff(&self) -> bool {
        self.is_unreachable() || matches!(self, ProxyError::ServerError { .. })
    }

    /// The worker could not be reached at all, which is evidence that it is down.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::Timeout {
                    deadline: Deadline::Connect,
                    ..
                }
        )
    }

    fn to_api(&self) -> ApiError {
        let msg = self.to_string();
        match self {
            ProxyError::BadRequest(_) | ProxyError::ClientGone(_) => ApiError::bad_request(msg),
            ProxyError::BodyTooLarge { .. } => ApiError::new(413, "invalid_request_error", msg),
            ProxyError::Busy { .. } | ProxyError::RouterExhausted { .. } => {
                ApiError::unavailable(msg)
            }
            ProxyError::BodyTimeout { .. } => ApiError::new(408, "invalid_request_error", msg),
            ProxyError::NotFound { .. } | ProxyError::NativeOnly { .. } => ApiError::not_found(msg),
            ProxyError::MethodNotAllowed { .. } => ApiError::new(405, "invalid_request_error", msg),
            ProxyError::Connect { .. }
            | ProxyError::Transport { .. }
            | ProxyError::ServerError { .. }
            | ProxyError::BadResponse { .. } => ApiError::bad_gateway(msg),
            ProxyError::Timeout { .. } => ApiError::gateway_timeout(msg),
            ProxyError::Rejected { status, .. } => {
                ApiError::new(status.as_u16(), "invalid_request_error", msg)
            }
            ProxyError::Unhealthy { .. } | ProxyError::GenerateUnhealthy { .. } => {
                ApiError::unavailable(msg)
            }
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let api = self.to_api();
        let status = StatusCode::from_u16(api.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Server-side failures are what an operator hunts for; client mistakes are just noise.
        if status.is_server_error()
            && !matches!(
                self,
                ProxyError::Unhealthy { .. } | ProxyError::GenerateUnhealthy { .. }
            )
        {
            tracing::warn!(status = status.as_u16(), "{self}");
        } else {
            tracing::debug!(status = status.as_u16(), "{self}");
        }
        (status, axum::Json(api.body())).into_response()
    }
}

/// HTTP clients hide the useful part (refused, reset, ...) in the source chain.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}
