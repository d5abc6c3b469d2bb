//! TensorRT-LLM's flow: a `context_only` request to a context worker, then, unless the context
//! leg already finished the request, a `generation_only` request carrying its
//! `disaggregated_params` to a generation worker (PROTOCOLS.md §1).

use axum::body::Body;
use axum::response::Response;
use http::header::HeaderValue;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{RequestDeadline, context_call, on_one_worker};
use crate::relay;
use crate::request::ClientRequest;
use crate::trtllm::{self, ContextOutcome};

pub(super) async fn flow(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
) -> Result<Response, ProxyError> {
    let path = req.endpoint.path();
    let ctx_body = trtllm::context_body(req);
    let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
    let (ctx_lease, answer) = on_one_worker(state, &state.prefill, req.pick_input(), |worker| {
        let body = ctx_body.clone();
        async move { context_call(state, deadline, leg_deadline, &worker, path, body, None).await }
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
                super::json_response(done.json())
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
    super::generation(state, req, deadline, gen_body, None, auth.as_ref()).await
}
