//! The perf check: compare a run's results with a baseline CSV, and write the run's own
//! `perf_script_test_results.csv` so it can serve as the next baseline (PROTOCOLS.md §5).
//!
//! The CSV has TensorRT-LLM's layout (its `perf_script_test_results.csv`, the 18 columns of its `test_perf.py` writer) and metric
//! names (`PerfMetricType`), one row per metric and point, each with its own `perf_case_name`
//! (`disagg::test_perf_metric_token_throughput[<config>-con8]`), so its diff tool reads it, as a
//! target or as a base. Our richer columns (the gate, the point, the unit) go to
//! `perf_metrics.csv`, one row for each row of the CSV.
//!
//! A baseline may be that CSV, TensorRT-LLM's 7-column base file, or our earlier layout (one
//! `perf_case_name` `<config>-con8` for every metric of a point, metric names such as
//! `MEAN_TTFT`, a `gate` column). A metric regresses only when it is worse than the baseline by
//! more than its absolute threshold plus its relative one (`|threshold|`, a fraction) of the
//! measured value, as TensorRT-LLM's check has it ([`judge`]). A negative threshold means higher
//! is better. A row gates (fails the run) when its `gate` column
//! says so; without that column, throughputs gate and latencies are only reported.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use disagg_bench::{Metrics, PointReport};
use serde::{Deserialize, Serialize};

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Mean,
    Median,
    P99,
}

/// A latency metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    Ttft,
    Tpot,
    Itl,
    E2el,
}

const STATS: [Stat; 3] = [Stat::Mean, Stat::Median, Stat::P99];
const LATENCIES: [Latency; 4] = [Latency::Ttft, Latency::Tpot, Latency::Itl, Latency::E2el];

impl Stat {
    /// TensorRT-LLM's prefix (`MEDIAN_FIRST_TOKEN_TIME`; the mean has none) and our earlier one.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Stat::Mean => ("", "MEAN"),
            Stat::Median => ("MEDIAN_", "MEDIAN"),
            Stat::P99 => ("P99_", "P99"),
        }
    }
}

impl Latency {
    /// TensorRT-LLM's `PerfMetricType` stem and our earlier name.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Latency::Ttft => ("FIRST_TOKEN_TIME", "TTFT"),
            Latency::Tpot => ("OUTPUT_TOKEN_TIME", "TPOT"),
            Latency::Itl => ("INTER_TOKEN_TIME", "ITL"),
            Latency::E2el => ("INFERENCE_TIME", "E2EL"),
        }
    }
}

/// The metrics a baseline can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    SeqThroughput,
    TokenThroughput,
    TotalTokenThroughput,
    UserThroughput,
    Latency(Stat, Latency),
}

impl MetricType {
    /// Every metric, in report order.
    pub fn all() -> Vec<MetricType> {
        let mut v = vec![
            MetricType::SeqThroughput,
            MetricType::TokenThroughput,
            MetricType::TotalTokenThroughput,
            MetricType::UserThroughput,
        ];
        for m in LATENCIES {
            for s in STATS {
                v.push(MetricType::Latency(s, m));
            }
        }
        v
    }

    /// A `metric_type` in TensorRT-LLM's names (`P99_FIRST_TOKEN_TIME`), our earlier ones
    /// (`P99_TTFT`), or those of TensorRT-LLM's disagg test harness
    /// (`tests/integration/defs/perf/disagg`): `SERVER_MEDIAN_TTFT` and the other
    /// `SERVER_<MEAN|MEDIAN|P99>_<TTFT|TPOT|ITL|E2EL>`, and its older `DISAGG_SERVER_TTFT` /
    /// `DISAGG_SERVER_E2EL` (and `WIDEP_SERVER_*`), which are the medians its log regex reads.
    pub fn parse(s: &str) -> Option<Self> {
        Self::all()
            .into_iter()
            .find(|m| m.name() == s || m.legacy_name() == s || m.harness_names().any(|n| n == s))
    }

    /// The names TensorRT-LLM's disagg test harness gives this metric (none for throughputs).
    fn harness_names(&self) -> impl Iterator<Item = String> {
        let (current, older) = match self {
            Self::Latency(stat, metric) => {
                let (_, short) = metric.names();
                let stat_name = stat.names().1;
                // Its wide-EP configs' names too, spelled `WIDEEP_` in the code it shipped
                // (`config_loader.py`) and `WIDEP_` in a design note: both are read.
                let current = [
                    format!("SERVER_{stat_name}_{short}"),
                    format!("WIDEEP_SERVER_{stat_name}_{short}"),
                ];
                let older = (*stat == Stat::Median
                    && matches!(metric, Latency::Ttft | Latency::E2el))
                .then(|| {
                    [
                        format!("DISAGG_SERVER_{short}"),
                        format!("WIDEP_SERVER_{short}"),
                        format!("WIDEEP_SERVER_{short}"),
                    ]
                });
                (Some(current), older)
            }
            _ => (None, None),
        };
        (current.into_iter().flatten()).chain(older.into_iter().flatten())
    }

    /// TensorRT-LLM's `PerfMetricType` name.
    pub fn name(&self) -> String {
        match self {
            Self::SeqThroughput => "SEQ_THROUGHPUT".into(),
            Self::TokenThroughput => "TOKEN_THROUGHPUT".into(),
            Self::TotalTokenThroughput => "TOTAL_TOKEN_THROUGHPUT".into(),
            Self::UserThroughput => "USER_THROUGHPUT".into(),
            Self::Latency(s, m) => format!("{}{}", s.names().0, m.names().0),
        }
    }

    /// The name our earlier CSV used (`MEAN_TTFT`); the throughputs' are TensorRT-LLM's.
    pub fn legacy_name(&self) -> String {
        match self {
            Self::Latency(s, m) => format!("{}_{}", s.names().1, m.names().1),
            other => other.name(),
        }
    }

    /// The result model's key for it (`mean_ttft_ms`, `output_throughput`).
    pub fn key(&self) -> String {
        match self {
            Self::SeqThroughput => "request_throughput".into(),
            Self::TokenThroughput => "output_throughput".into(),
            Self::TotalTokenThroughput => "total_token_throughput".into(),
            Self::UserThroughput => "user_throughput".into(),
            Self::Latency(s, m) => format!(
                "{}_{}_ms",
                s.names().1.to_lowercase(),
                m.names().1.to_lowercase()
            ),
        }
    }

    /// `req/s`, `tok/s` or `ms`.
    pub fn unit(&self) -> &'static str {
        match self {
            Self::SeqThroughput => "req/s",
            Self::Latency(..) => "ms",
            _ => "tok/s",
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
                    Latency::Ttft => &m.ttft,
                    Latency::Tpot => &m.tpot,
                    Latency::Itl => &m.itl,
                    Latency::E2el => &m.e2el,
                };
                match stat {
                    Stat::Mean => s.mean_ms,
                    Stat::Median => s.median_ms,
                    Stat::P99 => s.p99_ms,
                }
            }
        }
    }

    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Self::Latency(..))
    }

    /// Whether a row of this metric gates when its baseline does not say (PROTOCOLS.md §5: only
    /// throughputs gate by default).
    pub fn gates_by_default(&self) -> bool {
        self.higher_is_better()
    }
}

/// The point a baseline row is about: `<config>-con8`, from a `perf_case_name` in any layout:
/// `disagg::test_perf_metric_token_throughput[<config>-con8]`, `<config>-con8`, or TensorRT-LLM's
/// disagg test harness's `test_benchmark[disagg_perf_<file stem>]_con:8` (its pytest node name
/// and the concurrency; the config name is then the file's stem, as `disagg import` names the
/// case).
pub fn point_key(perf_case_name: &str) -> std::borrow::Cow<'_, str> {
    if let Some((id, n)) = perf_case_name.rsplit_once("_con:") {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            // `test_benchmark[<test id>]`: the test id inside the node name.
            let id = match (id.find('['), id.strip_suffix(']')) {
                (Some(open), Some(inner)) => &inner[open + 1..],
                _ => id,
            };
            let stem = id.strip_prefix("disagg_perf_").unwrap_or(id);
            return format!("{stem}-con{n}").into();
        }
    }
    match (perf_case_name.rfind('['), perf_case_name.strip_suffix(']')) {
        (Some(open), Some(inner)) => inner[open + 1..].into(),
        _ => perf_case_name.into(),
    }
}

/// One row of a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    pub perf_case_name: String,
    pub metric_type: String,
    pub perf_metric: f64,
    /// Empty in TensorRT-LLM's disagg test harness's CSV: then [`default_threshold`], and
    /// `threshold_defaulted` says so.
    #[serde(deserialize_with = "empty_is_nan")]
    pub threshold: f64,
    #[serde(deserialize_with = "empty_is_nan")]
    pub absolute_threshold: f64,
    /// Whether the file left the thresholds empty and the defaults stand in.
    #[serde(skip)]
    pub threshold_defaulted: bool,
    /// Whether it replaced an earlier row of the same point and metric (TensorRT-LLM's
    /// accumulated CSV: the last run's row is the reference).
    #[serde(skip)]
    pub replaced_earlier: bool,
    /// Whether a regression fails the run; when the baseline has no `gate` column, by metric
    /// ([`MetricType::gates_by_default`]).
    #[serde(default)]
    pub gate: Option<bool>,
    /// TensorRT-LLM's `state` column: `valid`, or `failed` for a point whose measurement was
    /// not valid (failed requests, ...); absent in hand-written baselines.
    #[serde(default)]
    pub state: Option<String>,
    /// TensorRT-LLM's `command` column: how the point was measured (ours: `disagg bench ...`).
    #[serde(default)]
    pub command: Option<String>,
    /// Its line in the file, for messages.
    #[serde(skip)]
    pub line: u64,
}

impl BaselineRow {
    /// The metric (checked to parse when the baseline was read).
    pub fn metric(&self) -> MetricType {
        MetricType::parse(&self.metric_type).expect("checked when read")
    }

    pub fn gates(&self) -> bool {
        self.gate.unwrap_or_else(|| {
            is_harness_name(&self.metric_type) || self.metric().gates_by_default()
        })
    }
}

/// A metric named as TensorRT-LLM's disagg test harness names it (`SERVER_MEDIAN_TTFT`,
/// `DISAGG_SERVER_E2EL`, the wide-EP names): latencies its perf system gates on, at 10% and
/// 50 ms (`PERF_METRIC_THRESHOLD` of `test_perf.py` for `DISAGG_SERVER_TTFT`/`E2EL`).
fn is_harness_name(metric_type: &str) -> bool {
    [
        "SERVER_",
        "DISAGG_SERVER_",
        "WIDEP_SERVER_",
        "WIDEEP_SERVER_",
    ]
    .iter()
    .any(|p| metric_type.starts_with(p))
}

/// What TensorRT-LLM's perf system ignores of a latency regression of a harness row: 50 ms.
const HARNESS_ABSOLUTE_MS: f64 = 50.0;

/// An empty cell as "not given" (NaN until the reader fills in the default); a number as is.
fn empty_is_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
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
    #[error(
        "{path}: no row this case can measure: of its {rows} row(s), none is for {expected}{example}\nhint: {fix}"
    )]
    NoRow {
        path: PathBuf,
        rows: usize,
        expected: String,
        /// An example of a row's name, and `; its rows are for …`: the points the file has.
        example: String,
        fix: String,
    },
    #[error(
        "{path}: line {line}: `{case}` was measured on another workload: `{theirs}`, where this case runs `{ours} ...`: its numbers are no reference for this run\nhint: make a new baseline from a run of this case's perf_script_test_results.csv, or give the case the baseline's workload"
    )]
    OtherWorkload {
        path: PathBuf,
        line: u64,
        case: String,
        theirs: String,
        ours: String,
    },
    #[error(
        "{path}: line {line}: `{case}` is marked `{state}`: its point's measurement failed, or the run it was measured in did (every row of a failed run is), so it is no reference, and comparing against it would judge this run by numbers that never held\nhint: make the baseline from a passed run's perf_script_test_results.csv, or delete that point's rows"
    )]
    FailedRow {
        path: PathBuf,
        line: u64,
        case: String,
        state: String,
    },
}

/// Reads a baseline CSV; every row must parse, name a known metric, and carry finite numbers.
/// A path that is not a regular file, and a file with no row at all, are refused too: a
/// baseline that compares nothing would pass every run.
pub fn read_baseline(path: &Path) -> Result<Vec<BaselineRow>, BaselineError> {
    let read_err = |e: std::io::Error| BaselineError::Read {
        path: path.into(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_file() {
        return Err(read_err(std::io::Error::other(
            "it is not a regular file (a directory?)",
        )));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    // The line a byte offset is on, counted here: csv's own count is one short after a CRLF
    // (a spreadsheet's or Python's csv module's line ends).
    // A record's position may lie on the line end before it, which it is not part of.
    let line_at = |byte: u64| {
        let mut start = (byte as usize).min(bytes.len());
        while bytes.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        1 + bytes[..start].iter().filter(|&&b| b == b'\n').count() as u64
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let row_err = |line: u64, message: String| BaselineError::Row {
        path: path.into(),
        line,
        message,
    };
    // (point, metric) → the line that gave it, and its row's index: a second row for it would
    // be compared too, and one of the two verdicts would be about a number that is not the
    // reference.
    let mut seen: std::collections::HashMap<(String, String), (u64, usize)> = Default::default();
    let headers = rdr
        .headers()
        .map_err(|e| row_err(1, e.to_string()))?
        .clone();
    // TensorRT-LLM's writer (`ResultSaver.append_a_df`) appends every run to its CSV, so its
    // file gives a point's metric once per run, oldest first: the last is the reference.
    let accumulated = headers.iter().any(|h| h == "total_time__sec");
    // Without its header line (or with other columns) every row would be misread: say so.
    const COLUMNS: [&str; 5] = [
        "perf_case_name",
        "metric_type",
        "perf_metric",
        "threshold",
        "absolute_threshold",
    ];
    let missing: Vec<&str> = COLUMNS
        .into_iter()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .collect();
    if !missing.is_empty() && !bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(row_err(
            1,
            format!(
                "the header line lacks the column(s) {} (it reads `{}`); the first line of a \
                 baseline names its columns, as perf_script_test_results.csv's does: {}",
                missing.join(", "),
                headers.iter().collect::<Vec<_>>().join(","),
                COLUMNS.join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(p.byte()));
            // csv's own account repeats a position of its own (a record number, a line counted
            // otherwise): the row's line is said once, before.
            let message = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("the row has {len} field(s) where the header has {expected_len}"),
                _ => e.to_string(),
            };
            row_err(line, message)
        })?;
        let line = rec.position().map_or(0, |p| line_at(p.byte()));
        let mut row: BaselineRow = rec.deserialize(Some(&headers)).map_err(|e| {
            // Name the column, not csv's field number.
            let message = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    match err.field().and_then(|i| headers.get(i as usize)) {
                        Some(column) => format!("column `{column}`: {}", err.kind()),
                        None => err.kind().to_string(),
                    }
                }
                _ => e.to_string(),
            };
            row_err(line, message)
        })?;
        row.line = line;
        let Some(metric) = MetricType::parse(&row.metric_type) else {
            return Err(row_err(
                line,
                format!(
                    "unknown metric_type `{}`; known: {}",
                    row.metric_type,
                    MetricType::all()
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        // TensorRT-LLM's disagg test harness writes no thresholds at all: ours stand in, and
        // perf_check.txt says so. A cell that holds text still fails to parse above.
        if row.threshold.is_nan() && row.absolute_threshold.is_nan() {
            row.threshold = default_threshold(metric);
            row.absolute_threshold = if is_harness_name(&row.metric_type) {
                HARNESS_ABSOLUTE_MS
            } else {
                0.0
            };
            row.threshold_defaulted = true;
        }
        for (column, v) in [
            ("perf_metric", row.perf_metric),
            ("threshold", row.threshold),
            ("absolute_threshold", row.absolute_threshold),
        ] {
            if !v.is_finite() {
                let v = if v.is_nan() {
                    "empty or NaN".to_string()
                } else {
                    v.to_string()
                };
                return Err(row_err(
                    line,
                    format!(
                        "{column} is {v}; a baseline compares finite numbers only (a NaN or infinite value would pass or fail every run; leave both thresholds empty for the defaults)"
                    ),
                ));
            }
        }
        // The direction is the metric's: TensorRT-LLM's layout says it again by the sign of the
        // threshold (negative: higher is better). A sign that contradicts the metric is a row
        // written by hand or edited, which would judge a throughput's fall an improvement.
        let higher = metric.higher_is_better();
        // TensorRT-LLM's own `PERF_METRIC_THRESHOLD` writes these two positive (0.1, 10),
        // into every row of its `perf_script_test_results.csv`: its sign is not read for them.
        let upstream_positive = matches!(
            metric,
            MetricType::TotalTokenThroughput | MetricType::UserThroughput
        ) && row.threshold > 0.0;
        if row.threshold != 0.0 && (row.threshold < 0.0) != higher && !upstream_positive {
            let (means, is, want) = if higher {
                ("lower", "higher", -row.threshold.abs())
            } else {
                ("higher", "lower", row.threshold.abs())
            };
            return Err(row_err(
                line,
                format!(
                    "threshold {} says {means} is better, but for {} {is} is better (a negative \
                     threshold marks higher-is-better metrics); write {want}",
                    row.threshold, row.metric_type
                ),
            ));
        }
        if row.perf_metric < 0.0 || (higher && row.perf_metric == 0.0) {
            return Err(row_err(
                line,
                format!(
                    "perf_metric {} for {}: no run can measure that, so every run would compare \
                     as improved (or regressed); was it recorded by a point that failed?",
                    row.perf_metric, row.metric_type
                ),
            ));
        }
        // By the name as written: TensorRT-LLM's harness may give one metric under its older
        // and its newer name, which are not duplicates.
        let key = (
            point_key(&row.perf_case_name).into_owned(),
            row.metric_type.clone(),
        );
        if let Some(&(_, index)) = seen.get(&key).filter(|_| accumulated) {
            row.replaced_earlier = true;
            rows[index] = row;
            seen.insert(key, (line, index));
            continue;
        }
        if let Some((first, _)) = seen.insert(key, (line, rows.len())) {
            return Err(row_err(
                line,
                format!(
                    "`{}` gives {} a second time (line {first} gave it first): a point has one \
                     reference per metric; delete one of the two rows",
                    row.perf_case_name, row.metric_type
                ),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The `perf_case_name` points a case measures: `<config>-con8` for each planned point label.
pub fn expected_points(config: &str, labels: &[String]) -> Vec<String> {
    labels.iter().map(|l| format!("{config}-{l}")).collect()
}

/// Refuses a baseline with no row this case can measure (renamed case, other concurrencies, a
/// header only): it would compare nothing and pass every run, turning the gate off unseen.
pub fn check_covers(
    path: &Path,
    rows: &[BaselineRow],
    config: &str,
    labels: &[String],
) -> Result<(), BaselineError> {
    let expected = expected_points(config, labels);
    let ours = |r: &&BaselineRow| expected.iter().any(|e| *e == point_key(&r.perf_case_name));
    if let Some(r) = rows
        .iter()
        .filter(ours)
        .find(|r| r.state.as_deref().is_some_and(|s| s != "valid"))
    {
        return Err(BaselineError::FailedRow {
            path: path.into(),
            line: r.line,
            case: r.perf_case_name.clone(),
            state: r.state.clone().unwrap_or_default(),
        });
    }
    if rows.iter().any(|r| ours(&r)) {
        return Ok(());
    }
    let example = labels.first().map_or_else(String::new, |l| {
        format!(
            " (e.g. `disagg::test_perf_metric_token_throughput[{config}-{l}]`, or `{config}-{l}` in the older layout)"
        )
    });
    let mut theirs: Vec<String> = Vec::new();
    for r in rows {
        let key = point_key(&r.perf_case_name).into_owned();
        if !theirs.contains(&key) {
            theirs.push(key);
        }
    }
    let found = match theirs.len() {
        0 => String::new(),
        n => format!(
            "; its rows are for {}{}",
            theirs[..n.min(4)].join(", "),
            if n > 4 {
                format!(" and {} more", n - 4)
            } else {
                String::new()
            }
        ),
    };
    // TensorRT-LLM's harness's rows name the config by its test id, `disagg_perf_<stem>`, read
    // as the stem, as `disagg import trtllm` names the case: a case named by the test id misses.
    let stem = config.strip_prefix("disagg_perf_").filter(|stem| {
        theirs
            .iter()
            .any(|k| k.strip_prefix(*stem).is_some_and(|l| l.starts_with('-')))
    });
    let fix = if let Some(stem) = stem {
        format!(
            "these rows are TensorRT-LLM's test harness's for this config, which name it by its \
             file's stem: set `name: {stem}` in the case to compare against them"
        )
    } else {
        "was the case renamed, or its concurrencies changed? set `name:` to the baseline's \
         config name, or make a new baseline from a run's perf_script_test_results.csv"
            .to_string()
    };
    Err(BaselineError::NoRow {
        path: path.into(),
        rows: rows.len(),
        expected: expected.join(", "),
        example: example + &found,
        fix,
    })
}

/// Refuses a baseline whose rows for this case were measured by `disagg bench` on another
/// workload (another isl, osl, model, endpoint or range ratio): its numbers are no reference,
/// and comparing against them passes or fails a run by the workload's change. `workload` is
/// this case's `command` prefix (`run::bench_workload`); rows of other tools (TensorRT-LLM's
/// harness writes `disagg_benchmark --concurrency=8`) are not judged.
pub fn check_workload(
    path: &Path,
    rows: &[BaselineRow],
    config: &str,
    labels: &[String],
    workload: &str,
) -> Result<(), BaselineError> {
    let expected = expected_points(config, labels);
    let other = rows
        .iter()
        .filter(|r| expected.iter().any(|e| *e == point_key(&r.perf_case_name)))
        .find(|r| {
            r.command
                .as_deref()
                .is_some_and(|c| c.starts_with("disagg bench ") && other_workload(c, workload))
        });
    match other {
        None => Ok(()),
        Some(r) => Err(BaselineError::OtherWorkload {
            path: path.into(),
            line: r.line,
            case: r.perf_case_name.clone(),
            theirs: r.command.clone().unwrap_or_default(),
            ours: workload.to_string(),
        }),
    }
}

/// The flags of a `disagg bench` command line that make its workload (not its load: the
/// concurrency, the prompt count and the router's URL may differ).
const WORKLOAD_FLAGS: [&str; 5] = ["endpoint", "model", "isl", "osl", "range-ratio"];

/// Whether `theirs` ran another workload than `ours`, value by value (`--isl 032` is 32,
/// `--range-ratio 0.0` is 0): a flag `theirs` lacks is not judged.
fn other_workload(theirs: &str, ours: &str) -> bool {
    let flags = |cmd: &'_ str| -> Vec<(String, String)> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        words
            .windows(2)
            .filter_map(|w| {
                let flag = w[0].strip_prefix("--")?;
                WORKLOAD_FLAGS
                    .contains(&flag)
                    .then(|| (flag.to_string(), w[1].to_string()))
            })
            .collect()
    };
    let theirs = flags(theirs);
    flags(ours).iter().any(|(flag, mine)| {
        let Some((_, other)) = theirs.iter().find(|(f, _)| f == flag) else {
            return false;
        };
        match flag.as_str() {
            "isl" | "osl" => other.parse::<u64>().ok() != mine.parse::<u64>().ok(),
            "range-ratio" => other.parse::<f64>().ok() != mine.parse::<f64>().ok(),
            _ => other != mine,
        }
    })
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
    /// The point's label (`con8`), which names its JUnit testcase.
    pub point: String,
    /// TensorRT-LLM's name of the metric, whichever name the baseline used.
    pub metric_type: String,
    pub baseline: f64,
    pub measured: Option<f64>,
    pub threshold: f64,
    pub absolute_threshold: f64,
    /// The baseline left the thresholds empty; the defaults were used.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub threshold_defaulted: bool,
    /// Whether a regression of it fails the run.
    pub gates: bool,
    /// It replaced an earlier row of the same point and metric (an accumulated CSV).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaced_earlier: bool,
    pub verdict: Verdict,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfReport {
    pub baseline: PathBuf,
    pub rows: Vec<Comparison>,
    /// Points this run measured that the baseline has no row for: not checked, and said so.
    pub unchecked_points: Vec<String>,
}

impl PerfReport {
    /// How many metrics were compared: the rows of this config with a measured value.
    pub fn compared(&self) -> usize {
        self.rows.iter().filter(|r| r.measured.is_some()).count()
    }

    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
    }

    /// The regressed metrics of one point (by label), as sentences for its JUnit failure.
    pub fn regressions_of(&self, label: &str) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.point == label && r.verdict == Verdict::Regressed)
            .map(|r| {
                let measured = r.measured.unwrap_or(f64::NAN);
                let change = if r.baseline != 0.0 {
                    format!(
                        " ({:+.1}%)",
                        (measured - r.baseline) / r.baseline.abs() * 100.0
                    )
                } else {
                    String::new()
                };
                format!(
                    "{} {measured:.3} against baseline {:.3}{change}, beyond threshold {} and \
                     absolute threshold {}",
                    r.metric_type, r.baseline, r.threshold, r.absolute_threshold
                )
            })
            .collect()
    }

    /// `perf_check.txt`: the verdict, then a table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let regressed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count();
        let not_gated = (self.rows.iter())
            .filter(|r| r.verdict == Verdict::WorseNotGated)
            .count();
        let worse = if not_gated > 0 {
            format!("; {not_gated} worse beyond their thresholds but not gated")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "perf check: {} ({} of {} compared metrics regressed{worse}) against {}",
            if regressed > 0 { "REGRESSED" } else { "passed" },
            regressed,
            self.compared(),
            self.baseline.display()
        );
        let gating = (self.rows.iter())
            .filter(|r| r.measured.is_some() && r.gates)
            .count();
        if self.compared() > 0 && gating == 0 {
            let _ = writeln!(
                s,
                "warning: none of the compared rows gates (no `gate` column, and only \
                 throughputs, or TensorRT-LLM's harness names, gate by default): this check \
                 cannot fail; add a `gate` column, or throughput rows"
            );
        }
        let replaced = self.rows.iter().filter(|r| r.replaced_earlier).count();
        if replaced > 0 {
            let _ = writeln!(
                s,
                "note: {replaced} baseline row(s) repeated a point's metric, as TensorRT-LLM's \
                 CSV accumulates one row per run: the last of each was used"
            );
        }
        let _ = writeln!(
            s,
            "compared {} metric(s); {} baseline row(s) of this config had no value in this run",
            self.compared(),
            self.rows.len() - self.compared()
        );
        if self.rows.is_empty() {
            let _ = writeln!(
                s,
                "note: the baseline has no row for this config name, so nothing was compared"
            );
        }
        let defaulted = self.rows.iter().filter(|r| r.threshold_defaulted).count();
        if defaulted > 0 {
            let _ = writeln!(
                s,
                "note: {defaulted} baseline row(s) left threshold and absolute_threshold empty (as TensorRT-LLM's disagg test harness writes them): 10% either way, and for its latency names (SERVER_*, DISAGG_SERVER_*) 50 ms absolute as its perf system takes them, were used; fill them in to choose"
            );
        }
        if !self.unchecked_points.is_empty() {
            let _ = writeln!(
                s,
                "note: the baseline has no row for point(s) {} of this run: not checked",
                self.unchecked_points.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "{:<12} {:<24} {:>12} {:>12} {:>8} {:>9} {:>8}  verdict",
            "point", "metric_type", "baseline", "measured", "change", "threshold", "abs"
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
                "{:<12} {:<24} {:>12.3} {:>12} {:>8} {:>9} {:>8}  {}",
                r.point,
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

/// `<CONFIG_NAME>-con<C>` (or `-rate<R>` in the open loop): the point, TensorRT-LLM's
/// `network_name`.
pub fn network_name(config: &str, point: &PointReport) -> String {
    format!("{config}-{}", point.point.label())
}

/// TensorRT-LLM's `test_name` of one metric of a point:
/// `test_perf_metric_token_throughput[<config>-con8]`.
pub fn test_name(config: &str, point: &PointReport, m: MetricType) -> String {
    format!(
        "test_perf_metric_{}[{}]",
        m.name().to_lowercase(),
        network_name(config, point)
    )
}

/// The unique `perf_case_name` of one metric of a point.
pub fn perf_case_name(config: &str, point: &PointReport, m: MetricType) -> String {
    format!("disagg::{}", test_name(config, point, m))
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
        .filter(|r| point_key(&r.perf_case_name).starts_with(&prefix))
    {
        let metric = row.metric();
        let point = points
            .iter()
            .find(|p| network_name(config, p) == point_key(&row.perf_case_name));
        // A value that cannot be compared (no point, or NaN) is reported, never judged.
        let measured = point
            .map(|p| metric.value(&p.metrics))
            .filter(|v| v.is_finite());
        let verdict = match measured {
            None => Verdict::NotMeasured,
            Some(m) => judge(
                metric.higher_is_better(),
                row.perf_metric,
                m,
                row.threshold,
                row.absolute_threshold,
                row.gates(),
            ),
        };
        out.push(Comparison {
            perf_case_name: row.perf_case_name.clone(),
            point: point_key(&row.perf_case_name)
                .strip_prefix(&prefix)
                .unwrap_or_default()
                .to_string(),
            metric_type: metric.name(),
            baseline: row.perf_metric,
            measured,
            threshold: row.threshold,
            absolute_threshold: row.absolute_threshold,
            threshold_defaulted: row.threshold_defaulted,
            gates: row.gates(),
            replaced_earlier: row.replaced_earlier,
            verdict,
        });
    }
    let unchecked_points = points
        .iter()
        .filter(|p| {
            let key = network_name(config, p);
            !rows.iter().any(|r| point_key(&r.perf_case_name) == key)
        })
        .map(|p| p.point.label())
        .collect();
    PerfReport {
        baseline: baseline_path.to_path_buf(),
        rows: out,
        unchecked_points,
    }
}

/// One metric, by TensorRT-LLM's rule (`sanity_perf_check.py`, `diff_tools.py`: numpy's
/// `isclose(base, target, rtol=|threshold|, atol=|absolute|)`): it changed when it moved by more
/// than `|absolute| + |threshold| × |measured|` (the two tolerances added, the relative one
/// taken of the measured value), and a change the worse way regresses. Which way is worse is
/// the metric's (`higher_is_better`), never the sign of a threshold.
pub fn judge(
    higher_is_better: bool,
    baseline: f64,
    measured: f64,
    threshold: f64,
    absolute: f64,
    gate: bool,
) -> Verdict {
    let worse_by = if higher_is_better {
        baseline - measured
    } else {
        measured - baseline
    };
    let tolerance = absolute.abs() + threshold.abs() * measured.abs();
    if worse_by > tolerance {
        if gate {
            Verdict::Regressed
        } else {
            Verdict::WorseNotGated
        }
    } else if -worse_by > tolerance {
        Verdict::Improved
    } else {
        Verdict::Ok
    }
}

/// Default thresholds of the rows we write: 10% either way (the pre-merge figure of §5),
/// negative for throughputs (higher is better).
fn default_threshold(m: MetricType) -> f64 {
    if m.higher_is_better() { -0.1 } else { 0.1 }
}

/// TensorRT-LLM's `perf_script_test_results.csv` columns, in the order of its `test_perf.py`
/// writer (`tests/integration/defs/perf/utils.py`), whose row names ours follow: 18 columns
/// since it added `device_subtype` (the GPU's product name, for its autodeploy tests; empty
/// here, which its `sanity_perf_check.py` reads as "no subtype"). Its disagg harness writes the
/// same without that column. Both append rows by position, so a file's layout must be one.
pub const TRTLLM_COLUMNS: [&str; 18] = [
    "network_name",
    "network_hash",
    "sm_clk",
    "mem_clk",
    "gpu_idx",
    "device_subtype",
    "perf_case_name",
    "test_name",
    "original_test_name",
    "perf_metric",
    "total_time__sec",
    "start_timestamp",
    "end_timestamp",
    "state",
    "command",
    "threshold",
    "absolute_threshold",
    "metric_type",
];

/// `perf_metrics.csv`: each row of the CSV with what TensorRT-LLM's layout has no column for.
pub const DETAIL_COLUMNS: [&str; 11] = [
    "perf_case_name",
    "config",
    "point",
    "metric_type",
    "legacy_metric_type",
    "key",
    "perf_metric",
    "unit",
    "higher_is_better",
    "gate",
    "valid",
];

/// `2026-11-28 12:34:56` (UTC), TensorRT-LLM's timestamp format.
fn timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .trim_end_matches('Z')
        .replacen('T', " ", 1)
}

/// Writes `perf_script_test_results.csv` (TensorRT-LLM's layout) at `path` and
/// `perf_metrics.csv` beside it: one row per metric and point. `command` is the command line of
/// a point's benchmark. A point's `state` is `valid` only when its measurement was and the run
/// passed (`run_passed`): a run that failed around its points (a role died, a deadline) is no
/// baseline, though each point measured well.
pub fn write_results_csv(
    path: &Path,
    config: &str,
    points: &[PointReport],
    run_passed: bool,
    command: &dyn Fn(&PointReport) -> String,
) -> std::io::Result<()> {
    let mut trt = csv::Writer::from_writer(Vec::new());
    let mut detail = csv::Writer::from_writer(Vec::new());
    trt.write_record(TRTLLM_COLUMNS)?;
    detail.write_record(DETAIL_COLUMNS)?;
    for p in points {
        let network = network_name(config, p);
        let seconds = p
            .ended_at
            .duration_since(p.started_at)
            .unwrap_or_default()
            .as_secs_f64();
        let state = if run_passed && p.validity.is_valid() {
            "valid"
        } else {
            "failed"
        };
        for m in MetricType::all() {
            let v = m.value(&p.metrics);
            let case = perf_case_name(config, p, m);
            let test = test_name(config, p, m);
            trt.write_record([
                network.as_str(),
                test.as_str(),
                "",
                "",
                "",
                "",
                case.as_str(),
                test.as_str(),
                &format!("disagg::{network}"),
                &format!("{v}"),
                &format!("{seconds}"),
                &timestamp(p.started_at),
                &timestamp(p.ended_at),
                state,
                &command(p),
                &format!("{}", default_threshold(m)),
                "0",
                &m.name(),
            ])?;
            detail.write_record([
                case.as_str(),
                config,
                &p.point.label(),
                &m.name(),
                &m.legacy_name(),
                &m.key(),
                &format!("{v}"),
                m.unit(),
                &m.higher_is_better().to_string(),
                &m.gates_by_default().to_string(),
                &p.validity.is_valid().to_string(),
            ])?;
        }
    }
    let bytes = |w: csv::Writer<Vec<u8>>| {
        w.into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    crate::atomic::write(path, &bytes(trt)?)?;
    crate::atomic::write(&path.with_file_name("perf_metrics.csv"), &bytes(detail)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use disagg_bench::{LatencyStats, PointId};

    #[test]
    fn a_workload_is_compared_by_value_and_not_by_its_load_or_url() {
        let ours = "disagg bench --url <router> --endpoint /v1/completions --model m --isl 32 \
                    --osl 16 --range-ratio 0";
        for same in [
            format!("{ours} --concurrency 8 --num-prompts 32"),
            ours.replace("--isl 32", "--isl 032")
                .replace("--range-ratio 0", "--range-ratio 0.0"),
            ours.replace("<router>", "http://x:1"),
            // Older rows without the range ratio: not judged on it.
            ours.replace(" --range-ratio 0", ""),
        ] {
            assert!(!other_workload(&same, ours), "{same}");
        }
        for other in [
            ours.replace("--isl 32", "--isl 64"),
            ours.replace("--osl 16", "--osl 8"),
            ours.replace("--model m", "--model n"),
            ours.replace("/v1/completions", "/v1/chat/completions"),
            ours.replace("--range-ratio 0", "--range-ratio 0.5"),
        ] {
            assert!(other_workload(&other, ours), "{other}");
        }
    }

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
    fn metric_names_are_tensorrt_llms_and_the_old_ones_still_parse() {
        assert_eq!(MetricType::all().len(), 16);
        for m in MetricType::all() {
            assert_eq!(MetricType::parse(&m.name()), Some(m), "{}", m.name());
            assert_eq!(MetricType::parse(&m.legacy_name()), Some(m));
        }
        let names: Vec<String> = MetricType::all().iter().map(|m| m.name()).collect();
        for n in [
            "SEQ_THROUGHPUT",
            "TOKEN_THROUGHPUT",
            "TOTAL_TOKEN_THROUGHPUT",
            "USER_THROUGHPUT",
            "FIRST_TOKEN_TIME",
            "MEDIAN_FIRST_TOKEN_TIME",
            "P99_FIRST_TOKEN_TIME",
            "OUTPUT_TOKEN_TIME",
            "MEDIAN_OUTPUT_TOKEN_TIME",
            "P99_OUTPUT_TOKEN_TIME",
            "INTER_TOKEN_TIME",
            "MEDIAN_INTER_TOKEN_TIME",
            "P99_INTER_TOKEN_TIME",
            "INFERENCE_TIME",
            "MEDIAN_INFERENCE_TIME",
            "P99_INFERENCE_TIME",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
        let m = point(8).metrics;
        assert_eq!(MetricType::parse("MEDIAN_TTFT").unwrap().value(&m), 12.0);
        assert_eq!(
            MetricType::parse("MEDIAN_FIRST_TOKEN_TIME")
                .unwrap()
                .value(&m),
            12.0
        );
        assert_eq!(
            MetricType::parse("P99_INTER_TOKEN_TIME").unwrap().value(&m),
            3.0
        );
        assert_eq!(
            MetricType::parse("INFERENCE_TIME").unwrap().key(),
            "mean_e2el_ms"
        );
        assert_eq!(
            MetricType::parse("TOKEN_THROUGHPUT").unwrap().value(&m),
            320.0
        );
        assert!(MetricType::parse("P95_TTFT").is_none());
    }

    #[test]
    fn point_keys_come_from_either_layout() {
        assert_eq!(
            point_key("disagg::test_perf_metric_seq_throughput[cfg-con8]"),
            "cfg-con8"
        );
        assert_eq!(point_key("cfg-con8"), "cfg-con8");
        assert_eq!(point_key("cfg-rate2.5"), "cfg-rate2.5");
        // TensorRT-LLM's disagg test harness: `test_benchmark[disagg_perf_<stem>]_con:N`, and
        // its test id alone.
        assert_eq!(
            point_key("test_benchmark[disagg_perf_cfg]_con:8"),
            "cfg-con8"
        );
        assert_eq!(point_key("disagg_perf_cfg_con:8"), "cfg-con8");
        assert_eq!(point_key("test_benchmark[x_y]_con:16"), "x_y-con16");
        assert_eq!(point_key("cfg_con:"), "cfg_con:");
        assert_eq!(point_key("cfg_con:8x"), "cfg_con:8x");
    }

    #[test]
    fn a_metric_regresses_only_beyond_both_thresholds_added() {
        // Higher is better (negative threshold): 100 → 80 is 20% worse.
        assert_eq!(
            judge(true, 100.0, 80.0, -0.1, 0.0, true),
            Verdict::Regressed
        );
        assert_eq!(judge(true, 100.0, 95.0, -0.1, 0.0, true), Verdict::Ok);
        assert_eq!(
            judge(true, 100.0, 80.0, -0.1, 50.0, true),
            Verdict::Ok,
            "within the absolute threshold"
        );
        assert_eq!(
            judge(true, 100.0, 130.0, -0.1, 0.0, true),
            Verdict::Improved
        );
        // Lower is better: 10 ms → 12 ms is 20% worse.
        assert_eq!(judge(false, 10.0, 12.0, 0.1, 0.5, true), Verdict::Regressed);
        assert_eq!(judge(false, 10.0, 12.0, 0.1, 5.0, true), Verdict::Ok);
        assert_eq!(
            judge(false, 10.0, 12.0, 0.1, 0.5, false),
            Verdict::WorseNotGated
        );
        assert_eq!(judge(false, 10.0, 8.0, 0.1, 0.5, true), Verdict::Improved);
        // TensorRT-LLM's rule (numpy's isclose): the tolerances add, and the relative one is of
        // the measured value. 290 → 350.9 ms is within 50 + 10% of 350.9 = 85.1 ms...
        assert_eq!(judge(false, 290.0, 350.9, 0.1, 50.0, true), Verdict::Ok);
        assert_eq!(
            judge(false, 290.0, 390.0, 0.1, 50.0, true),
            Verdict::Regressed
        );
        // ... and a throughput 100 → 90.5 moved 9.5, beyond 10% of 90.5 = 9.05.
        assert_eq!(
            judge(true, 100.0, 90.5, -0.1, 0.0, true),
            Verdict::Regressed
        );
        assert_eq!(judge(true, 100.0, 91.0, -0.1, 0.0, true), Verdict::Ok);
    }

    fn command(p: &PointReport) -> String {
        format!(
            "disagg bench --concurrency {}",
            p.point.concurrency.unwrap()
        )
    }

    #[test]
    fn results_csv_has_trtllms_columns_unique_case_names_and_serves_as_the_next_baseline() {
        let tmp = tempfile::Builder::new()
            .prefix("disagg-perf-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let csv_path = dir.join("perf_script_test_results.csv");
        let points = [point(1), point(8)];
        write_results_csv(&csv_path, "cfg", &points, true, &command).unwrap();
        let mut rdr = csv::Reader::from_path(&csv_path).unwrap();
        let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, TRTLLM_COLUMNS);
        let records: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2 * 16);
        let cases: std::collections::BTreeSet<&str> = records.iter().map(|r| &r[6]).collect();
        assert_eq!(cases.len(), records.len(), "every perf_case_name is unique");
        // By name, as TensorRT-LLM's readers take them.
        let col = |name: &str| TRTLLM_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(
            col("device_subtype"),
            5,
            "after gpu_idx, as test_perf.py writes it"
        );
        let row = records
            .iter()
            .find(|r| &r[col("metric_type")] == "TOKEN_THROUGHPUT" && &r[0] == "cfg-con8")
            .unwrap();
        assert_eq!(
            &row[col("perf_case_name")],
            "disagg::test_perf_metric_token_throughput[cfg-con8]"
        );
        assert_eq!(
            &row[col("test_name")],
            "test_perf_metric_token_throughput[cfg-con8]"
        );
        let at = |name: &str| &row[col(name)];
        assert_eq!(
            (at("perf_metric"), at("state"), at("threshold")),
            ("320", "valid", "-0.1")
        );
        assert_eq!(at("command"), "disagg bench --concurrency 8");
        assert_eq!(at("start_timestamp"), "1970-01-01 00:00:00");
        assert_eq!(at("device_subtype"), "");
        // The detail file has a row for each, with the gate.
        let detail = std::fs::read_to_string(dir.join("perf_metrics.csv")).unwrap();
        assert_eq!(detail.lines().count(), 1 + 2 * 16);
        assert!(detail.contains(
            "disagg::test_perf_metric_p99_first_token_time[cfg-con8],cfg,con8,\
             P99_FIRST_TOKEN_TIME,P99_TTFT,p99_ttft_ms,20,ms,false,false,true"
        ));

        let rows = read_baseline(&csv_path).unwrap();
        assert_eq!(rows.len(), 32);
        let report = compare(&csv_path, &rows, "cfg", &points);
        assert_eq!(report.rows.len(), 32);
        assert!(!report.regressed());
        assert!(report.rows.iter().all(|r| r.verdict == Verdict::Ok));
        // The same run against a baseline twice as fast regresses on throughput only, and on
        // the point that regressed.
        let faster: Vec<BaselineRow> = rows
            .iter()
            .cloned()
            .map(|mut r| {
                let better = if r.metric().higher_is_better() {
                    2.0
                } else {
                    0.5
                };
                if point_key(&r.perf_case_name) == "cfg-con8" {
                    r.perf_metric *= better;
                }
                r
            })
            .collect();
        let report = compare(&csv_path, &faster, "cfg", &points);
        assert!(report.regressed());
        assert!(report.render().contains("REGRESSED"));
        assert!(
            report
                .rows
                .iter()
                .filter(|r| r.metric_type.contains("TOKEN_TIME"))
                .filter(|r| r.point == "con8")
                .all(|r| r.verdict == Verdict::WorseNotGated)
        );
        assert!(report.regressions_of("con1").is_empty());
        let con8 = report.regressions_of("con8");
        assert_eq!(con8.len(), 4, "{con8:?}");
        assert!(
            con8[1].starts_with("TOKEN_THROUGHPUT 320.000 against baseline 640.000 (-50.0%)"),
            "{con8:?}"
        );
    }

    #[test]
    fn the_old_layout_and_trtllms_base_file_are_read() {
        let tmp = tempfile::Builder::new()
            .prefix("disagg-perf-old-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        // Our earlier layout: one case name per point, our metric names, a gate column.
        let old = dir.join("old.csv");
        std::fs::write(
            &old,
            "network_name,perf_case_name,test_name,perf_metric,metric_type,threshold,absolute_threshold,gate\n\
             cfg,cfg-con8,disagg_perf/cfg-con8,640,TOKEN_THROUGHPUT,-0.1,0,true\n\
             cfg,cfg-con8,disagg_perf/cfg-con8,6,MEDIAN_TTFT,0.1,0,true\n\
             cfg,cfg-con8,disagg_perf/cfg-con8,1,P99_ITL,0.1,0,false\n\
             other,other-con8,disagg_perf/other-con8,1,P99_ITL,0.1,0,true\n",
        )
        .unwrap();
        let rows = read_baseline(&old).unwrap();
        let report = compare(&old, &rows, "cfg", &[point(8)]);
        let verdicts: Vec<(&str, Verdict)> = report
            .rows
            .iter()
            .map(|r| (r.metric_type.as_str(), r.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("TOKEN_THROUGHPUT", Verdict::Regressed),
                ("MEDIAN_FIRST_TOKEN_TIME", Verdict::Regressed),
                ("P99_INTER_TOKEN_TIME", Verdict::WorseNotGated),
            ]
        );
        // TensorRT-LLM's 7-column base file has no gate: throughputs gate, latencies do not.
        let base = dir.join("base.csv");
        std::fs::write(
            &base,
            "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n\
             cfg-con8,disagg::test_perf_metric_seq_throughput[cfg-con8],t,-0.1,0,SEQ_THROUGHPUT,20\n\
             cfg-con8,disagg::test_perf_metric_first_token_time[cfg-con8],t,0.1,0,FIRST_TOKEN_TIME,6\n",
        )
        .unwrap();
        let rows = read_baseline(&base).unwrap();
        assert!(rows[0].gates());
        assert!(!rows[1].gates());
        let report = compare(&base, &rows, "cfg", &[point(8)]);
        assert_eq!(report.rows[0].verdict, Verdict::Regressed);
        assert_eq!(report.rows[1].verdict, Verdict::WorseNotGated);
    }

    #[test]
    fn bad_baselines_name_the_line() {
        let tmp = tempfile::Builder::new()
            .prefix("disagg-perf-bad-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let p = dir.join("b.csv");
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,1.0,-0.1,0\nx-con1,BOGUS,1,0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("BOGUS"), "{e}");
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,fast,-0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("column `perf_metric`"),
            "{e}"
        );
        // A row short of fields: its line once, and what is short.
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,1.0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 2")
                && e.contains("the row has 3 field(s) where the header has 5")
                && !e.contains("CSV error"),
            "{e}"
        );
        // One threshold given and the other left empty is a mistake, not the harness's layout.
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,1,-0.1,\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(e.contains("absolute_threshold is empty or NaN"), "{e}");
        // No header line: the first row was read as one; the missing columns are named.
        std::fs::write(&p, "long-con2,SEQ_THROUGHPUT,abc,-0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 1")
                && e.contains("the header line lacks the column(s) perf_case_name, metric_type"),
            "{e}"
        );
        // CRLF line ends (Python's csv module, spreadsheets) are counted as lines too.
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\r\nx-con1,SEQ_THROUGHPUT,1.0,-0.1,0\r\nx-con1,BOGUS,1,0.1,0\r\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("BOGUS"), "{e}");
        // Two references for one point and metric, in either layout's names: refused.
        std::fs::write(&p, "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\nx-con1,SEQ_THROUGHPUT,5,-0.1,0\nx-con2,SEQ_THROUGHPUT,5,-0.1,0\ndisagg::test_perf_metric_seq_throughput[x-con1],SEQ_THROUGHPUT,50,-0.1,0\n").unwrap();
        let e = read_baseline(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("a second time (line 2 gave it first)"),
            "{e}"
        );
    }

    /// The CSV TensorRT-LLM's disagg test harness (`tests/integration/defs/perf/disagg`) writes:
    /// its 17 columns, `test_benchmark[<test id>]_con:N` case names, `SERVER_MEDIAN_*` (and the
    /// older `DISAGG_SERVER_*`) metric names, and no thresholds.
    #[test]
    fn the_disagg_harness_csv_is_a_baseline_with_default_thresholds_said() {
        let tmp = tempfile::Builder::new()
            .prefix("disagg-perf-harness-")
            .tempdir()
            .unwrap();
        let p = tmp.path().join("harness.csv");
        // The case imported from `r1-fp4_1k1k_ctx1_gen1_dep8_ccb-UCX.yaml` is named by its stem.
        let id = "r1-fp4_1k1k_ctx1_gen1_dep8_ccb-UCX";
        let node = format!("test_benchmark[disagg_perf_{id}]");
        let row = |metric: &str, value: f64| {
            format!(
                "{node}_con:8,{node}_con:8,,,,{node}_con:8,{node}_con:8,{node}_con:8,{value},703.2,2025-10-31 00:53:53,2025-10-31 01:05:36,valid,disagg_benchmark --concurrency=8,,,{metric}\n"
            )
        };
        // Its 17 columns: `test_perf.py`'s without `device_subtype`.
        let columns: Vec<&str> = TRTLLM_COLUMNS
            .into_iter()
            .filter(|c| *c != "device_subtype")
            .collect();
        let text = format!(
            "{}\n{}{}{}{}",
            columns.join(","),
            // Point 8's median TTFT is 12 and its median E2EL 79 (see `point`).
            row("SERVER_MEDIAN_TTFT", 10.0),
            // An earlier run's row, then the last run's: the CSV accumulates a row per run.
            row("SERVER_MEDIAN_E2EL", 40.0),
            row("SERVER_MEDIAN_E2EL", 79.0),
            row("DISAGG_SERVER_E2EL", 20.0),
        );
        std::fs::write(&p, text).unwrap();
        let rows = read_baseline(&p).unwrap();
        // Its perf system's thresholds for these latencies: 10% and 50 ms.
        assert!(
            rows.iter().all(|r| r.threshold_defaulted
                && r.threshold == 0.1
                && r.absolute_threshold == 50.0)
        );
        assert_eq!(rows.len(), 3);
        assert!(rows[1].replaced_earlier && rows[1].perf_metric == 79.0);
        let metrics: Vec<String> = rows.iter().map(|r| r.metric().name()).collect();
        assert_eq!(
            metrics,
            [
                "MEDIAN_FIRST_TOKEN_TIME",
                "MEDIAN_INFERENCE_TIME",
                "MEDIAN_INFERENCE_TIME"
            ]
        );
        assert_eq!(point_key(&rows[0].perf_case_name), format!("{id}-con8"));
        check_covers(&p, &rows, id, &["con8".into()]).unwrap();
        // A case named otherwise (the test id, say): the refusal says which name the rows want.
        let e = check_covers(&p, &rows, &format!("disagg_perf_{id}"), &["con8".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("; its rows are for {id}-con8\n"))
                && e.contains(&format!("set `name: {id}` in the case")),
            "{e}"
        );
        let report = compare(&p, &rows, id, &[point(8)]);
        let verdicts: Vec<Verdict> = report.rows.iter().map(|r| r.verdict).collect();
        // Its names gate, as its perf system gates them: 12 against 10 is 20% worse but within
        // 50 ms; 79 is 79 (the last run's row); 79 against 20 is worse beyond both.
        assert_eq!(verdicts, [Verdict::Ok, Verdict::Ok, Verdict::Regressed]);
        let text = report.render();
        assert!(
            text.contains("note: 3 baseline row(s) left threshold and absolute_threshold empty")
                && text.contains("note: 1 baseline row(s) repeated a point's metric"),
            "{text}"
        );
        // Its wide-EP names, as its code spells them, and its own positive thresholds of the
        // two throughputs it writes so, are read.
        let wide = tmp.path().join("wide.csv");
        std::fs::write(
            &wide,
            "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold
             cfg-con8,WIDEEP_SERVER_MEAN_TTFT,12,0.1,50
cfg-con8,WIDEEP_SERVER_E2EL,79,0.1,50
             cfg-con8,WIDEEP_SERVER_MEDIAN_TPOT,5,0.1,50
cfg-con8,TOTAL_TOKEN_THROUGHPUT,10,0.1,10
             cfg-con8,USER_THROUGHPUT,10,0.1,10
",
        )
        .unwrap();
        let rows = read_baseline(&wide).unwrap();
        assert_eq!(
            rows[0].metric(),
            MetricType::Latency(Stat::Mean, Latency::Ttft)
        );
        assert_eq!(
            rows[1].metric(),
            MetricType::Latency(Stat::Median, Latency::E2el)
        );
        // A baseline none of whose compared rows gates says it cannot fail.
        let soft = tmp.path().join("soft.csv");
        std::fs::write(
            &soft,
            "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold
cfg-con8,MEDIAN_FIRST_TOKEN_TIME,1,0.1,0
",
        )
        .unwrap();
        let rows = read_baseline(&soft).unwrap();
        let text = compare(&soft, &rows, "cfg", &[point(8)]).render();
        assert!(
            text.contains("1 worse beyond their thresholds but not gated")
                && text.contains("warning: none of the compared rows gates"),
            "{text}"
        );
        // A baseline that gives its thresholds gets no such note.
        let ours = tmp.path().join("ours.csv");
        std::fs::write(
            &ours,
            "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\ncfg-con8,SERVER_P99_ITL,1,0.1,0\n",
        )
        .unwrap();
        let rows = read_baseline(&ours).unwrap();
        assert_eq!(
            rows[0].metric(),
            MetricType::Latency(Stat::P99, Latency::Itl)
        );
        assert!(
            !compare(&ours, &rows, "cfg", &[point(8)])
                .render()
                .contains("note: ")
        );
    }

    /// A previous run's CSV whose point failed is refused as a baseline for that point; a
    /// point this run measured with no baseline row is reported as not checked.
    #[test]
    fn a_failed_points_rows_are_no_baseline_and_points_without_rows_are_named() {
        let tmp = tempfile::Builder::new()
            .prefix("disagg-perf-failed-")
            .tempdir()
            .unwrap();
        let csv_path = tmp.path().join("perf_script_test_results.csv");
        let mut failed = point(2);
        failed.validity.problems.push(disagg_bench::Problem {
            kind: disagg_bench::ProblemKind::FailedRequests,
            message: "concurrency 2: 4 of 6 requests failed".into(),
        });
        write_results_csv(&csv_path, "cfg", &[point(1), failed], true, &command).unwrap();
        let rows = read_baseline(&csv_path).unwrap();
        let labels = ["con1".to_string(), "con2".to_string()];
        let e = check_covers(&csv_path, &rows, "cfg", &labels)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 18: `disagg::test_perf_metric_seq_throughput[cfg-con2]` is marked `failed`: its point's measurement failed, or the run it was measured in did"),
            "{e}"
        );
        assert!(
            e.contains("hint: make the baseline from a passed run's"),
            "{e}"
        );
        // Another config's failed rows are none of this case's business.
        assert!(
            check_covers(&csv_path, &rows, "other", &labels)
                .is_err_and(|e| matches!(e, BaselineError::NoRow { .. }))
        );
        // Only con1 in the baseline: con1 is compared, con4 is named as not checked.
        let con1: Vec<BaselineRow> = rows
            .into_iter()
            .filter(|r| point_key(&r.perf_case_name) == "cfg-con1")
            .collect();
        assert!(check_covers(&csv_path, &con1, "cfg", &labels).is_ok());
        let report = compare(&csv_path, &con1, "cfg", &[point(1), point(4)]);
        assert_eq!(report.unchecked_points, ["con4"]);
        // A run that failed around its points: every row failed, none a baseline.
        write_results_csv(&csv_path, "cfg", &[point(1)], false, &command).unwrap();
        let rows = read_baseline(&csv_path).unwrap();
        assert!(rows.iter().all(|r| r.state.as_deref() == Some("failed")));
        assert!(check_covers(&csv_path, &rows, "cfg", &labels[..1]).is_err());
        assert!(
            report.render().contains(
                "note: the baseline has no row for point(s) con4 of this run: not checked"
            ),
            "{}",
            report.render()
        );
    }
}
