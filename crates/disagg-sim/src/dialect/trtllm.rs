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

    /// Before 1.3, a disaggregated server running the overlap scheduler refuses every
    /// context-only request; 1.3 runs them under it (TensorRT-LLM PR #10755, "Support overlap
    /// scheduler for disagg ctx instances", which its 2026 perf configs rely on with
    /// `disable_overlap_scheduler: false` on the context servers).
    pub fn refuses_context_only_under_overlap(&self) -> bool {
        self.major_minor < (1, 3)
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

/// `DisaggregatedParams` of 1.3 and newer (`tensorrt_llm/serve/openai_protocol.py`).
const PARAMS_FIELDS: &[&str] = &[
    "request_type",
    "first_gen_tokens",
    "first_gen_log_probs",
    "first_gen_logits",
    "ctx_request_id",
    "encoded_opaque_state",
    "draft_tokens",
    "disagg_request_id",
    "ctx_dp_rank",
    "ctx_info_endpoint",
    "schedule_style",
    "ctx_usage",
    "return_prompt_token_ids_b64",
    "resolved_thinking",
    // The newest disaggregated server sets these on every context leg (often null):
    // `conversation_id` from the session, the context-side control endpoint, and the
    // hand-off's lifecycle identity (`openai_disagg_service.py`, `_get_ctx_request`).
    "conversation_id",
    "context_control_endpoint",
    "context_transceiver_lifecycle",
    "logical_request_id",
    "prefill_artifact_id",
    "artifact_version",
    "handoff_attempt_uuid",
    "consumer_grant_id",
    "transfer_session_id",
    "generation_endpoint_name",
    "generation_endpoint_rank",
    "generation_endpoint_incarnation",
];

/// Fields both of TensorRT-LLM's request models declare (`CompletionRequest`,
/// `ChatCompletionRequest` in `tensorrt_llm/serve/openai_protocol.py`, newest read): the
/// sampling and extra parameters.
const SHARED_FIELDS: &[&str] = &[
    "model",
    "best_of",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "user",
    "lora_request",
    "prompt_ignore_length",
    "thinking_token_budget",
    "use_beam_search",
    "top_k",
    "top_p_min",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "early_stopping",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "min_tokens",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "add_special_tokens",
    "echo",
    "disaggregated_params",
    "conversation_params",
    "priority",
];

/// `CompletionRequest`'s own fields.
const COMPLETION_FIELDS: &[&str] = &[
    "prompt",
    "max_tokens",
    "suffix",
    "return_context_logits",
    "detokenize",
];

/// `ChatCompletionRequest`'s own fields (`max_tokens` is the alias of `max_completion_tokens`).
const CHAT_FIELDS: &[&str] = &[
    "messages",
    "prompt_token_ids",
    "prompt_token_ids_b64",
    "max_completion_tokens",
    "max_tokens",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    "add_generation_prompt",
    "documents",
    "chat_template",
    "chat_template_kwargs",
    "injected_chat_template_kwargs",
    "media_io_kwargs",
    "cache_salt",
    "agent_hierarchy",
    "mm_processor_kwargs",
];

/// The other dialects' hand-off fields, which a router speaking the wrong dialect sends.
const FOREIGN_FIELDS: &[(&str, &str)] = &[
    ("kv_transfer_params", "vLLM's"),
    ("bootstrap_host", "SGLang's"),
    ("bootstrap_port", "SGLang's"),
    ("bootstrap_room", "SGLang's"),
];

/// What the model check reads of a body: every top-level key, and the few values TensorRT-LLM's
/// validators look at. Other values are skipped unread (a prompt can be megabytes).
#[derive(Default)]
struct TopLevel {
    keys: Vec<String>,
    params: Option<Map<String, Value>>,
    stream: bool,
    stream_options: Option<Value>,
    suffix: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopLevel, A::Error> {
                let mut top = TopLevel::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "disaggregated_params" => {
                            top.params = map.next_value::<Option<Map<String, Value>>>()?
                        }
                        "stream" => top.stream = map.next_value::<Value>()? == Value::Bool(true),
                        "stream_options" => {
                            top.stream_options = map.next_value::<Option<Value>>()?
                        }
                        "suffix" => top.suffix = map.next_value::<Option<Value>>()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    top.keys.push(key);
                }
                Ok(top)
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Whether a JSON value is what Python takes for true (`data.get(...)` in a validator).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// TensorRT-LLM's request models forbid fields they do not declare (pydantic `extra="forbid"`),
/// require `model` (and `prompt` or `messages`), and refuse `stream_options` without `stream` and any `suffix`: each is a
/// 400 there, so it is one here, worded as pydantic words it. `disaggregated_params` is checked
/// against the fields of the version the sim plays (`--trtllm-version`: before 1.3 it has no
/// `disagg_request_id`). The lists are of the newest version read, so an older server may
/// refuse a field the sim lets through, never the reverse. A body that is not a JSON object is
/// left to the request parser's own error.
pub(crate) fn refuse_undeclared_fields(
    body: &[u8],
    chat: bool,
    version: &TrtllmVersion,
) -> Result<(), ApiError> {
    let Ok(top) = serde_json::from_slice::<TopLevel>(body) else {
        return Ok(());
    };
    let (model, own) = if chat {
        ("ChatCompletionRequest", CHAT_FIELDS)
    } else {
        ("CompletionRequest", COMPLETION_FIELDS)
    };
    let mut errors: Vec<String> = Vec::new();
    let required = if chat { "messages" } else { "prompt" };
    for field in [required, "model"] {
        if !top.keys.iter().any(|k| k == field) {
            errors.push(format!("{field}\n  Field required"));
        }
    }
    for key in &top.keys {
        if SHARED_FIELDS.contains(&key.as_str()) || own.contains(&key.as_str()) {
            continue;
        }
        let hint = match FOREIGN_FIELDS.iter().find(|(f, _)| f == key) {
            Some((_, whose)) => format!(
                " ({whose} hand-off field: TensorRT-LLM's server forbids fields it does not \
                 declare, so this router speaks the wrong dialect to it)"
            ),
            None => String::new(),
        };
        errors.push(format!("{key}\n  Extra inputs are not permitted{hint}"));
    }
    let declared = if version.takes_disagg_ids() {
        PARAMS_FIELDS
    } else {
        LEGACY_FIELDS
    };
    for field in top.params.iter().flat_map(|p| p.keys()) {
        if !declared.contains(&field.as_str()) {
            errors.push(format!(
                "disaggregated_params.{field}\n  Extra inputs are not permitted (this sim plays \
                 TensorRT-LLM {}, whose DisaggregatedParams has no `{field}`)",
                version.as_str()
            ));
        }
    }
    let options_set = match &top.stream_options {
        Some(v) if chat => !v.is_null(),
        Some(v) => truthy(v),
        None => false,
    };
    if options_set && !top.stream {
        errors.push(
            "Value error, stream_options can only be set if stream is true (drop \
             stream_options from a request that does not stream)"
                .into(),
        );
    }
    // TensorRT-LLM's StreamOptions forbids extra fields too.
    if let Some(Value::Object(o)) = &top.stream_options {
        for k in o.keys() {
            if !["include_usage", "continuous_usage_stats"].contains(&k.as_str()) {
                errors.push(format!(
                    "stream_options.{k}\n  Extra inputs are not permitted (TensorRT-LLM's \
                     StreamOptions has include_usage and continuous_usage_stats)"
                ));
            }
        }
    }
    if top.suffix.as_ref().is_some_and(truthy) {
        errors.push("Value error, suffix is not supported".into());
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(ApiError::bad_request(format!(
            "1 validation error for {model}\n{}",
            errors[0]
        ))),
        n => Err(ApiError::bad_request(format!(
            "{n} validation errors for {model}\n{}",
            errors.join("\n")
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
            ..Expect::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str, chat: bool, version: &str) -> Option<String> {
        refuse_undeclared_fields(
            body.as_bytes(),
            chat,
            &TrtllmVersion::parse(version).unwrap(),
        )
        .err()
        .map(|e| e.message)
    }

    #[test]
    fn declared_fields_pass_and_the_benchs_bodies_pass() {
        for (body, chat) in [
            (
                r#"{"model":"m","prompt":[1,2],"max_tokens":4,"min_tokens":4,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#,
                false,
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":4,"stream":false}"#,
                true,
            ),
            (
                r#"{"model":"m","messages":[],"prompt_token_ids":[1],"max_completion_tokens":4,"disaggregated_params":{"request_type":"generation_only","ctx_request_id":1,"disagg_request_id":2}}"#,
                true,
            ),
            (
                r#"{"model":"m","prompt":"a","suffix":"","stream_options":null}"#,
                false,
            ),
        ] {
            assert_eq!(refusal(body, chat, "1.3.0"), None, "{body}");
        }
    }

    #[test]
    fn undeclared_fields_are_refused_each_named_as_pydantic_does() {
        let m = refusal(
            r#"{"model":"m","prompt":"a","min_p":0.1,"foo":1,"bar":null}"#,
            false,
            "1.3.0",
        )
        .unwrap();
        assert!(m.starts_with("2 validation errors for CompletionRequest\nfoo\n  Extra inputs are not permitted\nbar\n"), "{m}");
        // A chat field is not a completions field, and the reverse.
        assert!(
            refusal(r#"{"model":"m","prompt":"a","tools":[]}"#, false, "1.3.0")
                .unwrap()
                .contains("tools\n  Extra")
        );
        assert!(
            refusal(
                r#"{"model":"m","messages":[],"detokenize":true}"#,
                true,
                "1.3.0"
            )
            .unwrap()
            .contains("ChatCompletionRequest\ndetokenize")
        );
    }

    #[test]
    fn stream_options_forbid_extra_fields_too() {
        let m = refusal(
            r#"{"model":"m","prompt":"a","stream":true,"stream_options":{"include_usage":true,"zzz":1}}"#,
            false,
            "1.3.0",
        )
        .unwrap();
        assert!(
            m.contains("stream_options.zzz\n  Extra inputs are not permitted"),
            "{m}"
        );
        assert_eq!(
            refusal(
                r#"{"model":"m","prompt":"a","stream":true,"stream_options":{"continuous_usage_stats":false}}"#,
                false,
                "1.3.0"
            ),
            None
        );
    }

    /// A router speaking the wrong dialect is told so.
    #[test]
    fn another_dialects_hand_off_fields_say_whose_they_are() {
        for body in [
            r#"{"model":"m","prompt":"a","kv_transfer_params":{"do_remote_decode":true}}"#,
            r#"{"model":"m","prompt":"a","bootstrap_host":"h","bootstrap_room":1}"#,
        ] {
            let m = refusal(body, false, "1.3.0").unwrap();
            assert!(
                m.contains("Extra inputs are not permitted") && m.contains("wrong dialect"),
                "{m}"
            );
        }
    }

    #[test]
    fn model_is_required_and_stream_options_need_stream_and_suffix_is_refused() {
        let m = refusal(r#"{"prompt":"a"}"#, false, "1.3.0").unwrap();
        assert!(m.contains("model\n  Field required"), "{m}");
        for (body, chat) in [
            (
                r#"{"model":"m","prompt":"a","stream_options":{"include_usage":true}}"#,
                false,
            ),
            (
                r#"{"model":"m","messages":[],"stream":false,"stream_options":{}}"#,
                true,
            ),
        ] {
            let m = refusal(body, chat, "1.3.0").unwrap();
            assert!(
                m.contains("stream_options can only be set if stream is true"),
                "{m}"
            );
        }
        let m = refusal(r#"{"model":"m","prompt":"a","suffix":"z"}"#, false, "1.3.0").unwrap();
        assert!(m.contains("suffix is not supported"), "{m}");
    }

    #[test]
    fn disaggregated_params_are_checked_against_the_version_played() {
        let body = r#"{"model":"m","prompt":"a","disaggregated_params":{"request_type":"context_only","disagg_request_id":7}}"#;
        assert_eq!(refusal(body, false, "1.3.0"), None);
        let m = refusal(body, false, "1.0.0").unwrap();
        assert!(m.contains("disaggregated_params.disagg_request_id\n  Extra inputs are not permitted (this sim plays TensorRT-LLM 1.0.0"), "{m}");
        let m = refusal(r#"{"model":"m","prompt":"a","disaggregated_params":{"request_type":"context_only","remote_host":"h"}}"#, false, "1.3.0").unwrap();
        assert!(m.contains("disaggregated_params.remote_host"), "{m}");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_left_to_the_parser() {
        assert_eq!(refusal("[1]", false, "1.3.0"), None);
        assert_eq!(refusal("{", false, "1.3.0"), None);
    }
}
