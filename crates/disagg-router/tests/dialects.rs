//! The vLLM and SGLang dialects end to end over loopback HTTP: the wire bodies of both legs
//! (PROTOCOLS.md §2–3), streaming chunk by chunk, and cancellation of the paired leg.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use disagg_proto::ApiError;
use disagg_router::Dialect;
use serde_json::{Value, json};
use support::{CHUNK_1, Ctx, Gen, config_dialect, drop_signal, fake, router};
use tokio::sync::Notify;

/// Guards every await on the router so a regression fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(10);

async fn post(url: &str, path: &str, body: &Value, request_id: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(body);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    tokio::time::timeout(LIMIT, req.send())
        .await
        .unwrap()
        .unwrap()
}

async fn api_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body = resp.bytes().await.unwrap();
    ApiError::from_body(status, &body)
        .unwrap_or_else(|| panic!("not an OpenAI error body: {body:?}"))
        .message
}

fn chat(stream: bool) -> Value {
    let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
           "max_tokens": 50, "min_tokens": 5, "stream": stream});
    // Only with `stream: true`: the router refuses it otherwise, as the engines do.
    if stream {
        v["stream_options"] = json!({"include_usage": true});
    }
    v
}

#[tokio::test]
async fn vllm_prefill_then_decode_with_kv_transfer_params_and_one_request_id() {
    let prefill = fake("prefill").start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;

    let resp = post(&url, "/v1/chat/completions", &chat(false), None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], "gen-1", "decode's answer is relayed");

    let p = &prefill.seen()[0];
    let mut want = chat(false);
    let o = want.as_object_mut().unwrap();
    o.remove("min_tokens");
    o.remove("stream_options");
    o.insert("max_tokens".into(), json!(1));
    o.insert("stream".into(), json!(false));
    o.insert(
        "kv_transfer_params".into(),
        json!({"do_remote_decode": true, "do_remote_prefill": false, "remote_engine_id": null,
               "remote_block_ids": null, "remote_host": null, "remote_port": null}),
    );
    assert_eq!(p.body, want, "prefill body, exactly");

    let d = &decode.seen()[0];
    let mut want = chat(false);
    want["kv_transfer_params"] = json!({"do_remote_prefill": true, "do_remote_decode": false,
        "remote_engine_id": "engine-7", "remote_block_ids": [4, 5], "remote_host": "10.1.1.1",
        "remote_port": 5600});
    assert_eq!(
        d.body, want,
        "decode body: the original plus the returned params"
    );

    let id = p
        .request_id
        .clone()
        .expect("prefill leg has an X-Request-Id");
    assert!(!id.is_empty());
    assert_eq!(
        d.request_id.as_deref(),
        Some(id.as_str()),
        "one id spans both legs"
    );

    post(
        &url,
        "/v1/chat/completions",
        &chat(false),
        Some("client-id-7"),
    )
    .await;
    // The client's id leads a fresh one: its logs line up with the workers', and a client
    // sending one id twice at once does not reach vLLM with it twice.
    let led = prefill.seen()[1].request_id.clone().unwrap();
    assert!(
        led.starts_with("client-id-7-") && led.len() > "client-id-7-".len(),
        "{led}"
    );
    assert_eq!(decode.seen()[1].request_id.as_deref(), Some(led.as_str()));
    post(
        &url,
        "/v1/chat/completions",
        &chat(false),
        Some("client-id-7"),
    )
    .await;
    assert_ne!(prefill.seen()[2].request_id.as_deref(), Some(led.as_str()));
    let fresh = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;
    post(&fresh, "/v1/chat/completions", &chat(false), None).await;
    assert_ne!(
        prefill.seen()[3].request_id,
        Some(id),
        "ids are fresh per request"
    );
}

#[tokio::test]
async fn vllm_prefill_without_kv_transfer_params_is_a_502_not_a_silent_recompute() {
    let prefill = fake("prefill").ctx(Ctx::NoParams).start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;
    let msg = api_error(
        post(&url, "/v1/chat/completions", &chat(false), None).await,
        502,
    )
    .await;
    assert!(
        msg.contains("kv_transfer_params") && msg.contains(&prefill.url),
        "{msg}"
    );
    assert!(decode.bodies().is_empty());
}

/// A prefill that stopped on its one token (EOS) kept no KV (`kv_transfer_params: null`): its
/// answer is the client's, streamed or not, and decode is not asked; with a minimum length the
/// prefill was not given, decode gets the request as sent and recomputes, as vLLM's proxy does
/// (with params that ask for no remote KV, so a proxy that lost the params still stands out).
#[tokio::test]
async fn vllm_prefill_that_stopped_is_the_answer_or_decode_recomputes_for_a_minimum() {
    let prefill = fake("prefill").ctx(Ctx::Stop).start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;
    let mut plain = chat(false);
    plain.as_object_mut().unwrap().remove("min_tokens");
    let resp = post(&url, "/v1/chat/completions", &plain, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(body.get("kv_transfer_params").is_none(), "{body}");
    let mut streamed = plain.clone();
    streamed["stream"] = json!(true);
    let resp = post(&url, "/v1/chat/completions", &streamed, None).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("\"finish_reason\":\"stop\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    // The whole answer's other fields ride along: logprobs, stop_reason, the message as delta.
    let chunk: Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("data: ").filter(|d| d.starts_with('{')))
            .unwrap(),
    )
    .unwrap();
    let c = &chunk["choices"][0];
    assert_eq!(c["stop_reason"], 7, "{chunk}");
    assert_eq!(c["logprobs"]["content"][0]["logprob"], -0.5, "{chunk}");
    assert_eq!(c["delta"]["content"], "Hi", "{chunk}");
    assert!(c.get("message").is_none(), "{chunk}");
    assert!(decode.bodies().is_empty(), "decode is not asked");
    // min_tokens: 5, which the prefill ran without.
    let resp = post(&url, "/v1/chat/completions", &chat(false), None).await;
    assert_eq!(resp.status(), 200);
    let d = &decode.seen()[0];
    let mut recompute = chat(false);
    recompute["kv_transfer_params"] =
        json!({"do_remote_decode": false, "do_remote_prefill": false});
    assert_eq!(
        d.body, recompute,
        "decode gets the request as sent, asking for no remote KV"
    );
}

/// A worker started with an API key (`vllm serve --api-key`, SGLang's `--api-key`, a
/// TensorRT-LLM behind a gateway) refuses a leg without it: the client's `Authorization` is
/// carried on to both legs, in every dialect; none is made up when the client sent none.
#[tokio::test]
async fn the_clients_authorization_reaches_both_legs_in_every_dialect() {
    for dialect in [Dialect::Trtllm, Dialect::Vllm, Dialect::Sglang] {
        let prefill = fake("prefill").start().await;
        let decode = fake("decode").start().await;
        let url = router(config_dialect(dialect, &[&prefill], &[&decode])).await;
        let resp = tokio::time::timeout(
            LIMIT,
            reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .header("authorization", "Bearer sk-test")
                .json(&chat(false))
                .send(),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(resp.status(), 200, "{dialect:?}");
        for (leg, seen) in [("prefill", prefill.seen()), ("decode", decode.seen())] {
            assert_eq!(
                seen[0].authorization.as_deref(),
                Some("Bearer sk-test"),
                "{dialect:?} {leg}"
            );
        }
        post(&url, "/v1/chat/completions", &chat(false), None).await;
        assert_eq!(prefill.seen()[1].authorization, None, "{dialect:?}");
    }
}

/// A batch of prompts in one completions request: TensorRT-LLM's disaggregated server refuses
/// it, and a vLLM prefill hands off its first prompt's KV alone, so both dialects answer 400
/// before any worker prefills (a one-prompt list is one prompt). SGLang's legs carry a room per
/// prompt: served.
#[tokio::test]
async fn a_batch_of_prompts_is_refused_before_any_prefill_where_one_hand_off_cannot_carry_it() {
    for dialect in [Dialect::Trtllm, Dialect::Vllm] {
        let prefill = fake("prefill").start().await;
        let decode = fake("decode").start().await;
        let url = router(config_dialect(dialect, &[&prefill], &[&decode])).await;
        let two = json!({"model": "m", "prompt": ["a", "b"], "max_tokens": 3});
        let msg = api_error(post(&url, "/v1/completions", &two, None).await, 400).await;
        assert!(
            msg.contains("`prompt` is a batch of 2 prompts")
                && msg.contains("send each prompt as a request of its own"),
            "{dialect:?}: {msg}"
        );
        let ids = json!({"model": "m", "prompt": [[1, 2], [3, 4], [5]], "max_tokens": 3});
        let msg = api_error(post(&url, "/v1/completions", &ids, None).await, 400).await;
        assert!(msg.contains("a batch of 3 prompts"), "{dialect:?}: {msg}");
        assert!(prefill.seen().is_empty(), "{dialect:?}: no prefill");
        let one = json!({"model": "m", "prompt": ["a"], "max_tokens": 3});
        let resp = post(&url, "/v1/completions", &one, None).await;
        assert_eq!(resp.status(), 200, "{dialect:?}");
    }
}

/// Asserts that chunk 1 arrives while the worker still holds the rest back.
async fn first_chunk_before_the_rest(mut resp: reqwest::Response, release: &Notify) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(LIMIT, resp.chunk())
        .await
        .expect("chunk 1 arrives before the rest is produced")
        .unwrap()
        .unwrap();
    assert_eq!(first, CHUNK_1.as_bytes());
    release.notify_one();
    let rest = tokio::time::timeout(LIMIT, resp.bytes())
        .await
        .unwrap()
        .unwrap();
    assert!(rest.ends_with(b"data: [DONE]\n\n"));
}

#[tokio::test]
async fn vllm_and_sglang_stream_chunk_by_chunk() {
    for dialect in [Dialect::Vllm, Dialect::Sglang] {
        let release = Arc::new(Notify::new());
        let (dropped, _rx) = drop_signal();
        let mut prefill = fake("prefill");
        if dialect == Dialect::Sglang {
            prefill = prefill.sglang_prefill();
        }
        let prefill = prefill.start().await;
        let decode = fake("decode")
            .generation(Gen::Gated {
                release: release.clone(),
                dropped,
            })
            .start()
            .await;
        let url = router(config_dialect(dialect, &[&prefill], &[&decode])).await;
        let resp = post(&url, "/v1/chat/completions", &chat(true), None).await;
        first_chunk_before_the_rest(resp, &release).await;
    }
}

#[tokio::test]
async fn sglang_sends_one_body_with_bootstrap_fields_to_both_legs_at_once() {
    let release = Arc::new(Notify::new());
    let (dropped, prefill_cut) = drop_signal();
    // The prefill worker holds its answer until released; decode answers at once. The client
    // getting decode's answer meanwhile shows the legs were not sent one after the other.
    let prefill = fake("prefill")
        .sglang_prefill()
        .ctx(Ctx::Gated {
            release: release.clone(),
            dropped,
        })
        .start()
        .await;
    let decode = fake("decode").start().await;
    let mut cfg = config_dialect(Dialect::Sglang, &[&prefill], &[&decode]);
    cfg.bootstrap_ports = vec![Some(8998)];
    let url = router(cfg).await;

    let req = json!({"model": "m", "prompt": "hello", "max_tokens": 4, "stream": false});
    let resp = post(&url, "/v1/completions", &req, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = tokio::time::timeout(LIMIT, resp.json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body["id"], "gen-1", "decode's answer is relayed");

    let (p, d) = (prefill.bodies(), decode.bodies());
    assert_eq!((p.len(), d.len()), (1, 1));
    assert_eq!(p[0], d[0], "both legs get the same body");
    let room = d[0]["bootstrap_room"]
        .as_u64()
        .expect("bootstrap_room is an integer");
    assert!(room < 1 << 63, "a 63-bit room");
    let mut want = req.clone();
    want["bootstrap_host"] = json!("127.0.0.1");
    want["bootstrap_port"] = json!(8998);
    want["bootstrap_room"] = json!(room);
    assert_eq!(d[0], want);

    release.notify_one();
    let cut = tokio::time::timeout(LIMIT, prefill_cut).await.unwrap();
    assert!(
        cut.is_err(),
        "the prefill leg answered; it was not cut off when decode finished first"
    );
    post(&url, "/v1/completions", &req, None).await;
    let rooms: Vec<_> = decode
        .bodies()
        .iter()
        .map(|b| b["bootstrap_room"].clone())
        .collect();
    assert_ne!(rooms[0], rooms[1], "a fresh room per request");
}

#[tokio::test]
async fn sglang_decode_failure_cancels_the_prefill_leg_at_once() {
    let (dropped, prefill_dropped) = drop_signal();
    let prefill = fake("prefill")
        .sglang_prefill()
        .ctx(Ctx::Hang(dropped))
        .start()
        .await;
    let release = Arc::new(Notify::new());
    let decode = fake("decode")
        .generation(Gen::StatusWhen(
            StatusCode::INTERNAL_SERVER_ERROR,
            release.clone(),
        ))
        .start()
        .await;
    let url = router(config_dialect(Dialect::Sglang, &[&prefill], &[&decode])).await;
    let call =
        tokio::spawn(async move { post(&url, "/v1/completions", &chat_prompt(), None).await });
    // The decode leg fails only once the prefill worker holds its request (see the test below:
    // a leg cancelled before its request was written never reaches the worker).
    support::eventually(LIMIT, "the prefill worker has its request", || {
        let prefill = prefill.clone();
        async move { !prefill.seen().is_empty() }
    })
    .await;
    let started = Instant::now();
    release.notify_one();
    let msg = api_error(call.await.unwrap(), 502).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "502 promptly, not after the prefill"
    );
    assert!(
        msg.contains("generation") && msg.contains(&decode.url),
        "{msg}"
    );
    tokio::time::timeout(LIMIT, prefill_dropped)
        .await
        .expect("the prefill worker sees the router hang up")
        .unwrap();
}

#[tokio::test]
async fn sglang_prefill_failure_cancels_the_decode_leg_at_once() {
    let (dropped, decode_dropped) = drop_signal();
    let release = Arc::new(Notify::new());
    let prefill = fake("prefill")
        .sglang_prefill()
        .ctx(Ctx::FailWhen(release.clone()))
        .start()
        .await;
    let decode = fake("decode")
        .generation(Gen::HangSignal(dropped))
        .start()
        .await;
    let url = router(config_dialect(Dialect::Sglang, &[&prefill], &[&decode])).await;
    let call =
        tokio::spawn(async move { post(&url, "/v1/completions", &chat_prompt(), None).await });
    // The prefill leg fails only once the decode worker holds its request. Failing at once
    // raced the decode leg's connection: a leg cancelled before its request was written never
    // reaches the worker, and there is nothing for it to see hang up (a CI run met that).
    support::eventually(LIMIT, "the decode worker has its request", || {
        let decode = decode.clone();
        async move { !decode.seen().is_empty() }
    })
    .await;
    release.notify_one();
    let msg = api_error(call.await.unwrap(), 502).await;
    assert!(
        msg.contains("context") && msg.contains("prefill broke"),
        "{msg}"
    );
    tokio::time::timeout(LIMIT, decode_dropped)
        .await
        .expect("the decode worker sees the router hang up")
        .unwrap();
}

#[tokio::test]
async fn sglang_client_hang_up_mid_stream_cancels_both_legs() {
    let (p_dropped, p_rx) = drop_signal();
    let (d_dropped, d_rx) = drop_signal();
    let prefill = fake("prefill")
        .sglang_prefill()
        .ctx(Ctx::Hang(p_dropped))
        .start()
        .await;
    let decode = fake("decode")
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped: d_dropped,
        })
        .start()
        .await;
    let url = router(config_dialect(Dialect::Sglang, &[&prefill], &[&decode])).await;
    let mut req = chat_prompt();
    req["stream"] = json!(true);
    let mut resp = post(&url, "/v1/completions", &req, None).await;
    let first = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), CHUNK_1.as_bytes());
    drop(resp);
    for (rx, leg) in [(p_rx, "prefill"), (d_rx, "decode")] {
        tokio::time::timeout(LIMIT, rx)
            .await
            .unwrap_or_else(|_| panic!("the {leg} leg is cancelled"))
            .unwrap();
    }
}

fn chat_prompt() -> Value {
    json!({"model": "m", "prompt": "hello", "max_tokens": 4})
}

#[tokio::test]
async fn vllm_client_hang_up_cancels_the_leg_in_progress() {
    // During the prefill leg.
    let (dropped, prefill_dropped) = drop_signal();
    let prefill = fake("prefill").ctx(Ctx::Hang(dropped)).start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let out = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat(true))
        .send()
        .await;
    assert!(out.is_err(), "the client gave up");
    tokio::time::timeout(LIMIT, prefill_dropped)
        .await
        .expect("the prefill worker sees the router hang up")
        .unwrap();
    assert!(decode.bodies().is_empty());

    // Mid-stream, during the decode leg.
    let prefill = fake("prefill").start().await;
    let (dropped, decode_dropped) = drop_signal();
    let decode = fake("decode")
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped,
        })
        .start()
        .await;
    let url = router(config_dialect(Dialect::Vllm, &[&prefill], &[&decode])).await;
    let mut resp = post(&url, "/v1/chat/completions", &chat(true), None).await;
    let first = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), CHUNK_1.as_bytes());
    drop(resp);
    tokio::time::timeout(LIMIT, decode_dropped)
        .await
        .expect("the decode worker sees the router hang up")
        .unwrap();
}

/// A 32k-word prompt (~190 kB) is relayed in pieces, shared rather than copied: every leg that
/// carries it gets it whole, in a body that declares its length (not chunked).
#[tokio::test]
async fn a_long_prompt_reaches_every_leg_whole_with_its_length_declared() {
    let prompt: String = (0..32_768).map(|i| format!("w{} ", i % 997)).collect();
    for dialect in [Dialect::Trtllm, Dialect::Vllm, Dialect::Sglang] {
        let prefill = if dialect == Dialect::Sglang {
            fake("prefill").sglang_prefill().start().await
        } else {
            fake("prefill").start().await
        };
        let decode = fake("decode").start().await;
        let url = router(config_dialect(dialect, &[&prefill], &[&decode])).await;
        let req = json!({"model": "m", "prompt": prompt, "max_tokens": 4, "stream": false});
        let resp = post(&url, "/v1/completions", &req, None).await;
        assert_eq!(resp.status(), 200, "{dialect:?}");
        let mut legs = prefill.seen();
        legs.extend(decode.seen());
        assert_eq!(legs.len(), 2, "{dialect:?}");
        for (i, leg) in legs.iter().enumerate() {
            assert_eq!(leg.transfer_encoding, None, "{dialect:?} leg {i}");
            assert!(leg.content_length.is_some(), "{dialect:?} leg {i}");
        }
        // TensorRT-LLM's generation leg carries the context's prompt_token_ids instead.
        let carry = match dialect {
            Dialect::Trtllm => &legs[..1],
            _ => &legs[..],
        };
        for leg in carry {
            assert_eq!(leg.body["prompt"], prompt.as_str(), "{dialect:?}");
            assert!(leg.content_length.unwrap() > prompt.len() as u64);
        }
    }
}

/// SGLang's native `/generate` (what `bench_serving --backend sglang` sends): both legs get the
/// client's body plus the bootstrap fields, on `/generate`, as SGLang's mini_lb sends it
/// (`python/sglang/srt/disaggregation/mini_lb.py`); decode's answer comes back untouched, its
/// `data:` stream included. A batch (`text` as a list, `input_ids` as a list of lists) gets
/// the three fields as lists of its size with a room per item.
#[tokio::test]
async fn sglang_generate_gets_bootstrap_fields_single_and_batched() {
    let prefill = fake("prefill").sglang_prefill().start().await;
    let decode = fake("decode").start().await;
    let mut cfg = config_dialect(Dialect::Sglang, &[&prefill], &[&decode]);
    cfg.bootstrap_ports = vec![Some(8998)];
    let url = router(cfg).await;
    let params = json!({"temperature": 0.0, "max_new_tokens": 8, "ignore_eos": true});
    let cases = [
        (
            json!({"text": "hello", "sampling_params": params, "stream": false}),
            None,
        ),
        (
            json!({"input_ids": [1, 2, 3], "sampling_params": params}),
            None,
        ),
        (
            json!({"text": ["a", "b", "c"], "sampling_params": params}),
            Some(3),
        ),
        (
            json!({"input_ids": [[1, 2], [3]], "sampling_params": [params, params]}),
            Some(2),
        ),
    ];
    for (i, (req, batch)) in cases.iter().enumerate() {
        let resp = post(&url, "/generate", req, None).await;
        assert_eq!(resp.status(), 200, "{req}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["id"], "gen-1", "decode's answer is relayed");
        let (p, d) = (&prefill.seen()[i], &decode.seen()[i]);
        assert_eq!(
            (p.path.as_str(), d.path.as_str()),
            ("/generate", "/generate")
        );
        assert_eq!(p.body, d.body, "both legs get the same body");
        let mut want = req.clone();
        match batch {
            None => {
                let room = d.body["bootstrap_room"].as_u64().expect("an integer room");
                assert!(room < 1 << 63);
                want["bootstrap_host"] = json!("127.0.0.1");
                want["bootstrap_port"] = json!(8998);
                want["bootstrap_room"] = json!(room);
            }
            Some(n) => {
                let rooms: Vec<u64> = (d.body["bootstrap_room"].as_array())
                    .expect("a list of rooms")
                    .iter()
                    .map(|r| r.as_u64().expect("integer rooms"))
                    .collect();
                assert_eq!(rooms.len(), *n, "{req}");
                let mut distinct = rooms.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), *n, "one room per item: {rooms:?}");
                want["bootstrap_host"] = json!(vec!["127.0.0.1"; *n]);
                want["bootstrap_port"] = json!(vec![8998; *n]);
                want["bootstrap_room"] = json!(rooms);
            }
        }
        assert_eq!(d.body, want, "{req}");
    }

    // Streamed: decode's SSE bytes are relayed as they are (mini_lb relays decode's chunks).
    let req = json!({"text": "hello", "sampling_params": params, "stream": true});
    let resp = post(&url, "/generate", &req, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(LIMIT, resp.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, format!("{CHUNK_1}{}", support::CHUNK_REST).as_bytes());
}

/// A completions `prompt` that is a list of prompts (strings or token-id lists) is a batch for
/// SGLang (sgl-router's `get_completion_batch_size`); a flat list of token ids is one prompt.
#[tokio::test]
async fn sglang_batched_completions_get_one_room_per_prompt() {
    let prefill = fake("prefill").sglang_prefill().start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Sglang, &[&prefill], &[&decode])).await;
    for (prompt, batch) in [
        (json!(["one", "two"]), Some(2)),
        (json!([[1, 2], [3, 4], [5]]), Some(3)),
        (json!([1, 2, 3]), None),
    ] {
        let req = json!({"model": "m", "prompt": prompt, "max_tokens": 4});
        assert_eq!(
            post(&url, "/v1/completions", &req, None).await.status(),
            200
        );
        let d = decode.bodies().pop().unwrap();
        assert_eq!(prefill.bodies().pop().unwrap(), d);
        match batch {
            Some(n) => {
                assert_eq!(d["bootstrap_host"], json!(vec!["127.0.0.1"; n]), "{prompt}");
                assert_eq!(d["bootstrap_port"], json!(vec![Value::Null; n]), "{prompt}");
                assert_eq!(d["bootstrap_room"].as_array().unwrap().len(), n, "{prompt}");
            }
            None => assert!(d["bootstrap_room"].is_u64(), "{prompt}: {d}"),
        }
    }
}

/// `/generate` is SGLang's own API: vLLM's and TensorRT-LLM's routers do not serve it, and
/// their workers have no such route. Our router says so with a 404 that names the fix, and
/// sends nothing to any worker.
#[tokio::test]
async fn generate_is_a_404_naming_the_fix_outside_the_sglang_dialect() {
    for dialect in [Dialect::Trtllm, Dialect::Vllm] {
        let prefill = fake("prefill").start().await;
        let decode = fake("decode").start().await;
        let url = router(config_dialect(dialect, &[&prefill], &[&decode])).await;
        let req = json!({"text": "hello", "sampling_params": {"max_new_tokens": 4}});
        let msg = api_error(post(&url, "/generate", &req, None).await, 404).await;
        assert!(msg.contains(dialect.as_str()), "{msg}");
        assert!(msg.contains("--dialect sglang"), "{msg}");
        assert!(msg.contains("/v1/completions"), "{msg}");
        assert!(prefill.seen().is_empty() && decode.seen().is_empty());
        // Other unknown routes keep the plain 404.
        let msg = api_error(post(&url, "/v2/generate", &req, None).await, 404).await;
        assert_eq!(msg, "no route for POST /v2/generate");
    }
}

/// What `/generate` bodies the router refuses itself, naming the field.
#[tokio::test]
async fn sglang_generate_without_an_input_is_a_400_naming_the_fields() {
    let prefill = fake("prefill").sglang_prefill().start().await;
    let decode = fake("decode").start().await;
    let url = router(config_dialect(Dialect::Sglang, &[&prefill], &[&decode])).await;
    for (req, want) in [
        (
            json!({"sampling_params": {}}),
            "one of `text`, `input_ids` or `input_embeds`",
        ),
        (json!({"text": 5}), "`text` must be a string or an array"),
        (json!({"input_ids": []}), "`input_ids` cannot be empty"),
        (
            json!({"text": "a", "sampling_params": 3}),
            "`sampling_params` must be",
        ),
        (
            json!({"text": "a", "stream": "yes"}),
            "`stream` must be a boolean",
        ),
    ] {
        let msg = api_error(post(&url, "/generate", &req, None).await, 400).await;
        assert!(msg.contains(want), "{req}: {msg}");
    }
    assert!(prefill.seen().is_empty() && decode.seen().is_empty());
}

/// A `/generate` worker that answers as SGLang does with `return_logprob`: each prompt's
/// `meta_info.input_token_logprobs` holds the `[logprob, id, null]` rows this leg computed.
async fn logprob_worker(rows: Value, text: &'static str) -> String {
    use axum::routing::post;
    let answer = move |body: axum::Json<Value>| {
        let rows = rows.clone();
        async move {
            let one = json!({"text": text, "meta_info": {"id": "r", "input_token_logprobs": rows}});
            axum::Json(match body.0["text"].as_array() {
                Some(batch) => json!(vec![one; batch.len()]),
                None => one,
            })
        }
    };
    support::serve(axum::Router::new().route("/generate", post(answer))).await
}

/// With `return_logprob`, a whole `/generate` answer carries prefill's input logprobs before
/// decode's, as SGLang's mini_lb and sgl-router merge them (`meta_info.input_token_logprobs`);
/// without it, decode's answer is relayed untouched.
#[tokio::test]
async fn sglang_generate_merges_the_prefill_legs_input_logprobs() {
    let prefill = logprob_worker(json!([[-1.0, 1, null], [-2.0, 2, null]]), "").await;
    let decode = logprob_worker(json!([[-3.0, 3, null]]), " out").await;
    let mut cfg = support::config_urls(vec![prefill], vec![decode]);
    cfg.dialect = Dialect::Sglang;
    let url = router(cfg).await;
    let merged = json!([[-1.0, 1, null], [-2.0, 2, null], [-3.0, 3, null]]);
    let req =
        json!({"text": "a b", "return_logprob": true, "sampling_params": {"max_new_tokens": 2}});
    let resp = post(&url, "/generate", &req, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["meta_info"]["input_token_logprobs"], merged, "{body}");
    assert_eq!(body["text"], " out", "decode's answer otherwise");

    let mut batch = req.clone();
    batch["text"] = json!(["a", "b"]);
    batch["return_logprob"] = json!([false, true]);
    let body: Value = post(&url, "/generate", &batch, None)
        .await
        .json()
        .await
        .unwrap();
    for item in body.as_array().expect("a list") {
        assert_eq!(item["meta_info"]["input_token_logprobs"], merged, "{body}");
    }

    let mut plain = req.clone();
    plain["return_logprob"] = json!(false);
    let body: Value = post(&url, "/generate", &plain, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["meta_info"]["input_token_logprobs"],
        json!([[-3.0, 3, null]])
    );
}
