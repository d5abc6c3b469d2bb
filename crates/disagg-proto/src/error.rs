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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips() {
        let e = ApiError::bad_gateway("GEN worker 127.0.0.1:9 reset the connection");
        let bytes = serde_json::to_vec(&e.body()).unwrap();
        assert_eq!(ApiError::from_body(502, &bytes), Some(e));
    }
}
