//! The files of a finished sweep, in one directory:
//! - `results.json`: validity plus each point's [`PointReport`](crate::PointReport) (flat,
//!   under benchmark_serving's keys);
//! - `summary.txt`: the text blocks, as printed, with each point's warnings and notes;
//! - `results.csv`: one row per point, the JSON keys as columns;
//! - `requests.jsonl`: one line per measured request, with its chunk timestamps;
//! - `hdr/point<N>_<metric>.hgrm`: each point's latency distributions.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{BenchError, ResultsFile, Sweep, details_summary, histogram, text_summary};

/// Whether `name`, in an output folder, is a file the bench writes there: what a later run would
/// mix with its own (anything globbing `benchmark.*` would read both runs' points).
fn written_by_the_bench(name: &str) -> bool {
    matches!(
        name,
        "results.json" | "summary.txt" | "results.csv" | "requests.jsonl" | "hdr"
    ) || (name.starts_with("benchmark.")
        && [".log", ".json", ".log.tmp", ".json.tmp"]
            .iter()
            .any(|ext| name.ends_with(ext)))
}

/// Moves an earlier run's files (those the bench writes, and only those) out of `dir` into a
/// new `earlier-<UTC time>/` inside it, so that nothing is lost and nothing of that run is read
/// as this one's. Returns where they went and how many entries moved; `None` when there were
/// none (or no folder yet).
pub(crate) fn set_aside_earlier(dir: &Path) -> Result<Option<(PathBuf, usize)>, BenchError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BenchError::Write { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(dir)(e)),
    };
    let mut earlier: Vec<std::ffi::OsString> = Vec::new();
    for entry in entries {
        let name = entry.map_err(fail(dir))?.file_name();
        if name.to_str().is_some_and(written_by_the_bench) {
            earlier.push(name);
        }
    }
    if earlier.is_empty() {
        return Ok(None);
    }
    earlier.sort();
    let stamp = crate::point_files::date(std::time::SystemTime::now());
    let mut aside = dir.join(format!("earlier-{stamp}"));
    let mut n = 1;
    // Two runs in one second: each its own folder.
    while aside.exists() {
        n += 1;
        aside = dir.join(format!("earlier-{stamp}-{n}"));
    }
    std::fs::create_dir(&aside).map_err(fail(&aside))?;
    for name in &earlier {
        let from = dir.join(name);
        std::fs::rename(&from, aside.join(name)).map_err(fail(&from))?;
    }
    Ok(Some((aside, earlier.len())))
}

/// `stopped`: why the sweep ended before its last point (an interruption), which makes the
/// results invalid whatever the points say.
pub(crate) fn write(dir: &Path, sweep: &Sweep, stopped: Option<&str>) -> Result<(), BenchError> {
    let fail = |path: PathBuf| move |source| BenchError::Write { path, source };
    std::fs::create_dir_all(dir.join("hdr")).map_err(fail(dir.join("hdr")))?;
    // Each file whole or not at all: they are rewritten after every point.
    let put = |name: &str, contents: &[u8]| crate::point_files::put(&dir.join(name), contents);

    let mut results = serde_json::to_vec_pretty(&results_file(sweep, stopped))
        .expect("a report always serializes");
    results.push(b'\n');
    put("results.json", &results)?;
    let mut summary = summary_text(sweep);
    // What made the results invalid whatever the points say (an interruption, a canary that
    // failed before any point) is in the summary too, not only in results.json.
    if let Some(why) = stopped {
        summary.push_str(&format!("invalid results: {why}\n"));
    }
    put("summary.txt", summary.as_bytes())?;
    put(
        "results.csv",
        &csv(sweep).map_err(fail(dir.join("results.csv")))?,
    )?;
    put("requests.jsonl", &requests_jsonl(sweep))?;
    for (i, p) in sweep.points.iter().enumerate() {
        for (metric, h) in p.histograms.named() {
            put(
                &format!("hdr/point{i}_{metric}.hgrm"),
                histogram::hgrm(h).as_bytes(),
            )?;
        }
    }
    Ok(())
}

/// Every point's text block and its details, as the command prints them, then its warnings
/// and notes (what the command printed to stderr beside them).
pub(crate) fn summary_text(sweep: &Sweep) -> String {
    sweep
        .points
        .iter()
        .map(|p| {
            let notes: String = p.warnings.iter().map(|w| format!("{w}\n")).collect();
            text_summary(&p.report) + &details_summary(&p.report) + &notes
        })
        .collect()
}

/// `results.json` of a standalone sweep (the BENCHMARK role adds its run id and config name).
pub(crate) fn results_file(sweep: &Sweep, stopped: Option<&str>) -> ResultsFile {
    let reasons: Vec<String> = stopped
        .map(str::to_string)
        .into_iter()
        .chain(sweep.invalid_reason())
        .collect();
    ResultsFile {
        run_id: None,
        config_name: None,
        valid: reasons.is_empty(),
        invalid_reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        warnings: sweep.warnings(),
        points: sweep.reports(),
    }
}

/// One row per point. Columns are the keys of the first point's report (every point of a sweep
/// has the same ones); `error_counts` becomes `kind=n;kind=n`, nested values stay JSON.
pub(crate) fn csv(sweep: &Sweep) -> Result<Vec<u8>, std::io::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let Some(first) = sweep.points.first() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = first.report.to_map().keys().cloned().collect();
    w.write_record(&header)?;
    for p in &sweep.points {
        let mut row = p.report.to_map();
        let cells: Vec<String> = header
            .iter()
            .map(|k| cell(k, row.remove(k).unwrap_or(Value::Null)))
            .collect();
        w.write_record(&cells)?;
    }
    w.into_inner().map_err(|e| e.into_error())
}

fn cell(key: &str, v: Value) -> String {
    match v {
        Value::Object(counts) if key == "error_counts" => counts
            .iter()
            .map(|(kind, n)| format!("{kind}={n}"))
            .collect::<Vec<_>>()
            .join(";"),
        Value::Null => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// One JSON object per request, tagged with its point.
pub(crate) fn requests_jsonl(sweep: &Sweep) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in sweep.points.iter().enumerate() {
        for r in &p.requests {
            let mut v = serde_json::to_value(r).expect("a record always serializes");
            v["point"] = json!(i);
            serde_json::to_writer(&mut out, &v).expect("writing to a Vec cannot fail");
            let _ = out.write_all(b"\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Metrics, PointId, PointReport, PointResult, RequestRecord};

    fn point(c: u32, errors: &[(&str, u64)]) -> PointResult {
        PointResult {
            report: PointReport {
                point: PointId::closed(c),
                started_at: std::time::SystemTime::UNIX_EPOCH,
                ended_at: std::time::SystemTime::UNIX_EPOCH,
                num_prompts: 2,
                metrics: Metrics {
                    completed: 2,
                    total_output_tokens: 8,
                    ..Default::default()
                },
                error_counts: errors
                    .iter()
                    .map(|(k, n)| (k.to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
                hdr_percentiles_ms: BTreeMap::new(),
                validity: Default::default(),
            },
            requests: vec![RequestRecord {
                index: 0,
                url_index: 0,
                scheduled_ns: 0,
                sent_ns: 10,
                chunk_ns: vec![100, 200],
                end_ns: 250,
                input_tokens: 4,
                output_tokens: Some(2),
                requested_output_tokens: Some(2),
                error: None,
                error_message: None,
            }],
            histograms: Default::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_point() {
        let sweep = Sweep {
            points: vec![point(1, &[]), point(4, &[("http_500", 2), ("timeout", 1)])],
        };
        let text = String::from_utf8(csv(&sweep).unwrap()).unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let header = rows.headers().unwrap().clone();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[1][col("max_concurrency")], "4");
        assert_eq!(&rows[1][col("request_rate")], "inf");
        assert_eq!(&rows[1][col("error_counts")], "http_500=2;timeout=1");
        assert_eq!(&rows[0][col("request_goodput")], "");
        assert_eq!(&rows[0][col("completed")], "2");
        assert!(header.iter().any(|h| h == "p99_itl_ms"));
    }

    #[test]
    fn jsonl_has_one_line_per_request_with_chunks() {
        let sweep = Sweep {
            points: vec![point(1, &[]), point(2, &[])],
        };
        let text = String::from_utf8(requests_jsonl(&sweep)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["point"], 1);
        assert_eq!(lines[0]["chunk_ns"], json!([100, 200]));
        assert_eq!(lines[0]["error"], Value::Null);
    }
}
