//! The vLLM dialect (PROTOCOLS.md §2), driven by a stand-in for vLLM's disaggregated proxy.

use serde_json::{Value, json};

use crate::support::{Sim, error_message, start, streamed_text, with_model};

const FAST: &[&str] = &[
    "--dialect",
    "vllm",
    "--itl",
    "1ms",
    "--prefill-per-token",
    "10us",
];

async fn sim(role: &str) -> Sim {
    let mut f = FAST.to_vec();
    f.extend(["--role", role]);
    start(&f).await
}

/// The prefill request a vLLM proxy builds from a client request.
fn prefill_request(client: &Value) -> Value {
    let mut req = client.clone();
    req["max_tokens"] = json!(1);
    req["stream"] = json!(false);
    if let Some(o) = req.as_object_mut() {
        o.remove("stream_options");
        o.remove("min_tokens");
    }
    req["kv_transfer_params"] = json!({
        "do_remote_decode": true, "do_remote_prefill": false, "remote_engine_id": null,
        "remote_block_ids": null, "remote_host": null, "remote_port": null,
    });
    req
}

/// Proxies `client` through prefill then decode, as vLLM's proxy does; returns decode's body.
async fn proxy(prefill: &Sim, decode: &Sim, client: &Value, request_id: &str) -> (u16, Value) {
    let (status, p) = prefill
        .complete_as(request_id, &prefill_request(client))
        .await;
    assert_eq!(status, 200, "{p}");
    let mut req = client.clone();
    req["kv_transfer_params"] = p["kv_transfer_params"].clone();
    decode.complete_as(request_id, &req).await
}

#[tokio::test]
async fn prefill_answers_with_the_params_decode_needs() {
    let prefill = sim("context").await;
    let client = json!({"prompt": (0..40).collect::<Vec<u32>>(), "max_tokens": 8});
    let (status, body) = prefill
        .complete_as("req-1", &prefill_request(&client))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 1);
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let p = &body["kv_transfer_params"];
    assert_eq!(p["do_remote_prefill"], true);
    assert_eq!(p["do_remote_decode"], false);
    assert!(p["remote_engine_id"].is_string(), "{p}");
    // 40 tokens in blocks of 16, in one KV-cache group (vLLM 0.33's shape).
    assert_eq!(p["remote_block_ids"][0].as_array().map(Vec::len), Some(3));
    assert_eq!(p["remote_block_ids"].as_array().map(Vec::len), Some(1));
    // Decode pulls from the NIXL side channel, not the HTTP port.
    assert_eq!(
        format!(
            "{}:{}",
            p["remote_host"].as_str().unwrap_or(""),
            p["remote_port"]
        ),
        prefill.side_channel()
    );
    assert_ne!(prefill.side_channel(), prefill.authority());
    // The rest of vLLM 0.33's fields.
    assert_eq!(p["remote_request_id"], "req-1");
    assert_eq!(p["remote_num_tokens"], 40);
    assert_eq!(p["transfer_mode"], "pull");
    for k in [
        "tp_size",
        "dcp_size",
        "pp_size",
        "remote_blocks_expiry_time",
        "remote_registration_generation",
    ] {
        assert!(p[k].is_number(), "{k}: {p}");
    }
}

#[tokio::test]
async fn disaggregated_output_equals_aggregated() {
    let (prefill, decode, both) = (
        sim("context").await,
        sim("generation").await,
        sim("both").await,
    );
    let client = json!({"prompt": "the quick brown fox", "max_tokens": 10});
    let (status, agg) = both.complete(&client).await;
    assert_eq!(status, 200, "{agg}");
    let (status, disagg) = proxy(&prefill, &decode, &client, "r-1").await;
    assert_eq!(status, 200, "{disagg}");
    assert_eq!(disagg["choices"][0]["text"], agg["choices"][0]["text"]);
    assert_eq!(disagg["usage"], agg["usage"]);

    // Streaming decode: same text, chunk by chunk.
    let mut streaming = client.clone();
    streaming["stream"] = json!(true);
    let (_, p) = prefill.complete(&prefill_request(&streaming)).await;
    streaming["kv_transfer_params"] = p["kv_transfer_params"].clone();
    let (_, events) = decode.stream(&streaming).await;
    assert_eq!(
        streamed_text(&events),
        agg["choices"][0]["text"].as_str().unwrap_or("")
    );
}

/// vLLM streams a prefill asked to stream, and only its whole response carries
/// kv_transfer_params: a proxy that streams the prefill leg gets no hand-off, here as there.
#[tokio::test]
async fn a_streamed_prefill_streams_and_hands_off_nothing() {
    let prefill = sim("context").await;
    let client = json!({"prompt": [1, 2, 3], "max_tokens": 4});
    let mut req = prefill_request(&client);
    req["stream"] = json!(true);
    let (_, events) = prefill.stream(&req).await;
    assert!(!events.is_empty(), "an event stream");
    assert!(
        events
            .iter()
            .all(|e| !format!("{e:?}").contains("kv_transfer_params")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_proxy_that_drops_the_params_is_caught() {
    let (prefill, decode) = (sim("context").await, sim("generation").await);
    let client = json!({"prompt": [1, 2, 3], "max_tokens": 4});
    let (status, _) = prefill.complete_as("r-2", &prefill_request(&client)).await;
    assert_eq!(status, 200);
    let (status, body) = decode.complete_as("r-2", &client).await;
    assert_eq!(status, 400, "{body}");
    let msg = error_message(&body);
    assert!(
        msg.contains("did not forward") && msg.contains("kv_transfer_params"),
        "{msg}"
    );
}

/// The decode finds the prefill's request by the params' `remote_request_id` (vLLM 0.33), so
/// its own `X-Request-Id` may differ; params without it (older vLLM, which matched requests by
/// id) need the same header on both legs; and the blocks must be the prefill's.
#[tokio::test]
async fn decode_must_name_the_prefills_request_and_its_blocks() {
    let (prefill, decode) = (sim("context").await, sim("generation").await);
    let client = json!({"prompt": [1, 2, 3], "max_tokens": 4});

    let (_, p) = prefill.complete_as("r-3", &prefill_request(&client)).await;
    assert_eq!(p["kv_transfer_params"]["remote_request_id"], "r-3", "{p}");
    let mut req = client.clone();
    req["kv_transfer_params"] = p["kv_transfer_params"].clone();
    let (status, body) = decode.complete_as("r-other", &req).await;
    assert_eq!(status, 200, "named in the params: {body}");

    let (_, p) = prefill.complete_as("r-5", &prefill_request(&client)).await;
    let mut req = client.clone();
    req["kv_transfer_params"] = p["kv_transfer_params"].clone();
    req["kv_transfer_params"]
        .as_object_mut()
        .unwrap()
        .remove("remote_request_id");
    let (status, body) = decode.complete_as("r-other", &req).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("X-Request-Id"), "{body}");

    let (_, p) = prefill.complete_as("r-4", &prefill_request(&client)).await;
    let mut req = client.clone();
    req["kv_transfer_params"] = p["kv_transfer_params"].clone();
    req["kv_transfer_params"]["remote_port"] = json!(1);
    let (status, body) = decode.complete_as("r-4", &req).await;
    assert_eq!(status, 502, "an unreachable prefill engine: {body}");
    assert!(error_message(&body).contains("127.0.0.1:1"), "{body}");
}

#[tokio::test]
async fn a_model_vllm_does_not_serve_is_a_404() {
    let both = start(&["--dialect", "vllm", "--role", "both", "--model", "llama"]).await;
    let (status, body) = both
        .complete(&json!({"prompt": [1, 2], "max_tokens": 2, "model": "meta-llama/Llama"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        error_message(&body),
        "The model `meta-llama/Llama` does not exist."
    );
    assert_eq!(body["error"]["param"], "model", "{body}");
    let (status, body) = both
        .complete(&json!({"prompt": [1, 2], "max_tokens": 2, "model": "llama"}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// `vllm serve M --served-model-name a b`: either name is served, answers carry the first, and
/// /v1/models lists both.
#[tokio::test]
async fn every_served_name_of_vllm_is_answered_with_the_first() {
    let both = start(&[
        "--dialect",
        "vllm",
        "--role",
        "both",
        "--model",
        "a",
        "--model-alias",
        "b",
    ])
    .await;
    let (status, body) = both
        .complete(&json!({"prompt": [1, 2], "max_tokens": 2, "model": "b"}))
        .await;
    assert_eq!((status, body["model"].as_str()), (200, Some("a")), "{body}");
    let (status, body) = both
        .complete(&json!({"prompt": [1, 2], "max_tokens": 2, "model": "c"}))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, models) = both.get("/v1/models").await;
    let models: serde_json::Value = serde_json::from_slice(&models).unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!((status, ids), (200, vec!["a", "b"]), "{models}");
}

#[test]
fn the_side_channel_defaults_to_vllms_and_reads_its_variables() {
    use crate::support::parse_args;
    if std::env::var_os("VLLM_NIXL_SIDE_CHANNEL_PORT").is_none()
        && std::env::var_os("VLLM_NIXL_SIDE_CHANNEL_HOST").is_none()
    {
        let a = parse_args(&["--dialect", "vllm"]);
        assert_eq!(
            (a.side_channel_host.as_str(), a.side_channel_port),
            ("localhost", 5600)
        );
    }
}

#[tokio::test]
async fn two_vllm_sims_on_one_side_channel_port_collide_as_vllm_does() {
    let first = sim("context").await;
    let port = first.side_channel().rsplit(':').next().unwrap().to_string();
    let args = crate::support::parse_args(&[
        "--dialect",
        "vllm",
        "--role",
        "generation",
        "--side-channel-host",
        "127.0.0.1",
        "--side-channel-port",
        &port,
    ]);
    let err = disagg_sim::SimState::new(&args, disagg_sim::ExitHook::new(|| {}))
        .expect_err("the port is taken")
        .to_string();
    assert!(
        err.contains("NIXL side channel") && err.contains("VLLM_NIXL_SIDE_CHANNEL_PORT"),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
}

#[tokio::test]
async fn each_data_parallel_rank_binds_its_own_side_channel_port() {
    let dp = start(&["--dialect", "vllm", "--data-parallel-size", "3"]).await;
    let base: u16 = dp
        .side_channel()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    for rank in 0..3u16 {
        let taken = std::net::TcpListener::bind(("127.0.0.1", base + rank));
        assert!(taken.is_err(), "rank {rank}'s port {} is free", base + rank);
    }
}

/// A prefill that finishes on its one token otherwise than at the length cap (EOS here) keeps
/// no KV for a decode, so it answers `kv_transfer_params: null`, as NixlConnector's
/// `request_finished` does for any finish but `FINISHED_LENGTH_CAPPED`.
#[tokio::test]
async fn a_prefill_that_stops_on_eos_hands_nothing_off() {
    let mut f = FAST.to_vec();
    f.extend(["--role", "context", "--eos-at", "0"]);
    let prefill = start(&f).await;
    let client = json!({"prompt": "hello", "max_tokens": 8});
    let (status, body) = prefill
        .complete_as("req-eos", &prefill_request(&client))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(
        body.as_object().unwrap().contains_key("kv_transfer_params")
            && body["kv_transfer_params"].is_null(),
        "{body}"
    );
}

/// `--api-key` (a stand-in reads `vllm serve --api-key`): the API answers 401 without the key,
/// as vLLM does; /health stays open.
#[tokio::test]
async fn an_api_key_guards_the_api_but_not_health() {
    let mut f = FAST.to_vec();
    f.extend(["--role", "both", "--api-key", "sk-k"]);
    let sim = start(&f).await;
    let body = json!({"prompt": "hello", "max_tokens": 2});
    let (status, answer) = sim.complete(&body).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "Unauthorized");
    let r = reqwest::Client::new()
        .post(sim.url("/v1/completions"))
        .header("authorization", "Bearer sk-k")
        .json(&with_model(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim.get("/health").await.0, 200);
}
