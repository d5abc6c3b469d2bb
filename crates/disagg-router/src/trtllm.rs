//! TensorRT-LLM's disaggregated dialect (PROTOCOLS.md §1), as pure transformations of JSON:
//! the client request → the context request, the context response → either an early finish or
//! the hand-off, and the hand-off → the generation request. No I/O here, so the rules are unit
//! tested on their own; `flow/trtllm.rs` does the sending.

use bytes::Bytes;
use disagg_proto::sse;
use disagg_proto::trtllm::DisaggregatedParams;
use serde_json::{Map, Value};

use crate::raw::{Pieces, RawObject};
use crate::request::{ClientRequest, Endpoint};

/// The body for the context leg: the client's request as context-only, never streamed, with
/// `disagg_request_id` when one is given (a fresh one per attempt, as TensorRT-LLM's own server
/// does: a worker keys the request, and its KV transfer, on it).
pub(crate) fn context_body(req: &ClientRequest, disagg_request_id: Option<u64>) -> Pieces {
    let mut params = DisaggregatedParams::context_only();
    params.disagg_request_id = disagg_request_id;
    let params = serde_json::to_vec(&params)
        .unwrap_or_else(|_| br#"{"request_type":"context_only"}"#.to_vec());
    req.body.write(
        &["stream_options"],
        &[
            ("disaggregated_params", params.into()),
            ("stream", "false".into()),
        ],
    )
}

/// The body for the generation leg: the original request plus the context's hand-off.
pub(crate) fn generation_body(req: &ClientRequest, handoff: &Handoff) -> Pieces {
    let mut set = vec![("disaggregated_params", handoff.params.clone())];
    if let Some(ids) = &handoff.prompt_token_ids {
        match req.endpoint {
            // The context server already tokenised the prompt; reuse its ids verbatim.
            // (`/generate` never gets here: only the SGLang dialect serves it.)
            Endpoint::Completions | Endpoint::Generate => set.push(("prompt", ids.clone())),
            Endpoint::ChatCompletions => set.push(("prompt_token_ids", ids.clone())),
        }
    }
    req.body.write(&[], &set)
}

/// What the generation leg needs from the context leg.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// `choices[0].disaggregated_params` as JSON, with `request_type: generation_only`. Kept
    /// whole so fields newer than our types (e.g. `disagg_request_id`) still reach the worker.
    pub params: Bytes,
    /// Top-level `prompt_token_ids`, raw and uncopied. When a context server omits them, the
    /// original prompt is sent instead and the generation server tokenises it again.
    pub prompt_token_ids: Option<Bytes>,
    /// What `internal_request_auth_key` signs: the canonical JSON of the protected fields
    /// (`encoded_opaque_state`, `ctx_info_endpoint`); `None` when the hand-off has neither.
    pub auth_payload: Option<String>,
}

/// A context (prefill) response that already is the final answer.
#[derive(Debug)]
pub(crate) struct Finished {
    resp: RawObject,
    /// `choices[0]` without the hand-off fields.
    choice: Map<String, Value>,
    /// The response's top-level hand-off fields, left out of the answer.
    drop: &'static [&'static str],
}

/// What the context response says to do next.
#[derive(Debug)]
pub(crate) enum ContextOutcome {
    /// The request already finished (e.g. `stop` on the first token).
    Finished(Finished),
    /// Go on to a generation server.
    Continue(Handoff),
}

/// Validates a context response and splits it into the hand-off or the final answer. The `Err`
/// is the reason the response is unusable. `sent` is the `disagg_request_id` the context request
/// carried: the generation request must carry it too, so a worker that did not echo it gets it
/// filled in; one it echoed is kept, as TensorRT-LLM's server keeps the context worker's.
pub(crate) fn read_context_response(
    bytes: Bytes,
    sent: Option<u64>,
) -> Result<ContextOutcome, String> {
    let resp = RawObject::parse(bytes)?;
    let mut choices: Vec<Value> = match resp.parse_field("choices") {
        Some(Ok(c)) => c,
        Some(Err(_)) | None => return Err("no choices array".into()),
    };
    if choices.len() != 1 {
        return Err(format!(
            "expected exactly one choice, got {}",
            choices.len()
        ));
    }
    let Value::Object(mut choice) = choices.swap_remove(0) else {
        return Err("choices[0] is not an object".into());
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
    // Checked against the shared type, but forwarded whole (see `Handoff::params`).
    let typed: DisaggregatedParams = serde_json::from_value(Value::Object(params.clone()))
        .map_err(|e| format!("choices[0].disaggregated_params: {e}"))?;
    if typed.ctx_request_id.is_none() {
        return Err("choices[0].disaggregated_params.ctx_request_id is null".into());
    }
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str);
    if !matches!(finish_reason, Some("length" | "not_finished")) {
        return Ok(ContextOutcome::Finished(Finished {
            resp,
            choice,
            drop: &["prompt_token_ids"],
        }));
    }
    params.insert("request_type".into(), Value::from("generation_only"));
    if let (Some(id), None) = (sent, typed.disagg_request_id) {
        params.insert("disagg_request_id".into(), Value::from(id));
    }
    Ok(ContextOutcome::Continue(Handoff {
        auth_payload: disagg_proto::auth::payload(&params),
        params: to_vec(&params).into(),
        prompt_token_ids: resp.get_bytes("prompt_token_ids"),
    }))
}

impl Finished {
    /// A prefill response whose `choices[0]` is `choice`, answering as it is, without the
    /// top-level fields `drop`.
    pub fn new(resp: RawObject, choice: Map<String, Value>, drop: &'static [&'static str]) -> Self {
        Self { resp, choice, drop }
    }

    /// The non-streamed answer: the context response without the hand-off fields.
    pub fn json(&self) -> Vec<u8> {
        let choices = to_vec(&[&self.choice]);
        self.resp
            .write(self.drop, &[("choices", choices.into())])
            .to_vec()
    }

    /// The streamed answer: one chunk with the whole answer, then `[DONE]`. The chunk's choice
    /// is the whole one (its `logprobs`, `stop_reason`, ... kept), a chat message becoming the
    /// chunk's `delta`. Usage, when asked for, comes in a chunk of its own before `[DONE]`, with
    /// no choices, as the engines' streams give it (benchmark clients of vLLM and TensorRT-LLM
    /// read usage only from a chunk without choices).
    pub fn sse(&self, req: &ClientRequest) -> Bytes {
        let mut out_choice = self.choice.clone();
        out_choice.insert("index".into(), Value::from(0));
        out_choice.entry("finish_reason").or_insert(Value::Null);
        let object = match req.endpoint {
            Endpoint::Completions | Endpoint::Generate => {
                out_choice.entry("text").or_insert_with(|| Value::from(""));
                "text_completion"
            }
            Endpoint::ChatCompletions => {
                let mut delta = match out_choice.remove("message") {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                delta
                    .entry("role")
                    .or_insert_with(|| Value::from("assistant"));
                delta.entry("content").or_insert_with(|| Value::from(""));
                out_choice.insert("delta".into(), Value::Object(delta));
                "chat.completion.chunk"
            }
        };
        let mut head = Map::new();
        for key in ["id", "created", "model"] {
            if let Some(Ok(v)) = self.resp.parse_field::<Value>(key) {
                head.insert(key.into(), v);
            }
        }
        head.insert("object".into(), Value::from(object));
        let mut chunk = head.clone();
        chunk.insert(
            "choices".into(),
            Value::Array(vec![Value::Object(out_choice)]),
        );
        let mut out = sse::frame(&to_vec(&chunk)).to_vec();
        // Usage only when asked for, as OpenAI streams give it.
        if req.include_usage() {
            if let Some(Ok(usage)) = self.resp.parse_field::<Value>("usage") {
                let mut last = head;
                last.insert("choices".into(), Value::Array(Vec::new()));
                last.insert("usage".into(), usage);
                out.extend_from_slice(&sse::frame(&to_vec(&last)));
            }
        }
        out.extend_from_slice(sse::DONE_FRAME);
        Bytes::from(out)
    }
}

/// Serialising in-memory JSON values to a Vec cannot fail (all keys are strings).
fn to_vec(value: &impl serde::Serialize) -> Vec<u8> {
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
    use serde_json::json;

    fn parse(endpoint: Endpoint, v: Value) -> ClientRequest {
        ClientRequest::parse(endpoint, serde_json::to_vec(&v).unwrap().into()).unwrap()
    }

    fn ctx_response(finish_reason: &str, params: Value) -> Bytes {
        serde_json::to_vec(&json!({
            "id": "c", "choices": [{"index": 0, "text": "x", "finish_reason": finish_reason,
                                    "disaggregated_params": params}],
            "prompt_token_ids": [5, 6],
        }))
        .unwrap()
        .into()
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
        let body: Value = serde_json::from_slice(&context_body(&req, None).to_vec()).unwrap();
        assert_eq!(
            body,
            json!({"prompt": "p", "stream": false, "disaggregated_params":
                   {"request_type": "context_only", "encoded_opaque_state": null, "draft_tokens": null}})
        );
        let body: Value =
            serde_json::from_slice(&context_body(&req, Some(1 << 50)).to_vec()).unwrap();
        assert_eq!(
            body["disaggregated_params"],
            json!({"request_type": "context_only", "encoded_opaque_state": null,
                   "draft_tokens": null, "disagg_request_id": 1u64 << 50})
        );
        assert!(
            req.stream(),
            "the client's wish is kept for the generation leg"
        );
    }

    #[test]
    fn generation_body_carries_the_handoff() {
        let ContextOutcome::Continue(handoff) =
            read_context_response(ctx_response("length", good_params()), None).unwrap()
        else {
            panic!("expected a hand-off");
        };
        let completions = parse(
            Endpoint::Completions,
            json!({"prompt": "p", "stream": true}),
        );
        let body: Value =
            serde_json::from_slice(&generation_body(&completions, &handoff).to_vec()).unwrap();
        assert_eq!(body["prompt"], json!([5, 6]));
        assert_eq!(body["stream"], true);
        let p = &body["disaggregated_params"];
        assert_eq!(p["request_type"], "generation_only");
        assert_eq!(p["first_gen_tokens"], json!([9]));
        assert_eq!(p["future_field"], "kept");

        let chat = parse(Endpoint::ChatCompletions, json!({"messages": []}));
        let body: Value =
            serde_json::from_slice(&generation_body(&chat, &handoff).to_vec()).unwrap();
        assert_eq!(body["prompt_token_ids"], json!([5, 6]));
        assert!(body.get("prompt").is_none());
    }

    #[test]
    fn the_sent_disagg_request_id_reaches_generation_unless_echoed() {
        let handoff_of = |params: Value, sent| {
            let Ok(ContextOutcome::Continue(h)) =
                read_context_response(ctx_response("length", params), sent)
            else {
                panic!("expected a hand-off");
            };
            serde_json::from_slice::<Value>(&h.params).unwrap()
        };
        let without = json!({"request_type": "context_only", "first_gen_tokens": [9],
                             "ctx_request_id": 1});
        let p = handoff_of(without.clone(), Some(1 << 41));
        assert_eq!(p["disagg_request_id"], 1u64 << 41, "filled in: {p}");
        let mut null = without.clone();
        null["disagg_request_id"] = Value::Null;
        assert_eq!(
            handoff_of(null, Some(7 << 40))["disagg_request_id"],
            7u64 << 40
        );
        let mut echoed = without.clone();
        echoed["disagg_request_id"] = json!(5u64 << 40);
        assert_eq!(
            handoff_of(echoed, Some(1 << 41))["disagg_request_id"],
            5u64 << 40,
            "the context worker's id is the one its KV is sent under"
        );
        assert!(handoff_of(without, None).get("disagg_request_id").is_none());
    }

    #[test]
    fn not_finished_also_continues() {
        let out = read_context_response(ctx_response("not_finished", good_params()), None).unwrap();
        assert!(matches!(out, ContextOutcome::Continue(_)));
    }

    #[test]
    fn other_finish_reasons_finish_early_without_handoff_fields() {
        for reason in ["stop", "abort"] {
            let ContextOutcome::Finished(done) =
                read_context_response(ctx_response(reason, good_params()), None).unwrap()
            else {
                panic!("{reason} should finish early");
            };
            let resp: Value = serde_json::from_slice(&done.json()).unwrap();
            assert!(resp.get("prompt_token_ids").is_none());
            assert!(resp["choices"][0].get("disaggregated_params").is_none());
            assert_eq!(resp["choices"][0]["finish_reason"], reason);
            assert_eq!(resp["id"], "c");
        }
    }

    #[test]
    fn unusable_context_responses_say_why() {
        let two_choices: Bytes = serde_json::to_vec(&json!({"choices": [{}, {}]}))
            .unwrap()
            .into();
        let no_id = ctx_response(
            "length",
            json!({"request_type": "context_only", "ctx_request_id": null}),
        );
        let bad_type = ctx_response("length", json!({"request_type": "nonsense"}));
        for (body, want) in [
            (Bytes::from_static(b"<html>"), "not JSON"),
            (Bytes::from_static(b"[1]"), "JSON object"),
            (Bytes::from_static(b"{}"), "no choices"),
            (two_choices, "exactly one choice, got 2"),
            (
                ctx_response("length", Value::Null),
                "no disaggregated_params",
            ),
            (ctx_response("length", json!(3)), "not an object"),
            (no_id, "ctx_request_id is null"),
            (bad_type, "disaggregated_params"),
        ] {
            let err = read_context_response(body, None).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}
