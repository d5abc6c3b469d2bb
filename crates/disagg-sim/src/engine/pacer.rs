//! The token clock of the `simple` model: one per serving thread, releasing due tokens in
//! deadline order on a fixed grid.
//!
//! With a Tokio timer per stream, the tokens that fell due in the same millisecond were woken
//! in an order that changed from round to round (the timer wheel's slot order, the worker's
//! LIFO slot, work stealing), and the round itself started anywhere in a window of about a
//! millisecond (Tokio parks in `epoll_wait` with a timeout in whole milliseconds). A stream's
//! lateness therefore moved by up to a millisecond between two of its tokens: that was the
//! gap error. The pacer keeps every pending deadline of its thread in one ordered map and
//! wakes the due ones from one task, earliest first:
//! - it sleeps on a `timerfd` in Tokio's own epoll set, so it wakes at the instant it asked
//!   for, on the thread whose streams it wakes: one wake-up, no thread in between;
//! - rounds fall on a fixed grid (`--clock-step`; by default the largest step of at most 1 ms
//!   that divides `--itl`), so under load it wakes at most once a step, and a stream whose gaps are whole steps always lands at the same place
//!   in a round: its lateness stays the same from token to token, and its gaps stay exact.
//!
//! Deadlines stay absolute, so a late token never shifts the ones after it. A Tokio sleep to
//! the same instant runs beside the `timerfd`: it is the fallback where no `timerfd` can be
//! made, and it is what fires under a paused test clock. The sim's README has the figures.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

/// A deadline in the queue, ordered by release, then by due time, then by registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// When the pacer releases it: `due` rounded up to the clock step's grid.
    release: Instant,
    due: Instant,
    id: u64,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: BTreeMap<Key, Waker>,
    next_id: u64,
    pacer: State,
}

/// What the pacer is doing, so a new deadline wakes it only when it must.
#[derive(Debug, Default, Clone, Copy)]
enum State {
    /// Between rounds or in one: it reads the queue again before it next sleeps.
    #[default]
    Busy,
    /// Nothing is queued; it waits for a deadline.
    Idle,
    /// Asleep until this instant.
    Asleep(Instant),
}

#[derive(Debug)]
struct Shared {
    /// The origin of every clock step's grid.
    epoch: Instant,
    queue: Mutex<Queue>,
    /// A deadline earlier than every other was registered: the pacer's sleep is too long.
    earlier: Notify,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the map half-updated: every critical
        // section is a single map operation.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ends the pacer's task with the last handle: the thread's own, when the thread exits.
#[derive(Debug)]
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    shared: Arc<Shared>,
    task: Arc<AbortOnDrop>,
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Pacer>> = const { std::cell::RefCell::new(None) };
}

impl Pacer {
    /// This thread's pacer, started on first use. Must be called inside a Tokio runtime. A
    /// pacer whose runtime has shut down (its task is gone) is replaced.
    pub(crate) fn current() -> Self {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            match &*c {
                Some(p) if !p.task.0.is_finished() => p.clone(),
                _ => c.insert(Self::start()).clone(),
            }
        })
    }

    /// Must be called inside a Tokio runtime: spawns the task that wakes the due streams.
    pub(crate) fn start() -> Self {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            queue: Mutex::default(),
            earlier: Notify::new(),
        });
        let task = tokio::spawn(run(shared.clone()));
        Self {
            shared,
            task: Arc::new(AbortOnDrop(task.abort_handle())),
        }
    }

    /// Completes at `due` rounded up to the next multiple of `step` (counted from this
    /// pacer's start), or soon after, in deadline order with every other wait. A zero `step`
    /// releases at `due` itself.
    pub(crate) fn until(&self, due: Instant, step: Duration) -> Until<'_> {
        Until {
            shared: &self.shared,
            due,
            release: on_grid(self.shared.epoch, step, due),
            key: None,
        }
    }
}

/// Tokio's `AsyncFd` asks for `AsRawFd`; nix's `TimerFd` offers `AsFd`.
struct Timer(TimerFd);

impl std::os::fd::AsRawFd for Timer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer with nanosecond resolution, read through Tokio's reactor.
struct Alarm(Option<AsyncFd<Timer>>);

impl Alarm {
    fn new() -> Self {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)
            .ok()
            .and_then(|t| {
                // SAFETY: `Timer` owns its fd and neither closes nor replaces it while the
                // `AsyncFd` holds it; the fd closes when the `AsyncFd` (and so the `Timer`) drops.
                unsafe { AsyncFd::register_with_interest(Timer(t), Interest::READABLE) }.ok()
            });
        if fd.is_none() {
            tracing::debug!("no timerfd: the sim's token clock falls back to Tokio's 1 ms timer");
        }
        Self(fd)
    }

    /// Returns at `at` or a little after; at times earlier (a stale expiry): callers re-check.
    async fn until(&self, at: Instant) {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Already due: a Tokio sleep here would round up to the next millisecond.
            return;
        }
        let armed = self.0.as_ref().filter(|fd| {
            fd.get_ref()
                .0
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(left)),
                    TimerSetTimeFlags::empty(),
                )
                .is_ok()
        });
        let Some(fd) = armed else {
            return sleep_until(at).await;
        };
        tokio::select! {
            biased;
            ready = fd.readable() => {
                if let Ok(mut guard) = ready {
                    // Consume the expiry count; EAGAIN only means it was already consumed.
                    let _ = guard.get_inner().0.wait();
                    guard.clear_ready();
                }
            }
            _ = sleep_until(at) => {}
        }
    }
}

async fn run(shared: Arc<Shared>) {
    let alarm = Alarm::new();
    let mut due = Vec::new();
    loop {
        let target = {
            let mut q = shared.queue();
            let first = q.waiting.first_key_value().map(|(k, _)| k.release);
            q.pacer = first.map_or(State::Idle, State::Asleep);
            first
        };
        match target {
            None => shared.earlier.notified().await,
            Some(at) if at > Instant::now() => {
                tokio::select! {
                    _ = alarm.until(at) => {}
                    _ = shared.earlier.notified() => {}
                }
            }
            Some(_) => {
                let now = Instant::now();
                {
                    let mut q = shared.queue();
                    q.pacer = State::Busy;
                    while let Some(entry) = q.waiting.first_entry() {
                        if entry.key().release > now {
                            break;
                        }
                        due.push(entry.remove());
                    }
                }
                // Outside the lock: a woken stream may register its next deadline at once.
                for waker in due.drain(..) {
                    waker.wake();
                }
            }
        }
    }
}

/// The first instant at or after `t` on a grid of `step` from `epoch`. A stream whose gaps
/// are whole steps then always lands at the same place in a round, so its lateness stays the
/// same from token to token.
fn on_grid(epoch: Instant, step: Duration, t: Instant) -> Instant {
    let step = step.as_nanos();
    if step == 0 {
        return t;
    }
    let steps = t.saturating_duration_since(epoch).as_nanos().div_ceil(step);
    u64::try_from(steps * step)
        .ok()
        .and_then(|n| epoch.checked_add(Duration::from_nanos(n)))
        .unwrap_or(t)
}

/// The future of [`Pacer::until`]; dropping it withdraws the deadline.
#[derive(Debug)]
pub(crate) struct Until<'a> {
    shared: &'a Shared,
    due: Instant,
    release: Instant,
    /// Set while the deadline is in the queue.
    key: Option<Key>,
}

impl Future for Until<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut q = this.shared.queue();
        match this.key {
            None => {
                let key = Key {
                    release: this.release,
                    due: this.due,
                    id: q.next_id,
                };
                q.next_id += 1;
                q.waiting.insert(key, cx.waker().clone());
                this.key = Some(key);
                let wake = match q.pacer {
                    State::Busy => false,
                    State::Idle => true,
                    State::Asleep(until) => this.release < until,
                };
                if wake {
                    // Once is enough: the pacer reads the queue before it sleeps again.
                    q.pacer = State::Busy;
                }
                drop(q);
                if wake {
                    this.shared.earlier.notify_one();
                }
                Poll::Pending
            }
            Some(key) => match q.waiting.get_mut(&key) {
                Some(waker) => {
                    waker.clone_from(cx.waker());
                    Poll::Pending
                }
                // The pacer took it out: the deadline has passed.
                None => {
                    this.key = None;
                    Poll::Ready(())
                }
            },
        }
    }
}

impl Drop for Until<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.shared.queue().waiting.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wakes_at_the_deadline_and_not_before() {
        let pacer = Pacer::start();
        let start = Instant::now();
        pacer
            .until(start + Duration::from_millis(30), Duration::ZERO)
            .await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_millis(32), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_past_deadline_completes_at_once() {
        let pacer = Pacer::start();
        let start = Instant::now();
        pacer
            .until(start - Duration::from_millis(5), Duration::ZERO)
            .await;
        assert!(start.elapsed() < Duration::from_millis(2));
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_in_deadline_order_whatever_the_registration_order() {
        let pacer = Pacer::start();
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Registered latest-first, due in the same millisecond.
        for i in (0..8u64).rev() {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                pacer
                    .until(
                        start + Duration::from_micros(20_000 + 10 * i),
                        Duration::from_millis(1),
                    )
                    .await;
                order.lock().unwrap().push(i);
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_cuts_the_pacers_sleep_short() {
        let pacer = Pacer::start();
        let start = Instant::now();
        let late = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                pacer
                    .until(start + Duration::from_secs(10), Duration::ZERO)
                    .await
            }
        });
        tokio::task::yield_now().await;
        pacer
            .until(start + Duration::from_millis(5), Duration::ZERO)
            .await;
        assert!(start.elapsed() < Duration::from_millis(7));
        late.abort();
    }

    #[test]
    fn the_grid_keeps_a_streams_offset_when_its_gaps_are_whole_steps() {
        let epoch = Instant::now();
        let step = Duration::from_micros(500);
        let first = epoch + Duration::from_micros(12_345);
        let offsets: Vec<Duration> = (0..20)
            .map(|k| first + Duration::from_millis(50) * k)
            .map(|due| on_grid(epoch, step, due) - due)
            .collect();
        assert!(offsets.iter().all(|o| *o == offsets[0]), "{offsets:?}");
        assert!(offsets[0] < step);
        // Never early, and no grid at all with a zero step.
        for us in [0, 1, 499, 500, 501, 1_000_000] {
            let due = epoch + Duration::from_micros(us);
            let release = on_grid(epoch, step, due);
            assert!(release >= due && release - due < step, "{us} µs");
            assert_eq!(on_grid(epoch, Duration::ZERO, due), due);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_leaves_the_queue() {
        let pacer = Pacer::start();
        let start = Instant::now();
        let wait = pacer.until(start + Duration::from_secs(1), Duration::ZERO);
        let _ = tokio::time::timeout(Duration::from_millis(1), wait).await;
        assert!(pacer.shared.queue().waiting.is_empty());
    }
}
