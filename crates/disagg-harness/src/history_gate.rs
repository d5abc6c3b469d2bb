//! `perf.baseline: history`: gate each metric on the last passed runs of the same case, not on
//! one hand-kept file.
//!
//! For each gated metric of each point, the history is that metric in the last `runs` reference
//! runs of the same case hash recorded within `window`: runs that passed with their own perf
//! check on and not failing them ([`disagg_store::StoredRun::is_reference`]); a run with the
//! check skipped never moves the baseline. The baseline is their
//! median; the band, as a fraction of it, is the larger of the case's `threshold` and `noise`
//! standard deviations of those values. A metric worse than the baseline by more than the band
//! regresses; the verdict is [`crate::perf::judge`]'s, the CSV gate's own.
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
    /// `None` when this row has too few values to judge.
    pub verdict: Option<Verdict>,
}

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

    /// A report that compared nothing, with the reason.
    pub fn skipped(case_hash: &str, settings: &HistoryGate, runs: usize, why: String) -> Self {
        Self {
            case_hash: case_hash.to_string(),
            runs,
            settings: settings.clone(),
            skipped: Some(why),
            too_few_runs: false,
            rows: Vec::new(),
        }
    }

    /// `perf_check.txt`: the verdict, then baseline, band and measured value of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let short = &self.case_hash[..self.case_hash.len().min(12)];
        if let Some(why) = &self.skipped {
            let _ = writeln!(s, "perf check: skipped: {why}");
            return s;
        }
        let regressed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Some(Verdict::Regressed))
            .count();
        let _ = writeln!(
            s,
            "perf check: {} ({regressed} of {} metrics regressed) against the history: the last {} reference runs of case {short} (median; band = max({}, {} std devs))",
            if regressed > 0 { "REGRESSED" } else { "passed" },
            self.rows.len(),
            self.runs,
            self.settings.threshold,
            self.settings.noise,
        );
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
                    None => "skipped (too few values)",
                }
            );
        }
        s
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

/// Median and sample standard deviation.
fn median_and_spread(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (median, var.sqrt())
}

/// The check: `points` (this run) against the store's history of `case_hash`, leaving out this
/// run's own folder.
pub fn check(
    store: &mut disagg_store::Store,
    settings: &HistoryGate,
    case_hash: &str,
    run_dir: &str,
    points: &[PointReport],
) -> HistoryReport {
    let since = SystemTime::now()
        .checked_sub(settings.window)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let window = humantime::format_duration(settings.window);
    let metrics = match gated_metrics(settings) {
        Ok(m) => m,
        Err(e) => return HistoryReport::skipped(case_hash, settings, 0, e),
    };
    let runs = match store.reference_runs(case_hash, since, run_dir, settings.runs as usize) {
        Ok(r) => r,
        Err(e) => {
            return HistoryReport::skipped(
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
                    "only {} earlier reference run(s) of case {short} within {window} in {} (runs that passed with the perf check on); the history gate needs at least {} (perf.history.min_runs)",
                    runs.len(),
                    store.name(),
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
                return HistoryReport::skipped(
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
            let signed = if m.higher_is_better() { -band } else { band };
            rows.push(HistoryRow {
                point: label.clone(),
                metric: m.name(),
                baseline: Some(baseline),
                band: Some(band),
                measured: Some(measured),
                values: values.len(),
                verdict: Some(judge(baseline, measured, signed, 0.0, true)),
            });
        }
    }
    HistoryReport {
        case_hash: case_hash.to_string(),
        runs: runs.len(),
        settings: settings.clone(),
        skipped: None,
        too_few_runs: false,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_is_the_median_and_the_spread_the_sample_deviation() {
        let (m, sd) = median_and_spread(&[10.0, 12.0, 11.0, 100.0]);
        assert_eq!(m, 11.5);
        assert!(sd > 40.0, "{sd}");
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
    }
}
