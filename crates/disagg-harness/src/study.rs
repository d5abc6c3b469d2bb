//! From folders and the store to a [`disagg_report::Report`] (`disagg report`, and the
//! `report.html` every run and sweep writes), and `disagg compare`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use disagg_bench::{PointReport, ResultsFile};
use disagg_core::Plan;
use disagg_report::{HistoryRow, HistorySeries, Report, Run};

use crate::perf::MetricType;
use crate::sweep::SweepRecord;

/// The report's file name in a run or sweep folder.
pub const REPORT_FILE: &str = "report.html";

/// A run folder's plan and points, as the report shows it.
pub fn load_run(run_dir: &Path) -> Result<Run, String> {
    let plan_path = run_dir.join("plan.json");
    let plan: Plan = std::fs::read(&plan_path)
        .map_err(|e| format!("{}: {e}", plan_path.display()))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", plan_path.display()))
        })?;
    let results = run_dir.join("results.json");
    let points = if results.exists() {
        ResultsFile::read(&results)?.points
    } else {
        Vec::new()
    };
    let (ctx, generation) = crate::record::groups(&plan);
    let verdict = match std::fs::read_to_string(run_dir.join(crate::run::EXIT_CODE_FILE)) {
        Ok(c) => match c.trim().parse::<i32>() {
            Ok(code) => crate::sweep::PointStatus::from_code(code)
                .as_str()
                .to_string(),
            Err(_) => "unknown".into(),
        },
        Err(_) => "unfinished".into(),
    };
    Ok(Run {
        config_name: plan.config_name.to_string(),
        topology: crate::record::topology(ctx, generation),
        gpus: ctx.gpus() + generation.gpus(),
        run_dir: run_dir.display().to_string(),
        verdict,
        reason: crate::outcome::failure_reason(run_dir),
        points,
    })
}

/// A sweep folder's points that have a run folder.
pub fn load_sweep(dir: &Path) -> Result<Report, String> {
    let rec = SweepRecord::read(dir)?;
    let mut runs = Vec::new();
    for p in &rec.points {
        // Every point is listed: one not run (or whose folder is gone) with its status.
        let placeholder = |verdict: String, dir: String| Run {
            config_name: p.config_name.clone(),
            topology: format!("point {}", p.index),
            gpus: p.gpus,
            run_dir: dir,
            verdict,
            reason: None,
            points: Vec::new(),
        };
        let Some(recorded) = &p.run_dir else {
            runs.push(placeholder(p.status.as_str().to_string(), "—".into()));
            continue;
        };
        // The folder's own link first: it is relative, so a copied or moved workspace reads its
        // own runs, never the original's (sweep.json holds absolute paths).
        let link = dir
            .join("points")
            .join(format!("{:02}-{}", p.index, p.config_name));
        let run_dir = if link.exists() { &link } else { recorded };
        match load_run(run_dir) {
            Ok(r) => runs.push(r),
            Err(e) => {
                say_err!("warning: sweep point {}: {e}", p.index);
                runs.push(placeholder(
                    format!("{} (its run folder cannot be read)", p.status.as_str()),
                    run_dir.display().to_string(),
                ));
            }
        }
    }
    let with_results = runs.iter().filter(|r| !r.points.is_empty()).count();
    Ok(Report {
        title: format!("sweep {} — {}", rec.sweep, rec.sweep_id),
        subtitle: format!(
            "{} points from {}; {with_results} with results",
            rec.points.len(),
            rec.file.display(),
        ),
        runs,
        history: Vec::new(),
    })
}

/// A config's history from the store: every run, and each gated metric over time.
pub fn load_history(store: &mut disagg_store::Store, config: &str) -> Result<Report, String> {
    let stored = store.runs_of(config).map_err(|e| e.to_string())?;
    if stored.is_empty() {
        return Err(format!(
            "{}: no run of `{config}` is recorded\nhint: PATH is a run folder, a sweep folder or a config name with runs in the store",
            store.name()
        ));
    }
    let mut runs = Vec::new();
    let mut per_run = Vec::new();
    for s in &stored {
        let points = store.points_of(s.id).map_err(|e| e.to_string())?;
        let checks = store.checks_of(s.id).map_err(|e| e.to_string())?;
        let reports: Vec<PointReport> = points
            .iter()
            .filter_map(|p| serde_json::from_str(&p.json).ok())
            .collect();
        runs.push(Run {
            config_name: s.config_name.clone(),
            topology: format!("{} run {}", s.topology, s.run_id),
            gpus: s.gpus(),
            run_dir: s.run_dir.clone(),
            verdict: s.verdict.clone(),
            reason: crate::outcome::failure_reason(Path::new(&s.run_dir)),
            points: reports,
        });
        per_run.push((s, points, checks));
    }
    // The gated (point, metric) pairs; without any gate, each point's token throughput.
    let mut gated: Vec<(String, String)> = Vec::new();
    for (_, _, checks) in &per_run {
        for c in checks {
            let k = (c.point.clone(), c.metric.clone());
            if !gated.contains(&k) {
                gated.push(k);
            }
        }
    }
    if gated.is_empty() {
        for (_, points, _) in &per_run {
            for p in points {
                let k = (p.label.clone(), MetricType::TokenThroughput.name());
                if !gated.contains(&k) {
                    gated.push(k);
                }
            }
        }
    }
    // One config name may have measured several workloads over time (an edited case): their
    // figures are no one series, so each workload gets its own, named by its measure hash.
    let mut workloads: Vec<&str> = per_run.iter().map(|(s, ..)| s.case_hash.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    let several = workloads.len() > 1;
    let history = gated
        .iter()
        .flat_map(|k| workloads.iter().map(move |w| (k, *w)))
        .map(|((point, metric), workload)| HistorySeries {
            rows: per_run
                .iter()
                .filter(|(s, ..)| !several || s.case_hash == workload)
                .map(|(s, points, checks)| {
                    let check = checks
                        .iter()
                        .find(|c| c.point == *point && c.metric == *metric);
                    HistoryRow {
                        recorded_at: s.recorded_at.clone(),
                        // Which runs the gate takes as references, as `disagg history`'s `ref`.
                        run_id: if s.is_reference() {
                            format!("{} (ref)", s.run_id)
                        } else {
                            s.run_id.clone()
                        },
                        measured: points
                            .iter()
                            .find(|p| p.label == *point)
                            .and_then(|p| p.metrics.iter().find(|(n, _)| n == metric))
                            .map(|(_, v)| *v),
                        baseline: check.and_then(|c| c.baseline),
                        band: check.and_then(|c| c.band),
                        // Not gated: why (a failed run, a check skipped or too few runs).
                        verdict: Some(check.map_or_else(
                            || match s.verdict.as_str() {
                                "passed" | "regressed" if s.perf_verdict.is_empty() => {
                                    "not gated".to_string()
                                }
                                "passed" | "regressed" => format!("not gated: {}", s.perf_verdict),
                                v => format!("not gated: run {v}"),
                            },
                            |c| c.verdict.clone(),
                        )),
                    }
                })
                .collect(),
            point: if several {
                format!("{point} (workload {})", &workload[..workload.len().min(12)])
            } else {
                point.clone()
            },
            metric: metric.clone(),
        })
        .filter(|s: &HistorySeries| !several || s.rows.iter().any(|r| r.measured.is_some()))
        .collect();
    let note = if several {
        format!(
            "; these runs measured {} different workloads (measure hashes), each its own series",
            workloads.len()
        )
    } else {
        String::new()
    };
    Ok(Report {
        title: format!("history of {config}"),
        subtitle: format!("{} runs in {}{note}", stored.len(), store.name()),
        runs,
        history,
    })
}

/// `disagg report PATH`: a run folder, a sweep folder, or a config name (its history).
pub fn load_any(path: &Path, workspace: &Path) -> Result<Report, String> {
    if path.join(crate::sweep::SWEEP_FILE).is_file() {
        return load_sweep(path);
    }
    if path.join("plan.json").is_file() {
        let run = load_run(path)?;
        return Ok(Report {
            title: format!("{} — run {}", run.config_name, run_id_of(path)),
            subtitle: path.display().to_string(),
            runs: vec![run],
            history: Vec::new(),
        });
    }
    if path.exists() {
        let hint = if path.join("latest").exists() {
            format!(
                "\nhint: it holds runs: give one, e.g. {}",
                path.join("latest").display()
            )
        } else {
            String::new()
        };
        return Err(format!(
            "{}: neither a run folder (plan.json) nor a sweep folder (sweep.json){hint}",
            path.display()
        ));
    }
    let config = path.display().to_string();
    // A config name holds no `/` (nor is `.` or `..`): this is a path, and there is nothing at it.
    if config.contains('/') || config == "." || config == ".." {
        return Err(format!(
            "{config}: no such run folder, sweep folder or file\nhint: PATH is a run folder (e.g. \
             $WORKSPACE/disagg_logs/<config>/latest), a sweep folder, or a config name with runs \
             in the store"
        ));
    }
    // Bounded, as the runs' own store calls are: a silent server is given up, not waited on.
    let ws = workspace.to_path_buf();
    crate::bounded::store_call(crate::bounded::STORE_WAIT, move || {
        let mut store =
            disagg_store::Store::open_default_existing(&ws).map_err(|e| e.to_string())?;
        load_history(&mut store, &config)
    })
    .unwrap_or_else(|why| {
        Err(format!(
            "{}: {why}",
            disagg_store::default_location_shown(workspace)
        ))
    })
}

/// The run folder's name, through `latest` and other links.
fn run_id_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Renders and writes a report.
pub fn write(report: &Report, to: &Path) -> Result<(), String> {
    let html = disagg_report::render(report)?;
    crate::atomic::write(to, html.as_bytes()).map_err(|e| format!("{}: {e}", to.display()))
}

/// Writes `report.html` into a run folder; a failure is a warning, never the run's verdict.
pub fn write_run_report(run_dir: &Path) {
    let done =
        load_any(run_dir, Path::new(".")).and_then(|r| write(&r, &run_dir.join(REPORT_FILE)));
    if let Err(e) = done {
        say_err!("warning: no {REPORT_FILE}: {e}");
    }
}

/// Writes `report.html` into a sweep folder.
pub fn write_sweep_report(dir: &Path) -> Option<PathBuf> {
    let to = dir.join(REPORT_FILE);
    match load_sweep(dir).and_then(|r| write(&r, &to)) {
        Ok(()) => Some(to),
        Err(e) => {
            say_err!("warning: no sweep {REPORT_FILE}: {e}");
            None
        }
    }
}

/// `disagg compare A B`: every metric of every point side by side, with the change. Two sweep
/// folders: each sweep point's runs, matched by config name.
pub fn compare(a: &Path, b: &Path) -> Result<String, String> {
    let sweep = |p: &Path| p.join(crate::sweep::SWEEP_FILE).is_file();
    match (sweep(a), sweep(b)) {
        (true, true) => return compare_sweeps(a, b),
        (false, false) => {}
        _ => {
            return Err(format!(
                "{} is a sweep folder and {} is not\nhint: compare two sweep folders, or two run \
                 folders (a sweep's runs are under its points/)",
                if sweep(a) { a } else { b }.display(),
                if sweep(a) { b } else { a }.display()
            ));
        }
    }
    compare_runs(a, b)
}

/// Two sweeps, point by point (matched by config name, in A's order, then B's own): each pair of
/// runs as [`compare_runs`] shows it; a point one side lacks, or did not run, is said.
fn compare_sweeps(a: &Path, b: &Path) -> Result<String, String> {
    let (ra, rb) = (
        crate::sweep::SweepRecord::read(a)?,
        crate::sweep::SweepRecord::read(b)?,
    );
    let mut names: Vec<&str> = ra.points.iter().map(|p| p.config_name.as_str()).collect();
    for p in &rb.points {
        if !names.contains(&p.config_name.as_str()) {
            names.push(&p.config_name);
        }
    }
    let mut s = format!(
        "sweep A: {} ({} points)\nsweep B: {} ({} points)\n",
        a.display(),
        ra.points.len(),
        b.display(),
        rb.points.len()
    );
    for name in names {
        let find = |r: &crate::sweep::SweepRecord| {
            r.points.iter().find(|p| p.config_name == name).cloned()
        };
        let _ = write!(s, "\n=== {name}");
        let run = |p: &Option<crate::sweep::PointRecord>| -> Result<PathBuf, String> {
            match p {
                None => Err("not in its sweep".into()),
                Some(p) => p
                    .run_dir
                    .clone()
                    .ok_or_else(|| format!("{} (no run folder)", p.status.as_str())),
            }
        };
        match (run(&find(&ra)), run(&find(&rb))) {
            (Ok(x), Ok(y)) => {
                let _ = writeln!(s, " ===");
                match compare_runs(&x, &y) {
                    Ok(t) => s.push_str(&t),
                    Err(e) => {
                        let _ = writeln!(s, "not compared: {e}");
                    }
                }
            }
            (x, y) => {
                let side = |r: &Result<PathBuf, String>| match r {
                    Ok(d) => d.display().to_string(),
                    Err(e) => e.clone(),
                };
                let _ = writeln!(s, " (not compared) ===\nA: {}\nB: {}", side(&x), side(&y));
            }
        }
    }
    Ok(s)
}

/// Two runs: every metric of every point side by side, with the change.
fn compare_runs(a: &Path, b: &Path) -> Result<String, String> {
    // Each side's points, and what the run was (a failed or unfinished run's points are shown,
    // but the reader is told).
    let read = |p: &Path| -> Result<(Vec<PointReport>, String, Option<String>), String> {
        let f = if p.is_dir() {
            p.join("results.json")
        } else {
            p.to_path_buf()
        };
        let run_dir = f.parent().unwrap_or(Path::new("."));
        let is_run = run_dir.join("plan.json").is_file();
        let exit_code = std::fs::read_to_string(run_dir.join(crate::run::EXIT_CODE_FILE)).ok();
        // A run folder whose benchmark wrote nothing yet (still starting, or killed before it
        // measured): no points, and said to be unfinished.
        let results = if is_run && exit_code.is_none() && !f.exists() {
            ResultsFile {
                run_id: None,
                config_name: None,
                valid: false,
                invalid_reason: None,
                warnings: Vec::new(),
                points: Vec::new(),
            }
        } else {
            ResultsFile::read(&f).map_err(|e| {
                format!(
                    "{e}\nhint: give a run folder (with its results.json) or a results.json file"
                )
            })?
        };
        let verdict = match exit_code {
            Some(c) => Some(match c.trim().parse::<i32>() {
                Ok(code) => crate::sweep::PointStatus::from_code(code)
                    .as_str()
                    .to_string(),
                // Cut short as it was written (a full disk, a kill): no verdict to give.
                Err(_) => format!("unfinished: its exit_code holds {:?}", c.trim()),
            }),
            // A results.json alone, or a run still going (no exit code yet).
            None => is_run.then(|| "unfinished".to_string()),
        };
        // A run that failed, was interrupted or never finished measured nothing to rank, even
        // at a point whose own requests went well (its CSV marks every row failed).
        let unranked = verdict
            .as_deref()
            .filter(|v| !matches!(*v, "passed" | "REGRESSED"))
            .map(|v| format!("its run {v}"));
        let mut about = match verdict {
            Some(v) => format!(" (run {v})"),
            None => String::new(),
        };
        if let (false, Some(why)) = (results.valid, &results.invalid_reason) {
            about += &format!("; not valid: {why}");
        }
        Ok((results.points, about, unranked))
    };
    let ((pa, about_a, bad_a), (pb, about_b, bad_b)) = (read(a)?, read(b)?);
    let mut labels: Vec<String> = pa.iter().map(|p| p.point.label()).collect();
    for p in &pb {
        if !labels.contains(&p.point.label()) {
            labels.push(p.point.label());
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "A: {}{about_a}\nB: {}{about_b}",
        a.display(),
        b.display()
    );
    // Two run folders that measured different workloads (another engine argument, dataset,
    // parallelism: their measure_hash differs): the figures are shown, and said to be no like
    // for like.
    let measured = |p: &Path| {
        let dir = if p.is_dir() { p } else { p.parent()? };
        std::fs::read_to_string(dir.join(crate::run::MEASURE_HASH_FILE))
            .ok()
            .map(|h| h.trim().to_string())
    };
    if let (Some(ha), Some(hb)) = (measured(a), measured(b)) {
        if ha != hb {
            let _ = writeln!(
                s,
                "note: A and B measured different workloads (measure_hash {} against {}: the \
                 case differs in more than perf and timeouts); their differences are not the \
                 system's alone",
                &ha[..ha.len().min(12)],
                &hb[..hb.len().min(12)]
            );
        }
    }
    for label in labels {
        let find = |v: &[PointReport]| v.iter().find(|p| p.point.label() == label).cloned();
        let (x, y) = (find(&pa), find(&pb));
        // A point whose requests failed (or that is otherwise not valid) measured no latency
        // worth ranking: its figures are shown, never called better or worse.
        let invalid: Vec<String> = [("A", &x, &bad_a), ("B", &y, &bad_b)]
            .iter()
            .filter_map(|(side, p, bad)| {
                let p = p.as_ref()?;
                let why = p.validity.reason().or_else(|| (*bad).clone())?;
                Some(format!("{side} is not valid: {why}"))
            })
            .collect();
        let _ = writeln!(
            s,
            "\n{label}{}{}\n{:<24} {:>14} {:>14} {:>14} {:>9}",
            match (&x, &y) {
                (Some(_), None) => " (only in A)",
                (None, Some(_)) => " (only in B)",
                _ => "",
            },
            if invalid.is_empty() {
                String::new()
            } else {
                format!(" (not compared: {})", invalid.join("; "))
            },
            "metric",
            "A",
            "B",
            "B - A",
            "change"
        );
        for m in MetricType::all() {
            let va = x.as_ref().map(|p| m.value(&p.metrics));
            let vb = y.as_ref().map(|p| m.value(&p.metrics));
            let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            let (delta, pct) = match (va, vb) {
                _ if !invalid.is_empty() => ("-".into(), "-".into()),
                (Some(a), Some(b)) => (
                    format!("{:+.3}", b - a),
                    if a != 0.0 {
                        let pct = (b - a) / a.abs() * 100.0;
                        let better = if m.higher_is_better() {
                            pct > 0.0
                        } else {
                            pct < 0.0
                        };
                        format!(
                            "{pct:+.1}%{}",
                            if pct.abs() < 0.05 {
                                ""
                            } else if better {
                                " better"
                            } else {
                                " worse"
                            }
                        )
                    } else {
                        "-".into()
                    },
                ),
                _ => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                s,
                "{:<24} {:>14} {:>14} {:>14} {:>9}",
                m.name(),
                f(va),
                f(vb),
                delta,
                pct
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, case_hash: &str, at: u64, throughput: f64) -> disagg_store::RunRecord {
        disagg_store::RunRecord {
            run_id: id.into(),
            config_name: "c".into(),
            case_hash: case_hash.into(),
            run_dir: format!("/ws/{id}"),
            sweep: None,
            recorded_at: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000 + at),
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
                label: "con1".into(),
                concurrency: Some(1),
                request_rate: None,
                valid: true,
                metrics: vec![(MetricType::TokenThroughput.name(), throughput)],
                json: String::new(),
            }],
            checks: Vec::new(),
        }
    }

    /// A config whose case was edited measured two workloads: each is its own series, named by
    /// its hash, and the report says so; one workload stays one series, as it was.
    #[test]
    fn a_history_of_two_workloads_is_two_series() {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            disagg_store::Store::open(&dir.path().join("s.sqlite").display().to_string()).unwrap();
        store
            .record(&run("a", "aaaaaaaaaaaaaaaa", 1, 48.0))
            .unwrap();
        let one = load_history(&mut store, "c").unwrap();
        assert_eq!(one.history.len(), 1);
        assert_eq!(one.history[0].point, "con1");
        assert!(!one.subtitle.contains("workloads"), "{}", one.subtitle);
        store
            .record(&run("b", "bbbbbbbbbbbbbbbb", 2, 63.4))
            .unwrap();
        let two = load_history(&mut store, "c").unwrap();
        let series: Vec<(&str, Vec<Option<f64>>)> = two
            .history
            .iter()
            .map(|s| {
                (
                    s.point.as_str(),
                    s.rows.iter().map(|r| r.measured).collect(),
                )
            })
            .collect();
        assert_eq!(
            series,
            [
                ("con1 (workload aaaaaaaaaaaa)", vec![Some(48.0)]),
                ("con1 (workload bbbbbbbbbbbb)", vec![Some(63.4)]),
            ]
        );
        assert!(
            two.subtitle
                .contains("these runs measured 2 different workloads"),
            "{}",
            two.subtitle
        );
    }
}
