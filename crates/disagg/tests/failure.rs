//! Truth under failure, on real processes over loopback: a hung role is named as the root cause,
//! nothing of a run outlives it, and interrupted runs keep what they finished.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

#[test]
fn a_stopped_worker_or_router_fails_the_run_within_15s_named_as_the_root_cause() {
    for role in ["CTX_0", "GEN_0", "DISAGG_SERVER"] {
        let ws = TempDir::new("hung");
        let config = format!("hung-{}", role.to_ascii_lowercase().replace('_', "-"));
        let case = CaseSpec {
            name: &config,
            gen_args: "{itl: 20ms}",
            concurrency: "[2]",
            rounds: 200,
            osl: 32,
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let run = Background::start(&case, ws.path());
        let dir = wait_for(ws.path(), &config, "the sweep", sweeping);
        std::thread::sleep(Duration::from_millis(500));
        // The published pid: the engine for a worker, the router's own process for the router.
        let pid = json(&dir.join(format!("rendezvous/{role}.json")))["pid"]
            .as_i64()
            .unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        let stopped = Instant::now();
        let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
        let took = stopped.elapsed();
        let show = format!("{role}: exit {code}\n{stdout}\n{stderr}");
        println!("{role}: exit {code} {took:?} after the stop");
        assert_eq!(code, 1, "{show}");
        assert!(
            took < Duration::from_secs(15),
            "{role}: took {took:?}\n{show}"
        );
        let status = json(&dir.join("rendezvous/status.json"));
        assert_eq!(status["role"], role, "{status}");
        // Where it was probed, so the node is named too.
        let named = format!("{role} stopped answering http://");
        let reason = status["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(&named) && reason.contains("/health at "),
            "{status}"
        );
        let cases = junit_cases(&dir.join("results.xml"));
        let stayed_up = cases
            .iter()
            .find(|c| c.0 == format!("{role} stayed up"))
            .unwrap();
        assert!(
            stayed_up.1.as_deref().unwrap_or("").starts_with(&named),
            "{cases:?}"
        );
        assert!(
            cases
                .iter()
                .filter(|c| c.0.ends_with("stayed up") && c.0 != format!("{role} stayed up"))
                .all(|c| c.1.is_none()),
            "only {role} is blamed: {cases:?}"
        );
        assert!(stdout.contains(&format!("FAILED: {named}")), "{show}");
        assert_nothing_left(&dir);
    }
}

/// BENCHMARK serves nothing to probe: its process beats instead (`rendezvous/BENCHMARK.beat`,
/// every second). Stopped mid-sweep, it fails the run within `timeouts.unresponsive` and a few
/// seconds, named with its pid and host, not at the benchmark deadline minutes later.
#[test]
fn a_stopped_benchmark_fails_the_run_within_seconds_named() {
    let ws = TempDir::new("benchstop");
    let case = CaseSpec {
        name: "benchstop",
        gen_args: "{itl: 20ms}",
        concurrency: "[2]",
        rounds: 200,
        osl: 32,
        timeouts: "{worker_startup: 20s, request: 20s, benchmark: 5m, job: 6m, grace: 2s, unresponsive: 4s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let run = Background::start(&case, ws.path());
    let dir = wait_for(ws.path(), "benchstop", "the sweep", sweeping);
    let beat = read(&dir.join("rendezvous/BENCHMARK.beat"));
    let words: Vec<&str> = beat.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{beat:?}");
    let pid: i32 = words[2].parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let stopped = Instant::now();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(120));
    let took = stopped.elapsed();
    let show = format!("exit {code} after {took:?}\n{stdout}\n{stderr}");
    assert_eq!(code, 1, "{show}");
    assert!(took < Duration::from_secs(15), "{show}");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "BENCHMARK", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "BENCHMARK stopped beating: rendezvous/BENCHMARK.beat, rewritten every second by its process (pid {pid} on "
        )) && reason.contains("timeouts.unresponsive is 4s"),
        "{status}"
    );
    assert!(
        stdout.contains("FAILED: BENCHMARK stopped beating"),
        "{show}"
    );
    assert_nothing_left(&dir);
}

#[test]
fn a_sim_that_hangs_mid_run_is_named_not_the_benchmark() {
    let ws = TempDir::new("simhang");
    let case = CaseSpec {
        name: "simhang",
        gen_args: "{hang_after_requests: 10, itl: 5ms}",
        concurrency: "[2]",
        rounds: 50,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "simhang");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .starts_with("GEN_0 stopped answering http://"),
        "{status}"
    );
    assert!(r.elapsed < Duration::from_secs(30), "{}", r.show());
    assert_nothing_left(&dir);
}

/// A unique `sleep` length, so the test can find the very process its engine detached.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("600.{}{:09}", std::process::id(), nanos)
}

/// A `command`-engine case whose context engine starts `setsid sleep <marker> &` (a child that
/// leaves its process group and session) and then runs the sim.
fn detaching_case(name: &str, marker: &str, gen_itl: &str, rounds: u32) -> String {
    format!(
        "name: {name}\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 2}}\n\
         ctx: {{count: 1, engine_args: {{argv: [sh, -c, \"setsid sleep {marker} & exec \\\"$0\\\" sim --role context --host \\\"$1\\\" --port \\\"$2\\\"\", \"{{disagg}}\", \"{{host}}\", \"{{port}}\"]}}}}\n\
         gen: {{count: 1, engine_args: {{argv: [\"{{disagg}}\", sim, --role, generation, --host, \"{{host}}\", --port, \"{{port}}\", --itl, {gen_itl}]}}}}\n\
         benchmark: {{isl: 32, osl: 16, concurrency: [2], rounds: {rounds}}}\n\
         timeouts: {{worker_startup: 20s, request: 10s, benchmark: 60s, job: 2m, grace: 2s}}\n"
    )
}

fn sleeps_with(marker: &str) -> Vec<(u32, String)> {
    processes_mentioning(&format!("sleep {marker}"))
}

#[test]
fn a_child_that_left_its_process_group_is_gone_when_the_run_returns() {
    let ws = TempDir::new("detach");
    let mark = marker();
    let case = ws.path().join("c.yaml");
    std::fs::write(&case, detaching_case("detach", &mark, "1ms", 2)).unwrap();
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "detach");
    assert!(
        read(&dir.join("ctx_server_0.log")).contains(&format!("setsid sleep {mark}")),
        "the engine ran the detaching command"
    );
    assert_eq!(
        sleeps_with(&mark),
        vec![],
        "the detached sleep outlived the run"
    );
    assert_nothing_left(&dir);
}

#[test]
fn sigkill_of_disagg_run_leaves_no_process_of_the_run_within_5s() {
    let ws = TempDir::new("sigkill");
    let mark = marker();
    let case = ws.path().join("c.yaml");
    std::fs::write(&case, detaching_case("sigkill", &mark, "20ms", 200)).unwrap();
    let run = Background::start(&case, ws.path());
    let dir = wait_for(ws.path(), "sigkill", "the sweep", sweeping);
    let until = Instant::now() + Duration::from_secs(10);
    while sleeps_with(&mark).is_empty() {
        assert!(Instant::now() < until, "the engine never started its sleep");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = run.pid();
    let family = descendants_of(pid);
    assert!(
        family.len() >= 6,
        "4 roles, 2 engines and a sleep at least: {family:?}"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let (code, _, _) = run.wait(Duration::from_secs(10));
    assert_eq!(code, -1, "killed by a signal");
    loop {
        let left: Vec<_> = family
            .iter()
            .filter(|(p, start)| still_running(*p, *start))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "still running 5s after SIGKILL of disagg run: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "every process of the run gone {:?} after the SIGKILL",
        killed.elapsed()
    );
    assert_eq!(sleeps_with(&mark), vec![]);
    assert_nothing_left(&dir);

    // The run never finished: `logs` and `triage` say so, not "done".
    let logs = disagg(
        &[
            "logs",
            "sigkill",
            "--workspace",
            ws.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(logs.code(), 0, "{}", logs.show());
    assert!(
        logs.stdout().contains("unfinished: no exit_code"),
        "{}",
        logs.show()
    );
    let t = disagg(&["triage", dir.to_str().unwrap()], &[]);
    assert_eq!(t.code(), 1, "{}", t.show());
    assert!(
        t.stdout().starts_with("the run did not finish: "),
        "{}",
        t.show()
    );
}

/// `disagg run` killed outright while its `setup` runs: the setup's shell dies with it, and so
/// do the children the shell started (here a `sleep` in the background and one in the
/// foreground, as `pip install` under `sh -c` would be), which init would otherwise adopt.
#[test]
fn sigkill_of_disagg_run_during_setup_leaves_no_process_of_the_setup() {
    let ws = TempDir::new("sigkill-setup");
    let mark = marker();
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        format!(
            "{}setup: [sh, -c, \"sleep {mark} & sleep {mark}\"]\n",
            CaseSpec::default().yaml()
        ),
    )
    .unwrap();
    let run = Background::start(&case, ws.path());
    let until = Instant::now() + Duration::from_secs(10);
    while sleeps_with(&mark).len() < 2 {
        assert!(Instant::now() < until, "the setup never started its sleeps");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeps = sleeps_with(&mark);
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let (code, _, _) = run.wait(Duration::from_secs(10));
    assert_eq!(code, -1, "killed by a signal");
    while !sleeps_with(&mark).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the setup's {sleeps:?} still running 5s after SIGKILL of disagg run: {:?}",
            sleeps_with(&mark)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = only_run(ws.path(), "e2e");
    assert!(
        read(&dir.join("install.log")).contains("everything sh started is stopped"),
        "{}",
        read(&dir.join("install.log"))
    );
}

/// The run folder removed under a running run (a workspace cleanup): the run fails at once
/// saying so, not blaming the role whose beat or status went missing with the folder, and
/// leaves nothing running.
#[test]
fn a_run_folder_removed_mid_run_is_said_to_be() {
    let ws = TempDir::new("rmdir");
    let case = CaseSpec {
        name: "rmdir",
        gen_args: "{itl: 20ms}",
        concurrency: "[2]",
        rounds: 50,
        osl: 50,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let run = Background::start(&case, ws.path());
    let dir = wait_for(ws.path(), "rmdir", "the sweep", sweeping);
    let family = descendants_of(run.pid());
    std::fs::remove_dir_all(&dir).unwrap();
    let removed = Instant::now();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(30));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "FAILED: the run folder {} was removed while the run ran",
            dir.display()
        )),
        "{stdout}\n{stderr}"
    );
    assert!(
        removed.elapsed() < Duration::from_secs(10),
        "{:?}",
        removed.elapsed()
    );
    let left: Vec<_> = family
        .iter()
        .filter(|(p, start)| still_running(*p, *start))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `disagg run` killed outright writes no verdict; BENCHMARK, stopped by its parent-death
/// signal, marks the points it kept as not a valid result (results.json said "valid" so far).
#[test]
fn sigkill_of_disagg_run_in_the_second_point_leaves_results_json_invalid() {
    let ws = TempDir::new("sigkill-results");
    let case = CaseSpec {
        name: "sigkill-results",
        gen_args: "{itl: 20ms}",
        concurrency: "[1, 2]",
        rounds: 10,
        osl: 16,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let run = Background::start(&case, ws.path());
    let dir = wait_for(ws.path(), "sigkill-results", "the first point", |d| {
        d.join("results.json").is_file()
    });
    let family = descendants_of(run.pid());
    kill(Pid::from_raw(run.pid() as i32), Signal::SIGKILL).unwrap();
    let (code, _, _) = run.wait(Duration::from_secs(10));
    assert_eq!(code, -1, "killed by a signal");
    let until = Instant::now() + Duration::from_secs(10);
    while family.iter().any(|(p, start)| still_running(*p, *start)) {
        assert!(Instant::now() < until, "the run's processes outlived it");
        std::thread::sleep(Duration::from_millis(20));
    }
    let results = json(&dir.join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    assert!(
        results["invalid_reason"]
            .as_str()
            .unwrap()
            .starts_with("the benchmark was stopped by SIGTERM after 1 point(s)"),
        "{results}"
    );
    assert_eq!(results["points"].as_array().unwrap().len(), 1, "{results}");
    assert_eq!(read(&dir.join("bench/requests.jsonl")).lines().count(), 10);
    assert_nothing_left(&dir);
}

#[test]
fn sigint_or_sigterm_in_the_second_point_keeps_the_first_and_exits_130_or_143() {
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let ws = TempDir::new("second-point");
        let config = format!("second-{}", sig.as_str().to_ascii_lowercase());
        let case = CaseSpec {
            name: &config,
            gen_args: "{itl: 20ms}",
            concurrency: "[1, 2]",
            rounds: 10,
            osl: 16,
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let run = Background::start(&case, ws.path());
        // results.json appears once the first point has ended: the second is running.
        let dir = wait_for(ws.path(), &config, "the first point", |d| {
            d.join("results.json").is_file()
        });
        kill(Pid::from_raw(run.pid() as i32), sig).unwrap();
        let (got, stdout, stderr) = run.wait(Duration::from_secs(30));
        let show = format!("{sig}: exit {got}\n{stdout}\n{stderr}");
        assert_eq!(got, code, "{show}");
        // The first point, everywhere.
        let results = json(&dir.join("results.json"));
        let points = results["points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{show}");
        // Not a valid result, for a tool that reads results.json alone.
        assert_eq!(results["valid"], false, "{results}");
        assert_eq!(
            results["invalid_reason"], "the run was interrupted",
            "{results}"
        );
        assert_eq!(points[0]["max_concurrency"].as_u64(), Some(1));
        assert_eq!(points[0]["completed"].as_u64(), Some(10));
        let csv = read(&dir.join("perf_script_test_results.csv"));
        assert!(csv.lines().count() > 1, "{csv}");
        assert!(
            csv.lines()
                .skip(1)
                .all(|l| l.contains("con1") && !l.contains("con2")),
            "rows of the first point only:\n{csv}"
        );
        // Each request's timeline of the first point is kept too.
        let timelines = read(&dir.join("bench/requests.jsonl"));
        assert_eq!(timelines.lines().count(), 10, "{show}");
        let cases = junit_cases(&dir.join("results.xml"));
        let con1 = cases
            .iter()
            .find(|c| c.0 == "con1")
            .expect("a con1 testcase");
        assert!(con1.1.is_none(), "{cases:?}");
        let con2 = cases
            .iter()
            .find(|c| c.0 == "con2")
            .expect("a con2 testcase");
        assert_eq!(con2.2.as_deref(), Some("NOT_MEASURED"), "{cases:?}");
        assert!(
            con2.1
                .as_deref()
                .unwrap()
                .starts_with("unfinished: the run was interrupted"),
            "{cases:?}"
        );
        let summary = read(&dir.join("summary.md"));
        assert!(summary.contains("\n| 1 | "), "{summary}");
        assert!(
            summary.contains("| 2 | — | — | — | — | — | unfinished: the run was interrupted |"),
            "{summary}"
        );
        assert!(
            stdout.contains(&format!("INTERRUPTED by {}", sig.as_str())),
            "{show}"
        );
        // outcome.json says which signal it was, as the exit code does.
        let outcome = json(&dir.join("outcome.json"));
        assert_eq!(outcome["signal"], sig.as_str(), "{outcome}");
        assert_nothing_left(&dir);
    }
}

#[test]
fn a_benchmark_timing_out_in_its_second_point_keeps_the_first() {
    let ws = TempDir::new("timeout-second");
    // Requests of 0.62 s (31 gaps of 20 ms). The canary, con1's warmup and its 15 requests end
    // near 10.5 s, inside the 14 s deadline; con2's warmup and 30 requests at concurrency 2
    // would end near 20.5 s, past the deadline and the supervisor's settle time after it
    // (1.5 s, in which the benchmark still runs). About 3.5 s to spare on either side: with
    // 1.2 s (10 rounds, an 8 s deadline) a loaded machine once ran con1 past the deadline, and
    // with 0.3 s requests con2 once ended inside the settle time.
    let case = CaseSpec {
        name: "timeout-second",
        gen_args: "{itl: 20ms}",
        concurrency: "[1, 2]",
        rounds: 15,
        osl: 32,
        timeouts: "{worker_startup: 20s, request: 5s, benchmark: 14s, job: 60s, grace: 2s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "timeout-second");
    let status = json(&dir.join("rendezvous/status.json"));
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("benchmark deadline"),
        "{status}"
    );
    let results = json(&dir.join("results.json"));
    let points = results["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 1, "{}", r.show());
    assert_eq!(results["valid"], false, "{results}");
    assert!(
        results["invalid_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("the run failed: ") && r.contains("benchmark deadline")),
        "{results}"
    );
    assert!(read(&dir.join("perf_script_test_results.csv")).contains("con1"));
    let cases = junit_cases(&dir.join("results.xml"));
    assert!(
        cases.iter().any(|c| c.0 == "con1" && c.1.is_none()),
        "{cases:?}"
    );
    let con2 = cases.iter().find(|c| c.0 == "con2").unwrap();
    assert!(
        con2.1
            .as_deref()
            .unwrap()
            .starts_with("unfinished: BENCHMARK did not finish"),
        "{cases:?}"
    );
}

#[test]
fn every_baseline_that_would_pass_by_accident_exits_2_before_launch() {
    let ws = TempDir::new("badbase");
    let header = "network_name,perf_case_name,test_name,perf_metric,metric_type,threshold,absolute_threshold\n";
    let row = |case: &str, value: &str, threshold: &str| {
        format!("gate,{case},t,{value},SEQ_THROUGHPUT,{threshold},0\n")
    };
    std::fs::create_dir_all(ws.path().join("a-dir.csv")).unwrap();
    for (what, file, text, says) in [
        (
            "a NaN value",
            "nan.csv",
            Some(format!(
                "{header}{}{}",
                row("gate-con2", "100", "-0.1"),
                row("gate-con2", "NaN", "-0.1")
            )),
            "nan.csv: line 3: perf_metric is empty or NaN",
        ),
        (
            "an infinite threshold",
            "inf.csv",
            Some(format!("{header}{}", row("gate-con2", "100", "inf"))),
            "inf.csv: line 2: threshold is inf",
        ),
        (
            "a throughput marked lower-is-better",
            "flipped.csv",
            Some(format!("{header}{}", row("gate-con2", "1000", "0.1"))),
            "flipped.csv: line 2: threshold 0.1 says lower is better, but for SEQ_THROUGHPUT \
             higher is better",
        ),
        (
            "a throughput of zero",
            "zero.csv",
            Some(format!("{header}{}", row("gate-con2", "0", "-0.1"))),
            "zero.csv: line 2: perf_metric 0 for SEQ_THROUGHPUT",
        ),
        (
            "a directory",
            "a-dir.csv",
            None,
            "a-dir.csv: cannot read the baseline: it is not a regular file",
        ),
        (
            "a renamed case",
            "renamed.csv",
            Some(format!("{header}{}", row("old-name-con2", "100", "-0.1"))),
            "renamed.csv: no row this case can measure: of its 1 row(s), none is for gate-con2",
        ),
        (
            "other concurrencies",
            "other.csv",
            Some(format!("{header}{}", row("gate-con64", "100", "-0.1"))),
            "none is for gate-con2",
        ),
        (
            "a header only",
            "header.csv",
            Some(header.to_string()),
            "of its 0 row(s), none is for gate-con2",
        ),
        (
            "an empty file",
            "empty.csv",
            Some(String::new()),
            "of its 0 row(s), none is for gate-con2",
        ),
    ] {
        if let Some(text) = &text {
            std::fs::write(ws.path().join(file), text).unwrap();
        }
        let case = CaseSpec {
            name: "gate",
            concurrency: "[2]",
            extra: &format!("perf: {{baseline: {file}}}\n"),
            ..Default::default()
        }
        .write(ws.path(), "gate.yaml");
        let workspace = ws.path().join("ws");
        let r = run(&case, &workspace, &[], &[]);
        assert_eq!(r.code(), 2, "{what}: {}", r.show());
        assert!(r.stderr().contains(says), "{what}: {}", r.stderr());
        assert!(r.stderr().contains("hint: "), "{what}: {}", r.stderr());
        // Which case, and which key of it, points at the baseline.
        assert!(
            r.stderr().contains(case.to_str().unwrap()) && r.stderr().contains("`perf.baseline`"),
            "{what}: {}",
            r.stderr()
        );
        assert!(!workspace.exists(), "{what}: nothing is launched");
    }
    // The check is skipped with the perf check: no baseline is read then.
    let case = ws.path().join("gate.yaml");
    let r = run(&case, &ws.path().join("ws"), &["--skip-perf-check"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
}

#[test]
fn a_server_that_stops_at_one_token_despite_ignore_eos_fails_the_run_and_says_why() {
    let ws = TempDir::new("eos");
    let case = CaseSpec {
        name: "eos",
        gen_args: "{eos_at: 0, disregard_ignore_eos: true}",
        concurrency: "[2]",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "eos");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("wrong_output_length: 1 output tokens where ignore_eos asked for 8"),
        "{status}"
    );
    assert!(
        r.stdout()
            .contains("wrong_output_length: 1 output tokens where ignore_eos asked for"),
        "the console says why: {}",
        r.show()
    );
    let cases = junit_cases(&dir.join("results.xml"));
    let bench = cases.iter().find(|c| c.0 == "BENCHMARK stayed up").unwrap();
    assert!(
        bench.1.as_deref().unwrap().contains("wrong_output_length"),
        "{cases:?}"
    );
}

/// ISL 64 + OSL 8 in a 68-token context the case states, vLLM dialect: the prefill leg
/// (max_tokens 1) fits, the decode leg would refuse every request as vLLM's does, so the case is
/// refused before anything is launched, naming the key, the lengths and the fix.
#[test]
fn a_case_whose_isl_plus_osl_does_not_fit_its_stated_context_is_refused_before_launch() {
    let ws = TempDir::new("ctxlen");
    let case = CaseSpec {
        name: "ctxlen",
        ctx_args: "{max_model_len: 68}",
        gen_args: "{max_model_len: 68}",
        concurrency: "[1, 4]",
        extra: "router: {dialect: vllm}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let wsp = ws.path().join("ws");
    for cmd in [
        &["validate", case.to_str().unwrap()][..],
        &[
            "run",
            case.to_str().unwrap(),
            "--workspace",
            wsp.to_str().unwrap(),
        ],
    ] {
        let r = disagg(cmd, &[]);
        assert_eq!(r.code(), 2, "{}", r.show());
        let err = r.stderr();
        for part in [
            "c.yaml:9: key `gen.engine_args.max_model_len`",
            "isl 64 + osl 8: 72 tokens",
            "GEN's context of 68 tokens",
            "vLLM refuses prompt + max_tokens (64 + 8)",
            "hint: raise gen.engine_args.max_model_len to at least 72, or lower benchmark.isl/osl",
        ] {
            assert!(err.contains(part), "{cmd:?}: no `{part}`: {}", r.show());
        }
    }
    assert!(!wsp.exists(), "nothing was launched");
}

/// TensorRT-LLM cuts max_tokens to the room left instead of refusing: with `ignore_eos: false`
/// the benchmark takes the shorter answers, so the run goes ahead, after saying so.
#[test]
fn a_context_that_only_cuts_the_output_runs_with_a_warning() {
    let ws = TempDir::new("ctxcut");
    let spec = CaseSpec {
        name: "ctxcut",
        gen_args: "{max_model_len: 70}",
        concurrency: "[1]",
        extra: "router: {dialect: trtllm}\n",
        ..Default::default()
    };
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        spec.yaml()
            .replace("  warmup: 1\n", "  warmup: 1\n  ignore_eos: false\n"),
    )
    .unwrap();
    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let note = "TensorRT-LLM cuts max_tokens to the 6 tokens left";
    assert!(r.stdout().contains(&format!("  note: the benchmark's largest request (isl 64 + osl 8: 72 tokens) does not fit GEN's context of 70 tokens: {note}")), "{}", r.show());
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stderr().contains("warning: ") && r.stderr().contains(note),
        "{}",
        r.show()
    );
    let dir = only_run(ws.path(), "ctxcut");
    let results = json(&dir.join("results.json"));
    let point = &results["points"][0];
    assert_eq!(point["completed"], 2, "{results}");
    assert_eq!(
        point["total_output_tokens"], 12,
        "6 tokens each, not 8: {results}"
    );
}

/// A context the case cannot state (a `command` engine's own flags): ISL 64 + OSL 8 in 68
/// tokens, SGLang dialect, fails the run at the canary (the sweep's largest request) with the
/// worker's own words, before any point is measured.
#[test]
fn a_context_the_case_cannot_see_fails_at_the_canary_naming_the_worker() {
    let ws = TempDir::new("ctxlen-cmd");
    let sim = |role: &str, more: &str| {
        format!(
            "[\"{{disagg}}\", sim, --role, {role}, --dialect, sglang, --host, \"{{host}}\", \
             --port, \"{{port}}\", --model, \"{{model}}\", --itl, 1ms, --max-model-len, \"68\"{more}]"
        )
    };
    let text = format!(
        "name: ctxlen-cmd\nmodel: {{name: tiny}}\nengine: command\nrouter: {{dialect: sglang}}\n\
         ctx: {{count: 1, engine_args: {{argv: {}}}}}\ngen: {{count: 1, engine_args: {{argv: {}}}}}\n\
         benchmark: {{isl: 64, osl: 8, concurrency: [1, 4], rounds: 2}}\n\
         timeouts: {{worker_startup: 20s, request: 20s, benchmark: 60s, job: 120s, grace: 2s}}\n",
        sim("context", ", --bootstrap-port, \"{bootstrap_port}\""),
        sim("generation", "")
    );
    let case = ws.path().join("c.yaml");
    std::fs::write(&case, text).unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "ctxlen-cmd");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap();
    let refusal = "Requested token count exceeds the model's maximum context length of 68 tokens. \
                   You requested a total of 72 tokens";
    assert!(
        reason.starts_with("the canary request failed")
            && reason.contains("http_400")
            && reason.contains(refusal),
        "{status}"
    );
    assert!(
        r.stdout().contains(refusal),
        "the console says why: {}",
        r.show()
    );
    assert!(!dir.join("benchmark.con1.log").exists(), "no point ran");
    // Nothing measured, and still every report file: results.json says why it has no points,
    // the CSV has its header.
    let results = json(&dir.join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    assert_eq!(results["points"], serde_json::json!([]), "{results}");
    assert_eq!(results["config_name"], "ctxlen-cmd", "{results}");
    let why = results["invalid_reason"].as_str().unwrap();
    assert!(
        why.starts_with("no point was measured: ") && why.contains(refusal),
        "{results}"
    );
    let csv = read(&dir.join("perf_script_test_results.csv"));
    assert_eq!(csv.lines().count(), 1, "{csv}");
    assert!(csv.starts_with("network_name,"), "{csv}");
}

#[test]
fn disagg_run_shows_the_benchmark_as_it_goes() {
    let ws = TempDir::new("progress");
    let case = CaseSpec {
        name: "progress",
        gen_args: "{itl: 20ms}",
        concurrency: "[2]",
        rounds: 20,
        osl: 16,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    // Not a terminal: a line every few seconds, with the point, the counts, req/s and an ETA.
    let lines: Vec<&str> = r
        .out
        .stdout
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.starts_with("disagg: con2 (point 1 of 1): "))
        .collect();
    assert!(!lines.is_empty(), "{}", r.show());
    let l = lines[0];
    assert!(
        l.contains(" of 40 requests, ") && l.contains(" failed, ") && l.contains(" req/s, ETA "),
        "{l}"
    );
}

/// The generation engine exits by itself (`--fail-after-requests`) as the last point ends: the
/// canary, the warmup and 4 measured requests; the 5th served ends it while the 6th streams. Its
/// role then takes a while to leave (the engine left a child that ignores TERM, which the role
/// sweeps), so BENCHMARK, which tolerates the one failed request, writes `done` before the
/// supervisor sees the role exit. The run must still fail on GEN_0's account, and not pass on
/// a perf verdict.
#[test]
fn a_worker_dying_as_the_benchmark_ends_fails_the_run_named_and_no_perf_verdict_hides_it() {
    let ws = TempDir::new("dieatend");
    let header = "network_name,perf_case_name,test_name,perf_metric,metric_type,threshold,absolute_threshold\n";
    // A baseline any run beats: the perf check alone would say PASSED.
    std::fs::write(
        ws.path().join("base.csv"),
        format!("{header}dieatend,dieatend-con1,t,0.001,SEQ_THROUGHPUT,-0.1,0\n"),
    )
    .unwrap();
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        r#"name: dieatend
model: {name: m}
engine: command
hardware: {gpus_per_node: 2}
ctx: {count: 1, engine_args: {argv: ["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}"]}}
gen: {count: 1, engine_args: {argv: [sh, -c, "(trap '' TERM; exec sleep 30) & exec \"$0\" sim --role generation --host \"$1\" --port \"$2\" --itl 5ms --fail-after-requests 5", "{disagg}", "{host}", "{port}"]}}
benchmark: {isl: 32, osl: 100, concurrency: [1], rounds: 4, warmup: 1, max_failure_rate: 0.5}
timeouts: {worker_startup: 20s, request: 20s, benchmark: 60s, job: 120s, grace: 4s}
perf: {baseline: base.csv}
"#,
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "dieatend");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["state"], "failed", "{status}");
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    // Either BENCHMARK saw GEN_0's account within its wait and did not record the point its
    // death cut short (then it had no point: "GEN_0 failed: ..."), or it wrote `done` first,
    // and the supervisor's verdict replaced it ("... BENCHMARK had finished"): GEN_0's either way.
    assert!(
        reason.starts_with("GEN_0 ") && reason.contains("its engine exited with status 1"),
        "{status}"
    );
    let outcome = json(&dir.join("outcome.json"));
    assert_eq!(outcome["result"]["role"], "GEN_0", "{outcome}");
    let g0 = outcome["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "GEN_0")
        .unwrap();
    assert!(g0["failure"].is_string(), "{outcome}");
    let cases = junit_cases(&dir.join("results.xml"));
    let stayed_up = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
    assert!(
        stayed_up.1.as_deref().unwrap_or("").starts_with("GEN_0 "),
        "{cases:?}"
    );
    assert!(
        read(&dir.join("perf_check.txt")).contains("not run"),
        "the perf check does not speak for a failed run"
    );
    // The child that ignored TERM is why GEN_0 took its time to leave: its log says so.
    let log = read(&dir.join("gen_server_0.log"));
    assert!(
        log.contains("process(es) still running 3s after SIGTERM (pid ")
            && log.contains("): sending SIGKILL"),
        "{log}"
    );
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
    assert!(r.stdout().contains("FAILED: GEN_0 "), "{}", r.show());
    // A failed run is not a passed one for --resume.
    let again = run(&case, ws.path(), &["--resume"], &[]);
    assert_eq!(again.code(), 1, "{}", again.show());
    assert_eq!(
        runs(ws.path(), "dieatend").len(),
        2,
        "--resume ran it again"
    );
    assert_nothing_left(&dir);
}

/// Both generation engines crash at the same moment (once the router is up): each gets its
/// failure in outcome.json and results.xml, and the first seen stays the root cause.
#[test]
fn two_workers_dying_at_once_are_both_reported_the_first_is_the_root_cause() {
    let ws = TempDir::new("twodie");
    let case = ws.path().join("c.yaml");
    let crash = r#"\"$0\" sim --role generation --host \"$1\" --port \"$2\" & until [ -e \"$DISAGG_RUN_DIR/rendezvous/DISAGG_SERVER.json\" ]; do sleep 0.02; done; kill -SEGV $$"#;
    std::fs::write(
        &case,
        format!(
            "name: twodie\nmodel: {{name: m}}\nengine: command\nhardware: {{gpus_per_node: 4}}\n\
             ctx: {{count: 1, engine_args: {{argv: [\"{{disagg}}\", sim, --role, context, --host, \"{{host}}\", --port, \"{{port}}\"]}}}}\n\
             gen: {{count: 2, engine_args: {{argv: [sh, -c, \"{crash}\", \"{{disagg}}\", \"{{host}}\", \"{{port}}\"]}}}}\n\
             benchmark: {{isl: 32, osl: 16, concurrency: [1], rounds: 50}}\n\
             timeouts: {{worker_startup: 20s, request: 10s, benchmark: 60s, job: 2m, grace: 2s}}\n"
        ),
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "twodie");
    let outcome = json(&dir.join("outcome.json"));
    let root = outcome["result"]["role"].as_str().unwrap().to_string();
    assert!(root == "GEN_0" || root == "GEN_1", "{outcome}");
    for g in ["GEN_0", "GEN_1"] {
        let role = outcome["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == g)
            .unwrap();
        let why = role["failure"].as_str().unwrap_or_default();
        assert!(
            why.starts_with(&format!(
                "{g} exited with status 1: its engine was killed by signal 11 (SIGSEGV)"
            )),
            "{g}: {outcome}"
        );
    }
    let cases = junit_cases(&dir.join("results.xml"));
    for g in ["GEN_0", "GEN_1"] {
        let c = cases
            .iter()
            .find(|c| c.0 == format!("{g} stayed up"))
            .unwrap();
        assert!(c.1.is_some(), "{g}: {cases:?}");
    }
    let ctx = cases.iter().find(|c| c.0 == "CTX_0 stayed up").unwrap();
    assert!(ctx.1.is_none(), "{cases:?}");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], root.as_str(), "{status}");
    assert!(r.elapsed < Duration::from_secs(30), "{}", r.show());
    assert_nothing_left(&dir);
}

/// A generation worker that answers /health but fails its requests (they hang, it answers 500,
/// its stream is cut) is named as the root cause with what happened, not BENCHMARK: the router
/// knows which worker each request failed at (its /workers census, kept by BENCHMARK in
/// rendezvous/census.json as it fails), and its own request deadline, shorter than the
/// benchmark's, ends a stuck request first with an answer naming the worker.
#[test]
fn a_worker_answering_health_but_failing_its_requests_is_named_not_the_benchmark() {
    for (what, gen_args, says) in [
        (
            "hangs",
            "{kv_transfer_delay: 10m}",
            "did not answer within the request deadline (4s)",
        ),
        (
            "answers 500",
            "{error_on_request: [1, 2, 3, 4, 5, 6, 7, 8]}",
            "failed with HTTP 500 Internal Server Error: scripted failure",
        ),
        (
            "cuts its stream",
            "{drop_stream_on_request: [4], drop_after_tokens: 2}",
            "failed mid-response",
        ),
    ] {
        let ws = TempDir::new("stuck");
        let case = CaseSpec {
            name: "stuck",
            gen_args,
            concurrency: "[2]",
            rounds: 2,
            osl: 16,
            timeouts: "{worker_startup: 20s, request: 4s, benchmark: 60s, job: 120s, grace: 2s}",
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
        let show = format!("{what}: {}", r.show());
        assert_eq!(r.code(), 1, "{show}");
        // Within the benchmark's own request timeout and the time to report, not at a deadline.
        assert!(r.elapsed < Duration::from_secs(20), "{show}");
        let dir = only_run(ws.path(), "stuck");
        let status = json(&dir.join("rendezvous/status.json"));
        assert_eq!(status["role"], "GEN_0", "{what}: {status}");
        let reason = status["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("GEN_0 (http://")
                && reason.contains(") answers /health, but failed "),
            "{what}: {reason}"
        );
        assert!(
            reason.contains(
                "request(s) DISAGG_SERVER sent it; the last: generation worker http://127.0.0.1:"
            ),
            "{what}: {reason}"
        );
        assert!(reason.contains(says), "{what}: {reason}");
        // The benchmark's own account follows, as what came of it.
        assert!(reason.contains("; then "), "{what}: {reason}");
        let cases = junit_cases(&dir.join("results.xml"));
        let g0 = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
        assert!(
            g0.1.as_deref().unwrap_or("").starts_with("GEN_0 (http://"),
            "{what}: {cases:?}"
        );
        assert!(r.stdout().contains("FAILED: GEN_0 (http://"), "{show}");
        // The census BENCHMARK kept, with the router's per-worker facts.
        let census = json(&dir.join("rendezvous/census.json"));
        let decode = &census["routers"][0][1]["decode"]["workers"][0];
        assert!(decode["errors"].as_u64().unwrap() >= 1, "{what}: {census}");
        assert!(
            decode["last_error"].as_str().unwrap().contains(says),
            "{what}: {census}"
        );
        // triage starts from the same root cause.
        let t = disagg(&["triage", dir.to_str().unwrap()], &[]);
        assert!(
            t.stdout().contains(".json: GEN_0 (http://"),
            "{what}: {}",
            t.show()
        );
        assert_nothing_left(&dir);
    }
}

/// `disagg router` started as `router.kind: command`: a router the harness cannot ask.
const COMMAND_ROUTER: &str =
    "router: {kind: command, argv: [\"{disagg}\", router, --config, \"{server_config}\"]}\n";

/// What a run whose router is not ours says of a worker found by probing it, everywhere the
/// root cause is reported: the console, status.json, outcome.json, results.xml, triage.
fn assert_probed_worker_is_the_root_cause(r: &Ran, dir: &Path, what: &str, says: &str) {
    let show = format!("{what}: {}", r.show());
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{show}\n{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("GEN_0 (http://")
            && reason.contains(") answers /health, but a 1-token request sent to it directly "),
        "{what}: {reason}"
    );
    assert!(reason.contains(says), "{what}: {reason}");
    assert!(
        reason.contains("(the router is not disagg's own, so each worker was probed); then "),
        "{what}: the benchmark's own account follows: {reason}"
    );
    let outcome = json(&dir.join("outcome.json"));
    assert_eq!(outcome["result"]["role"], "GEN_0", "{what}: {outcome}");
    // A worker that gave no answer hung: the run timed out there, however it was found (at
    // the benchmark deadline, by a stall, by the benchmark's failure); one that erred did not.
    assert_eq!(
        outcome["result"]["timeout"],
        says.contains("got no answer"),
        "{what}: {outcome}"
    );
    let role = |name: &str| {
        outcome["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == name)
            .unwrap()
            .clone()
    };
    assert!(
        role("GEN_0")["failure"].as_str().unwrap().contains(says),
        "{what}: {outcome}"
    );
    assert!(role("CTX_0")["failure"].is_null(), "{what}: {outcome}");
    let cases = junit_cases(&dir.join("results.xml"));
    let stayed_up = |name: &str| {
        cases
            .iter()
            .find(|c| c.0 == format!("{name} stayed up"))
            .unwrap()
            .1
            .clone()
    };
    let g0 = stayed_up("GEN_0").unwrap_or_default();
    assert!(
        g0.starts_with("GEN_0 (http://") && g0.contains(says),
        "{what}: {cases:?}"
    );
    assert_eq!(stayed_up("CTX_0"), None, "{what}: {cases:?}");
    assert!(r.stdout().contains("FAILED: GEN_0 (http://"), "{show}");
    // The probes, kept: the healthy context worker answered its context_only request.
    let probes = json(&dir.join("rendezvous/probes.json"));
    let ctx = probes["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "CTX_0")
        .unwrap()
        .clone();
    assert_eq!(ctx["answer"], "ok", "{what}: {probes}");
    assert_eq!(
        ctx["request"]["disaggregated_params"]["request_type"], "context_only",
        "{probes}"
    );
    // The sim plays TensorRT-LLM 1.3 on /version: it gets an id, as that version's own
    // disaggregated server sends one.
    assert!(
        ctx["request"]["disaggregated_params"]["disagg_request_id"]
            .as_u64()
            .is_some_and(|id| id >= 1 << 40),
        "{probes}"
    );
    assert!(!dir.join("rendezvous/census.json").exists());
    let t = disagg(&["triage", dir.to_str().unwrap()], &[]);
    assert!(
        t.stdout().contains(".json: GEN_0 (http://"),
        "{what}: {}",
        t.show()
    );
    assert_nothing_left(dir);
}

/// With a router that is not ours (`router.kind: command` here; TensorRT-LLM's own
/// `trtllm-serve disaggregated` as `router.kind: engine` alike), nobody can ask it which worker
/// the failing requests were on: BENCHMARK asks each worker directly, before it writes its
/// failure, with one 1-token request, and a worker that gives no answer within 5 s, or answers
/// an error, is the root cause, not BENCHMARK.
#[test]
fn with_a_router_not_ours_a_worker_that_hangs_or_errs_is_found_by_probing_it() {
    let errors: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
    let errors = format!("{{error_on_request: [{}]}}", errors.join(", "));
    for (what, gen_args, says) in [
        (
            "hangs",
            "{stall_after_requests: 2}".to_string(),
            "got no answer in 5s",
        ),
        (
            "answers 500",
            errors,
            "got HTTP 500 Internal Server Error: {",
        ),
    ] {
        let ws = TempDir::new("probe-cmd");
        let case = CaseSpec {
            name: "probe-cmd",
            gen_args: &gen_args,
            concurrency: "[2]",
            rounds: 2,
            timeouts: "{worker_startup: 20s, request: 4s, benchmark: 60s, job: 120s, grace: 2s}",
            extra: COMMAND_ROUTER,
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
        assert_eq!(r.code(), 1, "{what}: {}", r.show());
        // The requests' own timeout, the probe's 5 s and the time to report: not a deadline.
        assert!(r.elapsed < Duration::from_secs(45), "{what}: {}", r.show());
        let dir = only_run(ws.path(), "probe-cmd");
        assert_probed_worker_is_the_root_cause(&r, &dir, what, says);
        if what == "answers 500" {
            let status = json(&dir.join("rendezvous/status.json"));
            assert!(
                status["reason"]
                    .as_str()
                    .unwrap()
                    .contains("scripted failure"),
                "the first bytes of the worker's answer are quoted: {status}"
            );
        }
    }
}

/// Three routers not ours, of which the second answers `/health` (and the canary) but hangs
/// every request after: nobody's census to ask, and every worker answers when probed, but each
/// failed request went through that replica (`url_index` in bench/requests.jsonl) while those
/// through the others succeeded: DISAGG_SERVER_1 is the root cause, not BENCHMARK.
#[test]
fn with_routers_not_ours_the_replica_every_failed_request_went_through_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TempDir::new("replica-hang");
    let script = ws.path().join("router.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# $1: disagg, $2: this replica's server config\ncase \"$2\" in\n  \
         *server_config_1.yaml)\n    port=$(sed -n 's/^port: *//p' \"$2\")\n    \
         exec \"$1\" sim --role both --host 127.0.0.1 --port \"$port\" --stall-after-requests 1 ;;\n  \
         *) exec \"$1\" router --config \"$2\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let case = CaseSpec {
        name: "replica-hang",
        concurrency: "[3]",
        rounds: 3,
        timeouts: "{worker_startup: 20s, request: 3s, benchmark: 60s, job: 120s, grace: 2s}",
        extra: &format!(
            "router: {{kind: command, replicas: 3, argv: [\"{}\", \"{{disagg}}\", \"{{server_config}}\"]}}\n",
            script.display()
        ),
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "replica-hang");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "DISAGG_SERVER_1", "{}\n{status}", r.show());
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("DISAGG_SERVER_1 failed ")
            && reason.contains("request(s) sent through it (timeout: ")
            && reason.contains("sent through the other replicas all succeeded"),
        "{reason}"
    );
    let stayed_up = |name: &str| stayed_up_failure(&dir, name);
    assert!(
        stayed_up("DISAGG_SERVER_1").is_some_and(|f| f.starts_with("DISAGG_SERVER_1 failed ")),
        "{reason}"
    );
    assert_eq!(stayed_up("DISAGG_SERVER_0"), None, "{reason}");
    assert_eq!(stayed_up("DISAGG_SERVER_2"), None, "{reason}");
    assert_nothing_left(&dir);
}

/// `timeouts.stall` with a router not ours: nobody's census to read, but the benchmark itself
/// fails a stream that has had no byte for that long (`stalled`), the point stops at its
/// failure budget, and the workers are probed: the hung one is named in seconds, not after the
/// requests' own timeout (50 s here).
#[test]
fn with_a_router_not_ours_a_hung_worker_is_named_within_timeouts_stall() {
    let ws = TempDir::new("probe-stall");
    let case = CaseSpec {
        name: "probe-stall",
        gen_args: "{stall_after_requests: 2}",
        concurrency: "[2]",
        rounds: 5,
        timeouts: "{worker_startup: 20s, request: 50s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 3s}",
        extra: COMMAND_ROUTER,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(40), "{}", r.show());
    let dir = only_run(ws.path(), "probe-stall");
    assert_probed_worker_is_the_root_cause(&r, &dir, "stall", "got no answer in 5s");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("stalled: 2") && reason.contains("; stopped after 2 of 10 requests"),
        "{reason}"
    );
}

/// A generation worker that freezes mid-stream (and holds every request after), with no
/// `timeouts.stall`: the router cuts the frozen stream at the request deadline and says so in
/// an error event (a 504, not a broken connection), so the point stops after that one wave
/// instead of sending another to wait as long; and the worker, charged with nothing but
/// deadlines, is a TIMEOUT, not a FAILURE.
#[test]
fn a_worker_frozen_mid_stream_costs_one_request_deadline_and_is_a_timeout() {
    let ws = TempDir::new("frozen");
    let case = CaseSpec {
        name: "frozen",
        gen_args: "{stall_after_requests: 3, itl: 20ms}",
        concurrency: "[2]",
        rounds: 4,
        osl: 40,
        // Output lengths apart (20 to 60 tokens), so the stall that the first request of the
        // wave to finish sets finds the other mid-stream, many chunks from its end: with equal
        // lengths the two ended 0.3 ms apart, and on a loaded machine the other had finished
        // too, and no stream froze mid-way.
        benchmark_extra: "  range_ratio: 0.5\n",
        timeouts: "{worker_startup: 20s, request: 4s, benchmark: 60s, job: 120s, grace: 2s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "frozen");
    let outcome = json(&dir.join("outcome.json"));
    assert_eq!(outcome["result"]["role"], "GEN_0", "{outcome}");
    assert_eq!(outcome["result"]["timeout"], true, "{outcome}");
    let xml = read(&dir.join("results.xml"));
    let gen0 = xml
        .split("<testcase ")
        .find(|t| t.starts_with("name=\"GEN_0 stayed up\""))
        .unwrap();
    assert!(gen0.contains("type=\"TIMEOUT\""), "{gen0}");
    // results.json, read alone, gives the run's root cause, not only the benchmark's account.
    let results = json(&dir.join("results.json"));
    assert!(
        results["invalid_reason"]
            .as_str()
            .unwrap()
            .starts_with("the run failed: GEN_0 "),
        "{results}"
    );
    // The frozen stream is a 504 (the router's deadline), not a cut connection, and the point
    // ends within one deadline of its last send (a second wave would end at 8 s and more).
    let requests = read(&dir.join("bench/requests.jsonl"));
    assert!(!requests.contains("stream_cut"), "{requests}");
    // The stream that froze keeps the chunks it had sent: where it stopped shows.
    assert!(
        requests
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|r| r["error"] == "http_504"
                && r["chunk_ns"].as_array().is_some_and(|c| !c.is_empty())),
        "{requests}"
    );
    let last_end = requests
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r["end_ns"].as_u64())
        .max()
        .unwrap();
    assert!(
        Duration::from_nanos(last_end) < Duration::from_secs(7),
        "the point's last request ended at {:?}: {requests}",
        Duration::from_nanos(last_end)
    );
}

/// A router not ours that answers `/health` (and the canary) but holds every request after,
/// while every worker answers the 1-token request sent to it directly: the router is named,
/// with the workers' answers as its evidence, not BENCHMARK, which only waited.
#[test]
fn with_a_router_not_ours_that_holds_the_requests_the_router_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TempDir::new("router-held");
    let script = ws.path().join("router.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# $1: disagg, $2: the server config\nport=$(sed -n 's/^port: *//p' \"$2\")\n\
         exec \"$1\" sim --role both --host 127.0.0.1 --port \"$port\" --stall-after-requests 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let case = CaseSpec {
        name: "router-held",
        concurrency: "[2]",
        timeouts: "{worker_startup: 20s, request: 50s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 3s}",
        extra: &format!(
            "router: {{kind: command, argv: [\"{}\", \"{{disagg}}\", \"{{server_config}}\"]}}\n",
            script.display()
        ),
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(40), "{}", r.show());
    let dir = only_run(ws.path(), "router-held");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "DISAGG_SERVER", "{}\n{status}", r.show());
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("DISAGG_SERVER (http://127.0.0.1:")
            && reason.contains(
                "answers /health, but a 1-token request sent through it got no answer in 5s, \
                 while each worker answered one sent to it directly within "
            )
            && reason.contains("; then concurrency 2: 2 of 2 requests failed"),
        "{reason}"
    );
    assert_eq!(
        json(&dir.join("outcome.json"))["result"]["timeout"],
        true,
        "a router holding the requests is a hang"
    );
    let probes = json(&dir.join("rendezvous/probes.json"));
    assert_eq!(probes["routers"][0]["answer"], "none", "{probes}");
    assert!(
        probes["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["answer"] == "ok"),
        "{probes}"
    );
    assert!(
        stayed_up_failure(&dir, "DISAGG_SERVER").is_some_and(|f| f.starts_with("DISAGG_SERVER (")),
        "{reason}"
    );
    assert_eq!(stayed_up_failure(&dir, "GEN_0"), None, "{reason}");
    assert_nothing_left(&dir);
}

/// The case `disagg import trtllm` writes: trtllm workers behind TensorRT-LLM's own
/// disaggregated server (`router.kind: engine`). On the PATH, a `trtllm-serve` stand-in: the
/// sim at the worker's argv (the generation worker with `gen_faults`), `disagg router` for
/// `trtllm-serve disaggregated -c FILE`.
fn trtllm_engine_router_case(dir: &Path, name: &str, gen_faults: &str) -> (PathBuf, String) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.join("model")).unwrap();
    let serve = bin.join("trtllm-serve");
    std::fs::write(
        &serve,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = disaggregated ]; then exec '{DISAGG}' router --config \"$3\"; fi\n\
             case \"$*\" in *gen_config.yaml*) exec '{DISAGG}' sim --itl 1ms {gen_faults} -- trtllm-serve \"$@\" ;; esac\n\
             exec '{DISAGG}' sim --itl 1ms -- trtllm-serve \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o755)).unwrap();
    let case = dir.join("c.yaml");
    std::fs::write(
        &case,
        format!(
            "name: {name}\nmodel: {{name: tiny, path: {model}}}\nengine: trtllm\n\
             hardware: {{gpus_per_node: 2}}\n\
             ctx: {{count: 1, engine_args: {{max_batch_size: 8}}}}\n\
             gen: {{count: 1, engine_args: {{max_batch_size: 8}}}}\n\
             router: {{kind: engine}}\n\
             benchmark: {{isl: 32, osl: 8, concurrency: [2], rounds: 2, warmup: 1}}\n\
             timeouts: {{worker_startup: 20s, request: 4s, benchmark: 60s, job: 120s, grace: 2s}}\n",
            model = dir.join("model").display()
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (case, path)
}

/// The defect as first seen: a case from `disagg import trtllm` (TensorRT-LLM's own
/// disaggregated server as the router) whose generation worker hangs was blamed on BENCHMARK.
#[test]
fn behind_trtllms_own_disaggregated_server_a_hung_worker_is_named() {
    let ws = TempDir::new("probe-engine");
    let (case, path) =
        trtllm_engine_router_case(ws.path(), "probe-engine", "--stall-after-requests 2");
    let r = run(
        &case,
        ws.path(),
        &[],
        &[("SKIP_PERF_CHECK", "true"), ("PATH", &path)],
    );
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "probe-engine");
    let plan = json(&dir.join("plan.json"));
    let router = plan["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "DISAGG_SERVER")
        .unwrap()
        .clone();
    assert_eq!(router["engine"]["argv"][1], "disaggregated", "{router}");
    assert_probed_worker_is_the_root_cause(&r, &dir, "engine router", "got no answer in 5s");
}

/// The benchmark deadline passes while its requests hang on a worker (each waits out its
/// request timeout, and there are many): the supervisor probes every worker itself, before it
/// writes the verdict, and names the hung one, the deadline what came of it.
#[test]
fn with_a_router_not_ours_a_hung_worker_at_the_benchmark_deadline_is_named() {
    let ws = TempDir::new("probe-deadline");
    let case = CaseSpec {
        name: "probe-deadline",
        gen_args: "{stall_after_requests: 2}",
        concurrency: "[2]",
        rounds: 20,
        timeouts: "{worker_startup: 20s, request: 4s, benchmark: 10s, job: 120s, grace: 2s}",
        // Every round goes, each waiting out its timeout: the deadline comes first.
        benchmark_extra: "  keep_going: true\n",
        extra: COMMAND_ROUTER,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "probe-deadline");
    let status = json(&dir.join("rendezvous/status.json"));
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .ends_with("; then BENCHMARK did not finish within the benchmark deadline (10s)"),
        "{status}"
    );
    assert_probed_worker_is_the_root_cause(&r, &dir, "deadline", "got no answer in 5s");
}

/// The same behind our own router: the benchmark deadline passes while its requests hang on a
/// worker (each waits out its request timeout, and there are many). The supervisor asks the
/// router's census before it writes the verdict (the router is still up), and names the worker
/// the requests are stuck at, the deadline what came of it.
#[test]
fn a_hung_worker_at_the_benchmark_deadline_is_named_from_our_routers_census() {
    let ws = TempDir::new("census-deadline");
    let case = CaseSpec {
        name: "census-deadline",
        gen_args: "{stall_after_requests: 2}",
        concurrency: "[2]",
        rounds: 20,
        timeouts: "{worker_startup: 20s, request: 4s, benchmark: 10s, job: 120s, grace: 2s}",
        // Every round goes, each waiting out its timeout: the deadline comes first.
        benchmark_extra: "  keep_going: true\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(40), "{}", r.show());
    let dir = only_run(ws.path(), "census-deadline");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("GEN_0 (http://") && reason.contains(") answers /health, but "),
        "{reason}"
    );
    assert!(
        reason.ends_with("; then BENCHMARK did not finish within the benchmark deadline (10s)"),
        "{reason}"
    );
    let cases = junit_cases(&dir.join("results.xml"));
    let g0 = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
    assert!(
        g0.1.as_deref().unwrap_or("").starts_with("GEN_0 (http://"),
        "{cases:?}"
    );
    let ctx = cases.iter().find(|c| c.0 == "CTX_0 stayed up").unwrap();
    assert_eq!(ctx.1, None, "{cases:?}");
    assert!(
        r.stdout().contains("FAILED: GEN_0 (http://"),
        "{}",
        r.show()
    );
    assert_nothing_left(&dir);
}

/// `timeouts.stall`: a worker that answers /health but hangs its requests fails the run once
/// our router's census shows its requests in flight with no byte of an answer for that long,
/// named as the root cause, long before the requests' own timeout (50 s here).
#[test]
fn a_worker_that_hangs_its_requests_fails_the_run_within_timeouts_stall() {
    let ws = TempDir::new("stall");
    let case = CaseSpec {
        name: "stall",
        gen_args: "{stall_after_requests: 2}",
        concurrency: "[2]",
        rounds: 5,
        timeouts: "{worker_startup: 20s, request: 50s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 3s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(40), "{}", r.show());
    let dir = only_run(ws.path(), "stall");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("GEN_0 (http://")
            && reason.contains("request(s) DISAGG_SERVER has in flight on it, nor sent a byte")
            && reason.ends_with(": its engine hangs its requests; timeouts.stall is 3s"),
        "{reason}"
    );
    let cases = junit_cases(&dir.join("results.xml"));
    let g0 = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
    assert!(
        g0.1.as_deref().unwrap_or("").starts_with("GEN_0 (http://"),
        "{cases:?}"
    );
    assert_nothing_left(&dir);
}

/// A context worker that freezes whole (its /health too) with `stall` shorter than the probes'
/// 10 s: the generation worker waiting on its KV stalls first, but the frozen CTX_0 is named,
/// not GEN_0 (QA saw GEN_0 blamed for any `stall` under 10 s).
#[test]
fn a_frozen_context_worker_is_named_not_the_decode_waiting_on_it() {
    let ws = TempDir::new("ctx-frozen");
    let case = CaseSpec {
        name: "ctx-frozen",
        ctx_args: "{hang_after_requests: 3}",
        concurrency: "[1]",
        rounds: 5,
        timeouts: "{worker_startup: 20s, request: 50s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 4s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(40), "{}", r.show());
    let dir = only_run(ws.path(), "ctx-frozen");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "CTX_0", "{status}");
    assert!(stayed_up_failure(&dir, "CTX_0").is_some(), "{status}");
    assert_nothing_left(&dir);
}

/// SGLang's legs run together, and a decode waits for its prefill's KV: a hung prefill stalls
/// both, and the prefill (CTX_0) is named, the decode after it; QA saw GEN_0 named in 2 of 4
/// runs when the longest stall decided.
#[test]
fn with_sglang_a_hung_prefill_is_named_before_the_decode_waiting_on_it() {
    let ws = TempDir::new("stall-sgl");
    let case = CaseSpec {
        name: "stall-sgl",
        ctx_args: "{stall_after_requests: 3}",
        concurrency: "[1, 4]",
        timeouts: "{worker_startup: 20s, request: 30s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 3s}",
        extra: "router: {dialect: sglang}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "stall-sgl");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "CTX_0", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .ends_with("timeouts.stall is 3s"),
        "{status}"
    );
}

/// A worker whose requests hang and whose /health stopped answering too is hung as a whole:
/// named as such, not as one that "answers /health" (the stall limit, 3 s, comes before
/// `timeouts.unresponsive`, 10 s).
#[test]
fn a_stalled_worker_that_stopped_answering_health_is_said_to_have() {
    let ws = TempDir::new("stall-health");
    let case = CaseSpec {
        name: "stall-health",
        gen_args: "{hang_after_requests: 3}",
        concurrency: "[2]",
        timeouts: "{worker_startup: 20s, request: 30s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 3s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "stall-health");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("GEN_0 stopped answering http://")
            && !reason.contains("answers /health"),
        "{reason}"
    );
}

/// A stream that is slow but flowing is no stall: each request here takes about 3 s, with a
/// token every 300 ms, and `timeouts.stall` is 2 s.
#[test]
fn a_slow_stream_is_no_stall() {
    let ws = TempDir::new("slow-stream");
    let case = CaseSpec {
        name: "slow-stream",
        gen_args: "{itl: 300ms}",
        concurrency: "[1]",
        rounds: 1,
        osl: 10,
        timeouts: "{worker_startup: 20s, request: 50s, benchmark: 60s, job: 120s, grace: 2s, \
                   stall: 2s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "slow-stream");
    let plan = json(&dir.join("plan.json"));
    assert_eq!(plan["deadlines"]["stall"], "2s", "{plan}");
    assert_nothing_left(&dir);
}

/// Every worker answers its probe: the benchmark failed for a reason of its own (here the
/// output is one token despite ignore_eos), and it stays the root cause, saying the workers
/// were asked. A healthy run behind such a router probes nobody.
#[test]
fn with_a_router_not_ours_workers_that_answer_their_probe_are_not_blamed() {
    let ws = TempDir::new("probe-fine");
    let case = CaseSpec {
        name: "probe-fine",
        // A TensorRT-LLM 1.0 context worker refuses a disagg_request_id: its probe has none.
        ctx_args: "{trtllm_version: \"1.0.0\"}",
        gen_args: "{eos_at: 0, disregard_ignore_eos: true}",
        concurrency: "[2]",
        extra: COMMAND_ROUTER,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "probe-fine");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "BENCHMARK", "{status}");
    assert!(
        status["reason"].as_str().unwrap().ends_with(
            "(the benchmark's account: the router is not disagg's own, and each worker \
             answered a 1-token request sent to it directly, and the router one sent through \
             it, so where the requests failed is not known)"
        ),
        "{status}"
    );
    let probes = json(&dir.join("rendezvous/probes.json"));
    assert!(
        probes["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["answer"] == "ok"),
        "{probes}"
    );
    assert!(
        probes["workers"][0]["request"]["disaggregated_params"]
            .get("disagg_request_id")
            .is_none(),
        "{probes}"
    );
    let cases = junit_cases(&dir.join("results.xml"));
    assert!(
        cases
            .iter()
            .filter(|c| c.0 == "CTX_0 stayed up" || c.0 == "GEN_0 stayed up")
            .all(|c| c.1.is_none()),
        "{cases:?}"
    );
    assert_nothing_left(&dir);

    let ws = TempDir::new("probe-healthy");
    let case = CaseSpec {
        name: "probe-healthy",
        concurrency: "[2]",
        extra: COMMAND_ROUTER,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "probe-healthy");
    assert!(!dir.join("rendezvous/probes.json").exists());
    assert!(!r.stdout().contains("probing"), "{}", r.show());
    assert_nothing_left(&dir);
}

/// A GEN engine whose log fills the run folder's filesystem mid-run: the run stops at once,
/// naming the disk and the file that filled it, and still writes its verdict (the space set
/// aside for the reports is given back to them): outcome.json, results.xml and exit_code, and
/// results.json made invalid. It ran on for the rest of the load, then wrote none of them, and
/// triage read it as still running. Needs root (it mounts a tmpfs): skipped elsewhere, unless
/// CI says it must run.
#[test]
fn a_run_whose_logs_fill_the_disk_stops_names_the_file_and_still_writes_its_verdict() {
    let ws = TempDir::new("diskfull");
    let mnt = ws.path().join("small");
    let Some(_mounted) = Tmpfs::mount(&mnt, "4m") else {
        assert!(
            !ci_requires_tools(),
            "cannot mount a tmpfs (CI runs as root and must)"
        );
        eprintln!("DISK-FULL TEST DID NOT RUN: cannot mount a tmpfs (not root)");
        return;
    };
    let case = ws.path().join("c.yaml");
    // After a second, GEN_0's engine writes 64 KiB to its log every 20 ms.
    std::fs::write(
        &case,
        r#"name: diskfull
model: {name: m}
engine: command
hardware: {gpus_per_node: 2}
ctx: {count: 1, engine_args: {argv: ["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}"]}}
gen: {count: 1, engine_args: {argv: [sh, -c, "(sleep 1; while :; do head -c 65536 /dev/zero | tr '\\0' x >&2; sleep 0.02; done) & exec \"$0\" sim --role generation --host \"$1\" --port \"$2\" --itl 20ms", "{disagg}", "{host}", "{port}"]}}
benchmark: {isl: 32, osl: 50, concurrency: [2], rounds: 30}
timeouts: {worker_startup: 20s, request: 20s, benchmark: 60s, job: 120s, grace: 2s}
"#,
    )
    .unwrap();
    let r = run(&case, &mnt, &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(
        r.elapsed < Duration::from_secs(30),
        "stopped when the disk filled, not at the end of the load: {:?}",
        r.elapsed
    );
    let dir = only_run(&mnt, "diskfull");
    let outcome = json(&dir.join("outcome.json"));
    let reason = outcome["result"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the run folder's filesystem is full")
            && reason.contains("its largest files: gen_server_0.log"),
        "{outcome}"
    );
    assert_eq!(read(&dir.join("exit_code")).trim(), "1");
    assert!(read(&dir.join("results.xml")).contains("filesystem is full"));
    let results = json(&dir.join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    assert!(
        !dir.join(".disk_reserve").exists(),
        "the reserve is given back"
    );
    assert_nothing_left(&dir);
}

/// An engine that says why it is stuck (an NCCL error, behind vLLM's worker prefix) and lives
/// on, never serving: the not-ready failure quotes that line, which a tail of its waiting lines
/// hid, and triage finds it.
#[test]
fn a_stuck_engines_own_error_line_is_quoted_when_it_is_not_ready() {
    let ws = TempDir::new("stuck-nccl");
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        r#"name: stucknccl
model: {name: m}
engine: command
hardware: {gpus_per_node: 2}
ctx: {count: 1, engine_args: {argv: ["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}"]}}
gen: {count: 1, engine_args: {argv: [sh, -c, "echo '(VllmWorkerProcess pid=232) ERROR 12-07 [multiproc.py:1] NCCL error: unhandled system error' >&2; i=0; while [ $i -lt 40 ]; do echo waiting >&2; i=$((i+1)); done; exec sleep 60; echo {port}"]}}
benchmark: {isl: 32, osl: 4, concurrency: [1], rounds: 1}
timeouts: {worker_startup: 3s, request: 20s, benchmark: 60s, job: 120s, grace: 2s}
"#,
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "stucknccl");
    let outcome = json(&dir.join("outcome.json"));
    let reason = outcome["result"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("GEN_0 was not ready within worker_startup")
            && reason.contains("its log's first error (NCCL error, line ")
            && reason.contains("NCCL error: unhandled system error"),
        "{outcome}"
    );
    let t = disagg(&["triage", dir.to_str().unwrap()], &[]);
    assert!(t.stdout().contains("NCCL error"), "{}", t.show());
    assert_nothing_left(&dir);
}

/// A router that may open too few files for the benchmark's concurrency (a hard `ulimit -n`)
/// fails at its start, named, with the limit and what it needs: its requests failed with
/// EMFILE, counted as 503s, and the benchmark was blamed.
#[test]
fn a_router_that_may_open_too_few_files_is_named_at_its_start() {
    let ws = TempDir::new("router-fds");
    let case = CaseSpec {
        name: "fds",
        concurrency: "[64]",
        rounds: 1,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 160 && exec \"$0\" run \"$1\" --workspace \"$2\"",
            DISAGG,
        ])
        .arg(&case)
        .arg(ws.path())
        .env("SKIP_PERF_CHECK", "true")
        .env_remove("WORKSPACE")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    let dir = only_run(ws.path(), "fds");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "DISAGG_SERVER", "{status}");
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("this router may open 160 files")
            && reason.contains("64 requests in flight through it"),
        "{status}"
    );
    assert_nothing_left(&dir);
}
