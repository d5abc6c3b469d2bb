//! SGLang's flow: the same body to a prefill and a decode worker at the same time, decode's
//! answer relayed (PROTOCOLS.md §3). The two legs are raced, never awaited one after the other,
//! so whichever fails first cancels the other at once (dropping its future closes its
//! connection). Routers that awaited both in turn left the survivor hanging for up to 1800 s.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{Failed, RequestDeadline, context_call, generation_call, with_retries};
use crate::raw::Pieces;
use crate::relay::{self, Keep, Opened};
use crate::request::ClientRequest;
use crate::sglang;
use crate::worker::Lease;

pub(super) async fn flow(
    state: &Arc<Inner>,
    req: &ClientRequest,
    deadline: RequestDeadline,
) -> Result<axum::response::Response, ProxyError> {
    let input = req.pick_input();
    // A pair is retried as a pair (with a new room), avoiding only the workers that failed.
    let pick = |tried: &crate::legs::Tried| {
        let prefill = state.prefill.pick(input, tried.of(Leg::Context))?;
        Ok((
            prefill,
            state.decode.pick(input, tried.of(Leg::Generation))?,
        ))
    };
    with_retries(state, pick, |((pi, p_lease), (di, d_lease))| async move {
        let body = sglang::body(
            req,
            sglang::host_of(p_lease.url()),
            p_lease.worker.bootstrap_port,
            // A 63-bit room, as SGLang's routers draw it (mini_lb: randint(0, 2**63 - 1)).
            || state.ids.next() >> 1,
        );
        let prefill = prefill_leg(state.clone(), deadline, p_lease, req, body.clone());
        let (opened, companion) = race(state, req, deadline, &d_lease, body, prefill)
            .await
            .map_err(|(leg, error)| Failed {
                leg,
                worker: if leg == Leg::Context { pi } else { di },
                error,
            })?;
        state.prefill.record_success(pi, "it answered a request");
        state.decode.record_success(di, "it answered a request");
        let worker = d_lease.url().to_string();
        let keep = Keep {
            leases: vec![d_lease],
            companion,
        };
        Ok(relay::respond(opened, &worker, req.stream(), keep))
    })
    .await
}

/// The prefill leg while decode has not answered yet.
type Companion = Option<BoxFuture<'static, Result<(), ProxyError>>>;

/// Races both legs until decode's first byte; an error names the leg that failed first.
async fn race(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
    d_lease: &Lease,
    body: Pieces,
    mut prefill: BoxFuture<'static, Result<(), ProxyError>>,
) -> Result<(Opened, Companion), (Leg, ProxyError)> {
    let decode = generation_call(
        state,
        deadline,
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
                Err(e) => return Err((Leg::Context, e)),
            },
            opened = &mut decode => {
                let opened = opened.map_err(|e| (Leg::Generation, e))?;
                return Ok((opened, (!prefill_done).then_some(prefill)));
            }
        }
    }
}

/// The prefill leg, owning all it needs so it can outlive the handler inside the relayed body.
/// Its answer only matters as success or failure; decode's answer is the one relayed.
fn prefill_leg(
    state: Arc<Inner>,
    deadline: RequestDeadline,
    lease: Lease,
    req: &ClientRequest,
    body: Pieces,
) -> BoxFuture<'static, Result<(), ProxyError>> {
    let path = req.endpoint.path();
    async move {
        let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
        context_call(
            &state,
            deadline,
            leg_deadline,
            lease.url(),
            path,
            body,
            None,
        )
        .await
        .map(drop)
    }
    .boxed()
}
