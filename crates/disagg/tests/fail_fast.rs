//! A worker dying mid-run, with long streams in flight, fails a local run within 5 s of its
//! death, and no further concurrency point starts. (The same on Slurm, across nodes: see
//! `multinode.rs`.)

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn requests_in(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn gen_0_dying_mid_stream_fails_a_local_run_within_5s_and_no_further_point_starts() {
    let ws = TempDir::new("fail-fast");
    let case = CaseSpec {
        name: "fail-fast",
        ctx_args: "{request_log: true}",
        gen_args: "{itl: 20ms, request_log: true}",
        concurrency: "[4, 8]",
        rounds: 2,
        osl: 200,
        timeouts: "{worker_startup: 20s, request: 30s, benchmark: 2m, job: 3m, grace: 5s}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let mut cmd = Command::new(DISAGG);
    cmd.args(["run", case.to_str().unwrap(), "--workspace"])
        .arg(ws.path())
        .env_remove("WORKSPACE")
        .env("SKIP_PERF_CHECK", "true");
    let mut run = Background::spawn(cmd);
    // Once the first point's streams are in flight on GEN_0 (warmup, canary, then 4 more).
    let until = Instant::now() + Duration::from_secs(60);
    let (dir, pid) = loop {
        if let Some(dir) = runs(ws.path(), "fail-fast").pop() {
            if requests_in(&dir.join("gen_server_0.requests.jsonl")) >= 6 {
                let pid = json(&dir.join("rendezvous/GEN_0.json"))["pid"]
                    .as_u64()
                    .unwrap();
                break (dir, pid as u32);
            }
        }
        if Instant::now() > until || run.ended() {
            run.abandon("the streams never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (code, took, stdout, stderr) = kill_and_wait(pid, run);
    let shown = format!("{stdout}\n{stderr}");
    assert_eq!(code, 1, "{shown}");
    // The benchmark asks for greedy decoding, as TensorRT-LLM's benchmark_serving does, and the
    // router carries it to the generation worker.
    let sent = read(&dir.join("gen_server_0.requests.jsonl"));
    let first: serde_json::Value = serde_json::from_str(sent.lines().next().unwrap()).unwrap();
    assert_eq!(first["body"]["temperature"], 0.0, "{first}");
    assert!(
        took < Duration::from_secs(5),
        "exit {took:?} after the death\n{shown}"
    );
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: GEN_0"), "{summary}");
    // Requests were sent: whatever the benchmark adds, it never says none were.
    assert!(!summary.contains("no points were run"), "{summary}");
    // The point GEN_0 died under measured nothing of the servers: it is in no report as a
    // measured point (whether the sweep ended first or the verdict did).
    let results = json(&dir.join("results.json"));
    assert_eq!(
        results["points"].as_array().map(Vec::len),
        Some(0),
        "{results}"
    );
    let junit = read(&dir.join("results.xml"));
    assert!(
        junit.contains("type=\"NOT_MEASURED\"") && !junit.contains("FAILED_REQUESTS"),
        "{junit}"
    );
    assert!(
        !read(&dir.join("perf_script_test_results.csv")).contains("con4"),
        "a con4 row was written"
    );
    // CTX_0 saw the warmup, the canary and at most the first point's 8 requests.
    let ctx = requests_in(&dir.join("ctx_server_0.requests.jsonl"));
    assert!(
        ctx <= 10,
        "{ctx} requests reached CTX_0: a second point started"
    );
    assert!(
        !dir.join("benchmark.con8.log").exists(),
        "the second point ran"
    );
    assert_nothing_left(&dir);
}
