//! The `simple` preset's clock: prefill proportional to prompt length, then one token per `itl`,
//! each request on its own timeline.
//!
//! Every token has an absolute deadline computed from the request's start, and emitters sleep
//! until it (`sleep_until`), so a slow write or a late wake-up delays one token but never shifts
//! the ones after it. Measured TPOT therefore matches `--itl` even on a busy machine.

use std::time::Duration;
use tokio::time::Instant;

/// When each output token of one request is due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    first: Instant,
    itl: Duration,
}

impl Schedule {
    /// Token 0 is due right after prefill of `prompt_len` tokens.
    pub(crate) fn after_prefill(
        start: Instant,
        prefill_per_token: Duration,
        prompt_len: usize,
        itl: Duration,
    ) -> Self {
        let prefill = prefill_per_token.saturating_mul(saturating_u32(prompt_len as u64));
        Self {
            first: add(start, prefill),
            itl,
        }
    }

    /// Token 0 is due at once: a generation server received the KV cache and token 0.
    pub(crate) fn immediate(start: Instant, itl: Duration) -> Self {
        Self { first: start, itl }
    }

    /// When output token `index` is due.
    pub(crate) fn deadline(&self, index: u64) -> Instant {
        add(self.first, self.itl.saturating_mul(saturating_u32(index)))
    }
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `Instant + Duration` that cannot panic: absurd requests just wait a very long time.
pub(crate) fn add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_absolute() {
        let t0 = Instant::now();
        let s = Schedule::after_prefill(t0, Duration::from_millis(2), 10, Duration::from_millis(5));
        assert_eq!(s.deadline(0), t0 + Duration::from_millis(20));
        assert_eq!(s.deadline(3), t0 + Duration::from_millis(35));
        let g = Schedule::immediate(t0, Duration::from_millis(5));
        assert_eq!(g.deadline(0), t0);
        assert_eq!(g.deadline(4), t0 + Duration::from_millis(20));
    }

    #[test]
    fn huge_values_do_not_panic() {
        let s = Schedule::after_prefill(Instant::now(), Duration::MAX, usize::MAX, Duration::MAX);
        let _ = s.deadline(u64::MAX);
    }
}
