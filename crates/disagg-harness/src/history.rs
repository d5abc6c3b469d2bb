//! `disagg history CONFIG`: a config's runs over time, from the results store.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use disagg_store::Store;

/// The runs of `config`, oldest first, with `metric` of each point; `Err` names the store and
/// what went wrong.
/// [`render`] from the workspace's store (`DISAGG_STORE`, else its SQLite file), bounded: a
/// store that takes the connection and then says nothing is given up after
/// [`crate::bounded::STORE_WAIT`], not waited on until the job's wall clock.
pub fn render_workspace(workspace: &Path, config: &str, metric: &str) -> Result<String, String> {
    let (ws, config, metric) = (
        workspace.to_path_buf(),
        config.to_string(),
        metric.to_string(),
    );
    crate::bounded::store_call(crate::bounded::STORE_WAIT, move || {
        let mut store = Store::open_default_existing(&ws).map_err(|e| e.to_string())?;
        render(&mut store, &config, &metric)
    })
    .unwrap_or_else(|why| {
        Err(format!(
            "{}: {why}",
            disagg_store::default_location_shown(workspace)
        ))
    })
}

/// `disagg history CONFIG --accept RUN_ID`: the run becomes its case's new baseline
/// ([`Store::accept`]); what is said of it, or why not. Bounded as [`render_workspace`] is.
pub fn accept_workspace(workspace: &Path, config: &str, run_id: &str) -> Result<String, String> {
    if !disagg_store::default_exists(workspace) {
        return Err(format!(
            "{}: no such store: no run has been recorded in this workspace",
            disagg_store::default_location_shown(workspace)
        ));
    }
    let (ws, config, run_id) = (
        workspace.to_path_buf(),
        config.to_string(),
        run_id.to_string(),
    );
    crate::bounded::store_call(crate::bounded::STORE_WAIT, move || {
        let mut store = Store::open_default(&ws).map_err(|e| e.to_string())?;
        let run = store.accept(&config, &run_id).map_err(|e| e.to_string())?;
        // Its own check's word, as it was before it was accepted.
        let said = run
            .perf_verdict
            .strip_prefix(disagg_store::PERF_ACCEPTED)
            .unwrap_or(&run.perf_verdict);
        // A run measured with the check off is never a reference by itself; taking one is
        // allowed (someone means it), and said.
        let note = if said.starts_with("skipped (SKIP_PERF_CHECK") {
            "note: its perf check was skipped (SKIP_PERF_CHECK or --skip-perf-check), so it was \
             not a reference: accepting it makes it one, figures nothing has checked\n"
        } else {
            ""
        };
        Ok(format!(
            "{note}accepted run {run_id} of {config} (recorded {}, exit code {}) as the new \
             baseline of its case (measures {}): the history gate compares with it and the runs \
             after it, none before\n",
            run.recorded_at,
            run.exit_code,
            &run.case_hash[..run.case_hash.len().min(12)]
        ))
    })
    .unwrap_or_else(|why| {
        Err(format!(
            "{}: {why}",
            disagg_store::default_location_shown(workspace)
        ))
    })
}

pub fn render(store: &mut Store, config: &str, metric: &str) -> Result<String, String> {
    let runs = store.runs_of(config).map_err(|e| e.to_string())?;
    let mut s = String::new();
    if runs.is_empty() {
        // The names it has, so the fix is in the message.
        let mut names: Vec<String> = store
            .all_runs()
            .map(|r| r.into_iter().map(|r| r.config_name).collect())
            .unwrap_or_default();
        names.sort();
        names.dedup();
        // The likeliest first: those sharing the longest start with the name asked.
        let shared = |n: &String| {
            n.chars()
                .zip(config.chars())
                .take_while(|(a, b)| a == b)
                .count()
        };
        names.sort_by_key(|n| std::cmp::Reverse(shared(n)));
        let hint = match names.len() {
            0 => "no run is recorded there yet; runs are recorded when they end".to_string(),
            n if n <= 20 => format!("the configs it has runs of: {}", names.join(", ")),
            n => format!(
                "it has runs of {n} configs, the closest: {}",
                names[..20].join(", ")
            ),
        };
        return Err(format!(
            "{}: no run of `{config}` is recorded\nhint: {hint}",
            store.name()
        ));
    }
    // Each run's points: label → value of the metric.
    let mut rows = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for r in &runs {
        let points = store.points_of(r.id).map_err(|e| e.to_string())?;
        let mut values = BTreeMap::new();
        for p in points {
            if !labels.contains(&p.label) {
                labels.push(p.label.clone());
            }
            if let Some((_, v)) = p.metrics.iter().find(|(n, _)| n == metric) {
                values.insert(p.label.clone(), (*v, p.valid));
            }
        }
        rows.push((r, values));
    }
    let _ = writeln!(
        s,
        "{config}: {} run(s) in {}; {metric} per point",
        runs.len(),
        store.name()
    );
    let _ = write!(
        s,
        "{:<24} {:<22} {:<11} {:>4} {:<12} {:>4}  {:<22} {:<20} {:<16}",
        "recorded_at",
        "run_id",
        "verdict",
        "exit",
        "measures",
        "GPUs",
        "topology",
        "engine",
        "launcher"
    );
    for l in &labels {
        let _ = write!(s, " {l:>12}");
    }
    let _ = writeln!(s, "  {:<3}  perf check", "ref");
    let mut marked = false;
    for (r, values) in rows {
        let _ = write!(
            s,
            "{:<24} {:<22} {:<11} {:>4} {:<12} {:>4}  {:<22} {:<20} {:<16}",
            r.recorded_at,
            r.run_id,
            r.verdict,
            r.exit_code,
            &r.case_hash[..r.case_hash.len().min(12)],
            r.gpus(),
            r.topology,
            format!(
                "{} {}",
                r.engine,
                r.versions.engine.as_deref().unwrap_or("(no version)")
            ),
            // Recorded before the store kept it: not known.
            r.launcher
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string)
        );
        for l in &labels {
            match values.get(l) {
                Some((v, true)) => {
                    let _ = write!(s, " {v:>12.3}");
                }
                // An invalid point's figure is shown, marked, never read as a measurement.
                Some((v, false)) => {
                    marked = true;
                    let _ = write!(s, " {:>12}", format!("{v:.3}!"));
                }
                None => {
                    let _ = write!(s, " {:>12}", "-");
                }
            }
        }
        // Whether its case's history gate takes it as a reference.
        let reference = if r.is_reference() { "yes" } else { "no" };
        let _ = writeln!(s, "  {reference:<3}  {}", r.perf_verdict);
    }
    if marked {
        let _ = writeln!(
            s,
            "(a figure marked ! is of an invalid point: failed requests, or no output)"
        );
    }
    // One config name may have measured several things over time (an edited case, a sweep's
    // points sharing a name): `measures` (the hash of what a run measured, the history gate's
    // key) tells them apart, and the figures of different ones are no one series.
    let mut measured: Vec<&str> = runs.iter().map(|r| r.case_hash.as_str()).collect();
    measured.sort_unstable();
    measured.dedup();
    if measured.len() > 1 {
        let _ = writeln!(
            s,
            "note: these runs measured {} different workloads (the `measures` column, the hash of \
             what a run measured): compare a figure only with those of its own; the history gate \
             takes references of its own only",
            measured.len()
        );
    }
    Ok(s)
}

/// The metric names the store records: those of `perf_script_test_results.csv`, and
/// `OUTPUT_THROUGHPUT_PER_GPU`.
pub fn metric_names() -> Vec<String> {
    let mut v: Vec<String> = crate::perf::MetricType::all()
        .iter()
        .map(crate::perf::MetricType::name)
        .collect();
    v.push(crate::record::OUTPUT_THROUGHPUT_PER_GPU.into());
    v
}

/// The stored name of a metric given by its name or its older alias (`MEDIAN_TPOT`).
pub fn metric_name(given: &str) -> Option<String> {
    if given == crate::record::OUTPUT_THROUGHPUT_PER_GPU {
        return Some(given.to_string());
    }
    crate::perf::MetricType::parse(given).map(|m| m.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use disagg_store::{PointRecord, RunRecord};
    use std::time::{Duration, SystemTime};

    #[test]
    fn an_invalid_points_figure_is_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(&tmp.path().join("s.sqlite").display().to_string()).unwrap();
        let point = |label: &str, valid: bool, v: f64| PointRecord {
            label: label.into(),
            concurrency: Some(1),
            request_rate: None,
            valid,
            metrics: vec![("TOKEN_THROUGHPUT".into(), v)],
            json: String::new(),
        };
        let run = |id: &str, hash: &str| RunRecord {
            run_id: id.into(),
            config_name: "c".into(),
            case_hash: hash.into(),
            run_dir: format!("/{id}"),
            sweep: None,
            recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            verdict: "failed".into(),
            exit_code: 1,
            engine: "sim".into(),
            versions: Default::default(),
            ctx: Default::default(),
            generation: Default::default(),
            topology: String::new(),
            perf_verdict: "not run".into(),
            launcher: disagg_store::Launcher::Local,
            points: vec![point("con1", true, 100.0), point("con2", false, 7.0)],
            checks: Vec::new(),
        };
        store.record(&run("r1", "h")).unwrap();
        let text = render(&mut store, "c", "TOKEN_THROUGHPUT").unwrap();
        assert!(text.contains(" 100.000       7.000!  no"), "{text}");
        assert!(
            text.contains("(a figure marked ! is of an invalid point"),
            "{text}"
        );
        assert!(
            text.contains(" measures ") && !text.contains("different workloads"),
            "{text}"
        );
        // The same config name measuring something else: told apart, and said.
        store.record(&run("r2", "h2")).unwrap();
        let text = render(&mut store, "c", "TOKEN_THROUGHPUT").unwrap();
        assert!(
            text.contains("note: these runs measured 2 different workloads"),
            "{text}"
        );
    }
}
