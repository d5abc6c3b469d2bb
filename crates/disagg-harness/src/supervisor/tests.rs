//! The supervisor's decisions on a fake executor: no process is started. Each fake role follows
//! a script (when it publishes its address, when it exits and how, whether it obeys TERM, what
//! BENCHMARK writes to `status.json`) and logs every call the supervisor makes on it, so the
//! tests see what was decided and in which order: fail fast, the root cause, each deadline, and
//! the teardown.
//!
//! Their run folder is real (rendezvous files are how roles talk to the supervisor), and so is
//! the liveness prober: every published address is a tiny HTTP server that answers 200.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use disagg_core::{Plan, RoleName, RolePlan};

use super::supervise;
use crate::executor::{Executor, Exit, Running};
use crate::outcome::{Failure, Outcome, RunResult};
use crate::rendezvous::{State, Status};

/// What the supervisor did to a role, or what the role did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Launched,
    Exited(Exit),
    Term,
    Kill,
    Reaped,
}

/// One fake role's script; all times count from its launch.
#[derive(Debug, Clone, Default)]
struct Script {
    /// Publishes its address (never, if `None`).
    ready: Option<Duration>,
    /// Exits by itself, with this status.
    exit: Option<(Duration, Exit)>,
    /// Writes this exit note as it exits by itself (as a role failing on its own does).
    note: Option<&'static str>,
    /// BENCHMARK: writes `status.json` with this state and reason (none when empty).
    status: Option<(Duration, State, &'static str)>,
    /// Leaves with status 0 once `status.json` is there, as every role does.
    leaves_when_over: bool,
    /// Ends on TERM; otherwise only KILL ends it.
    obeys_term: bool,
}

type Log = Arc<Mutex<Vec<(Instant, RoleName, Event)>>>;

struct FakeExecutor {
    scripts: HashMap<RoleName, Script>,
    log: Log,
    run_id: String,
    run_dir: PathBuf,
}

impl Executor for FakeExecutor {
    fn launch(
        &mut self,
        role: &RolePlan,
        _log: std::fs::File,
    ) -> std::io::Result<Box<dyn Running>> {
        let script = self.scripts.get(&role.role).cloned().unwrap_or_default();
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), role.role, Event::Launched));
        Ok(Box::new(FakeRole {
            role: role.role,
            script,
            started: Instant::now(),
            exit: None,
            published: false,
            wrote_status: false,
            saw_the_end: false,
            log: self.log.clone(),
            run_id: self.run_id.clone(),
            run_dir: self.run_dir.clone(),
        }))
    }

    /// Nothing of a fake is left outside its group; the real sweep would stop every child of
    /// the test binary.
    fn stop_leftovers(&mut self, _grace: Duration) -> Vec<u32> {
        Vec::new()
    }
}

struct FakeRole {
    role: RoleName,
    script: Script,
    started: Instant,
    exit: Option<Exit>,
    published: bool,
    wrote_status: bool,
    /// `status.json` was there at an earlier poll: the role has noticed, and leaves now.
    saw_the_end: bool,
    log: Log,
    run_id: String,
    run_dir: PathBuf,
}

impl FakeRole {
    fn record(&self, e: Event) {
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), self.role, e));
    }

    fn end(&mut self, exit: Exit) {
        if self.exit.is_none() {
            self.exit = Some(exit);
            self.record(Event::Exited(exit));
        }
    }

    fn rendezvous(&self) -> PathBuf {
        disagg_core::plan::rendezvous_dir(&self.run_dir)
    }
}

impl Running for FakeRole {
    fn pid(&self) -> u32 {
        4_000_000
    }

    /// Plays the script up to now; the supervisor calls this every tick.
    fn try_wait(&mut self) -> std::io::Result<Option<Exit>> {
        let t = self.started.elapsed();
        if self.exit.is_none() && !self.published && self.script.ready.is_some_and(|r| t >= r) {
            self.published = true;
            let addr = health_server();
            let ep = serde_json::json!({
                "run_id": self.run_id, "role": self.role, "host": addr.ip().to_string(),
                "port": addr.port(), "pid": self.pid(),
            });
            let file = self.rendezvous().join(format!("{}.json", self.role));
            crate::atomic::write_json(&file, &ep)?;
        }
        if let Some((at, state, reason)) = self.script.status {
            if self.exit.is_none() && !self.wrote_status && t >= at {
                self.wrote_status = true;
                let status = Status {
                    run_id: self.run_id.clone(),
                    state,
                    role: None,
                    reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
                };
                crate::atomic::write_json(&self.rendezvous().join("status.json"), &status)?;
            }
        }
        if let Some((at, exit)) = self.script.exit {
            if t >= at && self.exit.is_none() {
                if let Some(reason) = self.script.note {
                    let note = serde_json::json!({
                        "run_id": self.run_id, "role": self.role, "reason": reason,
                    });
                    let file = self.rendezvous().join(format!("{}.exit.json", self.role));
                    crate::atomic::write_json(&file, &note)?;
                }
                self.end(exit);
            }
        }
        // A role leaves a moment after status.json appears, not in the same instant: BENCHMARK
        // writes it, then exits.
        if self.script.leaves_when_over && self.saw_the_end {
            self.end(Exit::Code(0));
        }
        self.saw_the_end = self.rendezvous().join("status.json").exists();
        Ok(self.exit)
    }

    fn terminate(&mut self) {
        self.record(Event::Term);
        if self.script.obeys_term {
            self.end(Exit::Signal(15));
        }
    }

    fn kill(&mut self) {
        self.record(Event::Kill);
        self.end(Exit::Signal(9));
    }

    fn reap(&mut self) {
        self.record(Event::Reaped);
    }
}

/// An HTTP server answering 200 to anything: the address every fake role publishes, so the
/// liveness prober sees each as alive.
fn health_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        addr
    })
}

/// A plan of one context and one generation worker, the built-in router and the benchmark, in
/// a run folder of its own, with generous deadlines unless a test shortens them.
fn plan(dir: &Path) -> Plan {
    let text = "model: {name: m}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                benchmark: {isl: 8, osl: 4}\n";
    let case = disagg_core::parse_case(text, Path::new("case.yaml")).unwrap();
    let run_dir = dir.join("cfg").join("RUN1");
    std::fs::create_dir_all(disagg_core::plan::rendezvous_dir(&run_dir)).unwrap();
    let mut plan = disagg_core::plan::build(&case, "RUN1", &run_dir, Path::new("disagg"));
    let d = &mut plan.deadlines;
    d.worker_startup = Duration::from_secs(20);
    d.benchmark = Duration::from_secs(30);
    d.job = Duration::from_secs(40);
    d.grace = Duration::from_millis(300);
    d.unresponsive = Duration::from_secs(30);
    plan
}

/// Every role's script: ready at 50 ms, obeys TERM, leaves when the run is over. `f` adjusts
/// them per role.
fn scripts(plan: &Plan, f: impl Fn(RoleName, &mut Script)) -> HashMap<RoleName, Script> {
    (plan.roles.iter())
        .map(|r| {
            let mut s = Script {
                ready: (r.role != RoleName::Benchmark).then_some(Duration::from_millis(50)),
                leaves_when_over: true,
                obeys_term: true,
                ..Script::default()
            };
            f(r.role, &mut s);
            (r.role, s)
        })
        .collect()
}

/// Runs the supervisor on fakes; the outcome, the event log, and how long it took.
fn run(
    plan: &Plan,
    scripts: HashMap<RoleName, Script>,
    interrupted: bool,
) -> (Outcome, Vec<(Instant, RoleName, Event)>, Duration) {
    let log: Log = Arc::default();
    let mut exec = FakeExecutor {
        scripts,
        log: log.clone(),
        run_id: plan.run_id.clone(),
        run_dir: plan.run_dir.clone(),
    };
    let started = Instant::now();
    let outcome = supervise(plan, &mut exec, &AtomicBool::new(interrupted));
    let took = started.elapsed();
    let events = log.lock().unwrap().clone();
    (outcome, events, took)
}

fn failure(o: &Outcome) -> &Failure {
    match &o.result {
        RunResult::Failed(f) => f,
        other => panic!("not a failure: {other:?}"),
    }
}

fn gen0() -> RoleName {
    RoleName::Gen(0)
}

fn ctx0() -> RoleName {
    RoleName::Ctx(0)
}

/// When `role` first had `event`.
fn first(events: &[(Instant, RoleName, Event)], role: RoleName, event: Event) -> Option<Instant> {
    (events.iter())
        .find(|(_, r, e)| *r == role && *e == event)
        .map(|(t, ..)| *t)
}

#[test]
fn fail_fast_a_worker_that_dies_ends_the_run_at_once_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(1)));
        }
    });
    let (outcome, _, took) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    assert!(f.reason.starts_with("GEN_0 exited with status 1"), "{f:?}");
    assert!(!f.timeout);
    // Within a few ticks of the death (plus the teardown's TERM), not at any deadline (20 s+).
    assert!(took < Duration::from_secs(3), "{took:?}");
    let gen_failure = outcome.roles.iter().find(|r| r.role == gen0()).unwrap();
    assert!(gen_failure.failure.is_some());
}

#[test]
fn root_cause_the_benchmarks_failure_is_blamed_on_the_worker_that_died_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((
                Duration::from_millis(300),
                State::Failed,
                "concurrency 2: 34 of 40 requests failed",
            ));
            s.leaves_when_over = false;
        }
        if role == gen0() {
            // Seen dead a moment after the benchmark's verdict, and so not leaving cleanly.
            s.exit = Some((Duration::from_millis(500), Exit::Code(1)));
            s.leaves_when_over = false;
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    assert!(f.reason.starts_with("GEN_0 exited with status 1"), "{f:?}");
    assert!(
        f.reason
            .ends_with("; then concurrency 2: 34 of 40 requests failed"),
        "{f:?}"
    );
    // Both keep their own account in the report.
    for role in [gen0(), RoleName::Benchmark] {
        let r = outcome.roles.iter().find(|r| r.role == role).unwrap();
        assert!(r.failure.is_some(), "{role}: {outcome:?}");
    }
}

#[test]
fn root_cause_a_worker_that_leaves_cleanly_after_the_benchmark_failed_is_not_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((
                Duration::from_millis(300),
                State::Failed,
                "TTFT gate failed",
            ));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("BENCHMARK"), "{f:?}");
    assert_eq!(f.reason, "TTFT gate failed");
    let workers_blamed: Vec<_> = (outcome.roles.iter())
        .filter(|r| r.role.is_worker() && r.failure.is_some())
        .collect();
    assert!(workers_blamed.is_empty(), "{workers_blamed:?}");
}

#[test]
fn deadline_a_worker_never_ready_fails_at_worker_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path());
    plan.deadlines.worker_startup = Duration::from_millis(400);
    let scripts = scripts(&plan, |role, s| {
        if role == ctx0() {
            s.ready = None;
        }
    });
    let (outcome, _, took) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("CTX_0"), "{f:?}");
    assert!(f.timeout, "{f:?}");
    assert!(
        f.reason
            .starts_with("CTX_0 was not ready within worker_startup (400ms)"),
        "{f:?}"
    );
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// A worker not ready in time is said to be so for what its log shows: a role that never
/// started (under Slurm, a step not started on its node), an engine never started, or a
/// /health that never answered where it was asked. The first read as the third.
#[test]
fn a_worker_not_ready_is_said_to_be_so_for_what_its_log_shows() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let role = plan.role(ctx0()).unwrap().clone();
    let account = |log: &str| {
        std::fs::write(plan.run_dir.join(&role.log), log).unwrap();
        super::not_ready_account(&plan, &role)
    };
    assert!(
        account("").starts_with("its role never started: its log has no line of its own"),
        "{}",
        account("")
    );
    let started = "disagg role CTX_0 on node-a: GPUs: 0\n";
    assert_eq!(
        account(started),
        "its role started but did not start its engine (its log says why)"
    );
    let engine = format!("{started}disagg role CTX_0: starting engine: sim --port 5\n");
    assert_eq!(
        account(&engine),
        "its engine was started, and never said where it listens"
    );
    // As a rank of a multi-rank step writes it, prefixed.
    let waiting = format!(
        "{engine}[rank 0 @ node-a] disagg role CTX_0: engine (pid 7) at 127.0.0.1:5; waiting for \
         http://127.0.0.1:5/health (or http://node-a:5/health)\n"
    );
    assert_eq!(
        account(&waiting),
        "its engine's /health never answered 200 (asked: http://127.0.0.1:5/health (or \
         http://node-a:5/health))"
    );
}

#[test]
fn deadline_the_benchmark_gets_its_deadline_from_the_router_being_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path());
    plan.deadlines.benchmark = Duration::from_millis(500);
    let router_ready = Duration::from_millis(300);
    let scripts = scripts(&plan, |role, s| {
        if role.is_router() {
            s.ready = Some(router_ready);
        }
    });
    let (outcome, events, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("BENCHMARK"), "{f:?}");
    assert!(f.timeout, "{f:?}");
    assert_eq!(
        f.reason,
        "BENCHMARK did not finish within the benchmark deadline (500ms)"
    );
    // Counted from the router's readiness, not from the start.
    let launched = events[0].0;
    let ended = first(&events, RoleName::Benchmark, Event::Term).unwrap();
    assert!(
        ended - launched >= router_ready + Duration::from_millis(500),
        "{:?}",
        ended - launched
    );
}

#[test]
fn deadline_the_job_deadline_ends_a_run_that_never_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path());
    plan.deadlines.job = Duration::from_millis(600);
    let (outcome, _, took) = run(&plan, scripts(&plan, |_, _| {}), false);
    let f = failure(&outcome);
    assert_eq!(f.role, None);
    assert!(f.timeout);
    assert!(
        f.reason
            .starts_with("the job deadline (600ms) passed with ")
            && f.reason.contains("raise timeouts.job"),
        "{}",
        f.reason
    );
    assert!(took >= Duration::from_millis(600), "{took:?}");
}

#[test]
fn teardown_on_a_failure_every_role_gets_term_before_any_kill_then_each_is_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let grace = plan.deadlines.grace;
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(200), Exit::Code(1)));
        }
        // One role that ignores TERM: only KILL, after the grace, ends it.
        if role == ctx0() {
            s.obeys_term = false;
            s.leaves_when_over = false;
        }
    });
    let (_, events, _) = run(&plan, scripts, false);
    let last_term = (events.iter())
        .filter(|(_, _, e)| *e == Event::Term)
        .map(|(t, ..)| *t)
        .max()
        .unwrap();
    let first_kill = (events.iter())
        .filter(|(_, _, e)| *e == Event::Kill)
        .map(|(t, ..)| *t)
        .min()
        .unwrap();
    assert!(last_term <= first_kill, "{events:#?}");
    for r in &plan.roles {
        let term = first(&events, r.role, Event::Term).expect("TERM");
        let kill = first(&events, r.role, Event::Kill).expect("KILL");
        let reaped = first(&events, r.role, Event::Reaped).expect("reaped");
        assert!(term <= kill && kill <= reaped, "{}: {events:#?}", r.role);
        let after_reap = (events.iter()).filter(|(t, role, _)| *role == r.role && *t > reaped);
        assert_eq!(after_reap.count(), 0, "{}: nothing after the reap", r.role);
    }
    // CTX_0 ignored TERM, so it was killed, and only after the grace.
    let ctx_term = first(&events, ctx0(), Event::Term).unwrap();
    let ctx_kill = first(&events, ctx0(), Event::Kill).unwrap();
    assert!(ctx_kill - ctx_term >= grace, "{:?}", ctx_kill - ctx_term);
    let killed = (events.iter())
        .position(|(_, r, e)| *r == ctx0() && *e == Event::Kill)
        .unwrap();
    assert_eq!(events[killed + 1].1, ctx0());
    assert_eq!(events[killed + 1].2, Event::Exited(Exit::Signal(9)));
}

#[test]
fn teardown_on_a_pass_roles_get_the_grace_to_leave_before_any_term() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((Duration::from_millis(300), State::Done, ""));
        }
    });
    let (outcome, events, _) = run(&plan, scripts, false);
    assert_eq!(outcome.result, RunResult::Passed);
    for r in &plan.roles {
        let left = first(&events, r.role, Event::Exited(Exit::Code(0)))
            .unwrap_or_else(|| panic!("{} left by itself: {events:#?}", r.role));
        let term = first(&events, r.role, Event::Term).unwrap();
        assert!(left <= term, "{}: {events:#?}", r.role);
        assert!(first(&events, r.role, Event::Reaped).is_some());
    }
    assert!(outcome.roles.iter().all(|r| r.failure.is_none()));
}

#[test]
fn an_interrupt_ends_the_run_as_interrupted_and_tears_everything_down() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let (outcome, events, took) = run(&plan, scripts(&plan, |_, _| {}), true);
    assert_eq!(outcome.result, RunResult::Interrupted);
    assert!(took < Duration::from_secs(3), "{took:?}");
    for r in &plan.roles {
        assert!(first(&events, r.role, Event::Term).is_some(), "{}", r.role);
        assert!(
            first(&events, r.role, Event::Reaped).is_some(),
            "{}",
            r.role
        );
    }
    // The final word is the supervisor's.
    let status: Status =
        serde_json::from_slice(&std::fs::read(plan.status_file()).unwrap()).unwrap();
    assert_eq!(
        (status.state, status.reason.as_deref()),
        (State::Failed, Some("interrupted"))
    );
}

/// GEN_0's engine dies 20 ms after BENCHMARK writes `done` with `word` as its reason.
fn gen0_dies_after_the_benchmarks_done(
    dir: &std::path::Path,
    word: &'static str,
) -> (Plan, Outcome, Vec<(Instant, RoleName, Event)>) {
    let plan = plan(dir);
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((Duration::from_millis(300), State::Done, word));
        }
        if role == gen0() {
            // Its engine died a moment after the benchmark's `done`, before anyone stopped it.
            s.exit = Some((Duration::from_millis(320), Exit::Code(1)));
            s.note = Some("its engine exited with status 1 while serving");
            s.leaves_when_over = false;
        }
    });
    let (outcome, events, _) = run(&plan, scripts, false);
    (plan, outcome, events)
}

#[test]
fn after_done_a_worker_that_died_as_the_benchmark_ended_fails_the_run_named() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, outcome, events) = gen0_dies_after_the_benchmarks_done(dir.path(), "");
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    assert!(
        f.reason.starts_with(
            "GEN_0 exited with status 1: its engine exited with status 1 while serving"
        ),
        "{f:?}"
    );
    assert!(f.reason.contains("BENCHMARK had finished"), "{f:?}");
    let g0 = outcome.roles.iter().find(|r| r.role == gen0()).unwrap();
    assert!(g0.failure.is_some(), "{outcome:?}");
    // Found before the teardown's first signal: it died on its own.
    let died = first(&events, gen0(), Event::Exited(Exit::Code(1))).unwrap();
    let term = first(&events, gen0(), Event::Term).unwrap();
    assert!(died <= term, "{events:#?}");
    // The final word says so, over the benchmark's `done`.
    let status: Status =
        serde_json::from_slice(&std::fs::read(plan.status_file()).unwrap()).unwrap();
    assert_eq!(status.state, State::Failed);
    assert_eq!(status.role.as_deref(), Some("GEN_0"));
}

#[test]
fn after_a_sweep_that_stopped_early_the_verdict_does_not_say_it_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (_, outcome, _) = gen0_dies_after_the_benchmarks_done(
        dir.path(),
        "concurrency 4 is left out, 1 of 2 point(s) recorded",
    );
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    assert!(
        f.reason.ends_with(
            "(BENCHMARK stopped early: concurrency 4 is left out, 1 of 2 point(s) recorded; a \
             dead role fails the run)"
        ),
        "{f:?}"
    );
}

#[test]
fn after_done_a_role_that_leaves_only_on_the_teardowns_term_is_not_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((Duration::from_millis(300), State::Done, ""));
        }
        if role == gen0() {
            s.leaves_when_over = false;
        }
    });
    let (outcome, events, _) = run(&plan, scripts, false);
    assert_eq!(outcome.result, RunResult::Passed, "{outcome:?}");
    assert!(first(&events, gen0(), Event::Exited(Exit::Signal(15))).is_some());
    assert!(outcome.roles.iter().all(|r| r.failure.is_none()));
}

#[test]
fn root_cause_workers_dying_together_each_get_their_failure_the_first_is_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == ctx0() {
            s.exit = Some((Duration::from_millis(300), Exit::Signal(11)));
            s.leaves_when_over = false;
        }
        if role == gen0() {
            s.exit = Some((Duration::from_millis(400), Exit::Code(1)));
            s.note = Some("its engine was killed by signal 11 (SIGSEGV) while serving");
            s.leaves_when_over = false;
        }
    });
    let (outcome, _, took) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("CTX_0"), "{f:?}");
    assert!(
        f.reason.starts_with("CTX_0 was killed by signal 11"),
        "{f:?}"
    );
    let g0 = outcome.roles.iter().find(|r| r.role == gen0()).unwrap();
    assert_eq!(
        g0.failure.as_deref(),
        Some(
            "GEN_0 exited with status 1: its engine was killed by signal 11 (SIGSEGV) while serving"
        ),
        "{outcome:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn root_cause_after_the_benchmark_fails_every_worker_that_died_under_it_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let scripts = scripts(&plan, |role, s| {
        if role == RoleName::Benchmark {
            s.status = Some((
                Duration::from_millis(300),
                State::Failed,
                "the canary request failed: stream_cut",
            ));
            s.leaves_when_over = false;
        }
        if role == ctx0() {
            s.exit = Some((Duration::from_millis(350), Exit::Code(1)));
            s.leaves_when_over = false;
        }
        if role == gen0() {
            // Seen a moment after the first: the cause is found by then, but this one too.
            s.exit = Some((Duration::from_millis(600), Exit::Code(1)));
            s.leaves_when_over = false;
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("CTX_0"), "{f:?}");
    for role in [ctx0(), gen0(), RoleName::Benchmark] {
        let r = outcome.roles.iter().find(|r| r.role == role).unwrap();
        assert!(r.failure.is_some(), "{role}: {outcome:?}");
    }
}

#[test]
fn the_first_task_srun_saw_end_is_read_from_its_lines_before_it_stopped_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen_server_0.log");
    let read = |text: &str| {
        std::fs::write(&log, text).unwrap();
        super::first_task_end(&log)
    };
    assert_eq!(
        read(
            "[rank 0 @ dgn2] disagg role GEN_0: FAILED: x\nsrun: error: dgn3: task 1: Killed\n\
             srun: launch/slurm: _step_signal: Terminating StepId=7.2\n\
             srun: error: dgn2: task 0: Exited with exit code 1\n"
        ),
        Some(("dgn3".into(), 1, "Killed".into()))
    );
    assert_eq!(
        read("srun: error: node-b: tasks 4-7: Exited with exit code 2\n"),
        Some(("node-b".into(), 4, "Exited with exit code 2".into()))
    );
    // Only what srun stopped itself, or nothing from srun: no first task.
    assert_eq!(
        read(
            "srun: launch/slurm: _step_signal: Terminating StepId=7.2\n\
             srun: error: dgn3: task 1: Terminated\n"
        ),
        None
    );
    assert_eq!(read("srun: error: Unable to create step for job 7\n"), None);
}

#[test]
fn a_step_cancelled_from_outside_is_read_from_slurmstepds_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen_server_2.log");
    let read = |text: &str| {
        std::fs::write(&log, text).unwrap();
        super::step_cancelled(&log)
    };
    assert_eq!(
        read(
            "disagg role GEN_2: serving\n\
             slurmstepd-dgn3: error: *** STEP 487.5 ON dgn3 CANCELLED AT 2026-12-06T15:51:41 ***\n\
             srun: error: dgn3: task 0: Killed\n"
        ),
        Some((
            "487.5".into(),
            "dgn3".into(),
            "*** STEP 487.5 ON dgn3 CANCELLED AT 2026-12-06T15:51:41 ***".into()
        ))
    );
    // srun may say the step is aborted before slurmstepd says why (as in CI's run 591).
    assert_eq!(
        read(
            "disagg role GEN_0: ready at http://127.0.0.1:34929\n\
             srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n\
             slurmstepd-vm: error: *** STEP 591.1 ON vm CANCELLED AT 2026-12-06T18:20:11 ***\n\
             srun: error: vm: task 0: Killed\n\
             srun: launch/slurm: _step_signal: Terminating StepId=591.1\n"
        ),
        Some((
            "591.1".into(),
            "vm".into(),
            "*** STEP 591.1 ON vm CANCELLED AT 2026-12-06T18:20:11 ***".into()
        ))
    );
    // A step ended at the job's time limit was not cancelled by anyone.
    assert_eq!(
        read(
            "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.\n\
             slurmstepd-dgn1: error: *** STEP 677.1 ON dgn1 CANCELLED AT 2026-12-05T21:55:21 DUE TO TIME LIMIT ***\n"
        ),
        None
    );
    // The whole job's cancellation (a time limit, scancel of the job) is not a step's.
    assert_eq!(
        read(
            "slurmstepd-dgn1: error: *** JOB 677 ON dgn1 CANCELLED AT 2026-12-05T21:55:21 DUE TO TIME LIMIT ***\n"
        ),
        None
    );
    assert_eq!(read("srun: error: dgn3: task 0: Killed\n"), None);
    // A step cancel whose slurmstepd line never reached the log (it does not always): srun's
    // `Job step aborted`, then its task killed, not ended of its own.
    assert_eq!(
        read(
            "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n\
             srun: error: vm: task 0: Killed\n\
             srun: launch/slurm: _step_signal: Terminating StepId=31.0\n"
        ),
        Some((
            "31.0".into(),
            "vm".into(),
            "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.".into()
        ))
    );
    assert_eq!(
        read(
            "srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n\
             srun: error: vm: task 0: Exited with exit code 3\n"
        ),
        None
    );
    // Slurm's own cancel of a step one of whose tasks ended (`--kill-on-bad-exit`), or at the
    // teardown: an echo, not the cause.
    assert_eq!(
        read(
            "srun: error: dgn3: task 1: Exited with exit code 1\n\
             srun: launch/slurm: _step_signal: Terminating StepId=543.1\n\
             slurmstepd-dgn2: error: *** STEP 543.1 ON dgn2 CANCELLED AT 2026-12-06T16:19:05 ***\n"
        ),
        None
    );
    assert_eq!(
        read(
            "srun: forcing job termination\nsrun: got SIGCONT\n\
             slurmstepd-dgn1: error: *** STEP 540.0 ON dgn1 CANCELLED AT 2026-12-06T16:18:57 ***\n"
        ),
        None
    );
}

/// Runs the supervisor on fakes, its interrupt flag set `after` from the start.
fn run_interrupted_after(
    plan: &Plan,
    scripts: HashMap<RoleName, Script>,
    after: Duration,
) -> Outcome {
    let flag = Arc::new(AtomicBool::new(false));
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut exec = FakeExecutor {
        scripts,
        log: Arc::default(),
        run_id: plan.run_id.clone(),
        run_dir: plan.run_dir.clone(),
    };
    let outcome = supervise(plan, &mut exec, &flag);
    setter.join().unwrap();
    outcome
}

/// A `scancel` signals the setup command and the supervisor alike, in no set order: the setup's
/// death by SIGTERM seen first is the interruption, not a failed setup (exit code 1).
#[test]
fn a_setup_killed_by_the_signal_that_interrupts_the_run_is_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan(dir.path());
    plan.setup = Some(vec!["sh".into(), "-c".into(), "kill -TERM $$".into()]);
    let outcome =
        run_interrupted_after(&plan, scripts(&plan, |_, _| {}), Duration::from_millis(150));
    assert_eq!(outcome.result, RunResult::Interrupted);
    // Killed by a signal no one here sent, with no interruption: the setup failed, said so.
    let dir = tempfile::tempdir().unwrap();
    let mut plan = super::tests::plan(dir.path());
    plan.setup = Some(vec!["sh".into(), "-c".into(), "kill -TERM $$".into()]);
    let (outcome, _, took) = run(&plan, scripts(&plan, |_, _| {}), false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("SETUP"));
    assert!(f.reason.contains("signal 15"), "{}", f.reason);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// The same for a role: GEN_0 dead of SIGTERM just before the supervisor's own signal arrives
/// is the run interrupted; dead of SIGTERM with no interruption, it is GEN_0's failure.
#[test]
fn a_role_killed_by_the_signal_that_interrupts_the_run_is_an_interruption() {
    // Each run its own folder: a run's final status is in it.
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        (plan(dir.path()), dir)
    };
    let dies = |role: RoleName, s: &mut Script| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Signal(15)));
        }
    };
    let (plan, _dir) = fresh();
    let outcome = run_interrupted_after(&plan, scripts(&plan, dies), Duration::from_millis(450));
    assert_eq!(outcome.result, RunResult::Interrupted);
    let (plan, _dir) = fresh();
    let (outcome, _, _) = run(&plan, scripts(&plan, dies), false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    // An exit with a status of its own is judged at once, whatever follows.
    let exits = |role: RoleName, s: &mut Script| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(1)));
        }
    };
    let (plan, _dir) = fresh();
    let outcome = run_interrupted_after(&plan, scripts(&plan, exits), Duration::from_millis(450));
    assert_eq!(failure(&outcome).role.as_deref(), Some("GEN_0"));
}

/// Two roles stopped by SIGTERM with no signal of the supervisor's own: a stop from outside
/// the run (a CI abort killing the build's processes one by one, `scancel --signal=TERM` of
/// the job's steps), so the run is interrupted, not failed on the first one's account.
#[test]
fn several_roles_stopped_by_sigterm_from_outside_interrupt_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let dies = |role: RoleName, s: &mut Script| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Signal(15)));
        }
        if role == RoleName::Ctx(0) {
            s.exit = Some((Duration::from_millis(500), Exit::Code(143)));
        }
    };
    let (outcome, _, _) = run(&plan, scripts(&plan, dies), false);
    assert_eq!(outcome.result, RunResult::Interrupted, "{outcome:?}");
    // One role alone, by SIGTERM: its own failure (see the test above), and so is a role
    // killed otherwise beside one stopped by SIGTERM.
    let dir = tempfile::tempdir().unwrap();
    let plan = super::tests::plan(dir.path());
    let dies = |role: RoleName, s: &mut Script| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Signal(15)));
        }
        if role == RoleName::Ctx(0) {
            s.exit = Some((Duration::from_millis(500), Exit::Signal(9)));
        }
    };
    let (outcome, _, _) = run(&plan, scripts(&plan, dies), false);
    assert!(
        matches!(outcome.result, RunResult::Failed(_)),
        "{outcome:?}"
    );
    // Two steps ended 143 by srun after a rank of one failed (`--kill-on-bad-exit`): that
    // rank's note says so, and the run failed, at that role.
    let dir = tempfile::tempdir().unwrap();
    let plan = super::tests::plan(dir.path());
    let dies = |role: RoleName, s: &mut Script| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(143)));
            s.note = Some("its engine's rank 1 (on n2) exited with status 3 while serving");
        }
        if role == RoleName::Ctx(0) {
            s.exit = Some((Duration::from_millis(400), Exit::Code(143)));
        }
    };
    let (outcome, _, _) = run(&plan, scripts(&plan, dies), false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{outcome:?}");
    // SIGINT alike (a terminal's Ctrl-C sent to the roles' group, not to `disagg run`).
    let dir = tempfile::tempdir().unwrap();
    let plan = super::tests::plan(dir.path());
    let dies = |role: RoleName, s: &mut Script| {
        if role == gen0() || role == RoleName::Ctx(0) {
            s.exit = Some((Duration::from_millis(300), Exit::Signal(2)));
        }
    };
    let (outcome, _, _) = run(&plan, scripts(&plan, dies), false);
    assert_eq!(outcome.result, RunResult::Interrupted, "{outcome:?}");
}

/// Roles whose steps srun ended 143 after a task of each failed on its own (`--kill-on-bad-exit`),
/// with no exit note (the run folder was read-only inside their container): a failure, read from
/// srun's lines, never an interruption from outside.
#[test]
fn roles_srun_stopped_after_a_task_failed_are_a_failure_without_their_notes() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    for role in [gen0(), RoleName::Ctx(0)] {
        let log = plan
            .run_dir
            .join(&plan.roles.iter().find(|r| r.role == role).unwrap().log);
        std::fs::write(
            &log,
            format!(
                "[rank 0 @ dgn1] disagg role {role}: FAILED: cannot publish \
                 rendezvous/{role}.json: Read-only file system (os error 30)\n\
                 srun: error: dgn1: task 0: Exited with exit code 1\n\
                 srun: launch/slurm: _step_signal: Terminating StepId=39.3\n\
                 srun: error: dgn1: tasks 1-3: Terminated\n"
            ),
        )
        .unwrap();
    }
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() || role == RoleName::Ctx(0) {
            s.exit = Some((Duration::from_millis(300), Exit::Code(143)));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert!(f.reason.contains("Read-only file system"), "{f:?}");
}

/// A role whose step srun saw end by SIGTERM (`task 0: Terminated`), with no account of its
/// own: someone sent it a stop signal; not "killed (the OOM killer, or a kill -9)", which is
/// what srun's `Killed` means.
#[test]
fn a_role_srun_saw_terminated_is_said_to_have_been_sent_a_stop_signal() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let log = plan
        .run_dir
        .join(&plan.roles.iter().find(|r| r.role == gen0()).unwrap().log);
    std::fs::write(&log, "srun: error: dgn2: task 0: Terminated\n").unwrap();
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(143)));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("GEN_0"), "{f:?}");
    assert!(
        f.reason
            .contains("it was sent a stop signal by someone outside this run")
            && !f.reason.contains("OOM"),
        "{}",
        f.reason
    );
}

/// A role whose step srun saw end on another signal (`scancel --signal=USR1`): said as that
/// signal, not as the OOM killer's kill.
#[test]
fn a_role_srun_saw_end_on_usr1_is_not_said_to_be_oom_killed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let log = plan
        .run_dir
        .join(&plan.roles.iter().find(|r| r.role == gen0()).unwrap().log);
    std::fs::write(&log, "srun: error: dgn2: task 0: User defined signal 1\n").unwrap();
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(138)));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert!(
        f.reason.contains("User defined signal 1")
            && f.reason.contains("ended on that signal")
            && !f.reason.contains("OOM"),
        "{}",
        f.reason
    );
}

/// A node lost under a Slurm job: the role that ran there (srun: `Node failure on`) is the
/// root cause, and a role Slurm stopped elsewhere because of it (its step `CANCELLED ... DUE
/// TO NODE FAILURE`) did not fail, even when it was seen dead first. It used to be blamed as
/// killed ("the OOM killer, or a kill -9") on its healthy node.
#[test]
fn a_lost_node_is_the_root_cause_and_the_roles_stopped_for_it_elsewhere_did_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(dir.path());
    let log_of = |role: RoleName| {
        plan.run_dir
            .join(&plan.roles.iter().find(|r| r.role == role).unwrap().log)
    };
    std::fs::write(
        log_of(gen0()),
        "srun: error: dgn2: task 0: Terminated\nslurmstepd: error: *** STEP 45.4 ON dgn2 \
         CANCELLED AT 2026-12-07T04:01:02 DUE TO NODE FAILURE ***\n",
    )
    .unwrap();
    std::fs::write(
        log_of(ctx0()),
        "srun: error: Node failure on dgn1\nsrun: error: dgn1: task 0: Killed\n",
    )
    .unwrap();
    let scripts = scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(143)));
        } else if role == ctx0() {
            s.exit = Some((Duration::from_millis(350), Exit::Code(137)));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert_eq!(f.role.as_deref(), Some("CTX_0"), "{f:?}");
    assert!(f.reason.contains("its node dgn1 was lost"), "{}", f.reason);
    let gen_failure = (outcome.roles.iter())
        .find(|r| r.role == gen0())
        .and_then(|r| r.failure.clone());
    assert_eq!(gen_failure, None, "GEN_0 was stopped for the lost node");

    // Seen alone (the lost node's role not dead yet), the stopped role says why, not "killed".
    let dir = tempfile::tempdir().unwrap();
    let plan = super::tests::plan(dir.path());
    let gen_log = plan
        .run_dir
        .join(&plan.roles.iter().find(|r| r.role == gen0()).unwrap().log);
    std::fs::write(
        gen_log,
        "srun: error: dgn2: task 0: Terminated\n*** STEP 45.4 ON dgn2 CANCELLED AT \
         2026-12-07T04:01:02 DUE TO NODE FAILURE ***\n",
    )
    .unwrap();
    let scripts = super::tests::scripts(&plan, |role, s| {
        if role == gen0() {
            s.exit = Some((Duration::from_millis(300), Exit::Code(143)));
        }
    });
    let (outcome, _, _) = run(&plan, scripts, false);
    let f = failure(&outcome);
    assert!(
        f.reason
            .contains("stopped by Slurm because a node of the job failed")
            && !f.reason.contains("OOM"),
        "{}",
        f.reason
    );
}
