//! `--max-model-len`: a request that does not fit the context is refused (or, in TensorRT-LLM,
//! cut) as the dialect's engine does, with its status and body, on whichever leg checks it.
//! The upstream sources of each rule are cited in `src/context_len.rs`.

use serde_json::{Value, json};

use crate::support::{metric, start};
use crate::through_router::router;

const DIALECTS: &[&str] = &["trtllm", "vllm", "sglang"];

/// 30 token ids: more than a 16-token context holds.
fn long_prompt() -> Value {
    json!((1..=30).collect::<Vec<u32>>())
}

#[tokio::test]
async fn a_prompt_over_the_limit_gets_each_engines_400_and_body() {
    let want: &[(&str, Value)] = &[
        (
            "vllm",
            json!({"error": {
                "message": "This model's maximum context length is 16 tokens. However, you \
                    requested 4 output tokens and your prompt contains 30 input tokens, for a \
                    total of 34 tokens. Please reduce the length of the input prompt or the \
                    number of requested output tokens. (parameter=input_tokens, value=30)",
                "type": "BadRequestError", "param": "input_tokens", "code": 400}}),
        ),
        (
            "sglang",
            json!({"error": {
                "message": "The input (30 tokens) is longer than the model's context length \
                    (16 tokens).",
                "type": "BadRequestError", "param": null, "code": 400}}),
        ),
        (
            "trtllm",
            json!({"object": "error",
                "message": "`default_max_tokens` (-14) must be greater than 0, \
                    `default_max_tokens` (-14) = max_seq_len (16) - `splited_prompt_len` (30) \
                    - `query_token_len` (0)",
                "type": "BadRequestError", "param": null, "code": 400}),
        ),
    ];
    for (dialect, body) in want {
        let sim = start(&[
            "--dialect",
            dialect,
            "--max-model-len",
            "16",
            "--itl",
            "1ms",
        ])
        .await;
        for stream in [false, true] {
            let (status, reply) = sim
                .complete(&json!({"prompt": long_prompt(), "max_tokens": 4, "stream": stream}))
                .await;
            assert_eq!(status, 400, "{dialect} stream={stream}: {reply}");
            assert_eq!(&reply, body, "{dialect} stream={stream}");
        }
        let (status, reply) = sim
            .complete(&json!({"prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "max_tokens": 6}))
            .await;
        assert_eq!(status, 200, "{dialect}: a request that fits: {reply}");
        assert_eq!(reply["usage"]["completion_tokens"], 6, "{dialect}");
        let text = sim.metrics().await;
        assert_eq!(
            metric(&text, "sim_requests_total{outcome=\"rejected\"}"),
            2.0,
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn without_a_limit_any_length_is_served() {
    for dialect in DIALECTS {
        let sim = start(&["--dialect", dialect, "--itl", "1ms"]).await;
        let (status, reply) = sim
            .complete(&json!({"prompt": long_prompt(), "max_tokens": 4}))
            .await;
        assert_eq!(status, 200, "{dialect}: {reply}");
    }
}

/// Prompt 10 + max_tokens 10 in a 16-token context, through the router: vLLM's prefill leg
/// (max_tokens 1) fits and its decode leg refuses; SGLang's legs both get the client's body and
/// refuse; TensorRT-LLM serves, cut to the 6 tokens left.
#[tokio::test]
async fn each_leg_checks_what_its_engine_checks() {
    for dialect in DIALECTS {
        let flags = |role| {
            vec![
                "--dialect",
                dialect,
                "--role",
                role,
                "--itl",
                "1ms",
                "--max-model-len",
                "16",
            ]
        };
        let ctx = start(&flags("context")).await;
        let generation = start(&flags("generation")).await;
        let (via_router, task) = router(dialect, &ctx, &generation).await;
        let req = json!({"prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "max_tokens": 10});
        let (status, reply) = via_router.complete(&req).await;
        let rejected = |text: &str| metric(text, "sim_requests_total{outcome=\"rejected\"}");
        let (ctx_m, gen_m) = (ctx.metrics().await, generation.metrics().await);
        match *dialect {
            "vllm" => {
                assert_eq!(status, 400, "{reply}");
                let msg = reply["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    msg.contains("This model's maximum context length is 16 tokens")
                        && msg.contains("requested 10 output tokens"),
                    "the decode leg's refusal reaches the client: {msg}"
                );
                assert_eq!(rejected(&ctx_m), 0.0, "prefill (max_tokens 1) fits");
                assert_eq!(rejected(&gen_m), 1.0, "decode refuses");
            }
            "sglang" => {
                assert_eq!(status, 400, "{reply}");
                let msg = reply["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    msg.contains("Requested token count exceeds the model's maximum context length of 16 tokens"),
                    "{msg}"
                );
                assert_eq!(rejected(&ctx_m), 1.0, "prefill checks the whole request");
            }
            _ => {
                assert_eq!(status, 200, "{reply}");
                assert_eq!(reply["usage"]["completion_tokens"], 6, "{reply}");
                assert_eq!(reply["choices"][0]["finish_reason"], "length", "{reply}");
            }
        }
        task.abort();
    }
}
