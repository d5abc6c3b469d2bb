//! The TensorRT-LLM KV hand-off is real: the generation sim fetches the record from the context
//! sim, so a router that drops, mangles or mixes up the params fails the request.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Sim, error_message, metric, start};

async fn sim(role: &str, extra: &[&str]) -> Sim {
    let mut f = vec![
        "--itl",
        "1ms",
        "--prefill-per-token",
        "10us",
        "--role",
        role,
    ];
    f.extend_from_slice(extra);
    start(&f).await
}

async fn context(sim: &Sim, prompt: Value) -> Value {
    let (status, body) = sim
        .complete(
            &json!({"prompt": prompt, "disaggregated_params": {"request_type": "context_only"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn generation(ctx: &Value) -> Value {
    let mut params = ctx["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    json!({"prompt": ctx["prompt_token_ids"], "max_tokens": 3, "disaggregated_params": params})
}

#[tokio::test]
async fn a_router_that_drops_or_mangles_the_opaque_state_is_caught() {
    let (ctx_sim, gen_sim) = (sim("context", &[]).await, sim("generation", &[]).await);
    let ctx = context(&ctx_sim, json!([1, 2, 3])).await;

    let mut dropped = generation(&ctx);
    dropped["disaggregated_params"]["encoded_opaque_state"] = Value::Null;
    let (status, body) = gen_sim.complete(&dropped).await;
    assert_eq!(status, 400);
    assert!(
        error_message(&body).contains("encoded_opaque_state"),
        "{body}"
    );

    let mut mangled = generation(&ctx);
    mangled["disaggregated_params"]["encoded_opaque_state"] = json!("bm90IG91cnM=");
    let (status, body) = gen_sim.complete(&mangled).await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("unusable"), "{body}");

    // The record is still there for the correct request.
    let (status, body) = gen_sim.complete(&generation(&ctx)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn swapped_ctx_request_ids_and_reuse_are_caught_by_the_record() {
    let (ctx_sim, gen_sim) = (sim("context", &[]).await, sim("generation", &[]).await);
    let a = context(&ctx_sim, json!([1, 2, 3])).await;
    let b = context(&ctx_sim, json!([4, 5, 6])).await;
    // B's prompt and first token (so the local check passes) with A's ctx_request_id.
    let mut swapped = generation(&b);
    swapped["disaggregated_params"]["ctx_request_id"] =
        a["choices"][0]["disaggregated_params"]["ctx_request_id"].clone();
    let (status, body) = gen_sim.complete(&swapped).await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("prompt differs"), "{body}");

    let (status, body) = gen_sim.complete(&generation(&b)).await;
    assert_eq!(status, 200, "{body}");
    // A KV cache that cannot be loaded is the server's failure, as a real engine's is (500),
    // not the request's.
    let (status, body) = gen_sim.complete(&generation(&b)).await;
    assert_eq!(status, 500, "a record is used once: {body}");
    assert!(error_message(&body).contains("holds no record"), "{body}");
}

#[tokio::test]
async fn unfetched_records_expire_and_are_counted() {
    let ctx_sim = sim("context", &["--kv-ttl", "100ms"]).await;
    let gen_sim = sim("generation", &[]).await;
    let ctx = context(&ctx_sim, json!([7, 8])).await;
    assert_eq!(metric(&ctx_sim.metrics().await, "sim_kv_records"), 1.0);
    // Expiry is swept at every scrape: wait for it there, not for a length of time.
    ctx_sim
        .until_metric("sim_kv_records_expired_total", 1.0)
        .await;
    let (status, body) = gen_sim.complete(&generation(&ctx)).await;
    assert_eq!(status, 500, "{body}");
    assert!(error_message(&body).contains("expired"), "{body}");
    let text = ctx_sim.metrics().await;
    assert_eq!(metric(&text, "sim_kv_records_expired_total"), 1.0);
    assert_eq!(metric(&text, "sim_kv_records"), 0.0);
    assert_eq!(
        metric(&gen_sim.metrics().await, "sim_kv_fetches_failed_total"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transfer_takes_kv_bytes_over_bandwidth() {
    // 200 tokens × 1 MB at 1 GB/s = 200 ms before token 0.
    let kv = ["--kv-bytes-per-token", "1000000", "--kv-bandwidth-gbs", "1"];
    let (ctx_sim, gen_sim) = (sim("context", &kv).await, sim("generation", &kv).await);
    let ctx = context(&ctx_sim, json!((0..200).collect::<Vec<u32>>())).await;
    let mut req = generation(&ctx);
    req["stream"] = json!(true);
    let (sent, events) = gen_sim.stream(&req).await;
    let ttft = events[0].at - sent;
    assert!(ttft >= Duration::from_millis(200), "ttft {ttft:?}");
    assert!(ttft < Duration::from_secs(3), "ttft {ttft:?}");
}
