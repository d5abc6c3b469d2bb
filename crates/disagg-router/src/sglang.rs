//! SGLang's disaggregated dialect (PROTOCOLS.md §3): one body, with the prefill worker's
//! bootstrap address and a fresh rendezvous room, sent to prefill and decode at once. Decode
//! connects to the prefill worker's bootstrap server and meets it in that room.
//!
//! A batch (several prompts in one request) gets the three fields as lists of the batch's
//! size, one fresh room per item, as SGLang's own PD routers send them: mini_lb's `/generate`
//! (`python/sglang/srt/disaggregation/mini_lb.py`) and sgl-router
//! (`sgl-router/src/routers/http/pd_router.rs`, `get_*_batch_size`). SGLang indexes the lists
//! per item (`GenerateReqInput.__getitem__` in `python/sglang/srt/managers/io_struct.py`).

use crate::raw::Pieces;
use crate::request::ClientRequest;

/// The body for both legs; `room` draws a fresh room (once, or once per item of a batch).
pub(crate) fn body(
    req: &ClientRequest,
    bootstrap_host: &str,
    bootstrap_port: Option<u16>,
    mut room: impl FnMut() -> u64,
) -> Pieces {
    let host = serde_json::to_vec(bootstrap_host).unwrap_or_else(|_| b"null".to_vec());
    let port = match bootstrap_port {
        Some(p) => p.to_string().into_bytes(),
        None => b"null".to_vec(),
    };
    let (host, port, room) = match req.batch() {
        None => (host, port, room().to_string().into_bytes()),
        Some(n) => {
            let rooms: Vec<Vec<u8>> = (0..n).map(|_| room().to_string().into_bytes()).collect();
            (
                list(std::iter::repeat_n(host.as_slice(), n)),
                list(std::iter::repeat_n(port.as_slice(), n)),
                list(rooms.iter().map(Vec::as_slice)),
            )
        }
    };
    req.body.write(
        &[],
        &[
            ("bootstrap_host", host.into()),
            ("bootstrap_port", port.into()),
            ("bootstrap_room", room.into()),
        ],
    )
}

/// A JSON array of raw JSON values.
fn list<'a>(items: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

/// The host part of a worker URL as SGLang takes it in `bootstrap_host` (`http://h:1/x` → `h`;
/// an IPv6 literal keeps its brackets, `http://[::1]:1` → `[::1]`, as SGLang's mini_lb wraps it:
/// the decode joins it with the port as `host:port`).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;
    use crate::request::Endpoint;

    #[test]
    fn both_legs_get_the_bootstrap_fields() {
        let r = ClientRequest::parse(
            Endpoint::Completions,
            br#"{"prompt": "p", "stream": true, "bootstrap_room": 1}"#[..].into(),
        )
        .unwrap();
        let b: Value =
            serde_json::from_slice(&body(&r, "10.0.0.2", Some(8998), || 77).to_vec()).unwrap();
        assert_eq!(
            b,
            json!({"prompt": "p", "stream": true, "bootstrap_room": 77,
                   "bootstrap_host": "10.0.0.2", "bootstrap_port": 8998})
        );
        let b: Value = serde_json::from_slice(&body(&r, "h", None, || 1).to_vec()).unwrap();
        assert_eq!(b["bootstrap_port"], Value::Null);
    }

    #[test]
    fn a_batch_gets_lists_of_its_size_with_one_room_per_item() {
        let parse = |endpoint, text: &str| {
            ClientRequest::parse(endpoint, Bytes::copy_from_slice(text.as_bytes())).unwrap()
        };
        let batches = [
            (Endpoint::Generate, r#"{"text": ["a", "b", "c"]}"#, Some(3)),
            (
                Endpoint::Generate,
                r#"{"input_ids": [[1, 2], [3]]}"#,
                Some(2),
            ),
            (Endpoint::Generate, r#"{"text": "a"}"#, None),
            (Endpoint::Generate, r#"{"input_ids": [1, 2, 3]}"#, None),
            (
                Endpoint::Generate,
                r#"{"input_embeds": [[0.5], [0.25]]}"#,
                None,
            ),
            (Endpoint::Completions, r#"{"prompt": ["a", "b"]}"#, Some(2)),
            (
                Endpoint::Completions,
                r#"{"prompt": [[1], [2], [3]]}"#,
                Some(3),
            ),
            (Endpoint::Completions, r#"{"prompt": [1, 2, 3]}"#, None),
            (Endpoint::Completions, r#"{"prompt": "a"}"#, None),
            (Endpoint::ChatCompletions, r#"{"messages": [{}, {}]}"#, None),
        ];
        for (endpoint, text, want) in batches {
            let r = parse(endpoint, text);
            assert_eq!(r.batch(), want, "{text}");
            let mut next = 10;
            let b: Value = serde_json::from_slice(
                &body(&r, "h", Some(9), || {
                    next += 1;
                    next
                })
                .to_vec(),
            )
            .unwrap();
            match want {
                None => assert_eq!(
                    (
                        &b["bootstrap_host"],
                        &b["bootstrap_port"],
                        &b["bootstrap_room"]
                    ),
                    (&json!("h"), &json!(9), &json!(11)),
                    "{text}"
                ),
                Some(n) => {
                    assert_eq!(b["bootstrap_host"], json!(vec!["h"; n]), "{text}");
                    assert_eq!(b["bootstrap_port"], json!(vec![9; n]), "{text}");
                    let rooms: Vec<u64> = (11..11 + n as u64).collect();
                    assert_eq!(b["bootstrap_room"], json!(rooms), "{text}");
                }
            }
        }
        let r = parse(Endpoint::Generate, r#"{"text": ["a", "b"]}"#);
        let b: Value = serde_json::from_slice(&body(&r, "h", None, || 5).to_vec()).unwrap();
        assert_eq!(b["bootstrap_port"], json!([null, null]));
    }

    #[test]
    fn hosts_come_out_of_urls() {
        for (url, host) in [
            ("http://node-b:30000", "node-b"),
            ("http://10.0.0.1:1/v1", "10.0.0.1"),
            ("http://[::1]:30000", "[::1]"),
            ("http://u@h:1", "h"),
            ("h", "h"),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
    }
}
