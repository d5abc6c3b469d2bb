//! Live progress of one point: counters the request tasks bump, and a reporter that prints them
//! every few seconds until the point ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::Outcome;

/// How often progress lines go to stderr.
const EVERY: Duration = Duration::from_secs(2);

/// Counters the reporter reads while requests run. Relaxed atomics: a progress line that is a
/// request behind is fine, a lock on the request path is not.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

impl Progress {
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, outcome: &Outcome) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if outcome.result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Prints progress until dropped.
pub(crate) struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    pub fn start(progress: &Arc<Progress>, label: &str, total: usize) -> Self {
        let (progress, label) = (Arc::clone(progress), label.to_string());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
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
        });
        Self { task }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
