//! Talking to workers: one pooled HTTP client (hyper's), and the mapping of its failures to
//! [`ProxyError`]s that name the worker and the leg.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;

use crate::config::RouterConfig;
use crate::error::{Deadline, Leg, ProxyError, error_chain};
use crate::raw::Pieces;

/// The header that ties vLLM's two legs together.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The client every leg of a serving thread shares: hyper's pooled HTTP/1 client. reqwest's
/// per-request layers (redirect and retry policies, request building, its response wrapper)
/// cost the load generator a fifth of its CPU; the router sends the same kind of requests.
pub(crate) type HttpClient = Client<HttpConnector, Frames>;

/// A worker's answer, its body still to be read.
pub(crate) type WorkerResponse = http::Response<hyper::body::Incoming>;

/// Builds the one client every request shares. Pooled keep-alive connections avoid
/// TensorRT-LLM's connection-per-request cost; `tcp_nodelay` keeps small requests and SSE frames
/// from waiting on Nagle plus delayed ACK (a 40 ms stall on reused connections). No proxy is
/// taken from the environment: workers sit on the cluster network.
pub(crate) fn client(cfg: &RouterConfig) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(cfg.connect_timeout));
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
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

/// The client's headers a leg carries on to its worker.
#[derive(Debug, Clone, Default)]
pub(crate) struct Carried {
    /// `X-Request-Id`, one for both legs of a vLLM request.
    pub request_id: Option<HeaderValue>,
    /// The client's `Authorization`.
    pub authorization: Option<HeaderValue>,
}

/// POSTs a JSON body; any non-2xx answer becomes an error here.
pub(crate) async fn post_json(
    client: &HttpClient,
    t: Target<'_>,
    path: &str,
    body: Pieces,
    carried: &Carried,
    auth: Option<&HeaderValue>,
) -> Result<WorkerResponse, ProxyError> {
    let mut request = http::Request::post(worker_uri(t, path)?)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len());
    if let Some(id) = &carried.request_id {
        request = request.header(REQUEST_ID, id);
    }
    if let Some(key) = &carried.authorization {
        request = request.header(http::header::AUTHORIZATION, key);
    }
    if let Some(sig) = auth {
        request = request.header(disagg_proto::auth::HEADER, sig);
    }
    send(client, request, request_body(body), t).await
}

/// A body of that many frames of known total length, which hyper queues and writes with one
/// `writev` (its queue strategy), without copying them.
fn request_body(body: Pieces) -> Frames {
    Frames {
        left: body.len() as u64,
        parts: body.parts().to_vec().into(),
    }
}

/// A request body of ready buffers, sent in order (none for a GET).
pub(crate) struct Frames {
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

impl Frames {
    pub(crate) fn empty() -> Self {
        Self {
            parts: Default::default(),
            left: 0,
        }
    }
}

/// GETs `worker` + `path`; non-2xx answers become errors.
pub(crate) async fn get(
    client: &HttpClient,
    t: Target<'_>,
    path: &str,
    authorization: Option<&HeaderValue>,
) -> Result<WorkerResponse, ProxyError> {
    let mut request = http::Request::get(worker_uri(t, path)?);
    if let Some(key) = authorization {
        request = request.header(http::header::AUTHORIZATION, key);
    }
    send(client, request, Frames::empty(), t).await
}

/// How many workers' parsed URLs a serving thread keeps (far more than any deployment has; a
/// bound if workers come and go).
const URL_CACHE_WORKERS: usize = 1024;

thread_local! {
    /// Worker URLs parsed once per serving thread, by worker then path: formatting and parsing
    /// `worker + path` for every leg cost about 4% of the router's CPU per request.
    static URLS: std::cell::RefCell<std::collections::HashMap<String, Vec<(String, http::Uri)>>> =
        Default::default();
}

/// `worker` + `path` as a URI, parsed once per serving thread. A worker that is not one fails
/// the leg as a connect failure naming it (the router checks its workers at start, so this is
/// a worker added later).
fn worker_uri(t: Target<'_>, path: &str) -> Result<http::Uri, ProxyError> {
    uri_of(t.worker, path).map_err(|why| ProxyError::Connect {
        leg: t.leg,
        worker: t.worker.to_string(),
        detail: why,
    })
}

/// `worker` + `path`, from this thread's cache: the one place worker URIs are parsed (legs and
/// health probes alike).
pub(crate) fn uri_of(worker: &str, path: &str) -> Result<http::Uri, String> {
    URLS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(u) = cache
            .get(worker)
            .and_then(|paths| paths.iter().find(|(p, _)| p == path))
        {
            return Ok(u.1.clone());
        }
        let text = format!("{worker}{path}");
        let u = match text.parse::<http::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => u,
            Ok(_) => return Err(format!("{text} is not an http:// URL")),
            Err(e) => return Err(format!("{text} is not a URL: {e}")),
        };
        if cache.len() >= URL_CACHE_WORKERS && !cache.contains_key(worker) {
            cache.clear();
        }
        cache
            .entry(worker.to_string())
            .or_default()
            .push((path.to_string(), u.clone()));
        Ok(u)
    })
}

/// Sends within what is left of the request's deadline; the answer's body is bounded by the
/// same deadline where it is read ([`read_body`], the relay).
async fn send(
    client: &HttpClient,
    request: http::request::Builder,
    body: Frames,
    t: Target<'_>,
) -> Result<WorkerResponse, ProxyError> {
    let request = request.body(body).map_err(|e| ProxyError::Transport {
        leg: t.leg,
        worker: t.worker.to_string(),
        detail: format!("cannot build the request: {e}"),
    })?;
    let resp = match tokio::time::timeout_at(t.deadline, client.request(request)).await {
        Err(_) => return Err(timeout(t, Deadline::Request, t.request_timeout)),
        Ok(r) => r.map_err(|e| classify(t, &e))?,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(t, resp).await)
}

/// Reads a whole (small, non-streamed) response body, within the request's deadline.
pub(crate) async fn read_body(t: Target<'_>, resp: WorkerResponse) -> Result<Bytes, ProxyError> {
    match tokio::time::timeout_at(t.deadline, resp.into_body().collect()).await {
        Err(_) => Err(timeout(t, Deadline::Request, t.request_timeout)),
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) => Err(body_error(t, &e)),
    }
}

/// 4xx is the request's fault and keeps its status; anything else means the worker is broken.
async fn status_error(t: Target<'_>, resp: WorkerResponse) -> ProxyError {
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

/// A failure before the answer's head: the connect timeout means "worker down, try another";
/// a refused or failed connect too; anything else is a transport failure.
pub(crate) fn classify(t: Target<'_>, err: &hyper_util::client::legacy::Error) -> ProxyError {
    if err.is_connect() && timed_out(err) {
        timeout(t, Deadline::Connect, t.connect_timeout)
    } else if err.is_connect() && out_of_sockets(err) {
        ProxyError::RouterExhausted {
            leg: t.leg,
            worker: t.worker.to_string(),
            detail: error_chain(err),
        }
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

/// A failure while reading an answer's body (reset, cut short).
pub(crate) fn body_error(t: Target<'_>, err: &hyper::Error) -> ProxyError {
    ProxyError::Transport {
        leg: t.leg,
        worker: t.worker.to_string(),
        detail: error_chain(err),
    }
}

/// Whether the socket could not be made here, whatever the worker: this process's or the
/// system's file table is full (EMFILE, ENFILE), or the kernel has no buffer space (ENOBUFS) or
/// memory (ENOMEM) for it.
pub(crate) fn out_of_sockets(err: &(dyn std::error::Error + 'static)) -> bool {
    const LOCAL: [i32; 4] = [24, 23, 105, 12];
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            if LOCAL.contains(&code) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Whether an I/O timeout (the connector's connect timeout) is in the error's chain.
fn timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
            // An io::Error's `source` skips the error it wraps; look inside it too.
            if io.get_ref().is_some_and(|inner| timed_out(inner)) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_urls_are_parsed_once_per_thread_and_a_bad_worker_still_fails_naming_it() {
        for _ in 0..2 {
            assert_eq!(
                uri_of("http://127.0.0.1:8001", "/v1/completions").unwrap(),
                "http://127.0.0.1:8001/v1/completions"
            );
            assert_eq!(
                uri_of("http://127.0.0.1:8001", "/generate").unwrap(),
                "http://127.0.0.1:8001/generate"
            );
            assert_eq!(
                uri_of("http://[::1]:8002", "/v1/completions").unwrap(),
                "http://[::1]:8002/v1/completions"
            );
        }
        URLS.with(|c| {
            let c = c.borrow();
            assert_eq!(c.len(), 2, "one entry per worker");
            assert_eq!(c["http://127.0.0.1:8001"].len(), 2, "one URL per path");
        });
        let e = uri_of("not a worker", "/v1/completions").unwrap_err();
        assert!(e.contains("not a worker/v1/completions"), "{e}");
        let e = uri_of("https://c:443", "/v1/completions").unwrap_err();
        assert!(e.contains("not an http:// URL"), "{e}");
        URLS.with(|c| assert!(!c.borrow().contains_key("not a worker")));
    }

    #[test]
    fn a_connect_timeout_is_told_from_a_refusal() {
        let timed = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let wrapped = std::io::Error::other(timed);
        assert!(timed_out(&wrapped));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!timed_out(&refused));
    }
}
