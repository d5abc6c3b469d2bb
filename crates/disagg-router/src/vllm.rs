//! vLLM's disaggregated dialect with a KV connector such as NixlConnector (PROTOCOLS.md §2), as
//! pure transformations of JSON. The prefill leg computes the KV cache and returns where it
//! lives (`kv_transfer_params`); the decode leg pulls it from there. Both legs carry the same
//! `X-Request-Id` header, which `flow/vllm.rs` sets.

use bytes::Bytes;

use crate::raw::{Pieces, RawObject, first_byte, kind_of};
use crate::request::ClientRequest;

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

/// The `kv_transfer_params` of a prefill response. Without them decode would silently redo the
/// whole prefill (the known trap), so their absence is an error, not a fallback.
pub(crate) fn read_prefill_response(bytes: Bytes) -> Result<Bytes, String> {
    let resp = RawObject::parse(bytes)?;
    match resp.get_bytes("kv_transfer_params") {
        Some(p) if first_byte(&p) == b'{' => Ok(p),
        Some(p) => Err(format!(
            "kv_transfer_params is {}, not an object; decode would recompute the prefill",
            kind_of(first_byte(&p))
        )),
        None => Err("no kv_transfer_params; decode would recompute the prefill".into()),
    }
}

/// The decode request: the client's request as sent, plus the prefill's `kv_transfer_params`.
pub(crate) fn decode_body(req: &ClientRequest, kv_transfer_params: &Bytes) -> Pieces {
    req.body
        .write(&[], &[("kv_transfer_params", kv_transfer_params.clone())])
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
        let params = read_prefill_response(
            serde_json::to_vec(&json!({"id": "p", "kv_transfer_params":
                {"remote_engine_id": "e1", "remote_block_ids": [1, 2], "remote_host": "h",
                 "remote_port": 5600, "do_remote_prefill": true}}))
            .unwrap()
            .into(),
        )
        .unwrap();
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
        for (body, want) in [
            (&b"{\"id\": 1}"[..], "no kv_transfer_params"),
            (b"{\"kv_transfer_params\": null}", "is null"),
            (b"<html>", "not JSON"),
        ] {
            let err = read_prefill_response(Bytes::copy_from_slice(body)).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
