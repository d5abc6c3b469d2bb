//! OpenAI-style error bodies: `{"error": {"message", "type", "code"}}`.

use serde::{Deserialize, Serialize};

/// An error as it goes over the wire. Servers map their failures to one of these, in one place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    /// HTTP status code (not serialized in the body's `error` object's place; see [`ApiError::body`]).
    pub status: u16,
    /// OpenAI's error `type`, e.g. `invalid_request_error`, `server_error`.
    pub kind: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: kind.into(),
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found_error", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message)
    }
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "bad_gateway", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "service_unavailable", message)
    }
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(504, "timeout", message)
    }

    /// The JSON body OpenAI clients expect.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {"message": self.message, "type": self.kind, "code": self.status}
        })
    }

    /// Reads an error body back (for clients and tests); `None` when it is not one.
    pub fn from_body(status: u16, body: &[u8]) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?;
        Some(Self {
            status,
            kind: e
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("error")
                .to_string(),
            message: e
                .get("message")
                .and_then(|t| t.as_str())
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// How much of an error body that is not an error object is quoted.
const QUOTED_BODY_CHARS: usize = 300;

/// What an error body says, whatever shape the server gave it: the `message` of an OpenAI error
/// object (`{"error": {"message"}}`), of vLLM's and SGLang's flat one (`{"object": "error",
/// "message"}`), FastAPI's `detail` (a string, or its validation list), the `<title>` of an
/// HTML page (nginx, proxies), or else the body's text, whitespace collapsed and cut at
/// 300 characters; `(empty body)` for none. Never empty, so a log line always says why.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = json_message(&v) {
            return m;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') {
        let lower = text.to_ascii_lowercase();
        if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>")) {
            if a + 7 <= b {
                let title = collapse(&text[a + 7..b]);
                if !title.is_empty() {
                    return title;
                }
            }
        }
    }
    let quoted = collapse(text);
    if quoted.is_empty() {
        "(empty body)".to_string()
    } else {
        quoted
    }
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    let text = |m: &serde_json::Value| match m {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(collapse(s)),
        serde_json::Value::String(_) | serde_json::Value::Null => None,
        other => Some(collapse(&other.to_string())),
    };
    if let Some(e) = v.get("error") {
        return match e.get("message") {
            Some(m) => text(m),
            None => text(e),
        };
    }
    v.get("message")
        .and_then(text)
        .or_else(|| v.get("detail").and_then(text))
}

/// One line, at most [`QUOTED_BODY_CHARS`] characters (an ellipsis says it was cut).
fn collapse(s: &str) -> String {
    let mut out = String::new();
    for (n, word) in s.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > QUOTED_BODY_CHARS {
        out = out.chars().take(QUOTED_BODY_CHARS).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_reads_every_shape_servers_send() {
        let openai =
            br#"{"error": {"message": "model x not found", "type": "invalid_request_error"}}"#;
        assert_eq!(error_message(openai), "model x not found");
        // vLLM and SGLang: a flat error object.
        let flat = br#"{"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}"#;
        assert_eq!(error_message(flat), "max_tokens is too large");
        // FastAPI: a route that does not exist, and a validation error.
        assert_eq!(error_message(br#"{"detail": "Not Found"}"#), "Not Found");
        let validation = br#"{"detail": [{"loc": ["body", "prompt"], "msg": "field required"}]}"#;
        let m = error_message(validation);
        assert!(m.contains("field required") && m.contains("prompt"), "{m}");
        // nginx's page, and plain text.
        let nginx = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body><center><h1>404 Not Found</h1></center><hr><center>nginx/1.22.1</center></body></html>";
        assert_eq!(error_message(nginx), "404 Not Found");
        assert_eq!(
            error_message(b"upstream\n  timed out\n"),
            "upstream timed out"
        );
        assert_eq!(error_message(b"  \n"), "(empty body)");
        // An error object without words is quoted whole rather than read as nothing.
        assert_eq!(
            error_message(br#"{"error": {"message": ""}}"#),
            r#"{"error": {"message": ""}}"#
        );
        let long = "x ".repeat(1000);
        let m = error_message(long.as_bytes());
        assert_eq!(m.chars().count(), QUOTED_BODY_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn body_round_trips() {
        let e = ApiError::bad_gateway("GEN worker 127.0.0.1:9 reset the connection");
        let bytes = serde_json::to_vec(&e.body()).unwrap();
        assert_eq!(ApiError::from_body(502, &bytes), Some(e));
    }
}
