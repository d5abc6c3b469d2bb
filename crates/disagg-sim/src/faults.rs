//! Scripted faults: crash or hang after N served requests (or stall its completions only, with
//! `/health` still answering), a 500 or a cut stream on the N-th request, a failed or slow KV
//! transfer.
//!
//! Faults are deterministic by design (STYLE.md: "fail the 3rd request", never random), so a
//! harness test can predict exactly which request sees the dead engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::args::FaultArgs;

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

/// Counts requests and hand-offs, and says which of them a script makes fail.
#[derive(Debug)]
pub(crate) struct Faults {
    fail_after_requests: Option<u64>,
    hang_after_requests: Option<u64>,
    stall_after_requests: Option<u64>,
    error_on_request: Vec<u64>,
    drop_stream_on_request: Vec<u64>,
    drop_after_tokens: u64,
    kv_transfer_fail_on: Vec<u64>,
    disregard_ignore_eos: bool,
    served: AtomicU64,
    arrived: AtomicU64,
    transfers: AtomicU64,
    hung: AtomicBool,
    stalled: AtomicBool,
    exit: ExitHook,
}

/// What the script says about one arriving request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Serve,
    /// Answer 500 (`--error-on-request`); carries the request number.
    Error(u64),
    /// Cut the stream after this many token chunks (`--drop-stream-on-request`).
    DropAfter(u64),
}

impl Faults {
    pub(crate) fn new(args: &FaultArgs, exit: ExitHook) -> Self {
        Self {
            fail_after_requests: args.fail_after_requests,
            hang_after_requests: args.hang_after_requests,
            stall_after_requests: args.stall_after_requests,
            disregard_ignore_eos: args.disregard_ignore_eos,
            error_on_request: args.error_on_request.clone(),
            drop_stream_on_request: args.drop_stream_on_request.clone(),
            drop_after_tokens: args.drop_after_tokens,
            kv_transfer_fail_on: args.kv_transfer_fail_on.clone(),
            served: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            transfers: AtomicU64::new(0),
            hung: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            exit,
        }
    }

    /// Numbers an arriving completion request (from 1, every request counts, even a malformed
    /// one, so a script's "N-th" is what a client counts) and says what to do with it.
    pub(crate) fn arrive(&self) -> Verdict {
        let n = self.arrived.fetch_add(1, Ordering::AcqRel) + 1;
        if self.error_on_request.contains(&n) {
            Verdict::Error(n)
        } else if self.drop_stream_on_request.contains(&n) {
            Verdict::DropAfter(self.drop_after_tokens)
        } else {
            Verdict::Serve
        }
    }

    /// Numbers a KV hand-off; `Some(n)` when the script makes this one fail.
    pub(crate) fn transfer_fails(&self) -> Option<u64> {
        let n = self.transfers.fetch_add(1, Ordering::AcqRel) + 1;
        self.kv_transfer_fail_on.contains(&n).then_some(n)
    }

    /// The sim is hung (`--hang-after-requests` reached): nothing answers any more.
    /// `--disregard-ignore-eos`: answers end at the scripted EOS whatever the request asks.
    pub(crate) fn disregards_ignore_eos(&self) -> bool {
        self.disregard_ignore_eos
    }

    pub(crate) fn hung(&self) -> bool {
        self.hung.load(Ordering::Acquire)
    }

    /// Completion requests get no answer (`--hang-after-requests` or `--stall-after-requests`
    /// reached); with a stall alone, `/health` and the rest still answer.
    pub(crate) fn completions_hang(&self) -> bool {
        self.hung() || self.stalled.load(Ordering::Acquire)
    }

    /// Records one completion request whose whole response has been produced. Only successful
    /// completions count: a rejected request did no engine work.
    pub(crate) fn served(&self) {
        let n = self.served.fetch_add(1, Ordering::AcqRel) + 1;
        if Some(n) == self.hang_after_requests {
            say_err!("disagg-sim: hang_after_requests={n} reached: no longer answering");
            self.hung.store(true, Ordering::Release);
        }
        if Some(n) == self.stall_after_requests {
            say_err!(
                "disagg-sim: stall_after_requests={n} reached: completion requests get no answer \
                 from now on; /health still answers"
            );
            self.stalled.store(true, Ordering::Release);
        }
        // Exactly one caller observes n == limit, so the hook fires once.
        if Some(n) == self.fail_after_requests {
            say_err!("disagg-sim: fail_after_requests={n} reached: exiting with status 1");
            // Nothing more is answered between now and the exit: the fault is exact, as an
            // engine that died after its Nth answer.
            self.hung.store(true, Ordering::Release);
            self.exit.fire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_faults() -> FaultArgs {
        FaultArgs {
            fail_after_requests: None,
            hang_after_requests: None,
            stall_after_requests: None,
            error_on_request: Vec::new(),
            drop_stream_on_request: Vec::new(),
            drop_after_tokens: 1,
            kv_transfer_delay: Duration::ZERO,
            kv_transfer_fail_on: Vec::new(),
            disregard_ignore_eos: false,
        }
    }

    #[test]
    fn requests_are_numbered_as_they_arrive() {
        let args = FaultArgs {
            error_on_request: vec![2],
            drop_stream_on_request: vec![3],
            drop_after_tokens: 4,
            hang_after_requests: Some(2),
            kv_transfer_fail_on: vec![1],
            ..no_faults()
        };
        let f = Faults::new(&args, ExitHook::new(|| ()));
        let verdicts: Vec<_> = (0..4).map(|_| f.arrive()).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Serve,
                Verdict::Error(2),
                Verdict::DropAfter(4),
                Verdict::Serve
            ]
        );
        assert_eq!(f.transfer_fails(), Some(1));
        assert_eq!(f.transfer_fails(), None);
        f.served();
        assert!(!f.hung());
        f.served();
        assert!(f.hung());
    }

    #[test]
    fn fires_once_at_the_limit() {
        let fired = Arc::new(AtomicU64::new(0));
        let seen = fired.clone();
        let args = FaultArgs {
            fail_after_requests: Some(3),
            ..no_faults()
        };
        let faults = Faults::new(
            &args,
            ExitHook::new(move || {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        faults.served();
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        assert!(!faults.completions_hang());
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        // From the limit on nothing is answered, whenever the process gets to exit.
        assert!(faults.completions_hang());
        faults.served();
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_limit_never_fires() {
        let faults = Faults::new(&no_faults(), ExitHook::new(|| panic!("must not fire")));
        for _ in 0..10 {
            faults.served();
        }
    }
}
