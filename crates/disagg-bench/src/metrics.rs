//! benchmark_serving's metric definitions (PROTOCOLS.md §4), computed from request timelines.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::client::{Failure, Outcome};
use crate::histogram::{self, LatencyHistograms};
use crate::{FigureStats, LatencyOrigin, LatencyStats, Metrics, Slo};

/// When a request arrived at the client, for its queueing time under a concurrency cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The closed loop: every request is due when the point starts (benchmark_serving's
    /// infinite rate) and waits for a slot.
    PointStart,
    /// The open loop: at its scheduled time.
    Scheduled,
}

/// What the point's numbers are judged and divided by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scales<'a> {
    pub extra_percentiles: &'a [f64],
    pub goodput: Option<Slo>,
    pub gpus: Option<NonZeroU32>,
    /// Under a concurrency cap, how to measure the client's queueing time; `None` leaves it
    /// out (no cap), as vLLM does.
    pub queue: Option<Arrival>,
    /// When the point started, if before its first scheduled send (the open loop's first
    /// request is due one gap in): the duration counts from here.
    pub started: Option<Instant>,
    /// What TTFT and E2EL count from ([`crate::PointId::latency_origin`]).
    pub latency_from: LatencyOrigin,
}

impl Default for Scales<'_> {
    fn default() -> Self {
        Self {
            extra_percentiles: &[],
            goodput: None,
            gpus: None,
            queue: None,
            started: None,
            latency_from: LatencyOrigin::Sent,
        }
    }
}

/// What one point's outcomes come to.
#[derive(Debug)]
pub(crate) struct Computed {
    pub metrics: Metrics,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    pub histograms: LatencyHistograms,
}

/// Metrics of one point, its failures by kind and its latency histograms.
pub(crate) fn compute(outcomes: &[Outcome], scales: Scales<'_>) -> Computed {
    let extra_percentiles = scales.extra_percentiles;
    let mut good = 0u64;
    let mut errors = BTreeMap::new();
    let mut ttft = Vec::new();
    let mut tpot = Vec::new();
    let mut itl = Vec::new();
    let mut e2el = Vec::new();
    let mut user_tput = Vec::new();
    let mut decoded_per_iter = Vec::new();
    let (mut completed, mut input, mut output) = (0u64, 0u64, 0u64);

    for o in outcomes {
        let ok = match &o.result {
            Ok(ok) => ok,
            Err(failure) => {
                *errors.entry(failure.kind()).or_insert(0) += 1;
                continue;
            }
        };
        completed += 1;
        input += o.input_tokens;
        output += ok.output_tokens;
        let e2e = o.e2e(scales.latency_from);
        e2el.push(ms(e2e));
        if e2e > Duration::ZERO {
            user_tput.push(ok.output_tokens as f64 / e2e.as_secs_f64());
        }
        if let Some(first) = o.ttft(scales.latency_from) {
            ttft.push(ms(first));
            // One token has no "per output token" time; benchmark_serving leaves it out.
            let request_tpot = (ok.output_tokens > 1)
                .then(|| ms(e2e.saturating_sub(first)) / (ok.output_tokens - 1) as f64);
            tpot.extend(request_tpot);
            if scales
                .goodput
                .is_some_and(|slo| slo.met(ms(first), request_tpot, ms(e2e)))
            {
                good += 1;
            }
        }
        itl.extend(ok.chunks.windows(2).map(|w| ms(w[1] - w[0])));
        decoded_per_iter.extend(ok.avg_decoded_tokens_per_iter);
    }
    let origin = outcomes.iter().map(|o| o.scheduled).min();
    let client_queue_time = scales.queue.map(|arrival| {
        let waits: Vec<f64> = outcomes
            .iter()
            .filter(|o| o.result.is_ok())
            .map(|o| {
                let arrived = match arrival {
                    Arrival::PointStart => origin.unwrap_or(o.scheduled),
                    Arrival::Scheduled => o.scheduled,
                };
                ms(o.sent.saturating_duration_since(arrived))
            })
            .collect();
        stats(waits, extra_percentiles)
    });

    let duration_s = span(outcomes, scales.started).as_secs_f64();
    let per_s = |x: f64| {
        if duration_s > 0.0 {
            x / duration_s
        } else {
            0.0
        }
    };
    let histograms = LatencyHistograms {
        ttft: histogram::from_ms(&ttft),
        tpot: histogram::from_ms(&tpot),
        itl: histogram::from_ms(&itl),
        e2el: histogram::from_ms(&e2el),
    };
    let metrics = Metrics {
        duration_s,
        completed,
        failed: outcomes.len() as u64 - completed,
        zero_token_requests: errors
            .get(&Failure::ZeroTokens.kind())
            .copied()
            .unwrap_or(0),
        total_input_tokens: input,
        total_output_tokens: output,
        request_throughput: per_s(completed as f64),
        output_throughput: per_s(output as f64),
        total_token_throughput: per_s((input + output) as f64),
        user_throughput: mean(&user_tput),
        request_goodput: scales.goodput.map(|_| per_s(good as f64)),
        output_throughput_per_gpu: scales
            .gpus
            .map(|g| per_s(output as f64) / f64::from(g.get())),
        total_token_throughput_per_gpu: scales
            .gpus
            .map(|g| per_s((input + output) as f64) / f64::from(g.get())),
        max_send_lag_ms: outcomes
            .iter()
            .map(|o| ms(o.sent.saturating_duration_since(o.scheduled)))
            .fold(0.0, f64::max),
        max_output_tokens_per_s: peak_chunks_per_second(outcomes),
        max_concurrent_requests: peak_in_flight(outcomes),
        ttft: stats(ttft, extra_percentiles),
        tpot: stats(tpot, extra_percentiles),
        itl: stats(itl, extra_percentiles),
        e2el: stats(e2el, extra_percentiles),
        client_queue_time,
        avg_decoded_tokens_per_iter: figure_stats(decoded_per_iter, extra_percentiles),
        gen_device_step_time_ms: None,
    };
    Computed {
        metrics,
        errors,
        histograms,
    }
}

/// Under a concurrency cap TTFT and E2EL count from the send, as vLLM's and SGLang's
/// benchmarks count them, and the wait for a slot is the client's queue time, reported apart.
/// When that wait is a real share of a request's life (at least 1 ms and a tenth of the mean
/// E2EL), a user reading TTFT alone would miss that the offered load was not what reached the
/// server: the note says so, with the wait.
pub(crate) fn capped_wait_note(c: &Computed, cap: u32) -> Option<String> {
    let m = &c.metrics;
    let wait = m.client_queue_time.as_ref()?.mean_ms;
    if wait < 1.0 || wait < 0.1 * m.e2el.mean_ms {
        return None;
    }
    Some(format!(
        "requests waited in the client for one of the --max-concurrency {cap} slots (mean \
         {wait:.2} ms, max {:.2} ms): TTFT and E2EL count from each request's send, as vLLM's and \
         SGLang's benchmarks count them, and leave that wait out; it is the client queue time \
         (`*_client_queue_time_ms`, and per request `queue_times` in the point's \
         benchmark_serving result file)",
        m.max_send_lag_ms
    ))
}

/// vLLM's peak output rate: content chunks of successful requests in one-second buckets counted
/// from the first successful send; the fullest bucket.
fn peak_chunks_per_second(outcomes: &[Outcome]) -> f64 {
    let Some(start) = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.sent)
        .min()
    else {
        return 0.0;
    };
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for o in outcomes {
        if let Ok(ok) = &o.result {
            for &c in &ok.chunks {
                *buckets
                    .entry(c.saturating_duration_since(start).as_secs())
                    .or_insert(0) += 1;
            }
        }
    }
    buckets.values().copied().max().unwrap_or(0) as f64
}

/// The most successful requests in flight at once, over half-open `[sent, end)` intervals.
fn peak_in_flight(outcomes: &[Outcome]) -> u64 {
    let mut events: Vec<(Instant, i64)> = Vec::new();
    for o in outcomes.iter().filter(|o| o.result.is_ok()) {
        events.push((o.sent, 1));
        events.push((o.end, -1));
    }
    // At the same instant an end comes before a start.
    events.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    peak as u64
}

/// Mean, min, max, median, population std and percentiles of a server-reported figure; `None`
/// when no request reported it.
fn figure_stats(mut values: Vec<f64>, extra_percentiles: &[f64]) -> Option<FigureStats> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let s = stats(values.clone(), extra_percentiles);
    let percentiles = s
        .percentile_rows()
        .into_iter()
        .map(|(p, v)| (format!("p{}", crate::result::percentile_word(p)), v))
        .collect();
    Some(FigureStats {
        mean: s.mean_ms,
        min: values[0],
        max: values[values.len() - 1],
        median: s.median_ms,
        std: s.std_ms,
        percentiles,
    })
}

/// From the point's start (else its first scheduled send) to the last completion.
fn span(outcomes: &[Outcome], started: Option<Instant>) -> Duration {
    let first: Option<Instant> = outcomes.iter().map(|o| o.scheduled).chain(started).min();
    let last: Option<Instant> = outcomes.iter().map(|o| o.end).max();
    match (first, last) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Mean, median, population std, p99 and the extra percentiles; all zero for an empty set.
pub(crate) fn stats(mut values: Vec<f64>, extra_percentiles: &[f64]) -> LatencyStats {
    values.sort_by(f64::total_cmp);
    let m = mean(&values);
    let variance = if values.is_empty() {
        0.0
    } else {
        values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64
    };
    LatencyStats {
        mean_ms: m,
        median_ms: percentile(&values, 50.0),
        std_ms: variance.sqrt(),
        p99_ms: percentile(&values, 99.0),
        percentiles: asked(extra_percentiles)
            .into_iter()
            .map(|p| (p, percentile(&values, p)))
            .collect(),
    }
}

/// The percentiles asked for, without duplicates: they replace the default (p99) as vLLM's
/// `--metric-percentiles` does; p99 is computed apart whatever the list.
pub(crate) fn asked(requested: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for &p in requested {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// numpy's default ("linear") percentile over sorted values: interpolate between the two ranks
/// around p/100·(n−1).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let Some(&last) = sorted.last() else {
        return 0.0;
    };
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    if hi >= sorted.len() {
        return last;
    }
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Success;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// A streamed request sent at `t0 + start_ms` whose content chunks arrive at the given
    /// offsets (ms from send), ending `end_ms` after sending.
    fn streamed(
        t0: Instant,
        start_ms: u64,
        chunks_ms: &[u64],
        end_ms: u64,
        tokens: u64,
    ) -> Outcome {
        let sent = t0 + Duration::from_millis(start_ms);
        Outcome {
            scheduled: sent,
            sent,
            promised_output: None,
            url_index: 0,
            index: 0,
            end: sent + Duration::from_millis(end_ms),
            input_tokens: 10,
            partial: Vec::new(),
            result: Ok(Success {
                chunks: chunks_ms
                    .iter()
                    .map(|&c| sent + Duration::from_millis(c))
                    .collect(),
                output_tokens: tokens,
                prompt_tokens: None,
                usage_reported: true,
                streamed: true,
                avg_decoded_tokens_per_iter: None,
                first_choice: None,
            }),
        }
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        // numpy.percentile(range(1, 101), 99) == 99.01
        assert!(close(percentile(&v, 99.0), 99.01));
        assert!(close(percentile(&v, 50.0), 50.5));
        assert!(close(percentile(&v, 90.0), 90.1));
        assert!(close(percentile(&v, 99.9), 99.901));
        assert!(close(percentile(&v, 100.0), 100.0));
        assert!(close(percentile(&v, 0.0), 1.0));
        assert!(close(percentile(&[7.0], 99.0), 7.0));
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn std_is_the_population_one() {
        // numpy.std([2, 4, 4, 4, 5, 5, 7, 9]) == 2.0
        let s = stats(vec![9.0, 2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0], &[]);
        assert!(close(s.std_ms, 2.0));
        assert!(close(s.mean_ms, 5.0));
        assert!(close(s.median_ms, 4.5));
    }

    #[test]
    fn empty_sets_give_zeros() {
        assert_eq!(
            stats(vec![], &[50.0]),
            LatencyStats {
                percentiles: vec![(50.0, 0.0)],
                ..Default::default()
            }
        );
        let Computed {
            metrics: m, errors, ..
        } = compute(&[], Scales::default());
        assert_eq!(m, Metrics::default());
        assert!(errors.is_empty());
    }

    /// Regression: `--percentiles 25,99.9,100` also showed p99; the list replaces the default,
    /// as vLLM's `--metric-percentiles` does, and p99 is still computed for the harness.
    #[test]
    fn the_asked_percentiles_replace_p99_which_is_still_computed() {
        assert_eq!(asked(&[50.0, 99.0, 90.0, 50.0]), vec![50.0, 99.0, 90.0]);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = stats(v.clone(), &[25.0, 99.9, 100.0]);
        let shown: Vec<f64> = s.percentile_rows().iter().map(|r| r.0).collect();
        assert_eq!(shown, vec![25.0, 99.9, 100.0]);
        assert!(close(s.p99_ms, 99.01));
        // Nothing asked: p99, as vLLM's default.
        let s = stats(v, &[]);
        assert_eq!(s.percentile_rows(), vec![(99.0, s.p99_ms)]);
    }

    #[test]
    fn timelines_give_ttft_tpot_itl_e2el() {
        let t0 = Instant::now();
        let outcomes = [
            // TTFT 30, chunks every 10 ms, 4 tokens, end 70: TPOT (70-30)/3.
            streamed(t0, 0, &[30, 40, 50, 60], 70, 4),
            // A single token: counts for TTFT and E2EL, not for TPOT; no ITL gaps.
            streamed(t0, 10, &[50], 60, 1),
        ];
        let Computed {
            metrics: m, errors, ..
        } = compute(&outcomes, Scales::default());
        assert!(errors.is_empty());
        assert_eq!(m.completed, 2);
        assert_eq!(m.failed, 0);
        assert_eq!(m.total_input_tokens, 20);
        assert_eq!(m.total_output_tokens, 5);
        assert!(close(m.ttft.mean_ms, 40.0));
        assert!(close(m.tpot.mean_ms, 40.0 / 3.0));
        assert!(
            close(m.tpot.p99_ms, 40.0 / 3.0),
            "TPOT skips the 1-token request"
        );
        assert!(close(m.itl.mean_ms, 10.0));
        assert!(close(m.itl.std_ms, 0.0));
        assert!(close(m.e2el.median_ms, 65.0));
        // Duration: first send (0) to last end (70).
        assert!(close(m.duration_s, 0.070));
        assert!(close(m.request_throughput, 2.0 / 0.070));
        assert!(close(m.output_throughput, 5.0 / 0.070));
        assert!(close(m.total_token_throughput, 25.0 / 0.070));
        // Per request: 4 tokens / 70 ms and 1 token / 60 ms.
        assert!(close(m.user_throughput, (4.0 / 0.070 + 1.0 / 0.060) / 2.0));
    }

    /// An open loop's first request is due one gap after the point started: its duration counts
    /// that gap, as vLLM's does, or every rate point would read faster than it was offered.
    #[test]
    fn the_duration_counts_from_the_points_start_when_given() {
        let t0 = Instant::now();
        let outcomes = [
            streamed(t0, 50, &[10], 20, 1),
            streamed(t0, 100, &[10], 20, 1),
        ];
        let from_first = compute(&outcomes, Scales::default()).metrics;
        assert!(close(from_first.duration_s, 0.070));
        let from_start = compute(
            &outcomes,
            Scales {
                started: Some(t0),
                ..Scales::default()
            },
        )
        .metrics;
        assert!(close(from_start.duration_s, 0.120));
        assert!(close(from_start.request_throughput, 2.0 / 0.120));
    }

    #[test]
    fn itl_pools_every_gap_of_every_request() {
        let t0 = Instant::now();
        let outcomes = [
            streamed(t0, 0, &[5, 6, 8], 8, 3),
            streamed(t0, 0, &[5, 9], 9, 2),
        ];
        let Computed { metrics: m, .. } = compute(
            &outcomes,
            Scales {
                extra_percentiles: &[50.0],
                ..Scales::default()
            },
        );
        // Gaps 1, 2 and 4 ms.
        assert!(close(m.itl.mean_ms, 7.0 / 3.0));
        assert!(close(m.itl.median_ms, 2.0));
        assert_eq!(m.itl.percentiles, vec![(50.0, 2.0)]);
    }

    #[test]
    fn failures_are_counted_by_kind_and_left_out_of_latencies() {
        let t0 = Instant::now();
        let failed = |start: u64, end: u64, f: Failure| Outcome {
            scheduled: t0 + Duration::from_millis(start),
            promised_output: None,
            url_index: 0,
            index: 0,
            sent: t0 + Duration::from_millis(start),
            end: t0 + Duration::from_millis(end),
            input_tokens: 10,
            result: Err(f),
            partial: Vec::new(),
        };
        let outcomes = [
            streamed(t0, 0, &[10, 20], 20, 2),
            failed(0, 5, Failure::Status(500, None)),
            failed(1, 6, Failure::Status(500, None)),
            failed(2, 40, Failure::Timeout(Duration::from_secs(1))),
        ];
        let Computed {
            metrics: m, errors, ..
        } = compute(&outcomes, Scales::default());
        assert_eq!(m.completed, 1);
        assert_eq!(m.failed, 3);
        assert_eq!(m.total_input_tokens, 10);
        assert!(close(m.e2el.mean_ms, 20.0));
        // The failed requests still belong to the measured span.
        assert!(close(m.duration_s, 0.040));
        assert_eq!(
            errors,
            BTreeMap::from([("http_500".to_string(), 2), ("timeout".to_string(), 1)])
        );
    }

    /// An answer whose events carried no text (special tokens only) has its first token when
    /// its first choice came, as vLLM takes it: it used to have no TTFT at all, so a point of
    /// such answers read "Mean TTFT 0.00" and goodput 0 with every objective met.
    #[test]
    fn an_answer_without_text_has_its_ttft_at_its_first_choice() {
        let t0 = Instant::now();
        let mut o = streamed(t0, 0, &[], 40, 1);
        if let Ok(ok) = &mut o.result {
            ok.first_choice = Some(t0 + Duration::from_millis(25));
        }
        let Computed { metrics: m, .. } = compute(
            &[o],
            Scales {
                goodput: Some("ttft:1000".parse().unwrap()),
                ..Scales::default()
            },
        );
        assert!(close(m.ttft.mean_ms, 25.0), "{}", m.ttft.mean_ms);
        assert!(close(m.request_goodput.unwrap(), 1.0 / 0.040));
    }

    #[test]
    fn goodput_counts_requests_meeting_every_objective() {
        let t0 = Instant::now();
        let outcomes = [
            // TTFT 30, TPOT 10, E2EL 50: meets all.
            streamed(t0, 0, &[30, 40, 50], 50, 3),
            // TTFT 80: misses ttft.
            streamed(t0, 0, &[80, 90], 90, 2),
            // TTFT 20, TPOT 40: misses tpot.
            streamed(t0, 0, &[20, 60], 60, 2),
            // One token: no TPOT to miss; TTFT 40 meets.
            streamed(t0, 0, &[40], 40, 1),
            // Still within goodput's span (0 to 100 ms), but a failure never counts.
            Outcome {
                result: Err(Failure::Status(500, None)),
                partial: Vec::new(),
                ..streamed(t0, 0, &[], 100, 0)
            },
        ];
        let slo = "ttft:50,tpot:20".parse().unwrap();
        let gpus = NonZeroU32::new(4);
        let Computed { metrics: m, .. } = compute(
            &outcomes,
            Scales {
                goodput: Some(slo),
                gpus,
                ..Scales::default()
            },
        );
        assert!(close(m.request_goodput.unwrap(), 2.0 / 0.100));
        assert!(close(
            m.output_throughput_per_gpu.unwrap(),
            8.0 / 0.100 / 4.0
        ));
        assert!(close(
            m.total_token_throughput_per_gpu.unwrap(),
            (40.0 + 8.0) / 0.100 / 4.0
        ));
        let Computed { metrics: m, .. } = compute(&outcomes, Scales::default());
        assert_eq!(
            (m.request_goodput, m.output_throughput_per_gpu),
            (None, None)
        );
    }

    /// An uncapped open loop: a request the client itself sent late is charged the delay.
    #[test]
    fn uncapped_open_loop_latency_counts_from_the_scheduled_time() {
        let t0 = Instant::now();
        // Due at 0 but sent 50 ms late; first chunk 30 ms after leaving.
        let mut late = streamed(t0, 50, &[30, 40], 40, 2);
        late.scheduled = t0;
        let on_time = streamed(t0, 10, &[30, 40], 40, 2);
        let uncapped = Scales {
            latency_from: LatencyOrigin::Scheduled,
            ..Scales::default()
        };
        let m = compute(&[late, on_time], uncapped).metrics;
        // TTFT 80 and 30, E2EL 90 and 40: the lag is charged, not hidden.
        assert!(close(m.ttft.mean_ms, 55.0));
        assert!(close(m.e2el.mean_ms, 65.0));
        // TPOT and ITL are about the stream itself and do not move.
        assert!(close(m.tpot.mean_ms, 10.0));
        assert!(close(m.itl.mean_ms, 10.0));
        assert!(close(m.max_send_lag_ms, 50.0));
        assert_eq!(m.client_queue_time, None);
        // Duration runs from the first scheduled send (0) to the last end (90).
        assert!(close(m.duration_s, 0.090));
    }

    /// Regression: with `--request-rate inf --max-concurrency N` every request is due at 0, and
    /// TTFT counted from there grew with --num-prompts (75x what vLLM reported): under a cap,
    /// TTFT and E2EL count from the send, and the wait for a slot is the client queue time.
    #[test]
    fn capped_open_loop_latency_counts_from_the_send_and_the_wait_apart() {
        let t0 = Instant::now();
        // Due at 0 but held 50 ms by the concurrency cap; first chunk 30 ms after leaving.
        let mut late = streamed(t0, 50, &[30, 40], 40, 2);
        late.scheduled = t0;
        let mut on_time = streamed(t0, 0, &[30, 40], 40, 2);
        on_time.scheduled = t0;
        let capped = Scales {
            queue: Some(Arrival::Scheduled),
            latency_from: LatencyOrigin::Sent,
            ..Scales::default()
        };
        let both = compute(&[late, on_time.clone()], capped);
        let m = &both.metrics;
        assert!(close(m.ttft.mean_ms, 30.0), "{}", m.ttft.mean_ms);
        assert!(close(m.e2el.mean_ms, 40.0), "{}", m.e2el.mean_ms);
        let q = m.client_queue_time.as_ref().unwrap();
        assert!(close(q.mean_ms, 25.0) && close(q.p99_ms, 49.5), "{q:?}");
        assert!(close(m.max_send_lag_ms, 50.0));
        // The point's duration still runs from when the first was due to the last end.
        assert!(close(m.duration_s, 0.090));
        let note = capped_wait_note(&both, 2).unwrap();
        assert!(
            note.contains("--max-concurrency 2 slots (mean 25.00 ms, max 50.00 ms)")
                && note.contains("count from each request's send"),
            "{note}"
        );
        // No wait worth a note on time.
        assert_eq!(capped_wait_note(&compute(&[on_time], capped), 2), None);
    }

    #[test]
    fn zero_token_and_wrong_length_requests_are_failures_of_their_own_kind() {
        let t0 = Instant::now();
        let mut exact = streamed(t0, 0, &[10, 20], 20, 2);
        exact.promised_output = Some(2);
        let wrong = Outcome {
            result: Err(Failure::WrongLength { got: 1, want: 8 }),
            partial: Vec::new(),
            ..streamed(t0, 0, &[10], 20, 1)
        };
        let zero = Outcome {
            result: Err(Failure::ZeroTokens),
            partial: Vec::new(),
            ..streamed(t0, 0, &[], 5, 0)
        };
        let Computed {
            metrics: m, errors, ..
        } = compute(&[exact, wrong, zero], Scales::default());
        assert_eq!((m.completed, m.failed), (1, 2));
        assert_eq!(m.zero_token_requests, 1);
        assert_eq!(
            m.total_output_tokens, 2,
            "only the right-length answer counts"
        );
        assert_eq!(
            errors,
            BTreeMap::from([
                ("wrong_output_length".to_string(), 1),
                ("zero_tokens".to_string(), 1)
            ])
        );
    }

    #[test]
    fn non_streamed_ttft_is_e2el_without_itl() {
        let sent = Instant::now();
        let end = sent + Duration::from_millis(80);
        let o = Outcome {
            scheduled: sent,
            promised_output: None,
            url_index: 0,
            index: 0,
            sent,
            end,
            input_tokens: 4,
            partial: Vec::new(),
            result: Ok(Success {
                chunks: vec![end],
                output_tokens: 5,
                prompt_tokens: None,
                usage_reported: true,
                streamed: false,
                avg_decoded_tokens_per_iter: None,
                first_choice: None,
            }),
        };
        let Computed { metrics: m, .. } = compute(&[o], Scales::default());
        assert!(close(m.ttft.mean_ms, 80.0));
        assert!(close(m.e2el.mean_ms, 80.0));
        assert!(close(m.tpot.mean_ms, 0.0));
        assert_eq!(m.itl, LatencyStats::default());
    }

    #[test]
    fn peaks_queue_times_and_server_figures() {
        let t0 = Instant::now();
        let mut a = streamed(t0, 0, &[10, 20, 30], 40, 3);
        let mut b = streamed(t0, 30, &[10, 1500], 1600, 2);
        // b waited 30 ms for a slot (closed loop: due at the point's start).
        b.scheduled = t0 + Duration::from_millis(30);
        if let (Ok(x), Ok(y)) = (&mut a.result, &mut b.result) {
            x.avg_decoded_tokens_per_iter = Some(2.0);
            y.avg_decoded_tokens_per_iter = Some(3.0);
        }
        let c = streamed(t0, 2000, &[10], 20, 1);
        let outcomes = [a, b, c];
        let Computed { metrics: m, .. } = compute(
            &outcomes,
            Scales {
                queue: Some(Arrival::PointStart),
                ..Scales::default()
            },
        );
        // Second 0 holds a's three chunks and b's first; second 1 b's last; second 2 c's.
        assert!(close(m.max_output_tokens_per_s, 4.0));
        // a [0,40) and b [30,1630) overlap; c starts at 2000.
        assert_eq!(m.max_concurrent_requests, 2);
        let q = m.client_queue_time.unwrap();
        // numpy over [0, 30, 2000]: rank 1.98, between 30 and 2000.
        assert!(close(q.p99_ms, 30.0 + 1970.0 * 0.98));
        assert!(close(q.mean_ms, (0.0 + 30.0 + 2000.0) / 3.0));
        let a = m.avg_decoded_tokens_per_iter.unwrap();
        assert_eq!((a.min, a.max, a.mean, a.median), (2.0, 3.0, 2.5, 2.5));
        assert!(close(a.percentiles["p99"], 2.99));
        // Without a cap there is no queue, and without reports no figure.
        let Computed { metrics: m, .. } = compute(&outcomes[2..], Scales::default());
        assert_eq!(m.client_queue_time, None);
        assert_eq!(m.avg_decoded_tokens_per_iter, None);
    }
}
