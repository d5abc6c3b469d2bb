//! The SGLang dialect (PROTOCOLS.md §3): one body with bootstrap fields, sent to both legs at
//! once by a router stand-in.

use serde_json::{Value, json};

use crate::support::{Sim, error_message, start, streamed_text};

async fn sim(role: &str, extra: &[&str]) -> Sim {
    let mut f = vec![
        "--dialect",
        "sglang",
        "--itl",
        "1ms",
        "--prefill-per-token",
        "1ms",
    ];
    f.extend(["--role", role]);
    f.extend_from_slice(extra);
    start(&f).await
}

fn with_bootstrap(client: &Value, prefill: &Sim, room: u64) -> Value {
    let (host, _) = prefill.authority().split_once(':').expect("host:port");
    let mut req = client.clone();
    req["bootstrap_host"] = json!(host);
    req["bootstrap_port"] = json!(prefill.bootstrap_port());
    req["bootstrap_room"] = json!(room);
    req
}

#[tokio::test]
async fn both_legs_at_once_equal_aggregated() {
    let (prefill, decode, both) = (
        sim("context", &[]).await,
        sim("generation", &[]).await,
        sim("both", &[]).await,
    );
    // A 100-token prompt takes 100 ms to prefill, so decode surely asks before the record exists.
    let client = json!({"prompt": (0..100).collect::<Vec<u32>>(), "max_tokens": 6});
    let (_, agg) = both.complete(&client).await;
    let req = with_bootstrap(&client, &prefill, (1 << 62) + 12345);
    let ((ps, pb), (ds, db)) = tokio::join!(prefill.complete(&req), decode.complete(&req));
    assert_eq!(ps, 200, "{pb}");
    assert_eq!(pb["usage"]["completion_tokens"], 1);
    assert_eq!(ds, 200, "{db}");
    assert_eq!(db["choices"][0]["text"], agg["choices"][0]["text"]);
    assert_eq!(db["usage"], agg["usage"]);

    // Streaming: the prefill leg streams its one token, decode streams them all.
    let mut streaming = client.clone();
    streaming["stream"] = json!(true);
    let req = with_bootstrap(&streaming, &prefill, 7);
    let ((_, p_events), (_, d_events)) = tokio::join!(prefill.stream(&req), decode.stream(&req));
    assert_eq!(p_events.len(), 2, "one token and [DONE]");
    assert_eq!(
        streamed_text(&d_events),
        agg["choices"][0]["text"].as_str().unwrap_or("")
    );
}

#[tokio::test]
async fn decode_without_a_prefill_fails_naming_the_room() {
    let prefill = sim("context", &[]).await;
    let decode = sim("generation", &["--kv-wait-timeout", "200ms"]).await;
    let req = with_bootstrap(&json!({"prompt": [1, 2], "max_tokens": 2}), &prefill, 99);
    let (status, body) = decode.complete(&req).await;
    assert_eq!(status, 400, "{body}");
    let msg = error_message(&body);
    assert!(
        msg.contains("bootstrap_room 99") && msg.contains("waited"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_router_that_drops_the_bootstrap_fields_is_caught() {
    let decode = sim("generation", &[]).await;
    let (status, body) = decode
        .complete(&json!({"prompt": [1], "max_tokens": 2}))
        .await;
    assert_eq!(status, 400);
    assert!(error_message(&body).contains("bootstrap_room"), "{body}");
}

#[tokio::test]
async fn a_router_that_names_the_http_port_as_bootstrap_port_is_caught() {
    // The bug this pins: the harness once named each prefill `host:HTTP_PORT@HTTP_PORT`. SGLang
    // serves its bootstrap on a port of its own, and so does the sim.
    let prefill = sim("context", &[]).await;
    let decode = sim("generation", &["--kv-wait-timeout", "200ms"]).await;
    assert_ne!(
        prefill.bootstrap_port().to_string(),
        prefill.authority().rsplit(':').next().unwrap()
    );
    let client = json!({"prompt": [1, 2, 3], "max_tokens": 3});
    let mut req = with_bootstrap(&client, &prefill, 5);
    req["bootstrap_port"] = json!(
        prefill
            .authority()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    );
    let ((ps, _), (ds, db)) = tokio::join!(prefill.complete(&req), decode.complete(&req));
    assert_eq!(ps, 200);
    assert_ne!(ds, 200, "decode must not find KV on the HTTP port: {db}");
    // The bootstrap server answers /health, as SGLang's does.
    let r = reqwest::get(format!("http://{}/health", prefill.side_channel()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn server_info_and_model_info_answer_as_sglangs_do() {
    let prefill = sim(
        "context",
        &["--model", "qwen", "--model-path", "Qwen/Qwen3"],
    )
    .await;
    for path in ["/server_info", "/get_server_info"] {
        let (status, body) = prefill.get(path).await;
        assert_eq!(status, 200, "{path}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["disaggregation_mode"], "prefill", "{path}");
        assert_eq!(v["disaggregation_bootstrap_port"], prefill.bootstrap_port());
        assert_eq!(v["served_model_name"], "qwen");
        assert_eq!(v["dp_size"], 1);
        assert!(v["internal_states"].is_array(), "{v}");
    }
    let (status, body) = prefill.get("/model_info").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["model_path"], "Qwen/Qwen3");
    assert_eq!(v["served_model_name"], "qwen");
    assert_eq!(v["is_generation"], true);
    let decode = sim("generation", &[]).await;
    let (_, body) = decode.get("/model_info").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["disaggregation_mode"], "decode");
}
