//! The supervisor: launches every role of a plan, watches every process and every deadline, and
//! ends the run the moment anything goes wrong.
//!
//! It polls (every [`TICK`]) rather than blocking on any one thing, so no single role, file or
//! deadline can make it wait: each check is non-blocking, and the job deadline bounds the loop.
//! Role exits are observed without reaping (see the executor), so process groups stay safe to
//! signal until the final reap.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use disagg_core::{Plan, RoleName, RolePlan};

use crate::executor::{Executor, Exit, Running};
use crate::liveness::{Liveness, Silent};
use crate::outcome::{Failure, Outcome, RoleOutcome, RunResult};
use crate::rendezvous::{self, Endpoint, ExitNote, State, Status};

/// How often the supervisor looks at processes, files and deadlines.
pub const TICK: Duration = Duration::from_millis(50);

/// A gap between two turns of the supervisor's loop (a [`TICK`] apart) past which it takes
/// itself to have stood still.
const STOOD_STILL: Duration = Duration::from_secs(2);

/// How often the benchmark's live progress is read.
const PROGRESS_READ: Duration = Duration::from_millis(500);

/// How often the run folder's free space is read.
const DISK_CHECK: Duration = Duration::from_secs(1);

/// How often a long run says it is alive (CI systems kill jobs that print nothing).
const HEARTBEAT: Duration = Duration::from_secs(30);

/// After BENCHMARK or DISAGG_SERVER fails, how long to look for a worker death that caused it:
/// a crashed worker makes the benchmark's requests fail within milliseconds, and the root cause
/// is what the report must name.
const SETTLE: Duration = Duration::from_millis(1500);

/// After a worker dies, how long to look for others that died with it (a node lost, a shared
/// filesystem gone): each gets its own failure in the report. Roles notice their engine's death
/// within their poll (50 ms) and leave at once, so this is ample, and still fails fast.
const CO_DEATHS: Duration = Duration::from_millis(500);

/// When another role fails, an upstream role silent for this long is taken as the cause, well
/// before `timeouts.unresponsive` would have named it by itself: three missed probes.
const SUSPECT_AFTER: Duration = Duration::from_secs(3);

struct Proc {
    plan: RolePlan,
    run: Box<dyn Running>,
    exit: Option<(Exit, Instant)>,
    ready_at: Option<Instant>,
    failure: Option<String>,
}

/// Runs `plan` to its end with `exec`; `interrupted` is set by the signal handler.
pub fn supervise(plan: &Plan, exec: &mut dyn Executor, interrupted: &AtomicBool) -> Outcome {
    let start = Instant::now();
    // The run is launched: from now on it is the config's latest, whatever happens to it.
    if let Err(e) = crate::rundir::point_latest_at(&plan.run_dir) {
        say_err!(
            "disagg: warning: cannot point latest at {}: {e}",
            plan.run_dir.display()
        );
    }
    // Room for the reports, given back as they are written: logs that fill the disk must not
    // leave the run with no verdict.
    crate::rundir::reserve_space(&plan.run_dir);
    let mut procs: Vec<Proc> = Vec::new();
    let result = drive(plan, exec, interrupted, start, &mut procs);
    // The final word, which also releases every role still waiting on it.
    let status = match &result {
        RunResult::Passed => Status {
            run_id: plan.run_id.clone(),
            state: State::Done,
            role: None,
            reason: None,
        },
        RunResult::Failed(f) => Status {
            run_id: plan.run_id.clone(),
            state: State::Failed,
            role: f.role.clone(),
            reason: Some(f.reason.clone()),
        },
        RunResult::Interrupted => Status {
            run_id: plan.run_id.clone(),
            state: State::Failed,
            role: None,
            reason: Some(Status::INTERRUPTED.into()),
        },
    };
    if let Err(e) = crate::atomic::write_json(&plan.status_file(), &status) {
        say_err!("disagg: cannot write {}: {e}", plan.status_file().display());
    }
    teardown(&mut procs, exec, plan.deadlines.grace);
    Outcome {
        // Every role of the plan, launched or not (a failed setup launches none): the reports
        // say which never started, as a Slurm job's do.
        roles: plan
            .roles
            .iter()
            .map(|r| RoleOutcome {
                role: r.role,
                log: r.log.clone(),
                failure: procs
                    .iter()
                    .find(|p| p.plan.role == r.role)
                    .and_then(|p| p.failure.clone()),
            })
            .collect(),
        result,
        duration_s: start.elapsed().as_secs_f64(),
    }
}

fn drive(
    plan: &Plan,
    exec: &mut dyn Executor,
    interrupted: &AtomicBool,
    start: Instant,
    procs: &mut Vec<Proc>,
) -> RunResult {
    let d = &plan.deadlines;
    let job_deadline = start + d.job;
    if let Some(argv) = &plan.setup {
        if let Err(f) = run_setup(plan, argv, interrupted, job_deadline) {
            return f;
        }
    }
    for role in &plan.roles {
        let log = match OpenOptions::new()
            .create(true)
            .append(true)
            .open(plan.run_dir.join(&role.log))
        {
            Ok(f) => f,
            Err(e) => {
                return fail(
                    Some(role.role),
                    format!("cannot open {}: {e}", role.log),
                    false,
                );
            }
        };
        // Its TensorRT-LLM name too, now that the log exists.
        if let Some(alias) = crate::run::trtllm_log_name(role.role) {
            crate::run::link_alias(&plan.run_dir, &role.log, &alias);
        }
        match exec.launch(role, log) {
            Ok(run) => procs.push(Proc {
                plan: role.clone(),
                run,
                exit: None,
                ready_at: None,
                failure: None,
            }),
            Err(e) => {
                return fail(
                    Some(role.role),
                    format!("{} could not be started ({:?}): {e}", role.role, role.argv),
                    false,
                );
            }
        }
    }
    let mut workers_ready_at: Option<Instant> = None;
    let mut next_heartbeat = start + HEARTBEAT;
    let mut view = crate::live::LiveView::default();
    let mut next_progress = start;
    let mut next_disk_check = start;
    let progress_file =
        disagg_core::plan::rendezvous_dir(&plan.run_dir).join(rendezvous::PROGRESS_FILE);
    let liveness = match Liveness::start() {
        Ok(l) => l,
        Err(e) => {
            return fail(
                None,
                format!("cannot start the liveness prober: {e}"),
                false,
            );
        }
    };
    let mut bench_beat = crate::beat::Watch::new(plan, "BENCHMARK");
    let stall_watch = d
        .stall
        .and_then(|limit| Some((stuck::StallWatch::start(plan, limit)?, limit)));
    let mut last_tick = Instant::now();
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return RunResult::Interrupted;
        }
        let now = Instant::now();
        // This loop stood still (the supervisor stopped, or its machine paused): the silence
        // its probes and watches saw meanwhile is its own, not the roles'.
        let stood = now.saturating_duration_since(last_tick);
        if stood > STOOD_STILL {
            say_err!(
                "disagg: the supervisor stood still for {} (stopped, or starved of CPU): that \
                 long is not counted against any role",
                humantime::format_duration(Duration::from_millis(stood.as_millis() as u64))
            );
            liveness.excuse(stood);
            bench_beat.excuse(stood);
        }
        last_tick = now;
        // The run folder gone (a workspace cleanup, `cleanWs`, under a running job): every
        // role's rendezvous went with it, and what follows (a silent beat, a missing status)
        // would be blamed on a role. Said as what it is, at once.
        if !plan.run_dir.exists() {
            return fail(
                None,
                format!(
                    "the run folder {} was removed while the run ran (a workspace cleanup?): \
                     its logs and rendezvous are gone",
                    plan.run_dir.display()
                ),
                false,
            );
        }
        // A full disk under the run folder fails the roles one by one as they next write, in
        // their own words or in none (a log that cannot grow), while the load goes on: the run
        // stops at once, naming what filled it.
        if now >= next_disk_check {
            next_disk_check = now + DISK_CHECK;
            if let Some(free) = crate::run::free_if_full(&plan.run_dir) {
                return fail(
                    None,
                    format!(
                        "{} ({free} bytes free under {}); its largest files: {}",
                        crate::run::DISK_FULL,
                        plan.run_dir.display(),
                        crate::rundir::largest_files(&plan.run_dir, 3).join(", ")
                    ),
                    false,
                );
            }
        }
        for p in procs.iter_mut().filter(|p| p.ready_at.is_none()) {
            if let Some(ep) =
                rendezvous::read::<Endpoint>(&plan.rendezvous_file(p.plan.role), &plan.run_id)
            {
                p.ready_at = Some(now);
                // BENCHMARK serves nothing; every other role is probed from now on.
                if p.plan.role != RoleName::Benchmark {
                    liveness.watch(p.plan.role, ep.url());
                }
                say!(
                    "disagg: {} ready at {} after {:.1}s",
                    p.plan.role,
                    ep.url(),
                    (now - start).as_secs_f64()
                );
            }
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_READ;
            if let Some(p) = rendezvous::read::<rendezvous::Progress>(&progress_file, &plan.run_id)
            {
                view.show(&p);
            }
        }
        if now >= next_heartbeat {
            next_heartbeat = now + HEARTBEAT;
            // While progress is shown, it says more than the heartbeat would.
            if !view.showing(HEARTBEAT) {
                heartbeat(plan, start, procs);
            }
        }
        if workers_ready_at.is_none()
            && procs
                .iter()
                .filter(|p| p.plan.role.is_worker())
                .all(|p| p.ready_at.is_some())
        {
            workers_ready_at = Some(now);
        }
        if let Some(status) = bench_status(plan) {
            return match status.state {
                State::Done => after_done(plan, procs, interrupted, status.reason),
                State::Failed => {
                    let reason = status.reason.unwrap_or_else(|| "BENCHMARK failed".into());
                    root_cause(plan, procs, &liveness, RoleName::Benchmark, reason)
                }
            };
        }
        // Exits: any role ending before the run is over is a failure.
        let mut died: Option<RoleName> = None;
        for p in procs.iter_mut().filter(|p| p.exit.is_none()) {
            match p.run.try_wait() {
                Ok(Some(exit)) => {
                    p.exit = Some((exit, Instant::now()));
                    died.get_or_insert(p.plan.role);
                }
                Ok(None) => {}
                Err(e) => {
                    return fail(
                        Some(p.plan.role),
                        format!("cannot watch {} (pid {}): {e}", p.plan.role, p.run.pid()),
                        false,
                    );
                }
            }
        }
        if let Some(role) = died {
            // BENCHMARK writes its status just before it exits; a status found now explains its
            // exit, and every other role is judged as the run ends.
            if let Some(status) = bench_status(plan) {
                if status.state == State::Done {
                    return after_done(plan, procs, interrupted, status.reason);
                }
            }
            let exit = procs
                .iter()
                .find(|p| p.plan.role == role)
                .and_then(|p| p.exit)
                .map(|(exit, _)| exit);
            if let Some(exit) = exit {
                if interrupted_too(exit, interrupted) {
                    return RunResult::Interrupted;
                }
                // Another role stopped by a signal too, neither with a failure of its own, and
                // no signal of ours: the stop came from outside the run, to its processes one by
                // one (a CI abort killing the build's process tree, `scancel --signal=TERM` of
                // the job's steps), not from a failure of one role. The run was interrupted.
                let lost_node = procs.iter().find(|p| p.plan.role == role).is_some_and(|p| {
                    let why = death_reason(plan, p);
                    why.contains(NODE_FAILURE) || why.contains(STOPPED_FOR_NODE_FAILURE)
                });
                let sig = stopped_from_outside(plan, role, exit);
                if let (Some(sig), false) = (sig, lost_node) {
                    if let Some(other) = another_stopped_from_outside(plan, procs, role) {
                        let name = nix::sys::signal::Signal::try_from(sig)
                            .map_or("a signal", |s| s.as_str());
                        say_err!(
                            "disagg: {role} and {other} were stopped by {name} from outside this \
                             run (a CI abort, `scancel --signal`), neither by a failure of its \
                             own: the run is interrupted"
                        );
                        crate::run::interrupted_from_outside(sig);
                        return RunResult::Interrupted;
                    }
                }
            }
            let p = procs
                .iter()
                .find(|p| p.plan.role == role)
                .expect("died role is one of ours");
            let reason = death_reason(plan, p);
            if let Some(blamed) = blamed_role(plan, role, procs) {
                return blame(procs, role, reason, blamed);
            }
            return root_cause(plan, procs, &liveness, role, reason);
        }
        // A hung role: alive, but not answering (or, for BENCHMARK, which serves nothing, not
        // beating).
        if let Some(silent) = liveness.silent(d.unresponsive).into_iter().next() {
            return hung(procs, &liveness, silent, d.unresponsive);
        }
        if let Some(stale) = bench_beat.stale(now, d.unresponsive) {
            let silent = crate::liveness::Silent {
                role: RoleName::Benchmark,
                for_: stale.for_,
                reason: stale.reason,
            };
            return hung(procs, &liveness, silent, d.unresponsive);
        }
        // A worker that answers /health but hangs its requests.
        if let Some((watch, limit)) = &stall_watch {
            if let Some(found) = watch.found() {
                // One that has also stopped answering /health (two probes missed) is hung as a
                // whole, and said to be: its account would claim /health answers. Else another
                // worker that has gone silent is the cause: a decode stalls waiting on the KV
                // of a context server that froze (named, not the decode, whatever `stall` is).
                let silent = liveness.silent(2 * crate::liveness::PROBE_EVERY);
                let cause = silent
                    .iter()
                    .position(|s| s.role == found.role)
                    .or_else(|| silent.iter().position(|s| s.role.is_worker()));
                if let Some(i) = cause {
                    let silent = silent.into_iter().nth(i).expect("found above");
                    return hung(procs, &liveness, silent, d.unresponsive);
                }
                return stalled(procs, found, *limit);
            }
        }
        // Deadlines.
        let late = procs
            .iter()
            .filter(|p| p.plan.role.is_worker() && p.ready_at.is_none())
            .find(|_| now >= start + d.worker_startup)
            .map(|p| {
                (
                    p.plan.role,
                    format!(
                        "{} was not ready within worker_startup ({}): {} (see {}){}",
                        p.plan.role,
                        humantime::format_duration(d.worker_startup),
                        not_ready_account(plan, &p.plan),
                        p.plan.log,
                        spanning_hint(plan, &p.plan)
                    ),
                )
            });
        if let Some((role, why)) = late {
            return timeout(procs, role, why);
        }
        // Every router (one, or each replica) gets worker_startup from the workers being ready;
        // the benchmark deadline runs from the last of them, when the benchmark can start.
        if let Some(w) = workers_ready_at {
            let mut routers = procs.iter().filter(|p| p.plan.role.is_router()).peekable();
            let any = routers.peek().is_some();
            let mut all_ready: Option<Instant> = None;
            let mut late = None;
            for s in routers {
                match s.ready_at {
                    None if now >= w + d.worker_startup => {
                        late = Some((
                            s.plan.role,
                            format!(
                                "{} was not ready within worker_startup ({}) after the workers{} (see {})",
                                s.plan.role,
                                humantime::format_duration(d.worker_startup),
                                never_started(&log_head(plan, &s.plan), s.plan.role)
                                    .map(|n| format!(": {n}"))
                                    .unwrap_or_default(),
                                s.plan.log
                            ),
                        ));
                        break;
                    }
                    None => {
                        all_ready = None;
                        break;
                    }
                    Some(t) => all_ready = Some(all_ready.map_or(t, |a| a.max(t))),
                }
            }
            if let Some((role, why)) = late {
                return timeout(procs, role, why);
            }
            if let (true, Some(ready)) = (any, all_ready) {
                if now >= ready + d.benchmark {
                    let why = format!(
                        "BENCHMARK did not finish within the benchmark deadline ({})",
                        humantime::format_duration(d.benchmark)
                    );
                    return benchmark_deadline(plan, procs, why);
                }
            }
        }
        if now >= job_deadline {
            return RunResult::Failed(Failure {
                role: None,
                reason: job_deadline_reason(plan, procs, start, now),
                timeout: true,
            });
        }
        std::thread::sleep(TICK);
    }
}

/// The job deadline passed while each role was still within its own: what was under way then
/// (the roles not ready yet, or the benchmark and how long it had run), and how the deadlines
/// add up, since `validate` checks `worker_startup + benchmark` only and the routers get their
/// own `worker_startup` after the workers.
fn job_deadline_reason(plan: &Plan, procs: &[Proc], start: Instant, now: Instant) -> String {
    let d = &plan.deadlines;
    let h = |t: Duration| {
        humantime::format_duration(Duration::from_millis(t.as_millis() as u64)).to_string()
    };
    let waiting: Vec<String> = procs
        .iter()
        .filter(|p| p.plan.role != RoleName::Benchmark && p.ready_at.is_none())
        .map(|p| p.plan.role.to_string())
        .collect();
    let under_way = if !waiting.is_empty() {
        format!("{} not ready yet", waiting.join(", "))
    } else {
        let ready = procs
            .iter()
            .filter_map(|p| p.ready_at)
            .max()
            .unwrap_or(start);
        let progress = rendezvous::read::<rendezvous::Progress>(
            &disagg_core::plan::rendezvous_dir(&plan.run_dir).join(rendezvous::PROGRESS_FILE),
            &plan.run_id,
        )
        .map(|p| {
            format!(
                ", in {} (point {} of {}, {} of {} request(s) done)",
                p.now.point, p.now.index, p.now.points, p.now.done, p.now.total
            )
        })
        .unwrap_or_default();
        format!(
            "BENCHMARK under way for {} of its {}{progress}",
            h(now - ready),
            h(d.benchmark)
        )
    };
    format!(
        "the job deadline ({}) passed with {under_way}; the run can take up to worker_startup \
         for the workers, worker_startup again for the router, then benchmark ({} + {} + {}): \
         raise timeouts.job, or lower the others",
        h(d.job),
        h(d.worker_startup),
        h(d.worker_startup),
        h(d.benchmark)
    )
}

/// The benchmark deadline passed. A worker that answers /health but hangs its requests is what
/// keeps the benchmark waiting: our routers' census names it, and with a router that is not
/// ours every worker is asked directly (they are all still up: the verdict is not written
/// yet); one found hung or failing is the root cause, the deadline what came of it.
fn benchmark_deadline(plan: &Plan, procs: &mut [Proc], why: String) -> RunResult {
    let found = if stuck::has_own_router(plan) {
        // Our routers are still up (the verdict is not written): their census says which
        // worker the benchmark's requests are stuck or failing at.
        stuck::suspects(plan)
    } else {
        say!(
            "disagg: {why}; the router is not disagg's own: probing each worker directly, and \
             the router as a client would (one 1-token request each, {} at most)",
            humantime::format_duration(probe::PROBE_TIMEOUT)
        );
        let Some(probes) = probe::probe_now(plan) else {
            return timeout(procs, RoleName::Benchmark, why);
        };
        let found = probe::suspects(&probes);
        if found.is_empty() {
            let why = format!(
                "{why} (the router is not disagg's own, and {})",
                probe::cleared(&probes)
            );
            return timeout(procs, RoleName::Benchmark, why);
        }
        found
    };
    // Our routers' silence may be a census that could not be asked: nothing to add.
    let Some((root, account)) = found.first().cloned() else {
        return timeout(procs, RoleName::Benchmark, why);
    };
    for p in procs.iter_mut() {
        if let Some((_, w)) = found.iter().find(|(r, _)| *r == p.plan.role) {
            p.failure = Some(w.clone());
        } else if p.plan.role == RoleName::Benchmark {
            p.failure = Some(why.clone());
        }
    }
    fail(Some(root), format!("{account}; then {why}"), true)
}

/// One line: elapsed time, who is still not ready, and the benchmark's latest progress line.
fn heartbeat(plan: &Plan, start: Instant, procs: &[Proc]) {
    let waiting: Vec<String> = procs
        .iter()
        .filter(|p| p.ready_at.is_none() && p.plan.role != RoleName::Benchmark)
        .map(|p| p.plan.role.to_string())
        .collect();
    let progress = std::fs::read(plan.run_dir.join(RoleName::Benchmark.log_file()))
        .ok()
        .and_then(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let state = if waiting.is_empty() {
        format!("benchmark: {progress}")
    } else {
        format!("waiting for {}", waiting.join(", "))
    };
    say!(
        "disagg: {} elapsed; {state}",
        humantime::format_duration(Duration::from_secs(start.elapsed().as_secs()))
    );
}

fn fail(role: Option<RoleName>, reason: String, timeout: bool) -> RunResult {
    RunResult::Failed(Failure {
        role: role.map(|r| r.to_string()),
        reason,
        timeout,
    })
}

/// Why a worker was not ready, from what its log holds: its role never started (no line of
/// its own: under Slurm, its step was not started on its node in that time), or its engine was
/// never started, or its engine's /health (where it was asked) never answered 200. A step
/// Slurm was slow to start read as an engine that never answered.
fn not_ready_account(plan: &Plan, role: &disagg_core::RolePlan) -> String {
    let head = log_head(plan, role);
    if let Some(never) = never_started(&head, role.role) {
        return never;
    }
    let name = role.role;
    if !head.contains(&format!("disagg role {name}: starting engine: ")) {
        return "its role started but did not start its engine (its log says why)".into();
    }
    let marker = "; waiting for ";
    let account = match head
        .lines()
        .find(|l| l.contains(&format!("disagg role {name}: engine (pid")))
        .and_then(|l| l.split_once(marker))
    {
        Some((_, asked)) => format!("its engine's /health never answered 200 (asked: {asked})"),
        None => "its engine was started, and never said where it listens".into(),
    };
    // An engine that said why it is stuck (an NCCL or CUDA error, a traceback) and lives on:
    // its words, which a tail of "waiting" lines hides.
    match crate::triage::first_failure_in(&plan.run_dir.join(&role.log)) {
        Some(f) => {
            let line = f
                .excerpt
                .lines()
                .find_map(|l| l.strip_prefix('>'))
                .and_then(|l| l.split_once(" | "))
                .map_or("", |(_, text)| text.trim());
            format!(
                "{account}; its log's first error ({}, line {}): {line}",
                f.pattern, f.line
            )
        }
        None => account,
    }
}

/// The start of a role's log.
fn log_head(plan: &Plan, role: &disagg_core::RolePlan) -> String {
    crate::logtext::head_text(&plan.run_dir.join(&role.log), LOG_HEAD_BYTES).unwrap_or_default()
}

/// A role whose log (`head`) has no line of its own never started: under Slurm, its step was
/// not started on its node.
fn never_started(head: &str, role: RoleName) -> Option<String> {
    if head.contains(&format!("disagg role {role} on ")) {
        return None;
    }
    Some(match std::env::var("SLURM_JOB_ID") {
        Ok(job) => format!(
            "its role never started: its log has no line of its own (its srun step was not \
             started on its node in that time: a slow slurmd or Prolog, a busy controller; \
             `sacct -j {job} --format=JobID,State,Start,NodeList` says when steps started)"
        ),
        Err(_) => "its role never started: its log has no line of its own".into(),
    })
}

/// How much of the start of a role's log [`not_ready_account`] reads.
const LOG_HEAD_BYTES: u64 = 256 * 1024;

/// For a server with a process on each of several nodes that never got ready: where its
/// nodes were to meet, since one that never joins holds node rank 0 back.
fn spanning_hint(plan: &Plan, role: &disagg_core::RolePlan) -> String {
    let Some(nodes) = role
        .engine
        .as_ref()
        .map(|e| e.node_args.len())
        .filter(|&n| n > 1)
    else {
        return String::new();
    };
    let at = rendezvous::read::<rendezvous::DistInit>(
        &rendezvous::DistInit::path(plan, role.role),
        &plan.run_id,
    )
    .map_or(
        "its rendezvous (never written: node rank 0 did not start)".into(),
        |d| format!("its rendezvous {}:{}", d.host, d.port),
    );
    let log = plan.run_dir.join(&role.log);
    let said: Vec<String> =
        crate::logtext::last_line_per_rank(&log, nodes as u32, RANK_WORDS_BYTES)
            .into_iter()
            .enumerate()
            .map(|(r, last)| match last {
                Some((host, line)) => format!("node rank {r} @ {host}: {line}"),
                None => format!(
                    "node rank {r}: nothing in the log's last {} KiB (did its task start?)",
                    RANK_WORDS_BYTES / 1024
                ),
            })
            .collect();
    format!(
        "; it spans {nodes} nodes, and node rank 0 serves only once every node's engine has \
         joined {at}: a node that cannot reach it, or hangs before joining, holds it back. What \
         each node said last: {}",
        said.join("; ")
    )
}

/// How much of a spanning server's log [`spanning_hint`] reads for each rank's last words.
const RANK_WORDS_BYTES: u64 = 256 * 1024;

/// A deadline passed at `role`: the run fails on its account, which is also its own failure
/// (its "stayed up" testcase and `outcome.json`'s entry say so, not that it stayed up).
fn timeout(procs: &mut [Proc], role: RoleName, reason: String) -> RunResult {
    if let Some(p) = procs.iter_mut().find(|p| p.plan.role == role) {
        p.failure = Some(reason.clone());
    }
    fail(Some(role), reason, true)
}

/// The status BENCHMARK wrote, if any (the supervisor writes its own only at the end).
fn bench_status(plan: &Plan) -> Option<Status> {
    rendezvous::read::<Status>(&plan.status_file(), &plan.run_id)
}

/// "GEN_0 exited with status 1: <the role's own note>".
fn death_reason(plan: &Plan, p: &Proc) -> String {
    let (exit, _) = p.exit.expect("only called for exited roles");
    // Slurm cancelled its step because another node of the job failed: not its own failure,
    // whatever srun says of its tasks (`Terminated`), and no OOM or kill of its own.
    let log = plan.run_dir.join(&p.plan.log);
    // srun saw a node under the step fail: that, not the step's status nor a rank's end (a
    // task `Killed` with it), is the cause.
    let errors = srun_errors(&log);
    if let Some(e) = errors.as_deref().filter(|e| e.contains(NODE_FAILURE)) {
        let node = (e.split(NODE_FAILURE).nth(1))
            .and_then(|r| r.split([';', ' ']).next())
            .unwrap_or("?");
        return format!(
            "{} failed: its node {node} was lost (srun: error: {NODE_FAILURE}{node}) (see {})",
            p.plan.role, p.plan.log
        );
    }
    if let Some(line) = node_failure_cancel(&log) {
        return format!(
            "{} {STOPPED_FOR_NODE_FAILURE} ({line}) (see {})",
            p.plan.role, p.plan.log
        );
    }
    if p.plan.ranks > 1 {
        if let Some(why) = ranks_death_reason(plan, p) {
            return why;
        }
    }
    let note = exit_note(plan, p.plan.role);
    let log = plan.run_dir.join(&p.plan.log);
    // Its step cancelled from outside (`scancel JOB.STEP`, an administrator): slurmstepd says
    // so in the step's output, which is this role's log. Not a kill, nor a node lost.
    if let Some(why) = step_cancelled(&log).map(|c| cancelled_reason(p, c)) {
        return why;
    }
    // srun's account, read once: the task it saw end, and its own error lines.
    let ended = first_task_end(&log);
    let errors = srun_errors(&log);
    match note {
        Some(n) => format!("{} {exit}: {}", p.plan.role, n.reason),
        // It failed, said so in its log, and could not write its note (a run folder it cannot
        // write): the log's word.
        None if let Some(why) = logged_failure(&log, p.plan.role) => format!(
            "{} failed: {why} (its exit note could not be written; see {})",
            p.plan.role, p.plan.log
        ),
        // Its role process ended with no account (a role exits with one, whatever it fails
        // at): killed, as the OOM killer or a `kill -9` does, or its node lost. srun says how.
        None if ended
            .as_ref()
            .is_some_and(|(_, _, what)| !what.starts_with("Exited")) =>
        {
            let (host, task, what) = ended.expect("just seen");
            // srun says `Terminated` (SIGTERM), `Interrupt` (SIGINT) or `Hangup` for a stop
            // signal someone sent; `Killed` for SIGKILL, as the OOM killer and `kill -9` send.
            let how = if ["Terminated", "Interrupt", "Hangup"]
                .iter()
                .any(|w| what.starts_with(w))
            {
                "it was sent a stop signal by someone outside this run (a `kill`, an \
                 administrator)"
            } else if what.starts_with("Killed") {
                "it was killed (the OOM killer, or a kill -9), or its node lost"
            } else {
                // `User defined signal 1` (a `scancel --signal=USR1`), `Segmentation fault`...
                "it ended on that signal: sent from outside this run (`scancel --signal`, a \
                 `kill`), or a crash of its own"
            };
            format!(
                "{role} {exit}: its role process on {host} ended with no account of its own \
                 (srun: {host}: task {task}: {what}): {how} (see {})",
                p.plan.log,
                role = p.plan.role,
            )
        }
        None => match errors {
            // The role never ran: Slurm could not create its step. srun says why.
            Some(why) => format!("{} {exit}: {why} (see {})", p.plan.role, p.plan.log),
            None => format!("{} {exit} (see {})", p.plan.role, p.plan.log),
        },
    }
}

/// A step of several ranks: the rank srun saw end first is the root cause (its own account,
/// if it wrote one; else srun's word for it: a role process killed, or a node lost, writes
/// none), and any other rank's account is its echo. The step's own status is whichever rank
/// srun saw end last, often one it stopped, so it is not said.
fn ranks_death_reason(plan: &Plan, p: &Proc) -> Option<String> {
    let role = p.plan.role;
    let first = first_task_end(&plan.run_dir.join(&p.plan.log));
    let noted =
        |r: u32| rendezvous::read::<ExitNote>(&exit_note_path_of_rank(plan, role, r), &plan.run_id);
    if let Some(c) = step_cancelled(&plan.run_dir.join(&p.plan.log)) {
        return Some(cancelled_reason(p, c));
    }
    match first {
        Some((host, rank, what)) => match noted(rank) {
            Some(n) => Some(format!("{role} failed: {}", n.reason)),
            None if what.starts_with("Exited")
                && let Some(why) = logged_failure(&plan.run_dir.join(&p.plan.log), role) =>
            {
                Some(format!(
                    "{role} failed: {why} (its exit note could not be written; see {})",
                    p.plan.log
                ))
            }
            None => {
                let echo = exit_note(plan, role)
                    .map(|n| format!("; then {}", n.reason))
                    .unwrap_or_default();
                let how = if what.starts_with("Killed") || what.starts_with("Exited") {
                    "its role process was killed, or its node lost"
                } else {
                    "its role process ended on that signal: sent from outside this run \
                     (`scancel --signal`, a `kill`), or a crash of its own"
                };
                Some(format!(
                    "{role} failed: its rank {rank} (on {host}) ended first, with no account of \
                     its own (srun: {host}: task {rank}: {what}): {how}{echo}"
                ))
            }
        },
        None => exit_note(plan, role).map(|n| format!("{role} failed: {}", n.reason)),
    }
}

/// What a role said of its failure in its log (`disagg role GEN_0: FAILED: <why>`, the first such
/// line), for when its exit note could not be written.
fn logged_failure(log: &std::path::Path, role: RoleName) -> Option<String> {
    let text = crate::logtext::tail_text(log, 256 * 1024)?;
    let mark = format!("disagg role {role}: FAILED: ");
    text.lines()
        .find_map(|l| {
            l.split_once(mark.as_str())
                .map(|(_, why)| why.trim().to_string())
        })
        .or_else(|| {
            // The role never ran: its binary does not suit the container image's C library.
            let l = text
                .lines()
                .find(|l| l.contains("GLIBC_") && l.contains("not found"))?;
            Some(format!(
                "the disagg binary cannot run in the container's image (`{}`): it must suit the \
                 image's C library; use a disagg built on an older distribution than the \
                 image's, or a static (musl) build",
                l.trim()
            ))
        })
}

/// The first task of a step that srun saw end on its own, before it stopped the others: from
/// its `srun: error: <host>: task <N>: <how>` lines (`tasks 0-1: ...` for several at once),
/// which it writes in the order it sees them, before `_step_signal: Terminating`.
fn first_task_end(log: &std::path::Path) -> Option<(String, u32, String)> {
    let text = crate::logtext::tail_text(log, 256 * 1024)?;
    for line in text.lines() {
        if line.contains("_step_signal: Terminating") {
            return None;
        }
        let Some(rest) = line.strip_prefix("srun: error: ") else {
            continue;
        };
        let Some((host, rest)) = rest.split_once(": task") else {
            continue;
        };
        let rest = rest.trim_start_matches('s').trim_start();
        let Some((tasks, what)) = rest.split_once(": ") else {
            continue;
        };
        let first = tasks.split([',', '-']).next()?.trim().parse::<u32>().ok()?;
        return Some((host.to_string(), first, what.trim().to_string()));
    }
    None
}

/// slurmstepd's line for a step cancelled while it ran: `slurmstepd-dgn3: error: *** STEP
/// 487.5 ON dgn3 CANCELLED AT 2026-12-06T15:51:41 ***` (a whole job's cancellation says `JOB`,
/// and is the job's account, not a step's): the step, its node, and the line. Only when it
/// comes first: Slurm cancels a step itself once one of its tasks ended (`--kill-on-bad-exit`:
/// srun's `task N: Exited` and `_step_signal: Terminating` come before it), and at the
/// teardown (`forcing job termination`); then the cancel is an echo, not the cause.
fn step_cancelled(log: &std::path::Path) -> Option<(String, String, String)> {
    let text = crate::logtext::tail_text(log, 256 * 1024)?;
    // srun's `Job step aborted: Waiting up to N seconds for job step to finish.`, which it says
    // for any cancel of the step, and which may come first.
    let mut aborted: Option<&str> = None;
    for line in text.lines() {
        if line.starts_with("srun: Job step aborted") {
            aborted.get_or_insert(line);
            continue;
        }
        let srun_first = (line.starts_with("srun: error: ") && line.contains(": task"))
            || line.contains("_step_signal: Terminating")
            || line.starts_with("srun: forcing job termination");
        if srun_first {
            // The step aborted, then its task killed or stopped, not ended of its own: a cancel
            // from outside whose slurmstepd line did not reach the log (it does not always).
            let task = line
                .strip_prefix("srun: error: ")
                .and_then(|r| r.split_once(": task"))
                .filter(|(_, what)| !what.contains("Exited with exit code"));
            return match (aborted, task) {
                (Some(a), Some((host, _))) => {
                    let step = text
                        .lines()
                        .find_map(|l| l.split("StepId=").nth(1))
                        .map_or("?", |s| s.split_whitespace().next().unwrap_or("?"));
                    Some((step.to_string(), host.to_string(), a.trim().to_string()))
                }
                _ => None,
            };
        }
        let Some((_, rest)) = line.split_once("*** STEP ") else {
            continue;
        };
        let Some((step, rest)) = rest.split_once(" ON ") else {
            continue;
        };
        let Some((host, rest)) = rest.split_once(' ') else {
            continue;
        };
        // `... CANCELLED AT <time> DUE TO TIME LIMIT ***` is the job's time limit, not a cancel.
        if rest.starts_with("CANCELLED AT") && !rest.contains(" DUE TO ") {
            let at = line.find("*** STEP").unwrap_or(0);
            return Some((
                step.to_string(),
                host.to_string(),
                line[at..].trim().to_string(),
            ));
        }
    }
    None
}

fn cancelled_reason(p: &Proc, (step, host, line): (String, String, String)) -> String {
    format!(
        "{} failed: its Slurm step {step} on {host} was cancelled from outside this run \
         (`scancel` of the step, or an administrator): {line} (see {})",
        p.plan.role, p.plan.log
    )
}

/// What srun says when a node of a step stops answering: `srun: error: Node failure on dgn2`.
const NODE_FAILURE: &str = "Node failure on ";

/// The account of a role Slurm stopped because another node of the job failed.
const STOPPED_FOR_NODE_FAILURE: &str =
    "was stopped by Slurm because a node of the job failed, not by a failure of its own";

/// slurmstepd's line for a step (or the job) cancelled because a node of the job failed:
/// `*** STEP 45.4 ON dgn2 CANCELLED AT 2026-12-07T04:01:02 DUE TO NODE FAILURE ***`.
fn node_failure_cancel(log: &std::path::Path) -> Option<String> {
    let text = crate::logtext::tail_text(log, 256 * 1024)?;
    text.lines()
        .find(|l| {
            (l.contains("*** STEP ") || l.contains("*** JOB ")) && l.contains("DUE TO NODE FAILURE")
        })
        .map(|l| l[l.find("***").unwrap_or(0)..].trim().to_string())
}

/// srun's own error lines at the end of a role's log (`srun: error: Unable to create step for
/// job 7: Requested nodes are busy`), joined; `None` when srun said nothing.
fn srun_errors(log: &std::path::Path) -> Option<String> {
    let text = crate::logtext::tail_text(log, 64 * 1024)?;
    // Not srun's account of a task's own exit ("task 0: Exited with exit code 2"): the role's
    // log says more about that than srun does.
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("srun: error: ") && !l.contains(": task "))
        .collect();
    let last: Vec<&str> = errors.iter().rev().take(3).rev().copied().collect();
    (!last.is_empty()).then(|| last.join("; "))
}

/// The role a dead role's exit note blames (DISAGG_SERVER cannot reach GEN_0's address), with
/// the note's reason, when it is one of ours.
fn blamed_role(plan: &Plan, role: RoleName, procs: &[Proc]) -> Option<(RoleName, String)> {
    let note = exit_note(plan, role)?;
    let b = note.blame?;
    procs
        .iter()
        .any(|p| p.plan.role == b)
        .then_some((b, note.reason))
}

/// The run fails on `blamed`'s account; `role`, which found out and exited, keeps its own reason.
fn blame(
    procs: &mut [Proc],
    role: RoleName,
    reason: String,
    (blamed, why): (RoleName, String),
) -> RunResult {
    for p in procs.iter_mut() {
        if p.plan.role == role {
            p.failure = Some(reason.clone());
        } else if p.plan.role == blamed {
            p.failure = Some(why.clone());
        }
    }
    fail(Some(blamed), why, false)
}

pub fn exit_note_path(plan: &Plan, role: RoleName) -> std::path::PathBuf {
    exit_note_path_of_rank(plan, role, 0)
}

/// Rank `rank`'s exit note of a step of several ranks (rank 0's is [`exit_note_path`]).
pub fn exit_note_path_of_rank(plan: &Plan, role: RoleName, rank: u32) -> std::path::PathBuf {
    let name = match rank {
        0 => format!("{role}.exit.json"),
        r => format!("{role}.rank{r}.exit.json"),
    };
    disagg_core::plan::rendezvous_dir(&plan.run_dir).join(name)
}

/// A role's account of its failure: with several ranks, the first rank's to fail (a rank
/// whose engine srun stopped with SIGTERM last: that is the step's teardown, not a cause).
pub fn exit_note(plan: &Plan, role: RoleName) -> Option<ExitNote> {
    let ranks = plan.role(role).map_or(1, |r| r.ranks.max(1));
    (0..ranks)
        .filter_map(|r| {
            rendezvous::read::<ExitNote>(&exit_note_path_of_rank(plan, role, r), &plan.run_id)
        })
        .min_by_key(|n| (n.stopped_by_term(), n.at_ms.unwrap_or(u64::MAX), n.rank))
}

/// A failure seen at `role` may be the echo of an earlier death elsewhere: the benchmark fails
/// because a worker crashed. Give other roles a moment to be seen dead, then blame the most
/// upstream one: workers, then the router, then the benchmark. A worker's death is the root
/// cause itself; the moment is spent finding the roles that died with it. Every role found dead
/// keeps its own account in the report.
fn root_cause(
    plan: &Plan,
    procs: &mut [Proc],
    liveness: &Liveness,
    role: RoleName,
    reason: String,
) -> RunResult {
    // The run is over and its roles are being released: what a probe sees from now on is
    // their way out, not how they were (a hung worker's last probe is not our teardown's).
    liveness.freeze();
    let mut failures: Vec<(RoleName, String)> = vec![(role, reason)];
    let (window, stop_early) = if role.is_worker() {
        (CO_DEATHS, false)
    } else {
        (SETTLE, true)
    };
    let mut until = Instant::now() + window;
    let mut cause_seen = false;
    loop {
        for p in procs
            .iter_mut()
            .filter(|p| p.exit.is_none() && p.plan.role != role)
        {
            if let Ok(Some(exit)) = p.run.try_wait() {
                p.exit = Some((exit, Instant::now()));
            }
        }
        let upstream_dead = procs
            .iter()
            .any(|p| died_badly(p) && rank(p.plan.role) < rank(role));
        // The cause is found: from now on, only the moment to find the roles that died with it.
        if stop_early && upstream_dead && !cause_seen {
            cause_seen = true;
            until = Instant::now() + CO_DEATHS;
        }
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(TICK);
    }
    for p in procs.iter().filter(|p| p.plan.role != role) {
        if let Some(why) = own_failure(plan, p) {
            failures.push((p.plan.role, why));
        }
    }
    // A hung role upstream explains the failure too: the router ejected it (503s), or
    // requests to it timed out, before it had been silent for `timeouts.unresponsive`.
    // The roles found hung rather than failing: a run whose root cause is one is a timeout,
    // however it was found (as when its silence or its stall is seen first).
    let mut hung: Vec<RoleName> = Vec::new();
    if !role.is_worker() {
        for s in liveness.silent(SUSPECT_AFTER) {
            if rank(s.role) < rank(role) && !failures.iter().any(|(r, _)| *r == s.role) {
                hung.push(s.role);
                failures.push((s.role, s.reason));
            }
        }
    }
    // Nobody died or went silent: the requests may still have failed at a worker that answers
    // /health (hangs, 500s, cut streams). Our routers know which; with another router, each
    // worker was asked directly (BENCHMARK did, before the workers left). Probing now, after
    // status.json released them, would find workers leaving, so only BENCHMARK's probes count.
    if role == RoleName::Benchmark && failures.len() == 1 {
        if stuck::has_own_router(plan) {
            for (r, why, only_hung) in stuck::suspects_hung(plan) {
                if only_hung {
                    hung.push(r);
                }
                failures.push((r, why));
            }
        } else if let Some((r, why, only_hung)) = replica::suspect(plan) {
            // Several routers not ours: every failed request went through one of them.
            if only_hung {
                hung.push(r);
            }
            failures.push((r, why));
        } else {
            let kept = probe::kept(plan);
            hung.extend(kept.as_ref().map(probe::hung).unwrap_or_default());
            let found = kept.as_ref().map(probe::suspects);
            match (found, kept) {
                (Some(found), _) if !found.is_empty() => failures.extend(found),
                (Some(_), Some(probes)) => {
                    failures[0].1 = format!(
                        "{} (the benchmark's account: the router is not disagg's own, and {}, \
                         so where the requests failed is not known)",
                        failures[0].1,
                        probe::cleared(&probes)
                    )
                }
                _ => {
                    failures[0].1 = format!(
                        "{} (the benchmark's account: the router is not disagg's own, so which \
                         worker the requests failed at is not known)",
                        failures[0].1
                    )
                }
            }
        }
    }
    order_failures(&mut failures);
    for (r, why) in &failures {
        if let Some(p) = procs.iter_mut().find(|p| p.plan.role == *r) {
            p.failure = Some(why.clone());
        }
    }
    let (root, why) = failures[0].clone();
    let mut reason = why;
    if root != role {
        if let Some((_, echo)) = failures.iter().find(|(r, _)| *r == role) {
            reason = format!("{reason}; then {echo}");
        }
    }
    fail(Some(root), reason, hung.contains(&root))
}

/// The failures found, root cause first: upstream roles before downstream ones, and a lost node
/// before everything. The roles Slurm stopped because of it elsewhere did not fail (whichever
/// died first), so they are dropped once a lost node is seen.
fn order_failures(failures: &mut Vec<(RoleName, String)>) {
    let lost = |why: &str| why.contains(NODE_FAILURE);
    if failures.iter().any(|(_, w)| lost(w)) {
        failures.retain(|(_, w)| !w.contains(STOPPED_FOR_NODE_FAILURE));
    }
    failures.sort_by_key(|(r, w)| (!lost(w), rank(*r)));
}

/// How a role failed by itself, if it did: it wrote its exit note (a role writes one only when
/// it fails on its own, never when it is stopped), or it ended with a failure. Called before the
/// teardown's first signal, so nothing here is the teardown's doing.
fn own_failure(plan: &Plan, p: &Proc) -> Option<String> {
    let note = exit_note(plan, p.plan.role);
    match (&note, p.exit) {
        (Some(_), Some(_)) => Some(death_reason(plan, p)),
        // Written, and leaving: the note is its account.
        (Some(n), None) => Some(format!("{} failed: {}", p.plan.role, n.reason)),
        (None, Some((e, _))) if !e.success() => Some(death_reason(plan, p)),
        (None, _) => None,
    }
}

/// BENCHMARK finished and wrote `done`, which releases every role: each leaves by itself, and
/// gets the grace period to do so. The run passes only if none of them had died on its own: a
/// worker whose engine exits (or is killed) as the benchmark ends, or in the moment between its
/// end and the teardown, still fails the run, named, with its reason. Waiting for the roles to
/// leave (rather than deciding at `done`) makes the verdict deterministic: a role writes its
/// exit note before it exits, and none is signalled before this returns. `stopped` is the
/// benchmark's word when it ended its sweep early, at a point it left out because a role failed
/// under it.
fn after_done(
    plan: &Plan,
    procs: &mut [Proc],
    interrupted: &AtomicBool,
    stopped: Option<String>,
) -> RunResult {
    let until = Instant::now() + plan.deadlines.grace;
    loop {
        let mut all = true;
        for p in procs.iter_mut().filter(|p| p.exit.is_none()) {
            match p.run.try_wait() {
                Ok(Some(exit)) => p.exit = Some((exit, Instant::now())),
                _ => all = false,
            }
        }
        if all || Instant::now() >= until || interrupted.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(TICK / 2);
    }
    let mut failures: Vec<(RoleName, String)> = Vec::new();
    for p in procs.iter() {
        let Some(why) = own_failure(plan, p) else {
            continue;
        };
        failures.push((p.plan.role, why));
        // DISAGG_SERVER failing on a worker's account names that worker.
        if let Some((blamed, why)) = blamed_role(plan, p.plan.role, procs) {
            if !failures.iter().any(|(r, _)| *r == blamed) {
                failures.push((blamed, why));
            }
        }
    }
    if failures.is_empty() {
        return RunResult::Passed;
    }
    order_failures(&mut failures);
    for (r, why) in &failures {
        if let Some(p) = procs.iter_mut().find(|p| p.plan.role == *r) {
            p.failure = Some(why.clone());
        }
    }
    let (root, why) = failures[0].clone();
    let when = match stopped {
        Some(s) => format!("BENCHMARK stopped early: {s}"),
        None => "BENCHMARK had finished".to_string(),
    };
    fail(
        Some(root),
        format!("{why} ({when}; a dead role fails the run)"),
        false,
    )
}

/// A role found hung by the liveness probes fails the run as the root cause; another role hung
/// as well and further upstream (a worker behind a silent router) is named first.
fn hung(procs: &mut [Proc], liveness: &Liveness, silent: Silent, limit: Duration) -> RunResult {
    let mut found = liveness.silent(SUSPECT_AFTER);
    if !found.iter().any(|s| s.role == silent.role) {
        found.push(silent);
    }
    found.sort_by_key(|s| rank(s.role));
    for s in &found {
        if let Some(p) = procs.iter_mut().find(|p| p.plan.role == s.role) {
            p.failure = Some(if s.for_ >= limit {
                format!(
                    "{}; timeouts.unresponsive is {}",
                    s.reason,
                    humantime::format_duration(limit)
                )
            } else {
                s.reason.clone()
            });
        }
    }
    let root = &found[0];
    let reason = procs
        .iter()
        .find(|p| p.plan.role == root.role)
        .and_then(|p| p.failure.clone())
        .unwrap_or_else(|| root.reason.clone());
    fail(Some(root.role), reason, true)
}

/// A worker found stalled by the router's census (`timeouts.stall`) fails the run as the root
/// cause, long before its requests' own timeouts would have failed the benchmark.
fn stalled(procs: &mut [Proc], found: stuck::Stalled, limit: Duration) -> RunResult {
    let reason = format!(
        "{}: its engine hangs its requests; timeouts.stall is {}",
        found.reason,
        humantime::format_duration(limit)
    );
    if let Some(p) = procs.iter_mut().find(|p| p.plan.role == found.role) {
        p.failure = Some(reason.clone());
    }
    fail(Some(found.role), reason, true)
}

/// A role that ended with a failure. A clean exit is no cause: once BENCHMARK writes its
/// failed status, the workers leave with status 0, and must not be blamed for its failure.
fn died_badly(p: &Proc) -> bool {
    p.exit.is_some_and(|(e, _)| !e.success())
}

fn rank(role: RoleName) -> u8 {
    match role {
        RoleName::Ctx(_) | RoleName::Gen(_) => 0,
        RoleName::DisaggServer(_) => 1,
        RoleName::Benchmark => 2,
    }
}

/// Runs `setup` once, into `install.log`, bounded by the job deadline.
/// Whether `exe` names a file there is: a path, or a name on `PATH`.
fn runnable(exe: &str) -> bool {
    if exe.contains('/') {
        return std::path::Path::new(exe).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(exe).is_file()))
}

fn run_setup(
    plan: &Plan,
    argv: &[String],
    interrupted: &AtomicBool,
    deadline: Instant,
) -> Result<(), RunResult> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(plan.run_dir.join("install.log"))
        .map_err(|e| fail_setup(format!("cannot open install.log: {e}"), false))?;
    // Under `disagg guard` (the binary the roles run): if this process is killed, even with
    // SIGKILL, the guard gets the parent-death signal and stops what the setup started. (A
    // plan whose binary is nowhere, a unit test's, runs the setup as it is.)
    let exe = plan
        .roles
        .first()
        .and_then(|r| r.argv.first())
        .filter(|exe| runnable(exe));
    let guarded: Vec<String> = match exe {
        Some(exe) => [exe.clone(), "guard".into(), "--".into()]
            .into_iter()
            .chain(argv.iter().cloned())
            .collect(),
        None => argv.to_vec(),
    };
    let mut child =
        crate::executor::spawn(&guarded, &Default::default(), &[], log, None).map_err(|e| {
            fail_setup(
                format!("setup command {argv:?} could not be started: {e}"),
                false,
            )
        })?;
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stop = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    };
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) if interrupted_too(Exit::from(s), interrupted) => {
                return Err(RunResult::Interrupted);
            }
            Ok(Some(s)) => {
                return Err(fail_setup(
                    format!("setup {} (see install.log)", Exit::from(s)),
                    false,
                ));
            }
            Ok(None) => {}
            Err(e) => {
                stop(&mut child);
                return Err(fail_setup(format!("cannot watch setup: {e}"), false));
            }
        }
        if interrupted.load(Ordering::SeqCst) {
            stop(&mut child);
            return Err(RunResult::Interrupted);
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            return Err(fail_setup(
                format!(
                    "setup did not finish before the job deadline ({})",
                    humantime::format_duration(plan.deadlines.job)
                ),
                true,
            ));
        }
        std::thread::sleep(TICK);
    }
}

/// How long a death by a signal waits for this process's own signal before it is judged.
const OWN_SIGNAL_GRACE: Duration = Duration::from_millis(500);

/// Whether a child's death is the run being interrupted: a `scancel` signals every process of
/// the job, and a child (setup, a role's `srun`) may be seen dead of it before this process's
/// own signal arrives; judged a failure, the cancelled run read as "setup was killed by signal
/// 15" with exit code 1, and `disagg run` reported that instead of its own Ctrl-C. A death by a
/// signal (or a shell's 128+N) waits up to [`OWN_SIGNAL_GRACE`] for ours; any other death is
/// judged at once.
fn interrupted_too(exit: Exit, interrupted: &AtomicBool) -> bool {
    let by_signal = match exit {
        Exit::Signal(_) => true,
        Exit::Code(c) => c > 128,
    };
    let until = Instant::now()
        + if by_signal {
            OWN_SIGNAL_GRACE
        } else {
            Duration::ZERO
        };
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The stop signal (SIGTERM, SIGINT, SIGHUP) that ended `role` from outside: its exit by that
/// signal (or a shell's or srun's 128 + it), with no failure of its own in its exit note (a
/// note that only says its engine was stopped by SIGTERM is the same stop). `None` for any
/// other end: a crash, or a rank that failed and had srun stop the others of its step
/// (`--kill-on-bad-exit`: 143, with the failed rank's note).
fn stopped_from_outside(plan: &Plan, role: RoleName, exit: Exit) -> Option<i32> {
    let sig = match exit {
        Exit::Signal(s @ (1 | 2 | 15)) => s,
        Exit::Code(c @ (129 | 130 | 143)) => c - 128,
        _ => return None,
    };
    match exit_note(plan, role) {
        Some(n) => n.stopped_by_term().then_some(sig),
        // No note (the role could not write it: a run folder it cannot write): srun's lines say
        // whether a task of the step ended on its own first and had srun stop the others.
        None => {
            let log = plan.run_dir.join(
                plan.role(role)
                    .map_or_else(|| role.log_file(), |r| r.log.clone()),
            );
            first_task_end(&log)
                .is_none_or(|(_, _, how)| how == "Terminated")
                .then_some(sig)
        }
    }
}

/// Another role than `role` ended by a stop signal from outside ([`stopped_from_outside`]),
/// looking again at those not seen to end yet ([`interrupted_too`] has just waited).
fn another_stopped_from_outside(
    plan: &Plan,
    procs: &mut [Proc],
    role: RoleName,
) -> Option<RoleName> {
    procs
        .iter_mut()
        .filter(|p| p.plan.role != role)
        .find_map(|p| {
            if p.exit.is_none() {
                if let Ok(Some(exit)) = p.run.try_wait() {
                    p.exit = Some((exit, Instant::now()));
                }
            }
            let (exit, _) = p.exit?;
            stopped_from_outside(plan, p.plan.role, exit).map(|_| p.plan.role)
        })
}

fn fail_setup(reason: String, timeout: bool) -> RunResult {
    RunResult::Failed(Failure {
        role: Some("SETUP".into()),
        reason,
        timeout,
    })
}

/// Stops every role: TERM, a grace period, KILL, then reap. (On success the roles have had their
/// grace to leave by themselves already: see [`after_done`].)
fn teardown(procs: &mut [Proc], exec: &mut dyn Executor, grace: Duration) {
    let all_exited = |procs: &mut [Proc]| {
        let mut all = true;
        for p in procs.iter_mut().filter(|p| p.exit.is_none()) {
            match p.run.try_wait() {
                Ok(Some(exit)) => p.exit = Some((exit, Instant::now())),
                _ => all = false,
            }
        }
        all
    };
    let wait_until = |procs: &mut [Proc], until: Instant| {
        while !all_exited(procs) && Instant::now() < until {
            std::thread::sleep(TICK / 2);
        }
    };
    for p in procs.iter_mut() {
        // Also when the leader has exited: an engine may be left in its group.
        p.run.terminate();
    }
    wait_until(procs, Instant::now() + grace);
    for p in procs.iter_mut() {
        p.run.kill();
        p.run.reap();
    }
    // What left its role's process group (`setsid`, daemons, MPI launchers) was re-parented to
    // us when its parent ended: stop it the same way, and return only once all is reaped.
    let left = exec.stop_leftovers(grace);
    if !left.is_empty() {
        say_err!(
            "disagg: warning: {} process(es) of the run did not end after SIGKILL and {}: {left:?}",
            left.len(),
            humantime::format_duration(grace)
        );
    }
}

pub(crate) mod probe;
mod replica;
pub(crate) mod stuck;
#[cfg(test)]
mod tests;

/// Index of role outcomes by role, for reports.
pub fn failures_by_role(outcome: &Outcome) -> HashMap<RoleName, String> {
    outcome
        .roles
        .iter()
        .filter_map(|r| r.failure.clone().map(|f| (r.role, f)))
        .collect()
}
