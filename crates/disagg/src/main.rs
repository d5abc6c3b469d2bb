//! `disagg`: runs, benchmarks and gates disaggregated LLM serving tests.
//!
//! A thin layer: each subcommand parses its arguments and calls one library function.

mod cmd;

use clap::Parser;

/// mimalloc instead of glibc's malloc. The router's per-request work is mostly short-lived
/// buffers freed on other paths than they were made on; glibc spent about a tenth of the router's
/// CPU in malloc/free and their consolidation, and more faulting in fresh pages for the large
/// bodies of long prompts. `perf/ab.sh router` against nginx (2026-12-05, 3 interleaved pairs, 64
/// connections): router CPU per request 0.91-0.93x glibc's at 1k prompts and 0.86-0.89x at 32k,
/// in every dialect (SGLang at 1k: 0.054 -> 0.049 ms). `perf/ab.sh bench`, 5 pairs: the load
/// generator's CPU per request 0.91x, req/s 40.5k -> 43.3k.
/// mimalloc's v3 was worse than glibc at 32k (it returned the pages of large bodies to the OS and
/// faulted them in again), hence v2. It costs resident memory: an idle router holds 23.5 MB
/// instead of 8.7 (33 instead of 19 after 3k requests at 64 connections), as mimalloc's
/// segments are backed by transparent huge pages; without them (`MIMALLOC_ALLOW_THP=0`) the
/// router's CPU per request rose 3-30%.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
