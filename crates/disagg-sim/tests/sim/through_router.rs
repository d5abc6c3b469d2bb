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
    let (status, reply) = sim.post_raw(path, &body.to_string()).await;
    assert_eq!(status, 200, "{path}: {reply}");
    reply
}
