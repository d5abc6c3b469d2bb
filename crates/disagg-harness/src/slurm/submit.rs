//! `disagg run --launcher slurm` and `disagg supervise`: one job per case, each in its own run
//! folder, submitted up to `max_jobs` at a time and followed until it ends; then the reports.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use disagg_core::{Plan, exit};

use super::job::{self, JobState};
use super::script::{self, SCRIPT_FILE};
use crate::outcome::{Failure, Outcome, RoleOutcome, RunResult};
use crate::run::{self, INTERRUPTED, RunOptions};

/// How often a submitted job's state is asked for.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// After Ctrl-C, how long to wait for cancelled jobs to end before giving up on them.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// The job id's file in the run folder.
pub const JOB_ID_FILE: &str = "slurm_job_id";

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Print job id and run folder, and return once submitted.
    pub no_wait: bool,
    /// Jobs in the queue at once (with `no_wait`, every job is submitted).
    pub max_jobs: usize,
}

struct Submitted {
    plan: Plan,
    job: String,
    /// Index of the case among those given.
    case: usize,
}

/// A checked case with its batch script, waiting to be submitted.
struct Pending<'a> {
    ready: &'a run::Ready,
    script: PathBuf,
    case: usize,
}

/// Runs every case as a Slurm job; the exit code of the worst outcome.
pub fn run_cases(paths: &[PathBuf], opts: &RunOptions, slurm: &SlurmOptions) -> i32 {
    let skip_perf = opts.skip_perf_check || run::skip_perf_from_env();
    let Some(ready) = run::check_all(paths, skip_perf) else {
        return exit::USAGE;
    };
    if !job::available() {
        eprintln!(
            "error: no Slurm answers here (`sinfo` failed), so nothing was submitted\nhint: run on a Slurm login node; on a Debian machine `bash scripts/dev-slurm.sh up` starts a single-node Slurm"
        );
        return exit::USAGE;
    }
    let workspace = crate::rundir::resolve_workspace(opts.workspace.as_deref());
    // Absolute, because the batch script runs elsewhere.
    let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
    let mut book = match crate::sweep::Book::open(&ready, &workspace, opts.resume) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::TEST_FAILED;
        }
    };
    let mut codes = book.reused_codes();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    for (i, r) in ready.iter().enumerate() {
        if book.is_reused(i) {
            continue;
        }
        match write_script(r, &workspace, &opts.exe, skip_perf, i) {
            Ok(script) => queue.push_back(Pending {
                ready: r,
                script,
                case: i,
            }),
            Err(e) => {
                eprintln!("error: {}: {e}", r.case.config_name);
                codes.push(exit::USAGE);
            }
        }
    }
    run::install_signal_handlers();
    let max = if slurm.no_wait {
        usize::MAX
    } else {
        slurm.max_jobs.max(1)
    };
    let mut running: Vec<Submitted> = Vec::new();
    loop {
        while running.len() < max && !INTERRUPTED.load(Ordering::SeqCst) {
            let Some(p) = queue.pop_front() else { break };
            match submit(&p, &workspace, &opts.exe) {
                Ok(s) => {
                    println!(
                        "disagg: {}: job {}, run folder {}",
                        s.plan.config_name,
                        s.job,
                        s.plan.run_dir.display()
                    );
                    book.started(s.case, &s.plan.run_dir);
                    running.push(s);
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", p.ready.case.config_name);
                    if let Some(hint) = submit_hint(&e, &p.ready.case.case.slurm) {
                        eprintln!("hint: {hint}");
                    }
                    codes.push(exit::TEST_FAILED);
                }
            }
        }
        if slurm.no_wait {
            return run::combine(&codes);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            for p in &queue {
                let _ = std::fs::remove_file(&p.script);
            }
            let code = interrupt(running, codes, skip_perf, &mut book);
            book.close();
            return code;
        }
        let mut still = Vec::new();
        for s in running {
            match job::state(&s.job) {
                Some(st) if !st.is_terminal() => still.push(s),
                st => {
                    let code = collect(&s, st, skip_perf);
                    book.finished(s.case, code);
                    codes.push(code);
                }
            }
        }
        running = still;
        if running.is_empty() && queue.is_empty() {
            book.close();
            return run::combine(&codes);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// What to do about an sbatch refusal we can explain.
fn submit_hint(error: &str, s: &disagg_core::slurm::SlurmSpec) -> Option<&'static str> {
    let gres = error.contains("Invalid generic resource") || error.contains("gres");
    if gres && s.gpu_gres && !s.asks_for_gpus() {
        Some(
            "the job asks for `--gres=gpu:<hardware.gpus_per_node>`; on a cluster without GPU gres set `slurm.gpu_gres: false` (see docs/slurm.md)",
        )
    } else {
        None
    }
}

/// Renders the case's batch script into its config folder, to be submitted from there. It
/// does not depend on the job id, so it is written before the job exists.
fn write_script(
    r: &run::Ready,
    workspace: &Path,
    exe: &Path,
    skip_perf: bool,
    index: usize,
) -> Result<PathBuf, String> {
    let config_dir = crate::rundir::config_dir(workspace, &r.case.config_name);
    std::fs::create_dir_all(&config_dir)
        .map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
    // Only the parts of the plan that do not depend on the run id enter the script.
    let provisional = disagg_core::plan::build(&r.case, "JOBID", &config_dir.join("JOBID"), exe);
    let text = script::render(&provisional, exe, skip_perf).map_err(|e| e.to_string())?;
    let path = config_dir.join(format!(
        ".{}-{}-{index}.sbatch",
        crate::rundir::timestamp_run_id(),
        std::process::id()
    ));
    crate::atomic::write(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Submits held, so the run folder (named by the job id) and its plan exist before the job can
/// start, then releases it. Any failure cancels the held job.
fn submit(p: &Pending, workspace: &Path, exe: &Path) -> Result<Submitted, String> {
    let config_dir = crate::rundir::config_dir(workspace, &p.ready.case.config_name);
    let id = job::submit_held(&p.script, &config_dir).map_err(|e| {
        let _ = std::fs::remove_file(&p.script);
        e.to_string()
    })?;
    let abandon = |why: String| {
        let _ = job::cancel(&id);
        let _ = std::fs::remove_file(&p.script);
        Err(format!("job {id} cancelled before it started: {why}"))
    };
    let plan = match run::prepare_as(p.ready, workspace, exe, &id) {
        Ok(plan) if plan.run_id == id => plan,
        Ok(plan) => {
            return abandon(format!(
                "a run folder named {id} already exists in {} (the new one would be {})",
                config_dir.display(),
                plan.run_dir.display()
            ));
        }
        Err(_) => return abandon("its run folder could not be prepared".into()),
    };
    if let Err(e) = std::fs::rename(&p.script, plan.run_dir.join(SCRIPT_FILE)) {
        return abandon(format!(
            "cannot move the batch script into the run folder: {e}"
        ));
    }
    let _ = crate::atomic::write(&plan.run_dir.join(JOB_ID_FILE), id.as_bytes());
    if let Err(e) = job::release(&id) {
        return abandon(e.to_string());
    }
    // Launched: the job is Slurm's now, so it is the config's latest run.
    if let Err(e) = crate::rundir::point_latest_at(&plan.run_dir) {
        eprintln!(
            "warning: cannot point latest at {}: {e}",
            plan.run_dir.display()
        );
    }
    Ok(Submitted {
        plan,
        job: id,
        case: p.case,
    })
}

/// Ctrl-C: cancel every job we submitted, wait (bounded) for them to end, report them.
fn interrupt(
    running: Vec<Submitted>,
    mut codes: Vec<i32>,
    skip_perf: bool,
    book: &mut crate::sweep::Book,
) -> i32 {
    for s in &running {
        eprintln!("disagg: interrupted: cancelling job {}", s.job);
        if let Err(e) = job::cancel(&s.job) {
            eprintln!("warning: {e}");
        }
    }
    let until = Instant::now() + CANCEL_WAIT;
    for s in &running {
        let mut st = job::state(&s.job);
        while st.as_ref().is_some_and(|x| !x.is_terminal()) && Instant::now() < until {
            std::thread::sleep(FOLLOW_EVERY);
            st = job::state(&s.job);
        }
        let code = collect(s, st, skip_perf);
        book.finished(s.case, code);
    }
    codes.push(run::interrupted_code());
    run::combine(&codes)
}

/// A job has ended: use the reports its supervisor wrote, unless Slurm ended it first (time
/// limit, cancel, node failure), in which case write them here from the run folder.
fn collect(s: &Submitted, state: Option<JobState>, skip_perf: bool) -> i32 {
    let plan = &s.plan;
    let state_name = state
        .as_ref()
        .map(|x| x.0.clone())
        .unwrap_or_else(|| "UNKNOWN (no longer known to Slurm)".into());
    let log = format!("slurm-{}.log", s.job);
    let written = std::fs::read_to_string(plan.run_dir.join(run::EXIT_CODE_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    let code = match (state.as_ref().is_some_and(JobState::is_timeout), written) {
        (false, Some(code)) => {
            print_summary(plan);
            code
        }
        (timeout, _) => {
            let limit = time_limit(plan);
            let reason = if timeout {
                format!(
                    "Slurm ended job {} at its time limit ({limit}) (see {log})",
                    s.job
                )
            } else {
                format!(
                    "Slurm job {} ended in state {state_name} before its supervisor wrote a report (see {log})",
                    s.job
                )
            };
            eprintln!("disagg: {}: {reason}", plan.config_name);
            let outcome = ended_by_slurm(plan, reason, timeout);
            run::finish(plan, &outcome, None, skip_perf)
        }
    };
    println!(
        "disagg: {}: job {} ended {state_name}; reports in {}",
        plan.config_name,
        s.job,
        plan.run_dir.display()
    );
    code
}

/// The outcome when Slurm, not the supervisor, ended the run: the supervisor's own (if it wrote
/// one) with the job's fate as the verdict.
fn ended_by_slurm(plan: &Plan, reason: String, timeout: bool) -> Outcome {
    let earlier: Option<Outcome> = std::fs::read(plan.run_dir.join("outcome.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let roles = earlier
        .as_ref()
        .map(|o| o.roles.clone())
        .unwrap_or_else(|| {
            plan.roles
                .iter()
                .map(|r| RoleOutcome {
                    role: r.role,
                    log: r.log.clone(),
                    failure: None,
                })
                .collect()
        });
    Outcome {
        result: RunResult::Failed(Failure {
            role: None,
            reason,
            timeout,
        }),
        roles,
        duration_s: earlier.map(|o| o.duration_s).unwrap_or(0.0),
    }
}

/// "--time=5, 5m", or the partition's default.
pub(crate) fn time_limit(plan: &Plan) -> String {
    match &plan.slurm.time {
        Some(t) => match disagg_core::slurm::parse_time(t) {
            Ok(d) => format!("--time={t}, {}", humantime::format_duration(d)),
            Err(_) => format!("--time={t}"),
        },
        None => "the partition's default".into(),
    }
}

fn print_summary(plan: &Plan) {
    if let Ok(text) = std::fs::read_to_string(plan.run_dir.join("summary.md")) {
        print!("{text}");
    }
}
