//! What only the TensorRT-LLM dialect has: the speculative-decoding figure its server reports,
//! the signed hand-off, and the `disagg_request_id` of the version played.

use disagg_proto::sse::Event;
use serde_json::json;

use crate::support::{error_message, start, try_parse_args, with_model};

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
        let mut req = sim
            .client
            .post(sim.url("/v1/completions"))
            .json(&with_model(&body));
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

const ID: u64 = (1 << 40) + 12_345;

/// A context_only body carrying `disagg_request_id` `id`, as TensorRT-LLM 1.3's server sends.
fn context_with_id(id: u64) -> serde_json::Value {
    json!({"prompt": [5, 6, 7], "max_tokens": 4, "disaggregated_params":
           {"request_type": "context_only", "disagg_request_id": id}})
}

/// The generation request a router builds from a context answer.
fn generation_from(ctx: &serde_json::Value) -> serde_json::Value {
    let mut params = ctx["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    json!({"prompt": ctx["prompt_token_ids"], "max_tokens": 4, "disaggregated_params": params})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_worker_takes_the_disagg_request_id_and_keys_the_hand_off_on_it() {
    let ctx = start(&["--role", "context", "--itl", "1ms"]).await;
    let generation = start(&["--role", "generation", "--itl", "1ms"]).await;
    let (_, v) = ctx.get("/version").await;
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(v["tensorrt_llm"], "1.3.0", "{v}");

    let (status, answer) = ctx.complete(&context_with_id(ID)).await;
    assert_eq!(status, 200, "{answer}");
    let params = &answer["choices"][0]["disaggregated_params"];
    assert_eq!(params["disagg_request_id"], ID, "echoed: {params}");
    assert_eq!(
        params["ctx_request_id"], ID,
        "the request's id is the given one"
    );

    // The same id while its hand-off is pending: refused, as it would collide on the worker.
    let (status, again) = ctx.complete(&context_with_id(ID)).await;
    assert_eq!(status, 400, "{again}");
    assert!(
        error_message(&again).contains("disagg_request_id"),
        "{again}"
    );

    // A generation request under another id finds no KV: the transfer is keyed on the id.
    let mut wrong = generation_from(&answer);
    wrong["disaggregated_params"]["disagg_request_id"] = json!(ID + 1);
    let (status, body) = generation.complete(&wrong).await;
    assert_ne!(status, 200, "{body}");
    assert!(
        error_message(&body).contains(&format!("disagg_request_id {}", ID + 1)),
        "{body}"
    );

    let (status, done) = generation.complete(&generation_from(&answer)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["usage"]["completion_tokens"], 4);

    // Without an id, the worker uses its own, as before.
    let (status, plain) = ctx
        .complete(&json!({"prompt": [5, 6, 7], "max_tokens": 4,
                          "disaggregated_params": {"request_type": "context_only"}}))
        .await;
    assert_eq!(status, 200);
    let params = &plain["choices"][0]["disaggregated_params"];
    assert!(params.get("disagg_request_id").is_none(), "{params}");
    assert!(params["ctx_request_id"].as_u64().unwrap() < 1 << 40);
    let (status, _) = generation.complete(&generation_from(&plain)).await;
    assert_eq!(status, 200);

    // The newest disaggregated server's context leg: `schedule_style` and a null
    // `conversation_id` (from the session) on every request; it used to be refused as extra.
    let (status, newest) = ctx
        .complete(&json!({"prompt": [5, 6, 7], "max_tokens": 4,
                          "disaggregated_params": {"request_type": "context_only",
                            "disagg_request_id": ID + 7, "schedule_style": 0,
                            "conversation_id": null, "context_control_endpoint": null}}))
        .await;
    assert_eq!(status, 200, "{newest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_worker_refuses_fields_its_request_model_lacks() {
    let ctx = start(&[
        "--role",
        "context",
        "--itl",
        "1ms",
        "--trtllm-version",
        "1.0.0",
    ])
    .await;
    let (_, v) = ctx.get("/version").await;
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(v["tensorrt_llm"], "1.0.0", "{v}");
    let (status, body) = ctx.complete(&context_with_id(ID)).await;
    assert_eq!(status, 400, "{body}");
    // In TensorRT-LLM's own shape: flat, `BadRequestError`.
    assert_eq!(
        (&body["object"], &body["type"], &body["code"]),
        (&json!("error"), &json!("BadRequestError"), &json!(400)),
        "{body}"
    );
    let msg = error_message(&body);
    assert!(
        msg.contains("disaggregated_params.disagg_request_id")
            && msg.contains("Extra inputs are not permitted"),
        "{msg}"
    );
    let (status, answer) = ctx
        .complete(&json!({"prompt": [5, 6, 7], "max_tokens": 4,
                          "disaggregated_params": {"request_type": "context_only"}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["choices"][0]["disaggregated_params"]
            .get("disagg_request_id")
            .is_none()
    );
}

#[test]
fn the_played_version_is_the_trtllm_dialects_and_must_parse() {
    assert!(try_parse_args(&["--trtllm-version", "latest"]).is_err());
    assert!(try_parse_args(&["--trtllm-version", "1.3.0rc5"]).is_ok());
    let argv: Vec<String> = [
        "disagg",
        "sim",
        "--dialect",
        "vllm",
        "--trtllm-version",
        "1.0.0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let why = disagg_sim::check_argv(&argv).unwrap_err();
    assert!(why.contains("--trtllm-version"), "{why}");
}

/// TensorRT-LLM's PyTorch backend before 1.3 refuses every context-only request of a server
/// that runs the overlap scheduler (its default); 1.3 (the sim's default) serves them.
#[tokio::test]
async fn a_context_server_with_the_overlap_scheduler_refuses_context_only_requests() {
    let sim = start(&[
        "--itl",
        "1ms",
        "--role",
        "context",
        "--overlap-scheduler",
        "--trtllm-version",
        "1.2.0",
    ])
    .await;
    let context = json!({
        "prompt": [1, 2, 3],
        "max_tokens": 1,
        "disaggregated_params": {"request_type": "context_only"},
    });
    let (status, body) = sim.complete(&context).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains(
            "Context only requests are not supported in pytorch backend when overlap is enabled"
        ),
        "{body}"
    );
    let without = start(&["--itl", "1ms", "--role", "context"]).await;
    let (status, body) = without.complete(&context).await;
    assert_eq!(status, 200, "{body}");
    // TensorRT-LLM's 2026 perf configs run their context servers under it.
    let newer = start(&["--itl", "1ms", "--role", "context", "--overlap-scheduler"]).await;
    let (status, body) = newer.complete(&context).await;
    assert_eq!(status, 200, "1.3 serves context-only under overlap: {body}");
}
