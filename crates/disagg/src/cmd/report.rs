use std::path::PathBuf;

use disagg_core::exit;

/// Write one self-contained HTML report (no network needed to open it) for a run folder, a
/// sweep folder, or a config's history in the results store: the Pareto frontier of tok/s/GPU
/// against tok/s/user, TTFT/TPOT/ITL against concurrency (p50 and p99), each point's latency
/// distributions, the gated metrics over time with their band and regressions, and the tables
/// behind every plot. `disagg run` writes one into every run and sweep folder. A `--no-wait` run
/// or sweep whose Slurm job ended without writing its reports (cancelled while it pended,
/// killed) gets them first, from what Slurm says of the job, and a sweep folder is brought up to
/// date.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder, a sweep folder, or a config name (its history).
    path: PathBuf,
    /// Where to write [default: PATH/report.html for a folder, ./<CONFIG>.report.html for a
    /// history].
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Workspace folder, for a history [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    let ws = disagg_harness::rundir::resolve_workspace(a.workspace.as_deref());
    // A --no-wait job Slurm ended with no reports from its supervisor: nobody else writes them.
    if a.path.join(disagg_harness::sweep::SWEEP_FILE).is_file() {
        if let Err(e) = disagg_harness::sweep::settle_submitted(&a.path) {
            eprintln!("warning: the sweep folder is not brought up to date: {e}");
        }
    } else if a.path.join("plan.json").is_file() {
        disagg_harness::slurm::submit::collect_ended(&a.path);
    }
    let report = match disagg_harness::study::load_any(&a.path, &ws) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let out = a.output.unwrap_or_else(|| {
        if a.path.is_dir() {
            a.path.join(disagg_harness::study::REPORT_FILE)
        } else {
            PathBuf::from(format!("{}.report.html", a.path.display()))
        }
    });
    match disagg_harness::study::write(&report, &out) {
        Ok(()) => {
            println!("disagg: report written to {}", out.display());
            exit::PASS
        }
        // Where to write it is the caller's to fix: a usage error, not a failed test.
        Err(e) => {
            eprintln!(
                "error: {e}\nhint: give --output a path in a folder that exists and is writable"
            );
            exit::USAGE
        }
    }
}
