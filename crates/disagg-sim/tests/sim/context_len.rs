//! `--max-model-len`: a request that does not fit the context is refused (or, in TensorRT-LLM,
//! cut) as the dialect's engine does, with its status and body, on whichever leg checks it.
//! The upstream sources of each rule are cited in `src/context_len.rs`.

use serde_json::{Value, json};

use crate::support::{error_message, metric, start};
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
            // SGLang's flat `ErrorResponse` (`create_error_response`).
            json!({"object": "error",
                "message": "The input (30 tokens) is longer than the model's context length \
                    (16 tokens).",
                "type": "BadRequestError", "param": null, "code": 400}),
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
            let ask = json!({"prompt": long_prompt(), "max_tokens": 4, "stream": stream});
            if *dialect == "sglang" && stream {
                // SGLang checks the length once the stream has begun: HTTP 200, the refusal its
                // one event (`{"error": <the flat body>}`), then [DONE].
                let (events, cut) = sim.stream_until_cut(&ask).await;
                assert!(cut.is_none(), "{cut:?}");
                assert_eq!(events.len(), 2, "the error, then [DONE]");
                assert_eq!(events[0].json(), json!({"error": body}), "{dialect} stream");
                assert!(matches!(events[1].event, disagg_proto::sse::Event::Done));
                continue;
            }
            let (status, reply) = sim.complete(&ask).await;
            assert_eq!(status, 400, "{dialect} stream={stream}: {reply}");
            assert_eq!(&reply, body, "{dialect} stream={stream}");
        }
        // 10 + 6 fills the context: vLLM and TensorRT-LLM serve it, SGLang (`>=`) needs one
        // token to spare.
        let fits = if *dialect == "sglang" { 5 } else { 6 };
        let (status, reply) = sim
            .complete(&json!({"prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "max_tokens": fits}))
            .await;
        assert_eq!(status, 200, "{dialect}: a request that fits: {reply}");
        assert_eq!(reply["usage"]["completion_tokens"], fits, "{dialect}");
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
                // SGLang's legs go out together, and once decode has refused the router may
                // drop the prefill leg before prefill sees it: prefill must not serve it, and
                // asked directly (with the bootstrap fields the router adds) it refuses too.
                let ok = |text: &str| metric(text, "sim_requests_total{outcome=\"ok\"}");
                assert_eq!(ok(&ctx_m), 0.0, "prefill did not serve it");
                let mut direct = req.clone();
                direct["bootstrap_host"] = json!("127.0.0.1");
                direct["bootstrap_room"] = json!(7);
                let (status, reply) = ctx.complete(&direct).await;
                assert_eq!(status, 400, "prefill checks the whole request: {reply}");
                assert_eq!(ok(&ctx.metrics().await), 0.0);
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

/// TensorRT-LLM's PyTorch backend holds a prompt to max_num_tokens unless chunked prefill is
/// on; the body is trtllm-serve's for the LLM API's ValueError.
#[tokio::test]
async fn trtllm_refuses_a_prompt_over_max_num_tokens_unless_chunked_prefill() {
    let want = json!({"object": "error",
        "message": "The sum of prompt length (30.0), query length (0) should not exceed \
            max_num_tokens (16)",
        "type": "BadRequestError", "param": null, "code": 400});
    // Any preset: under `simple` the flag is the request check alone.
    for preset in ["simple", "batched"] {
        let sim = start(&[
            "--dialect",
            "trtllm",
            "--preset",
            preset,
            "--max-num-tokens",
            "16",
            "--itl",
            "1ms",
        ])
        .await;
        for stream in [false, true] {
            let (status, reply) = sim
                .complete(&json!({"prompt": long_prompt(), "max_tokens": 4, "stream": stream}))
                .await;
            assert_eq!(status, 400, "{preset} stream={stream}: {reply}");
            assert_eq!(reply, want, "{preset} stream={stream}");
        }
        let (status, reply) = sim
            .complete(&json!({"prompt": (1..=16).collect::<Vec<u32>>(), "max_tokens": 4}))
            .await;
        assert_eq!(
            status, 200,
            "{preset}: 16 tokens are not more than 16: {reply}"
        );
        let chunked = start(&[
            "--dialect",
            "trtllm",
            "--preset",
            preset,
            "--max-num-tokens",
            "16",
            "--enable-chunked-prefill",
            "--itl",
            "1ms",
        ])
        .await;
        let (status, reply) = chunked
            .complete(&json!({"prompt": long_prompt(), "max_tokens": 4}))
            .await;
        assert_eq!(status, 200, "{preset}, chunked prefill: {reply}");
        assert_eq!(reply["usage"]["completion_tokens"], 4);
    }
}

/// As in TensorRT-LLM's own disaggregated configs (a generation server's max_num_tokens far
/// below the prompt length): the generation-only leg is not held to it, the context leg is.
#[tokio::test]
async fn trtllm_holds_only_the_context_leg_to_max_num_tokens() {
    let flags = |role, n| {
        vec![
            "--dialect",
            "trtllm",
            "--role",
            role,
            "--itl",
            "1ms",
            "--max-num-tokens",
            n,
        ]
    };
    let ctx = start(&flags("context", "32")).await;
    let generation = start(&flags("generation", "4")).await;
    let (via_router, task) = router("trtllm", &ctx, &generation).await;
    let (status, reply) = via_router
        .complete(&json!({"prompt": long_prompt(), "max_tokens": 3}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 3, "{reply}");
    let (status, reply) = via_router
        .complete(&json!({"prompt": (1..=40).collect::<Vec<u32>>(), "max_tokens": 3}))
        .await;
    assert_eq!(status, 400, "the context leg refuses 40 > 32: {reply}");
    assert!(
        error_message(&reply).contains("should not exceed max_num_tokens (32)"),
        "{reply}"
    );
    task.abort();
}

/// SGLang with --allow-auto-truncate: a prompt over the context is cut to the context and
/// answered with no tokens (its max_new_tokens cut to the 0 left); a total over the context
/// gets its output cut to the room left. Without the flag both are refused (above).
#[tokio::test]
async fn sglang_auto_truncate_answers_instead_of_refusing() {
    let sim = start(&[
        "--dialect",
        "sglang",
        "--max-model-len",
        "16",
        "--allow-auto-truncate",
        "--itl",
        "1ms",
    ])
    .await;
    let (status, reply) = sim
        .complete(&json!({"prompt": long_prompt(), "max_tokens": 4}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["usage"]["prompt_tokens"], 16, "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 0, "{reply}");
    assert_eq!(reply["choices"][0]["text"], "", "{reply}");
    assert_eq!(reply["choices"][0]["finish_reason"], "length", "{reply}");
    // Streamed: one empty chunk that finishes, then [DONE].
    let (_, events) = sim
        .stream(&json!({"prompt": long_prompt(), "max_tokens": 4, "stream": true}))
        .await;
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| matches!(e.event, disagg_proto::sse::Event::Data(_)))
        .map(|e| e.json())
        .collect();
    assert_eq!(chunks.len(), 1, "{chunks:?}");
    assert_eq!(chunks[0]["choices"][0]["text"], "", "{chunks:?}");
    assert_eq!(
        chunks[0]["choices"][0]["finish_reason"], "length",
        "{chunks:?}"
    );
    assert!(
        matches!(
            events.last().map(|e| &e.event),
            Some(disagg_proto::sse::Event::Done)
        ),
        "{events:?}"
    );
    // Native /generate: the same, in SGLang's shape.
    let (status, reply) = sim
        .post_raw(
            "/generate",
            &json!({"input_ids": long_prompt(), "sampling_params": {"max_new_tokens": 4}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["meta_info"]["prompt_tokens"], 16, "{reply}");
    assert_eq!(reply["meta_info"]["completion_tokens"], 0, "{reply}");
    assert_eq!(
        reply["meta_info"]["finish_reason"]["type"], "length",
        "{reply}"
    );
    // Prompt 10 + 10 in a context of 16: the output is cut to 6.
    let (status, reply) = sim
        .complete(&json!({"prompt": (1..=10).collect::<Vec<u32>>(), "max_tokens": 10}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 6, "{reply}");
    let text = sim.metrics().await;
    assert_eq!(
        metric(&text, "sim_requests_total{outcome=\"rejected\"}"),
        0.0
    );
    // Disaggregated: both legs get the client's body and truncate alike.
    let flags = |role| {
        vec![
            "--dialect",
            "sglang",
            "--role",
            role,
            "--itl",
            "1ms",
            "--max-model-len",
            "16",
            "--allow-auto-truncate",
        ]
    };
    let ctx = start(&flags("context")).await;
    let generation = start(&flags("generation")).await;
    let (via_router, task) = router("sglang", &ctx, &generation).await;
    for stream in [false, true] {
        let req = json!({"prompt": long_prompt(), "max_tokens": 4, "stream": stream});
        if stream {
            let (_, events) = via_router.stream(&req).await;
            assert!(!events.is_empty());
        } else {
            let (status, reply) = via_router.complete(&req).await;
            assert_eq!(status, 200, "{reply}");
            assert_eq!(reply["usage"]["completion_tokens"], 0, "{reply}");
        }
    }
    task.abort();
}

#[test]
fn the_length_switches_are_their_engines_own() {
    for (dialect, flag, why) in [
        ("vllm", "--enable-chunked-prefill", "max_num_tokens"),
        ("sglang", "--enable-chunked-prefill", "max_num_tokens"),
        ("trtllm", "--allow-auto-truncate", "SGLang's"),
        ("vllm", "--allow-auto-truncate", "SGLang's"),
    ] {
        let argv: Vec<String> = ["disagg", "sim", "--dialect", dialect, flag]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = disagg_sim::check_argv(&argv).unwrap_err();
        assert!(e.contains(flag) && e.contains(why), "{dialect} {flag}: {e}");
    }
    // --max-num-tokens under the simple preset: the request check in TensorRT-LLM's dialect,
    // meaningless (and refused) in the others.
    let argv = |dialect: &str| -> Vec<String> {
        [
            "disagg",
            "sim",
            "--dialect",
            dialect,
            "--max-num-tokens",
            "64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    disagg_sim::check_argv(&argv("trtllm")).expect("trtllm takes it");
    let e = disagg_sim::check_argv(&argv("vllm")).unwrap_err();
    assert!(e.contains("--preset batched"), "{e}");
}
