//! Exit codes of every `disagg` command, in one place (ARCHITECTURE.md).

/// The test passed (and the perf check passed or was skipped).
pub const PASS: i32 = 0;
/// The test failed: a role died, a deadline passed, a validity gate or failed requests.
pub const TEST_FAILED: i32 = 1;
/// Usage or case error; nothing was launched.
pub const USAGE: i32 = 2;
/// Performance regression on a run that otherwise passed.
pub const PERF_REGRESSION: i32 = 3;
/// Interrupted (Ctrl-C / SIGINT / SIGTERM to `disagg run`).
pub const INTERRUPTED: i32 = 130;
