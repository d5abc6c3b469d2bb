//! The subcommands, one module each.

mod bench;
mod compare;
mod guard;
mod history;
mod import;
mod logs;
mod plan;
mod report;
mod role;
mod router;
mod run;
mod sim;
mod supervise;
mod triage;
mod validate;

use clap::{Parser, Subcommand};

/// Runs, benchmarks and gates disaggregated LLM serving tests.
///
/// Exit codes: 0 passed; 1 the test failed; 2 usage or case error (nothing launched);
/// 3 performance regression on a run that otherwise passed; 130 interrupted (SIGINT), 143 stopped
/// by SIGTERM, 129 by SIGHUP.
#[derive(Debug, Parser)]
#[command(name = "disagg", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::Args),
    Supervise(supervise::Args),
    Plan(plan::Args),
    Validate(validate::Args),
    Role(role::Args),
    Sim(Box<sim::Args>),
    Router(Box<router::Args>),
    Bench(Box<bench::Args>),
    Logs(logs::Args),
    Triage(triage::Args),
    History(history::Args),
    Report(report::Args),
    Compare(compare::Args),
    Import(import::Args),
    #[command(hide = true)]
    Guard(guard::Args),
}

/// Runs the chosen subcommand; returns the process exit code.
pub fn dispatch(cli: Cli) -> i32 {
    if prints_for_a_pipe(&cli.command) {
        stop_quietly_when_the_reader_leaves();
    }
    match cli.command {
        Command::Run(a) => run::main(a),
        Command::Supervise(a) => supervise::main(a),
        Command::Plan(a) => plan::main(a),
        Command::Validate(a) => validate::main(a),
        Command::Role(a) => role::main(a),
        Command::Sim(a) => sim::main(*a),
        Command::Router(a) => router::main(*a),
        Command::Bench(a) => bench::main(*a),
        Command::Logs(a) => logs::main(a),
        Command::Triage(a) => triage::main(a),
        Command::History(a) => history::main(a),
        Command::Report(a) => report::main(a),
        Command::Compare(a) => compare::main(a),
        Command::Import(a) => import::main(a),
        Command::Guard(a) => guard::main(a),
    }
}

/// Commands whose job is printing, whose output people pipe into `head`, `less` or `grep -q`;
/// they hold no sockets, so the default SIGPIPE action cannot end a connection's peer.
fn prints_for_a_pipe(c: &Command) -> bool {
    matches!(
        c,
        Command::Plan(_)
            | Command::Validate(_)
            | Command::Logs(_)
            | Command::Triage(_)
            | Command::Compare(_)
            | Command::Import(_)
    )
}

/// Restores SIGPIPE's default action (Rust ignores it), so that `disagg plan --json | head`
/// ends as any Unix filter does when its reader goes away, instead of panicking in `print!`
/// with "failed printing to stdout: Broken pipe" and a backtrace. Network commands keep it
/// ignored: a peer that hangs up must be an error on that connection, not the end of the
/// process.
fn stop_quietly_when_the_reader_leaves() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler of ours; this runs before any thread is started.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

/// Where roles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Launcher {
    /// Processes on this machine.
    Local,
    /// `srun` steps of one Slurm job per case.
    Slurm,
}

/// A small runtime for the async subcommands.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    block_on_with(2, f)
}

/// [`block_on`] with `workers` runtime threads.
fn block_on_with<F: std::future::Future>(workers: usize, f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(f)
}

/// The running `disagg` binary, for the roles it launches.
fn current_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "disagg".into())
}

/// A command's text on stdout (exit 0), or its error on stderr (exit 2: what was asked cannot
/// be answered).
pub fn print_or_usage(r: Result<String, String>) -> i32 {
    match r {
        Ok(text) => {
            print!("{text}");
            disagg_core::exit::PASS
        }
        Err(e) => {
            eprintln!("error: {e}");
            disagg_core::exit::USAGE
        }
    }
}
