//! The parts as standalone tools, as processes on loopback: `disagg sim`, `disagg router` and
//! `disagg bench` compose without the harness, and the bench measures a sim's known timings.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::*;

/// A running `disagg` server process, killed and reaped on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `disagg args...` and reads the `host:port` it prints once bound (an event, not a wait).
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(DISAGG)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_string();
        assert!(addr.contains(':'), "{args:?} printed {line:?}");
        Self { child, addr }
    }
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        let r = disagg(
            &[
                "bench",
                "--url",
                &router.url(),
                "--isl",
                "32",
                "--osl",
                "8",
                "--concurrency",
                "2",
                "--rounds",
                "3",
            ],
            &[],
        );
        assert_eq!(r.code(), 0, "{dialect}: {}", r.show());
        assert!(
            r.stdout()
                .contains("Successful requests:                     6"),
            "{dialect}: {}",
            r.stdout()
        );
        assert!(
            r.stdout()
                .contains("Total generated tokens:                  48"),
            "{dialect}: {}",
            r.stdout()
        );
    }
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

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_router_logs_its_startup_and_names_the_worker_it_ejects() {
    let ctx = Server::start(&["sim", "--role", "context", "--itl", "1ms"]);
    let dead = format!("127.0.0.1:{}", closed_port());
    let dir = TempDir::new("router-log");
    let log_path = dir.path().join("disagg_server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(DISAGG)
        .args([
            "router",
            "--prefill",
            &ctx.addr,
            "--decode",
            &dead,
            "--port",
            "0",
            "--health-interval",
            "100ms",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let addr = addr.trim().to_string();
    // Wait (bounded) for the checker to eject the dead worker: 2 failed probes 100 ms apart.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = read(&log_path);
        if text.contains(" ejected after") || std::time::Instant::now() >= until {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let startup = text
        .lines()
        .find(|l| l.contains(&format!("router on {addr}: dialect trtllm;")))
        .unwrap_or_else(|| panic!("no startup line naming {addr}:\n{text}"));
    assert!(
        startup.contains(" INFO ")
            && startup.contains(&format!(
                "context workers [http://{}] by round_robin",
                ctx.addr
            ))
            && startup.contains(&format!(
                "generation workers [http://{dead}] by round_robin"
            )),
        "{startup}"
    );
    let ejected = text
        .lines()
        .find(|l| l.contains(" ejected after"))
        .unwrap_or_else(|| panic!("no ejection line:\n{text}"));
    assert!(
        ejected.contains(" WARN ")
            && ejected.contains(&format!("generation worker http://{dead} ejected after 2 failure(s) in a row: /health failed")),
        "{ejected}"
    );
    assert!(
        !text.contains(&format!("context worker http://{} ejected", ctx.addr)),
        "the live worker stays in: {text}"
    );
}

/// The peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// Sends one POST of `body` over a fresh connection; the status line's code, or `None` when
/// the router closed the connection before answering (it refused the body part way).
fn post_raw(addr: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    for chunk in body.chunks(1 << 20) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
}

/// The documented bound (crates/disagg-router/README.md, "Limits"): peak RSS under
/// 1.5 × `--max-inflight-body-bytes` + 64 MiB, so 448 MiB with the defaults. Without the budget
/// the same eight bodies took it to 573 MiB on the test VM (2026-12-05), 1.26 GB in an earlier run.
const MAX_RSS_MIB_FOR_BIG_BODIES: f64 = 1.5 * 256.0 + 64.0;

#[test]
fn eight_parallel_60mb_bodies_keep_the_router_under_its_memory_bound() {
    let dead = format!("127.0.0.1:{}", closed_port());
    let router = Server::start(&[
        "router",
        "--prefill",
        &dead,
        "--decode",
        &dead,
        "--port",
        "0",
        "--threads",
        "2",
        // The dead workers stay in rotation, so every accepted body goes all the way to a leg.
        "--eject-after",
        "1000",
    ]);
    let before = peak_rss_mib(router.child.id());
    let prompt = "a".repeat(60_000_000);
    let body =
        std::sync::Arc::new(format!(r#"{{"prompt":"{prompt}","max_tokens":4}}"#).into_bytes());
    let codes: Vec<Option<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let body = body.clone();
                let addr = router.addr.clone();
                s.spawn(move || post_raw(&addr, &body))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = peak_rss_mib(router.child.id());
    println!(
        "router peak RSS: {before:.0} MiB idle, {peak:.0} MiB after 8 x 60 MB bodies; answers {codes:?}"
    );
    // Bodies within the budget reach the (dead) workers: 502; the others are refused: 503, or a
    // connection closed before the whole body was sent.
    assert!(codes.contains(&Some(502)), "{codes:?}");
    assert!(
        codes.iter().any(|c| *c == Some(503) || c.is_none()),
        "some bodies are refused: {codes:?}"
    );
    assert!(
        peak < MAX_RSS_MIB_FOR_BIG_BODIES,
        "peak RSS {peak:.0} MiB, bound {MAX_RSS_MIB_FOR_BIG_BODIES} MiB"
    );
    // And it still serves.
    let small = br#"{"prompt":"hi","max_tokens":4}"#;
    assert_eq!(post_raw(&router.addr, small), Some(502));
}

#[test]
fn slow_header_connections_are_closed_after_the_header_timeout() {
    use std::io::{Read, Write};
    let dead = format!("127.0.0.1:{}", closed_port());
    let router = Server::start(&[
        "router",
        "--prefill",
        &dead,
        "--decode",
        &dead,
        "--port",
        "0",
        "--header-timeout",
        "1s",
    ]);
    // Each connection: (socket, when it opened, how long it lived). Opened 50 at a time between
    // polls, so each close is seen within a poll of when it happened.
    let mut conns: Vec<(
        std::net::TcpStream,
        std::time::Instant,
        Option<std::time::Duration>,
    )> = Vec::new();
    let start = std::time::Instant::now();
    let until = start + std::time::Duration::from_secs(15);
    let mut next_byte = start;
    while (conns.len() < 500 || conns.iter().any(|c| c.2.is_none()))
        && std::time::Instant::now() < until
    {
        for _ in 0..50.min(500 - conns.len()) {
            let mut s = std::net::TcpStream::connect(&router.addr).unwrap();
            s.write_all(b"POST /v1/completions HTTP/1.1\r\nhost: r\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            conns.push((s, std::time::Instant::now(), None));
        }
        // A slowloris: one more header byte per connection every 200 ms, until each is closed.
        let trickle = std::time::Instant::now() >= next_byte;
        if trickle {
            next_byte += std::time::Duration::from_millis(200);
        }
        for (s, opened, lived) in conns.iter_mut().filter(|c| c.2.is_none()) {
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => *lived = Some(opened.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if trickle {
                        let _ = s.write_all(b"x");
                    }
                }
                Err(_) => *lived = Some(opened.elapsed()),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let open = conns.iter().filter(|c| c.2.is_none()).count();
    assert_eq!(conns.len(), 500);
    assert_eq!(
        open, 0,
        "{open} of 500 slow-header connections are still open after 15 s"
    );
    let first = conns.iter().filter_map(|c| c.2).min().unwrap();
    let last = conns.iter().filter_map(|c| c.2).max().unwrap();
    println!("500 slow-header connections closed {first:?} to {last:?} after they opened");
    assert!(
        first >= std::time::Duration::from_millis(950),
        "closed by the header timeout (1s), not before: {first:?}"
    );
    assert!(
        last < std::time::Duration::from_millis(2500),
        "every one closed soon after the timeout: {last:?}"
    );
}

#[test]
fn a_worker_url_the_router_cannot_use_stops_it_at_start() {
    for (dialect, prefill, says) in [
        (
            "sglang",
            "http://h:1@8998x",
            "--prefill http://h:1@8998x: it carries user info",
        ),
        (
            "trtllm",
            "ftp://x:1",
            "--prefill ftp://x:1: the scheme is `ftp`, not http",
        ),
        ("trtllm", "127.0.0.1:1@8998", "the trtllm dialect has none"),
    ] {
        let r = disagg(
            &[
                "router",
                "--dialect",
                dialect,
                "--prefill",
                prefill,
                "--decode",
                "127.0.0.1:2",
                "--port",
                "0",
            ],
            &[],
        );
        assert_eq!(r.code(), 2, "{}", r.show());
        assert!(
            r.stdout().is_empty(),
            "no address is published: {}",
            r.show()
        );
        assert!(
            r.stderr().contains(says) && r.stderr().contains("hint: "),
            "{}",
            r.show()
        );
    }
}
