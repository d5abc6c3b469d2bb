//! The open loop: requests leave on a precomputed schedule whatever the server is doing, capped
//! (optionally) by a maximum number in flight. Each outcome keeps its scheduled time and its
//! send: without a cap, a request the client sent late is charged that lag (coordinated omission
//! cannot hide a slow server); under a cap, its wait for a slot is the client's queue time, and
//! its latencies count from the send ([`crate::PointId::latency_origin`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::client::{self, Outcome, Target};
use crate::progress::{Reporter, Watched};
use crate::workload::PreparedRequest;

/// Sends request `i` at `start + offsets[i]` (or as soon after as a concurrency slot frees) and
/// returns the outcomes of the requests sent, in request order. Bounded: the schedule is finite,
/// nothing new leaves after the deadline or once the point's failure budget is spent, and each
/// request is bounded by the target's timeout.
pub(crate) async fn run(
    client: &client::HttpClient,
    target: &Arc<Target>,
    requests: Vec<PreparedRequest>,
    offsets: &[Duration],
    max_concurrency: Option<u32>,
    deadline: Option<Instant>,
    watched: Watched<'_>,
) -> Vec<Outcome> {
    let Watched { label, progress } = watched;
    debug_assert_eq!(requests.len(), offsets.len());
    let total = requests.len();
    let _reporter = Reporter::start(&progress, label, total);
    let slots = max_concurrency.map(|c| Arc::new(Semaphore::new(c as usize)));
    let rt = tokio::runtime::Handle::current();
    let (client, target) = (client.clone(), Arc::clone(target));
    let offsets = offsets.to_vec();
    // Dropped with this future (a signal ends the sweep): the schedule's thread then stops at
    // once, where it would otherwise sleep out the schedule and hold the runtime's shutdown.
    let (_running, cancelled) = std::sync::mpsc::channel::<std::convert::Infallible>();
    // The schedule is kept by a blocking thread: a timed wait on a thread (a futex, as
    // nanosleep) is late by tens of microseconds, while tokio's timer rounds every wait up to a
    // whole millisecond, which an open loop would then charge to the server as latency.
    let dispatch = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(requests.len());
        for (i, (req, offset)) in requests.into_iter().zip(offsets).enumerate() {
            let due = start + offset;
            if deadline.is_some_and(|d| due >= d) {
                break;
            }
            let wait = due.saturating_duration_since(Instant::now());
            // Nothing is ever sent on the channel: it only ends, when the point is dropped.
            if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
                cancelled.recv_timeout(wait)
            {
                break;
            }
            // Waiting for a slot delays the send, not the schedule: `due` stays the reference.
            let permit = slots.as_ref().map(|s| {
                rt.block_on(Arc::clone(s).acquire_owned())
                    .expect("the semaphore is never closed")
            });
            // The point has failed whatever follows, or its duration limit passed while this
            // request waited for a slot: nothing more leaves.
            if progress.should_stop() || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let (client, target, progress) =
                (client.clone(), Arc::clone(&target), Arc::clone(&progress));
            handles.push(rt.spawn(async move {
                progress.started();
                let outcome = client::send(&client, &target, i, &req, due).await;
                progress.finished(&outcome);
                drop(permit);
                outcome
            }));
        }
        handles
    });
    let handles = match dispatch.await {
        Ok(handles) => handles,
        // The dispatcher only panics on a bug; surface it rather than report partial numbers.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };

    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(o) => outcomes.push(o),
            // A request task only panics on a bug; surface it rather than report partial numbers.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    outcomes
}
