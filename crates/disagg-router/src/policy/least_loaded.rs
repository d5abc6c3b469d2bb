//! Least loaded: the candidate with the fewest in-flight requests, or in-flight tokens. Ties go
//! round the candidates, so an idle group still spreads its first requests.

use super::WorkerGroup;

/// What "load" counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    Requests,
    Tokens,
}

pub(super) fn pick(group: &WorkerGroup, candidates: &[usize], load: Load, turn: usize) -> usize {
    let n = candidates.len();
    (0..n)
        .map(|k| candidates[(turn + k) % n])
        .min_by_key(|i| load_of(group, *i, load))
        .unwrap_or(candidates[0])
}

pub(super) fn load_of(group: &WorkerGroup, i: usize, load: Load) -> u64 {
    let w = &group.workers[i];
    match load {
        Load::Requests => w.in_flight() as u64,
        Load::Tokens => w.in_flight_tokens(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Policy;
    use crate::policy::{PickInput, group};

    #[test]
    fn picks_the_least_busy_by_requests() {
        let g = group(Policy::LeastRequests, 3);
        let one = PickInput {
            prompt: b"[]",
            tokens: 1,
        };
        // Held leases keep load on workers 0 and 1; the next pick must be 2.
        let _a = g.pick(one, &[]).unwrap();
        let _b = g.pick(one, &[]).unwrap();
        assert_eq!(g.pick(one, &[]).unwrap().0, 2);
    }

    #[test]
    fn picks_the_least_busy_by_tokens() {
        let g = group(Policy::LeastTokens, 2);
        let big = PickInput {
            prompt: b"[]",
            tokens: 1000,
        };
        let small = PickInput {
            prompt: b"[]",
            tokens: 1,
        };
        let (first, _big) = g.pick(big, &[]).unwrap();
        let mut held = Vec::new();
        // Many small requests all go to the other worker until they outweigh the big one.
        for _ in 0..10 {
            let (i, lease) = g.pick(small, &[]).unwrap();
            assert_ne!(i, first);
            held.push(lease);
        }
    }
}
