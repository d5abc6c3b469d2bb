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
        let ctx = Server::start(&[
            "sim",
            "--role",
            "context",
            "--dialect",
            dialect,
            "--itl",
            "1ms",
        ]);
        let generation = Server::start(&[
            "sim",
            "--role",
            "generation",
            "--dialect",
            dialect,
            "--itl",
            "1ms",
        ]);
        let port = ctx.addr.rsplit(':').next().unwrap().to_string();
        let prefill = if dialect == "sglang" {
            format!("{}@{port}", ctx.addr)
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
