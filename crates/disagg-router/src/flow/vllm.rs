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
    let path = req.endpoint.path();
    let prefill_body = vllm::prefill_body(req);
    let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
    let id = &request_id;
    let (ctx_lease, answer) = on_one_worker(state, &state.prefill, req.pick_input(), |worker| {
        let body = prefill_body.clone();
        async move {
            context_call(
                state,
                deadline,
                leg_deadline,
                &worker.url,
                path,
                body,
                Some(id),
            )
            .await
        }
    })
    .await?;
    let params = vllm::read_prefill_response(answer).map_err(|reason| ProxyError::BadResponse {
        leg: Leg::Context,
        worker: ctx_lease.url().to_string(),
        reason,
    })?;
    drop(ctx_lease);
    let decode_body = vllm::decode_body(req, &params);
    super::generation(state, req, deadline, decode_body, Some(id), None).await
}
