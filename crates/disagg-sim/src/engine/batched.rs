//! A continuous-batching scheduler: one task runs engine steps back to back.
//!
//! Each step (see `cost.rs` for its price):
//! 1. every running sequence decodes one token;
//! 2. waiting requests are admitted first come, first served, while the batch has a slot
//!    (`max_batch_size`), the step has token budget (`max_num_tokens`: prompt tokens plus one per
//!    decoding sequence) and the KV cache can reserve prompt + output tokens. The head of the
//!    queue blocks the rest, so a large request is not starved;
//! 3. admitted prompts are prefilled in this step and yield token 0 at its end; requests whose
//!    KV arrived by hand-off skip prefill, yield token 0 on admission and decode from this step.
//!
//! KV is reserved for the whole sequence on admission and never preempted (TensorRT-LLM's
//! "guaranteed no evict" policy), so a full cache shows up as queueing, not as recomputation.
//!
//! Steps are laid end to end on absolute instants: step n+1 starts when step n was modelled to
//! end, not when the task got around to it, so scheduling jitter does not accumulate.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex, MutexGuard};

use disagg_proto::ApiError;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::Seq;
use super::cost::{Limits, StepCost, StepShape};
use crate::metrics::Metrics;

/// The handle requests submit through. When the last clone goes (the sim is dropped, e.g. an
/// in-process sim at the end of a test), the scheduler task finishes its work and ends.
#[derive(Debug, Clone)]
pub(crate) struct Scheduler(Arc<Handle>);

#[derive(Debug)]
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.closed.store(true, Relaxed);
        self.0.wake.notify_one();
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Notify,
    closed: AtomicBool,
    cost: StepCost,
    limits: Limits,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Entry>,
    running: Vec<Entry>,
    kv_used: u64,
}

#[derive(Debug)]
struct Entry {
    seq: Seq,
    tx: mpsc::UnboundedSender<Instant>,
    /// A context-only sequence keeps its prompt's KV after finishing, until its record is
    /// fetched or expires (the blocks wait there for the generation server to pull them).
    hold: Option<Arc<HoldState>>,
    /// Tokens still to emit.
    left: u64,
    /// KV tokens this sequence reads now (context plus generated).
    kv: u64,
}

/// Ownership of a finished sequence's kept KV, between the scheduler and the [`KvHold`].
#[derive(Debug)]
struct HoldState {
    state: AtomicU8,
    tokens: u64,
    shared: std::sync::Weak<Shared>,
}

const PENDING: u8 = 0;
const HELD: u8 = 1;
const RELEASED: u8 = 2;

/// The prompt KV a context sim keeps for a prefilled request; dropping it frees the tokens.
/// Whichever of "the sequence finished" and "the hold was dropped" happens second frees them,
/// so a request cancelled at any point leaks nothing.
#[derive(Debug)]
pub(crate) struct KvHold(Arc<HoldState>);

impl Drop for KvHold {
    fn drop(&mut self) {
        if self.0.state.swap(RELEASED, AcqRel) != HELD {
            return;
        }
        if let Some(shared) = self.0.shared.upgrade() {
            {
                let mut st = shared.lock();
                st.kv_used = st.kv_used.saturating_sub(self.0.tokens);
                shared.publish(&st, 0);
            }
            shared.wake.notify_one();
        }
    }
}

impl Entry {
    /// The KV to free now that the sequence is over; `finished` when it completed normally.
    fn release(&self, finished: bool) -> u64 {
        let keep = match &self.hold {
            Some(h) if finished => h
                .state
                .compare_exchange(PENDING, HELD, AcqRel, Acquire)
                .is_ok(),
            _ => false,
        };
        if keep {
            self.reserve().saturating_sub(self.seq.context_tokens)
        } else {
            self.reserve()
        }
    }

    fn reserve(&self) -> u64 {
        // max_tokens comes from the client: saturate rather than overflow.
        self.seq
            .context_tokens
            .saturating_add(self.seq.output_tokens)
    }
}

impl Scheduler {
    pub(crate) fn start(cost: StepCost, limits: Limits, metrics: Arc<Metrics>) -> Self {
        let capacity = if limits.kv_capacity_tokens == u64::MAX {
            0
        } else {
            limits.kv_capacity_tokens
        };
        metrics.kv_capacity_tokens.store(capacity, Relaxed);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            cost,
            limits,
            metrics,
        });
        tokio::spawn(run(shared.clone()));
        Self(Arc::new(Handle(shared)))
    }

    /// Queues `seq`; with `hold`, also returns the guard of the KV it keeps after finishing.
    pub(crate) fn submit(
        &self,
        seq: Seq,
        hold: bool,
    ) -> Result<(mpsc::UnboundedReceiver<Instant>, Option<KvHold>), ApiError> {
        let shared = &self.0.0;
        let need = seq.context_tokens.saturating_add(seq.output_tokens);
        if need > shared.limits.kv_capacity_tokens {
            return Err(ApiError::bad_request(format!(
                "this request needs {need} KV tokens (prompt + max_tokens) but the sim's KV \
                 capacity is {} tokens (--kv-capacity-tokens)",
                shared.limits.kv_capacity_tokens
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let hold = hold.then(|| {
            Arc::new(HoldState {
                state: AtomicU8::new(PENDING),
                tokens: seq.context_tokens,
                shared: Arc::downgrade(shared),
            })
        });
        let guard = hold.clone().map(KvHold);
        let entry = Entry {
            seq,
            tx,
            hold,
            left: seq.output_tokens,
            kv: seq.context_tokens,
        };
        {
            let mut st = shared.lock();
            st.waiting.push_back(entry);
            shared
                .metrics
                .queue_depth
                .store(st.waiting.len() as u64, Relaxed);
        }
        shared.wake.notify_one();
        Ok((rx, guard))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a sim bug; keep serving with the state as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits what fits and prices the step; `None` when there is nothing to do.
    fn plan(&self, st: &mut State, now: Instant) -> Option<(StepShape, Vec<Entry>)> {
        let mut freed = 0;
        st.running.retain(|e| {
            let keep = !e.tx.is_closed();
            if !keep {
                freed += e.release(false);
            }
            keep
        });
        st.kv_used = st.kv_used.saturating_sub(freed);
        let decoding = st.running.len() as u64;
        let mut shape = StepShape {
            decode_seqs: decoding,
            decode_kv_tokens: st.running.iter().map(|e| e.kv).sum(),
            ..StepShape::default()
        };
        let mut prefilling = Vec::new();
        let budget = self.limits.max_num_tokens.saturating_sub(decoding);
        while let Some(head) = st.waiting.front() {
            if head.tx.is_closed() {
                st.waiting.pop_front();
                continue;
            }
            let slots = st.running.len() + prefilling.len();
            if slots as u64 >= self.limits.max_batch_size
                || st.kv_used.saturating_add(head.reserve()) > self.limits.kv_capacity_tokens
            {
                break;
            }
            let p = head.seq.prefill_tokens;
            // A prompt longer than the whole budget still runs, alone, so it cannot starve.
            let fits = shape.prefill_tokens.saturating_add(p) <= budget
                || (p > 0 && prefilling.is_empty());
            if !fits {
                break;
            }
            let Some(mut e) = st.waiting.pop_front() else {
                break;
            };
            st.kv_used = st.kv_used.saturating_add(e.reserve());
            if p == 0 {
                // The KV cache arrived with the request: token 0 is known, decode from now.
                let _ = e.tx.send(now);
                e.left -= 1;
                if e.left == 0 {
                    st.kv_used = st.kv_used.saturating_sub(e.reserve());
                    continue;
                }
                shape.decode_seqs += 1;
                shape.decode_kv_tokens += e.kv;
                st.running.push(e);
            } else {
                shape.prefill_tokens += p;
                shape.prefill_tokens_sq += (p as f64) * (p as f64);
                prefilling.push(e);
            }
        }
        self.publish(st, prefilling.len());
        (shape.prefill_tokens > 0 || shape.decode_seqs > 0).then_some((shape, prefilling))
    }

    /// Every sequence of the step gets its token; finished and abandoned ones free their KV.
    fn finish_step(&self, st: &mut State, prefilled: Vec<Entry>, end: Instant) {
        let mut freed = 0;
        st.running.retain_mut(|e| {
            let sent = e.tx.send(end).is_ok();
            e.left -= 1;
            e.kv += 1;
            let keep = sent && e.left > 0;
            if !keep {
                freed += e.release(sent);
            }
            keep
        });
        for mut e in prefilled {
            let sent = e.tx.send(end).is_ok();
            e.left -= 1;
            if sent && e.left > 0 {
                st.running.push(e);
            } else {
                freed += e.release(sent);
            }
        }
        st.kv_used = st.kv_used.saturating_sub(freed);
        self.publish(st, 0);
    }

    /// `prefilling`: sequences in the current step that are not in `running` yet.
    fn publish(&self, st: &State, prefilling: usize) {
        let m = &self.metrics;
        m.queue_depth.store(st.waiting.len() as u64, Relaxed);
        m.running
            .store((st.running.len() + prefilling) as u64, Relaxed);
        m.kv_used_tokens.store(st.kv_used, Relaxed);
    }
}

async fn run(s: Arc<Shared>) {
    // Step ends to the microsecond (a Tokio sleep would round each up to the next ms).
    let pacer = super::Pacer::current();
    // End of the last step while the engine stays busy; `None` after it went idle.
    let mut clock: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let planned = {
            let mut st = s.lock();
            s.plan(&mut st, clock.unwrap_or(now))
        };
        let Some((shape, prefilling)) = planned else {
            if s.closed.load(Relaxed) {
                return;
            }
            clock = None;
            s.wake.notified().await;
            continue;
        };
        let duration = s.cost.step(&shape);
        if shape.prefill_tokens > 0 {
            s.metrics.prefill_step.observe(duration);
        } else {
            s.metrics.decode_step.observe(duration);
        }
        let start = clock.unwrap_or(now);
        let end = super::later(start, duration);
        pacer.until(end, std::time::Duration::ZERO).await;
        clock = Some(end);
        let mut st = s.lock();
        s.finish_step(&mut st, prefilling, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cost(prefill_per_token_ms: f64, decode_ms: f64) -> StepCost {
        StepCost {
            prefill_base: 0.0,
            prefill_per_token: prefill_per_token_ms * 1e-3,
            prefill_per_token_sq: 0.0,
            decode_base: decode_ms * 1e-3,
            decode_per_seq: 0.0,
            decode_per_kv_token: 0.0,
        }
    }

    fn seq(prefill: u64, out: u64) -> Seq {
        Seq {
            prefill_tokens: prefill,
            context_tokens: prefill.max(1),
            output_tokens: out,
        }
    }

    async fn drain(mut rx: mpsc::UnboundedReceiver<Instant>) -> Vec<Instant> {
        let mut at = Vec::new();
        while let Some(due) = rx.recv().await {
            assert!(Instant::now() >= due, "a token is never early");
            at.push(Instant::now());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn steps_follow_the_cost_model_exactly() {
        let limits = Limits {
            max_batch_size: 8,
            max_num_tokens: 1000,
            kv_capacity_tokens: 10_000,
        };
        let s = Scheduler::start(cost(1.0, 10.0), limits, Arc::new(Metrics::default()));
        let t0 = Instant::now();
        let at = drain(s.submit(seq(100, 3), false).expect("fits").0).await;
        let ms: Vec<u128> = at.iter().map(|t| (*t - t0).as_millis()).collect();
        // Prefill 100 ms, then two decode steps of 10 ms.
        assert_eq!(ms, vec![100, 110, 120]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_makes_the_next_request_wait() {
        let limits = Limits {
            max_batch_size: 1,
            max_num_tokens: 1000,
            kv_capacity_tokens: 10_000,
        };
        let s = Scheduler::start(cost(1.0, 10.0), limits, Arc::new(Metrics::default()));
        let t0 = Instant::now();
        let a = s.submit(seq(10, 2), false).expect("fits").0;
        let b = s.submit(seq(10, 2), false).expect("fits").0;
        let (a, b) = tokio::join!(drain(a), drain(b));
        assert_eq!(a[1] - t0, Duration::from_millis(20));
        // b is admitted once a is done: its TTFT includes a's whole life.
        assert_eq!(b[0] - t0, Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn kv_capacity_queues_and_oversize_is_refused() {
        let limits = Limits {
            max_batch_size: 8,
            max_num_tokens: 1000,
            kv_capacity_tokens: 30,
        };
        let metrics = Arc::new(Metrics::default());
        let s = Scheduler::start(cost(1.0, 10.0), limits, metrics.clone());
        assert!(s.submit(seq(40, 1), false).is_err());
        let t0 = Instant::now();
        let a = s.submit(seq(10, 10), false).expect("fits").0;
        let b = s.submit(seq(10, 10), false).expect("fits").0;
        let (a, b) = tokio::join!(drain(a), drain(b));
        // 20 + 20 > 30: b waits for a to free its reservation.
        assert!(b[0] >= *a.last().expect("tokens"), "{:?} {:?}", a, b);
        assert_eq!(a[0] - t0, Duration::from_millis(10));
        assert_eq!(metrics.kv_used_tokens.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_context_sequence_keeps_its_prompt_kv_until_the_hold_is_dropped() {
        let limits = Limits {
            max_batch_size: 8,
            max_num_tokens: 1000,
            kv_capacity_tokens: 10_000,
        };
        let metrics = Arc::new(Metrics::default());
        let s = Scheduler::start(cost(1.0, 10.0), limits, metrics.clone());
        let (rx, hold) = s.submit(seq(40, 1), true).expect("fits");
        assert_eq!(drain(rx).await.len(), 1);
        assert_eq!(metrics.kv_used_tokens.load(Relaxed), 40, "prompt KV kept");
        drop(hold);
        assert_eq!(metrics.kv_used_tokens.load(Relaxed), 0);
        // Dropped before it finished (a cancelled request): nothing is kept.
        let (rx, hold) = s.submit(seq(40, 1), true).expect("fits");
        drop(hold);
        assert_eq!(drain(rx).await.len(), 1);
        tokio::task::yield_now().await;
        assert_eq!(metrics.kv_used_tokens.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn handed_off_sequences_skip_prefill() {
        let limits = Limits {
            max_batch_size: 8,
            max_num_tokens: 1000,
            kv_capacity_tokens: 10_000,
        };
        let s = Scheduler::start(cost(1000.0, 10.0), limits, Arc::new(Metrics::default()));
        let t0 = Instant::now();
        let at = drain(
            s.submit(
                Seq {
                    prefill_tokens: 0,
                    context_tokens: 50,
                    output_tokens: 3,
                },
                false,
            )
            .expect("fits")
            .0,
        )
        .await;
        let ms: Vec<u128> = at.iter().map(|t| (*t - t0).as_millis()).collect();
        assert_eq!(ms, vec![0, 10, 20]);
    }
}
