//! Policies on a shared-prefix workload: `cargo bench -p disagg-router --bench policies`.
//!
//! Four context workers, each with a simulated prefix cache: an LRU of the last
//! [`CACHE_SLOTS`] prompt prefixes it prefilled. A request whose prefix is cached is answered
//! at once; otherwise the worker "prefills" for [`MISS_COST`] first. Requests draw one of
//! [`PREFIXES`] shared system prompts plus a unique question, as multi-tenant chat traffic does.
//! The four caches together hold every prefix, but none holds them all, so a policy wins by
//! keeping each prefix on one worker without piling load on it. Prints one table.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use axum::routing::{any, post};
use disagg_router::{Policy, RouterConfig};

const WORKERS: usize = 4;
const CACHE_SLOTS: usize = 4;
const PREFIXES: usize = 16;
/// Long enough to cover the router's affinity window (1024 bytes of the prompt).
const PREFIX_BYTES: usize = 1500;
const MISS_COST: Duration = Duration::from_millis(4);
const CONCURRENCY: usize = 16;
const REQUESTS: usize = 3000;
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("| context policy | ok | mean ms | p50 ms | p99 ms | req/s | prefix-cache hits |");
        println!("|---|---|---|---|---|---|---|");
        for policy in [
            Policy::RoundRobin,
            Policy::LeastRequests,
            Policy::PrefixAffinity,
        ] {
            let (ctx, stats) = start_context_workers().await;
            let generation =
                bind(Router::new().fallback(any(|b: Bytes| canned(Bytes::from_static(GEN), b))))
                    .await;
            let mut cfg = RouterConfig::new(ctx, vec![generation]);
            cfg.prefill_policy = policy;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!(
                "http://{}/v1/completions",
                listener.local_addr().expect("addr")
            );
            let server = tokio::spawn(disagg_router::serve(listener, cfg, std::future::pending()));
            let (ok, mut lat, secs) = load(&url).await;
            server.abort();
            lat.sort_by(f64::total_cmp);
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            let hits: u64 = stats.iter().map(|s| s.hits.load(Ordering::Relaxed)).sum();
            let misses: u64 = stats.iter().map(|s| s.misses.load(Ordering::Relaxed)).sum();
            println!(
                "| {} | {ok} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0}% |",
                policy.as_str(),
                lat.iter().sum::<f64>() / lat.len() as f64,
                pct(0.5),
                pct(0.99),
                ok as f64 / secs,
                100.0 * hits as f64 / (hits + misses).max(1) as f64
            );
        }
    });
}

#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
}

async fn start_context_workers() -> (Vec<String>, Vec<Arc<Stats>>) {
    let answer = Bytes::from_static(CTX);
    let mut urls = Vec::new();
    let mut all = Vec::new();
    for _ in 0..WORKERS {
        let stats = Arc::new(Stats::default());
        let cache = Arc::new(Mutex::new(VecDeque::<Bytes>::new()));
        let (s, a) = (stats.clone(), answer.clone());
        let app = Router::new().route(
            "/v1/completions",
            post(move |body: Bytes| {
                let (stats, cache, answer) = (s.clone(), cache.clone(), a.clone());
                async move {
                    if !cached(&cache, prefix_of(&body)) {
                        stats.misses.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(MISS_COST).await;
                    } else {
                        stats.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    canned(answer, body).await
                }
            }),
        );
        let app = app.fallback(any(|b: Bytes| canned(Bytes::from_static(b"{}"), b)));
        urls.push(bind(app).await);
        all.push(stats);
    }
    (urls, all)
}

/// LRU lookup-and-insert; true on a hit.
fn cached(cache: &Mutex<VecDeque<Bytes>>, key: Bytes) -> bool {
    let Ok(mut c) = cache.lock() else {
        return false;
    };
    if let Some(i) = c.iter().position(|k| *k == key) {
        let k = c.remove(i).unwrap_or_default();
        c.push_front(k);
        return true;
    }
    c.push_front(key);
    c.truncate(CACHE_SLOTS);
    false
}

/// The first 1024 bytes of the prompt string: what the worker's cache is keyed on.
fn prefix_of(body: &Bytes) -> Bytes {
    const KEY: &[u8] = b"\"prompt\":\"";
    let start = body
        .windows(KEY.len())
        .position(|w| w == KEY)
        .map_or(0, |i| i + KEY.len());
    body.slice(start..(start + 1024).min(body.len()))
}

async fn load(url: &str) -> (usize, Vec<f64>, f64) {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let prefixes: Vec<String> = (0..PREFIXES)
        .map(|p| words(p as u64 + 1, PREFIX_BYTES / 6))
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, prefixes, next) = (
                client.clone(),
                url.to_string(),
                prefixes.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n as usize >= REQUESTS || started.elapsed() > RUN_LIMIT {
                        return lat;
                    }
                    // A fixed pseudo-random prefix per request number, the same for every policy.
                    let p = &prefixes
                        [(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % PREFIXES];
                    let prompt = format!("{p}{}", words(1_000_000 + n, 30));
                    let body = format!(r#"{{"model":"m","prompt":"{prompt}","max_tokens":4}}"#);
                    let t = Instant::now();
                    let ok = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                }
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    (lat.len(), lat, started.elapsed().as_secs_f64())
}

fn words(seed: u64, n: usize) -> String {
    let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut s = String::with_capacity(n * 6);
    for _ in 0..n {
        for _ in 0..5 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(char::from(b'a' + (x % 26) as u8));
        }
        s.push(' ');
    }
    s
}

async fn bind(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn canned(body: Bytes, _request: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

const CTX: &[u8] = br#"{"id":"ctx","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"x","finish_reason":"length","disaggregated_params":{"request_type":"context_only","first_gen_tokens":[7],"ctx_request_id":1,"encoded_opaque_state":null,"draft_tokens":null}}],"prompt_token_ids":[1,2,3],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

const GEN: &[u8] = br#"{"id":"gen","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the end","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
