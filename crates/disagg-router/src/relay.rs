//! Relaying a generation worker's answer to the client without buffering or re-parsing it.
//!
//! The first body chunk is awaited before the client gets a status line (see [`open`]): until
//! then a failure can still become an honest 502/504, or a retry. After it, every chunk goes out
//! as it comes in, and a failure aborts the client's response, the only honest signal left.
//! A non-streamed answer that comes in more than one chunk is read whole first (up to
//! [`WHOLE_LIMIT`]), so a worker failing under way is still a 502/504 naming it, never a 200 whose
//! body breaks off.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use disagg_proto::ApiError;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{Future, FutureExt, Stream, StreamExt};

use crate::error::{Leg, ProxyError, error_chain};
use crate::metrics::Metrics;

use crate::upstream::{self, Target};
use crate::worker::Lease;

/// A worker response whose status is good and whose first chunk has arrived.
pub(crate) struct Opened {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    content_length: Option<u64>,
    first: Option<Bytes>,
    rest: BoxStream<'static, Result<Bytes, hyper::Error>>,
    /// The request's deadline, which also bounds the relayed body, and how long it was.
    deadline: tokio::time::Instant,
    request_timeout: Duration,
}

/// Waits for `resp`'s first body chunk (or its end).
pub(crate) async fn open(
    t: Target<'_>,
    resp: upstream::WorkerResponse,
) -> Result<Opened, ProxyError> {
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let content_length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut rest = http_body_util::BodyDataStream::new(resp.into_body()).boxed();
    let first = match rest.next().await {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => return Err(upstream::body_error(t, &e)),
    };
    if let Some(b) = first.as_ref().filter(|_| status.is_success()) {
        if !plausible_as(b, content_type.as_ref()) {
            return Err(ProxyError::BadResponse {
                leg: t.leg,
                worker: t.worker.to_string(),
                reason: format!(
                    "its answer is neither JSON nor an event stream: {:?}",
                    String::from_utf8_lossy(&b[..b.len().min(64)])
                ),
            });
        }
    }
    Ok(Opened {
        status,
        content_type,
        content_length,
        first,
        rest,
        deadline: t.deadline,
        request_timeout: t.request_timeout,
    })
}

/// Whether a successful answer's first bytes can begin what every dialect answers: a JSON value
/// or an SSE stream (a field or a comment). One look at the first byte, nothing parsed: a
/// worker answering 200 with garbage fails here, named, rather than at the client.
fn plausible(first: &[u8]) -> bool {
    match first.iter().find(|b| !b.is_ascii_whitespace()) {
        // The chunk is all whitespace: what follows decides, and is relayed as it comes.
        None => true,
        Some(b) => matches!(b, b'{' | b'[' | b'"' | b':' | b'd' | b'e' | b'i' | b'r'),
    }
}

/// [`plausible`], held to what the answer says it is: JSON's first bytes under
/// `application/json`, an event stream's under `text/event-stream` (so `invalid ...` labelled
/// JSON is garbage, not the start of an SSE `id:` field).
fn plausible_as(first: &[u8], content_type: Option<&HeaderValue>) -> bool {
    let kind = content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let head = first.iter().find(|b| !b.is_ascii_whitespace());
    if kind.starts_with("application/json") {
        head.is_none_or(|b| matches!(b, b'{' | b'[' | b'"'))
    } else if kind.starts_with("text/event-stream") {
        head.is_none_or(|b| matches!(b, b':' | b'd' | b'e' | b'i' | b'r'))
    } else {
        plausible(first)
    }
}

impl Opened {
    /// The whole answer, read to its end within the request's deadline, with its status: for
    /// the one case where the router rewrites an answer (SGLang's `return_logprob` merge).
    pub(crate) async fn read_all(
        mut self,
        t: Target<'_>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), ProxyError> {
        let mut out = bytes::BytesMut::from(self.first.take().unwrap_or_default().as_ref());
        let read = async {
            while let Some(chunk) = self.rest.next().await {
                out.extend_from_slice(&chunk.map_err(|e| upstream::body_error(t, &e))?);
                if out.len() > limit {
                    return Err(ProxyError::BadResponse {
                        leg: t.leg,
                        worker: t.worker.to_string(),
                        reason: format!("its answer is larger than {limit} bytes"),
                    });
                }
            }
            Ok(())
        };
        match tokio::time::timeout_at(self.deadline, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(upstream::timeout(
                    t,
                    crate::error::Deadline::Request,
                    self.request_timeout,
                ));
            }
        }
        Ok((self.status, out.freeze()))
    }
}

impl Opened {
    /// The same answer with each event of its stream rewritten by `rewrite` (a `data:`
    /// payload in, the payload to send out), re-framed as `data: ...\n\n`; `[DONE]` passes
    /// through, comments and other fields are dropped, as is a last event the worker never
    /// ended (an incomplete event is no event). The one stream the router rewrites: SGLang's
    /// streamed `return_logprob` merge. Only a successful answer is rewritten.
    pub(crate) fn rewrite_events(
        mut self,
        rewrite: impl FnMut(Bytes) -> Bytes + Send + Unpin + 'static,
    ) -> Self {
        if !self.status.is_success() {
            return self;
        }
        let chunks = futures_util::stream::iter(self.first.take().map(Ok)).chain(self.rest);
        self.rest = Rewrite {
            chunks: chunks.boxed(),
            parser: disagg_proto::sse::Parser::new(),
            events: Vec::new(),
            rewrite,
        }
        .boxed();
        // Its length changes; it goes out as a stream.
        self.content_length = None;
        self
    }
}

/// [`Opened::rewrite_events`]'s stream.
struct Rewrite<F> {
    chunks: BoxStream<'static, Result<Bytes, hyper::Error>>,
    parser: disagg_proto::sse::Parser,
    events: Vec<disagg_proto::sse::Event>,
    rewrite: F,
}

impl<F: FnMut(Bytes) -> Bytes + Unpin> Stream for Rewrite<F> {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use disagg_proto::sse::{self, Event};
        let this = &mut *self;
        loop {
            let chunk = match this.chunks.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => chunk,
                other => return other,
            };
            this.events.clear();
            this.parser.push_into(chunk, &mut this.events);
            if this.events.is_empty() {
                continue;
            }
            let mut out = bytes::BytesMut::new();
            for event in this.events.drain(..) {
                match event {
                    Event::Data(data) => out.extend_from_slice(&sse::frame(&(this.rewrite)(data))),
                    Event::Done => out.extend_from_slice(sse::DONE_FRAME),
                }
            }
            return Poll::Ready(Some(Ok(out.freeze())));
        }
    }
}

/// What the relayed body keeps alive until it ends: the leases (so in-flight counts stay true
/// while the stream runs) and, for SGLang, the prefill leg still running beside decode.
pub(crate) struct Keep {
    pub leases: Vec<Lease>,
    pub companion: Option<BoxFuture<'static, Result<(), ProxyError>>>,
}

/// How much of a non-streamed answer is read before its status goes out; the rest of a larger one
/// is relayed as it comes.
const WHOLE_LIMIT: usize = 64 << 20;

/// The client's response for an opened generation leg.
pub(crate) async fn respond(
    opened: Opened,
    worker: &str,
    stream: bool,
    keep: Keep,
    metrics: &std::sync::Arc<Metrics>,
) -> Result<Response, ProxyError> {
    let Opened {
        status,
        content_type,
        content_length,
        first,
        rest,
        deadline,
        request_timeout,
    } = opened;
    let whole = first
        .as_ref()
        .is_some_and(|b| Some(b.len() as u64) == content_length);
    let relay = |first, rest, companion| {
        let gen_worker = keep
            .leases
            .iter()
            .find(|l| l.url() == worker)
            .map(|l| l.worker.clone());
        if let Some(w) = &gen_worker {
            w.progressed();
        }
        Relay {
            first,
            rest,
            companion,
            gen_worker,
            _leases: keep.leases,
            worker: worker.to_string(),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            request_timeout,
            metrics: metrics.clone(),
            ended: false,
            sse: stream,
            at_event_end: true,
            abort: None,
            failure: None,
        }
    };
    let body = if whole {
        // The first chunk is the whole answer (the usual non-streamed case): send it sized, in
        // one write, instead of as a chunked stream that needs one more poll to end. The
        // request is over, so its leases go now, and a prefill leg still answering is let
        // finish on its own.
        if let Some(companion) = keep.companion {
            finish_in_background(companion);
        }
        Body::from(first.unwrap_or_default())
    } else if !stream {
        // Read whole before the status goes out: a failure under way is still an error status.
        let mut relay = relay(first, rest, keep.companion);
        let mut out = bytes::BytesMut::new();
        loop {
            match relay.next().await {
                None => break Body::from(out.freeze()),
                Some(Ok(chunk)) => out.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(relay.failure.take().unwrap_or(ProxyError::Transport {
                        leg: Leg::Generation,
                        worker: worker.to_string(),
                        detail: e.to_string(),
                    }));
                }
            }
            if out.len() > WHOLE_LIMIT {
                // Too large to hold: the rest is relayed as it comes.
                let head = futures_util::stream::once(async move { Ok(out.freeze()) });
                break Body::from_stream(head.chain(relay));
            }
        }
    } else {
        Body::from_stream(relay(first, rest, keep.companion))
    };
    let mut out = if stream {
        sse_response(body)
    } else {
        let mut out = Response::new(body);
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        out
    };
    *out.status_mut() = status;
    Ok(out)
}

/// An SSE response around `body`.
pub(crate) fn sse_response(body: Body) -> Response {
    let mut out = Response::new(body);
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Intermediaries must neither cache nor hold back an event stream.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out
}

/// How long a prefill leg may still take once decode's answer is complete. Decode cannot
/// finish before the prefill has handed over its KV cache, so its HTTP answer is at most a
/// moment behind; this only bounds a worker that never answers.
const COMPANION_GRACE: Duration = Duration::from_secs(5);

/// Lets a completed request's prefill leg finish, bounded by [`COMPANION_GRACE`]. The one task
/// the router spawns: the client already has its whole answer, so nothing can cancel it anyway.
fn finish_in_background(companion: BoxFuture<'static, Result<(), ProxyError>>) {
    tokio::spawn(async move {
        match tokio::time::timeout(COMPANION_GRACE, companion).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("after the answer was complete: {e}"),
            Err(_) => tracing::warn!(
                "a prefill leg had not answered {COMPANION_GRACE:?} after decode finished; dropped"
            ),
        }
    });
}

struct Relay {
    first: Option<Bytes>,
    rest: BoxStream<'static, Result<Bytes, hyper::Error>>,
    companion: Option<BoxFuture<'static, Result<(), ProxyError>>>,
    /// The generation worker streaming this answer: each chunk is progress (see
    /// [`Worker::stalled_for`](crate::worker::Worker::stalled_for)).
    gen_worker: Option<std::sync::Arc<crate::worker::Worker>>,
    _leases: Vec<Lease>,
    worker: String,
    /// The request's deadline: a stream still running then is cut, as a hung worker's would be.
    deadline: Pin<Box<tokio::time::Sleep>>,
    request_timeout: Duration,
    /// Where a cut answer is counted.
    metrics: std::sync::Arc<Metrics>,
    /// Relayed to its end, or cut: dropped before either, its client went away.
    ended: bool,
    /// An event stream (`stream: true`): a cut at the deadline says so in an error event.
    sse: bool,
    /// The last chunk relayed ended an event (or none was): an event may follow whole.
    at_event_end: bool,
    /// The error to end the stream with, after the event that said it, and whether the
    /// event has had its chance to be flushed.
    abort: Option<(String, bool)>,
    /// Why the answer was cut, as the error a non-streamed answer read whole is answered with.
    failure: Option<ProxyError>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.ended {
            self.metrics.clients_gone.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Relay {
    /// Counts the relayed answer as cut short, and against the generation worker giving it when
    /// it is that worker's failure.
    fn cut(&mut self, why: &str, blame_worker: bool) {
        self.ended = true;
        self.metrics.streams_cut.fetch_add(1, Ordering::Relaxed);
        if !blame_worker {
            return;
        }
        if let Some(l) = self._leases.iter().find(|l| l.url() == self.worker) {
            l.worker.record_error(&why);
            if l.worker.stream_cut() == crate::worker::Transition::Ejected {
                tracing::warn!(
                    "{} worker {} ejected after its streams broke under way, in a row, whatever \
                     its /health says: {why}",
                    Leg::Generation,
                    self.worker
                );
            }
        }
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The companion (SGLang's prefill) is driven here, beside the stream it feeds; if it
        // fails, decode cannot finish, so the response is cut short at once rather than hang.
        if let Some(c) = &mut this.companion {
            if let Poll::Ready(done) = c.poll_unpin(cx) {
                this.companion = None;
                if let Err(e) = done {
                    tracing::warn!("{e}; aborting the relayed response");
                    // The prefill worker's failure, already charged to it by its leg.
                    this.cut(&e.to_string(), false);
                    this.rest = futures_util::stream::empty().boxed();
                    let msg = e.to_string();
                    this.failure = Some(e);
                    return Poll::Ready(Some(Err(std::io::Error::other(msg))));
                }
            }
        }
        // The error event went out: the connection is written out (hyper flushes while the
        // body is pending), then cut. Cut at once, the event could be lost in its buffer.
        if let Some((msg, flushed)) = this.abort.take() {
            if !flushed {
                this.abort = Some((msg, true));
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err(std::io::Error::other(msg))));
        }
        if let Some(b) = this.first.take() {
            this.at_event_end = event_end(&b);
            return Poll::Ready(Some(Ok(b)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let msg = format!(
                "{} worker {} had not finished its answer at the request deadline ({:?}); \
                 aborting the relayed response",
                Leg::Generation,
                this.worker,
                this.request_timeout
            );
            tracing::warn!("{msg}");
            this.cut(&msg, true);
            if let Some(w) = &this.gen_worker {
                w.missed_deadline();
            }
            this.failure = Some(ProxyError::Timeout {
                leg: Leg::Generation,
                worker: this.worker.clone(),
                deadline: crate::error::Deadline::Request,
                after: this.request_timeout,
            });
            this.rest = futures_util::stream::empty().boxed();
            // An event stream first gets the 504 it would have had before its first byte, as
            // an error event (as vLLM and SGLang send a failure under way): a client tells a
            // deadline from a broken connection. The stream is then cut, never ended cleanly.
            if this.sse && this.at_event_end {
                let event = format!("data: {}\n\n", ApiError::gateway_timeout(&msg).body());
                this.abort = Some((msg, false));
                return Poll::Ready(Some(Ok(Bytes::from(event))));
            }
            return Poll::Ready(Some(Err(std::io::Error::other(msg))));
        }
        match this.rest.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                this.ended = true;
                if let Some(w) = &this.gen_worker {
                    w.stream_completed();
                }
                // The answer is complete; a prefill leg still answering is let finish rather
                // than cut off (that would only cost it its keep-alive connection).
                if let Some(companion) = this.companion.take() {
                    finish_in_background(companion);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = format!(
                    "{} worker {} failed mid-response: {}",
                    Leg::Generation,
                    this.worker,
                    error_chain(&e)
                );
                tracing::warn!("{msg}");
                this.cut(&msg, true);
                this.failure = Some(ProxyError::Transport {
                    leg: Leg::Generation,
                    worker: this.worker.clone(),
                    detail: format!("its answer broke off under way: {}", error_chain(&e)),
                });
                Poll::Ready(Some(Err(std::io::Error::other(msg))))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(w) = &this.gen_worker {
                    w.progressed();
                }
                if this.sse {
                    this.at_event_end = event_end(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Whether `chunk` ends an event-stream event (a blank line), or is empty.
fn event_end(chunk: &[u8]) -> bool {
    chunk.is_empty() || chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_and_event_streams_are_plausible_answers_garbage_is_not() {
        for ok in [
            &b"{\"id\":1}"[..],
            b"  \n[1]",
            b"data: {}\n\n",
            b": keep-alive\n",
            b"event: x\n",
            b"   ",
        ] {
            assert!(super::plausible(ok), "{ok:?}");
        }
        for bad in [
            &b"\x00\xffNOT JSON <html>"[..],
            b"<html>",
            b"Internal error",
        ] {
            assert!(!super::plausible(bad), "{bad:?}");
        }
        // Held to the content type it states.
        let json = axum::http::HeaderValue::from_static("application/json");
        let sse = axum::http::HeaderValue::from_static("text/event-stream; charset=utf-8");
        assert!(super::plausible_as(b"{\"id\":1}", Some(&json)));
        assert!(!super::plausible_as(b"invalid garbage here", Some(&json)));
        assert!(super::plausible_as(b"data: {}\n\n", Some(&sse)));
        assert!(!super::plausible_as(b"{}", Some(&sse)));
        assert!(super::plausible_as(b"invalid: x", None));
        for ok in [&b"data: {}"[..], b"{}"] {
            assert!(super::plausible_as(ok, None), "{ok:?}");
        }
    }
}
