//! The hand-off's own listener, where the real engines have one: an SGLang prefill serves its
//! bootstrap server on `--disaggregation-bootstrap-port` (default 8998), and every vLLM
//! NixlConnector binds its handshake side channel at
//! `VLLM_NIXL_SIDE_CHANNEL_HOST:VLLM_NIXL_SIDE_CHANNEL_PORT` plus its data-parallel rank (default
//! `localhost:5600`). Decode sims fetch KV records there (`GET /kv/{key}`), never on the HTTP
//! port, so a router or a plan that passes the wrong port, or two workers left on one default,
//! fail here as they would with the real engine.

use std::sync::Mutex;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::error::HttpError;
use crate::handoff::store::fetch_record;
use crate::server::SimState;
use crate::{Dialect, SimArgs, SimError, SimRole};

/// Which engine's listener this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SglangBootstrap,
    NixlSideChannel,
}

/// Bound, not yet served: binding happens at startup (a taken port fails the sim before it is
/// ready, as it fails the engine), serving once the runtime serves the HTTP port.
#[derive(Debug)]
pub(crate) struct SideChannel {
    pub(crate) kind: Kind,
    /// The host as configured (vLLM hands this very string to decode).
    pub(crate) host: String,
    /// The port of rank 0, as bound.
    pub(crate) port: u16,
    listeners: Mutex<Vec<std::net::TcpListener>>,
}

impl SideChannel {
    /// Binds what the dialect and role need, if anything.
    pub(crate) fn bind(args: &SimArgs) -> Result<Option<Self>, SimError> {
        let (kind, host, port, ranks) = match (args.dialect, args.role) {
            (Dialect::Sglang, SimRole::Context) => {
                (Kind::SglangBootstrap, &args.host, args.bootstrap_port, 1)
            }
            // The ranks on this node, each at the base plus its global rank.
            (Dialect::Vllm, _) => (
                Kind::NixlSideChannel,
                &args.side_channel_host,
                match args.side_channel_port {
                    0 => 0,
                    p => p.saturating_add(args.data_parallel_start_rank),
                },
                args.data_parallel_size_local
                    .unwrap_or(args.data_parallel_size),
            ),
            _ => return Ok(None),
        };
        let fail = |port: u16, source: std::io::Error| SimError::SideChannel {
            what: kind.describe(),
            addr: crate::ready::authority(host, port),
            source,
            hint: kind.hint(),
        };
        let bind_run = || -> Result<Vec<std::net::TcpListener>, SimError> {
            let first =
                std::net::TcpListener::bind((host.as_str(), port)).map_err(|e| fail(port, e))?;
            let base = first.local_addr().map_err(|e| fail(port, e))?.port();
            let mut listeners = vec![first];
            for rank in 1..ranks {
                let p = base.saturating_add(rank);
                listeners
                    .push(std::net::TcpListener::bind((host.as_str(), p)).map_err(|e| fail(p, e))?);
            }
            Ok(listeners)
        };
        // Port 0 means "any": the kernel picks rank 0's port, and the ranks above need the ports
        // after it, which another process may hold. Then another base is tried, a bounded number
        // of times; a port given explicitly fails at once, as vLLM does.
        let mut attempts = if port == 0 && ranks > 1 { 32 } else { 1 };
        let listeners = loop {
            attempts -= 1;
            match bind_run() {
                Ok(l) => break l,
                Err(e) if attempts == 0 => return Err(e),
                Err(_) => {}
            }
        };
        let base = listeners[0].local_addr().map_err(|e| fail(port, e))?.port();
        for l in &listeners {
            l.set_nonblocking(true).map_err(|e| fail(base, e))?;
        }
        Ok(Some(Self {
            kind,
            host: host.clone(),
            port: base,
            listeners: Mutex::new(listeners),
        }))
    }

    /// Serves the hand-off on every bound port, from the current runtime. Only the first call
    /// does anything.
    pub(crate) fn serve(&self, state: &SimState) -> Result<(), SimError> {
        let listeners =
            std::mem::take(&mut *self.listeners.lock().unwrap_or_else(|p| p.into_inner()));
        for l in listeners {
            let l = tokio::net::TcpListener::from_std(l).map_err(SimError::Serve)?;
            let app = app(state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    say_err!("disagg-sim: the hand-off listener failed: {e}");
                }
            });
        }
        Ok(())
    }
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::SglangBootstrap => "the SGLang bootstrap server (--bootstrap-port)",
            Kind::NixlSideChannel => {
                "the NIXL side channel (VLLM_NIXL_SIDE_CHANNEL_HOST/PORT, or --side-channel-host/--side-channel-port)"
            }
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Kind::SglangBootstrap => {
                "SGLang fails the same way: give each prefill server on a node its own bootstrap port"
            }
            Kind::NixlSideChannel => {
                "vLLM fails the same way: give each vLLM worker on a node its own VLLM_NIXL_SIDE_CHANNEL_PORT (one per data-parallel rank from there)"
            }
        }
    }
}

/// KV records, and the health check SGLang's bootstrap server also answers.
fn app(state: SimState) -> Router {
    Router::new()
        .route("/kv/{key}", get(fetch_record))
        .route("/health", get(|| async { StatusCode::OK }))
        .fallback(|uri: axum::http::Uri| async move {
            HttpError(disagg_proto::ApiError::not_found(format!(
                "no route for {} on the hand-off port",
                uri.path()
            )))
        })
        .with_state(state)
}
