//! Round robin: each candidate in turn. Stateless here; the turn counter lives in the group.

pub(super) fn pick(candidates: &[usize], turn: usize) -> usize {
    candidates[turn % candidates.len()]
}

#[cfg(test)]
mod tests {
    use crate::config::Policy;
    use crate::policy::{PickInput, group};

    #[test]
    fn cycles_in_order() {
        let g = group(Policy::RoundRobin, 3);
        let input = PickInput {
            prompt: b"[]",
            tokens: 0,
        };
        let got: Vec<_> = (0..7).map(|_| g.pick(input, &[]).unwrap().0).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }
}
