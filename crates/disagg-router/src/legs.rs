//! The two legs as retrying, deadline-bounded calls. Both dialect flows ([`crate::dispatch`])
//! are built from these.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::raw::Pieces;
use reqwest::header::HeaderValue;
use tokio::time::Instant;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::policy::{PickInput, WorkerGroup};
use crate::relay::{self, Opened};
use crate::upstream::{self, Target};
use crate::worker::Lease;

/// One client request's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// The whole-request deadline.
    pub request: Instant,
}

impl Clock {
    pub fn start(state: &Inner) -> Self {
        Self {
            request: Instant::now() + state.cfg.request_timeout,
        }
    }

    /// The earlier of `now + limit` and the request deadline, and which of the two it is.
    pub fn leg(&self, limit: Option<Duration>, kind: Deadline) -> (Instant, Deadline) {
        match limit.map(|l| Instant::now() + l) {
            Some(at) if at < self.request => (at, kind),
            _ => (self.request, Deadline::Request),
        }
    }
}

impl Inner {
    pub fn target<'a>(&self, leg: Leg, worker: &'a str, clock: Clock) -> Target<'a> {
        Target {
            leg,
            worker,
            deadline: clock.request,
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

/// Runs `call` on a worker of `group`; on a retryable failure, again on a worker not yet tried,
/// up to `max_retries` times. Every attempt happens before any byte reaches the client, so a
/// retry is never visible to it except as latency.
pub(crate) async fn with_retries<T, F, Fut>(
    state: &Inner,
    group: &WorkerGroup,
    input: PickInput<'_>,
    mut call: F,
) -> Result<(Lease, T), ProxyError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T, ProxyError>>,
{
    let mut tried = Vec::new();
    let mut last: Option<ProxyError> = None;
    loop {
        let (i, lease) = match group.pick(input, &tried) {
            Ok(picked) => picked,
            // Out of untried workers: the failure that got us here is the honest answer.
            Err(unhealthy) => return Err(last.unwrap_or(unhealthy)),
        };
        match call(lease.url().to_string()).await {
            Ok(v) => {
                group.record_success(i, "it answered a request");
                return Ok((lease, v));
            }
            Err(e) => {
                if e.is_unreachable() {
                    group.record_failure(i, &e);
                }
                if !e.is_retryable() || tried.len() >= state.cfg.max_retries as usize {
                    return Err(e);
                }
                tracing::info!("{e}; retrying on another {} worker", group.leg);
                group
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tried.push(i);
                last = Some(e);
            }
        }
    }
}

/// Bounds `fut` by `at`; past it, a 504 naming `kind`.
pub(crate) async fn bounded<T>(
    state: &Inner,
    t: Target<'_>,
    (at, kind): (Instant, Deadline),
    fut: impl Future<Output = Result<T, ProxyError>>,
) -> Result<T, ProxyError> {
    match tokio::time::timeout_at(at, fut).await {
        Ok(r) => r,
        Err(_) => Err(upstream::timeout(t, kind, state.limit_of(kind))),
    }
}

/// A whole non-streamed context answer from one worker, within the context-leg deadline.
pub(crate) async fn context_call(
    state: &Inner,
    clock: Clock,
    leg_deadline: (Instant, Deadline),
    worker: &str,
    path: &str,
    body: Pieces,
    request_id: Option<&HeaderValue>,
) -> Result<Bytes, ProxyError> {
    let t = state.target(Leg::Context, worker, clock);
    let started = Instant::now();
    let out = bounded(state, t, leg_deadline, async {
        let resp = upstream::post_json(&state.client, t, path, body, request_id, None).await?;
        upstream::read_body(t, resp).await
    })
    .await;
    state.metrics.context_leg.observe(started.elapsed());
    out
}

/// A generation answer from one worker, up to its first body byte, within the first-byte
/// deadline.
pub(crate) async fn generation_call(
    state: &Inner,
    clock: Clock,
    worker: &str,
    path: &str,
    body: Pieces,
    request_id: Option<&HeaderValue>,
    auth: Option<&HeaderValue>,
) -> Result<Opened, ProxyError> {
    let t = state.target(Leg::Generation, worker, clock);
    let started = Instant::now();
    let deadline = clock.leg(state.cfg.first_byte_timeout, Deadline::FirstByte);
    let out = bounded(state, t, deadline, async {
        let resp = upstream::post_json(&state.client, t, path, body, request_id, auth).await?;
        relay::open(t, resp).await
    })
    .await;
    state.metrics.generation_leg.observe(started.elapsed());
    out
}
