//! The SGLang dialect (PROTOCOLS.md §3): one body with bootstrap fields, sent to both legs at
//! once by a router stand-in.

use serde_json::{Value, json};

use crate::support::{Arrival, Sim, error_message, start, streamed_text};
use disagg_proto::sse::Event;

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

/// A decode whose KV never comes fails after its wait with 500, as SGLang's decode aborts it
/// (`SGLANG_DISAGGREGATION_WAITING_TIMEOUT`, 300 s by default, in KVPoll.WaitingForInput): a
/// 400 read as the client's fault.
#[tokio::test]
async fn decode_without_a_prefill_fails_naming_the_room() {
    let prefill = sim("context", &[]).await;
    let decode = sim("generation", &["--kv-wait-timeout", "200ms"]).await;
    let req = with_bootstrap(&json!({"prompt": [1, 2], "max_tokens": 2}), &prefill, 99);
    let (status, body) = decode.complete(&req).await;
    assert_eq!(status, 500, "{body}");
    let msg = error_message(&body);
    assert!(
        msg.contains("bootstrap_room 99")
            && msg.contains("waited")
            && msg.contains("SGLANG_DISAGGREGATION_WAITING_TIMEOUT"),
        "{msg}"
    );
    // SGLang's default wait, and its variable setting it.
    let args = crate::support::try_parse_args(&[]).unwrap();
    assert_eq!(args.kv.kv_wait_timeout, std::time::Duration::from_secs(300));
}

/// SGLang's prefill runs a request only once its decode server has bootstrapped the room: a
/// router that sends the prefill leg alone (or first, waiting for it) hangs there until the
/// bootstrap timeout, then fails with 500, and so it does here.
#[tokio::test]
async fn a_prefill_waits_for_its_decode_and_fails_alone_as_sglangs_does() {
    let prefill = sim("context", &["--bootstrap-timeout", "400ms"]).await;
    let decode = sim("generation", &[]).await;
    let client = json!({"prompt": [1, 2, 3], "max_tokens": 3});
    let sent = std::time::Instant::now();
    let (status, body) = prefill
        .complete(&with_bootstrap(&client, &prefill, 41))
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(sent.elapsed() >= std::time::Duration::from_millis(400));
    let msg = error_message(&body);
    assert!(
        msg.contains("Request 41 timed out after") && msg.contains("KVPoll.Bootstrapping"),
        "{msg}"
    );
    // The decode leg a little later than the prefill: the prefill waits for it, then runs.
    let req = with_bootstrap(&client, &prefill, 42);
    let late_decode = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        decode.complete(&req).await
    };
    let ((ps, pb), (ds, db)) = tokio::join!(prefill.complete(&req), late_decode);
    assert_eq!((ps, ds), (200, 200), "{pb} {db}");
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
    let prefill = sim("context", &["--bootstrap-timeout", "300ms"]).await;
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
    let ((ps, pb), (ds, db)) = tokio::join!(prefill.complete(&req), decode.complete(&req));
    // No decode bootstrapped the room where the prefill serves it: both legs fail.
    assert_eq!(ps, 500, "{pb}");
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

/// `/health_generate` answers when the engine can generate: like `/health` while it can, and
/// not at all once its generation is stuck, while `/health` still says 200.
#[tokio::test]
async fn health_generate_goes_unanswered_once_generation_stalls() {
    let both = sim("both", &["--stall-after-requests", "1"]).await;
    assert_eq!(both.get("/health_generate").await.0, 200);
    let req = json!({"text": "a b", "sampling_params": {"max_new_tokens": 2}});
    let (status, _) = both.post_raw("/generate", &req.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(both.get("/health").await.0, 200);
    let asked = both
        .client
        .get(both.url("/health_generate"))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(
        asked.is_err_and(|e| e.is_timeout()),
        "no answer once stalled"
    );
    let never = sim("generation", &["--never-ready"]).await;
    assert_eq!(never.get("/health_generate").await.0, 503);
}

/// Bootstrap fields for each prompt of a batch: lists of the batch's size, one room per prompt,
/// as SGLang's PD routers send them.
fn with_bootstrap_lists(client: &Value, prefill: &Sim, rooms: &[u64]) -> Value {
    let (host, _) = prefill.authority().split_once(':').expect("host:port");
    let mut req = client.clone();
    req["bootstrap_host"] = json!(vec![host; rooms.len()]);
    req["bootstrap_port"] = json!(vec![prefill.bootstrap_port(); rooms.len()]);
    req["bootstrap_room"] = json!(rooms);
    req
}

/// The data objects of a stream, in order.
fn objects(events: &[Arrival]) -> Vec<Value> {
    assert_eq!(
        events.last().map(|a| &a.event),
        Some(&Event::Done),
        "ends with [DONE]"
    );
    let data = &events[..events.len() - 1];
    data.iter().map(Arrival::json).collect()
}

/// Checks one prompt's streamed objects against its whole answer: `text` and `output_ids` grow
/// cumulatively, one token per object, and only the last one is finished.
fn check_cumulative(stream: &[Value], whole: &Value) {
    assert_eq!(
        stream.len() as u64,
        whole["meta_info"]["completion_tokens"].as_u64().unwrap()
    );
    let mut text = String::new();
    for (i, o) in stream.iter().enumerate() {
        let t = o["text"].as_str().expect("text");
        assert!(
            t.starts_with(&text),
            "cumulative text: {t:?} after {text:?}"
        );
        text = t.to_string();
        assert_eq!(o["output_ids"].as_array().unwrap().len(), i + 1, "{o}");
        assert_eq!(o["meta_info"]["completion_tokens"], i + 1, "{o}");
        let last = i + 1 == stream.len();
        assert_eq!(o["meta_info"]["finish_reason"].is_null(), !last, "{o}");
        assert_eq!(o["meta_info"]["e2e_latency"].is_number(), last, "{o}");
    }
    let last = stream.last().unwrap();
    assert_eq!(last["text"], whole["text"]);
    assert_eq!(last["output_ids"], whole["output_ids"]);
    assert_eq!(
        last["meta_info"]["finish_reason"],
        whole["meta_info"]["finish_reason"]
    );
}

/// SGLang's native `/generate` (what `bench_serving --backend sglang` sends): answered in
/// SGLang's shape (`text`, `output_ids`, `meta_info`), through prefill and decode with the
/// bootstrap fields exactly as aggregated, one prompt or a batch, whole or streamed.
#[tokio::test]
async fn generate_through_both_legs_equals_aggregated_single_and_batched() {
    let (prefill, decode, both) = (
        sim("context", &[]).await,
        sim("generation", &[]).await,
        sim("both", &[]).await,
    );
    let params = json!({"temperature": 0.0, "max_new_tokens": 5, "ignore_eos": true});

    // One prompt, whole.
    let client = json!({"text": "a b c d", "sampling_params": params});
    let (status, agg) = both.post_raw("/generate", &client.to_string()).await;
    assert_eq!(status, 200, "{agg}");
    let meta = &agg["meta_info"];
    assert_eq!(
        (&meta["prompt_tokens"], &meta["completion_tokens"]),
        (&json!(4), &json!(5))
    );
    assert_eq!(
        meta["finish_reason"],
        json!({"type": "length", "length": 5})
    );
    assert_eq!(meta["cached_tokens"], 0);
    assert!(meta["e2e_latency"].as_f64().unwrap() > 0.0, "{agg}");
    assert!(meta["id"].is_string(), "{agg}");
    assert_eq!(agg["output_ids"].as_array().unwrap().len(), 5);
    let (_, completion) = both
        .complete(&json!({"prompt": "a b c d", "max_tokens": 5}))
        .await;
    assert_eq!(
        agg["text"], completion["choices"][0]["text"],
        "the same model"
    );
    let req = with_bootstrap(&client, &prefill, 1001);
    let body = req.to_string();
    let ((ps, pb), (ds, db)) = tokio::join!(
        prefill.post_raw("/generate", &body),
        decode.post_raw("/generate", &body)
    );
    assert_eq!(ps, 200, "{pb}");
    assert_eq!(pb["meta_info"]["completion_tokens"], 1, "the prefill leg");
    assert_eq!(ds, 200, "{db}");
    assert_eq!(
        (&db["text"], &db["output_ids"]),
        (&agg["text"], &agg["output_ids"])
    );
    assert_eq!(
        db["meta_info"]["finish_reason"],
        agg["meta_info"]["finish_reason"]
    );

    // A batch, whole: a list, one object per prompt, each prompt in its own room.
    let batch = json!({"text": ["a b", "c d e"], "sampling_params": params});
    let (_, agg_batch) = both.post_raw("/generate", &batch.to_string()).await;
    let agg_batch = agg_batch.as_array().expect("a list for a batch").clone();
    assert_eq!(agg_batch.len(), 2);
    assert_ne!(agg_batch[0]["text"], agg_batch[1]["text"]);
    let body = with_bootstrap_lists(&batch, &prefill, &[2001, 2002]).to_string();
    let ((ps, pb), (ds, db)) = tokio::join!(
        prefill.post_raw("/generate", &body),
        decode.post_raw("/generate", &body)
    );
    assert_eq!(ps, 200, "{pb}");
    assert_eq!(ds, 200, "{db}");
    for (i, want) in agg_batch.iter().enumerate() {
        assert_eq!(
            (&db[i]["text"], &db[i]["output_ids"]),
            (&want["text"], &want["output_ids"]),
            "{i}"
        );
        assert_eq!(
            db[i]["meta_info"]["prompt_tokens"],
            want["meta_info"]["prompt_tokens"]
        );
    }

    // One prompt, streamed: cumulative objects, then [DONE].
    let mut streaming = client.clone();
    streaming["stream"] = json!(true);
    let req = with_bootstrap(&streaming, &prefill, 3001);
    let ((_, p_events), (_, d_events)) = tokio::join!(
        prefill.stream_at("/generate", &req),
        decode.stream_at("/generate", &req)
    );
    assert_eq!(
        objects(&p_events).len(),
        1,
        "the prefill leg streams its one token"
    );
    let d = objects(&d_events);
    assert!(
        d.iter().all(|o| o.get("index").is_none()),
        "no index outside a batch"
    );
    check_cumulative(&d, &agg);

    // A batch, streamed: the prompts' objects interleave, each with its `index`.
    let mut streaming = batch.clone();
    streaming["stream"] = json!(true);
    let req = with_bootstrap_lists(&streaming, &prefill, &[4001, 4002]);
    let ((_, _), (_, d_events)) = tokio::join!(
        prefill.stream_at("/generate", &req),
        decode.stream_at("/generate", &req)
    );
    let d = objects(&d_events);
    for (i, want) in agg_batch.iter().enumerate() {
        let mine: Vec<Value> = d.iter().filter(|o| o["index"] == i).cloned().collect();
        check_cumulative(&mine, want);
    }
    assert_eq!(d.len(), 10, "5 tokens for each of 2 prompts");
}

/// SGLang's completions server takes a list of prompts as a batch; a PD router sends the
/// bootstrap fields as lists of the batch's size (or one value for all: SGLang then numbers
/// the rooms `room + i`). Lists of another size are refused, naming the field.
#[tokio::test]
async fn batched_completions_hand_off_each_prompt_in_its_own_room() {
    let (prefill, decode, both) = (
        sim("context", &[]).await,
        sim("generation", &[]).await,
        sim("both", &[]).await,
    );
    let client = json!({"prompt": ["a b c", [7, 8, 9, 10]], "max_tokens": 4});
    let (status, agg) = both.complete(&client).await;
    assert_eq!(status, 200, "{agg}");
    assert_eq!(agg["choices"].as_array().unwrap().len(), 2);
    assert_eq!(agg["usage"]["prompt_tokens"], 3 + 4);
    assert_eq!(agg["usage"]["completion_tokens"], 8);
    for req in [
        with_bootstrap_lists(&client, &prefill, &[5001, 5002]),
        with_bootstrap(&client, &prefill, 6001),
    ] {
        let ((ps, pb), (ds, db)) = tokio::join!(prefill.complete(&req), decode.complete(&req));
        assert_eq!(ps, 200, "{pb}");
        assert_eq!(ds, 200, "{db}");
        for i in 0..2 {
            assert_eq!(db["choices"][i]["index"], i);
            assert_eq!(db["choices"][i]["text"], agg["choices"][i]["text"], "{req}");
        }
        assert_eq!(db["usage"], agg["usage"]);
    }
    // Streamed: each prompt's chunks carry its index.
    let mut streaming = client.clone();
    streaming["stream"] = json!(true);
    let req = with_bootstrap_lists(&streaming, &prefill, &[7001, 7002]);
    let ((_, _), (_, d_events)) = tokio::join!(prefill.stream(&req), decode.stream(&req));
    for i in 0..2 {
        let text: String = objects(&d_events)
            .iter()
            .filter(|o| o["choices"][0]["index"] == i)
            .map(|o| o["choices"][0]["text"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            text,
            agg["choices"][i]["text"].as_str().unwrap(),
            "prompt {i}"
        );
    }

    for (room, want) in [
        (
            json!([1, 2, 3]),
            "bootstrap_room has 3 entries for a batch of 2 prompts",
        ),
        (
            json!([1]),
            "bootstrap_room has 1 entries for a batch of 2 prompts",
        ),
    ] {
        let mut req = with_bootstrap_lists(&client, &prefill, &[1, 2]);
        req["bootstrap_room"] = room;
        let (status, body) = decode.complete(&req).await;
        assert_eq!(status, 400, "{body}");
        assert!(error_message(&body).contains(want), "{body}");
    }
    let mut one = with_bootstrap(&json!({"prompt": "a", "max_tokens": 2}), &prefill, 1);
    one["bootstrap_room"] = json!([1]);
    let (status, body) = decode.complete(&one).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("the request holds one prompt"),
        "{body}"
    );
}

/// `/generate` is SGLang's alone: the other dialects' sims answer 404, as vLLM and TensorRT-LLM
/// servers do; what a `/generate` body lacks is named.
#[tokio::test]
async fn generate_is_sglangs_and_names_what_is_missing() {
    for dialect in ["trtllm", "vllm"] {
        let s = start(&["--dialect", dialect, "--itl", "1ms"]).await;
        let (status, body) = s.post_raw("/generate", r#"{"text": "a"}"#).await;
        assert_eq!(status, 404, "{dialect}: {body}");
    }
    let both = sim("both", &[]).await;
    for (body, want) in [
        (
            r#"{"sampling_params": {}}"#,
            "Either text, input_ids or input_embeds",
        ),
        (r#"{"input_ids": []}"#, "input_ids cannot be empty"),
        (r#"{"text": ["a", 3]}"#, "text[1] must be a string"),
        (
            r#"{"text": ["a", "b"], "sampling_params": [{}, {}, {}]}"#,
            "sampling_params has 3 entries",
        ),
    ] {
        let (status, reply) = both.post_raw("/generate", body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(error_message(&reply).contains(want), "{body}: {reply}");
    }
    // SGLang takes max_new_tokens 0: the prompt, answered with no tokens.
    let (status, reply) = both
        .post_raw(
            "/generate",
            r#"{"text": "a b", "sampling_params": {"max_new_tokens": 0}}"#,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["text"], "", "{reply}");
    assert_eq!(reply["meta_info"]["completion_tokens"], 0, "{reply}");
    assert_eq!(
        reply["meta_info"]["finish_reason"],
        json!({"type": "length", "length": 0}),
        "{reply}"
    );
    // vLLM wants at least one.
    let v = start(&["--dialect", "vllm", "--itl", "1ms"]).await;
    let (status, reply) = v
        .post_raw(
            "/v1/completions",
            r#"{"model": "", "prompt": "a", "max_tokens": 0}"#,
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        error_message(&reply).contains("max_tokens must be at least 1"),
        "{reply}"
    );
    // SGLang's default max_new_tokens is 128.
    let (_, reply) = both.post_raw("/generate", r#"{"input_ids": [1, 2]}"#).await;
    assert_eq!(reply["meta_info"]["completion_tokens"], 128, "{reply}");
    // --max-model-len holds for every prompt of a /generate batch, as for completions.
    let small = sim("both", &["--max-model-len", "8"]).await;
    let body = r#"{"text": ["a b", "a b c d e f"], "sampling_params": {"max_new_tokens": 4}}"#;
    let (status, reply) = small.post_raw("/generate", body).await;
    assert_eq!(status, 400, "{reply}");
    let msg = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("maximum context length of 8"), "{reply}");
}

/// SGLang's OpenAI routes refuse in its flat `ErrorResponse` (`create_error_response`), its
/// native `/generate` in the `error` envelope: a client or router that reads `message` at the
/// top reads it from the sim as from SGLang.
#[tokio::test]
async fn refusals_come_in_sglangs_shapes() {
    let both = sim("both", &["--max-model-len", "8"]).await;
    for (path, body) in [
        (
            "/v1/completions",
            r#"{"model": "m", "prompt": "a", "max_tokens": 0}"#,
        ),
        (
            "/v1/completions",
            r#"{"model": "m", "prompt": "a b c d e f g h i j", "max_tokens": 2}"#,
        ),
    ] {
        let (status, reply) = both.post_raw(path, body).await;
        assert_eq!(status, 400, "{reply}");
        assert_eq!(
            (&reply["object"], &reply["type"], &reply["code"]),
            (&json!("error"), &json!("BadRequestError"), &json!(400)),
            "{body}: {reply}"
        );
        assert!(
            reply["message"].is_string() && reply.get("error").is_none(),
            "{reply}"
        );
    }
    let (status, reply) = both
        .post_raw(
            "/generate",
            r#"{"text": "a b c d e f g h i j", "sampling_params": {"max_new_tokens": 2}}"#,
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"]["message"].is_string(), "{reply}");
}
