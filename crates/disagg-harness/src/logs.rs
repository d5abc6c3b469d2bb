//! `disagg logs`: list a config's runs and their files, and pack one run into a tarball.

use std::path::{Path, PathBuf};

use crate::rundir;

/// How a run folder says its run ended: its exit code (written last, once every report is),
/// and the final word of `rendezvous/status.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// `None`: the run has not finished (still running, or `disagg run` was killed).
    pub exit_code: Option<i32>,
    /// `state` and `role`/`reason` of `status.json`, if there is one.
    pub status: Option<crate::rendezvous::Status>,
    /// An unfinished run's Slurm job (its id, and what Slurm says of it, if it still knows):
    /// a `--no-wait` job has no `disagg run` waiting for it.
    pub slurm_job: Option<(String, Option<crate::slurm::job::JobInfo>)>,
    /// Why a finished run failed, as its reports say (`outcome.json`): also when no role wrote
    /// `status.json` (a job Slurm ended before its supervisor could, reported by `disagg run`).
    pub failure: Option<String>,
}

impl RunState {
    pub fn of(run_dir: &Path) -> Self {
        let exit_code = std::fs::read_to_string(run_dir.join(crate::run::EXIT_CODE_FILE))
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        let status = std::fs::read(run_dir.join("rendezvous/status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::rendezvous::Status>(&b).ok());
        let slurm_job = exit_code
            .is_none()
            .then(|| std::fs::read_to_string(run_dir.join(crate::slurm::submit::JOB_ID_FILE)))
            .and_then(Result::ok)
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .map(|id| {
                let info = crate::slurm::job::info(&id);
                (id, info)
            });
        let failure = crate::outcome::failure_reason(run_dir);
        Self {
            exit_code,
            status,
            slurm_job,
            failure,
        }
    }

    pub fn finished(&self) -> bool {
        self.exit_code.is_some()
    }

    /// One line: "passed (exit 0)", "failed: GEN_0 exited with status 1 (exit 1)", or
    /// "unfinished: ...".
    pub fn describe(&self) -> String {
        let reason = self.status.as_ref().and_then(|s| s.reason.clone());
        match self.exit_code {
            Some(code) => {
                // The reports' word first: the job's end may have been written over the
                // supervisor's (a lost node), or without one.
                let reason = self.failure.clone().or(reason);
                use disagg_core::exit;
                let verdict = match code {
                    exit::PASS => "passed",
                    exit::TEST_FAILED => "failed",
                    exit::USAGE => "not run",
                    exit::PERF_REGRESSION => "regressed",
                    c if exit::is_interruption(c) => "interrupted",
                    _ => "ended",
                };
                match reason {
                    Some(r) if code != exit::PASS => format!("{verdict}: {r} (exit {code})"),
                    _ => format!("{verdict} (exit {code})"),
                }
            }
            None => {
                let mut s = match &self.slurm_job {
                    Some((id, Some(i))) if i.is_pending() => format!(
                        "waiting: Slurm job {id} is PENDING ({}); its reports come once it has run",
                        i.reason.as_deref().unwrap_or("no reason given")
                    ),
                    Some((id, Some(i))) if !i.state.is_terminal() => format!(
                        "running: Slurm job {id} is {}; its reports come when it ends",
                        i.state.0
                    ),
                    Some((id, Some(i))) => format!(
                        "unfinished: Slurm job {id} ended {} with no report written (cancelled \
                         before it started, or its supervisor killed); none will come",
                        i.state.0
                    ),
                    Some((id, None)) => format!(
                        "unfinished: no {}, and Slurm no longer knows job {id} (or cannot be \
                         asked)",
                        crate::run::EXIT_CODE_FILE
                    ),
                    None => format!(
                        "unfinished: no {} (`disagg run` is still running, or was killed before \
                         its reports)",
                        crate::run::EXIT_CODE_FILE
                    ),
                };
                if let Some(st) = &self.status {
                    let state = match st.state {
                        crate::rendezvous::State::Done => "done",
                        crate::rendezvous::State::Failed => "failed",
                    };
                    s.push_str(&format!("; status.json says {state}"));
                    if let Some(r) = reason {
                        s.push_str(&format!(": {r}"));
                    }
                }
                s
            }
        }
    }
}

/// Runs of a config, oldest first, by when each was planned (its `plan.json`, written at launch,
/// else the folder's own time): run ids are timestamps locally but Slurm job ids under Slurm,
/// and as text `284` sorts after `2026…` and `999` after `1000`.
pub fn list_runs(workspace: &Path, config: &str) -> std::io::Result<Vec<PathBuf>> {
    let dir = workspace.join("disagg_logs").join(config);
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| {
            let p = e.path();
            let planned = std::fs::metadata(p.join("plan.json"))
                .or_else(|_| std::fs::metadata(&p))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (planned, p)
        })
        .collect();
    runs.sort();
    Ok(runs.into_iter().map(|(_, p)| p).collect())
}

/// The run folder of `run` (an id, or `latest`), or the newest one.
pub fn find_run(workspace: &Path, config: &str, run: Option<&str>) -> Result<PathBuf, String> {
    let name = disagg_core::ConfigName::new(config)
        .map_err(|why| format!("`{config}` is not a config name: {why}"))?;
    let dir = rundir::config_dir(workspace, &name);
    let runs = list_runs(workspace, config)
        .map_err(|e| format!("no runs of {config} in {}: {e}", dir.display()))?;
    match run {
        Some(id) if id != "latest" => {
            let safe = disagg_core::ConfigName::new(id)
                .map_err(|why| format!("`{id}` is not a run id: {why}"))?;
            let p = dir.join(safe.as_str());
            if p.is_dir() {
                Ok(p)
            } else {
                Err(format!("no run {id} in {}", dir.display()))
            }
        }
        // The run `latest` points at (the last one launched), else the newest.
        _ => std::fs::read_link(dir.join("latest"))
            .ok()
            .and_then(|target| target.file_name().map(|n| dir.join(n)))
            .filter(|p| p.is_dir())
            .or_else(|| runs.last().cloned())
            .ok_or_else(|| format!("no runs of {config} in {}", dir.display())),
    }
}

/// A listing: each run with its status, then the files of the chosen one.
pub fn describe(workspace: &Path, config: &str, run: Option<&str>) -> Result<String, String> {
    let runs = list_runs(workspace, config).map_err(|e| {
        format!(
            "no runs of {config} under {}: {e}",
            workspace.join("disagg_logs").display()
        )
    })?;
    let mut out = format!(
        "{config}: {} run(s) in {}\n",
        runs.len(),
        workspace.join("disagg_logs").join(config).display()
    );
    for r in &runs {
        out.push_str(&format!(
            "  {}  {}\n",
            r.file_name().unwrap_or_default().to_string_lossy(),
            RunState::of(r).describe()
        ));
    }
    let chosen = find_run(workspace, config, run)?;
    out.push_str(&format!("files of {}:\n", chosen.display()));
    let mut files = Vec::new();
    collect(&chosen, &chosen, &mut files);
    files.sort();
    for (rel, what) in files {
        match what {
            Listed::File(size) => out.push_str(&format!("  {rel:<40} {size:>10} bytes\n")),
            Listed::Link(target) => out.push_str(&format!("  {rel:<40} -> {target}\n")),
        }
    }
    Ok(out)
}

/// A file of a run folder as `disagg logs --files` lists it: its size, or, for one of the
/// TensorRT-LLM-name aliases, what it points at.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Listed {
    File(u64),
    Link(String),
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Listed)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        let Ok(m) = e.metadata() else { continue };
        if m.is_symlink() {
            let target =
                std::fs::read_link(&p).map_or_else(|_| "?".into(), |t| t.display().to_string());
            out.push((rel, Listed::Link(target)));
        } else if m.is_dir() {
            collect(root, &p, out);
        } else {
            out.push((rel, Listed::File(m.len())));
        }
    }
}

/// Packs a run folder into `dest` (`.tar.gz`), its files under `<config>/<run_id>/`.
pub fn pack(run_dir: &Path, dest: &Path) -> std::io::Result<()> {
    // An archive written inside the folder it archives would hold a cut copy of itself.
    let inside = |p: &Path| {
        let dir = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
        let parent = p
            .parent()
            .filter(|q| !q.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::canonicalize(parent).is_ok_and(|q| q.starts_with(&dir))
    };
    if inside(dest) {
        return Err(std::io::Error::other(format!(
            "{} is inside the run folder it would archive; write it elsewhere (e.g. the \
             workspace)",
            dest.display()
        )));
    }
    let file = std::fs::File::create(dest)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let run = run_dir.file_name().unwrap_or_default();
    let config = run_dir
        .parent()
        .and_then(|p| p.file_name())
        .unwrap_or_default();
    tar.append_dir_all(Path::new(config).join(run), run_dir)?;
    tar.into_inner()?.finish()?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Slurm run (job id 284) then a local run (a timestamp): as text the job id sorts last,
    /// but the newest run is the local one, and `latest` says so.
    #[test]
    fn the_newest_run_is_the_last_launched_not_the_last_name() {
        let ws = tempfile::tempdir().unwrap();
        let dir = ws.path().join("disagg_logs/c");
        let at = |secs: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        for (id, planned) in [
            ("284", at(1_800_000_000)),
            ("20270115T101010.000Z", at(1_800_000_100)),
        ] {
            std::fs::create_dir_all(dir.join(id)).unwrap();
            let plan = std::fs::File::create(dir.join(id).join("plan.json")).unwrap();
            plan.set_modified(planned).unwrap();
        }
        let names = |runs: Vec<PathBuf>| -> Vec<String> {
            runs.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(list_runs(ws.path(), "c").unwrap()),
            ["284", "20270115T101010.000Z"]
        );
        let newest = find_run(ws.path(), "c", None).unwrap();
        assert_eq!(newest, dir.join("20270115T101010.000Z"));
        // `latest` decides when it is there (a run launched last whose plan is older).
        std::os::unix::fs::symlink("284", dir.join("latest")).unwrap();
        assert_eq!(find_run(ws.path(), "c", None).unwrap(), dir.join("284"));
        assert_eq!(
            find_run(ws.path(), "c", Some("latest")).unwrap(),
            dir.join("284")
        );
        // An archive of a run is not written into the run.
        let e = pack(&dir.join("284"), &dir.join("284/logs.tar.gz")).unwrap_err();
        assert!(e.to_string().contains("inside the run folder"), "{e}");
        assert!(!dir.join("284/logs.tar.gz").exists());
        pack(&dir.join("284"), &ws.path().join("logs.tar.gz")).unwrap();
    }

    /// A failed run whose reports `disagg run` wrote (Slurm ended the job before its
    /// supervisor could: no `status.json`) is listed with its reason, from `outcome.json`.
    #[test]
    fn a_failed_run_is_listed_with_its_reports_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::run::EXIT_CODE_FILE), "1\n").unwrap();
        let outcome = crate::outcome::Outcome {
            result: crate::outcome::RunResult::Failed(crate::outcome::Failure {
                role: None,
                reason: "Slurm job 983 ended in state NODE_FAIL".into(),
                timeout: false,
            }),
            roles: Vec::new(),
            duration_s: 1.0,
        };
        crate::atomic::write_json(&dir.path().join("outcome.json"), &outcome).unwrap();
        assert_eq!(
            RunState::of(dir.path()).describe(),
            "failed: Slurm job 983 ended in state NODE_FAIL (exit 1)"
        );
    }
}
