//! One worker as the router sees it: its address, its load and its health. A [`Lease`] counts a
//! request against a worker for exactly as long as the request holds it, however it ends
//! (finished, failed, or cancelled by a client hang-up), so the census never leaks load.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Most cooldowns one ejection for failed requests lasts: a worker failing each trial after its
/// readmissions is out 1, 2, 3, ... cooldowns, then this many each time (5 min at the default
/// 30 s), and back to one once it answers a request.
pub(crate) const MAX_COOLDOWN_FACTOR: u32 = 10;

/// Milliseconds since the first call in this process: a cheap, monotonic stamp an atomic holds.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A count of events and the last one's account (a worker's failed requests, its refusals):
/// the count a relaxed atomic, the account written only when an event comes.
#[derive(Debug, Default)]
struct Tally {
    count: AtomicU64,
    last: Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, why: &dyn std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

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
    /// Consecutive requests that failed at it; reset by an answered one.
    request_failures: AtomicU32,
    /// [`now_ms`] until which an ejection for failed requests holds, whatever a probe says.
    out_until_ms: AtomicU64,
    /// Ejections for failed requests since it last answered one: each is longer than the last
    /// (the cooldown times this, up to [`MAX_COOLDOWN_FACTOR`]), so a worker that fails its
    /// trial request after each readmission is tried less and less often.
    ejections_in_a_row: AtomicU32,
    /// [`now_ms`] when it last answered a request, sent a byte of one, or took one while idle
    /// (not when a request on it ended by a deadline, as `last_progress_ms` counts).
    last_answer_ms: AtomicU64,
    /// TensorRT-LLM: whether this (context) worker takes a `disagg_request_id`, as learnt from
    /// its `/version`: a [`VersionTake`] as a `u8`, read lock-free by every context request.
    disagg_ids: AtomicU8,
    /// `/version` asks that ended (answered or not), so a request that waited for someone
    /// else's ask knows it ended rather than asking again.
    version_asks: AtomicU64,
    /// One `/version` ask at a time per worker: requests that need the answer and the health
    /// checker queue here instead of asking in parallel.
    pub(crate) version_turn: tokio::sync::Mutex<()>,
    /// Requests sent to it (leases taken), and how many of them failed at it.
    requests: AtomicU64,
    /// With the last failure's account, written only when a request fails.
    errors: Tally,
    /// Of `errors`, those that were a deadline passing (no answer, or an answer not finished,
    /// in time): a worker whose every error is one hangs, rather than fails.
    deadline_errors: AtomicU64,
    /// Requests it refused as the request's own fault (a 4xx: too long for its context, a bad
    /// parameter), not counted in `errors`, and the last refusal's account: a worker refusing
    /// every request shows it, and why, in `/workers`.
    rejections: Tally,
    /// [`now_ms`] when a request on it last ended, or when it last went from idle to busy: with
    /// requests in flight, how long it has finished none of them.
    last_progress_ms: AtomicU64,
    /// New requests pass it over as stalled (see [`crate::policy::WorkerGroup::is_stalled`]);
    /// kept so that the change is said once each way.
    passed_over: AtomicBool,
    /// Its group's breaker (failed requests in a row that eject it, and for how long), for
    /// what fails after the request was answered: a stream cut under way.
    breaker: OnceLock<(u32, Duration)>,
    /// Streams it cut under way in a row, since the last it relayed to its end.
    cuts_in_a_row: AtomicU32,
    /// Ejections for cut streams (counted with its group's ejections).
    pub(crate) cut_ejections: AtomicU64,
}

/// What a context worker's `/version` said about `disagg_request_id` (TensorRT-LLM dialect,
/// `--disagg-request-id auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionTake {
    /// Not answered yet and not known to be silent: a request waits for an ask to end.
    Pending,
    /// It answered TensorRT-LLM 1.3 or newer.
    Takes,
    /// It answered something else: an older version, no version, or no `/version` (4xx).
    Refuses,
    /// Its last ask timed out or got a 5xx: requests go without the id (as to an older
    /// version) without waiting, and the health checker asks again every round.
    Silent,
}

impl VersionTake {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Takes,
            2 => Self::Refuses,
            3 => Self::Silent,
            _ => Self::Pending,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Takes => 1,
            Self::Refuses => 2,
            Self::Silent => 3,
        }
    }
}

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
            request_failures: AtomicU32::new(0),
            out_until_ms: AtomicU64::new(0),
            ejections_in_a_row: AtomicU32::new(0),
            last_answer_ms: AtomicU64::new(now_ms()),
            disagg_ids: AtomicU8::new(VersionTake::Pending.as_u8()),
            version_asks: AtomicU64::new(0),
            version_turn: tokio::sync::Mutex::new(()),
            requests: AtomicU64::new(0),
            errors: Tally::default(),
            deadline_errors: AtomicU64::new(0),
            rejections: Tally::default(),
            last_progress_ms: AtomicU64::new(now_ms()),
            passed_over: AtomicBool::new(false),
            breaker: OnceLock::new(),
            cuts_in_a_row: AtomicU32::new(0),
            cut_ejections: AtomicU64::new(0),
        }
    }

    /// Its group's breaker, for [`Self::stream_cut`].
    pub fn set_breaker(&self, after: u32, cooldown: Duration) {
        let _ = self.breaker.set((after, cooldown));
    }

    /// A stream it gave was relayed to its end: cut streams no longer run in a row.
    pub fn stream_completed(&self) {
        if self.cuts_in_a_row.load(Ordering::Relaxed) != 0 {
            self.cuts_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A stream it gave broke under way, after its first byte had counted as an answer: a
    /// failed request all the same, and those in a row (answered, then cut, each) eject it as
    /// other failed requests do. `Ejected` when this one did.
    pub fn stream_cut(&self) -> Transition {
        self.cuts_in_a_row.fetch_add(1, Ordering::Relaxed);
        let Some(&(after, cooldown)) = self.breaker.get() else {
            return Transition::None;
        };
        let t = self.record_request_failure(after, cooldown, false);
        if t == Transition::Ejected {
            self.cut_ejections.fetch_add(1, Ordering::Relaxed);
        }
        t
    }

    /// Records whether new requests pass this worker over as stalled; true when that changed.
    pub fn set_passed_over(&self, stalled: bool) -> bool {
        // A load first: the swap (a write) only when it changes, once each way.
        self.passed_over.load(Ordering::Relaxed) != stalled
            && self.passed_over.swap(stalled, Ordering::Relaxed) != stalled
    }

    /// A request sent to this worker failed at it (an error answer, a timeout, a cut stream):
    /// counted, and `why` kept as the last account.
    pub fn record_error(&self, why: &dyn std::fmt::Display) {
        self.errors.record(why);
    }

    /// A request sent to this worker was refused as its own fault (a 4xx): counted apart from
    /// the worker's errors, and `why` kept as the last refusal's account.
    pub fn record_rejection(&self, why: &dyn std::fmt::Display) {
        self.rejections.record(why);
    }

    pub fn rejections(&self) -> u64 {
        self.rejections.count()
    }

    pub fn last_rejection(&self) -> Option<String> {
        self.rejections.last()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.count()
    }

    /// One of its errors (recorded by [`Self::record_error`] too) was a deadline passing.
    pub fn missed_deadline(&self) {
        self.deadline_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deadline_errors(&self) -> u64 {
        self.deadline_errors.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        self.errors.last()
    }

    /// With requests in flight, how long since it last finished one, sent a byte of a streamed
    /// answer, or took one while idle: at most the age of its oldest request. Zero when idle.
    pub fn stalled_for(&self) -> Duration {
        if self.in_flight() == 0 {
            return Duration::ZERO;
        }
        let since = self.last_progress_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(since))
    }

    /// A byte of an answer came from this worker: it is not stalled, even if it has finished
    /// nothing yet (a long stream). One relaxed load, and a store at most once a millisecond.
    pub fn progressed(&self) {
        let now = now_ms();
        if self.last_progress_ms.load(Ordering::Relaxed) != now {
            self.last_progress_ms.store(now, Ordering::Relaxed);
            self.last_answer_ms.store(now, Ordering::Relaxed);
        }
    }

    /// How long since it last answered a request, sent a byte of one, or took one while idle
    /// (since it was added, when none of these).
    pub fn silent_for(&self) -> Duration {
        let since = self.last_answer_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(since))
    }

    /// What this worker's `/version` said about `disagg_request_id` (one relaxed load).
    pub fn version_take(&self) -> VersionTake {
        VersionTake::from_u8(self.disagg_ids.load(Ordering::Relaxed))
    }

    /// How many `/version` asks of this worker have ended.
    pub fn version_asks(&self) -> u64 {
        self.version_asks.load(Ordering::Relaxed)
    }

    /// Its `/version` is to be asked again before its next context request: it came back
    /// after being out (a restart may be another version: a rollback to one that refuses the
    /// id, an upgrade to one that needs it), or it refused the id it was sent.
    pub fn forget_version(&self) {
        let _ = self
            .disagg_ids
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                matches!(
                    VersionTake::from_u8(v),
                    VersionTake::Takes | VersionTake::Refuses
                )
                .then_some(VersionTake::Pending.as_u8())
            });
    }

    /// An ask of `/version` ended with `take`; called with [`Self::version_turn`] held.
    pub fn version_asked(&self, take: VersionTake) {
        self.disagg_ids.store(take.as_u8(), Ordering::Relaxed);
        self.version_asks.fetch_add(1, Ordering::Relaxed);
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

    /// Consecutive requests that failed at it.
    pub fn request_failures(&self) -> u32 {
        self.request_failures.load(Ordering::Relaxed)
    }

    /// A request it answered: the count of failed ones starts again, unless its streams have
    /// been cut under way since it last relayed one whole (a first byte is no answer then).
    pub fn answered(&self) {
        let now = now_ms();
        if self.last_answer_ms.load(Ordering::Relaxed) != now {
            self.last_answer_ms.store(now, Ordering::Relaxed);
        }
        if self.cuts_in_a_row.load(Ordering::Relaxed) == 0
            && self.request_failures.load(Ordering::Relaxed) != 0
        {
            self.request_failures.store(0, Ordering::Relaxed);
            self.ejections_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed at it; `after` in a row eject it, probes or not (`at_once`: this one
    /// does, whatever the count: it hung). Each ejection since its last answer lasts one
    /// `cooldown` longer than the last, up to [`MAX_COOLDOWN_FACTOR`] of them. Once readmitted
    /// the count stands, so one more failure ejects it again (until an answer).
    pub fn record_request_failure(
        &self,
        after: u32,
        cooldown: Duration,
        at_once: bool,
    ) -> Transition {
        let mut n = self
            .request_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if at_once && n < after {
            self.request_failures.fetch_max(after, Ordering::Relaxed);
            n = after;
        }
        if n < after {
            return Transition::None;
        }
        // A failure while already out (a request that was in flight) extends the ejection it is
        // in; only a new ejection lengthens the next.
        let was_healthy = self.healthy.swap(false, Ordering::Relaxed);
        let k = if was_healthy {
            self.ejections_in_a_row.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.ejections_in_a_row.load(Ordering::Relaxed).max(1)
        };
        let out_for = cooldown.saturating_mul(k.min(MAX_COOLDOWN_FACTOR));
        let until = now_ms().saturating_add(out_for.as_millis() as u64);
        self.out_until_ms.fetch_max(until, Ordering::Relaxed);
        if was_healthy {
            Transition::Ejected
        } else {
            Transition::None
        }
    }

    /// How much longer an ejection for failed requests holds (zero when none does).
    pub fn out_for(&self) -> Duration {
        let until = self.out_until_ms.load(Ordering::Relaxed);
        Duration::from_millis(until.saturating_sub(now_ms()))
    }

    /// A probe passed (or a request got an answer): the worker is back, if it was out and no
    /// ejection for failed requests still holds.
    pub fn record_success(&self) -> Transition {
        if now_ms() < self.out_until_ms.load(Ordering::Relaxed) {
            return Transition::None;
        }
        self.failures.store(0, Ordering::Relaxed);
        if self.healthy.swap(true, Ordering::Relaxed) {
            Transition::None
        } else {
            self.forget_version();
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
        if worker.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            let now = now_ms();
            worker.last_progress_ms.store(now, Ordering::Relaxed);
            worker.last_answer_ms.store(now, Ordering::Relaxed);
        }
        worker.requests.fetch_add(1, Ordering::Relaxed);
        worker.in_flight_tokens.fetch_add(tokens, Ordering::Relaxed);
        Self { worker, tokens }
    }

    pub fn url(&self) -> &str {
        &self.worker.url
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.worker
            .last_progress_ms
            .store(now_ms(), Ordering::Relaxed);
        self.worker.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.worker
            .in_flight_tokens
            .fetch_sub(self.tokens, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failed requests in a row eject a worker for the cooldown whatever its probes say; then a
    /// probe readmits it, and one more failure ejects it again, until a request is answered.
    #[test]
    fn failed_requests_eject_for_the_cooldown_whatever_the_probes_say() {
        let w = Worker::new("a".into(), None);
        let cooldown = Duration::from_millis(60);
        assert_eq!(
            w.record_request_failure(3, cooldown, false),
            Transition::None
        );
        assert_eq!(
            w.record_request_failure(3, cooldown, false),
            Transition::None
        );
        w.answered();
        assert_eq!(w.request_failures(), 0, "an answer starts the count again");
        for _ in 0..2 {
            assert_eq!(
                w.record_request_failure(3, cooldown, false),
                Transition::None
            );
        }
        assert_eq!(
            w.record_request_failure(3, cooldown, false),
            Transition::Ejected
        );
        assert!(!w.is_healthy());
        assert_eq!(
            w.record_success(),
            Transition::None,
            "a probe within the cooldown"
        );
        assert!(!w.is_healthy());
        std::thread::sleep(cooldown + Duration::from_millis(10));
        assert_eq!(w.record_success(), Transition::Readmitted);
        assert_eq!(
            w.record_request_failure(3, cooldown, false),
            Transition::Ejected,
            "half open: one more failure"
        );
    }

    /// Each ejection since the worker last answered lasts one cooldown longer, up to
    /// MAX_COOLDOWN_FACTOR; an answer brings it back to one. A hung request ejects at once.
    #[test]
    fn each_ejection_since_the_last_answer_lasts_one_cooldown_longer() {
        let w = Worker::new("a".into(), None);
        let cooldown = Duration::from_secs(100);
        let out_in = |cooldowns: u32| {
            let out = w.out_for();
            let full = cooldown * cooldowns;
            assert!(
                out <= full && out + Duration::from_secs(1) > full,
                "out for {out:?}, expected {full:?}"
            );
        };
        let readmit = || {
            w.out_until_ms.store(0, Ordering::Relaxed);
            assert_eq!(w.record_success(), Transition::Readmitted);
        };
        assert_eq!(
            w.record_request_failure(5, cooldown, true),
            Transition::Ejected,
            "a hung request ejects at once"
        );
        out_in(1);
        assert_eq!(
            w.record_request_failure(5, cooldown, false),
            Transition::None,
            "one in flight while out"
        );
        out_in(1);
        for k in 2..=12 {
            readmit();
            assert_eq!(
                w.record_request_failure(5, cooldown, false),
                Transition::Ejected,
                "its trial request after readmission"
            );
            out_in(k.min(MAX_COOLDOWN_FACTOR));
        }
        readmit();
        w.answered();
        assert_eq!(w.request_failures(), 0);
        assert_eq!(
            w.record_request_failure(1, cooldown, false),
            Transition::Ejected
        );
        out_in(1);
    }

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
        assert_eq!(w.requests(), 2);
    }

    #[test]
    fn errors_are_counted_with_the_last_account_and_a_stall_is_measured_while_busy() {
        let w = Arc::new(Worker::new("a".into(), None));
        assert_eq!(w.stalled_for(), Duration::ZERO);
        let held = Lease::new(w.clone(), 1);
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            w.stalled_for() >= Duration::from_millis(25),
            "{:?}",
            w.stalled_for()
        );
        w.record_error(&"first");
        w.record_error(&"HTTP 500: boom");
        assert_eq!(
            (w.errors(), w.last_error().as_deref()),
            (2, Some("HTTP 500: boom"))
        );
        // A streamed byte is progress, though nothing finished.
        w.progressed();
        assert!(
            w.stalled_for() < Duration::from_millis(25),
            "{:?}",
            w.stalled_for()
        );
        drop(held);
        assert_eq!(w.stalled_for(), Duration::ZERO, "idle");
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

    /// A worker back after being out may be another version (a restart, a rollback): its
    /// `/version` is asked again before its next context request. One never out keeps it.
    #[test]
    fn a_readmitted_worker_has_its_version_asked_again() {
        let w = Worker::new("a".into(), None);
        w.version_asked(VersionTake::Takes);
        assert_eq!(w.record_success(), Transition::None);
        assert_eq!(w.version_take(), VersionTake::Takes);
        w.record_failure(1);
        assert_eq!(w.record_success(), Transition::Readmitted);
        assert_eq!(w.version_take(), VersionTake::Pending);
        // An unanswered one stays so (the checker asks it every round anyway).
        w.version_asked(VersionTake::Silent);
        w.forget_version();
        assert_eq!(w.version_take(), VersionTake::Silent);
    }
}
