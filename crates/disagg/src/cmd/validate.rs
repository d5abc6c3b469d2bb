use std::path::PathBuf;

/// Check case files without running anything; exits 2 if any is bad.
///
/// Each good case prints `ok:`, with a note under it for each server that spans nodes without
/// filling its last one (the GPUs it leaves idle there), for a case that runs only with
/// `--launcher slurm` (real engines on several nodes, which `run` refuses on one machine), and
/// for each worker group that would
/// serve the benchmark's largest request cut short where the benchmark accepts shorter answers
/// (`ignore_eos: false`): TensorRT-LLM's max_tokens cut to the room left under max_seq_len,
/// SGLang's allow_auto_truncate. A request that a worker's stated limits would refuse
/// (max_model_len, context_length, max_seq_len, TensorRT-LLM's max_num_tokens), or cut short
/// where the benchmark fails short answers, is a case error; docs/engines.md lists what each
/// engine does.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Workspace whose results store a case with `perf.baseline: history` gates on (checked as
    /// `run` checks it: DISAGG_STORE, else the workspace's SQLite file) [default: $WORKSPACE,
    /// else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    let workspace = disagg_harness::rundir::resolve_workspace(a.workspace.as_deref());
    disagg_harness::run::validate(&a.cases, &workspace)
}
