//! Picking one worker out of a group. One file per [`Policy`] under `policy/`; adding one means
//! a variant, a file, and an arm in [`WorkerGroup::pick`].

mod least_loaded;
mod prefix_affinity;
mod round_robin;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Policy;
use crate::error::{Leg, ProxyError};
use crate::worker::{Lease, Transition, Worker};

pub(crate) use least_loaded::Load;

/// What a policy may look at in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PickInput<'a> {
    /// The prompt's raw JSON (prefix affinity hashes its start).
    pub prompt: &'a [u8],
    /// Estimated tokens (least tokens balances on it).
    pub tokens: u64,
}

/// The workers doing one leg, and the state their policy needs.
#[derive(Debug)]
pub(crate) struct WorkerGroup {
    pub leg: Leg,
    pub workers: Vec<Arc<Worker>>,
    pub policy: Policy,
    eject_after: u32,
    /// A worker stalled this long gets no new request while another is not stalled (`None`:
    /// never).
    stall_after: Option<Duration>,
    /// Failed requests in a row that eject a worker, and for how long (`None`: never).
    breaker: Option<(u32, Duration)>,
    /// Round-robin position; also rotates tie-breaks in the other policies.
    next: AtomicUsize,
    pub retries: AtomicU64,
    pub ejections: AtomicU64,
    pub readmissions: AtomicU64,
}

impl WorkerGroup {
    pub fn new(leg: Leg, workers: Vec<Worker>, policy: Policy, eject_after: u32) -> Self {
        Self {
            leg,
            workers: workers.into_iter().map(Arc::new).collect(),
            policy,
            eject_after,
            stall_after: None,
            breaker: None,
            next: AtomicUsize::new(0),
            retries: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            readmissions: AtomicU64::new(0),
        }
    }

    /// Workers at which `after` requests in a row failed are ejected for `cooldown`, whatever
    /// their probes say; `after` 0: never.
    pub fn breaker(mut self, after: u32, cooldown: Duration) -> Self {
        self.breaker = (after > 0).then_some((after, cooldown));
        if after > 0 {
            for w in &self.workers {
                w.set_breaker(after, cooldown);
            }
        }
        self
    }

    /// A request worker `i` answered: its failed requests' count starts again.
    pub fn record_answer(&self, i: usize) {
        self.workers[i].answered();
        self.record_success(i, "it answered a request");
    }

    /// A request failed at worker `i` (its fault, not the request's): ejected, `why` logged,
    /// once enough failed in a row, or at once when it hung: `waited` (how long it held a
    /// request it timed out on, if it did) and the time since it last answered anything both
    /// reach the stall timeout.
    pub fn record_request_failure(
        &self,
        i: usize,
        why: &dyn std::fmt::Display,
        waited: Option<Duration>,
    ) {
        let Some((after, cooldown)) = self.breaker else {
            return;
        };
        let w = &self.workers[i];
        let hung = waited.is_some_and(|waited| {
            self.stall_after
                .is_some_and(|after| waited >= after && w.silent_for() >= after)
        });
        if w.record_request_failure(after, cooldown, hung) == Transition::Ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            let out_for = w.out_for();
            if hung {
                tracing::warn!(
                    "{} worker {} ejected for {out_for:?}, whatever its /health says: it held a \
                     request {:.1}s and answered nothing for {:.1}s (--stall-timeout): {why}",
                    self.leg,
                    w.url,
                    waited.unwrap_or_default().as_secs_f64(),
                    w.silent_for().as_secs_f64(),
                );
            } else {
                tracing::warn!(
                    "{} worker {} ejected for {out_for:?} after {} failed request(s) in a row, \
                     whatever its /health says: {why}",
                    self.leg,
                    w.url,
                    w.request_failures(),
                );
            }
        }
    }

    /// The round robin (and the tie-breaks) starts at `turn` rather than 0.
    pub fn first_turn(self, turn: usize) -> Self {
        self.next.store(turn, Ordering::Relaxed);
        self
    }

    /// Workers stalled `after` this long are passed over while another is not; zero: never.
    pub fn stalled_after(mut self, after: Duration) -> Self {
        self.stall_after = Some(after).filter(|d| !d.is_zero());
        self
    }

    /// Whether worker `w` has been stalled (requests in flight, no progress) for the group's
    /// stall timeout.
    pub fn is_stalled(&self, w: &Worker) -> bool {
        self.stall_after
            .is_some_and(|after| w.stalled_for() >= after)
    }

    /// A healthy worker not in `tried`, chosen by the group's policy, leased for `input`.
    /// Stalled workers are passed over while another candidate is not stalled.
    pub fn pick(
        &self,
        input: PickInput<'_>,
        tried: &[usize],
    ) -> Result<(usize, Lease), ProxyError> {
        let mut candidates: Vec<usize> = (0..self.workers.len())
            .filter(|i| !tried.contains(i) && self.workers[*i].is_healthy())
            .collect();
        if candidates.is_empty() {
            return Err(self.unhealthy());
        }
        if self.stall_after.is_some() {
            self.pass_over_stalled(&mut candidates);
        }
        // Relaxed is enough: the counter only spreads load, it orders nothing else. Retries do
        // not advance it, or a failing worker could keep the same parity and be tried first
        // by every request.
        let turn = if tried.is_empty() {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            self.next.load(Ordering::Relaxed)
        };
        let i = match self.policy {
            Policy::RoundRobin => round_robin::pick(&candidates, turn),
            Policy::LeastRequests => least_loaded::pick(self, &candidates, Load::Requests, turn),
            Policy::LeastTokens => least_loaded::pick(self, &candidates, Load::Tokens, turn),
            Policy::PrefixAffinity => prefix_affinity::pick(self, &candidates, input, turn),
        };
        Ok((i, Lease::new(self.workers[i].clone(), input.tokens)))
    }

    /// Drops the stalled workers from `candidates` unless all are stalled, saying when a worker
    /// starts and stops being passed over.
    fn pass_over_stalled(&self, candidates: &mut Vec<usize>) {
        // The stalled ones only: none, the usual case, collects into an empty Vec, which does
        // not allocate, so a pick pays nothing beyond the checks.
        let stalled: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let w = &self.workers[i];
                let stalled = self.is_stalled(w);
                if w.set_passed_over(stalled) {
                    if stalled {
                        tracing::warn!(
                            "{} worker {} is stalled: {} request(s) in flight and nothing \
                             answered for {:.1} s; new requests go to the other workers until it \
                             progresses",
                            self.leg,
                            w.url,
                            w.in_flight(),
                            w.stalled_for().as_secs_f64()
                        );
                    } else {
                        tracing::info!(
                            "{} worker {} is no longer stalled (it progressed, or its stalled \
                             requests ended)",
                            self.leg,
                            w.url
                        );
                    }
                }
                stalled
            })
            .collect();
        if stalled.is_empty() || stalled.len() == candidates.len() {
            return;
        }
        candidates.retain(|i| !stalled.contains(i));
    }

    pub fn healthy_count(&self) -> usize {
        self.workers.iter().filter(|w| w.is_healthy()).count()
    }

    /// Ok when some worker of the group is healthy; else the 503 a pick would answer.
    pub fn any_healthy(&self) -> Result<(), ProxyError> {
        match self.workers.iter().any(|w| w.is_healthy()) {
            true => Ok(()),
            false => Err(self.unhealthy()),
        }
    }

    fn unhealthy(&self) -> ProxyError {
        ProxyError::Unhealthy {
            leg: self.leg,
            healthy: self.healthy_count(),
            total: self.workers.len(),
        }
    }

    /// A failed probe or connection of worker `i`; `why` is logged if it ejects the worker.
    pub fn record_failure(&self, i: usize, why: &dyn std::fmt::Display) {
        if self.workers[i].record_failure(self.eject_after) == Transition::Ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "{} worker {} ejected after {} failure(s) in a row: {why}",
                self.leg,
                self.workers[i].url,
                self.eject_after
            );
        }
    }

    /// A request sent to worker `i` failed at it.
    pub fn record_error(&self, i: usize, why: &dyn std::fmt::Display) {
        self.workers[i].record_error(why);
    }

    /// A passed probe or an answered request of worker `i`; `how` is logged if it readmits it.
    pub fn record_success(&self, i: usize, how: &str) {
        if self.workers[i].record_success() == Transition::Readmitted {
            self.readmissions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "{} worker {} readmitted: {how}",
                self.leg,
                self.workers[i].url
            );
        }
    }
}

#[cfg(test)]
pub(crate) fn group(policy: Policy, n: usize) -> WorkerGroup {
    let workers = (0..n).map(|i| Worker::new(format!("w{i}"), None)).collect();
    WorkerGroup::new(Leg::Context, workers, policy, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: PickInput<'static> = PickInput {
        prompt: b"\"p\"",
        tokens: 1,
    };

    #[test]
    fn ejected_and_tried_workers_are_skipped() {
        let g = group(Policy::RoundRobin, 3);
        g.record_failure(1, &"test");
        assert_eq!(g.ejections.load(Ordering::Relaxed), 1);
        for _ in 0..6 {
            let (i, _) = g.pick(INPUT, &[0]).unwrap();
            assert_eq!(i, 2);
        }
        g.record_failure(2, &"test");
        let err = g.pick(INPUT, &[0]).unwrap_err();
        assert!(
            err.to_string().contains("1 of 3"),
            "the message counts the healthy: {err}"
        );
        g.record_success(1, "test");
        assert_eq!(g.readmissions.load(Ordering::Relaxed), 1);
        assert_eq!(g.pick(INPUT, &[0]).unwrap().0, 1);
    }

    /// A worker holding a request it makes no progress on is passed over once stalled, in
    /// every policy, unless every candidate is stalled; it is back once it progresses.
    #[test]
    fn stalled_workers_are_passed_over_unless_all_are() {
        for policy in [
            Policy::RoundRobin,
            Policy::LeastRequests,
            Policy::LeastTokens,
            Policy::PrefixAffinity,
        ] {
            let g = group(policy, 2).stalled_after(Duration::from_millis(20));
            let (held, lease) = g.pick(INPUT, &[]).unwrap();
            let other = 1 - held;
            std::thread::sleep(Duration::from_millis(30));
            assert!(g.is_stalled(&g.workers[held]), "{policy:?}");
            for _ in 0..4 {
                assert_eq!(g.pick(INPUT, &[]).unwrap().0, other, "{policy:?}");
            }
            // The only candidate left: used, stalled or not.
            assert_eq!(g.pick(INPUT, &[other]).unwrap().0, held, "{policy:?}");
            // Progress (a byte of an answer) makes it a candidate like any other.
            g.workers[held].progressed();
            assert!(!g.is_stalled(&g.workers[held]), "{policy:?}");
            drop(lease);
        }
        // Zero turns it off.
        let g = group(Policy::RoundRobin, 2).stalled_after(Duration::ZERO);
        let (held, _lease) = g.pick(INPUT, &[]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!g.is_stalled(&g.workers[held]));
    }

    /// Replica `r` of several starts its round robin at `r`: two routers fed in turn send
    /// their `j`th requests to different workers, where both started at worker 0 and moved in
    /// lock-step.
    #[test]
    fn replicas_start_their_round_robins_apart() {
        let firsts: Vec<usize> = (0..3)
            .map(|r| group(Policy::RoundRobin, 3).first_turn(r))
            .map(|g| g.pick(INPUT, &[]).unwrap().0)
            .collect();
        assert_eq!(firsts, [0, 1, 2]);
        let g = group(Policy::RoundRobin, 2).first_turn(1);
        let order: Vec<usize> = (0..4).map(|_| g.pick(INPUT, &[]).unwrap().0).collect();
        assert_eq!(order, [1, 0, 1, 0]);
    }

    #[test]
    fn empty_group_is_unhealthy() {
        let g = group(Policy::RoundRobin, 0);
        assert!(matches!(
            g.pick(INPUT, &[]),
            Err(ProxyError::Unhealthy { total: 0, .. })
        ));
    }
}
