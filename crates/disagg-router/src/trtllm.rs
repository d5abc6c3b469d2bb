//! TensorRT-LLM's disaggregated dialect (PROTOCOLS.md §1), as pure transformations of JSON:
//! the client request → the context request, the context response → either an early finish or
//! the hand-off, and the hand-off → the generation request. No I/O here, so the rules are unit
//! tested on their own; [`crate::dispatch`] does the sending.

use bytes::Bytes;
use disagg_proto::sse;
use disagg_proto::trtllm::DisaggregatedParams;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

/// The two OpenAI endpoints that are split into context and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    ChatCompletions,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::ChatCompletions => "/v1/chat/completions",
        }
    }
}

/// A client request, parsed exactly once. Both outgoing bodies are serialised straight from this
/// map with a few keys overlaid, so a long prompt is never copied or re-parsed.
#[derive(Debug)]
pub(crate) struct ClientRequest {
    pub endpoint: Endpoint,
    pub body: Map<String, Value>,
}

impl ClientRequest {
    pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("request body is not JSON: {e}"))?;
        match value {
            Value::Object(body) => Ok(Self { endpoint, body }),
            other => Err(format!(
                "request body must be a JSON object, not {}",
                json_kind(&other)
            )),
        }
    }

    /// Whether the client asked for SSE.
    pub fn stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    fn include_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// The body for the context leg: the client's request as context-only, never streamed.
    pub fn context_body(&self) -> Vec<u8> {
        let params = serde_json::to_value(DisaggregatedParams::context_only())
            .unwrap_or_else(|_| json!({"request_type": "context_only"}));
        let stream = Value::Bool(false);
        let overlay = Overlay {
            base: &self.body,
            drop: &["stream_options"],
            set: &[("disaggregated_params", &params), ("stream", &stream)],
        };
        to_vec(&overlay)
    }

    /// The body for the generation leg: the original request plus the context's hand-off.
    pub fn generation_body(&self, handoff: &Handoff) -> Vec<u8> {
        let mut set: Vec<(&str, &Value)> = vec![("disaggregated_params", &handoff.params)];
        if let Some(ids) = &handoff.prompt_token_ids {
            match self.endpoint {
                // The context server already tokenised the prompt; reuse its ids verbatim.
                Endpoint::Completions => set.push(("prompt", ids)),
                Endpoint::ChatCompletions => set.push(("prompt_token_ids", ids)),
            }
        }
        let overlay = Overlay {
            base: &self.body,
            drop: &[],
            set: &set,
        };
        to_vec(&overlay)
    }
}

/// What the generation leg needs from the context leg.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// `choices[0].disaggregated_params`, with `request_type: generation_only`. Kept as raw JSON
    /// so fields newer than our types (e.g. `disagg_request_id`) still reach the worker.
    pub params: Value,
    /// Top-level `prompt_token_ids`. When a context server omits them, the original prompt is
    /// sent instead and the generation server tokenises it again.
    pub prompt_token_ids: Option<Value>,
}

/// What the context response says to do next.
#[derive(Debug)]
pub(crate) enum ContextOutcome {
    /// The request already finished (e.g. `stop` on the first token): this is the final response,
    /// cleaned of the hand-off fields.
    Finished(Map<String, Value>),
    /// Go on to a generation server.
    Continue(Handoff),
}

/// Validates a context response and splits it into the hand-off or the final answer. The `Err`
/// is the reason the response is unusable.
pub(crate) fn read_context_response(bytes: &[u8]) -> Result<ContextOutcome, String> {
    let mut resp = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(other) => return Err(format!("expected a JSON object, got {}", json_kind(&other))),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let choice = match resp.get_mut("choices") {
        Some(Value::Array(choices)) if choices.len() == 1 => match &mut choices[0] {
            Value::Object(c) => c,
            _ => return Err("choices[0] is not an object".into()),
        },
        Some(Value::Array(choices)) => {
            return Err(format!(
                "expected exactly one choice, got {}",
                choices.len()
            ));
        }
        _ => return Err("no choices array".into()),
    };
    let mut params = match choice.remove("disaggregated_params") {
        Some(Value::Object(p)) => p,
        Some(Value::Null) | None => return Err("no disaggregated_params in choices[0]".into()),
        Some(other) => {
            return Err(format!(
                "choices[0].disaggregated_params is {}, not an object",
                json_kind(&other)
            ));
        }
    };
    // Checked against the shared type, but forwarded as raw JSON (see `Handoff::params`).
    let typed: DisaggregatedParams = serde_json::from_value(Value::Object(params.clone()))
        .map_err(|e| format!("choices[0].disaggregated_params: {e}"))?;
    if typed.ctx_request_id.is_none() {
        return Err("choices[0].disaggregated_params.ctx_request_id is null".into());
    }
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str);
    if !matches!(finish_reason, Some("length" | "not_finished")) {
        resp.remove("prompt_token_ids");
        return Ok(ContextOutcome::Finished(resp));
    }
    params.insert("request_type".into(), Value::from("generation_only"));
    Ok(ContextOutcome::Continue(Handoff {
        params: Value::Object(params),
        prompt_token_ids: resp.remove("prompt_token_ids"),
    }))
}

/// An early finish, for a client that asked for a stream: one chunk with the whole answer, then
/// `[DONE]`.
pub(crate) fn early_finish_sse(req: &ClientRequest, resp: &Map<String, Value>) -> Bytes {
    let choice = resp
        .get("choices")
        .and_then(|c| c.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    let finish_reason = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
    let (object, out_choice) = match req.endpoint {
        Endpoint::Completions => (
            "text_completion",
            json!({
                "index": 0,
                "text": choice.get("text").cloned().unwrap_or_else(|| Value::from("")),
                "finish_reason": finish_reason,
            }),
        ),
        Endpoint::ChatCompletions => {
            let message = choice.get("message");
            (
                "chat.completion.chunk",
                json!({
                    "index": 0,
                    "delta": {
                        "role": message.and_then(|m| m.get("role")).cloned()
                            .unwrap_or_else(|| Value::from("assistant")),
                        "content": message.and_then(|m| m.get("content")).cloned()
                            .unwrap_or_else(|| Value::from("")),
                    },
                    "finish_reason": finish_reason,
                }),
            )
        }
    };
    let mut chunk = Map::new();
    for key in ["id", "created", "model"] {
        if let Some(v) = resp.get(key) {
            chunk.insert(key.into(), v.clone());
        }
    }
    chunk.insert("object".into(), Value::from(object));
    chunk.insert("choices".into(), Value::Array(vec![out_choice]));
    // Usage rides on the last chunk only when asked for, as OpenAI streams do.
    if let Some(usage) = resp.get("usage").filter(|_| req.include_usage()) {
        chunk.insert("usage".into(), usage.clone());
    }
    let mut out = sse::frame(&to_vec(&chunk)).to_vec();
    out.extend_from_slice(sse::DONE_FRAME);
    Bytes::from(out)
}

/// A JSON object written as `base` minus `drop`, with `set` replacing or adding keys.
struct Overlay<'a> {
    base: &'a Map<String, Value>,
    drop: &'a [&'a str],
    set: &'a [(&'a str, &'a Value)],
}

impl Serialize for Overlay<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.base {
            let replaced = self.set.iter().any(|(sk, _)| sk == k);
            if !replaced && !self.drop.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        for (k, v) in self.set {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Serialising in-memory JSON values to a Vec cannot fail (all keys are strings).
fn to_vec(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Endpoint, v: Value) -> ClientRequest {
        ClientRequest::parse(endpoint, &serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn ctx_response(finish_reason: &str, params: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "id": "c", "choices": [{"index": 0, "text": "x", "finish_reason": finish_reason,
                                    "disaggregated_params": params}],
            "prompt_token_ids": [5, 6],
        }))
        .unwrap()
    }

    fn good_params() -> Value {
        json!({"request_type": "context_only", "first_gen_tokens": [9], "ctx_request_id": 1,
               "encoded_opaque_state": null, "draft_tokens": null, "future_field": "kept"})
    }

    #[test]
    fn context_body_is_context_only_and_unstreamed() {
        let req = parse(
            Endpoint::Completions,
            json!({"prompt": "p", "stream": true, "stream_options": {"include_usage": true},
                   "disaggregated_params": {"request_type": "generation_only"}}),
        );
        let body: Value = serde_json::from_slice(&req.context_body()).unwrap();
        assert_eq!(
            body,
            json!({"prompt": "p", "stream": false, "disaggregated_params":
                   {"request_type": "context_only", "encoded_opaque_state": null, "draft_tokens": null}})
        );
        assert!(
            req.stream(),
            "the client's wish is kept for the generation leg"
        );
    }

    #[test]
    fn generation_body_carries_the_handoff() {
        let ContextOutcome::Continue(handoff) =
            read_context_response(&ctx_response("length", good_params())).unwrap()
        else {
            panic!("expected a hand-off");
        };
        let completions = parse(
            Endpoint::Completions,
            json!({"prompt": "p", "stream": true}),
        );
        let body: Value = serde_json::from_slice(&completions.generation_body(&handoff)).unwrap();
        assert_eq!(body["prompt"], json!([5, 6]));
        assert_eq!(body["stream"], true);
        let p = &body["disaggregated_params"];
        assert_eq!(p["request_type"], "generation_only");
        assert_eq!(p["first_gen_tokens"], json!([9]));
        assert_eq!(p["future_field"], "kept");

        let chat = parse(Endpoint::ChatCompletions, json!({"messages": []}));
        let body: Value = serde_json::from_slice(&chat.generation_body(&handoff)).unwrap();
        assert_eq!(body["prompt_token_ids"], json!([5, 6]));
        assert!(body.get("prompt").is_none());
    }

    #[test]
    fn not_finished_also_continues() {
        let out = read_context_response(&ctx_response("not_finished", good_params())).unwrap();
        assert!(matches!(out, ContextOutcome::Continue(_)));
    }

    #[test]
    fn other_finish_reasons_finish_early_without_handoff_fields() {
        for reason in ["stop", "abort"] {
            let ContextOutcome::Finished(resp) =
                read_context_response(&ctx_response(reason, good_params())).unwrap()
            else {
                panic!("{reason} should finish early");
            };
            assert!(resp.get("prompt_token_ids").is_none());
            assert!(resp["choices"][0].get("disaggregated_params").is_none());
            assert_eq!(resp["choices"][0]["finish_reason"], reason);
        }
    }

    #[test]
    fn unusable_context_responses_say_why() {
        let two_choices = serde_json::to_vec(&json!({"choices": [{}, {}]})).unwrap();
        let no_id = ctx_response(
            "length",
            json!({"request_type": "context_only", "ctx_request_id": null}),
        );
        let bad_type = ctx_response("length", json!({"request_type": "nonsense"}));
        for (body, want) in [
            (b"<html>".to_vec(), "not JSON"),
            (b"[1]".to_vec(), "JSON object"),
            (b"{}".to_vec(), "no choices"),
            (two_choices, "exactly one choice, got 2"),
            (
                ctx_response("length", Value::Null),
                "no disaggregated_params",
            ),
            (ctx_response("length", json!(3)), "not an object"),
            (no_id, "ctx_request_id is null"),
            (bad_type, "disaggregated_params"),
        ] {
            let err = read_context_response(&body).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn client_bodies_must_be_json_objects() {
        for (body, want) in [
            (&b"{"[..], "not JSON"),
            (b"\"text\"", "not a string"),
            (b"null", "not null"),
        ] {
            let err = ClientRequest::parse(Endpoint::Completions, body).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
