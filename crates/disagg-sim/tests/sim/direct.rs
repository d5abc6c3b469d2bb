//! Requests a client sends a worker directly, not through a PD router (how `disagg run` probes
//! a worker whose router is not its own): served as the real engine serves them, refused where
//! it refuses them.

use std::time::Duration;

use serde_json::json;

use crate::support::{error_message, start};

fn flags<'a>(dialect: &'a str, role: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut f = vec!["--dialect", dialect, "--role", role, "--itl", "1ms"];
    f.extend_from_slice(extra);
    f
}

/// TensorRT-LLM's disaggregated server sends a generation server the whole request when
/// conditional disaggregation skips the context leg; a context server gets `context_only`.
#[tokio::test]
async fn trtllm_generation_serves_a_whole_request_and_context_a_context_only_one() {
    let generation = start(&flags("trtllm", "generation", &[])).await;
    let (status, body) = generation
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 1, "{body}");

    let context = start(&flags("trtllm", "context", &[])).await;
    let (status, body) = context
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 1,
            "disaggregated_params": {"request_type": "context_only"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["choices"][0]["disaggregated_params"]["ctx_request_id"].is_u64(),
        "{body}"
    );
}

/// vLLM's connectors load no remote KV without `do_remote_prefill` and keep none without
/// `do_remote_decode`: params asking for neither run the request whole, on a decode server
/// too. No params at all, at a decode server, is the proxy trap the sim still refuses.
#[tokio::test]
async fn vllm_decode_serves_explicitly_local_params_and_still_refuses_none() {
    let decode = start(&flags("vllm", "generation", &["--model", "m"])).await;
    let local = json!({"model": "m", "prompt": [1, 2, 3], "max_tokens": 1,
        "kv_transfer_params": {"do_remote_decode": false, "do_remote_prefill": false}});
    let (status, body) = decode.complete(&local).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 1, "{body}");

    let (status, body) = decode
        .complete(&json!({"model": "m", "prompt": [1, 2, 3], "max_tokens": 1}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        error_message(&body).contains("without kv_transfer_params"),
        "{body}"
    );
}

/// SGLang's fake bootstrap host: both halves answer, the prefill keeps nothing for a peer, the
/// decode fetches nothing (it would otherwise wait on 2.2.2.2's bootstrap server). Without a
/// room, SGLang refuses the request, and so does the sim.
#[tokio::test]
async fn sglang_fake_bootstrap_host_transfers_nothing_and_a_room_is_still_required() {
    let prefill = start(&flags("sglang", "context", &[])).await;
    let decode = start(&flags(
        "sglang",
        "generation",
        &["--kv-wait-timeout", "300ms"],
    ))
    .await;
    let fake = json!({"prompt": [1, 2, 3], "max_tokens": 1,
        "bootstrap_host": "2.2.2.2", "bootstrap_room": 77});
    for (sim, half) in [(&prefill, "prefill"), (&decode, "decode")] {
        let r = tokio::time::timeout(Duration::from_secs(5), sim.complete(&fake))
            .await
            .unwrap_or_else(|_| panic!("{half} did not answer a fake-transfer request"));
        assert_eq!(r.0, 200, "{half}: {}", r.1);
    }
    // The prefill kept no KV in room 77: a real decode of that room finds none.
    let (host, _) = prefill.authority().split_once(':').unwrap();
    let (status, body) = decode
        .complete(
            &json!({"prompt": [1, 2, 3], "max_tokens": 1, "bootstrap_host": host,
            "bootstrap_port": prefill.bootstrap_port(), "bootstrap_room": 77}),
        )
        .await;
    assert!(status >= 400, "{status}: {body}");

    let (status, body) = prefill
        .complete(&json!({"prompt": [1, 2, 3], "max_tokens": 1, "bootstrap_host": "2.2.2.2"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("bootstrap_room"), "{body}");
}
