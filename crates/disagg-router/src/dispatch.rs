//! One disaggregated request, end to end, per dialect:
//! - TensorRT-LLM and vLLM are sequential: context leg, then generation leg;
//! - SGLang sends both legs at once ([`crate::dual`]).
//!
//! Nothing here is spawned: every upstream future lives inside the handler's future or the
//! response body, so a client that hangs up cancels every leg at once. (The one exception is
//! in `relay`: an SGLang prefill leg still answering after the client has its whole answer.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use reqwest::header::HeaderValue;

use crate::app::Inner;
use crate::config::Dialect;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{Clock, context_call, generation_call, with_retries};
use crate::policy::PickInput;
use crate::raw::Pieces;
use crate::relay::{self, Keep};
use crate::request::{ClientRequest, Endpoint};
use crate::trtllm::{self, ContextOutcome};
use crate::upstream::REQUEST_ID;
use crate::vllm;

pub(crate) async fn handle(
    state: &Arc<Inner>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let clock = Clock::start(state);
    let req = ClientRequest::parse(endpoint, body).map_err(ProxyError::BadRequest)?;
    match state.cfg.dialect {
        Dialect::Trtllm => trtllm_flow(state, &req, clock).await,
        Dialect::Vllm => vllm_flow(state, &req, request_id(state, headers), clock).await,
        Dialect::Sglang => crate::dual::sglang_flow(state, &req, clock).await,
    }
}

impl ClientRequest {
    pub fn pick_input(&self) -> PickInput<'_> {
        PickInput {
            prompt: self.prompt(),
            tokens: self.token_estimate(),
        }
    }
}

async fn trtllm_flow(
    state: &Inner,
    req: &ClientRequest,
    clock: Clock,
) -> Result<Response, ProxyError> {
    let path = req.endpoint.path();
    let input = req.pick_input();
    let ctx_body = trtllm::context_body(req);
    let leg_deadline = clock.leg(state.cfg.context_timeout, Deadline::Context);
    let (ctx_lease, answer) = with_retries(state, &state.prefill, input, |worker| {
        let body = ctx_body.clone();
        async move { context_call(state, clock, leg_deadline, &worker, path, body, None).await }
    })
    .await?;
    let handoff = match trtllm::read_context_response(answer) {
        Ok(ContextOutcome::Continue(handoff)) => handoff,
        Ok(ContextOutcome::Finished(done)) => {
            tracing::debug!(
                worker = ctx_lease.url(),
                "context leg finished the request; no generation"
            );
            return Ok(if req.stream() {
                relay::sse_response(Body::from(done.sse(req)))
            } else {
                json_response(done.json())
            });
        }
        Err(reason) => {
            return Err(ProxyError::BadResponse {
                leg: Leg::Context,
                worker: ctx_lease.url().to_string(),
                reason,
            });
        }
    };
    drop(ctx_lease);

    let gen_body = trtllm::generation_body(req, &handoff);
    // With a key, the hand-off's protected fields are signed as TensorRT-LLM's server does.
    let auth = state
        .cfg
        .internal_request_auth_key
        .as_deref()
        .zip(handoff.auth_payload.as_deref())
        .and_then(|(key, payload)| {
            HeaderValue::from_str(&disagg_proto::auth::sign(key, payload)).ok()
        });
    drop(handoff);
    generation(state, req, clock, gen_body, None, auth.as_ref()).await
}

async fn vllm_flow(
    state: &Inner,
    req: &ClientRequest,
    request_id: HeaderValue,
    clock: Clock,
) -> Result<Response, ProxyError> {
    let path = req.endpoint.path();
    let input = req.pick_input();
    let prefill_body = vllm::prefill_body(req);
    let leg_deadline = clock.leg(state.cfg.context_timeout, Deadline::Context);
    let id = &request_id;
    let (ctx_lease, answer) = with_retries(state, &state.prefill, input, |worker| {
        let body = prefill_body.clone();
        async move { context_call(state, clock, leg_deadline, &worker, path, body, Some(id)).await }
    })
    .await?;
    let params = vllm::read_prefill_response(answer).map_err(|reason| ProxyError::BadResponse {
        leg: Leg::Context,
        worker: ctx_lease.url().to_string(),
        reason,
    })?;
    drop(ctx_lease);
    let decode_body = vllm::decode_body(req, &params);
    generation(state, req, clock, decode_body, Some(id), None).await
}

/// The generation leg of a sequential flow, relayed once its first byte is in.
async fn generation(
    state: &Inner,
    req: &ClientRequest,
    clock: Clock,
    body: Pieces,
    request_id: Option<&HeaderValue>,
    auth: Option<&HeaderValue>,
) -> Result<Response, ProxyError> {
    let path = req.endpoint.path();
    let (lease, opened) = with_retries(state, &state.decode, req.pick_input(), |worker| {
        let body = body.clone();
        async move { generation_call(state, clock, &worker, path, body, request_id, auth).await }
    })
    .await?;
    let worker = lease.url().to_string();
    let keep = Keep {
        leases: vec![lease],
        companion: None,
    };
    Ok(relay::respond(opened, &worker, req.stream(), keep))
}

/// The client's `X-Request-Id` when it sent a usable one (so its logs line up with the
/// workers'), else a fresh one.
fn request_id(state: &Inner, headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| {
            let id = format!("disagg-{:016x}{:016x}", state.ids.next(), state.ids.next());
            HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("disagg"))
        })
}

pub(crate) fn json_response(body: Vec<u8>) -> Response {
    let mut out = Response::new(Body::from(body));
    out.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}
