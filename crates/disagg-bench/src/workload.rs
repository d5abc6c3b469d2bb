//! The requests of a sweep, fully determined by the seed and the settings:
//! - random token ids (benchmark_serving's "random"), lengths uniform around the target — the
//!   default, exact without any tokenizer on `/v1/completions`;
//! - random text of the same lengths for chat endpoints (`text.rs`);
//! - a dataset's prompts and output lengths, taken in file order and reused cyclically;
//! - shared prefixes: N groups, each request opening with its group's fixed P-token prefix.

use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::dataset::{self, Entry, Prompt};
use crate::text::TextModel;
use crate::{BenchConfig, BenchError};

/// Token ids drawn for prompts. Low ids are skipped because tokenizers keep them for special
/// tokens, and the upper bound stays inside every common vocabulary.
pub(crate) const TOKEN_IDS: Range<u32> = 100..30_000;

/// One request, serialized ahead of time so JSON encoding never runs inside the measured loop.
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    pub body: Bytes,
    pub input_len: u32,
    /// `max_tokens` of the request.
    pub output_len: u32,
    /// `input_len` is exact (token ids) rather than estimated from text; an estimate gives way
    /// to the server's `usage.prompt_tokens`.
    pub input_exact: bool,
}

/// Where prompts come from.
#[derive(Debug)]
enum Source {
    Random,
    Dataset {
        entries: Vec<Entry>,
        next: usize,
    },
    /// One prefix per group; request k belongs to group k mod N.
    SharedPrefix {
        prefixes: Vec<Prompt>,
        next: usize,
    },
}

/// A seeded source of requests. The whole sweep draws from one generator, so warmup and every
/// point get fresh prompts: reusing a prompt would let a server's prefix cache flatter TTFT
/// (shared-prefix mode shares its prefixes on purpose, and only them).
pub(crate) struct Workload {
    rng: SmallRng,
    source: Source,
    /// Set when the endpoint takes text (chat): random prompts are then words.
    text: Option<TextModel>,
}

impl Workload {
    /// Reads the dataset and tokenizer the settings name (local files only).
    pub fn new(cfg: &BenchConfig) -> Result<Self, BenchError> {
        let model = match &cfg.tokenizer {
            Some(path) => Some(TextModel::from_tokenizer_file(path)?),
            None => None,
        };
        let chat = cfg.is_chat();
        let estimator = || model.clone().unwrap_or_else(TextModel::common_words);
        let text = chat.then(estimator);
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let source = if let Some(path) = &cfg.dataset {
            let d = dataset::load(path, &estimator())?;
            if d.skipped_short > 0 {
                say_err!(
                    "dataset {}: left out {} conversation(s) with fewer than two turns",
                    path.display(),
                    d.skipped_short
                );
            }
            if chat
                && d.entries
                    .iter()
                    .any(|e| matches!(e.prompt, Prompt::Tokens(_)))
            {
                return Err(token_ids_on_chat(path));
            }
            Source::Dataset {
                entries: d.entries,
                next: 0,
            }
        } else if let Some(sp) = &cfg.shared_prefix {
            let prefixes = (0..sp.groups.get())
                .map(|_| random_prompt(&mut rng, text.as_ref(), sp.prefix_len))
                .collect();
            Source::SharedPrefix { prefixes, next: 0 }
        } else {
            Source::Random
        };
        Ok(Self { rng, source, text })
    }

    /// A length uniform in [base·(1−r), base·(1+r)], never below 1; `r = 0` gives `base`.
    pub fn length(&mut self, base: u32, range_ratio: f64) -> u32 {
        let (lo, hi) = length_bounds(base, range_ratio);
        self.rng.random_range(lo..=hi)
    }

    /// The next `n` requests of the sweep.
    pub fn requests(&mut self, cfg: &BenchConfig, n: u64) -> Vec<PreparedRequest> {
        (0..n).map(|_| self.next_request(cfg)).collect()
    }

    fn next_request(&mut self, cfg: &BenchConfig) -> PreparedRequest {
        let (prompt, input_len, output_len) = match &mut self.source {
            Source::Dataset { entries, next } => {
                let e = &entries[*next % entries.len()];
                *next += 1;
                (e.prompt.clone(), e.input_len, e.output_len)
            }
            Source::SharedPrefix { prefixes, next } => {
                let group = *next % prefixes.len();
                *next += 1;
                let prefix = prefixes[group].clone();
                let prefix_len = cfg.shared_prefix.map_or(0, |sp| sp.prefix_len);
                let (lo, hi) = length_bounds(cfg.isl, cfg.range_ratio);
                // validate() keeps the prefix below the shortest input, so a suffix remains.
                let input_len = self.rng.random_range(lo..=hi);
                let output_len = {
                    let (lo, hi) = length_bounds(cfg.osl, cfg.range_ratio);
                    self.rng.random_range(lo..=hi)
                };
                let suffix = random_prompt(
                    &mut self.rng,
                    self.text.as_ref(),
                    input_len.saturating_sub(prefix_len).max(1),
                );
                (join(prefix, suffix), input_len, output_len)
            }
            Source::Random => {
                let input_len = self.length(cfg.isl, cfg.range_ratio);
                let output_len = self.length(cfg.osl, cfg.range_ratio);
                let prompt = random_prompt(&mut self.rng, self.text.as_ref(), input_len);
                (prompt, input_len, output_len)
            }
        };
        let input_exact = matches!(prompt, Prompt::Tokens(_));
        PreparedRequest {
            body: body(cfg, &prompt, output_len),
            input_len,
            output_len,
            input_exact,
        }
    }
}

/// The canary's request: a random prompt of `input_len` in the endpoint's form, drawn
/// from its own seed stream so the canary never shifts the sweep's prompts.
pub(crate) fn canary_request(
    cfg: &BenchConfig,
    input_len: u32,
    output_len: u32,
) -> PreparedRequest {
    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ 0xca4a_5eed);
    let text = cfg.is_chat().then(TextModel::common_words);
    let prompt = random_prompt(&mut rng, text.as_ref(), input_len);
    PreparedRequest {
        body: body(cfg, &prompt, output_len),
        input_len,
        output_len,
        input_exact: text.is_none(),
    }
}

fn random_prompt(rng: &mut SmallRng, text: Option<&TextModel>, len: u32) -> Prompt {
    match text {
        Some(model) => Prompt::Text(model.text(rng, len)),
        None => Prompt::Tokens((0..len).map(|_| rng.random_range(TOKEN_IDS)).collect()),
    }
}

/// A prefix and a suffix of the same kind, as one prompt.
fn join(prefix: Prompt, suffix: Prompt) -> Prompt {
    match (prefix, suffix) {
        (Prompt::Tokens(mut p), Prompt::Tokens(s)) => {
            p.extend(s);
            Prompt::Tokens(p)
        }
        (Prompt::Text(p), Prompt::Text(s)) => Prompt::Text(format!("{p} {s}")),
        // Both come from random_prompt with the same text model, so they always match.
        (p, _) => p,
    }
}

fn token_ids_on_chat(path: &Path) -> BenchError {
    BenchError::Dataset {
        path: path.to_path_buf(),
        line: None,
        reason: "token-id prompts (input_ids) need /v1/completions; chat endpoints take text"
            .into(),
    }
}

/// Inclusive bounds of the length range, as integers (shared with the case check that sizes
/// the sweep's largest request against the engines' context).
pub(crate) use disagg_proto::lengths::bounds as length_bounds;

/// The request body: `prompt` for completions, one user message for chat. With `ignore_eos`,
/// `min_tokens` and `ignore_eos` together make the server generate exactly `max_tokens`, so the
/// output length is the one asked for; both are sent so servers that read only one of them
/// still honour it.
pub(crate) fn body(cfg: &BenchConfig, prompt: &Prompt, max_tokens: u32) -> Bytes {
    // Written into a buffer of about its final size: growing from serde_json's 128 bytes took
    // four reallocations per 128-token body, in a loop that prepares every request up front.
    let prompt_bytes = match prompt {
        Prompt::Tokens(ids) => ids.len() * 7,
        Prompt::Text(t) => t.len() + t.len() / 8,
    };
    if cfg.is_generate() {
        return generate_body(cfg, prompt, max_tokens, prompt_bytes);
    }
    let (prompt, messages) = match (cfg.is_chat(), prompt) {
        (true, Prompt::Text(t)) => (
            None,
            Some([Message {
                role: "user",
                content: t,
            }]),
        ),
        (false, Prompt::Text(t)) => (Some(PromptField::Text(t)), None),
        // Workload::new refuses token ids on chat, so this pairing is completions.
        (_, Prompt::Tokens(ids)) => (Some(PromptField::Tokens(ids)), None),
    };
    let body = Body {
        model: &cfg.model,
        prompt,
        messages,
        max_tokens,
        min_tokens: cfg.ignore_eos.then_some(max_tokens),
        ignore_eos: cfg.ignore_eos.then_some(true),
        temperature: cfg.temperature,
        stream: cfg.streaming,
        // Without it, streams carry no usage and token counts fall back to counting chunks.
        stream_options: cfg.streaming.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let mut out = Vec::with_capacity(BODY_FIELDS_BYTES + cfg.model.len() + prompt_bytes);
    serde_json::to_writer(&mut out, &body).expect("a request body always serializes");
    Bytes::from(out)
}

/// SGLang's `/generate` body, as its `bench_serving --backend sglang` sends it: the prompt as
/// `text` or `input_ids`, the lengths in `sampling_params` (`ignore_eos` with
/// `min_new_tokens`, as `min_tokens` with the OpenAI endpoints). No model: SGLang serves one.
fn generate_body(
    cfg: &BenchConfig,
    prompt: &Prompt,
    max_tokens: u32,
    prompt_bytes: usize,
) -> Bytes {
    let (text, input_ids) = match prompt {
        Prompt::Text(t) => (Some(t.as_str()), None),
        Prompt::Tokens(ids) => (None, Some(ids.as_slice())),
    };
    let body = GenerateBody {
        text,
        input_ids,
        sampling_params: SamplingParams {
            max_new_tokens: max_tokens,
            min_new_tokens: cfg.ignore_eos.then_some(max_tokens),
            ignore_eos: cfg.ignore_eos.then_some(true),
            temperature: cfg.temperature,
        },
        stream: cfg.streaming,
    };
    let mut out = Vec::with_capacity(BODY_FIELDS_BYTES + prompt_bytes);
    serde_json::to_writer(&mut out, &body).expect("a request body always serializes");
    Bytes::from(out)
}

#[derive(serde::Serialize)]
struct GenerateBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_ids: Option<&'a [u32]>,
    sampling_params: SamplingParams,
    stream: bool,
}

#[derive(serde::Serialize)]
struct SamplingParams {
    max_new_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_new_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_eos: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

/// Room for a body's keys and small values around the model name and the prompt.
const BODY_FIELDS_BYTES: usize = 192;

/// A request body, serialized straight from borrowed fields: building a `serde_json::Value`
/// first cost about a tenth of the bench's CPU (a map and a number node per token id).
#[derive(serde::Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<PromptField<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<[Message<'a>; 1]>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_eos: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum PromptField<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(serde::Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BenchConfig {
        BenchConfig {
            url: "http://127.0.0.1:1".into(),
            endpoint: "/v1/completions".into(),
            model: "m".into(),
            isl: 100,
            osl: 20,
            range_ratio: 0.0,
            concurrency: vec![1],
            rounds: 1,
            warmup: 0,
            streaming: true,
            request_timeout: std::time::Duration::from_secs(5),
            seed: 7,
            ..BenchConfig::default()
        }
    }

    fn workload(seed: u64) -> Workload {
        Workload::new(&BenchConfig { seed, ..cfg() }).unwrap()
    }

    fn json(r: &PreparedRequest) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn zero_ratio_gives_exact_lengths() {
        let mut w = workload(1);
        for _ in 0..100 {
            assert_eq!(w.length(1024, 0.0), 1024);
        }
    }

    #[test]
    fn lengths_stay_within_the_ratio_and_cover_it() {
        let mut w = workload(3);
        let lens: Vec<u32> = (0..2000).map(|_| w.length(1000, 0.25)).collect();
        assert!(lens.iter().all(|&l| (750..=1250).contains(&l)));
        // Uniform over 501 values: 2000 draws reach close to both ends.
        assert!(*lens.iter().min().unwrap() < 760);
        assert!(*lens.iter().max().unwrap() > 1240);
    }

    #[test]
    fn prompts_use_the_token_id_range() {
        let mut rng = SmallRng::seed_from_u64(5);
        let Prompt::Tokens(ids) = random_prompt(&mut rng, None, 5000) else {
            panic!("no text model gives token ids");
        };
        assert!(ids.iter().all(|id| TOKEN_IDS.contains(id)));
    }

    #[test]
    fn same_seed_same_requests_other_seed_other_requests() {
        let mut c = cfg();
        c.range_ratio = 0.5;
        let w = |seed| Workload::new(&BenchConfig { seed, ..c.clone() }).unwrap();
        let a = w(42).requests(&c, 8);
        let b = w(42).requests(&c, 8);
        let other = w(43).requests(&c, 8);
        let bodies = |r: &[PreparedRequest]| r.iter().map(|r| r.body.clone()).collect::<Vec<_>>();
        assert_eq!(bodies(&a), bodies(&b));
        assert_ne!(bodies(&a), bodies(&other));
        for r in &a {
            assert!((50..=150).contains(&r.input_len));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["prompt"].as_array().unwrap().len(), r.input_len as usize);
            assert!((10..=30).contains(&v["max_tokens"].as_u64().unwrap()));
        }
    }

    /// SGLang's `/generate`, as its bench_serving's sglang backend sends it.
    #[test]
    fn a_generate_body_has_sglangs_fields() {
        let mut c = cfg();
        c.endpoint = "/generate".into();
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Tokens(vec![101, 102]), 20)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "input_ids": [101, 102], "stream": true,
                "sampling_params": {
                    "max_new_tokens": 20, "min_new_tokens": 20, "ignore_eos": true,
                    "temperature": 0.0
                }
            })
        );
        c.ignore_eos = false;
        c.streaming = false;
        c.temperature = None;
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Text("a b".into()), 3)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"text": "a b", "stream": false, "sampling_params": {"max_new_tokens": 3}})
        );
    }

    #[test]
    fn body_has_the_benchmark_serving_fields() {
        let c = cfg();
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Tokens(vec![101, 102]), 20)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "model": "m", "prompt": [101, 102], "max_tokens": 20, "min_tokens": 20,
                "ignore_eos": true, "temperature": 0.0, "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
        let mut c = cfg();
        c.streaming = false;
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Tokens(vec![101]), 3)).unwrap();
        assert!(v.get("stream_options").is_none());
        assert_eq!(v["stream"], false);
        c.ignore_eos = false;
        c.temperature = Some(0.7);
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Tokens(vec![101]), 3)).unwrap();
        assert!(v.get("ignore_eos").is_none() && v.get("min_tokens").is_none());
        assert_eq!(v["temperature"], 0.7);
        c.temperature = None;
        let v: serde_json::Value =
            serde_json::from_slice(&body(&c, &Prompt::Text("a \"b\"\n".into()), 3)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model": "m", "prompt": "a \"b\"\n", "max_tokens": 3, "stream": false})
        );
    }

    #[test]
    fn chat_endpoints_get_a_user_message_of_words() {
        let c = BenchConfig {
            endpoint: "/v1/chat/completions".into(),
            ..cfg()
        };
        let r = &Workload::new(&c).unwrap().requests(&c, 1)[0];
        let v = json(r);
        assert!(v.get("prompt").is_none());
        assert_eq!(v["messages"][0]["role"], "user");
        let content = v["messages"][0]["content"].as_str().unwrap();
        assert_eq!(content.split(' ').count(), 100);
        assert_eq!((r.input_len, r.input_exact), (100, false));
        assert_eq!(v["max_tokens"], 20);
    }

    #[test]
    fn shared_prefix_groups_open_with_the_same_tokens() {
        let c = BenchConfig {
            shared_prefix: Some(crate::SharedPrefix {
                groups: std::num::NonZeroU32::new(3).unwrap(),
                prefix_len: 60,
            }),
            ..cfg()
        };
        let reqs = Workload::new(&c).unwrap().requests(&c, 6);
        let prompts: Vec<Vec<u64>> = reqs
            .iter()
            .map(|r| {
                let v = json(r);
                assert_eq!(r.input_len, 100);
                v["prompt"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect()
            })
            .collect();
        for p in &prompts {
            assert_eq!(p.len(), 100);
        }
        // Requests k and k+3 share group k's prefix and nothing else; groups differ.
        for k in 0..3 {
            assert_eq!(prompts[k][..60], prompts[k + 3][..60]);
            assert_ne!(prompts[k][60..], prompts[k + 3][60..]);
        }
        assert_ne!(prompts[0][..60], prompts[1][..60]);
    }

    #[test]
    fn datasets_are_used_in_order_and_cycled() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("workload.jsonl");
        std::fs::write(
            &path,
            "{\"input_ids\": [1, 2], \"output_tokens\": 5}\n\
             {\"prompt\": \"the cat\", \"output_tokens\": 9}\n",
        )
        .unwrap();
        let c = BenchConfig {
            dataset: Some(path.clone()),
            ..cfg()
        };
        let reqs = Workload::new(&c).unwrap().requests(&c, 3);
        assert_eq!(json(&reqs[0])["prompt"], serde_json::json!([1, 2]));
        assert_eq!(json(&reqs[1])["prompt"], "the cat");
        assert_eq!(json(&reqs[2])["prompt"], serde_json::json!([1, 2]));
        assert_eq!(
            reqs.iter()
                .map(|r| (r.input_len, r.output_len, r.input_exact))
                .collect::<Vec<_>>(),
            vec![(2, 5, true), (2, 9, false), (2, 5, true)]
        );
        // Token ids cannot go to a chat endpoint.
        let chat = BenchConfig {
            endpoint: "/v1/chat/completions".into(),
            ..c
        };
        let err = Workload::new(&chat).err().unwrap().to_string();
        assert!(err.contains("need /v1/completions"), "{err}");
    }
}
