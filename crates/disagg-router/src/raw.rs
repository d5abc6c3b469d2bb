//! A JSON object kept as its original bytes plus the byte range of each top-level value.
//!
//! Every dialect only adds, drops or replaces a few top-level keys, so the prompt (often most of
//! the body: 32k token ids are ~200 kB) is located once and then shared, not copied, into each
//! outgoing body ([`Pieces`]). It is never turned into `serde_json::Value`s.
//!
//! The top level is read by a small scanner. Values under [`VALIDATE_BELOW`] bytes are then
//! validated by serde_json; larger ones (in practice: the prompt, `messages` or
//! `prompt_token_ids`) are only checked for structure (strings end, brackets balance) with SIMD
//! byte searches, because full validation would cost the router more than everything else it
//! does: 1k token ids took ~15 µs to validate, about a fifth of a request's whole cost (the
//! `stage_costs` figures). The worker parses them anyway and answers a malformed one with its
//! own 4xx, which is relayed.

use std::ops::Range;

use bytes::Bytes;
use serde_json::value::RawValue;

/// A top-level JSON object; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct RawObject {
    bytes: Bytes,
    /// Keys in document order, each with its value's range in `bytes`. A repeated key keeps the
    /// last value, as `serde_json::Value` would.
    fields: Vec<(String, Range<usize>)>,
}

impl RawObject {
    /// Parses `bytes` as one JSON object. The `Err` says what is wrong, for a 400 or a 502.
    pub fn parse(bytes: Bytes) -> Result<Self, String> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first != Some(b'{') {
            return Err(match serde_json::from_slice::<&RawValue>(&bytes) {
                Err(e) => format!("not JSON: {e}"),
                Ok(_) => format!(
                    "expected a JSON object, not {}",
                    kind_of(first.unwrap_or(b' '))
                ),
            });
        }
        let fields = scan_object(&bytes).map_err(|e| format!("not JSON: {e}"))?;
        Ok(Self { bytes, fields })
    }

    /// The raw JSON text of `key`'s value.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| &self.bytes[r.clone()])
    }

    /// The raw JSON text of `key`'s value, sharing this object's buffer (no copy).
    pub fn get_bytes(&self, key: &str) -> Option<Bytes> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, r)| self.bytes.slice(r.clone()))
    }

    /// `key`'s value deserialised; `None` when absent, `Err` when of the wrong shape.
    pub fn parse_field<'a, T: serde::Deserialize<'a>>(
        &'a self,
        key: &str,
    ) -> Option<Result<T, serde_json::Error>> {
        self.get(key).map(serde_json::from_slice)
    }

    /// Writes this object without the keys in `drop`, with `set` replacing or adding keys (values
    /// are raw JSON). Keys keep their order; new ones go last. Values of [`SHARE_FROM`] bytes or
    /// more (the prompt, `prompt_token_ids`) are shared into the result, not copied.
    pub fn write(&self, drop: &[&str], set: &[(&str, Bytes)]) -> Pieces {
        let mut out = Pieces::with_capacity(256);
        out.small.push(b'{');
        let mut first = true;
        let mut put = |out: &mut Pieces, k: &str, v: Bytes| {
            if !first {
                out.small.push(b',');
            }
            first = false;
            write_key(&mut out.small, k);
            out.value(v);
        };
        for (k, r) in &self.fields {
            if drop.contains(&k.as_str()) {
                continue;
            }
            match set.iter().find(|(sk, _)| sk == k) {
                Some((_, v)) => put(&mut out, k, v.clone()),
                None => put(&mut out, k, self.bytes.slice(r.clone())),
            }
        }
        for (k, v) in set {
            if !self.fields.iter().any(|(fk, _)| fk == k) {
                put(&mut out, k, v.clone());
            }
        }
        out.small.push(b'}');
        out.finish()
    }
}

/// Values at least this long are shared into an outgoing body rather than copied: below it a
/// copy costs less than one more buffer to write.
pub(crate) const SHARE_FROM: usize = 4096;

/// An outgoing JSON body as a few buffers: what the router writes itself (keys, small values),
/// and the large values it relays (the prompt, `prompt_token_ids`) shared with the buffer they
/// arrived in. hyper sends the buffers with one `writev`, so a long prompt is copied in user
/// space once, on its way in, not again for each leg.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pieces {
    parts: Vec<Bytes>,
    /// What is being written, not yet in `parts`.
    small: Vec<u8>,
    len: usize,
}

impl Pieces {
    fn with_capacity(n: usize) -> Self {
        Self {
            small: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    fn value(&mut self, v: Bytes) {
        if v.len() < SHARE_FROM {
            self.small.extend_from_slice(&v);
        } else {
            self.flush();
            self.len += v.len();
            self.parts.push(v);
        }
    }

    fn flush(&mut self) {
        if !self.small.is_empty() {
            self.len += self.small.len();
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.small)));
        }
    }

    fn finish(mut self) -> Self {
        self.flush();
        self
    }

    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The buffers, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The whole body in one buffer (a copy): for answers built from a context response, and
    /// for tests.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        v
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
}

/// What a JSON text starting with `b` is, for error messages.
pub(crate) fn kind_of(b: u8) -> &'static str {
    match b {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

/// The first byte of a raw JSON value (which the parser has already checked is JSON).
pub(crate) fn first_byte(raw: &[u8]) -> u8 {
    raw.first().copied().unwrap_or(b' ')
}

/// The first byte of the first item of the JSON array `raw` (`None` when it is empty).
pub(crate) fn first_item_byte(raw: &[u8]) -> Option<u8> {
    let i = ws(raw, 1);
    raw.get(i).copied().filter(|b| *b != b']')
}

/// How many items the JSON array `raw` holds, found by walking its top level only (strings and
/// nested lists are skipped whole, by structure, as [`RawObject::parse`] located them).
pub(crate) fn array_len(raw: &[u8]) -> Result<usize, String> {
    expect(raw, 0, b'[')?;
    let mut i = ws(raw, 1);
    if raw.get(i) == Some(&b']') {
        return Ok(0);
    }
    let mut n = 0;
    loop {
        i = ws(raw, value_end(raw, i)?);
        n += 1;
        match raw.get(i) {
            Some(b',') => i = ws(raw, i + 1),
            Some(b']') => return Ok(n),
            _ => return Err(format!("expected `,` or `]` at byte {i} of a list")),
        }
    }
}

/// Values at least this long are checked for structure only; see the module docs. Every field
/// the router itself reads (`stream`, `max_tokens`, `n`, ...) is far shorter, and parsed anyway.
pub(crate) const VALIDATE_BELOW: usize = 1024;

type Fields = Vec<(String, Range<usize>)>;

/// Splits a top-level object into keys and value ranges.
fn scan_object(b: &[u8]) -> Result<Fields, String> {
    let mut fields: Fields = Vec::new();
    let mut i = ws(b, 0);
    expect(b, i, b'{')?;
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            expect(b, i, b'"')?;
            let key_end = string_end(b, i)?;
            let key: String = serde_json::from_slice(&b[i..key_end])
                .map_err(|e| format!("bad key at byte {i}: {e}"))?;
            i = ws(b, key_end);
            expect(b, i, b':')?;
            let start = ws(b, i + 1);
            let end = value_end(b, start)?;
            if end - start < VALIDATE_BELOW {
                serde_json::from_slice::<serde::de::IgnoredAny>(&b[start..end])
                    .map_err(|e| format!("bad value of `{key}`: {e}"))?;
            }
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = start..end,
                None => fields.push((key, start..end)),
            }
            i = ws(b, end);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(format!("expected `,` or `}}` at byte {i}")),
            }
        }
    }
    if ws(b, i) != b.len() {
        return Err(format!("trailing characters at byte {}", ws(b, i)));
    }
    Ok(fields)
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn expect(b: &[u8], i: usize, want: u8) -> Result<(), String> {
    match b.get(i) {
        Some(c) if *c == want => Ok(()),
        Some(_) => Err(format!("expected `{}` at byte {i}", want as char)),
        None => Err(format!("expected `{}` at the end", want as char)),
    }
}

/// The end (exclusive) of the value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Result<usize, String> {
    match b.get(i) {
        Some(b'"') => string_end(b, i),
        Some(b'[') => container_end(b, i, b'[', b']'),
        Some(b'{') => container_end(b, i, b'{', b'}'),
        Some(_) => {
            // A scalar runs to the next delimiter; serde_json validates it (it is short).
            let len = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(b.len() - i);
            if len == 0 {
                Err(format!("expected a value at byte {i}"))
            } else {
                Ok(i + len)
            }
        }
        None => Err("expected a value at the end".into()),
    }
}

/// The end (exclusive) of the string whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Result<usize, String> {
    let mut at = i + 1;
    loop {
        match memchr::memchr2(b'"', b'\\', &b[at.min(b.len())..]) {
            Some(k) if b[at + k] == b'"' => return Ok(at + k + 1),
            // A backslash escapes the next byte, whatever it is.
            Some(k) => at += k + 2,
            None => return Err(format!("unterminated string from byte {i}")),
        }
    }
}

/// The end (exclusive) of the array or object opening at `i`. Only its own kind of bracket is
/// counted (strings skipped): for valid JSON that finds the right end, and a mismatch of the
/// other kind inside is left for serde_json (small values) or the worker (large ones) to reject.
fn container_end(b: &[u8], i: usize, open: u8, close: u8) -> Result<usize, String> {
    let mut depth = 0usize;
    let mut at = i;
    while let Some(k) = memchr::memchr3(b'"', open, close, &b[at.min(b.len())..]) {
        let p = at + k;
        if b[p] == b'"' {
            at = string_end(b, p)?;
            continue;
        }
        if b[p] == open {
            depth += 1;
        } else {
            depth -= 1;
            if depth == 0 {
                return Ok(p + 1);
            }
        }
        at = p + 1;
    }
    Err(format!("unclosed `{}` from byte {i}", open as char))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn obj(text: &str) -> RawObject {
        RawObject::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap()
    }

    #[test]
    fn rewrites_only_the_named_keys() {
        let o = obj(r#" {"a": [1, 2], "b": "x\"y", "c": {"d": null}, "a": [3]} "#);
        assert_eq!(o.get("a"), Some(&b"[3]"[..]), "last duplicate wins");
        let out = o.write(&["b"], &[("c", "false".into()), ("e", "1".into())]);
        assert_eq!(
            std::str::from_utf8(&out.to_vec()).unwrap(),
            r#"{"a":[3],"c":false,"e":1}"#
        );
        let v: Value = serde_json::from_slice(&o.write(&[], &[]).to_vec()).unwrap();
        assert_eq!(v, json!({"a": [3], "b": "x\"y", "c": {"d": null}}));
    }

    #[test]
    fn escaped_keys_are_compared_decoded_and_written_escaped() {
        let o = obj(r#"{"str\u0065am": true, "q\"k": 1}"#);
        assert_eq!(o.get("stream"), Some(&b"true"[..]));
        let v: Value = serde_json::from_slice(&o.write(&[], &[]).to_vec()).unwrap();
        assert_eq!(v, json!({"stream": true, "q\"k": 1}));
    }

    #[test]
    fn large_values_are_located_by_structure() {
        let big = "x\\\"]}".repeat(VALIDATE_BELOW);
        let text = format!(r#"{{"prompt": "{big}", "ids": [[1, "]"], {{"a": "["}}], "n": 1}}"#);
        let o = obj(&text);
        assert_eq!(o.get("prompt").unwrap().len(), big.len() + 2);
        assert_eq!(o.get("ids"), Some(&br#"[[1, "]"], {"a": "["}]"#[..]));
        assert_eq!(o.get("n"), Some(&b"1"[..]));
        let ids = format!("[{}]", vec!["12345"; VALIDATE_BELOW].join(","));
        let o = obj(&format!(r#"{{"prompt_token_ids":{ids},"x":true}}"#));
        assert_eq!(o.get("prompt_token_ids"), Some(ids.as_bytes()));
        // Large values are not validated inside (the worker will be); small ones are.
        let bad_inside = format!("[{}1x]", "1,".repeat(VALIDATE_BELOW));
        assert!(RawObject::parse(Bytes::from(format!(r#"{{"p":{bad_inside}}}"#))).is_ok());
        assert!(RawObject::parse(Bytes::from_static(br#"{"p":[1x]}"#)).is_err());
        let unclosed = format!(r#"{{"p":[{}"#, "1,".repeat(VALIDATE_BELOW));
        assert!(RawObject::parse(Bytes::from(unclosed)).is_err());
    }

    #[test]
    fn arrays_are_counted_by_their_top_level() {
        for (text, len, first) in [
            ("[]", 0, None),
            ("[ ]", 0, None),
            (r#"["a", "b,]", "c\"]"]"#, 3, Some(b'"')),
            ("[[1, 2], [3], []]", 3, Some(b'[')),
            ("[1,2,3,4]", 4, Some(b'1')),
            (r#"[ {"a": [1, 2]}, 2 ]"#, 2, Some(b'{')),
        ] {
            assert_eq!(array_len(text.as_bytes()), Ok(len), "{text}");
            assert_eq!(first_item_byte(text.as_bytes()), first, "{text}");
        }
    }

    #[test]
    fn large_values_are_shared_not_copied() {
        let prompt = format!("\"{}\"", "abcde ".repeat(SHARE_FROM));
        let body = format!(r#"{{"model":"m","prompt":{prompt},"stream":true}}"#);
        let o = obj(&body);
        let ids = Bytes::from(format!("[{}]", vec!["7"; SHARE_FROM].join(",")));
        let out = o.write(
            &["stream"],
            &[("prompt_token_ids", ids.clone()), ("x", "1".into())],
        );
        let shared: Vec<*const u8> = (out.parts().iter())
            .filter(|p| p.len() >= SHARE_FROM)
            .map(|p| p.as_ptr())
            .collect();
        assert_eq!(
            shared,
            vec![o.get("prompt").unwrap().as_ptr(), ids.as_ptr()]
        );
        // `{"model":"m","prompt":`, the prompt, `,"prompt_token_ids":`, the ids, `,"x":1}`.
        assert_eq!(out.parts().len(), 5);
        let whole = out.to_vec();
        assert_eq!(out.len(), whole.len());
        let v: Value = serde_json::from_slice(&whole).unwrap();
        assert_eq!(v["prompt"].as_str().unwrap().len(), 6 * SHARE_FROM);
        assert_eq!(v["prompt_token_ids"].as_array().unwrap().len(), SHARE_FROM);
        assert_eq!((v.get("stream"), &v["x"]), (None, &json!(1)));
    }

    #[test]
    fn non_objects_and_broken_json_say_what_they_are() {
        for (text, want) in [
            ("", "not JSON"),
            ("{", "not JSON"),
            ("{} x", "not JSON"),
            ("[1]", "not an array"),
            ("\"s\"", "not a string"),
            ("null", "not null"),
            ("12", "not a number"),
            ("{\"a\" 1}", "not JSON"),
            ("{\"a\": }", "not JSON"),
            ("{\"a\": 1,}", "not JSON"),
            ("{\"a\": tru}", "not JSON"),
            ("{\"a\": \"x}", "not JSON"),
            ("{a: 1}", "not JSON"),
        ] {
            let err = RawObject::parse(Bytes::copy_from_slice(text.as_bytes())).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    /// Random JSON-ish byte strings through every parser the router applies to bytes from the
    /// network: none may panic, and whatever parses must be rewritten as valid JSON.
    #[test]
    fn random_bytes_never_panic_and_rewrites_stay_json() {
        use crate::request::{ClientRequest, Endpoint};
        const ALPHABET: &[u8] = b"{}[]\",:0123456789.-eEtrufalsn \\u\xff";
        const KEYS: [&str; 6] = [
            "\"prompt\":",
            "\"messages\":",
            "\"choices\":",
            "\"kv_transfer_params\":",
            "\"disaggregated_params\":",
            "\"stream\":",
        ];
        let mut state: u64 = 0x5eed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..next() % 48 {
                if next() % 5 == 0 {
                    text.extend_from_slice(KEYS[(next() % 6) as usize].as_bytes());
                } else {
                    text.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]);
                }
            }
            if next() % 2 == 0 {
                text.insert(0, b'{');
            }
            let bytes = Bytes::from(text);
            if let Ok(o) = RawObject::parse(bytes.clone()) {
                let out = o.write(&["stream"], &[("x", "1".into())]).to_vec();
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
                    "{bytes:?} -> {out:?}"
                );
            }
            let _ = ClientRequest::parse(Endpoint::Completions, bytes.clone());
            let _ = ClientRequest::parse(Endpoint::ChatCompletions, bytes.clone());
            let _ = crate::trtllm::read_context_response(bytes.clone(), None);
            if let Ok(req) = ClientRequest::parse(Endpoint::Completions, bytes.clone()) {
                let _ = crate::vllm::read_prefill_response(bytes, &req);
            }
        }
    }

    /// What each stage of a request costs the router in user space, per dialect, on the router
    /// bench's bodies (1k and 32k text prompts; TensorRT-LLM's context answer with as many
    /// `prompt_token_ids`). Prints figures; not a check. Run with
    /// `cargo test --release -p disagg-router --lib -- --ignored stage_costs --nocapture`.
    #[test]
    #[ignore]
    fn stage_costs() {
        use crate::request::{ClientRequest, Endpoint};
        use crate::{sglang, trtllm, vllm};
        fn time<T>(n: u32, mut f: impl FnMut() -> T) -> std::time::Duration {
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(f());
            }
            t.elapsed() / n
        }
        for isl in [1024usize, 32768] {
            let n = if isl > 4096 { 200 } else { 2000 };
            let body = Bytes::from(format!(
                r#"{{"model":"m","prompt":"{}","max_tokens":16,"stream":false}}"#,
                "abcde ".repeat(isl)
            ));
            let ids = format!("[{}]", vec!["12345"; isl].join(","));
            let ctx_answer = Bytes::from(format!(
                r#"{{"id":"c","choices":[{{"index":0,"text":"x","finish_reason":"length","disaggregated_params":{{"request_type":"context_only","first_gen_tokens":[7],"ctx_request_id":1,"encoded_opaque_state":null,"draft_tokens":null}}}}],"prompt_token_ids":{ids},"kv_transfer_params":{{"remote_engine_id":"e","remote_block_ids":[1,2]}}}}"#
            ));
            let parse = time(n, || {
                ClientRequest::parse(Endpoint::Completions, body.clone())
            });
            let req = ClientRequest::parse(Endpoint::Completions, body.clone()).unwrap();
            let ctx = time(n, || trtllm::context_body(&req, Some(1 << 50)));
            let read = time(n, || {
                trtllm::read_context_response(ctx_answer.clone(), Some(1 << 50))
            });
            let Ok(trtllm::ContextOutcome::Continue(handoff)) =
                trtllm::read_context_response(ctx_answer.clone(), None)
            else {
                panic!("the context answer hands off");
            };
            let generation = time(n, || trtllm::generation_body(&req, &handoff));
            let prefill = time(n, || vllm::prefill_body(&req));
            let kv = time(n, || vllm::read_prefill_response(ctx_answer.clone(), &req));
            let Ok(vllm::Prefilled::Handoff(params)) =
                vllm::read_prefill_response(ctx_answer.clone(), &req)
            else {
                panic!("the prefill answer hands off");
            };
            let decode = time(n, || vllm::decode_body(&req, &params));
            let both = time(n, || sglang::body(&req, "10.0.0.2", Some(8998), || 7));
            println!(
                "{}k ({} bytes): client body parsed {parse:?}; trtllm: context body {ctx:?}, \
                 context answer read {read:?}, generation body {generation:?}; vllm: prefill body \
                 {prefill:?}, prefill answer read {kv:?}, decode body {decode:?}; sglang: body \
                 {both:?}",
                isl / 1024,
                body.len()
            );
        }
    }
}
