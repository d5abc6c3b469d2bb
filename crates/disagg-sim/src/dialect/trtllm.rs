//! TensorRT-LLM: `disaggregated_params.request_type` says which half (PROTOCOLS.md §1).

use disagg_proto::ApiError;
use disagg_proto::trtllm::{DisaggregatedParams, RequestType};
use serde_json::{Map, Value};

use super::{HandOff, Produce};
use crate::handoff::{Consume, Expect, opaque};
use crate::request::{Kind, ParsedPrompt};
use crate::tokens::{self, PromptDigest};

/// The TensorRT-LLM version the sim plays (`--trtllm-version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrtllmVersion {
    text: String,
    major_minor: (u32, u32),
}

impl TrtllmVersion {
    /// What the sim plays unless told otherwise: a worker of the current protocol.
    pub const CURRENT: &'static str = "1.3.0";

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(|c: char| !c.is_ascii_digit());
        let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
        match (number(), number()) {
            (Some(major), Some(minor)) => Ok(Self {
                text: text.to_string(),
                major_minor: (major, minor),
            }),
            _ => Err(format!(
                "{text:?} is not a TensorRT-LLM version (MAJOR.MINOR[.PATCH[rcN]], e.g. 1.0.0 or 1.3.0rc5)"
            )),
        }
    }

    pub fn current() -> Self {
        Self::parse(Self::CURRENT).expect("the current version parses")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// 1.3 and newer take `disaggregated_params.disagg_request_id` (their disaggregated server
    /// sends it); older request models have no such field.
    pub fn takes_disagg_ids(&self) -> bool {
        self.major_minor >= (1, 3)
    }
}

/// `disaggregated_params` fields that workers before `disagg_request_id` declare.
const LEGACY_FIELDS: &[&str] = &[
    "request_type",
    "first_gen_tokens",
    "ctx_request_id",
    "encoded_opaque_state",
    "draft_tokens",
];

/// An older worker's request model forbids unknown fields (pydantic `extra="forbid"`), so a
/// `disaggregated_params` carrying a newer one (`disagg_request_id`, `ctx_dp_rank`, ...) is
/// refused with 400, naming the field as pydantic does.
pub(crate) fn refuse_newer_fields(body: &[u8], version: &TrtllmVersion) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Params {
        disaggregated_params: Option<Map<String, Value>>,
    }
    // A body that is not JSON is left to the request parser's own error.
    let Ok(Params {
        disaggregated_params: Some(params),
    }) = serde_json::from_slice::<Params>(body)
    else {
        return Ok(());
    };
    match params.keys().find(|k| !LEGACY_FIELDS.contains(&k.as_str())) {
        None => Ok(()),
        Some(field) => Err(ApiError::bad_request(format!(
            "1 validation error for CompletionRequest\ndisaggregated_params.{field}\n  Extra \
             inputs are not permitted (this sim plays TensorRT-LLM {}, whose \
             DisaggregatedParams has no `{field}`)",
            version.as_str()
        ))),
    }
}

pub(crate) fn kind(params: Option<&DisaggregatedParams>) -> Kind {
    match params.map(|p| p.request_type) {
        None | Some(RequestType::ContextAndGeneration) => Kind::Aggregated,
        Some(RequestType::ContextOnly) => Kind::ContextOnly,
        Some(RequestType::GenerationOnly) => Kind::GenerationOnly,
    }
}

pub(crate) fn hand_off(
    kind: Kind,
    prompt: &ParsedPrompt,
    digest: PromptDigest,
    params: Option<&DisaggregatedParams>,
) -> Result<HandOff, ApiError> {
    match kind {
        Kind::Aggregated => Ok(HandOff::None),
        Kind::ContextOnly => Ok(HandOff::Produce(Produce::Trtllm)),
        Kind::GenerationOnly => consume(prompt, digest, params).map(HandOff::Consume),
    }
}

/// Checks what can be checked locally (a hand-off made for this very prompt), then names the
/// record to fetch. The local check fails fast, without a round trip, on the commonest router
/// bug: another request's params.
fn consume(
    prompt: &ParsedPrompt,
    digest: PromptDigest,
    params: Option<&DisaggregatedParams>,
) -> Result<Consume, ApiError> {
    if matches!(prompt, ParsedPrompt::Text(_)) {
        return Err(ApiError::bad_request(
            "generation_only requests must carry the prompt as token ids (the context \
             response's prompt_token_ids), not text",
        ));
    }
    let params = params.ok_or_else(|| ApiError::bad_request("missing disaggregated_params"))?;
    let first = params
        .first_gen_tokens
        .as_ref()
        .and_then(|t| t.first().copied())
        .ok_or_else(|| {
            ApiError::bad_request(
                "generation_only request without disaggregated_params.first_gen_tokens \
                 (copy it from the context response)",
            )
        })?;
    let ctx_request_id = params.ctx_request_id.ok_or_else(|| {
        ApiError::bad_request(
            "generation_only request without disaggregated_params.ctx_request_id (copy it \
             from the context response)",
        )
    })?;
    let expected = tokens::token_at(digest, 0);
    if first != expected {
        return Err(ApiError::bad_request(format!(
            "first_gen_tokens does not match the prompt: the KV hand-off is for another \
             request (got first_gen_tokens[0]={first}, this prompt's token 0 is {expected})"
        )));
    }
    let state = params.encoded_opaque_state.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "generation_only request without disaggregated_params.encoded_opaque_state: the \
             context sim puts its address there, so the KV cache cannot be fetched; forward \
             the context response's disaggregated_params unchanged",
        )
    })?;
    let peer = opaque::decode_peer(state).map_err(|why| {
        ApiError::bad_request(format!(
            "disaggregated_params.encoded_opaque_state is unusable ({why}); forward the \
             context response's value unchanged"
        ))
    })?;
    // Workers that take a `disagg_request_id` key the KV transfer on it, before
    // `ctx_request_id` (`DisaggregatedParams.get_context_phase_params`).
    let (key, what) = match params.disagg_request_id {
        Some(id) => (id, format!("disagg_request_id {id}")),
        None => (ctx_request_id, format!("ctx_request_id {ctx_request_id}")),
    };
    Ok(Consume {
        peer,
        key,
        wait: false,
        what,
        expect: Expect {
            first_token: Some(first),
            block_ids: None,
        },
    })
}
