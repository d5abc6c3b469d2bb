//! What only the TensorRT-LLM dialect has: the speculative-decoding figure its server reports.

use disagg_proto::sse::Event;
use serde_json::json;

use crate::support::{start, try_parse_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_choice_reports_the_decoded_tokens_per_iteration() {
    let sim = start(&["--itl", "1ms", "--decoded-tokens-per-iter", "2.5"]).await;
    let (_, events) = sim
        .stream(&json!({"prompt": [1, 2, 3], "max_tokens": 4, "stream": true}))
        .await;
    let chunks: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.event, Event::Data(_)))
        .filter(|e| {
            e.json()["choices"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        })
        .collect();
    assert_eq!(chunks.len(), 4);
    for c in chunks {
        assert_eq!(c.json()["choices"][0]["avg_decoded_tokens_per_iter"], 2.5);
    }
    let (status, whole) = sim
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 4}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(whole["choices"][0]["avg_decoded_tokens_per_iter"], 2.5);

    // Without the flag the field is absent, as from a server without speculative decoding.
    let plain = start(&["--itl", "1ms"]).await;
    let (_, whole) = plain
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 2}))
        .await;
    assert!(
        whole["choices"][0]
            .get("avg_decoded_tokens_per_iter")
            .is_none()
    );
}

#[test]
fn the_figure_is_the_trtllm_dialects_and_at_least_one() {
    assert!(try_parse_args(&["--decoded-tokens-per-iter", "0.5"]).is_err());
    let argv: Vec<String> = [
        "disagg",
        "sim",
        "--dialect",
        "vllm",
        "--decoded-tokens-per-iter",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let why = disagg_sim::check_argv(&argv).unwrap_err();
    assert!(why.contains("avg_decoded_tokens_per_iter"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_protected_hand_offs_must_be_signed_or_get_401() {
    let sim = start(&["--role", "generation", "--internal-request-auth-key", "k1"]).await;
    let body = json!({"prompt": [1, 2, 3], "max_tokens": 2, "disaggregated_params": {
        "request_type": "generation_only", "first_gen_tokens": [1], "ctx_request_id": 1,
        "encoded_opaque_state": "bm90LWEtcGVlcg=="}});
    let params = body["disaggregated_params"].as_object().unwrap().clone();
    let post = |sig: Option<String>| {
        let mut req = sim.client.post(sim.url("/v1/completions")).json(&body);
        if let Some(sig) = sig {
            req = req.header(disagg_proto::auth::HEADER, sig);
        }
        req.send()
    };
    for sig in [None, disagg_proto::auth::signature("another key", &params)] {
        let resp = post(sig).await.unwrap();
        assert_eq!(resp.status(), 401);
        let text = resp.text().await.unwrap();
        assert!(text.contains("internal_request_auth_key"), "{text}");
    }
    // Signed with the key, the request gets past the check (and fails on its made-up state).
    let resp = post(disagg_proto::auth::signature("k1", &params))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "{}", resp.text().await.unwrap());
    // Nothing protected, nothing to sign.
    let (status, _) = sim
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 2}))
        .await;
    assert_ne!(status, 401);
}
