//! The maximum context length (`--max-model-len`, or the stand-in engine's own flag): what each
//! real engine does with a request whose prompt and output do not fit, so that a case that
//! would fail on GPUs fails on the sim too, with the engine's status and words.
//!
//! Every worker checks the request it gets, context and generation alike, as the engines do: the
//! prefill leg of vLLM and TensorRT-LLM carries `max_tokens: 1` (their routers set it), so it
//! only refuses a prompt that leaves no room at all; the decode leg carries the client's
//! `max_tokens` and checks prompt plus output. SGLang's router sends both legs the client's body.
//!
//! What the engines do (upstream sources, read 2026-12):
//! - vLLM: the OpenAI layer refuses `prompt + max_tokens > max_model_len` with 400
//!   `BadRequestError`, `param: input_tokens` (`vllm/renderers/params.py`,
//!   `TokenizeParams._token_len_check`; the wording "This model's maximum context length is ..."
//!   is that of releases from 0.25 on; a text prompt is tokenized with truncation at one token
//!   past the room left, hence "at least"). A request without `max_tokens` (chat) counts 0 output
//!   tokens there, and the engine's own check then refuses a prompt of exactly `max_model_len`
//!   (`vllm/v1/engine/input_processor.py`, `_validate_prompt_len`).
//! - SGLang: the tokenizer manager refuses `input >= context_len` and, when `max_new_tokens` is
//!   set, `input + max_new_tokens >= context_len` (`python/sglang/srt/managers/
//!   tokenizer_manager.py`, `_validate_one_request`; it truncates instead only under
//!   `--allow-auto-truncate`); the OpenAI layer turns the ValueError into 400 `BadRequestError`,
//!   even for a stream (`serving_completions.py` starts the generator before answering 200).
//! - TensorRT-LLM (PyTorch backend, what trtllm-serve runs): the worker refuses a prompt that
//!   leaves no room under `max_seq_len` and cuts a larger `max_tokens` down to the room left,
//!   with a warning (`tensorrt_llm/executor/base_worker.py`, `_deduce_max_tokens`); the OpenAI
//!   server answers the error with its flat `ErrorResponse` (`object: error`), 400
//!   `BadRequestError`.
//! - TensorRT-LLM's `max_num_tokens`: the LLM API (`tensorrt_llm/llmapi/llm.py`,
//!   `_check_arguments`, called from `generate_async` before the request reaches the worker)
//!   raises a ValueError for a prompt longer than max_num_tokens on the PyTorch backend unless
//!   `enable_chunked_prefill`, skipping generation-only requests ("The sum of prompt length
//!   (P.0), query length (0) should not exceed max_num_tokens (N)", the length a float:
//!   divided by the context-parallel size); trtllm-serve's answer is the same flat 400 (as seen
//!   in user reports quoting it). `max_input_len` is not checked on that backend: its executor
//!   is sized from `get_runtime_sizes()` (beam width, max_num_tokens, max_seq_len, batch size)
//!   alone, and TensorRT-LLM's perf-sanity disaggregated configs serve 8k prompts without setting it (its default is 1024).
//! - SGLang's `--allow-auto-truncate` (the same `_validate_one_request`): an input of
//!   context_len or more is cut to its first context_len tokens, with a warning, and a total over
//!   the context gets `max_new_tokens` cut to the room left (0 after such a cut: the request
//!   answers no tokens, sgl-project/sglang#21136).

use disagg_proto::ApiError;

use crate::error::{Refusal, Shape};
use crate::{Dialect, SimArgs};

/// What a sim's requests must fit, from its flags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LengthLimits {
    /// The context length (`--max-model-len`).
    pub(crate) max_model_len: Option<u64>,
    /// TensorRT-LLM: the `max_num_tokens` its request check holds prompts to (`--max-num-tokens`
    /// in the trtllm dialect, unless `--enable-chunked-prefill`).
    pub(crate) max_num_tokens: Option<u64>,
    /// SGLang's `--allow-auto-truncate`.
    pub(crate) auto_truncate: bool,
    /// vLLM's `--max-logprobs` (`None`: its default, 20; -1: the vocabulary's size).
    pub(crate) max_logprobs: Option<i64>,
}

impl LengthLimits {
    pub(crate) fn of(args: &SimArgs) -> Self {
        let trtllm = args.dialect == Dialect::Trtllm;
        Self {
            max_model_len: args.max_model_len,
            max_num_tokens: args
                .timing
                .max_num_tokens
                .filter(|_| trtllm && !args.enable_chunked_prefill)
                .map(|n| n.get()),
            auto_truncate: args.allow_auto_truncate && args.dialect == Dialect::Sglang,
            max_logprobs: Some(args.max_logprobs),
        }
    }
}

/// What a request asks, as the length check sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    /// Prompt tokens.
    pub(crate) prompt: u64,
    /// The prompt came as text (the engine tokenized it), not as token ids.
    pub(crate) text: bool,
    /// `max_tokens` as the engine reads it: given, or the endpoint's default (16 on
    /// `/v1/completions` in all three); `None` on chat without one.
    pub(crate) max_tokens: Option<u64>,
    /// A generation-only request (its KV comes by hand-off): TensorRT-LLM does not hold its
    /// prompt to max_num_tokens.
    pub(crate) generation_only: bool,
}

/// What the engine makes of a request that fits (or was cut to fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Prompt tokens kept: all, unless SGLang auto-truncated the prompt.
    pub(crate) prompt: u64,
    /// Output tokens it may produce (0 only for an SGLang prompt truncated to the whole
    /// context).
    pub(crate) max_tokens: u64,
}

/// What a request may do under `l`, or the engine's refusal. `default` is what the sim
/// produces when the request names no `max_tokens` and there is no context length to run to.
pub(crate) fn fit(
    dialect: Dialect,
    l: LengthLimits,
    a: Asked,
    default: u64,
) -> Result<Fit, Refusal> {
    // TensorRT-LLM checks max_num_tokens (in the LLM API, as the request is submitted) before
    // its worker checks max_seq_len.
    if let Some(n) = l.max_num_tokens {
        if !a.generation_only && a.prompt > n {
            return Err(trtllm_max_num_tokens(n, a.prompt));
        }
    }
    let Some(limit) = l.max_model_len else {
        return Ok(Fit {
            prompt: a.prompt,
            max_tokens: a.max_tokens.unwrap_or(default),
        });
    };
    // A chat request without max_tokens generates up to the context's end (or EOS): vLLM's
    // `get_max_tokens` gives it max_model_len minus the prompt, TensorRT-LLM's
    // `_deduce_max_tokens` max_seq_len minus the prompt, and SGLang's scheduler
    // `max_req_len - input - 1` with `max_req_len = context_len - 1`.
    let wanted = a.max_tokens.unwrap_or(match dialect {
        Dialect::Sglang => limit.saturating_sub(a.prompt).saturating_sub(2),
        Dialect::Vllm | Dialect::Trtllm => limit.saturating_sub(a.prompt),
    });
    let mut prompt = a.prompt;
    match dialect {
        Dialect::Vllm => vllm(limit, a)?,
        Dialect::Sglang if l.auto_truncate => prompt = sglang_truncate(limit, a),
        Dialect::Sglang => sglang(limit, a)?,
        Dialect::Trtllm => {
            let room = limit.saturating_sub(a.prompt);
            if room == 0 {
                return Err(trtllm(limit, a.prompt));
            }
            // TensorRT-LLM cuts max_tokens down to the room left rather than refusing.
            if let Some(m) = a.max_tokens.filter(|&m| m > room) {
                say_err!(
                    "disagg-sim: max_tokens {m} is more than the {room} tokens max_seq_len \
                     {limit} leaves after a {}-token prompt; producing {room}, as TensorRT-LLM \
                     does",
                    a.prompt
                );
            }
        }
    }
    Ok(Fit {
        prompt,
        max_tokens: wanted.min(limit.saturating_sub(prompt)),
    })
}

fn vllm(limit: u64, a: Asked) -> Result<(), Refusal> {
    let out = a.max_tokens.unwrap_or(0);
    if a.prompt.saturating_add(out) > limit {
        let room = limit.saturating_sub(out);
        // A text prompt is tokenized only up to one token past the room: vLLM knows no more.
        let (n, at_least) = if a.text {
            (room + 1, "at least ")
        } else {
            (a.prompt, "")
        };
        return Err(Refusal::shaped(
            ApiError::new(
                400,
                "BadRequestError",
                format!(
                    "This model's maximum context length is {limit} tokens. However, you \
                     requested {out} output tokens and your prompt contains {at_least}{n} input \
                     tokens, for a total of {at_least}{} tokens. Please reduce the length of the \
                     input prompt or the number of requested output tokens. \
                     (parameter=input_tokens, value={n})",
                    n + out
                ),
            ),
            Shape::Envelope {
                param: Some("input_tokens"),
            },
        ));
    }
    if a.max_tokens.is_none() && a.prompt == limit {
        return Err(Refusal::shaped(
            ApiError::new(
                400,
                "BadRequestError",
                format!(
                    "The decoder prompt (length {limit}) plus the number of requested output \
                     tokens (at least 1) is longer than the maximum model length of {limit}. \
                     Make sure that `max_model_len` is no smaller than the number of text \
                     tokens (prompt + requested output tokens)."
                ),
            ),
            Shape::Envelope { param: None },
        ));
    }
    Ok(())
}

fn sglang(limit: u64, a: Asked) -> Result<(), Refusal> {
    let refuse = |message: String| {
        Refusal::shaped(ApiError::new(400, "BadRequestError", message), Shape::Flat)
    };
    if a.prompt >= limit {
        return Err(refuse(format!(
            "The input ({} tokens) is longer than the model's context length ({limit} tokens).",
            a.prompt
        )));
    }
    if let Some(m) = a.max_tokens.filter(|&m| a.prompt + m >= limit) {
        return Err(refuse(format!(
            "Requested token count exceeds the model's maximum context length of {limit} \
             tokens. You requested a total of {} tokens: {} tokens from the input messages and \
             {m} tokens for the completion. Please reduce the number of tokens in the input \
             messages or the completion to fit within the limit.",
            a.prompt + m,
            a.prompt
        )));
    }
    Ok(())
}

/// SGLang with `--allow-auto-truncate`: a prompt of the whole context or more is cut to the
/// context length (which leaves no room for output), and a total over the context gets its
/// max_new_tokens cut to the room left (`fit` does that), each with SGLang's warning.
fn sglang_truncate(limit: u64, a: Asked) -> u64 {
    let mut prompt = a.prompt;
    if prompt >= limit {
        say_err!(
            "disagg-sim: The input ({prompt} tokens) is longer than the model's context length \
             ({limit} tokens). Truncating the input."
        );
        prompt = limit;
    }
    if let Some(m) = a.max_tokens.filter(|&m| prompt + m >= limit) {
        say_err!(
            "disagg-sim: Requested token count ({prompt} input + {m} new) exceeds the model's \
             context length ({limit} tokens). Truncating max_new_tokens."
        );
    }
    prompt
}

/// TensorRT-LLM's PyTorch backend refuses a prompt longer than max_num_tokens unless chunked
/// prefill is on; the LLM API raises it as the request is submitted, so trtllm-serve answers
/// 400 even to a stream. The prompt length is printed as Python's float division by the
/// context-parallel size (1 here).
fn trtllm_max_num_tokens(limit: u64, prompt: u64) -> Refusal {
    Refusal::shaped(
        ApiError::new(
            400,
            "BadRequestError",
            format!(
                "The sum of prompt length ({prompt}.0), query length (0) should not exceed \
                 max_num_tokens ({limit})"
            ),
        ),
        Shape::Flat,
    )
}

fn trtllm(limit: u64, prompt: u64) -> Refusal {
    // Signed: TensorRT-LLM prints the negative room.
    let room = i128::from(limit) - i128::from(prompt);
    Refusal::shaped(
        ApiError::new(
            400,
            "BadRequestError",
            format!(
                "`default_max_tokens` ({room}) must be greater than 0, `default_max_tokens` \
                 ({room}) = max_seq_len ({limit}) - `splited_prompt_len` ({prompt}) - \
                 `query_token_len` (0)"
            ),
        ),
        Shape::Flat,
    )
}

/// `--max-model-len`: a token count, or nothing (`auto`).
pub(crate) fn parse_flag(s: &str) -> Result<u64, String> {
    disagg_proto::lengths::parse_count(s)?.ok_or_else(|| {
        format!("{s:?}: the sim cannot size a context to GPU memory; give a token count")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(prompt: u64, max_tokens: Option<u64>) -> Asked {
        Asked {
            prompt,
            text: false,
            max_tokens,
            generation_only: false,
        }
    }

    fn context(limit: u64) -> LengthLimits {
        LengthLimits {
            max_model_len: Some(limit),
            ..LengthLimits::default()
        }
    }

    fn refused(d: Dialect, limit: u64, a: Asked) -> (u16, serde_json::Value) {
        refused_by(d, context(limit), a)
    }

    fn refused_by(d: Dialect, l: LengthLimits, a: Asked) -> (u16, serde_json::Value) {
        let r = fit(d, l, a, 16).expect_err("does not fit");
        (r.api.status, r.body())
    }

    /// The output tokens a request that fits gets.
    fn served(d: Dialect, limit: u64, a: Asked) -> u64 {
        fit(d, context(limit), a, 16).expect("fits").max_tokens
    }

    #[test]
    fn vllm_refuses_prompt_plus_max_tokens_over_the_limit_with_its_words() {
        assert_eq!(served(Dialect::Vllm, 16, ids(10, Some(6))), 6);
        let (status, body) = refused(Dialect::Vllm, 16, ids(30, Some(4)));
        assert_eq!(status, 400);
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "message": "This model's maximum context length is 16 tokens. However, you \
                    requested 4 output tokens and your prompt contains 30 input tokens, for a \
                    total of 34 tokens. Please reduce the length of the input prompt or the \
                    number of requested output tokens. (parameter=input_tokens, value=30)",
                "type": "BadRequestError", "param": "input_tokens", "code": 400}})
        );
        // A text prompt: vLLM stops tokenizing one token past the room.
        let text = Asked {
            text: true,
            ..ids(30, Some(4))
        };
        let (_, body) = refused(Dialect::Vllm, 16, text);
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(
                "your prompt contains at least 13 input tokens, for a total of at least 17 tokens"
            ),
            "{msg}"
        );
    }

    #[test]
    fn vllm_without_max_tokens_refuses_a_prompt_that_fills_the_context() {
        let (status, body) = refused(Dialect::Vllm, 16, ids(16, None));
        assert_eq!(status, 400);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("The decoder prompt (length 16) plus the number of requested output tokens (at least 1) is longer than the maximum model length of 16."),
            "{body}"
        );
        let (_, body) = refused(Dialect::Vllm, 16, ids(17, None));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("you requested 0 output tokens"),
            "{body}"
        );
        // What it produces then: up to the context's end, not the sim's default of 16.
        assert_eq!(served(Dialect::Vllm, 16, ids(10, None)), 6);
        assert_eq!(served(Dialect::Vllm, 100, ids(10, None)), 90);
    }

    #[test]
    fn chat_without_max_tokens_runs_to_the_context_end_as_each_engine_counts_it() {
        assert_eq!(served(Dialect::Trtllm, 100, ids(10, None)), 90);
        // SGLang: max_req_len (context_len - 1) - input - 1.
        assert_eq!(served(Dialect::Sglang, 100, ids(10, None)), 88);
        // Without a context length the sim knows no end: its default.
        let none = LengthLimits::default();
        for d in [Dialect::Vllm, Dialect::Sglang, Dialect::Trtllm] {
            assert_eq!(fit(d, none, ids(10, None), 16).unwrap().max_tokens, 16);
        }
    }

    #[test]
    fn sglang_refuses_an_input_or_a_total_at_the_limit() {
        let (status, body) = refused(Dialect::Sglang, 16, ids(16, None));
        assert_eq!(status, 400);
        assert_eq!(
            body,
            // SGLang's flat `ErrorResponse`.
            serde_json::json!({"object": "error",
                "message": "The input (16 tokens) is longer than the model's context length (16 tokens).",
                "type": "BadRequestError", "param": null, "code": 400})
        );
        // A total equal to the context is refused too (`>=`).
        let (_, body) = refused(Dialect::Sglang, 16, ids(10, Some(6)));
        assert_eq!(
            body["message"],
            "Requested token count exceeds the model's maximum context length of 16 tokens. \
             You requested a total of 16 tokens: 10 tokens from the input messages and 6 \
             tokens for the completion. Please reduce the number of tokens in the input \
             messages or the completion to fit within the limit."
        );
        assert_eq!(served(Dialect::Sglang, 16, ids(10, Some(5))), 5);
    }

    #[test]
    fn trtllm_refuses_a_prompt_without_room_and_cuts_max_tokens_to_the_room() {
        let (status, body) = refused(Dialect::Trtllm, 16, ids(30, Some(4)));
        assert_eq!(status, 400);
        assert_eq!(
            body,
            serde_json::json!({"object": "error",
                "message": "`default_max_tokens` (-14) must be greater than 0, \
                    `default_max_tokens` (-14) = max_seq_len (16) - `splited_prompt_len` (30) \
                    - `query_token_len` (0)",
                "type": "BadRequestError", "param": null, "code": 400})
        );
        refused(Dialect::Trtllm, 16, ids(16, Some(1)));
        assert_eq!(served(Dialect::Trtllm, 16, ids(10, Some(100))), 6);
        assert_eq!(served(Dialect::Trtllm, 16, ids(15, Some(1))), 1);
    }

    #[test]
    fn the_sim_needs_a_count_not_auto() {
        assert_eq!(parse_flag("8K"), Ok(8192));
        assert!(
            parse_flag("auto")
                .unwrap_err()
                .contains("give a token count")
        );
    }

    #[test]
    fn trtllm_refuses_a_prompt_over_max_num_tokens_but_not_on_the_generation_leg() {
        let l = LengthLimits {
            max_num_tokens: Some(16),
            ..LengthLimits::default()
        };
        let (status, body) = refused_by(Dialect::Trtllm, l, ids(17, Some(4)));
        assert_eq!(status, 400);
        assert_eq!(
            body,
            serde_json::json!({"object": "error",
                "message": "The sum of prompt length (17.0), query length (0) should not \
                    exceed max_num_tokens (16)",
                "type": "BadRequestError", "param": null, "code": 400})
        );
        // A prompt of exactly max_num_tokens is taken.
        assert_eq!(
            fit(Dialect::Trtllm, l, ids(16, Some(4)), 16)
                .unwrap()
                .max_tokens,
            4
        );
        // Generation-only requests bring their KV: TensorRT-LLM skips the check for them.
        let handed = Asked {
            generation_only: true,
            ..ids(300, Some(4))
        };
        assert_eq!(fit(Dialect::Trtllm, l, handed, 16).unwrap().max_tokens, 4);
        // Checked before max_seq_len, as the LLM API checks it before its worker does.
        let both = LengthLimits {
            max_model_len: Some(20),
            ..l
        };
        let (_, body) = refused_by(Dialect::Trtllm, both, ids(30, Some(4)));
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("max_num_tokens (16)"),
            "{body}"
        );
    }

    #[test]
    fn sglang_auto_truncate_cuts_the_prompt_then_the_output_instead_of_refusing() {
        let l = LengthLimits {
            auto_truncate: true,
            ..context(16)
        };
        let f = |a| fit(Dialect::Sglang, l, a, 16).expect("truncated, not refused");
        // The prompt is cut to the whole context, which leaves no room for output.
        assert_eq!(
            f(ids(30, Some(4))),
            Fit {
                prompt: 16,
                max_tokens: 0
            }
        );
        assert_eq!(
            f(ids(16, None)),
            Fit {
                prompt: 16,
                max_tokens: 0
            }
        );
        // A total over the context: max_new_tokens cut to the room left.
        assert_eq!(
            f(ids(10, Some(10))),
            Fit {
                prompt: 10,
                max_tokens: 6
            }
        );
        assert_eq!(
            f(ids(10, Some(6))),
            Fit {
                prompt: 10,
                max_tokens: 6
            }
        );
    }
}
