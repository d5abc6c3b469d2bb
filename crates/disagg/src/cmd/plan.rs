use std::path::PathBuf;

use disagg_core::exit;

/// Print what a case would run, without running anything: the config name, every role with its
/// GPUs, argv, env set and env unset, the deadlines and the run folder.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The case file.
    case: PathBuf,
    /// Print the plan as JSON (the plan.json a run would write).
    #[arg(long)]
    json: bool,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    let case = match disagg_core::load_case(&a.case) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    let ws = disagg_harness::rundir::resolve_workspace(a.workspace.as_deref());
    let run_id = disagg_harness::rundir::timestamp_run_id();
    let run_dir = std::path::absolute(
        disagg_harness::rundir::config_dir(&ws, &case.config_name).join(&run_id),
    )
    .unwrap_or_default();
    let plan = disagg_core::plan::build(&case, &run_id, &run_dir, &super::current_exe());
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("a plan serializes")
        );
    } else {
        print!("{}", disagg_core::plan::render(&plan));
    }
    exit::PASS
}
