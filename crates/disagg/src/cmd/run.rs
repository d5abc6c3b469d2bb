use std::path::PathBuf;

/// Run cases end to end on this machine: workers, router, benchmark, perf check, reports.
///
/// Each case runs in WORKSPACE/disagg_logs/<CONFIG_NAME>/<RUN_ID>/ with one log per role,
/// results.json, results.xml (JUnit), perf_script_test_results.csv, perf_check.txt and
/// summary.md; <CONFIG_NAME>/latest points at the newest run. Every case is checked before
/// anything is launched.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Case files (YAML).
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Skip the perf check (also SKIP_PERF_CHECK=true); the report says "skipped".
    #[arg(long)]
    skip_perf_check: bool,
}

pub fn main(a: Args) -> i32 {
    let opts = disagg_harness::run::RunOptions {
        workspace: a.workspace,
        skip_perf_check: a.skip_perf_check,
        exe: super::current_exe(),
    };
    disagg_harness::run::run_cases(&a.cases, &opts)
}
