//! One worker as the router sees it: its address, its load and its health. A [`Lease`] counts a
//! request against a worker for exactly as long as the request holds it, however it ends
//! (finished, failed, or cancelled by a client hang-up), so the census never leaks load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A worker and its live counters. Relaxed atomics throughout: each counter is read on its own,
/// for load balancing and reporting, and orders nothing else.
#[derive(Debug)]
pub(crate) struct Worker {
    pub url: String,
    /// SGLang only: the prefill worker's bootstrap port.
    pub bootstrap_port: Option<u16>,
    in_flight: AtomicUsize,
    in_flight_tokens: AtomicU64,
    healthy: AtomicBool,
    /// Consecutive failed probes or connections; reset by any success.
    failures: AtomicU32,
    /// TensorRT-LLM: whether this (context) worker takes a `disagg_request_id`, as learnt from
    /// its `/version`: [`UNKNOWN`], [`TAKES`] or [`REFUSES`].
    disagg_ids: AtomicU8,
}

const UNKNOWN: u8 = 0;
const TAKES: u8 = 1;
const REFUSES: u8 = 2;

/// What a health observation did to a worker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Ejected,
    Readmitted,
}

impl Worker {
    pub fn new(url: String, bootstrap_port: Option<u16>) -> Self {
        Self {
            url,
            bootstrap_port,
            in_flight: AtomicUsize::new(0),
            in_flight_tokens: AtomicU64::new(0),
            // Optimistic: the first probe runs at once, and until then requests are the probe.
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            disagg_ids: AtomicU8::new(UNKNOWN),
        }
    }

    /// Whether this worker takes a `disagg_request_id`; `None` until its version is known.
    pub fn takes_disagg_ids(&self) -> Option<bool> {
        match self.disagg_ids.load(Ordering::Relaxed) {
            TAKES => Some(true),
            REFUSES => Some(false),
            _ => None,
        }
    }

    pub fn set_takes_disagg_ids(&self, takes: bool) {
        let v = if takes { TAKES } else { REFUSES };
        self.disagg_ids.store(v, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn in_flight_tokens(&self) -> u64 {
        self.in_flight_tokens.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A probe or connection failed; ejects after `eject_after` in a row.
    pub fn record_failure(&self, eject_after: u32) -> Transition {
        let n = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if n >= eject_after && self.healthy.swap(false, Ordering::Relaxed) {
            Transition::Ejected
        } else {
            Transition::None
        }
    }

    /// A probe passed (or a request got an answer): the worker is back, if it was out.
    pub fn record_success(&self) -> Transition {
        self.failures.store(0, Ordering::Relaxed);
        if self.healthy.swap(true, Ordering::Relaxed) {
            Transition::None
        } else {
            Transition::Readmitted
        }
    }
}

/// One request counted against one worker until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    pub worker: Arc<Worker>,
    tokens: u64,
}

impl Lease {
    pub fn new(worker: Arc<Worker>, tokens: u64) -> Self {
        worker.in_flight.fetch_add(1, Ordering::Relaxed);
        worker.in_flight_tokens.fetch_add(tokens, Ordering::Relaxed);
        Self { worker, tokens }
    }

    pub fn url(&self) -> &str {
        &self.worker.url
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.worker
            .in_flight_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_count_while_held() {
        let w = Arc::new(Worker::new("a".into(), None));
        let a = Lease::new(w.clone(), 10);
        let b = Lease::new(w.clone(), 5);
        assert_eq!((w.in_flight(), w.in_flight_tokens()), (2, 15));
        drop(a);
        assert_eq!((w.in_flight(), w.in_flight_tokens()), (1, 5));
        drop(b);
        assert_eq!((w.in_flight(), w.in_flight_tokens()), (0, 0));
    }

    #[test]
    fn ejected_after_n_failures_and_readmitted_by_one_success() {
        let w = Worker::new("a".into(), None);
        assert_eq!(w.record_failure(2), Transition::None);
        assert!(w.is_healthy());
        assert_eq!(w.record_failure(2), Transition::Ejected);
        assert_eq!(w.record_failure(2), Transition::None, "ejected once");
        assert!(!w.is_healthy());
        assert_eq!(w.record_success(), Transition::Readmitted);
        assert_eq!(w.record_success(), Transition::None);
        assert_eq!(w.failures(), 0);
    }
}
