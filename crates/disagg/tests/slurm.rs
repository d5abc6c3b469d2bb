//! `disagg run --launcher slurm` against a real Slurm (`scripts/dev-slurm.sh up`), with the sim
//! engine. Where no Slurm answers, the tests are reported as ignored, with the reason; with
//! `DISAGG_REQUIRE_SLURM=1` (CI) they fail instead (`needs/mod.rs`, the harness of this file).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DISAGG: &str = env!("CARGO_BIN_EXE_disagg");

mod needs;
mod support;

fn main() {
    needs::main(
        include_str!("slurm.rs"),
        vec![
            needs::Needs {
                service: "a Slurm",
                check: Some(slurm),
                tests: tests![
                    a_passing_case_runs_as_a_job_and_its_hostile_job_name_arrives_literally,
                    a_job_id_taken_by_a_run_folder_is_given_up_for_another,
                    two_cases_become_two_jobs_in_two_folders,
                    gen_0_crashing_fails_the_job_within_seconds_and_names_gen_0,
                    a_too_short_slurm_time_limit_is_a_timeout,
                    no_wait_prints_the_job_and_folder_then_logs_shows_the_run,
                    the_command_engine_runs_disagg_sim_under_slurm,
                    ctrl_c_cancels_the_job,
                    a_job_cancelled_from_outside_is_said_to_be,
                    a_worker_step_cancelled_from_outside_is_named_with_the_cancel,
                    a_no_wait_job_ended_at_its_time_limit_reports_timeout_from_inside_the_job,
                    a_no_wait_job_ended_at_its_time_limit_in_its_setup_still_reports,
                    a_failing_setup_fails_the_job_as_setup,
                    a_hanging_setup_ends_at_timeouts_job_without_a_slurm_time,
                    a_baseline_that_breaks_while_the_job_waits_fails_the_run_not_the_gate_silently,
                    a_relative_store_names_the_same_file_inside_the_job,
                    a_slurm_that_does_not_answer_for_a_moment_is_waited_for,
                    a_sweep_becomes_one_job_per_point_with_its_sweep_folder,
                    a_job_slurm_can_never_start_is_cancelled_at_once_and_fails_the_case_with_2,
                    a_job_slurm_will_not_release_fails_the_case_with_2_and_its_reports,
                    a_pending_job_is_said_with_slurms_reason_then_runs,
                    logs_say_what_slurm_says_of_a_no_wait_job_without_reports,
                    a_no_wait_point_cancelled_while_it_pends_is_settled_by_the_job_that_ends_after_it,
                    no_wait_keeps_max_jobs_by_chaining_jobs_and_the_last_job_finishes_the_sweep,
                    the_benchmarks_progress_is_shown_live_while_the_job_runs,
                    sbatch_refusing_what_the_case_asks_exits_2_with_a_hint,
                    a_killed_supervisor_is_reported_with_the_time_the_job_ran,
                    a_stopped_supervisor_is_cancelled_by_disagg_run_and_reported,
                    a_job_whose_logs_fill_the_disk_fails_with_its_reason_not_as_cancelled,
                ],
            },
            needs::Needs {
                service: "nothing",
                check: None,
                tests: tests![
                    without_slurm_nothing_is_submitted_and_the_exit_code_is_2,
                    a_cases_cuda_visible_devices_is_refused_under_gpu_gres
                ],
            },
        ],
    )
}

/// Whether a Slurm answers `sinfo`.
fn slurm() -> Result<(), String> {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success());
    if up {
        Ok(())
    } else {
        Err("no Slurm answers `sinfo` (bring one up with `bash scripts/dev-slurm.sh up`)".into())
    }
}

/// A workspace of one test; on drop it cancels any job of its own still queued or running.
struct Ws {
    dir: PathBuf,
    /// Dropped after `Ws::drop` has cancelled the jobs.
    tmp: support::JobDir,
}

impl Ws {
    fn new(name: &str) -> Self {
        let tmp = support::JobDir::new(&format!("disagg-slurm-{name}-"));
        Self {
            dir: tmp.path().to_path_buf(),
            tmp,
        }
    }

    /// Writes a case, marked as being for a cluster without GPU gres: the single-node Slurm of
    /// `scripts/dev-slurm.sh up` has none (the multi-node tests cover GPU binding).
    fn case(&self, file: &str, text: &str) -> PathBuf {
        let text = if text.contains("\nslurm: {") {
            text.replace("\nslurm: {", "\nslurm: {gpu_gres: false, ")
        } else {
            format!("{text}slurm: {{gpu_gres: false}}\n")
        };
        let p = self.dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(DISAGG)
            .args(args)
            .arg("--workspace")
            .arg(&self.dir)
            .env("SKIP_PERF_CHECK", "true")
            .output()
            .expect("disagg runs")
    }

    /// `disagg run CASE --launcher slurm` in this workspace, perf check skipped, not started.
    fn run_command(&self, case: &Path) -> Command {
        let mut cmd = Command::new(DISAGG);
        cmd.args([
            "run",
            case.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--workspace",
        ])
        .arg(&self.dir)
        .env("SKIP_PERF_CHECK", "true");
        cmd
    }

    /// Starts [`Ws::run_command`] without waiting for it, its stdout to `stdout`.
    fn spawn_run(
        &self,
        case: &Path,
        stdout: impl Into<std::process::Stdio>,
    ) -> std::process::Child {
        self.run_command(case)
            .stdout(stdout)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Writes `yaml` as `<config>.yaml` and runs it on Slurm, waiting for the job.
    fn run_on_slurm(&self, config: &str, yaml: &str) -> Output {
        let c = self.case(&format!("{config}.yaml"), yaml);
        self.run(&["run", c.to_str().unwrap(), "--launcher", "slurm"])
    }

    /// The run folder of `config` (its `latest`).
    fn run_dir(&self, config: &str) -> PathBuf {
        std::fs::canonicalize(self.dir.join("disagg_logs").join(config).join("latest")).unwrap()
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        for id in self.tmp.job_ids() {
            if job_state(&id).is_some_and(|s| !terminal(&s)) {
                let _ = Command::new("scancel").arg(&id).status();
            }
        }
    }
}

/// From squeue, whose fields come by letter (`scontrol show job` prints the job's name first).
fn job_state(id: &str) -> Option<String> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-j", id, "-o", "%T"])
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !state.is_empty()).then_some(state)
}

fn terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED"
    )
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A small sim case on two "GPUs" (so a job takes two CPUs of the test node).
fn case(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\nmodel: {{name: tiny}}\nhardware: {{gpus_per_node: 2}}\nctx: {{count: 1, engine_args: {{}}}}\n{extra}benchmark: {{isl: 32, osl: 4, concurrency: [2], rounds: 2}}\n"
    )
}

const GEN_OK: &str = "gen: {count: 1, engine_args: {}}\n";
const TIMEOUTS: &str = "timeouts: {worker_startup: 20s, request: 10s, benchmark: 30s, job: 1m}\n";

/// The run folder is named by the job id; where one of that name already holds another run
/// (a workspace shared by two clusters, Slurm's job ids started again), that job is cancelled
/// and another submitted: the run gets a folder of its own and passes (it failed with no
/// report, and left a broken folder beside the old one).
fn a_job_id_taken_by_a_run_folder_is_given_up_for_another() {
    let ws = Ws::new("taken");
    // The next job id: a held job's, cancelled at once.
    let held = Command::new("sbatch")
        .args([
            "--hold",
            "--parsable",
            "--output=/dev/null",
            "--wrap",
            "true",
        ])
        .output()
        .unwrap();
    assert!(held.status.success(), "{}", text(&held));
    let last: u64 = String::from_utf8_lossy(&held.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let _ = Command::new("scancel").arg(last.to_string()).output();
    // Other tests' jobs may take some of them first: the folders of the next five ids.
    let config_dir = ws.dir.join("disagg_logs/sl-taken");
    let taken: Vec<String> = (last + 1..=last + 5).map(|i| i.to_string()).collect();
    for id in &taken {
        std::fs::create_dir_all(config_dir.join(id)).unwrap();
        std::fs::write(config_dir.join(id).join("exit_code"), "0\n").unwrap();
    }
    let out = ws.run_on_slurm(
        "sl-taken",
        &case("sl-taken", &format!("{GEN_OK}{TIMEOUTS}")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("sl-taken");
    let id = read(&dir.join("slurm_job_id"));
    assert!(
        !taken.contains(&id),
        "the run went into a taken folder, {id}"
    );
    assert_eq!(dir.file_name().unwrap().to_string_lossy(), id);
    assert!(dir.join("results.xml").exists());
    // The old folders are as they were, and no half-made one is beside them.
    for t in &taken {
        let entries: Vec<_> = std::fs::read_dir(config_dir.join(t)).unwrap().collect();
        assert_eq!(entries.len(), 1, "{t} changed");
        assert!(!config_dir.join(format!("{t}-1")).exists());
    }
    // A taken id came up (other tests' jobs could not take all five in the moment between),
    // and was said.
    assert!(
        text(&out).contains("already exists in") && text(&out).contains("submitting again"),
        "{}",
        text(&out)
    );
}

fn a_passing_case_runs_as_a_job_and_its_hostile_job_name_arrives_literally() {
    let ws = Ws::new("pass");
    // With words that `scontrol show job -o` prints before the job's real state.
    let job_name = r#"it's "x" $(false) `false` * JobState=COMPLETED Reason=BadConstraints"#;
    let out = ws.run_on_slurm(
        "sl-pass",
        &case(
            "sl-pass",
            &format!(
                "{GEN_OK}{TIMEOUTS}setup: \"echo set up on $(hostname)\"\nslurm: {{time: \"5\", job_name: '{}'}}\n",
                job_name.replace('\'', "''")
            ),
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("sl-pass");
    let id = read(&dir.join("slurm_job_id"));
    for f in [
        "job.sbatch",
        "plan.json",
        "results.xml",
        "summary.md",
        "results.json",
    ] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    assert!(dir.join(format!("slurm-{id}.log")).exists());
    assert_eq!(
        dir.file_name().unwrap().to_string_lossy(),
        id,
        "the run id is the job id"
    );
    // The router and benchmark steps started without MPI or Slurm variables.
    for log in ["disagg_server.log", "benchmark.log"] {
        let text = read(&dir.join(log));
        let line = text
            .lines()
            .find(|l| l.contains("cleared "))
            .unwrap_or_else(|| panic!("{log} does not say what it cleared:\n{text}"));
        assert!(line.ends_with("; 0 left"), "{line}");
        assert!(
            !line.contains("cleared 0 "),
            "srun gave the step SLURM_* variables: {line}"
        );
    }
    assert!(read(&dir.join("install.log")).contains("set up on"));
    assert!(read(&dir.join("summary.md")).contains("PASSED"));
    assert!(!read(&dir.join("results.xml")).contains("<failure"));
    let shown = Command::new("scontrol")
        .args(["show", "job", &id])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("JobName={job_name}")),
        "job name not literal:\n{shown}"
    );
    assert_eq!(job_state(&id).as_deref(), Some("COMPLETED"));
}

fn two_cases_become_two_jobs_in_two_folders() {
    let ws = Ws::new("two");
    let a = ws.case("a.yaml", &case("sl-two-a", &format!("{GEN_OK}{TIMEOUTS}")));
    let b = ws.case("b.yaml", &case("sl-two-b", &format!("{GEN_OK}{TIMEOUTS}")));
    let out = ws.run(&[
        "run",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--max-jobs",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (da, db) = (ws.run_dir("sl-two-a"), ws.run_dir("sl-two-b"));
    assert_ne!(da, db);
    let (ja, jb) = (
        read(&da.join("slurm_job_id")),
        read(&db.join("slurm_job_id")),
    );
    assert_ne!(ja, jb, "one job per case");
    for d in [&da, &db] {
        assert!(read(&d.join("summary.md")).contains("PASSED"));
    }
}

fn gen_0_crashing_fails_the_job_within_seconds_and_names_gen_0() {
    let ws = Ws::new("crash");
    // Plenty of requests after the third, so the crash lands mid-run.
    let yaml = case(
        "sl-crash",
        "gen: {count: 1, engine_args: {fail_after_requests: 3}}\ntimeouts: {worker_startup: 20s, request: 10s, benchmark: 2m, job: 3m}\n",
    )
    .replace("rounds: 2", "rounds: 50");
    let t0 = Instant::now();
    let out = ws.run_on_slurm("sl-crash", &yaml);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Far below the 2m benchmark deadline: the dead step was noticed, not waited out.
    assert!(took < Duration::from_secs(45), "took {took:?}");
    let dir = ws.run_dir("sl-crash");
    let xml = read(&dir.join("results.xml"));
    assert!(xml.contains("GEN_0"), "{xml}");
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: GEN_0"), "{summary}");
    let id = read(&dir.join("slurm_job_id"));
    assert_eq!(
        job_state(&id).as_deref(),
        Some("CANCELLED"),
        "the job is cancelled"
    );
    // By its own supervisor, as the last line says: no one else's scancel.
    assert!(
        text(&out).contains("ended CANCELLED (cancelled by its supervisor after the run failed)"),
        "{}",
        text(&out)
    );
}

fn a_too_short_slurm_time_limit_is_a_timeout() {
    let ws = Ws::new("timeout");
    // The hierarchy holds (job 50s < 1 minute), but the setup outlasts the time limit.
    let out = ws.run_on_slurm(
        "sl-timeout",
        &case(
            "sl-timeout",
            &format!(
                "{GEN_OK}timeouts: {{worker_startup: 10s, request: 5s, benchmark: 30s, job: 50s}}\nsetup: [sleep, \"600\"]\nslurm: {{time: \"1\"}}\n"
            ),
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = ws.run_dir("sl-timeout");
    let xml = read(&dir.join("results.xml"));
    assert!(xml.contains("TIMEOUT"), "{xml}");
    assert!(xml.contains("time limit"), "{xml}");
    let id = read(&dir.join("slurm_job_id"));
    assert_eq!(job_state(&id).as_deref(), Some("TIMEOUT"));
}

fn no_wait_prints_the_job_and_folder_then_logs_shows_the_run() {
    let ws = Ws::new("nowait");
    let c = ws.case(
        "nw.yaml",
        &case("sl-nowait", &format!("{GEN_OK}{TIMEOUTS}")),
    );
    let out = ws.run(&[
        "run",
        c.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = ws.run_dir("sl-nowait");
    let id = read(&dir.join("slurm_job_id"));
    assert!(stdout.contains(&format!("job {id}")), "{stdout}");
    assert!(stdout.contains(&dir.display().to_string()), "{stdout}");
    wait_for_job_end(&id, Duration::from_secs(90));
    assert_eq!(job_state(&id).as_deref(), Some("COMPLETED"));
    let logs = ws.run(&["logs", "sl-nowait"]);
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs));
    let shown = String::from_utf8_lossy(&logs.stdout);
    for f in ["results.xml", "job.sbatch", &format!("slurm-{id}.log")] {
        assert!(
            shown.contains(f),
            "`disagg logs` does not list {f}:\n{shown}"
        );
    }
}

fn the_command_engine_runs_disagg_sim_under_slurm() {
    let ws = Ws::new("command");
    let sim = |role: &str| {
        format!(
            r#"{{count: 1, engine_args: {{argv: ["{{disagg}}", sim, --role, {role}, --host, "{{host}}", --port, "{{port}}", --model, "{{model}}"]}}}}"#
        )
    };
    let yaml = format!(
        "name: sl-command\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 2}}\nctx: {}\ngen: {}\nbenchmark: {{isl: 32, osl: 4, concurrency: [2], rounds: 2}}\n{TIMEOUTS}",
        sim("context"),
        sim("generation")
    );
    let out = ws.run_on_slurm("sl-command", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("sl-command");
    let log = read(&dir.join("ctx_server_0.log"));
    assert!(
        log.contains("sim --role context --host 127.0.0.1 --port "),
        "{log}"
    );
}

/// The id of the workspace's job once it is RUNNING and `ready` holds (bounded; the child is
/// killed and reaped if it never does).
fn wait_for_running_job(
    ws: &Ws,
    child: &mut std::process::Child,
    ready: impl Fn() -> bool,
) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let running = ws
            .tmp
            .job_ids()
            .into_iter()
            .find(|id| job_state(id).as_deref() == Some("RUNNING"));
        if let Some(id) = running.filter(|_| ready()) {
            return id;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job never ran");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until Slurm says job `id` has ended, for at most `within`.
fn wait_for_job_end(id: &str, within: Duration) {
    let until = Instant::now() + within;
    while job_state(id).is_none_or(|s| !terminal(&s)) {
        assert!(Instant::now() < until, "job {id} did not end");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `disagg run`'s exit status, within a minute of `what`.
fn wait_for_exit(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("disagg run did not end after {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ctrl_c_cancels_the_job() {
    let ws = Ws::new("ctrlc");
    let c = ws.case(
        "slow.yaml",
        &case(
            "sl-ctrlc",
            &format!("{GEN_OK}{TIMEOUTS}setup: [sleep, \"600\"]\nslurm: {{time: \"10\"}}\n"),
        ),
    );
    let mut child = ws.spawn_run(&c, std::process::Stdio::null());
    let id = wait_for_running_job(&ws, &mut child, || true);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_for_exit(&mut child, "Ctrl-C");
    assert_eq!(status.code(), Some(130));
    assert_eq!(job_state(&id).as_deref(), Some("CANCELLED"));
    // The run folder says what `disagg run` said: interrupted by SIGINT, not the SIGTERM that
    // scancel gave the supervisor.
    let dir = ws.run_dir("sl-ctrlc");
    assert_eq!(read(&dir.join("exit_code")).trim(), "130");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("INTERRUPTED") && summary.contains("exit code 130"),
        "{summary}"
    );
}

/// Someone else's `scancel` (an administrator, a CI timeout wrapper): the run stops as
/// interrupted, and `disagg run` says the job was cancelled from outside it, not by itself.
fn a_job_cancelled_from_outside_is_said_to_be() {
    let ws = Ws::new("outside");
    let c = ws.case(
        "slow.yaml",
        &case(
            "sl-outside",
            &format!("{GEN_OK}{TIMEOUTS}setup: [sleep, \"600\"]\nslurm: {{time: \"10\"}}\n"),
        ),
    );
    let out = ws.dir.join("run.out");
    let mut child = ws.spawn_run(&c, std::fs::File::create(&out).unwrap());
    // Its supervisor is running once the setup has started.
    let install = ws.dir.join("disagg_logs/sl-outside/latest/install.log");
    let id = wait_for_running_job(&ws, &mut child, || install.exists());
    let cancel = Command::new("scancel").arg(&id).status().unwrap();
    assert!(cancel.success());
    let status = wait_for_exit(&mut child, "the job was cancelled");
    // Stopped as interrupted whether its supervisor got Slurm's TERM in time to say so or
    // `disagg run` wrote the reports from Slurm's account (here the setup is cut short, which
    // can happen before the supervisor starts): 143 either way, and said to be someone else's.
    let said = read(&out);
    assert_eq!(status.code(), Some(143), "{said}");
    let summary = read(&ws.dir.join("disagg_logs/sl-outside/latest/summary.md"));
    assert!(summary.contains("INTERRUPTED by SIGTERM"), "{summary}");
    let outcome = read(&ws.dir.join("disagg_logs/sl-outside/latest/outcome.json"));
    assert!(outcome.contains("\"signal\": \"SIGTERM\""), "{outcome}");
    // Cancelled in its setup: no role was launched, so none "stayed up"; each says it never
    // started.
    let xml = read(&ws.dir.join("disagg_logs/sl-outside/latest/results.xml"));
    for role in ["CTX_0", "GEN_0", "DISAGG_SERVER", "BENCHMARK"] {
        assert!(
            xml.contains(&format!("{role} never started: the run was interrupted")),
            "{xml}"
        );
    }
    assert!(
        said.contains("cancelled from outside this `disagg run` (scancel, or an administrator)"),
        "{said}"
    );
    // Kept in the run folder, where triage shows it: not just any interruption.
    let dir = ws.run_dir("sl-outside");
    let end = read(&dir.join("slurm_end.txt"));
    assert!(
        end.contains("cancelled from outside this `disagg run`"),
        "{end}"
    );
    let t = Command::new(DISAGG)
        .args(["triage", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&t.stdout).contains("slurm_end.txt: Slurm job "),
        "{}",
        text(&t)
    );
}

/// `scancel JOB.STEP` of GEN_0's step mid-run: GEN_0 fails the run, and the reason is the
/// cancel slurmstepd wrote into its log, not a kill or a node lost.
fn a_worker_step_cancelled_from_outside_is_named_with_the_cancel() {
    let ws = Ws::new("step-cancel");
    let c = ws.case(
        "c.yaml",
        &case(
            "sl-step-cancel",
            "gen: {count: 1, engine_args: {itl: 100ms}}\ntimeouts: {worker_startup: 20s, request: 30s, benchmark: 2m, job: 3m}\n",
        )
        .replace("osl: 4,", "osl: 64,")
        .replace("rounds: 2", "rounds: 20"),
    );
    let out = ws.dir.join("run.out");
    let mut child = ws.spawn_run(&c, std::fs::File::create(&out).unwrap());
    // GEN_0 serves once it has published its address.
    let published = ws
        .dir
        .join("disagg_logs/sl-step-cancel/latest/rendezvous/GEN_0.json");
    let id = wait_for_running_job(&ws, &mut child, || published.exists());
    let steps = Command::new("squeue")
        .args(["-h", "-s", "-j", &id, "-o", "%i %j"])
        .output()
        .unwrap();
    let steps = String::from_utf8_lossy(&steps.stdout).into_owned();
    let step = steps
        .lines()
        .find_map(|l| l.strip_suffix(" GEN_0"))
        .unwrap_or_else(|| panic!("no GEN_0 step in {steps}"))
        .trim()
        .to_string();
    assert!(
        Command::new("scancel")
            .arg(&step)
            .status()
            .unwrap()
            .success()
    );
    let status = wait_for_exit(&mut child, "GEN_0's step was cancelled");
    let said = read(&out);
    assert_eq!(status.code(), Some(1), "{said}");
    let summary = read(&ws.run_dir("sl-step-cancel").join("summary.md"));
    assert!(
        summary.contains(&format!("FAILED: GEN_0 failed: its Slurm step {step} on "))
            && summary.contains("was cancelled from outside this run"),
        "{summary}"
    );
}

fn a_no_wait_job_ended_at_its_time_limit_reports_timeout_from_inside_the_job() {
    let ws = Ws::new("inside-timeout");
    // Slurm ends a job between its time limit and about 30 s later (it checks periodically).
    // The setup eats 100 s of the 2 minutes, so the supervisor starts late and its own
    // deadlines (counted from its start) reach past 200 s, well after Slurm's kill; with a 70 s
    // setup they reached only ~175 s and a late kill on a loaded machine lost the race. The
    // supervisor is mid-benchmark (one request takes ~200 s of 50 ms tokens) when Slurm ends
    // the job, and no `disagg run` is waiting.
    let c = ws.case(
        "slow.yaml",
        "name: sl-inside-timeout\nmodel: {name: tiny}\nhardware: {gpus_per_node: 2}\nctx: {count: 1, engine_args: {}}\ngen: {count: 1, engine_args: {itl: 50ms}}\nbenchmark: {isl: 16, osl: 4000, concurrency: [1], rounds: 1}\ntimeouts: {worker_startup: 5s, request: 100s, benchmark: 105s, job: 115s, grace: 1s}\nsetup: [sleep, \"100\"]\nslurm: {time: \"2\"}\n",
    );
    no_wait_until_its_time_limit(&ws, &c, "sl-inside-timeout", Duration::from_secs(240));
}

/// Submits `case` with `--no-wait`, waits for Slurm to end the job, and checks that the job
/// ended at its time limit and that its run folder says so, from inside the job: nobody waits.
fn no_wait_until_its_time_limit(ws: &Ws, case: &Path, config: &str, within: Duration) {
    let out = ws.run(&[
        "run",
        case.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir(config);
    let id = read(&dir.join("slurm_job_id"));
    wait_for_job_end(&id, within);
    assert_eq!(job_state(&id).as_deref(), Some("TIMEOUT"));
    let xml = read(&dir.join("results.xml"));
    assert!(xml.contains("TIMEOUT"), "{xml}");
    assert!(xml.contains("time limit"), "{xml}");
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
}

/// Slurm's time limit during the setup, with nobody waiting (`--no-wait`): the batch script
/// survives the TERM (a trap) and its supervisor writes the reports: TIMEOUT, not a folder
/// with no report at all.
fn a_no_wait_job_ended_at_its_time_limit_in_its_setup_still_reports() {
    let ws = Ws::new("setup-timeout");
    let c = ws.case(
        "slow.yaml",
        &case(
            "sl-setup-timeout",
            &format!("{GEN_OK}timeouts: {{worker_startup: 20s, request: 10s, benchmark: 30s, job: 50s}}\nsetup: [sleep, \"300\"]\nslurm: {{time: \"1\"}}\n"),
        ),
    );
    no_wait_until_its_time_limit(&ws, &c, "sl-setup-timeout", Duration::from_secs(180));
    // The job ran its minute in the setup: the reports say so, not 0 s.
    let outcome: serde_json::Value =
        serde_json::from_str(&read(&ws.run_dir("sl-setup-timeout").join("outcome.json"))).unwrap();
    let took = outcome["duration_s"].as_f64().unwrap();
    assert!(
        took >= 50.0,
        "duration_s {took} for a job ended at its 1-minute limit"
    );
}

fn a_baseline_that_breaks_while_the_job_waits_fails_the_run_not_the_gate_silently() {
    let ws = Ws::new("baseline-gone");
    // A first run gives a baseline this case can measure (the submitter refuses any other).
    let first = ws.run_on_slurm(
        "sl-base",
        &case(
            "sl-base",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\n"),
        ),
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let base = ws.dir.join("base.csv");
    std::fs::copy(
        ws.run_dir("sl-base").join("perf_script_test_results.csv"),
        &base,
    )
    .unwrap();
    // The second run gates on it; the setup holds the supervisor back while the file goes away.
    let c = ws.case(
        "sl-base.yaml",
        &case(
            "sl-base",
            &format!(
                "{GEN_OK}{TIMEOUTS}perf: {{baseline: base.csv}}\nsetup: [sleep, \"2\"]\nslurm: {{time: \"5\"}}\n"
            ),
        ),
    );
    let out = Command::new(DISAGG)
        .args([
            "run",
            c.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--no-wait",
        ])
        .arg("--workspace")
        .arg(&ws.dir)
        .env_remove("SKIP_PERF_CHECK")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::write(&base, "not,a,baseline\n").unwrap();
    let dir = ws.run_dir("sl-base");
    let id = read(&dir.join("slurm_job_id"));
    wait_for_job_end(&id, Duration::from_secs(120));
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("the perf gate cannot run") && summary.contains("base.csv"),
        "{summary}"
    );
    assert!(read(&dir.join("results.xml")).contains("the perf gate cannot run"));
}

/// A relative `DISAGG_STORE` names the file in the folder `disagg run` started in, from inside
/// the job too (which runs in its run folder): the run is recorded there and its gate reads it.
/// Read from the run folder, it named another file, which the gate found missing and called
/// removed during the run.
fn a_relative_store_names_the_same_file_inside_the_job() {
    let ws = Ws::new("relstore");
    let c = ws.case(
        "sl-rel.yaml",
        &case(
            "sl-rel",
            &format!(
                "{GEN_OK}{TIMEOUTS}perf: {{baseline: history, history: {{min_runs: 3}}}}
slurm: {{time: \"5\"}}
"
            ),
        ),
    );
    let out = Command::new(DISAGG)
        .args(["run", c.to_str().unwrap(), "--launcher", "slurm"])
        .arg("--workspace")
        .arg(&ws.dir)
        .current_dir(&ws.dir)
        .env("DISAGG_STORE", "stores/rel.sqlite")
        .env_remove("SKIP_PERF_CHECK")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("sl-rel");
    let check = read(&dir.join("perf_check.txt"));
    assert!(
        check.contains("only 0 earlier reference run(s)")
            && check.contains(&ws.dir.join("stores/rel.sqlite").display().to_string()),
        "{check}"
    );
    assert!(ws.dir.join("stores/rel.sqlite").exists());
    assert!(
        !dir.join("stores").exists(),
        "a store was made in the run folder"
    );
    // The store says the run was a Slurm job, and which.
    let job = read(&dir.join("slurm_job_id"));
    let history = Command::new(DISAGG)
        .args(["history", "sl-rel"])
        .current_dir(&ws.dir)
        .env("DISAGG_STORE", "stores/rel.sqlite")
        .output()
        .unwrap();
    assert_eq!(history.status.code(), Some(0), "{}", text(&history));
    let listed = String::from_utf8_lossy(&history.stdout);
    assert!(
        listed.contains(&format!(" slurm job {} ", job.trim())),
        "{listed}"
    );
}

/// `squeue` failing for a few seconds (the controller's socket timed out) is Slurm not
/// answering, not the job's end: `disagg run` waits, says so, and reports what the job did.
/// It took one failed `squeue` for "ended", failed the run with exit 1 while the job ran on,
/// and the job's own reports then said PASSED over it.
fn a_slurm_that_does_not_answer_for_a_moment_is_waited_for() {
    let ws = Ws::new("noanswer");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v squeue"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = ws.dir.join("flaky");
    std::fs::create_dir_all(&bin).unwrap();
    // `disagg run`'s own questions about the job (`-o %T|%r|%M`), the 2nd to the 4th,
    // fail as squeue does when the controller does not answer.
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *'%T|%r|%M'*)\n  n=$(cat '{count}' 2>/dev/null || echo 0); \
         n=$((n + 1)); echo $n > '{count}'\n  if [ $n -ge 2 ] && [ $n -le 4 ]; then\n    \
         echo 'squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation' >&2\n    \
         exit 1\n  fi;;\nesac\nexec {real} \"$@\"\n",
        count = ws.dir.join("squeue.count").display(),
        real = real.trim()
    );
    let squeue = bin.join("squeue");
    std::fs::write(&squeue, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&squeue, std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = ws.case(
        "sl-noanswer.yaml",
        &case("sl-noanswer", &format!("{GEN_OK}{TIMEOUTS}")),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = ws.run_command(&c).env("PATH", path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Slurm does not answer about job")
            && stderr.contains("Socket timed out")
            && stderr.contains("again, after"),
        "{}",
        text(&out)
    );
    let dir = ws.run_dir("sl-noanswer");
    assert_eq!(read(&dir.join("exit_code")).trim(), "0");
}

/// A setup that hangs, in a case with no `slurm.time` (a partition without a limit would
/// hold the job for ever): its step has `timeouts.job` as its own time limit, and the run fails
/// as SETUP, a TIMEOUT, within about a minute (Slurm counts whole minutes).
fn a_hanging_setup_ends_at_timeouts_job_without_a_slurm_time() {
    let ws = Ws::new("sethang");
    let started = Instant::now();
    let out = ws.run_on_slurm(
        "sl-sethang",
        &case(
            "sl-sethang",
            &format!(
                "{GEN_OK}timeouts: {{worker_startup: 20s, request: 10s, benchmark: 30s, job: 50s}}\n\
                 setup: \"echo installing; sleep 600\"\n"
            ),
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "{:?}",
        started.elapsed()
    );
    let dir = ws.run_dir("sl-sethang");
    let outcome = read(&dir.join("outcome.json"));
    let outcome: serde_json::Value = serde_json::from_str(&outcome).unwrap();
    assert_eq!(outcome["result"]["role"], "SETUP", "{outcome}");
    assert_eq!(outcome["result"]["timeout"], true, "{outcome}");
    assert!(
        outcome["result"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the setup did not finish within timeouts.job (50s)"),
        "{outcome}"
    );
    // Meanwhile `disagg run` said what the job was doing, every 30 s: nothing else shows.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("still the setup on its nodes (install.log ends: installing)"),
        "{stdout}"
    );
}

fn a_failing_setup_fails_the_job_as_setup() {
    let ws = Ws::new("setup");
    let out = ws.run_on_slurm(
        "sl-setup",
        &case(
            "sl-setup",
            &format!(
                "{GEN_OK}{TIMEOUTS}setup: \"printf 'caf\\\\351 latin-1\\\\n'; echo installing; exit 7\"\nslurm: {{time: \"5\"}}\n"
            ),
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = ws.run_dir("sl-setup");
    // Not UTF-8 (an installer's Latin-1): the failing node is still read from srun's line.
    let install = std::fs::read(dir.join("install.log")).unwrap();
    assert!(String::from_utf8_lossy(&install).contains("installing"));
    assert!(std::str::from_utf8(&install).is_err());
    let xml = read(&dir.join("results.xml"));
    assert!(xml.contains("SETUP"), "{xml}");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("setup exited with status 7 on vm"),
        "srun's account of the node, not its own status: {summary}"
    );
}

fn without_slurm_nothing_is_submitted_and_the_exit_code_is_2() {
    // Runs everywhere: a PATH without Slurm's commands stands for a machine without Slurm.
    let ws = Ws::new("noslurm");
    let c = ws.case("x.yaml", &case("sl-none", &format!("{GEN_OK}{TIMEOUTS}")));
    let out = Command::new(DISAGG)
        .args([
            "run",
            c.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--workspace",
        ])
        .arg(&ws.dir)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: "));
    assert!(!ws.dir.join("disagg_logs").exists(), "nothing was prepared");
}

/// Under GPU gres Slurm gives each worker's step its GPUs: a case's own
/// `CUDA_VISIBLE_DEVICES` (the GPUs of a shared machine, for the local launcher) would be
/// replaced, so `run --launcher slurm` refuses it before anything is submitted.
fn a_cases_cuda_visible_devices_is_refused_under_gpu_gres() {
    let ws = Ws::new("cvd");
    let c = ws.dir.join("cvd.yaml");
    std::fs::write(
        &c,
        case(
            "sl-cvd",
            &format!("{GEN_OK}{TIMEOUTS}env: {{worker: {{CUDA_VISIBLE_DEVICES: \"2,3\"}}}}\n"),
        ),
    )
    .unwrap();
    let out = ws.run(&["run", c.to_str().unwrap(), "--launcher", "slurm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`env.worker.CUDA_VISIBLE_DEVICES`: under Slurm with GPU gres")
            && stderr.contains("hint: remove it"),
        "{stderr}"
    );
    assert!(!ws.dir.join("disagg_logs").exists(), "nothing was prepared");
}

fn a_sweep_becomes_one_job_per_point_with_its_sweep_folder() {
    let ws = Ws::new("sweep");
    let yaml = case(
        "sl-sweep",
        &format!(
            "{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\nsweep:\n  ctx.count: [1, 2]\n  gen.parallel.tp: [1, 2]\n"
        ),
    )
    .replace("gpus_per_node: 2", "gpus_per_node: 4");
    let c = ws.case("sweep.yaml", &yaml);
    let junit = ws.dir.join("all.xml");
    let out = ws.run(&[
        "run",
        c.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--max-jobs",
        "2",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Four points, four jobs, four run folders named by their job ids.
    // (job_ids sees each config's `latest` link too, hence the dedup.)
    let mut ids = ws.tmp.job_ids();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one job per point: {ids:?}\n{}", text(&out));
    let sweep = std::fs::canonicalize(ws.dir.join("disagg_sweeps/sl-sweep/latest")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&read(&sweep.join("sweep.json"))).unwrap();
    let points = record["points"].as_array().unwrap();
    assert_eq!(points.len(), 4);
    for p in points {
        assert_eq!(p["status"], "passed", "{record}");
        let dir = PathBuf::from(p["run_dir"].as_str().unwrap());
        let id = read(&dir.join("slurm_job_id"));
        assert_eq!(dir.file_name().unwrap().to_string_lossy(), id.trim());
        assert!(read(&dir.join("summary.md")).contains("PASSED"));
    }
    assert_eq!(std::fs::read_dir(sweep.join("points")).unwrap().count(), 4);
    assert!(sweep.join("report.html").is_file());
    assert!(read(&sweep.join("summary.md")).contains("4 points: 4 passed"));
    // One JUnit file of the four jobs' suites.
    let all = read(&junit);
    assert_eq!(all.matches("<testsuite ").count(), 4, "{all}");
    assert!(all.contains("failures=\"0\""), "{all}");
    // The log ends with the tally of every job, as a local run's does.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l == "disagg: 4 runs: 4 passed; exit code 0"),
        "{}",
        text(&out)
    );
}

fn a_job_slurm_can_never_start_is_cancelled_at_once_and_fails_the_case_with_2() {
    // Routers and benchmark on a node of their own: two nodes, on a one-node partition.
    let ws = Ws::new("never");
    let c = ws.case(
        "sl-never.yaml",
        &case(
            "sl-never",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\", front_nodes: 1}}\n"),
        ),
    );
    // Bounded: it used to wait forever.
    let ran = support::run(
        &c,
        &ws.dir,
        &["--launcher", "slurm"],
        &[("SKIP_PERF_CHECK", "true")],
    );
    let out = ran.out;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(ran.elapsed < Duration::from_secs(30), "{:?}", ran.elapsed);
    let dir = ws.run_dir("sl-never");
    let id = read(&dir.join("slurm_job_id"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        format!("Slurm job {id} can never start"),
        "PartitionNodeLimit".into(),
        "slurm.front_nodes: 1".into(),
        "hint: ".into(),
    ] {
        assert!(stderr.contains(&want), "want {want:?}:\n{}", text(&out));
    }
    assert_eq!(job_state(&id).as_deref(), Some("CANCELLED"));
    assert_eq!(read(&dir.join("exit_code")).trim(), "2");
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("PartitionNodeLimit"), "{summary}");
    // The job never ran: no log of it exists, and none is pointed at.
    assert!(!dir.join(format!("slurm-{id}.log")).exists());
    // No role ran, so no log has a TensorRT-LLM alias pointing at nothing.
    for alias in ["3_output_CTX_0.log", "6_bench.log"] {
        assert!(
            std::fs::symlink_metadata(dir.join(alias)).is_err(),
            "{alias} exists"
        );
    }
    assert!(!summary.contains("slurm-"), "{summary}");
    assert!(read(&dir.join("results.xml")).contains("can never start"));
}

/// More tasks per node than a node has CPUs: sbatch takes the held job, `scontrol release`
/// refuses it. The case is at fault (2, with a hint), and its run folder has its reports: it
/// used to exit 1 with a folder of plan files that `disagg logs` called unfinished for ever.
fn a_job_slurm_will_not_release_fails_the_case_with_2_and_its_reports() {
    let ws = Ws::new("norelease");
    let cpus = Command::new("sinfo")
        .args(["-h", "-o", "%c"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().trim_end_matches('+').parse::<u32>().ok())
                .max()
        })
        .expect("sinfo gives the nodes' CPUs");
    let c = ws.case(
        "sl-norel.yaml",
        &case(
            "sl-norel",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\n"),
        )
        .replace("gpus_per_node: 2", &format!("gpus_per_node: {}", 2 * cpus)),
    );
    let ran = support::run(
        &c,
        &ws.dir,
        &["--launcher", "slurm"],
        &[("SKIP_PERF_CHECK", "true")],
    );
    let out = ran.out;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(ran.elapsed < Duration::from_secs(30), "{:?}", ran.elapsed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cancelled before it started") && stderr.contains("hint: "),
        "{}",
        text(&out)
    );
    let dir = ws.run_dir("sl-norel");
    let id = read(&dir.join("slurm_job_id"));
    assert_eq!(job_state(&id).as_deref(), Some("CANCELLED"));
    assert_eq!(read(&dir.join("exit_code")).trim(), "2");
    assert!(read(&dir.join("results.xml")).contains("cancelled before it started"));
    assert!(read(&dir.join("summary.md")).contains("hardware.gpus_per_node"));
}

/// A job of the test's own that holds the node until dropped (then cancelled).
struct Holder(String);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.0).status();
    }
}

fn hold_the_node(ws: &Ws) -> Holder {
    let blocker = Command::new("sbatch")
        .args([
            "--parsable",
            "--exclusive",
            "--time=2",
            "--output=/dev/null",
        ])
        .arg(format!("--chdir={}", ws.dir.display()))
        .args(["--wrap", "sleep 100"])
        .output()
        .unwrap();
    assert!(blocker.status.success(), "{}", text(&blocker));
    let holder = Holder(
        String::from_utf8_lossy(&blocker.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string(),
    );
    // Held only once it runs: queued behind another test's job, it could start after the job
    // it is to hold back, which then never pends.
    let until = Instant::now() + Duration::from_secs(120);
    while job_state(&holder.0).as_deref() != Some("RUNNING") {
        assert!(
            Instant::now() < until,
            "the node holder {} never ran",
            holder.0
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    holder
}

/// A `--no-wait` job has no `disagg run` waiting for it: `disagg logs` asks Slurm, and says it
/// pends (with Slurm's reason), then that it was cancelled before it ran and no report will
/// come. It used to say "`disagg run` is still running, or was killed" in both cases.
fn logs_say_what_slurm_says_of_a_no_wait_job_without_reports() {
    let ws = Ws::new("nowait-pending");
    let holder = hold_the_node(&ws);
    let c = ws.case(
        "nwp.yaml",
        &case(
            "sl-nwp",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\n"),
        ),
    );
    let out = ws.run(&[
        "run",
        c.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--no-wait",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = read(&ws.run_dir("sl-nwp").join("slurm_job_id"));
    let logs = ws.run(&["logs", "sl-nwp"]);
    let shown = String::from_utf8_lossy(&logs.stdout).to_string();
    assert!(
        shown.contains(&format!("waiting: Slurm job {id} is PENDING (")),
        "{}",
        text(&logs)
    );
    assert!(!shown.contains("`disagg run` is still running"), "{shown}");
    let cancel = Command::new("scancel").arg(&id).status().unwrap();
    assert!(cancel.success());
    wait_for_job_end(&id, Duration::from_secs(30));
    drop(holder);
    let logs = ws.run(&["logs", "sl-nwp"]);
    let shown = String::from_utf8_lossy(&logs.stdout).to_string();
    assert!(
        shown.contains(&format!(
            "Slurm job {id} ended CANCELLED with no report written"
        )),
        "{}",
        text(&logs)
    );
    // Nobody waits for it, so `disagg report` writes its reports from what Slurm says: a JUnit
    // glob over disagg_logs then sees the run, interrupted, and why.
    let run = ws.run_dir("sl-nwp");
    let report = ws.run(&["report", run.to_str().unwrap()]);
    assert_eq!(report.status.code(), Some(0), "{}", text(&report));
    assert_eq!(read(&run.join("exit_code")).trim(), "143");
    let junit = read(&run.join("results.xml"));
    assert!(junit.contains("the run was interrupted"), "{junit}");
    assert!(
        read(&run.join("slurm_end.txt")).contains("CANCELLED: cancelled from outside"),
        "{}",
        text(&report)
    );
    let logs = ws.run(&["logs", "sl-nwp"]);
    let shown = String::from_utf8_lossy(&logs.stdout).to_string();
    assert!(
        shown.contains("interrupted") && shown.contains("(exit 143)"),
        "{shown}"
    );
}

/// A `--no-wait` sweep point whose job is cancelled while it pends writes nothing itself: the
/// job that ends after it settles it (its reports written from what Slurm says), so the sweep
/// folder does not say "Not over" for good.
fn a_no_wait_point_cancelled_while_it_pends_is_settled_by_the_job_that_ends_after_it() {
    let ws = Ws::new("nowait-cancelled-point");
    let yaml = case(
        "sl-nwc",
        &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\nsweep:\n  benchmark.rounds: [1, 2]\n"),
    );
    let (sweep, ids, _) = submit_no_wait_sweep(&ws, "sl-nwc", &yaml);
    // The second waits for the first to end: cancelled while it pends.
    assert_eq!(job_state(&ids[1]).as_deref(), Some("PENDING"));
    assert!(
        Command::new("scancel")
            .arg(&ids[1])
            .status()
            .unwrap()
            .success()
    );
    for id in &ids {
        wait_for_job_end(id, Duration::from_secs(120));
    }
    let record: serde_json::Value = serde_json::from_str(&read(&sweep.join("sweep.json"))).unwrap();
    let points = record["points"].as_array().unwrap();
    assert_eq!(points[0]["status"], "passed", "{record}");
    assert_eq!(points[1]["status"], "interrupted", "{record}");
    assert_eq!(points[1]["exit_code"], 143, "{record}");
    let summary = read(&sweep.join("summary.md"));
    assert!(!summary.contains("Not over"), "{summary}");
    assert!(
        summary.contains("2 points: 1 passed (0 reused), 0 regressed, 0 failed, 1 interrupted"),
        "{summary}"
    );
    assert!(summary.contains("cancelled from outside"), "{summary}");
    assert!(sweep.join("report.html").is_file());
    let run = PathBuf::from(points[1]["run_dir"].as_str().unwrap());
    assert!(read(&run.join("results.xml")).contains("the run was interrupted"));
}

fn a_pending_job_is_said_with_slurms_reason_then_runs() {
    use std::io::BufRead as _;
    let ws = Ws::new("pending");
    // A job of the test holds the node; ours waits for it (Slurm's reason: Resources).
    let blocker = hold_the_node(&ws);
    let c = ws.case(
        "p.yaml",
        &case(
            "sl-pending",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\n"),
        ),
    );
    let mut child = ws.spawn_run(&c, std::process::Stdio::piped());
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let said = loop {
        match lines.next() {
            Some(Ok(l)) => {
                seen.push(l.clone());
                if l.contains("pending for") {
                    break l;
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no pending line:\n{}", seen.join("\n"));
            }
        }
    };
    assert!(
        said.contains("Slurm's reason: Resources") || said.contains("Slurm's reason: Priority"),
        "{said}"
    );
    drop(blocker);
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let all = seen.join("\n");
    assert_eq!(status.code(), Some(0), "{all}");
    assert!(all.contains("started after"), "{all}");
}

/// `scontrol show job` field of a job (`StartTime`, `EndTime`, ...).
fn job_field(id: &str, field: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .unwrap();
    let prefix = format!("{field}=");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()).map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} for job {id}"))
}

/// Submits the sweep of `yaml` with `--no-wait --max-jobs 1` (each job waits for the one
/// before it); returns the sweep folder, each point's job id in order, and what it printed.
fn submit_no_wait_sweep(ws: &Ws, name: &str, yaml: &str) -> (PathBuf, Vec<String>, String) {
    let c = ws.case(&format!("{name}.yaml"), yaml);
    let out = ws.run(&[
        "run",
        c.to_str().unwrap(),
        "--launcher",
        "slurm",
        "--no-wait",
        "--max-jobs",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let sweep = std::fs::canonicalize(ws.dir.join(format!("disagg_sweeps/{name}/latest"))).unwrap();
    let record: serde_json::Value = serde_json::from_str(&read(&sweep.join("sweep.json"))).unwrap();
    let ids = record["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["job"].as_str().expect("a job id per point").to_string())
        .collect();
    (
        sweep,
        ids,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn no_wait_keeps_max_jobs_by_chaining_jobs_and_the_last_job_finishes_the_sweep() {
    let ws = Ws::new("nowait-sweep");
    let yaml = case(
        "sl-nws",
        &format!("{GEN_OK}{TIMEOUTS}slurm: {{time: \"5\"}}\nsweep:\n  ctx.count: [1, 1, 1]\n"),
    );
    // Three identical points would share a config name; the benchmark rounds tell them apart.
    let yaml = yaml.replace("ctx.count: [1, 1, 1]", "benchmark.rounds: [1, 2, 3]");
    let (sweep, ids, stdout) = submit_no_wait_sweep(&ws, "sl-nws", &yaml);
    let record: serde_json::Value = serde_json::from_str(&read(&sweep.join("sweep.json"))).unwrap();
    let points = record["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 3, "{record}");
    // Job k waits for job k-1 to end: at most one of ours at a time.
    for k in 1..3 {
        let want = format!("job {}, run folder", ids[k]);
        let line = stdout
            .lines()
            .find(|l| l.contains(&want))
            .unwrap_or_else(|| panic!("no line for job {}:\n{stdout}", ids[k]));
        assert!(
            line.contains(&format!("starts once job {} has ended", ids[k - 1])),
            "{line}"
        );
    }
    // Not over yet, and the sweep folder says so rather than "running" forever.
    assert_eq!(points[2]["status"], "submitted", "{record}");
    let summary = read(&sweep.join("summary.md"));
    assert!(
        summary.contains("Not over") && summary.contains(&ids[2]),
        "{summary}"
    );
    assert!(!sweep.join("report.html").exists());
    let until = Instant::now() + Duration::from_secs(180);
    for id in &ids {
        while job_state(id).is_none_or(|s| !terminal(&s)) {
            assert!(Instant::now() < until, "job {id} did not end");
            std::thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(job_state(id).as_deref(), Some("COMPLETED"));
    }
    for k in 1..3 {
        let (end, start) = (
            job_field(&ids[k - 1], "EndTime"),
            job_field(&ids[k], "StartTime"),
        );
        assert!(
            start >= end,
            "job {} started {start}, before job {} ended {end}",
            ids[k],
            ids[k - 1]
        );
    }
    // The last job to end brought the sweep folder up to date and wrote its report.
    let record: serde_json::Value = serde_json::from_str(&read(&sweep.join("sweep.json"))).unwrap();
    for p in record["points"].as_array().unwrap() {
        assert_eq!(p["status"], "passed", "{record}");
    }
    assert!(read(&sweep.join("summary.md")).contains("3 points: 3 passed"));
    assert!(sweep.join("report.html").is_file());
}

fn the_benchmarks_progress_is_shown_live_while_the_job_runs() {
    let ws = Ws::new("live");
    // About 4 s of benchmark (8 requests of 50 tokens at 20 ms, 2 at a time): the supervisor
    // in the job rewrites progress.json every second, and `disagg run` shows it.
    let yaml = case(
        "sl-live",
        &format!(
            "gen: {{count: 1, engine_args: {{itl: 20ms}}}}\n{TIMEOUTS}slurm: {{time: \"5\"}}\n"
        ),
    )
    .replace(
        "osl: 4, concurrency: [2], rounds: 2",
        "osl: 50, concurrency: [2], rounds: 4",
    );
    let out = ws.run_on_slurm("sl-live", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("disagg: sl-live: con2 (point 1 of 1): "))
        .unwrap_or_else(|| panic!("no progress line:\n{}", text(&out)));
    assert!(line.contains(" of 8 requests, "), "{line}");
    assert!(line.contains("req/s, ETA "), "{line}");
}

fn sbatch_refusing_what_the_case_asks_exits_2_with_a_hint() {
    let ws = Ws::new("refused");
    // A partition this cluster does not have.
    let bad_part = ws.case(
        "part.yaml",
        &case(
            "sl-part",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{partition: nosuchpart}}\n"),
        ),
    );
    // GPUs asked from a cluster without GPU gres (the case is written as is).
    let gres = ws.dir.join("gres.yaml");
    std::fs::write(&gres, case("sl-gres", &format!("{GEN_OK}{TIMEOUTS}"))).unwrap();
    // An option this sbatch does not have (22.05 has no --segment, which TensorRT-LLM's GB200
    // configs ask for): it was exit 1, with sbatch's words only.
    let segment = ws.case(
        "segment.yaml",
        &case(
            "sl-segment",
            &format!("{GEN_OK}{TIMEOUTS}slurm: {{extra_args: [\"--segment=1\"]}}\n"),
        ),
    );
    let segment_known = Command::new("sbatch")
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--segment"));
    let mut cases = vec![
        (
            &bad_part,
            "sl-part",
            "slurm.partition: `nosuchpart` is not a partition of this cluster",
            "name one of those",
        ),
        (
            &gres,
            "sl-gres",
            "Invalid generic resource",
            "slurm.gpu_gres: false",
        ),
    ];
    if !segment_known {
        cases.push((
            &segment,
            "sl-segment",
            "unrecognized option '--segment=1'",
            "`--segment=1` is not an option of this cluster's sbatch",
        ));
    }
    for (c, config, want, hint) in cases {
        let out = ws.run(&["run", c.to_str().unwrap(), "--launcher", "slurm"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{}", text(&out));
        assert!(
            stderr.contains("hint: ") && stderr.contains(hint),
            "{}",
            text(&out)
        );
        assert!(
            !ws.dir.join("disagg_logs").join(config).exists(),
            "no folder (not even an empty one) for a job that was never queued"
        );
    }
    assert!(ws.tmp.job_ids().is_empty(), "nothing was queued");
    // With a good case before it: the partition is checked before either is sent, not at its
    // turn (hours into a night of jobs).
    let good = ws.case(
        "good.yaml",
        &case("sl-good", &format!("{GEN_OK}{TIMEOUTS}")),
    );
    let out = ws.run(&[
        "run",
        good.to_str().unwrap(),
        bad_part.to_str().unwrap(),
        "--launcher",
        "slurm",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        ws.tmp.job_ids().is_empty(),
        "nothing was queued: {}",
        text(&out)
    );
}

fn a_killed_supervisor_is_reported_with_the_time_the_job_ran() {
    let ws = Ws::new("supkill");
    let yaml = case(
        "sl-supkill",
        &format!(
            "gen: {{count: 1, engine_args: {{itl: 20ms}}}}\n{TIMEOUTS}slurm: {{time: \"5\"}}\n"
        ),
    )
    .replace(
        "osl: 4, concurrency: [2], rounds: 2",
        "osl: 200, concurrency: [2], rounds: 20",
    );
    let c = ws.case("supkill.yaml", &yaml);
    let run = support::Background::spawn(ws.run_command(&c));
    // The job's supervisor, once it has run a few seconds.
    let until = Instant::now() + Duration::from_secs(60);
    let mut first_seen: Option<Instant> = None;
    let pid = loop {
        let found = support::processes_mentioning(&ws.dir.display().to_string())
            .into_iter()
            .find(|(_, cmd)| cmd.contains(" supervise "));
        match (found, first_seen) {
            (Some((pid, _)), Some(t)) if t.elapsed() > Duration::from_secs(3) => break pid,
            (Some(_), None) => first_seen = Some(Instant::now()),
            _ => {}
        }
        if Instant::now() > until {
            run.abandon("the job's supervisor never ran for 3 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(90));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let dir = ws.run_dir("sl-supkill");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("before its supervisor wrote a report"),
        "{summary}"
    );
    // Slurm's ExitCode names what killed it.
    assert!(
        summary.contains("(its batch script was killed by signal 9 (SIGKILL))"),
        "{summary}"
    );
    // And triage says the job's account, not what a role wrote before the supervisor died.
    let t = Command::new(DISAGG)
        .args(["triage", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let triage = text(&t);
    assert!(
        triage.contains("before its supervisor wrote a report"),
        "{triage}"
    );
    let secs: f64 = summary
        .split("duration: ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {summary}"));
    assert!(
        secs >= 3.0,
        "the job ran 3 s at least, the report says {secs}s"
    );
}

/// Nothing in a job watches its supervisor: the waiting `disagg run` does, by its beat
/// (`rendezvous/SUPERVISOR.beat`). A supervisor stopped mid-run would hold the job until
/// Slurm's time limit, unset here: `disagg run` cancels the job once the beat has not moved for
/// 6 × `timeouts.unresponsive` (30 s at least), and the reports say why.
fn a_stopped_supervisor_is_cancelled_by_disagg_run_and_reported() {
    let ws = Ws::new("supstop");
    let yaml = case(
        "sl-supstop",
        "gen: {count: 1, engine_args: {itl: 20ms}}\ntimeouts: {worker_startup: 20s, request: 10s, benchmark: 5m, job: 6m, unresponsive: 2s}\n",
    )
    .replace(
        "osl: 4, concurrency: [2], rounds: 2",
        "osl: 200, concurrency: [2], rounds: 200",
    );
    let c = ws.case("supstop.yaml", &yaml);
    let run = support::Background::spawn(ws.run_command(&c));
    // The supervisor's pid, from its beat, once the benchmark runs.
    let until = Instant::now() + Duration::from_secs(90);
    let (dir, pid) = loop {
        let found = std::fs::canonicalize(ws.dir.join("disagg_logs/sl-supstop/latest"))
            .ok()
            .filter(|d| support::sweeping(d))
            .and_then(|d| {
                let beat = std::fs::read_to_string(d.join("rendezvous/SUPERVISOR.beat")).ok()?;
                let pid: i32 = beat.split_whitespace().nth(2)?.parse().ok()?;
                Some((d, pid))
            });
        if let Some(found) = found {
            break found;
        }
        if Instant::now() > until {
            run.abandon("the job's benchmark never started, or its supervisor never beat");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let stopped = Instant::now();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    let took = stopped.elapsed();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(75),
        "{took:?}\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("the job's SUPERVISOR stopped beating")
            && stderr.contains("`disagg run` cancelled job"),
        "{stderr}"
    );
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("SUPERVISOR stopped beating")
            && summary.contains(&format!("(pid {pid} on ")),
        "{summary}"
    );
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
    // A hang, as every other silence past its limit: a timeout.
    let outcome = read(&dir.join("outcome.json"));
    assert!(outcome.contains("\"timeout\": true"), "{outcome}");
    // One account: the supervisor scancel's SIGCONT woke leaves the reports to `disagg run`
    // (it wrote its own, PASSED, over them as the roles had finished meanwhile).
    assert!(read(&dir.join("supervisor_given_up.txt")).contains("SUPERVISOR stopped beating"));
    let job = read(&dir.join("slurm_job_id"));
    let own = read(&dir.join(format!("slurm-{}.log", job.trim())));
    assert!(!own.contains("PASSED"), "{own}");
    assert!(
        job_state(job.trim()).is_none_or(|s| terminal(&s)),
        "the job is over"
    );
}

/// A job whose GEN log fills the run folder's filesystem: its supervisor fails the run naming
/// the disk and the file, writes its reports in the space set aside for them, and cancels its
/// job; `disagg run` exits 1 with that reason. It exited 143, "cancelled from outside this
/// `disagg run`", with no report written. Needs root (it mounts a tmpfs).
fn a_job_whose_logs_fill_the_disk_fails_with_its_reason_not_as_cancelled() {
    let ws = Ws::new("diskfull");
    let small = ws.dir.join("small");
    let _mounted = support::Tmpfs::mount(&small, "4m")
        .expect("cannot mount a tmpfs (the Slurm tests run as root)");
    let c = ws.case(
        "full.yaml",
        &format!(
            "name: sl-full\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 2}}\n\
             ctx: {{count: 1, engine_args: {{argv: [\"{{disagg}}\", sim, --role, context, --host, \"{{host}}\", --port, \"{{port}}\"]}}}}\n\
             gen: {{count: 1, engine_args: {{argv: [sh, -c, \"(sleep 1; while :; do head -c 65536 /dev/zero | tr '\\\\0' x >&2; sleep 0.02; done) & exec \\\"$0\\\" sim --role generation --host \\\"$1\\\" --port \\\"$2\\\" --itl 20ms\", \"{{disagg}}\", \"{{host}}\", \"{{port}}\"]}}}}\n\
             benchmark: {{isl: 32, osl: 50, concurrency: [2], rounds: 30}}\n{TIMEOUTS}slurm: {{time: \"5\"}}\n"
        ),
    );
    let out = Command::new(DISAGG)
        .args([
            "run",
            c.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--workspace",
        ])
        .arg(&small)
        .env("SKIP_PERF_CHECK", "true")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(!said.contains("cancelled from outside"), "{said}");
    let dir = std::fs::canonicalize(small.join("disagg_logs/sl-full/latest")).unwrap();
    let outcome = read(&dir.join("outcome.json"));
    assert!(
        outcome.contains("the run folder's filesystem is full")
            && outcome.contains("its largest files: gen_server_0.log"),
        "{outcome}\n{said}"
    );
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
    let job = read(&dir.join("slurm_job_id"));
    wait_for_job_end(job.trim(), Duration::from_secs(60));
}
