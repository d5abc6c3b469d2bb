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
    Ok(Sweep { points })
}

pub(crate) fn invalid_reason(sweep: &Sweep) -> Option<String> {
    let mut reasons = Vec::new();
    for p in &sweep.points {
        if p.metrics.failed > 0 {
            let mut r = format!(
                "concurrency {}: {} failed request(s) (",
                p.concurrency, p.metrics.failed
            );
            for (i, (kind, n)) in p.errors.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(r, "{sep}{kind}: {n}");
            }
            r.push(')');
            reasons.push(r);
        }
        if p.metrics.total_output_tokens == 0 {
            reasons.push(format!(
                "concurrency {}: zero generated tokens",
                p.concurrency
            ));
        }
    }
    if sweep.points.is_empty() {
        reasons.push("no points were run".into());
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
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
        };
        assert_eq!(invalid_reason(&s), None);
    }

    #[test]
    fn failures_and_zero_tokens_are_reasons() {
        let s = Sweep {
            points: vec![
                point(1, 3, 10, &[("http_500", 2), ("timeout", 1)]),
                point(2, 0, 0, &[]),
            ],
        };
        assert_eq!(
            invalid_reason(&s).unwrap(),
            "concurrency 1: 3 failed request(s) (http_500: 2, timeout: 1); \
             concurrency 2: zero generated tokens"
        );
    }
}
