//! Timing: tokens are flushed as they fall due, on absolute deadlines. Bounds are generous for a
//! loaded 2-core machine: lower bounds are exact (deadlines cannot fire early), upper bounds loose.

use std::time::Duration;

use disagg_proto::sse::Event;
use serde_json::json;

use crate::support::{start, with_model};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_arrives_long_before_the_last_is_made() {
    let sim = start(&["--itl", "100ms", "--prefill-per-token", "0s"]).await;
    let (sent, events) = sim
        .stream(&json!({"prompt": [1, 2, 3], "max_tokens": 5, "stream": true}))
        .await;
    assert_eq!(events.len(), 6);
    let first = events[0].at;
    let last = events[4].at;
    // Token 4 is due 400 ms after token 0; a buffered stream would deliver them together.
    assert!(
        last - first >= Duration::from_millis(200),
        "first chunk at {:?}, last at {:?}: the stream was not flushed per token",
        first - sent,
        last - sent
    );
    assert!(last - sent >= Duration::from_millis(400));
    assert_eq!(events[5].event, Event::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_and_itl_set_ttft_and_e2e() {
    // 100 prompt tokens × 2 ms = 200 ms prefill; then 9 gaps of 20 ms.
    let sim = start(&["--itl", "20ms", "--prefill-per-token", "2ms"]).await;
    let prompt: Vec<u32> = (0..100).collect();
    let (sent, events) = sim
        .stream(&json!({"prompt": prompt, "max_tokens": 10, "stream": true}))
        .await;
    assert_eq!(events.len(), 11);
    let ttft = events[0].at - sent;
    let e2e = events[9].at - sent;
    assert!(ttft >= Duration::from_millis(200), "ttft {ttft:?}");
    assert!(e2e >= Duration::from_millis(380), "e2e {e2e:?}");
    assert!(e2e < Duration::from_secs(5), "e2e {e2e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_itl_off_the_millisecond_grid_keeps_its_gaps() {
    // On a 1 ms release grid a 1.5 ms ITL would come out as gaps of 1 and 2 ms, each 0.5 ms
    // off; the default step divides the ITL instead.
    // The grid's error is systematic (every gap, every time) and a loaded machine's is not:
    // the best of up to five streams tells them apart where one stream under load may not.
    let mut medians = Vec::new();
    while medians.len() < 5 && !medians.iter().any(|m| *m < Duration::from_micros(400)) {
        let sim = start(&["--itl", "1500us", "--prefill-per-token", "0s"]).await;
        let (_, events) = sim
            .stream(&json!({"prompt": [1, 2, 3], "max_tokens": 60, "stream": true}))
            .await;
        assert_eq!(events.len(), 61);
        let state = sim.state.as_ref().expect("an in-process sim");
        let (gaps, median, _) = state.token_gap_error(&[0.5]);
        assert_eq!(gaps, 59);
        medians.push(median[0].expect("gaps were measured"));
    }
    // The 1 ms grid puts every gap 500 µs off (525-530 µs measured with `--clock-step 1ms`), so
    // 400 µs still tells the two apart while leaving room for a loaded machine's late wake-ups.
    assert!(
        medians.iter().any(|m| *m < Duration::from_micros(400)),
        "median gap errors {medians:?} (the sim's own release times)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_only_skips_prefill() {
    // A huge per-token prefill would make any prefill obvious.
    let sim = start(&["--itl", "10ms", "--prefill-per-token", "1s"]).await;
    // Kept alive: the generation sim fetches the KV record from it.
    let sim_ctx = start(&["--itl", "10ms", "--prefill-per-token", "0s"]).await;
    let (status, ctx) = sim_ctx
        .complete(
            &json!({"prompt": [9, 9], "disaggregated_params": {"request_type": "context_only"}}),
        )
        .await;
    assert_eq!(status, 200, "{ctx}");
    let mut params = ctx["choices"][0]["disaggregated_params"].clone();
    params["request_type"] = json!("generation_only");
    let (sent, events) = sim
        .stream(&json!({"prompt": [9, 9], "max_tokens": 3, "stream": true, "disaggregated_params": params}))
        .await;
    assert_eq!(events.len(), 4);
    assert!(events[2].at - sent >= Duration::from_millis(20));
    assert!(
        events[2].at - sent < Duration::from_millis(1500),
        "prefill was not skipped"
    );
}

#[tokio::test]
async fn chat_streams_open_with_a_role_only_chunk_then_content_deltas() {
    let sim = start(&["--itl", "1ms"]).await;
    let chat = json!({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3,
                      "stream": true, "stream_options": {"include_usage": true}});
    let r = sim
        .client
        .post(sim.url("/v1/chat/completions"))
        .json(&with_model(&chat))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    let frames: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|f| *f != "[DONE]")
        .map(|f| serde_json::from_str(f).expect("JSON frame"))
        .collect();
    // As vLLM, SGLang and TensorRT-LLM stream chat: the role alone with empty content, then one
    // delta per token.
    assert_eq!(frames.len(), 5, "the role, 3 tokens and usage: {text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(frames[0]["object"], "chat.completion.chunk");
    assert_eq!(
        frames[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for f in &frames[1..4] {
        assert!(f["choices"][0]["delta"].get("role").is_none(), "{f}");
        assert_ne!(f["choices"][0]["delta"]["content"], "", "{f}");
    }
    assert_eq!(frames[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(frames[4]["usage"]["completion_tokens"], 3);
}
