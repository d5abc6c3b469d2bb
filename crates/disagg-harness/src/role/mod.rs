//! Role runtimes: what `disagg role <ROLE> --run-dir DIR` does. Each role reads its entry of
//! `plan.json`, does its part, and leaves as soon as `rendezvous/status.json` appears.

mod benchmark;
mod server;
mod shared;
mod worker;

use std::path::Path;

use disagg_core::{Plan, RoleName, exit};

pub(crate) use shared::http_client;
pub use shared::wait_for_status;

/// Runs one role to its end; returns the process exit code.
pub fn run_role(role: RoleName, run_dir: &Path) -> i32 {
    // Under Slurm the router and benchmark steps are asked to drop MPI variables, which srun
    // adds after the supervisor hands over the environment, so only the role itself can.
    if let Ok(prefixes) = std::env::var(crate::slurm::steps::CLEAR_ENV_VAR) {
        // SAFETY: no thread has been started yet; the async runtime is built below.
        let n = unsafe { crate::slurm::steps::clear_env_prefixes(&prefixes) };
        let left = std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                prefixes
                    .split(',')
                    .any(|p| !p.is_empty() && k.starts_with(p))
            })
            .count();
        eprintln!(
            "disagg role {role}: cleared {n} variables starting with {prefixes}; {left} left"
        );
    }
    let plan = match load_plan(run_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("disagg role {role}: {e}");
            return exit::USAGE;
        }
    };
    if plan.role(role).is_none() {
        eprintln!(
            "disagg role {role}: the plan in {} has no role {role}",
            run_dir.display()
        );
        return exit::USAGE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("disagg role {role}: cannot start the async runtime: {e}");
            return exit::TEST_FAILED;
        }
    };
    eprintln!(
        "disagg role {role}: run {} in {}",
        plan.run_id,
        plan.run_dir.display()
    );
    let result = rt.block_on(async {
        match role {
            RoleName::Ctx(_) | RoleName::Gen(_) => worker::run(&plan, role).await,
            RoleName::DisaggServer => server::run(&plan).await,
            RoleName::Benchmark => benchmark::run(&plan).await,
        }
    });
    // Role tasks may hold connections; do not let them delay the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => exit::PASS,
        Err(reason) => {
            eprintln!("disagg role {role}: FAILED: {reason}");
            shared::write_exit_note(&plan, role, &reason);
            exit::TEST_FAILED
        }
    }
}

/// Reads `plan.json` from a run folder.
pub fn load_plan(run_dir: &Path) -> Result<Plan, String> {
    let path = run_dir.join("plan.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a plan: {e}", path.display()))
}
