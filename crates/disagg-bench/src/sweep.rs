//! A sweep: for each point (a closed-loop concurrency or an open-loop rate), warmup then the
//! measured requests; and the validity gates on the result.

use std::fmt::Write as _;
use std::sync::Arc;

use std::time::Instant;

use crate::client::{self, Target};
use crate::metrics::{Computed, Scales};
use crate::workload::Workload;
use crate::{
    BenchConfig, BenchError, PointResult, Sweep, arrivals, closed_loop, metrics, open_loop, record,
};

/// One point to run: the closed loop at a concurrency, or the open loop at a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Closed { concurrency: u32 },
    Open { rate: f64 },
}

pub(crate) async fn run_sweep(cfg: &BenchConfig) -> Result<Sweep, BenchError> {
    cfg.validate()?;
    let plans: Vec<Plan> = if cfg.is_open_loop() {
        cfg.request_rates
            .iter()
            .map(|&rate| Plan::Open { rate })
            .collect()
    } else {
        cfg.concurrency
            .iter()
            .map(|&concurrency| Plan::Closed { concurrency })
            .collect()
    };
    let widest = cfg
        .concurrency
        .iter()
        .copied()
        .chain(cfg.max_concurrency)
        .max()
        .unwrap_or(1);
    let client = client::build_client(widest)?;
    let target = Arc::new(Target {
        urls: cfg.request_urls(),
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
        ignore_eos: cfg.ignore_eos,
    });
    let mut workload = Workload::new(cfg)?;
    let mut points = Vec::with_capacity(plans.len());
    for (point_index, plan) in plans.into_iter().enumerate() {
        let (label, cap) = match plan {
            Plan::Closed { concurrency } => (format!("con={concurrency}"), Some(concurrency)),
            Plan::Open { rate } => (format!("rate={rate}"), cfg.max_concurrency),
        };
        if cfg.warmup > 0 {
            let warmup = workload.requests(cfg, u64::from(cfg.warmup));
            // Warmup is always a closed loop: it only has to wake the server up.
            let c = cap.unwrap_or(cfg.warmup);
            let outcomes = closed_loop::run(
                &client,
                &target,
                warmup,
                c,
                None,
                &format!("{label} warmup"),
            )
            .await;
            let errors = metrics::compute(&outcomes, Scales::default()).errors;
            // Warmup failures do not count, but a server that fails warmup deserves a look.
            if !errors.is_empty() {
                tracing::warn!(point = %label, ?errors, "warmup requests failed");
                eprintln!("{label} warmup failures (not counted): {errors:?}");
            }
        }
        // validate() makes num_prompts required in the open loop, so only the closed loop
        // falls back to concurrency × rounds.
        let n = cfg.num_prompts.unwrap_or_else(|| match plan {
            Plan::Closed { concurrency } => u64::from(concurrency) * u64::from(cfg.rounds),
            Plan::Open { .. } => 0,
        });
        let requests = workload.requests(cfg, n);
        let deadline = cfg.duration_limit.map(|d| Instant::now() + d);
        let outcomes = match plan {
            Plan::Closed { concurrency } => {
                closed_loop::run(&client, &target, requests, concurrency, deadline, &label).await
            }
            Plan::Open { rate } => {
                // Each point its own arrival stream, derived from the seed and the point.
                let seed = cfg.seed ^ (0x0a77_17a1 + point_index as u64);
                let offsets = arrivals::schedule(n, rate, cfg.burstiness, seed);
                open_loop::run(
                    &client,
                    &target,
                    requests,
                    &offsets,
                    cfg.max_concurrency,
                    deadline,
                    &label,
                )
                .await
            }
        };
        let scales = Scales {
            extra_percentiles: &cfg.percentiles,
            goodput: cfg.goodput,
            gpus: cfg.gpus,
        };
        let Computed {
            metrics,
            errors,
            histograms,
        } = metrics::compute(&outcomes, scales);
        if (outcomes.len() as u64) < n {
            eprintln!(
                "{label}: the duration limit stopped the point after {} of {n} requests",
                outcomes.len()
            );
        }
        eprintln!(
            "{label} finished {} requests in {:.2}s: completed {} failed {}",
            outcomes.len(),
            metrics.duration_s,
            metrics.completed,
            metrics.failed
        );
        points.push(PointResult {
            concurrency: cap,
            request_rate: match plan {
                Plan::Open { rate } => Some(rate),
                Plan::Closed { .. } => None,
            },
            metrics,
            errors,
            requests: record::records(&outcomes),
            histograms,
        });
    }
    Ok(Sweep {
        points,
        max_failure_rate: cfg.max_failure_rate,
    })
}

pub(crate) fn invalid_reason(sweep: &Sweep) -> Option<String> {
    let mut reasons = Vec::new();
    for p in &sweep.points {
        let m = &p.metrics;
        let label = point_label(p);
        let attempted = m.completed + m.failed;
        let rate = if attempted == 0 {
            0.0
        } else {
            m.failed as f64 / attempted as f64
        };
        if rate > sweep.max_failure_rate {
            reasons.push(format!(
                "{label}: {} of {attempted} requests failed ({:.1}% > limit {:.1}%; {})",
                m.failed,
                rate * 100.0,
                sweep.max_failure_rate * 100.0,
                by_kind(p),
            ));
        }
        // No failure-rate limit excuses these: an empty answer is not a measurement.
        if m.zero_token_requests > 0 {
            reasons.push(format!(
                "{label}: {} request(s) generated zero tokens",
                m.zero_token_requests
            ));
        }
        if m.total_output_tokens == 0 {
            reasons.push(format!("{label}: zero generated tokens"));
        }
    }
    if sweep.points.is_empty() {
        reasons.push("no points were run".into());
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

pub(crate) fn warnings(sweep: &Sweep) -> Vec<String> {
    sweep
        .points
        .iter()
        .filter(|p| p.metrics.short_outputs > 0)
        .map(|p| {
            format!(
                "{}: {} of {} completed request(s) generated fewer tokens than requested \
                 despite ignore_eos",
                point_label(p),
                p.metrics.short_outputs,
                p.metrics.completed
            )
        })
        .collect()
}

/// How a point is named in messages.
pub(crate) fn point_label(p: &PointResult) -> String {
    match (p.request_rate, p.concurrency) {
        (None, Some(c)) => format!("concurrency {c}"),
        (Some(r), Some(c)) => format!("rate {r} req/s (max concurrency {c})"),
        (Some(r), None) => format!("rate {r} req/s"),
        (None, None) => "closed loop".into(),
    }
}

/// `http_500: 2, timeout: 1`.
fn by_kind(p: &PointResult) -> String {
    let mut out = String::new();
    for (i, (kind, n)) in p.errors.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{kind}: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Metrics;

    fn point(c: u32, failed: u64, output: u64, errors: &[(&str, u64)]) -> PointResult {
        PointResult {
            concurrency: Some(c),
            request_rate: None,
            metrics: Metrics {
                completed: 4,
                failed,
                zero_token_requests: errors
                    .iter()
                    .find(|(k, _)| *k == "zero_tokens")
                    .map_or(0, |(_, n)| *n),
                total_output_tokens: output,
                ..Default::default()
            },
            errors: errors
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<BTreeMap<_, _>>(),
            requests: Vec::new(),
            histograms: Default::default(),
        }
    }

    #[test]
    fn clean_sweep_is_valid() {
        let s = Sweep {
            points: vec![point(1, 0, 10, &[]), point(2, 0, 20, &[])],
            max_failure_rate: 0.0,
        };
        assert_eq!(invalid_reason(&s), None);
        assert!(warnings(&s).is_empty());
    }

    #[test]
    fn failures_over_the_limit_and_zero_tokens_are_reasons() {
        let s = Sweep {
            points: vec![
                point(1, 3, 10, &[("http_500", 2), ("timeout", 1)]),
                point(2, 0, 0, &[]),
            ],
            max_failure_rate: 0.0,
        };
        assert_eq!(
            invalid_reason(&s).unwrap(),
            "concurrency 1: 3 of 7 requests failed (42.9% > limit 0.0%; http_500: 2, timeout: 1); \
             concurrency 2: zero generated tokens"
        );
    }

    #[test]
    fn failures_within_the_limit_are_valid_but_zero_tokens_never_are() {
        let within = Sweep {
            points: vec![point(1, 1, 10, &[("http_500", 1)])],
            max_failure_rate: 0.2,
        };
        assert_eq!(invalid_reason(&within), None);
        let zero = Sweep {
            points: vec![point(1, 1, 10, &[("zero_tokens", 1)])],
            max_failure_rate: 0.5,
        };
        assert_eq!(
            invalid_reason(&zero).unwrap(),
            "concurrency 1: 1 request(s) generated zero tokens"
        );
    }

    #[test]
    fn short_outputs_are_warnings() {
        let mut p = point(1, 0, 10, &[]);
        p.metrics.short_outputs = 2;
        let s = Sweep {
            points: vec![p],
            max_failure_rate: 0.0,
        };
        assert_eq!(invalid_reason(&s), None);
        assert_eq!(
            warnings(&s),
            vec![
                "concurrency 1: 2 of 4 completed request(s) generated fewer tokens than \
                 requested despite ignore_eos"
            ]
        );
    }
}
