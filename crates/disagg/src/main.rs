//! `disagg`: runs, benchmarks and gates disaggregated LLM serving tests.
//!
//! A thin layer: each subcommand parses its arguments and calls one library function.

mod cmd;

use clap::Parser;

fn main() {
    let cli = cmd::Cli::parse();
    std::process::exit(cmd::dispatch(cli));
}
