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

/// mimalloc v2's `mi_option_purge_delay` (its `mi_option_e` has it between
/// `eager_commit_delay`, 14, and `use_numa_nodes`, 16; libmimalloc-sys names neither it nor the
/// value). A test checks it is the option whose default is 10 ms.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long freed memory stays with the process before mimalloc returns it to the OS (its
/// default is 10 ms). The roles of a run free and reuse bursts of buffers every few
/// milliseconds: returned pages are faulted in and zeroed again at the next burst (the router of
/// `perf/replicas.yaml` took ~2,200 minor faults per 1,040 requests at 10 ms, ~365 at 1 s, and a
/// profile put 38% of its CPU in the kernel zeroing pages). Run with this, the sim case of
/// `perf/replicas.yaml` served 1185-1203 req/s against 803-887 (3 interleaved pairs,
/// 2026-12-05, every role with it). After a second without reuse memory still goes back.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides, as mimalloc documents.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

fn keep_freed_memory_a_while() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads when it next purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

fn main() {
    keep_freed_memory_a_while();
    // SAFETY: first, before any thread (logging, the runtimes) starts.
    unsafe { disagg_harness::record::absolute_store_env() };
    // First, so nothing any part logs (the router's startup, ejections, retries) is lost.
    init_logging();
    raise_open_files_limit();
    let cli = cmd::Cli::parse();
    std::process::exit(cmd::dispatch(cli));
}

/// Every connection is a file descriptor: the router and the bench hold one per request in
/// flight (two for the router), and a soft limit of 1024, common, is reached at a concurrency a
/// perf test asks. The soft limit is raised to the hard one, as servers do; the hard limit,
/// which only an administrator raises, stays the bound (the router and bench say when it is
/// reached). Engines the roles start inherit it.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // Linux's default `fs.nr_open`: a hard limit of "unlimited" cannot be the soft one.
    const MOST: u64 = 1 << 20;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(MOST);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
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

#[cfg(test)]
mod tests {
    /// The option set as the purge delay is the one whose default is 10 ms (mimalloc v2's
    /// `purge_delay`); a reordered enum in a newer libmimalloc-sys fails here.
    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_documents() {
        // SAFETY: reads and sets an option.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(
                    libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                    10
                );
            }
            libmimalloc_sys::mi_option_set(super::MI_OPTION_PURGE_DELAY, super::PURGE_DELAY_MS);
            assert_eq!(
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                super::PURGE_DELAY_MS
            );
        }
    }
}
