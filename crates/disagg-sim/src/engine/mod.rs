//! The engine: when each output token of a request is due.
//!
//! Two models behind one interface. `simple` gives every request its own clock
//! ([`clock::Schedule`]); `batched` runs a continuous-batching scheduler ([`batched`]) where
//! requests share steps, wait for batch slots and KV capacity, and so queue under load.
//! Handlers only see a [`Feed`]: "wait for your next token".

mod batched;
mod clock;
mod pacer;

pub(crate) use batched::KvHold;
pub(crate) use clock::add as later;
pub(crate) mod cost;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use disagg_proto::ApiError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use clock::Schedule;
use cost::TimingModel;
use pacer::Pacer;

/// The work one request asks of the engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seq {
    /// Prompt tokens to prefill here; 0 when the KV cache arrived by hand-off.
    pub(crate) prefill_tokens: u64,
    /// Prompt tokens the sequence holds in KV (read by every decode step).
    pub(crate) context_tokens: u64,
    /// Output tokens to produce, token 0 included.
    pub(crate) output_tokens: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Engine {
    Simple {
        prefill_per_token: Duration,
        itl: Duration,
        clock_step: Duration,
        metrics: Arc<Metrics>,
    },
    Batched(batched::Scheduler),
}

impl Engine {
    /// Must be called inside a Tokio runtime: the batched model spawns its scheduler task.
    pub(crate) fn start(model: TimingModel, metrics: Arc<Metrics>) -> Self {
        match model {
            TimingModel::Simple {
                prefill_per_token,
                itl,
                clock_step,
            } => Engine::Simple {
                prefill_per_token,
                itl,
                clock_step,
                metrics,
            },
            TimingModel::Batched { cost, limits } => {
                Engine::Batched(batched::Scheduler::start(cost, limits, metrics))
            }
        }
    }

    /// The simple model's token clock step; the batched scheduler has none.
    pub(crate) fn clock_step(&self) -> Option<Duration> {
        match self {
            Engine::Simple { clock_step, .. } => Some(*clock_step),
            Engine::Batched(_) => None,
        }
    }

    /// Queues `seq`, arrived at `start`; the feed yields as each token falls due. With
    /// `hold_kv` (a context-only request) the batched engine keeps the prompt's KV reserved
    /// after the sequence ends, until the returned guard is dropped; the simple model has no
    /// KV accounting and returns no guard.
    pub(crate) fn submit(
        &self,
        seq: Seq,
        start: Instant,
        hold_kv: bool,
    ) -> Result<(Feed, Option<KvHold>), ApiError> {
        match self {
            Engine::Simple {
                prefill_per_token,
                itl,
                clock_step,
                metrics,
            } => {
                let schedule = if seq.prefill_tokens == 0 {
                    Schedule::immediate(start, *itl)
                } else {
                    let s = Schedule::after_prefill(
                        start,
                        *prefill_per_token,
                        seq.prefill_tokens as usize,
                        *itl,
                    );
                    metrics.prefill_step.observe(s.deadline(0) - start);
                    s
                };
                if seq.output_tokens > 1 {
                    metrics.decode_step.observe(*itl);
                }
                metrics.running.fetch_add(1, Relaxed);
                let feed = Feed::Clock {
                    schedule,
                    next: 0,
                    pacer: Pacer::current(),
                    step: *clock_step,
                    _in_flight: InFlight(metrics.clone()),
                };
                Ok((feed, None))
            }
            Engine::Batched(s) => s
                .submit(seq, hold_kv)
                .map(|(rx, hold)| (Feed::Steps(rx), hold)),
        }
    }
}

/// Keeps the simple model's "running" gauge honest, whichever way a request ends.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

/// A request's view of the engine: its tokens, in order, as they fall due.
#[derive(Debug)]
pub(crate) enum Feed {
    Clock {
        schedule: Schedule,
        next: u64,
        /// This thread's token clock.
        pacer: Pacer,
        step: Duration,
        _in_flight: InFlight,
    },
    /// One message per token from the scheduler, carrying its modelled due time; dropping the
    /// receiver cancels the sequence.
    Steps(mpsc::UnboundedReceiver<Instant>),
}

impl Feed {
    /// Waits until the next token is due; returns when it was due (the model's time).
    pub(crate) async fn next(&mut self) -> Result<Instant, ApiError> {
        match self {
            Feed::Clock {
                schedule,
                next,
                pacer,
                step,
                ..
            } => {
                let due = schedule.deadline(*next);
                pacer.until(due, *step).await;
                *next += 1;
                Ok(due)
            }
            Feed::Steps(rx) => rx
                .recv()
                .await
                .ok_or_else(|| ApiError::internal("the sim's scheduler stopped")),
        }
    }

    /// Waits until `n` more tokens are due (one sleep on a clock, not `n`).
    pub(crate) async fn skip(&mut self, n: u64) -> Result<(), ApiError> {
        if n == 0 {
            return Ok(());
        }
        if let Feed::Clock { next, .. } = self {
            *next += n - 1;
            return self.next().await.map(drop);
        }
        for _ in 0..n {
            self.next().await?;
        }
        Ok(())
    }
}
