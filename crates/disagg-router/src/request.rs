//! The client's request, parsed once and checked for the few fields the router relies on. Each
//! dialect builds its outgoing bodies from it with [`RawObject::write`].

use bytes::Bytes;

use crate::policy::PickInput;
use crate::raw::{RawObject, first_byte, kind_of};

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

    /// The field holding the prompt: what prefix affinity hashes and token estimates measure.
    fn prompt_key(self) -> &'static str {
        match self {
            Endpoint::Completions => "prompt",
            Endpoint::ChatCompletions => "messages",
        }
    }
}

/// Bytes per token when estimating a prompt's size without tokenising it. Text averages about
/// four bytes a token; token-id arrays spend about five to seven per id. Only relative sizes
/// matter to the least-tokens policy, so one rough constant will do.
const BYTES_PER_TOKEN: usize = 4;

/// A checked client request; see the module docs.
#[derive(Debug)]
pub(crate) struct ClientRequest {
    pub endpoint: Endpoint,
    pub body: RawObject,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u64>,
}

impl ClientRequest {
    /// Parses and checks a client body; the `Err` is the message of a 400.
    pub fn parse(endpoint: Endpoint, bytes: Bytes) -> Result<Self, String> {
        let body = RawObject::parse(bytes).map_err(|e| format!("request body: {e}"))?;
        let prompt_key = endpoint.prompt_key();
        match body.get(prompt_key).map(first_byte) {
            None => return Err(format!("`{prompt_key}` is required")),
            Some(b'"') if endpoint == Endpoint::Completions => {}
            Some(b'[') => {}
            Some(b) => {
                let want = match endpoint {
                    Endpoint::Completions => "a string or an array",
                    Endpoint::ChatCompletions => "an array",
                };
                return Err(format!("`{prompt_key}` must be {want}, not {}", kind_of(b)));
            }
        }
        let stream = field::<Option<bool>>(&body, "stream", "a boolean")?.unwrap_or(false);
        let max_tokens = field::<Option<u64>>(&body, "max_tokens", "a non-negative integer")?;
        // Each leg, the hand-off and the relay carry one choice; more would be silently lost.
        if let Some(n) = field::<Option<u64>>(&body, "n", "a positive integer")? {
            if n != 1 {
                return Err(format!(
                    "`n` is {n}: this router serves one choice per request; send n: 1 (or leave it out) and repeat the request"
                ));
            }
        }
        let options = field::<Option<StreamOptions>>(&body, "stream_options", "an object")?;
        Ok(Self {
            endpoint,
            body,
            stream,
            include_usage: options.and_then(|o| o.include_usage).unwrap_or(false),
            max_tokens,
        })
    }

    /// Whether the client asked for SSE.
    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// The prompt's raw JSON (`prompt`, or `messages` for chat).
    pub fn prompt(&self) -> &[u8] {
        self.body
            .get(self.endpoint.prompt_key())
            .unwrap_or_default()
    }

    /// A rough size of the work: prompt tokens (estimated from bytes) plus `max_tokens`.
    pub fn token_estimate(&self) -> u64 {
        (self.prompt().len() / BYTES_PER_TOKEN) as u64 + self.max_tokens.unwrap_or(0)
    }

    /// What a worker-picking policy looks at in this request.
    pub fn pick_input(&self) -> PickInput<'_> {
        PickInput {
            prompt: self.prompt(),
            tokens: self.token_estimate(),
        }
    }
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Reads a small optional field, naming it and the expected type when it is wrong.
fn field<T: serde::de::DeserializeOwned + Default>(
    body: &RawObject,
    key: &str,
    want: &str,
) -> Result<T, String> {
    match body.parse_field::<T>(key) {
        None => Ok(T::default()),
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => Err(format!(
            "`{key}` must be {want}, not {}",
            kind_of(body.get(key).map(first_byte).unwrap_or(b' '))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Endpoint, text: &str) -> Result<ClientRequest, String> {
        ClientRequest::parse(endpoint, Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn wrong_types_are_named() {
        use Endpoint::*;
        for (endpoint, text, want) in [
            (Completions, r#"{}"#, "`prompt` is required"),
            (
                Completions,
                r#"{"prompt": 3}"#,
                "`prompt` must be a string or an array, not a number",
            ),
            (
                ChatCompletions,
                r#"{"messages": "hi"}"#,
                "`messages` must be an array, not a string",
            ),
            (
                Completions,
                r#"{"prompt": "p", "stream": "yes"}"#,
                "`stream` must be a boolean",
            ),
            (
                Completions,
                r#"{"prompt": "p", "max_tokens": -1}"#,
                "`max_tokens` must be a non-negative",
            ),
            (
                Completions,
                r#"{"prompt": "p", "stream_options": 1}"#,
                "`stream_options` must be an object",
            ),
            (Completions, r#"[]"#, "not an array"),
            (
                Completions,
                r#"{"prompt": "p", "n": 2}"#,
                "`n` is 2: this router serves one choice per request",
            ),
            (ChatCompletions, r#"{"messages": [], "n": 0}"#, "`n` is 0"),
            (
                Completions,
                r#"{"prompt": "p", "n": "2"}"#,
                "`n` must be a positive integer",
            ),
        ] {
            let err = parse(endpoint, text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn reads_the_fields_the_router_needs() {
        let r = parse(
            Endpoint::Completions,
            r#"{"prompt": [1,2,3,4,5,6,7,8], "stream": true, "max_tokens": 10,
                "stream_options": {"include_usage": true}}"#,
        )
        .unwrap();
        assert!(r.stream() && r.include_usage());
        assert_eq!(r.prompt(), b"[1,2,3,4,5,6,7,8]");
        assert_eq!(r.token_estimate(), 17 / 4 + 10);
        let r = parse(
            Endpoint::ChatCompletions,
            r#"{"messages": [], "stream": null}"#,
        )
        .unwrap();
        assert!(!r.stream() && !r.include_usage());
        for n in ["1", "null"] {
            parse(
                Endpoint::Completions,
                &format!(r#"{{"prompt": "p", "n": {n}}}"#),
            )
            .unwrap();
        }
    }
}
