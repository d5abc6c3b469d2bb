//! `disagg bench`: a closed- and open-loop load generator with benchmark_serving's metrics and
//! outputs.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`BenchConfig`]: one sweep's settings, built from flags ([`BenchArgs`]) or from a case.
//! - [`canary`]: one small generation that must produce tokens.
//! - [`run_sweep`]: warmup + the points (closed-loop concurrencies or open-loop rates); returns
//!   per-point metrics and every request's timeline.
//! - [`text_summary`]: benchmark_serving's text block for one point (PROTOCOLS.md §4), and
//!   [`details_summary`]: what that block has no line for (failures by type, per-GPU rates).
//! - [`result`]: the result model, [`PointReport`] (one point, validity judged once) and
//!   [`ResultsFile`] (`results.json`), written here and read by the harness.
//! - [`Sweep::invalid_reason`], [`Sweep::warnings`], [`Sweep::write_outputs`].
//! - [`run`]: the standalone command.
//!
//! How it works: a seeded workload (`workload.rs`) — random token ids by default, words for chat
//! endpoints (`text.rs`), a dataset (`dataset.rs`) or shared prefixes — is serialized up front;
//! the closed loop (`closed_loop.rs`) keeps C requests in flight, the open loop
//! (`open_loop.rs`) sends on a seeded gamma schedule (`arrivals.rs`) and, uncapped, charges each
//! request from its scheduled time (under a cap, from its send), and the client (`client.rs`) records each request's monotonic
//! instants (scheduled, sent, every content chunk, end).
//! `metrics.rs` turns those timelines into benchmark_serving's numbers, and `summary.rs` prints
//! them in its exact layout so existing harness regexes keep working. A sweep is invalid when a
//! point's failure rate is over `max_failure_rate` (default 0) or any request generated no
//! tokens: numbers from a half-broken server must never look like a result.

// The console, which never panics (see `disagg_proto::say_err!`), by name in every module.
macro_rules! say_err {
    ($($arg:tt)*) => { disagg_proto::say_err!($($arg)*) };
}
macro_rules! say_raw {
    ($($arg:tt)*) => { disagg_proto::say_raw!($($arg)*) };
}

mod arrivals;
mod canary;
mod cli;
mod client;
mod closed_loop;
mod config;
mod dataset;
mod histogram;
mod metrics;
mod models;
mod open_loop;
mod outputs;
pub mod point_files;
mod progress;
pub use progress::{Live, LiveSnapshot};
mod record;
pub mod result;
mod slo;
mod summary;
mod sweep;
mod text;
mod workload;

pub use histogram::LatencyHistograms;
pub use result::{
    FigureStats, LatencyOrigin, LatencyStats, Metrics, PointId, PointReport, Problem, ProblemKind,
    RequestRate, ResultsFile, Validity,
};

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
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
    /// Percentiles to report (e.g. 50, 90), replacing the default, p99, as vLLM's
    /// `--metric-percentiles` does; p99 is computed and kept in results.json whatever the list.
    pub percentiles: Vec<f64>,
    /// Highest share of failed requests (0 to 1) a point may have and still be valid.
    pub max_failure_rate: f64,
    /// Send every request of a point even once more have failed than `max_failure_rate`
    /// allows and some waited out a limit (`timeout`, `stalled`, a router's 504). By default
    /// the point stops sending then (those in flight finish): it has failed whatever follows,
    /// and against a hung server each further wave would cost a timeout.
    pub keep_going: bool,
    /// Streams only: a request fails as `stalled` once neither it nor any other answer of the
    /// sweep has had a byte for this long, long before `request_timeout`: a hung server (one
    /// queued while others stream is not stalled).
    pub stall: Option<Duration>,
    /// Ask the server to ignore EOS so every output is exactly the requested length; shorter
    /// outputs are then counted and flagged.
    pub ignore_eos: bool,
    /// The sampling temperature sent with every request (`None`: none, the server's default).
    /// 0, greedy, is what TensorRT-LLM's and vLLM's benchmark_serving send by default.
    pub temperature: Option<f64>,
    /// More routers besides `url`; requests are spread round-robin over all of them.
    pub extra_urls: Vec<String>,
    /// Open loop: one point per rate (requests/s, `f64::INFINITY` = all at once). Empty means
    /// the closed loop over `concurrency`.
    pub request_rates: Vec<f64>,
    /// Requests per point. Required in the open loop; in the closed loop it replaces
    /// `concurrency × rounds`.
    pub num_prompts: Option<u64>,
    /// Shape of the gamma distribution of open-loop gaps: 1 is Poisson, lower is burstier.
    pub burstiness: f64,
    /// Open loop: at most this many requests in flight. A request held back waits in the
    /// client's queue; its latencies then count from its send, and the wait is its client queue
    /// time ([`PointId::latency_origin`]).
    pub max_concurrency: Option<u32>,
    /// No request of a point is sent after this much time; those in flight finish.
    pub duration_limit: Option<Duration>,
    /// Objectives for goodput; `None` leaves goodput out, as benchmark_serving does.
    pub goodput: Option<Slo>,
    /// GPUs serving the model, for tok/s per GPU; `None` leaves those numbers out.
    pub gpus: Option<NonZeroU32>,
    /// A ShareGPT JSON or a JSONL file (TensorRT-LLM's custom `{"input": {"messages": [...],
    /// "max_tokens": N}}`, or `input_ids`/`prompt` plus `output_tokens`) to take prompts and
    /// output lengths from instead of random ones.
    pub dataset: Option<PathBuf>,
    /// A local HuggingFace `tokenizer.json` to size text prompts and estimate text lengths.
    pub tokenizer: Option<PathBuf>,
    /// Random prompts that open with one of N fixed prefixes.
    pub shared_prefix: Option<SharedPrefix>,
    /// Sent as `Authorization: Bearer <key>` with every request, as benchmark_serving and
    /// `vllm bench serve` send `OPENAI_API_KEY`: servers started with an API key refuse
    /// requests without it.
    pub api_key: Option<String>,
}

/// An API key that fits an `Authorization` header (visible ASCII, no line breaks).
/// `--temperature`: a value to send, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Temperature(pub Option<f64>);

fn temperature(v: &str) -> Result<Temperature, String> {
    if v == "none" {
        return Ok(Temperature(None));
    }
    match v.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(Temperature(Some(t))),
        _ => Err(format!(
            "{v:?}: a temperature is a number, 0 or more (0 is greedy), or `none` to send none"
        )),
    }
}

fn api_key(v: &str) -> Result<String, String> {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(v.to_string())
    } else {
        Err("an API key is visible ASCII on one line (it goes into an Authorization header)".into())
    }
}

/// Shared-prefix mode: request k opens with group (k mod `groups`)'s `prefix_len`-token prefix;
/// the rest of its input (ISL minus the prefix) is fresh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedPrefix {
    pub groups: NonZeroU32,
    pub prefix_len: u32,
}

/// Goodput objectives in milliseconds; a request counts toward goodput when it meets every one
/// that is set. Parsed from `ttft:MS,tpot:MS,e2el:MS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2el_ms: Option<f64>,
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
            keep_going: false,
            stall: None,
            ignore_eos: true,
            temperature: Some(0.0),
            extra_urls: Vec::new(),
            request_rates: Vec::new(),
            num_prompts: None,
            burstiness: 1.0,
            max_concurrency: None,
            duration_limit: None,
            goodput: None,
            gpus: None,
            dataset: None,
            tokenizer: None,
            shared_prefix: None,
            api_key: None,
        }
    }
}

/// `disagg bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL (http://) of the server under test; repeat to spread the load over several routers.
    /// (`--base-url`, vLLM's and SGLang's name, is taken too.)
    #[arg(long, required = true, alias = "base-url")]
    pub url: Vec<String>,
    /// Path of the endpoint, appended to the URL: `/v1/completions`, `/v1/chat/completions`
    /// (text prompts), or SGLang's native `/generate` (`text`/`input_ids` with
    /// `sampling_params`, counted from `meta_info`).
    #[arg(long, default_value = "/v1/completions")]
    pub endpoint: String,
    /// `model` field of every request. Not given: the first model the (first) server lists at
    /// `GET /v1/models`, as `vllm bench serve` takes it (said on stderr; the bench stops if the
    /// server lists none).
    #[arg(long)]
    pub model: Option<String>,
    /// Input sequence length (tokens) of the random prompts; not with --dataset, whose entries
    /// give each request's lengths.
    /// (`--random-input-len`, vLLM's and SGLang's name, is taken too.)
    #[arg(long, required_unless_present = "dataset", alias = "random-input-len")]
    pub isl: Option<u32>,
    /// Output sequence length (tokens) of the random prompts; not with --dataset.
    /// (`--random-output-len`, vLLM's and SGLang's name, is taken too.)
    #[arg(long, required_unless_present = "dataset", alias = "random-output-len")]
    pub osl: Option<u32>,
    /// Input and output lengths are uniform in [L·(1−r), L·(1+r)]; 0 means exact.
    #[arg(long, default_value_t = 0.0)]
    pub range_ratio: f64,
    /// Closed-loop concurrency points, comma-separated [default: 1].
    #[arg(long, value_delimiter = ',', conflicts_with = "request_rate")]
    pub concurrency: Vec<u32>,
    /// Open loop: request rates (req/s, `inf` = all at once), one point each, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "num_prompts")]
    pub request_rate: Vec<f64>,
    /// Requests per point (required with --request-rate; replaces concurrency × rounds).
    #[arg(long)]
    pub num_prompts: Option<u64>,
    /// Gamma shape of open-loop gaps: 1 is Poisson, lower is burstier, `inf` evenly spaced
    /// (with --request-rate only: a closed loop has no gaps).
    #[arg(long, default_value_t = 1.0, requires = "request_rate")]
    pub burstiness: f64,
    /// Open loop: at most this many requests in flight. As in vLLM's and SGLang's benchmarks,
    /// TTFT and E2EL then count from each request's send, and its wait for a slot in the
    /// client's queue is reported apart (client queue time); without a cap they count from the
    /// scheduled time, so a client that falls behind is charged for it.
    /// Without --request-rate it is the closed loop at this concurrency: what `vllm bench serve
    /// --max-concurrency N` runs at its default rate (inf), each request counted from its send.
    #[arg(long, conflicts_with = "concurrency")]
    pub max_concurrency: Option<u32>,
    /// Stop sending a point's requests after this long, e.g. `5m`; those in flight finish.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Goodput objectives in ms, any of `ttft:MS,tpot:MS,e2el:MS`.
    #[arg(long)]
    pub goodput: Option<Slo>,
    /// GPUs serving the model, to report tok/s per GPU.
    #[arg(long)]
    pub gpus: Option<NonZeroU32>,
    /// Prompts from a ShareGPT JSON, or a JSONL file of TensorRT-LLM's custom dataset
    /// (`{"input": {"messages": [...], "max_tokens": N}}`: the user message, max_tokens) or of
    /// `input_ids`/`prompt` plus `output_tokens`; used in file order.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Local HuggingFace tokenizer.json to size text prompts (read offline).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Shared-prefix mode: this many groups, each with a common prefix.
    #[arg(long, requires = "shared_prefix_len", conflicts_with = "dataset")]
    pub shared_prefix_groups: Option<NonZeroU32>,
    /// Shared-prefix mode: prefix length in tokens (part of --isl).
    #[arg(long, requires = "shared_prefix_groups")]
    pub shared_prefix_len: Option<u32>,
    /// Requests per point = concurrency × rounds.
    #[arg(long, default_value_t = 4)]
    pub rounds: u32,
    /// Requests sent before each point and left out of its results.
    #[arg(long, default_value_t = 0)]
    pub warmup: u32,
    /// Ask for whole responses instead of streams (TTFT is then the whole request).
    /// (`--disable-stream`, SGLang's name, is taken too.)
    #[arg(long, alias = "disable-stream")]
    pub no_stream: bool,
    /// Bound on each request, e.g. `60s` or `2m`; a request over it fails as `timeout`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub request_timeout: Duration,
    /// Seed of the random prompts; the same seed sends the same requests.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Percentiles to report, comma-separated (default 99): the list replaces p99, as vLLM's
    /// --metric-percentiles does, in the summary, each point's log and benchmark_serving file.
    /// results.json and results.csv keep p99_<metric>_ms besides (the harness's perf gates
    /// read it).
    #[arg(long, value_delimiter = ',')]
    pub percentiles: Vec<f64>,
    /// Highest share of failed requests (0 to 1) a point may have and still be valid.
    #[arg(long, default_value_t = 0.0)]
    pub max_failure_rate: f64,
    /// Send every request of a point even after more have failed than --max-failure-rate
    /// allows, some by waiting out a limit (by default the point stops sending then: each
    /// further wave would wait as long; those in flight finish).
    #[arg(long)]
    pub keep_going: bool,
    /// Streams only: fail a request as `stalled`, instead of waiting out --request-timeout,
    /// once neither it nor any other answer has had a byte for this long, e.g. `5m` (a request
    /// queued in a busy server while others stream is not stalled); `0s` is off.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub stall: Option<Duration>,
    /// Ask the server to ignore EOS so outputs have exactly the requested length
    /// (`--ignore-eos=false` lets the model stop early).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub ignore_eos: bool,
    /// Sampling temperature sent with every request: 0 (greedy) by default, as TensorRT-LLM's
    /// and vLLM's benchmark_serving send; `none` sends none (the server's default, often the
    /// model's generation config).
    #[arg(long, default_value = "0", value_parser = temperature)]
    pub temperature: Temperature,
    /// Sent as `Authorization: Bearer <KEY>` with every request (servers started with an API
    /// key refuse requests without it); read from OPENAI_API_KEY as benchmark_serving does.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true, value_parser = api_key)]
    pub api_key: Option<String>,
    /// Where to write results.json, summary.txt, results.csv, requests.jsonl, hdr/ and each
    /// point's benchmark.<label>.log/.json. An earlier run's files there are first moved into
    /// earlier-<UTC time>/ in it (said on stderr): never mixed with this run's, never lost.
    /// (`--result-dir`, vLLM's name, is taken too.)
    #[arg(long, alias = "result-dir")]
    pub output_dir: Option<PathBuf>,
}

impl BenchArgs {
    /// The sweep these flags describe; checked when the sweep starts.
    pub fn to_config(&self) -> BenchConfig {
        cli::to_config(self)
    }
}

/// One point of the sweep: its report (what is written and read back) and what only the bench
/// keeps (every request's timeline, the HDR histograms).
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    pub report: PointReport,
    /// Every measured request's timeline, in request order (warmup excluded).
    pub requests: Vec<RequestRecord>,
    /// TTFT, TPOT, ITL and E2EL in HDR histograms (nanoseconds).
    pub histograms: LatencyHistograms,
    /// What makes its numbers less sure without making them invalid (answers that came
    /// without token counts), each a sentence; in `results.json`'s `warnings`.
    pub warnings: Vec<String>,
}

/// One request's monotonic timeline. Times are nanoseconds from the point's first scheduled
/// send; `scheduled_ns` is when the load model meant to send it, `sent_ns` when it left.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestRecord {
    /// Position in the point's request sequence (the same seed gives the same request here).
    pub index: u64,
    /// Which URL (0 = `url`, then `extra_urls` in order) it was sent to.
    pub url_index: usize,
    pub scheduled_ns: u64,
    pub sent_ns: u64,
    /// Arrival of every chunk that carried text.
    pub chunk_ns: Vec<u64>,
    pub end_ns: u64,
    pub input_tokens: u64,
    /// `None` for a failed request.
    pub output_tokens: Option<u64>,
    /// The length the server was held to with `ignore_eos`, if it was.
    pub requested_output_tokens: Option<u32>,
    /// The failure kind (`http_500`, `timeout`, `zero_tokens`, ...) of a failed request.
    pub error: Option<String>,
    /// What the server said when it refused or failed the request (`http_*`): the message of
    /// its error body, whatever its shape. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub points: Vec<PointResult>,
}

impl Sweep {
    /// Why these results are not valid, if they are not: a point whose failure rate is over the
    /// limit, any request with zero generated tokens, a point with no output at all.
    pub fn invalid_reason(&self) -> Option<String> {
        sweep::invalid_reason(self)
    }

    /// Every point's warnings, each prefixed with its point's label, in order.
    pub fn warnings(&self) -> Vec<String> {
        self.points
            .iter()
            .flat_map(|p| {
                let label = p.report.point.label();
                p.warnings.iter().map(move |w| format!("{label}: {w}"))
            })
            .collect()
    }

    /// Each point's report, in order.
    pub fn reports(&self) -> Vec<PointReport> {
        self.points.iter().map(|p| p.report.clone()).collect()
    }

    /// Writes results.json, summary.txt, results.csv, requests.jsonl and the HDR distributions
    /// (`hdr/point<N>_<metric>.hgrm`) into `dir`, creating it.
    pub fn write_outputs(&self, dir: &Path) -> Result<(), BenchError> {
        outputs::write(dir, self, None)
    }
}

/// Why the bench could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("canary request to {url} failed: {reason}")]
    Canary { url: String, reason: String },
    #[error("bad settings: {0}")]
    Config(String),
    /// `--model` was not given and the server did not name one.
    #[error(
        "--model was not given, and GET {url} named no model to take: {reason}\nhint: pass \
         --model NAME (the name the server serves)"
    )]
    Model { url: String, reason: String },
    #[error("dataset {}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Dataset {
        path: PathBuf,
        /// 1-based line of the bad entry, when one is to blame.
        line: Option<usize>,
        reason: String,
    },
    #[error("tokenizer {}: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A signal (SIGINT, SIGTERM, SIGHUP) stopped the sweep; the finished points were kept.
    #[error("interrupted by {name}")]
    Interrupted { signal: i32, name: &'static str },
}

/// Reads the dataset and tokenizer `cfg` names, as a sweep would before sending anything: a
/// file that cannot be read or parsed (a bad line, no usable entry), or token ids for a chat
/// endpoint, is the error a sweep would stop on, found before any server starts.
pub fn check_inputs(cfg: &BenchConfig) -> Result<(), BenchError> {
    workload::Workload::new(cfg).map(drop)
}

/// The checks of `cfg`'s settings a sweep makes before it builds or sends anything (lengths,
/// counts, bounds, this process's open-files limit): a load no machine can serve, refused.
pub fn check_settings(cfg: &BenchConfig) -> Result<(), BenchError> {
    cfg.validate()
}

/// Sends one small generation; it must succeed and produce tokens.
pub async fn canary(cfg: &BenchConfig) -> Result<(), BenchError> {
    canary::canary(cfg).await
}

/// Runs warmup and every concurrency point, in order.
pub async fn run_sweep(cfg: &BenchConfig) -> Result<Sweep, BenchError> {
    sweep::run_sweep(cfg, None, &mut |_| std::ops::ControlFlow::Continue(())).await
}

/// [`run_sweep`], calling `on_point` with each point as soon as it is measured, before the next
/// point starts: to add what is measured elsewhere (a server figure) and to write its files.
pub async fn run_sweep_with(
    cfg: &BenchConfig,
    mut on_point: impl FnMut(&mut PointResult),
) -> Result<Sweep, BenchError> {
    sweep::run_sweep(cfg, None, &mut |p| {
        on_point(p);
        std::ops::ControlFlow::Continue(())
    })
    .await
}

/// [`run_sweep_with`], where `on_point` also decides whether the sweep goes on: `Break` ends it
/// after that point (a harness whose run is over, for one), and the points measured so far are
/// the sweep.
pub async fn run_sweep_until(
    cfg: &BenchConfig,
    mut on_point: impl FnMut(&mut PointResult) -> std::ops::ControlFlow<()>,
) -> Result<Sweep, BenchError> {
    sweep::run_sweep(cfg, None, &mut on_point).await
}

/// [`run_sweep_until`], keeping `live` up to date with the point being measured, so another
/// task can show how far the sweep is ([`Live::snapshot`]).
pub async fn run_sweep_live(
    cfg: &BenchConfig,
    live: &Live,
    mut on_point: impl FnMut(&mut PointResult) -> std::ops::ControlFlow<()>,
) -> Result<Sweep, BenchError> {
    sweep::run_sweep(cfg, Some(live), &mut on_point).await
}

/// benchmark_serving's text block for one point.
pub fn text_summary(point: &PointReport) -> String {
    summary::text_summary(point)
}

/// What benchmark_serving's block has no line for, printed after it: failures by type. Empty
/// when there is nothing to say.
pub fn details_summary(point: &PointReport) -> String {
    summary::details_summary(point)
}

/// The standalone command; `Ok(false)` when the results are invalid.
pub async fn run(args: BenchArgs) -> Result<bool, BenchError> {
    cli::run(args).await
}
