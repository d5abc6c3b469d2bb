//! A sweep: warmup then the closed loop at each concurrency, and the validity gate on the result.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::client::{self, Target};
use crate::workload::Workload;
use crate::{BenchConfig, BenchError, PointResult, Sweep, closed_loop, metrics};

pub(crate) async fn run_sweep(cfg: &BenchConfig) -> Result<Sweep, BenchError> {
    cfg.validate()?;
    let max_concurrency = cfg.concurrency.iter().copied().max().unwrap_or(1);
    let client = client::build_client(max_concurrency)?;
    let target = Arc::new(Target {
        url: cfg.request_url(),
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
        ignore_eos: cfg.ignore_eos,
    });
    let mut workload = Workload::new(cfg.seed);
    let mut points = Vec::with_capacity(cfg.concurrency.len());
    for &c in &cfg.concurrency {
        if cfg.warmup > 0 {
            let warmup = workload.requests(cfg, u64::from(cfg.warmup));
            let label = format!("con={c} warmup");
            let outcomes = closed_loop::run(&client, &target, warmup, c, &label).await;
            let (_, errors) = metrics::compute(&outcomes, &[]);
            // Warmup failures do not count, but a server that fails warmup deserves a look.
            if !errors.is_empty() {
                tracing::warn!(concurrency = c, ?errors, "warmup requests failed");
                eprintln!("con={c} warmup failures (not counted): {errors:?}");
            }
        }
        let n = u64::from(c) * u64::from(cfg.rounds);
        let requests = workload.requests(cfg, n);
        let outcomes = closed_loop::run(&client, &target, requests, c, &format!("con={c}")).await;
        let (metrics, errors) = metrics::compute(&outcomes, &cfg.percentiles);
        eprintln!(
            "con={c} finished {n} requests in {:.2}s: completed {} failed {}",
            metrics.duration_s, metrics.completed, metrics.failed
        );
        points.push(PointResult {
            concurrency: c,
            metrics,
            errors,
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
    format!("concurrency {}", p.concurrency)
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
            concurrency: c,
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
