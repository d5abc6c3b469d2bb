use std::path::PathBuf;

use disagg_core::exit;

/// List a config's runs and the files of one run; pack a run into a tarball.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config name (the folder under WORKSPACE/disagg_logs/).
    config: String,
    /// Workspace folder [default: $WORKSPACE, else ./workspace].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// The run id [default: the newest run].
    #[arg(long)]
    run: Option<String>,
    /// Pack the run into this .tar.gz.
    #[arg(long, value_name = "FILE.tar.gz")]
    pack: Option<PathBuf>,
}

pub fn main(a: Args) -> i32 {
    let ws = disagg_harness::rundir::resolve_workspace(a.workspace.as_deref());
    match disagg_harness::logs::describe(&ws, &a.config, a.run.as_deref()) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    }
    if let Some(dest) = a.pack {
        let run = match disagg_harness::logs::find_run(&ws, &a.config, a.run.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::USAGE;
            }
        };
        if let Err(e) = disagg_harness::logs::pack(&run, &dest) {
            eprintln!(
                "error: cannot pack {} into {}: {e}",
                run.display(),
                dest.display()
            );
            return exit::TEST_FAILED;
        }
        println!("packed {} into {}", run.display(), dest.display());
    }
    exit::PASS
}
