//! The batch script: a header from the case, the optional setup step, then the supervisor.
//! Every value that comes from the case or the machine passes through [`sh_quote`].

use std::fmt::Write as _;
use std::path::Path;

use disagg_core::Plan;
use disagg_core::slurm::header_value_problem;

use super::quote::{sh_join, sh_quote};
use super::steps::{container_args, container_mounts, container_name};

/// The script's file name in the run folder.
pub const SCRIPT_FILE: &str = "job.sbatch";

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot put {what} {value:?} into a #SBATCH line: it {why}")]
    Header {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(
        "{0}; hint: move it to a path without `,` and `:`, or mount a folder holding it yourself in `slurm.container.mounts`"
    )]
    Mount(#[from] super::steps::MountError),
}

/// The container name in the script, which knows the job id only as `$SLURM_JOB_ID`: a plain
/// word, so it survives quoting, replaced by the shell expansion afterwards.
const JOB_ID_WORD: &str = "JOBID_IN_SCRIPT";
/// Stands for the run folder in a line of the script, which says `"$run_dir"` there.
const RUN_DIR_WORD: &str = "RUNDIR_IN_SCRIPT";

/// Renders the batch script of `plan`; `exe` is the `disagg` binary the job runs.
///
/// The run folder is `<config dir>/<job id>` (the run id is the job id), so the script finds it
/// through `$SLURM_JOB_ID` and `%j`: it is the same whatever the job id turns out to be, and
/// `disagg plan --launcher slurm` prints exactly what is submitted.
pub fn render(plan: &Plan, exe: &Path, skip_perf_check: bool) -> Result<String, ScriptError> {
    let s = &plan.slurm;
    let config_dir = plan
        .run_dir
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    let mut header: Vec<(&'static str, String)> = vec![
        (
            "--job-name",
            s.job_name
                .clone()
                .unwrap_or_else(|| plan.config_name.to_string()),
        ),
        ("--nodes", plan.nodes.to_string()),
        // One task per GPU: the shape multi-rank worker steps take.
        ("--ntasks-per-node", plan.gpus_per_node.to_string()),
    ];
    // GPUs are Slurm's to give: the job asks for them, and each worker step for its own.
    if s.gpu_gres && !s.asks_for_gpus() {
        header.push(("--gres", format!("gpu:{}", plan.gpus_per_node)));
    }
    if let Some(t) = &s.time {
        header.push(("--time", t.clone()));
    }
    if let Some(p) = &s.partition {
        header.push(("--partition", p.clone()));
    }
    if let Some(a) = &s.account {
        header.push(("--account", a.clone()));
    }
    // `%` starts a Slurm filename pattern; `%%` is a literal one.
    header.push((
        "--output",
        format!("{}/%j/slurm-%j.log", config_dir.replace('%', "%%")),
    ));
    // Must start with ALL, or the srun steps inside lose PATH.
    header.push((
        "--export",
        format!("ALL,DISAGG_CONFIG_NAME={}", plan.config_name),
    ));
    // Every path a container step needs must be expressible as a mount.
    container_mounts(plan)?;
    let mut out = String::new();
    let _ = writeln!(out, "#!/bin/bash");
    let _ = writeln!(
        out,
        "# {}: written by disagg {}; the run folder is named by the job id.",
        plan.config_name,
        env!("CARGO_PKG_VERSION")
    );
    for (flag, value) in &header {
        check(flag, value)?;
        let _ = writeln!(out, "#SBATCH {flag}={}", sh_quote(value));
    }
    // Slurm requeues a job after a node loss (JobRequeue=1 is its default): the second try
    // would run in the same run folder, named by the job id, over the first's reports.
    let _ = writeln!(out, "#SBATCH --no-requeue");
    for a in &s.extra_args {
        check("slurm.extra_args", a)?;
        let _ = writeln!(out, "#SBATCH {}", sh_quote(a));
    }
    let _ = writeln!(out, "set -u");
    // When the job started, for the supervisor's reports of a job that ended in its setup (it
    // starts only after the setup).
    let _ = writeln!(out, "export {JOB_STARTED_ENV}=\"$(date +%s.%N)\"");
    let _ = writeln!(out, "run_dir={}/\"$SLURM_JOB_ID\"", sh_quote(&config_dir));
    let _ = writeln!(out, "cd \"$run_dir\" || exit 1");
    // Should a cluster requeue it anyway, the first try's reports stand and nothing runs again.
    let _ = writeln!(
        out,
        "if [ \"${{SLURM_RESTART_COUNT:-0}}\" -gt 0 ]; then echo \"disagg: job $SLURM_JOB_ID was requeued by Slurm (restart $SLURM_RESTART_COUNT); its first try's reports stand and it does not run again in the same folder\" >&2; exit 1; fi"
    );
    let _ = writeln!(out, "setup_status=0");
    // Slurm's TERM (its time limit, a scancel) during the setup must not end this script before
    // the supervisor runs: it writes the reports (within KillWait). A trap, unlike an ignored
    // signal, is not inherited by srun, which still stops the setup.
    let _ = writeln!(out, "signalled=0");
    let _ = writeln!(out, "trap 'signalled=1' TERM INT");
    // In a container, the first step on each node makes the job's named container there (the
    // setup, or a step of its own when there is none); every later step reuses it.
    let first = match (&plan.setup, &plan.slurm.container) {
        (Some(setup), _) => Some((
            "SETUP",
            "# The setup, once per node as one step, into install.log.",
            setup.clone(),
        )),
        // It runs the binary every step runs there: one that does not suit the image's C
        // library fails here, in seconds, saying so, before any worker starts.
        (None, Some(_)) => Some((
            "CONTAINER",
            "# The job's container, made once per node from the image; every step reuses it.",
            vec![exe.display().to_string(), "--version".to_string()],
        )),
        (None, None) => None,
    };
    if let Some((name, comment, command)) = first {
        let _ = writeln!(out, "{comment}");
        let mut argv: Vec<String> = vec![
            "srun".into(),
            format!("--job-name={name}"),
            "--export=ALL".into(),
            format!("--nodes={}", plan.nodes),
            format!("--ntasks={}", plan.nodes),
            "--ntasks-per-node=1".into(),
            "--kill-on-bad-exit=1".into(),
            // Bounded by the run's own deadline, in Slurm's whole minutes: a setup that hangs
            // (a stuck download) must not hold the job until Slurm's time limit, which may be
            // none (`MaxTime=INFINITE`) when `slurm.time` is not set.
            format!(
                "--time={}",
                plan.deadlines.job.as_secs().div_ceil(60).max(1)
            ),
        ];
        // Several nodes' lines interleave in install.log: each starts with its task's number,
        // which is its node's in the job (one task per node).
        if plan.nodes > 1 {
            argv.push("--label".into());
        }
        argv.extend(container_args(
            plan,
            &container_name(JOB_ID_WORD),
            RUN_DIR_WORD,
        ));
        argv.push("--".into());
        argv.extend(command);
        let line = sh_join(&argv)
            .replace(
                &format!("--container-name={}", container_name(JOB_ID_WORD)),
                &format!("--container-name={}", container_name("\"$SLURM_JOB_ID\"")),
            )
            .replace(
                &format!("--container-workdir={RUN_DIR_WORD}"),
                "--container-workdir=\"$run_dir\"",
            );
        // In the background, waited for: a trapped TERM ends `wait` at once, where a foreground
        // srun would first wait out the step's own end (up to KillWait + 2 s, all of the
        // supervisor's time to write the reports before Slurm's KILL).
        let _ = writeln!(
            out,
            "{line} >>\"$run_dir/install.log\" 2>&1 </dev/null &\nwait \"$!\" || setup_status=$?",
        );
    }
    let _ = writeln!(
        out,
        "# The supervisor starts every role as an srun step and watches them all."
    );
    let mut sup: Vec<String> = vec![
        exe.display().to_string(),
        "supervise".into(),
        "--executor".into(),
        "slurm".into(),
    ];
    if skip_perf_check {
        sup.push("--skip-perf-check".into());
    }
    // Slurm ends the setup's step before it signals this script: `wait` can return, and the
    // supervisor start, just before the script's TERM lands, on a process with no handler yet
    // (it died of it without a word, and left no report). Ignored here, the signal is ignored
    // across `exec` until the supervisor's own handlers replace that, first thing.
    let _ = writeln!(out, "trap '' TERM INT");
    let _ = writeln!(
        out,
        "exec {} --run-dir \"$run_dir\" --setup-status \"$setup_status\" --signalled \"$signalled\"",
        sh_join(&sup)
    );
    Ok(out)
}

/// The batch script's start, in seconds since the epoch, as `date +%s.%N` gives it.
pub(crate) const JOB_STARTED_ENV: &str = "DISAGG_JOB_STARTED";

/// How long the job has run, from [`JOB_STARTED_ENV`]; `None` outside a job that set it.
pub(crate) fn job_elapsed_s() -> Option<f64> {
    let started: f64 = std::env::var(JOB_STARTED_ENV).ok()?.trim().parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    (started.is_finite() && now >= started).then_some(now - started)
}

fn check(what: &'static str, value: &str) -> Result<(), ScriptError> {
    match header_value_problem(value) {
        Some(why) => Err(ScriptError::Header {
            what,
            value: value.to_string(),
            why,
        }),
        None => Ok(()),
    }
}
