//! Unique random-looking 64-bit ids: SGLang bootstrap rooms, vLLM request ids and TensorRT-LLM
//! `disagg_request_id`s.
//!
//! They only need to differ between requests in flight and between router processes, so a
//! counter from an OS-seeded start, scrambled by a bijective mixer (SplitMix64), is enough: it
//! never repeats within 2^64 draws and needs no RNG dependency or lock.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// TensorRT-LLM keeps worker-local request ids below 2^40 and global (`disagg_request_id`) ones
/// in [2^40, 2^63), so the two never collide on a worker (`llmapi/disagg_utils.py`).
pub(crate) const MIN_DISAGG_REQUEST_ID: u64 = 1 << 40;

#[derive(Debug)]
pub(crate) struct Ids {
    next: AtomicU64,
}

impl Ids {
    pub fn new() -> Self {
        // RandomState is seeded from the OS, so two router processes start far apart.
        let seed = RandomState::new().hash_one(std::process::id());
        Self {
            next: AtomicU64::new(seed),
        }
    }

    pub fn next(&self) -> u64 {
        let mut z = self
            .next
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A TensorRT-LLM `disagg_request_id`: positive as an int64 and outside the workers' own
    /// id range, mapped from [`Ids::next`] the way TensorRT-LLM maps its snowflake ids.
    pub fn disagg_request_id(&self) -> u64 {
        let span = i64::MAX as u64 - MIN_DISAGG_REQUEST_ID;
        MIN_DISAGG_REQUEST_ID + self.next() % span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_use_the_high_bits() {
        let ids = Ids::new();
        let mut seen: Vec<u64> = (0..10_000).map(|_| ids.next()).collect();
        assert!(seen.iter().any(|r| *r >= 1 << 62), "spread over the range");
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
    }

    #[test]
    fn disagg_request_ids_stay_in_tensorrt_llms_global_range() {
        let ids = Ids::new();
        let mut seen: Vec<u64> = (0..10_000).map(|_| ids.disagg_request_id()).collect();
        for id in &seen {
            assert!(
                (MIN_DISAGG_REQUEST_ID..=i64::MAX as u64).contains(id),
                "{id}"
            );
        }
        assert!(seen.iter().any(|r| *r >= 1 << 61), "spread over the range");
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
    }
}
