//! Each dialect the router speaks, end to end: client → `disagg router` → context and
//! generation sims (with the real KV fetch between them) gives the aggregated sim's output.
//!
//! SGLang's bootstrap port is the context sim's bootstrap server, so the router is told it with
//! `--prefill host:port@bootstrap`.

use clap::Parser;
use serde_json::json;

use crate::support::{Sim, client_for, start, streamed_text};

const DIALECTS: &[&str] = &["trtllm", "vllm", "sglang"];

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    router: disagg_router::RouterArgs,
}

/// A router on 127.0.0.1:0 in front of `ctx` and `generation`, as a [`Sim`]-shaped client.
pub(crate) async fn router(
    dialect: &str,
    ctx: &Sim,
    generation: &Sim,
) -> (Sim, tokio::task::JoinHandle<()>) {
    let prefill = if dialect == "sglang" {
        format!("{}@{}", ctx.authority(), ctx.bootstrap_port())
    } else {
        ctx.authority().to_string()
    };
    let argv = [
        "router",
        "--dialect",
        dialect,
        "--prefill",
        &prefill,
        "--decode",
        generation.authority(),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ];
    let cfg = Cli::try_parse_from(argv)
        .expect("router flags")
        .router
        .into_config()
        .expect("router config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = disagg_router::serve(listener, cfg, std::future::pending()).await;
    });
    (client_for(format!("http://{addr}")), task)
}

#[tokio::test]
async fn every_dialect_through_the_router_matches_aggregated_output() {
    for dialect in DIALECTS {
        let flags = |role| vec!["--dialect", dialect, "--role", role, "--itl", "1ms"];
        let ctx = start(&flags("context")).await;
        let generation = start(&flags("generation")).await;
        let both = start(&flags("both")).await;
        let (via_router, task) = router(dialect, &ctx, &generation).await;

        let req = json!({"prompt": "a b c d e f", "max_tokens": 9});
        let (status, agg) = both.complete(&req).await;
        assert_eq!(status, 200, "{agg}");
        let (status, routed) = via_router.complete(&req).await;
        assert_eq!(status, 200, "{dialect}: {routed}");
        assert_eq!(
            routed["choices"][0]["text"], agg["choices"][0]["text"],
            "{dialect}"
        );
        assert_eq!(routed["usage"], agg["usage"], "{dialect}");

        let mut streaming = req.clone();
        streaming["stream"] = json!(true);
        let (_, events) = via_router.stream(&streaming).await;
        assert_eq!(
            streamed_text(&events),
            agg["choices"][0]["text"].as_str().unwrap_or(""),
            "{dialect}"
        );
        // Chat, whole: the same tokens come back as the assistant message.
        let chat = json!({"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 5});
        let agg_chat = post(&both, "/v1/chat/completions", &chat).await;
        let routed_chat = post(&via_router, "/v1/chat/completions", &chat).await;
        assert_eq!(agg_chat["object"], "chat.completion", "{agg_chat}");
        assert_eq!(
            routed_chat["choices"][0]["message"], agg_chat["choices"][0]["message"],
            "{dialect}: {routed_chat}"
        );
        assert_eq!(routed_chat["usage"], agg_chat["usage"], "{dialect}");

        let fetched = crate::support::metric(&ctx.metrics().await, "sim_kv_records_fetched_total");
        assert_eq!(
            fetched, 3.0,
            "{dialect}: every hand-off went through the KV fetch"
        );
        task.abort();
    }
}

async fn post(sim: &Sim, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let (status, reply) = sim
        .post_raw(path, &crate::support::with_model(body).to_string())
        .await;
    assert_eq!(status, 200, "{path}: {reply}");
    reply
}

/// SGLang's native `/generate` and batches, client → router → prefill and decode sims over
/// loopback: the router adds the bootstrap fields (lists for a batch), the sims hand the KV off
/// per prompt, and the client gets what an aggregated SGLang sim answers.
#[tokio::test]
async fn sglang_generate_and_batches_through_the_router_match_aggregated_output() {
    let flags = |role| vec!["--dialect", "sglang", "--role", role, "--itl", "1ms"];
    let ctx = start(&flags("context")).await;
    let generation = start(&flags("generation")).await;
    let both = start(&flags("both")).await;
    let (via_router, task) = router("sglang", &ctx, &generation).await;
    let params = json!({"temperature": 0.0, "max_new_tokens": 6, "ignore_eos": true});
    for req in [
        json!({"text": "a b c d", "sampling_params": params}),
        json!({"input_ids": [5, 6, 7], "sampling_params": params}),
        json!({"text": ["a b", "c d e", "f"], "sampling_params": params}),
        json!({"input_ids": [[1, 2], [3, 4, 5]], "sampling_params": params}),
    ] {
        let agg = post(&both, "/generate", &req).await;
        let routed = post(&via_router, "/generate", &req).await;
        let pairs: Vec<(&serde_json::Value, &serde_json::Value)> = match agg.as_array() {
            Some(list) => list
                .iter()
                .zip(routed.as_array().expect("a list"))
                .collect(),
            None => vec![(&agg, &routed)],
        };
        for (a, r) in pairs {
            assert_eq!(
                (&r["text"], &r["output_ids"]),
                (&a["text"], &a["output_ids"]),
                "{req}"
            );
            assert_eq!(r["meta_info"]["completion_tokens"], 6, "{req}");
        }
    }
    // Streamed: SGLang's `data:` objects with cumulative text, relayed as decode sends them.
    let req = json!({"text": "a b c d", "sampling_params": params, "stream": true});
    let agg = post(
        &both,
        "/generate",
        &json!({"text": "a b c d", "sampling_params": params}),
    )
    .await;
    let (_, events) = via_router.stream_at("/generate", &req).await;
    let last = events[events.len() - 2].json();
    assert_eq!(last["text"], agg["text"]);
    assert_eq!(
        last["meta_info"]["finish_reason"],
        json!({"type": "length", "length": 6})
    );
    // A batched completions request: one choice per prompt.
    let req = json!({"prompt": ["a b c", "d e"], "max_tokens": 4});
    let agg = post(&both, "/v1/completions", &req).await;
    let routed = post(&via_router, "/v1/completions", &req).await;
    assert_eq!(routed["choices"], agg["choices"]);
    assert_eq!(routed["usage"], agg["usage"]);
    let fetched = crate::support::metric(&ctx.metrics().await, "sim_kv_records_fetched_total");
    // 1 + 1 + 3 + 2 prompts whole, 1 streamed, 2 in the completions batch.
    assert_eq!(fetched, 10.0, "a hand-off per prompt");
    task.abort();
}

/// What SGLang's PD routers serve beside generation: every worker's server info by role (the
/// decode side's internal states joined, which `bench_serving --backend sglang` reads), a
/// context worker's model info, and `/health_generate` of every worker, naming the one that
/// fails it. `/version` in every dialect.
#[tokio::test]
async fn the_sglang_router_answers_server_model_and_generate_health_from_its_workers() {
    let flags = |role| vec!["--dialect", "sglang", "--role", role, "--model", "qwen"];
    let ctx = start(&flags("context")).await;
    let generation = start(&flags("generation")).await;
    let (via_router, task) = router("sglang", &ctx, &generation).await;
    for path in ["/get_server_info", "/server_info"] {
        let (status, body) = via_router.get(path).await;
        assert_eq!(status, 200, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["prefill"][0]["disaggregation_mode"], "prefill", "{v}");
        assert_eq!(
            v["prefill"][0]["disaggregation_bootstrap_port"],
            ctx.bootstrap_port()
        );
        assert_eq!(v["decode"][0]["disaggregation_mode"], "decode", "{v}");
        assert_eq!(
            v["internal_states"], v["decode"][0]["internal_states"],
            "{v}"
        );
    }
    let (status, body) = via_router.get("/get_model_info").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["served_model_name"], "qwen");
    assert_eq!(
        v["disaggregation_mode"], "prefill",
        "a context worker's: {v}"
    );
    assert_eq!(via_router.get("/health_generate").await.0, 200);
    let (status, body) = via_router.get("/version").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    task.abort();
    // A generation worker that cannot generate fails the router's /health_generate, named.
    let stuck = start(&[&flags("generation")[..], &["--never-ready"]].concat()).await;
    let (via_router, task) = router("sglang", &ctx, &stuck).await;
    let (status, body) = via_router.get("/health_generate").await;
    assert_eq!(status, 503);
    let said = String::from_utf8_lossy(&body).into_owned();
    assert!(
        said.contains(&format!("generation worker {}", stuck.base))
            && said.contains("/health_generate answered 503"),
        "{said}"
    );
    task.abort();
    // A worker that cannot be reached is said to have failed, not to have answered badly.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        crate::support::client_for(format!("http://{}", l.local_addr().unwrap()))
    };
    let (via_router, task) = router("sglang", &ctx, &down).await;
    let (status, body) = via_router.get("/get_server_info").await;
    assert_eq!(status, 502);
    let said = String::from_utf8_lossy(&body).into_owned();
    assert!(
        said.contains(&format!("generation worker {} failed: ", down.base))
            && !said.contains("unusable"),
        "{said}"
    );
    task.abort();
    // Another dialect has no such routes, and answers /version.
    let vctx = start(&["--dialect", "vllm", "--role", "context"]).await;
    let vgen = start(&["--dialect", "vllm", "--role", "generation"]).await;
    let (via_router, task) = router("vllm", &vctx, &vgen).await;
    assert_eq!(via_router.get("/get_server_info").await.0, 404);
    assert_eq!(via_router.get("/version").await.0, 200);
    task.abort();
}

/// The bodies a sim logged (`--request-log`).
fn logged_bodies(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("request log written")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["body"].clone())
        .collect()
}

#[tokio::test]
async fn the_router_sends_disagg_request_ids_to_sims_that_play_a_version_taking_them() {
    for (version, state) in [("1.3.0", "sent"), ("1.0.0", "omitted (version below 1.3)")] {
        let dir = tempfile::tempdir().unwrap();
        let (ctx_log, gen_log) = (dir.path().join("ctx.jsonl"), dir.path().join("gen.jsonl"));
        let flags = |role, log: &std::path::Path| {
            let log = log.to_str().expect("UTF-8 path").to_string();
            vec![
                "--role".to_string(),
                role,
                "--itl".into(),
                "1ms".into(),
                "--trtllm-version".into(),
                version.to_string(),
                "--request-log".into(),
                log,
            ]
        };
        let ctx_flags = flags("context".to_string(), &ctx_log);
        let gen_flags = flags("generation".to_string(), &gen_log);
        let ctx = start(&ctx_flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let generation = start(&gen_flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let (via_router, task) = router("trtllm", &ctx, &generation).await;

        // The router learns the context sim's version from its /version at start.
        let end = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (_, census) = via_router.get("/workers").await;
            let census: serde_json::Value = serde_json::from_slice(&census).expect("census");
            if census["prefill"]["workers"][0]["disagg_request_id"] == state {
                break;
            }
            assert!(tokio::time::Instant::now() < end, "{version}: {census}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (status, routed) = via_router
            .complete(&json!({"prompt": "a b c d", "max_tokens": 5}))
            .await;
        assert_eq!(status, 200, "{version}: {routed}");

        let ctx_id = &logged_bodies(&ctx_log)[0]["disaggregated_params"]["disagg_request_id"];
        let gen_id = &logged_bodies(&gen_log)[0]["disaggregated_params"]["disagg_request_id"];
        if version == "1.3.0" {
            assert!(ctx_id.as_u64().is_some_and(|id| id >= 1 << 40), "{ctx_id}");
            assert_eq!(gen_id, ctx_id, "both legs carry one id");
        } else {
            assert!(ctx_id.is_null() && gen_id.is_null(), "{ctx_id} {gen_id}");
        }
        task.abort();
    }
}
