//! A sub-millisecond timer for token deadlines.
//!
//! Tokio's timer wheel has 1 ms slots, so every token waited for with `sleep_until` leaves
//! 0–1 ms late, and all tokens of a slot wake together in one burst that the runtime then works
//! through one by one. At thousands of streams that burst, not the work itself, made the p99.
//!
//! Here one process-wide thread keeps every pending deadline in a heap, sleeps until the
//! earliest, and wakes the tasks that are due (never one early), in rounds at least
//! [`ROUND`] apart. Wake-ups are spread over the millisecond as the deadlines are, so the
//! runtime gets a steady trickle instead of 1 ms bursts.
//!
//! Deadlines are real time: this timer does not follow Tokio's paused test clock, so only the
//! simple preset's per-request clocks use it (the batched scheduler's unit tests run paused).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Waits until `deadline`, to within the OS timer slack; never returns early.
pub(crate) fn sleep_until(deadline: tokio::time::Instant) -> Sleep {
    Sleep {
        deadline: deadline.into_std(),
        slot: None,
    }
}

pub(crate) struct Sleep {
    deadline: Instant,
    /// Set once registered with the timer thread.
    slot: Option<Arc<Slot>>,
}

/// What a pending sleep and the timer thread share.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    fired: bool,
    /// The future was dropped before its deadline: the heap entry is garbage.
    cancelled: bool,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(slot) = &self.slot {
            let mut st = slot.lock();
            if st.fired {
                return Poll::Ready(());
            }
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                waker: Some(cx.waker().clone()),
                ..SlotState::default()
            }),
        });
        timer().register(self.deadline, slot.clone());
        self.slot = Some(slot);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            let mut st = slot.lock();
            if !st.fired {
                st.cancelled = true;
                st.waker = None;
                timer().cancelled.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The least time between two wake-up rounds. Waking every task the moment it is due costs a
/// cross-thread wake-up, and a worker unpark, per token; at 5000 streams x 20 tokens/s that
/// cost about 0.15 of a core more than Tokio's timer (measured with `examples/load.rs`).
/// Rounds at least 250 µs apart bound that at 4000 a second, and keep tokens within about
/// 0.3 ms of their due time when the sim has CPU to spare.
const ROUND: Duration = Duration::from_micros(250);

struct Entry {
    at: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed: the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

struct Timer {
    heap: Mutex<BinaryHeap<Entry>>,
    /// Signalled when a new deadline is earlier than every pending one.
    earlier: Condvar,
    /// Entries whose sleep was dropped before firing, still in the heap.
    cancelled: AtomicUsize,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            heap: Mutex::new(BinaryHeap::new()),
            earlier: Condvar::new(),
            cancelled: AtomicUsize::new(0),
        }));
        std::thread::Builder::new()
            .name("disagg-sim-timer".into())
            .spawn(move || t.run())
            .expect("spawn the sim's timer thread");
        t
    })
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Entry>> {
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, at: Instant, slot: Arc<Slot>) {
        let mut heap = self.lock();
        let earliest = heap.peek().is_none_or(|e| at < e.at);
        heap.push(Entry { at, slot });
        drop(heap);
        if earliest {
            self.earlier.notify_one();
        }
    }

    fn run(&self) {
        let mut due: Vec<Arc<Slot>> = Vec::new();
        let mut heap = self.lock();
        let mut last_round = Instant::now();
        loop {
            let now = Instant::now();
            while heap.peek().is_some_and(|e| e.at <= now) {
                if let Some(e) = heap.pop() {
                    due.push(e.slot);
                }
            }
            // Drop entries of abandoned sleeps once they are most of the heap, so cancelled
            // far-future deadlines cannot pile up.
            let cancelled = self.cancelled.load(Relaxed);
            if cancelled > 1024 && cancelled * 2 > heap.len() {
                heap.retain(|e| !e.slot.lock().cancelled);
                self.cancelled.store(0, Relaxed);
            }
            if !due.is_empty() {
                last_round = now;
                drop(heap);
                for slot in due.drain(..) {
                    let waker = {
                        let mut st = slot.lock();
                        st.fired = true;
                        st.waker.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                heap = self.lock();
                continue;
            }
            heap = match heap.peek().map(|e| e.at) {
                None => self.earlier.wait(heap).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    let at = at.max(last_round + ROUND);
                    self.earlier
                        .wait_timeout(heap, at.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_the_deadline_never_before() {
        let t0 = tokio::time::Instant::now();
        let waits = (0..50u64).map(|i| async move {
            let due = t0 + Duration::from_micros(200 * (50 - i));
            sleep_until(due).await;
            let now = tokio::time::Instant::now();
            assert!(now >= due, "early by {:?}", due - now);
            now - due
        });
        let late = futures_util::future::join_all(waits).await;
        // Generous: a loaded CI machine may deschedule us, but not for a whole second.
        assert!(late.iter().all(|l| *l < Duration::from_secs(1)), "{late:?}");
    }

    #[tokio::test]
    async fn a_dropped_sleep_does_not_fire_or_leak() {
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        for _ in 0..2000 {
            let mut s = Box::pin(sleep_until(far));
            let first = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
            assert!(first.is_pending());
        }
        // A later sleep still completes (the garbage was swept or waits harmlessly).
        sleep_until(tokio::time::Instant::now() + Duration::from_millis(2)).await;
        let len = timer().lock().len();
        assert!(len <= 2000, "{len}");
    }
}
