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
    /// With `slurm`: print the exact batch script `disagg run --launcher slurm` would submit,
    /// then the srun step of every role.
    #[arg(long, value_enum, default_value_t = super::Launcher::Local)]
    launcher: super::Launcher,
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
    let ws = std::path::absolute(&ws).unwrap_or(ws);
    // Under Slurm the run id is the job id, known only once submitted.
    let run_id = match a.launcher {
        super::Launcher::Local => disagg_harness::rundir::timestamp_run_id(),
        super::Launcher::Slurm => "JOBID".to_string(),
    };
    let run_dir = std::path::absolute(
        disagg_harness::rundir::config_dir(&ws, &case.config_name).join(&run_id),
    )
    .unwrap_or_default();
    let plan = disagg_core::plan::build(&case, &run_id, &run_dir, &super::current_exe());
    if a.launcher == super::Launcher::Slurm && !a.json {
        let skip = disagg_harness::run::skip_perf_from_env();
        return match disagg_harness::slurm::script::render(&plan, &super::current_exe(), skip) {
            Ok(script) => {
                print!("{script}");
                print!("{}", disagg_harness::slurm::steps::render_steps(&plan));
                exit::PASS
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit::USAGE
            }
        };
    }
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
