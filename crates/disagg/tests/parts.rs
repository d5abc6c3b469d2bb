//! The parts as standalone tools, as processes on loopback: `disagg sim`, `disagg router` and
//! `disagg bench` compose without the harness, and the bench measures a sim's known timings.

mod support;

use std::process::{Command, Stdio};

use support::*;

#[test]
fn the_bench_measures_a_sims_known_timings() {
    // Prefill 100 tokens × 300 µs = 30 ms to the first token, then one token every 10 ms.
    let sim = Server::start(&[
        "sim",
        "--role",
        "both",
        "--prefill-per-token",
        "300us",
        "--itl",
        "10ms",
    ]);
    let out = TempDir::new("bench-sim");
    let r = disagg(
        &[
            "bench",
            "--url",
            &sim.url(),
            "--isl",
            "100",
            "--osl",
            "20",
            "--concurrency",
            "4",
            "--rounds",
            "5",
            "--output-dir",
            out.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("============ Serving Benchmark Result ============"),
        "{}",
        r.show()
    );
    let results = json(&out.path().join("results.json"));
    let p = &results["points"][0];
    assert_eq!(p["completed"].as_u64(), Some(20));
    assert_eq!(
        p["total_output_tokens"].as_u64(),
        Some(20 * 20),
        "output lengths come from usage"
    );
    let ttft = p["median_ttft_ms"].as_f64().unwrap();
    let itl = p["median_itl_ms"].as_f64().unwrap();
    let tpot = p["median_tpot_ms"].as_f64().unwrap();
    // Bounds: the truth, plus what a loaded 2-core machine may add.
    assert!(
        (29.0..45.0).contains(&ttft),
        "median TTFT {ttft} ms, truth 30 ms"
    );
    assert!(
        (9.0..12.5).contains(&itl),
        "median ITL {itl} ms, truth 10 ms"
    );
    assert!(
        (9.0..12.5).contains(&tpot),
        "median TPOT {tpot} ms, truth 10 ms"
    );
}

#[test]
fn sim_router_and_bench_compose_as_standalone_processes() {
    for dialect in ["trtllm", "vllm", "sglang"] {
        // SGLang's bootstrap port, as a launcher picks it; vLLM's side channels on free ports
        // (their defaults would collide, as two engines on one node do).
        let bootstrap = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string();
        let sim = |role| {
            Server::start(&[
                "sim",
                "--role",
                role,
                "--dialect",
                dialect,
                "--itl",
                "1ms",
                "--bootstrap-port",
                &bootstrap,
                "--side-channel-host",
                "127.0.0.1",
                "--side-channel-port",
                "0",
            ])
        };
        let ctx = sim("context");
        let generation = sim("generation");
        let prefill = if dialect == "sglang" {
            format!("{}@{bootstrap}", ctx.addr)
        } else {
            ctx.addr.clone()
        };
        let router = Server::start(&[
            "router",
            "--dialect",
            dialect,
            "--prefill",
            &prefill,
            "--decode",
            &generation.addr,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]);
        // SGLang's users drive its native /generate too (bench_serving's sglang backend).
        let endpoints: &[(&str, Option<&str>)] = match dialect {
            "sglang" => &[
                ("/v1/completions", None),
                ("/generate", None),
                ("/generate", Some("--no-stream")),
            ],
            _ => &[("/v1/completions", None)],
        };
        for (endpoint, extra) in endpoints {
            let url = router.url();
            let mut args = vec![
                "bench",
                "--url",
                &url,
                "--endpoint",
                endpoint,
                "--isl",
                "32",
                "--osl",
                "8",
                "--concurrency",
                "2",
                "--rounds",
                "3",
            ];
            args.extend(extra);
            let r = disagg(&args, &[]);
            let what = format!("{dialect} {endpoint} {extra:?}");
            assert_eq!(r.code(), 0, "{what}: {}", r.show());
            assert!(
                r.stdout()
                    .contains("Successful requests:                     6"),
                "{what}: {}",
                r.stdout()
            );
            assert!(
                r.stdout()
                    .contains("Total generated tokens:                  48"),
                "{what}: {}",
                r.stdout()
            );
            if extra.is_none() {
                // Streamed: 8 tokens a request in 8 events, so inter-token latencies exist.
                assert!(
                    r.stdout().contains("Mean ITL (ms):"),
                    "{what}: {}",
                    r.stdout()
                );
            }
        }
    }
}

/// A process's open file descriptors and resident memory (KiB), from /proc.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// The shipped router process (the `disagg` binary as users run it) keeps its
/// file descriptors and memory flat over many streamed requests through sims. The suite sends
/// 3k after a warm-up; `.ci/run` sends 30k (`DISAGG_LEAK_ROUNDS`). The in-process leak test
/// (disagg-router's `tests/leaks.rs`, on the same allocator) covers errors and hang-ups.
#[test]
fn the_router_process_keeps_fds_and_memory_flat_over_many_requests() {
    let rounds: usize = std::env::var("DISAGG_LEAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let sim = |role| {
        Server::start(&[
            "sim",
            "--role",
            role,
            "--itl",
            "0ms",
            "--prefill-per-token",
            "0us",
        ])
    };
    let ctx = sim("context");
    let generation = sim("generation");
    let router = Server::start(&[
        "router",
        "--prefill",
        &ctx.addr,
        "--decode",
        &generation.addr,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]);
    let load = |n: usize| {
        let n = n.to_string();
        let r = disagg(
            &[
                "bench",
                "--url",
                &router.url(),
                "--isl",
                "64",
                "--osl",
                "8",
                "--concurrency",
                "16",
                "--num-prompts",
                &n,
            ],
            &[],
        );
        assert_eq!(r.code(), 0, "{}", r.show());
    };
    load(500);
    let (fds0, rss0) = fds_and_rss(router.child.id());
    load(rounds);
    let (fds, rss) = fds_and_rss(router.child.id());
    eprintln!("{rounds} requests: router fds {fds0} -> {fds}, RSS {rss0} KiB -> {rss} KiB");
    // Pools may hold a few more idle connections than at the baseline; a leak would be one per
    // request. RSS moved by -1 to -2 MiB in the runs so far; 16 MiB over 30k requests catches a
    // leak of 560 bytes per request.
    assert!(
        fds <= fds0 + 32,
        "fds {fds0} -> {fds} over {rounds} requests"
    );
    assert!(
        rss <= rss0 + 16 * 1024,
        "RSS {rss0} KiB -> {rss} KiB over {rounds} requests"
    );
}

/// The sim's threads, by name, with their scheduling policy (0 SCHED_OTHER, 1 SCHED_FIFO),
/// from `/proc/PID/task/*`.
fn threads_of(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name start at field 3; the policy is field 41.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let policy = after_name.split_whitespace().nth(41 - 3).unwrap();
        out.push((comm.trim().to_string(), policy.parse().unwrap()));
    }
    out
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn the_sim_serves_from_its_own_threads_and_realtime_puts_them_under_sched_fifo() {
    let root = is_root();
    if root {
        let sim = Server::start(&["sim", "--threads", "3", "--realtime", "--itl", "1ms"]);
        let shards: Vec<_> = threads_of(sim.child.id())
            .into_iter()
            .filter(|(name, _)| name.starts_with("sim-shard-"))
            .collect();
        assert_eq!(shards.len(), 3, "--threads 3: {shards:?}");
        assert!(
            shards.iter().all(|(_, policy)| *policy == 1),
            "every serving thread runs under SCHED_FIFO: {shards:?}"
        );
        // And it serves: streamed requests spread over the threads complete.
        let r = disagg(
            &[
                "bench",
                "--url",
                &sim.url(),
                "--isl",
                "8",
                "--osl",
                "4",
                "--concurrency",
                "3",
                "--rounds",
                "1",
            ],
            &[],
        );
        assert_eq!(r.code(), 0, "{}", r.show());
    }
    // Without the right to real-time scheduling, --realtime refuses to start and says why.
    // Root keeps that right unless CAP_SYS_NICE leaves its bounding set.
    let mut denied = if root {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-sys_nice", DISAGG]);
        c
    } else {
        Command::new(DISAGG)
    };
    let out = denied
        .args(["sim", "--realtime", "--threads", "2"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no address is published: {:?}",
        out.stdout
    );
    assert!(
        stderr.contains("--realtime") && stderr.contains("CAP_SYS_NICE"),
        "{stderr}"
    );
}

/// Ctrl-C on a standalone `disagg bench` keeps what was measured: the finished points are
/// written to --output-dir (results.json marked interrupted, the point under way left out) and
/// it exits 130, as the harness does; it lost everything before.
#[test]
fn an_interrupted_bench_writes_its_finished_points_and_exits_130() {
    let sim = Server::start(&["sim", "--role", "both", "--itl", "5ms"]);
    let dir = TempDir::new("bench-int");
    let out = dir.path().join("b");
    let mut bench = Command::new(DISAGG)
        .args(["bench", "--url", &sim.url(), "--isl", "16", "--osl", "40"])
        .args(["--concurrency", "2,4", "--rounds", "10", "--output-dir"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first point is written (its requests take 40 x 5 ms each, 10 rounds of 2), the
    // second is under way for a while.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !out.join("benchmark.con2.json").exists() {
        assert!(
            std::time::Instant::now() < until,
            "the first point never ended"
        );
        assert!(bench.try_wait().unwrap().is_none(), "the bench ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bench.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let done = bench.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGINT: 1 of 2 point(s) measured"),
        "{stderr}"
    );
    let results = json(&out.join("results.json"));
    assert_eq!(results["valid"], false, "{results}");
    assert!(
        results["invalid_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("interrupted by SIGINT")),
        "{results}"
    );
    let points = results["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{results}");
    assert_eq!(points[0]["max_concurrency"], 2, "{results}");
    assert!(out.join("summary.txt").is_file() && out.join("requests.jsonl").is_file());
}

/// An open-loop point between two sends (its schedule's thread asleep until the next is due)
/// stops at a signal at once: it slept out the whole schedule before (20 s here; a thousand
/// prompts at 1 req/s held Ctrl-C for a quarter of an hour), deaf to a second SIGTERM.
#[test]
fn a_signal_stops_an_open_loop_bench_between_sends_at_once() {
    let dir = TempDir::new("bench-open-int");
    let log = dir.path().join("requests.log");
    let sim = Server::start(&[
        "sim",
        "--role",
        "both",
        "--itl",
        "1ms",
        "--request-log",
        log.to_str().unwrap(),
    ]);
    let mut bench = Command::new(DISAGG)
        .args(["bench", "--url", &sim.url(), "--isl", "16", "--osl", "4"])
        .args(["--request-rate", "0.1", "--num-prompts", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The canary reached the sim: the point's schedule starts as it answers (its first request
    // is due seconds later).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read_or_empty(&log).lines().count() < 1 {
        assert!(std::time::Instant::now() < until, "no canary");
        assert!(bench.try_wait().unwrap().is_none(), "the bench ended early");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bench.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let limit = std::time::Duration::from_secs(5);
    while bench.try_wait().unwrap().is_none() {
        if sent.elapsed() > limit {
            let _ = bench.kill();
            let _ = bench.wait();
            panic!("the bench was still running {limit:?} after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let done = bench.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
}

fn read_or_empty(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A soft open-files limit below the hard one (1024 is common) is raised at start: every
/// connection is a file descriptor, and a perf test's concurrency reaches 1024.
#[test]
fn disagg_raises_its_soft_open_files_limit_to_the_hard_one() {
    let sim = Server::start_after("ulimit -Sn 256", &["sim", "--role", "both", "--port", "0"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", sim.child.id())).unwrap();
    let row: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    let (soft, hard) = (row[3], row[4]);
    assert_ne!(soft, "256", "{limits}");
    assert!(
        soft == hard || soft == "1048576",
        "soft {soft}, hard {hard}"
    );
}

/// The bench's console on a full disk (`/dev/full`, as a run folder's log on a full
/// filesystem): the lines are lost, not the benchmark. It panicked (exit 101) at its first
/// point's text, and in a run that was all BENCHMARK's log said.
#[test]
fn a_bench_whose_console_cannot_be_written_still_measures_and_writes_its_results() {
    let sim = Server::start(&["sim", "--role", "both"]);
    let out = TempDir::new("bench-full");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_disagg"))
        .args([
            "bench",
            "--url",
            &sim.url(),
            "--isl",
            "16",
            "--osl",
            "4",
            "--concurrency",
            "2",
            "--rounds",
            "2",
            "--output-dir",
            out.path().to_str().unwrap(),
        ])
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let results = json(&out.path().join("results.json"));
    assert_eq!(results["points"][0]["completed"].as_u64(), Some(4));
}
