//! Readiness: /health follows --startup-delay and --never-ready.

use std::time::{Duration, Instant};

use crate::support::start;

/// Polls /health until 200, returning when it turned.
async fn wait_healthy(sim: &crate::support::Sim, limit: Duration) -> Instant {
    let give_up = Instant::now() + limit;
    loop {
        let (status, _) = sim.get("/health").await;
        if status == 200 {
            return Instant::now();
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < give_up, "/health never became 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_is_503_during_startup_delay_then_200() {
    let started = Instant::now();
    let sim = start(&["--startup-delay", "1s"]).await;
    let (status, body) = sim.get("/health").await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON 503");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("starting up")
    );
    let healthy_at = wait_healthy(&sim, Duration::from_secs(20)).await;
    assert!(healthy_at - started >= Duration::from_secs(1));
}

/// A real engine takes no connection while it loads: before /health says 200, the sim serves
/// no work either, so a router that skips the health gate fails here as it would there.
#[tokio::test]
async fn no_work_is_served_before_ready() {
    for dialect in ["vllm", "sglang", "trtllm"] {
        let sim = start(&["--dialect", dialect, "--never-ready"]).await;
        let body = serde_json::json!({"prompt": [1, 2], "max_tokens": 2});
        let (status, answer) = sim.complete(&body).await;
        assert_eq!(status, 503, "{dialect}: {answer}");
        let msg = crate::support::error_message(&answer);
        assert!(msg.contains("wait for GET /health"), "{dialect}: {msg}");
        assert_eq!(sim.get("/v1/models").await.0, 503, "{dialect}");
        // What a client polls to learn readiness still answers.
        assert_eq!(sim.get("/health").await.0, 503, "{dialect}");
        assert_eq!(sim.get("/version").await.0, 200, "{dialect}");
    }
}

#[tokio::test]
async fn health_is_200_at_once_without_delay() {
    let sim = start(&[]).await;
    assert_eq!(sim.get("/health").await.0, 200);
}

#[tokio::test]
async fn never_ready_stays_503() {
    let sim = start(&["--never-ready"]).await;
    for _ in 0..3 {
        let (status, body) = sim.get("/health").await;
        assert_eq!(status, 503);
        assert!(String::from_utf8_lossy(&body).contains("never-ready"));
    }
}

#[tokio::test]
async fn models_and_version_describe_the_sim() {
    let sim = start(&["--model", "llama-sim"]).await;
    let (status, body) = sim.get("/v1/models").await;
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "llama-sim");
    let (status, body) = sim.get("/version").await;
    assert_eq!(status, 200);
    let version: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(version["version"].is_string());
}

/// vLLM's and SGLang's model cards carry the model path (`root`) and the context
/// (`max_model_len`), which clients read to size requests; TensorRT-LLM's carries neither.
#[tokio::test]
async fn model_cards_carry_root_and_max_model_len_as_each_engine_does() {
    for (dialect, root, parent) in [
        ("vllm", true, true),
        ("sglang", true, false),
        ("trtllm", false, false),
    ] {
        let sim = start(&[
            "--dialect",
            dialect,
            "--model",
            "m",
            "--model-path",
            "org/M",
            "--max-model-len",
            "4k",
        ])
        .await;
        let (_, body) = sim.get("/v1/models").await;
        let card = &serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")["data"][0];
        assert_eq!(card["id"], "m", "{dialect}");
        assert_eq!(card.get("root").is_some(), root, "{dialect}: {card}");
        if root {
            assert_eq!(card["root"], "org/M", "{dialect}");
            assert_eq!(card["max_model_len"], 4000, "{dialect}");
        }
        assert_eq!(card.get("parent").is_some(), parent, "{dialect}: {card}");
    }
}

#[tokio::test]
async fn the_request_log_has_one_line_per_request_with_its_body() {
    let dir_tmp = tempfile::tempdir().unwrap();
    let dir = dir_tmp.path().to_path_buf();
    let path = dir.join("requests.jsonl");
    let _ = std::fs::remove_file(&path);
    let path_str = path.to_str().expect("UTF-8 path");
    let sim = start(&[
        "--request-log",
        path_str,
        "--dialect",
        "vllm",
        "--itl",
        "1ms",
    ])
    .await;
    let body = serde_json::json!({"model": "", "prompt": [1, 2], "max_tokens": 1});
    let (status, _) = sim.complete_as("rid-7", &body).await;
    assert_eq!(status, 200);
    let (status, _) = sim.post_raw("/v1/completions", "{broken").await;
    assert_eq!(status, 400);
    let text = std::fs::read_to_string(&path).expect("log written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["body"], body);
    assert_eq!(lines[0]["x_request_id"], "rid-7");
    assert_eq!(lines[1]["body"], "{broken");

    let (_, v) = sim.get("/version").await;
    let v: serde_json::Value = serde_json::from_slice(&v).expect("JSON");
    assert_eq!(v["dialect"], "vllm");
}
