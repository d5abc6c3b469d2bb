use std::path::PathBuf;

use disagg_core::{RoleName, exit};

/// Run one role of a planned run (started by `disagg run`; also usable under any launcher).
///
/// The role comes from the argument or from DISAGG_SERVING_TYPE, as in the seed harness.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CTX_<i>, GEN_<i>, DISAGG_SERVER (DISAGG_SERVER_<i> with router.replicas > 1) or BENCHMARK.
    #[arg(env = "DISAGG_SERVING_TYPE")]
    role: String,
    /// The run folder holding plan.json.
    #[arg(long)]
    run_dir: PathBuf,
}

pub fn main(a: Args) -> i32 {
    match a.role.parse::<RoleName>() {
        Ok(role) => disagg_harness::role::run_role(role, &a.run_dir),
        Err(e) => {
            eprintln!("error: {e}");
            exit::USAGE
        }
    }
}
