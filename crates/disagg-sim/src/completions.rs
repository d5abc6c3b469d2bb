//! `POST /v1/completions`: run one [`Job`] through the hand-off, the engine and the output path.
//!
//! Streams are produced lazily, one SSE frame per poll, each once the engine says its token is
//! due. Hyper writes every frame as soon as it is yielded, so a client sees token 0 long before
//! the last token exists, and a client that hangs up drops the stream, which cancels the
//! sequence in the engine.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use disagg_proto::openai::Usage;
use disagg_proto::trtllm::{DisaggregatedParams, RequestType};
use disagg_proto::{ApiError, sse};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::dialect::vllm::{BLOCK_TOKENS, Handed, KvTransferParams};
use crate::dialect::{HandOff, Produce};
use crate::engine::{Feed, KvHold, Seq};
use crate::error::{HttpError, Refusal};
use crate::faults::Verdict;
use crate::handoff::{KvRecord, fetch, opaque};
use crate::metrics::Outcome;
use crate::request::{self, Endpoint, Job, Parsed};
use crate::response::{self, Finish, Header};
use crate::server::SimState;
use crate::tokens;

pub(crate) async fn completions(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(sim, Endpoint::Completions, headers, body).await
}

pub(crate) async fn chat_completions(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(sim, Endpoint::Chat, headers, body).await
}

/// SGLang's native API (SGLang dialect only; `crate::generate` shapes its answers).
pub(crate) async fn generate(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(sim, Endpoint::Generate, headers, body).await
}

async fn handle(
    sim: SimState,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The clock starts when the request is in: prefill cannot begin before that.
    let start = Instant::now();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let (Some(log), Ok(bytes)) = (sim.request_log(), &body) {
        log.record(endpoint.path(), request_id.as_deref(), bytes);
    }
    if let (Some(key), Ok(bytes)) = (sim.auth_key(), &body) {
        if let Err(e) = check_signature(key, &headers, bytes) {
            say_err!("disagg-sim: POST {} -> 401: {e}", endpoint.path());
            sim.metrics().outcome(Outcome::Rejected);
            return HttpError(ApiError::new(401, "authentication_error", e.to_string()))
                .into_response();
        }
    }
    let verdict = sim.faults().arrive();
    // Read, and never answered: the connection stays open.
    if sim.faults().completions_hang() {
        std::future::pending::<()>().await;
    }
    // A request whose client leaves before its answer is ready (a whole answer, a prefill)
    // drops this future here: counted as cancelled, as a stream's client leaving is.
    let mut unanswered = Unanswered(&sim, true);
    let served = serve(&sim, endpoint, start, request_id, body, verdict).await;
    unanswered.1 = false;
    match served {
        Ok(r) => r,
        Err(e) => {
            let e = if endpoint == Endpoint::Generate {
                // SGLang's native route answers `{"error": {"message": ...}}`, not its OpenAI
                // routes' flat `ErrorResponse`.
                e.in_generate_shape()
            } else {
                e.in_engines_shape(sim.dialect())
            };
            say_err!(
                "disagg-sim: POST {} -> {}: {}",
                endpoint.path(),
                e.api.status,
                e.api.message
            );
            let outcome = if e.api.status < 500 {
                Outcome::Rejected
            } else {
                Outcome::Failed
            };
            sim.metrics().outcome(outcome);
            e.into_response()
        }
    }
}

/// Counts a request as cancelled when dropped still armed (its client went away while it was
/// served); a stream's end is counted by its emitter instead.
struct Unanswered<'a>(&'a SimState, bool);

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.metrics().outcome(Outcome::Cancelled);
        }
    }
}

/// TensorRT-LLM's worker check: a request whose `disaggregated_params` carry protected fields
/// must be signed with the key. A body that is not JSON is left to the parser's own error.
fn check_signature(
    key: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), disagg_proto::auth::AuthError> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        disaggregated_params: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let Ok(Params {
        disaggregated_params: Some(params),
    }) = serde_json::from_slice::<Params>(body)
    else {
        return Ok(());
    };
    let provided = headers
        .get(disagg_proto::auth::HEADER)
        .and_then(|v| v.to_str().ok());
    disagg_proto::auth::verify(key, &params, provided)
}

async fn serve(
    sim: &SimState,
    endpoint: Endpoint,
    start: Instant,
    request_id: Option<String>,
    body: Result<Bytes, BytesRejection>,
    verdict: Verdict,
) -> Result<Response, Refusal> {
    if let Verdict::Error(n) = verdict {
        return Err(ApiError::internal(format!(
            "scripted failure: this is request {n} (--error-on-request {n})"
        ))
        .into());
    }
    let body = body
        .map_err(|r| ApiError::new(r.status().as_u16(), "invalid_request_error", r.body_text()))?;
    if sim.dialect() == crate::Dialect::Trtllm && endpoint != Endpoint::Generate {
        crate::dialect::trtllm::refuse_undeclared_fields(
            &body,
            endpoint == Endpoint::Chat,
            sim.trtllm_version(),
        )?;
    }
    let Parsed {
        mut jobs,
        batch,
        logprob_starts,
    } = request::parse_request(
        &body,
        endpoint,
        sim.role(),
        sim.dialect(),
        sim.eos_at(),
        sim.checked_model(),
        sim.lengths(),
    )?;
    // TensorRT-LLM's PyTorch backend refuses every context-only request of a disaggregated
    // server that runs the overlap scheduler (its default): `disable_overlap_scheduler: true`
    // belongs in every context server's options.
    if sim.overlap_scheduler() && jobs.iter().any(|j| j.kind == request::Kind::ContextOnly) {
        return Err(ApiError::bad_request(
            "Context only requests are not supported in pytorch backend when overlap is \
             enabled. (this server runs the overlap scheduler: its extra-options YAML does not \
             set disable_overlap_scheduler: true)",
        )
        .into());
    }
    for job in &mut jobs {
        if sim.faults().disregards_ignore_eos() {
            job.end_at_eos(sim.eos_at());
        }
        say_err!(
            "disagg-sim: POST {} {} prompt_tokens={} max_tokens={} stream={}{}",
            endpoint.path(),
            job.kind.name(),
            job.prompt.len(),
            job.max_tokens,
            job.stream,
            if batch { " (batch item)" } else { "" }
        );
    }
    let drop_after = match verdict {
        Verdict::DropAfter(k) => Some(k),
        _ => None,
    };
    if endpoint == Endpoint::Generate {
        let asked = crate::generate::Asked {
            batch,
            logprob_starts,
            drop_after,
        };
        return Ok(crate::generate::serve(sim, jobs, asked, start, request_id).await?);
    }
    if batch {
        return Ok(batched(sim, jobs, start, request_id, drop_after).await?);
    }
    let Some(job) = jobs.pop() else {
        return Err(ApiError::bad_request("no prompt").into());
    };
    let header = sim.header(endpoint == Endpoint::Chat);
    let Started {
        mut feed,
        ready,
        context,
    } = start_job(sim, &job, start, request_id).await?;
    // A streamed prefill (vLLM's) is an ordinary stream: no hand-off fields in its chunks.
    if let Some(body) = context
        .filter(|_| !job.stream)
        .and_then(|c| c.answer(&header, &job))
    {
        finish_whole(sim).await;
        return Ok(json_response(body));
    }
    if job.stream {
        // Counted as served when the stream ends, not here.
        return Ok(streamed(sim.clone(), job, header, feed, ready, drop_after));
    }
    let body = whole(&job, &header, &mut feed, ready).await?;
    finish_whole(sim).await;
    Ok(json_response(body))
}

/// A job under way: its token feed, how many tokens were already awaited (a prefill waits for
/// token 0 to store its KV record) and, for a context server, what its answer carries.
pub(crate) struct Started {
    pub(crate) feed: Feed,
    pub(crate) ready: u64,
    context: Option<Context>,
}

/// Fetches a job's hand-off (decode), submits it to the engine, and keeps its KV record
/// (prefill).
pub(crate) async fn start_job(
    sim: &SimState,
    job: &Job,
    start: Instant,
    request_id: Option<String>,
) -> Result<Started, ApiError> {
    let mut engine_start = start;
    if let HandOff::Consume(c) = &job.hand_off {
        fetch::receive(sim, c, &job.prompt, request_id.as_deref(), start).await?;
        engine_start = Instant::now();
    }
    if let (Some(gate), crate::request::Kind::GenerationOnly) = (sim.fill_gate(), job.kind) {
        gate.pass().await;
        engine_start = Instant::now();
    }
    let handed_off = matches!(job.hand_off, HandOff::Consume(_));
    let seq = Seq {
        prefill_tokens: if handed_off {
            0
        } else {
            job.prompt.len() as u64
        },
        context_tokens: job.prompt.len() as u64,
        // An answer with no tokens still costs its prefill, as in the engine.
        output_tokens: job.max_tokens.max(1),
    };
    // SGLang's prefill runs once its decode server has bootstrapped the room (handshake and KV
    // pre-allocation): a prefill sent alone waits, then fails, as there.
    if let HandOff::Produce(Produce::Sglang { room }) = job.hand_off {
        sim.kv_store()
            .await_decode(room, sim.kv_config().bootstrap_timeout)
            .await?;
        engine_start = Instant::now();
    }
    let producing = matches!(job.hand_off, HandOff::Produce(_));
    let (mut feed, kv_hold) = sim.engine().submit(seq, engine_start, producing)?;
    let mut ready = 0;
    let mut context = None;
    if let HandOff::Produce(p) = job.hand_off {
        feed.next().await?;
        ready = 1;
        context = Some(store_record(sim, job, p, request_id, kv_hold)?);
    }
    Ok(Started {
        feed,
        ready,
        context,
    })
}

/// Starts every job of a batch at once (the engine batches them as it would separate
/// requests); the first failure fails the request, and dropping the others cancels them.
pub(crate) async fn start_all(
    sim: &SimState,
    jobs: &[Job],
    start: Instant,
    request_id: Option<String>,
) -> Result<Vec<Started>, ApiError> {
    futures_util::future::try_join_all(
        jobs.iter()
            .map(|job| start_job(sim, job, start, request_id.clone())),
    )
    .await
}

/// A batched completions request (SGLang's completions server takes a list of prompts): one
/// choice per prompt, `index` its place in the list, usage summed over them. Streamed, the
/// prompts' chunks interleave as their tokens come, then one `[DONE]`.
async fn batched(
    sim: &SimState,
    jobs: Vec<Job>,
    start: Instant,
    request_id: Option<String>,
    drop_after: Option<u64>,
) -> Result<Response, ApiError> {
    let header = sim.header(false);
    let started = start_all(sim, &jobs, start, request_id).await?;
    let usage = Usage::new(
        jobs.iter().map(|j| j.prompt.len() as u64).sum(),
        jobs.iter().map(|j| j.max_tokens).sum(),
    );
    if jobs.first().is_some_and(|j| j.stream) {
        let include_usage = jobs[0].include_usage;
        let items = jobs
            .into_iter()
            .zip(started)
            .enumerate()
            .map(|(i, (job, s))| {
                let mut h = header.clone();
                h.index = i as u32;
                // The request is counted (served, failed, cut) by its first prompt's stream.
                let mut e = Emitter::new(
                    sim.clone(),
                    job,
                    h,
                    s.feed,
                    s.ready,
                    drop_after.filter(|_| i == 0),
                );
                e.tail = false;
                e.counted = i == 0;
                e.into_stream()
            });
        let mut tail = Vec::new();
        if include_usage {
            tail.push(Ok(sse::frame(&response::usage_chunk(&header, usage))));
        }
        tail.push(Ok(Bytes::from_static(sse::DONE_FRAME)));
        let frames =
            futures_util::stream::select_all(items).chain(futures_util::stream::iter(tail));
        return Ok(sse_response(Body::from_stream(frames)));
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, mut s) in jobs.iter().zip(started) {
        answers.push((whole_text(job, &mut s.feed, s.ready).await?, job.finish));
    }
    finish_whole(sim).await;
    Ok(json_response(response::full_many(&header, &answers, usage)))
}

/// A whole answer is ready: count it, and send it, unless the sim hung meanwhile (then it
/// freezes like everything else). The answer that makes it hang is still sent: the script says
/// "after N requests".
pub(crate) async fn finish_whole(sim: &SimState) {
    if sim.faults().completions_hang() {
        std::future::pending::<()>().await;
    }
    sim.metrics().outcome(Outcome::Ok);
    sim.faults().served();
}

/// The record a context server keeps, and what its answer carries besides token 0.
enum Context {
    Trtllm(DisaggregatedParams),
    Vllm(KvTransferParams),
    /// An ordinary completion: SGLang's prefill leg.
    Plain,
}

impl Context {
    fn answer(&self, header: &Header, job: &Job) -> Option<Bytes> {
        let text = job.text_at(0);
        match self {
            Context::Trtllm(params) => Some(response::context(
                header,
                &text,
                params,
                &job.prompt,
                job.finish,
            )),
            Context::Vllm(params) => Some(response::with_kv_transfer_params(
                header,
                &text,
                Usage::new(job.prompt.len() as u64, 1),
                params,
                job.finish,
            )),
            Context::Plain => None,
        }
    }
}

fn store_record(
    sim: &SimState,
    job: &Job,
    produce: Produce,
    request_id: Option<String>,
    kv_hold: Option<KvHold>,
) -> Result<Context, ApiError> {
    let first = tokens::token_at(job.digest, 0);
    let mut record = KvRecord {
        prompt_token_ids: job.prompt.clone(),
        first_token: first,
        request_id: None,
        block_ids: None,
        layout: Some(sim.kv_layout().clone()),
    };
    let (host, port) = sim.advertised();
    let (key, context) = match produce {
        Produce::Trtllm => {
            // A worker that is given a `disagg_request_id` uses it as the request's id (its
            // `ctx_request_id` too), and keys the KV hand-off on it.
            let id = job.disagg_request_id.unwrap_or_else(|| sim.next_id());
            let params = DisaggregatedParams {
                request_type: RequestType::ContextOnly,
                first_gen_tokens: Some(vec![first]),
                ctx_request_id: Some(id),
                encoded_opaque_state: Some(opaque::encode_peer(&crate::ready::authority(
                    &host, port,
                ))),
                draft_tokens: None,
                disagg_request_id: job.disagg_request_id,
                ctx_dp_rank: None,
            };
            (id, Context::Trtllm(params))
        }
        Produce::Vllm => {
            let blocks = sim.allocate_blocks(job.prompt.len().div_ceil(BLOCK_TOKENS as usize));
            record.request_id = request_id.clone();
            record.block_ids = Some(blocks.clone());
            // Decode pulls from the NIXL side channel, as vLLM's does.
            let (host, port) = sim.side_channel().unwrap_or((host, port));
            let engine_id = format!("disagg-sim@{}", crate::ready::authority(&host, port));
            let key = blocks[0];
            let params = KvTransferParams::for_decode(Handed {
                engine_id,
                blocks,
                request_id,
                host: &host,
                port,
                tokens: job.prompt.len() as u64,
                expiry_secs: sim.uptime().as_secs_f64() + sim.kv_ttl().as_secs_f64(),
            });
            (key, Context::Vllm(params))
        }
        Produce::Sglang { room } => (room, Context::Plain),
    };
    sim.kv_store().insert(key, record, kv_hold)?;
    Ok(context)
}

/// A non-streaming answer arrives when its last token would have.
async fn whole(job: &Job, header: &Header, feed: &mut Feed, ready: u64) -> Result<Bytes, ApiError> {
    let text = whole_text(job, feed, ready).await?;
    let usage = Usage::new(job.prompt.len() as u64, job.max_tokens);
    Ok(response::full(header, &text, usage, job.finish))
}

/// A job's whole output text, once its last token is due.
pub(crate) async fn whole_text(job: &Job, feed: &mut Feed, ready: u64) -> Result<String, ApiError> {
    // At least the prefill, even for an answer with no tokens.
    feed.skip(job.max_tokens.max(1).saturating_sub(ready))
        .await?;
    // A guess (about 7 bytes a token), capped: max_tokens comes from the client.
    let mut text = String::with_capacity((job.max_tokens as usize).saturating_mul(7).min(1 << 20));
    for position in 0..job.max_tokens {
        // EOS renders as nothing (`Job::text_at`); written in place to spare an allocation.
        if job.finish_at(position) != Some(Finish::Stop) {
            tokens::push_token_text(&mut text, tokens::token_at(job.digest, position));
        }
    }
    Ok(text)
}

pub(crate) fn json_response(body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn streamed(
    sim: SimState,
    job: Job,
    header: Header,
    feed: Feed,
    ready: u64,
    drop_after: Option<u64>,
) -> Response {
    let frames = Emitter::new(sim, job, header, feed, ready, drop_after).into_stream();
    sse_response(Body::from_stream(frames))
}

pub(crate) fn sse_response(body: Body) -> Response {
    let mut r = Response::new(body);
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

/// How a stream renders each token.
pub(crate) enum Format {
    /// OpenAI chunks, pre-rendered around the text.
    OpenAi(response::ChunkTemplate),
    /// SGLang's native `/generate` objects, cumulative.
    Native(Box<crate::generate::Native>),
}

/// The state of one response stream, advanced one frame per poll.
pub(crate) struct Emitter {
    sim: SimState,
    job: Job,
    header: Header,
    pub(crate) format: Format,
    /// Ends with the usage chunk (if asked) and `[DONE]`; off for the prompts of a batch,
    /// whose merged stream ends once.
    pub(crate) tail: bool,
    /// Counts the request in the metrics and fault script; off for all but one prompt of a
    /// batch.
    pub(crate) counted: bool,
    feed: Feed,
    /// Tokens whose wait already happened (an SGLang prefill waited for token 0 to store it).
    ready: u64,
    /// Cut the connection after this many token chunks (`--drop-stream-on-request`).
    drop_after: Option<u64>,
    usage: Usage,
    next: Phase,
    /// The outcome is recorded; dropping the emitter now is not a cancellation.
    ended: bool,
    /// How late the previous token was released, for the gap error.
    last_late: Option<std::time::Duration>,
}

type Frame = Result<Bytes, std::io::Error>;

impl Emitter {
    pub(crate) fn new(
        sim: SimState,
        job: Job,
        header: Header,
        feed: Feed,
        ready: u64,
        drop_after: Option<u64>,
    ) -> Self {
        Self {
            sim,
            format: Format::OpenAi(response::ChunkTemplate::new(&header)),
            tail: true,
            counted: true,
            usage: Usage::new(job.prompt.len() as u64, job.max_tokens),
            job,
            header,
            feed,
            ready,
            drop_after,
            next: Phase::Token(0),
            ended: false,
            last_late: None,
        }
    }

    pub(crate) fn into_stream(self) -> futures_util::stream::BoxStream<'static, Frame> {
        futures_util::stream::unfold(self, Emitter::step).boxed()
    }

    async fn step(mut self) -> Option<(Frame, Self)> {
        if self.ended {
            return None;
        }
        if self.sim.faults().completions_hang() {
            std::future::pending::<()>().await;
        }
        let frame = match self.next {
            Phase::Token(i) => {
                if self.drop_after == Some(i) {
                    // Cut when this token would have come: the wait also lets hyper flush the
                    // chunks before it. An error body makes hyper abort the connection without
                    // the final chunk, as a crashed or killed engine would.
                    if i >= self.ready {
                        let _ = self.feed.next().await;
                    }
                    self.end(Outcome::Dropped);
                    let cut = std::io::Error::other("scripted: --drop-stream-on-request");
                    return Some((Err(cut), self));
                }
                if i >= self.ready {
                    match self.feed.next().await {
                        Ok(due) => {
                            let late = Instant::now().saturating_duration_since(due);
                            let metrics = self.sim.metrics();
                            metrics.token_lateness.observe(late);
                            metrics.token_lateness_fine.observe(late);
                            if let Some(before) = self.last_late.replace(late) {
                                metrics.token_gap_error_fine.observe(late.abs_diff(before));
                            }
                        }
                        Err(e) => {
                            self.end(Outcome::Failed);
                            return Some((Err(std::io::Error::other(e.message)), self));
                        }
                    }
                }
                // An answer with no tokens ends with its first (empty) chunk.
                let last = i + 1 >= self.job.max_tokens;
                self.next = match (last, self.tail, self.job.include_usage) {
                    (false, _, _) => Phase::Token(i + 1),
                    (true, false, _) => Phase::End,
                    (true, true, true) => Phase::Usage,
                    (true, true, false) => Phase::Done,
                };
                match &mut self.format {
                    Format::OpenAi(t) => {
                        t.frame(&self.job.text_at(i), self.job.finish_at(i), i == 0)
                    }
                    Format::Native(n) => n.frame(&self.job, i),
                }
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
                self.end(Outcome::Ok);
                if self.counted {
                    self.sim.faults().served();
                }
                return None;
            }
        };
        Some((Ok(frame), self))
    }

    fn end(&mut self, outcome: Outcome) {
        self.ended = true;
        if self.counted {
            self.sim.metrics().outcome(outcome);
        }
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        if !self.ended && self.counted {
            self.sim.metrics().outcome(Outcome::Cancelled);
        }
    }
}
