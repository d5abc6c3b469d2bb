//! The harness: run folders, the rendezvous, role runtimes, the supervisor, the perf check and
//! the reports.
//!
//! ```text
//! disagg run ─▶ run::run_cases ─▶ rundir (case.yaml, plan.json) ─▶ supervisor
//!                                                       │ launches via an Executor
//!                                                       ▼
//!        disagg role CTX_i/GEN_i (engine) · DISAGG_SERVER (router) · BENCHMARK (bench)
//!                       └──── rendezvous/<ROLE>.json, rendezvous/status.json ────┘
//!                                                       │
//!                          perf check ─▶ results.xml, perf_script_test_results.csv, summary
//! ```
//!
//! Invariants:
//! - every file in `rendezvous/` carries the run id, and a file with another run id is ignored;
//! - every role process is in its own process group, stopped with TERM, a grace period, KILL,
//!   and reaped;
//! - a report is written for every run that was launched, whatever happened;
//! - a failed test always wins over a perf verdict.

// `disagg run`'s console, which must not outlive its reader's mistakes: when stdout is closed
// (`disagg run ... | head`, a CI log shipper that died) or a full disk's file, the line is lost
// instead of `println!`'s panic taking the supervisor down before it writes its reports and
// stops the roles (see `disagg_proto::say!`). By name in every module.
macro_rules! say {
    ($($arg:tt)*) => { disagg_proto::say!($($arg)*) };
}
macro_rules! say_err {
    ($($arg:tt)*) => { disagg_proto::say_err!($($arg)*) };
}
macro_rules! say_raw {
    ($($arg:tt)*) => { disagg_proto::say_raw!($($arg)*) };
}

pub mod atomic;
pub mod beat;
mod bounded;
pub mod executor;
pub mod gen_steps;
pub mod history;
pub mod history_gate;
pub mod live;
pub mod liveness;
pub mod logs;
pub mod logtext;
pub mod outcome;
pub mod perf;
pub mod procs;
pub mod record;
pub mod rendezvous;
pub mod report;
pub mod role;
pub mod run;
pub mod rundir;
pub mod slurm;
pub mod study;
pub mod supervisor;
pub mod sweep;
pub mod triage;

/// The file in the run folder holding one point's own log (`benchmark.con8.log`).
pub fn point_log_name(p: &disagg_bench::PointReport) -> String {
    format!("{}.log", disagg_bench::point_files::stem(p))
}
