//! Measures how exactly one sim keeps its timing under many concurrent streams.
//!
//! `cargo run --release -p disagg-sim --example load -- --streams 5000 --tokens 100 --itl 20ms`
//!
//! The sim runs in this process on its own 2-thread runtime (as `disagg sim` does); the client
//! runs on another 2-thread runtime, so both share the machine's cores, as on a CI runner. Streams
//! are opened over `--ramp` so the listen backlog is not the thing being measured. Reported:
//! - client side: every gap between consecutive token chunks minus the modelled ITL (what a
//!   benchmark would see, client scheduling included);
//! - server side: `sim_token_lateness_seconds` from /metrics (how late each token left the sim
//!   against its modelled due time), at the histogram's bucket resolution.

use std::time::{Duration, Instant};

use clap::Parser;
use disagg_proto::sse::{Event, Parser as SseParser};
use disagg_sim::{ExitHook, SimArgs, SimState, serve};

#[derive(Parser)]
struct Cli {
    /// Concurrent streams.
    #[arg(long, default_value_t = 5000)]
    streams: usize,
    /// Tokens per stream.
    #[arg(long, default_value_t = 100)]
    tokens: u64,
    /// Streams are started evenly over this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    ramp: Duration,
    #[command(flatten)]
    sim: SimArgs,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let cli = Cli::parse();
    let itl = cli.sim.timing.itl;
    let sim_rt = runtime();
    let (listener, state) = sim_rt.block_on(async {
        let state = SimState::new(&cli.sim, ExitHook::new(|| ())).expect("sim flags");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        (listener, state)
    });
    let addr = listener.local_addr().expect("addr");
    sim_rt.spawn(async move {
        let _ = serve(listener, state).await;
    });

    let client_rt = runtime();
    let base = format!("http://{addr}");
    let started = Instant::now();
    let results = client_rt.block_on(run_load(&base, &cli));
    let wall = started.elapsed();
    let metrics = client_rt.block_on(async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    });
    report(&cli, itl, wall, results, &metrics);
}

struct StreamResult {
    /// Arrival of each token chunk.
    arrivals: Vec<Instant>,
    error: Option<String>,
}

async fn run_load(base: &str, cli: &Cli) -> Vec<StreamResult> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let body = serde_json::json!({
        "prompt": (0..16).collect::<Vec<u32>>(),
        "max_tokens": cli.tokens,
        "stream": true,
    });
    let url = format!("{base}/v1/completions");
    let step = cli.ramp / cli.streams.max(1) as u32;
    let t0 = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..cli.streams)
        .map(|i| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(t0 + step * i as u32).await;
                one_stream(&client, &url, &body).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| StreamResult {
            arrivals: Vec::new(),
            error: Some(e.to_string()),
        }));
    }
    out
}

async fn one_stream(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> StreamResult {
    let mut arrivals = Vec::new();
    let mut resp = match client.post(url).json(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return StreamResult {
                arrivals,
                error: Some(e.to_string()),
            };
        }
    };
    let mut parser = SseParser::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let at = Instant::now();
                for ev in parser.push(&chunk) {
                    if ev != Event::Done {
                        arrivals.push(at);
                    }
                }
            }
            Ok(None) => {
                return StreamResult {
                    arrivals,
                    error: None,
                };
            }
            Err(e) => {
                return StreamResult {
                    arrivals,
                    error: Some(e.to_string()),
                };
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The smallest bucket bound holding at least `p` of a Prometheus histogram's observations.
fn histogram_quantile(metrics: &str, name: &str, p: f64) -> Option<String> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(String, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, n) = rest.split_once("\"} ")?;
            Some((le.to_string(), n.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, n)| *n >= p * total)
        .map(|(le, _)| le.clone())
}

fn report(cli: &Cli, itl: Duration, wall: Duration, results: Vec<StreamResult>, metrics: &str) {
    let failed: Vec<_> = results.iter().filter_map(|r| r.error.as_ref()).collect();
    let complete = results
        .iter()
        .filter(|r| r.error.is_none() && r.arrivals.len() as u64 == cli.tokens)
        .count();
    let modelled = itl.as_secs_f64() * 1e3;
    let mut errors_ms: Vec<f64> = results
        .iter()
        .flat_map(|r| r.arrivals.windows(2))
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3 - modelled)
        .collect();
    errors_ms.sort_by(f64::total_cmp);
    let mut abs: Vec<f64> = errors_ms.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    println!(
        "streams {} x {} tokens, itl {:?}, wall {:.2?}",
        cli.streams, cli.tokens, itl, wall
    );
    println!("complete streams: {complete}, failed: {}", failed.len());
    if let Some(e) = failed.first() {
        println!("first failure: {e}");
    }
    println!("client gaps measured: {}", errors_ms.len());
    println!(
        "client gap error (gap - itl) ms: p1 {:+.3} p50 {:+.3} p99 {:+.3} max {:+.3}",
        percentile(&errors_ms, 0.01),
        percentile(&errors_ms, 0.5),
        percentile(&errors_ms, 0.99),
        errors_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "client |gap - itl| ms: p50 {:.3} p99 {:.3} p99.9 {:.3}",
        percentile(&abs, 0.5),
        percentile(&abs, 0.99),
        percentile(&abs, 0.999)
    );
    for p in [0.5, 0.99, 0.999] {
        println!(
            "server token lateness p{}: <= {} s",
            p * 100.0,
            histogram_quantile(metrics, "sim_token_lateness_seconds", p)
                .unwrap_or_else(|| "?".into())
        );
    }
}
