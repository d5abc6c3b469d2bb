//! `disagg run`: check every case first, then run each in its own folder, then the perf check and
//! the reports, and one exit code for all.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use disagg_core::Plan;
use disagg_core::exit;
use disagg_core::load::LoadedCase;

use crate::executor::LocalExecutor;
use crate::outcome::{Outcome, RunResult};
use crate::perf::{self, BaselineRow};
use crate::report::{self, PerfOutcome};
use crate::rundir;

/// Settings of one `disagg run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub workspace: Option<PathBuf>,
    /// `--skip-perf-check`; `SKIP_PERF_CHECK=true` is read too.
    pub skip_perf_check: bool,
    /// The `disagg` binary the roles run.
    pub exe: PathBuf,
    /// `--resume`: skip every case whose resolved content already has a passed run.
    pub resume: bool,
    /// `--junit FILE`: one JUnit file of every case this invocation ran.
    pub junit: Option<PathBuf>,
}

/// Writes `--junit FILE` once every case has ended; the exit code, made a failure when the file
/// asked for cannot be written (CI reading it would find nothing, or an earlier night's).
pub(crate) fn write_junit(
    book: &crate::sweep::Book,
    ready: &[Ready],
    file: Option<&Path>,
    code: i32,
) -> i32 {
    let Some(file) = file else { return code };
    match book.write_junit(ready, file) {
        Ok(()) => {
            say!("disagg: JUnit of every case in {}", file.display());
            code
        }
        Err(e) => {
            say_err!("error: --junit: {e}");
            combine(&[code, exit::TEST_FAILED])
        }
    }
}

/// `SKIP_PERF_CHECK` as the seed harness reads it: `true` (any case), `1` or `yes`. Any other
/// value but `false`, `0`, `no` or empty runs the check, and is warned about once: a typo
/// (`ture`) must not gate a run the user meant to leave ungated, unseen.
pub fn skip_perf_from_env() -> bool {
    let Ok(v) = std::env::var("SKIP_PERF_CHECK") else {
        return false;
    };
    match skip_perf_value(&v) {
        Some(skip) => skip,
        None => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                say_err!(
                    "warning: SKIP_PERF_CHECK={v:?} is neither true/1/yes nor false/0/no: the perf \
                     check runs; hint: set SKIP_PERF_CHECK=true (or pass --skip-perf-check) to \
                     skip it"
                )
            });
            false
        }
    }
}

/// `Some(skip)` for a value `SKIP_PERF_CHECK` understands, `None` otherwise.
fn skip_perf_value(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" | "" => Some(false),
        _ => None,
    }
}

pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The signal that set [`INTERRUPTED`] (the first one).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Signals received so far: a wait that began after an interruption still ends on the next.
pub(crate) static SIGNALS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// A run interrupted by a signal its roles got from outside, not this process (its exit code
/// is that signal's, as if it had come here too; a signal of our own, first, wins).
pub(crate) fn interrupted_from_outside(sig: i32) {
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
}

/// The name of the signal that interrupted the run (`SIGTERM`), when one did.
pub(crate) fn interrupting_signal() -> Option<&'static str> {
    let sig = SIGNAL.load(Ordering::SeqCst);
    nix::sys::signal::Signal::try_from(sig)
        .ok()
        .filter(|_| sig != 0)
        .map(|s| s.as_str())
}

/// The exit code of an interrupted run: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.
pub(crate) fn interrupted_code() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => exit::INTERRUPTED,
        sig => exit::by_signal(sig),
    }
}

pub(crate) fn install_signal_handlers() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
}

/// A case ready to run: checked, with its baseline read.
pub(crate) struct Ready {
    pub(crate) case: LoadedCase,
    pub(crate) baseline: Option<(PathBuf, Vec<BaselineRow>)>,
    /// What the run's pass is judged against ([`perf_basis`]): `--resume` reuses only a pass
    /// judged the same way.
    pub(crate) perf_basis: String,
    /// The sweep this case is a point of, and its index there.
    pub(crate) point: Option<crate::sweep::PointOf>,
}

/// A case as loaded, and the sweep point it is, if it is one.
type Loaded = (LoadedCase, Option<crate::sweep::PointOf>);

/// Every case of the files given (a case file is one, a sweep file its points) that loads, and
/// whether any did not (each such said).
fn expand_files(paths: &[PathBuf]) -> (Vec<Loaded>, bool) {
    let mut out = Vec::new();
    let mut bad = false;
    for p in paths {
        match disagg_core::sweep::load_file(p) {
            Ok(disagg_core::sweep::CaseFile::Single(c)) => out.push((*c, None)),
            Ok(disagg_core::sweep::CaseFile::Sweep(s)) => {
                let sweep = std::sync::Arc::new(s);
                for (i, pt) in sweep.points.iter().enumerate() {
                    out.push((
                        pt.case.clone(),
                        Some(crate::sweep::PointOf {
                            sweep: sweep.clone(),
                            index: i,
                        }),
                    ));
                }
            }
            Err(errors) => {
                for e in errors {
                    say_err!("error: {e}");
                }
                bad = true;
            }
        }
    }
    (out, bad)
}

/// Loads and checks every case (and baseline), a sweep's every point; prints every problem.
/// `None` when any is bad.
pub(crate) fn check_all(paths: &[PathBuf], skip_perf: bool) -> Option<Vec<Ready>> {
    let (ready, bad) = check_each(paths, skip_perf);
    (!bad).then_some(ready)
}

/// [`check_all`], keeping the good cases when some are bad (`true`: some were, and said so).
fn check_each(paths: &[PathBuf], skip_perf: bool) -> (Vec<Ready>, bool) {
    let mut ready = Vec::new();
    let (cases, mut bad) = expand_files(paths);
    // Each dataset and tokenizer is read once, however many cases or points name it.
    let mut inputs_read = std::collections::HashSet::new();
    for (case, point) in cases {
        // A sweep point's errors say which point (each point is checked on its own).
        let of = point
            .as_ref()
            .map_or_else(String::new, |p| format!("sweep point {}: ", p.index + 1));
        match check_engine_args(&case)
            .and_then(|()| check_bench_settings(&case))
            .map(|()| case)
        {
            Ok(case) => {
                if let Err(e) = check_bench_inputs(&case, &mut inputs_read) {
                    say_err!("error: {of}{e}");
                    bad = true;
                    continue;
                }
                if let Some(gate) = case.case.perf.history_gate() {
                    if let Err(why) = crate::history_gate::gated_metrics(&gate) {
                        let text = std::fs::read_to_string(&case.path).unwrap_or_default();
                        let e = disagg_core::CaseError::new(
                            &case.path,
                            "perf.history.metrics",
                            why,
                        )
                        .at_line(disagg_core::locate::line_of(&text, "perf.history.metrics"))
                        .hint(
                            "metric names are those of perf_script_test_results.csv's metric_type",
                        );
                        say_err!("error: {of}{e}");
                        bad = true;
                        continue;
                    }
                }
                let baseline = match case.baseline_path() {
                    Some(b) if !skip_perf => match perf::read_baseline(&b).and_then(|rows| {
                        let labels = planned_labels(&case);
                        perf::check_covers(&b, &rows, case.config_name.as_str(), &labels)?;
                        let workload = bench_workload(
                            &disagg_core::plan::resolve_benchmark_paths(
                                &case.case.benchmark,
                                &case.path,
                            ),
                            &case.case.model.name,
                        );
                        perf::check_workload(
                            &b,
                            &rows,
                            case.config_name.as_str(),
                            &labels,
                            &workload,
                        )?;
                        Ok(rows)
                    }) {
                        Ok(rows) => Some((b, rows)),
                        // Not ready: `validate` says `ok` only of the cases it keeps.
                        Err(e) => {
                            say_err!("error: {of}{}", baseline_error(&case.path, &e));
                            bad = true;
                            continue;
                        }
                    },
                    _ => None,
                };
                let perf_basis = perf_basis(&case, skip_perf);
                ready.push(Ready {
                    case,
                    baseline,
                    perf_basis,
                    point,
                });
            }
            Err(e) => {
                say_err!("error: {of}{e}");
                bad = true;
            }
        }
    }
    // Two cases of one config name (two files with the same `name:`, a file given twice) share
    // `disagg_logs/<name>/`, its `latest` and one JUnit suite name: one's failure could read as
    // the other's pass. Said before anything runs.
    let mut seen: std::collections::HashMap<&str, &Path> = Default::default();
    for r in &ready {
        let name = r.case.config_name.as_str();
        if let Some(first) = seen.insert(name, &r.case.path) {
            let how = if first == r.case.path.as_path() {
                "it is given twice".to_string()
            } else {
                format!("so is {}'s", first.display())
            };
            say_err!(
                "error: {}: its config name is `{name}`, and {how}: two runs of one name share \
                 disagg_logs/{name}/, its `latest` and their JUnit suite's name, so one's failure \
                 could read as the other's pass\nhint: give one of them another `name:` (or \
                 list each file once)",
                r.case.path.display()
            );
            bad = true;
        }
    }
    (ready, bad)
}

/// The case's dataset and tokenizer read as its benchmark will read them (`disagg validate` and
/// `run` before launch): a file that would stop the benchmark is a case error naming the key,
/// not a run that starts every server and then fails. Pairs already read are skipped.
fn check_bench_inputs(
    case: &LoadedCase,
    read: &mut std::collections::HashSet<(String, Option<PathBuf>, Option<PathBuf>)>,
) -> Result<(), disagg_core::CaseError> {
    let b = &case.case.benchmark;
    if b.dataset.is_none() && b.tokenizer.is_none() {
        return Ok(());
    }
    let resolved = disagg_core::plan::resolve_benchmark_paths(b, &case.path);
    let dataset = resolved.dataset.map(PathBuf::from);
    let tokenizer = resolved.tokenizer.map(PathBuf::from);
    if !read.insert((b.endpoint.clone(), dataset.clone(), tokenizer.clone())) {
        return Ok(());
    }
    let cfg = disagg_bench::BenchConfig {
        endpoint: b.endpoint.clone(),
        dataset,
        tokenizer,
        ..Default::default()
    };
    let Err(e) = disagg_bench::check_inputs(&cfg) else {
        return Ok(());
    };
    let (key, hint) = match &e {
        disagg_bench::BenchError::Tokenizer { .. } => {
            ("benchmark.tokenizer", "name a Hugging Face tokenizer.json")
        }
        _ => (
            "benchmark.dataset",
            "a ShareGPT JSON list, or JSON lines of TensorRT-LLM's custom dataset, `{\"input_ids\": [...]}` or `{\"prompt\": \"...\"}` with `output_tokens` (crates/disagg-bench/README.md, *Workloads*)",
        ),
    };
    let text = std::fs::read_to_string(&case.path).unwrap_or_default();
    Err(disagg_core::CaseError::new(&case.path, key, e.to_string())
        .at_line(disagg_core::locate::line_of(&text, key))
        .hint(hint))
}

/// The benchmark's own checks of its settings, made here as BENCHMARK would make them once
/// every worker is up (on GPUs, up to an hour later): a load it would refuse is a case error.
fn check_bench_settings(case: &LoadedCase) -> Result<(), disagg_core::CaseError> {
    let plan = disagg_core::plan::build(case, "validate", Path::new("."), Path::new("disagg"));
    let cfg = crate::role::bench_config(&plan, "http://127.0.0.1:1".into());
    let Err(e) = disagg_bench::check_settings(&cfg) else {
        return Ok(());
    };
    let why = e.to_string();
    let why = why.strip_prefix("bad settings: ").unwrap_or(&why);
    let text = std::fs::read_to_string(&case.path).unwrap_or_default();
    Err(disagg_core::CaseError::new(
        &case.path,
        "benchmark",
        format!("the benchmark would refuse these settings: {why}"),
    )
    .at_line(disagg_core::locate::line_of(&text, "benchmark"))
    .hint(
        "the checks `disagg bench` makes before it sends anything; see docs/case.md, `benchmark`",
    ))
}

/// A baseline that cannot be used, as a case error: the case file, its `perf.baseline` line
/// and key, then the baseline's own account and hint.
fn baseline_error(case: &Path, e: &perf::BaselineError) -> disagg_core::CaseError {
    let text = std::fs::read_to_string(case).unwrap_or_default();
    let full = e.to_string();
    let (why, hint) = full.split_once("\nhint: ").unwrap_or((full.as_str(), ""));
    let err = disagg_core::CaseError::new(case, "perf.baseline", why.to_string())
        .at_line(disagg_core::locate::line_of(&text, "perf.baseline"));
    if hint.is_empty() {
        err
    } else {
        err.hint(hint.to_string())
    }
}

/// `perf.baseline: history` needs the results store: a case gating on it, with the check not
/// skipped, is refused before anything is launched when the store (`DISAGG_STORE`, else the
/// workspace's SQLite file) cannot be opened, naming the store, the key and the fix. Else every
/// run would launch, measure and then pass with its check "skipped", gating nothing. `Err`
/// holds the exit code (nothing launched): 2, or the signal's when one ends the wait.
pub(crate) fn history_store_usable(
    ready: &[Ready],
    workspace: &Path,
    skip_perf: bool,
) -> Result<(), i32> {
    if skip_perf {
        return Ok(());
    }
    let Some(r) = ready
        .iter()
        .find(|r| r.case.case.perf.history_gate().is_some())
    else {
        return Ok(());
    };
    // Bounded, and never deaf to a signal: a server that takes the connection and then says
    // nothing (a frozen host, a pooler with no server free) held `run` for ever, Ctrl-C too.
    let ws = workspace.to_path_buf();
    let opened =
        crate::bounded::store_call(crate::bounded::STORE_WAIT, move || open_and_read_store(&ws));
    let why = match opened {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(crate::bounded::Unanswered::Interrupted) => {
            say_err!("disagg: interrupted while opening the results store; nothing was launched");
            return Err(interrupted_code());
        }
        Err(timed_out) => format!(
            "{}: {timed_out}",
            disagg_store::default_location_shown(workspace)
        ),
    };
    say_err!("error: {}", store_unusable(&r.case, workspace, &why));
    Err(exit::USAGE)
}

/// Opens the workspace's store (making a SQLite one) and reads it whole, not only its schema: a
/// file damaged past it opens fine, and failed the gate's query only after the benchmark ran.
fn open_and_read_store(workspace: &Path) -> Result<(), String> {
    let mut store = disagg_store::Store::open_default(workspace).map_err(|e| e.to_string())?;
    match store.quick_check().map_err(|e| e.to_string())?.as_str() {
        "ok" => Ok(()),
        damage => Err(format!(
            "results store {}: the file is damaged (SQLite's quick_check: {damage})",
            store.name()
        )),
    }
}

/// The case error of `case`, gating on a results store that cannot be used (`why`).
fn store_unusable(
    case: &LoadedCase,
    workspace: &Path,
    why: &dyn std::fmt::Display,
) -> disagg_core::CaseError {
    let text = std::fs::read_to_string(&case.path).unwrap_or_default();
    let why = why.to_string();
    // Busy is not broken: moving a store aside that another process holds would drop its
    // history for nothing.
    let busy = [
        "database is locked",
        "database is busy",
        "statement timeout",
        "lock timeout",
    ]
    .iter()
    .any(|w| why.contains(w))
        // A SQLite file that takes longer than the wait to read is busy or slow (a network
        // filesystem), not broken either.
        || (why.contains("did not answer within")
            && !disagg_store::default_location(workspace).starts_with("postgres"));
    let hint = if busy {
        "the store is busy, not broken: another process holds a lock on it (a run recording, \
         a `disagg history`, a client of its own); run again once it is done (`fuser` on a \
         SQLite file names the process), or use --skip-perf-check to run without the gate"
            .to_string()
    } else {
        store_fix(workspace)
    };
    disagg_core::CaseError::new(
        &case.path,
        "perf.baseline",
        format!("`history` gates on the results store, which cannot be used: {why}"),
    )
    .at_line(disagg_core::locate::line_of(&text, "perf.baseline"))
    .hint(hint)
}

/// How to get a results store that works: with `DISAGG_STORE` set, point it elsewhere or unset
/// it; without, the workspace's own SQLite file is the broken one, to be moved aside (its runs
/// kept) so that the next run makes a new one.
fn store_fix(workspace: &Path) -> String {
    let own = workspace.join(disagg_store::SQLITE_FILE);
    let named = std::env::var(disagg_store::STORE_ENV).is_ok_and(|s| !s.trim().is_empty());
    if named {
        format!(
            "point {} at a reachable postgresql:// URL or a writable SQLite file, or unset it to use {}; --skip-perf-check runs without the gate",
            disagg_store::STORE_ENV,
            own.display()
        )
    } else {
        format!(
            "move {} aside (e.g. `mv {0} {0}.broken`; the next run makes a new one, without the history), or point {} at another store; --skip-perf-check runs without the gate",
            own.display(),
            disagg_store::STORE_ENV
        )
    }
}

/// What `validate` finds wrong with the results store a history gate would use, without making
/// one: a store named by URL, or a SQLite file that exists, is opened as `run` opens it; a
/// SQLite file not yet there is one `run` makes.
fn store_problem(workspace: &Path) -> Option<String> {
    if !disagg_store::default_exists(workspace) {
        return None;
    }
    let ws = workspace.to_path_buf();
    match crate::bounded::store_call(crate::bounded::STORE_WAIT, move || {
        open_and_read_store(&ws).err()
    }) {
        Ok(problem) => problem,
        Err(why) => Some(format!(
            "{}: {why}",
            disagg_store::default_location_shown(workspace)
        )),
    }
}

/// The labels of the points a case measures (`con8`, `rate2.5`), as its results will name them.
fn planned_labels(case: &LoadedCase) -> Vec<String> {
    let b = &case.case.benchmark;
    match &b.request_rate {
        Some(rates) if !rates.is_empty() => rates
            .iter()
            .map(|&r| {
                disagg_bench::PointId {
                    concurrency: b.max_concurrency,
                    request_rate: Some(disagg_bench::RequestRate(r)),
                }
                .label()
            })
            .collect(),
        _ => b
            .concurrency()
            .iter()
            .map(|&c| disagg_bench::PointId::closed(c).label())
            .collect(),
    }
}

/// The sim checks its own flags: a case's `engine_args` that the sim would reject at start-up
/// are rejected here, before anything is launched, pointing at the group that has them.
fn check_engine_args(case: &LoadedCase) -> Result<(), disagg_core::CaseError> {
    // Only the sim's argv is ours to check; other engines' flags are theirs.
    if case.case.engine != disagg_core::case::Engine::Sim {
        return Ok(());
    }
    let groups = [("ctx", &case.case.ctx), ("gen", &case.case.generation)];
    for (group, g) in groups {
        let disagg_core::engines::EngineArgs::Sim(args) = &g.engine_args else {
            continue;
        };
        // What the plan gives every sim besides the group's own flags: its dialect matters
        // (some flags are one dialect's), its address and files do not.
        let mut argv: Vec<String> = ["disagg", "sim", "--dialect"].map(String::from).into();
        argv.push(case.case.router.dialect().as_str().into());
        argv.extend(disagg_core::engines::sim::flags(
            args,
            std::path::Path::new("requests.jsonl"),
        ));
        if let Err(why) = disagg_sim::check_argv(&argv) {
            let key = format!("{group}.engine_args");
            let text = std::fs::read_to_string(&case.path).unwrap_or_default();
            let line = disagg_core::locate::line_of(&text, &key);
            return Err(disagg_core::CaseError::new(&case.path, key, format!("the sim rejects these settings: {why}"))
                .at_line(line)
                .hint("each engine_args key is the `disagg sim` flag of the same name; see `disagg sim --help`"));
        }
    }
    Ok(())
}

/// `disagg validate`: 0 when every case (every point of a sweep) is good, 2 otherwise. A case
/// gating on the history needs `workspace`'s results store usable, as `run` does.
pub fn validate(paths: &[PathBuf], workspace: &Path) -> i32 {
    // Every good case says so, even when others are bad.
    let (ready, mut bad) = check_each(paths, false);
    let gated = ready
        .iter()
        .any(|r| r.case.case.perf.history_gate().is_some());
    let store = gated.then(|| store_problem(workspace)).flatten();
    for r in ready {
        if let (Some(why), Some(_)) = (&store, r.case.case.perf.history_gate()) {
            say_err!("error: {}", store_unusable(&r.case, workspace, why));
            bad = true;
            continue;
        }
        match &r.point {
            Some(p) => say!(
                "ok: {} point {} ({}): {}",
                r.case.path.display(),
                p.index + 1,
                p.point().label(),
                r.case.config_name
            ),
            None => say!("ok: {} ({})", r.case.path.display(), r.case.config_name),
        }
        for n in disagg_core::plan::placement_notes(&r.case.case) {
            say!("  note: {n}");
        }
        // `run` refuses it with the local launcher (its default): said here too, so that an
        // `ok:` does not read as "runs here".
        if let Some(why) = shared_gpus(&r.case.case, &r.case.path) {
            let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
            let why = why.split_once("\nhint: ").map_or(why, |(w, _)| w);
            say!("  note: only with `--launcher slurm`: {why}");
        }
        // And `run --launcher slurm` refuses this one.
        if let Some(why) = crate::slurm::submit::gres_refusal(&r.case.case, &r.case.path) {
            let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
            let why = why.split_once("\nhint: ").map_or(why, |(w, _)| w);
            say!("  note: not with `--launcher slurm`: {why}");
        }
        for n in disagg_core::fit::notes(&r.case.case) {
            say!("  note: {n}");
        }
        for n in disagg_core::plan::unexpanded_notes(&r.case.case) {
            say!("  note: {n}");
        }
        for n in disagg_core::plan::engine_arg_notes(&r.case.case) {
            say!("  note: {n}");
        }
        for n in disagg_core::plan::load_notes(&r.case.case) {
            say!("  note: {n}");
        }
    }
    if bad { exit::USAGE } else { exit::PASS }
}

/// Runs every case (every point of a sweep, one after another); the exit code of the worst
/// outcome (interrupted > failed > regressed > passed). With `resume`, a case whose resolved
/// content already has a passed run is not run again.
pub fn run_cases(paths: &[PathBuf], opts: &RunOptions) -> i32 {
    let skip_perf = opts.skip_perf_check || skip_perf_from_env();
    let Some(ready) = check_all(paths, skip_perf) else {
        return exit::USAGE;
    };
    if let Some(why) = ready
        .iter()
        .find_map(|r| local_refusal(&r.case.case, &r.case.path))
    {
        say_err!("error: {why}");
        return exit::USAGE;
    }
    // What the workers will serve cut short: the run goes ahead, but says so first.
    for r in &ready {
        let notes = disagg_core::fit::notes(&r.case.case)
            .into_iter()
            .chain(disagg_core::plan::unexpanded_notes(&r.case.case))
            .chain(disagg_core::plan::engine_arg_notes(&r.case.case))
            .chain(disagg_core::plan::load_notes(&r.case.case));
        for n in notes {
            match &r.point {
                Some(p) => say_err!(
                    "warning: {} point {}: {n}",
                    r.case.path.display(),
                    p.index + 1
                ),
                None => say_err!("warning: {}: {n}", r.case.path.display()),
            }
        }
    }
    install_signal_handlers();
    // Engines orphaned by a dying role wrapper, and anything that left its process group, are
    // re-parented to us rather than to init: the teardown finds, stops and reaps them.
    crate::procs::become_subreaper();
    let workspace = rundir::resolve_workspace(opts.workspace.as_deref());
    let workspace = std::path::absolute(&workspace).unwrap_or(workspace);
    if let Err(code) = history_store_usable(&ready, &workspace, skip_perf) {
        return code;
    }
    let mut book = match crate::sweep::Book::open(&ready, &workspace, opts.resume) {
        Ok(b) => b,
        // Nothing was launched: a usage error, as for a run folder.
        Err(e) => {
            say_err!("error: {e}");
            return exit::USAGE;
        }
    };
    let mut codes = book.reused_codes();
    // Each run's name and exit code (None: not run), for the closing tally.
    let mut tally: Vec<(String, Option<i32>)> = Vec::new();
    let label = run_label;
    for (i, r) in ready.iter().enumerate() {
        if book.is_reused(i) {
            tally.push((label(r), Some(exit::PASS)));
            continue;
        }
        // Once interrupted, the rest are not run (and the interruption is counted once).
        if codes.iter().any(|c| exit::is_interruption(*c)) {
            tally.push((label(r), None));
            continue;
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            codes.push(interrupted_code());
            tally.push((label(r), None));
            continue;
        }
        let plan = match prepare(r, &workspace, &opts.exe) {
            Ok(p) => p,
            Err(code) => {
                codes.push(code);
                tally.push((label(r), Some(code)));
                continue;
            }
        };
        book.started(i, &plan.run_dir);
        let code = run_planned(r, &plan, skip_perf);
        book.finished(i, code);
        codes.push(code);
        tally.push((label(r), Some(code)));
    }
    book.close();
    let code = combine(&codes);
    let code = write_junit(&book, &ready, opts.junit.as_deref(), code);
    if tally.len() > 1 {
        say!("{}", tally_line(&tally, code));
    }
    code
}

/// A case's name in the closing tally: a sweep point's with its number.
pub(crate) fn run_label(r: &Ready) -> String {
    match &r.point {
        Some(p) => format!("{} point {}", r.case.config_name, p.index + 1),
        None => r.case.config_name.to_string(),
    }
}

/// The last line of a run of several cases (or points): how many ended how, naming those that
/// did not pass, so the tail of a CI log does not read as the last case's verdict.
pub(crate) fn tally_line(tally: &[(String, Option<i32>)], code: i32) -> String {
    let mut parts = Vec::new();
    let passed = tally.iter().filter(|(_, c)| *c == Some(exit::PASS)).count();
    if passed > 0 {
        parts.push(format!("{passed} passed"));
    }
    let named = |what: &str, pick: &dyn Fn(Option<i32>) -> bool| {
        let names: Vec<&str> = tally
            .iter()
            .filter(|(_, c)| pick(*c))
            .map(|(n, _)| n.as_str())
            .collect();
        (!names.is_empty()).then(|| format!("{} {what} ({})", names.len(), names.join(", ")))
    };
    parts.extend(named("failed", &|c| c == Some(exit::TEST_FAILED)));
    parts.extend(named("regressed", &|c| c == Some(exit::PERF_REGRESSION)));
    parts.extend(named("not launched", &|c| c == Some(exit::USAGE)));
    parts.extend(named("interrupted", &|c| {
        c.is_some_and(exit::is_interruption)
    }));
    parts.extend(named("not run", &|c| c.is_none()));
    format!(
        "disagg: {} runs: {}; exit code {code}",
        tally.len(),
        parts.join(", ")
    )
}

/// Why the local launcher cannot run `case` (from `path`), if it cannot: a server that runs a
/// process on each of several nodes (vLLM, SGLang larger than a node), or workers of a real
/// engine placed on several nodes ([`shared_gpus`]). The error, then its hint.
pub fn local_refusal(case: &disagg_core::case::Case, path: &Path) -> Option<String> {
    let Some((group, nodes)) = disagg_core::plan::per_node_servers(case) else {
        return shared_gpus(case, path);
    };
    let g = if group == "ctx" {
        &case.ctx
    } else {
        &case.generation
    };
    Some(format!(
        "{}: each {group} server spans {nodes} nodes ({group}.parallel is {} GPUs, \
         hardware.gpus_per_node {}), where {} runs one process per node; the local launcher \
         runs on this one machine and cannot start the other nodes' processes\nhint: run it \
         with `--launcher slurm`, or keep {group}.parallel within hardware.gpus_per_node",
        path.display(),
        g.parallel.gpus_per_server(),
        case.hardware.gpus_per_node,
        case.engine.as_str()
    ))
}

/// Workers of a real engine placed on more than one node: on this one machine the nodes' GPU
/// indices are the same GPUs, so servers placed apart would share them (two servers on one
/// GPU: out of memory, or figures of a machine shared). The sim has no GPUs to share.
fn shared_gpus(case: &disagg_core::case::Case, path: &Path) -> Option<String> {
    if case.engine == disagg_core::case::Engine::Sim {
        return None;
    }
    let placed = disagg_core::plan::place_workers(case);
    let nodes = disagg_core::plan::span(&placed);
    if nodes <= 1 {
        return None;
    }
    // The workers by the nodes they take (numbered from 1, as a person counts them): those on
    // the same nodes together, a server spanning nodes with its range.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (r, g) in &placed {
        let (a, b) = (
            g.first().map_or(0, |g| g.node) + 1,
            g.last().map_or(0, |g| g.node) + 1,
        );
        let at = if a == b {
            format!("node {a}")
        } else {
            format!("nodes {a}-{b}")
        };
        match groups.last_mut() {
            Some((last, roles)) if *last == at => roles.push(r.to_string()),
            _ => groups.push((at, vec![r.to_string()])),
        }
    }
    let layout: Vec<String> = groups
        .iter()
        .map(|(at, roles)| format!("{} on {at}", roles.join(", ")))
        .collect();
    Some(format!(
        "{}: the workers take {nodes} nodes of hardware.gpus_per_node {} GPUs ({}); the local \
         launcher runs them all on this one machine, where each node's GPUs are the same GPUs, \
         so servers of different nodes would share them\nhint: run it with `--launcher slurm`, \
         or set hardware.gpus_per_node to this machine's GPU count if it has that many",
        path.display(),
        case.hardware.gpus_per_node,
        layout.join("; "),
    ))
}

/// The exit code of several runs: a failure always wins over a perf verdict.
pub fn combine(codes: &[i32]) -> i32 {
    if let Some(c) = codes.iter().find(|c| exit::is_interruption(**c)) {
        return *c;
    }
    for c in [
        exit::INTERRUPTED,
        exit::TEST_FAILED,
        exit::USAGE,
        exit::PERF_REGRESSION,
    ] {
        if codes.contains(&c) {
            return c;
        }
    }
    exit::PASS
}

/// The resolved case: the config name set, the baseline absolute, so it can be re-run from
/// anywhere. Its bytes are what [`case_hash`] hashes.
fn resolved_case_body(case: &LoadedCase) -> String {
    serde_yaml_ng::to_string(&resolved_case(case)).unwrap_or_default()
}

/// The case with its config name set and every file it names by a path relative to the case
/// file (`perf.baseline`, `benchmark.dataset`, `benchmark.tokenizer`) made absolute: what it
/// measures is then the same wherever it is copied to or run from, and two cases naming
/// `data/d.jsonl` beside different files are told apart.
fn resolved_case(case: &LoadedCase) -> disagg_core::case::Case {
    let mut c = case.case.clone();
    c.name = Some(case.config_name.to_string());
    if let Some(b) = case.baseline_path() {
        c.perf.baseline = Some(std::path::absolute(&b).unwrap_or(b).display().to_string());
    }
    c.benchmark = disagg_core::plan::resolve_benchmark_paths(&c.benchmark, &case.path);
    c
}

/// The resolved case written into the run folder, with where it came from.
fn resolved_case_yaml(case: &LoadedCase) -> String {
    format!(
        "# Resolved from {} by disagg {}; re-run with `disagg run <this file>`.\n{}",
        case.path.display(),
        env!("CARGO_PKG_VERSION"),
        resolved_case_body(case)
    )
}

/// The content hash of a resolved case (SHA-256 of its YAML, hex): two runs with the same hash
/// ran the same case, whatever file or sweep it came from.
pub fn case_hash(case: &LoadedCase) -> String {
    sha256_hex(resolved_case_body(case).as_bytes())
}

/// SHA-256 of `bytes`, in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of what a run measures (SHA-256, hex): the resolved case without `perf` (how the
/// result is judged), `timeouts` (when a run is given up) and the Slurm job's bookkeeping
/// (`slurm.time`, `slurm.account`, `slurm.job_name`), which change no figure, and with
/// the dataset and tokenizer files by their contents, not their paths. The history gate's runs
/// are those of one such hash, so retuning the gate or a deadline keeps the history, the same
/// files checked out elsewhere (another CI workspace) find it, and an edited dataset starts a
/// new one.
pub fn measure_hash(case: &LoadedCase) -> String {
    let mut c = resolved_case(case);
    c.perf = Default::default();
    c.timeouts = Default::default();
    // A longer time limit or another account runs the same job: no new history (where it runs,
    // the partition and extra_args, may measure otherwise, and stays).
    c.slurm.time = None;
    c.slurm.account = None;
    c.slurm.job_name = None;
    c.slurm.extra_args = measured_extra_args(&c.slurm.extra_args);
    for file in [&mut c.benchmark.dataset, &mut c.benchmark.tokenizer] {
        if let Some(f) = file.as_mut() {
            // Unreadable: the path stands, and the run fails on it anyway.
            if let Ok(bytes) = std::fs::read(&*f) {
                *f = format!("sha256:{}", sha256_hex(&bytes));
            }
        }
    }
    let body = serde_yaml_ng::to_string(&c).unwrap_or_default();
    sha256_hex(body.as_bytes())
}

/// sbatch options that say when or under what bookkeeping a job runs, never on what: a
/// `--begin` or `--mail-type` added for one night keeps the history. (`validate` has each
/// option and its value as one item: `--begin=now+1h`.)
const SCHEDULING_ONLY: &[&str] = &[
    "--begin",
    "-b",
    "--mail-type",
    "--mail-user",
    "--comment",
    "--dependency",
    "-d",
    "--deadline",
    "--nice",
    "--priority",
    "--qos",
    "-q",
    "--wckey",
    "--hold",
    "-H",
    "--requeue",
    "--no-requeue",
    "--kill-on-invalid-dep",
    "--time-min",
];

/// `extra_args` without [`SCHEDULING_ONLY`]'s options.
fn measured_extra_args(args: &[String]) -> Vec<String> {
    args.iter()
        .filter(|a| {
            let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
            !SCHEDULING_ONLY.contains(&name)
        })
        .cloned()
        .collect()
}

/// The file in the run folder holding the resolved case's [`measure_hash`].
pub const MEASURE_HASH_FILE: &str = "measure_hash";

/// TensorRT-LLM's name for a role's log, as its disaggregated Slurm scripts (`submit.py`) write
/// them into a run's log folder and its perf harness and other tools read them: each worker's
/// `3_output_<CTX|GEN>_<i>.log`, the router's `4_output_server.log` (the first replica's), the
/// benchmark's `6_bench.log` (its disagg LogParser reads the metrics there).
pub fn trtllm_log_name(role: disagg_core::RoleName) -> Option<String> {
    use disagg_core::RoleName;
    match role {
        RoleName::Ctx(i) => Some(format!("3_output_CTX_{i}.log")),
        RoleName::Gen(i) => Some(format!("3_output_GEN_{i}.log")),
        RoleName::DisaggServer(None | Some(0)) => Some("4_output_server.log".into()),
        RoleName::Benchmark => Some("6_bench.log".into()),
        RoleName::DisaggServer(Some(_)) => None,
    }
}

/// A relative symlink `alias` -> `target` in `dir`, made once the target exists (the
/// supervisor as it opens a role's log, the benchmark as it writes a point's result file); a
/// failure is a warning (the file itself is there under its own name).
pub(crate) fn link_alias(dir: &Path, target: &str, alias: &str) {
    let at = dir.join(alias);
    if let Some(parent) = at.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::os::unix::fs::symlink(target, &at) {
        say_err!(
            "disagg: warning: cannot link {} to {target}: {e}",
            at.display()
        );
    }
}

/// The file in the run folder holding the resolved case's [`case_hash`].
pub const CASE_HASH_FILE: &str = "case_hash";
/// The file in the run folder holding its [`perf_basis`].
pub const PERF_BASIS_FILE: &str = "perf_basis";

/// What a run's pass is judged against, as one line: `skipped` (SKIP_PERF_CHECK), `baseline
/// <SHA-256 of the file's bytes>`, `history`, or `none`. A pass with the check skipped, or
/// against a baseline since edited, is no pass of the gate as it stands: `--resume` runs it
/// again.
pub(crate) fn perf_basis(case: &LoadedCase, skip_perf: bool) -> String {
    if skip_perf {
        return "skipped".into();
    }
    if let Some(b) = case.baseline_path() {
        return match std::fs::read(&b) {
            Ok(bytes) => format!("baseline {}", sha256_hex(&bytes)),
            Err(_) => "baseline unreadable".into(),
        };
    }
    if case.case.perf.history_gate().is_some() {
        return "history".into();
    }
    "none".into()
}
/// The file in the run folder naming the sweep the run is a point of.
pub const SWEEP_NAME_FILE: &str = "sweep_name";

/// Creates the run folder of a checked case and writes `case.yaml` and `plan.json` into it.
pub(crate) fn prepare(r: &Ready, workspace: &Path, exe: &Path) -> Result<Plan, i32> {
    prepare_as(
        r,
        workspace,
        exe,
        &rundir::timestamp_run_id(),
        Where::OneMachine,
    )
}

/// Where a run's roles run: one process each on this machine (the local launcher), or as
/// Slurm steps of the plan's ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    OneMachine,
    Slurm,
}

/// [`prepare`] with a given run id (a Slurm job id).
pub(crate) fn prepare_as(
    r: &Ready,
    workspace: &Path,
    exe: &Path,
    run_id: &str,
    place: Where,
) -> Result<Plan, i32> {
    let name = &r.case.config_name;
    let (run_id, run_dir) = match rundir::create(workspace, name, run_id) {
        Ok(x) => x,
        Err(e) => {
            // Nothing was launched, and the workspace is the user's to fix: a usage error.
            say_err!(
                "error: cannot create a run folder under {}: {e}\n{}",
                rundir::config_dir(workspace, name).display(),
                rundir::workspace_hint(workspace)
            );
            return Err(exit::USAGE);
        }
    };
    let mut plan = disagg_core::plan::build(&r.case, &run_id, &run_dir, exe);
    if place == Where::OneMachine {
        plan = plan.on_one_machine();
    }
    // The supervisor may run elsewhere (inside a Slurm job, from the run folder).
    plan.perf_baseline = plan
        .perf_baseline
        .map(|b| std::path::absolute(&b).unwrap_or(b));
    let written = crate::atomic::write(
        &run_dir.join("case.yaml"),
        resolved_case_yaml(&r.case).as_bytes(),
    )
    .and_then(|_| crate::atomic::write_json(&run_dir.join("plan.json"), &plan))
    .and_then(|_| match &r.point {
        Some(p) => crate::atomic::write(
            &run_dir.join(SWEEP_NAME_FILE),
            format!("{}\n", p.sweep.name).as_bytes(),
        ),
        None => Ok(()),
    })
    .and_then(|_| {
        crate::atomic::write(
            &run_dir.join(CASE_HASH_FILE),
            format!("{}\n", case_hash(&r.case)).as_bytes(),
        )
        .and_then(|()| {
            crate::atomic::write(
                &run_dir.join(MEASURE_HASH_FILE),
                format!("{}\n", measure_hash(&r.case)).as_bytes(),
            )
        })
        .and_then(|()| {
            crate::atomic::write(
                &run_dir.join(PERF_BASIS_FILE),
                format!("{}\n", r.perf_basis).as_bytes(),
            )
        })
    })
    .and_then(|_| {
        plan.files
            .iter()
            .try_for_each(|(name, text)| crate::atomic::write(&run_dir.join(name), text.as_bytes()))
    });
    if let Err(e) = written {
        say_err!(
            "error: cannot write the plan into {}: {e}",
            run_dir.display()
        );
        return Err(exit::TEST_FAILED);
    }
    Ok(plan)
}

fn run_planned(r: &Ready, plan: &Plan, skip_perf: bool) -> i32 {
    say!(
        "disagg: {}: run {} in {}",
        plan.config_name,
        plan.run_id,
        plan.run_dir.display()
    );
    let outcome = crate::supervisor::supervise(plan, &mut LocalExecutor, &INTERRUPTED);
    finish(plan, &outcome, r.baseline.as_ref(), skip_perf)
}

/// The workload part of the CSV's `command` column, the same for every point of a case: a
/// baseline row of another workload is no reference ([`perf::check_workload`]).
pub(crate) fn bench_workload(b: &disagg_core::case::Benchmark, model: &str) -> String {
    format!(
        "disagg bench --url <router> --endpoint {} --model {} --isl {} --osl {} --range-ratio {}",
        b.endpoint, model, b.isl, b.osl, b.range_ratio
    )
}

/// The `disagg bench` command line of one point of this plan (the CSV's `command` column).
fn bench_command(plan: &Plan, p: &disagg_bench::PointReport) -> String {
    let mut s = bench_workload(&plan.benchmark, &plan.model);
    match (p.point.request_rate, p.point.concurrency) {
        (Some(r), cap) => {
            let rate = if r.0.is_finite() {
                r.0.to_string()
            } else {
                "inf".into()
            };
            s += &format!(" --request-rate {rate} --num-prompts {}", p.num_prompts);
            if let Some(c) = cap {
                s += &format!(" --max-concurrency {c}");
            }
        }
        (None, c) => {
            s += &format!(
                " --concurrency {} --num-prompts {}",
                c.unwrap_or(1),
                p.num_prompts
            )
        }
    }
    if let Some(d) = &plan.benchmark.dataset {
        s += &format!(" --dataset {d}");
    }
    s
}

/// The file in the run folder holding the run's exit code, once its reports are written.
pub const EXIT_CODE_FILE: &str = "exit_code";

/// Reads the plan's baseline for [`finish`] when the case has one and the check is not skipped.
/// An error means the case asked for a gate that can no longer be applied (the file was checked
/// before launch, so it changed since): never a silent "no baseline", nor a gate that compares
/// nothing.
pub fn read_plan_baseline(
    plan: &Plan,
    skip_perf: bool,
) -> Result<Option<(PathBuf, Vec<BaselineRow>)>, String> {
    let Some(b) = plan.perf_baseline.as_ref().filter(|_| !skip_perf) else {
        return Ok(None);
    };
    let labels: Vec<String> = crate::role::bench_config(plan, String::new())
        .point_ids()
        .iter()
        .map(|p| p.label())
        .collect();
    perf::read_baseline(b)
        .and_then(|rows| {
            perf::check_covers(b, &rows, plan.config_name.as_str(), &labels).map(|()| rows)
        })
        .map(|rows| Some((b.clone(), rows)))
        .map_err(|e| e.to_string())
}

/// After a run: the perf check and every report, written from the run folder; returns the exit
/// code (also written to [`EXIT_CODE_FILE`]).
pub fn finish(
    plan: &Plan,
    outcome: &Outcome,
    baseline: Option<&(PathBuf, Vec<BaselineRow>)>,
    skip_perf: bool,
) -> i32 {
    finish_as(plan, outcome, baseline, skip_perf, None)
}

/// `results.json` for a run in which no point was measured: no points, invalid, and why.
fn write_empty_results(plan: &Plan, outcome: &Outcome) -> Result<(), String> {
    let why = match &outcome.result {
        RunResult::Failed(f) => f.reason.clone(),
        RunResult::Interrupted => "the run was interrupted".to_string(),
        RunResult::Passed => "BENCHMARK wrote no results".to_string(),
    };
    write_results(
        plan,
        false,
        Some(format!("no point was measured: {why}")),
        Vec::new(),
        Vec::new(),
    )
}

/// Writes the reports that carry a run's verdict (JUnit, summary, outcome), each with how its
/// write went.
fn write_verdict(
    run_dir: &Path,
    junit: &quick_junit::Report,
    summary: &str,
    outcome: &Outcome,
    perf: &PerfOutcome,
) -> [(&'static str, std::io::Result<()>); 3] {
    // The run's result, and beside it the perf check's: a run that passed and regressed is not
    // a pass to a tool reading outcome.json alone.
    let mut data = serde_json::to_value(outcome).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        o.insert("perf_check".into(), perf.verdict().into());
        // Which signal interrupted it, when one did (its exit code says it too).
        if let (RunResult::Interrupted, Some(sig)) = (&outcome.result, interrupting_signal()) {
            o.insert("signal".into(), sig.into());
        }
    }
    [
        (
            "results.xml",
            report::to_xml(junit)
                .and_then(|x| crate::atomic::write(&run_dir.join("results.xml"), x.as_bytes())),
        ),
        (
            "summary.md",
            crate::atomic::write(&run_dir.join("summary.md"), summary.as_bytes()),
        ),
        (
            "outcome.json",
            crate::atomic::write_json(&run_dir.join("outcome.json"), &data),
        ),
    ]
}

/// Adds to the run folder's `outcome.json` that the run was interrupted `when` (and by which
/// signal) after it was written: its `result` is the roles', its exit code the interruption's.
fn mark_interrupted(run_dir: &Path, when: &str) {
    let path = run_dir.join("outcome.json");
    let Some(mut data) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return;
    };
    if let Some(o) = data.as_object_mut() {
        o.insert("interrupted".into(), when.into());
        if let Some(sig) = interrupting_signal() {
            o.insert("signal".into(), sig.into());
        }
    }
    if let Err(e) = crate::atomic::write_json(&path, &data) {
        say_err!("disagg: warning: cannot write {}: {e}", path.display());
    }
}

/// The run's warnings (a report not written, the results store not reached) at the end of its
/// summary.md, when there are any and the file takes them.
fn append_warnings(summary: &Path, notes: &[String]) {
    use std::io::Write;
    if notes.is_empty() {
        return;
    }
    let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(summary) else {
        return;
    };
    let mut text = String::from("\n## Warnings\n\n");
    for n in notes {
        text.push_str(&format!("- {n}\n"));
    }
    let _ = f.write_all(text.as_bytes());
}

/// How a failure of a run whose folder's filesystem filled up begins.
pub(crate) const DISK_FULL: &str = "the run folder's filesystem is full";

/// Free bytes (for an unprivileged writer) of the filesystem holding `dir`, when so few that
/// the next log line or report may not fit: below [`FULL_BELOW`]; `None` when there is room
/// (or the filesystem does not say).
pub(crate) fn free_if_full(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let free = (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64);
    (free < FULL_BELOW).then_some(free)
}

/// Less free space than this under a failed run's folder is named as its cause: a role's log
/// line, a results file or a report of a few KiB could not be sure to fit.
const FULL_BELOW: u64 = 256 * 1024;

/// Rewrites a `results.json` that says `valid: true` for a run that did not pass: invalid,
/// with the run's reason (its points stay: measured before the run failed).
fn mark_results_invalid(plan: &Plan, outcome: &Outcome) -> Result<(), String> {
    let why = match &outcome.result {
        RunResult::Failed(f) => format!("the run failed: {}", f.reason),
        RunResult::Interrupted => "the run was interrupted".to_string(),
        RunResult::Passed => return Ok(()),
    };
    // Already invalid by the benchmark's own account (its requests failed): when the run's
    // root cause is another role's (the router died, a worker hung), that is the reason a
    // tool reading results.json alone must get, with the benchmark's account after it.
    if let RunResult::Failed(f) = &outcome.result {
        let path = plan.run_dir.join("results.json");
        if let Ok(mut results) = disagg_bench::ResultsFile::read(&path) {
            let own = results.invalid_reason.clone().unwrap_or_default();
            if !results.valid
                && f.role.as_deref() != Some("BENCHMARK")
                && !own.starts_with("the run ")
            {
                results.invalid_reason = Some(if own.is_empty() || f.reason.contains(&own) {
                    why
                } else {
                    format!("{why} (the benchmark's account: {own})")
                });
                return crate::atomic::write_json(&path, &results)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()));
            }
        }
    }
    invalidate_results(plan, |_| why)
}

/// Rewrites a `results.json` that says `valid: true` as invalid, for the reason `why` gives
/// (from the results read); one already invalid keeps its own reason (a run that measured
/// nothing says why), and a run without one is left so.
pub(crate) fn invalidate_results(
    plan: &Plan,
    why: impl FnOnce(&disagg_bench::ResultsFile) -> String,
) -> Result<(), String> {
    let path = plan.run_dir.join("results.json");
    let Ok(mut results) = disagg_bench::ResultsFile::read(&path) else {
        return Ok(());
    };
    if !results.valid {
        return Ok(());
    }
    results.valid = false;
    results.invalid_reason = Some(why(&results));
    crate::atomic::write_json(&path, &results)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes the run's `results.json` (atomically), with the plan's run id and config name.
pub(crate) fn write_results(
    plan: &Plan,
    valid: bool,
    invalid_reason: Option<String>,
    warnings: Vec<String>,
    points: Vec<disagg_bench::PointReport>,
) -> Result<(), String> {
    let results = disagg_bench::ResultsFile {
        run_id: Some(plan.run_id.clone()),
        config_name: Some(plan.config_name.to_string()),
        valid,
        invalid_reason,
        warnings,
        points,
    };
    let path = plan.run_dir.join("results.json");
    crate::atomic::write_json(&path, &results)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// [`finish`] with the exit code given, when the outcome alone does not say it (a job Slurm can
/// never start fails on the case's account: 2).
pub(crate) fn finish_as(
    plan: &Plan,
    outcome: &Outcome,
    baseline: Option<&(PathBuf, Vec<BaselineRow>)>,
    skip_perf: bool,
    code: Option<i32>,
) -> i32 {
    let run_dir = &plan.run_dir;
    let run_id = &plan.run_id;
    let name = &plan.config_name;
    let results_path = run_dir.join("results.json");
    let (points, unreadable) = if results_path.exists() {
        match disagg_bench::ResultsFile::read(&results_path) {
            Ok(r) => (r.points, None),
            Err(e) => (Vec::new(), Some(e)),
        }
    } else {
        (
            Vec::new(),
            (outcome.result == RunResult::Passed)
                .then(|| format!("{}: BENCHMARK never wrote it", results_path.display())),
        )
    };
    // A full disk under the run folder fails whichever role writes next, in its own words or
    // in none (its log is the file that could not grow): the verdict says so first. Read
    // before the space set aside for the reports is given back to them.
    let full = free_if_full(run_dir);
    crate::rundir::release_space(run_dir);
    let on_full_disk;
    let outcome = match (&outcome.result, full) {
        (RunResult::Failed(f), Some(free)) if !f.reason.starts_with(DISK_FULL) => {
            on_full_disk = Outcome {
                result: RunResult::Failed(crate::outcome::Failure {
                    reason: format!(
                        "{DISK_FULL} ({free} bytes free under {}): {}",
                        run_dir.display(),
                        f.reason
                    ),
                    ..f.clone()
                }),
                ..outcome.clone()
            };
            &on_full_disk
        }
        _ => outcome,
    };
    let mut notes = Vec::new();
    // Every run folder has its results.json, a run that measured nothing too: the run's reason
    // stands in for the points it does not have.
    if !results_path.exists() {
        if let Err(e) = write_empty_results(plan, outcome) {
            notes.push(e);
        }
    }
    // Results that cannot be read are not a pass, whatever the roles said.
    let adjusted;
    let outcome = match (&outcome.result, unreadable) {
        (RunResult::Passed, Some(e)) => {
            adjusted = Outcome {
                result: RunResult::Failed(crate::outcome::Failure {
                    role: Some("BENCHMARK".into()),
                    reason: format!("the results cannot be read: {e}"),
                    timeout: false,
                }),
                ..outcome.clone()
            };
            &adjusted
        }
        _ => outcome,
    };
    let passed = outcome.result == RunResult::Passed;
    // The benchmark judged its points, not the run: a run that failed or was interrupted
    // around them is not a valid result, for a tool that reads results.json alone.
    if !passed {
        if let Err(e) = mark_results_invalid(plan, outcome) {
            notes.push(e);
        }
    }
    // A signal while the history was read: the caller asked to stop, not for a verdict.
    let mut gate_interrupted = false;
    let perf_outcome = if skip_perf {
        PerfOutcome::Skipped
    } else if !passed {
        PerfOutcome::NotRun
    } else if let Some(gate) = &plan.perf_history {
        let (p, g, pts) = (plan.clone(), gate.clone(), points.clone());
        let check = crate::bounded::store_call(crate::bounded::STORE_WAIT, move || {
            crate::record::history_check(&p, &g, &pts)
        });
        PerfOutcome::History(check.unwrap_or_else(|why| {
            gate_interrupted = why == crate::bounded::Unanswered::Interrupted;
            crate::record::history_not_done(plan, gate, format!("the results store: {why}"))
        }))
    } else {
        match baseline {
            None => PerfOutcome::NoBaseline,
            Some((path, rows)) => {
                PerfOutcome::Checked(perf::compare(path, rows, name.as_str(), &points))
            }
        }
    };
    // Header only when no point was measured: the file is there, as every run's is.
    let csv = run_dir.join("perf_script_test_results.csv");
    if let Err(e) = perf::write_results_csv(&csv, name.as_str(), &points, passed, &|p| {
        bench_command(plan, p)
    }) {
        notes.push(format!("cannot write {}: {e}", csv.display()));
    }
    let perf_text = perf_outcome.render();
    let planned = crate::role::bench_config(plan, String::new()).point_ids();
    let junit = report::junit(
        name.as_str(),
        run_dir,
        outcome,
        &points,
        &planned,
        &perf_outcome,
    );
    let missing = report::unmeasured(run_dir, &planned, &points, outcome);
    let table = report::summary_table(&points, &missing, plan.benchmark.streaming);
    let code = match (&outcome.result, &perf_outcome) {
        _ if code.is_some() => code.unwrap_or_default(),
        (RunResult::Interrupted, _) => interrupted_code(),
        (RunResult::Failed(_), _) => exit::TEST_FAILED,
        (RunResult::Passed, _) if gate_interrupted => interrupted_code(),
        (RunResult::Passed, p) if p.not_done().is_some() => exit::TEST_FAILED,
        (RunResult::Passed, p) if p.regressed() => exit::PERF_REGRESSION,
        (RunResult::Passed, _) => exit::PASS,
    };
    let verdict = match &outcome.result {
        RunResult::Passed if code == exit::PERF_REGRESSION => {
            "REGRESSED: performance regression (see perf_check.txt)".to_string()
        }
        RunResult::Passed if gate_interrupted => {
            "INTERRUPTED while reading the results store's history for the perf check".to_string()
        }
        RunResult::Passed if code == exit::TEST_FAILED => format!(
            "FAILED: the perf check could not be done: {}",
            perf_outcome.not_done().unwrap_or_default()
        ),
        RunResult::Passed => "PASSED".to_string(),
        RunResult::Interrupted => match interrupting_signal() {
            Some(sig) => format!("INTERRUPTED by {sig}"),
            None => "INTERRUPTED".to_string(),
        },
        RunResult::Failed(f) => format!("FAILED: {}", crate::logtext::printable(&f.reason)),
    };
    let summary = format!(
        "# {name} — run {run_id}\n\n{verdict}\n\n{table}\n```\n{perf_text}```\n\nduration: {:.1}s; exit code {code}\n",
        outcome.duration_s
    );
    let perf_written = (
        "perf_check.txt",
        crate::atomic::write(&run_dir.join("perf_check.txt"), perf_text.as_bytes()),
    );
    let writes = std::iter::once(perf_written).chain(write_verdict(
        run_dir,
        &junit,
        &summary,
        outcome,
        &perf_outcome,
    ));
    for (file, w) in writes {
        if let Err(e) = w {
            notes.push(format!(
                "cannot write {}: {e}",
                run_dir.join(file).display()
            ));
        }
    }
    if !points.is_empty() || !missing.is_empty() {
        say_raw!("{table}");
    }
    say_raw!("{perf_text}");
    if let RunResult::Failed(f) = &outcome.result {
        if let Some(role) = outcome
            .roles
            .iter()
            .find(|r| f.role.as_deref() == Some(r.role.to_string().as_str()))
        {
            say_err!(
                "--- last 20 lines of {} ---\n{}\n---",
                role.log,
                crate::logtext::tail(&run_dir.join(&role.log), 20)
            );
        }
    }
    // A report that could not be written (a full disk, a folder gone) leaves CI without its
    // verdict: not a pass, whatever the run measured. Those that were written said it passed,
    // so they are written again as failed, or removed: never a green JUnit on a red job.
    let lost_verdict = |lost: &[&String]| -> (i32, String, Outcome) {
        let reason = format!(
            "{} of the run's reports could not be written, so CI would not read its verdict \
             (first: {}); hint: free space in, or fix the permissions of, {}",
            lost.len(),
            lost[0],
            run_dir.display()
        );
        say_err!("disagg: {name}: FAILED: {reason}");
        let failed = Outcome {
            result: RunResult::Failed(crate::outcome::Failure {
                role: None,
                reason: reason.clone(),
                timeout: false,
            }),
            ..outcome.clone()
        };
        // Every report that said the run passed says it failed, or is removed: the perf
        // check's text (not run: the run did not pass), the CSV's rows (`failed`: it must not
        // serve as a baseline) and results.json (not valid).
        let not_run = PerfOutcome::NotRun;
        let junit = report::junit(name.as_str(), run_dir, &failed, &points, &planned, &not_run);
        let verdict = format!("FAILED: {reason}");
        let summary = format!(
            "# {name} — run {run_id}\n\n{verdict}\n\n{table}\n```\n{}```\n\nduration: {:.1}s; exit code {}\n",
            not_run.render(),
            outcome.duration_s,
            exit::TEST_FAILED
        );
        let csv_written = perf::write_results_csv(&csv, name.as_str(), &points, false, &|p| {
            bench_command(plan, p)
        });
        let rewritten = [
            (
                "perf_check.txt",
                crate::atomic::write(&run_dir.join("perf_check.txt"), not_run.render().as_bytes()),
            ),
            ("perf_script_test_results.csv", csv_written),
            (
                "results.json",
                mark_results_invalid(plan, &failed).map_err(std::io::Error::other),
            ),
        ];
        for (file, written) in rewritten
            .into_iter()
            .chain(write_verdict(run_dir, &junit, &summary, &failed, &not_run))
        {
            if written.is_err() {
                let _ = std::fs::remove_file(run_dir.join(file));
            }
        }
        (exit::TEST_FAILED, verdict, failed)
    };
    let passing = |code: i32| matches!(code, exit::PASS | exit::PERF_REGRESSION);
    let lost: Vec<&String> = notes
        .iter()
        .filter(|n| n.starts_with("cannot write"))
        .collect();
    let (mut code, mut verdict, mut recorded) = if lost.is_empty() || !passing(code) {
        (code, verdict, outcome.clone())
    } else {
        lost_verdict(&lost)
    };
    // Into the results store, before the exit code marks the run as over.
    let record = |outcome: &Outcome, perf: &PerfOutcome, code: i32| {
        let (p, o, pts, perf) = (plan.clone(), outcome.clone(), points.clone(), perf.clone());
        // A run a signal stopped is recorded only if the store answers at once: whoever sent
        // it (a CI abort) may send SIGKILL next, and the exit code must be written by then.
        // A signal may have come after the roles were done, in the perf check: the same.
        let wait = if outcome.result == RunResult::Interrupted || INTERRUPTED.load(Ordering::SeqCst)
        {
            crate::bounded::INTERRUPTED_STORE_WAIT
        } else {
            crate::bounded::STORE_WAIT
        };
        crate::bounded::store_call(wait, move || {
            crate::record::record_run(&p, &o, &pts, &perf, code)
        })
    };
    let recorded_perf = if recorded.result == outcome.result {
        perf_outcome.clone()
    } else {
        PerfOutcome::NotRun
    };
    match record(&recorded, &recorded_perf, code) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => notes.push(format!("the run is not in the results store: {e}")),
        Err(why) => {
            let later = match why {
                crate::bounded::Unanswered::TimedOut(_) => " (it may still record it later)",
                crate::bounded::Unanswered::Interrupted => "",
            };
            notes.push(format!("the run is not in the results store: {why}{later}"));
            // A signal while the store was written ends the run as interrupted, as one
            // during the benchmark does: the caller asked to stop, not for a pass.
            if why == crate::bounded::Unanswered::Interrupted && passing(code) {
                code = interrupted_code();
                verdict = format!("INTERRUPTED while writing the results store ({verdict})");
                // outcome.json, written before, said the roles' pass alone: a tool reading it
                // must see the interruption its exit code says.
                mark_interrupted(run_dir, "while writing the results store");
            }
        }
    }
    if let Err(e) = crate::atomic::write(
        &run_dir.join(EXIT_CODE_FILE),
        format!("{code}\n").as_bytes(),
    ) {
        let note = format!(
            "cannot write {}: {e}",
            run_dir.join(EXIT_CODE_FILE).display()
        );
        // Without it the run reads as unfinished (triage, --resume): not a pass either, and
        // the store, which has it as passed by now, is told so (it replaces a run folder's
        // record): a run CI saw fail must not become the history gate's reference.
        if passing(code) {
            (code, verdict, recorded) = lost_verdict(&[&note]);
            let unrecorded = match record(&recorded, &PerfOutcome::NotRun, code) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(why) => Some(why.to_string()),
            };
            if let Some(e) = unrecorded {
                notes.push(format!(
                    "the results store still has the run as passed: {e}"
                ));
            }
        }
        notes.push(note);
    }
    // Said in the run folder too: the console that showed them may be gone by the time anyone
    // asks why the run is missing from the history.
    append_warnings(&run_dir.join("summary.md"), &notes);
    // After the exit code, which is the verdict it shows.
    crate::study::write_run_report(run_dir);
    for n in notes {
        say_err!("warning: {n}");
    }
    // A signal after the verdict, while the reports were written: they were finished, and
    // the verdict stands. Said, rather than a TERM that seemed to go unheard.
    if INTERRUPTED.load(Ordering::SeqCst) && !exit::is_interruption(code) {
        say_err!(
            "disagg: {} came after the run's verdict, while its reports were written: they \
             were finished, and the verdict stands",
            interrupting_signal().unwrap_or("a signal")
        );
    }
    say!(
        "{verdict}\ndisagg: {name}: {:.1}s, reports in {}",
        outcome.duration_s,
        run_dir.display()
    );
    code
}

#[cfg(test)]
mod store_hint_tests {
    /// A busy store is not a broken one: its hint does not say to move it aside (which would
    /// drop the history for nothing), as a broken one's does.
    #[test]
    fn a_busy_store_is_not_told_to_be_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        let text = "name: x\nmodel: {name: m}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                    benchmark: {isl: 8, osl: 4}\nperf: {baseline: history}\n";
        std::fs::write(&path, text).unwrap();
        let case = disagg_core::parse_case(text, &path).unwrap();
        let busy = super::store_unusable(&case, dir.path(), &"database is locked").to_string();
        assert!(
            busy.contains("busy, not broken") && !busy.contains("aside"),
            "{busy}"
        );
        let broken =
            super::store_unusable(&case, dir.path(), &"file is not a database").to_string();
        assert!(broken.contains("aside"), "{broken}");
    }
}

#[cfg(test)]
mod tests {
    use super::{combine, measure_hash, tally_line};
    use disagg_core::exit::*;

    /// A Slurm time limit, account, job name or scheduling option changes no figure, so the
    /// history gate keeps its runs; the partition or a constraint may, so it does not.
    #[test]
    fn the_measured_case_leaves_out_the_jobs_bookkeeping() {
        let hash = |slurm: &str| {
            let c = disagg_core::parse_case(
                &format!(
                    "model: {{name: m}}\nctx: {{count: 1}}\ngen: {{count: 1}}\n\
                     benchmark: {{isl: 8, osl: 8}}\nslurm: {{{slurm}}}\n"
                ),
                std::path::Path::new("c.yaml"),
            )
            .unwrap();
            measure_hash(&c)
        };
        let base = hash("time: \"100\"");
        assert_eq!(base, hash("time: \"200\", account: a, job_name: j"));
        assert_ne!(base, hash("time: \"100\", partition: other"));
        // When, and under what bookkeeping, the job runs: the same measurement.
        let with = |args: &str| hash(&format!("time: \"100\", extra_args: [{args}]"));
        let exclusive = with("\"--exclusive\"");
        assert_ne!(base, exclusive, "what it runs on is measured");
        assert_eq!(
            exclusive,
            with(
                "\"--begin=now+150\", \"--exclusive\", \"--mail-type=ALL\", \"--qos=high\", \"-H\""
            )
        );
        assert_eq!(
            base,
            with("\"--dependency=afterok:12\", \"--comment=nightly\"")
        );
        assert_ne!(base, with("\"--constraint=h100\""));
    }

    #[test]
    fn the_tally_names_every_run_that_did_not_pass() {
        let t = |n: &str, c| (n.to_string(), c);
        assert_eq!(
            tally_line(
                &[
                    t("ok", Some(PASS)),
                    t("cmd", Some(TEST_FAILED)),
                    t("ok2", Some(PASS))
                ],
                TEST_FAILED
            ),
            "disagg: 3 runs: 2 passed, 1 failed (cmd); exit code 1"
        );
        assert_eq!(
            tally_line(
                &[
                    t("a", Some(PERF_REGRESSION)),
                    t("b", Some(INTERRUPTED)),
                    t("c", None)
                ],
                INTERRUPTED
            ),
            "disagg: 3 runs: 1 regressed (a), 1 interrupted (b), 1 not run (c); exit code 130"
        );
    }

    #[test]
    fn a_failure_wins_over_a_perf_verdict() {
        assert_eq!(combine(&[PASS, PERF_REGRESSION]), PERF_REGRESSION);
        assert_eq!(combine(&[PERF_REGRESSION, TEST_FAILED]), TEST_FAILED);
        assert_eq!(combine(&[TEST_FAILED, INTERRUPTED]), INTERRUPTED);
        assert_eq!(combine(&[PASS, TERMINATED, TEST_FAILED]), TERMINATED);
        assert_eq!(combine(&[PASS, PASS]), PASS);
    }
}
