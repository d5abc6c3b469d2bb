//! `disagg bench`: a closed-loop load generator with benchmark_serving's metrics and outputs.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`BenchConfig`]: one sweep's settings, built from flags ([`BenchArgs`]) or from a case.
//! - [`canary`]: one small generation that must produce tokens.
//! - [`run_sweep`]: warmup + the closed-loop points; returns per-point metrics.
//! - [`text_summary`]: benchmark_serving's text block for one point (PROTOCOLS.md §4).
//! - [`run`]: the standalone command.
//!
//! How it works: a seeded workload (`workload.rs`) of random token-id prompts is serialized up
//! front; the closed loop (`closed_loop.rs`) keeps C requests in flight, and the client
//! (`client.rs`) records each request's monotonic instants (sent, every content chunk, end).
//! `metrics.rs` turns those timelines into benchmark_serving's numbers, and `summary.rs` prints
//! them in its exact layout so existing harness regexes keep working. A sweep is invalid when a
//! point's failure rate is over `max_failure_rate` (default 0) or any request generated no
//! tokens: numbers from a half-broken server must never look like a result.

mod canary;
mod cli;
mod client;
mod closed_loop;
mod config;
mod metrics;
mod summary;
mod sweep;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One sweep's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// `/v1/completions`.
    pub endpoint: String,
    pub model: String,
    pub isl: u32,
    pub osl: u32,
    /// Lengths uniform in [L·(1−r), L·(1+r)].
    pub range_ratio: f64,
    pub concurrency: Vec<u32>,
    /// Prompts per point = concurrency × rounds.
    pub rounds: u32,
    /// Requests sent before each point and left out of its results.
    pub warmup: u32,
    pub streaming: bool,
    pub request_timeout: Duration,
    pub seed: u64,
    /// Extra percentiles to report besides p99 (e.g. 50, 90).
    pub percentiles: Vec<f64>,
    /// Highest share of failed requests (0 to 1) a point may have and still be valid.
    pub max_failure_rate: f64,
    /// Ask the server to ignore EOS so every output is exactly the requested length; shorter
    /// outputs are then counted and flagged.
    pub ignore_eos: bool,
}

impl Default for BenchConfig {
    /// The standalone command's defaults, so callers can write `..BenchConfig::default()`.
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8000".into(),
            endpoint: "/v1/completions".into(),
            model: "sim".into(),
            isl: 1024,
            osl: 128,
            range_ratio: 0.0,
            concurrency: vec![1],
            rounds: 4,
            warmup: 0,
            streaming: true,
            request_timeout: Duration::from_secs(60),
            seed: 0,
            percentiles: Vec::new(),
            max_failure_rate: 0.0,
            ignore_eos: true,
        }
    }
}

/// `disagg bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server under test.
    #[arg(long)]
    pub url: String,
    /// Path of the completions endpoint, appended to the URL.
    #[arg(long, default_value = "/v1/completions")]
    pub endpoint: String,
    /// `model` field of every request.
    #[arg(long, default_value = "sim")]
    pub model: String,
    /// Input sequence length (tokens).
    #[arg(long)]
    pub isl: u32,
    /// Output sequence length (tokens).
    #[arg(long)]
    pub osl: u32,
    /// Input and output lengths are uniform in [L·(1−r), L·(1+r)]; 0 means exact.
    #[arg(long, default_value_t = 0.0)]
    pub range_ratio: f64,
    /// Concurrency points, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub concurrency: Vec<u32>,
    /// Requests per point = concurrency × rounds.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Requests sent before each point and left out of its results.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    /// Ask for whole responses instead of streams (TTFT is then the whole request).
    #[arg(long)]
    pub no_stream: bool,
    /// Bound on each request, e.g. `60s` or `2m`; a request over it fails as `timeout`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub request_timeout: Duration,
    /// Seed of the random prompts; the same seed sends the same requests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Percentiles to report besides p99, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub percentiles: Vec<f64>,
    /// Highest share of failed requests (0 to 1) a point may have and still be valid.
    #[arg(long, default_value_t = 0.0)]
    pub max_failure_rate: f64,
    /// Ask the server to ignore EOS so outputs have exactly the requested length
    /// (`--ignore-eos=false` lets the model stop early).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub ignore_eos: bool,
    /// Where to write results.json and the text summary.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

impl BenchArgs {
    /// The sweep these flags describe; checked when the sweep starts.
    pub fn to_config(&self) -> BenchConfig {
        cli::to_config(self)
    }
}

/// Latency statistics of one metric, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LatencyStats {
    pub mean_ms: f64,
    pub median_ms: f64,
    pub std_ms: f64,
    pub p99_ms: f64,
    /// (percentile, value) for each extra percentile requested.
    pub percentiles: Vec<(f64, f64)>,
}

/// One concurrency point's results (PROTOCOLS.md §4 definitions).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub duration_s: f64,
    pub completed: u64,
    pub failed: u64,
    /// Requests that completed with zero generated tokens (also counted in `failed`).
    pub zero_token_requests: u64,
    /// With `ignore_eos`, completed requests that generated fewer tokens than requested.
    pub short_outputs: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub user_throughput: f64,
    /// The latest any request left after its scheduled time: how far the client fell behind
    /// its own load model (always 0 in a closed loop, where requests are due when sent).
    pub max_send_lag_ms: f64,
    pub ttft: LatencyStats,
    pub tpot: LatencyStats,
    pub itl: LatencyStats,
    pub e2el: LatencyStats,
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    pub concurrency: u32,
    pub metrics: Metrics,
    /// Failed requests by error kind.
    pub errors: BTreeMap<String, u64>,
}

impl PointResult {
    /// benchmark_serving's JSON keys (`duration`, `completed`, ..., `p99_ttft_ms`, `max_concurrency`, ...).
    pub fn to_json(&self) -> serde_json::Value {
        summary::to_json(self)
    }
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub points: Vec<PointResult>,
    /// The failure-rate limit the sweep was run with ([`BenchConfig::max_failure_rate`]).
    pub max_failure_rate: f64,
}

impl Sweep {
    /// Why these results are not valid, if they are not: a point whose failure rate is over the
    /// limit, any request with zero generated tokens, a point with no output at all.
    pub fn invalid_reason(&self) -> Option<String> {
        sweep::invalid_reason(self)
    }

    /// Problems that do not invalidate the results but must be seen (outputs shorter than
    /// requested despite `ignore_eos`).
    pub fn warnings(&self) -> Vec<String> {
        sweep::warnings(self)
    }
}

/// Why the bench could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("canary request to {url} failed: {reason}")]
    Canary { url: String, reason: String },
    #[error("bad settings: {0}")]
    Config(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Sends one small generation; it must succeed and produce tokens.
pub async fn canary(cfg: &BenchConfig) -> Result<(), BenchError> {
    canary::canary(cfg).await
}

/// Runs warmup and every concurrency point, in order.
pub async fn run_sweep(cfg: &BenchConfig) -> Result<Sweep, BenchError> {
    sweep::run_sweep(cfg).await
}

/// benchmark_serving's text block for one point.
pub fn text_summary(point: &PointResult) -> String {
    summary::text_summary(point)
}

/// What benchmark_serving's block has no line for, printed after it: failures by type and
/// short outputs. Empty when there is nothing to say.
pub fn details_summary(point: &PointResult) -> String {
    summary::details_summary(point)
}

/// The standalone command; `Ok(false)` when the results are invalid.
pub async fn run(args: BenchArgs) -> Result<bool, BenchError> {
    cli::run(args).await
}
