//! A sweep: for each point (a closed-loop concurrency or an open-loop rate), warmup then the
//! measured requests; and the validity gates on the result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::client::{self, Target};
use crate::metrics::{Arrival, Computed, Scales};
use crate::progress::{Live, Progress, Watched};
use crate::workload::Workload;
use crate::{
    BenchConfig, BenchError, LatencyHistograms, PointId, PointReport, PointResult, RequestRate,
    Sweep, Validity, arrivals, closed_loop, histogram, metrics, open_loop, record,
};

/// Percentiles of the HDR distributions kept in each point's report besides the configured ones.
const HDR_PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 99.9];

/// One point to run: the closed loop at a concurrency, or the open loop at a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    Closed { concurrency: u32 },
    Open { rate: f64 },
}

pub(crate) async fn run_sweep(
    cfg: &BenchConfig,
    live: Option<&Live>,
    on_point: &mut dyn FnMut(&mut PointResult) -> std::ops::ControlFlow<()>,
) -> Result<Sweep, BenchError> {
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
    let client = client::build_client(widest);
    let target = Arc::new(Target {
        urls: cfg.parsed_request_urls()?,
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
        stall: cfg.stall.filter(|_| cfg.streaming),
        last_byte: std::sync::Arc::new(client::LastByte::new()),
        ignore_eos: cfg.ignore_eos,
        authorization: client::bearer(cfg.api_key.as_deref()),
    });
    let mut workload = Workload::new(cfg)?;
    let plan_count = plans.len();
    let mut points = Vec::with_capacity(plans.len());
    for (point_index, plan) in plans.into_iter().enumerate() {
        let (label, cap) = match plan {
            Plan::Closed { concurrency } => (format!("con={concurrency}"), Some(concurrency)),
            Plan::Open { rate } => (format!("rate={rate}"), cfg.max_concurrency),
        };
        if cfg.warmup > 0 {
            // At least one per router: requests go to the routers in turn from the first, so
            // fewer than there are routers would leave the last ones cold.
            let routers = u32::try_from(target.urls.len()).unwrap_or(u32::MAX);
            let count = cfg.warmup.max(routers);
            let warmup = workload.requests(cfg, u64::from(count));
            // Warmup is always a closed loop: it only has to wake the server up.
            let c = cap.unwrap_or(count);
            let outcomes = closed_loop::run(
                &client,
                &target,
                warmup,
                c,
                None,
                Watched {
                    label: &format!("{label} warmup"),
                    progress: Arc::default(),
                },
            )
            .await;
            let errors = metrics::compute(&outcomes, Scales::default()).errors;
            // Warmup failures do not count, but a server that fails warmup deserves a look.
            if !errors.is_empty() {
                tracing::warn!(point = %label, ?errors, "warmup requests failed");
                say_err!("{label} warmup failures (not counted): {errors:?}");
            }
        }
        // validate() makes num_prompts required in the open loop, so only the closed loop
        // falls back to concurrency × rounds.
        let n = cfg.num_prompts.unwrap_or_else(|| match plan {
            Plan::Closed { concurrency } => u64::from(concurrency) * u64::from(cfg.rounds),
            Plan::Open { .. } => 0,
        });
        let requests = workload.requests(cfg, n);
        // A point may have floor(rate × n) failures and still be valid; past that, once one of
        // them hung until a limit, it stops sending (see `Progress::should_stop`).
        let budget = (!cfg.keep_going).then(|| failure_budget(cfg.max_failure_rate, n));
        let progress = Arc::new(Progress::with_failure_budget(budget));
        let stop = Arc::clone(&progress);
        if let Some(live) = live {
            let id = PointId {
                concurrency: cap,
                request_rate: match plan {
                    Plan::Open { rate } => Some(RequestRate(rate)),
                    Plan::Closed { .. } => None,
                },
            };
            live.begin(point_index + 1, plan_count, &id.label(), n, &progress);
        }
        let started_at = SystemTime::now();
        let deadline = cfg.duration_limit.map(|d| Instant::now() + d);
        // The open loop's start, before its first gap: its duration counts from there, as
        // vLLM's does (the first request is due a gap after the start, not at it).
        let mut started = None;
        let outcomes = match plan {
            Plan::Closed { concurrency } => {
                closed_loop::run(
                    &client,
                    &target,
                    requests,
                    concurrency,
                    deadline,
                    Watched {
                        label: &label,
                        progress,
                    },
                )
                .await
            }
            Plan::Open { rate } => {
                // Each point its own arrival stream, derived from the seed and the point.
                let seed = cfg.seed ^ (0x0a77_17a1 + point_index as u64);
                let offsets = arrivals::schedule(n, rate, cfg.burstiness, seed);
                let outcomes = open_loop::run(
                    &client,
                    &target,
                    requests,
                    &offsets,
                    cfg.max_concurrency,
                    deadline,
                    Watched {
                        label: &label,
                        progress,
                    },
                )
                .await;
                started = outcomes
                    .first()
                    .and_then(|o| o.scheduled.checked_sub(offsets[o.index]));
                outcomes
            }
        };
        if let Some(live) = live {
            live.end();
        }
        let ended_at = SystemTime::now();
        let point = PointId {
            concurrency: cap,
            request_rate: match plan {
                Plan::Open { rate } => Some(RequestRate(rate)),
                Plan::Closed { .. } => None,
            },
        };
        let scales = Scales {
            extra_percentiles: &cfg.percentiles,
            goodput: cfg.goodput,
            gpus: cfg.gpus,
            queue: cap.map(|_| match plan {
                Plan::Closed { .. } => Arrival::PointStart,
                Plan::Open { .. } => Arrival::Scheduled,
            }),
            started,
            latency_from: point.latency_origin(),
        };
        let computed = metrics::compute(&outcomes, scales);
        let wait_note = match (plan, cap) {
            (Plan::Open { .. }, Some(c)) => metrics::capped_wait_note(&computed, c),
            _ => None,
        };
        let Computed {
            metrics,
            errors,
            histograms,
            ..
        } = computed;
        let budget_stop = (outcomes.len() as u64) < n && stop.should_stop();
        let stopped = ((outcomes.len() as u64) < n).then(|| {
            if budget_stop {
                format!(
                    "stopped after {} of {n} requests: {} failed, more than max_failure_rate {} \
                     allows ({}), some waiting out a limit (timeout, stalled or http_504), so \
                     the point has failed and each further wave would wait as long \
                     (keep_going sends every request)",
                    outcomes.len(),
                    stop.failed(),
                    cfg.max_failure_rate,
                    budget.unwrap_or_default()
                )
            } else {
                format!(
                    "the duration limit stopped the point after {} of {n} requests",
                    outcomes.len()
                )
            }
        });
        if let Some(why) = &stopped {
            say_err!("{label}: {why}");
        }
        say_err!(
            "{label} finished {} requests in {:.2}s: completed {} failed {}",
            outcomes.len(),
            metrics.duration_s,
            metrics.completed,
            metrics.failed
        );
        for line in first_words_per_failure(&outcomes) {
            say_err!("{label}: {line}");
        }
        if let Some(note) = &wait_note {
            say_err!("{label}: note: {note}");
        }
        let warnings: Vec<String> = counted_without_usage(&outcomes).into_iter().collect();
        for w in &warnings {
            say_err!("{label}: warning: {w}");
        }
        // Kept with the point's files too (results.json's warnings, summary.txt): what reads
        // them later must not see the figures without what qualifies them.
        let warnings: Vec<String> = warnings
            .into_iter()
            .chain(stopped.clone().filter(|_| !budget_stop))
            .chain(wait_note.map(|n| format!("note: {n}")))
            .collect();
        let mut validity = Validity::judge(&point, &metrics, &errors, cfg.max_failure_rate);
        if let (true, Some(why)) = (budget_stop, &stopped) {
            let failed = validity
                .problems
                .iter_mut()
                .find(|p| p.kind == crate::ProblemKind::FailedRequests);
            if let Some(p) = failed {
                p.message.push_str(&format!("; {why}"));
            }
        }
        let mut result = PointResult {
            report: PointReport {
                validity,
                point,
                started_at,
                ended_at,
                num_prompts: n,
                metrics,
                error_counts: errors,
                hdr_percentiles_ms: hdr_percentiles(&histograms, &cfg.percentiles),
            },
            requests: record::records(&outcomes),
            histograms,
            warnings,
        };
        let next = on_point(&mut result);
        points.push(result);
        if next.is_break() {
            break;
        }
        // Its requests hung until a limit: the server would keep every further point (and its
        // warm-up) waiting as long.
        if budget_stop && points.len() < plan_count {
            say_err!(
                "{label}: no further point: this one's requests hung until a limit, and the next \
                 would wait as long (keep_going runs them all)"
            );
            break;
        }
    }
    Ok(Sweep { points })
}

/// Answers whose output tokens were counted as their text events, the server having sent no
/// `usage` (asked for with `stream_options.include_usage`): said, since an event can carry
/// several tokens (speculative decoding, a server that batches its stream), and an answer cut
/// short but closed with `[DONE]` looks the same.
fn counted_without_usage(outcomes: &[client::Outcome]) -> Option<String> {
    let answered = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let counted: Vec<&client::Outcome> = outcomes
        .iter()
        .filter(|o| o.result.as_ref().is_ok_and(|s| !s.usage_reported))
        .collect();
    if counted.is_empty() {
        return None;
    }
    let short = counted
        .iter()
        .filter(|o| {
            let got = o.result.as_ref().map_or(0, |s| s.output_tokens);
            o.promised_output.is_some_and(|want| got < u64::from(want))
        })
        .count();
    let short = if short > 0 {
        format!(
            "; {short} of them had fewer text events than the output length asked for with \
             ignore_eos (cut short, or several tokens per event)"
        )
    } else {
        String::new()
    };
    Some(format!(
        "{} of {answered} answers came without usage (token counts): their output tokens are \
         counted as the text events that came, which undercounts when an event carries several \
         tokens, so output throughput, TPOT and ITL may be off{short}",
        counted.len()
    ))
}

/// The most failures of `n` requests that keep a point valid: the largest k with
/// k / n ≤ `rate`, compared as [`Validity::judge`] compares (floating point: `0.29 × 100` is
/// 28.999…, and flooring it would allow one failure fewer than the judge does).
fn failure_budget(rate: f64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let within = |k: u64| (k as f64 / n as f64) <= rate;
    let mut k = ((rate * n as f64).floor() as u64).min(n);
    while k < n && within(k + 1) {
        k += 1;
    }
    while k > 0 && !within(k) {
        k -= 1;
    }
    k
}

#[cfg(test)]
mod budget_tests {
    #[test]
    fn the_budget_is_what_the_judge_allows() {
        assert_eq!(super::failure_budget(0.29, 100), 29);
        assert_eq!(super::failure_budget(0.0, 100), 0);
        assert_eq!(super::failure_budget(1.0, 12), 12);
        assert_eq!(super::failure_budget(0.05, 20), 1);
        assert_eq!(super::failure_budget(0.1, 3), 0);
        for n in 1..200u64 {
            for pct in 0..=100u64 {
                let rate = pct as f64 / 100.0;
                let k = super::failure_budget(rate, n);
                assert!(k as f64 / n as f64 <= rate, "{rate} {n}: {k}");
                assert!(
                    k == n || (k + 1) as f64 / n as f64 > rate,
                    "{rate} {n}: {k}"
                );
            }
        }
    }
}

/// Each histogram's percentiles (the usual four plus the configured ones), in milliseconds.
fn hdr_percentiles(
    h: &LatencyHistograms,
    configured: &[f64],
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut wanted: Vec<f64> = HDR_PERCENTILES.to_vec();
    wanted.extend(configured.iter().filter(|p| !HDR_PERCENTILES.contains(p)));
    h.named()
        .into_iter()
        .map(|(metric, h)| {
            let by_p = wanted
                .iter()
                .map(|&q| {
                    (
                        format!("p{}", crate::result::percentile_word(q)),
                        histogram::percentile_ms(h, q),
                    )
                })
                .collect();
            (metric.to_string(), by_p)
        })
        .collect()
}

/// Every point's problems (judged when it was measured), or that nothing was measured.
pub(crate) fn invalid_reason(sweep: &Sweep) -> Option<String> {
    if sweep.points.is_empty() {
        return Some("no points were run".into());
    }
    let reasons: Vec<String> = sweep
        .points
        .iter()
        .filter_map(|p| p.report.validity.reason())
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// For each kind of failure that came with the server's words, the first request's: what
/// `http_500: 12` alone would not say (all of them are in requests.jsonl).
fn first_words_per_failure(outcomes: &[client::Outcome]) -> Vec<String> {
    let mut seen = BTreeMap::new();
    for o in outcomes {
        if let Err(f @ (client::Failure::Status(_, Some(_)) | client::Failure::Connect(Some(_)))) =
            &o.result
        {
            seen.entry(f.kind()).or_insert_with(|| f.describe());
        }
    }
    seen.into_values()
        .map(|words| format!("first failure said {words}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;

    fn point(c: u32, failed: u64, output: u64, errors: &[(&str, u64)], limit: f64) -> PointResult {
        let metrics = Metrics {
            completed: 4,
            failed,
            zero_token_requests: errors
                .iter()
                .find(|(k, _)| *k == "zero_tokens")
                .map_or(0, |(_, n)| *n),
            total_output_tokens: output,
            ..Default::default()
        };
        let errors: BTreeMap<String, u64> =
            errors.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let point = PointId::closed(c);
        PointResult {
            report: PointReport {
                validity: Validity::judge(&point, &metrics, &errors, limit),
                point,
                started_at: SystemTime::UNIX_EPOCH,
                ended_at: SystemTime::UNIX_EPOCH,
                num_prompts: 4 + failed,
                metrics,
                error_counts: errors,
                hdr_percentiles_ms: BTreeMap::new(),
            },
            requests: Vec::new(),
            histograms: Default::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn clean_sweep_is_valid() {
        let s = Sweep {
            points: vec![point(1, 0, 10, &[], 0.0), point(2, 0, 20, &[], 0.0)],
        };
        assert_eq!(invalid_reason(&s), None);
        assert_eq!(
            invalid_reason(&Sweep { points: vec![] }).unwrap(),
            "no points were run"
        );
    }

    #[test]
    fn failures_over_the_limit_and_zero_tokens_are_reasons() {
        let s = Sweep {
            points: vec![
                point(1, 3, 10, &[("http_500", 2), ("timeout", 1)], 0.0),
                point(2, 0, 0, &[], 0.0),
            ],
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
            points: vec![point(1, 1, 10, &[("http_500", 1)], 0.2)],
        };
        assert_eq!(invalid_reason(&within), None);
        let zero = Sweep {
            points: vec![point(1, 1, 10, &[("zero_tokens", 1)], 0.5)],
        };
        assert_eq!(
            invalid_reason(&zero).unwrap(),
            "concurrency 1: 1 request(s) generated zero tokens"
        );
    }
}
