//! The sweep folder and `--resume`.
//!
//! ```text
//! $WORKSPACE/disagg_sweeps/<SWEEP>/<SWEEP_RUN_ID>/
//!   sweep.yaml            the sweep file as given
//!   sweep.json            every point: values, GPUs, case hash, status, run folder, exit code,
//!                         Slurm job (`--no-wait` points stay `submitted` until [`refresh`])
//!   summary.md            the same as a table, and the sweep's verdict
//!   points/NN-<CONFIG>    a link to each point's run folder
//! $WORKSPACE/disagg_sweeps/<SWEEP>/latest → the newest
//! ```
//!
//! `--resume` skips every case whose resolved content (by [`crate::run::case_hash`]) already
//! has a passed run (exit code 0) in its config folder, and links that run instead; a failed,
//! regressed or interrupted run does not count, so its point runs again. A resumed sweep
//! continues in its latest folder when that folder holds the same points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use disagg_core::exit;
use disagg_core::sweep::Sweep;
use serde::{Deserialize, Serialize};

use crate::run::Ready;

/// A case that is a point of a sweep.
#[derive(Debug, Clone)]
pub(crate) struct PointOf {
    pub(crate) sweep: Arc<Sweep>,
    /// 0-based, into `sweep.points`.
    pub(crate) index: usize,
}

impl PointOf {
    pub(crate) fn point(&self) -> &disagg_core::sweep::SweepPoint {
        &self.sweep.points[self.index]
    }
}

/// The file in a sweep folder listing its points.
pub const SWEEP_FILE: &str = "sweep.json";

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub sweep: String,
    /// The sweep file, absolute.
    pub file: PathBuf,
    pub sweep_id: String,
    /// The names swept, in axis order.
    pub names: Vec<String>,
    pub points: Vec<PointRecord>,
}

/// One point of `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    /// 1-based.
    pub index: usize,
    pub config_name: String,
    /// Sweep name → value.
    pub values: BTreeMap<String, serde_json::Value>,
    /// The workers' GPUs.
    pub gpus: u32,
    pub case_hash: String,
    pub status: PointStatus,
    /// An earlier run reused by `--resume`.
    #[serde(default)]
    pub reused: bool,
    pub run_dir: Option<PathBuf>,
    pub exit_code: Option<i32>,
    /// The Slurm job running it, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// In the run folder of a point submitted with `--no-wait`: the sweep folder, absolute, whose
/// record the job's supervisor brings up to date when the run ends ([`refresh`]).
pub const SWEEP_DIR_FILE: &str = "sweep_dir";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    Pending,
    Running,
    /// Submitted to Slurm by `disagg run --no-wait`, which did not wait for it: its job is
    /// queued, running, or ended without telling (see [`refresh`]).
    Submitted,
    Passed,
    Regressed,
    Failed,
    Interrupted,
    /// The sweep ended (interrupted) before this point started.
    NotRun,
}

/// Whether a point with `status` has an account of its own (it ran, and ended).
fn finished(status: PointStatus) -> bool {
    matches!(
        status,
        PointStatus::Passed
            | PointStatus::Regressed
            | PointStatus::Failed
            | PointStatus::Interrupted
    )
}

impl PointStatus {
    pub fn from_code(code: i32) -> Self {
        match code {
            exit::PASS => Self::Passed,
            exit::PERF_REGRESSION => Self::Regressed,
            c if exit::is_interruption(c) => Self::Interrupted,
            _ => Self::Failed,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Submitted => "submitted",
            Self::Passed => "passed",
            Self::Regressed => "REGRESSED",
            Self::Failed => "FAILED",
            Self::Interrupted => "interrupted",
            Self::NotRun => "not run",
        }
    }
}

impl SweepRecord {
    /// Reads a sweep folder's `sweep.json`.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join(SWEEP_FILE);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `$WORKSPACE/disagg_sweeps/<name>`.
pub fn sweep_dir(workspace: &Path, name: &str) -> PathBuf {
    workspace.join("disagg_sweeps").join(name)
}

/// The newest run of `config` whose case hash is `hash`, when it passed and its pass was
/// judged against `basis` ([`crate::run::perf_basis`]; any, when `None`). A newer run of the
/// same case that failed, regressed, was interrupted or never finished is the case's standing:
/// an older pass behind it is no pass of the case now.
pub fn find_passed(
    workspace: &Path,
    config: &disagg_core::ConfigName,
    hash: &str,
    basis: Option<&str>,
) -> Option<PathBuf> {
    let newest = newest_of(workspace, config, hash)?;
    let read = |f: &str| std::fs::read_to_string(newest.join(f)).unwrap_or_default();
    (read(crate::run::EXIT_CODE_FILE).trim() == exit::PASS.to_string()
        && basis.is_none_or(|b| read(crate::run::PERF_BASIS_FILE).trim() == b))
    .then_some(newest)
}

/// The newest run folder of `config` whose case hash is `hash`, however it ended.
fn newest_of(workspace: &Path, config: &disagg_core::ConfigName, hash: &str) -> Option<PathBuf> {
    let dir = crate::rundir::config_dir(workspace, config);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| !p.ends_with("latest") && p.is_dir())
        .collect();
    runs.sort();
    runs.into_iter().rev().find(|run| {
        std::fs::read_to_string(run.join(crate::run::CASE_HASH_FILE))
            .is_ok_and(|h| h.trim() == hash)
    })
}

/// The passed run `--resume` reuses for this case: one of the same content whose pass was
/// judged as this run's would be (any pass, when the check is skipped now). A pass judged
/// otherwise (its check skipped, a baseline since edited) is run again, and said so.
fn reusable(workspace: &Path, r: &Ready, hash: &str) -> Option<PathBuf> {
    let config = &r.case.config_name;
    let basis = (r.perf_basis != "skipped").then_some(r.perf_basis.as_str());
    if let Some(run) = find_passed(workspace, config, hash, basis) {
        return Some(run);
    }
    // Its newest run did not pass: said, with how it ended.
    if let Some(newest) = newest_of(workspace, config, hash) {
        let code = std::fs::read_to_string(newest.join(crate::run::EXIT_CODE_FILE))
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        if code != exit::PASS.to_string() {
            let how = match code.as_str() {
                "" => "did not finish".to_string(),
                c => format!("ended with exit code {c}"),
            };
            say!(
                "disagg: {config}: its latest run, {}, {how}; run again (--resume reuses only a \
                 case whose latest run passed)",
                newest.display()
            );
            return None;
        }
    }
    if let Some(other) = find_passed(workspace, config, hash, None) {
        let then =
            std::fs::read_to_string(other.join(crate::run::PERF_BASIS_FILE)).unwrap_or_default();
        let how = match then.trim() {
            "skipped" => "with its perf check skipped".to_string(),
            b if b.starts_with("baseline") && basis.is_some_and(|n| n.starts_with("baseline")) => {
                "against the baseline's earlier contents".to_string()
            }
            "" => "before disagg recorded how a pass was judged".to_string(),
            b => format!("judged otherwise ({b})"),
        };
        say!(
            "disagg: {config}: passed in {} {how}; run again (--resume reuses a pass only as \
             this run would judge it)",
            other.display()
        );
    }
    None
}

/// One open sweep folder.
struct Open {
    sweep: Arc<Sweep>,
    dir: PathBuf,
    record: SweepRecord,
    /// The folder's use lock, held while this `disagg run` writes into it.
    _held: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// The lock a `disagg run` holds on the sweep folder it writes into, so that a second
/// `--resume` of the same sweep at once does not continue in it too (the last writer's summary
/// would replace the other's).
const IN_USE_LOCK: &str = ".in-use.lock";

/// Takes `dir`'s use lock: `Err(())` when another process holds it, `Ok(None)` when there is
/// no lock to take (the file cannot be made: the folder's writes will say why).
fn hold(dir: &Path) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, ()> {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(IN_USE_LOCK))
    else {
        return Ok(None);
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(()),
        Err(_) => Ok(None),
    }
}

/// What `disagg run` keeps of the cases it was given: which were reused, and the sweep folders.
pub(crate) struct Book {
    workspace: PathBuf,
    /// Per case: the earlier passed run reused by `--resume`.
    reused: Vec<Option<PathBuf>>,
    /// Per case: its sweep folder (index into `open`) and point index.
    of: Vec<Option<(usize, usize)>>,
    open: Vec<Open>,
    /// Per case: its exit code once it ended.
    codes: Vec<Option<i32>>,
    /// Per case: its run folder once it started.
    dirs: Vec<Option<PathBuf>>,
}

impl Book {
    /// Finds the runs `--resume` reuses and opens a folder for each sweep.
    pub(crate) fn open(ready: &[Ready], workspace: &Path, resume: bool) -> Result<Self, String> {
        let hashes: Vec<String> = ready
            .iter()
            .map(|r| crate::run::case_hash(&r.case))
            .collect();
        let reused: Vec<Option<PathBuf>> = ready
            .iter()
            .zip(&hashes)
            .map(|(r, h)| resume.then(|| reusable(workspace, r, h)).flatten())
            .collect();
        for (r, prior) in ready.iter().zip(&reused) {
            if let Some(p) = prior {
                say!(
                    "disagg: {}: already passed in {}; not run again (--resume)",
                    r.case.config_name,
                    p.display()
                );
            }
        }
        let mut book = Book {
            workspace: workspace.to_path_buf(),
            reused,
            of: vec![None; ready.len()],
            open: Vec::new(),
            codes: vec![None; ready.len()],
            dirs: vec![None; ready.len()],
        };
        for (i, r) in ready.iter().enumerate() {
            let Some(p) = &r.point else { continue };
            let slot = match book
                .open
                .iter()
                .position(|o| Arc::ptr_eq(&o.sweep, &p.sweep))
            {
                Some(s) => s,
                None => {
                    let cases: Vec<(usize, &Ready)> = ready
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| {
                            x.point
                                .as_ref()
                                .is_some_and(|q| Arc::ptr_eq(&q.sweep, &p.sweep))
                        })
                        .collect();
                    let o = book.open_sweep(&p.sweep, &cases, &hashes, resume)?;
                    book.open.push(o);
                    book.open.len() - 1
                }
            };
            book.of[i] = Some((slot, p.index));
        }
        for slot in 0..book.open.len() {
            book.save(slot);
        }
        Ok(book)
    }

    fn open_sweep(
        &self,
        sweep: &Arc<Sweep>,
        cases: &[(usize, &Ready)],
        hashes: &[String],
        resume: bool,
    ) -> Result<Open, String> {
        let points: Vec<PointRecord> = cases
            .iter()
            .map(|&(i, r)| {
                let p = r.point.as_ref().expect("a sweep's case").point();
                let (status, run_dir, exit_code) = match &self.reused[i] {
                    Some(d) => (PointStatus::Passed, Some(d.clone()), Some(exit::PASS)),
                    None => (PointStatus::Pending, None, None),
                };
                PointRecord {
                    index: p.index,
                    config_name: r.case.config_name.to_string(),
                    values: p
                        .values
                        .iter()
                        .map(|(k, v)| (k.clone(), disagg_core::sweep::json_value(v)))
                        .collect(),
                    gpus: disagg_core::sweep::gpu_count(&r.case.case),
                    case_hash: hashes[i].clone(),
                    status,
                    reused: self.reused[i].is_some(),
                    run_dir,
                    exit_code,
                    job: None,
                }
            })
            .collect();
        let parent = sweep_dir(&self.workspace, sweep.name.as_str());
        // A resumed sweep continues in its latest folder when that holds the same points.
        if resume {
            let latest = parent.join("latest");
            let old = SweepRecord::read(&latest);
            if let Err(why) = &old {
                if latest.exists() {
                    say!(
                        "disagg: sweep {}: cannot continue in {}: {why}; this run writes a new \
                         sweep folder",
                        sweep.name,
                        latest.display()
                    );
                }
            }
            if let Ok(old) = old {
                let same =
                    old.points.len() == points.len()
                        && old.points.iter().zip(&points).all(|(a, b)| {
                            a.case_hash == b.case_hash && a.config_name == b.config_name
                        });
                if !same {
                    say!(
                        "disagg: sweep {}: {} holds other points ({} there, {} now, or their \
                         cases changed); this run writes a new sweep folder",
                        sweep.name,
                        latest.display(),
                        old.points.len(),
                        points.len()
                    );
                }
                if same {
                    let dir = std::fs::canonicalize(&latest)
                        .map_err(|e| format!("cannot open {}: {e}", latest.display()))?;
                    match hold(&dir) {
                        Ok(held) => {
                            say!(
                                "disagg: sweep {}: resuming in {}",
                                sweep.name,
                                dir.display()
                            );
                            // A point to run again keeps its last account (failed, with its
                            // run folder) until it starts: a resume stopped before it did must
                            // not leave it "not run", its run lost from the sweep's reports.
                            let points = points
                                .into_iter()
                                .zip(&old.points)
                                .map(|(mut p, was)| {
                                    if !p.reused && finished(was.status) {
                                        p.status = was.status;
                                        p.run_dir.clone_from(&was.run_dir);
                                        p.exit_code = was.exit_code;
                                        p.job.clone_from(&was.job);
                                    }
                                    p
                                })
                                .collect();
                            let record = SweepRecord { points, ..old };
                            return Ok(Open {
                                sweep: sweep.clone(),
                                dir,
                                record,
                                _held: held,
                            });
                        }
                        Err(()) => say!(
                            "disagg: sweep {}: {} is in use by another `disagg run` (another \
                             --resume of this sweep?); this run writes a new sweep folder",
                            sweep.name,
                            dir.display()
                        ),
                    }
                }
            }
        }
        let (id, dir) = crate::rundir::create_in(&parent, &crate::rundir::timestamp_run_id())
            .map_err(|e| {
                format!(
                    "cannot create a sweep folder under {}: {e}\n{}",
                    parent.display(),
                    crate::rundir::workspace_hint(&self.workspace)
                )
            })?;
        std::fs::copy(&sweep.path, dir.join("sweep.yaml")).map_err(|e| {
            format!(
                "cannot copy {} into {}: {e}",
                sweep.path.display(),
                dir.display()
            )
        })?;
        say!(
            "disagg: sweep {}: {} point{}, folder {}",
            sweep.name,
            points.len(),
            if points.len() == 1 { "" } else { "s" },
            dir.display()
        );
        // A new folder is this run's alone; held so that a --resume started meanwhile does not
        // continue in it.
        let held = hold(&dir).unwrap_or(None);
        Ok(Open {
            _held: held,
            sweep: sweep.clone(),
            record: SweepRecord {
                sweep: sweep.name.to_string(),
                file: std::path::absolute(&sweep.path).unwrap_or(sweep.path.clone()),
                sweep_id: id,
                names: sweep.names.clone(),
                points,
            },
            dir,
        })
    }

    pub(crate) fn is_reused(&self, i: usize) -> bool {
        self.reused[i].is_some()
    }

    /// The exit codes of the reused runs (all passed).
    pub(crate) fn reused_codes(&self) -> Vec<i32> {
        self.reused.iter().flatten().map(|_| exit::PASS).collect()
    }

    fn point_mut(&mut self, i: usize) -> Option<(usize, &mut PointRecord)> {
        let (slot, index) = self.of[i]?;
        let rec = self.open[slot].record.points.get_mut(index)?;
        Some((slot, rec))
    }

    /// Case `i` started in `run_dir`.
    pub(crate) fn started(&mut self, i: usize, run_dir: &Path) {
        if let Some(d) = self.dirs.get_mut(i) {
            *d = Some(run_dir.to_path_buf());
        }
        if let Some((slot, p)) = self.point_mut(i) {
            p.status = PointStatus::Running;
            p.run_dir = Some(run_dir.to_path_buf());
            self.save(slot);
        }
    }

    /// Case `i` was submitted as Slurm job `job` into `run_dir`, and `disagg run` does not wait
    /// for it (`--no-wait`): the point says so, and its run folder names the sweep folder, so
    /// that the job's supervisor brings the sweep up to date when it ends.
    pub(crate) fn submitted(&mut self, i: usize, run_dir: &Path, job: &str) {
        if let Some((slot, p)) = self.point_mut(i) {
            p.status = PointStatus::Submitted;
            p.run_dir = Some(run_dir.to_path_buf());
            p.job = Some(job.to_string());
            let dir = self.open[slot].dir.clone();
            let _ = crate::atomic::write(
                &run_dir.join(SWEEP_DIR_FILE),
                dir.display().to_string().as_bytes(),
            );
            self.save(slot);
        }
    }

    /// `disagg run --no-wait` is done: every point not submitted is marked not run, and the
    /// summaries say which jobs are still out (no report.html yet: the last job writes it).
    pub(crate) fn close_submitted(&mut self) {
        for slot in 0..self.open.len() {
            self.mark_unstarted(slot);
            let o = &self.open[slot];
            let out = o
                .record
                .points
                .iter()
                .filter(|p| p.status == PointStatus::Submitted)
                .count();
            if complete(&o.record) {
                crate::study::write_sweep_report(&o.dir);
            }
            say!(
                "disagg: sweep {}: {out} point(s) submitted, not waited for; the last of their jobs to end writes the sweep's summary.md and report.html in {}",
                o.record.sweep,
                o.dir.display()
            );
        }
    }

    /// Marks the points of sweep `slot` that never started (or were cut short before a verdict)
    /// as not run, and saves it.
    fn mark_unstarted(&mut self, slot: usize) {
        for p in &mut self.open[slot].record.points {
            if matches!(p.status, PointStatus::Pending | PointStatus::Running) {
                p.status = PointStatus::NotRun;
            }
        }
        self.save(slot);
    }

    /// Case `i` ended with `code`.
    pub(crate) fn finished(&mut self, i: usize, code: i32) {
        if let Some(c) = self.codes.get_mut(i) {
            *c = Some(code);
        }
        if let Some((slot, p)) = self.point_mut(i) {
            p.status = PointStatus::from_code(code);
            p.exit_code = Some(code);
            self.save(slot);
        }
    }

    /// Each case's name (a sweep point's with its number) and how it ended (`None`: not run),
    /// for the closing tally: a pass `--resume` reused counts as passed.
    pub(crate) fn tally(&self, ready: &[Ready]) -> Vec<(String, Option<i32>)> {
        ready
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let code = match self.reused.get(i) {
                    Some(Some(_)) => Some(disagg_core::exit::PASS),
                    _ => self.codes.get(i).copied().flatten(),
                };
                (crate::run::run_label(r), code)
            })
            .collect()
    }

    /// `--junit FILE`: one JUnit file of every case of this invocation, in order: each run's
    /// own suite (a reused pass's from its folder), and for a case with none (not run, or
    /// refused before its run folder had reports) a failed suite saying so.
    pub(crate) fn write_junit(&self, ready: &[Ready], file: &Path) -> Result<(), String> {
        let suites: Vec<crate::report::SuiteSource> = ready
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let dir = match self.reused.get(i) {
                    Some(Some(d)) => Some(d.clone()),
                    _ => self.dirs.get(i).cloned().flatten(),
                };
                let code = self.codes.get(i).copied().flatten();
                crate::report::SuiteSource {
                    name: r.case.config_name.to_string(),
                    results: dir.map(|d| d.join("results.xml")),
                    missing: match code {
                        Some(c) => format!("it ended with exit code {c} and no results.xml"),
                        None => "not run: the invocation ended before it".into(),
                    },
                }
            })
            .collect();
        let xml = crate::report::merge_junit(&suites)?;
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
        }
        crate::atomic::write(file, xml.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))
    }

    /// The run is over: points never started are marked so, and the summaries written.
    pub(crate) fn close(&mut self) {
        for slot in 0..self.open.len() {
            self.mark_unstarted(slot);
            let o = &self.open[slot];
            crate::study::write_sweep_report(&o.dir);
            say!(
                "disagg: sweep {}: summary.md and report.html in {}",
                o.record.sweep,
                o.dir.display()
            );
        }
    }

    /// Writes `sweep.json`, `summary.md` and the point links of one sweep folder.
    fn save(&mut self, slot: usize) {
        let o = &mut self.open[slot];
        let _lock = lock(&o.dir);
        // A job of a `--no-wait` point may have ended (and written its exit code) already.
        settle(&mut o.record, written_code);
        write_folder(&o.dir, &o.record);
    }
}

/// Points submitted without waiting take their status from their run folder's exit code, once
/// it is there; `collect` gives it (the exit code there, or the reports of a job Slurm ended
/// without its supervisor writing them, written now; `None` while the job is out).
fn settle(record: &mut SweepRecord, collect: impl Fn(&Path) -> Option<i32>) {
    for p in &mut record.points {
        if p.status != PointStatus::Submitted {
            continue;
        }
        if let Some(code) = p.run_dir.as_deref().and_then(&collect) {
            p.status = PointStatus::from_code(code);
            p.exit_code = Some(code);
        }
    }
}

/// The exit code a run folder holds, once its reports are written.
fn written_code(run_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(run_dir.join(crate::run::EXIT_CODE_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Whether every point of the sweep is over (none to run, none out).
fn complete(record: &SweepRecord) -> bool {
    record.points.iter().all(|p| {
        !matches!(
            p.status,
            PointStatus::Pending | PointStatus::Running | PointStatus::Submitted
        )
    })
}

/// Holds the sweep folder's lock (`.lock`) while alive: the jobs of a `--no-wait` sweep end
/// in any order and each rewrites the folder.
fn lock(dir: &Path) -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .ok()?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor this function owns; released when `f` is closed.
    let locked = unsafe { nix::libc::flock(f.as_raw_fd(), nix::libc::LOCK_EX) } == 0;
    locked.then_some(f)
}

/// The run of a `--no-wait` sweep point in `run_dir` has ended: brings its sweep folder up to
/// date from the run folders' exit codes, and, once no point is still out, writes the sweep's
/// report. Returns the sweep folder and whether the sweep is complete; `None` when `run_dir`
/// is no such point.
pub fn refresh(run_dir: &Path) -> Option<(PathBuf, bool)> {
    let dir = PathBuf::from(
        std::fs::read_to_string(run_dir.join(SWEEP_DIR_FILE))
            .ok()?
            .trim(),
    );
    match bring_up_to_date(&dir, crate::slurm::submit::collect_ended) {
        Ok(complete) => Some((dir, complete)),
        Err(e) => {
            say_err!(
                "warning: the sweep of {} is not updated: {e}",
                run_dir.display()
            );
            None
        }
    }
}

/// `disagg report SWEEP`: a `--no-wait` sweep's points whose jobs Slurm has ended are settled
/// (those whose supervisor wrote no reports get them now, from what Slurm says: a job
/// cancelled while it pended never writes its own), and the folder rewritten. Whether the
/// sweep is complete; `Ok(false)` for a sweep with no point out.
pub fn settle_submitted(dir: &Path) -> Result<bool, String> {
    let record = SweepRecord::read(dir)?;
    if !record
        .points
        .iter()
        .any(|p| p.status == PointStatus::Submitted)
    {
        return Ok(false);
    }
    bring_up_to_date(dir, crate::slurm::submit::collect_ended)
}

/// Settles the sweep folder's submitted points with `collect` (under its lock), rewrites it,
/// and writes its report once no point is out. Whether the sweep is complete.
fn bring_up_to_date(dir: &Path, collect: impl Fn(&Path) -> Option<i32>) -> Result<bool, String> {
    let _lock = lock(dir);
    let mut record = SweepRecord::read(dir)?;
    settle(&mut record, collect);
    write_folder(dir, &record);
    let complete = complete(&record);
    if complete {
        crate::study::write_sweep_report(dir);
    }
    Ok(complete)
}

/// Writes `sweep.json`, `summary.md` and the point links of a sweep folder.
fn write_folder(dir: &Path, record: &SweepRecord) {
    {
        let links = dir.join("points");
        let _ = std::fs::create_dir_all(&links);
        for p in &record.points {
            let Some(run) = &p.run_dir else { continue };
            let link = links.join(format!("{:02}-{}", p.index, p.config_name));
            let target = relative_to(run, &links);
            if std::fs::read_link(&link).ok().as_ref() != Some(&target) {
                let tmp = links.join(format!(".{:02}.tmp.{}", p.index, std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                let linked = std::os::unix::fs::symlink(&target, &tmp)
                    .and_then(|_| std::fs::rename(&tmp, &link));
                if let Err(e) = linked {
                    say_err!("warning: cannot link {}: {e}", link.display());
                }
            }
        }
        let writes = [
            crate::atomic::write_json(&dir.join(SWEEP_FILE), record),
            crate::atomic::write(&dir.join("summary.md"), summary(record).as_bytes()),
        ];
        for w in writes {
            if let Err(e) = w {
                say_err!("warning: cannot write into {}: {e}", dir.display());
            }
        }
    }
}

/// `target` as seen from `from`: relative when both are under one root, else absolute.
fn relative_to(target: &Path, from: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// `summary.md` of a sweep: a row per point, and the verdict.
pub fn summary(r: &SweepRecord) -> String {
    let mut s = format!("# sweep {} — {}\n\n", r.sweep, r.sweep_id);
    let count = |st: PointStatus| r.points.iter().filter(|p| p.status == st).count();
    // Running and pending points are said as such: a summary written while the sweep ran
    // (and left so by a `disagg run` killed outright) must not read as a sweep that ended.
    let under_way = match (count(PointStatus::Running), count(PointStatus::Pending)) {
        (0, 0) => String::new(),
        (running, pending) => format!(
            " (not over: {running} running, {pending} pending, as of this write; a `disagg run` \
             killed outright leaves it so)"
        ),
    };
    let submitted = match count(PointStatus::Submitted) {
        0 => String::new(),
        n => format!(", {n} submitted"),
    };
    s.push_str(&format!(
        "{} points: {} passed ({} reused), {} regressed, {} failed, {} interrupted, {} not run{submitted}{under_way}\n\n",
        r.points.len(),
        count(PointStatus::Passed),
        r.points.iter().filter(|p| p.reused).count(),
        count(PointStatus::Regressed),
        count(PointStatus::Failed),
        count(PointStatus::Interrupted),
        count(PointStatus::NotRun),
    ));
    let out: Vec<&str> = r
        .points
        .iter()
        .filter(|p| p.status == PointStatus::Submitted)
        .filter_map(|p| p.job.as_deref())
        .collect();
    if !out.is_empty() {
        s.push_str(&format!(
            "Not over: {} point(s) submitted to Slurm without waiting (--no-wait), job(s) {}; the last of them to end rewrites this summary (a job cancelled before it started, or killed, writes nothing itself: `disagg report` of this folder asks Slurm and brings it up to date).\n\n",
            out.len(),
            out.join(", ")
        ));
    }
    s.push_str("| # | config | GPUs | values | status | run folder |\n|---|---|---|---|---|---|\n");
    for p in &r.points {
        // In the sweep's axis order, as `disagg plan` lists them (then any other, by name).
        let mut values: Vec<String> = r
            .names
            .iter()
            .filter_map(|k| p.values.get(k).map(|v| format!("{k}={v}")))
            .collect();
        values.extend(
            p.values
                .iter()
                .filter(|(k, _)| !r.names.contains(k))
                .map(|(k, v)| format!("{k}={v}")),
        );
        s.push_str(&format!(
            "| {} | {} | {} | {} | {}{}{} | {} |\n",
            p.index,
            p.config_name,
            p.gpus,
            values.join(" "),
            p.status.as_str(),
            match (&p.job, p.reused) {
                (_, true) => " (reused)".to_string(),
                (Some(j), false) => format!(" (job {j})"),
                (None, false) => String::new(),
            },
            // A failed point says why, as its run's reports do (a table cell: one line).
            p.run_dir
                .as_deref()
                .and_then(|d| match p.status {
                    PointStatus::Failed => crate::outcome::failure_reason(d),
                    // What Slurm did, when it was Slurm's doing (a cancel from outside).
                    PointStatus::Interrupted => {
                        std::fs::read_to_string(d.join(crate::slurm::submit::SLURM_END_FILE))
                            .ok()
                            .and_then(|t| t.lines().next().map(str::to_string))
                    }
                    _ => None,
                })
                .map(|why| format!(": {}", why.replace(['\n', '|'], " ")))
                .unwrap_or_default(),
            p.run_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_no_wait_point_to_end_completes_the_sweep_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sweep");
        std::fs::create_dir_all(&dir).unwrap();
        let point = |i: usize| {
            let run = tmp.path().join(format!("run{i}"));
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join(SWEEP_DIR_FILE), dir.display().to_string()).unwrap();
            PointRecord {
                index: i,
                config_name: format!("c{i}"),
                values: BTreeMap::new(),
                gpus: 2,
                case_hash: "h".into(),
                status: PointStatus::Submitted,
                reused: false,
                run_dir: Some(run),
                exit_code: None,
                job: Some(format!("{}", 40 + i)),
            }
        };
        let record = SweepRecord {
            sweep: "s".into(),
            file: "s.yaml".into(),
            sweep_id: "1".into(),
            names: vec![],
            points: vec![point(1), point(2)],
        };
        write_folder(&dir, &record);
        let run = |i: usize| tmp.path().join(format!("run{i}"));
        std::fs::write(run(2).join(crate::run::EXIT_CODE_FILE), "1\n").unwrap();
        assert_eq!(refresh(&run(2)), Some((dir.clone(), false)));
        let now = SweepRecord::read(&dir).unwrap();
        assert_eq!(now.points[0].status, PointStatus::Submitted);
        assert_eq!(now.points[1].status, PointStatus::Failed);
        assert!(summary(&now).contains("job(s) 41;"), "{}", summary(&now));
        // A point's values in the sweep's axis order, as `disagg plan` lists them.
        let mut axes = now.clone();
        axes.names = vec!["g".into(), "conc".into()];
        axes.points[0].values = BTreeMap::from([("conc".into(), 2.into()), ("g".into(), 1.into())]);
        assert!(
            summary(&axes).contains("| g=1 conc=2 |"),
            "{}",
            summary(&axes)
        );
        std::fs::write(run(1).join(crate::run::EXIT_CODE_FILE), "0\n").unwrap();
        assert_eq!(refresh(&run(1)), Some((dir.clone(), true)));
        let now = SweepRecord::read(&dir).unwrap();
        assert_eq!(now.points[0].status, PointStatus::Passed);
        assert!(!summary(&now).contains("Not over"));
        assert_eq!(refresh(tmp.path()), None, "not a sweep point");
        // Written while it ran (and left so when `disagg run` was killed outright): said so,
        // and a running point is not counted as not run.
        let mut under_way = now.clone();
        under_way.points[0].status = PointStatus::Running;
        under_way.points[1].status = PointStatus::Pending;
        let text = summary(&under_way);
        assert!(
            text.contains(
                "2 points: 0 passed (0 reused), 0 regressed, 0 failed, 0 interrupted, 0 not run \
                 (not over: 1 running, 1 pending, as of this write"
            ),
            "{text}"
        );
    }

    #[test]
    fn links_are_relative_inside_one_tree() {
        assert_eq!(
            relative_to(
                Path::new("/ws/disagg_logs/c/1"),
                Path::new("/ws/disagg_sweeps/s/2/points")
            ),
            PathBuf::from("../../../../disagg_logs/c/1")
        );
        assert_eq!(
            relative_to(Path::new("/a/b"), Path::new("/c/d")),
            PathBuf::from("/a/b")
        );
    }
}
