//! `POST /v1/completions`: serve one [`Job`] on its [`Schedule`].
//!
//! Streams are produced lazily, one SSE frame per poll, each after sleeping until its token's
//! deadline. Hyper writes every frame as soon as it is yielded, so a client sees token 0 long
//! before the last token exists, and a client that hangs up drops the stream and stops the work.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use disagg_proto::openai::Usage;
use disagg_proto::trtllm::{DisaggregatedParams, RequestType};
use disagg_proto::{ApiError, sse};
use futures_util::StreamExt;
use tokio::time::{Instant, sleep_until};

use crate::error::HttpError;
use crate::request::{self, Job, Kind};
use crate::response::{self, Header};
use crate::server::SimState;
use crate::timing::Schedule;
use crate::tokens;

pub(crate) async fn completions(
    State(sim): State<SimState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    // The clock starts when the request is in: prefill cannot begin before that.
    let start = Instant::now();
    let job = body
        .map_err(|r| ApiError::new(r.status().as_u16(), "invalid_request_error", r.body_text()))
        .and_then(|body| request::parse(&body, sim.role()))
        .inspect_err(|e| {
            eprintln!(
                "disagg-sim: POST /v1/completions -> {}: {}",
                e.status, e.message
            )
        })?;
    eprintln!(
        "disagg-sim: POST /v1/completions {} prompt_tokens={} max_tokens={} stream={}",
        job.kind.name(),
        job.prompt.len(),
        job.max_tokens,
        job.stream
    );
    let header = sim.header();
    let response = match job.kind {
        Kind::ContextOnly => {
            let schedule = sim.prefill_schedule(start, job.prompt.len());
            context_only(&sim, &job, &header, schedule).await
        }
        Kind::Aggregated | Kind::GenerationOnly => {
            let schedule = match job.kind {
                Kind::GenerationOnly => Schedule::immediate(start, sim.itl()),
                _ => sim.prefill_schedule(start, job.prompt.len()),
            };
            if job.stream {
                // Counted as served when the stream ends, not here.
                return Ok(streamed(sim, job, header, schedule));
            }
            whole(&job, &header, schedule).await
        }
    };
    sim.faults().served();
    Ok(response)
}

/// Prefill, then token 0 and the hand-off parameters for the generation server.
async fn context_only(sim: &SimState, job: &Job, header: &Header, schedule: Schedule) -> Response {
    sleep_until(schedule.deadline(0)).await;
    let first = tokens::token_at(job.digest, 0);
    let params = DisaggregatedParams {
        request_type: RequestType::ContextOnly,
        first_gen_tokens: Some(vec![first]),
        ctx_request_id: Some(sim.next_id()),
        encoded_opaque_state: None,
        draft_tokens: None,
        disagg_request_id: job.disagg_request_id,
        ctx_dp_rank: None,
    };
    let text = tokens::token_text(first);
    json_response(response::context(header, &text, &params, &job.prompt))
}

/// A non-streaming answer arrives when its last token would have.
async fn whole(job: &Job, header: &Header, schedule: Schedule) -> Response {
    sleep_until(schedule.deadline(job.max_tokens - 1)).await;
    let mut text = String::with_capacity(job.max_tokens as usize * 7);
    for position in 0..job.max_tokens {
        tokens::push_token_text(&mut text, tokens::token_at(job.digest, position));
    }
    let usage = Usage::new(job.prompt.len() as u64, job.max_tokens);
    json_response(response::full(header, &text, usage))
}

fn json_response(body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn streamed(sim: SimState, job: Job, header: Header, schedule: Schedule) -> Response {
    let emitter = Emitter {
        sim,
        usage: Usage::new(job.prompt.len() as u64, job.max_tokens),
        job,
        header,
        schedule,
        next: Phase::Token(0),
    };
    let frames = futures_util::stream::unfold(emitter, Emitter::step).map(Ok::<_, Infallible>);
    let mut r = Response::new(Body::from_stream(frames));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// What a stream yields next.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Token(u64),
    Usage,
    Done,
    /// Everything was handed to the HTTP layer: count the request as served.
    End,
}

/// The state of one response stream, advanced one frame per poll.
struct Emitter {
    sim: SimState,
    job: Job,
    header: Header,
    schedule: Schedule,
    usage: Usage,
    next: Phase,
}

impl Emitter {
    async fn step(mut self) -> Option<(Bytes, Self)> {
        let frame = match self.next {
            Phase::Token(i) => {
                sleep_until(self.schedule.deadline(i)).await;
                let last = i + 1 == self.job.max_tokens;
                self.next = match (last, self.job.include_usage) {
                    (false, _) => Phase::Token(i + 1),
                    (true, true) => Phase::Usage,
                    (true, false) => Phase::Done,
                };
                let text = tokens::token_text(tokens::token_at(self.job.digest, i));
                sse::frame(&response::chunk(&self.header, &text, last))
            }
            Phase::Usage => {
                self.next = Phase::Done;
                sse::frame(&response::usage_chunk(&self.header, self.usage))
            }
            Phase::Done => {
                self.next = Phase::End;
                Bytes::from_static(sse::DONE_FRAME)
            }
            Phase::End => {
                self.sim.faults().served();
                return None;
            }
        };
        Some((frame, self))
    }
}
