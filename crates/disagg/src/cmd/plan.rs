use std::path::PathBuf;

use disagg_core::exit;

/// Print what a case would run, without running anything: the config name, every role with its
/// GPUs, argv, env set and env unset, the deadlines and the run folder.
///
/// For a sweep file: every point with its values, its config name and its GPU count (every
/// point is checked first); `--point N` prints point N's plan.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The case or sweep file.
    case: PathBuf,
    /// With a sweep file: print the plan of this point (1-based) instead of the list.
    #[arg(long)]
    point: Option<usize>,
    /// Print the plan as JSON (the plan.json a run would write).
    #[arg(long)]
    json: bool,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// With `slurm`: print the exact batch script `disagg run --launcher slurm` would submit,
    /// then the srun step of every role, each with the engine command it runs.
    #[arg(long, value_enum, default_value_t = super::Launcher::Local)]
    launcher: super::Launcher,
}

pub fn main(a: Args) -> i32 {
    use disagg_core::sweep::CaseFile;
    let case = match (disagg_core::sweep::load_file(&a.case), a.point) {
        (Ok(CaseFile::Single(c)), None) => *c,
        (Ok(CaseFile::Single(_)), Some(_)) => {
            eprintln!(
                "error: {}: --point needs a sweep file (a case with a `sweep:` section)",
                a.case.display()
            );
            return exit::USAGE;
        }
        (Ok(CaseFile::Sweep(s)), None) => {
            print_sweep(&s, a.json);
            return exit::PASS;
        }
        (Ok(CaseFile::Sweep(s)), Some(n)) => {
            let count = s.points.len();
            match s.points.into_iter().nth(n.wrapping_sub(1)) {
                Some(p) => p.case,
                None => {
                    eprintln!(
                        "error: {}: there is no point {n}: the sweep has {count} (1 to {count})",
                        a.case.display()
                    );
                    return exit::USAGE;
                }
            }
        }
        (Err(errors), _) => {
            for e in errors {
                eprintln!("error: {e}");
            }
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
    if a.launcher == super::Launcher::Local {
        if let Some(why) = disagg_harness::run::local_refusal(&case.case, &case.path) {
            eprintln!("warning: `disagg run` with this launcher refuses this case: {why}");
        }
    }
    let plan = disagg_core::plan::build(&case, &run_id, &run_dir, &super::current_exe());
    let plan = match a.launcher {
        super::Launcher::Local => plan.on_one_machine(),
        super::Launcher::Slurm => plan,
    };
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

/// A sweep's points: index, GPUs, config name and values.
fn print_sweep(s: &disagg_core::sweep::Sweep, json: bool) {
    let gpus = |p: &disagg_core::sweep::SweepPoint| disagg_core::sweep::gpu_count(&p.case.case);
    if json {
        let points: Vec<serde_json::Value> = s
            .points
            .iter()
            .map(|p| {
                serde_json::json!({
                    "index": p.index,
                    "config_name": p.case.config_name.as_str(),
                    "gpus": gpus(p),
                    "values": p.values.iter().map(|(k, v)| (k.clone(), disagg_core::sweep::json_value(v))).collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect();
        let out = serde_json::json!({"sweep": s.name.as_str(), "points": points});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON serializes")
        );
        return;
    }
    println!(
        "sweep {}: {} points ({})",
        s.name,
        s.points.len(),
        s.path.display()
    );
    let width = s
        .points
        .iter()
        .map(|p| p.case.config_name.as_str().len())
        .max()
        .unwrap_or(0);
    println!(
        "{:>4}  {:>4}  {:<width$}  values",
        "#", "GPUs", "config name"
    );
    for p in &s.points {
        println!(
            "{:>4}  {:>4}  {:<width$}  {}",
            p.index,
            gpus(p),
            p.case.config_name.as_str(),
            p.label()
        );
    }
}
