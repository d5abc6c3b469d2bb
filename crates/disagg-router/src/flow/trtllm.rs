//! TensorRT-LLM's flow: a `context_only` request to a context worker, then, unless the context
//! leg already finished the request, a `generation_only` request carrying its
//! `disaggregated_params` to a generation worker (PROTOCOLS.md §1).

use axum::body::Body;
use axum::response::Response;
use http::header::HeaderValue;

use crate::app::Inner;
use crate::config::DisaggRequestIds;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{RequestDeadline, context_call, on_one_worker};
use crate::relay;
use crate::request::ClientRequest;
use crate::trtllm::{self, ContextOutcome};
use crate::worker::{VersionTake, Worker};

pub(super) async fn flow(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
) -> Result<Response, ProxyError> {
    // TensorRT-LLM's disaggregated server refuses a batch before any worker ("currently only
    // supports single string prompt or list of integers"): each prompt's KV hand-off needs a
    // request of its own, and a context worker would prefill them all and keep the caches.
    if let Some(n) = req.batch().filter(|&n| n > 1) {
        return Err(ProxyError::BadRequest(format!(
            "`prompt` is a batch of {n} prompts: TensorRT-LLM's disaggregated serving takes one \
             prompt per request (a string, or a list of token ids), as its own server does; send \
             each prompt as a request of its own"
        )));
    }
    // No prefill whose KV no generation worker could take (it would stay held on the context
    // worker until it times out): the 503 first.
    state.decode.any_healthy()?;
    let path = req.endpoint.path();
    let carried = req.carried(None);
    let carried = &carried;
    let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
    let (ctx_lease, (answer, sent)) = on_one_worker(
        state,
        &state.prefill,
        req.pick_input(),
        ProxyError::is_retryable,
        |worker| async move {
            // Never sent while the worker's version is unknown and being asked (the first
            // requests of a fresh router): bounded by the ask, and within the leg's deadline
            // (past it, `context_call` answers 504 at once). Checked here first so that
            // requests to a worker whose version is known build no timer.
            let auto = state.cfg.disagg_request_id == DisaggRequestIds::Auto;
            if auto && worker.version_take() == VersionTake::Pending {
                let known = crate::health::version_known(state, &worker);
                let _ = tokio::time::timeout_at(leg_deadline.0, known).await;
            }
            // A fresh id per attempt: a retried id could collide on a worker with the
            // attempt that failed (TensorRT-LLM's server regenerates it on retry too).
            let id = takes_disagg_ids(state, &worker).then(|| state.ids.disagg_request_id());
            let body = trtllm::context_body(req, id);
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
            .inspect_err(|e| {
                // A worker that refuses the id it was sent was replaced by an older version
                // without ever being out: its `/version` is asked again, not trusted for ever.
                if let (Some(_), ProxyError::Rejected { message, .. }) = (id, e) {
                    if message.contains("disagg_request_id") {
                        tracing::warn!(
                            "context worker {} refused disagg_request_id: asking its /version \
                             again",
                            worker.url
                        );
                        worker.forget_version();
                    }
                }
            })
            .map(|answer| (answer, id))
        },
    )
    .await?;
    let handoff = match trtllm::read_context_response(answer, sent) {
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
    super::generation(state, req, deadline, gen_body, carried, auth.as_ref()).await
}

/// Whether the context request to `worker` carries a `disagg_request_id`
/// (`--disagg-request-id`; `auto` goes by the worker's `/version`, see `health.rs`).
fn takes_disagg_ids(state: &Inner, worker: &Worker) -> bool {
    match state.cfg.disagg_request_id {
        DisaggRequestIds::Always => true,
        DisaggRequestIds::Never => false,
        DisaggRequestIds::Auto => worker.version_take() == VersionTake::Takes,
    }
}
