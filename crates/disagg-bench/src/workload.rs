//! The random-token workload benchmark_serving calls "random": prompts of random token ids with
//! lengths drawn uniformly around the target, fully determined by the seed.

use std::ops::Range;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::BenchConfig;

/// Token ids drawn for prompts. Low ids are skipped because tokenizers keep them for special
/// tokens, and the upper bound stays inside every common vocabulary.
pub(crate) const TOKEN_IDS: Range<u32> = 100..30_000;

/// One request, serialized ahead of time so JSON encoding never runs inside the measured loop.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    pub body: Bytes,
    pub input_len: u32,
    /// `max_tokens` of the request.
    pub output_len: u32,
}

/// A seeded source of requests. The whole sweep draws from one generator, so warmup and every
/// point get fresh prompts: reusing a prompt would let a server's prefix cache flatter TTFT.
pub(crate) struct Workload {
    rng: SmallRng,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// A length uniform in [base·(1−r), base·(1+r)], never below 1; `r = 0` gives `base`.
    pub fn length(&mut self, base: u32, range_ratio: f64) -> u32 {
        let (lo, hi) = length_bounds(base, range_ratio);
        self.rng.random_range(lo..=hi)
    }

    pub fn prompt(&mut self, len: u32) -> Vec<u32> {
        (0..len).map(|_| self.rng.random_range(TOKEN_IDS)).collect()
    }

    /// The next `n` requests of the sweep.
    pub fn requests(&mut self, cfg: &BenchConfig, n: u64) -> Vec<PreparedRequest> {
        (0..n)
            .map(|_| {
                let input_len = self.length(cfg.isl, cfg.range_ratio);
                let output_len = self.length(cfg.osl, cfg.range_ratio);
                let prompt = self.prompt(input_len);
                PreparedRequest {
                    body: body(cfg, &prompt, output_len),
                    input_len,
                    output_len,
                }
            })
            .collect()
    }
}

/// Inclusive bounds of the length range, as integers.
pub(crate) fn length_bounds(base: u32, range_ratio: f64) -> (u32, u32) {
    let b = f64::from(base);
    let lo = (b * (1.0 - range_ratio)).floor().max(1.0) as u32;
    let hi = ((b * (1.0 + range_ratio)).floor() as u32).max(lo);
    (lo, hi)
}

/// The completions body. With `ignore_eos`, `min_tokens` and `ignore_eos` together make the
/// server generate exactly `max_tokens`, so the output length is the one asked for; both are
/// always sent so servers that read only one of them still honour it.
pub(crate) fn body(cfg: &BenchConfig, prompt: &[u32], max_tokens: u32) -> Bytes {
    let mut body = serde_json::json!({
        "model": cfg.model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": cfg.streaming,
    });
    if cfg.ignore_eos {
        body["min_tokens"] = max_tokens.into();
        body["ignore_eos"] = true.into();
    }
    if cfg.streaming {
        // Without it, streams carry no usage and token counts fall back to counting chunks.
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    Bytes::from(serde_json::to_vec(&body).expect("a JSON value always serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BenchConfig {
        BenchConfig {
            url: "http://127.0.0.1:1".into(),
            endpoint: "/v1/completions".into(),
            model: "m".into(),
            isl: 100,
            osl: 20,
            range_ratio: 0.0,
            concurrency: vec![1],
            rounds: 1,
            warmup: 0,
            streaming: true,
            request_timeout: std::time::Duration::from_secs(5),
            seed: 7,
            ..BenchConfig::default()
        }
    }

    #[test]
    fn zero_ratio_gives_exact_lengths() {
        let mut w = Workload::new(1);
        for _ in 0..100 {
            assert_eq!(w.length(1024, 0.0), 1024);
        }
    }

    #[test]
    fn lengths_stay_within_the_ratio_and_cover_it() {
        let mut w = Workload::new(3);
        let lens: Vec<u32> = (0..2000).map(|_| w.length(1000, 0.25)).collect();
        assert!(lens.iter().all(|&l| (750..=1250).contains(&l)));
        // Uniform over 501 values: 2000 draws reach close to both ends.
        assert!(*lens.iter().min().unwrap() < 760);
        assert!(*lens.iter().max().unwrap() > 1240);
    }

    #[test]
    fn tiny_lengths_never_reach_zero() {
        assert_eq!(length_bounds(1, 0.9), (1, 1));
        assert_eq!(length_bounds(10, 0.5), (5, 15));
    }

    #[test]
    fn prompts_use_the_token_id_range() {
        let mut w = Workload::new(5);
        assert!(w.prompt(5000).iter().all(|id| TOKEN_IDS.contains(id)));
    }

    #[test]
    fn same_seed_same_requests_other_seed_other_requests() {
        let mut c = cfg();
        c.range_ratio = 0.5;
        let a = Workload::new(42).requests(&c, 8);
        let b = Workload::new(42).requests(&c, 8);
        let other = Workload::new(43).requests(&c, 8);
        let bodies = |r: &[PreparedRequest]| r.iter().map(|r| r.body.clone()).collect::<Vec<_>>();
        assert_eq!(bodies(&a), bodies(&b));
        assert_ne!(bodies(&a), bodies(&other));
        for r in &a {
            assert!((50..=150).contains(&r.input_len));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["prompt"].as_array().unwrap().len(), r.input_len as usize);
            assert!((10..=30).contains(&v["max_tokens"].as_u64().unwrap()));
        }
    }

    #[test]
    fn body_has_the_benchmark_serving_fields() {
        let c = cfg();
        let v: serde_json::Value = serde_json::from_slice(&body(&c, &[101, 102], 20)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "m", "prompt": [101, 102], "max_tokens": 20, "min_tokens": 20,
                "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}
            })
        );
        let mut c = cfg();
        c.streaming = false;
        let v: serde_json::Value = serde_json::from_slice(&body(&c, &[101], 3)).unwrap();
        assert!(v.get("stream_options").is_none());
        assert_eq!(v["stream"], false);
        c.ignore_eos = false;
        let v: serde_json::Value = serde_json::from_slice(&body(&c, &[101], 3)).unwrap();
        assert!(v.get("ignore_eos").is_none() && v.get("min_tokens").is_none());
    }
}
