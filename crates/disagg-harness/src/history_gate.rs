//! `perf.baseline: history`: gate each metric on the last passed runs of the same case, not on
//! one hand-kept file.
//!
//! For each gated metric of each point, the history is that metric in the last `runs` reference
//! runs of the same case hash recorded within `window`: runs that passed with their own perf
//! check on and not failing them ([`disagg_store::StoredRun::is_reference`]); a run with the
//! check skipped never moves the baseline. The baseline is their median; the band, as a fraction
//! of it, is the larger of the case's `threshold` and `noise` robust standard deviations of those
//! values (the median absolute deviation × 1.4826, so that one outlying run does not widen it).
//! A metric worse than the baseline by more than the band regresses; the verdict is
//! [`crate::perf::judge`]'s, the CSV gate's own. A band wider than the baseline itself (beyond
//! ±[`MAX_BAND`]) would pass anything: that metric is "too noisy to gate", not checked, and the
//! check says so as a warning; it does not fail the run (which could then never pass, and so
//! never replace the noisy runs, until they leave the window).
//!
//! Fewer than `min_runs` runs in the history: the check is skipped, and says why; never passed.

use std::fmt::Write as _;
use std::time::SystemTime;

use disagg_bench::PointReport;
use disagg_core::case::HistoryGate;
use serde::Serialize;

use crate::perf::{MetricType, Verdict, judge};

/// One metric of one point against its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// `con8`.
    pub point: String,
    pub metric: String,
    /// The median of the history; `None` when the point never had this metric.
    pub baseline: Option<f64>,
    /// The band, a fraction of the baseline.
    pub band: Option<f64>,
    pub measured: Option<f64>,
    /// How many earlier values the baseline is made of.
    pub values: usize,
    /// `None` when this row has too few values to judge, or is too noisy to gate.
    pub verdict: Option<Verdict>,
    /// The band would exceed [`MAX_BAND`]: not judged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub too_noisy: bool,
}

/// The widest band that still gates: ±100% of the baseline. A metric whose history is noisier
/// than that is "too noisy to gate".
pub const MAX_BAND: f64 = 1.0;

/// Scales the median absolute deviation to a standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;

/// The whole history check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryReport {
    pub case_hash: String,
    /// Earlier reference runs found.
    pub runs: usize,
    pub settings: HistoryGate,
    /// Why the check was skipped; `None` when it compared.
    pub skipped: Option<String>,
    /// Skipped only because the history has fewer than `min_runs` reference runs: the gate was
    /// on, with nothing yet to compare with (such a run starts the history).
    pub too_few_runs: bool,
    /// Not done because the history could not be read (the store broke, or did not answer,
    /// after the run was launched): the gate the case asks for was not applied, which fails the
    /// run rather than pass it unchecked.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_done: bool,
    pub rows: Vec<HistoryRow>,
}

impl HistoryReport {
    pub fn regressed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.verdict == Some(Verdict::Regressed))
    }

    /// What regressed in point `label`, one line per metric: its JUnit testcase's failure.
    pub fn regressions_of(&self, label: &str) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.point == label && r.verdict == Some(Verdict::Regressed))
            .map(|r| {
                let measured = r.measured.unwrap_or(f64::NAN);
                let baseline = r.baseline.unwrap_or(f64::NAN);
                let change = if baseline != 0.0 {
                    format!(" ({:+.1}%)", (measured - baseline) / baseline.abs() * 100.0)
                } else {
                    String::new()
                };
                format!(
                    "{} {measured:.3} against the history's median {baseline:.3}{change} of {} runs, beyond its band ±{:.1}%",
                    r.metric,
                    r.values,
                    r.band.unwrap_or(f64::NAN) * 100.0
                )
            })
            .collect()
    }

    /// How many metrics were too noisy to gate.
    pub fn too_noisy(&self) -> usize {
        self.rows.iter().filter(|r| r.too_noisy).count()
    }

    /// Whether the history was read but no metric could be judged (every one too noisy to gate,
    /// or short of values): nothing was checked, which is not a pass.
    pub fn checked_none(&self) -> bool {
        self.skipped.is_none() && self.rows.iter().all(|r| r.verdict.is_none())
    }

    /// A report that compared nothing, with the reason.
    pub fn skipped(case_hash: &str, settings: &HistoryGate, runs: usize, why: String) -> Self {
        Self {
            case_hash: case_hash.to_string(),
            runs,
            settings: settings.clone(),
            skipped: Some(why),
            too_few_runs: false,
            not_done: false,
            rows: Vec::new(),
        }
    }

    /// A check that could not read the history (`why`): not done, which fails the run.
    pub fn not_done(case_hash: &str, settings: &HistoryGate, runs: usize, why: String) -> Self {
        Self {
            not_done: true,
            ..Self::skipped(case_hash, settings, runs, why)
        }
    }

    /// `perf_check.txt`: the verdict, then baseline, band and measured value of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let short = &self.case_hash[..self.case_hash.len().min(12)];
        if let Some(why) = &self.skipped {
            if self.not_done {
                let _ = writeln!(
                    s,
                    "perf check: NOT DONE: {why}\nThe run is failed: perf.baseline asks for the \
                     history gate and it could not be applied (its measurements are in \
                     results.json). Fix the results store, then run the case again."
                );
            } else {
                let _ = writeln!(s, "perf check: skipped: {why}");
            }
            return s;
        }
        let regressed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Some(Verdict::Regressed))
            .count();
        let noisy = self.too_noisy();
        let head = if self.checked_none() {
            format!(
                "skipped: none of the {} metrics could be checked ({noisy} too noisy to gate)",
                self.rows.len()
            )
        } else {
            format!(
                "{} ({regressed} of {} metrics regressed{})",
                if regressed > 0 { "REGRESSED" } else { "passed" },
                self.rows.len(),
                if noisy > 0 {
                    format!("; {noisy} too noisy to gate, not checked")
                } else {
                    String::new()
                },
            )
        };
        let _ = writeln!(
            s,
            "perf check: {head} against the history: the last {} reference runs of the measured case {short} (its measure_hash; median; band = max({}, {} robust std devs: 1.4826 × MAD))",
            self.runs, self.settings.threshold, self.settings.noise,
        );
        if noisy > 0 {
            let _ = writeln!(
                s,
                "warning: {noisy} metric(s) too noisy to gate: the history's spread makes the band wider than ±{:.0}% of the baseline, which would pass anything; they were not checked (a warning, not a failure)",
                MAX_BAND * 100.0
            );
        }
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>12} {:>8} {:>12} {:>8} {:>6}  verdict",
            "point", "metric_type", "baseline", "band", "measured", "change", "runs"
        );
        for r in &self.rows {
            let num = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
            let change = match (r.baseline, r.measured) {
                (Some(b), Some(m)) if b != 0.0 => format!("{:+.1}%", (m - b) / b.abs() * 100.0),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<10} {:<24} {:>12} {:>8} {:>12} {:>8} {:>6}  {}",
                r.point,
                r.metric,
                num(r.baseline),
                r.band
                    .map(|b| format!("±{:.1}%", b * 100.0))
                    .unwrap_or_else(|| "-".into()),
                num(r.measured),
                change,
                r.values,
                match r.verdict {
                    Some(v) => verdict_word(v),
                    None if r.too_noisy => "too noisy to gate",
                    None => "skipped (too few values)",
                }
            );
        }
        s
    }
}

/// `30 days`, `12h`: humantime's `30days` reads as a typo in a sentence.
fn show_window(d: std::time::Duration) -> String {
    const DAY: u64 = 86_400;
    match d.as_secs() {
        s if s > 0 && s % DAY == 0 && d.subsec_nanos() == 0 => {
            let n = s / DAY;
            format!("{n} day{}", if n == 1 { "" } else { "s" })
        }
        _ => humantime::format_duration(d).to_string(),
    }
}

pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Improved => "improved",
        Verdict::Regressed => "REGRESSED",
        Verdict::WorseNotGated => "worse (not gated)",
        Verdict::NotMeasured => "not measured",
    }
}

/// The metrics that gate: the case's list, or the throughputs.
pub fn gated_metrics(settings: &HistoryGate) -> Result<Vec<MetricType>, String> {
    if settings.metrics.is_empty() {
        return Ok(MetricType::all()
            .into_iter()
            .filter(MetricType::higher_is_better)
            .collect());
    }
    settings
        .metrics
        .iter()
        .map(|m| {
            MetricType::parse(m).ok_or_else(|| {
                // `disagg history --metric` shows it; the gate compares runs of one measured
                // case, whose GPUs never differ, so it would judge TOKEN_THROUGHPUT again.
                if m.as_str() == crate::record::OUTPUT_THROUGHPUT_PER_GPU {
                    return format!(
                        "`{m}` is TOKEN_THROUGHPUT divided by the case's GPUs, which are the same \
                         in every run the gate compares: gate TOKEN_THROUGHPUT instead"
                    );
                }
                format!(
                    "`{m}` is not a metric; use one of {}",
                    MetricType::all()
                        .iter()
                        .map(MetricType::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median and robust standard deviation: the median absolute deviation from the median, scaled
/// by 1.4826 (a standard deviation for normal data), which one outlier cannot inflate.
fn median_and_spread(values: &[f64]) -> (f64, f64) {
    let m = median(values);
    let deviations: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    (m, MAD_SCALE * median(&deviations))
}

/// The check: `points` (this run) against the store's history of `case_hash`, leaving out this
/// run's own folder.
pub fn check(
    store: &mut disagg_store::Store,
    settings: &HistoryGate,
    case_hash: &str,
    gpu_model: Option<&str>,
    run_dir: &str,
    points: &[PointReport],
) -> HistoryReport {
    let since = SystemTime::now()
        .checked_sub(settings.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let window = show_window(settings.window);
    let metrics = match gated_metrics(settings) {
        Ok(m) => m,
        Err(e) => return HistoryReport::skipped(case_hash, settings, 0, e),
    };
    let runs =
        match store.reference_runs(case_hash, gpu_model, since, run_dir, settings.runs as usize) {
            Ok(r) => r,
            Err(e) => {
                return HistoryReport::not_done(
                    case_hash,
                    settings,
                    0,
                    format!("the history cannot be read: {e}"),
                );
            }
        };
    let short = &case_hash[..case_hash.len().min(12)];
    if runs.len() < settings.min_runs as usize {
        return HistoryReport {
            too_few_runs: true,
            ..HistoryReport::skipped(
                case_hash,
                settings,
                runs.len(),
                format!(
                    "only {} earlier reference run(s) of the measured case {short} (its measure_hash) within {window} in {} (runs that passed with the perf check on, on the same GPU model: {}); the history gate needs at least {} (perf.history.min_runs)",
                    runs.len(),
                    store.name(),
                    gpu_model.unwrap_or("none seen by nvidia-smi"),
                    settings.min_runs
                ),
            )
        };
    }
    // (point label, metric name) → the history's values.
    let mut history: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for run in &runs {
        let stored = match store.points_of(run.id) {
            Ok(p) => p,
            Err(e) => {
                return HistoryReport::not_done(
                    case_hash,
                    settings,
                    runs.len(),
                    format!("the history cannot be read: {e}"),
                );
            }
        };
        for p in stored.iter().filter(|p| p.valid) {
            for (name, value) in &p.metrics {
                history
                    .entry((p.label.clone(), name.clone()))
                    .or_default()
                    .push(*value);
            }
        }
    }
    let mut rows = Vec::new();
    for p in points {
        let label = p.point.label();
        for m in &metrics {
            let measured = m.value(&p.metrics);
            let values = history
                .get(&(label.clone(), m.name()))
                .cloned()
                .unwrap_or_default();
            if values.len() < settings.min_runs as usize {
                rows.push(HistoryRow {
                    point: label.clone(),
                    metric: m.name(),
                    baseline: None,
                    band: None,
                    measured: Some(measured),
                    values: values.len(),
                    verdict: None,
                    too_noisy: false,
                });
                continue;
            }
            let (baseline, sd) = median_and_spread(&values);
            let spread = if baseline != 0.0 {
                sd / baseline.abs()
            } else {
                0.0
            };
            let band = settings.threshold.max(settings.noise * spread);
            let too_noisy = band.is_nan() || band > MAX_BAND;
            // The band is a fraction of the baseline, as the report prints it and the change
            // column counts: worse than the median by more than band × |median|. (TensorRT-LLM's
            // rule for CSV baselines takes the fraction of the measured value instead, which here
            // flagged a throughput 4.9% under its median as beyond a ±5% band.)
            let tolerance = band * baseline.abs();
            rows.push(HistoryRow {
                point: label.clone(),
                metric: m.name(),
                baseline: Some(baseline),
                band: Some(band),
                measured: Some(measured),
                values: values.len(),
                verdict: (!too_noisy).then(|| {
                    judge(
                        m.higher_is_better(),
                        baseline,
                        measured,
                        0.0,
                        tolerance,
                        true,
                    )
                }),
                too_noisy,
            });
        }
    }
    HistoryReport {
        case_hash: case_hash.to_string(),
        runs: runs.len(),
        settings: settings.clone(),
        skipped: None,
        too_few_runs: false,
        not_done: false,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_the_median_and_the_spread_robust_to_one_outlier() {
        // One 100 among ~11: the sample deviation would be ~44; the MAD-based one stays ~1.
        let (m, sd) = median_and_spread(&[10.0, 12.0, 11.0, 100.0]);
        assert_eq!(m, 11.5);
        assert!((sd - 1.4826).abs() < 1e-9, "{sd}");
        assert_eq!(median_and_spread(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn a_point_names_its_own_regressions() {
        let row = |point: &str, verdict| HistoryRow {
            point: point.into(),
            metric: "TOKEN_THROUGHPUT".into(),
            baseline: Some(100.0),
            band: Some(0.05),
            measured: Some(80.0),
            values: 5,
            verdict: Some(verdict),
            too_noisy: false,
        };
        let r = HistoryReport {
            rows: vec![row("con2", Verdict::Regressed), row("con4", Verdict::Ok)],
            ..HistoryReport::skipped("h", &HistoryGate::default(), 5, String::new())
        };
        assert_eq!(
            r.regressions_of("con2"),
            [
                "TOKEN_THROUGHPUT 80.000 against the history's median 100.000 (-20.0%) of 5 runs, beyond its band ±5.0%"
            ]
        );
        assert!(r.regressions_of("con4").is_empty());
    }

    /// `check` of a run measuring MEDIAN_TPOT `measured` at con4 against earlier runs with
    /// `history` as theirs.
    fn check_tpot(history: &[f64], measured: f64) -> HistoryReport {
        let dir = std::env::temp_dir().join(format!(
            "disagg-history-gate-{}-{}",
            std::process::id(),
            history.len() as f64 + history.iter().sum::<f64>() * 1000.0 + measured
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store =
            disagg_store::Store::open(&dir.join("s.sqlite").display().to_string()).unwrap();
        let metric = MetricType::parse("MEDIAN_TPOT").unwrap();
        for (i, v) in history.iter().enumerate() {
            store
                .record(&disagg_store::RunRecord {
                    run_id: format!("{i}"),
                    config_name: "c".into(),
                    case_hash: "h".into(),
                    run_dir: format!("/ws/{i}"),
                    sweep: None,
                    recorded_at: SystemTime::now(),
                    verdict: "passed".into(),
                    exit_code: 0,
                    engine: "sim".into(),
                    versions: Default::default(),
                    ctx: Default::default(),
                    generation: Default::default(),
                    topology: String::new(),
                    perf_verdict: "passed".into(),
                    launcher: disagg_store::Launcher::Local,
                    points: vec![disagg_store::PointRecord {
                        label: "con4".into(),
                        concurrency: Some(4),
                        request_rate: None,
                        valid: true,
                        metrics: vec![(metric.name(), *v)],
                        json: String::new(),
                    }],
                    checks: Vec::new(),
                })
                .unwrap();
        }
        let settings = HistoryGate {
            runs: 10,
            min_runs: 3,
            threshold: 0.15,
            metrics: vec!["MEDIAN_TPOT".into()],
            ..Default::default()
        };
        let mut p = crate::perf::tests::point(4);
        p.metrics.tpot.median_ms = measured;
        let r = check(&mut store, &settings, "h", None, "/ws/this", &[p]);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn one_outlier_in_the_history_does_not_blind_the_gate() {
        // QA's case: one 20 ms run among 5 ms ones. With 3 sample std devs the band was ±443%
        // and a doubling passed as "ok"; the robust spread keeps it at the threshold.
        let r = check_tpot(&[5.0, 5.1, 4.9, 5.0, 20.0], 10.0);
        assert_eq!(r.rows.len(), 1, "{}", r.render());
        assert_eq!(r.rows[0].baseline, Some(5.0));
        assert!(r.rows[0].band.unwrap() < 0.2, "{}", r.render());
        assert!(r.regressed(), "{}", r.render());
        assert_eq!(r.too_noisy(), 0);
        // And the steady value still passes.
        assert!(!check_tpot(&[5.0, 5.1, 4.9, 5.0, 20.0], 5.2).regressed());
    }

    /// The band is a fraction of the baseline, as printed: with ±15% around 5.0 ms, 5.8 ms
    /// (+16%) is beyond it and 5.7 ms (+14%) within (a fraction of the measured value let
    /// 5.8 pass, and flagged a throughput 4.9% under its median beyond a ±5% band).
    #[test]
    fn the_band_is_a_fraction_of_the_baseline_as_printed() {
        let r = check_tpot(&[5.0, 5.0, 5.0, 5.0], 5.8);
        assert!(r.regressed(), "{}", r.render());
        assert!(!check_tpot(&[5.0, 5.0, 5.0, 5.0], 5.7).regressed());
    }

    #[test]
    fn a_history_noisier_than_its_own_scale_is_too_noisy_to_gate_and_says_so() {
        let r = check_tpot(&[1.0, 3.0, 5.0, 12.0, 25.0], 40.0);
        let text = r.render();
        assert!(r.rows[0].band.unwrap() > MAX_BAND, "{text}");
        assert!(r.rows[0].too_noisy && r.rows[0].verdict.is_none(), "{text}");
        // Not a pass of the metric, and not a failure of the run: a warning.
        assert!(!r.regressed(), "{text}");
        // With no metric left to judge, nothing was checked: skipped, never passed.
        assert!(r.checked_none(), "{text}");
        assert_eq!(
            crate::report::PerfOutcome::History(r.clone()).verdict(),
            "skipped"
        );
        assert!(
            text.starts_with(
                "perf check: skipped: none of the 1 metrics could be checked (1 too noisy to gate)"
            ),
            "{text}"
        );
        assert!(
            text.contains("\nwarning: 1 metric(s) too noisy to gate"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("too noisy to gate"), "{text}");
    }

    #[test]
    fn by_default_only_throughputs_gate() {
        let m = gated_metrics(&HistoryGate::default()).unwrap();
        assert!(m.iter().all(MetricType::higher_is_better));
        assert_eq!(m.len(), 4);
        let bad = HistoryGate {
            metrics: vec!["P95_TTFT".into()],
            ..Default::default()
        };
        assert!(
            gated_metrics(&bad)
                .unwrap_err()
                .contains("`P95_TTFT` is not a metric")
        );
        let per_gpu = HistoryGate {
            metrics: vec!["OUTPUT_THROUGHPUT_PER_GPU".into()],
            ..Default::default()
        };
        assert!(
            gated_metrics(&per_gpu)
                .unwrap_err()
                .ends_with("gate TOKEN_THROUGHPUT instead")
        );
    }

    #[test]
    fn the_window_reads_as_words() {
        use std::time::Duration;
        assert_eq!(show_window(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(show_window(Duration::from_secs(86_400)), "1 day");
        assert_eq!(show_window(Duration::from_secs(43_200)), "12h");
    }
}
