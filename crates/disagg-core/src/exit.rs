//! Exit codes of every `disagg` command, in one place (ARCHITECTURE.md).

/// The test passed (and the perf check passed or was skipped).
pub const PASS: i32 = 0;
/// The test failed: a role died, a deadline passed, a validity gate or failed requests.
pub const TEST_FAILED: i32 = 1;
/// Usage or case error; nothing was launched.
pub const USAGE: i32 = 2;
/// Performance regression on a run that otherwise passed.
pub const PERF_REGRESSION: i32 = 3;
/// Interrupted by Ctrl-C (SIGINT).
pub const INTERRUPTED: i32 = 130;
/// Stopped by SIGTERM (what Slurm and CI cancellation send).
pub const TERMINATED: i32 = 143;

/// The shell's code for a command ended by signal `sig`: 128 + its number (SIGHUP 129, SIGINT
/// 130, SIGTERM 143).
pub const fn by_signal(sig: i32) -> i32 {
    128 + sig
}

/// Whether `code` says the run was stopped by a signal (a person, Slurm or CI), not judged.
pub const fn is_interruption(code: i32) -> bool {
    code > 128 && code < 128 + 65
}
