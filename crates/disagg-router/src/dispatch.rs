//! One disaggregated request, end to end: context leg, then (unless it already finished)
//! generation leg, whose answer is relayed to the client as it arrives.
//!
//! Nothing here is spawned: every upstream future lives inside the handler's future or the
//! response body, so a client that hangs up cancels both legs at once.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::time::Instant;

use crate::app::Inner;
use crate::error::{Leg, ProxyError};
use crate::policy::WorkerGroup;
use crate::trtllm::{ClientRequest, ContextOutcome, Endpoint, read_context_response};
use crate::upstream;

pub(crate) async fn handle(
    state: &Inner,
    endpoint: Endpoint,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let deadline = Instant::now() + state.cfg.request_timeout;
    let req = ClientRequest::parse(endpoint, &body).map_err(ProxyError::BadRequest)?;
    // The raw body is no longer needed; free it before the (possibly long) generation leg.
    drop(body);

    let ctx = pick(&state.prefill)?;
    let resp = upstream::post_json(
        &state.client,
        Leg::Context,
        ctx,
        endpoint.path(),
        req.context_body(),
        deadline,
    )
    .await?;
    let bytes = upstream::read_body(Leg::Context, ctx, resp, deadline).await?;
    let handoff = match read_context_response(&bytes) {
        Ok(ContextOutcome::Continue(handoff)) => handoff,
        Ok(ContextOutcome::Finished(resp)) => {
            tracing::debug!(
                worker = ctx,
                "context leg finished the request; no generation"
            );
            return Ok(if req.stream() {
                sse_response(Body::from(crate::trtllm::early_finish_sse(&req, &resp)))
            } else {
                axum::Json(resp).into_response()
            });
        }
        Err(reason) => {
            return Err(ProxyError::BadResponse {
                leg: Leg::Context,
                worker: ctx.to_string(),
                reason,
            });
        }
    };
    drop(bytes);

    let gen_worker = pick(&state.decode)?;
    let resp = upstream::post_json(
        &state.client,
        Leg::Generation,
        gen_worker,
        endpoint.path(),
        req.generation_body(&handoff),
        deadline,
    )
    .await?;
    Ok(relay(resp, Leg::Generation, gen_worker, req.stream()))
}

/// Relays a worker's response without buffering or re-parsing: every chunk goes out as it comes
/// in. A failure mid-body aborts the client's response, which is the only honest signal left once
/// the status line is sent.
pub(crate) fn relay(resp: reqwest::Response, leg: Leg, worker: &str, stream: bool) -> Response {
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let worker = worker.to_string();
    let body = Body::from_stream(resp.bytes_stream().inspect_err(move |e| {
        tracing::warn!(
            "{leg} worker {worker} failed mid-response: {}",
            crate::error::error_chain(e)
        );
    }));
    if stream {
        let mut out = sse_response(body);
        *out.status_mut() = status;
        out
    } else {
        let mut out = Response::new(body);
        *out.status_mut() = status;
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        out
    }
}

fn sse_response(body: Body) -> Response {
    let mut out = Response::new(body);
    *out.status_mut() = StatusCode::OK;
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Intermediaries must neither cache nor hold back an event stream.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out
}

fn pick(group: &WorkerGroup) -> Result<&str, ProxyError> {
    group.pick().ok_or(ProxyError::Unhealthy {
        leg: group.leg,
        healthy: 0,
        total: 0,
    })
}
