//! The router end to end over loopback HTTP, against fake context and generation workers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use disagg_proto::ApiError;
use disagg_proto::trtllm::ServerConfig;
use disagg_router::{DisaggRequestIds, Policy, RouterConfig};
use serde_json::{Value, json};
use support::{CHUNK_1, CHUNK_REST, Ctx, Gen, config, fake, router};
use tokio::sync::{Notify, oneshot};

/// Guards every await on the router so a regression fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

async fn post(url: &str, path: &str, body: Value) -> reqwest::Response {
    post_raw(url, path, serde_json::to_vec(&body).unwrap()).await
}

async fn post_raw(url: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    let req = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send();
    tokio::time::timeout(LIMIT, req).await.unwrap().unwrap()
}

async fn json_of(resp: reqwest::Response) -> Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// Asserts an OpenAI error body with this status, and returns its message.
async fn api_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body = resp.bytes().await.unwrap();
    let err = ApiError::from_body(status, &body)
        .unwrap_or_else(|| panic!("not an OpenAI error body: {body:?}"));
    err.message
}

fn completion(stream: bool) -> Value {
    let mut v = json!({"model": "m", "prompt": "hello", "max_tokens": 4, "stream": stream});
    // Only with `stream: true`: the router refuses it otherwise, as the engines do.
    if stream {
        v["stream_options"] = json!({"include_usage": true});
    }
    v
}

#[tokio::test]
async fn completion_goes_context_only_then_generation_only() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;

    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200);
    let body = json_of(resp).await;
    assert_eq!(
        body["id"], "gen-1",
        "the generation worker's answer is relayed"
    );

    let ctx_bodies = ctx.bodies();
    assert_eq!(ctx_bodies.len(), 1);
    let c = &ctx_bodies[0];
    assert_eq!(c["disaggregated_params"]["request_type"], "context_only");
    assert_eq!(c["stream"], false);
    assert!(c.get("stream_options").is_none(), "{c}");
    assert_eq!(c["prompt"], "hello");
    assert_eq!(c["max_tokens"], 4);

    let gen_bodies = generation.bodies();
    assert_eq!(gen_bodies.len(), 1);
    let g = &gen_bodies[0];
    let p = &g["disaggregated_params"];
    assert_eq!(p["request_type"], "generation_only");
    assert_eq!(p["first_gen_tokens"], json!([7]));
    assert_eq!(p["ctx_request_id"], 42);
    assert_eq!(p["encoded_opaque_state"], "b3BhcXVl");
    assert_eq!(p["ctx_dp_rank"], 0, "newer fields are forwarded too");
    assert!(
        c["disaggregated_params"].get("disagg_request_id").is_none(),
        "a worker of unknown version gets no disagg_request_id: {c}"
    );
    assert_eq!(
        g["prompt"],
        json!([1, 2, 3]),
        "prompt = context's prompt_token_ids"
    );
    assert_eq!(g["stream"], false);
    // Nothing to forward: a client that does not stream may not send stream_options.
    assert!(g.get("stream_options").is_none(), "{g}");
}

#[tokio::test]
async fn chat_sets_prompt_token_ids_and_keeps_messages() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;

    let req =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let resp = post(&url, "/v1/chat/completions", req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert_eq!(
        text,
        format!("{CHUNK_1}{CHUNK_REST}"),
        "relayed byte for byte"
    );

    let g = &generation.bodies()[0];
    assert_eq!(g["prompt_token_ids"], json!([1, 2, 3]));
    assert_eq!(g["messages"][0]["content"], "hi");
    assert_eq!(g["stream"], true);
    assert_eq!(g["disaggregated_params"]["request_type"], "generation_only");
    assert_eq!(ctx.bodies()[0]["stream"], false);
}

#[tokio::test]
async fn streaming_is_relayed_chunk_by_chunk() {
    let release = Arc::new(Notify::new());
    let (dropped_tx, _dropped_rx) = oneshot::channel();
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Gated {
            release: release.clone(),
            dropped: Arc::new(Mutex::new(Some(dropped_tx))),
        })
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;

    let mut resp = post(&url, "/v1/completions", completion(true)).await;
    assert_eq!(resp.status(), 200);
    // The worker holds the rest back until released, so chunk 1 alone must reach us first; a
    // buffering router would time out here.
    let first = tokio::time::timeout(LIMIT, resp.chunk())
        .await
        .expect("chunk 1 arrives before the rest is sent")
        .unwrap()
        .unwrap();
    assert_eq!(first, CHUNK_1.as_bytes());
    release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = tokio::time::timeout(LIMIT, resp.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, CHUNK_REST.as_bytes());
    // Relayed to its end: no client gone.
    assert_eq!(metric(&url, "disagg_router_clients_gone_total").await, 0.0);
}

#[tokio::test]
async fn client_hang_up_cancels_the_generation_leg() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped: Arc::new(Mutex::new(Some(dropped_tx))),
        })
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;

    let mut resp = post(&url, "/v1/completions", completion(true)).await;
    let first = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), CHUNK_1.as_bytes());
    drop(resp);
    tokio::time::timeout(LIMIT, dropped_rx)
        .await
        .expect("the worker's stream is dropped once the client hangs up")
        .unwrap();
    // Counted as a client gone (it was a 200, and no stream cut of the worker's).
    support::eventually(LIMIT, "a client gone counted", || async {
        metric(&url, "disagg_router_clients_gone_total").await == 1.0
    })
    .await;
    assert_eq!(metric(&url, "disagg_router_streams_cut_total").await, 0.0);

    // A client that leaves before any answer (its timeout, during the generation leg) too.
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let hung = fake("hung")
        .generation(Gen::HangSignal(Arc::new(Mutex::new(Some(dropped_tx)))))
        .start()
        .await;
    let url = router(config(&[&ctx], &[&hung])).await;
    let gave_up = reqwest::Client::new()
        .post(format!("{url}/v1/completions"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&completion(false)).unwrap())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err());
    tokio::time::timeout(LIMIT, dropped_rx)
        .await
        .expect("the generation leg is cancelled once the client hangs up")
        .unwrap();
    support::eventually(LIMIT, "a client gone counted", || async {
        metric(&url, "disagg_router_clients_gone_total").await == 1.0
    })
    .await;

    // A client that leaves in the middle of its request body: a client gone too, not a 400
    // (it was counted as a bad request of its own).
    {
        use tokio::io::AsyncWriteExt;
        let addr = url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "POST /v1/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: \
                 application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\": "
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        s.shutdown().await.unwrap();
        drop(s);
    }
    support::eventually(LIMIT, "a client gone mid-body counted", || async {
        metric(&url, "disagg_router_clients_gone_total").await == 2.0
    })
    .await;
    let text = metrics_text(&url).await;
    assert!(!text.contains("status=\"400\""), "{text}");
}

/// `url`'s `/metrics`.
async fn metrics_text(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of an unlabelled metric on `url`'s `/metrics`.
async fn metric(url: &str, name: &str) -> f64 {
    let text = metrics_text(url).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn round_robin_alternates_context_workers() {
    let a = fake("a").start().await;
    let b = fake("b").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&a, &b], &[&generation])).await;
    let mut order = Vec::new();
    for _ in 0..4 {
        let (before_a, before_b) = (a.bodies().len(), b.bodies().len());
        let resp = post(&url, "/v1/completions", completion(false)).await;
        assert_eq!(resp.status(), 200);
        order.push(
            match (a.bodies().len() - before_a, b.bodies().len() - before_b) {
                (1, 0) => "a",
                (0, 1) => "b",
                other => panic!("one context worker per request, got {other:?}"),
            },
        );
    }
    assert_eq!(order, ["a", "b", "a", "b"]);
    assert_eq!(generation.bodies().len(), 4);
}

#[tokio::test]
async fn context_response_without_params_is_a_502_naming_the_worker() {
    let ctx = fake("ctx").ctx(Ctx::NoParams).start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let msg = api_error(post(&url, "/v1/completions", completion(false)).await, 502).await;
    assert!(msg.contains(&ctx.url), "{msg}");
    assert!(msg.contains("context"), "{msg}");
    assert!(msg.contains("disaggregated_params"), "{msg}");
    assert!(generation.bodies().is_empty());
}

#[tokio::test]
async fn context_4xx_keeps_its_status_and_skips_generation() {
    let ctx = fake("ctx").ctx(Ctx::Reject).start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let msg = api_error(post(&url, "/v1/completions", completion(false)).await, 422).await;
    assert!(
        msg.contains("prompt too long") && msg.contains("context"),
        "{msg}"
    );
    assert!(generation.bodies().is_empty());
    // Not the worker's failure, but not invisible either: /workers counts the refusal apart
    // and keeps its account.
    let census: serde_json::Value = reqwest::get(format!("{url}/workers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let w = &census["prefill"]["workers"][0];
    assert_eq!(w["errors"], 0, "{census}");
    assert_eq!(w["rejections"], 1, "{census}");
    assert!(
        w["last_rejection"]
            .as_str()
            .is_some_and(|e| e.contains("prompt too long")),
        "{census}"
    );
}

#[tokio::test]
async fn context_worker_refusing_connections_is_a_502() {
    let dead = support::refused_url().await;
    let generation = fake("gen").start().await;
    let url = router(support::config_urls(
        vec![dead.clone()],
        vec![generation.url.clone()],
    ))
    .await;
    let msg = api_error(post(&url, "/v1/completions", completion(false)).await, 502).await;
    assert!(msg.contains(&dead) && msg.contains("context"), "{msg}");
}

#[tokio::test]
async fn generation_500_is_a_502_naming_generation() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;
    for stream in [false, true] {
        let resp = post(&url, "/v1/completions", completion(stream)).await;
        let msg = api_error(resp, 502).await;
        assert!(msg.contains(&generation.url), "{msg}");
        assert!(msg.contains("generation"), "{msg}");
        assert!(
            msg.contains("gen says no"),
            "the worker's own reason is quoted: {msg}"
        );
    }
}

#[tokio::test]
async fn generation_4xx_keeps_its_status() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Status(StatusCode::BAD_REQUEST))
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let msg = api_error(post(&url, "/v1/completions", completion(false)).await, 400).await;
    assert!(msg.contains("gen says no"), "{msg}");
}

#[tokio::test]
async fn early_finish_skips_generation() {
    let ctx = fake("ctx").ctx(Ctx::Stop).start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;

    let body = json_of(post(&url, "/v1/completions", completion(false)).await).await;
    assert_eq!(body["choices"][0]["text"], "Hi");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["choices"][0].get("disaggregated_params").is_none(),
        "{body}"
    );
    assert!(body.get("prompt_token_ids").is_none(), "{body}");

    let resp = post(&url, "/v1/completions", completion(true)).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let frames: Vec<&str> = text.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 3, "{text}");
    assert_eq!(frames[2], "data: [DONE]");
    let chunk: Value = serde_json::from_str(frames[0].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(chunk["choices"][0]["text"], "Hi");
    assert_eq!(chunk["choices"][0]["finish_reason"], "stop");
    assert!(chunk.get("usage").is_none(), "{chunk}");
    // Usage, asked for, in a chunk of its own with no choices, as the engines stream it (the
    // benchmark clients of vLLM and TensorRT-LLM read it only there).
    let usage: Value = serde_json::from_str(frames[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert_eq!(usage["usage"]["completion_tokens"], 1, "{usage}");
    assert_eq!(usage["id"], chunk["id"], "{usage}");

    assert!(generation.bodies().is_empty(), "no generation leg");
}

#[tokio::test]
async fn early_finish_of_a_streamed_chat_carries_a_delta() {
    let ctx = fake("ctx").ctx(Ctx::Stop).start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let req =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let text = post(&url, "/v1/chat/completions", req)
        .await
        .text()
        .await
        .unwrap();
    let first = text.split("\n\n").next().unwrap();
    let chunk: Value = serde_json::from_str(first.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(chunk["object"], "chat.completion.chunk");
    assert_eq!(chunk["choices"][0]["delta"]["content"], "Hi");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn client_mistakes_get_openai_errors() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.max_body_bytes = 1024;
    let url = router(cfg).await;

    let msg = api_error(
        post_raw(&url, "/v1/completions", b"{nope".to_vec()).await,
        400,
    )
    .await;
    assert!(msg.contains("not JSON"), "{msg}");
    let msg = api_error(post(&url, "/v1/chat/completions", json!([1, 2])).await, 400).await;
    assert!(msg.contains("JSON object"), "{msg}");
    api_error(post(&url, "/v2/nothing", json!({})).await, 404).await;
    api_error(
        post_raw(&url, "/v1/completions", vec![b' '; 4096]).await,
        413,
    )
    .await;
    let resp = reqwest::get(format!("{url}/v1/completions")).await.unwrap();
    api_error(resp, 405).await;
    assert!(ctx.bodies().is_empty());
}

#[tokio::test]
async fn health_needs_a_healthy_worker_in_each_group() {
    let ctx = fake("ctx").start().await;
    let sick = fake("gen")
        .health(StatusCode::SERVICE_UNAVAILABLE)
        .start()
        .await;
    let url = router(config(&[&ctx], &[&sick])).await;
    let resp = reqwest::get(format!("{url}/health")).await.unwrap();
    let msg = api_error(resp, 503).await;
    assert!(msg.contains("generation"), "{msg}");

    let well = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&sick, &well])).await;
    let resp = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = json_of(resp).await;
    assert_eq!(body["generation"], json!({"healthy": 1, "total": 2}));
}

#[tokio::test]
async fn health_is_503_when_no_context_worker_answers() {
    let dead = support::refused_url().await;
    let generation = fake("gen").start().await;
    let url = router(support::config_urls(
        vec![dead],
        vec![generation.url.clone()],
    ))
    .await;
    let msg = api_error(reqwest::get(format!("{url}/health")).await.unwrap(), 503).await;
    assert!(msg.contains("context"), "{msg}");
}

#[tokio::test]
async fn models_come_from_the_first_generation_worker() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let body = json_of(reqwest::get(format!("{url}/v1/models")).await.unwrap()).await;
    assert_eq!(body["data"][0]["id"], "fake-model");
}

#[tokio::test]
async fn request_deadline_is_a_504() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").generation(Gen::Hang).start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.request_timeout = Duration::from_millis(300);
    let url = router(cfg).await;
    let msg = api_error(post(&url, "/v1/completions", completion(false)).await, 504).await;
    assert!(
        msg.contains("generation") && msg.contains(&generation.url),
        "{msg}"
    );
}

#[test]
fn server_config_from_the_protocols_example() {
    let text = r#"
hostname: node-a
port: 8000
backend: pytorch
context_servers:   {num_instances: 1, urls: ["node-b:34567"], router: {type: round_robin}}
generation_servers: {num_instances: 1, urls: ["node-c:45678"], router: {type: load_balancing, use_tokens: false}}
"#;
    let cfg = RouterConfig::from_server_config(&ServerConfig::from_yaml(text).unwrap());
    assert_eq!(cfg.host, "node-a");
    assert_eq!(cfg.port, 8000);
    assert_eq!(cfg.prefill, ["http://node-b:34567"]);
    assert_eq!(cfg.decode, ["http://node-c:45678"]);
    assert_eq!(cfg.prefill_policy, Policy::RoundRobin);
    assert_eq!(cfg.decode_policy, Policy::LeastRequests);
    assert_eq!(cfg.request_timeout, disagg_router::DEFAULT_REQUEST_TIMEOUT);
}

#[tokio::test]
async fn with_a_key_every_generation_request_is_signed_as_trtllm_does() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.internal_request_auth_key = Some("k-123".into());
    let url = router(cfg).await;
    for stream in [false, true] {
        let resp = post(&url, "/v1/completions", completion(stream)).await;
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await;
    }
    let seen = generation.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        let params = s.body["disaggregated_params"].as_object().unwrap();
        // The protected field the fake context server sent, signed over its canonical JSON.
        assert_eq!(params["encoded_opaque_state"], "b3BhcXVl");
        let want = disagg_proto::auth::sign(
            "k-123",
            r#"{"ctx_info_endpoint":null,"encoded_opaque_state":"b3BhcXVl"}"#,
        );
        assert_eq!(s.auth.as_deref(), Some(want.as_str()));
        assert_eq!(
            disagg_proto::auth::verify("k-123", params, s.auth.as_deref()),
            Ok(())
        );
    }
    assert!(
        ctx.seen().iter().all(|s| s.auth.is_none()),
        "context requests carry nothing to sign"
    );

    // Without a key nothing is signed.
    let unsigned = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&unsigned])).await;
    let _ = post(&url, "/v1/completions", completion(false))
        .await
        .bytes()
        .await;
    assert_eq!(unsigned.seen()[0].auth, None);
}

#[test]
fn server_config_carries_the_key_to_the_router() {
    let cfg = ServerConfig::from_yaml(
        "hostname: h\nport: 1\nbackend: pytorch\ninternal_request_auth_key: s3cret\n\
         context_servers: {num_instances: 1, urls: [\"a:1\"]}\n\
         generation_servers: {num_instances: 1, urls: [\"b:1\"]}\n",
    )
    .unwrap();
    let rc = RouterConfig::from_server_config(&cfg);
    assert_eq!(rc.internal_request_auth_key.as_deref(), Some("s3cret"));
    assert!(cfg.to_yaml().contains("internal_request_auth_key: s3cret"));
}

/// The `disagg_request_id` a context body carried, if any.
fn sent_id(body: &Value) -> Option<u64> {
    let id = &body["disaggregated_params"]["disagg_request_id"];
    (!id.is_null()).then(|| id.as_u64().unwrap_or_else(|| panic!("not a u64: {id}")))
}

#[tokio::test]
async fn always_sends_a_fresh_disagg_request_id_that_generation_carries() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.disagg_request_id = DisaggRequestIds::Always;
    let url = router(cfg).await;

    for _ in 0..2 {
        let resp = post(&url, "/v1/completions", completion(false)).await;
        assert_eq!(resp.status(), 200);
    }
    let ctx_ids: Vec<u64> = ctx.bodies().iter().map(|b| sent_id(b).unwrap()).collect();
    let gen_ids: Vec<u64> = generation
        .bodies()
        .iter()
        .map(|b| sent_id(b).unwrap())
        .collect();
    assert_eq!(ctx_ids.len(), 2);
    assert_ne!(ctx_ids[0], ctx_ids[1], "one id per request");
    for id in &ctx_ids {
        // TensorRT-LLM's global id range: positive int64, above the workers' local ids.
        assert!((1u64 << 40..=i64::MAX as u64).contains(id), "{id}");
    }
    assert_eq!(
        gen_ids, ctx_ids,
        "the generation leg carries the context leg's id"
    );
}

#[tokio::test]
async fn a_retried_context_attempt_gets_a_new_disagg_request_id() {
    let broken = fake("broken").ctx(Ctx::Fail).start().await;
    let good = fake("good").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&broken, &good], &[&generation]);
    cfg.disagg_request_id = DisaggRequestIds::Always;
    let url = router(cfg).await;

    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200);
    let failed = sent_id(&broken.bodies()[0]).unwrap();
    let served = sent_id(&good.bodies()[0]).unwrap();
    assert_ne!(
        failed, served,
        "a retry must not reuse the failed attempt's id"
    );
    assert_eq!(sent_id(&generation.bodies()[0]), Some(served));
}

#[tokio::test]
async fn auto_sends_disagg_request_ids_only_to_workers_that_take_them() {
    let old = fake("old").version("1.0.0").start().await;
    let new = fake("new").version("1.3.0rc5").start().await;
    let unknown = fake("unknown").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&old, &new, &unknown], &[&generation])).await;

    // The health checker reads each context worker's /version at start; the census says what
    // it learnt.
    support::eventually(Duration::from_secs(5), "versions learnt", || async {
        let census: Value = reqwest::get(format!("{url}/workers"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let states: Vec<String> = census["prefill"]["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["disagg_request_id"].as_str().unwrap().to_string())
            .collect();
        states
            == [
                "omitted (version below 1.3)",
                "sent",
                "omitted (version below 1.3)",
            ]
    })
    .await;
    for _ in 0..3 {
        let resp = post(&url, "/v1/completions", completion(false)).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    assert_eq!(sent_id(&old.bodies()[0]), None, "1.0 refuses the field");
    assert_eq!(sent_id(&unknown.bodies()[0]), None, "no /version: omitted");
    let id = sent_id(&new.bodies()[0]).expect("1.3 gets one");
    assert!(
        generation.bodies().iter().any(|b| sent_id(b) == Some(id)),
        "its generation leg carries it"
    );
}

/// A context worker whose `/version` answers 503 is not waited for: its requests go at once
/// without the id, the census says why, and the checker asks again every round, so once it
/// answers 1.3 the id is sent.
#[tokio::test]
async fn a_version_answering_503_is_asked_again_every_round_and_not_waited_for() {
    let new = fake("new").version("1.3.0").start().await;
    new.fake
        .version_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&new], &[&generation]);
    cfg.health_interval = Duration::from_millis(50);
    let url = router(cfg).await;
    let state = |want: &'static str| {
        let url = url.clone();
        async move {
            let census: Value = reqwest::get(format!("{url}/workers"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            census["prefill"]["workers"][0]["disagg_request_id"] == want
        }
    };
    support::eventually(Duration::from_secs(5), "marked unanswered", || {
        state("omitted (/version not answered)")
    })
    .await;
    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(sent_id(&new.bodies()[0]), None, "not known: omitted");

    new.fake
        .version_down
        .store(false, std::sync::atomic::Ordering::Relaxed);
    support::eventually(Duration::from_secs(5), "learnt on a later round", || {
        state("sent")
    })
    .await;
    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert!(
        sent_id(&new.bodies()[1]).is_some(),
        "1.3 gets one once known"
    );
}

/// `--shutdown-grace`: after shutdown is asked for, a request still in flight gets that long,
/// then its answer is cut and the router returns (it was a fixed 10 s).
#[tokio::test]
async fn shutdown_waits_the_grace_it_is_given_then_cuts() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").generation(Gen::Hang).start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.shutdown_grace = Duration::from_millis(400);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(disagg_router::serve(listener, cfg, async move {
        let _ = stopped.await;
    }));
    let pending = tokio::spawn({
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/completions"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&completion(false)).unwrap())
                .send()
                .await
        }
    });
    support::eventually(
        Duration::from_secs(5),
        "the request reached generation",
        || async { !generation.bodies().is_empty() },
    )
    .await;
    let asked = std::time::Instant::now();
    stop.send(()).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the router returns after its grace")
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The hung request got no answer.
    let answer = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .unwrap()
        .unwrap();
    if let Ok(r) = answer {
        assert!(r.status() != 200 || r.text().await.is_err());
    }
}

/// A context worker replaced in place by an older build (never out, so never readmitted)
/// refuses the id it was sent: that request fails, and the worker's `/version` is asked again,
/// so the next goes without the id. It used to fail every request for good.
#[tokio::test]
async fn a_worker_that_refuses_the_id_it_was_sent_has_its_version_asked_again() {
    let ctx = fake("ctx").version("1.3.0").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200);
    assert!(sent_id(&ctx.bodies()[0]).is_some());
    ctx.fake.set_version("1.0.0");
    let resp = post(&url, "/v1/completions", completion(false)).await;
    let msg = api_error(resp, 400).await;
    assert!(msg.contains("disagg_request_id"), "{msg}");
    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(sent_id(&ctx.bodies()[2]), None);
    let census: Value = reqwest::get(format!("{url}/workers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        census["prefill"]["workers"][0]["disagg_request_id"],
        "omitted (version below 1.3)"
    );
}

#[tokio::test]
async fn always_against_an_old_worker_says_what_it_refused() {
    let old = fake("old").version("1.0.0").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&old], &[&generation]);
    cfg.disagg_request_id = DisaggRequestIds::Always;
    let url = router(cfg).await;
    let resp = post(&url, "/v1/completions", completion(false)).await;
    let msg = api_error(resp, 400).await;
    assert!(msg.contains("disagg_request_id"), "{msg}");
    assert!(generation.bodies().is_empty());
}

#[tokio::test]
async fn never_sends_no_disagg_request_id() {
    let new = fake("new").version("1.3.0").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&new], &[&generation]);
    cfg.disagg_request_id = DisaggRequestIds::Never;
    let url = router(cfg).await;
    let resp = post(&url, "/v1/completions", completion(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sent_id(&new.bodies()[0]), None);
    assert_eq!(sent_id(&generation.bodies()[0]), None);
}
