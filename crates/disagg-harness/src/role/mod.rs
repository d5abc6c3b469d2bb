//! Role runtimes: what `disagg role <ROLE> --run-dir DIR` does. Each role reads its entry of
//! `plan.json`, does its part, and leaves as soon as `rendezvous/status.json` appears.

/// `eprintln!` for role messages: on a multi-rank step every line starts with the rank and the
/// host it runs on (`[rank 1 @ node-b] `), so one log of all ranks tells them apart.
macro_rules! say {
    ($($arg:tt)*) => {
        say_err!("{}{}", $crate::role::shared::line_prefix(), format_args!($($arg)*))
    };
}

mod benchmark;
mod gpus;
pub mod ports;
mod server;
pub(crate) mod shared;
mod worker;

use std::path::Path;

use disagg_core::{Plan, RoleName, exit};

pub use benchmark::bench_config;
pub(crate) use shared::http_client;
pub use shared::wait_for_status;

/// Runs one role to its end; returns the process exit code.
pub fn run_role(role: RoleName, run_dir: &Path) -> i32 {
    shared::init_line_prefix();
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
        say!("disagg role {role}: cleared {n} variables starting with {prefixes}; {left} left");
    }
    // SAFETY: no thread has been started yet; the async runtime is built below.
    unsafe { gpus::take_planned_gpus() };
    say!(
        "disagg role {role} on {}: {}",
        shared::hostname(),
        gpus::report()
    );
    say!("disagg role {role}: {}", gpus::cpus_report());
    let plan = match load_plan(run_dir) {
        Ok(p) => p,
        Err(e) => {
            say!("disagg role {role}: {e}");
            return exit::USAGE;
        }
    };
    let Some(own) = plan.role(role) else {
        say!(
            "disagg role {role}: the plan in {} has no role {role}",
            run_dir.display()
        );
        return exit::USAGE;
    };
    // In a container the image's own variables win over those srun hands in (pyxis: "their
    // existing values in the image take precedence"): the case's are applied again here, where
    // they are the last word, and UCX_TLS (or what else it unsets) is removed again.
    if plan.slurm.container.is_some() && std::env::var_os("SLURM_JOB_ID").is_some() {
        // SAFETY: no thread has been started yet; the async runtime is built below.
        let changed = unsafe { reapply_env(&own.env_set, &own.env_unset) };
        if !changed.is_empty() {
            say!(
                "disagg role {role}: the container's image had its own {}; the case's applied \
                 again",
                changed.join(", ")
            );
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("disagg role {role}: cannot start the async runtime: {e}");
            return exit::TEST_FAILED;
        }
    };
    say!(
        "disagg role {role}: run {} in {}",
        plan.run_id,
        plan.run_dir.display()
    );
    // Whatever the engine starts stays our descendant, however it detaches, until we reap it.
    crate::procs::become_subreaper();
    let result = rt.block_on(async {
        let work = async {
            let r: Result<(), shared::Failed> = match role {
                RoleName::Ctx(_) | RoleName::Gen(_) => {
                    worker::run(&plan, role).await.map_err(Into::into)
                }
                RoleName::DisaggServer(_) => server::run(&plan, role).await,
                RoleName::Benchmark => benchmark::run(&plan).await.map_err(Into::into),
            };
            r
        };
        tokio::select! {
            r = work => Ok(r),
            sig = stop_signal() => Err(sig),
        }
    });
    // The account first, the moment the failure is known: the other ranks of a step may be
    // stopped by srun an instant later, and the first to fail is the root cause.
    if let Ok(Err(failed)) = &result {
        say!("disagg role {role}: FAILED: {}", failed.reason);
        shared::write_exit_note(&plan, role, failed);
    }
    // Role tasks may hold connections; do not let them delay the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    // Nothing this role started outlives it. Within most of the grace period, so this is done
    // before the supervisor's own SIGKILL comes.
    let grace = plan.deadlines.grace;
    let left = crate::procs::sweep(grace.saturating_sub(grace / 4));
    if !left.is_empty() {
        say!("disagg role {role}: warning: left running after SIGKILL: {left:?}");
    }
    match result {
        Ok(Ok(())) => exit::PASS,
        Ok(Err(_)) => exit::TEST_FAILED,
        Err(sig) => {
            // SIGTERM with no verdict: the parent-death signal (a terminal's SIGINT reaches the
            // supervisor too, which then gives the verdict).
            if role == RoleName::Benchmark && sig == nix::sys::signal::Signal::SIGTERM {
                benchmark::mark_stopped(&plan, sig.as_str());
            }
            say!(
                "disagg role {role}: stopped by {}; everything it started is stopped",
                sig.as_str()
            );
            die_by(sig)
        }
    }
}

/// `disagg guard -- ARGV`: runs ARGV as its child, as a subreaper, and passes on how it ended
/// (its exit status, or the signal that ended it). Stopped by SIGTERM, SIGINT or SIGHUP (the
/// parent-death signal when `disagg run` itself is killed, even with SIGKILL), it stops every
/// process ARGV started, however detached, then dies by that signal. What `setup` runs under:
/// a setup's children (a `pip install` under `sh -c`) would otherwise outlive a killed run.
pub fn guard(argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        say_err!("disagg guard: no command given");
        return exit::USAGE;
    };
    crate::procs::become_subreaper();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say_err!("disagg guard: cannot start the async runtime: {e}");
            return exit::TEST_FAILED;
        }
    };
    let ended = rt.block_on(async {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        tokio::select! {
            s = child.wait() => s.map(Ok).map_err(|e| format!("cannot wait for {program}: {e}")),
            sig = stop_signal() => Ok(Err(sig)),
        }
    });
    drop(rt);
    match ended {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => code,
                (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
                    Ok(sig) => die_by(sig),
                    Err(_) => exit::by_signal(sig),
                },
                (None, None) => exit::TEST_FAILED,
            }
        }
        Ok(Err(sig)) => {
            let left = crate::procs::sweep(std::time::Duration::from_secs(2));
            if !left.is_empty() {
                say_err!("disagg guard: warning: left running after SIGKILL: {left:?}");
            }
            say_err!(
                "disagg guard: stopped by {}; everything {program} started is stopped",
                sig.as_str()
            );
            die_by(sig)
        }
        Err(e) => {
            say_err!("disagg guard: {e}");
            127
        }
    }
}

/// SIGTERM (the supervisor's teardown, or the parent-death signal when `disagg run` itself is
/// gone), SIGINT or SIGHUP.
async fn stop_signal() -> nix::sys::signal::Signal {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let listen = |kind: SignalKind, sig: Signal| {
        signal(kind)
            .map_err(|e| say_err!("disagg role: cannot listen for {}: {e}", sig.as_str()))
            .ok()
    };
    let mut term = listen(SignalKind::terminate(), Signal::SIGTERM);
    let mut int = listen(SignalKind::interrupt(), Signal::SIGINT);
    let mut hup = listen(SignalKind::hangup(), Signal::SIGHUP);
    tokio::select! {
        _ = recv(&mut term) => Signal::SIGTERM,
        _ = recv(&mut int) => Signal::SIGINT,
        _ = recv(&mut hup) => Signal::SIGHUP,
    }
}

/// Ends this process by `sig` with its default action, so whoever waits on it sees the signal
/// (as if the role had not caught it), not an exit status.
fn die_by(sig: nix::sys::signal::Signal) -> i32 {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring the default action is always sound.
    unsafe {
        let _ = sigaction(sig, &default);
    }
    let _ = nix::sys::signal::raise(sig);
    exit::by_signal(sig as i32)
}

/// Sets `set` and removes `unset` in this process's environment (the engine inherits it), where
/// they differ; returns what differed (`UCX_TLS (unset)`, `TLLM_LOG_LEVEL`), names only.
///
/// # Safety
/// Must run before the process starts any thread (the environment is not thread-safe).
unsafe fn reapply_env(
    set: &std::collections::BTreeMap<String, String>,
    unset: &[String],
) -> Vec<String> {
    let mut changed = Vec::new();
    for (k, v) in set {
        if std::env::var_os(k).as_deref() != Some(std::ffi::OsStr::new(v)) {
            // SAFETY: the caller guarantees no other thread runs.
            unsafe { std::env::set_var(k, v) };
            changed.push(k.clone());
        }
    }
    for k in unset {
        if std::env::var_os(k).is_some() {
            // SAFETY: as above.
            unsafe { std::env::remove_var(k) };
            changed.push(format!("{k} (unset)"));
        }
    }
    changed
}

/// Reads `plan.json` from a run folder.
pub fn load_plan(run_dir: &Path) -> Result<Plan, String> {
    let path = run_dir.join("plan.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a plan: {e}", path.display()))
}
