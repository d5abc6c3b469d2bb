//! SGLang's flow: the same body to a prefill and a decode worker at the same time, decode's
//! answer relayed (PROTOCOLS.md §3). The two legs are raced, never awaited one after the other,
//! so whichever fails first cancels the other at once (dropping its future closes its
//! connection). Routers that awaited both in turn left the survivor hanging for up to 1800 s.
//!
//! One answer is rewritten rather than relayed: a whole `/generate` answer asked with
//! `return_logprob`, whose `meta_info.input_token_logprobs` is prefill's followed by decode's,
//! as SGLang's routers merge them (mini_lb's `generate` in
//! `python/sglang/srt/disaggregation/mini_lb.py`; `merge_logprobs_in_json` in sgl-router's
//! `sgl-router/src/routers/http/pd_router.rs`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

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
        let failed = |(leg, error)| Failed {
            leg,
            worker: if leg == Leg::Context { pi } else { di },
            error,
        };
        let (opened, prefill) = race(state, req, deadline, &d_lease, body, prefill)
            .await
            .map_err(failed)?;
        let merge = req.return_logprob() && !req.stream();
        if merge {
            let resp = merged(state, deadline, &d_lease, opened, prefill)
                .await
                .map_err(failed)?;
            state.prefill.record_success(pi, "it answered a request");
            state.decode.record_success(di, "it answered a request");
            return Ok(resp);
        }
        state.prefill.record_success(pi, "it answered a request");
        state.decode.record_success(di, "it answered a request");
        let worker = d_lease.url().to_string();
        let companion = match prefill {
            Prefill::Done(_) => None,
            Prefill::Running(f) => Some(f.map(|r| r.map(drop)).boxed()),
        };
        let keep = Keep {
            leases: vec![d_lease],
            companion,
        };
        Ok(relay::respond(opened, &worker, req.stream(), keep))
    })
    .await
}

/// The prefill leg when decode's first byte is in: answered, or still running.
enum Prefill {
    Done(Bytes),
    Running(BoxFuture<'static, Result<Bytes, ProxyError>>),
}

/// Races both legs until decode's first byte; an error names the leg that failed first.
async fn race(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
    d_lease: &Lease,
    body: Pieces,
    mut prefill: BoxFuture<'static, Result<Bytes, ProxyError>>,
) -> Result<(Opened, Prefill), (Leg, ProxyError)> {
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
    let mut answered = None;
    loop {
        tokio::select! {
            done = &mut prefill, if answered.is_none() => match done {
                Ok(b) => answered = Some(b),
                Err(e) => return Err((Leg::Context, e)),
            },
            opened = &mut decode => {
                let opened = opened.map_err(|e| (Leg::Generation, e))?;
                return Ok((opened, match answered {
                    Some(b) => Prefill::Done(b),
                    None => Prefill::Running(prefill),
                }));
            }
        }
    }
}

/// Decode's whole `/generate` answer with prefill's `input_token_logprobs` put before its own
/// (per object, for a batch's list). Anything else (an error status, an answer that is not
/// JSON, or without the arrays) is passed on as decode gave it, as upstream does.
async fn merged(
    state: &Inner,
    deadline: RequestDeadline,
    d_lease: &Lease,
    opened: Opened,
    prefill: Prefill,
) -> Result<axum::response::Response, (Leg, ProxyError)> {
    let t = state.target(Leg::Generation, d_lease.url(), deadline);
    let limit = state.cfg.max_body_bytes;
    let decode = opened
        .read_all(t, limit)
        .await
        .map_err(|e| (Leg::Generation, e))?;
    let prefill = match prefill {
        Prefill::Done(b) => b,
        Prefill::Running(f) => f.await.map_err(|e| (Leg::Context, e))?,
    };
    let (status, body) = decode;
    let body = match (
        serde_json::from_slice::<Value>(&body),
        serde_json::from_slice::<Value>(&prefill),
    ) {
        (Ok(mut d), Ok(p)) if status.is_success() => {
            match (&mut d, &p) {
                (Value::Array(ds), Value::Array(ps)) => {
                    for (d, p) in ds.iter_mut().zip(ps) {
                        merge_input_logprobs(d, p);
                    }
                }
                (d, p) => merge_input_logprobs(d, p),
            }
            Bytes::from(serde_json::to_vec(&d).unwrap_or_default())
        }
        _ => body,
    };
    let mut resp = super::json_response(body.to_vec());
    *resp.status_mut() = status;
    Ok(resp)
}

/// `meta_info.input_token_logprobs`: prefill's, then decode's, when both have the list.
fn merge_input_logprobs(decode: &mut Value, prefill: &Value) {
    let Some(p) = prefill["meta_info"]["input_token_logprobs"].as_array() else {
        return;
    };
    if let Some(Value::Array(d)) = decode
        .get_mut("meta_info")
        .and_then(|m| m.get_mut("input_token_logprobs"))
    {
        let mine = std::mem::take(d);
        d.extend(p.iter().cloned());
        d.extend(mine);
    }
}

/// The prefill leg, owning all it needs so it can outlive the handler inside the relayed body.
/// Its answer matters as success or failure, and for `return_logprob`'s merge; decode's answer
/// is the one relayed.
fn prefill_leg(
    state: Arc<Inner>,
    deadline: RequestDeadline,
    lease: Lease,
    req: &ClientRequest,
    body: Pieces,
) -> BoxFuture<'static, Result<Bytes, ProxyError>> {
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
    }
    .boxed()
}
