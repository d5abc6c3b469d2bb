//! One disaggregated request, end to end, one file per dialect:
//! - [`trtllm`] and [`vllm`] are sequential: context leg, then generation leg (both end in
//!   [`generation`]);
//! - [`sglang`] sends both legs at once.
//!
//! Every leg runs through the one retry loop, [`crate::legs::with_retries`]. Nothing here is
//! spawned: every upstream future lives inside the handler's future or the response body, so a
//! client that hangs up cancels every leg at once. (The one exception is in `relay`: an SGLang
//! prefill leg still answering after the client has its whole answer.)
//!
//! Adding a dialect: a [`crate::Dialect`] variant, its wire rules beside `crate::trtllm`, a file
//! here, and an arm in [`handle`].

mod sglang;
mod trtllm;
mod vllm;

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use http::header::HeaderValue;

use crate::app::Inner;
use crate::config::Dialect;
use crate::error::ProxyError;
use crate::legs::{RequestDeadline, generation_call, on_one_worker};
use crate::raw::Pieces;
use crate::relay::{self, Keep};
use crate::request::{ClientRequest, Endpoint};
use crate::upstream::REQUEST_ID;

pub(crate) async fn handle(
    state: &Arc<Inner>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ProxyError> {
    let deadline = RequestDeadline::start(state);
    let mut req = ClientRequest::parse(endpoint, body).map_err(ProxyError::BadRequest)?;
    req.authorization = headers.get(axum::http::header::AUTHORIZATION).cloned();
    match state.cfg.dialect {
        Dialect::Trtllm => trtllm::flow(state, &req, deadline).await,
        Dialect::Vllm => vllm::flow(state, &req, request_id(state, headers), deadline).await,
        Dialect::Sglang => sglang::flow(state, &req, deadline).await,
    }
}

/// The generation leg of a sequential flow, relayed once its first byte is in.
async fn generation(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
    body: Pieces,
    carried: &crate::upstream::Carried,
    auth: Option<&HeaderValue>,
) -> Result<Response, ProxyError> {
    let path = req.endpoint.path();
    // The body carries the context leg's KV hand-off: sent again only to a worker the first
    // attempt left it to (see `may_resend_handoff`).
    let (lease, opened) =
        on_one_worker(
            state,
            &state.decode,
            req.pick_input(),
            ProxyError::may_resend_handoff,
            |worker| {
                let body = body.clone();
                async move {
                    generation_call(state, deadline, &worker.url, path, body, carried, auth).await
                }
            },
        )
        .await?;
    let worker = lease.url().to_string();
    let keep = Keep {
        leases: vec![lease],
        companion: None,
    };
    relay::respond(opened, &worker, req.stream(), keep, &state.metrics).await
}

/// One id for both legs of a vLLM request, fresh for each request: vLLM keys a request (and
/// its KV hand-off) by it, and refuses one already running, so a client that sends one id
/// twice at once (a gateway's retry) must not reach the workers with it twice. A client's
/// `X-Request-Id` leads it (`<client id>-<fresh>`), so its logs still line up with the workers'.
fn request_id(state: &Inner, headers: &HeaderMap) -> HeaderValue {
    let fresh = format!("{:016x}{:016x}", state.ids.next(), state.ids.next());
    let id = match headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
    {
        Some(client) => format!("{client}-{fresh}"),
        None => format!("disagg-{fresh}"),
    };
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("disagg"))
}

fn json_response(body: Vec<u8>) -> Response {
    let mut out = Response::new(Body::from(body));
    out.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}
