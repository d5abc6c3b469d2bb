//! Talking to workers: one pooled HTTP client, and the mapping of its failures to
//! [`ProxyError`]s that name the worker and the leg.

use std::time::Duration;

use bytes::Bytes;
use disagg_proto::ApiError;
use tokio::time::Instant;

use crate::error::{Leg, ProxyError, RouterError, error_chain};

/// A worker that does not accept a TCP connection in this long is down, whatever the request
/// deadline says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a worker's error body is quoted back to the client.
const ERROR_BODY_QUOTE: usize = 2048;

/// Builds the one client every request shares. Pooled keep-alive connections avoid
/// TensorRT-LLM's connection-per-request cost; `tcp_nodelay` keeps small SSE frames from waiting
/// on Nagle.
pub(crate) fn client() -> Result<reqwest::Client, RouterError> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        // Workers sit on the cluster network; an inherited HTTP(S)_PROXY must not capture them.
        .no_proxy()
        .build()
        .map_err(RouterError::Client)
}

/// POSTs a JSON body to `worker` + `path`, giving it what is left of `deadline` (body reading
/// included). Any non-2xx answer becomes an error here.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    leg: Leg,
    worker: &str,
    path: &str,
    body: Vec<u8>,
    deadline: Instant,
) -> Result<reqwest::Response, ProxyError> {
    let request = client
        .post(format!("{worker}{path}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    send(request, leg, worker, deadline).await
}

/// GETs `worker` + `path` under `deadline`; non-2xx answers become errors.
pub(crate) async fn get(
    client: &reqwest::Client,
    leg: Leg,
    worker: &str,
    path: &str,
    deadline: Instant,
) -> Result<reqwest::Response, ProxyError> {
    send(client.get(format!("{worker}{path}")), leg, worker, deadline).await
}

async fn send(
    request: reqwest::RequestBuilder,
    leg: Leg,
    worker: &str,
    deadline: Instant,
) -> Result<reqwest::Response, ProxyError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(ProxyError::Timeout {
            leg,
            worker: worker.to_string(),
        });
    }
    let resp = request
        .timeout(remaining)
        .send()
        .await
        .map_err(|e| classify(leg, worker, &e, deadline))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(leg, worker, resp, deadline).await)
}

/// Reads a whole (small, non-streamed) response body.
pub(crate) async fn read_body(
    leg: Leg,
    worker: &str,
    resp: reqwest::Response,
    deadline: Instant,
) -> Result<Bytes, ProxyError> {
    resp.bytes()
        .await
        .map_err(|e| classify(leg, worker, &e, deadline))
}

/// 4xx is the request's fault and keeps its status; anything else means the worker is broken.
async fn status_error(
    leg: Leg,
    worker: &str,
    resp: reqwest::Response,
    deadline: Instant,
) -> ProxyError {
    let status = resp.status();
    let body = read_body(leg, worker, resp, deadline)
        .await
        .unwrap_or_default();
    let message = match ApiError::from_body(status.as_u16(), &body) {
        Some(api) if !api.message.is_empty() => api.message,
        _ => quote(&body),
    };
    let worker = worker.to_string();
    if status.is_client_error() {
        ProxyError::Rejected {
            leg,
            worker,
            status,
            message,
        }
    } else {
        ProxyError::BadResponse {
            leg,
            worker,
            reason: format!("HTTP {status}: {message}"),
        }
    }
}

pub(crate) fn classify(
    leg: Leg,
    worker: &str,
    err: &reqwest::Error,
    deadline: Instant,
) -> ProxyError {
    let worker = worker.to_string();
    // A connect timeout with deadline to spare is a dead worker, not a slow request.
    if err.is_timeout() && (!err.is_connect() || Instant::now() >= deadline) {
        ProxyError::Timeout { leg, worker }
    } else {
        ProxyError::Transport {
            leg,
            worker,
            detail: error_chain(err),
        }
    }
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_QUOTE)]);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text.to_string()
    }
}
