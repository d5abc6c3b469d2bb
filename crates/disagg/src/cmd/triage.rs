use std::path::PathBuf;

use disagg_core::exit;

/// Find why a run failed: from the root cause recorded in rendezvous/status.json (that role's log),
/// else the first failure in the logs in run order (setup, workers, router, benchmark, Slurm),
/// shown with its surrounding lines. A run with no exit_code file is reported as unfinished.
/// Exits 1 when a failure (or an unfinished run) is found, 0 when none is.
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
