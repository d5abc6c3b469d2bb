//! What one engine step costs, and the presets that fill it in.
//!
//! A step is one forward pass over the running batch plus any newly admitted prompts:
//!
//! ```text
//! step = floor + b·T + c·Σtᵢ² + e·B + f·Σkv
//! floor = max(a if any prefill, d if any decode)
//! ```
//! `T` is the prefill tokens in the step, `tᵢ` each prompt's length (attention is quadratic per
//! sequence, not in the batch total), `B` the decoding sequences and `Σkv` the KV tokens they
//! read. The floor is paid once: a mixed step is still one pass over the weights.

use std::time::Duration;

use crate::args::{Preset, TimingArgs};

/// Step cost coefficients, in seconds (per token, per sequence, per squared token).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StepCost {
    pub(crate) prefill_base: f64,
    pub(crate) prefill_per_token: f64,
    pub(crate) prefill_per_token_sq: f64,
    pub(crate) decode_base: f64,
    pub(crate) decode_per_seq: f64,
    pub(crate) decode_per_kv_token: f64,
}

/// The contents of one step, as the scheduler planned it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StepShape {
    pub(crate) prefill_tokens: u64,
    pub(crate) prefill_tokens_sq: f64,
    pub(crate) decode_seqs: u64,
    pub(crate) decode_kv_tokens: u64,
}

impl StepCost {
    pub(crate) fn step(&self, s: &StepShape) -> Duration {
        let prefill = s.prefill_tokens > 0;
        let decode = s.decode_seqs > 0;
        let floor = match (prefill, decode) {
            (true, true) => self.prefill_base.max(self.decode_base),
            (true, false) => self.prefill_base,
            (false, true) => self.decode_base,
            (false, false) => 0.0,
        };
        let secs = floor
            + self.prefill_per_token * s.prefill_tokens as f64
            + self.prefill_per_token_sq * s.prefill_tokens_sq
            + self.decode_per_seq * s.decode_seqs as f64
            + self.decode_per_kv_token * s.decode_kv_tokens as f64;
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// Scheduler limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_batch_size: u64,
    pub(crate) max_num_tokens: u64,
    pub(crate) kv_capacity_tokens: u64,
}

/// The coarsest `--clock-step`: beyond it, tokens would leave visibly late.
const MAX_CLOCK_STEP: Duration = Duration::from_millis(100);

/// `--clock-step` when not given: the largest whole number of microseconds, at most 1 ms, that
/// divides `itl`, so a stream's gaps stay exact; zero (no grid) if none does.
pub(crate) fn auto_clock_step(itl: Duration) -> Duration {
    let itl = itl.as_nanos();
    (1..=1000u64)
        .rev()
        .find(|us| itl % u128::from(us * 1000) == 0)
        .map_or(Duration::ZERO, Duration::from_micros)
}

/// The fully resolved timing model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TimingModel {
    /// Per-request clocks: prefill `per_token × len`, then one token per `itl`.
    Simple {
        prefill_per_token: Duration,
        itl: Duration,
        /// The release grid of the token clock (`--clock-step`).
        clock_step: Duration,
    },
    Batched {
        cost: StepCost,
        limits: Limits,
    },
}

/// The H100 preset, least-squares fitted (relative error) to every point of
/// `shared/data/h100-llama8b-eager.json` (PyTorch eager, no CUDA graphs; an upper bound for a
/// tuned engine). Fit error against those points, `(model - measured) / measured`:
/// - prefill, 11 points (batch 1 from 128 to 16k tokens, and 4/8/16×1024): mean |err| 7.7 %,
///   max 21 % (at 128 and 512 tokens, where the measured ~11 ms floor is not linear);
/// - decode, 10 points (batch 1–256 at kv 1024, 1–64 at kv 4096): mean |err| 10.3 %, max 29 %
///   (batch 8 at kv 1024, measured 15.6 ms, an outlier between 12.1 and 10.6).
///
/// Limits: batch 256 and 8192 tokens per step (common serving defaults); KV capacity 430k
/// tokens ≈ 90 % of (80 GB − 16 GB of weights) / 131072 bytes per token.
const H100_LLAMA8B_EAGER: (StepCost, Limits) = (
    StepCost {
        prefill_base: 5.862e-3,
        prefill_per_token: 20.875e-6,
        prefill_per_token_sq: 0.6577e-9,
        decode_base: 10.773e-3,
        decode_per_seq: 2.615e-6,
        decode_per_kv_token: 26.157e-9,
    },
    Limits {
        max_batch_size: 256,
        max_num_tokens: 8192,
        kv_capacity_tokens: 430_000,
    },
);

/// Limits of preset `batched` unless overridden: generous, so only costs shape timing.
const BATCHED_LIMITS: Limits = Limits {
    max_batch_size: 256,
    max_num_tokens: 8192,
    kv_capacity_tokens: u64::MAX,
};

/// Why timing flags do not make a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimingError {
    #[error(
        "{flag} only applies to the batched scheduler; hint: add --preset batched or --preset h100-llama8b-eager"
    )]
    NeedsBatched { flag: &'static str },
    #[error("--clock-step must be at most 100ms, got {0:?}")]
    ClockStep(Duration),
    #[error("{flag} must be a finite number >= 0, got {value}")]
    Negative { flag: &'static str, value: f64 },
}

impl TimingModel {
    /// The model `a` describe. `checks_max_num_tokens`: the dialect (TensorRT-LLM's) also
    /// checks requests against --max-num-tokens, which then means something under the simple
    /// preset too.
    pub(crate) fn from_args(
        a: &TimingArgs,
        checks_max_num_tokens: bool,
    ) -> Result<Self, TimingError> {
        let overrides: [(&'static str, Option<f64>); 6] = [
            ("--prefill-base-ms", a.prefill_base_ms.map(|v| v * 1e-3)),
            (
                "--prefill-per-token-us",
                a.prefill_per_token_us.map(|v| v * 1e-6),
            ),
            (
                "--prefill-per-token-sq-ns",
                a.prefill_per_token_sq_ns.map(|v| v * 1e-9),
            ),
            ("--decode-base-ms", a.decode_base_ms.map(|v| v * 1e-3)),
            ("--decode-per-seq-us", a.decode_per_seq_us.map(|v| v * 1e-6)),
            (
                "--decode-per-kv-token-ns",
                a.decode_per_kv_token_ns.map(|v| v * 1e-9),
            ),
        ];
        for (flag, v) in overrides {
            if let Some(value) = v
                && !(value.is_finite() && value >= 0.0)
            {
                return Err(TimingError::Negative { flag, value });
            }
        }
        let (mut cost, mut limits) = match a.preset {
            Preset::Simple => {
                let limit_flags = [
                    ("--max-batch-size", a.max_batch_size.is_some()),
                    (
                        "--max-num-tokens",
                        a.max_num_tokens.is_some() && !checks_max_num_tokens,
                    ),
                    ("--kv-capacity-tokens", a.kv_capacity_tokens.is_some()),
                ];
                let given = overrides
                    .iter()
                    .map(|(f, v)| (*f, v.is_some()))
                    .chain(limit_flags)
                    .find(|(_, set)| *set);
                if let Some((flag, _)) = given {
                    return Err(TimingError::NeedsBatched { flag });
                }
                let clock_step = a.clock_step.unwrap_or_else(|| auto_clock_step(a.itl));
                if clock_step > MAX_CLOCK_STEP {
                    return Err(TimingError::ClockStep(clock_step));
                }
                return Ok(TimingModel::Simple {
                    prefill_per_token: a.prefill_per_token,
                    itl: a.itl,
                    clock_step,
                });
            }
            Preset::Batched => (
                StepCost {
                    prefill_base: 0.0,
                    prefill_per_token: a.prefill_per_token.as_secs_f64(),
                    prefill_per_token_sq: 0.0,
                    decode_base: a.itl.as_secs_f64(),
                    decode_per_seq: 0.0,
                    decode_per_kv_token: 0.0,
                },
                BATCHED_LIMITS,
            ),
            Preset::H100Llama8bEager => H100_LLAMA8B_EAGER,
        };
        let fields = [
            &mut cost.prefill_base,
            &mut cost.prefill_per_token,
            &mut cost.prefill_per_token_sq,
            &mut cost.decode_base,
            &mut cost.decode_per_seq,
            &mut cost.decode_per_kv_token,
        ];
        for (field, (_, v)) in fields.into_iter().zip(overrides) {
            if let Some(v) = v {
                *field = v;
            }
        }
        if let Some(n) = a.max_batch_size {
            limits.max_batch_size = n.get();
        }
        if let Some(n) = a.max_num_tokens {
            limits.max_num_tokens = n.get();
        }
        if let Some(n) = a.kv_capacity_tokens {
            limits.kv_capacity_tokens = n.get();
        }
        Ok(TimingModel::Batched { cost, limits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn the_default_clock_step_divides_the_itl() {
        let us = Duration::from_micros;
        for (itl, step) in [
            (Duration::from_millis(50), us(1000)),
            (us(5), us(5)),
            (us(1500), us(750)),
            (us(7300), us(730)),
            (us(1001), us(143)),
            (Duration::ZERO, us(1000)),
            (Duration::from_nanos(1_000_500), Duration::ZERO),
        ] {
            assert_eq!(auto_clock_step(itl), step, "{itl:?}");
        }
    }

    #[test]
    fn h100_preset_reproduces_the_measured_points_within_the_stated_error() {
        let (cost, _) = H100_LLAMA8B_EAGER;
        let prefill = |n: u64, t: u64| {
            ms(cost.step(&StepShape {
                prefill_tokens: n * t,
                prefill_tokens_sq: (n * t * t) as f64,
                ..StepShape::default()
            }))
        };
        let decode = |b: u64, kv: u64| {
            ms(cost.step(&StepShape {
                decode_seqs: b,
                decode_kv_tokens: b * kv,
                ..StepShape::default()
            }))
        };
        let points = [
            (prefill(1, 1024), 25.455),
            (prefill(1, 4096), 106.633),
            (prefill(1, 16384), 513.8),
            (prefill(16, 1024), 391.368),
            (decode(64, 1024), 10.877),
            (decode(256, 1024), 20.801),
            (decode(64, 4096), 19.008),
        ];
        for (model, measured) in points {
            let err = (model - measured).abs() / measured;
            assert!(err < 0.21, "model {model:.2} ms vs measured {measured} ms");
        }
    }

    #[test]
    fn a_mixed_step_pays_one_floor() {
        let c = StepCost {
            prefill_base: 0.005,
            prefill_per_token: 0.0,
            prefill_per_token_sq: 0.0,
            decode_base: 0.010,
            decode_per_seq: 0.001,
            decode_per_kv_token: 0.0,
        };
        let s = StepShape {
            prefill_tokens: 10,
            prefill_tokens_sq: 100.0,
            decode_seqs: 2,
            decode_kv_tokens: 0,
        };
        assert_eq!(c.step(&s), Duration::from_millis(12));
        assert_eq!(c.step(&StepShape::default()), Duration::ZERO);
    }
}
