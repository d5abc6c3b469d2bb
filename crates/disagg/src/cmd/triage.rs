use std::path::PathBuf;

use disagg_core::exit;

/// Find why a run failed: from the root cause recorded in rendezvous/status.json, or else in
/// outcome.json's verdict (a failed setup, a Slurm time limit, a cancelled job: failures before
/// any role could write a status), starting at that role's log; else the first failure in the
/// logs in run order (setup, workers, router, benchmark, Slurm; srun's and slurmstepd's errors
/// among the patterns), shown with its surrounding lines. A run with no exit_code file is
/// reported as unfinished. Exits 1 when a failure (or an unfinished run, or a run whose
/// exit_code says it failed) is found, 0 when none is.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run folder.
    run_dir: PathBuf,
}

pub fn main(a: Args) -> i32 {
    match disagg_harness::triage::triage(&a.run_dir) {
        Ok((found, text)) => {
            print!("{text}");
            if found { exit::TEST_FAILED } else { exit::PASS }
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
