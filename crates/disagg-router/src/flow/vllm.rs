//! vLLM's flow: a prefill request (`max_tokens: 1`, asking for `kv_transfer_params`) to a
//! context worker, then the decode request carrying the returned params to a generation worker;
//! both legs carry one `X-Request-Id` (PROTOCOLS.md §2).

use axum::response::Response;
use http::header::HeaderValue;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{RequestDeadline, context_call, on_one_worker};
use crate::request::ClientRequest;
use crate::vllm;

pub(super) async fn flow(
    state: &Inner,
    req: &ClientRequest,
    request_id: HeaderValue,
    deadline: RequestDeadline,
) -> Result<Response, ProxyError> {
    // vLLM answers a batch's prefill with the hand-off of its first prompt only
    // (`final_res_batch[0].kv_transfer_params`): the others would decode on the wrong cache, or
    // fail to read it, and their prefilled blocks stay held.
    if let Some(n) = req.batch().filter(|&n| n > 1) {
        return Err(ProxyError::BadRequest(format!(
            "`prompt` is a batch of {n} prompts: a vLLM prefill hands off the KV cache of its \
             first prompt only, so the others would be decoded on the wrong cache; send each \
             prompt as a request of its own"
        )));
    }
    // No prefill whose KV no generation worker could take (it would stay held on the context
    // worker until it times out): the 503 first.
    state.decode.any_healthy()?;
    let path = req.endpoint.path();
    let prefill_body = vllm::prefill_body(req);
    let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
    let carried = req.carried(Some(request_id));
    let carried = &carried;
    let (ctx_lease, answer) = on_one_worker(
        state,
        &state.prefill,
        req.pick_input(),
        ProxyError::is_retryable,
        |worker| {
            let body = prefill_body.clone();
            async move {
                context_call(
                    state,
                    deadline,
                    leg_deadline,
                    &worker.url,
                    path,
                    body,
                    carried,
                )
                .await
            }
        },
    )
    .await?;
    let prefilled =
        vllm::read_prefill_response(answer, req).map_err(|reason| ProxyError::BadResponse {
            leg: Leg::Context,
            worker: ctx_lease.url().to_string(),
            reason,
        })?;
    let decode_body = match prefilled {
        vllm::Prefilled::Handoff(params) => vllm::decode_body(req, &params),
        vllm::Prefilled::Finished(done) => {
            tracing::debug!(
                worker = ctx_lease.url(),
                "prefill finished the request; no decode"
            );
            return Ok(if req.stream() {
                crate::relay::sse_response(axum::body::Body::from(done.sse(req)))
            } else {
                super::json_response(done.json())
            });
        }
        vllm::Prefilled::Recompute => {
            tracing::debug!(
                worker = ctx_lease.url(),
                "prefill stopped before the client's minimum; decode recomputes it"
            );
            vllm::recompute_body(req)
        }
    };
    drop(ctx_lease);
    super::generation(state, req, deadline, decode_body, carried, None).await
}
