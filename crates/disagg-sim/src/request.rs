//! Turning a request body into validated [`Job`]s (one per prompt), or a 400 that says what is
//! wrong. The dialect decides which half a request is and what it hands off (`dialect/`).
//!
//! The body is parsed by hand from bytes (not axum's `Json` extractor) so that every parse
//! failure becomes an OpenAI error body with serde's precise message, and so that batch prompts
//! get their own explanation instead of "did not match any variant".
//!
//! Batches (a list of prompts in one request) are SGLang's: its completions server and its
//! native `/generate` serve them, each prompt with its own bootstrap room. The other dialects'
//! sims refuse them, as before.

use disagg_proto::ApiError;
use disagg_proto::trtllm::DisaggregatedParams;
use serde::Deserialize;
use serde_json::Value;

use crate::context_len::{self, Asked, LengthLimits};
use crate::dialect::vllm::KvTransferParams;
use crate::dialect::{HandOff, sglang, trtllm, vllm};
use disagg_proto::openai::Whole;

use crate::error::{Refusal, Shape};
use crate::response::Finish;
use crate::tokens::{self, PromptDigest};
use crate::{Dialect, SimRole};

/// OpenAI's default when a completions request gives no `max_tokens`.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// The fields the sim reads; other fields are ignored, as vLLM and SGLang do (TensorRT-LLM
/// forbids undeclared fields: `dialect::trtllm::refuse_undeclared_fields` checks them first).
#[derive(Debug, Deserialize)]
struct RawRequest {
    prompt: Option<Value>,
    /// Chat.
    messages: Option<Vec<ChatMessage>>,
    /// Chat, set by a TensorRT-LLM router on the generation leg.
    prompt_token_ids: Option<Vec<u32>>,
    /// Counts as the engines' pydantic models take them: `8` or `8.0`.
    max_tokens: Option<Whole>,
    /// Chat's newer name for `max_tokens`.
    max_completion_tokens: Option<Whole>,
    /// Choices per prompt: the sim answers one, and refuses more rather than answer fewer.
    n: Option<Whole>,
    /// EOS is suppressed until this many tokens exist (vLLM/TRT-LLM semantics).
    min_tokens: Option<Whole>,
    /// The scripted EOS (`--eos-at`) is ignored; `max_tokens` are generated.
    ignore_eos: Option<bool>,
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    /// Sampling settings the engines validate (the sim samples nothing).
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<disagg_proto::openai::SignedWhole>,
    min_p: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
    stop: Option<Value>,
    /// Chat: whether to return logprobs (a bool); completions: how many (a number).
    logprobs: Option<Value>,
    /// Chat: how many per token, with `logprobs: true`.
    top_logprobs: Option<Value>,
    /// vLLM: logprobs of the prompt's tokens.
    prompt_logprobs: Option<Value>,
    /// Completions: text after the insertion (vLLM refuses it).
    suffix: Option<Value>,
    /// Chat: the tools the model may call, and which.
    tools: Option<Value>,
    tool_choice: Option<Value>,
    /// trtllm.
    disaggregated_params: Option<DisaggregatedParams>,
    /// vllm.
    kv_transfer_params: Option<KvTransferParams>,
    /// sglang.
    bootstrap_host: Option<sglang::OneOrMany<String>>,
    bootstrap_port: Option<sglang::OneOrMany<u16>>,
    bootstrap_room: Option<sglang::OneOrMany<u64>>,
}

/// SGLang's native `/generate` body (`GenerateReqInput` in
/// `python/sglang/srt/managers/io_struct.py`): the fields the sim reads.
#[derive(Debug, Deserialize)]
struct RawGenerate {
    text: Option<Value>,
    input_ids: Option<Value>,
    input_embeds: Option<Value>,
    sampling_params: Option<sglang::OneOrMany<SamplingParams>>,
    stream: Option<bool>,
    bootstrap_host: Option<sglang::OneOrMany<String>>,
    bootstrap_port: Option<sglang::OneOrMany<u16>>,
    bootstrap_room: Option<sglang::OneOrMany<u64>>,
    return_logprob: Option<sglang::OneOrMany<bool>>,
    logprob_start_len: Option<sglang::OneOrMany<i64>>,
}

/// `/generate`'s `sampling_params` (`python/sglang/srt/sampling/sampling_params.py`).
#[derive(Debug, Clone, Default, Deserialize)]
struct SamplingParams {
    /// SGLang's default is 128.
    max_new_tokens: Option<u64>,
    min_new_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<disagg_proto::openai::SignedWhole>,
    min_p: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
    ignore_eos: Option<bool>,
    n: Option<u64>,
}

/// The knobs of a request's fields, as each engine range-checks them.
macro_rules! knobs_of {
    ($r:expr) => {
        Knobs {
            temperature: $r.temperature,
            top_p: $r.top_p,
            top_k: $r.top_k.map(|w| w.0),
            min_p: $r.min_p,
            frequency_penalty: $r.frequency_penalty,
            presence_penalty: $r.presence_penalty,
            repetition_penalty: $r.repetition_penalty,
        }
    };
}

/// The sampling settings every engine range-checks (the sim samples nothing, but a request the
/// engine would refuse must be refused here too).
#[derive(Debug, Clone, Copy, Default)]
struct Knobs {
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    min_p: Option<f64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
}

/// SGLang's `max_new_tokens` when a `/generate` request gives none.
const SGLANG_DEFAULT_MAX_NEW_TOKENS: u64 = 128;

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    /// A string, or a list of parts of which the `text` ones count.
    #[serde(default)]
    content: Value,
}

/// Which OpenAI endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    Chat,
    /// SGLang's native API (SGLang dialect only).
    Generate,
}

impl Endpoint {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Generate => "/generate",
        }
    }
}

/// A request the sim has agreed to serve: one job per prompt.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) jobs: Vec<Job>,
    /// The prompts came as a list (even of one): the answer is shaped per prompt.
    pub(crate) batch: bool,
    /// `/generate` with `return_logprob`: per job, the prompt position its
    /// `input_token_logprobs` start at (`None`: not asked). Empty for the OpenAI routes.
    pub(crate) logprob_starts: Vec<Option<usize>>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
    continuous_usage_stats: Option<bool>,
}

impl StreamOptions {
    /// `{}` (Python's false, to the engines that test `data.get("stream_options")`).
    fn is_empty(&self) -> bool {
        self.include_usage.is_none() && self.continuous_usage_stats.is_none()
    }
}

/// Which part of the work a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No hand-off: prefill and decode here.
    Aggregated,
    /// Prefill, keep a KV record, answer with token 0 (and the dialect's hand-off params).
    ContextOnly,
    /// Decode from a hand-off fetched from a context server.
    GenerationOnly,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Aggregated => "aggregated",
            Kind::ContextOnly => "context_only",
            Kind::GenerationOnly => "generation_only",
        }
    }
}

/// A request the sim has agreed to serve.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) kind: Kind,
    pub(crate) prompt: Vec<u32>,
    pub(crate) digest: PromptDigest,
    /// Completion tokens to produce (1 for context_only), EOS included when it ends the output.
    pub(crate) max_tokens: u64,
    /// Why the last token is the last.
    pub(crate) finish: Finish,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    /// Newer routers tag both halves with one id; a context server echoes it back.
    pub(crate) disagg_request_id: Option<u64>,
    pub(crate) hand_off: HandOff,
}

impl Job {
    /// `--disregard-ignore-eos`: the output ends at the scripted EOS (position `eos_at`), as if
    /// the request had asked for neither `ignore_eos` nor `min_tokens`.
    pub(crate) fn end_at_eos(&mut self, eos_at: Option<u64>) {
        if let Some(p) = eos_at.filter(|p| p + 1 < self.max_tokens) {
            self.max_tokens = p + 1;
            self.finish = Finish::Stop;
        }
    }

    /// The text of output position `i`: EOS renders as nothing, like a special token.
    pub(crate) fn text_at(&self, i: u64) -> String {
        // Past the end: the one empty chunk of an answer with no tokens (SGLang, a prompt
        // auto-truncated to the whole context).
        if i >= self.max_tokens || (self.finish == Finish::Stop && i + 1 == self.max_tokens) {
            String::new()
        } else {
            tokens::token_text(tokens::token_at(self.digest, i))
        }
    }

    /// `finish_reason` of output position `i`: set on the last one only (on the first of an
    /// answer with no tokens).
    pub(crate) fn finish_at(&self, i: u64) -> Option<Finish> {
        (i + 1 >= self.max_tokens).then_some(self.finish)
    }
}

/// How many tokens a request produces and why it stops. The scripted EOS at output position
/// `eos_at` ends it early unless `ignore_eos` is set or `min_tokens` is not reached yet.
fn output_length(
    max_tokens: u64,
    eos_at: Option<u64>,
    ignore_eos: bool,
    min_tokens: u64,
) -> (u64, Finish) {
    match eos_at {
        Some(p) if !ignore_eos && p + 1 >= min_tokens && p < max_tokens => (p + 1, Finish::Stop),
        _ => (max_tokens, Finish::Length),
    }
}

/// Parses and validates a one-prompt completions body (tests; the server takes batches too:
/// [`parse_request`]).
#[cfg(test)]
pub(crate) fn parse(
    body: &[u8],
    endpoint: Endpoint,
    role: SimRole,
    dialect: Dialect,
    eos_at: Option<u64>,
    served_model: Option<&[String]>,
    lengths: LengthLimits,
) -> Result<Job, Refusal> {
    let mut parsed = parse_request(body, endpoint, role, dialect, eos_at, served_model, lengths)?;
    assert!(!parsed.batch, "a batch");
    Ok(parsed.jobs.remove(0))
}

/// Parses and validates a request body for a sim running as `role` in `dialect`; `eos_at` is
/// the sim's `--eos-at`, `lengths` what each prompt must fit (its context length, TensorRT-LLM's
/// max_num_tokens), checked as the dialect's engine checks it (`context_len`).
pub(crate) fn parse_request(
    body: &[u8],
    endpoint: Endpoint,
    role: SimRole,
    dialect: Dialect,
    eos_at: Option<u64>,
    served_model: Option<&[String]>,
    lengths: LengthLimits,
) -> Result<Parsed, Refusal> {
    if endpoint == Endpoint::Generate {
        return parse_generate(body, role, eos_at, lengths);
    }
    let raw: RawRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid completions request body: {e}")))?;
    // vLLM checks the name first (any of its served names will do), and answers any other
    // with a 404 naming the `model` parameter.
    if let (Some(served), Some(asked)) = (served_model, raw.model.as_deref()) {
        if !asked.is_empty() && !served.iter().any(|s| s == asked) {
            return Err(Refusal::shaped(
                ApiError::new(
                    404,
                    "NotFoundError",
                    format!("The model `{asked}` does not exist."),
                ),
                Shape::Envelope {
                    param: Some("model"),
                },
            ));
        }
    }
    let (prompts, batch) = match endpoint {
        Endpoint::Chat => (vec![chat_prompt(&raw)?], false),
        _ => {
            let value = raw
                .prompt
                .as_ref()
                .ok_or_else(|| ApiError::bad_request("missing field `prompt`"))?;
            let (prompts, batch) = parse_prompts(value)?;
            // A list of one prompt is that prompt: TensorRT-LLM's server unwraps it, and vLLM
            // answers it with its one choice.
            let batch = batch && !(prompts.len() == 1 && dialect != Dialect::Sglang);
            if batch && dialect != Dialect::Sglang {
                return Err(ApiError::bad_request(
                    "batched prompts are not supported: send one prompt (a string or a list of \
                     token ids) per request",
                )
                .into());
            }
            (prompts, batch)
        }
    };
    // Chat's `max_completion_tokens` wins over the older `max_tokens` (vLLM, SGLang). SGLang
    // reads `max_completion_tokens or max_tokens`: a 0 there is Python's false, and falls back.
    let asked = match (dialect, endpoint) {
        (Dialect::Sglang, Endpoint::Chat) => raw
            .max_completion_tokens
            .filter(|w| w.0 > 0)
            .or(raw.max_tokens),
        _ => raw.max_completion_tokens.or(raw.max_tokens),
    }
    .map(|w| w.0);
    // SGLang's CompletionRequest refuses it ("max_tokens must be positive"); only its native
    // `/generate` and chat take 0.
    if (dialect, endpoint, asked) == (Dialect::Sglang, Endpoint::Completions, Some(0)) {
        return Err(ApiError::bad_request("max_tokens must be positive").into());
    }
    let max_tokens = asked.unwrap_or(DEFAULT_MAX_TOKENS);
    check_max_tokens(max_tokens, "max_tokens", dialect)?;
    match raw.n.map(|w| w.0) {
        None | Some(1) => {}
        Some(0) => return Err(ApiError::bad_request("n must be at least 1, got 0.").into()),
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "n is {n}: the sim answers one choice per prompt; send n: 1 (or leave it out)"
            ))
            .into());
        }
    }
    // SGLang checks the sampling parameters and the context length in its tokenizer manager,
    // once a streamed answer has begun: there the refusal is the stream's one event.
    let stream = raw.stream.unwrap_or(false);
    let begun = |r: Refusal| {
        if dialect == Dialect::Sglang && stream {
            r.streamed()
        } else {
            r
        }
    };
    check_sampling(&raw, dialect, max_tokens).map_err(|e| begun(e.into()))?;
    check_stop(raw.stop.as_ref())?;
    if dialect == Dialect::Vllm {
        vllm_fields(&raw, endpoint)?;
        vllm_logprobs(
            &raw,
            endpoint,
            lengths.max_logprobs.unwrap_or(VLLM_MAX_LOGPROBS),
        )?;
    }
    let kind = match dialect {
        Dialect::Trtllm => trtllm::kind(raw.disaggregated_params.as_ref()),
        Dialect::Vllm => vllm::kind(raw.kv_transfer_params.as_ref(), role)?,
        Dialect::Sglang => sglang::kind(role),
    };
    check_role(kind, role)?;
    // `stream_options: {}` asks for usage in vLLM and TensorRT-LLM (`include_usage`
    // defaults to true there); SGLang's default is false.
    let include_usage = raw
        .stream_options
        .map(|o| o.include_usage.unwrap_or(dialect != Dialect::Sglang))
        .unwrap_or(false);
    // A trtllm context server answers in one piece: the router needs the whole response
    // (PROTOCOLS.md §1 step 3). vLLM streams a prefill asked to stream, and its stream chunks
    // carry no kv_transfer_params (only the whole response has them), so a proxy that streams
    // the prefill gets no hand-off, there as here. SGLang's prefill leg gets the client's own
    // body, so it answers the way that body asks.
    let whole_context = kind == Kind::ContextOnly && dialect == Dialect::Trtllm;
    let bootstraps = match dialect {
        Dialect::Sglang => sglang::per_item(
            sglang::Fields {
                bootstrap_host: raw.bootstrap_host.clone(),
                bootstrap_port: raw.bootstrap_port.clone(),
                bootstrap_room: raw.bootstrap_room.clone(),
            },
            batch.then_some(prompts.len()),
        )?,
        _ => Vec::new(),
    };
    let mut jobs = Vec::with_capacity(prompts.len());
    for (i, mut prompt) in prompts.into_iter().enumerate() {
        let a = Asked {
            prompt: prompt.ids().len() as u64,
            text: matches!(prompt, ParsedPrompt::Text(_)),
            // All three default max_tokens to 16 on /v1/completions; chat has no default.
            max_tokens: asked.or((endpoint == Endpoint::Completions).then_some(DEFAULT_MAX_TOKENS)),
            generation_only: kind == Kind::GenerationOnly,
        };
        let fit = context_len::fit(dialect, lengths, a, max_tokens).map_err(begun)?;
        prompt.truncate(fit.prompt);
        let max_tokens = fit.max_tokens;
        let digest = PromptDigest::of(prompt.ids());
        let hand_off = match dialect {
            Dialect::Trtllm => {
                trtllm::hand_off(kind, &prompt, digest, raw.disaggregated_params.as_ref())?
            }
            Dialect::Vllm => vllm::hand_off(kind, raw.kv_transfer_params.as_ref())?,
            Dialect::Sglang => sglang::hand_off(kind, &bootstraps[i])?,
        };
        jobs.push(job(
            kind,
            prompt.into_ids(),
            Limits {
                max_tokens,
                eos_at,
                ignore_eos: raw.ignore_eos.unwrap_or(false),
                min_tokens: raw.min_tokens.map_or(0, |w| w.0),
            },
            stream && !whole_context,
            include_usage,
            raw.disaggregated_params
                .as_ref()
                .and_then(|p| p.disagg_request_id),
            hand_off,
        ));
    }
    Ok(Parsed {
        jobs,
        batch,
        logprob_starts: Vec::new(),
    })
}

/// A `/generate` body: `text` (a string, or a list for a batch) or `input_ids` (ids, or a list
/// of lists), as SGLang reads them (`GenerateReqInput._determine_batch_size`).
fn parse_generate(
    body: &[u8],
    role: SimRole,
    eos_at: Option<u64>,
    lengths: LengthLimits,
) -> Result<Parsed, Refusal> {
    let raw: RawGenerate = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid generate request body: {e}")))?;
    let (prompts, batch) = match (&raw.text, &raw.input_ids) {
        (Some(Value::String(text)), _) => (vec![text_prompt(text, "text")?], false),
        (Some(Value::Array(texts)), _) => {
            if texts.is_empty() {
                return Err(ApiError::bad_request("text is an empty list").into());
            }
            let prompts = texts
                .iter()
                .enumerate()
                .map(|(i, t)| match t {
                    Value::String(text) => text_prompt(text, &format!("text[{i}]")),
                    _ => Err(ApiError::bad_request(format!("text[{i}] must be a string"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (prompts, true)
        }
        (Some(_), _) => {
            return Err(ApiError::bad_request("text must be a string or a list of strings").into());
        }
        (None, Some(Value::Array(items))) => {
            // SGLang's own message for this one.
            if items.is_empty() {
                return Err(ApiError::bad_request("input_ids cannot be empty.").into());
            }
            if items[0].is_array() {
                let prompts = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Array(ids) => token_ids(ids, &format!("input_ids[{i}]")),
                        _ => Err(ApiError::bad_request(format!(
                            "input_ids[{i}] must be a list of token ids"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (prompts, true)
            } else {
                (vec![token_ids(items, "input_ids")?], false)
            }
        }
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "input_ids must be a list of token ids or a list of such lists",
            )
            .into());
        }
        (None, None) if raw.input_embeds.is_some() => {
            return Err(ApiError::bad_request(
                "input_embeds is not supported by the sim: send text or input_ids",
            )
            .into());
        }
        (None, None) => {
            // SGLang's own message.
            return Err(ApiError::bad_request(
                "Either text, input_ids or input_embeds should be provided.",
            )
            .into());
        }
    };
    let n = prompts.len();
    let logprob_starts = logprob_starts(&raw, &prompts, batch)?;
    let params: Vec<SamplingParams> = match raw.sampling_params {
        None => vec![SamplingParams::default(); n],
        Some(sglang::OneOrMany::One(p)) => vec![p; n],
        Some(sglang::OneOrMany::Many(list)) if batch && list.len() == n => {
            list.into_iter().map(Option::unwrap_or_default).collect()
        }
        Some(sglang::OneOrMany::Many(list)) => {
            return Err(ApiError::bad_request(format!(
                "sampling_params has {} entries for {n} prompt(s): send one object, or one per prompt of a batch",
                list.len()
            )).into());
        }
    };
    let kind = sglang::kind(role);
    check_role(kind, role)?;
    let bootstraps = sglang::per_item(
        sglang::Fields {
            bootstrap_host: raw.bootstrap_host,
            bootstrap_port: raw.bootstrap_port,
            bootstrap_room: raw.bootstrap_room,
        },
        batch.then_some(n),
    )?;
    let stream = raw.stream.unwrap_or(false);
    let mut jobs = Vec::with_capacity(n);
    for (i, (prompt, p)) in prompts.into_iter().zip(params).enumerate() {
        if p.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(
                "sampling_params.n other than 1 is not supported by the sim",
            )
            .into());
        }
        let max_tokens = p.max_new_tokens.unwrap_or(SGLANG_DEFAULT_MAX_NEW_TOKENS);
        check_max_tokens(max_tokens, "max_new_tokens", Dialect::Sglang)?;
        sglang_sampling(p.min_new_tokens.unwrap_or(0), max_tokens, knobs_of!(p))?;
        let a = Asked {
            prompt: prompt.ids().len() as u64,
            text: matches!(prompt, ParsedPrompt::Text(_)),
            max_tokens: Some(max_tokens),
            generation_only: kind == Kind::GenerationOnly,
        };
        let fit = context_len::fit(Dialect::Sglang, lengths, a, max_tokens)?;
        let mut prompt = prompt;
        prompt.truncate(fit.prompt);
        let max_tokens = fit.max_tokens;
        let hand_off = sglang::hand_off(kind, &bootstraps[i])?;
        jobs.push(job(
            kind,
            prompt.into_ids(),
            Limits {
                max_tokens,
                eos_at,
                ignore_eos: p.ignore_eos.unwrap_or(false),
                min_tokens: p.min_new_tokens.unwrap_or(0),
            },
            stream,
            false,
            None,
            hand_off,
        ));
    }
    Ok(Parsed {
        jobs,
        batch,
        logprob_starts,
    })
}

/// Per prompt, where its `input_token_logprobs` start when `return_logprob` asks for them, as
/// SGLang's scheduler reads `logprob_start_len`: -1 (the default) is the last prompt token
/// only; a start at or past the prompt's end is refused.
fn logprob_starts(
    raw: &RawGenerate,
    prompts: &[ParsedPrompt],
    batch: bool,
) -> Result<Vec<Option<usize>>, ApiError> {
    fn at<T: Copy>(v: &Option<sglang::OneOrMany<T>>, i: usize, batch: bool) -> Option<T> {
        match v {
            None => None,
            Some(sglang::OneOrMany::One(x)) => Some(*x),
            Some(sglang::OneOrMany::Many(list)) if batch => list.get(i).copied().flatten(),
            Some(sglang::OneOrMany::Many(_)) => None,
        }
    }
    (prompts.iter().enumerate())
        .map(|(i, p)| {
            if !at(&raw.return_logprob, i, batch).unwrap_or(false) {
                return Ok(None);
            }
            let len = p.ids().len();
            match at(&raw.logprob_start_len, i, batch).unwrap_or(-1) {
                start if start < 0 => Ok(Some(len.saturating_sub(1))),
                start if (start as usize) < len => Ok(Some(start as usize)),
                start => Err(ApiError::bad_request(format!(
                    "logprob_start_len ({start}) is higher than the number of input tokens ({len})"
                ))),
            }
        })
        .collect()
}

/// What the engines' request validation refuses of the sampling settings the sim otherwise
/// ignores, each in the engine's words: vLLM's (`validate_stream_options`,
/// `SamplingParams._verify_args`) and SGLang's (`SamplingParams.verify`). TensorRT-LLM's own
/// checks are in its dialect's field scan.
fn check_sampling(raw: &RawRequest, dialect: Dialect, max_tokens: u64) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    let min_tokens = raw.min_tokens.map_or(0, |w| w.0);
    match dialect {
        Dialect::Vllm => {
            // vLLM: `if data.get("stream_options") and not data.get("stream")`: an empty
            // object is Python's false, and passes.
            if raw.stream_options.as_ref().is_some_and(|o| !o.is_empty())
                && !raw.stream.unwrap_or(false)
            {
                return bad("Stream options can only be defined when `stream=True`.".into());
            }
            if min_tokens > max_tokens {
                return bad(format!(
                    "min_tokens must be less than or equal to max_tokens={max_tokens}, got \
                     {min_tokens}."
                ));
            }
            vllm_knobs(knobs_of!(raw))?;
            let stops: Vec<&str> = match &raw.stop {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if stops.contains(&"") {
                return bad("stop cannot contain an empty string.".into());
            }
        }
        Dialect::Sglang => sglang_sampling(min_tokens, max_tokens, knobs_of!(raw))?,
        Dialect::Trtllm => trtllm_knobs(knobs_of!(raw))?,
    }
    Ok(())
}

/// `stop` as all three engines' request models type it: a string, a list of strings, or null.
fn check_stop(stop: Option<&Value>) -> Result<(), ApiError> {
    let ok = match stop {
        None | Some(Value::Null | Value::String(_)) => true,
        Some(Value::Array(a)) => a.iter().all(Value::is_string),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "stop: Input should be a valid string or a list of strings, got {}",
            stop.map_or_else(String::new, Value::to_string)
        )))
    }
}

/// vLLM's refusals of fields the sim otherwise ignores, in its words: a completions `suffix`
/// (`render_completion`), and chat's tool settings that cannot work (`check_tool_usage`).
fn vllm_fields(raw: &RawRequest, endpoint: Endpoint) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::bad_request(m));
    let given = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    match endpoint {
        Endpoint::Completions if given(&raw.suffix) => bad("suffix is not currently supported"),
        Endpoint::Chat => {
            if raw
                .tools
                .as_ref()
                .is_some_and(|t| t.as_array().is_some_and(Vec::is_empty))
            {
                return bad(
                    "`tools` must not be an empty array. Either provide at least one tool or omit \
                     the field entirely.",
                );
            }
            let choice = raw.tool_choice.as_ref().filter(|c| !c.is_null());
            if choice.is_some_and(|c| c != "none") && !given(&raw.tools) {
                return bad("When using `tool_choice`, `tools` must be set.");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// vLLM's default `--max-logprobs`.
const VLLM_MAX_LOGPROBS: i64 = 20;

/// A number as vLLM's `check_logprobs` takes it (`isinstance(v, (int, float))`, a bool being an
/// int to Python): `Err` for anything else, in its words.
fn py_number(v: Option<&Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::Bool(b)) => Ok(Some(f64::from(u8::from(*b)))),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{name}` must be an integer."
        ))),
    }
}

/// Python's truth of a JSON value, as `data.get(...)` is tested in vLLM's validators.
fn py_true(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// vLLM's logprobs checks, in its words: the request models' `check_logprobs` (counts are -1 or
/// at least 0; chat's `top_logprobs` needs `logprobs: true`; no prompt logprobs on a stream),
/// then the engine's cap, `--max-logprobs` (-1 asks for the whole vocabulary).
fn vllm_logprobs(raw: &RawRequest, endpoint: Endpoint, max: i64) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    let (count_name, count) = match endpoint {
        Endpoint::Chat => ("top_logprobs", raw.top_logprobs.as_ref()),
        _ => ("logprobs", raw.logprobs.as_ref()),
    };
    let prompt = py_number(raw.prompt_logprobs.as_ref(), "prompt_logprobs")?;
    let count = py_number(count, count_name)?;
    if let Some(p) = prompt {
        if raw.stream == Some(true) && (p > 0.0 || p == -1.0) {
            return bad("`prompt_logprobs` are not available when `stream=True`.".into());
        }
        if p < 0.0 && p != -1.0 {
            return bad(format!(
                "`prompt_logprobs` must be a positive value or -1. ({p})"
            ));
        }
    }
    if let Some(c) = count.filter(|c| *c < 0.0 && *c != -1.0) {
        return bad(format!(
            "`{count_name}` must be a positive value or -1. ({c})"
        ));
    }
    // Chat samples `top_logprobs` of them only when `logprobs` is true.
    let sample = match endpoint {
        Endpoint::Chat => {
            let on = py_true(raw.logprobs.as_ref());
            if count.is_some_and(|c| c == -1.0 || c > 0.0) && !on {
                return bad("when using `top_logprobs`, `logprobs` must be set to true.".into());
            }
            count.filter(|_| on)
        }
        _ => count,
    };
    let vocab = f64::from(tokens::VOCAB_SIZE);
    let cap = if max == -1 { vocab } else { max as f64 };
    for (what, n) in [("sample", sample), ("prompt", prompt)] {
        // `if params.logprobs:`: 0 asks for none.
        let Some(n) = n.filter(|n| *n != 0.0) else {
            continue;
        };
        let n = if n == -1.0 { vocab } else { n };
        if n > cap {
            return bad(format!(
                "Requested {what} logprobs of {n}, which is greater than max allowed: {cap}"
            ));
        }
    }
    Ok(())
}

/// A knob outside its range: the engine's 400, in its words.
fn out_of_range(why: String) -> Result<(), ApiError> {
    Err(ApiError::bad_request(why))
}

/// vLLM's `SamplingParams._verify_args`, in its words.
fn vllm_knobs(k: Knobs) -> Result<(), ApiError> {
    if let Some(t) = k.temperature.filter(|t| *t < 0.0) {
        return out_of_range(format!("temperature must be non-negative, got {t}."));
    }
    if let Some(p) = k.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        return out_of_range(format!("top_p must be in (0, 1], got {p}."));
    }
    // -1 and 0 both turn it off, in one release or another; below that none takes it.
    if let Some(t) = k.top_k.filter(|t| *t < -1) {
        return out_of_range(format!(
            "top_k must be 0 (disable), or at least 1, got {t}."
        ));
    }
    if let Some(p) = k.min_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return out_of_range(format!("min_p must be in [0, 1], got {p}."));
    }
    for (name, v) in [
        ("presence_penalty", k.presence_penalty),
        ("frequency_penalty", k.frequency_penalty),
    ] {
        if let Some(v) = v.filter(|v| !(-2.0..=2.0).contains(v)) {
            return out_of_range(format!("{name} must be in [-2, 2], got {v}."));
        }
    }
    if let Some(r) = k.repetition_penalty.filter(|r| *r <= 0.0) {
        return out_of_range(format!(
            "repetition_penalty must be greater than zero, got {r}."
        ));
    }
    Ok(())
}

/// TensorRT-LLM's `SamplingParams._validate`, in its words.
fn trtllm_knobs(k: Knobs) -> Result<(), ApiError> {
    if let Some(p) = k.top_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return out_of_range(format!("require 0 <= top_p <= 1, got top_p={p}"));
    }
    if let Some(t) = k.top_k.filter(|t| *t < 0) {
        return out_of_range(format!("require top_k >= 0, got top_k={t}"));
    }
    if let Some(t) = k.temperature.filter(|t| *t < 0.0) {
        return out_of_range(format!("require temperature >= 0, got temperature={t}"));
    }
    Ok(())
}

/// SGLang's `SamplingParams.verify`, in its words, for `/generate` and the OpenAI routes alike.
fn sglang_sampling(min: u64, max: u64, k: Knobs) -> Result<(), ApiError> {
    if min > max {
        return out_of_range(format!(
            "min_new_tokens must be in [0, max_new_tokens({max})], got {min}."
        ));
    }
    if let Some(t) = k.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        return out_of_range(format!(
            "temperature must be a non-negative finite number, got {t}."
        ));
    }
    if let Some(p) = k.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
        return out_of_range(format!("top_p must be in (0, 1], got {p}."));
    }
    if let Some(p) = k.min_p.filter(|p| !(0.0..=1.0).contains(p)) {
        return out_of_range(format!("min_p must be in [0, 1], got {p}."));
    }
    if let Some(t) = k.top_k.filter(|t| *t < 1 && *t != -1) {
        return out_of_range(format!(
            "top_k must be -1 (disable), or at least 1, got {t}."
        ));
    }
    for (name, v) in [
        ("frequency_penalty", k.frequency_penalty),
        ("presence_penalty", k.presence_penalty),
    ] {
        if let Some(v) = v.filter(|v| !(-2.0..=2.0).contains(v)) {
            return out_of_range(format!("{name} must be in [-2, 2], got {v}."));
        }
    }
    if let Some(r) = k.repetition_penalty.filter(|r| !(*r > 0.0 && *r <= 2.0)) {
        return out_of_range(format!("repetition_penalty must be in (0, 2], got {r}."));
    }
    Ok(())
}

/// vLLM and TensorRT-LLM want at least one output token; SGLang takes 0 (`SamplingParams.verify`:
/// "max_new_tokens must be at least 0") on `/generate` and chat, answering the prompt with no
/// tokens (its completions route refuses it first).
fn check_max_tokens(max_tokens: u64, name: &str, dialect: Dialect) -> Result<(), ApiError> {
    if max_tokens == 0 && dialect != Dialect::Sglang {
        return Err(ApiError::bad_request(format!("{name} must be at least 1")));
    }
    // Far beyond any context length, and it keeps every token count safe from overflow.
    if max_tokens > u64::from(u32::MAX) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {}",
            u32::MAX
        )));
    }
    Ok(())
}

/// What bounds a job's output.
struct Limits {
    max_tokens: u64,
    eos_at: Option<u64>,
    ignore_eos: bool,
    min_tokens: u64,
}

fn job(
    kind: Kind,
    prompt: Vec<u32>,
    limits: Limits,
    stream: bool,
    include_usage: bool,
    disagg_request_id: Option<u64>,
    hand_off: HandOff,
) -> Job {
    let (max_tokens, finish) = output_length(
        if kind == Kind::ContextOnly {
            1
        } else {
            limits.max_tokens
        },
        limits.eos_at,
        limits.ignore_eos,
        limits.min_tokens,
    );
    Job {
        kind,
        digest: PromptDigest::of(&prompt),
        prompt,
        max_tokens,
        finish,
        stream,
        include_usage,
        disagg_request_id,
        hand_off,
    }
}

/// A prompt as received: the sim needs to know whether it arrived as ids.
pub(crate) enum ParsedPrompt {
    Text(Vec<u32>),
    Ids(Vec<u32>),
}

impl ParsedPrompt {
    fn ids(&self) -> &[u32] {
        match self {
            ParsedPrompt::Text(ids) | ParsedPrompt::Ids(ids) => ids,
        }
    }
    fn into_ids(self) -> Vec<u32> {
        match self {
            ParsedPrompt::Text(ids) | ParsedPrompt::Ids(ids) => ids,
        }
    }
    /// Keeps the first `n` tokens (SGLang's auto-truncation keeps the head of the prompt).
    fn truncate(&mut self, n: u64) {
        match self {
            ParsedPrompt::Text(ids) | ParsedPrompt::Ids(ids) => {
                ids.truncate(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }
}

/// A chat request's prompt: the router's `prompt_token_ids` when present (TensorRT-LLM's
/// generation leg), else the messages rendered as `role: content` lines and tokenized.
fn chat_prompt(raw: &RawRequest) -> Result<ParsedPrompt, ApiError> {
    if let Some(ids) = raw.prompt_token_ids.as_ref().filter(|ids| !ids.is_empty()) {
        return Ok(ParsedPrompt::Ids(ids.clone()));
    }
    let messages = raw
        .messages
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("missing field `messages`"))?;
    let mut text = String::new();
    for m in messages {
        text.push_str(&m.role);
        text.push_str(": ");
        match &m.content {
            Value::String(s) => text.push_str(s),
            Value::Null => {}
            Value::Array(parts) => {
                for part in parts {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        text.push_str(t);
                        text.push(' ');
                    }
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "message content must be a string or a list of content parts",
                ));
            }
        }
        text.push('\n');
    }
    let ids = tokens::tokenize(&text);
    if ids.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    Ok(ParsedPrompt::Text(ids))
}

/// A completions `prompt`: a string or a list of token ids, or (a batch) a list of those.
fn parse_prompts(value: &Value) -> Result<(Vec<ParsedPrompt>, bool), ApiError> {
    match value {
        Value::String(text) => Ok((vec![text_prompt(text, "prompt")?], false)),
        Value::Array(items) if items.first().is_some_and(|v| v.is_string() || v.is_array()) => {
            let prompts = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = format!("prompt[{i}]");
                    match v {
                        Value::String(text) => text_prompt(text, &name),
                        Value::Array(ids) => token_ids(ids, &name),
                        _ => Err(ApiError::bad_request(format!(
                            "{name} must be a string or a list of token ids"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((prompts, true))
        }
        Value::Array(ids) => Ok((vec![token_ids(ids, "prompt")?], false)),
        _ => Err(ApiError::bad_request(
            "prompt must be a string or a list of token ids",
        )),
    }
}

fn text_prompt(text: &str, name: &str) -> Result<ParsedPrompt, ApiError> {
    let ids = tokens::tokenize(text);
    if ids.is_empty() {
        return Err(ApiError::bad_request(format!("{name} is empty")));
    }
    Ok(ParsedPrompt::Text(ids))
}

fn token_ids(items: &[Value], name: &str) -> Result<ParsedPrompt, ApiError> {
    let ids = items
        .iter()
        .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name}: token ids must be integers in 0..=4294967295"
            ))
        })?;
    if ids.is_empty() {
        return Err(ApiError::bad_request(format!("{name} is empty")));
    }
    Ok(ParsedPrompt::Ids(ids))
}

fn check_role(kind: Kind, role: SimRole) -> Result<(), ApiError> {
    let accepted = match role {
        SimRole::Both => true,
        SimRole::Context => kind == Kind::ContextOnly,
        // A whole request at a generation server: TensorRT-LLM's disaggregated server sends
        // one when conditional disaggregation skips the context leg; vLLM's kind() let it
        // through only with explicit kv_transfer_params; SGLang's kind() is the role's.
        SimRole::Generation => matches!(kind, Kind::GenerationOnly | Kind::Aggregated),
    };
    if accepted {
        return Ok(());
    }
    let role_flag = match role {
        SimRole::Context => "context",
        SimRole::Generation => "generation",
        SimRole::Both => "both",
    };
    let hint = match kind {
        Kind::Aggregated => {
            "requests without disaggregated_params need a sim with --role generation or both"
        }
        Kind::ContextOnly => "context_only requests need --role context or both",
        Kind::GenerationOnly => "generation_only requests need --role generation or both",
    };
    let name = kind.name();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    Err(ApiError::bad_request(format!(
        "this sim runs with --role {role_flag} and cannot serve {article} {name} request: {hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(body: &str, role: SimRole) -> String {
        match parse(
            body.as_bytes(),
            Endpoint::Completions,
            role,
            Dialect::Trtllm,
            None,
            None,
            LengthLimits::default(),
        ) {
            Ok(job) => panic!("accepted {body}: {job:?}"),
            Err(e) => {
                assert_eq!(e.api.status, 400);
                e.api.message
            }
        }
    }

    #[test]
    fn eos_ends_early_unless_ignored_or_before_min_tokens() {
        use Finish::{Length, Stop};
        assert_eq!(output_length(10, None, false, 0), (10, Length));
        assert_eq!(output_length(10, Some(3), false, 0), (4, Stop));
        assert_eq!(output_length(10, Some(3), true, 0), (10, Length));
        assert_eq!(output_length(10, Some(3), false, 5), (10, Length));
        assert_eq!(output_length(10, Some(3), false, 4), (4, Stop));
        assert_eq!(output_length(4, Some(3), false, 0), (4, Stop));
        assert_eq!(output_length(3, Some(3), false, 0), (3, Length));
        assert_eq!(output_length(1, Some(0), false, 0), (1, Stop));
    }

    #[test]
    fn chat_prompts_come_from_messages_or_the_routers_token_ids() {
        let chat = |body: &str| {
            parse(
                body.as_bytes(),
                Endpoint::Chat,
                SimRole::Both,
                Dialect::Trtllm,
                None,
                None,
                LengthLimits::default(),
            )
        };
        let job = chat(
            r#"{"messages":[{"role":"user","content":"hi there"}],"max_completion_tokens":3}"#,
        )
        .expect("valid");
        assert_eq!(job.prompt, tokens::tokenize("user: hi there"));
        assert_eq!(job.max_tokens, 3);
        let parts =
            chat(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi there"}]}]}"#)
                .expect("valid");
        assert_eq!(parts.prompt, job.prompt);
        let ids = chat(r#"{"messages":[{"role":"user","content":"x"}],"prompt_token_ids":[5,6]}"#)
            .expect("valid");
        assert_eq!(ids.prompt, vec![5, 6]);
        let err = chat(r#"{"prompt":"a"}"#).expect_err("no messages");
        assert!(err.api.message.contains("messages"), "{}", err.api.message);
    }

    #[test]
    fn defaults() {
        let job = parse(
            br#"{"prompt":"a b c","model":"x","unknown":1}"#,
            Endpoint::Completions,
            SimRole::Both,
            Dialect::Trtllm,
            None,
            None,
            LengthLimits::default(),
        )
        .expect("valid");
        assert_eq!(job.kind, Kind::Aggregated);
        assert_eq!(job.prompt.len(), 3);
        assert_eq!(job.max_tokens, 16);
        assert!(!job.stream && !job.include_usage);
    }

    #[test]
    fn context_only_never_streams_and_makes_one_token() {
        let job = parse(
            br#"{"prompt":[1,2],"max_tokens":9,"stream":true,"disaggregated_params":{"request_type":"context_only"}}"#,
            Endpoint::Completions,
            SimRole::Context,
            Dialect::Trtllm,
            None,
            None,
            LengthLimits::default(),
        )
        .expect("valid");
        assert_eq!(job.kind, Kind::ContextOnly);
        assert_eq!(job.max_tokens, 1);
        assert!(!job.stream);
    }

    #[test]
    fn rejections_say_why() {
        let table: &[(&str, SimRole, &str)] = &[
            ("{", SimRole::Both, "invalid completions request body"),
            (
                r#"{"prompt":5}"#,
                SimRole::Both,
                "string or a list of token ids",
            ),
            (r#"{"prompt":["a","b"]}"#, SimRole::Both, "batched prompts"),
            (r#"{"prompt":[[1],[2]]}"#, SimRole::Both, "batched prompts"),
            (r#"{"prompt":[-1]}"#, SimRole::Both, "integers"),
            (r#"{"prompt":""}"#, SimRole::Both, "prompt is empty"),
            (
                r#"{"max_tokens":3}"#,
                SimRole::Both,
                "missing field `prompt`",
            ),
            (
                r#"{"prompt":"a","max_tokens":0}"#,
                SimRole::Both,
                "at least 1",
            ),
            (
                r#"{"prompt":"a","max_tokens":18446744073709551615}"#,
                SimRole::Both,
                "at most",
            ),
            (
                r#"{"prompt":"a","max_tokens":"3"}"#,
                SimRole::Both,
                "invalid type",
            ),
            (
                r#"{"prompt":"a"}"#,
                SimRole::Context,
                "--role generation or both",
            ),
            (
                r#"{"prompt":"a","disaggregated_params":{"request_type":"context_only"}}"#,
                SimRole::Generation,
                "--role context or both",
            ),
            (
                r#"{"prompt":"a","disaggregated_params":{"request_type":"generation_only","first_gen_tokens":[1],"ctx_request_id":1}}"#,
                SimRole::Generation,
                "token ids",
            ),
            (
                r#"{"prompt":[1],"disaggregated_params":{"request_type":"generation_only","ctx_request_id":1}}"#,
                SimRole::Generation,
                "first_gen_tokens",
            ),
            (
                r#"{"prompt":[1],"disaggregated_params":{"request_type":"generation_only","first_gen_tokens":[],"ctx_request_id":1}}"#,
                SimRole::Generation,
                "first_gen_tokens",
            ),
            (
                r#"{"prompt":[1],"disaggregated_params":{"request_type":"generation_only","first_gen_tokens":[1]}}"#,
                SimRole::Generation,
                "ctx_request_id",
            ),
        ];
        for (body, role, needle) in table {
            let msg = bad(body, *role);
            assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
        }
    }

    #[test]
    fn hand_off_for_another_prompt_is_refused() {
        let right = tokens::token_at(PromptDigest::of(&[1, 2, 3]), 0);
        let wrong = (right + 1) % tokens::VOCAB_SIZE;
        let body = |t: u32| {
            format!(
                r#"{{"prompt":[1,2,3],"disaggregated_params":{{"request_type":"generation_only","first_gen_tokens":[{t}],"ctx_request_id":7,"encoded_opaque_state":"{}"}}}}"#,
                crate::handoff::opaque::encode_peer("127.0.0.1:9")
            )
        };
        let job = parse(
            body(right).as_bytes(),
            Endpoint::Completions,
            SimRole::Generation,
            Dialect::Trtllm,
            None,
            None,
            LengthLimits::default(),
        )
        .expect("valid");
        assert_eq!(job.kind, Kind::GenerationOnly);
        let msg = bad(&body(wrong), SimRole::Generation);
        assert!(
            msg.contains("first_gen_tokens does not match the prompt"),
            "{msg}"
        );
    }
}

#[cfg(test)]
mod model_names {
    use super::*;

    #[test]
    fn vllm_answers_a_model_it_does_not_serve_with_404() {
        let parse_as = |body: &str, served| {
            parse(
                body.as_bytes(),
                Endpoint::Completions,
                SimRole::Both,
                Dialect::Vllm,
                None,
                served,
                LengthLimits::default(),
            )
        };
        let served = ["llama".to_string(), "llama-alias".to_string()];
        let e = parse_as(r#"{"prompt":"a","model":"meta-llama/X"}"#, Some(&served))
            .expect_err("another name");
        assert_eq!(e.api.status, 404);
        assert_eq!(e.api.message, "The model `meta-llama/X` does not exist.");
        assert_eq!(e.body()["error"]["param"], "model", "{}", e.body());
        for ok in [
            r#"{"prompt":"a","model":"llama"}"#,
            r#"{"prompt":"a","model":"llama-alias"}"#,
            r#"{"prompt":"a"}"#,
        ] {
            parse_as(ok, Some(&served)).expect("served, or no name");
        }
        parse_as(r#"{"prompt":"a","model":"other"}"#, None).expect("no check asked");
    }

    /// What vLLM's and SGLang's request validation refuses, the sim refuses in their words; and
    /// what their defaults read the same way.
    #[test]
    fn sampling_settings_the_engines_refuse_are_refused() {
        let parse_as = |dialect, endpoint, body: &str| {
            parse(
                body.as_bytes(),
                endpoint,
                SimRole::Both,
                dialect,
                None,
                None,
                LengthLimits::default(),
            )
        };
        for (dialect, body, says) in [
            (
                Dialect::Vllm,
                r#"{"prompt":"a","stream_options":{"include_usage":true}}"#,
                "Stream options can only be defined when `stream=True`.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","max_tokens":2,"min_tokens":5}"#,
                "min_tokens must be less than or equal to max_tokens=2, got 5.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","temperature":-1}"#,
                "temperature must be non-negative",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","top_p":0}"#,
                "top_p must be in (0, 1]",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","stop":["x",""]}"#,
                "stop cannot contain an empty string.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","max_tokens":2,"min_tokens":5}"#,
                "min_new_tokens must be in [0, max_new_tokens(2)], got 5.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","temperature":-1}"#,
                "temperature must be a non-negative finite number",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","frequency_penalty":5}"#,
                "frequency_penalty must be in [-2, 2], got 5.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","presence_penalty":-5}"#,
                "presence_penalty must be in [-2, 2], got -5.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","repetition_penalty":0}"#,
                "repetition_penalty must be greater than zero, got 0.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","top_k":-5}"#,
                "top_k must be 0 (disable), or at least 1, got -5.",
            ),
            (
                Dialect::Vllm,
                r#"{"prompt":"a","min_p":2}"#,
                "min_p must be in [0, 1], got 2.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","top_p":1.5}"#,
                "top_p must be in (0, 1], got 1.5.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","top_k":0}"#,
                "top_k must be -1 (disable), or at least 1, got 0.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","repetition_penalty":5}"#,
                "repetition_penalty must be in (0, 2], got 5.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","frequency_penalty":-3}"#,
                "frequency_penalty must be in [-2, 2], got -3.",
            ),
            (
                Dialect::Sglang,
                r#"{"prompt":"a","max_tokens":0}"#,
                "max_tokens must be positive",
            ),
            (
                Dialect::Trtllm,
                r#"{"model":"m","prompt":"a","temperature":-1}"#,
                "require temperature >= 0, got temperature=-1",
            ),
            (
                Dialect::Trtllm,
                r#"{"model":"m","prompt":"a","top_p":1.5}"#,
                "require 0 <= top_p <= 1, got top_p=1.5",
            ),
            (
                Dialect::Trtllm,
                r#"{"model":"m","prompt":"a","top_k":-5}"#,
                "require top_k >= 0, got top_k=-5",
            ),
        ] {
            let e = parse_as(dialect, Endpoint::Completions, body).expect_err(body);
            assert_eq!(e.api.status, 400, "{body}");
            assert!(e.api.message.contains(says), "{body}: {}", e.api.message);
        }
        let e = parse_as(
            Dialect::Sglang,
            Endpoint::Generate,
            r#"{"text":"a","sampling_params":{"max_new_tokens":2,"min_new_tokens":5},"bootstrap_room":1}"#,
        )
        .expect_err("generate");
        assert!(
            e.api.message.contains("min_new_tokens must be in"),
            "{}",
            e.api.message
        );
        for body in [
            r#"{"text":"a","sampling_params":{"max_new_tokens":2,"top_p":2},"bootstrap_room":1}"#,
            r#"{"text":"a","sampling_params":{"max_new_tokens":2,"top_k":0},"bootstrap_room":1}"#,
        ] {
            let e = parse_as(Dialect::Sglang, Endpoint::Generate, body).expect_err(body);
            assert_eq!(e.api.status, 400, "{body}");
        }
        // Accepted as the engines accept them: the edges of each range, and an empty
        // `stream_options` without streaming (Python's false to vLLM).
        for body in [
            r#"{"prompt":"a","temperature":0,"top_p":1,"stop":["x"],"max_tokens":5,"min_tokens":5}"#,
            r#"{"prompt":"a","stream":true,"stream_options":{}}"#,
            r#"{"prompt":"a","stream_options":{}}"#,
            r#"{"prompt":"a","top_k":-1,"min_p":0,"frequency_penalty":2,"presence_penalty":-2,"repetition_penalty":1.1}"#,
            // pydantic takes a whole float for an int field.
            r#"{"prompt":"a","top_k":5.0}"#,
        ] {
            parse_as(Dialect::Vllm, Endpoint::Completions, body).expect(body);
        }
        parse_as(
            Dialect::Sglang,
            Endpoint::Completions,
            r#"{"prompt":"a","top_k":-1,"top_p":1,"min_p":1,"repetition_penalty":2}"#,
        )
        .expect("SGLang's edges");
        parse_as(
            Dialect::Trtllm,
            Endpoint::Completions,
            r#"{"model":"m","prompt":"a","top_k":0,"top_p":0,"temperature":0}"#,
        )
        .expect("TensorRT-LLM's edges");
        // SGLang's chat reads `max_completion_tokens or max_tokens`: a 0 falls back, and a
        // max_tokens of 0 is answered with no tokens.
        let chat = |body: &str| parse_as(Dialect::Sglang, Endpoint::Chat, body);
        let p = chat(r#"{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":0,"max_tokens":7}"#)
            .unwrap();
        assert_eq!(p.max_tokens, 7);
        let p = chat(r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#).unwrap();
        assert_eq!(p.max_tokens, 0);
        // `max_completion_tokens` wins over `max_tokens`.
        let p = parse_as(
            Dialect::Vllm,
            Endpoint::Chat,
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max_completion_tokens":2}"#,
        )
        .unwrap();
        assert_eq!(p.max_tokens, 2);
        let p = parse_as(
            Dialect::Vllm,
            Endpoint::Completions,
            r#"{"prompt":"a","stream":true,"stream_options":{}}"#,
        )
        .unwrap();
        assert!(p.include_usage, "include_usage defaults to true");
    }

    /// vLLM's logprobs checks (the request models' and the engine's `--max-logprobs` cap), in
    /// its words; and a `stop` that is neither a string nor a list of them, in every dialect.
    #[test]
    fn logprobs_vllm_refuses_and_a_stop_of_the_wrong_type_are_refused() {
        let parse_as = |endpoint, body: &str, max_logprobs| {
            parse(
                body.as_bytes(),
                endpoint,
                SimRole::Both,
                Dialect::Vllm,
                None,
                None,
                LengthLimits {
                    max_logprobs,
                    ..LengthLimits::default()
                },
            )
        };
        let chat = r#""messages":[{"role":"user","content":"hi"}]"#;
        for (endpoint, body, says) in [
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"top_logprobs":5}}"#),
                "when using `top_logprobs`, `logprobs` must be set to true.",
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"logprobs":true,"top_logprobs":21}}"#),
                "Requested sample logprobs of 21, which is greater than max allowed: 20",
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"logprobs":true,"top_logprobs":-1}}"#),
                "Requested sample logprobs of 32000",
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"top_logprobs":"5"}}"#),
                "`top_logprobs` must be an integer.",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","logprobs":21}"#.to_string(),
                "Requested sample logprobs of 21, which is greater than max allowed: 20",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","logprobs":-2}"#.to_string(),
                "`logprobs` must be a positive value or -1.",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","stream":true,"prompt_logprobs":1}"#.to_string(),
                "`prompt_logprobs` are not available when `stream=True`.",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","prompt_logprobs":30}"#.to_string(),
                "Requested prompt logprobs of 30, which is greater than max allowed: 20",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","stop":5}"#.to_string(),
                "stop: Input should be a valid string or a list of strings, got 5",
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","suffix":"b"}"#.to_string(),
                "suffix is not currently supported",
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"tools":[]}}"#),
                "`tools` must not be an empty array.",
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"tool_choice":"required"}}"#),
                "When using `tool_choice`, `tools` must be set.",
            ),
        ] {
            let e = parse_as(endpoint, &body, None).expect_err(&body);
            assert_eq!(e.api.status, 400, "{body}");
            assert!(e.api.message.contains(says), "{body}: {}", e.api.message);
        }
        // What vLLM takes: counts within the cap, 0, top_logprobs 0 without logprobs, prompt
        // logprobs of 0 on a stream, a cap raised by --max-logprobs (or -1, the vocabulary).
        for (endpoint, body, cap) in [
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"logprobs":true,"top_logprobs":20}}"#),
                None,
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"top_logprobs":0}}"#),
                None,
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"logprobs":false}}"#),
                None,
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","logprobs":0}"#.into(),
                None,
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","logprobs":50}"#.into(),
                Some(50),
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","logprobs":-1}"#.into(),
                Some(-1),
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","stream":true,"prompt_logprobs":0}"#.into(),
                None,
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","stop":null}"#.into(),
                None,
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","stop":"x"}"#.into(),
                None,
            ),
            (
                Endpoint::Completions,
                r#"{"prompt":"a","suffix":null}"#.into(),
                None,
            ),
            (
                Endpoint::Chat,
                format!(r#"{{{chat},"tool_choice":"none"}}"#),
                None,
            ),
        ] {
            parse_as(endpoint, &body, cap).expect(&body);
        }
        for dialect in [Dialect::Sglang, Dialect::Trtllm] {
            let e = parse(
                br#"{"model":"m","prompt":"a","stop":["x",1]}"#,
                Endpoint::Completions,
                SimRole::Both,
                dialect,
                None,
                None,
                LengthLimits::default(),
            )
            .expect_err("a number among the stops");
            assert_eq!(e.api.status, 400, "{dialect:?}");
        }
    }

    /// `"prompt": ["hello"]`: one prompt in a list, which TensorRT-LLM's server unwraps and
    /// vLLM answers; two are still refused outside SGLang.
    #[test]
    fn a_list_of_one_prompt_is_that_prompt() {
        for dialect in [Dialect::Trtllm, Dialect::Vllm] {
            let one = |body: &str| {
                parse(
                    body.as_bytes(),
                    Endpoint::Completions,
                    SimRole::Both,
                    dialect,
                    None,
                    None,
                    LengthLimits::default(),
                )
            };
            let listed = one(r#"{"prompt":["hello there"]}"#).expect("one prompt in a list");
            let plain = one(r#"{"prompt":"hello there"}"#).expect("one prompt");
            assert_eq!(listed.prompt, plain.prompt, "{dialect:?}");
            assert!(one(r#"{"prompt":["a","b"]}"#).is_err(), "{dialect:?}");
        }
    }
}
