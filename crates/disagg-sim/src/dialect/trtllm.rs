//! TensorRT-LLM: `disaggregated_params.request_type` says which half (PROTOCOLS.md §1).

use disagg_proto::ApiError;
use disagg_proto::trtllm::{DisaggregatedParams, RequestType};

use super::{HandOff, Produce};
use crate::handoff::{Consume, Expect, opaque};
use crate::request::{Kind, ParsedPrompt};
use crate::tokens::{self, PromptDigest};

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
    Ok(Consume {
        peer,
        key: ctx_request_id,
        wait: false,
        what: format!("ctx_request_id {ctx_request_id}"),
        expect: Expect {
            first_token: Some(first),
            block_ids: None,
        },
    })
}
