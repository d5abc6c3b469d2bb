//! `disagg router`: a PD router in front of context and generation servers.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`RouterArgs`]: the `disagg router` flags (clap).
//! - [`RouterConfig`]: what the router needs, from flags or from a TRT-LLM `server_config.yaml`.
//! - [`serve`]: serves on a bound listener until `shutdown` resolves.
//! - [`run`]: the standalone command: binds, publishes its address, serves until SIGTERM/Ctrl-C.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use disagg_proto::trtllm::ServerConfig;

/// Wire dialect spoken to the workers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Trtllm,
}

/// How a worker is picked within one group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    RoundRobin,
}

/// `disagg router` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RouterArgs {
    /// A TensorRT-LLM disaggregated `server_config.yaml` (hostname, port, context_servers, generation_servers).
    #[arg(long, conflicts_with_all = ["prefill", "decode"])]
    pub config: Option<PathBuf>,
    /// Wire dialect spoken to the workers.
    #[arg(long, value_enum, default_value_t = Dialect::Trtllm)]
    pub dialect: Dialect,
    /// A context (prefill) worker, as host:port or http://host:port. Repeat for more.
    #[arg(long, required_unless_present = "config")]
    pub prefill: Vec<String>,
    /// A generation (decode) worker, as host:port or http://host:port. Repeat for more.
    #[arg(long, required_unless_present = "config")]
    pub decode: Vec<String>,
    /// Address to bind (overrides the config's hostname).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind (overrides the config's port); 0 picks a free one.
    #[arg(long)]
    pub port: Option<u16>,
    /// Where to write `host:port` once bound (atomically). Without it, it goes to stdout.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Deadline for a whole request, both legs included.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300s")]
    pub request_timeout: Duration,
}

/// Everything the router needs to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterConfig {
    pub host: String,
    pub port: u16,
    pub dialect: Dialect,
    /// Base URLs of context workers, normalised to `http://host:port`.
    pub prefill: Vec<String>,
    /// Base URLs of generation workers, normalised to `http://host:port`.
    pub decode: Vec<String>,
    pub prefill_policy: Policy,
    pub decode_policy: Policy,
    pub request_timeout: Duration,
}

impl RouterConfig {
    /// Reads TensorRT-LLM's `server_config.yaml` shape.
    pub fn from_server_config(cfg: &ServerConfig) -> Self {
        let _ = cfg;
        unimplemented!("router is being built")
    }
}

/// Why the router could not run.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Config {
        path: PathBuf,
        source: disagg_proto::trtllm::ServerConfigError,
    },
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

impl RouterArgs {
    pub fn into_config(self) -> Result<RouterConfig, RouterError> {
        unimplemented!("router is being built")
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests (bounded).
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: RouterConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RouterError> {
    let _ = (listener, cfg, shutdown);
    unimplemented!("router is being built")
}

/// The standalone command.
pub async fn run(args: RouterArgs) -> Result<(), RouterError> {
    let _ = args;
    unimplemented!("router is being built")
}
