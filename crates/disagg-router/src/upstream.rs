//! Talking to workers: one pooled HTTP client, and the mapping of its failures to
//! [`ProxyError`]s that name the worker and the leg.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderValue;
use tokio::time::Instant;

use crate::config::RouterConfig;
use crate::error::{Deadline, Leg, ProxyError, RouterError, error_chain};
use crate::raw::Pieces;

/// The header that ties vLLM's two legs together.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Builds the one client every request shares. Pooled keep-alive connections avoid
/// TensorRT-LLM's connection-per-request cost; `tcp_nodelay` keeps small requests and SSE frames
/// from waiting on Nagle plus delayed ACK (a 40 ms stall on reused connections).
pub(crate) fn client(cfg: &RouterConfig) -> Result<reqwest::Client, RouterError> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(cfg.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        // Workers sit on the cluster network; an inherited HTTP(S)_PROXY must not capture them.
        .no_proxy()
        .build()
        .map_err(RouterError::Client)
}

/// One upstream request's identity and budget: who, which leg, and the whole-request deadline
/// (which also bounds a relayed body).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub leg: Leg,
    pub worker: &'a str,
    pub deadline: Instant,
    /// For messages: how long the whole-request deadline was.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// POSTs a JSON body; any non-2xx answer becomes an error here.
pub(crate) async fn post_json(
    client: &reqwest::Client,
    t: Target<'_>,
    path: &str,
    body: Pieces,
    request_id: Option<&HeaderValue>,
    auth: Option<&HeaderValue>,
) -> Result<reqwest::Response, ProxyError> {
    let mut request = to_worker(client, reqwest::Method::POST, t.worker, path)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_LENGTH, body.len())
        .body(request_body(body));
    if let Some(id) = request_id {
        request = request.header(REQUEST_ID, id);
    }
    if let Some(sig) = auth {
        request = request.header(disagg_proto::auth::HEADER, sig);
    }
    send(request, t).await
}

/// One buffer as it is; several as a body of that many frames of known total length, which
/// hyper queues and writes with one `writev` (its queue strategy), without copying them.
fn request_body(body: Pieces) -> reqwest::Body {
    match body.parts() {
        [one] => reqwest::Body::from(one.clone()),
        _ => reqwest::Body::wrap(Frames {
            left: body.len() as u64,
            parts: body.parts().to_vec().into(),
        }),
    }
}

/// A request body of ready buffers, sent in order.
struct Frames {
    parts: std::collections::VecDeque<Bytes>,
    left: u64,
}

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next = self.parts.pop_front().map(|b| {
            self.left -= b.len() as u64;
            Ok(hyper::body::Frame::data(b))
        });
        std::task::Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

/// GETs `worker` + `path`; non-2xx answers become errors.
pub(crate) async fn get(
    client: &reqwest::Client,
    t: Target<'_>,
    path: &str,
) -> Result<reqwest::Response, ProxyError> {
    send(to_worker(client, reqwest::Method::GET, t.worker, path), t).await
}

/// How many workers' parsed URLs a serving thread keeps (far more than any deployment has; a
/// bound if workers come and go).
const URL_CACHE_WORKERS: usize = 1024;

thread_local! {
    /// Worker URLs parsed once per serving thread, by worker then path: formatting and parsing
    /// `worker + path` for every leg cost about 4% of the router's CPU per request (url's host
    /// and IDNA parsing).
    static URLS: std::cell::RefCell<std::collections::HashMap<String, Vec<(String, reqwest::Url)>>> =
        Default::default();
}

/// A request to `worker` + `path`. A worker that is not a URL goes to reqwest as text, so the
/// request fails with reqwest's error naming it, as it did before the cache.
fn to_worker(
    client: &reqwest::Client,
    method: reqwest::Method,
    worker: &str,
    path: &str,
) -> reqwest::RequestBuilder {
    let cached: Result<reqwest::Url, String> = URLS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(u) = cache
            .get(worker)
            .and_then(|paths| paths.iter().find(|(p, _)| p == path))
        {
            return Ok(u.1.clone());
        }
        let text = format!("{worker}{path}");
        let u = reqwest::Url::parse(&text).map_err(|_| text)?;
        if cache.len() >= URL_CACHE_WORKERS && !cache.contains_key(worker) {
            cache.clear();
        }
        cache
            .entry(worker.to_string())
            .or_default()
            .push((path.to_string(), u.clone()));
        Ok(u)
    });
    match cached {
        Ok(u) => client.request(method, u),
        Err(text) => client.request(method, text),
    }
}

async fn send(
    request: reqwest::RequestBuilder,
    t: Target<'_>,
) -> Result<reqwest::Response, ProxyError> {
    let remaining = t.deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(timeout(t, Deadline::Request, t.request_timeout));
    }
    let resp = request
        .timeout(remaining)
        .send()
        .await
        .map_err(|e| classify(t, &e))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(t, resp).await)
}

/// Reads a whole (small, non-streamed) response body.
pub(crate) async fn read_body(t: Target<'_>, resp: reqwest::Response) -> Result<Bytes, ProxyError> {
    resp.bytes().await.map_err(|e| classify(t, &e))
}

/// 4xx is the request's fault and keeps its status; anything else means the worker is broken.
async fn status_error(t: Target<'_>, resp: reqwest::Response) -> ProxyError {
    let status = resp.status();
    let body = read_body(t, resp).await.unwrap_or_default();
    let message = disagg_proto::error_message(&body);
    let worker = t.worker.to_string();
    let leg = t.leg;
    if status.is_client_error() {
        ProxyError::Rejected {
            leg,
            worker,
            status,
            message,
        }
    } else if status.is_server_error() {
        ProxyError::ServerError {
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

pub(crate) fn timeout(t: Target<'_>, deadline: Deadline, after: Duration) -> ProxyError {
    ProxyError::Timeout {
        leg: t.leg,
        worker: t.worker.to_string(),
        deadline,
        after,
    }
}

/// reqwest's own timeouts are the connect timeout and the whole-request deadline; which one it
/// was decides between "worker down, try another" and 504.
pub(crate) fn classify(t: Target<'_>, err: &reqwest::Error) -> ProxyError {
    if err.is_connect() && err.is_timeout() {
        timeout(t, Deadline::Connect, t.connect_timeout)
    } else if err.is_timeout() {
        timeout(t, Deadline::Request, t.request_timeout)
    } else if err.is_connect() {
        ProxyError::Connect {
            leg: t.leg,
            worker: t.worker.to_string(),
            detail: error_chain(err),
        }
    } else {
        ProxyError::Transport {
            leg: t.leg,
            worker: t.worker.to_string(),
            detail: error_chain(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_urls_are_parsed_once_per_thread_and_a_bad_worker_still_fails_naming_it() {
        let client = reqwest::Client::new();
        let url = |worker: &str, path: &str| {
            to_worker(&client, reqwest::Method::POST, worker, path)
                .build()
                .map(|r| r.url().to_string())
        };
        for _ in 0..2 {
            assert_eq!(
                url("http://127.0.0.1:8001", "/v1/completions").unwrap(),
                "http://127.0.0.1:8001/v1/completions"
            );
            assert_eq!(
                url("http://127.0.0.1:8001", "/generate").unwrap(),
                "http://127.0.0.1:8001/generate"
            );
            assert_eq!(
                url("http://[::1]:8002", "/v1/completions").unwrap(),
                "http://[::1]:8002/v1/completions"
            );
        }
        URLS.with(|c| {
            let c = c.borrow();
            assert_eq!(c.len(), 2, "one entry per worker");
            assert_eq!(c["http://127.0.0.1:8001"].len(), 2, "one URL per path");
        });
        let e = url("not a worker", "/v1/completions").unwrap_err();
        assert!(e.is_builder(), "{e}");
        URLS.with(|c| assert!(!c.borrow().contains_key("not a worker")));
    }
}
