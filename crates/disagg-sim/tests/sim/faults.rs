//! Every scripted fault, checked by its observable effect.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc::error::TryRecvError;

use crate::support::{error_message, metric, start, with_model};

#[tokio::test]
async fn fail_after_requests_fires_the_exit_hook_after_the_nth() {
    let mut sim = start(&["--fail-after-requests", "3", "--itl", "1ms"]).await;
    let req = json!({"prompt": [1, 2, 3], "max_tokens": 2});

    // A rejected request is not "served".
    let (status, _) = sim.complete(&json!({"prompt": 5})).await;
    assert_eq!(status, 400);

    for _ in 0..2 {
        let (status, body) = sim.complete(&req).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(sim.exits.try_recv(), Err(TryRecvError::Empty));

    // The third is streamed: it counts once its last frame is handed over.
    let (_, events) = sim
        .stream(&json!({"prompt": [1, 2, 3], "max_tokens": 2, "stream": true}))
        .await;
    assert_eq!(events.len(), 3);
    tokio::time::timeout(Duration::from_secs(10), sim.exits.recv())
        .await
        .expect("exit hook fired")
        .expect("hook channel open");
    assert_eq!(sim.exits.try_recv(), Err(TryRecvError::Empty), "fires once");
}

#[tokio::test]
async fn hang_after_requests_stops_answering_but_keeps_the_socket() {
    let sim = start(&["--hang-after-requests", "1", "--itl", "1ms"]).await;
    let (status, _) = sim.complete(&json!({"prompt": [1], "max_tokens": 1})).await;
    assert_eq!(status, 200);
    for (method, path) in [("POST", "/v1/completions"), ("GET", "/health")] {
        let req = match method {
            "POST" => sim
                .client
                .post(sim.url(path))
                .json(&with_model(&json!({"prompt": [1], "max_tokens": 1}))),
            _ => sim.client.get(sim.url(path)),
        };
        let err = req
            .timeout(Duration::from_millis(300))
            .send()
            .await
            .expect_err("a hung sim does not answer");
        // Timed out, not refused or reset: the socket is open, nobody answers.
        assert!(err.is_timeout(), "{path}: {err:?}");
    }
}

#[tokio::test]
async fn stall_after_requests_leaves_completions_unanswered_but_health_answering() {
    let sim = start(&["--stall-after-requests", "1", "--itl", "1ms"]).await;
    let req = json!({"prompt": [1], "max_tokens": 1});
    let (status, _) = sim.complete(&req).await;
    assert_eq!(status, 200);
    let err = sim
        .client
        .post(sim.url("/v1/completions"))
        .json(&with_model(&req))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("a stalled sim does not answer completions");
    assert!(err.is_timeout(), "{err:?}");
    let (status, _) = sim.get("/health").await;
    assert_eq!(status, 200, "/health still answers");
}

#[tokio::test]
async fn error_on_request_fails_exactly_the_nth() {
    let sim = start(&["--error-on-request", "2", "--itl", "1ms"]).await;
    let req = json!({"prompt": [1], "max_tokens": 1});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, body) = sim.complete(&req).await;
        if status == 500 {
            assert!(
                error_message(&body).contains("--error-on-request 2"),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 500, 200]);
    let text = sim.metrics().await;
    assert_eq!(metric(&text, "sim_requests_total{outcome=\"failed\"}"), 1.0);
}

#[tokio::test]
async fn drop_stream_cuts_the_connection_mid_stream() {
    let sim = start(&[
        "--drop-stream-on-request",
        "1",
        "--drop-after-tokens",
        "2",
        // The cut comes when token 3 would have: one ITL after token 2. At 1 ms a loaded
        // machine sometimes had not flushed token 2 by then (8 failures in 30 runs); 25 ms
        // leaves hyper ample time, so the test checks the cut, not the scheduler.
        "--itl",
        "25ms",
    ])
    .await;
    let req = json!({"prompt": [1], "max_tokens": 5, "stream": true});
    let (events, cut) = sim.stream_until_cut(&req).await;
    assert!(
        cut.is_some(),
        "the stream must end in an error, got {events:?}"
    );
    assert_eq!(events.len(), 2, "two token chunks, then the cut");
    // The next request is whole.
    let (events, cut) = sim.stream_until_cut(&req).await;
    assert!(cut.is_none() && events.len() == 6, "{cut:?} {events:?}");
    let text = sim.metrics().await;
    assert_eq!(
        metric(&text, "sim_requests_total{outcome=\"dropped\"}"),
        1.0
    );
}

async fn hand_off(
    gen_flags: &[&str],
) -> (crate::support::Sim, crate::support::Sim, serde_json::Value) {
    let ctx = start(&["--role", "context", "--itl", "1ms"]).await;
    let mut f = vec!["--role", "generation", "--itl", "1ms"];
    f.extend_from_slice(gen_flags);
    let generation = start(&f).await;
    let (status, c) = ctx
        .complete(
            &json!({"prompt": [3, 4], "disaggregated_params": {"request_type": "context_only"}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut params = c["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    let req =
        json!({"prompt": [3, 4], "max_tokens": 2, "stream": true, "disaggregated_params": params});
    (ctx, generation, req)
}

#[tokio::test]
async fn kv_transfer_fail_on_fails_that_hand_off() {
    let (_ctx, generation, req) = hand_off(&["--kv-transfer-fail-on", "1"]).await;
    let (status, body) = generation.complete(&req).await;
    assert_eq!(status, 500, "{body}");
    assert!(error_message(&body).contains("KV transfer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_transfer_delay_makes_the_hand_off_slow() {
    let (_ctx, generation, req) = hand_off(&["--kv-transfer-delay", "300ms"]).await;
    let (sent, events) = generation.stream(&req).await;
    let ttft = events[0].at - sent;
    assert!(ttft >= Duration::from_millis(300), "{ttft:?}");
    assert!(ttft < Duration::from_secs(3), "{ttft:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_freezes_requests_already_in_flight() {
    let sim = start(&["--hang-after-requests", "1", "--itl", "100ms"]).await;
    // Slow one in flight (10 tokens ≈ 0.9 s) while a quick one trips the hang.
    let slow = sim
        .client
        .post(sim.url("/v1/completions"))
        .json(&with_model(&json!({"prompt": [1], "max_tokens": 10})))
        .timeout(Duration::from_secs(3))
        .send();
    let quick_body = json!({"prompt": [2], "max_tokens": 1});
    let quick = async {
        // The slow one is in flight (the simple preset counts it as running) before this goes.
        sim.until_metric("sim_running_requests", 1.0).await;
        sim.complete(&quick_body).await
    };
    let (slow, (status, _)) = tokio::join!(slow, quick);
    assert_eq!(status, 200, "the request that trips the hang is answered");
    let err = slow.expect_err("the in-flight request never completes");
    assert!(err.is_timeout(), "{err:?}");
}
