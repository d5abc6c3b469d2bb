//! The client's request, parsed once and checked for the few fields the router relies on. Each
//! dialect builds its outgoing bodies from it with [`RawObject::write`].
//!
//! Besides OpenAI's two endpoints there is SGLang's native `/generate` (SGLang dialect only):
//! its prompt is `text`, `input_ids` or `input_embeds`, its limits sit in `sampling_params`,
//! and either of the first two may be a batch (a list of prompts), as may an OpenAI completions
//! `prompt` (a list of strings or of token-id lists). SGLang's PD routers give a batch one
//! bootstrap room per item, so the batch size is read here.

use bytes::Bytes;

use crate::policy::PickInput;
use crate::raw::{self, RawObject, first_byte, kind_of};

/// The endpoints that are split into context and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Completions,
    ChatCompletions,
    /// SGLang's native API (`python/sglang/srt/entrypoints/http_server.py`), served in the
    /// SGLang dialect only.
    Generate,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Generate => "/generate",
        }
    }
}

/// The inputs of SGLang's `/generate`, in the order SGLang reads them
/// (`GenerateReqInput._determine_batch_size` in `python/sglang/srt/managers/io_struct.py`).
const GENERATE_INPUTS: [&str; 3] = ["text", "input_ids", "input_embeds"];

/// Bytes per token when estimating a prompt's size without tokenising it. Text averages about
/// four bytes a token; token-id arrays spend about five to seven per id. Only relative sizes
/// matter to the least-tokens policy, so one rough constant will do.
const BYTES_PER_TOKEN: usize = 4;

/// A checked client request; see the module docs.
#[derive(Debug)]
pub(crate) struct ClientRequest {
    pub endpoint: Endpoint,
    pub body: RawObject,
    /// The field holding the prompt: what prefix affinity hashes and token estimates measure.
    prompt_key: &'static str,
    /// `Some(n)` for a batch of `n` prompts in one request.
    batch: Option<usize>,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u64>,
    /// `/generate` asks for logprobs (`return_logprob` true, or true for a prompt of a batch).
    return_logprob: bool,
    /// The client's `Authorization`, carried on to every leg: a worker started with an API key
    /// (`vllm serve --api-key`, SGLang's `--api-key`) refuses a leg without it.
    pub authorization: Option<http::HeaderValue>,
}

impl ClientRequest {
    /// Parses and checks a client body; the `Err` is the message of a 400.
    pub fn parse(endpoint: Endpoint, bytes: Bytes) -> Result<Self, String> {
        let body = RawObject::parse(bytes).map_err(|e| format!("request body: {e}"))?;
        let (prompt_key, batch) = match endpoint {
            Endpoint::Completions => ("prompt", completions_batch(&body)?),
            Endpoint::ChatCompletions => {
                match body.get("messages").map(first_byte) {
                    None => return Err("`messages` is required".into()),
                    Some(b'[') => {}
                    Some(b) => {
                        return Err(format!("`messages` must be an array, not {}", kind_of(b)));
                    }
                }
                ("messages", None)
            }
            Endpoint::Generate => generate_input(&body)?,
        };
        let stream = field::<Option<bool>>(&body, "stream", "a boolean")?.unwrap_or(false);
        let max_tokens = match endpoint {
            Endpoint::Generate => field::<Option<SamplingParams>>(
                &body,
                "sampling_params",
                "an object or an array of objects",
            )?
            .and_then(SamplingParams::max_new_tokens),
            _ => field::<Option<disagg_proto::openai::Whole>>(
                &body,
                "max_tokens",
                "a non-negative integer",
            )?
            .map(|w| w.0),
        };
        // Each leg, the hand-off and the relay carry one choice; more would be silently lost.
        // (`/generate` asks for more in `sampling_params.n`, which both SGLang legs read alike.)
        if endpoint != Endpoint::Generate {
            if let Some(disagg_proto::openai::Whole(n)) =
                field::<Option<disagg_proto::openai::Whole>>(&body, "n", "a positive integer")?
            {
                if n != 1 {
                    return Err(format!(
                        "`n` is {n}: this router serves one choice per request; send n: 1 (or leave it out) and repeat the request"
                    ));
                }
            }
        }
        // What the generation worker refuses (vLLM's SamplingParams, in its words) is refused
        // here, before the context leg, which asks for one token and drops `min_tokens`,
        // prefills and holds KV that nobody then fetches.
        if endpoint != Endpoint::Generate {
            let whole = |key| {
                field::<Option<disagg_proto::openai::Whole>>(&body, key, "a non-negative integer")
                    .map(|w| w.map(|w| w.0))
            };
            let asked = whole("max_completion_tokens")?.or(max_tokens);
            if asked == Some(0) {
                return Err(
                    "max_tokens must be at least 1, got 0 (the generation worker refuses it): \
                     ask for one token or more"
                        .into(),
                );
            }
            if let (Some(min), Some(max)) = (whole("min_tokens")?, asked) {
                if min > max {
                    return Err(format!(
                        "min_tokens must be less than or equal to max_tokens={max}, got {min} \
                         (the generation worker refuses it)"
                    ));
                }
            }
        }
        let options = field::<Option<StreamOptions>>(&body, "stream_options", "an object")?;
        // Refused here, as TensorRT-LLM's disaggregated server and vLLM refuse it: sent on, the
        // context leg (which drops it) would prefill and hold KV that the generation worker's
        // refusal then leaves for nobody to fetch. An empty object is no option, and they take
        // it (`if data.get("stream_options") and not data.get("stream")`).
        let empty = body
            .get("stream_options")
            .is_some_and(|raw| raw.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"{}"));
        if options.is_some() && !empty && !stream && endpoint != Endpoint::Generate {
            return Err(
                "`stream_options` can only be set when `stream` is true: send it with \
                 stream: true, or drop it"
                    .into(),
            );
        }
        let return_logprob = endpoint == Endpoint::Generate
            && match field::<Option<ReturnLogprob>>(
                &body,
                "return_logprob",
                "a boolean or an array of booleans",
            )? {
                Some(ReturnLogprob::One(b)) => b,
                Some(ReturnLogprob::Each(v)) => v.contains(&Some(true)),
                None => false,
            };
        Ok(Self {
            endpoint,
            body,
            prompt_key,
            batch,
            stream,
            // `stream_options: {}` asks for usage: TensorRT-LLM's and vLLM's `include_usage`
            // defaults to true.
            include_usage: stream && options.is_some_and(|o| o.include_usage.unwrap_or(true)),
            max_tokens,
            return_logprob,
            authorization: None,
        })
    }

    /// The client headers each leg carries on, with `request_id` (vLLM's legs share one).
    pub(crate) fn carried(
        &self,
        request_id: Option<http::HeaderValue>,
    ) -> crate::upstream::Carried {
        crate::upstream::Carried {
            request_id,
            authorization: self.authorization.clone(),
        }
    }

    /// Whether a `/generate` request asks for logprobs, which SGLang's routers merge from both
    /// legs' answers.
    pub fn return_logprob(&self) -> bool {
        self.return_logprob
    }

    /// `Some(n)` when the request carries a batch of `n` prompts.
    pub fn batch(&self) -> Option<usize> {
        self.batch
    }

    /// Whether the client asked for SSE.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// Whether the stream ends with a usage chunk (`stream_options.include_usage`; never when
    /// not streaming).
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// The prompt's raw JSON (`prompt`, or `messages` for chat).
    pub fn prompt(&self) -> &[u8] {
        self.body.get(self.prompt_key).unwrap_or_default()
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

/// `/generate`'s `return_logprob`: one flag, or one per prompt of a batch.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ReturnLogprob {
    One(bool),
    Each(Vec<Option<bool>>),
}

/// `/generate`'s `sampling_params`: one object, or one per item of a batch.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum SamplingParams {
    One(MaxNewTokens),
    Each(Vec<MaxNewTokens>),
}

#[derive(serde::Deserialize)]
struct MaxNewTokens {
    max_new_tokens: Option<u64>,
}

impl SamplingParams {
    /// The output tokens asked for, summed over a batch.
    fn max_new_tokens(self) -> Option<u64> {
        match self {
            SamplingParams::One(p) => p.max_new_tokens,
            SamplingParams::Each(v) => v.iter().map(|p| p.max_new_tokens).sum(),
        }
    }
}

/// A completions `prompt` and its batch size: a list of strings or of token-id lists is a
/// batch (SGLang's own completions server makes it a `text` or `input_ids` batch); a string or a
/// flat list of ids is one prompt. sgl-router counts the same way
/// (`get_completion_batch_size` in `sgl-router/src/routers/http/pd_router.rs`).
fn completions_batch(body: &RawObject) -> Result<Option<usize>, String> {
    match body.get("prompt") {
        None => Err("`prompt` is required".into()),
        Some(raw) => match first_byte(raw) {
            b'"' => Ok(None),
            b'[' => Ok(list_batch(raw)),
            b => Err(format!(
                "`prompt` must be a string or an array, not {}",
                kind_of(b)
            )),
        },
    }
}

/// `/generate`'s input field and batch size, as SGLang decides them: `text` as a list, or
/// `input_ids` as a list of lists, is a batch; `input_embeds` is passed on as one prompt, as
/// SGLang's mini_lb does (`_get_request_batch_size` in
/// `python/sglang/srt/disaggregation/mini_lb.py`).
fn generate_input(body: &RawObject) -> Result<(&'static str, Option<usize>), String> {
    let Some((key, raw)) = GENERATE_INPUTS
        .iter()
        .find_map(|k| body.get(k).filter(|v| *v != b"null").map(|v| (*k, v)))
    else {
        return Err("one of `text`, `input_ids` or `input_embeds` is required".into());
    };
    let batch = match (key, first_byte(raw)) {
        ("text", b'"') => None,
        ("text", b'[') => Some(raw::array_len(raw)?),
        ("text", b) => {
            return Err(format!(
                "`text` must be a string or an array of strings, not {}",
                kind_of(b)
            ));
        }
        (_, b'[') => {
            if raw::array_len(raw)? == 0 {
                return Err(format!("`{key}` cannot be empty"));
            }
            if key == "input_ids" {
                list_batch(raw)
            } else {
                None
            }
        }
        (_, b) => return Err(format!("`{key}` must be an array, not {}", kind_of(b))),
    };
    Ok((key, batch))
}

/// The batch size of a prompt list: its length when its items are strings or lists.
fn list_batch(raw: &[u8]) -> Option<usize> {
    match raw::first_item_byte(raw) {
        Some(b'"' | b'[') => raw::array_len(raw).ok(),
        _ => None,
    }
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
        Some(Err(_)) => {
            let raw = body.get(key).unwrap_or_default();
            // A number is quoted (`-1`, `2.5`): "not a number" would read as a contradiction.
            let got = match first_byte(raw) {
                b'-' | b'0'..=b'9' => String::from_utf8_lossy(raw).trim().to_string(),
                b => kind_of(b).to_string(),
            };
            Err(format!("`{key}` must be {want}, not {got}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(endpoint: Endpoint, text: &str) -> Result<ClientRequest, String> {
        ClientRequest::parse(endpoint, Bytes::copy_from_slice(text.as_bytes()))
    }

    /// As the engines' pydantic models take them: an integral float is its integer.
    #[test]
    fn counts_may_be_written_as_integral_floats() {
        for (text, want) in [
            (r#"{"prompt": "p", "max_tokens": 2.0}"#, Some(2)),
            (r#"{"prompt": "p", "max_tokens": 1e1}"#, Some(10)),
            (r#"{"prompt": "p", "max_tokens": 7, "n": 1.0}"#, Some(7)),
        ] {
            assert_eq!(
                parse(Endpoint::Completions, text).unwrap().max_tokens,
                want,
                "{text}"
            );
        }
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
                "`max_tokens` must be a non-negative integer, not -1",
            ),
            (
                Completions,
                r#"{"prompt": "p", "max_tokens": 2.5}"#,
                "`max_tokens` must be a non-negative integer, not 2.5",
            ),
            (
                Completions,
                r#"{"prompt": "p", "stream_options": 1}"#,
                "`stream_options` must be an object",
            ),
            (
                Completions,
                r#"{"prompt": "p", "stream_options": {"include_usage": true}}"#,
                "`stream_options` can only be set when `stream` is true",
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
            // The generation worker's refusals, before the context leg prefills for nothing.
            (
                Completions,
                r#"{"prompt": "p", "max_tokens": 0}"#,
                "max_tokens must be at least 1, got 0",
            ),
            (
                ChatCompletions,
                r#"{"messages": [], "max_completion_tokens": 0, "max_tokens": 5}"#,
                "max_tokens must be at least 1, got 0",
            ),
            (
                Completions,
                r#"{"prompt": "p", "max_tokens": 3, "min_tokens": 5}"#,
                "min_tokens must be less than or equal to max_tokens=3, got 5",
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
        // An empty object is no option: taken without streaming, as the engines take it.
        let r = parse(
            Endpoint::Completions,
            r#"{"prompt": "p", "stream_options": { }}"#,
        )
        .unwrap();
        assert!(!r.stream() && !r.include_usage());
        let r = parse(
            Endpoint::Completions,
            r#"{"prompt": "p", "stream": true, "stream_options": {}}"#,
        )
        .unwrap();
        assert!(r.include_usage(), "include_usage defaults to true");
        for n in ["1", "null"] {
            parse(
                Endpoint::Completions,
                &format!(r#"{{"prompt": "p", "n": {n}}}"#),
            )
            .unwrap();
        }
    }
}
