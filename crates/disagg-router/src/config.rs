//! What the router serves: flags or a TensorRT-LLM `server_config.yaml`, resolved into one
//! [`RouterConfig`].

use std::path::PathBuf;
use std::time::Duration;

use disagg_proto::trtllm::{RouterType, ServerConfig, ServerGroup};

use crate::error::RouterError;

/// Whole-request deadline when nothing else says otherwise. Well below what a CI job allows, well
/// above any sane single request; TensorRT-LLM's own 180 s is too tight for long OSL sweeps.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest request body accepted. Long token-id prompts are big JSON, so this is generous; it
/// exists so one bad client cannot make the router buffer without bound.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Where the router listens when neither `--config` nor `--host`/`--port` say otherwise
/// (the same port `trtllm-serve disaggregated` uses).
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8000;

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
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
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
    /// Largest request body accepted ([`DEFAULT_MAX_BODY_BYTES`] unless set).
    pub max_body_bytes: usize,
}

impl RouterConfig {
    /// Reads TensorRT-LLM's `server_config.yaml` shape.
    pub fn from_server_config(cfg: &ServerConfig) -> Self {
        Self {
            host: cfg.hostname.clone(),
            port: cfg.port,
            dialect: Dialect::Trtllm,
            prefill: normalise_all(&cfg.context_servers.urls),
            decode: normalise_all(&cfg.generation_servers.urls),
            prefill_policy: policy_for("context_servers", &cfg.context_servers),
            decode_policy: policy_for("generation_servers", &cfg.generation_servers),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl RouterArgs {
    pub fn into_config(self) -> Result<RouterConfig, RouterError> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| RouterError::Read {
                    path: path.clone(),
                    source,
                })?;
                let server =
                    ServerConfig::from_yaml(&text).map_err(|source| RouterError::Config {
                        path: path.clone(),
                        source,
                    })?;
                RouterConfig::from_server_config(&server)
            }
            None => {
                // clap enforces these for the command line; this guards programmatic callers.
                if self.prefill.is_empty() {
                    return Err(RouterError::NoWorkers { flag: "prefill" });
                }
                if self.decode.is_empty() {
                    return Err(RouterError::NoWorkers { flag: "decode" });
                }
                RouterConfig {
                    host: DEFAULT_HOST.to_string(),
                    port: DEFAULT_PORT,
                    dialect: self.dialect,
                    prefill: normalise_all(&self.prefill),
                    decode: normalise_all(&self.decode),
                    prefill_policy: Policy::RoundRobin,
                    decode_policy: Policy::RoundRobin,
                    request_timeout: DEFAULT_REQUEST_TIMEOUT,
                    max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                }
            }
        };
        if let Some(host) = self.host {
            cfg.host = host;
        }
        if let Some(port) = self.port {
            cfg.port = port;
        }
        cfg.dialect = self.dialect;
        cfg.request_timeout = self.request_timeout;
        cfg.max_body_bytes = self.max_body_bytes;
        Ok(cfg)
    }
}

/// Only round robin exists so far; the others fall back to it loudly rather than failing, so a
/// TensorRT-LLM config still runs unchanged.
fn policy_for(group: &str, g: &ServerGroup) -> Policy {
    match g.router.kind {
        RouterType::RoundRobin => {}
        other => tracing::info!(
            "{group}.router.type {other:?} is not implemented yet; using round_robin for {group}"
        ),
    }
    Policy::RoundRobin
}

fn normalise_all(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| normalise_url(u)).collect()
}

/// `host:port`, `http://host:port` and `http://host:port/` all mean the same worker; one spelling
/// keeps URL joins and log lines uniform.
pub fn normalise_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        for (given, want) in [
            ("node-b:34567", "http://node-b:34567"),
            ("http://node-b:34567", "http://node-b:34567"),
            ("http://node-b:34567/", "http://node-b:34567"),
            (" 10.0.0.1:80 ", "http://10.0.0.1:80"),
        ] {
            assert_eq!(normalise_url(given), want, "{given}");
        }
    }
}

#[cfg(test)]
mod args_tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RouterArgs,
    }

    fn args(argv: &[&str]) -> Result<RouterArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("router").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_give_a_config() {
        let cfg = args(&[
            "--prefill",
            "a:1",
            "--prefill",
            "http://b:2/",
            "--decode",
            "c:3",
            "--port",
            "0",
            "--request-timeout",
            "2s",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(cfg.prefill, ["http://a:1", "http://b:2"]);
        assert_eq!(cfg.decode, ["http://c:3"]);
        assert_eq!((cfg.host.as_str(), cfg.port), (DEFAULT_HOST, 0));
        assert_eq!(cfg.request_timeout, Duration::from_secs(2));
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn workers_are_required_without_config() {
        assert!(args(&["--prefill", "a:1"]).is_err());
        assert!(args(&["--config", "x.yaml", "--prefill", "a:1"]).is_err());
    }

    #[test]
    fn config_file_with_host_override() {
        let dir = std::env::temp_dir().join(format!("disagg-router-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server_config.yaml");
        std::fs::write(
            &path,
            "hostname: node-a\nport: 8000\ncontext_servers: {num_instances: 1, urls: [b:1]}\n\
             generation_servers: {num_instances: 1, urls: [c:2]}\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let cfg = args(&["--config", p, "--host", "0.0.0.0"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!((cfg.host.as_str(), cfg.port), ("0.0.0.0", 8000));
        assert_eq!(cfg.prefill, ["http://b:1"]);

        std::fs::write(&path, "port: 1\n").unwrap();
        let err = args(&["--config", p]).unwrap().into_config().unwrap_err();
        assert!(matches!(err, RouterError::Config { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = args(&["--config", p]).unwrap().into_config().unwrap_err();
        assert!(matches!(err, RouterError::Read { .. }), "{err}");
    }
}
