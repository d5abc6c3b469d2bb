use std::path::PathBuf;

/// Print two runs' metrics side by side: every metric of every point (matched by concurrency or
/// rate), A, B, the difference and the change in percent, marked better or worse. Two sweep
/// folders are compared point by point (their runs matched by config name).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first run folder (or its results.json), or sweep folder.
    run_a: PathBuf,
    /// The second run folder (or its results.json), or sweep folder.
    run_b: PathBuf,
}

pub fn main(a: Args) -> i32 {
    super::print_or_usage(disagg_harness::study::compare(&a.run_a, &a.run_b))
}
