//! The batched timing model: above capacity, requests queue and TTFT grows as the model says.

use std::time::Duration;

use serde_json::json;

use crate::support::{metric, start, try_parse_args, with_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_grows_in_steps_of_one_batch_lifetime_above_capacity() {
    // 4 slots; each request lives ≥ 1 ms prefill + 9 decode steps of 10 ms ≈ 91 ms. Twelve at
    // once: the model says the k-th wave of four starts after k lifetimes.
    let sim = start(&[
        "--preset",
        "batched",
        "--max-batch-size",
        "4",
        "--itl",
        "10ms",
        "--prefill-per-token",
        "100us",
    ])
    .await;
    let req = json!({"prompt": (0..10).collect::<Vec<u32>>(), "max_tokens": 10, "stream": true});
    let runs = (0..12).map(|_| async {
        let (sent, events) = sim.stream(&req).await;
        assert_eq!(events.len(), 11);
        events[0].at - sent
    });
    let mut ttft = futures_util::future::join_all(runs).await;
    ttft.sort();
    let lifetime = Duration::from_millis(91);
    for (wave, group) in ttft.chunks(4).enumerate() {
        let floor = lifetime * wave as u32;
        // Lower bounds are exact (steps never end early); upper bounds are loose for a busy CI.
        let ceiling = floor + Duration::from_millis(400);
        for t in group {
            assert!(*t >= floor && *t < ceiling, "wave {wave}: {ttft:?}");
        }
    }
    let text = sim.metrics().await;
    assert_eq!(metric(&text, "sim_requests_total{outcome=\"ok\"}"), 12.0);
    assert_eq!(metric(&text, "sim_queue_depth"), 0.0);
    assert_eq!(metric(&text, "sim_running_requests"), 0.0);
    // Three waves of ten steps each; mixed steps count as prefill steps.
    let prefill_steps = metric(&text, "sim_prefill_step_seconds_count");
    let steps = prefill_steps + metric(&text, "sim_decode_step_seconds_count");
    assert!(prefill_steps >= 3.0 && steps >= 30.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h100_preset_prices_a_long_prefill_as_measured() {
    // 4096 tokens: measured 106.6 ms on the H100; the fit gives 102.4 ms.
    let sim = start(&["--preset", "h100-llama8b-eager"]).await;
    let req = json!({"prompt": (0..4096).collect::<Vec<u32>>(), "max_tokens": 1, "stream": true});
    let (sent, events) = sim.stream(&req).await;
    let ttft = events[0].at - sent;
    assert!(ttft >= Duration::from_millis(102), "{ttft:?}");
    assert!(ttft < Duration::from_millis(1500), "{ttft:?}");
}

#[tokio::test]
async fn oversize_requests_are_refused_and_batched_flags_need_a_batched_preset() {
    let sim = start(&["--preset", "batched", "--kv-capacity-tokens", "100"]).await;
    let (status, body) = sim
        .complete(&json!({"prompt": (0..50).collect::<Vec<u32>>(), "max_tokens": 60}))
        .await;
    assert_eq!(status, 400, "{body}");

    let args = try_parse_args(&["--max-batch-size", "4"]).expect("parses");
    let err = disagg_sim::SimState::new(&args, disagg_sim::ExitHook::new(|| ()))
        .expect_err("simple preset has no batch");
    assert!(err.to_string().contains("--preset batched"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_queue_and_the_running_batch_while_full() {
    // One slot, a 2 s request in it: a second request has to wait.
    let sim = start(&[
        "--preset",
        "batched",
        "--max-batch-size",
        "1",
        "--itl",
        "100ms",
    ])
    .await;
    let long = json!({"prompt": [1], "max_tokens": 20});
    let first = tokio::spawn({
        let (client, url) = (sim.client.clone(), sim.url("/v1/completions"));
        let body = long.clone();
        async move {
            client
                .post(url)
                .json(&with_model(&body))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let second = tokio::spawn({
        let (client, url) = (sim.client.clone(), sim.url("/v1/completions"));
        async move {
            client
                .post(url)
                .json(&with_model(&long))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    // Poll until both are in: one running, one queued (bounded; each scrape is cheap).
    let mut seen = String::new();
    for _ in 0..200 {
        seen = sim.metrics().await;
        if metric(&seen, "sim_queue_depth") == 1.0 && metric(&seen, "sim_running_requests") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(metric(&seen, "sim_queue_depth"), 1.0, "{seen}");
    assert_eq!(metric(&seen, "sim_running_requests"), 1.0, "{seen}");
    assert_eq!(metric(&seen, "sim_kv_used_tokens"), 21.0, "{seen}");
    drop((first, second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_sim_keeps_prompt_kv_until_the_hand_off_is_fetched() {
    // 25 KV tokens: two 10-token prompts fit, a third waits until one hand-off is fetched.
    let ctx = start(&[
        "--role",
        "context",
        "--preset",
        "batched",
        "--kv-capacity-tokens",
        "25",
        "--itl",
        "1ms",
    ])
    .await;
    let gen_sim = start(&["--role", "generation", "--itl", "1ms"]).await;
    let ctx_req = json!({"prompt": (0..10).collect::<Vec<u32>>(), "disaggregated_params": {"request_type": "context_only"}});
    let (_, first) = ctx.complete(&ctx_req).await;
    let (_, _second) = ctx.complete(&ctx_req).await;
    // The answer can reach us a moment before the step's end frees the generated token's
    // reserve (11 → 10 per prompt): wait for the gauge rather than read it once.
    ctx.until_metric("sim_kv_used_tokens", 20.0).await;

    let third = tokio::spawn({
        let (client, url, body) = (
            ctx.client.clone(),
            ctx.url("/v1/completions"),
            ctx_req.clone(),
        );
        async move {
            client
                .post(url)
                .json(&with_model(&body))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // The third prefill waits for KV.
    ctx.until_metric("sim_queue_depth", 1.0).await;

    let mut params = first["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    let (status, body) = gen_sim
        .complete(&json!({"prompt": first["prompt_token_ids"], "max_tokens": 2, "disaggregated_params": params}))
        .await;
    assert_eq!(status, 200, "{body}");
    let third = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the fetch freed KV for the third prefill")
        .expect("joined")
        .expect("answered");
    assert_eq!(third, 200);
    ctx.until_metric("sim_kv_used_tokens", 20.0).await;
}

/// A whole (not streamed) answer's client leaving before it is ready is counted as cancelled,
/// as a stream's is: it was counted as nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_whose_client_leaves_is_counted_cancelled() {
    let sim = start(&["--itl", "50ms"]).await;
    let long = json!({"prompt": [1], "max_tokens": 40});
    let gone = tokio::time::timeout(
        Duration::from_millis(300),
        sim.client
            .post(sim.url("/v1/completions"))
            .json(&with_model(&long))
            .send(),
    )
    .await;
    assert!(gone.is_err(), "the 2 s answer came within 300 ms");
    let mut seen = String::new();
    for _ in 0..400 {
        seen = sim.metrics().await;
        if metric(&seen, "sim_requests_total{outcome=\"cancelled\"}") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        metric(&seen, "sim_requests_total{outcome=\"cancelled\"}"),
        1.0,
        "{seen}"
    );
    assert_eq!(metric(&seen, "sim_requests_total{outcome=\"ok\"}"), 0.0);
}
