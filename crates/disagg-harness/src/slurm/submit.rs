//! `disagg run --launcher slurm` and `disagg supervise`: one job per case, each in its own run
//! folder, submitted up to `max_jobs` at a time and followed until it ends; then the reports.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use disagg_core::{Plan, exit};

use super::job::{self, JobState};
use super::script::{self, SCRIPT_FILE};
use crate::outcome::{Failure, Outcome, RoleOutcome, RunResult};
use crate::run::{self, INTERRUPTED, RunOptions};

/// How often a submitted job's state is asked for.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// After Ctrl-C, how long to wait for cancelled jobs to end before giving up on them.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// How often a running job's benchmark progress is read (as the supervisor reads it).
const PROGRESS_READ: Duration = Duration::from_millis(500);
/// With `--no-wait`, how long to look for jobs Slurm refuses at once.
const NO_WAIT_LOOK: Duration = Duration::from_secs(3);
/// While a job pends, how often it is said again (a new reason is said at once).
const PENDING_SAY_EVERY: Duration = Duration::from_secs(30);
/// How long `disagg run` waits on a Slurm that does not answer about a job (and a job whose
/// supervisor gives no sign of life either) before it gives the job up.
const NO_ANSWER_LIMIT: Duration = Duration::from_secs(600);

/// The job id's file in the run folder.
pub const JOB_ID_FILE: &str = "slurm_job_id";

#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// Print job id and run folder, and return once submitted.
    pub no_wait: bool,
    /// Jobs of ours in the queue at once. With `no_wait` every job is submitted at once, job
    /// k depending on job k − max_jobs (`--dependency=afterany`), so at most this many run.
    pub max_jobs: usize,
}

struct Submitted {
    plan: Plan,
    job: String,
    /// Index of the case among those given.
    case: usize,
    /// While the job pends: since when, and what was said of it.
    waiting: Option<Waiting>,
    /// The benchmark's live progress, from the run folder (the supervisor in the job writes
    /// `rendezvous/progress.json` there), shown as the local launcher shows it.
    view: crate::live::LiveView,
    next_progress: Instant,
    /// The job's supervisor's beat ([`crate::beat`]), and why this process cancelled the job
    /// when it stopped.
    supervisor: crate::beat::Watch,
    gave_up: Option<String>,
    /// Since when Slurm has not answered about the job, and when that was last said.
    unanswered: Option<(Instant, Option<Instant>)>,
    /// Since the job was seen running, and when its first step (the setup, or the container's
    /// import) was last said to be under way: nothing else shows then.
    running: Option<(Instant, Instant)>,
}

/// What `disagg run` last said of a pending job.
struct Waiting {
    since: Instant,
    reason: String,
    said: Option<Instant>,
}

impl Submitted {
    /// Slurm did not answer about the job (`why`): said at once and every
    /// [`PENDING_SAY_EVERY`]. Whether to stop waiting: the supervisor wrote its exit code
    /// (the run is over, whatever Slurm says), or this process gave up on a silent supervisor
    /// and Slurm has not answered for [`CANCEL_WAIT`] since, or nothing was heard of the job
    /// (Slurm, or a supervisor's beat) for [`NO_ANSWER_LIMIT`].
    fn unanswered(&mut self, why: &str) -> bool {
        let now = Instant::now();
        let (since, said) = self.unanswered.get_or_insert((now, None));
        let first = said.is_none();
        if said.is_none_or(|at| now - at >= PENDING_SAY_EVERY) {
            say_err!(
                "disagg: {}: Slurm does not answer about job {} ({why}); still waiting for it{}",
                self.plan.config_name,
                self.job,
                if first {
                    String::new()
                } else {
                    format!(
                        " ({} without an answer)",
                        humantime::format_duration(Duration::from_secs((now - *since).as_secs()))
                    )
                }
            );
            *said = Some(now);
        }
        let silent_for = now - *since;
        if written_code(&self.plan).is_some() {
            return true;
        }
        if self.gave_up.is_some() {
            return silent_for >= CANCEL_WAIT;
        }
        if silent_for >= NO_ANSWER_LIMIT && !self.supervisor.heard_within(now, NO_ANSWER_LIMIT) {
            let reason = format!(
                "Slurm did not answer about job {} for {} ({why}), and its supervisor gave no \
                 sign of life in that time: the job's state is not known; `disagg run` asked \
                 Slurm to cancel it",
                self.job,
                humantime::format_duration(NO_ANSWER_LIMIT)
            );
            say_err!("disagg: {}: {reason}", self.plan.config_name);
            if let Err(e) = job::cancel(&self.job) {
                say_err!("disagg: warning: {e}");
            }
            self.gave_up = Some(reason);
            return true;
        }
        false
    }

    /// Slurm answered again after not answering.
    fn answered(&mut self) {
        if let Some((since, _)) = self.unanswered.take() {
            say_err!(
                "disagg: {}: Slurm answers about job {} again, after {}",
                self.plan.config_name,
                self.job,
                humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
            );
        }
    }

    /// The job is pending for `reason`: say so when the reason changes (a real one, not `None`,
    /// which a just-released job shows for a moment) and every [`PENDING_SAY_EVERY`].
    fn pending(&mut self, reason: &str) {
        let now = Instant::now();
        let w = self.waiting.get_or_insert_with(|| Waiting {
            since: now,
            reason: "None".into(),
            said: None,
        });
        let changed = reason != w.reason && reason != "None";
        let due = now - w.said.unwrap_or(w.since) >= PENDING_SAY_EVERY;
        if changed || due {
            say!(
                "disagg: {}: job {} pending for {} (Slurm's reason: {reason})",
                self.plan.config_name,
                self.job,
                humantime::format_duration(Duration::from_secs((now - w.since).as_secs()))
            );
            w.said = Some(now);
        }
        w.reason = reason.to_string();
    }

    /// The job runs: show its benchmark's progress, and cancel it if its supervisor stopped
    /// beating (stopped or frozen, nothing else would end the job before Slurm's time limit,
    /// which a case may leave unset).
    fn follow(&mut self) {
        self.started();
        self.watch();
        self.first_step();
    }

    /// Before the supervisor starts (its first beat), the job runs its first step on every
    /// node: the setup, or the import of the container's image, which can take minutes and
    /// shows nothing else. Said every [`PENDING_SAY_EVERY`], with install.log's last line.
    fn first_step(&mut self) {
        let now = Instant::now();
        let (since, next) = self.running.get_or_insert((now, now + PENDING_SAY_EVERY));
        if self.supervisor.started() || now < *next {
            return;
        }
        *next = now + PENDING_SAY_EVERY;
        let what = match (&self.plan.setup, &self.plan.slurm.container) {
            (Some(_), _) => "the setup",
            (None, Some(_)) => "making the job's container from its image",
            (None, None) => "starting its supervisor",
        };
        let last = crate::logtext::tail_text(&self.plan.run_dir.join("install.log"), 4096)
            .and_then(|t| {
                t.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_string)
            })
            .map(|l| format!(" (install.log ends: {})", l.trim()))
            .unwrap_or_default();
        say!(
            "disagg: {}: job {} has run {}: still {what} on its nodes{last}",
            self.plan.config_name,
            self.job,
            humantime::format_duration(Duration::from_secs((now - *since).as_secs()))
        );
    }

    /// The beat and the progress of [`Submitted::follow`], whether or not Slurm answers.
    fn watch(&mut self) {
        let now = Instant::now();
        if self.gave_up.is_none() {
            let silence = crate::beat::supervisor_silence(&self.plan);
            if let Some(stale) = self.supervisor.stale(now, silence) {
                let reason = format!(
                    "the job's {}; `disagg run` cancelled job {} after {} of silence",
                    stale.reason,
                    self.job,
                    humantime::format_duration(silence)
                );
                say_err!("disagg: {}: {reason}", self.plan.config_name);
                // Said in the run folder first: a stopped supervisor that scancel's SIGCONT wakes
                // must not write its own reports over the ones this process writes.
                let _ = crate::atomic::write(
                    &self.plan.run_dir.join(GIVEN_UP_FILE),
                    format!("{reason}\n").as_bytes(),
                );
                if let Err(e) = job::cancel(&self.job) {
                    say_err!("disagg: warning: {e}");
                }
                self.gave_up = Some(reason);
            }
        }
        if now < self.next_progress {
            return;
        }
        self.next_progress = now + PROGRESS_READ;
        let file = disagg_core::plan::rendezvous_dir(&self.plan.run_dir)
            .join(crate::rendezvous::PROGRESS_FILE);
        if let Some(p) =
            crate::rendezvous::read::<crate::rendezvous::Progress>(&file, &self.plan.run_id)
        {
            self.view.show(&p);
        }
    }

    /// The job is past pending: say it started if we said it was waiting.
    fn started(&mut self) {
        if let Some(w) = self.waiting.take().filter(|w| w.said.is_some()) {
            say!(
                "disagg: {}: job {} started after {} pending",
                self.plan.config_name,
                self.job,
                humantime::format_duration(Duration::from_secs(w.since.elapsed().as_secs()))
            );
        }
    }
}

/// Why a case cannot run as a Slurm job with GPU gres, if it cannot: its own
/// `CUDA_VISIBLE_DEVICES` for the workers, which Slurm replaces in every step with the step's
/// own GPUs (it names GPUs of a shared machine for the local launcher, or for a cluster without
/// GPU gres). The error, then its hint.
pub fn gres_refusal(case: &disagg_core::case::Case, path: &Path) -> Option<String> {
    const CVD: &str = "CUDA_VISIBLE_DEVICES";
    if !case.slurm.gpu_gres {
        return None;
    }
    let key = [
        ("env.worker", &case.env.worker),
        ("ctx.env", &case.ctx.env),
        ("gen.env", &case.generation.env),
    ]
    .into_iter()
    .find(|(_, env)| env.contains_key(CVD))
    .map(|(k, _)| k)?;
    Some(format!(
        "{}: `{key}.{CVD}`: under Slurm with GPU gres every worker's step is given its GPUs by \
         Slurm, which sets {CVD} to them, so the case's would not be used\nhint: remove it \
         (on a cluster without GPU gres, `slurm.gpu_gres: false` keeps it: it then names the \
         GPUs of each node the workers may use)",
        path.display()
    ))
}

/// A checked case with its batch script, waiting to be submitted.
struct Pending<'a> {
    ready: &'a run::Ready,
    script: PathBuf,
    case: usize,
}

/// Runs every case as a Slurm job; the exit code of the worst outcome.
pub fn run_cases(paths: &[PathBuf], opts: &RunOptions, slurm: &SlurmOptions) -> i32 {
    let skip_perf = opts.skip_perf_check || run::skip_perf_from_env();
    let Some(ready) = run::check_all(paths, skip_perf) else {
        return exit::USAGE;
    };
    if let Some(why) = ready
        .iter()
        .find_map(|r| gres_refusal(&r.case.case, &r.case.path))
    {
        say_err!("error: {why}");
        return exit::USAGE;
    }
    if !job::available() {
        say_err!(
            "error: no Slurm answers here (`sinfo` failed), so nothing was submitted\nhint: run on a Slurm login node; on a Debian machine `bash scripts/dev-slurm.sh up` starts a single-node Slurm"
        );
        return exit::USAGE;
    }
    // A partition the cluster does not have is refused by sbatch only at that case's turn,
    // which may come hours into a night of jobs: every case's is checked before any is sent.
    if let Some(known) = job::partitions() {
        let unknown = ready.iter().find_map(|r| {
            let p = r.case.case.slurm.partition.as_deref()?;
            (!known.iter().any(|k| k == p)).then_some((r, p))
        });
        if let Some((r, p)) = unknown {
            say_err!(
                "error: {}: slurm.partition: `{p}` is not a partition of this cluster (it has: \
                 {}), so nothing was submitted\nhint: name one of those, or leave \
                 slurm.partition out for the default; `sinfo -s` lists them",
                r.case.path.display(),
                known.join(", ")
            );
            return exit::USAGE;
        }
    }
    let workspace = crate::rundir::resolve_workspace(opts.workspace.as_deref());
    // Absolute, because the batch script runs elsewhere.
    let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
    if let Err(code) = run::history_store_usable(&ready, &workspace, skip_perf) {
        return code;
    }
    let mut book = match crate::sweep::Book::open(&ready, &workspace, opts.resume) {
        Ok(b) => b,
        // Nothing was submitted: a usage error, as for a run folder.
        Err(e) => {
            say_err!("error: {e}");
            return exit::USAGE;
        }
    };
    // `gpu_gres: false` on a cluster that has GPU gres: the job asks for no GPUs, and where
    // Slurm constrains devices its workers may open none. Said once per partition.
    let mut told: Vec<Option<String>> = Vec::new();
    for r in &ready {
        let s = &r.case.case.slurm;
        if s.gpu_gres || told.contains(&s.partition) {
            continue;
        }
        told.push(s.partition.clone());
        if let Some(g) = job::gpu_gres(s.partition.as_deref()) {
            say_err!(
                "warning: {}: slurm.gpu_gres is false, but the nodes of {} offer GPU gres \
                 ({g}): the job asks for no GPUs, and where Slurm constrains devices its workers \
                 may see none (leave gpu_gres at its default, true, to ask for them)",
                r.case.config_name,
                job::partition_words(s.partition.as_deref())
            );
        }
    }
    let mut codes = book.reused_codes();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    for (i, r) in ready.iter().enumerate() {
        if book.is_reused(i) {
            continue;
        }
        match write_script(r, &workspace, &opts.exe, skip_perf, i) {
            Ok(script) => queue.push_back(Pending {
                ready: r,
                script,
                case: i,
            }),
            Err(e) => {
                say_err!("error: {}: {e}", r.case.config_name);
                codes.push(exit::USAGE);
            }
        }
    }
    run::install_signal_handlers();
    let max = slurm.max_jobs.max(1);
    let mut running: Vec<Submitted> = Vec::new();
    // Every running job's progress bar (on a terminal), one below the other.
    let bars = indicatif::MultiProgress::new();
    // With --no-wait, every job submitted so far, in order: job k waits for job k − max.
    let mut chain: Vec<String> = Vec::new();
    loop {
        while (slurm.no_wait || running.len() < max) && !INTERRUPTED.load(Ordering::SeqCst) {
            let Some(p) = queue.pop_front() else { break };
            let after = if slurm.no_wait {
                chain.len().checked_sub(max).map(|k| chain[k].clone())
            } else {
                None
            };
            match submit(
                &p,
                &workspace,
                &opts.exe,
                after.as_deref(),
                &bars,
                skip_perf,
            ) {
                Ok(s) => {
                    let waits = match &after {
                        Some(a) => format!(" (starts once job {a} has ended: --max-jobs {max})"),
                        None => String::new(),
                    };
                    say!(
                        "disagg: {}: job {}, run folder {}{waits}",
                        s.plan.config_name,
                        s.job,
                        s.plan.run_dir.display()
                    );
                    if slurm.no_wait {
                        chain.push(s.job.clone());
                        book.submitted(s.case, &s.plan.run_dir, &s.job);
                    } else {
                        book.started(s.case, &s.plan.run_dir);
                    }
                    running.push(s);
                }
                Err(NotSubmitted {
                    why,
                    code,
                    reported,
                }) => {
                    say_err!("error: {}: {why}", p.ready.case.config_name);
                    if let Some(hint) = submit_hint(&why, &p.ready.case.case.slurm) {
                        say_err!("hint: {hint}");
                    }
                    if let Some(dir) = &reported {
                        book.started(p.case, dir);
                    }
                    book.finished(p.case, code);
                    codes.push(code);
                }
            }
        }
        if slurm.no_wait {
            codes.extend(refused_at_once(running, skip_perf, &mut book));
            book.close_submitted();
            return run::combine(&codes);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            for p in &queue {
                let _ = std::fs::remove_file(&p.script);
            }
            let code = interrupt(running, codes, skip_perf, &mut book);
            book.close();
            let code = run::write_junit(&book, &ready, opts.junit.as_deref(), code);
            say_tally(&book, &ready, code);
            return code;
        }
        let mut still = Vec::new();
        for mut s in running {
            let info = match job::lookup(&s.job) {
                job::Lookup::NoAnswer(why) => {
                    if s.unanswered(&why) {
                        let code = collect(&s, None, skip_perf);
                        book.finished(s.case, code);
                        codes.push(code);
                    } else {
                        s.watch();
                        still.push(s);
                    }
                    continue;
                }
                job::Lookup::Found(i) => Some(i),
                job::Lookup::Gone => None,
            };
            s.answered();
            match info {
                Some(i) if i.is_pending() => {
                    let reason = i.reason.as_deref().unwrap_or("None");
                    match job::never_starts(reason) {
                        Some(meaning) => {
                            let code = cannot_start(&s, reason, meaning, skip_perf);
                            book.finished(s.case, code);
                            codes.push(code);
                        }
                        None => {
                            s.pending(reason);
                            still.push(s);
                        }
                    }
                }
                Some(i) if !i.state.is_terminal() => {
                    s.follow();
                    still.push(s);
                }
                i => {
                    let code = collect(&s, i, skip_perf);
                    book.finished(s.case, code);
                    codes.push(code);
                }
            }
        }
        running = still;
        if running.is_empty() && queue.is_empty() {
            book.close();
            let code = run::combine(&codes);
            let code = run::write_junit(&book, &ready, opts.junit.as_deref(), code);
            say_tally(&book, &ready, code);
            return code;
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// The closing line of a run of several cases, as the local launcher says it: the tail of a CI
/// log names the cases that did not pass, not only the last job's.
fn say_tally(book: &crate::sweep::Book, ready: &[run::Ready], code: i32) {
    let tally = book.tally(ready);
    if tally.len() > 1 {
        say!("{}", run::tally_line(&tally, code));
    }
}

/// Exit code of a submission Slurm refused: 2 when it refused what the case asks (nothing was
/// launched; the case is at fault), else 1.
fn refusal_code(e: &job::SlurmError) -> i32 {
    if e.refuses_the_request() {
        exit::USAGE
    } else {
        exit::TEST_FAILED
    }
}

/// What to do about an sbatch refusal we can explain.
fn submit_hint(error: &str, s: &disagg_core::slurm::SlurmSpec) -> Option<String> {
    let gres = error.contains("Invalid generic resource") || error.contains("gres");
    if gres && s.gpu_gres && !s.asks_for_gpus() {
        Some(
            "the job asks for `--gres=gpu:<hardware.gpus_per_node>`; on a cluster without GPU gres set `slurm.gpu_gres: false` (see docs/slurm.md)".into(),
        )
    } else if error.contains("Invalid partition name") {
        Some(match &s.partition {
            Some(p) => format!(
                "slurm.partition: {p} is not a partition of this cluster; `sinfo -s` lists them"
            ),
            None => {
                "the cluster has no default partition: set slurm.partition (`sinfo -s` lists them)"
                    .into()
            }
        })
    } else if let Some(opt) = unrecognized_option(error) {
        let segment = if opt.starts_with("--segment") {
            " (`--segment` needs Slurm 23.11 or later; TensorRT-LLM's GB200 configs ask for it: \
             drop it on a cluster without segments)"
        } else {
            ""
        };
        Some(format!(
            "`{opt}` is not an option of this cluster's sbatch (`sbatch --version`, `sbatch \
             --help`): remove it from slurm.extra_args{segment}"
        ))
    } else if error.contains("Invalid account") {
        Some("set slurm.account to an account you may use in this partition (`sacctmgr show associations user=$USER`)".into())
    } else if error.contains("time limit is invalid") {
        Some("lower slurm.time to the partition's limit (`sinfo -o '%P %l'`)".into())
    } else if error.contains("Requested node configuration is not available")
        || error.contains("Requested partition configuration not available")
    {
        Some("no node of the partition has what the job asks per node: check hardware.gpus_per_node against `sinfo -o '%P %D %c %G'`".into())
    } else {
        None
    }
}

/// The option getopt says this sbatch does not have: `sbatch: unrecognized option
/// '--segment=6'` (long), `sbatch: invalid option -- 'Z'` (short).
fn unrecognized_option(error: &str) -> Option<String> {
    let quoted = |rest: &str| rest.split('\'').nth(1).map(str::to_string);
    if let Some((_, rest)) = error.split_once("unrecognized option ") {
        return quoted(rest);
    }
    let (_, rest) = error.split_once("invalid option -- ")?;
    quoted(rest).map(|o| format!("-{o}"))
}

/// Renders the case's batch script into its config folder, to be submitted from there. It
/// does not depend on the job id, so it is written before the job exists.
fn write_script(
    r: &run::Ready,
    workspace: &Path,
    exe: &Path,
    skip_perf: bool,
    index: usize,
) -> Result<PathBuf, String> {
    let config_dir = crate::rundir::config_dir(workspace, &r.case.config_name);
    std::fs::create_dir_all(&config_dir)
        .map_err(|e| format!("cannot create {}: {e}", config_dir.display()))?;
    // Only the parts of the plan that do not depend on the run id enter the script.
    let provisional = disagg_core::plan::build(&r.case, "JOBID", &config_dir.join("JOBID"), exe);
    let text = script::render(&provisional, exe, skip_perf).map_err(|e| e.to_string())?;
    let path = config_dir.join(format!(
        ".{}-{}-{index}.sbatch",
        crate::rundir::timestamp_run_id(),
        std::process::id()
    ));
    crate::atomic::write(&path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Cancels held job `id`, which never started, and removes its batch script.
fn abandon<T>(id: &str, script: &Path, why: &str) -> Result<T, NotSubmitted> {
    let _ = job::cancel(id);
    let _ = std::fs::remove_file(script);
    Err(NotSubmitted {
        why: format!("job {id} cancelled before it started: {why}"),
        code: exit::TEST_FAILED,
        reported: None,
    })
}

/// Jobs submitted in a row whose ids are taken by existing run folders before one is given up.
const TAKEN_IDS_TRIED: usize = 20;

/// A case whose job was not submitted, or was cancelled before it could start.
struct NotSubmitted {
    why: String,
    code: i32,
    /// Its run folder, when it had one by then: its reports are written.
    reported: Option<PathBuf>,
}

/// Submits held, so the run folder (named by the job id) and its plan exist before the job can
/// start, then releases it. Any failure cancels the held job.
fn submit(
    p: &Pending,
    workspace: &Path,
    exe: &Path,
    after: Option<&str>,
    bars: &indicatif::MultiProgress,
    skip_perf: bool,
) -> Result<Submitted, NotSubmitted> {
    let config_dir = crate::rundir::config_dir(workspace, &p.ready.case.config_name);
    let mut taken: Vec<String> = Vec::new();
    let (id, plan) = loop {
        let id = job::submit_held(&p.script, &config_dir, after).map_err(|e| {
            let _ = std::fs::remove_file(&p.script);
            // Made for this case's runs, which sbatch refused: no empty folder is left.
            let _ = std::fs::remove_dir(&config_dir);
            NotSubmitted {
                why: e.to_string(),
                code: refusal_code(&e),
                reported: None,
            }
        })?;
        match run::prepare_as(p.ready, workspace, exe, &id, run::Where::Slurm) {
            Ok(plan) if plan.run_id == id => break (id, plan),
            Ok(plan) => {
                // The run folder is named by the job id, and one of that name is another
                // run's (a workspace shared by two clusters, Slurm's job ids started again):
                // this job is cancelled, the folder just made for it removed, and another job
                // submitted, for an id no run here has.
                let _ = job::cancel(&id);
                let _ = std::fs::remove_dir_all(&plan.run_dir);
                say_err!(
                    "warning: job {id}: a run folder named {id} already exists in {} (another \
                     cluster's run, or Slurm's job ids started again); cancelled, submitting \
                     again for another id",
                    config_dir.display()
                );
                taken.push(id);
                if taken.len() >= TAKEN_IDS_TRIED {
                    let _ = std::fs::remove_file(&p.script);
                    return Err(NotSubmitted {
                        why: format!(
                            "jobs {} were each cancelled before they started: run folders of \
                             their ids already exist in {}; hint: give this cluster a \
                             workspace of its own (--workspace), or move the old runs away",
                            taken.join(", "),
                            config_dir.display()
                        ),
                        code: exit::USAGE,
                        reported: None,
                    });
                }
            }
            Err(_) => return abandon(&id, &p.script, "its run folder could not be prepared"),
        }
    };
    if let Err(e) = std::fs::rename(&p.script, plan.run_dir.join(SCRIPT_FILE)) {
        return abandon(
            &id,
            &p.script,
            &format!("cannot move the batch script into the run folder: {e}"),
        );
    }
    let _ = crate::atomic::write(&plan.run_dir.join(JOB_ID_FILE), id.as_bytes());
    if let Err(e) = job::release(&id) {
        // The run folder is there: it gets its reports, as every run's does, and the release's
        // refusal of what the case asks (a node has fewer CPUs than tasks per node) is the
        // case's fault, as sbatch's would be.
        let _ = job::cancel(&id);
        let code = refusal_code(&e);
        let why = format!("job {id} cancelled before it started: {e}");
        let reason = match submit_hint(&why, &p.ready.case.case.slurm) {
            Some(hint) => format!("{why}; hint: {hint}"),
            None => why.clone(),
        };
        let outcome = ended_by_slurm(&plan, reason, false, None);
        run::finish_as(&plan, &outcome, None, skip_perf, Some(code));
        let _ = crate::rundir::point_latest_at(&plan.run_dir);
        return Err(NotSubmitted {
            why,
            code,
            reported: Some(plan.run_dir.clone()),
        });
    }
    // Launched: the job is Slurm's now, so it is the config's latest run.
    if let Err(e) = crate::rundir::point_latest_at(&plan.run_dir) {
        say_err!(
            "warning: cannot point latest at {}: {e}",
            plan.run_dir.display()
        );
    }
    Ok(Submitted {
        view: crate::live::LiveView::labelled(plan.config_name.to_string(), bars),
        supervisor: crate::beat::Watch::new(&plan, crate::beat::SUPERVISOR),
        gave_up: None,
        unanswered: None,
        running: None,
        plan,
        job: id,
        case: p.case,
        waiting: None,
        next_progress: Instant::now(),
    })
}

/// `--no-wait`: Slurm judges a released job within moments; one it says can never start is
/// cancelled now (with no one waiting, it would pend forever and hold back the jobs that depend
/// on it). Waits until every job has a reason or runs, at most [`NO_WAIT_LOOK`].
fn refused_at_once(
    mut jobs: Vec<Submitted>,
    skip_perf: bool,
    book: &mut crate::sweep::Book,
) -> Vec<i32> {
    let until = Instant::now() + NO_WAIT_LOOK;
    let mut codes = Vec::new();
    while !jobs.is_empty() && Instant::now() < until {
        let mut undecided = Vec::new();
        for s in jobs {
            let Some(i) = job::info(&s.job).filter(|i| i.is_pending()) else {
                continue;
            };
            let reason = i.reason.as_deref().unwrap_or("None");
            if let Some(meaning) = job::never_starts(reason) {
                let code = cannot_start(&s, reason, meaning, skip_perf);
                book.finished(s.case, code);
                codes.push(code);
            } else if reason == "None" {
                undecided.push(s);
            }
        }
        jobs = undecided;
        if !jobs.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    codes
}

/// A pending job Slurm says can never start: cancel it and fail its run on the case's account
/// (exit 2: nothing ran), naming the job, Slurm's reason, what in the case asks for it and the fix.
fn cannot_start(s: &Submitted, reason: &str, meaning: &str, skip_perf: bool) -> i32 {
    let plan = &s.plan;
    let (asks, fix) = what_asks(plan, reason);
    let why = format!(
        "Slurm job {} can never start: it is pending with reason {reason} ({meaning}); {asks}",
        s.job
    );
    say_err!(
        "error: {}: {why}; the job is cancelled\nhint: {fix}",
        plan.config_name
    );
    if let Err(e) = job::cancel(&s.job) {
        say_err!("warning: {e}");
    }
    let until = Instant::now() + CANCEL_WAIT;
    while job::state(&s.job).is_some_and(|st| !st.is_terminal()) && Instant::now() < until {
        std::thread::sleep(FOLLOW_EVERY);
    }
    let outcome = ended_by_slurm(plan, format!("{why}; hint: {fix}"), false, None);
    let code = run::finish_as(plan, &outcome, None, skip_perf, Some(exit::USAGE));
    say!(
        "disagg: {}: job {} cancelled before it started; reports in {}",
        plan.config_name,
        s.job,
        plan.run_dir.display()
    );
    code
}

/// What in the case makes the job ask for what Slurm refuses (`reason`), and how to fix it.
fn what_asks(plan: &Plan, reason: &str) -> (String, String) {
    let sl = &plan.slurm;
    let code = reason.split([',', ' ']).next().unwrap_or(reason);
    let partition = match &sl.partition {
        Some(p) => format!("partition {p} (slurm.partition)"),
        None => job::partition_words(None),
    };
    let g = plan.gpus_per_node;
    let workers = plan.nodes - plan.front_nodes;
    let nodes = if plan.front_nodes > 0 {
        format!(
            "{} nodes ({workers} for the workers, slurm.front_nodes: {} for the routers and the benchmark)",
            plan.nodes, plan.front_nodes
        )
    } else {
        format!("{} node(s) for the workers", plan.nodes)
    };
    let extra = if sl.extra_args.is_empty() {
        String::new()
    } else {
        format!(", with slurm.extra_args {:?}", sl.extra_args)
    };
    match code {
        "BadConstraints" => {
            let gres = if sl.gpu_gres && !sl.asks_for_gpus() {
                format!(" and {g} GPUs (--gres=gpu:{g})")
            } else {
                String::new()
            };
            (
                format!(
                    "the case asks each of its {} node(s) for {g} tasks{gres} (hardware.gpus_per_node: {g}){extra}",
                    plan.nodes
                ),
                format!(
                    "no node of {partition} has that: set hardware.gpus_per_node to what one node has (`sinfo -o '%P %D %c %G'` shows CPUs and GPUs per node), or choose a partition whose nodes do"
                ),
            )
        }
        "PartitionNodeLimit" => (
            format!("the case asks for {nodes}{extra}"),
            format!(
                "{partition} allows or has fewer nodes (`sinfo -o '%P %D %a'`; MaxNodes in `scontrol show partition`), or some are down: lower slurm.front_nodes or the nodes the workers span (counts, parallelism, hardware.gpus_per_node), or choose a bigger partition"
            ),
        ),
        "PartitionTimeLimit" => (
            match &sl.time {
                Some(t) => format!("the case asks for slurm.time: {t}"),
                None => "the case sets no slurm.time (so the partition's default)".into(),
            },
            format!("lower slurm.time to the time limit of {partition} (`sinfo -o '%P %l'`)"),
        ),
        "InvalidAccount" | "AccountNotAllowed" => (
            match &sl.account {
                Some(a) => format!("the case sets slurm.account: {a}"),
                None => "the case sets no slurm.account, so the job runs under your default account".into(),
            },
            format!(
                "set slurm.account to an account you may use in {partition} (`sacctmgr show associations user=$USER`)"
            ),
        ),
        "InvalidQOS" | "QOSNotAllowed" => (
            format!("the job's QOS is your default one, or set in slurm.extra_args{extra}"),
            format!(
                "ask for a QOS you may use in {partition} with `--qos=NAME` in slurm.extra_args (`sacctmgr show associations user=$USER format=qos`)"
            ),
        ),
        _ => (
            format!(
                "the case asks for {nodes}, {g} tasks per node (hardware.gpus_per_node), time {}{extra}",
                time_limit(plan)
            ),
            "ask for less, or use a QOS or account whose per-job limits allow it (`sacctmgr show qos`)".into(),
        ),
    }
}

/// Ctrl-C: cancel every job we submitted, wait (bounded) for them to end, report them.
fn interrupt(
    running: Vec<Submitted>,
    mut codes: Vec<i32>,
    skip_perf: bool,
    book: &mut crate::sweep::Book,
) -> i32 {
    for s in &running {
        say_err!("disagg: interrupted: cancelling job {}", s.job);
        if let Err(e) = job::cancel(&s.job) {
            say_err!("warning: {e}");
        }
    }
    let until = Instant::now() + CANCEL_WAIT;
    for s in &running {
        let mut st = job::info(&s.job);
        while st.as_ref().is_some_and(|x| !x.state.is_terminal()) && Instant::now() < until {
            std::thread::sleep(FOLLOW_EVERY);
            st = job::info(&s.job);
        }
        let written = written_code(&s.plan);
        // The supervisor saw our scancel as a SIGTERM (143), or never started: the run was
        // interrupted here, by this process's signal, and its reports say so.
        let code = if written.is_none_or(exit::is_interruption) {
            let plan = &s.plan;
            let code = run::finish(plan, &interrupted(plan, st.as_ref()), None, skip_perf);
            say!(
                "disagg: {}: job {} cancelled; reports in {}",
                plan.config_name,
                s.job,
                plan.run_dir.display()
            );
            code
        } else {
            collect(s, st, skip_perf)
        };
        book.finished(s.case, code);
    }
    codes.push(run::interrupted_code());
    run::combine(&codes)
}

/// A job has ended: use the reports its supervisor wrote, unless Slurm ended it first (time
/// limit, cancel, node failure), in which case write them here from the run folder.
fn collect(s: &Submitted, info: Option<job::JobInfo>, skip_perf: bool) -> i32 {
    let plan = &s.plan;
    let state = info.as_ref().map(|i| i.state.clone());
    let state_name = state
        .as_ref()
        .map(|x| x.0.clone())
        .unwrap_or_else(|| match s.unanswered {
            Some(_) => "while Slurm did not answer (its state not known)".into(),
            None => "UNKNOWN (no longer known to Slurm)".into(),
        });
    let log_name = format!("slurm-{}.log", s.job);
    // Only a log that exists is pointed at: a job that never started has none.
    let see_log = if plan.run_dir.join(&log_name).exists() {
        format!(" (see {log_name})")
    } else {
        String::new()
    };
    let never_ran = see_log.is_empty()
        && info
            .as_ref()
            .is_some_and(|i| i.run_time == Some(Duration::ZERO));
    let code = match (
        state.as_ref().is_some_and(JobState::is_timeout),
        written_code(plan),
    ) {
        // Cancelled by this process for a supervisor that stopped beating: a failed run, on
        // the supervisor's account. A supervisor the cancel woke may have written its own
        // verdict first, but after its stop it had seen nothing for that long, and took every
        // role for silent: its word is not the truth of the run.
        _ if s.gave_up.is_some() => {
            let reason = s.gave_up.clone().unwrap_or_default();
            // A hang, as every silence past its limit is (a TIMEOUT in the JUnit).
            let outcome = ended_by_slurm(plan, reason, true, info.as_ref());
            run::finish(plan, &outcome, None, skip_perf)
        }
        // Slurm ended it for a node (lost, not booted) or for another job (preemption): its
        // supervisor took the TERM for an interruption, wrote nothing, or failed the run on the
        // account of whichever role it saw end first (one Slurm stopped on a healthy node, say).
        // The test failed, on the account of the roles that ran there. A pass it had written
        // (the node lost after the benchmark) stands.
        (false, written)
            if lost_state(&state_name).is_some()
                && written.is_none_or(|c| !matches!(c, exit::PASS | exit::PERF_REGRESSION)) =>
        {
            let mut outcome = node_loss(&s.job, plan, &state_name, &see_log, info.as_ref());
            // What the supervisor had said, when it was something else than the lost node.
            if let (RunResult::Failed(f), Some(RunResult::Failed(before))) =
                (&mut outcome.result, earlier_outcome(plan).map(|o| o.result))
            {
                if !before.reason.contains("Node failure on")
                    && !before.reason.contains("a node of the job failed")
                {
                    f.reason = format!(
                        "{}; its supervisor had reported: {}",
                        f.reason, before.reason
                    );
                }
            }
            if let RunResult::Failed(f) = &outcome.result {
                say_err!("disagg: {}: {}", plan.config_name, f.reason);
            }
            run::finish(plan, &outcome, None, skip_perf)
        }
        (false, Some(code)) => {
            print_summary(plan);
            code
        }
        (true, _) => {
            let reason = format!(
                "Slurm ended job {} at its time limit ({}){see_log}",
                s.job,
                time_limit(plan)
            );
            say_err!("disagg: {}: {reason}", plan.config_name);
            let outcome = ended_by_slurm(plan, reason, true, info.as_ref());
            run::finish(plan, &outcome, None, skip_perf)
        }
        // Cancelled by its own supervisor after the run failed, which could not write the
        // reports (a full disk): it left the reason in the job's Comment.
        (false, None)
            if state_name.starts_with("CANCELLED")
                && job::comment(&s.job)
                    .is_some_and(|c| c.starts_with(super::supervise::SELF_CANCELLED)) =>
        {
            let said = job::comment(&s.job).unwrap_or_default();
            let reason = format!(
                "{} (its supervisor failed the run and cancelled job {}, and could not write \
                 the reports{see_log})",
                said.trim_start_matches(super::supervise::SELF_CANCELLED),
                s.job
            );
            say_err!("disagg: {}: {reason}", plan.config_name);
            let outcome = ended_by_slurm(plan, reason, false, info.as_ref());
            run::finish(plan, &outcome, None, skip_perf)
        }
        (false, None) if state_name.starts_with("CANCELLED") => {
            // Not by this process (that is the interrupt path): someone else's scancel reached
            // the job before its supervisor wrote a report (during the setup, before the job
            // started, or past Slurm's KillWait). The run was interrupted, as it is when the
            // supervisor gets the TERM itself: 143 either way, not a failed test.
            say_err!(
                "disagg: {}: Slurm job {} was cancelled from outside this `disagg run` (scancel, \
                 or an administrator) {}{see_log}",
                plan.config_name,
                s.job,
                if never_ran {
                    "before it started"
                } else {
                    NO_SUPERVISOR_REPORT
                }
            );
            let outcome = interrupted(plan, info.as_ref());
            // Slurm's cancel is a SIGTERM to the job: said as the run's interrupting signal.
            run::interrupted_from_outside(15);
            run::finish_as(plan, &outcome, None, skip_perf, Some(exit::TERMINATED))
        }
        (false, None) => {
            let reason = if never_ran {
                format!(
                    "Slurm job {} ended in state {state_name} before it started",
                    s.job
                )
            } else {
                // A supervisor killed by a signal (an administrator's, Slurm's `--signal`)
                // leaves no word of its own: Slurm's ExitCode names the signal.
                let signal = job::batch_signal(&s.job)
                    .map(|sig| {
                        format!(
                            " (its batch script was killed by signal {})",
                            job::signal_name(sig)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "Slurm job {} ended in state {state_name} {NO_SUPERVISOR_REPORT}{signal}{see_log}",
                    s.job
                )
            };
            say_err!("disagg: {}: {reason}", plan.config_name);
            let outcome = ended_by_slurm(plan, reason, false, info.as_ref());
            run::finish(plan, &outcome, None, skip_perf)
        }
    };
    // This process did not cancel it (that is the interrupt path, not this one): someone did,
    // and its supervisor stopped the run as interrupted.
    let from_outside = if state_name.starts_with("CANCELLED") && exit::is_interruption(code) {
        ": cancelled from outside this `disagg run` (scancel, or an administrator), so the run \
         stopped as interrupted"
    } else if let Some(what) = lost_state(&state_name) {
        // The job's own log and status.json end with the supervisor's "interrupted" (Slurm's
        // TERM), or with whichever role it saw end first: the reports here say what Slurm did.
        match what {
            "a node of it failed" => {
                ": a node of it failed; the reports (summary.md, results.xml) name it and the \
                 roles that ran there, whatever the job's own log says"
            }
            _ => ": the reports (summary.md, results.xml) say why, whatever the job's own log says",
        }
    } else {
        ""
    };
    if !from_outside.is_empty() {
        // Said in the run folder too: the reports alone read like any interruption (a Ctrl-C
        // of `disagg run`), and the console is gone by morning.
        let line = format!("Slurm job {} ended {state_name}{from_outside}\n", s.job);
        if let Err(e) = crate::atomic::write(&plan.run_dir.join(SLURM_END_FILE), line.as_bytes()) {
            say_err!("disagg: warning: cannot write {SLURM_END_FILE}: {e}");
        }
    }
    // A failed run's supervisor cancels its own job (so no step outlives the verdict): said,
    // since "ended CANCELLED" alone reads like someone else's scancel.
    let own_cancel = if from_outside.is_empty()
        && state_name.starts_with("CANCELLED")
        && code == exit::TEST_FAILED
    {
        " (cancelled by its supervisor after the run failed)"
    } else if from_outside.is_empty() && exit::is_interruption(code) && state_name == "FAILED" {
        // Slurm's word for a batch script that exited non-zero, here with the interruption's.
        " (Slurm's state for a batch script that exited non-zero: the run was interrupted)"
    } else {
        ""
    };
    say!(
        "disagg: {}: job {} ended {state_name}{from_outside}{own_cancel}; reports in {}",
        plan.config_name,
        s.job,
        plan.run_dir.display()
    );
    code
}

/// The run of a `--no-wait` job whose supervisor wrote no reports (cancelled while it pended,
/// killed, its node lost): once Slurm says the job has ended, writes its reports from the run
/// folder as a waiting `disagg run` would have, and returns their exit code. `None` while the
/// job is out, when Slurm does not answer, or when `run_dir` is no such run; the exit code
/// already there when the reports are.
pub fn collect_ended(run_dir: &Path) -> Option<i32> {
    if let Ok(t) = std::fs::read_to_string(run_dir.join(run::EXIT_CODE_FILE)) {
        return t.trim().parse().ok();
    }
    let job = std::fs::read_to_string(run_dir.join(JOB_ID_FILE)).ok()?;
    let job = job.trim();
    let info = match job::lookup(job) {
        job::Lookup::Found(i) if i.state.is_terminal() => Some(i),
        job::Lookup::Found(_) | job::Lookup::NoAnswer(_) => return None,
        job::Lookup::Gone => None,
    };
    let plan = crate::role::load_plan(run_dir).ok()?;
    let s = Submitted {
        view: crate::live::LiveView::default(),
        supervisor: crate::beat::Watch::new(&plan, crate::beat::SUPERVISOR),
        gave_up: None,
        unanswered: None,
        running: None,
        plan,
        job: job.to_string(),
        case: 0,
        waiting: None,
        next_progress: Instant::now(),
    };
    Some(collect(&s, info, run::skip_perf_from_env()))
}

/// In the run folder of a job whose supervisor `disagg run` gave up on (its beat stopped): why.
/// The supervisor, should it wake, leaves the reports to `disagg run`.
pub const GIVEN_UP_FILE: &str = "supervisor_given_up.txt";

/// The run folder's note of how Slurm ended a job someone else cancelled (`disagg triage`
/// shows it).
pub const SLURM_END_FILE: &str = "slurm_end.txt";

/// What the reason of a job that ended with no report from its supervisor says: `disagg
/// triage` then takes the job's account over whatever a role wrote before the end.
pub const NO_SUPERVISOR_REPORT: &str = "before its supervisor wrote a report";

/// The exit code the run folder holds, once its reports are written.
fn written_code(plan: &Plan) -> Option<i32> {
    std::fs::read_to_string(plan.run_dir.join(run::EXIT_CODE_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
}

/// The supervisor's own outcome, if it wrote one.
fn earlier_outcome(plan: &Plan) -> Option<Outcome> {
    std::fs::read(plan.run_dir.join("outcome.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn fresh_roles(plan: &Plan) -> Vec<RoleOutcome> {
    plan.roles
        .iter()
        .map(|r| RoleOutcome {
            role: r.role,
            log: r.log.clone(),
            failure: None,
        })
        .collect()
}

/// How long the run lasted: the supervisor's count, else how long Slurm ran the job, else how
/// long the supervisor beat (no accounting, and the job gone from squeue); 0 when it never ran.
fn run_duration(plan: &Plan, earlier: Option<&Outcome>, info: Option<&job::JobInfo>) -> f64 {
    earlier
        .map(|o| o.duration_s)
        .or_else(|| info.and_then(|i| i.run_time).map(|d| d.as_secs_f64()))
        .or_else(|| crate::beat::beaten_for(plan, crate::beat::SUPERVISOR).map(|d| d.as_secs_f64()))
        .unwrap_or(0.0)
}

/// What a job state that is no one's signal says happened, for the reason.
fn lost_state(state: &str) -> Option<&'static str> {
    match state {
        "NODE_FAIL" => Some("a node of it failed"),
        "BOOT_FAIL" => Some("a node of it failed to boot"),
        "PREEMPTED" => Some("it was preempted (its nodes given to another job)"),
        _ => None,
    }
}

/// The outcome of a job Slurm ended for a node (or preempted): the nodes Slurm now holds down
/// among the job's, and the roles that ran on them, each failed.
/// Inside the job, as it ends: whether Slurm is ending it for a lost node (its state, or srun's
/// `Node failure on` in a role's log, or slurmstepd's `DUE TO NODE FAILURE`), and then the
/// outcome that says so ([`node_loss`]).
pub(crate) fn node_lost(job: &str, plan: &Plan) -> Option<Outcome> {
    let state = job::state(job).map(|s| s.0).unwrap_or_default();
    if lost_state(&state).is_some() {
        return Some(node_loss(job, plan, &state, "", None));
    }
    let seen = plan.roles.iter().any(|r| {
        crate::logtext::tail_text(&plan.run_dir.join(&r.log), 64 * 1024).is_some_and(|t| {
            t.lines().any(|l| {
                l.contains("srun: error: Node failure on ")
                    || (l.contains("*** ") && l.contains("DUE TO NODE FAILURE"))
            })
        })
    });
    seen.then(|| node_loss(job, plan, "NODE_FAIL", "", None))
}

fn node_loss(
    job_id: &str,
    plan: &Plan,
    state: &str,
    see_log: &str,
    info: Option<&job::JobInfo>,
) -> Outcome {
    let what = lost_state(state).unwrap_or("it ended");
    let hosts = job::nodes(job_id);
    // Slurm's account (a node still down), else srun's in the role logs: a node that answers
    // again is back at once (`ReturnToService=2`), but the step on it said it failed.
    let mut failed: Vec<(String, String)> = job::failed_nodes(&hosts)
        .into_iter()
        .map(|(n, st)| (n, format!("{st} now")))
        .collect();
    for r in &plan.roles {
        let tail =
            crate::logtext::tail_text(&plan.run_dir.join(&r.log), 64 * 1024).unwrap_or_default();
        for node in tail
            .lines()
            .filter_map(|l| l.split("srun: error: Node failure on ").nth(1))
            .map(str::trim)
        {
            if !failed.iter().any(|(n, _)| n == node) {
                failed.push((node.to_string(), "srun saw it fail".into()));
            }
        }
    }
    let host_of = |i: u32| hosts.get(i as usize).cloned();
    let nodes_of = |r: &disagg_core::RolePlan| -> Vec<String> {
        if r.role.is_worker() {
            let mut n: Vec<u32> = r.gpus.iter().map(|g| g.node).collect();
            n.dedup();
            if n.is_empty() {
                n.push(0);
            }
            n.into_iter().filter_map(host_of).collect()
        } else {
            host_of(plan.router_node(r.role)).into_iter().collect()
        }
    };
    let lost_on = |r: &disagg_core::RolePlan| -> Option<String> {
        nodes_of(r)
            .into_iter()
            .find(|h| failed.iter().any(|(f, _)| f == h))
    };
    let hit: Vec<(disagg_core::RoleName, String)> = plan
        .roles
        .iter()
        .filter_map(|r| lost_on(r).map(|h| (r.role, h)))
        .collect();
    let reason = if failed.is_empty() {
        format!(
            "Slurm ended job {} as {state}: {what}{}{see_log}",
            job_id,
            if hosts.is_empty() {
                String::new()
            } else {
                format!(" (its nodes: {})", hosts.join(", "))
            }
        )
    } else {
        let nodes: Vec<String> = failed
            .iter()
            .map(|(n, how)| format!("{n} ({how})"))
            .collect();
        let roles: Vec<String> = hit.iter().map(|(r, _)| r.to_string()).collect();
        format!(
            "Slurm ended job {} as {state}: {what}: {}{}{see_log}",
            job_id,
            nodes.join(", "),
            if roles.is_empty() {
                String::new()
            } else {
                format!("; {} ran there", roles.join(", "))
            }
        )
    };
    let earlier = earlier_outcome(plan);
    let mut roles = earlier
        .as_ref()
        .map(|o| o.roles.clone())
        .unwrap_or_else(|| fresh_roles(plan));
    for r in &mut roles {
        if let Some((_, h)) = hit.iter().find(|(role, _)| *role == r.role) {
            r.failure = Some(format!("its node {h} was lost ({state})"));
        }
    }
    Outcome {
        result: RunResult::Failed(Failure {
            role: hit.first().map(|(r, _)| r.to_string()),
            reason,
            timeout: false,
        }),
        roles,
        duration_s: run_duration(plan, earlier.as_ref(), info),
    }
}

/// The outcome of a run interrupted before its supervisor wrote a report: its roles as the
/// supervisor last saw them, if it wrote them.
fn interrupted(plan: &Plan, info: Option<&job::JobInfo>) -> Outcome {
    let earlier = earlier_outcome(plan);
    Outcome {
        result: RunResult::Interrupted,
        roles: earlier
            .as_ref()
            .map(|o| o.roles.clone())
            .unwrap_or_else(|| fresh_roles(plan)),
        duration_s: run_duration(plan, earlier.as_ref(), info),
    }
}

/// The outcome when Slurm, not the supervisor, ended the run: the supervisor's own (if it wrote
/// one) with the job's fate as the verdict.
fn ended_by_slurm(
    plan: &Plan,
    reason: String,
    timeout: bool,
    info: Option<&job::JobInfo>,
) -> Outcome {
    let earlier = earlier_outcome(plan);
    Outcome {
        result: RunResult::Failed(Failure {
            role: None,
            reason,
            timeout,
        }),
        roles: earlier
            .as_ref()
            .map(|o| o.roles.clone())
            .unwrap_or_else(|| fresh_roles(plan)),
        duration_s: run_duration(plan, earlier.as_ref(), info),
    }
}

/// "--time=5, 5m", or the partition's default.
pub(crate) fn time_limit(plan: &Plan) -> String {
    match &plan.slurm.time {
        Some(t) => match disagg_core::slurm::parse_time(t) {
            Ok(d) => format!("--time={t}, {}", humantime::format_duration(d)),
            Err(_) => format!("--time={t}"),
        },
        None => "the partition's default".into(),
    }
}

fn print_summary(plan: &Plan) {
    if let Ok(text) = std::fs::read_to_string(plan.run_dir.join("summary.md")) {
        say_raw!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::unrecognized_option;

    #[test]
    fn the_option_sbatch_does_not_have_is_named() {
        assert_eq!(
            unrecognized_option("sbatch: unrecognized option '--segment=6'\nTry \"sbatch --help\""),
            Some("--segment=6".to_string())
        );
        assert_eq!(
            unrecognized_option("sbatch: invalid option -- 'Z'"),
            Some("-Z".to_string())
        );
        assert_eq!(unrecognized_option("sbatch: error: Invalid account"), None);
    }
}
