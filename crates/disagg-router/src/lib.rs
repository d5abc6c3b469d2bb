//! `disagg router`: a PD router in front of context and generation servers.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`RouterArgs`]: the `disagg router` flags (clap).
//! - [`RouterConfig`]: what the router needs, from flags or from a TRT-LLM `server_config.yaml`.
//! - [`serve`]: serves on a bound listener until `shutdown` resolves.
//! - [`run`]: the standalone command: binds, publishes its address, serves until SIGTERM/Ctrl-C.
//! - [`app`]: the same HTTP app without a socket, for tests and embedding.
//!
//! ```text
//! client ──POST /v1/(chat/)completions──▶ app ──▶ dispatch
//!                                                  │ 1. context leg (policy picks a worker):
//!                                                  │    request as context_only, stream=false
//!                                                  │ 2. early finish? answer from the context leg
//!                                                  │ 3. generation leg: original request +
//!                                                  │    disaggregated_params (generation_only)
//!        ◀────── relayed byte for byte ────────────┘
//! ```
//!
//! Modules: `config` (flags and `server_config.yaml`), `app` (routes, state), `dispatch` (the two
//! legs), `trtllm` (the dialect's JSON rules, no I/O), `upstream` (the pooled client and its
//! error mapping), `policy` (worker selection), `health`, `error` (every failure → one HTTP
//! response), `serve` (listener, shutdown, ready file).
//!
//! Adding a policy: a [`Policy`] variant and an arm in `policy::WorkerGroup::pick`. Adding a
//! dialect: a [`Dialect`] variant, a module beside `trtllm`, and a branch in `dispatch`.

mod app;
mod config;
mod dispatch;
mod error;
mod health;
mod policy;
mod serve;
mod trtllm;
mod upstream;

pub use app::{AppState, app};
pub use config::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT, Dialect, Policy, RouterArgs, RouterConfig,
    normalise_url,
};
pub use error::RouterError;
pub use serve::{run, serve};
