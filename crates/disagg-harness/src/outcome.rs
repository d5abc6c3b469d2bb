//! What happened in a run: the facts every report is written from.

use disagg_core::RoleName;
use serde::{Deserialize, Serialize};

/// How one role fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleOutcome {
    pub role: RoleName,
    pub log: String,
    /// `None` when the role stayed up until the run was over.
    pub failure: Option<String>,
}

/// Why the run failed, with the role at its root when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The role at fault (e.g. `GEN_0`), or `SETUP`, or `None` for the job as a whole.
    pub role: Option<String>,
    pub reason: String,
    /// A deadline passed (reported as TIMEOUT).
    pub timeout: bool,
}

/// The run's verdict before the perf check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RunResult {
    Passed,
    Failed(Failure),
    Interrupted,
}

/// Why the run in `run_dir` failed, as its `outcome.json` says; `None` when it did not fail, or
/// says nothing.
pub fn failure_reason(run_dir: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(run_dir.join("outcome.json")).ok()?;
    match serde_json::from_slice::<Outcome>(&bytes).ok()?.result {
        RunResult::Failed(f) => Some(f.reason),
        _ => None,
    }
}

/// Everything the supervisor learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: RunResult,
    pub roles: Vec<RoleOutcome>,
    pub duration_s: f64,
}
