//! Every finished run goes into the results store ([`disagg_store`]): the run, its points, every
//! metric, the perf verdicts, the versions known and the GPUs per role. The history gate reads
//! it back.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use disagg_bench::PointReport;
use disagg_core::Plan;
use disagg_core::case::HistoryGate;
use disagg_store::{CheckRecord, Group, Launcher, PointRecord, RunRecord, Store, Versions};

use crate::history_gate::{self, HistoryReport};
use crate::outcome::{Outcome, RunResult};
use crate::perf::MetricType;
use crate::report::PerfOutcome;

/// The workspace a run folder belongs to: `<ws>/disagg_logs/<config>/<run>`; `None` for a
/// folder laid out otherwise (whose runs are not recorded).
pub fn workspace_of(run_dir: &Path) -> Option<PathBuf> {
    let logs = run_dir.parent()?.parent()?;
    (logs.file_name()? == "disagg_logs").then(|| logs.parent().map(Path::to_path_buf))?
}

/// Makes a relative `DISAGG_STORE` (a SQLite file) absolute in this process's environment, so
/// that every process started from it, a Slurm job in its run folder too, names the same file.
///
/// # Safety
/// Must run before the process starts any thread (the environment is not thread-safe).
pub unsafe fn absolute_store_env() {
    let Ok(location) = std::env::var(disagg_store::STORE_ENV) else {
        return;
    };
    if let Some(abs) = disagg_store::absolute_location(&location) {
        // SAFETY: the caller guarantees no other thread runs.
        unsafe { std::env::set_var(disagg_store::STORE_ENV, abs) };
    }
}

fn open_store(run_dir: &Path) -> Result<Store, String> {
    let ws = workspace_of(run_dir).ok_or_else(|| {
        format!(
            "{} is not in a workspace's disagg_logs/<config>/ folder",
            run_dir.display()
        )
    })?;
    Store::open_default(&ws).map_err(|e| e.to_string())
}

/// Tok/s per GPU: the output throughput over every worker GPU.
pub const OUTPUT_THROUGHPUT_PER_GPU: &str = "OUTPUT_THROUGHPUT_PER_GPU";

/// Every metric of a point, by name: [`MetricType::all`], and tok/s per GPU.
pub fn point_metrics(p: &PointReport, gpus: u32) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = MetricType::all()
        .into_iter()
        .map(|m| (m.name(), m.value(&p.metrics)))
        .collect();
    if gpus > 0 {
        out.push((
            OUTPUT_THROUGHPUT_PER_GPU.into(),
            p.metrics.output_throughput / gpus as f64,
        ));
    }
    out
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The GPU model, when `nvidia-smi` answers within a few seconds.
fn gpu_model() -> Option<String> {
    let mut child = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if std::time::Instant::now() > until => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut out = String::new();
    use std::io::Read;
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    out.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// The version the engine reported, when a worker published one (`engine_version` in its
/// rendezvous file).
fn engine_version(plan: &Plan) -> Option<String> {
    plan.workers().find_map(|w| {
        let bytes = std::fs::read(plan.rendezvous_file(w.role)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v.get("engine_version")?.as_str().map(str::to_string)
    })
}

/// GPUs per role group, from the plan.
pub(crate) fn groups(plan: &Plan) -> (Group, Group) {
    let mut ctx = Group::default();
    let mut generation = Group::default();
    for w in plan.workers() {
        let g = if w.role.is_ctx() {
            &mut ctx
        } else {
            &mut generation
        };
        g.servers += 1;
        g.gpus_per_server = g.gpus_per_server.max(w.gpus.len() as u32);
    }
    (ctx, generation)
}

/// `ctx2×1gpu gen1×2gpu`: what a point of a Pareto plot is labelled with.
pub fn topology(ctx: Group, generation: Group) -> String {
    format!(
        "ctx{}×{}gpu gen{}×{}gpu",
        ctx.servers, ctx.gpus_per_server, generation.servers, generation.gpus_per_server
    )
}

/// The engine named in the run folder's resolved case.
fn engine_of(run_dir: &Path) -> String {
    disagg_core::load_case(&run_dir.join("case.yaml"))
        .map(|c| c.case.engine.as_str().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// What a run is filed under in the store, and its history found by: its measured case's hash
/// ([`crate::run::measure_hash`]); a run folder from before it has only its whole case's.
fn history_key(run_dir: &Path) -> String {
    read_trimmed(&run_dir.join(crate::run::MEASURE_HASH_FILE))
        .or_else(|| read_trimmed(&run_dir.join(crate::run::CASE_HASH_FILE)))
        .unwrap_or_default()
}

/// `perf.baseline: history`: the check against the workspace's store.
pub fn history_check(plan: &Plan, gate: &HistoryGate, points: &[PointReport]) -> HistoryReport {
    let hash = history_key(&plan.run_dir);
    if hash.is_empty() {
        return HistoryReport::skipped(
            &hash,
            gate,
            0,
            format!(
                "the run folder has no {} to find the history by",
                crate::run::MEASURE_HASH_FILE
            ),
        );
    }
    // Made (or found) before launch: a SQLite file missing now was removed during the run, and
    // opening it would make a new, empty one, whose "too little history" skipped the gate.
    if let Some(ws) = workspace_of(&plan.run_dir) {
        if !disagg_store::default_exists(&ws) {
            return HistoryReport::not_done(
                &hash,
                gate,
                0,
                format!(
                    "the results store {} was there when the run was launched and is gone now \
                     (removed during the run); the history is not there to gate on (this run is \
                     recorded in a new store made in its place, without the earlier runs)",
                    disagg_store::default_location_shown(&ws)
                ),
            );
        }
    }
    match open_store(&plan.run_dir) {
        Ok(mut store) => history_gate::check(
            &mut store,
            gate,
            &hash,
            gpu_model().as_deref(),
            &plan.run_dir.display().to_string(),
            points,
        ),
        // Checked before launch; a store lost since is said as such, never "no history".
        Err(e) => HistoryReport::not_done(
            &hash,
            gate,
            0,
            format!("the results store cannot be opened: {e}"),
        ),
    }
}

/// The history check of a run whose store gave no answer (`why`): not done, and said so.
pub(crate) fn history_not_done(plan: &Plan, gate: &HistoryGate, why: String) -> HistoryReport {
    HistoryReport::not_done(&history_key(&plan.run_dir), gate, 0, why)
}

/// The perf verdicts as store rows.
fn checks(perf: &PerfOutcome) -> (String, Vec<CheckRecord>) {
    match perf {
        PerfOutcome::Skipped => (
            "skipped (SKIP_PERF_CHECK or --skip-perf-check)".into(),
            Vec::new(),
        ),
        PerfOutcome::NoBaseline => ("no baseline".into(), Vec::new()),
        PerfOutcome::NotRun => ("not run".into(), Vec::new()),
        PerfOutcome::Checked(r) => (
            if r.regressed() { "regressed" } else { "passed" }.into(),
            r.rows
                .iter()
                .map(|c| CheckRecord {
                    // The point's label as its results name it (`con2`, `rate2.5`), whatever
                    // layout the baseline's perf_case_name has.
                    point: c.point.clone(),
                    metric: c.metric_type.clone(),
                    baseline: Some(c.baseline),
                    band: Some(c.threshold.abs()),
                    measured: c.measured,
                    verdict: history_gate::verdict_word(c.verdict).to_lowercase(),
                    source: "csv".into(),
                })
                .collect(),
        ),
        PerfOutcome::History(h) => match &h.skipped {
            Some(why) if h.too_few_runs => (
                format!("{}: {why}", disagg_store::PERF_TOO_FEW_RUNS),
                Vec::new(),
            ),
            Some(why) if h.not_done => (format!("not done: {why}"), Vec::new()),
            Some(why) => (format!("skipped: {why}"), Vec::new()),
            None => (
                if h.regressed() {
                    "regressed".into()
                } else if h.too_noisy() > 0 {
                    format!(
                        "{}: {} metric(s) not checked)",
                        disagg_store::PERF_TOO_NOISY,
                        h.too_noisy()
                    )
                } else {
                    disagg_store::PERF_PASSED.into()
                },
                h.rows
                    .iter()
                    .map(|r| CheckRecord {
                        point: r.point.clone(),
                        metric: r.metric.clone(),
                        baseline: r.baseline,
                        band: r.band,
                        measured: r.measured,
                        verdict: match r.verdict {
                            Some(v) => history_gate::verdict_word(v).to_lowercase(),
                            None if r.too_noisy => "too noisy to gate".into(),
                            None => "skipped".into(),
                        },
                        source: "history".into(),
                    })
                    .collect(),
            ),
        },
    }
}

/// Records a finished run into the workspace's store (or `DISAGG_STORE`).
/// The verdict a run is stored with, as its exit code gives it: a run whose roles passed but
/// whose perf check could not be done (1), or that a signal stopped in the check (130/143),
/// did not pass.
fn verdict_of(result: &RunResult, code: i32) -> &'static str {
    use disagg_core::exit;
    match result {
        RunResult::Interrupted => "interrupted",
        RunResult::Failed(_) => "failed",
        RunResult::Passed if code == exit::PERF_REGRESSION => "regressed",
        RunResult::Passed if exit::is_interruption(code) => "interrupted",
        RunResult::Passed if code != exit::PASS => "failed",
        RunResult::Passed => "passed",
    }
}

/// How the run was launched: a Slurm submission leaves the job's id in the run folder.
fn launcher_of(run_dir: &Path) -> Launcher {
    use crate::slurm::{script::SCRIPT_FILE, submit::JOB_ID_FILE};
    match std::fs::read_to_string(run_dir.join(JOB_ID_FILE)) {
        Ok(id) => Launcher::Slurm(Some(id.trim().to_string()).filter(|i| !i.is_empty())),
        // The batch script is moved in before the id is written.
        Err(_) if run_dir.join(SCRIPT_FILE).exists() => Launcher::Slurm(None),
        Err(_) => Launcher::Local,
    }
}

pub fn record_run(
    plan: &Plan,
    outcome: &Outcome,
    points: &[PointReport],
    perf: &PerfOutcome,
    code: i32,
) -> Result<(), String> {
    let run_dir = &plan.run_dir;
    let (ctx, generation) = groups(plan);
    let gpus = ctx.gpus() + generation.gpus();
    let verdict = verdict_of(&outcome.result, code);
    let (perf_verdict, checks) = checks(perf);
    let record = RunRecord {
        run_id: plan.run_id.clone(),
        config_name: plan.config_name.to_string(),
        case_hash: history_key(run_dir),
        run_dir: run_dir.display().to_string(),
        sweep: read_trimmed(&run_dir.join(crate::run::SWEEP_NAME_FILE)),
        recorded_at: SystemTime::now(),
        verdict: verdict.into(),
        exit_code: code,
        engine: engine_of(run_dir),
        versions: Versions {
            disagg: env!("CARGO_PKG_VERSION").into(),
            engine: engine_version(plan),
            gpu_model: gpu_model(),
        },
        ctx,
        generation,
        topology: topology(ctx, generation),
        perf_verdict,
        launcher: launcher_of(run_dir),
        points: points
            .iter()
            .map(|p| PointRecord {
                label: p.point.label(),
                concurrency: p.point.concurrency,
                request_rate: p.point.request_rate.map(|r| r.0),
                valid: p.validity.is_valid(),
                metrics: point_metrics(p, gpus),
                json: serde_json::to_string(p).unwrap_or_default(),
            })
            .collect(),
        checks,
    };
    let mut store = open_store(run_dir)?;
    store.record(&record).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_stored_with_the_verdict_its_exit_code_gives() {
        assert_eq!(verdict_of(&RunResult::Passed, 0), "passed");
        assert_eq!(verdict_of(&RunResult::Passed, 3), "regressed");
        assert_eq!(
            verdict_of(&RunResult::Passed, 1),
            "failed",
            "perf check not done"
        );
        assert_eq!(
            verdict_of(&RunResult::Passed, 130),
            "interrupted",
            "stopped in the check"
        );
        assert_eq!(verdict_of(&RunResult::Interrupted, 143), "interrupted");
    }

    #[test]
    fn a_csv_check_is_stored_under_its_point_label_with_the_verdict_word() {
        use crate::perf::{Comparison, PerfReport, Verdict};
        let row = |name: &str, point: &str, verdict| Comparison {
            perf_case_name: name.into(),
            point: point.into(),
            metric_type: "SEQ_THROUGHPUT".into(),
            baseline: 10.0,
            measured: Some(8.0),
            threshold: -0.1,
            absolute_threshold: 0.0,
            threshold_defaulted: false,
            gates: true,
            replaced_earlier: false,
            verdict,
        };
        let report = PerfReport {
            baseline: PathBuf::from("b.csv"),
            rows: vec![
                // TensorRT-LLM's disagg harness names, ours, and a config name with dashes.
                row("disagg_perf_qbtrt_con:2", "con2", Verdict::WorseNotGated),
                row(
                    "disagg::test_perf_metric_seq_throughput[my-cfg-rate2.5]",
                    "rate2.5",
                    Verdict::Regressed,
                ),
                row("my-cfg-con8", "con8", Verdict::NotMeasured),
            ],
            unchecked_points: Vec::new(),
        };
        let (verdict, rows) = checks(&PerfOutcome::Checked(report));
        assert_eq!(verdict, "regressed");
        let got: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.point.as_str(), r.verdict.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("con2", "worse (not gated)"),
                ("rate2.5", "regressed"),
                ("con8", "not measured")
            ]
        );
    }

    #[test]
    fn only_a_run_folder_in_a_workspace_has_a_store() {
        assert_eq!(
            workspace_of(Path::new("/ws/disagg_logs/cfg/20261205T000000Z")),
            Some(PathBuf::from("/ws"))
        );
        assert_eq!(workspace_of(Path::new("/tmp/some-run")), None);
        assert_eq!(workspace_of(Path::new("/a/b/c/d")), None);
    }
}
