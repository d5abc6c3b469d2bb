use std::path::PathBuf;

/// Check case files without running anything; exits 2 if any is bad.
///
/// Each good case prints `ok:`, with a note under it for each server that spans nodes without
/// filling its last one (the GPUs it leaves idle there).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    cases: Vec<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    disagg_harness::run::validate(&a.cases)
}
