//! `disagg sim`: a simulated LLM engine speaking TensorRT-LLM's disaggregated dialect.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`SimArgs`]: the `disagg sim` flags (clap), also built by the harness from a worker
//!   group's `engine_args`.
//! - [`run`]: binds, publishes `host:port` (ready file or stdout), serves until killed.
//! - [`app`] / [`serve`] with a [`SimState`]: the same server, in-process, for tests and
//!   embedding; an [`ExitHook`] decides what a scripted crash does.
//!
//! How it works:
//! - `request` validates a `/v1/completions` body into a job: aggregated, `context_only` or
//!   `generation_only`, checked against `--role`.
//! - `tokens` is the "model": outputs are a pure function of the prompt's token ids and the
//!   position, so a generation server can verify a KV hand-off by recomputing token 0.
//! - `timing` gives every token an absolute deadline: prefill `prefill_per_token × prompt_len`,
//!   then one token per `itl` (generation_only skips prefill).
//! - `completions` sleeps to those deadlines and streams SSE frames as they fall due.
//! - `faults` scripts crashes (`--fail-after-requests`); `server` holds routes and health.

use std::path::PathBuf;
use std::time::Duration;

mod completions;
mod error;
mod faults;
mod ready;
mod request;
mod response;
mod server;
mod timing;
mod tokens;

pub use faults::ExitHook;
pub use server::{SimState, app, serve};

/// Which half of the work this sim does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimRole {
    Context,
    Generation,
    Both,
}

/// The wire dialect the sim speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    Trtllm,
}

/// `disagg sim` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Which requests this server accepts: context_only, generation_only, or both (aggregated too).
    #[arg(long, value_enum, default_value_t = SimRole::Both)]
    pub role: SimRole,
    /// Wire dialect.
    #[arg(long, value_enum, default_value_t = Dialect::Trtllm)]
    pub dialect: Dialect,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free one, published through --ready-file or stdout.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where to write `host:port` once bound (atomically). Without it, it goes to stdout.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Model name reported in responses and /v1/models.
    #[arg(long, default_value = "sim")]
    pub model: String,
    /// Time after start before /health answers 200.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub startup_delay: Duration,
    /// /health never answers 200.
    #[arg(long)]
    pub never_ready: bool,
    /// Prefill time per prompt token.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20us")]
    pub prefill_per_token: Duration,
    /// Time between generated tokens.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5ms")]
    pub itl: Duration,
    /// Exit with status 1 once this many completion requests have been served (successfully;
    /// rejected requests do not count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_after_requests: Option<u64>,
}

/// Why the sim could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Runs the sim until the process is killed (or a scripted crash exits it).
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    // Created before binding, so the startup delay counts from process start, as an engine's
    // model loading would.
    let state = SimState::new(&args, ExitHook::exit_process());
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|source| SimError::Bind {
            addr: ready::authority(&args.host, args.port),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| SimError::Bind {
            addr: ready::authority(&args.host, args.port),
            source,
        })?
        .port();
    let bound = ready::authority(&args.host, port);
    eprintln!("disagg-sim: listening on {bound}");
    eprintln!(
        "disagg-sim: role={:?} model={} prefill_per_token={:?} itl={:?} startup_delay={:?}",
        args.role, args.model, args.prefill_per_token, args.itl, args.startup_delay
    );
    ready::publish(args.ready_file.as_deref(), &bound)?;
    serve(listener, state).await
}
