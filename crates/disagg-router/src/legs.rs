//! The legs as deadline-bounded calls, and the one retry loop every dialect's flow
//! ([`crate::flow`]) runs them in.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::raw::Pieces;
use http::header::HeaderValue;
use tokio::time::Instant;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::policy::{PickInput, WorkerGroup};
use crate::relay::{self, Opened};
use crate::upstream::{self, Target};
use crate::worker::{Lease, Worker};

/// When one client request must be done by, whatever its legs and retries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestDeadline {
    pub at: Instant,
}

impl RequestDeadline {
    pub fn start(state: &Inner) -> Self {
        Self {
            at: Instant::now() + state.cfg.request_timeout,
        }
    }

    /// A leg's deadline: the earlier of `now + limit` and the request's, and which one it is.
    pub fn for_leg(&self, limit: Option<Duration>, kind: Deadline) -> (Instant, Deadline) {
        match limit.map(|l| Instant::now() + l) {
            Some(at) if at < self.at => (at, kind),
            _ => (self.at, Deadline::Request),
        }
    }
}

/// The workers a request has tried, by leg, so that a retry goes to others.
#[derive(Debug, Default)]
pub(crate) struct Tried {
    context: Vec<usize>,
    generation: Vec<usize>,
}

impl Tried {
    /// Indices into that leg's [`WorkerGroup`].
    pub fn of(&self, leg: Leg) -> &[usize] {
        match leg {
            Leg::Context => &self.context,
            Leg::Generation => &self.generation,
        }
    }

    fn add(&mut self, leg: Leg, worker: usize) {
        match leg {
            Leg::Context => self.context.push(worker),
            Leg::Generation => self.generation.push(worker),
        }
    }

    fn count(&self) -> usize {
        self.context.len() + self.generation.len()
    }
}

/// A failed attempt: the worker (an index into its leg's group), why, and whether another
/// attempt may follow (most often [`ProxyError::is_retryable`]).
pub(crate) struct Failed {
    pub leg: Leg,
    pub worker: usize,
    pub error: ProxyError,
    pub retryable: bool,
}

/// The one retry loop. Runs `attempt` on what `pick` chooses (a worker, or SGLang's pair); on
/// a failure the attempt calls retryable, again on a new pick that avoids every worker that has failed, up to
/// `max_retries` times. A worker that could not be reached counts towards its ejection. Every
/// attempt happens before any byte reaches the client, so a retry is never visible to it
/// except as latency. `attempt` records its workers' success itself.
pub(crate) async fn with_retries<P, T, Fut>(
    state: &Inner,
    mut pick: impl FnMut(&Tried) -> Result<P, ProxyError>,
    mut attempt: impl FnMut(P) -> Fut,
) -> Result<T, ProxyError>
where
    Fut: Future<Output = Result<T, Failed>>,
{
    let mut tried = Tried::default();
    let mut last: Option<ProxyError> = None;
    let mut last_leg: Option<Leg> = None;
    loop {
        let picked = match pick(&tried) {
            Ok(picked) => picked,
            // Out of untried workers: the failure that got us here is the honest answer.
            Err(unhealthy) => return Err(last.unwrap_or(unhealthy)),
        };
        // A retry is said, and counted, once there is another worker to make it on.
        if let (Some(error), Some(leg)) = (&last, last_leg) {
            tracing::info!("{error}; retrying on another {leg} worker");
            state
                .group(leg)
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let Failed {
            leg,
            worker,
            error,
            retryable,
        } = match attempt(picked).await {
            Ok(v) => return Ok(v),
            Err(failed) => failed,
        };
        let group = state.group(leg);
        // A refusal of the request itself (4xx: too long for its context, a bad parameter) is
        // the request's fault, not the worker's: counted as a refusal, apart.
        // Nor is the router's own lack of file descriptors.
        if matches!(error, ProxyError::Rejected { .. }) {
            group.workers[worker].record_rejection(&error);
        }
        if !matches!(
            error,
            ProxyError::Rejected { .. } | ProxyError::RouterExhausted { .. }
        ) {
            group.record_error(worker, &error);
            let waited = match &error {
                ProxyError::Timeout { after, .. } => Some(*after),
                _ => None,
            };
            if waited.is_some() {
                group.workers[worker].missed_deadline();
            }
            group.record_request_failure(worker, &error, waited);
        }
        if error.is_unreachable() {
            group.record_failure(worker, &error);
        }
        if !retryable || tried.count() >= state.cfg.max_retries as usize {
            return Err(error);
        }
        tried.add(leg, worker);
        last = Some(error);
        last_leg = Some(leg);
    }
}

/// [`with_retries`] on one worker of `group` at a time: `call` gets the worker; the answer
/// comes back with the worker's lease, which the caller holds while it uses the answer. A
/// failure is tried again on another worker when `retryable` says so.
pub(crate) async fn on_one_worker<T, F, Fut>(
    state: &Inner,
    group: &WorkerGroup,
    input: PickInput<'_>,
    retryable: fn(&ProxyError) -> bool,
    mut call: F,
) -> Result<(Lease, T), ProxyError>
where
    F: FnMut(Arc<Worker>) -> Fut,
    Fut: Future<Output = Result<T, ProxyError>>,
{
    let pick = |tried: &Tried| group.pick(input, tried.of(group.leg));
    with_retries(state, pick, |(i, lease): (usize, Lease)| {
        let answer = call(lease.worker.clone());
        async move {
            match answer.await {
                Ok(v) => {
                    group.record_answer(i);
                    Ok((lease, v))
                }
                Err(error) => Err(Failed {
                    leg: group.leg,
                    worker: i,
                    retryable: retryable(&error),
                    error,
                }),
            }
        }
    })
    .await
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
    deadline: RequestDeadline,
    leg_deadline: (Instant, Deadline),
    worker: &str,
    path: &str,
    body: Pieces,
    carried: &upstream::Carried,
) -> Result<Bytes, ProxyError> {
    let t = state.target(Leg::Context, worker, deadline);
    let started = Instant::now();
    let out = bounded(state, t, leg_deadline, async {
        let resp = upstream::post_json(&state.client, t, path, body, carried, None).await?;
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
    deadline: RequestDeadline,
    worker: &str,
    path: &str,
    body: Pieces,
    carried: &upstream::Carried,
    auth: Option<&HeaderValue>,
) -> Result<Opened, ProxyError> {
    let t = state.target(Leg::Generation, worker, deadline);
    let started = Instant::now();
    let first_byte = deadline.for_leg(state.cfg.first_byte_timeout, Deadline::FirstByte);
    let out = bounded(state, t, first_byte, async {
        let resp = upstream::post_json(&state.client, t, path, body, carried, auth).await?;
        relay::open(t, resp).await
    })
    .await;
    state.metrics.generation_leg.observe(started.elapsed());
    out
}
