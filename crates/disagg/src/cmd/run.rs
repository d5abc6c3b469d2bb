use std::path::PathBuf;

/// Run cases end to end: on this machine, or as Slurm jobs with `--launcher slurm`.
///
/// Each case runs in WORKSPACE/disagg_logs/<CONFIG_NAME>/<RUN_ID>/ with one log per role,
/// results.json, results.xml (JUnit), perf_script_test_results.csv, perf_check.txt and
/// summary.md; <CONFIG_NAME>/latest points at the newest run. Every case is checked before
/// anything is launched. Under Slurm the folder also holds job.sbatch and slurm-<jobid>.log.
///
/// A sweep file (a case with a `sweep:` section) runs every point: one after another here, one
/// Slurm job per point with --launcher slurm. Its folder WORKSPACE/disagg_sweeps/<SWEEP>/<ID>/
/// links every point's run folder and holds sweep.json and summary.md.
///
/// Ports a worker's role picks for its engine come from below the kernel's ephemeral range and
/// are locked in /tmp/disagg-ports ($DISAGG_PORT_LOCKS) until the role ends, so parallel runs
/// on one machine never pick the same one.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case or sweep files (YAML).
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Skip every case (every sweep point) whose resolved case, by content hash, has as its
    /// latest run in the workspace a passed one, judged as this run would be (not with the perf
    /// check skipped, nor against a baseline since edited); one whose latest run failed,
    /// regressed or was interrupted runs again.
    #[arg(long)]
    resume: bool,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Skip the perf check (also SKIP_PERF_CHECK=true); the report says "skipped", and the run
    /// never becomes a reference of `perf.baseline: history`.
    #[arg(long)]
    skip_perf_check: bool,
    /// Where the roles run: processes here, or srun steps of one Slurm job per case.
    #[arg(long, value_enum, default_value_t = super::Launcher::Local)]
    launcher: super::Launcher,
    /// With --launcher slurm: submit every job, print each job id and run folder, then return
    /// (a job Slurm refuses at once, e.g. BadConstraints, is cancelled first). A sweep's folder
    /// says its points are `submitted`; the last of its jobs to end writes its summary.md and
    /// report.html.
    #[arg(long)]
    no_wait: bool,
    /// With --launcher slurm: at most this many of our jobs running at once (default 4).
    /// Waiting, the next job is submitted when one ends; with --no-wait all are submitted, job k
    /// starting only once job k-N has ended (--dependency=afterany). The local launcher runs
    /// one case at a time and refuses it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_jobs: Option<u32>,
    /// Also write one JUnit file of every case (every sweep point) this invocation ran, once
    /// all have ended: each run's results.xml suite, in order, under one <testsuites> with
    /// their sums; a case that has none (not run, refused) is a failed suite saying why. For a
    /// CI's junit step: one path, this invocation only, where a glob over disagg_logs also reads
    /// earlier runs and reads each run again through the `latest` and sweep links. Not with
    /// --no-wait (the results come later).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

/// How many jobs run at once under Slurm when --max-jobs does not say.
const MAX_JOBS: u32 = 4;

pub fn main(a: Args) -> i32 {
    let opts = disagg_harness::run::RunOptions {
        workspace: a.workspace,
        skip_perf_check: a.skip_perf_check,
        exe: super::current_exe(),
        resume: a.resume,
        junit: a.junit,
    };
    if opts.junit.as_deref().is_some_and(std::path::Path::is_dir) {
        eprintln!(
            "error: --junit {}: a folder; name the file to write (e.g. results/disagg.xml)",
            opts.junit
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new(""))
                .display()
        );
        return disagg_core::exit::USAGE;
    }
    if opts.junit.is_some() && a.no_wait {
        eprintln!(
            "error: --junit needs the results, which --no-wait does not wait for; each run's \
             results.xml is in its run folder"
        );
        return disagg_core::exit::USAGE;
    }
    match a.launcher {
        super::Launcher::Local => {
            if a.no_wait {
                eprintln!("error: --no-wait needs --launcher slurm");
                return disagg_core::exit::USAGE;
            }
            if a.max_jobs.is_some() {
                eprintln!(
                    "error: --max-jobs needs --launcher slurm (the local launcher runs one case \
                     at a time)"
                );
                return disagg_core::exit::USAGE;
            }
            disagg_harness::run::run_cases(&a.cases, &opts)
        }
        super::Launcher::Slurm => {
            let slurm = disagg_harness::slurm::submit::SlurmOptions {
                no_wait: a.no_wait,
                max_jobs: a.max_jobs.unwrap_or(MAX_JOBS) as usize,
            };
            disagg_harness::slurm::submit::run_cases(&a.cases, &opts, &slurm)
        }
    }
}
