//! SGLang's flow: the same body to a prefill and a decode worker at the same time, decode's
//! answer relayed. The two legs are raced, never awaited one after the other, so whichever
//! fails first cancels the other at once (dropping its future closes its connection). Routers
//! that awaited both in turn left the survivor hanging for up to 1800 s.

use std::sync::Arc;

use crate::raw::Pieces;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::app::Inner;
use crate::error::{Deadline, ProxyError};
use crate::legs::{Clock, context_call, generation_call};
use crate::relay::{self, Keep, Opened};
use crate::request::ClientRequest;
use crate::sglang;
use crate::worker::Lease;

pub(crate) async fn sglang_flow(
    state: &Arc<Inner>,
    req: &ClientRequest,
    clock: Clock,
) -> Result<axum::response::Response, ProxyError> {
    let input = req.pick_input();
    let (mut tried_p, mut tried_d) = (Vec::new(), Vec::new());
    let mut last: Option<ProxyError> = None;
    loop {
        // A pair is retried as a pair (with a new room), avoiding only the worker that failed.
        let picked = state
            .prefill
            .pick(input, &tried_p)
            .and_then(|p| Ok((p, state.decode.pick(input, &tried_d)?)));
        let ((pi, p_lease), (di, d_lease)) = match picked {
            Ok(pair) => pair,
            Err(unhealthy) => return Err(last.unwrap_or(unhealthy)),
        };
        let body = sglang::body(
            req,
            sglang::host_of(p_lease.url()),
            p_lease.worker.bootstrap_port,
            state.ids.next() >> 1,
        );
        let prefill = prefill_leg(state.clone(), clock, p_lease, req, body.clone());
        match race(state, req, clock, &d_lease, body, prefill).await {
            Ok((opened, companion)) => {
                state.prefill.record_success(pi, "it answered a request");
                state.decode.record_success(di, "it answered a request");
                let worker = d_lease.url().to_string();
                let keep = Keep {
                    leases: vec![d_lease],
                    companion,
                };
                return Ok(relay::respond(opened, &worker, req.stream(), keep));
            }
            Err((failed_prefill, e)) => {
                let retries = tried_p.len() + tried_d.len();
                let (group, i, tried) = if failed_prefill {
                    (&state.prefill, pi, &mut tried_p)
                } else {
                    (&state.decode, di, &mut tried_d)
                };
                if e.is_unreachable() {
                    group.record_failure(i, &e);
                }
                if !e.is_retryable() || retries >= state.cfg.max_retries as usize {
                    return Err(e);
                }
                tracing::info!("{e}; retrying the pair");
                group
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tried.push(i);
                last = Some(e);
            }
        }
    }
}

type Companion = Option<BoxFuture<'static, Result<(), ProxyError>>>;

/// Races both legs until decode's first byte. `Err((true, _))` is a prefill failure.
async fn race(
    state: &Inner,
    req: &ClientRequest,
    clock: Clock,
    d_lease: &Lease,
    body: Pieces,
    mut prefill: BoxFuture<'static, Result<(), ProxyError>>,
) -> Result<(Opened, Companion), (bool, ProxyError)> {
    let decode = generation_call(
        state,
        clock,
        d_lease.url(),
        req.endpoint.path(),
        body,
        None,
        None,
    );
    tokio::pin!(decode);
    let mut prefill_done = false;
    loop {
        tokio::select! {
            done = &mut prefill, if !prefill_done => match done {
                Ok(()) => prefill_done = true,
                Err(e) => return Err((true, e)),
            },
            opened = &mut decode => {
                let opened = opened.map_err(|e| (false, e))?;
                return Ok((opened, (!prefill_done).then_some(prefill)));
            }
        }
    }
}

/// The prefill leg, owning all it needs so it can outlive the handler inside the relayed body.
/// Its answer only matters as success or failure; decode's answer is the one relayed.
fn prefill_leg(
    state: Arc<Inner>,
    clock: Clock,
    lease: Lease,
    req: &ClientRequest,
    body: Pieces,
) -> BoxFuture<'static, Result<(), ProxyError>> {
    let path = req.endpoint.path();
    async move {
        let leg_deadline = clock.leg(state.cfg.context_timeout, Deadline::Context);
        context_call(&state, clock, leg_deadline, lease.url(), path, body, None)
            .await
            .map(drop)
    }
    .boxed()
}
