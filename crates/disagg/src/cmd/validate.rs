use std::path::PathBuf;

/// Check case files without running anything; exits 2 if any is bad.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    cases: Vec<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    disagg_harness::run::validate(&a.cases)
}
