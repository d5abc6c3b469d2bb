//! Bad input gets an OpenAI error body, never a panic or an empty reply.

use serde_json::json;

use crate::support::{error_message, start};

#[tokio::test]
async fn malformed_or_mistyped_bodies_are_400_with_an_error_body() {
    let sim = start(&[]).await;
    for (body, needle) in [
        ("{not json", "invalid completions request body"),
        ("", "invalid completions request body"),
        ("[1,2]", "invalid completions request body"),
        (
            r#"{"model":"m","prompt":"a","max_tokens":"many"}"#,
            "invalid type",
        ),
        (
            r#"{"model":"m","prompt":"a","stream":"yes"}"#,
            "invalid type",
        ),
        (
            r#"{"model":"m","prompt":"a","disaggregated_params":{"request_type":"sideways"}}"#,
            "unknown variant",
        ),
        (r#"{"model":"m","prompt":["one","two"]}"#, "batched prompts"),
        (r#"{"model":"m","prompt":[1.5]}"#, "integers"),
        // More choices than the sim gives are refused, not answered with fewer.
        (
            r#"{"model":"m","prompt":"a","n":2}"#,
            "the sim answers one choice per prompt",
        ),
        (
            r#"{"model":"m","prompt":"a","n":0}"#,
            "n must be at least 1",
        ),
    ] {
        let (status, reply) = sim.post_raw("/v1/completions", body).await;
        assert_eq!(status, 400, "{body} -> {reply}");
        let msg = error_message(&reply);
        assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
    }
}

#[tokio::test]
async fn unknown_routes_and_bad_chat_have_error_bodies() {
    let sim = start(&[]).await;
    let (status, body) = sim.get("/nope").await;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON 404");
    assert!(error_message(&body).contains("/nope"));

    let (status, body) = sim
        .post_raw("/v1/chat/completions", &json!({}).to_string())
        .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("messages"), "{body}");

    let (status, body) = sim.get("/v1/completions").await;
    assert_eq!(status, 405);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON 405");
    error_message(&body);
}

/// Counts written as integral floats are taken, as the engines' pydantic models take them;
/// a fraction or a negative is refused.
#[tokio::test]
async fn counts_as_integral_floats_are_taken_and_fractions_refused() {
    let sim = start(&[]).await;
    let (status, reply) = sim
        .complete(&json!({"prompt": "a", "max_tokens": 2.0, "ignore_eos": true}))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["usage"]["completion_tokens"], 2, "{reply}");
    for bad in [json!(2.5), json!(-1)] {
        let (status, reply) = sim
            .complete(&json!({"prompt": "a", "max_tokens": bad}))
            .await;
        assert_eq!(status, 400, "{bad}: {reply}");
    }
}
