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

/// Whether Slurm ended the job at its time limit. Told by the clock when the case set the limit:
/// the job has run that long (its batch script starts a moment after Slurm's clock does), so
/// no question goes to a controller that may be too busy to answer within the few seconds
/// (KillWait) Slurm leaves between its TERM and its KILL, in which the reports must be
/// written. Without `slurm.time`, Slurm is asked.
fn at_time_limit(plan: &Plan, job_id: &str) -> Option<TimeLimit> {
    let limit = plan
        .slurm
        .time
        .as_deref()
        .and_then(|t| disagg_core::slurm::parse_time(t).ok());
    match (limit, super::script::job_elapsed_s()) {
        (Some(limit), Some(ran)) if ran + TIME_LIMIT_SLACK_S >= limit.as_secs_f64() => {
            Some(TimeLimit::Case)
        }
        // Not the case's limit by the clock: an administrator's shorter one (`scontrol update
        // TimeLimit=`) is Slurm's to say.
        (Some(_), Some(_)) => {
            job::timed_out(job_id).then(|| TimeLimit::Changed(job::time_limit(job_id)))
        }
        _ => job::timed_out(job_id).then_some(TimeLimit::Case),
    }
}

/// Which time limit Slurm ended the job at.
enum TimeLimit {
    /// The case's `slurm.time` (or the partition's, without one).
    Case,
    /// Another, set while the job ran (Slurm's `%l` for it, when it said).
    Changed(Option<String>),
}

/// How much earlier than Slurm's clock the batch script's may have started.
const TIME_LIMIT_SLACK_S: f64 = 10.0;

/// `disagg supervise`: supervises the plan in `run_dir` (inside the allocation, for Slurm),
/// writes the reports, and on failure cancels its own job so no step outlives the verdict.
pub fn supervise_run_dir(
    run_dir: &Path,
    kind: ExecutorKind,
    skip_perf_check: bool,
    setup_status: i32,
    signalled: bool,
) -> i32 {
    // First: the batch script ignored TERM and INT for this process's start (see script.rs).
    run::install_signal_handlers();
    let mut plan = match crate::role::load_plan(run_dir) {
        Ok(p) => p,
        Err(e) => {
            say_err!("disagg supervise: {e}");
            return exit::USAGE;
        }
    };
    let skip_perf = skip_perf_check || run::skip_perf_from_env();
    // Nothing in the job watches this process: the `disagg run` waiting for the job does, by
    // this beat, and cancels a job whose supervisor stopped or froze.
    let _beat =
        (kind == ExecutorKind::Slurm).then(|| crate::beat::start(&plan, crate::beat::SUPERVISOR));
    crate::procs::become_subreaper();
    let job_id = std::env::var("SLURM_JOB_ID").ok();
    // Slurm ended the setup's step (a scancel, the time limit) before its TERM reached the
    // script: the script saw only the step's end, but the setup was stopped, not failed.
    let signalled = signalled
        || (setup_status != 0
            && kind == ExecutorKind::Slurm
            && crate::logtext::tail_text(&plan.run_dir.join("install.log"), 1 << 20)
                .is_some_and(|log| step_cancelled(&log)));
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
        // Ended in the setup (or the container's step), before the supervisor: the job's time.
        duration_s: super::script::job_elapsed_s().unwrap_or(0.0),
    };
    let outcome = match kind {
        // Signalled in the setup: nothing was launched, and nothing failed of its own.
        ExecutorKind::Slurm if signalled => Outcome {
            result: RunResult::Interrupted,
            ..fail_now(&plan, "SETUP", String::new())
        },
        ExecutorKind::Local => {
            crate::supervisor::supervise(&plan, &mut crate::executor::LocalExecutor, &INTERRUPTED)
        }
        ExecutorKind::Slurm if setup_status != 0 => {
            // Its end, where srun's lines are, read whatever bytes the setup wrote (an installer's
            // Latin-1, a multibyte character cut short): read as UTF-8 alone it was empty, and
            // the failing node went unnamed.
            let install = crate::logtext::tail_text(&plan.run_dir.join("install.log"), 1 << 20)
                .unwrap_or_default();
            if setup_timed_out(&install) {
                let mut out = fail_now(
                    &plan,
                    "SETUP",
                    format!(
                        "the setup did not finish within timeouts.job ({}): Slurm ended its \
                         step at that time limit (see install.log)",
                        humantime::format_duration(plan.deadlines.job)
                    ),
                );
                if let RunResult::Failed(f) = &mut out.result {
                    f.timeout = true;
                }
                out
            } else {
                let (role, reason) = first_step_failure(
                    plan.setup.is_some(),
                    plan.slurm.container.as_ref().map(|c| c.image.as_str()),
                    setup_status,
                    &install,
                );
                fail_now(&plan, role, reason)
            }
        }
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
    let limit = match (&outcome.result, &job_id) {
        (r, Some(id)) if kind == ExecutorKind::Slurm && ended_by_slurm(r) => {
            at_time_limit(&plan, id).map(|l| (id.clone(), l))
        }
        _ => None,
    };
    let outcome = match limit {
        Some((id, limit)) => Outcome {
            result: RunResult::Failed(Failure {
                role: None,
                reason: match limit {
                    TimeLimit::Case => format!(
                        "Slurm ended job {id} at its time limit ({})",
                        time_limit(&plan)
                    ),
                    TimeLimit::Changed(now) => format!(
                        "Slurm ended job {id} at its time limit{}, set while the job ran (the \
                         case asked {}: `scontrol update TimeLimit=` by an administrator, or a \
                         reservation's end)",
                        now.map(|l| format!(" ({l})")).unwrap_or_default(),
                        time_limit(&plan)
                    ),
                },
                timeout: true,
            }),
            ..outcome
        },
        None => outcome,
    };
    // Slurm ends a job a node of which failed with a TERM to every step and this process: the
    // run reads as interrupted, or as failed at whichever role it saw end first. The lost node
    // is the cause, said as the waiting `disagg run` says it (which a --no-wait job has none of).
    let outcome = match (&outcome.result, &job_id) {
        (r, Some(id)) if kind == ExecutorKind::Slurm && ended_by_slurm(r) => {
            match super::submit::node_lost(id, &plan) {
                Some(mut lost) => {
                    if let RunResult::Failed(f) = &lost.result {
                        say_err!("disagg supervise: {}", f.reason);
                    }
                    for r in &mut lost.roles {
                        if r.failure.is_none() {
                            if let Some(own) = outcome.roles.iter().find(|o| o.role == r.role) {
                                r.failure = own.failure.clone();
                            }
                        }
                    }
                    lost.duration_s = outcome.duration_s;
                    lost
                }
                None => outcome,
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
    // `disagg run` took this process for stopped (its beat did), cancelled the job and writes
    // the run's reports itself: one account per run folder, not two racing.
    if let Ok(why) = std::fs::read_to_string(run_dir.join(super::submit::GIVEN_UP_FILE)) {
        say_err!(
            "disagg supervise: `disagg run` gave this supervisor up ({}) and writes the run's              reports; not writing mine",
            why.trim()
        );
        return exit::TEST_FAILED;
    }
    // The TERM came before this process could take it: its exit code is the signal's.
    let code = match (&outcome.result, signalled) {
        (RunResult::Interrupted, true) => {
            // Slurm's TERM (a cancel, its time limit), which the script took for this process.
            run::interrupted_from_outside(15);
            run::finish_as(
                &plan,
                &outcome,
                baseline.as_ref(),
                skip_perf,
                Some(exit::TERMINATED),
            )
        }
        (RunResult::Failed(f), _) if f.reason.starts_with(NO_PYXIS) => run::finish_as(
            &plan,
            &outcome,
            baseline.as_ref(),
            skip_perf,
            Some(exit::USAGE),
        ),
        _ => run::finish(&plan, &outcome, baseline.as_ref(), skip_perf),
    };
    // The roles are gone: the job's named container goes too, unless Slurm is ending the job
    // (its TERM came: no new step starts then).
    if let (ExecutorKind::Slurm, Some(id), false) = (
        kind,
        &job_id,
        matches!(outcome.result, RunResult::Interrupted),
    ) {
        remove_named_container(&plan, id);
    }
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
            // Said where the waiting `disagg run` reads it even when the run folder could not
            // take the reports (a full disk): a job cancelled with none read as someone
            // else's scancel, an interruption (143), not the failed test it was.
            let reason = match &outcome.result {
                RunResult::Failed(f) => f.reason.clone(),
                _ => String::new(),
            };
            let _ = job::set_comment(id, &format!("{SELF_CANCELLED}{reason}"));
            say_err!("disagg supervise: the run failed; cancelling job {id}");
            let _ = job::cancel(id);
        }
    }
    code
}

/// How long the removal of the job's named container may take on its nodes (a TensorRT-LLM
/// image unpacked is tens of GB).
const CONTAINER_REMOVAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// pyxis keeps a named container after its job unless its `container_scope` is `job` (then its
/// epilog removes `pyxis_<job>_<name>`); with the default, `global`, each node keeps
/// `pyxis_<name>`, an unpacked copy of the image, for good. Removed here on every node of the
/// job, once the roles are gone, by a step outside the container, into install.log; bounded, and
/// a failure is said, never fatal.
fn remove_named_container(plan: &disagg_core::Plan, job: &str) {
    if plan.slurm.container.is_none() {
        return;
    }
    let name = format!("pyxis_{}", crate::slurm::steps::container_name(job));
    let script = format!(
        "if enroot list 2>/dev/null | grep -qx {name}; then enroot remove -f {name} && echo \
         \"disagg: removed the job's container {name} on $(hostname)\"; fi"
    );
    let log = plan.run_dir.join("install.log");
    let Ok(out) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    else {
        return;
    };
    let Ok(err) = out.try_clone() else {
        return;
    };
    let spawned = std::process::Command::new("srun")
        .args([
            "--job-name=CLEANUP",
            "--export=ALL",
            "--overlap",
            &format!("--nodes={}", plan.nodes),
            &format!("--ntasks={}", plan.nodes),
            "--ntasks-per-node=1",
            "--time=3",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            say_err!("disagg supervise: cannot remove the job's container {name}: srun: {e}");
            return;
        }
    };
    let until = std::time::Instant::now() + CONTAINER_REMOVAL_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return,
            Ok(Some(st)) => {
                say_err!(
                    "disagg supervise: removing the job's container {name} on its nodes ended \
                     {st} (see install.log); it may be left on them (`enroot list`)"
                );
                return;
            }
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                say_err!(
                    "disagg supervise: removing the job's container {name} took over {}s; given \
                     up (it may be left on the nodes: `enroot list`)",
                    CONTAINER_REMOVAL_LIMIT.as_secs()
                );
                return;
            }
        }
    }
}

/// How the Comment a supervisor leaves on the job it cancels after its run failed begins; the
/// run's reason follows.
pub(crate) const SELF_CANCELLED: &str = "disagg: the run failed: ";

/// How the reason starts when srun has no container options (no pyxis): the case asks what
/// the cluster cannot do, as when sbatch refuses it, so the run's exit code is 2.
const NO_PYXIS: &str = "srun does not know pyxis's --container-* options";

/// The role and reason of a failed first step of the batch script: the setup (`SETUP`), or,
/// with no setup, the step that only made the job's container (`CONTAINER`), each naming the
/// node srun said, from `install.log`.
fn first_step_failure(
    has_setup: bool,
    image: Option<&str>,
    status: i32,
    install_log: &str,
) -> (&'static str, String) {
    // srun without pyxis refuses its options before any node is involved: nothing in a
    // container can ever run on this cluster, whatever the step.
    if let Some(line) = install_log
        .lines()
        .find(|l| l.contains("unrecognized option '--container"))
    {
        return (
            "CONTAINER",
            format!(
                "{NO_PYXIS} (`{}`): pyxis (with enroot) is not installed where the job's steps \
                 start, so no step of slurm.container can run; run the case without \
                 slurm.container, or on a cluster with pyxis",
                line.trim()
            ),
        );
    }
    if let Some(why) = image.and_then(|i| container_start_failure(i, install_log)) {
        return ("CONTAINER", why);
    }
    match (has_setup, image) {
        (false, Some(image)) => (
            "CONTAINER",
            format!(
                "the job's container could not be made from {image}: {}",
                setup_failure(install_log)
                    .map(|s| s.replacen("setup", "its step", 1))
                    .unwrap_or_else(|| format!(
                        "srun exited with status {status} on a node (see install.log)"
                    ))
            ),
        ),
        _ => (
            "SETUP",
            setup_failure(install_log).unwrap_or_else(|| {
                format!("setup exited with status {status} on a node (see install.log)")
            }),
        ),
    }
}

/// Why the job's container could not start, when pyxis or enroot said it in `install.log` (the
/// first such line, quoted), naming the case's key to fix: a mount source missing on a node, a
/// workdir not in the image, the disagg binary not suiting the image's C library, or the image
/// itself (its import failed). `None` when nothing there says.
fn container_start_failure(image: &str, install_log: &str) -> Option<String> {
    let line = |pred: &dyn Fn(&str) -> bool| {
        install_log
            .lines()
            .map(str::trim)
            .find(|l| pred(l))
            .map(str::to_string)
    };
    let node = setup_failure(install_log)
        .and_then(|s| {
            s.split(" on ")
                .nth(1)
                .map(|n| n.split([' ', ',']).next().unwrap_or(n).to_string())
        })
        .map(|n| format!(" on {n}"))
        .unwrap_or_default();
    if let Some(l) = line(&|l| l.contains("enroot-mount: failed to mount")) {
        return Some(format!(
            "the job's container could not start{node}: a mount of slurm.container.mounts could \
             not be made (`{l}`); its source must exist on every node of the job (pyxis, unlike \
             docker, does not create it): create it there, or fix the mount (see install.log)"
        ));
    }
    if let Some(l) = line(&|l| l.contains("pyxis: couldn't chdir")) {
        return Some(format!(
            "the job's container could not start{node}: its workdir is neither in the image {image} \
             nor in a mount (`{l}`): fix slurm.container.workdir (see install.log)"
        ));
    }
    if let Some(l) = line(&|l| l.contains("GLIBC_") && l.contains("not found")) {
        return Some(format!(
            "the disagg binary cannot run in the image {image}{node} (`{l}`): every step runs it \
             inside the container, so it must suit the image's C library; use a disagg built on \
             an older distribution than the image's, or a static (musl) build (see install.log)"
        ));
    }
    let l = line(&|l| {
        (l.contains("pyxis:") || l.contains("[ERROR]") || l.contains("enroot"))
            && (l.to_ascii_lowercase().contains("error") || l.contains("failed"))
    })?;
    Some(format!(
        "the job's container could not be made from {image}{node} (`{l}`): check \
         slurm.container.image (enroot's form is `REGISTRY#IMAGE:TAG`, e.g. \
         `nvcr.io#nvidia/pytorch:24.05-py3`), that it exists, and the cluster's registry \
         credentials (see install.log)"
    ))
}

/// Whether slurmstepd said, in `install.log`, that it cancelled the step (`*** STEP 186.0 ON
/// vm CANCELLED AT ... ***`), other than for a lost node (which is reported as that), and no
/// task of it failed of its own: a task that exits with a status makes srun cancel the step on
/// the other nodes (`--kill-on-bad-exit`), whose slurmstepd then says CANCELLED too (when its
/// line reached the log first, a failed setup read as a run interrupted from outside, 143).
fn step_cancelled(install_log: &str) -> bool {
    let failed_itself = install_log
        .lines()
        .any(|l| l.trim().starts_with("srun: error: ") && l.contains(": Exited with exit code "));
    !failed_itself
        && install_log.lines().any(|l| {
            l.contains("slurmstepd")
                && l.contains("*** STEP ")
                && l.contains(" CANCELLED AT ")
                && !l.contains("NODE FAIL")
                && !l.contains(TIME_LIMIT)
        })
}

/// How slurmstepd ends its line for a step ended at its own time limit (the setup's, which is
/// `timeouts.job`): `*** STEP 186.0 ON vm CANCELLED AT ... DUE TO TIME LIMIT ***`.
const TIME_LIMIT: &str = "DUE TO TIME LIMIT";

/// Whether the setup's step was ended at its time limit, `timeouts.job`.
fn setup_timed_out(install_log: &str) -> bool {
    install_log
        .lines()
        .any(|l| l.contains("*** STEP ") && l.contains(TIME_LIMIT))
}

/// What failed the setup step, from srun's lines in `install.log`: the first node whose task
/// exited with a status of its own (`srun: error: dgn2: task 1: Exited with exit code 7`), not
/// the ones srun then ended for it (`--kill-on-bad-exit`: `Terminated`, status 143), which is
/// all srun's own exit status says. `None` when srun said neither.
fn setup_failure(install_log: &str) -> Option<String> {
    let exits: Vec<(&str, &str)> = install_log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("srun: error: "))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ": ");
            let (node, tasks, what) = (parts.next()?, parts.next()?, parts.next()?);
            (tasks.starts_with("task") && !node.starts_with("Node failure"))
                .then_some((node, what.trim()))
        })
        .collect();
    let own = |(node, what): &(&str, &str)| {
        what.strip_prefix("Exited with exit code ")
            .map(|code| format!("setup exited with status {code} on {node}"))
    };
    let first = exits.iter().find_map(own).or_else(|| {
        exits
            .first()
            .map(|(node, what)| format!("setup on {node}: {what}"))
    })?;
    let others = exits.iter().filter_map(own).count().saturating_sub(1);
    Some(match others {
        0 => format!("{first} (see install.log)"),
        n => format!("{first}, and on {n} more node(s) (see install.log)"),
    })
}

#[cfg(test)]
mod tests {
    use super::{first_step_failure, setup_failure, setup_timed_out, step_cancelled};

    #[test]
    fn a_setup_step_slurm_cancelled_is_told_from_one_that_failed() {
        // At a time limit: the step's own (`timeouts.job`), or the job's, which the supervisor
        // tells apart by the job's state (`at_time_limit`): not a cancel from outside.
        let limit = "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n\
                     slurmstepd-vm: error: *** STEP 186.0 ON vm CANCELLED AT 2026-12-07T06:06:51 DUE TO TIME LIMIT ***\n\
                     srun: error: vm: task 0: Terminated\n";
        assert!(!step_cancelled(limit));
        assert!(setup_timed_out(limit));
        assert!(!setup_timed_out(
            "slurmstepd-dgn2: error: *** STEP 7.0 ON dgn2 CANCELLED AT 2026-12-07T06:06:51 ***\n"
        ));
        assert!(step_cancelled(
            "slurmstepd-dgn2: error: *** STEP 7.0 ON dgn2 CANCELLED AT 2026-12-07T06:06:51 ***\n"
        ));
        assert!(!step_cancelled(
            "slurmstepd-dgn2: error: *** STEP 7.0 ON dgn2 CANCELLED AT 2026-12-07T06:06:51 DUE TO NODE FAILURE, SEE SLURMCTLD LOG ***\n"
        ));
        assert!(!step_cancelled(
            "pip: error: *** STEP 7.0 CANCELLED AT nothing\nsrun: error: dgn1: task 0: Exited with exit code 1\n"
        ));
        // One node's task failed, and srun cancelled the step on the other (kill-on-bad-exit):
        // a failed setup, whichever line came first.
        assert!(!step_cancelled(
            "0: installing on node 0\nslurmstepd-dgn1: error: *** STEP 1219.0 ON dgn1 CANCELLED AT 2026-12-07T22:28:23 ***\n\
             srun: error: dgn2: task 1: Exited with exit code 7\nsrun: error: dgn1: task 0: Terminated\n"
        ));
    }

    #[test]
    fn the_setup_failure_names_the_node_and_status_not_srun_ending_the_rest() {
        let log = "setup on dgn1\npip install failed on purpose\n\
                   srun: error: dgn2: task 1: Exited with exit code 7\n\
                   srun: error: dgn3: task 2: Terminated\n\
                   srun: Force Terminated StepId=274.0\n";
        assert_eq!(
            setup_failure(log).as_deref(),
            Some("setup exited with status 7 on dgn2 (see install.log)")
        );
        let two = "srun: error: dgn[1-2]: tasks 0-1: Exited with exit code 3\n\
                   srun: error: dgn3: task 2: Exited with exit code 3\n";
        assert_eq!(
            setup_failure(two).as_deref(),
            Some("setup exited with status 3 on dgn[1-2], and on 1 more node(s) (see install.log)")
        );
        assert_eq!(
            setup_failure("srun: error: dgn1: task 0: Killed\n").as_deref(),
            Some("setup on dgn1: Killed (see install.log)")
        );
        assert_eq!(setup_failure("no srun lines\n"), None);
        assert_eq!(setup_failure("srun: error: Node failure on dgn2\n"), None);
    }

    #[test]
    fn a_container_that_cannot_be_made_names_its_image_and_node() {
        let log = "pyxis: importing docker image: nvcr.io/x/y:tag\n\
                   srun: error: dgn2: task 1: Exited with exit code 1\n";
        let (role, why) = first_step_failure(false, Some("nvcr.io/x/y:tag"), 1, log);
        assert_eq!(role, "CONTAINER");
        assert_eq!(
            why,
            "the job's container could not be made from nvcr.io/x/y:tag: its step exited with \
             status 1 on dgn2 (see install.log)"
        );
        // With a setup, the first step is the setup, in the container or not.
        let (role, why) = first_step_failure(true, Some("i"), 7, log);
        assert_eq!(role, "SETUP");
        assert!(
            why.starts_with("setup exited with status 1 on dgn2"),
            "{why}"
        );
        let (_, why) = first_step_failure(false, Some("i"), 3, "");
        assert!(
            why.ends_with("srun exited with status 3 on a node (see install.log)"),
            "{why}"
        );
        // pyxis's and enroot's own words name the key to fix, setup or not.
        let mount = "pyxis: container start failed with error code: 1\n\
                     enroot-mount: failed to mount: /data/x at /run/pyxis/1/data: No such file or directory\n\
                     srun: error: dgn2: task 1: Exited with exit code 1\n";
        for has_setup in [false, true] {
            let (role, why) = first_step_failure(has_setup, Some("img"), 1, mount);
            assert_eq!(role, "CONTAINER");
            assert!(
                why.contains("slurm.container.mounts")
                    && why.contains("enroot-mount: failed to mount: /data/x")
                    && why.contains(" on dgn2"),
                "{why}"
            );
        }
        let (_, why) = first_step_failure(
            false,
            Some("img"),
            1,
            "pyxis: couldn't chdir to /work: No such file or directory\n",
        );
        assert!(why.contains("slurm.container.workdir"), "{why}");
        let (_, why) = first_step_failure(
            false,
            Some("img"),
            1,
            "/opt/disagg: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.34' not found (required by /opt/disagg)\n",
        );
        assert!(
            why.contains("cannot run in the image img") && why.contains("static"),
            "{why}"
        );
        let (_, why) = first_step_failure(
            false,
            Some("nvcr.io/x/y:1"),
            1,
            "slurmstepd: error: pyxis:     [ERROR] URL https://nvcr.io/v2/x/y/manifests/1 returned error code: 404 Not Found\n",
        );
        assert!(
            why.contains("could not be made from nvcr.io/x/y:1")
                && why.contains("404 Not Found")
                && why.contains("REGISTRY#IMAGE"),
            "{why}"
        );
        // srun without pyxis: said as that, with srun's words, setup or not.
        let log = "srun: unrecognized option '--container-image=nvcr.io/x/y:tag'\n\
                   Try \"srun --help\" for more information\n";
        for has_setup in [false, true] {
            let (role, why) = first_step_failure(has_setup, Some("nvcr.io/x/y:tag"), 255, log);
            assert_eq!(role, "CONTAINER");
            assert!(
                why.starts_with(super::NO_PYXIS)
                    && why.contains(
                        "`srun: unrecognized option '--container-image=nvcr.io/x/y:tag'`"
                    )
                    && why.contains("pyxis (with enroot) is not installed"),
                "{why}"
            );
        }
    }
}
