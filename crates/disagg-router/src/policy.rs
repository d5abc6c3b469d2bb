//! Picking one worker out of a group. One policy per [`Policy`] variant; adding one means a new
//! variant and a new arm in [`WorkerGroup::pick`].

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Policy;
use crate::error::Leg;

/// The workers doing one leg, and the state their policy needs.
#[derive(Debug)]
pub(crate) struct WorkerGroup {
    pub leg: Leg,
    pub urls: Vec<String>,
    policy: Policy,
    next: AtomicUsize,
}

impl WorkerGroup {
    /// `urls` must not be empty; [`crate::RouterConfig`] construction guarantees that.
    pub fn new(leg: Leg, urls: Vec<String>, policy: Policy) -> Self {
        Self {
            leg,
            urls,
            policy,
            next: AtomicUsize::new(0),
        }
    }

    /// The worker for the next request. `None` only for an empty group.
    pub fn pick(&self) -> Option<&str> {
        if self.urls.is_empty() {
            return None;
        }
        let i = match self.policy {
            // Relaxed is enough: the counter only spreads load, it orders nothing else.
            Policy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len(),
        };
        Some(&self.urls[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_in_order() {
        let g = WorkerGroup::new(
            Leg::Context,
            vec!["a".into(), "b".into(), "c".into()],
            Policy::RoundRobin,
        );
        let got: Vec<_> = (0..7).map(|_| g.pick().unwrap().to_string()).collect();
        assert_eq!(got, ["a", "b", "c", "a", "b", "c", "a"]);
    }

    #[test]
    fn empty_group_picks_nothing() {
        let g = WorkerGroup::new(Leg::Generation, vec![], Policy::RoundRobin);
        assert_eq!(g.pick(), None);
    }
}
