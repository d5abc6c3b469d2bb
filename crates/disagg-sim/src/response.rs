//! The JSON the sim answers with: OpenAI completion objects, streamed chunks, and TensorRT-LLM's
//! context-server additions (PROTOCOLS.md §1 step 3) and vLLM's prefill answer (§2 step 2).

use bytes::Bytes;
use disagg_proto::openai::Usage;
use disagg_proto::trtllm::DisaggregatedParams;
use serde::Serialize;

use crate::dialect::vllm::KvTransferParams;

/// Identity fields shared by every object of one response.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

/// A `text_completion` object, whole or as one streamed chunk.
#[derive(Debug, Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_token_ids: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kv_transfer_params: Option<&'a KvTransferParams>,
}

#[derive(Debug, Serialize)]
struct Choice<'a> {
    index: u32,
    text: &'a str,
    /// `null` while streaming; `"length"` or `"stop"` on the last token.
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disaggregated_params: Option<&'a DisaggregatedParams>,
}

/// Why the last token of a response is the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// `max_tokens` reached.
    Length,
    /// The model produced EOS (`--eos-at`).
    Stop,
}

impl Finish {
    fn reason(self) -> Option<&'static str> {
        Some(match self {
            Finish::Length => "length",
            Finish::Stop => "stop",
        })
    }
}

impl<'a> Completion<'a> {
    fn new(h: &'a Header, choices: Vec<Choice<'a>>) -> Self {
        Self {
            id: &h.id,
            object: "text_completion",
            created: h.created,
            model: &h.model,
            choices,
            usage: None,
            prompt_token_ids: None,
            kv_transfer_params: None,
        }
    }

    fn to_bytes(&self) -> Bytes {
        // Serializing these plain structs to a Vec cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// One streamed token: `finish` is set on the last one.
pub(crate) fn chunk(h: &Header, text: &str, finish: Option<Finish>) -> Bytes {
    let choice = Choice {
        index: 0,
        text,
        finish_reason: finish.and_then(Finish::reason),
        disaggregated_params: None,
    };
    Completion::new(h, vec![choice]).to_bytes()
}

/// Every token frame of one stream, pre-rendered around the text: with thousands of streams on
/// two cores, serializing the same id/model/created for every token was the hot spot. The
/// output is byte for byte what [`chunk`] inside an SSE frame gives (a unit test pins it).
#[derive(Debug)]
pub(crate) struct ChunkTemplate {
    head: Vec<u8>,
    tail_open: Vec<u8>,
    tail_length: Vec<u8>,
    tail_stop: Vec<u8>,
}

impl ChunkTemplate {
    pub(crate) fn new(h: &Header) -> Self {
        const TEXT: &str = r#""text":"#;
        let render = |finish| String::from_utf8_lossy(&chunk(h, "", finish)).into_owned();
        // `choices` is the last field and `text` precedes `finish_reason`, so the last
        // occurrence of `"text":""` is ours even if the model name contains it.
        let split = |s: &str| {
            let at = s.rfind(r#""text":"""#).map_or(0, |i| i + TEXT.len());
            (s[..at].to_string(), s[at + 2..].to_string())
        };
        let (head, tail_open) = split(&render(None));
        let (_, tail_length) = split(&render(Some(Finish::Length)));
        let (_, tail_stop) = split(&render(Some(Finish::Stop)));
        let framed = |parts: [&[u8]; 2]| parts.concat();
        Self {
            head: framed([b"data: ", head.as_bytes()]),
            tail_open: framed([tail_open.as_bytes(), b"\n\n"]),
            tail_length: framed([tail_length.as_bytes(), b"\n\n"]),
            tail_stop: framed([tail_stop.as_bytes(), b"\n\n"]),
        }
    }

    /// The SSE frame of one streamed token.
    pub(crate) fn frame(&self, text: &str, finish: Option<Finish>) -> Bytes {
        let tail = match finish {
            None => &self.tail_open,
            Some(Finish::Length) => &self.tail_length,
            Some(Finish::Stop) => &self.tail_stop,
        };
        let mut out = Vec::with_capacity(self.head.len() + text.len() + 2 + tail.len());
        out.extend_from_slice(&self.head);
        // Serializing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, text);
        out.extend_from_slice(tail);
        Bytes::from(out)
    }
}

/// The trailing chunk of `stream_options.include_usage`: no choices, only usage.
pub(crate) fn usage_chunk(h: &Header, usage: Usage) -> Bytes {
    let mut c = Completion::new(h, Vec::new());
    c.usage = Some(usage);
    c.to_bytes()
}

/// A whole non-streaming completion.
pub(crate) fn full(h: &Header, text: &str, usage: Usage, finish: Finish) -> Bytes {
    let choice = Choice {
        index: 0,
        text,
        finish_reason: finish.reason(),
        disaggregated_params: None,
    };
    let mut c = Completion::new(h, vec![choice]);
    c.usage = Some(usage);
    c.to_bytes()
}

/// A context server's answer: token 0, the hand-off parameters and the prompt's token ids.
pub(crate) fn context(
    h: &Header,
    text: &str,
    params: &DisaggregatedParams,
    prompt: &[u32],
    finish: Finish,
) -> Bytes {
    let choice = Choice {
        index: 0,
        text,
        finish_reason: finish.reason(),
        disaggregated_params: Some(params),
    };
    let mut c = Completion::new(h, vec![choice]);
    c.usage = Some(Usage::new(prompt.len() as u64, 1));
    c.prompt_token_ids = Some(prompt);
    c.to_bytes()
}

/// A vLLM prefill's answer: an ordinary completion of one token, plus the params decode needs.
pub(crate) fn with_kv_transfer_params(
    h: &Header,
    text: &str,
    usage: Usage,
    params: &KvTransferParams,
    finish: Finish,
) -> Bytes {
    let choice = Choice {
        index: 0,
        text,
        finish_reason: finish.reason(),
        disaggregated_params: None,
    };
    let mut c = Completion::new(h, vec![choice]);
    c.usage = Some(usage);
    c.kv_transfer_params = Some(params);
    c.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_template_renders_what_serde_does() {
        for model in ["sim", r#"odd "text":"" model"#] {
            let h = Header {
                id: "cmpl-sim-7".into(),
                created: 1_700_000_000,
                model: model.into(),
            };
            let t = ChunkTemplate::new(&h);
            for (text, finish) in [
                (" t1", None),
                (" t2", Some(Finish::Length)),
                ("", Some(Finish::Stop)),
                ("q\"uote\n", None),
            ] {
                let want = disagg_proto::sse::frame(&chunk(&h, text, finish));
                assert_eq!(t.frame(text, finish), want, "{model} {text:?} {finish:?}");
            }
        }
    }
}
