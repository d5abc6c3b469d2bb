//! `disagg run` end to end, on real processes over loopback: the "Done means" of the spine issue.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn quickstart_passes_and_writes_every_report() {
    let ws = TempDir::new("quickstart");
    let case =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.elapsed < Duration::from_secs(60),
        "quickstart took {:?}",
        r.elapsed
    );
    let dir = only_run(ws.path(), "quickstart");
    for f in [
        "ctx_server_0.log",
        "gen_server_0.log",
        "disagg_server.log",
        "benchmark.log",
        "server_config.yaml",
        "results.json",
        "results.xml",
        "perf_script_test_results.csv",
        "perf_check.txt",
        "case.yaml",
        "plan.json",
        "rendezvous/status.json",
        "summary.md",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    assert!(
        !dir.join("install.log").exists(),
        "no setup, so no install.log"
    );
    // Each also under the name TensorRT-LLM's Slurm scripts give it, as a relative symlink.
    for (alias, file) in [
        ("3_output_CTX_0.log", "ctx_server_0.log"),
        ("3_output_GEN_0.log", "gen_server_0.log"),
        ("4_output_server.log", "disagg_server.log"),
        ("6_bench.log", "benchmark.log"),
        ("concurrency_1/result.json", "../benchmark.con1.json"),
        ("concurrency_8/result.json", "../benchmark.con8.json"),
    ] {
        let link = dir.join(alias);
        assert_eq!(
            std::fs::read_link(&link)
                .map(|p| p.display().to_string())
                .ok()
                .as_deref(),
            Some(file),
            "{alias}"
        );
        assert!(link.is_file(), "{alias} resolves");
    }
    assert_eq!(
        json(&dir.join("concurrency_8/result.json"))["completed"].as_u64(),
        Some(32)
    );
    // The summary table, with the columns, one row per concurrency.
    let out = r.stdout();
    assert!(out.contains("| concurrency | req/s | output tok/s | TTFT p50/p99 (ms) | TPOT p50/p99 (ms) | ITL p50/p99 (ms) | failed |"), "{out}");
    assert!(out.contains("\n| 1 |") && out.contains("\n| 8 |"), "{out}");
    // benchmark_serving's text block and JSON keys.
    let log = read(&dir.join("benchmark.log"));
    assert_eq!(
        log.matches("============ Serving Benchmark Result ============")
            .count(),
        2,
        "{log}"
    );
    let results = json(&dir.join("results.json"));
    let points = results["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (p, c) in points.iter().zip([1u64, 8]) {
        assert_eq!(p["max_concurrency"].as_u64(), Some(c));
        assert_eq!(
            p["completed"].as_u64(),
            Some(c * 4),
            "prompts = concurrency × rounds"
        );
        assert_eq!(p["total_output_tokens"].as_u64(), Some(c * 4 * 32));
        for k in [
            "duration",
            "total_input_tokens",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "user_throughput",
            "mean_ttft_ms",
            "median_ttft_ms",
            "std_ttft_ms",
            "p99_ttft_ms",
            "median_tpot_ms",
            "p99_itl_ms",
            "mean_e2el_ms",
        ] {
            assert!(p.get(k).is_some(), "results.json lacks {k}");
        }
    }
    // server_config.yaml in TRT-LLM's format, pointing at the published workers.
    let cfg = read(&dir.join("server_config.yaml"));
    let ctx = json(&dir.join("rendezvous/CTX_0.json"));
    assert!(
        cfg.contains(&format!(
            "{}:{}",
            ctx["host"].as_str().unwrap(),
            ctx["port"]
        )),
        "{cfg}"
    );
    assert!(cfg.contains("num_instances: 1"), "{cfg}");
    // JUnit: a point per concurrency and a role per "stayed up", all passing; perf skipped (no baseline).
    let cases = junit_cases(&dir.join("results.xml"));
    let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    for n in [
        "con1",
        "con8",
        "CTX_0 stayed up",
        "GEN_0 stayed up",
        "DISAGG_SERVER stayed up",
        "BENCHMARK stayed up",
        "perf check",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(cases.iter().all(|c| c.1.is_none()), "{cases:?}");
    // The CSV has the columns of a baseline, a row per metric and concurrency.
    let csv = read(&dir.join("perf_script_test_results.csv"));
    let header = csv.lines().next().unwrap();
    for col in [
        "network_name",
        "perf_case_name",
        "test_name",
        "perf_metric",
        "metric_type",
        "threshold",
        "absolute_threshold",
    ] {
        assert!(header.split(',').any(|h| h == col), "{header}");
    }
    assert_eq!(csv.lines().count(), 1 + 2 * 16);
    assert!(
        csv.contains("disagg::test_perf_metric_seq_throughput[quickstart-con8],")
            && csv.contains(",SEQ_THROUGHPUT\n")
            && csv.contains(",P99_INTER_TOKEN_TIME\n")
    );
    // The router logs its startup into its role's log.
    let server_log = read(&dir.join("disagg_server.log"));
    assert!(
        server_log.contains("INFO router on 127.0.0.1:") && server_log.contains("dialect trtllm;"),
        "{server_log}"
    );
    // The resolved case re-validates as is.
    let v = disagg(&["validate", dir.join("case.yaml").to_str().unwrap()], &[]);
    assert_eq!(v.code(), 0, "{}", v.show());
    assert_nothing_left(&dir);
}

fn tree_snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn two_cases_two_folders_and_a_rerun_never_touches_the_first() {
    let ws = TempDir::new("folders");
    let a = CaseSpec {
        name: "case-a",
        concurrency: "[2]",
        ..Default::default()
    }
    .write(ws.path(), "a.yaml");
    let b = CaseSpec {
        name: "case-b",
        concurrency: "[2]",
        ..Default::default()
    }
    .write(ws.path(), "b.yaml");
    let r = disagg(
        &[
            "run",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--workspace",
            ws.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .trim_end()
            .ends_with("disagg: 2 runs: 2 passed; exit code 0"),
        "the last line tallies both: {}",
        r.show()
    );
    let first = only_run(ws.path(), "case-a");
    only_run(ws.path(), "case-b");
    let before = tree_snapshot(&first);

    let r = run(&a, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let all = runs(ws.path(), "case-a");
    assert_eq!(all.len(), 2, "{all:?}");
    let newer = all.iter().find(|p| **p != first).unwrap();
    let latest = std::fs::read_link(ws.path().join("disagg_logs/case-a/latest")).unwrap();
    assert_eq!(latest, std::path::PathBuf::from(newer.file_name().unwrap()));
    assert_eq!(
        tree_snapshot(&first),
        before,
        "a file of the first run changed"
    );
}

#[test]
fn a_crashing_generation_worker_fails_the_run_within_seconds_and_is_named() {
    let ws = TempDir::new("crash");
    let case = CaseSpec {
        name: "crash",
        gen_args: "{fail_after_requests: 5, itl: 20ms}",
        concurrency: "[4]",
        rounds: 25,
        osl: 16,
        ..Default::default()
    }
    .write(ws.path(), "crash.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "crash");
    // When GEN_0's engine died: its role wrote its note right after seeing it.
    let note = dir.join("rendezvous/GEN_0.exit.json");
    let crashed = std::fs::metadata(&note)
        .unwrap_or_else(|_| panic!("no {} \n{}", note.display(), r.show()))
        .modified()
        .unwrap();
    let after = r.ended.duration_since(crashed).unwrap_or_default();
    assert!(
        after < Duration::from_secs(5),
        "exited {after:?} after the crash"
    );
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["state"], "failed");
    assert_eq!(status["role"], "GEN_0", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("GEN_0 exited with status 1"),
        "{status}"
    );
    // The benchmark's only point was under way: it did not finish.
    assert!(
        !status["reason"].as_str().unwrap().contains("had finished"),
        "{status}"
    );
    // The point left out still counts its failures where TensorRT-LLM's log parser looks (the
    // last `Total failed requests:`), without a result block or a `done` line for it.
    let log = read(&dir.join("benchmark.log"));
    eprintln!("{log}");
    if log.contains("not recording it") {
        assert!(log.contains("Total failed requests: "), "{log}");
        assert!(!log.contains("Benchmark with concurrency 4 done"), "{log}");
    }
    let cases = junit_cases(&dir.join("results.xml"));
    let gen0 = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
    assert!(gen0.1.as_deref().unwrap().contains("GEN_0"), "{cases:?}");
    let xml = read(&dir.join("results.xml"));
    assert!(
        xml.contains("fail_after_requests=5 reached"),
        "the failure quotes GEN_0's log:\n{xml}"
    );
    assert!(
        cases
            .iter()
            .find(|c| c.0 == "CTX_0 stayed up")
            .unwrap()
            .1
            .is_none(),
        "{cases:?}"
    );
    assert!(
        r.stderr().contains("gen_server_0.log"),
        "the tail of GEN_0's log is shown:\n{}",
        r.stderr()
    );
    assert_nothing_left(&dir);
}

#[test]
fn a_worker_that_never_gets_ready_fails_soon_after_worker_startup() {
    let ws = TempDir::new("never");
    let case = CaseSpec {
        name: "never",
        gen_args: "{never_ready: true}",
        timeouts: "{worker_startup: 3s, request: 10s, benchmark: 30s, job: 60s, grace: 2s}",
        ..Default::default()
    }
    .write(ws.path(), "never.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed >= Duration::from_secs(3), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_secs(9), "took {:?}", r.elapsed);
    let dir = only_run(ws.path(), "never");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("GEN_0 was not ready within worker_startup (3s): its engine's /health never answered 200 (asked: http://127.0.0.1:"),
        "{status}"
    );
    let cases = junit_cases(&dir.join("results.xml"));
    let gen0 = cases.iter().find(|c| c.0 == "GEN_0 stayed up").unwrap();
    assert_eq!(gen0.2.as_deref(), Some("TIMEOUT"), "{cases:?}");
    // outcome.json says the same of the role: its own failure, not that it stayed up.
    let outcome = json(&dir.join("outcome.json"));
    let entry = outcome["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "GEN_0")
        .cloned()
        .unwrap();
    assert!(
        entry["failure"]
            .as_str()
            .is_some_and(|f| f.starts_with("GEN_0 was not ready within worker_startup (3s)")),
        "{outcome}"
    );
    // The benchmark began no point: none is "unfinished".
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("not started: GEN_0 was not ready") && !summary.contains("unfinished"),
        "{summary}"
    );
    assert!(
        r.stdout().contains("FAILED: GEN_0 was not ready"),
        "{}",
        r.show()
    );
    assert_nothing_left(&dir);
}

fn impossible_baseline(dir: &std::path::Path, config: &str) -> std::path::PathBuf {
    let p = dir.join("baseline.csv");
    std::fs::write(
        &p,
        format!(
            "network_name,perf_case_name,test_name,perf_metric,metric_type,threshold,absolute_threshold\n\
             {config},{config}-con2,t,1000000,SEQ_THROUGHPUT,-0.05,0\n\
             {config},{config}-con2,t,100000000,TOKEN_THROUGHPUT,-0.05,0\n"
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_baseline_the_run_cannot_meet_exits_3_unless_skipped() {
    let ws = TempDir::new("perf");
    impossible_baseline(ws.path(), "perf");
    let case = CaseSpec {
        name: "perf",
        concurrency: "[2]",
        extra: "perf: {baseline: baseline.csv}\n",
        ..Default::default()
    }
    .write(ws.path(), "perf.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 3, "{}", r.show());
    let dir = runs(ws.path(), "perf").pop().unwrap();
    let check = read(&dir.join("perf_check.txt"));
    assert!(
        check.starts_with("perf check: REGRESSED (2 of 2 compared metrics regressed)"),
        "{check}"
    );
    assert!(
        check.contains("\ncompared 2 metric(s); 0 baseline row(s) of this config had no value"),
        "every check says how many metrics it compared: {check}"
    );
    assert_jenkins_valid(&dir.join("results.xml"));
    // The run passed and the gate regressed: outcome.json says both, not a bare "passed".
    let outcome: serde_json::Value =
        serde_json::from_str(&read(&dir.join("outcome.json"))).unwrap();
    assert_eq!(outcome["result"]["result"], "passed", "{outcome}");
    assert_eq!(outcome["perf_check"], "regressed", "{outcome}");
    let cases = junit_cases(&dir.join("results.xml"));
    let perf = cases.iter().find(|c| c.0 == "perf check").unwrap();
    assert_eq!(perf.2.as_deref(), Some("PERF_REGRESSION"), "{cases:?}");
    let point = cases.iter().find(|c| c.0 == "con2").unwrap();
    assert_eq!(point.2.as_deref(), Some("PERF_REGRESSION"), "{cases:?}");
    assert!(
        point.1.as_deref().unwrap().contains("SEQ_THROUGHPUT"),
        "the point names what regressed: {cases:?}"
    );
    assert!(
        cases
            .iter()
            .filter(|c| c.0 != "perf check" && c.0 != "con2")
            .all(|c| c.1.is_none()),
        "only the regressed point and the perf check fail: {cases:?}"
    );

    for (how, extra, env) in [
        ("env", vec![], vec![("SKIP_PERF_CHECK", "true")]),
        ("flag", vec!["--skip-perf-check"], vec![]),
    ] {
        let r = run(&case, ws.path(), &extra, &env);
        assert_eq!(r.code(), 0, "{how}: {}", r.show());
        let dir = runs(ws.path(), "perf").pop().unwrap();
        let check = read(&dir.join("perf_check.txt"));
        assert!(check.contains("skipped"), "{how}: {check}");
        let outcome: serde_json::Value =
            serde_json::from_str(&read(&dir.join("outcome.json"))).unwrap();
        assert_eq!(outcome["perf_check"], "skipped", "{how}: {outcome}");
        assert!(
            !check.contains("passed"),
            "{how}: skipped is not passed: {check}"
        );
        let cases = junit_cases(&dir.join("results.xml"));
        let perf = cases.iter().find(|c| c.0 == "perf check").unwrap();
        assert!(
            perf.3 && perf.1.is_none(),
            "{how}: the perf check is reported skipped: {cases:?}"
        );
    }
    // A value it does not understand runs the check, and says so.
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "ture")]);
    assert_eq!(r.code(), 3, "{}", r.show());
    assert_eq!(
        r.stderr()
            .matches("SKIP_PERF_CHECK=\"ture\" is neither true/1/yes nor false/0/no")
            .count(),
        1,
        "{}",
        r.show()
    );
}

#[test]
fn a_run_that_fails_and_regresses_exits_1() {
    let ws = TempDir::new("both");
    impossible_baseline(ws.path(), "both");
    let case = CaseSpec {
        name: "both",
        concurrency: "[2]",
        rounds: 20,
        gen_args: "{fail_after_requests: 4}",
        extra: "perf: {baseline: baseline.csv}\n",
        ..Default::default()
    }
    .write(ws.path(), "both.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(
        r.code(),
        1,
        "a failure wins over the perf verdict: {}",
        r.show()
    );
    let dir = only_run(ws.path(), "both");
    assert!(
        read(&dir.join("perf_check.txt")).contains("not run"),
        "no perf verdict on a failed run"
    );
}

#[test]
fn interrupting_a_run_stops_everything_and_exits_130() {
    let ws = TempDir::new("sigint");
    let case = CaseSpec {
        name: "sigint",
        gen_args: "{itl: 50ms}",
        concurrency: "[2]",
        rounds: 50,
        osl: 64,
        ..Default::default()
    }
    .write(ws.path(), "sigint.yaml");
    let child = std::process::Command::new(DISAGG)
        .args([
            "run",
            case.to_str().unwrap(),
            "--workspace",
            ws.path().to_str().unwrap(),
        ])
        .env_remove("SKIP_PERF_CHECK")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the router is published, so every role is up.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let server_file = loop {
        if let Some(dir) = runs(ws.path(), "sigint").pop() {
            let f = dir.join("rendezvous/DISAGG_SERVER.json");
            if f.is_file() {
                break dir;
            }
        }
        assert!(
            std::time::Instant::now() < until,
            "the router never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        start.elapsed()
    );
    assert!(
        server_file.join("results.xml").is_file(),
        "a report is written even when interrupted"
    );
    assert_eq!(
        json(&server_file.join("rendezvous/status.json"))["reason"],
        "interrupted"
    );
    assert_nothing_left(&server_file);
}

#[test]
fn setup_runs_once_into_install_log_and_its_failure_fails_the_run() {
    let ws = TempDir::new("setup");
    let case = CaseSpec {
        name: "setup-ok",
        concurrency: "[1]",
        extra: "setup: \"echo installing $((6 * 7))\"\n",
        ..Default::default()
    }
    .write(ws.path(), "ok.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "setup-ok");
    assert_eq!(read(&dir.join("install.log")), "installing 42\n");

    let case = CaseSpec {
        name: "setup-bad",
        extra: "setup: [sh, -c, \"echo 'E: Unable to locate package'; exit 3\"]\n",
        ..Default::default()
    }
    .write(ws.path(), "bad.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "setup-bad");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "SETUP", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("exited with status 3"),
        "{status}"
    );
    assert!(
        !dir.join("ctx_server_0.log").exists(),
        "no worker starts after a failed setup"
    );
    let xml = read(&dir.join("results.xml"));
    assert!(
        xml.contains("Unable to locate package"),
        "the failure quotes install.log:\n{xml}"
    );
    // No role was launched: none "stayed up"; each says it never started, as under Slurm.
    let cases = junit_cases(&dir.join("results.xml"));
    assert!(
        !cases
            .iter()
            .any(|c| c.0.ends_with(" stayed up") && c.1.is_none() && !c.3),
        "{cases:?}"
    );
    for role in ["CTX_0", "GEN_0", "DISAGG_SERVER", "BENCHMARK"] {
        let case = cases
            .iter()
            .find(|c| c.0 == format!("{role} stayed up"))
            .unwrap_or_else(|| panic!("{role}: {cases:?}"));
        assert!(case.3, "skipped: {case:?}");
        assert!(
            xml.contains(&format!("{role} never started: ")),
            "{role}: {xml}"
        );
    }
    assert!(xml.contains("type=\"NOT_STARTED\""), "{xml}");
    // Its HTML report says why, not only "FAILED".
    let html = read(&dir.join("report.html"));
    assert!(
        html.contains("why: setup exited with status 3 (see install.log)"),
        "{html}"
    );
}

#[test]
fn a_benchmark_past_its_deadline_is_a_timeout() {
    let ws = TempDir::new("slowbench");
    let case = CaseSpec {
        name: "slow",
        gen_args: "{itl: 100ms}",
        concurrency: "[1]",
        rounds: 50,
        // Each request takes 0.8 s, well within the 2 s request timeout (the router's deadline
        // for a request), so only the benchmark's 3 s can end the run; the canary is one of
        // them, as long as the longest request.
        osl: 8,
        timeouts: "{worker_startup: 20s, request: 2s, benchmark: 3s, job: 60s, grace: 2s}",
        ..Default::default()
    }
    .write(ws.path(), "slow.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(r.elapsed < Duration::from_secs(15), "{:?}", r.elapsed);
    let dir = only_run(ws.path(), "slow");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "BENCHMARK", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("benchmark deadline (3s)"),
        "{status}"
    );
    let cases = junit_cases(&dir.join("results.xml"));
    let bench = cases.iter().find(|c| c.0 == "BENCHMARK stayed up").unwrap();
    assert_eq!(bench.2.as_deref(), Some("TIMEOUT"), "{cases:?}");
    assert_nothing_left(&dir);
}

#[test]
fn an_open_loop_case_with_two_context_servers_and_a_policy_runs_end_to_end() {
    let ws = TempDir::new("openloop");
    let text = CaseSpec::default()
        .yaml()
        .replace("ctx:\n  count: 1", "ctx:\n  count: 2")
        .replace(
            "  concurrency: [1, 4]\n  rounds: 2\n",
            // `.inf`: all at once. JSON has no infinity; the plan every role reads must keep it.
            "  request_rate: [40, .inf]\n  num_prompts: 12\n  max_concurrency: 4\n",
        )
        .replace("name: e2e", "name: open")
        + "router: {kind: builtin, policy: round_robin, ctx_policy: least_requests}\n";
    let case = ws.path().join("open.yaml");
    std::fs::write(&case, text).unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "open");
    let points = json(&dir.join("results.json"))["points"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["completed"].as_u64(), Some(12));
    assert_eq!(points[0]["request_rate"].as_f64(), Some(40.0));
    assert_eq!(points[1]["completed"].as_u64(), Some(12));
    assert_eq!(points[1]["request_rate"], "inf");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("| point | req/s |") && summary.contains("| rateinf |"),
        "{summary}"
    );
    let plan = json(&dir.join("plan.json"));
    assert_eq!(
        plan["benchmark"]["request_rate"],
        serde_json::json!([40.0, "inf"]),
        "{plan}"
    );
    let cfg = read(&dir.join("server_config.yaml"));
    assert!(
        cfg.contains("num_instances: 2") && cfg.contains("type: load_balancing"),
        "{cfg}"
    );
    assert!(read(&dir.join("perf_script_test_results.csv")).contains("open-rate40,"));
    let names: Vec<String> = junit_cases(&dir.join("results.xml"))
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(
        names.contains(&"rate40".to_string()) && names.contains(&"CTX_1 stayed up".to_string()),
        "{names:?}"
    );
    assert!(
        dir.join("bench/requests.jsonl").is_file(),
        "per-request timelines are kept"
    );
}

/// `benchmark.canary: false` sends no canary, as TensorRT-LLM's perf-sanity client
/// (`--no-test-input`): the generation sim serves the warm-up and the point's requests and
/// nothing else, one request fewer than the same case with its canary; the log says why.
#[test]
fn benchmark_canary_false_sends_no_canary_request() {
    let served = |canary: &str| -> (usize, String) {
        let ws = TempDir::new("canary");
        let case = CaseSpec {
            name: "canary",
            concurrency: "[2]",
            gen_args: "{request_log: true}",
            benchmark_extra: canary,
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
        assert_eq!(r.code(), 0, "{canary}: {}", r.show());
        let dir = only_run(ws.path(), "canary");
        let completions = read(&dir.join("gen_server_0.requests.jsonl"))
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l["path"] == "/v1/completions")
            .count();
        (completions, read(&dir.join("benchmark.log")))
    };
    // 1 warm-up and 2 × 2 measured requests, and the canary unless told otherwise.
    let (with, log) = served("");
    assert_eq!(with, 6, "{log}");
    assert!(log.contains("canary passed"), "{log}");
    let (without, log) = served("  canary: false\n");
    assert_eq!(without, 5, "{log}");
    assert!(
        log.contains("no canary: the case says benchmark.canary: false")
            && !log.contains("canary passed"),
        "{log}"
    );
}

#[test]
fn every_dialect_runs_end_to_end_through_the_kv_hand_off() {
    for dialect in ["vllm", "sglang"] {
        let ws = TempDir::new(dialect);
        let case = CaseSpec {
            name: dialect,
            concurrency: "[2]",
            ctx_args: "{request_log: true}",
            gen_args: "{request_log: true}",
            extra: &format!("router: {{kind: builtin, dialect: {dialect}}}\n"),
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let r = run(&case, ws.path(), &[], &[]);
        assert_eq!(r.code(), 0, "{dialect}: {}", r.show());
        let dir = only_run(ws.path(), dialect);
        let plan = read(&dir.join("plan.json"));
        assert!(
            plan.contains(&format!("\"--dialect\",\n          \"{dialect}\"")),
            "{dialect}: the sims speak it: {plan}"
        );
        let points = json(&dir.join("results.json"))["points"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(points[0]["completed"].as_u64(), Some(4), "{dialect}");
        assert_eq!(
            points[0]["total_output_tokens"].as_u64(),
            Some(4 * 8),
            "{dialect}"
        );
        let ctx = json(&dir.join("rendezvous/CTX_0.json"));
        if dialect == "sglang" {
            // The router names the bootstrap port the prefill was started with, not its HTTP
            // port (the sim serves its bootstrap on its own port, as SGLang does).
            let cfg = read(&dir.join("server_config.yaml"));
            let bootstrap = ctx["bootstrap_port"].as_u64().expect("published");
            assert_ne!(Some(bootstrap), ctx["port"].as_u64());
            assert!(
                cfg.contains(&format!(
                    "{}:{}@{bootstrap}",
                    ctx["host"].as_str().unwrap(),
                    ctx["port"]
                )),
                "the bootstrap port is named: {cfg}"
            );
            let log = read(&dir.join("ctx_server_0.log"));
            assert!(
                log.contains(&format!("--bootstrap-port {bootstrap}")),
                "the prefill was started with it: {log}"
            );
            // Both legs of every completion carried it.
            for leg in ["ctx_server_0", "gen_server_0"] {
                let lines = read(&dir.join(format!("{leg}.requests.jsonl")));
                let bodies: Vec<serde_json::Value> = lines
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                    .filter(|l| l["path"] == "/v1/completions")
                    .map(|l| l["body"].clone())
                    .collect();
                assert!(!bodies.is_empty(), "{leg}: {lines}");
                for b in bodies {
                    assert_eq!(b["bootstrap_port"].as_u64(), Some(bootstrap), "{leg}: {b}");
                }
            }
        } else {
            // Each vLLM worker got a side-channel port of its own.
            let generation = json(&dir.join("rendezvous/GEN_0.json"));
            let (c, g) = (
                ctx["side_channel_port"].as_u64(),
                generation["side_channel_port"].as_u64(),
            );
            assert!(c.is_some() && g.is_some() && c != g, "{ctx} {generation}");
        }
    }
}

#[test]
fn sim_settings_the_sim_would_reject_are_a_case_error() {
    let ws = TempDir::new("simargs");
    let case = CaseSpec {
        gen_args: "{max_batch_size: 8}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let workspace = ws.path().join("ws");
    let r = run(&case, &workspace, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("key `gen.engine_args`: the sim rejects these settings"),
        "{}",
        r.show()
    );
    assert!(r.stderr().contains("hint: "), "{}", r.show());
    assert!(!workspace.exists());
}

/// The Slurm launcher's options are refused by the local one, not ignored.
#[test]
fn slurm_only_options_are_refused_by_the_local_launcher() {
    let ws = TempDir::new("slurm-only");
    let case = CaseSpec::default().write(ws.path(), "c.yaml");
    let workspace = ws.path().join("ws");
    for (flag, said) in [
        (
            &["--max-jobs", "2"][..],
            "error: --max-jobs needs --launcher slurm",
        ),
        (
            &["--no-wait"][..],
            "error: --no-wait needs --launcher slurm",
        ),
    ] {
        let r = run(&case, &workspace, flag, &[]);
        assert_eq!(r.code(), 2, "{}", r.show());
        assert!(r.stderr().contains(said), "{}", r.show());
        assert!(!workspace.exists(), "nothing was launched");
    }
}

#[test]
fn a_workspace_that_cannot_hold_a_run_folder_is_a_usage_error() {
    let ws = TempDir::new("badws");
    let case = CaseSpec::default().write(ws.path(), "c.yaml");
    // A file where the workspace should be: nothing can be created under it.
    let workspace = ws.path().join("a-file");
    std::fs::write(&workspace, "not a folder").unwrap();
    let r = run(&case, &workspace, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("error: cannot create a run folder under"),
        "{}",
        r.show()
    );
    assert!(r.stderr().contains("hint: the workspace"), "{}", r.show());
    // A sweep there: the same usage error, before any point runs.
    let sweep = CaseSpec {
        name: "sw-nofolder",
        extra: "sweep:\n  ctx.count: [1, 2]\n",
        ..Default::default()
    }
    .write(ws.path(), "sweep.yaml");
    let r = run(&sweep, &workspace, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("error: cannot create a sweep folder under")
            && r.stderr().contains("hint: the workspace"),
        "{}",
        r.show()
    );
}

/// `disagg run ... 2>&1 | head -c1`: the console's reader goes away at once; the run goes on,
/// writes its reports and exits as it would have (it used to panic in `println!` with exit 101,
/// leaving no results.xml and no exit_code).
#[test]
fn a_run_whose_console_reader_leaves_still_finishes_and_reports() {
    use std::io::Read;
    let ws = TempDir::new("noreader");
    let case = CaseSpec::default().write(ws.path(), "c.yaml");
    let mut child = std::process::Command::new(DISAGG)
        .args(["run", case.to_str().unwrap(), "--workspace"])
        .arg(ws.path())
        .env_remove("WORKSPACE")
        .env_remove("SKIP_PERF_CHECK")
        .env_remove("DISAGG_STORE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    out.read_exact(&mut one).unwrap();
    drop(out);
    drop(child.stderr.take());
    // Bounded: a run that hangs is killed and reaped, then fails the test.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("disagg run did not end within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let dir = only_run(ws.path(), "e2e");
    assert_eq!(read(&dir.join("exit_code")).trim(), "0");
    assert!(read(&dir.join("results.xml")).contains("<testsuites"));
}

#[test]
fn serving_settings_in_engine_args_reach_the_sim() {
    let ws = TempDir::new("simserve");
    let case = CaseSpec {
        gen_args: "{threads: 1, clock_step: 250us}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "e2e");
    // The sim states its serving settings in its first lines, which go to the role's log.
    let gen_log = read(&dir.join("gen_server_0.log"));
    assert!(gen_log.contains("clock_step=250µs "), "{gen_log}");
    assert!(gen_log.contains("threads=1 realtime=false"), "{gen_log}");
    let ctx_log = read(&dir.join("ctx_server_0.log"));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    assert!(
        ctx_log.contains(&format!("threads={cpus} realtime=false")),
        "CTX_0 keeps one thread per CPU, at most 8: {ctx_log}"
    );
}

/// SGLang's native `/generate` as the benchmark's endpoint: the router relays it to both sims
/// (each leg on `/generate`), and the benchmark counts tokens from its `meta_info`.
#[test]
fn an_sglang_case_can_benchmark_the_native_generate_endpoint() {
    let ws = TempDir::new("generate");
    let case = CaseSpec {
        name: "gen-native",
        concurrency: "[2]",
        ctx_args: "{request_log: true}",
        gen_args: "{request_log: true}",
        benchmark_extra: "  endpoint: /generate\n",
        extra: "router: {kind: builtin, dialect: sglang}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "gen-native");
    let points = json(&dir.join("results.json"))["points"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(points[0]["completed"].as_u64(), Some(4));
    assert_eq!(points[0]["total_output_tokens"].as_u64(), Some(4 * 8));
    let log = read(&dir.join("gen_server_0.requests.jsonl"));
    let on_generate = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["path"] == "/generate")
        .count();
    assert!(on_generate >= 4, "{log}");

    // Another dialect's router has no /generate: refused before anything starts.
    let trt = CaseSpec {
        name: "gen-trt",
        benchmark_extra: "  endpoint: /generate\n",
        ..Default::default()
    }
    .write(ws.path(), "t.yaml");
    let r = disagg(&["validate", trt.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("benchmark.endpoint") && r.stderr().contains("router.dialect: sglang"),
        "{}",
        r.stderr()
    );
}

/// A dataset named relative to the case: the run folder's case.yaml names it absolutely (so it
/// re-runs from there), and a copy of the case beside another file of that name is another
/// case for `--resume` (it measured another workload).
#[test]
fn a_relative_dataset_is_resolved_in_the_run_folders_case_and_its_hash() {
    let ws = TempDir::new("rel-dataset");
    let case = CaseSpec {
        name: "reldata",
        concurrency: "[2]",
        rounds: 1,
        ..Default::default()
    }
    .yaml()
    .replace("  warmup: 1\n", "  warmup: 1\n  dataset: data/d.jsonl\n");
    let write = |dir: &str, prompt: &str| {
        let d = ws.path().join(dir);
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(
            d.join("data/d.jsonl"),
            format!("{{\"prompt\": \"{prompt}\", \"output_tokens\": 4}}\n"),
        )
        .unwrap();
        std::fs::write(d.join("c.yaml"), &case).unwrap();
        d.join("c.yaml")
    };
    let (first, second) = (write("p1", "one two three"), write("p2", "four five six"));
    let out = ws.path().join("ws");
    let r = run(&first, &out, &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(&out, "reldata");
    let saved = read(&dir.join("case.yaml"));
    let abs = ws.path().join("p1/data/d.jsonl");
    assert!(
        saved.contains(&format!("dataset: {}", abs.display())),
        "{saved}"
    );
    let r = disagg(&["validate", dir.join("case.yaml").to_str().unwrap()], &[]);
    assert_eq!(
        r.code(),
        0,
        "the saved case re-runs from anywhere: {}",
        r.show()
    );
    // The same case beside another dataset is run, not taken as already passed.
    let r = run(&second, &out, &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(!r.stdout().contains("already passed"), "{}", r.show());
    assert_eq!(runs(&out, "reldata").len(), 2);
    // And the first again is.
    let r = run(&first, &out, &["--resume"], &[]);
    assert!(r.stdout().contains("already passed"), "{}", r.show());
    // What a run measures (the history gate's key) goes by the dataset's contents: the same
    // file at another path (another checkout) is the same workload, another file is not.
    let third = write("p3", "one two three");
    let r = run(&third, &out, &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let hashes: Vec<String> = runs(&out, "reldata")
        .iter()
        .map(|d| read(&d.join("measure_hash")))
        .collect();
    assert_eq!(hashes.len(), 3);
    assert_eq!(hashes[0], hashes[2], "same dataset, other path");
    assert_ne!(hashes[0], hashes[1], "another dataset");
}

/// `--resume` reuses a pass only as the run would judge it now: not one whose perf check was
/// skipped, nor one judged against a baseline since edited; with the check skipped now, any
/// pass does.
#[test]
fn resume_reuses_a_pass_only_as_the_gate_stands_now() {
    let ws = TempDir::new("resume-basis");
    let spec = CaseSpec {
        name: "basis",
        concurrency: "[2]",
        rounds: 1,
        ..Default::default()
    };
    let plain = spec.write(ws.path(), "plain.yaml");
    let r = run(&plain, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    // A baseline any run passes: its throughputs far below anything measured (latencies only
    // report).
    let csv = read(&only_run(ws.path(), "basis").join("perf_script_test_results.csv"));
    let lenient = |scale: &str| -> String {
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        let cols: Vec<&str> = header.split(',').collect();
        let at = cols.iter().position(|c| *c == "perf_metric").unwrap();
        let mut out = format!("{header}\n");
        for l in lines {
            let mut f: Vec<String> = l.split(',').map(str::to_string).collect();
            if l.contains("THROUGHPUT") {
                f[at] = scale.to_string();
            }
            out += &(f.join(",") + "\n");
        }
        out
    };
    std::fs::write(ws.path().join("base.csv"), lenient("0.001")).unwrap();
    let gated = ws.path().join("gated.yaml");
    std::fs::write(&gated, spec.yaml() + "perf: {baseline: base.csv}\n").unwrap();
    let r = run(&gated, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert_eq!(runs(ws.path(), "basis").len(), 2);
    // Its check was skipped: the gate on, it runs again, saying why.
    let r = run(&gated, ws.path(), &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("with its perf check skipped; run again"),
        "{}",
        r.show()
    );
    assert_eq!(runs(ws.path(), "basis").len(), 3);
    // Judged against this baseline: reused.
    let r = run(&gated, ws.path(), &["--resume"], &[]);
    assert!(r.stdout().contains("already passed"), "{}", r.show());
    assert_eq!(runs(ws.path(), "basis").len(), 3);
    // The baseline edited: run again.
    std::fs::write(ws.path().join("base.csv"), lenient("0.002")).unwrap();
    let r = run(&gated, ws.path(), &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("against the baseline's earlier contents; run again"),
        "{}",
        r.show()
    );
    assert_eq!(runs(ws.path(), "basis").len(), 4);
    // The check skipped now: any pass of this content will do.
    let r = run(
        &gated,
        ws.path(),
        &["--resume"],
        &[("SKIP_PERF_CHECK", "true")],
    );
    assert!(r.stdout().contains("already passed"), "{}", r.show());
    assert_eq!(runs(ws.path(), "basis").len(), 4);
}

/// A run's own CSV is a baseline for the same workload, and refused for another one (its
/// `command` column says how each point was measured).
#[test]
fn a_baseline_of_another_workload_is_refused_before_launch() {
    let ws = TempDir::new("workload");
    let spec = CaseSpec {
        name: "wl",
        concurrency: "[2]",
        rounds: 1,
        ..Default::default()
    };
    let plain = spec.write(ws.path(), "plain.yaml");
    let r = run(&plain, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let csv = only_run(ws.path(), "wl").join("perf_script_test_results.csv");
    std::fs::copy(&csv, ws.path().join("base.csv")).unwrap();
    let same = ws.path().join("same.yaml");
    std::fs::write(&same, spec.yaml() + "perf: {baseline: base.csv}\n").unwrap();
    let r = disagg(&["validate", same.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let other = ws.path().join("other.yaml");
    let yaml = spec.yaml();
    assert!(yaml.contains("  isl: 64\n"), "{yaml}");
    std::fs::write(
        &other,
        yaml.replace("  isl: 64\n", "  isl: 512\n") + "perf: {baseline: base.csv}\n",
    )
    .unwrap();
    let r = disagg(&["validate", other.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("[wl-con2]` was measured on another workload: `disagg bench")
            && r.stderr().contains("--isl 64 --osl 8")
            && r.stderr()
                .contains("--isl 512 --osl 8 --range-ratio 0 ...`"),
        "{}",
        r.show()
    );
}

/// `--resume` reuses a case only when its latest run of that content passed: a pass behind a
/// newer failure of the same case (same content, same judging) is no pass now. It reused the
/// older pass, and a CI retry with `--resume` turned a red run green.
#[test]
fn resume_runs_again_a_case_whose_latest_run_failed_though_an_older_one_passed() {
    let ws = TempDir::new("resume-latest");
    let flag = ws.path().join("fail-now");
    let case = ws.path().join("c.yaml");
    // The context engine fails at start while the flag file is there: the case's content is
    // the same either way.
    std::fs::write(
        &case,
        format!(
            "name: latest\nmodel: {{name: m}}\nengine: command\nhardware: {{gpus_per_node: 2}}\n\
             ctx: {{count: 1, engine_args: {{argv: [sh, -c, \"test -e {} && exit 3; exec \\\"$0\\\" sim --role context --host \\\"$1\\\" --port \\\"$2\\\"\", \"{{disagg}}\", \"{{host}}\", \"{{port}}\"]}}}}\n\
             gen: {{count: 1, engine_args: {{argv: [\"{{disagg}}\", sim, --role, generation, --host, \"{{host}}\", --port, \"{{port}}\"]}}}}\n\
             benchmark: {{isl: 16, osl: 4, concurrency: [1], rounds: 1}}\n",
            flag.display()
        ),
    )
    .unwrap();
    let env = [("SKIP_PERF_CHECK", "true")];
    let r = run(&case, ws.path(), &[], &env);
    assert_eq!(r.code(), 0, "{}", r.show());
    std::fs::write(&flag, "").unwrap();
    let r = run(&case, ws.path(), &[], &env);
    assert_eq!(r.code(), 1, "{}", r.show());
    std::fs::remove_file(&flag).unwrap();
    let r = run(&case, ws.path(), &["--resume"], &env);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().contains("ended with exit code 1; run again")
            && !r.stdout().contains("not run again"),
        "{}",
        r.show()
    );
    assert_eq!(runs(ws.path(), "latest").len(), 3, "it ran again");
    // Its latest run passed now: the next resume reuses it.
    let r = run(&case, ws.path(), &["--resume"], &env);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().contains("not run again (--resume)"),
        "{}",
        r.show()
    );
    assert_eq!(runs(ws.path(), "latest").len(), 3);
}

/// Two case files of one `name:` in one run: refused before anything runs (they would share
/// a folder, its `latest` and a JUnit suite name, so one's failure could read as the other's
/// pass), naming both files.
#[test]
fn two_cases_of_one_name_are_refused_before_anything_runs() {
    let ws = TempDir::new("samename");
    let spec = CaseSpec {
        name: "twin",
        ..Default::default()
    };
    let a = spec.write(ws.path(), "a.yaml");
    let b = spec.write(ws.path(), "b.yaml");
    let workspace = ws.path().join("ws");
    let r = run(&a, &workspace, &[b.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains(&format!(
            "{}: its config name is `twin`, and so is {}'s",
            b.display(),
            a.display()
        )) && r
            .stderr()
            .contains("hint: give one of them another `name:`"),
        "{}",
        r.show()
    );
    assert!(!workspace.exists(), "nothing ran");
    // The same file twice, to validate.
    let v = disagg(&["validate", a.to_str().unwrap(), a.to_str().unwrap()], &[]);
    assert_eq!(v.code(), 2, "{}", v.show());
    assert!(v.stderr().contains("it is given twice"), "{}", v.show());
}

/// `--junit FILE`: one JUnit file of the invocation's cases, each run's suite in order, the
/// root's counts their sums; a case that failed keeps its failures there.
#[test]
fn junit_gathers_every_case_of_the_invocation_in_one_file() {
    let ws = TempDir::new("junitall");
    let good = CaseSpec {
        name: "j-good",
        concurrency: "[1]",
        ..Default::default()
    }
    .write(ws.path(), "good.yaml");
    let bad = CaseSpec {
        name: "j-bad",
        concurrency: "[1]",
        gen_args: "{error_on_request: [1, 2, 3, 4]}",
        ..Default::default()
    }
    .write(ws.path(), "bad.yaml");
    let file = ws.path().join("reports/all.xml");
    let workspace = ws.path().join("ws");
    let r = run(
        &good,
        &workspace,
        &[bad.to_str().unwrap(), "--junit", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code(), 1, "{}", r.show());
    let xml = read(&file);
    let suites: Vec<&str> = xml.matches("<testsuite ").collect();
    assert_eq!(suites.len(), 2, "{xml}");
    assert!(
        xml.find("name=\"j-good\"").unwrap() < xml.find("name=\"j-bad\"").unwrap(),
        "in the order given: {xml}"
    );
    // The root's counts are the sums of the runs' own.
    let count = |text: &str, attr: &str| -> u64 {
        let at = text.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
        text[at..].split('"').next().unwrap().parse().unwrap()
    };
    let own = |name: &str| read(&only_run(&workspace, name).join("results.xml"));
    let (g, b) = (own("j-good"), own("j-bad"));
    for attr in ["tests", "failures", "errors"] {
        assert_eq!(
            count(&xml, attr),
            count(&g, attr) + count(&b, attr),
            "{attr}: {xml}"
        );
    }
    assert!(count(&xml, "failures") > 0, "{xml}");
    let cases = junit_cases(&file);
    assert_eq!(
        cases.len() as u64,
        count(&xml, "tests"),
        "every testcase is there: {cases:?}"
    );
    // A folder is no file to write.
    let r = run(
        &good,
        &workspace,
        &["--junit", ws.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code(), 2, "{}", r.show());
}
