//! The rendezvous folder: how roles find each other and learn that the run is over.
//!
//! Every file carries the run id; a file from an earlier attempt (another run id) is treated as
//! absent, so a stale address or status is never trusted.

use std::path::Path;

use disagg_core::RoleName;
use serde::{Deserialize, Serialize};

/// A role's published address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub run_id: String,
    pub role: RoleName,
    pub host: String,
    pub port: u16,
    /// The serving process (the engine for workers).
    pub pid: u32,
    /// SGLang prefill: the bootstrap port its decode peers pull KV through (the router must
    /// name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_port: Option<u16>,
    /// vLLM: the first NIXL side-channel port the engine was given (one per data-parallel rank
    /// from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_channel_port: Option<u16>,
    /// What the engine's `/version` reported (`disagg-sim 0.1.0`, vLLM's `0.9.1`), when it
    /// answered; the results store keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
}

impl Endpoint {
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How the run ended, as far as the writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Done,
    Failed,
}

/// `rendezvous/status.json`: written by BENCHMARK when it finishes, and rewritten by the
/// supervisor with the final word (which role failed, and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub run_id: String,
    pub state: State,
    /// The role that failed (the root cause), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Status {
    /// The reason of the supervisor's word when a signal stopped the run.
    pub const INTERRUPTED: &'static str = "interrupted";

    /// The run was stopped by a signal (no role failed).
    pub fn is_interruption(&self) -> bool {
        self.state == State::Failed
            && self.role.is_none()
            && self.reason.as_deref() == Some(Self::INTERRUPTED)
    }
}

/// `rendezvous/<ROLE>.exit.json`: a role's own account of why it is exiting with a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitNote {
    pub run_id: String,
    pub role: RoleName,
    pub reason: String,
    /// The role the failure is about, when it is another one: DISAGG_SERVER failing because a
    /// worker's published address cannot be reached blames that worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blame: Option<RoleName>,
    /// The rank that wrote it, in a step of several (a worker spanning nodes): each rank has
    /// its own note (`<ROLE>.rank<R>.exit.json` above 0), so one rank's account never
    /// overwrites another's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// When it was written (milliseconds since the Unix epoch): the first rank to fail is the
    /// root cause, the others its echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}

impl ExitNote {
    /// Whether its engine was stopped by SIGTERM: the teardown of a step (srun stopping the
    /// other ranks once one failed), never the first cause.
    pub fn stopped_by_term(&self) -> bool {
        self.reason.contains("(SIGTERM)")
    }
}

/// `rendezvous/<ROLE>.dist.json`: where node rank 0 of a server spanning nodes (vLLM, SGLang)
/// has its engine take the group's rendezvous (`--dist-init-addr`, `--master-addr`/`--master-port`),
/// written before that engine starts; the other nodes' ranks wait for it and join there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistInit {
    pub run_id: String,
    pub role: RoleName,
    pub host: String,
    pub port: u16,
    /// Node rank 0's SGLang bootstrap port, which every node's process must be started with:
    /// SGLang's prefill ranks register at `<rendezvous host>:<their own bootstrap port>`, and
    /// ranks given ports of their own were refused there (before sgl-project/sglang#24378,
    /// which makes them take rank 0's) and missed at the first request's decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_port: Option<u16>,
}

impl DistInit {
    pub fn path(plan: &disagg_core::Plan, role: RoleName) -> std::path::PathBuf {
        disagg_core::plan::rendezvous_dir(&plan.run_dir).join(format!("{role}.dist.json"))
    }
}

/// The file name of [`Progress`] in the rendezvous folder.
pub const PROGRESS_FILE: &str = "progress.json";

/// `rendezvous/progress.json`: BENCHMARK's sweep as it goes, rewritten every second while a
/// point runs; `disagg run` shows it live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub run_id: String,
    #[serde(flatten)]
    pub now: disagg_bench::LiveSnapshot,
}

/// Reads a JSON file of this run; `None` when absent, unreadable, half-written or from another run.
pub fn read<T: for<'de> Deserialize<'de> + HasRunId>(path: &Path, run_id: &str) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    let v: T = serde_json::from_slice(&bytes).ok()?;
    (v.run_id() == run_id).then_some(v)
}

/// Files that carry a run id.
pub trait HasRunId {
    fn run_id(&self) -> &str;
}

impl HasRunId for Endpoint {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}
impl HasRunId for Status {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}
impl HasRunId for Progress {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}
impl HasRunId for DistInit {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}
impl HasRunId for ExitNote {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_files_are_ignored() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let p = dir.join("status.json");
        let s = Status {
            run_id: "old".into(),
            state: State::Done,
            role: None,
            reason: None,
        };
        crate::atomic::write_json(&p, &s).unwrap();
        assert_eq!(read::<Status>(&p, "new"), None);
        assert_eq!(read::<Status>(&p, "old"), Some(s));
        std::fs::write(&p, b"{\"run_id\": \"new\", \"sta").unwrap();
        assert_eq!(read::<Status>(&p, "new"), None, "half-written");
    }
}
