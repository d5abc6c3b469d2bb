//! The perf check: compare a run's results with a baseline CSV, and write the run's own
//! `perf_script_test_results.csv` so it can serve as the next baseline (PROTOCOLS.md §5).
//!
//! A metric regresses only when it is worse than the baseline by more than both its relative
//! threshold (`|threshold|`, a fraction) and its absolute one. A negative threshold means higher
//! is better. Rows with `gate = false` are reported but never fail the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use disagg_bench::{Metrics, PointReport};
use serde::{Deserialize, Serialize};

/// The metrics a baseline can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    SeqThroughput,
    TokenThroughput,
    TotalTokenThroughput,
    UserThroughput,
    /// (stat, metric): stat in mean/median/p99, metric in ttft/tpot/itl/e2el.
    Latency(&'static str, &'static str),
}

const STATS: [(&str, &str); 3] = [("MEAN", "mean"), ("MEDIAN", "median"), ("P99", "p99")];
const LATENCIES: [(&str, &str); 4] = [
    ("TTFT", "ttft"),
    ("TPOT", "tpot"),
    ("ITL", "itl"),
    ("E2EL", "e2el"),
];

impl MetricType {
    /// Every metric, in report order.
    pub fn all() -> Vec<MetricType> {
        let mut v = vec![
            MetricType::SeqThroughput,
            MetricType::TokenThroughput,
            MetricType::TotalTokenThroughput,
            MetricType::UserThroughput,
        ];
        for (_, m) in LATENCIES {
            for (_, s) in STATS {
                v.push(MetricType::Latency(s, m));
            }
        }
        v
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SEQ_THROUGHPUT" => Some(Self::SeqThroughput),
            "TOKEN_THROUGHPUT" => Some(Self::TokenThroughput),
            "TOTAL_TOKEN_THROUGHPUT" => Some(Self::TotalTokenThroughput),
            "USER_THROUGHPUT" => Some(Self::UserThroughput),
            _ => {
                let (stat, metric) = s.split_once('_')?;
                let stat = STATS.iter().find(|(n, _)| *n == stat)?.1;
                let metric = LATENCIES.iter().find(|(n, _)| *n == metric)?.1;
                Some(Self::Latency(stat, metric))
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Self::SeqThroughput => "SEQ_THROUGHPUT".into(),
            Self::TokenThroughput => "TOKEN_THROUGHPUT".into(),
            Self::TotalTokenThroughput => "TOTAL_TOKEN_THROUGHPUT".into(),
            Self::UserThroughput => "USER_THROUGHPUT".into(),
            Self::Latency(s, m) => format!("{}_{}", s.to_uppercase(), m.to_uppercase()),
        }
    }

    /// Its value in a point's metrics.
    pub fn value(&self, m: &Metrics) -> f64 {
        match *self {
            Self::SeqThroughput => m.request_throughput,
            Self::TokenThroughput => m.output_throughput,
            Self::TotalTokenThroughput => m.total_token_throughput,
            Self::UserThroughput => m.user_throughput,
            Self::Latency(stat, metric) => {
                let s = match metric {
                    "ttft" => &m.ttft,
                    "tpot" => &m.tpot,
                    "itl" => &m.itl,
                    _ => &m.e2el,
                };
                match stat {
                    "mean" => s.mean_ms,
                    "median" => s.median_ms,
                    _ => s.p99_ms,
                }
            }
        }
    }

    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Self::Latency(..))
    }
}

/// One row of a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    pub perf_case_name: String,
    pub metric_type: String,
    pub perf_metric: f64,
    pub threshold: f64,
    pub absolute_threshold: f64,
    #[serde(default = "yes")]
    pub gate: bool,
}

fn yes() -> bool {
    true
}

/// A baseline that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "{path}: cannot read the baseline: {source}\nhint: perf.baseline is relative to the case file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: line {line}: {message}\nhint: a baseline needs the columns perf_case_name, metric_type, perf_metric, threshold, absolute_threshold (a previous run's perf_script_test_results.csv works as is)"
    )]
    Row {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// Reads a baseline CSV; every row must parse and name a known metric.
pub fn read_baseline(path: &Path) -> Result<Vec<BaselineRow>, BaselineError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| BaselineError::Read {
            path: path.into(),
            source: std::io::Error::other(e),
        })?;
    let mut rows = Vec::new();
    for rec in rdr.deserialize::<BaselineRow>() {
        let row_err = |line: u64, message: String| BaselineError::Row {
            path: path.into(),
            line,
            message,
        };
        match rec {
            Ok(row) => {
                if MetricType::parse(&row.metric_type).is_none() {
                    return Err(row_err(
                        rows.len() as u64 + 2,
                        format!("unknown metric_type `{}`", row.metric_type),
                    ));
                }
                rows.push(row);
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                return Err(row_err(line, e.to_string()));
            }
        }
    }
    Ok(rows)
}

/// How one metric compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Improved,
    Regressed,
    /// Worse beyond the thresholds, on a row that does not gate.
    WorseNotGated,
    /// The baseline names a point or metric this run did not measure.
    NotMeasured,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub perf_case_name: String,
    pub metric_type: String,
    pub baseline: f64,
    pub measured: Option<f64>,
    pub threshold: f64,
    pub absolute_threshold: f64,
    pub verdict: Verdict,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfReport {
    pub baseline: PathBuf,
    pub rows: Vec<Comparison>,
}

impl PerfReport {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
    }

    /// `perf_check.txt`: the verdict, then a table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let regressed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count();
        let _ = writeln!(
            s,
            "perf check: {} ({} of {} metrics regressed) against {}",
            if regressed > 0 { "REGRESSED" } else { "passed" },
            regressed,
            self.rows.len(),
            self.baseline.display()
        );
        if self.rows.is_empty() {
            let _ = writeln!(
                s,
                "note: the baseline has no row for this config name, so nothing was compared"
            );
        }
        let _ = writeln!(
            s,
            "{:<40} {:<24} {:>12} {:>12} {:>8} {:>9} {:>8}  verdict",
            "perf_case_name", "metric_type", "baseline", "measured", "change", "threshold", "abs"
        );
        for r in &self.rows {
            let (measured, change) = match r.measured {
                Some(m) if r.baseline != 0.0 => (
                    format!("{m:.3}"),
                    format!("{:+.1}%", (m - r.baseline) / r.baseline.abs() * 100.0),
                ),
                Some(m) => (format!("{m:.3}"), "-".into()),
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                s,
                "{:<40} {:<24} {:>12.3} {:>12} {:>8} {:>9} {:>8}  {}",
                r.perf_case_name,
                r.metric_type,
                r.baseline,
                measured,
                change,
                r.threshold,
                r.absolute_threshold,
                match r.verdict {
                    Verdict::Ok => "ok",
                    Verdict::Improved => "improved",
                    Verdict::Regressed => "REGRESSED",
                    Verdict::WorseNotGated => "worse (not gated)",
                    Verdict::NotMeasured => "not measured",
                }
            );
        }
        s
    }
}

/// `<CONFIG_NAME>-con<C>` (or `-rate<R>` in the open loop).
pub fn perf_case_name(config: &str, point: &PointReport) -> String {
    format!("{config}-{}", point.point.label())
}

/// Compares the run's points with the baseline rows of this config.
pub fn compare(
    baseline_path: &Path,
    rows: &[BaselineRow],
    config: &str,
    points: &[PointReport],
) -> PerfReport {
    let prefix = format!("{config}-");
    let mut out = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.perf_case_name.starts_with(&prefix))
    {
        let metric = MetricType::parse(&row.metric_type).expect("checked when read");
        let measured = points
            .iter()
            .find(|p| perf_case_name(config, p) == row.perf_case_name)
            .map(|p| metric.value(&p.metrics));
        let verdict = match measured {
            None => Verdict::NotMeasured,
            Some(m) => judge(
                row.perf_metric,
                m,
                row.threshold,
                row.absolute_threshold,
                row.gate,
            ),
        };
        out.push(Comparison {
            perf_case_name: row.perf_case_name.clone(),
            metric_type: row.metric_type.clone(),
            baseline: row.perf_metric,
            measured,
            threshold: row.threshold,
            absolute_threshold: row.absolute_threshold,
            verdict,
        });
    }
    PerfReport {
        baseline: baseline_path.to_path_buf(),
        rows: out,
    }
}

/// One metric: worse by more than both thresholds regresses (PROTOCOLS.md §5).
pub fn judge(baseline: f64, measured: f64, threshold: f64, absolute: f64, gate: bool) -> Verdict {
    let higher_is_better = threshold < 0.0;
    let worse_by = if higher_is_better {
        baseline - measured
    } else {
        measured - baseline
    };
    let relative_limit = threshold.abs() * baseline.abs();
    if worse_by > relative_limit && worse_by > absolute.abs() {
        if gate {
            Verdict::Regressed
        } else {
            Verdict::WorseNotGated
        }
    } else if worse_by < 0.0 && -worse_by > relative_limit && -worse_by > absolute.abs() {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// Default thresholds of the rows we write: 10% either way (the pre-merge figure of §5); only
/// throughputs gate by default, latencies are reported.
fn default_threshold(m: MetricType) -> (f64, bool) {
    if m.higher_is_better() {
        (-0.1, true)
    } else {
        (0.1, false)
    }
}

/// `perf_script_test_results.csv`: one row per metric and concurrency.
pub fn write_results_csv(path: &Path, config: &str, points: &[PointReport]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "network_name",
        "perf_case_name",
        "test_name",
        "perf_metric",
        "metric_type",
        "threshold",
        "absolute_threshold",
        "gate",
    ])?;
    for p in points {
        let case = perf_case_name(config, p);
        for m in MetricType::all() {
            let v = m.value(&p.metrics);
            let (threshold, gate) = default_threshold(m);
            w.write_record([
                config.to_string(),
                case.clone(),
                format!("disagg_perf/{case}"),
                format!("{v}"),
                m.name(),
                format!("{threshold}"),
                "0".to_string(),
                gate.to_string(),
            ])?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::atomic::write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use disagg_bench::{LatencyStats, PointId};

    /// A point at concurrency `c` with distinct throughputs and latencies.
    pub(crate) fn point(c: u32) -> PointReport {
        let lat = |mean, median, p99| LatencyStats {
            mean_ms: mean,
            median_ms: median,
            std_ms: 1.0,
            p99_ms: p99,
            percentiles: vec![],
        };
        PointReport {
            point: PointId::closed(c),
            started_at: std::time::SystemTime::UNIX_EPOCH,
            ended_at: std::time::SystemTime::UNIX_EPOCH,
            num_prompts: 32,
            metrics: Metrics {
                completed: 32,
                total_output_tokens: 1024,
                request_throughput: 10.0,
                output_throughput: 320.0,
                total_token_throughput: 3000.0,
                user_throughput: 40.0,
                ttft: lat(13.0, 12.0, 20.0),
                tpot: lat(2.0, 2.0, 2.5),
                itl: lat(2.0, 2.0, 3.0),
                e2el: lat(80.0, 79.0, 90.0),
                ..Default::default()
            },
            error_counts: Default::default(),
            hdr_percentiles_ms: Default::default(),
            validity: Default::default(),
        }
    }

    #[test]
    fn metric_names_round_trip() {
        for m in MetricType::all() {
            assert_eq!(MetricType::parse(&m.name()), Some(m), "{}", m.name());
        }
        let m = point(8).metrics;
        assert_eq!(MetricType::parse("MEDIAN_TTFT").unwrap().value(&m), 12.0);
        assert_eq!(MetricType::parse("P99_ITL").unwrap().value(&m), 3.0);
        assert_eq!(
            MetricType::parse("TOKEN_THROUGHPUT").unwrap().value(&m),
            320.0
        );
        assert!(MetricType::parse("P95_TTFT").is_none());
    }

    #[test]
    fn a_metric_regresses_only_beyond_both_thresholds() {
        // Higher is better (negative threshold): 100 → 80 is 20% worse.
        assert_eq!(judge(100.0, 80.0, -0.1, 0.0, true), Verdict::Regressed);
        assert_eq!(judge(100.0, 95.0, -0.1, 0.0, true), Verdict::Ok);
        assert_eq!(
            judge(100.0, 80.0, -0.1, 50.0, true),
            Verdict::Ok,
            "within the absolute threshold"
        );
        assert_eq!(judge(100.0, 130.0, -0.1, 0.0, true), Verdict::Improved);
        // Lower is better: 10 ms → 12 ms is 20% worse.
        assert_eq!(judge(10.0, 12.0, 0.1, 0.5, true), Verdict::Regressed);
        assert_eq!(judge(10.0, 12.0, 0.1, 5.0, true), Verdict::Ok);
        assert_eq!(judge(10.0, 12.0, 0.1, 0.5, false), Verdict::WorseNotGated);
        assert_eq!(judge(10.0, 8.0, 0.1, 0.5, true), Verdict::Improved);
    }

    #[test]
    fn results_csv_serves_as_the_next_baseline() {
        let dir = std::env::temp_dir().join(format!("disagg-perf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv_path = dir.join("perf_script_test_results.csv");
        let point = point(8);
        write_results_csv(&csv_path, "cfg", std::slice::from_ref(&point)).unwrap();
        let rows = read_baseline(&csv_path).unwrap();
        assert!(rows.iter().all(|r| r.perf_case_name == "cfg-con8"));
        assert_eq!(rows.len(), 16);
        let report = compare(&csv_path, &rows, "cfg", std::slice::from_ref(&point));
        assert!(!report.regressed());
        assert!(report.rows.iter().all(|r| r.verdict == Verdict::Ok));
        // The same run against a baseline twice as fast regresses on throughput only.
        let faster: Vec<BaselineRow> = rows
            .iter()
            .cloned()
            .map(|mut r| {
                r.perf_metric = if r.gate {
                    r.perf_metric * 2.0
                } else {
                    r.perf_metric / 2.0
                };
                r
            })
            .collect();
        let report = compare(&csv_path, &faster, "cfg", &[point]);
        assert!(report.regressed());
        assert!(report.render().contains("REGRESSED"));
        assert!(
            report
                .rows
                .iter()
                .filter(|r| r.metric_type.contains("TTFT"))
                .all(|r| r.verdict == Verdict::WorseNotGated)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_baselines_name_the_line() {
        let dir = std::env::temp_dir().join(format!("disagg-perf-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.csv");
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,1.0,-0.1,0\nx-con1,BOGUS,1,0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("BOGUS"), "{e}");
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,fast,-0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
