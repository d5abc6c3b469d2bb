use std::path::PathBuf;

use disagg_harness::slurm::supervise::{ExecutorKind, supervise_run_dir};

/// Supervise the planned run in a run folder (what a Slurm job's batch script runs): start every
/// role, watch them and the deadlines, then write the reports.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run folder holding plan.json.
    #[arg(long)]
    run_dir: PathBuf,
    /// How roles are started: processes here, or srun steps of the current job.
    #[arg(long, value_enum, default_value_t = super::Launcher::Local)]
    executor: super::Launcher,
    /// Skip the perf check (also SKIP_PERF_CHECK=true).
    #[arg(long)]
    skip_perf_check: bool,
    /// The batch script's setup step status; non-zero fails the run as SETUP.
    #[arg(long, default_value_t = 0)]
    setup_status: i32,
    /// 1 when the batch script was signalled (Slurm's time limit, a cancel) before the
    /// supervisor started: the run stopped as interrupted, and the reports say so.
    #[arg(long, default_value_t = 0)]
    signalled: u8,
}

pub fn main(a: Args) -> i32 {
    let kind = match a.executor {
        super::Launcher::Local => ExecutorKind::Local,
        super::Launcher::Slurm => ExecutorKind::Slurm,
    };
    supervise_run_dir(
        &a.run_dir,
        kind,
        a.skip_perf_check,
        a.setup_status,
        a.signalled != 0,
    )
}
