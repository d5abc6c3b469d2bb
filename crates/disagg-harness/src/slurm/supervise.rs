//! `disagg supervise`: what a job's batch script hands control to. It supervises the plan in a
//! run folder with the chosen executor, writes the reports, and, under Slurm, cancels its own
//! job when the run failed.

use std::path::Path;

use disagg_core::{Plan, exit};

use super::job;
use super::submit::time_limit;
use crate::outcome::{Failure, Outcome, RoleOutcome, RunResult};
use crate::run::{self, INTERRUPTED};

/// Which executor `disagg supervise` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// `disagg supervise`: supervises the plan in `run_dir` (inside the allocation, for Slurm),
/// writes the reports, and on failure cancels its own job so no step outlives the verdict.
pub fn supervise_run_dir(
    run_dir: &Path,
    kind: ExecutorKind,
    skip_perf_check: bool,
    setup_status: i32,
) -> i32 {
    let mut plan = match crate::role::load_plan(run_dir) {
        Ok(p) => p,
        Err(e) => {
            say_err!("disagg supervise: {e}");
            return exit::USAGE;
        }
    };
    let skip_perf = skip_perf_check || run::skip_perf_from_env();
    run::install_signal_handlers();
    crate::procs::become_subreaper();
    let job_id = std::env::var("SLURM_JOB_ID").ok();
    let fail_now = |plan: &Plan, role: &str, reason: String| Outcome {
        result: RunResult::Failed(Failure {
            role: Some(role.into()),
            reason,
            timeout: false,
        }),
        roles: plan
            .roles
            .iter()
            .map(|r| RoleOutcome {
                role: r.role,
                log: r.log.clone(),
                failure: None,
            })
            .collect(),
        duration_s: 0.0,
    };
    let outcome = match kind {
        ExecutorKind::Local => {
            crate::supervisor::supervise(&plan, &mut crate::executor::LocalExecutor, &INTERRUPTED)
        }
        ExecutorKind::Slurm if setup_status != 0 => fail_now(
            &plan,
            "SETUP",
            match (&plan.setup, &plan.slurm.container) {
                (None, Some(c)) => format!(
                    "the job's container could not be made from {} on a node: srun exited with status {setup_status} (see install.log)",
                    c.image
                ),
                _ => format!("setup exited with status {setup_status} on a node (see install.log)"),
            },
        ),
        ExecutorKind::Slurm => {
            // The batch script already ran the setup on every node.
            plan.setup = None;
            match super::SlurmExecutor::from_env(&plan) {
                Ok(mut exec) => crate::supervisor::supervise(&plan, &mut exec, &INTERRUPTED),
                Err(e) => fail_now(&plan, "job", e),
            }
        }
    };
    // At its time limit Slurm signals the steps and this script at once: whatever the supervisor
    // saw first (a role killed, or its own interruption), the time limit is the cause.
    let ended_by_slurm = |r: &RunResult| !matches!(r, RunResult::Passed);
    let outcome = match (&outcome.result, &job_id) {
        (r, Some(id)) if kind == ExecutorKind::Slurm && ended_by_slurm(r) && job::timed_out(id) => {
            Outcome {
                result: RunResult::Failed(Failure {
                    role: None,
                    reason: format!(
                        "Slurm ended job {id} at its time limit ({})",
                        time_limit(&plan)
                    ),
                    timeout: true,
                }),
                ..outcome
            }
        }
        _ => outcome,
    };
    // Checked when the job was submitted; a baseline that broke while the job queued or ran
    // would otherwise turn the gate off without a word.
    let (outcome, baseline) = match run::read_plan_baseline(&plan, skip_perf) {
        Ok(b) => (outcome, b),
        Err(e) => {
            say_err!("disagg supervise: {e}");
            let outcome = match outcome.result {
                RunResult::Passed => Outcome {
                    result: RunResult::Failed(Failure {
                        role: None,
                        reason: format!(
                            "the perf gate cannot run: {e} (it was read when the job was submitted); fix the baseline or set SKIP_PERF_CHECK=true"
                        ),
                        timeout: false,
                    }),
                    ..outcome
                },
                _ => outcome,
            };
            (outcome, None)
        }
    };
    let code = run::finish(&plan, &outcome, baseline.as_ref(), skip_perf);
    // A sweep point submitted with --no-wait: nobody waits for the sweep, so its jobs keep
    // its folder up to date, and the last one to end writes its report.
    if let Some((dir, complete)) = crate::sweep::refresh(run_dir) {
        say!(
            "disagg: sweep folder {} {}",
            dir.display(),
            if complete {
                "is complete: summary.md and report.html written"
            } else {
                "updated"
            }
        );
    }
    if kind == ExecutorKind::Slurm && code == exit::TEST_FAILED {
        if let Some(id) = &job_id {
            say_err!("disagg supervise: the run failed; cancelling job {id}");
            let _ = job::cancel(id);
        }
    }
    code
}
