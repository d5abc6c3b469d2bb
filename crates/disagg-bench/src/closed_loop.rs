//! The closed loop: at most C requests in flight, each worker sending its next request as soon as
//! the previous one ends, until the point's requests (or its time, or its failure budget) are
//! used up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::client::{self, Outcome, Target};
use crate::progress::{Reporter, Watched};
use crate::workload::PreparedRequest;

/// Sends the requests with at most `concurrency` in flight and returns the outcomes in request
/// order. Bounded: each worker takes requests from a shared counter until none are left or the
/// deadline has passed, and each request is bounded by the target's timeout.
pub(crate) async fn run(
    client: &client::HttpClient,
    target: &Arc<Target>,
    requests: Vec<PreparedRequest>,
    concurrency: u32,
    deadline: Option<Instant>,
    watched: Watched<'_>,
) -> Vec<Outcome> {
    let Watched { label, progress } = watched;
    let total = requests.len();
    let requests: Arc<[PreparedRequest]> = requests.into();
    let next = Arc::new(AtomicUsize::new(0));
    let workers = (concurrency as usize).clamp(1, total.max(1));
    let _reporter = Reporter::start(&progress, label, total);

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
                if deadline.is_some_and(|d| Instant::now() >= d) || progress.should_stop() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                progress.started();
                // Closed loop: the request is due exactly when the worker gets to it.
                let outcome = client::send(&client, &target, i, req, Instant::now()).await;
                progress.finished(&outcome);
                mine.push((i, outcome));
            }
            mine
        }));
    }

    let mut indexed = Vec::with_capacity(total);
    for handle in handles {
        match handle.await {
            Ok(mine) => indexed.extend(mine),
            // A worker only panics on a bug; surface it rather than report partial numbers.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, o)| o).collect()
}
