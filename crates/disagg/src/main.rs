//! `disagg`: runs, benchmarks and gates disaggregated LLM serving tests.
//!
//! A thin layer: each subcommand parses its arguments and calls one library function.

mod cmd;

use clap::Parser;

fn main() {
    // First, so nothing any part logs (the router's startup, ejections, retries) is lost.
    init_logging();
    let cli = cmd::Cli::parse();
    std::process::exit(cmd::dispatch(cli));
}

/// Logs go to stderr (a role's stderr is its log file), at `info` unless `RUST_LOG` says
/// otherwise (e.g. `RUST_LOG=disagg_router=debug`). Colours only on a terminal.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
