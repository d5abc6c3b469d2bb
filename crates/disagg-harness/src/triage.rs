//! `disagg triage`: find the first failure in a run's logs and show it in context.
//!
//! It starts from the root cause the supervisor recorded in `rendezvous/status.json`, or else
//! the verdict of `outcome.json` (which a run also has when it failed before any role could
//! write a status: a failed setup, a Slurm time limit, a job cancelled or a container not
//! made): that role's log, its first failure line or else its last lines. Without a role to
//! start from, logs are read in the order things happen (setup, workers, router, benchmark, then
//! the Slurm log) and the first line that matches a known failure pattern, srun's and
//! slurmstepd's errors among them, is reported with the lines around it. A run with no exit
//! code is said to be unfinished, whatever its logs hold.

use std::path::{Path, PathBuf};

/// What the triage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub pattern: &'static str,
    /// The matching line with up to [`CONTEXT`] lines either side.
    pub excerpt: String,
}

pub const CONTEXT: usize = 5;

/// Tells whether a log line is a failure of one kind.
type Matcher = fn(&str) -> bool;

/// (name, matcher), in the order they are tried on each line.
const PATTERNS: &[(&str, Matcher)] = &[
    ("Python traceback", |l| {
        l.contains("Traceback (most recent call last)")
    }),
    ("Rust panic", |l| l.contains("panicked at")),
    ("out of memory", |l| {
        let l = l.to_ascii_lowercase();
        l.contains("out of memory") || l.contains("outofmemoryerror")
    }),
    // Anywhere in the line: vLLM's worker processes put `(VllmWorkerProcess pid=N) ERROR ...`
    // before every line of theirs, and a role's line prefix (`[rank 1 @ node] `) comes first.
    ("NCCL error", |l| {
        l.contains("NCCL error") || l.contains("DistBackendError") || l.contains("ncclSystemError")
    }),
    ("CUDA error", |l| {
        l.contains("CUDA error") || l.contains("[TensorRT-LLM][ERROR]") || l.contains("cudaError")
    }),
    ("address already in use", |l| {
        l.to_ascii_lowercase().contains("address already in use")
    }),
    ("role failure", |l| l.contains(": FAILED: ")),
    // A shell's words for a command it could not find (a setup's missing script or tool).
    ("command not found", |l| {
        l.ends_with(": not found") || l.contains(": command not found")
    }),
    // Slurm's own words in the job's log and the steps' output.
    ("Slurm time limit", |l| l.contains("DUE TO TIME LIMIT")),
    // Not a step's cancel (`*** STEP 5.0 ON n1 CANCELLED AT ...`) nor srun's word for its
    // task then (`task 0: Terminated`): a run's own teardown cancels every step, and an outside
    // scancel is named by the verdict (slurm_end.txt); either pointed a hang at the teardown.
    ("Slurm step error", |l| {
        let cancel = (l.contains("*** STEP ") && l.contains(" CANCELLED AT "))
            || l.ends_with(": Terminated");
        !cancel
            && (l.starts_with("srun: error:") || (l.contains("slurmstepd") && l.contains("error:")))
    }),
];

/// The logs of a run, in triage order.
pub fn ordered_logs(run_dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = Vec::new();
    names.push("install.log".into());
    let mut workers: Vec<String> = std::fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (n.starts_with("ctx_server_") || n.starts_with("gen_server_"))
                        && n.ends_with(".log")
                })
                .collect()
        })
        .unwrap_or_default();
    workers.sort_by_key(|n| {
        (
            !n.starts_with("ctx"),
            n.trim_end_matches(".log")
                .rsplit('_')
                .next()
                .and_then(|i| i.parse::<u32>().ok()),
        )
    });
    names.extend(workers);
    names.push("disagg_server.log".into());
    // Router replicas (`router.replicas` > 1), by index.
    let mut routers: Vec<(u32, String)> = std::fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let i = n
                        .strip_prefix("disagg_server_")?
                        .strip_suffix(".log")?
                        .parse()
                        .ok()?;
                    Some((i, n))
                })
                .collect()
        })
        .unwrap_or_default();
    routers.sort();
    names.extend(routers.into_iter().map(|(_, n)| n));
    names.push("benchmark.log".into());
    let mut slurm: Vec<String> = std::fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("slurm-") && n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    slurm.sort();
    names.extend(slurm);
    names
        .into_iter()
        .map(|n| run_dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// The first failure in the run's logs, if any pattern matches.
pub fn first_failure(run_dir: &Path) -> Option<Finding> {
    ordered_logs(run_dir)
        .into_iter()
        .find_map(|f| first_failure_in(&f))
}

/// The first line of `file` that matches a failure pattern, with its context. The file is read
/// as a stream and long lines are quoted cut (crate::logtext), whatever the engine wrote.
pub fn first_failure_in(file: &Path) -> Option<Finding> {
    // The last CONTEXT lines before the match, a window that slides as lines are read.
    let mut before: std::collections::VecDeque<(usize, String)> =
        std::collections::VecDeque::with_capacity(CONTEXT + 1);
    let mut hit: Option<(usize, &'static str, String)> = None;
    let mut after: Vec<(usize, String)> = Vec::new();
    crate::logtext::each_line(file, |n, line| {
        if hit.is_some() {
            after.push((n, line));
            return after.len() == CONTEXT;
        }
        // The role's own account of the engine command it starts quotes the argv, whose
        // words (`--on-error "out of memory"`) are no failure.
        let quoting = line.contains(": starting engine: ");
        match PATTERNS.iter().find(|(_, m)| !quoting && m(&line)) {
            Some((name, _)) => {
                hit = Some((n, name, line));
                false
            }
            None => {
                before.push_back((n, line));
                if before.len() > CONTEXT {
                    before.pop_front();
                }
                false
            }
        }
    });
    let (at, pattern, line) = hit?;
    let quote =
        |(k, l): (usize, String)| format!("{}{:>6} | {}", if k == at { ">" } else { " " }, k, l);
    let excerpt = before
        .into_iter()
        .chain(std::iter::once((at, line)))
        .chain(after)
        .map(quote)
        .collect::<Vec<_>>()
        .join("\n");
    Some(Finding {
        file: file.to_path_buf(),
        line: at,
        pattern,
        excerpt,
    })
}

/// The log of a role named in `status.json` (`SETUP` is the setup step's).
fn log_of(run_dir: &Path, role: &str) -> Option<PathBuf> {
    let name = match role {
        "SETUP" | "CONTAINER" => "install.log".to_string(),
        r => r.parse::<disagg_core::RoleName>().ok()?.log_file(),
    };
    Some(run_dir.join(name))
}

/// Lines shown from the end of a root cause's log when no line of it matches a pattern.
const TAIL: usize = 20;

/// The report `disagg triage` prints, and whether it found a failure; `Err` when the folder is
/// not a run folder.
pub fn triage(run_dir: &Path) -> Result<(bool, String), String> {
    if !run_dir.join("plan.json").is_file() && !run_dir.join("rendezvous").is_dir() {
        // A sweep folder: its points are run folders.
        let points: Vec<String> = std::fs::read_dir(run_dir.join("points"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(first) = points.iter().min() {
            return Err(format!(
                "{} is a sweep folder, not a run folder\nhint: triage one of its {} point(s), \
                 e.g. `disagg triage {}` (its summary.md says which failed)",
                run_dir.display(),
                points.len(),
                run_dir.join("points").join(first).display()
            ));
        }
        let hint = if run_dir.join("latest").exists() {
            format!(
                "\nhint: it holds runs: triage one, e.g. `disagg triage {}`",
                run_dir.join("latest").display()
            )
        } else {
            String::new()
        };
        return Err(format!(
            "{} is not a run folder (no plan.json){hint}",
            run_dir.display()
        ));
    }
    let state = crate::logs::RunState::of(run_dir);
    let mut out = String::new();
    let mut found = false;
    if !state.finished() {
        out.push_str(&format!("the run did not finish: {}\n", state.describe()));
        found = true;
    }
    // Who ended it, when it was not this run: written by `disagg run` as the job ended.
    let end = run_dir.join(crate::slurm::submit::SLURM_END_FILE);
    if let Ok(line) = std::fs::read_to_string(&end) {
        out.push_str(&format!("{}: {}\n", end.display(), line.trim()));
    }
    // The root cause: as the supervisor recorded it while the run went on, else the verdict;
    // but the verdict when it is Slurm's time limit, or when all the supervisor saw was its own
    // interruption (Slurm's TERM at the limit, a cancel): the report knows why.
    let verdict = {
        let path = run_dir.join("outcome.json");
        std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::outcome::Outcome>(&b).ok())
            .and_then(|o| match o.result {
                crate::outcome::RunResult::Failed(f) => Some((path, f)),
                _ => None,
            })
    };
    let status = state
        .status
        .as_ref()
        .filter(|s| s.state == crate::rendezvous::State::Failed);
    let only_interrupted =
        status.is_some_and(|s| s.role.is_none() && s.reason.as_deref() == Some("interrupted"));
    let recorded = match (status, verdict) {
        // The job ended with no word from its supervisor (killed): a status then is a role's,
        // written before the end, and the job's account is the cause.
        (_, Some((path, f)))
            if f.timeout
                || only_interrupted
                || f.reason
                    .contains(crate::slurm::submit::NO_SUPERVISOR_REPORT) =>
        {
            Some((path, f.role, Some(f.reason)))
        }
        (Some(st), _) => Some((
            run_dir.join("rendezvous/status.json"),
            st.role.clone(),
            st.reason.clone(),
        )),
        (None, v) => v.map(|(path, f)| (path, f.role, Some(f.reason))),
    };
    if let Some((file, role, reason)) = recorded {
        found = true;
        let who = role.as_deref().unwrap_or("the job");
        let reason = reason.as_deref().unwrap_or("no reason given");
        // The supervisor's reasons mostly name the role already ("GEN_0 failed: ...").
        let said = if role.is_some() && reason.starts_with(&format!("{who} ")) {
            reason.to_string()
        } else if role.is_none() && reason == crate::rendezvous::Status::INTERRUPTED {
            // A signal stopped it: nothing failed.
            "the run was interrupted (a signal stopped it; no role failed)".to_string()
        } else {
            format!("{who} failed: {reason}")
        };
        out.push_str(&format!(
            "root cause recorded in {}: {said}\n",
            file.display()
        ));
        // Interrupted: what the logs end with is the run's own teardown (roles stopped by it,
        // a step its scancel ended), no failure to point at.
        if role.is_none() && reason == crate::rendezvous::Status::INTERRUPTED {
            out.push_str(
                "the roles' logs end with the run's own teardown (each role stopped by it), \
                 not a failure of theirs\n",
            );
            return Ok((found, out));
        }
        if let Some(log) = role
            .as_deref()
            .and_then(|r| log_of(run_dir, r))
            .filter(|l| l.is_file())
        {
            match first_failure_in(&log) {
                Some(f) => out.push_str(&render(&f)),
                None => out.push_str(&format!(
                    "no known failure line in {}; its last {TAIL} lines:\n{}\n",
                    log.display(),
                    crate::logtext::tail(&log, TAIL)
                )),
            }
            return Ok((found, out));
        }
    }
    match first_failure(run_dir) {
        Some(f) => {
            found = true;
            out.push_str(&render(&f));
        }
        // A run that says it failed did fail, whatever its logs hold.
        None if !found
            && state
                .exit_code
                .is_some_and(|c| c != disagg_core::exit::PASS) =>
        {
            found = true;
            // Every role passed, and the perf check said no: its verdict is the cause.
            let perf = std::fs::read(run_dir.join("outcome.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|o| o["perf_check"].as_str().map(str::to_string))
                .filter(|p| matches!(p.as_str(), "regressed" | "not_done"));
            match perf {
                Some(p) => {
                    let first = std::fs::read_to_string(run_dir.join("perf_check.txt"))
                        .ok()
                        .and_then(|t| t.lines().next().map(str::to_string))
                        .unwrap_or_default();
                    let what = if p == "regressed" {
                        "its perf check found a regression"
                    } else {
                        "its perf check could not be done"
                    };
                    out.push_str(&format!(
                        "the run {}: every role passed, and {what}: {first} (see \
                         perf_check.txt in {})\n",
                        state.describe(),
                        run_dir.display()
                    ));
                }
                None => out.push_str(&format!(
                    "the run {}, with no root cause recorded and no known failure line in the \
                     logs of {}; see summary.md\n",
                    state.describe(),
                    run_dir.display()
                )),
            }
        }
        None if !found => out.push_str(&format!(
            "no failure found in the logs of {}\n",
            run_dir.display()
        )),
        None => {}
    }
    Ok((found, out))
}

fn render(f: &Finding) -> String {
    format!(
        "first failure: {} in {} line {}\n{}\n",
        f.pattern,
        f.file.display(),
        f.line,
        f.excerpt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_failure_in_run_order() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(dir.join("plan.json"), "{}").unwrap();
        std::fs::write(
            dir.join("benchmark.log"),
            "thread 'main' panicked at src/x.rs:1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("gen_server_0.log"),
            "ok\nok\nTraceback (most recent call last):\n  File x\nValueError\n",
        )
        .unwrap();
        // The role quoting its engine's argv is no failure, whatever the argv's words.
        std::fs::write(
            dir.join("ctx_server_0.log"),
            "disagg role CTX_0: starting engine: srv --on-error \"out of memory\"\nfine\n",
        )
        .unwrap();
        let f = first_failure(&dir).unwrap();
        assert_eq!(f.pattern, "Python traceback");
        // Engines' errors behind a prefix of their own, and Slurm's cancel of a step (the
        // run's teardown) no failure.
        let other = tempfile::tempdir().unwrap();
        for (log, want) in [
            (
                "waiting\n(VllmWorkerProcess pid=232) ERROR 12-07 nccl.py:1] NCCL error: unhandled system error\n",
                Some(("NCCL error", 2)),
            ),
            (
                "ok\n[TensorRT-LLM][ERROR] CUDA runtime error in cudaMalloc: out of range\n",
                Some(("CUDA error", 2)),
            ),
            (
                "(VllmWorkerProcess pid=9) ERROR Traceback (most recent call last):\n",
                Some(("Python traceback", 1)),
            ),
            (
                "waiting\nslurmstepd-vm: error: *** STEP 1417.0 ON vm CANCELLED AT 2026-12-07T22:00:00 ***\nsrun: error: vm: task 0: Terminated\n",
                None,
            ),
        ] {
            let file = other.path().join("gen_server_0.log");
            std::fs::write(&file, log).unwrap();
            let got = first_failure_in(&file).map(|f| (f.pattern, f.line));
            assert_eq!(got, want, "{log}");
        }
        assert!(f.file.ends_with("gen_server_0.log"));
        assert_eq!(f.line, 3);
        assert!(f.excerpt.contains(">     3 | Traceback"), "{}", f.excerpt);
        std::fs::write(dir.join("install.log"), "ERROR: CUDA out of memory\n").unwrap();
        assert_eq!(
            first_failure(&dir).unwrap().pattern,
            "out of memory",
            "setup comes first"
        );
        // A setup whose script is missing: the shell's words are the failure.
        std::fs::write(
            dir.join("install.log"),
            "installing\nsh: 1: ./install_deps.sh: not found\n",
        )
        .unwrap();
        let f = first_failure(&dir).unwrap();
        assert_eq!((f.pattern, f.line), ("command not found", 2));
    }

    #[test]
    fn a_sweep_folder_points_at_its_points() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path();
        std::fs::create_dir_all(dir.join("points/01-a")).unwrap();
        std::fs::create_dir_all(dir.join("points/02-b")).unwrap();
        let e = triage(dir).unwrap_err();
        assert!(
            e.contains("is a sweep folder") && e.contains("points/01-a"),
            "{e}"
        );
    }

    #[test]
    fn starts_from_the_root_cause_in_the_status_and_says_when_a_run_is_unfinished() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(dir.join("rendezvous/status.json"), r#"{"run_id":"x","state":"failed","role":"DISAGG_SERVER","reason":"DISAGG_SERVER was killed by signal 9 (SIGKILL)"}"#).unwrap();
        std::fs::write(
            dir.join("disagg_server.log"),
            "router on 127.0.0.1:1\nserving\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("benchmark.log"),
            "disagg role BENCHMARK: FAILED: 8 of 8 requests failed\n",
        )
        .unwrap();
        std::fs::write(dir.join("exit_code"), "1\n").unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found);
        assert!(
            text.contains("status.json: DISAGG_SERVER was killed by signal 9"),
            "{text}"
        );
        assert!(
            text.contains("disagg_server.log; its last 20 lines:\nrouter on"),
            "its log, not benchmark.log: {text}"
        );
        assert!(!text.contains("benchmark.log"), "{text}");
        assert!(!text.contains("did not finish"), "{text}");

        // No exit code: the supervisor never finished, whatever status.json says.
        std::fs::remove_file(dir.join("exit_code")).unwrap();
        std::fs::write(
            dir.join("rendezvous/status.json"),
            r#"{"run_id":"x","state":"done"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("benchmark.log"), "fine\n").unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.starts_with("the run did not finish: unfinished: no exit_code"),
            "{text}"
        );
        assert!(text.contains("status.json says done"), "{text}");
        assert!(!text.contains("no failure found"), "{text}");
    }

    /// A run a signal stopped is said to be interrupted, not failed; a config folder is pointed
    /// at its runs.
    #[test]
    fn an_interrupted_run_is_not_called_failed_and_a_config_folder_points_at_its_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cfg");
        let dir = config.join("20261206T000000.000Z");
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::os::unix::fs::symlink("20261206T000000.000Z", config.join("latest")).unwrap();
        std::fs::write(dir.join("plan.json"), "{}").unwrap();
        std::fs::write(dir.join("exit_code"), "130\n").unwrap();
        std::fs::write(
            dir.join("rendezvous/status.json"),
            r#"{"run_id":"x","state":"failed","reason":"interrupted"}"#,
        )
        .unwrap();
        // What the teardown left in the logs (a step our own scancel ended) is no failure.
        std::fs::write(
            dir.join("slurm-7.log"),
            "srun: error: vm: task 0: Terminated\nCTX_0: FAILED: its engine was killed by \
             signal 15\n",
        )
        .unwrap();
        let (_, text) = triage(&dir).unwrap();
        assert!(
            text.contains(
                "status.json: the run was interrupted (a signal stopped it; no role failed)"
            ),
            "{text}"
        );
        assert!(!text.contains("the job failed"), "{text}");
        assert!(
            text.contains("the run's own teardown") && !text.contains("first failure"),
            "{text}"
        );
        let e = triage(&config).unwrap_err();
        assert!(
            e.contains(&format!(
                "hint: it holds runs: triage one, e.g. `disagg triage {}`",
                config.join("latest").display()
            )),
            "{e}"
        );
    }

    /// A supervisor killed before its report: the status a role wrote before the end is no
    /// root cause; the job's account is.
    #[test]
    fn a_job_whose_supervisor_died_is_triaged_by_the_jobs_account() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(dir.join("plan.json"), "{}").unwrap();
        std::fs::write(dir.join("exit_code"), "1\n").unwrap();
        std::fs::write(
            dir.join("rendezvous/status.json"),
            r#"{"run_id":"x","state":"failed","role":"BENCHMARK","reason":"the canary request failed: stream_cut"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("outcome.json"), r#"{"result":{"result":"failed","role":null,"reason":"Slurm job 510 ended in state FAILED before its supervisor wrote a report (its batch script was killed by signal 10 (SIGUSR1))","timeout":false},"roles":[],"duration_s":20.0}"#).unwrap();
        let (found, text) = triage(dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.contains("outcome.json: the job failed: Slurm job 510 ended in state FAILED"),
            "{text}"
        );
        assert!(!text.contains("BENCHMARK failed"), "{text}");
    }

    /// Under Slurm a run can fail before any role writes a status: the verdict is in
    /// outcome.json, the evidence in install.log or the job's log.
    #[test]
    fn without_a_status_the_verdict_names_the_root_cause_and_slurms_words_are_failures() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        std::fs::write(dir.join("plan.json"), "{}").unwrap();
        std::fs::write(dir.join("exit_code"), "1\n").unwrap();
        std::fs::write(
            dir.join("install.log"),
            "setting up on dgn1\nsetting up on dgn2\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("slurm-677.log"),
            "FAILED: setup exited with status 3 on a node (see install.log)\n\
             srun: error: dgn1: task 0: Exited with exit code 3\n",
        )
        .unwrap();
        std::fs::write(dir.join("outcome.json"), r#"{"result":{"result":"failed","role":"SETUP","reason":"setup exited with status 3 on a node (see install.log)","timeout":false},"roles":[],"duration_s":0.0}"#).unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.contains("outcome.json: SETUP failed: setup exited with status 3"),
            "{text}"
        );
        assert!(
            text.contains("install.log; its last 20 lines:\nsetting up"),
            "{text}"
        );

        // The job as a whole (no role): Slurm's own lines are the evidence. At the time limit
        // the supervisor, given Slurm's TERM, recorded only that it was interrupted: the
        // verdict's time limit is the root cause.
        std::fs::write(dir.join("outcome.json"), r#"{"result":{"result":"failed","role":null,"reason":"the job ended at its time limit","timeout":true},"roles":[],"duration_s":60.0}"#).unwrap();
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(
            dir.join("rendezvous/status.json"),
            r#"{"run_id":"x","state":"failed","reason":"interrupted"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("slurm-677.log"),
            "benchmark running\nslurmstepd-dgn1: error: *** JOB 677 ON dgn1 CANCELLED AT 2026-12-05T21:55:21 DUE TO TIME LIMIT ***\n",
        )
        .unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.contains("the job failed: the job ended at its time limit"),
            "{text}"
        );
        assert!(
            text.contains("first failure: Slurm time limit in"),
            "{text}"
        );

        // Nothing recorded and nothing matched, but the exit code says failed: never "no
        // failure found".
        std::fs::remove_file(dir.join("outcome.json")).unwrap();
        std::fs::remove_file(dir.join("rendezvous/status.json")).unwrap();
        std::fs::write(dir.join("slurm-677.log"), "quiet\n").unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.contains("the run failed (exit 1), with no root cause recorded"),
            "{text}"
        );
        assert!(!text.contains("no failure found"), "{text}");

        // Every role passed and the perf check regressed: that is the cause said.
        std::fs::write(
            dir.join("outcome.json"),
            r#"{"result":{"result":"passed"},"roles":[],"duration_s":1.0,"perf_check":"regressed"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("exit_code"), "3\n").unwrap();
        std::fs::write(
            dir.join("perf_check.txt"),
            "perf check: REGRESSED (2 of 8 metrics)\n",
        )
        .unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found, "{text}");
        assert!(
            text.contains(
                "every role passed, and its perf check found a regression: perf check: \
                 REGRESSED (2 of 8 metrics)"
            ),
            "{text}"
        );
    }
}
