use std::path::PathBuf;

use disagg_core::exit;

/// Print a config's runs over time from the results store: when, run id, verdict, exit code,
/// case hash, GPUs, topology, the metric of each point, whether the history gate takes the run
/// as a reference (`ref`: it passed with its perf check on; never a run with the check skipped)
/// and the perf check's verdict.
///
/// The store is DISAGG_STORE (a postgresql:// URL or a SQLite file) when set, else
/// WORKSPACE/disagg_results.sqlite.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config name (the run folder's parent).
    config: String,
    /// The metric shown per point: a metric_type of perf_script_test_results.csv (e.g.
    /// TOKEN_THROUGHPUT, MEDIAN_FIRST_TOKEN_TIME, or the older MEDIAN_TTFT), or
    /// OUTPUT_THROUGHPUT_PER_GPU.
    #[arg(long, default_value = "TOKEN_THROUGHPUT")]
    metric: String,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Accept run RUN_ID (its run id, as listed) as its case's new baseline, after an intended
    /// change: the history gate then compares with it and the runs after it, none before (a
    /// run that regressed is taken; one that failed is not). Without it, a slower engine meant
    /// as such fails every run until the old references leave the window.
    #[arg(long, value_name = "RUN_ID")]
    accept: Option<String>,
}

pub fn main(a: Args) -> i32 {
    let Some(metric) = disagg_harness::history::metric_name(&a.metric) else {
        eprintln!(
            "error: --metric {}: not a metric\nhint: use one of {}",
            a.metric,
            disagg_harness::history::metric_names().join(", ")
        );
        return exit::USAGE;
    };
    let ws = disagg_harness::rundir::resolve_workspace(a.workspace.as_deref());
    if let Some(run_id) = &a.accept {
        return super::print_or_usage(disagg_harness::history::accept_workspace(
            &ws, &a.config, run_id,
        ));
    }
    super::print_or_usage(disagg_harness::history::render_workspace(
        &ws, &a.config, &metric,
    ))
}
