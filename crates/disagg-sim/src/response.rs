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
    /// `/v1/chat/completions`: choices carry `message`/`delta` instead of `text`.
    pub(crate) chat: bool,
    /// TensorRT-LLM's `avg_decoded_tokens_per_iter`, put in every choice when set.
    pub(crate) decoded_per_iter: Option<f64>,
    /// The `index` of the choices: the prompt's place in a batch (else 0).
    pub(crate) index: u32,
}

/// A completion object (text or chat), whole or as one streamed chunk.
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
    /// A vLLM prefill's: `Some(None)` is the `null` NixlConnector returns for a request it
    /// kept no KV for.
    #[serde(skip_serializing_if = "Option::is_none")]
    kv_transfer_params: Option<Option<&'a KvTransferParams>>,
}

#[derive(Debug, Serialize)]
struct Choice<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<Message<'a>>,
    /// `null` while streaming; `"length"` or `"stop"` on the last token.
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disaggregated_params: Option<&'a DisaggregatedParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avg_decoded_tokens_per_iter: Option<f64>,
}

/// A chat `message` or streamed `delta`.
#[derive(Debug, Serialize)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    content: &'a str,
}

impl<'a> Choice<'a> {
    /// The choice of a whole answer.
    fn whole(h: &Header, text: &'a str, finish: Finish) -> Self {
        let mut c = Self::streamed(h, text, Some(finish));
        if h.chat {
            c.message = Some(Message {
                role: Some("assistant"),
                content: text,
            });
            c.delta = None;
        }
        c
    }

    /// The choice of one streamed chunk.
    fn streamed(h: &Header, text: &'a str, finish: Option<Finish>) -> Self {
        Self {
            index: h.index,
            text: (!h.chat).then_some(text),
            message: None,
            delta: h.chat.then_some(Message {
                role: None,
                content: text,
            }),
            finish_reason: finish.and_then(Finish::reason),
            disaggregated_params: None,
            avg_decoded_tokens_per_iter: h.decoded_per_iter,
        }
    }
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
    pub(crate) fn reason(self) -> Option<&'static str> {
        Some(match self {
            Finish::Length => "length",
            Finish::Stop => "stop",
        })
    }
}

impl<'a> Completion<'a> {
    fn new(h: &'a Header, choices: Vec<Choice<'a>>, streamed: bool) -> Self {
        Self {
            id: &h.id,
            object: match (h.chat, streamed) {
                (false, _) => "text_completion",
                (true, false) => "chat.completion",
                (true, true) => "chat.completion.chunk",
            },
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
    Completion::new(h, vec![Choice::streamed(h, text, finish)], true).to_bytes()
}

/// The chunk a chat stream opens with before its first token, as vLLM, SGLang and TensorRT-LLM
/// send it (each on its first output): `delta: {"role": "assistant", "content": ""}`. A client
/// that counts chunks as tokens counts one too many on them, and on the sim too.
pub(crate) fn role_chunk(h: &Header) -> Bytes {
    let mut choice = Choice::streamed(h, "", None);
    choice.delta = Some(Message {
        role: Some("assistant"),
        content: "",
    });
    Completion::new(h, vec![choice], true).to_bytes()
}

/// Every token frame of one stream, pre-rendered around the text: with thousands of streams on
/// two cores, serializing the same id/model/created for every token was the hot spot. The
/// output is byte for byte what [`chunk`] inside an SSE frame gives (a unit test pins it).
#[derive(Debug)]
pub(crate) struct ChunkTemplate {
    /// A chat stream's opening frame ([`role_chunk`]), sent with its first token.
    role: Option<Bytes>,
    head: Vec<u8>,
    tail_open: Vec<u8>,
    tail_length: Vec<u8>,
    tail_stop: Vec<u8>,
}

impl ChunkTemplate {
    pub(crate) fn new(h: &Header) -> Self {
        // Rendered with a sentinel text; `choices` is the last field, so the last occurrence of
        // the sentinel is the text even if the model name contained it.
        const SENTINEL: &str = "\u{1}";
        const MARK: &str = r#""\u0001""#;
        let split = |finish| {
            let s = String::from_utf8_lossy(&chunk(h, SENTINEL, finish)).into_owned();
            let at = s.rfind(MARK).unwrap_or(s.len());
            let tail = s.get(at + MARK.len()..).unwrap_or("");
            (format!("data: {}", &s[..at]), format!("{tail}\n\n"))
        };
        let (head, tail_open) = split(None);
        let (_, tail_length) = split(Some(Finish::Length));
        let (_, tail_stop) = split(Some(Finish::Stop));
        Self {
            role: h.chat.then(|| disagg_proto::sse::frame(&role_chunk(h))),
            head: head.into_bytes(),
            tail_open: tail_open.into_bytes(),
            tail_length: tail_length.into_bytes(),
            tail_stop: tail_stop.into_bytes(),
        }
    }

    /// The SSE frame of one streamed token; a chat stream's `first` comes after its role frame.
    pub(crate) fn frame(&self, text: &str, finish: Option<Finish>, first: bool) -> Bytes {
        let head = &self.head;
        let tail = match finish {
            None => &self.tail_open,
            Some(Finish::Length) => &self.tail_length,
            Some(Finish::Stop) => &self.tail_stop,
        };
        let role = self.role.as_deref().filter(|_| first).unwrap_or_default();
        let mut out = Vec::with_capacity(role.len() + head.len() + text.len() + 2 + tail.len());
        out.extend_from_slice(role);
        out.extend_from_slice(head);
        // Serializing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, text);
        out.extend_from_slice(tail);
        Bytes::from(out)
    }
}

/// The trailing chunk of `stream_options.include_usage`: no choices, only usage.
pub(crate) fn usage_chunk(h: &Header, usage: Usage) -> Bytes {
    let mut c = Completion::new(h, Vec::new(), true);
    c.usage = Some(usage);
    c.to_bytes()
}

/// A whole non-streaming completion.
pub(crate) fn full(h: &Header, text: &str, usage: Usage, finish: Finish) -> Bytes {
    let mut c = Completion::new(h, vec![Choice::whole(h, text, finish)], false);
    c.usage = Some(usage);
    c.to_bytes()
}

/// A whole batched completion: one choice per prompt, `index` its place in the batch.
pub(crate) fn full_many(h: &Header, answers: &[(String, Finish)], usage: Usage) -> Bytes {
    let choices = (answers.iter().enumerate())
        .map(|(i, (text, finish))| {
            let mut c = Choice::whole(h, text, *finish);
            c.index = i as u32;
            c
        })
        .collect();
    let mut c = Completion::new(h, choices, false);
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
    let mut choice = Choice::whole(h, text, finish);
    choice.disaggregated_params = Some(params);
    let mut c = Completion::new(h, vec![choice], false);
    c.usage = Some(Usage::new(prompt.len() as u64, 1));
    c.prompt_token_ids = Some(prompt);
    c.to_bytes()
}

/// A vLLM prefill's answer: an ordinary completion of one token, plus the params decode needs.
/// Only a prefill cut at its length (its one token) keeps its KV for a decode: one that
/// finished otherwise (EOS on its one token) answers `kv_transfer_params: null`, as
/// NixlConnector's `request_finished` does for any status but `FINISHED_LENGTH_CAPPED`.
pub(crate) fn with_kv_transfer_params(
    h: &Header,
    text: &str,
    usage: Usage,
    params: &KvTransferParams,
    finish: Finish,
) -> Bytes {
    let mut c = Completion::new(h, vec![Choice::whole(h, text, finish)], false);
    c.usage = Some(usage);
    c.kv_transfer_params = Some(matches!(finish, Finish::Length).then_some(params));
    c.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_template_renders_what_serde_does() {
        for (model, chat, decoded_per_iter) in [
            ("sim", false, None),
            ("sim", true, None),
            ("odd \u{1} model", true, None),
            ("sim", false, Some(2.5)),
        ] {
            let h = Header {
                id: "cmpl-sim-7".into(),
                created: 1_700_000_000,
                model: model.into(),
                chat,
                decoded_per_iter,
                index: 0,
            };
            let t = ChunkTemplate::new(&h);
            for (text, finish, first) in [
                (" t1", None, true),
                (" t2", Some(Finish::Length), false),
                ("", Some(Finish::Stop), false),
                ("q\"uote\n", None, false),
            ] {
                let mut want = Vec::new();
                if chat && first {
                    want.extend_from_slice(&disagg_proto::sse::frame(&role_chunk(&h)));
                }
                want.extend_from_slice(&disagg_proto::sse::frame(&chunk(&h, text, finish)));
                assert_eq!(t.frame(text, finish, first), want, "{model} {text:?}");
            }
        }
    }

    #[test]
    fn chat_objects_have_chat_shapes() {
        let h = Header {
            id: "c".into(),
            created: 1,
            model: "m".into(),
            chat: true,
            decoded_per_iter: None,
            index: 0,
        };
        let whole: serde_json::Value =
            serde_json::from_slice(&full(&h, " t1", Usage::new(1, 1), Finish::Length))
                .expect("JSON");
        assert_eq!(whole["object"], "chat.completion");
        assert_eq!(
            whole["choices"][0]["message"],
            serde_json::json!({"role": "assistant", "content": " t1"})
        );
        let role: serde_json::Value = serde_json::from_slice(&role_chunk(&h)).expect("JSON");
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(
            role["choices"][0]["delta"],
            serde_json::json!({"role": "assistant", "content": ""})
        );
        assert_eq!(role["choices"][0]["finish_reason"], serde_json::Value::Null);
        let first: serde_json::Value =
            serde_json::from_slice(&chunk(&h, " t1", None)).expect("JSON");
        assert_eq!(
            first["choices"][0]["delta"],
            serde_json::json!({"content": " t1"})
        );
        assert!(first["choices"][0].get("text").is_none());
    }
}
