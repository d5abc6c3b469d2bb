//! `disagg router`: a PD router in front of context and generation servers.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`RouterArgs`]: the `disagg router` flags (clap).
//! - [`RouterConfig`]: what the router needs, from flags or from a TRT-LLM `server_config.yaml`.
//! - [`serve`]: serves on a bound listener until `shutdown` resolves, from `threads` serving
//!   threads of its own (`disagg-shards`: one-worker runtimes; 0: on the caller's runtime).
//! - [`run`]: the standalone command: binds, publishes its address, serves until SIGTERM/Ctrl-C.
//! - [`app`]: the same HTTP app without a socket, for tests and embedding.
//!
//! ```text
//! client ──POST /v1/(chat/)completions──▶ app ──▶ flow (request parsed once, raw JSON)
//!   trtllm: context leg (context_only, stream=false) → early finish? → generation leg
//!   vllm:   prefill (max_tokens=1, kv_transfer_params request) → decode (+ returned params),
//!           one X-Request-Id on both
//!   sglang: prefill ∥ decode, same body + bootstrap_host/port/room (lists for a batch); first
//!           failure cancels both; also serves SGLang's native POST /generate
//!        ◀────── generation answer relayed byte for byte once its first byte is in ───────
//! ```
//!
//! Every leg picks a healthy worker by its group's [`Policy`], is bounded by the configured
//! deadlines (504), and is retried on another worker after a failed connection or a 5xx while
//! no byte has reached the client. Nothing is spawned per request, so a client hang-up drops
//! every upstream connection of its request.
//!
//! Modules:
//! - HTTP: `app` (routes, state), `serve` (listener, serving threads with one client each and
//!   the rest of the state shared, shutdown, ready file), `conn` (one connection), `census`
//!   (`/workers`), `metrics` (`/metrics`), `health` (`/health` and the active checker);
//! - flows: `flow` (entry, and one file per dialect: `flow/trtllm`, `flow/vllm`,
//!   `flow/sglang`), `legs` (deadline-bounded calls and the one retry loop), `relay`
//!   (streaming to the client);
//! - wire rules, no I/O: `request` and `raw` (the client body), `trtllm`, `vllm`, `sglang`;
//! - workers: `worker` (load and health of one), `policy` (+ one file per policy), `ids`;
//! - `upstream` (the pooled client), `error` (every failure → one HTTP response), `config`.
//!
//! Adding a policy: a [`Policy`] variant, a file under `policy/`, an arm in
//! `WorkerGroup::pick`. Adding a dialect: a [`Dialect`] variant, a wire-rules module beside
//! `trtllm`, a file under `flow/` and an arm in `flow::handle`.

mod app;
mod census;
mod config;
mod conn;
mod error;
mod flow;
mod health;
mod ids;
mod info;
mod legs;
mod metrics;
mod policy;
mod raw;
mod relay;
mod request;
mod serve;
mod sglang;
mod trtllm;
mod upstream;
mod vllm;
mod worker;

pub use app::{AppState, app};
pub use config::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EJECT_AFTER, DEFAULT_EJECTION_COOLDOWN,
    DEFAULT_HEADER_TIMEOUT, DEFAULT_HEALTH_INTERVAL, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INFLIGHT_BODY_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_FAILURES,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_STALL_TIMEOUT, Dialect, DisaggRequestIds, MAX_DEFAULT_THREADS,
    Policy, RouterArgs, RouterConfig, default_threads, normalise_url,
};
pub use error::{Deadline, RouterError};
pub use serve::{run, serve};
