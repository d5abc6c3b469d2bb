//! Talking to Slurm's commands: submit, follow, cancel. Each is an argv; their answers are
//! parsed here and nowhere else.

use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("sbatch printed `{0}`, not a job id")]
    BadJobId(String),
}

fn run(program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, SlurmError> {
    let cmd = format!("{program} {}", args.join(" "));
    let mut c = Command::new(program);
    c.args(args).stdin(Stdio::null());
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().map_err(|source| SlurmError::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when a Slurm controller answers (`sinfo` succeeds).
pub fn available() -> bool {
    run("sinfo", &["-h", "-o", "%P"], None).is_ok()
}

/// `sbatch --parsable --hold SCRIPT` from `cwd`: the job waits for [`release`].
pub fn submit_held(script: &Path, cwd: &Path) -> Result<String, SlurmError> {
    let s = script.display().to_string();
    let out = run("sbatch", &["--parsable", "--hold", &s], Some(cwd))?;
    parse_job_id(&out).ok_or_else(|| SlurmError::BadJobId(out.trim().to_string()))
}

/// `scontrol release JOB`.
pub fn release(job: &str) -> Result<(), SlurmError> {
    run("scontrol", &["release", job], None).map(|_| ())
}

/// `123` or `123;cluster`.
pub fn parse_job_id(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// A job's state as Slurm names it (`PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState(pub String);

impl JobState {
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self.0.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "RESV_DEL_HOLD"
                | "REQUEUE_FED"
                | "REQUEUE_HOLD"
        )
    }
    pub fn is_timeout(&self) -> bool {
        self.0 == "TIMEOUT" || self.0 == "DEADLINE"
    }
}

/// The job's state: `scontrol show job` first (it keeps finished jobs for `MinJobAge`), then
/// `sacct` where accounting exists. `None` when neither knows the job any more.
pub fn state(job: &str) -> Option<JobState> {
    if let Ok(out) = run("scontrol", &["show", "job", "-o", job], None) {
        if let Some(s) = parse_scontrol_state(&out) {
            return Some(s);
        }
    }
    let out = run("sacct", &["-n", "-X", "-P", "-o", "State", "-j", job], None).ok()?;
    let first = out.lines().next()?.split_whitespace().next()?.to_string();
    (!first.is_empty()).then_some(JobState(first))
}

/// Whether Slurm is ending (or ended) the job at its time limit. While it signals the job the
/// state is still `COMPLETING`; the reason already says `TimeLimit`.
pub fn timed_out(job: &str) -> bool {
    match run("scontrol", &["show", "job", "-o", job], None) {
        Ok(out) => parse_timed_out(&out),
        Err(_) => state(job).is_some_and(|s| s.is_timeout()),
    }
}

pub fn parse_timed_out(out: &str) -> bool {
    parse_scontrol_state(out).is_some_and(|s| s.is_timeout())
        || out.split_whitespace().any(|w| w == "Reason=TimeLimit")
}

pub fn parse_scontrol_state(out: &str) -> Option<JobState> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .map(|s| JobState(s.to_string()))
}

/// `scancel JOB`; errors are reported, not fatal: the job may already be gone.
pub fn cancel(job: &str) -> Result<(), SlurmError> {
    run("scancel", &[job], None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_slurm_answers() {
        assert_eq!(parse_job_id("42\n"), Some("42".into()));
        assert_eq!(parse_job_id("42;cluster\n"), Some("42".into()));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
        let s = parse_scontrol_state("JobId=7 JobName=x JobState=TIMEOUT Reason=TimeLimit");
        assert_eq!(s, Some(JobState("TIMEOUT".into())));
        assert!(s.unwrap().is_terminal());
        assert!(!JobState("RUNNING".into()).is_terminal());
        assert!(!JobState("COMPLETING".into()).is_terminal());
        assert!(parse_timed_out(
            "JobId=5 JobState=COMPLETING Reason=TimeLimit Dependency=x"
        ));
        assert!(parse_timed_out("JobId=5 JobState=TIMEOUT Reason=None"));
        assert!(!parse_timed_out("JobId=5 JobState=CANCELLED Reason=None"));
    }
}
