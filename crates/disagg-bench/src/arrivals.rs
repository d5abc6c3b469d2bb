//! Open-loop arrival times: gaps between requests drawn from a gamma distribution with mean
//! `1/rate`. Shape 1 (burstiness 1) is a Poisson process; lower shapes bunch requests into
//! bursts, higher ones space them more evenly, as benchmark_serving's `--burstiness` does.
//! Seeded, so a rerun offers the server exactly the same traffic. As vLLM's `get_request`
//! does, the drawn schedule is then stretched or shrunk so that the last request is due at
//! exactly `n / rate`: a sum of random gaps is off by a few percent (more for few requests),
//! and a "rate 20" point would otherwise offer 17 or 22 requests a second depending on the seed.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// When each of `n` requests is due, as offsets from the point's start. An infinite rate sends
/// everything at once.
pub(crate) fn schedule(n: u64, rate: f64, burstiness: f64, seed: u64) -> Vec<Duration> {
    if rate.is_infinite() {
        return vec![Duration::ZERO; n as usize];
    }
    // The limit of the gamma as its shape grows: every gap exactly 1/rate (vLLM takes
    // `--burstiness inf` the same way).
    if burstiness.is_infinite() {
        return (1..=n)
            .map(|i| Duration::from_secs_f64(i as f64 / rate))
            .collect();
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    // Gamma(k, θ) has mean kθ; θ = 1/(rate·k) keeps the mean gap at 1/rate for every shape.
    let scale = 1.0 / (rate * burstiness);
    let mut at = 0.0f64;
    let drawn: Vec<f64> = (0..n)
        .map(|_| {
            at += gamma(&mut rng, burstiness) * scale;
            at
        })
        .collect();
    let stretch = if at > 0.0 { n as f64 / rate / at } else { 1.0 };
    drawn
        .into_iter()
        .map(|t| Duration::from_secs_f64(t * stretch))
        .collect()
}

/// A Gamma(shape, 1) draw: Marsaglia and Tsang's squeeze method for shape ≥ 1, and for shape < 1
/// the standard boost `Gamma(k) = Gamma(k+1)·U^(1/k)`.
fn gamma(rng: &mut SmallRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = open01(rng);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    // Accepts with probability above 0.95 per round for every shape ≥ 1, so this ends quickly.
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = open01(rng);
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller; one of the pair is enough here).
fn normal(rng: &mut SmallRng) -> f64 {
    let (u1, u2) = (open01(rng), open01(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Uniform in (0, 1]: never 0, so logarithms stay finite.
fn open01(rng: &mut SmallRng) -> f64 {
    1.0 - rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(offsets: &[Duration]) -> Vec<f64> {
        let mut prev = 0.0;
        offsets
            .iter()
            .map(|d| {
                let t = d.as_secs_f64();
                let g = t - prev;
                prev = t;
                g
            })
            .collect()
    }

    fn mean_and_cv(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn poisson_arrivals_have_the_requested_mean_rate() {
        let offsets = schedule(20_000, 50.0, 1.0, 1);
        let (mean, cv) = mean_and_cv(&gaps(&offsets));
        // Mean gap 20 ms; an exponential's coefficient of variation is 1.
        assert!((mean - 0.020).abs() < 0.0006, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.05, "cv {cv}");
        // 20k requests at 50/s take about 400 s.
        let total = offsets.last().unwrap().as_secs_f64();
        assert!((390.0..410.0).contains(&total), "{total}");
    }

    #[test]
    fn burstiness_keeps_the_rate_and_changes_the_spread() {
        // Gamma with shape k has cv 1/√k.
        for (k, want_cv) in [(0.25, 2.0), (4.0, 0.5), (100.0, 0.1)] {
            let (mean, cv) = mean_and_cv(&gaps(&schedule(40_000, 10.0, k, 2)));
            assert!((mean - 0.1).abs() < 0.004, "k {k}: mean gap {mean}");
            assert!((cv - want_cv).abs() < want_cv * 0.06, "k {k}: cv {cv}");
        }
    }

    #[test]
    fn schedules_are_seeded_and_ordered() {
        let a = schedule(500, 100.0, 1.0, 9);
        assert_eq!(a, schedule(500, 100.0, 1.0, 9));
        assert_ne!(a, schedule(500, 100.0, 1.0, 10));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a[0] > Duration::ZERO);
    }

    /// The last request is due at n / rate whatever the seed (vLLM's rescaling), so the offered
    /// rate is the one asked for; the draws only shape the gaps.
    #[test]
    fn the_last_request_is_due_at_n_over_rate_for_every_seed() {
        for seed in 0..8 {
            for burstiness in [0.5, 1.0, 4.0] {
                let s = schedule(40, 20.0, burstiness, seed);
                let last = s.last().unwrap().as_secs_f64();
                assert!((last - 2.0).abs() < 1e-9, "seed {seed}: {last}");
                assert!(s.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }

    #[test]
    fn infinite_rate_sends_everything_at_once() {
        assert_eq!(schedule(3, f64::INFINITY, 1.0, 0), vec![Duration::ZERO; 3]);
    }

    #[test]
    fn infinite_burstiness_spaces_requests_evenly() {
        let ms = |v: u64| Duration::from_millis(v);
        assert_eq!(
            schedule(3, 10.0, f64::INFINITY, 0),
            vec![ms(100), ms(200), ms(300)]
        );
    }
}
