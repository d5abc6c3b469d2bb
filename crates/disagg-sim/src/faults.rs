//! Scripted faults: the sim crashes after a given number of served requests.
//!
//! Faults are deterministic by design (STYLE.md: "fail the 3rd request", never random), so a
//! harness test can predict exactly which request sees the dead engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long the process hook lets the last response's bytes reach the socket before exiting.
/// The counter fires when the body has been handed to the HTTP layer, which may still hold it
/// in a buffer; exiting at once could truncate the very response that was "served".
const FLUSH_GRACE: Duration = Duration::from_millis(100);

/// What happens when a scripted crash is due. [`crate::run`] exits the process; tests install a
/// hook that records the event instead, so they can observe it without dying.
#[derive(Clone)]
pub struct ExitHook(Arc<dyn Fn() + Send + Sync>);

impl ExitHook {
    /// Runs `hook` when the crash is due.
    pub fn new(hook: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(hook))
    }

    /// Exits the process with status 1, after a short grace for the last response to flush.
    pub fn exit_process() -> Self {
        Self::new(|| {
            std::thread::spawn(|| {
                std::thread::sleep(FLUSH_GRACE);
                std::process::exit(1);
            });
        })
    }

    fn fire(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for ExitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitHook")
    }
}

/// Counts served completion requests and fires the exit hook when the limit is reached.
#[derive(Debug)]
pub(crate) struct Faults {
    fail_after_requests: Option<u64>,
    served: AtomicU64,
    exit: ExitHook,
}

impl Faults {
    pub(crate) fn new(fail_after_requests: Option<u64>, exit: ExitHook) -> Self {
        Self {
            fail_after_requests,
            served: AtomicU64::new(0),
            exit,
        }
    }

    /// Records one completion request whose whole response has been produced. Only successful
    /// completions count: a rejected request did no engine work.
    pub(crate) fn served(&self) {
        let n = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        // Exactly one caller observes n == limit, so the hook fires once.
        if Some(n) == self.fail_after_requests {
            eprintln!("disagg-sim: fail_after_requests={n} reached: exiting with status 1");
            self.exit.fire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_at_the_limit() {
        let fired = Arc::new(AtomicU64::new(0));
        let seen = fired.clone();
        let faults = Faults::new(
            Some(3),
            ExitHook::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        faults.served();
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_limit_never_fires() {
        let faults = Faults::new(None, ExitHook::new(|| panic!("must not fire")));
        for _ in 0..10 {
            faults.served();
        }
    }
}
