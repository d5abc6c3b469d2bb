//! vLLM's disaggregated dialect with a KV connector such as NixlConnector (PROTOCOLS.md §2), as
//! pure transformations of JSON. The prefill leg computes the KV cache and returns where it
//! lives (`kv_transfer_params`); the decode leg pulls it from there. Both legs carry the same
//! `X-Request-Id` header, which `flow/vllm.rs` sets.

use bytes::Bytes;

use serde_json::Value;

use crate::raw::{Pieces, RawObject, first_byte, kind_of};
use crate::request::ClientRequest;
use crate::trtllm::Finished;

/// What the prefill leg asks of its connector: "keep this KV for a remote decode".
const PREFILL_KV_REQUEST: &[u8] = br#"{"do_remote_decode":true,"do_remote_prefill":false,"remote_engine_id":null,"remote_block_ids":null,"remote_host":null,"remote_port":null}"#;

/// The prefill request: one token, unstreamed, no minimum length, plus the KV request.
pub(crate) fn prefill_body(req: &ClientRequest) -> Pieces {
    let mut set = vec![
        ("max_tokens", Bytes::from_static(b"1")),
        ("stream", Bytes::from_static(b"false")),
        ("kv_transfer_params", Bytes::from_static(PREFILL_KV_REQUEST)),
    ];
    // Chat clients may bound the length with the newer name instead; it must not let the
    // prefill worker generate more than the one token either.
    if req.body.get("max_completion_tokens").is_some() {
        set.push(("max_completion_tokens", Bytes::from_static(b"1")));
    }
    // vLLM's own disaggregated proxy (its NIXL integration test's toy proxy) drops both names of
    // the minimum: a minimum above one would contradict the one token.
    req.body.write(
        &["min_tokens", "min_completion_tokens", "stream_options"],
        &set,
    )
}

/// What a prefill response says to do next.
#[derive(Debug)]
pub(crate) enum Prefilled {
    /// Decode with these `kv_transfer_params`.
    Handoff(Bytes),
    /// The prefill finished the request (EOS or a stop string on its one token), so its
    /// connector kept no KV (`kv_transfer_params: null`, as NixlConnector returns for any finish
    /// but the length cap): it is the answer.
    Finished(Finished),
    /// The same, but the client asked a minimum length the prefill was not given: decode the
    /// request as sent and recompute the prefill there, as vLLM's own proxy does
    /// ([`recompute_body`]).
    Recompute,
}

/// The `kv_transfer_params` of a prefill response. A prefill that stopped at its one token's
/// length cap must have them: without, decode would silently redo the whole prefill (the
/// known trap: no KV connector, or one that kept nothing), so that is an error, not a fallback.
pub(crate) fn read_prefill_response(
    bytes: Bytes,
    req: &ClientRequest,
) -> Result<Prefilled, String> {
    let resp = RawObject::parse(bytes)?;
    let params = resp.get_bytes("kv_transfer_params");
    if let Some(p) = params.as_ref().filter(|p| first_byte(p) == b'{') {
        return Ok(Prefilled::Handoff(p.clone()));
    }
    let trap = |what: String| Err(format!("{what}; decode would recompute the prefill"));
    let what = match &params {
        Some(p) if first_byte(p) == b'n' => "kv_transfer_params is null".to_string(),
        Some(p) => format!(
            "kv_transfer_params is {}, not an object",
            kind_of(first_byte(p))
        ),
        None => "no kv_transfer_params".to_string(),
    };
    // Only a null the connector returned for a finished request is legitimate.
    if params.as_ref().is_none_or(|p| first_byte(p) != b'n') {
        return trap(what);
    }
    let mut choices: Vec<Value> = match resp.parse_field("choices") {
        Some(Ok(c)) => c,
        _ => return trap(what),
    };
    let finish = choices
        .first()
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match finish.as_deref() {
        None | Some("length") => trap(format!("{what} after a prefill cut at its length")),
        Some(_) if choices.len() != 1 => trap(format!("{what} with {} choices", choices.len())),
        Some(_) if asks_a_minimum(req) => Ok(Prefilled::Recompute),
        Some(_) => match choices.swap_remove(0) {
            Value::Object(choice) => Ok(Prefilled::Finished(Finished::new(
                resp,
                choice,
                &["kv_transfer_params"],
            ))),
            _ => trap(format!("{what}, and choices[0] is not an object")),
        },
    }
}

/// Whether the client asked more than one token at least: the prefill ran without the
/// minimum, so its early stop is not the answer.
fn asks_a_minimum(req: &ClientRequest) -> bool {
    ["min_tokens", "min_completion_tokens"].iter().any(|k| {
        req.body
            .get(k)
            .and_then(|b| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 1)
    })
}

/// The decode request: the client's request as sent, plus the prefill's `kv_transfer_params`.
pub(crate) fn decode_body(req: &ClientRequest, kv_transfer_params: &Bytes) -> Pieces {
    req.body
        .write(&[], &[("kv_transfer_params", kv_transfer_params.clone())])
}

/// The decode request when the prefill kept no KV: the client's request as sent, with params
/// that ask for no remote KV (`do_remote_prefill: false`), so vLLM's connector runs it whole
/// there. Saying so, rather than sending no params, keeps "no params" meaning a proxy that lost
/// the prefill's, which a sim started as `--role generation` refuses; real vLLM (and the sim
/// standing in for it, a kv_both server) treats both alike and recomputes.
pub(crate) fn recompute_body(req: &ClientRequest) -> Pieces {
    req.body.write(
        &[],
        &[(
            "kv_transfer_params",
            Bytes::from_static(br#"{"do_remote_decode":false,"do_remote_prefill":false}"#),
        )],
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::request::Endpoint;

    fn req(v: Value) -> ClientRequest {
        ClientRequest::parse(
            Endpoint::ChatCompletions,
            serde_json::to_vec(&v).unwrap().into(),
        )
        .unwrap()
    }

    #[test]
    fn prefill_is_one_unstreamed_token_asking_for_remote_decode() {
        let r = req(
            json!({"messages": [], "max_tokens": 50, "min_tokens": 10, "stream": true,
                           "stream_options": {"include_usage": true}, "max_completion_tokens": 50,
                           "min_completion_tokens": 10}),
        );
        let body: Value = serde_json::from_slice(&prefill_body(&r).to_vec()).unwrap();
        assert_eq!(
            body,
            json!({"messages": [], "max_tokens": 1, "stream": false, "max_completion_tokens": 1,
                   "kv_transfer_params": {"do_remote_decode": true, "do_remote_prefill": false,
                       "remote_engine_id": null, "remote_block_ids": null, "remote_host": null,
                       "remote_port": null}})
        );
    }

    #[test]
    fn decode_gets_the_original_request_and_the_returned_params() {
        let r = req(json!({"messages": [], "max_tokens": 50, "stream": true}));
        let Prefilled::Handoff(params) = read_prefill_response(
            serde_json::to_vec(&json!({"id": "p", "kv_transfer_params":
                {"remote_engine_id": "e1", "remote_block_ids": [1, 2], "remote_host": "h",
                 "remote_port": 5600, "do_remote_prefill": true}}))
            .unwrap()
            .into(),
            &r,
        )
        .unwrap() else {
            panic!("a hand-off")
        };
        let body: Value = serde_json::from_slice(&decode_body(&r, &params).to_vec()).unwrap();
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["kv_transfer_params"]["remote_block_ids"],
            json!([1, 2])
        );
        assert_eq!(body["kv_transfer_params"]["remote_engine_id"], "e1");
    }

    #[test]
    fn missing_params_are_an_error_not_a_silent_recompute() {
        let r = req(json!({"messages": [], "max_tokens": 50}));
        for (body, want) in [
            (&b"{\"id\": 1}"[..], "no kv_transfer_params"),
            (b"{\"kv_transfer_params\": null}", "is null"),
            (
                b"{\"kv_transfer_params\": null, \"choices\": [{\"text\": \"a\", \"finish_reason\": \"length\"}]}",
                "is null after a prefill cut at its length",
            ),
            (b"<html>", "not JSON"),
        ] {
            let err = read_prefill_response(Bytes::copy_from_slice(body), &r).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    /// NixlConnector keeps no KV for a request that finished otherwise than at the length cap
    /// (EOS or a stop string on the prefill's one token): the prefill is the answer, unless the
    /// client asked a minimum the prefill was not given, when decode redoes it as vLLM's proxy
    /// does.
    #[test]
    fn a_prefill_that_stopped_is_the_answer_unless_a_minimum_was_asked() {
        let stopped = Bytes::from_static(
            br#"{"id": "p", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}, "kv_transfer_params": null}"#,
        );
        let plain = req(json!({"messages": [], "max_tokens": 50}));
        let Ok(Prefilled::Finished(done)) = read_prefill_response(stopped.clone(), &plain) else {
            panic!("finished")
        };
        let answer: Value = serde_json::from_slice(&done.json()).unwrap();
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert!(answer.get("kv_transfer_params").is_none(), "{answer}");
        let streamed = String::from_utf8(done.sse(&plain).to_vec()).unwrap();
        assert!(
            streamed.contains("\"finish_reason\":\"stop\"")
                && streamed.ends_with("data: [DONE]\n\n"),
            "{streamed}"
        );
        let minimum = req(json!({"messages": [], "max_tokens": 50, "min_tokens": 10}));
        assert!(matches!(
            read_prefill_response(stopped, &minimum),
            Ok(Prefilled::Recompute)
        ));
    }
}
