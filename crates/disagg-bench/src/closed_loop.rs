//! The closed loop: at most C requests in flight, each worker sending its next request as soon as
//! the previous one ends, until the point's requests are used up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::{self, Outcome, Target};
use crate::workload::PreparedRequest;

/// How often progress lines go to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Counters the progress line reads while workers run.
#[derive(Debug, Default)]
struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

/// Sends every request with at most `concurrency` in flight and returns the outcomes in request
/// order. Bounded: each worker takes requests from a shared counter until none are left, and each
/// request is bounded by the target's timeout.
pub(crate) async fn run(
    client: &reqwest::Client,
    target: &Arc<Target>,
    requests: Vec<PreparedRequest>,
    concurrency: u32,
    label: &str,
) -> Vec<Outcome> {
    let total = requests.len();
    let requests: Arc<[PreparedRequest]> = requests.into();
    let next = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Progress::default());
    let workers = (concurrency as usize).clamp(1, total.max(1));

    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (client, target) = (client.clone(), Arc::clone(target));
        let (requests, next, progress) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&progress),
        );
        // Spawned, so the runtime can spread workers over cores and a slow stream never
        // delays another worker's timestamps.
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                progress.in_flight.fetch_add(1, Ordering::Relaxed);
                // Closed loop: the request is due exactly when the worker gets to it.
                let outcome = client::send(&client, &target, req, Instant::now()).await;
                progress.in_flight.fetch_sub(1, Ordering::Relaxed);
                if outcome.result.is_err() {
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                }
                progress.done.fetch_add(1, Ordering::Relaxed);
                mine.push((i, outcome));
            }
            mine
        }));
    }

    let reporter = {
        let (progress, label) = (Arc::clone(&progress), label.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await; // the first tick is immediate; nothing to say yet
            loop {
                tick.tick().await;
                eprintln!(
                    "{label} done {}/{total} in-flight {} failed {}",
                    progress.done.load(Ordering::Relaxed),
                    progress.in_flight.load(Ordering::Relaxed),
                    progress.failed.load(Ordering::Relaxed),
                );
            }
        })
    };

    let mut indexed = Vec::with_capacity(total);
    for handle in handles {
        match handle.await {
            Ok(mine) => indexed.extend(mine),
            // A worker only panics on a bug; surface it rather than report partial numbers.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    reporter.abort();
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, o)| o).collect()
}
