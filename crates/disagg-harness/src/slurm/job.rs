//! Talking to Slurm's commands: submit, follow, cancel. Each is an argv; their answers are
//! parsed here and nowhere else.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("sbatch printed `{0}`, not a job id")]
    BadJobId(String),
}

impl SlurmError {
    /// Whether Slurm refused the job for what it asks (partition, gres, account, QOS, time,
    /// nodes: Slurm's own "Invalid …" and policy messages), not because Slurm could not be
    /// reached or was busy.
    pub fn refuses_the_request(&self) -> bool {
        let SlurmError::Failed { stderr, .. } = self else {
            return false;
        };
        [
            "Invalid ",
            "Requested node configuration is not available",
            "Requested time limit is invalid",
            "Requested partition configuration not available",
            "Node count specification invalid",
            "More processors requested than permitted",
            "Memory required by task is not available",
            "violates accounting/QOS policy",
            "Access/permission denied",
            // getopt's words for an option this sbatch does not have (a case's extra_args).
            "unrecognized option",
            "invalid option",
        ]
        .iter()
        .any(|m| stderr.contains(m))
    }
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

/// `sbatch --parsable --hold SCRIPT` from `cwd`: the job waits for [`release`]. With `after`,
/// it also waits for that job to end (`--dependency=afterany:ID`), whatever its fate.
pub fn submit_held(script: &Path, cwd: &Path, after: Option<&str>) -> Result<String, SlurmError> {
    let s = script.display().to_string();
    let dependency = after.map(|id| format!("--dependency=afterany:{id}"));
    let mut args = vec!["--parsable", "--hold"];
    args.extend(dependency.as_deref());
    args.push(&s);
    let out = run("sbatch", &args, Some(cwd))?;
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

/// What Slurm says of a job: its state, why it waits (or ended), how long it has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub state: JobState,
    /// `Reason=`: `None`, `Resources`, `BadConstraints`, `ReqNodeNotAvail,_UnavailableNodes:n2`…
    pub reason: Option<String>,
    /// `RunTime=`: zero for a job that never started.
    pub run_time: Option<Duration>,
}

impl JobInfo {
    pub fn is_pending(&self) -> bool {
        self.state.0 == "PENDING"
    }

    /// Ended, or being ended, at its time limit.
    pub fn is_timed_out(&self) -> bool {
        self.state.is_timeout() || self.reason.as_deref() == Some("TimeLimit")
    }
}

/// The job's state: `squeue` first (it keeps finished jobs for `MinJobAge`), then `sacct`
/// where accounting exists. `None` when neither knows the job any more.
pub fn state(job: &str) -> Option<JobState> {
    info(job).map(|i| i.state)
}

/// [`state`] with the reason and run time, where `squeue` still knows the job.
///
/// Not `scontrol show job -o`: it prints `JobName=` before `JobState=`, unquoted, and a job
/// name may hold ` JobState=COMPLETED` (`slurm.job_name` is the user's); squeue's fields are
/// asked for by letter, state first, and the name is not among them.
pub fn info(job: &str) -> Option<JobInfo> {
    match lookup(job) {
        Lookup::Found(i) => Some(i),
        Lookup::Gone | Lookup::NoAnswer(_) => None,
    }
}

/// What asking Slurm about a job found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(JobInfo),
    /// Slurm answered, and no longer knows the job (`squeue` does not list it, or calls its id
    /// invalid; `sacct` has nothing, or there is no accounting).
    Gone,
    /// Slurm did not answer (`squeue` failed otherwise: the controller is down, busy, or its
    /// socket timed out; `sacct` had nothing either): the job's state is not known, which is
    /// not the same as its having ended.
    NoAnswer(String),
}

/// [`info`], telling a job Slurm no longer knows from a question Slurm did not answer: one
/// failed `squeue` (`slurm_load_jobs error: Socket timed out`) read as "ended" wrote a job's
/// reports, and failed its run, while it ran on.
pub fn lookup(job: &str) -> Lookup {
    let asked = run(
        "squeue",
        &["-h", "-t", "all", "-j", job, "-o", "%T|%r|%M"],
        None,
    );
    let no_answer = match &asked {
        Ok(out) => match parse_squeue(out) {
            Some(i) => return Lookup::Found(i),
            None => None,
        },
        // squeue's word for a job id it no longer has: an answer.
        Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => None,
        Err(e) => Some(e.to_string()),
    };
    match accounted(job) {
        Some(i) => Lookup::Found(i),
        None => match no_answer {
            Some(e) => Lookup::NoAnswer(e),
            None => Lookup::Gone,
        },
    }
}

/// What `sacct` says of a job, where there is accounting.
fn accounted(job: &str) -> Option<JobInfo> {
    let out = run(
        "sacct",
        &["-n", "-X", "-P", "-o", "State,Reason,Elapsed", "-j", job],
        None,
    )
    .ok()?;
    let mut fields = out.lines().next()?.split('|');
    // sacct says `CANCELLED by 0`.
    let first = fields.next()?.split_whitespace().next()?.to_string();
    let reason = fields.next().map(str::trim).filter(|r| !r.is_empty());
    let elapsed = fields.next().and_then(parse_run_time);
    (!first.is_empty()).then(|| JobInfo {
        state: JobState(first),
        reason: reason.map(str::to_string),
        run_time: elapsed,
    })
}

/// The signal that ended the job's batch script, from `scontrol show job`'s `ExitCode=S:G`
/// (`0:10`: killed by SIGUSR1): what says why a supervisor died with no report of its own.
/// `None` when it ended by itself, or Slurm no longer says.
pub fn batch_signal(job: &str) -> Option<i32> {
    let out = run("scontrol", &["show", "job", "-o", job], None).ok()?;
    parse_exit_signal(&out)
}

/// The signal part of the `ExitCode=S:G` token of `scontrol show job -o`, when not 0.
pub fn parse_exit_signal(out: &str) -> Option<i32> {
    let token = out
        .split_whitespace()
        .find_map(|t| t.strip_prefix("ExitCode="))?;
    let sig: i32 = token.split_once(':')?.1.parse().ok()?;
    (sig != 0).then_some(sig)
}

/// A signal's number and name: `10 (SIGUSR1)`.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => format!("{sig} ({})", s.as_str()),
        Err(_) => sig.to_string(),
    }
}

/// The job's nodes in order (`squeue %N`, expanded by `scontrol show hostnames`); empty when
/// Slurm no longer says.
pub fn nodes(job: &str) -> Vec<String> {
    let Some(list) = run("squeue", &["-h", "-t", "all", "-j", job, "-o", "%N"], None)
        .ok()
        .map(|o| o.trim().to_string())
        .filter(|l| !l.is_empty())
    else {
        return Vec::new();
    };
    run("scontrol", &["show", "hostnames", &list], None)
        .map(|o| {
            o.lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Every partition of the cluster (`sinfo --all`, so hidden ones too, the default's `*`
/// dropped); `None` when sinfo does not answer.
pub fn partitions() -> Option<Vec<String>> {
    let out = run("sinfo", &["--all", "-h", "-o", "%P"], None).ok()?;
    Some(
        out.lines()
            .map(|l| l.trim().trim_end_matches('*').to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    )
}

/// The cluster's default partition (the one sinfo marks `*`); `None` when there is none or
/// sinfo does not answer.
pub fn default_partition() -> Option<String> {
    let out = run("sinfo", &["-h", "-o", "%P"], None).ok()?;
    parse_default_partition(&out)
}

fn parse_default_partition(out: &str) -> Option<String> {
    out.lines()
        .map(str::trim)
        .find_map(|l| l.strip_suffix('*'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// The partition a job of `partition` runs in, for a message: `partition P`, or the default
/// one by its name when sinfo says it.
pub fn partition_words(partition: Option<&str>) -> String {
    match partition {
        Some(p) => format!("partition {p}"),
        None => match default_partition() {
            Some(p) => format!("the default partition ({p})"),
            None => "the default partition".to_string(),
        },
    }
}

/// The GPU gres the nodes of `partition` (the default one when `None`) offer, as sinfo says it
/// (`gpu:8`, `gpu:h100:8(S:0-1)`): `None` when they offer none, or sinfo does not answer.
pub fn gpu_gres(partition: Option<&str>) -> Option<String> {
    let mut args = vec!["-h", "-o", "%G"];
    if let Some(p) = partition {
        args.extend(["-p", p]);
    }
    let out = run("sinfo", &args, None).ok()?;
    parse_gpu_gres(&out)
}

fn parse_gpu_gres(out: &str) -> Option<String> {
    out.lines()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .find(|g| g.starts_with("gpu:") || *g == "gpu")
        .map(str::to_string)
}

/// Of `nodes`, those Slurm now holds down or failed (`sinfo -N %T`: `down`, `down*`, `fail`,
/// `failing`, any state with `*`, not responding), with that state.
pub fn failed_nodes(nodes: &[String]) -> Vec<(String, String)> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let out = match run(
        "sinfo",
        &["-h", "-N", "-n", &nodes.join(","), "-o", "%N|%T"],
        None,
    ) {
        Ok(o) => o,
        Err(_) => return Vec::new(),
    };
    parse_failed_nodes(&out)
}

fn parse_failed_nodes(out: &str) -> Vec<(String, String)> {
    let all: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(n, st)| (n.trim().to_string(), st.trim().to_ascii_lowercase()))
        .filter(|(_, st)| {
            st.starts_with("down")
                || st.starts_with("fail")
                || st.ends_with('*')
                || st.contains("not_responding")
        })
        .collect();
    // sinfo -N lists a node once per partition it is in.
    let mut found: Vec<(String, String)> = Vec::new();
    for (n, st) in all {
        if !found.iter().any(|(m, _)| *m == n) {
            found.push((n, st));
        }
    }
    found
}

/// `squeue -h -o '%T|%r|%M'` of one job: state, reason, time used.
pub fn parse_squeue(out: &str) -> Option<JobInfo> {
    let mut f = out.lines().next()?.splitn(3, '|');
    let state = f.next()?.trim();
    if state.is_empty() || state.contains(char::is_whitespace) {
        return None;
    }
    let reason = f.next().map(str::trim).filter(|r| !r.is_empty());
    Some(JobInfo {
        state: JobState(state.to_string()),
        reason: reason.map(str::to_string),
        run_time: f.next().and_then(parse_run_time),
    })
}

/// Slurm's elapsed time: `[D-]HH:MM:SS` (also `MM:SS`).
pub fn parse_run_time(t: &str) -> Option<Duration> {
    let t = t.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let mut secs = 0u64;
    for part in rest.split(':') {
        secs = secs * 60 + part.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs(days * 86_400 + secs))
}

/// Why a pending job can never start by itself, when Slurm's reason says so: what it means
/// (from Slurm's job reason codes). Only reasons that need a change of the job's request or of
/// the cluster's configuration (an administrator) to clear; a busy cluster (`Resources`,
/// `Priority`, `QOSGrp*`, `*PerUser*` limits), a held or down partition, or unavailable nodes
/// (`ReqNodeNotAvail`: a node may come back) are waited for.
pub fn never_starts(reason: &str) -> Option<&'static str> {
    // `ReqNodeNotAvail,_UnavailableNodes:…`: the code is the first word.
    let code = reason.split([',', ' ']).next().unwrap_or(reason);
    let meaning = match code {
        "BadConstraints" => "the job's constraints can not be satisfied",
        "PartitionNodeLimit" => {
            "the number of nodes required by this job is outside of its partition's limits (or its nodes are down or drained)"
        }
        "PartitionTimeLimit" => "the job's time limit exceeds its partition's time limit",
        "InvalidAccount" => "the job's account is invalid",
        "AccountNotAllowed" => "the job's account is not allowed in its partition",
        "InvalidQOS" => "the job's QOS is invalid",
        "QOSNotAllowed" => "the job's QOS is not allowed in its partition",
        c if (c.starts_with("QOSMax") || c.starts_with("AssocMax"))
            && (c.contains("PerJob") || c.contains("PerNode")) =>
        {
            "the job requests more than a per-job limit of its QOS or association allows"
        }
        c if c.starts_with("QOSMin") => "the job requests less than its QOS requires",
        _ => return None,
    };
    Some(meaning)
}

/// Whether Slurm is ending (or ended) the job at its time limit. While it signals the job the
/// state is still `COMPLETING`; the reason already says `TimeLimit`.
pub fn timed_out(job: &str) -> bool {
    info(job).is_some_and(|i| i.is_timed_out())
}

/// The job's time limit as Slurm has it now (`squeue`'s `%l`: `1:00`, `UNLIMITED`): an
/// administrator may have changed the case's `slurm.time` while it ran.
pub fn time_limit(job: &str) -> Option<String> {
    let out = run("squeue", &["-h", "-t", "all", "-j", job, "-o", "%l"], None).ok()?;
    Some(out.lines().next()?.trim().to_string()).filter(|l| !l.is_empty())
}

/// `scancel JOB`; errors are reported, not fatal: the job may already be gone.
pub fn cancel(job: &str) -> Result<(), SlurmError> {
    run("scancel", &[job], None).map(|_| ())
}

/// Leaves `text` in the job's `Comment`, kept by Slurm's controller and not on the run folder's
/// filesystem: what a supervisor says of its run when it could not write its reports there (a
/// full disk), before it cancels its own job.
pub fn set_comment(job: &str, text: &str) -> Result<(), SlurmError> {
    // One line, within what slurmctld keeps.
    let text: String = text.replace('\n', " ").chars().take(1000).collect();
    run(
        "scontrol",
        &[
            "update",
            &format!("JobId={job}"),
            &format!("Comment={text}"),
        ],
        None,
    )
    .map(|_| ())
}

/// The job's `Comment` (see [`set_comment`]), while Slurm still knows the job.
pub fn comment(job: &str) -> Option<String> {
    let out = run("scontrol", &["show", "job", job], None).ok()?;
    parse_comment(&out)
}

fn parse_comment(out: &str) -> Option<String> {
    // `Comment=` is the last field of its line: the rest of the line is the comment.
    let at = out
        .find(" Comment=")
        .map(|i| i + 1)
        .or_else(|| out.starts_with("Comment=").then_some(0))?;
    let rest = &out[at + "Comment=".len()..];
    let text = rest.lines().next().unwrap_or("").trim();
    (!text.is_empty() && text != "(null)").then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_gpu_gres_is_read_from_sinfo() {
        assert_eq!(super::parse_gpu_gres("gpu:8\n").as_deref(), Some("gpu:8"));
        assert_eq!(
            super::parse_gpu_gres("(null)\ngpu:h100:8(S:0-1),nic:2\n").as_deref(),
            Some("gpu:h100:8(S:0-1)")
        );
        assert_eq!(super::parse_gpu_gres("(null)\n"), None);
    }

    #[test]
    fn the_jobs_comment_is_read_from_scontrol() {
        let job = "JobId=510 JobName=x\n   Comment=disagg: the run failed: GEN_0 died | see \n   StdErr=/x\n";
        assert_eq!(
            parse_comment(job).as_deref(),
            Some("disagg: the run failed: GEN_0 died | see")
        );
        assert_eq!(parse_comment("JobId=5\n   Comment=(null) \n"), None);
        assert_eq!(parse_comment("JobId=5\n"), None);
    }

    #[test]
    fn the_batch_scripts_signal_is_read_from_scontrol() {
        let job = "JobId=510 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode \
                   Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:10";
        assert_eq!(parse_exit_signal(job), Some(10));
        assert_eq!(signal_name(10), "10 (SIGUSR1)");
        assert_eq!(parse_exit_signal("JobId=5 ExitCode=1:0"), None);
        assert_eq!(parse_exit_signal("JobId=5"), None);
    }

    #[test]
    fn down_and_unresponsive_nodes_are_failed_ones() {
        let out = "dgn1|idle\ndgn2|down*\ndgn3|mixed\ndgn4|idle*\ndgn5|fail\ndgn2|down*\n";
        assert_eq!(
            parse_failed_nodes(out),
            [
                ("dgn2".to_string(), "down*".to_string()),
                ("dgn4".into(), "idle*".into()),
                ("dgn5".into(), "fail".into())
            ]
        );
    }

    #[test]
    fn parses_slurm_answers() {
        assert_eq!(parse_job_id("42\n"), Some("42".into()));
        assert_eq!(parse_job_id("42;cluster\n"), Some("42".into()));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
        let s = parse_squeue("TIMEOUT|TimeLimit|5:00\n").unwrap();
        assert_eq!(s.state, JobState("TIMEOUT".into()));
        assert!(s.state.is_terminal() && s.is_timed_out());
        assert!(!JobState("RUNNING".into()).is_terminal());
        assert!(!JobState("COMPLETING".into()).is_terminal());
        assert!(
            parse_squeue("COMPLETING|TimeLimit|1:00")
                .unwrap()
                .is_timed_out()
        );
        assert!(!parse_squeue("CANCELLED|None|0:01").unwrap().is_timed_out());
        // What squeue says of a job it does not know, or nothing at all.
        assert!(parse_squeue("").is_none());
        assert!(parse_squeue("slurm_load_jobs error: Invalid job id specified").is_none());
    }

    #[test]
    fn refusals_of_the_request_are_told_from_an_unreachable_slurm() {
        let failed = |stderr: &str| SlurmError::Failed {
            cmd: "sbatch".into(),
            stderr: stderr.into(),
        };
        assert!(
            failed("sbatch: error: Batch job submission failed: Invalid partition name specified")
                .refuses_the_request()
        );
        assert!(
            failed("sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification")
                .refuses_the_request()
        );
        assert!(
            !failed("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)")
                .refuses_the_request()
        );
        assert!(!SlurmError::BadJobId("x".into()).refuses_the_request());
    }

    #[test]
    fn the_default_partition_is_the_one_marked() {
        assert_eq!(
            parse_default_partition("gpu\ndg*\ndebug\n"),
            Some("dg".to_string())
        );
        assert_eq!(parse_default_partition("gpu\ndebug\n"), None);
        assert_eq!(parse_default_partition("*\n"), None);
    }

    #[test]
    fn reads_the_reason_and_the_run_time() {
        let i = parse_squeue("PENDING|BadConstraints|0:00").unwrap();
        assert!(i.is_pending());
        assert_eq!(i.reason.as_deref(), Some("BadConstraints"));
        assert_eq!(i.run_time, Some(Duration::ZERO));
        assert_eq!(parse_run_time("01:02:03"), Some(Duration::from_secs(3723)));
        assert_eq!(
            parse_run_time("2-00:00:05"),
            Some(Duration::from_secs(172_805))
        );
        assert_eq!(parse_run_time("Unknown"), None);
    }

    #[test]
    fn only_reasons_that_cannot_clear_by_themselves_are_fatal() {
        for r in [
            "BadConstraints",
            "PartitionNodeLimit",
            "PartitionTimeLimit",
            "InvalidAccount",
            "InvalidQOS",
            "QOSMaxNodePerJobLimit",
            "AssocMaxWallDurationPerJobLimit",
            "QOSMaxGRESPerNode",
        ] {
            assert!(never_starts(r).is_some(), "{r}");
        }
        for r in [
            "None",
            "Resources",
            "Priority",
            "Dependency",
            "JobHeldUser",
            "JobHeldAdmin",
            "BeginTime",
            "PartitionDown",
            "ReqNodeNotAvail,_UnavailableNodes:dgn2",
            "QOSGrpGRES",
            "QOSMaxJobsPerUserLimit",
            "QOSMaxSubmitJobPerUserLimit",
            "AssocGrpCpuLimit",
        ] {
            assert!(never_starts(r).is_none(), "{r}");
        }
    }
}
