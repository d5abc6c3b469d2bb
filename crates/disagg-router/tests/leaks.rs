//! Nothing leaks over many requests: file descriptors, memory and in-flight counts stay flat
//! through successes, worker errors and client hang-ups mid-stream. The suite runs 3k requests
//! after a warm-up; `.ci/run` also runs it over 100k in a release build
//! (`DISAGG_LEAK_ROUNDS=100000 cargo test --release -p disagg-router --test leaks`). It uses the
//! binary's allocator, mimalloc.

mod support;

/// The `disagg` binary's allocator (crates/disagg/src/main.rs), so that what is measured here
/// (RSS through successes, errors and hang-ups) is what the shipped router does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Gen, config, drop_signal, fake, router};
use tokio::sync::Notify;

/// Requests after the warm-up; `DISAGG_LEAK_ROUNDS` raises it.
fn rounds() -> usize {
    std::env::var("DISAGG_LEAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}
const WARMUP: usize = 300;
const LIMIT: Duration = Duration::from_secs(10);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fds_memory_and_leases_stay_flat() {
    let ctx = fake("ctx").forgetful().start().await;
    let good = fake("gen").forgetful().start().await;
    let broken = fake("broken")
        .forgetful()
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let (dropped, _rx) = drop_signal();
    let gated = fake("gated")
        .forgetful()
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped,
        })
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&good, &broken]);
    cfg.max_retries = 0;
    let url = router(cfg).await;
    let hang_up_url = router(config(&[&ctx], &[&gated])).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "m", "prompt": "hello", "max_tokens": 4, "stream": false});
    let streamed = json!({"model": "m", "prompt": "hello", "max_tokens": 4, "stream": true});

    let mut baseline = (0, 0);
    let rounds = rounds();
    for i in 0..WARMUP + rounds {
        if i == WARMUP {
            baseline = (open_fds(), rss_kib());
        }
        // Alternately a success and a 502 (worker 5xx, no retry), and every tenth request a
        // stream the client abandons after its first chunk.
        let resp = tokio::time::timeout(
            LIMIT,
            client
                .post(format!("{url}/v1/completions"))
                .json(&body)
                .send(),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(matches!(resp.status().as_u16(), 200 | 502));
        resp.bytes().await.unwrap();
        if i % 10 == 0 {
            let mut resp = client
                .post(format!("{hang_up_url}/v1/completions"))
                .json(&streamed)
                .send()
                .await
                .unwrap();
            tokio::time::timeout(LIMIT, resp.chunk())
                .await
                .unwrap()
                .unwrap();
            drop(resp);
        }
    }
    let (fds, rss) = (open_fds(), rss_kib());
    eprintln!(
        "{rounds} requests: fds {} -> {fds}, RSS {} KiB -> {rss} KiB",
        baseline.0, baseline.1
    );
    // Pools may hold a few more idle connections than at the baseline; a leak would be
    // hundreds (one per abandoned stream or failed request).
    assert!(fds <= baseline.0 + 32, "fds {} → {fds}", baseline.0);
    assert!(
        rss <= baseline.1 + 32 * 1024,
        "RSS {} KiB → {rss} KiB",
        baseline.1
    );
    for u in [&url, &hang_up_url] {
        support::eventually(LIMIT, "every lease is released", || async {
            let census: Value = reqwest::get(format!("{u}/workers"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ["prefill", "decode"].iter().all(|g| {
                census[g]["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|w| w["in_flight"] == 0 && w["in_flight_tokens"] == 0)
            })
        })
        .await;
    }
}
