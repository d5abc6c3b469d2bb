//! SGLang's disaggregated dialect (PROTOCOLS.md §3): one body, with the prefill worker's
//! bootstrap address and a fresh rendezvous room, sent to prefill and decode at once. Decode
//! connects to the prefill worker's bootstrap server and meets it in that room.

use crate::raw::Pieces;
use crate::request::ClientRequest;

/// The body for both legs.
pub(crate) fn body(
    req: &ClientRequest,
    bootstrap_host: &str,
    bootstrap_port: Option<u16>,
    room: u64,
) -> Pieces {
    let host = serde_json::to_vec(bootstrap_host).unwrap_or_else(|_| b"null".to_vec());
    let port = match bootstrap_port {
        Some(p) => p.to_string().into_bytes(),
        None => b"null".to_vec(),
    };
    let room = room.to_string().into_bytes();
    req.body.write(
        &[],
        &[
            ("bootstrap_host", host.into()),
            ("bootstrap_port", port.into()),
            ("bootstrap_room", room.into()),
        ],
    )
}

/// The host part of a worker URL (`http://h:1/x` → `h`, `http://[::1]:1` → `::1`).
pub(crate) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
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
            serde_json::from_slice(&body(&r, "10.0.0.2", Some(8998), 77).to_vec()).unwrap();
        assert_eq!(
            b,
            json!({"prompt": "p", "stream": true, "bootstrap_room": 77,
                   "bootstrap_host": "10.0.0.2", "bootstrap_port": 8998})
        );
        let b: Value = serde_json::from_slice(&body(&r, "h", None, 1).to_vec()).unwrap();
        assert_eq!(b["bootstrap_port"], Value::Null);
    }

    #[test]
    fn hosts_come_out_of_urls() {
        for (url, host) in [
            ("http://node-b:30000", "node-b"),
            ("http://10.0.0.1:1/v1", "10.0.0.1"),
            ("http://[::1]:30000", "::1"),
            ("http://u@h:1", "h"),
            ("h", "h"),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
    }
}
