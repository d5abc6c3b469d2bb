use std::path::PathBuf;

use disagg_core::exit;

/// Find the first failure in a run's logs (setup, workers, router, benchmark, Slurm) and show it
/// with its surrounding lines. Exits 1 when a failure is found, 0 when none is.
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
