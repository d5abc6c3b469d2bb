//! The TensorRT-LLM hand-off: context_only, then generation_only, equals aggregated.

use disagg_proto::sse::Event;
use serde_json::{Value, json};

use crate::support::{Sim, error_message, start};

const FAST: &[&str] = &["--itl", "1ms", "--prefill-per-token", "10us"];

fn flags(role: &str) -> Vec<&str> {
    let mut f = vec!["--role", role, "--model", "sim-7b"];
    f.extend_from_slice(FAST);
    f
}

async fn context(sim: &Sim, prompt: Value) -> Value {
    let (status, body) = sim
        .complete(&json!({
            "model": "sim-7b", "prompt": prompt, "max_tokens": 8, "stream": true,
            "disaggregated_params": {"request_type": "context_only"},
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The generation request a TensorRT-LLM router builds from a context response.
fn generation_request(ctx: &Value, max_tokens: u64, stream: bool) -> Value {
    let mut params = ctx["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    let mut body = json!({
        "model": "sim-7b",
        "prompt": ctx["prompt_token_ids"],
        "max_tokens": max_tokens,
        "stream": stream,
        "disaggregated_params": params,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[tokio::test]
async fn context_only_answers_with_token_zero_and_the_hand_off() {
    let sim = start(&flags("context")).await;
    let mut body = context(&sim, json!([11, 22, 33])).await;

    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(body["created"].is_u64());
    let params = body["choices"][0]["disaggregated_params"].clone();
    let first = params["first_gen_tokens"][0]
        .as_u64()
        .expect("first_gen_tokens[0]");
    assert!(params["ctx_request_id"].is_u64(), "{body}");
    let text = body["choices"][0]["text"].clone();
    assert_eq!(text, json!(format!(" t{first}")));

    let obj = body.as_object_mut().expect("object");
    obj.remove("id");
    obj.remove("created");
    body["choices"][0]["disaggregated_params"]["ctx_request_id"] = json!(0);
    // The context sim's address for the KV fetch, opaque to the router.
    assert!(params["encoded_opaque_state"].is_string(), "{body}");
    body["choices"][0]["disaggregated_params"]["encoded_opaque_state"] = json!("state");
    assert_eq!(
        body,
        json!({
            "object": "text_completion",
            "model": "sim-7b",
            "choices": [{
                "index": 0,
                "text": text,
                "finish_reason": "length",
                "disaggregated_params": {
                    "request_type": "context_only",
                    "first_gen_tokens": [first],
                    "ctx_request_id": 0,
                    "encoded_opaque_state": "state",
                    "draft_tokens": null,
                },
            }],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            "prompt_token_ids": [11, 22, 33],
        })
    );
}

#[tokio::test]
async fn ctx_request_ids_are_unique() {
    let sim = start(&flags("context")).await;
    let a = context(&sim, json!([1])).await;
    let b = context(&sim, json!([1])).await;
    let id = |v: &Value| v["choices"][0]["disaggregated_params"]["ctx_request_id"].clone();
    assert_ne!(id(&a), id(&b));
}

#[tokio::test]
async fn generation_only_streams_max_tokens_starting_with_the_context_token() {
    let ctx_sim = start(&flags("context")).await;
    let gen_sim = start(&flags("generation")).await;
    let ctx = context(&ctx_sim, json!("the quick brown fox")).await;
    assert_eq!(ctx["prompt_token_ids"].as_array().map(Vec::len), Some(4));

    let (_, events) = gen_sim.stream(&generation_request(&ctx, 6, true)).await;
    let n = events.len();
    assert_eq!(
        n,
        6 + 2,
        "6 token chunks, a usage chunk, [DONE]: {events:?}"
    );
    assert_eq!(events[n - 1].event, Event::Done);

    let tokens: Vec<Value> = events[..6].iter().map(|a| a.json()).collect();
    assert_eq!(tokens[0]["choices"][0]["text"], ctx["choices"][0]["text"]);
    for (i, chunk) in tokens.iter().enumerate() {
        assert_eq!(chunk["object"], "text_completion");
        assert_eq!(chunk["model"], "sim-7b");
        assert_eq!(chunk["choices"][0]["index"], 0);
        let want = if i == 5 { json!("length") } else { Value::Null };
        assert_eq!(chunk["choices"][0]["finish_reason"], want, "chunk {i}");
    }
    let usage = events[6].json();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10})
    );
}

#[tokio::test]
async fn aggregated_output_equals_context_plus_generation() {
    let both = start(&flags("both")).await;
    let prompt = json!("a b c d e f g");

    let (status, agg) = both
        .complete(
            &json!({"prompt": prompt, "max_tokens": 12, "ignore_eos": true, "min_tokens": 12}),
        )
        .await;
    assert_eq!(status, 200, "{agg}");
    assert_eq!(agg["choices"][0]["finish_reason"], "length");
    assert_eq!(
        agg["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 12, "total_tokens": 19})
    );
    let agg_text = agg["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_string();
    assert_eq!(agg_text.split_whitespace().count(), 12);

    // The same sim in role `both` also serves both halves.
    let ctx = context(&both, prompt.clone()).await;
    let (status, generated) = both.complete(&generation_request(&ctx, 12, false)).await;
    assert_eq!(status, 200, "{generated}");
    assert_eq!(generated["choices"][0]["text"], json!(agg_text));
    assert_eq!(generated["usage"], agg["usage"]);

    // Streamed aggregated output is the same text, chunk by chunk.
    let (_, events) = both
        .stream(&json!({"prompt": prompt, "max_tokens": 12, "stream": true}))
        .await;
    let streamed: String = events
        .iter()
        .filter(|a| a.event != Event::Done)
        .map(|a| {
            a.json()["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(streamed, agg_text);
    assert_eq!(events.len(), 12 + 1, "no usage chunk unless asked");
}

#[tokio::test]
async fn a_hand_off_for_another_prompt_is_refused() {
    let sim = start(&flags("both")).await;
    let ctx = context(&sim, json!([5, 6, 7])).await;
    let mut req = generation_request(&ctx, 4, false);
    req["prompt"] = json!([5, 6, 8]);
    let (status, body) = sim.complete(&req).await;
    assert_eq!(status, 400);
    let msg = error_message(&body);
    assert!(
        msg.contains("first_gen_tokens does not match the prompt"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_hand_off_fields_are_named() {
    let sim = start(&flags("generation")).await;
    for (missing, params) in [
        (
            "first_gen_tokens",
            json!({"request_type": "generation_only", "ctx_request_id": 3}),
        ),
        (
            "ctx_request_id",
            json!({"request_type": "generation_only", "first_gen_tokens": [1]}),
        ),
    ] {
        let (status, body) = sim
            .complete(&json!({"prompt": [1, 2], "disaggregated_params": params}))
            .await;
        assert_eq!(status, 400, "{body}");
        let msg = error_message(&body);
        assert!(msg.contains(missing), "{msg:?} should name {missing}");
    }
}

#[tokio::test]
async fn roles_refuse_the_other_half() {
    let ctx = start(&flags("context")).await;
    let (status, body) = ctx.complete(&json!({"prompt": "hello"})).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).contains("--role generation or both"),
        "{body}"
    );

    let generation = start(&flags("generation")).await;
    let (status, body) = generation
        .complete(
            &json!({"prompt": "hello", "disaggregated_params": {"request_type": "context_only"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("context_only"), "{body}");
}

#[tokio::test]
async fn a_scripted_eos_ends_both_paths_alike_unless_ignored() {
    let eos = |role| {
        let mut f = flags(role);
        f.extend(["--eos-at", "4"]);
        f
    };
    let (both, ctx_sim, gen_sim) = (
        start(&eos("both")).await,
        start(&eos("context")).await,
        start(&eos("generation")).await,
    );
    let prompt = json!([3, 1, 4, 1, 5]);
    let (_, agg) = both
        .complete(&json!({"prompt": prompt, "max_tokens": 10}))
        .await;
    assert_eq!(agg["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        agg["usage"]["completion_tokens"], 5,
        "EOS counts as a token"
    );
    let text = agg["choices"][0]["text"].as_str().expect("text");
    assert_eq!(text.split_whitespace().count(), 4, "EOS renders as nothing");

    let ctx = context(&ctx_sim, prompt.clone()).await;
    let (_, events) = gen_sim.stream(&generation_request(&ctx, 10, true)).await;
    assert_eq!(events.len(), 5 + 2, "5 tokens, usage, [DONE]");
    assert_eq!(events[4].json()["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[5].json()["usage"], agg["usage"]);
    let streamed: String = events[..5]
        .iter()
        .map(|a| {
            a.json()["choices"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(streamed, text);

    let (_, ignored) = both
        .complete(&json!({"prompt": prompt, "max_tokens": 10, "ignore_eos": true}))
        .await;
    assert_eq!(ignored["choices"][0]["finish_reason"], "length");
    assert_eq!(ignored["usage"]["completion_tokens"], 10);
}
