//! TensorRT-LLM's internal request authentication between the disaggregated server and its
//! workers (`internal_request_auth_key`).
//!
//! The fields of `disaggregated_params` that steer a worker to another server's state
//! (`encoded_opaque_state`, `ctx_info_endpoint`) are protected: when a request carries either,
//! the server signs them and the worker checks the signature. The signature is HMAC-SHA256,
//! keyed by the shared key, over the canonical JSON of those two fields:
//! `{"ctx_info_endpoint":…,"encoded_opaque_state":…}` (sorted keys, no spaces, a missing field
//! as `null`, a list-valued `ctx_info_endpoint` as its first element, non-ASCII escaped as
//! Python's `json.dumps` does), sent as `x-trtllm-disagg-auth: sha256=<hex>`.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "x-trtllm-disagg-auth";

const PREFIX: &str = "sha256=";

/// Why a worker refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the request carries protected disaggregated_params (encoded_opaque_state, \
         ctx_info_endpoint) without an {HEADER} signature; give the router the same \
         internal_request_auth_key as the workers"
    )]
    Missing,
    #[error(
        "invalid internal disaggregated request authentication: the {HEADER} signature does not \
         match; the router and the workers have different internal_request_auth_key values"
    )]
    Mismatch,
}

/// The canonical payload of `disaggregated_params`' protected fields; `None` when it carries
/// neither (then nothing is signed or checked).
pub fn payload(params: &Map<String, Value>) -> Option<String> {
    let field = |k: &str| params.get(k).cloned().unwrap_or(Value::Null);
    let state = field("encoded_opaque_state");
    let endpoint = match field("ctx_info_endpoint") {
        Value::Array(list) => list.into_iter().next().unwrap_or(Value::Null),
        other => other,
    };
    if state.is_null() && endpoint.is_null() {
        return None;
    }
    // serde_json's Map is sorted, so this is sort_keys=True with compact separators.
    let mut canonical = Map::new();
    canonical.insert("ctx_info_endpoint".into(), endpoint);
    canonical.insert("encoded_opaque_state".into(), state);
    Some(ascii_json(&Value::Object(canonical)))
}

/// `sha256=<hex>` of `payload` under `key`.
pub fn sign(key: &str, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The signature header value for these params, or `None` when nothing is protected.
pub fn signature(key: &str, params: &Map<String, Value>) -> Option<String> {
    payload(params).map(|p| sign(key, &p))
}

/// A worker's check: requests without protected fields pass; others need `provided` to be the
/// signature under `key` (compared in constant time).
pub fn verify(
    key: &str,
    params: &Map<String, Value>,
    provided: Option<&str>,
) -> Result<(), AuthError> {
    let Some(payload) = payload(params) else {
        return Ok(());
    };
    let provided = provided.ok_or(AuthError::Missing)?;
    let hex = provided.strip_prefix(PREFIX).ok_or(AuthError::Mismatch)?;
    let bytes = decode_hex(hex).ok_or(AuthError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    mac.verify_slice(&bytes).map_err(|_| AuthError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Compact JSON with every non-ASCII character escaped as `\uXXXX` (UTF-16), as Python's
/// `json.dumps` writes by default.
fn ascii_json(v: &Value) -> String {
    let text = serde_json::to_string(v).expect("a JSON value serializes");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_payload_is_the_sorted_compact_json_of_the_protected_fields() {
        let p = params(
            json!({"request_type": "generation_only", "ctx_request_id": 7,
            "encoded_opaque_state": "b3BhcXVl", "first_gen_tokens": [5]}),
        );
        assert_eq!(
            payload(&p).unwrap(),
            r#"{"ctx_info_endpoint":null,"encoded_opaque_state":"b3BhcXVl"}"#
        );
        let p = params(json!({"ctx_info_endpoint": ["tcp://h:1", "tcp://h:2"],
            "encoded_opaque_state": null}));
        assert_eq!(
            payload(&p).unwrap(),
            r#"{"ctx_info_endpoint":"tcp://h:1","encoded_opaque_state":null}"#
        );
        assert_eq!(
            payload(&params(json!({"encoded_opaque_state": "é😀"}))).unwrap(),
            r#"{"ctx_info_endpoint":null,"encoded_opaque_state":"\u00e9\ud83d\ude00"}"#
        );
        assert_eq!(
            payload(&params(json!({"encoded_opaque_state": null}))),
            None
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_and_verify() {
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let p = params(json!({"encoded_opaque_state": "b3BhcXVl"}));
        let sig = signature("k1", &p).unwrap();
        assert_eq!(verify("k1", &p, Some(&sig)), Ok(()));
        assert_eq!(verify("k2", &p, Some(&sig)), Err(AuthError::Mismatch));
        assert_eq!(verify("k1", &p, None), Err(AuthError::Missing));
        assert_eq!(
            verify("k1", &p, Some("sha256=zz")),
            Err(AuthError::Mismatch)
        );
        assert_eq!(verify("k1", &p, Some(&sig[7..])), Err(AuthError::Mismatch));
        // Nothing protected: nothing to check.
        assert_eq!(
            verify("k1", &params(json!({"ctx_request_id": 1})), None),
            Ok(())
        );
    }
}
