//! Resilience end to end: ejection and readmission, retries, deadlines, cancellation on client
//! hang-up, honest statuses, the census and the metrics.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use disagg_proto::ApiError;
use disagg_router::Dialect;
use serde_json::{Value, json};
use support::{
    CHUNK_1, Ctx, Gen, config, config_dialect, config_urls, drop_signal, eventually, fake, router,
};
use tokio::sync::Notify;

const LIMIT: Duration = Duration::from_secs(10);

async fn post(url: &str, body: &Value) -> reqwest::Response {
    let req = reqwest::Client::new()
        .post(format!("{url}/v1/completions"))
        .json(body)
        .send();
    tokio::time::timeout(LIMIT, req).await.unwrap().unwrap()
}

async fn api_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body = resp.bytes().await.unwrap();
    ApiError::from_body(status, &body)
        .unwrap_or_else(|| panic!("not an OpenAI error body: {body:?}"))
        .message
}

async fn get_json(url: &str, path: &str) -> Value {
    reqwest::get(format!("{url}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn metrics_text(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn worker_state(url: &str, group: &str, worker: &str) -> Value {
    let census = get_json(url, "/workers").await;
    census[group]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["url"] == worker)
        .cloned()
        .unwrap_or(Value::Null)
}

fn completion(stream: bool) -> Value {
    json!({"model": "m", "prompt": "hello", "max_tokens": 4, "stream": stream})
}

#[tokio::test]
async fn dead_context_worker_is_skipped_ejected_and_readmitted_when_back() {
    // A's port is reserved and released: connections to it are refused until A comes back.
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = a_listener.local_addr().unwrap();
    drop(a_listener);
    let a_url = format!("http://{a_addr}");
    let b = fake("b").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config_urls(
        vec![a_url.clone(), b.url.clone()],
        vec![generation.url.clone()],
    );
    cfg.health_interval = Duration::from_millis(50);
    let url = router(cfg).await;

    for _ in 0..10 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert_eq!(b.bodies().len(), 10, "every request went through B");
    eventually(LIMIT, "A is ejected", || async {
        worker_state(&url, "prefill", &a_url).await["state"] == "ejected"
    })
    .await;
    assert_eq!(
        worker_state(&url, "prefill", &b.url).await["state"],
        "healthy"
    );

    let a = fake("a")
        .start_on(tokio::net::TcpListener::bind(a_addr).await.unwrap())
        .await;
    eventually(LIMIT, "A is readmitted", || async {
        worker_state(&url, "prefill", &a_url).await["state"] == "healthy"
    })
    .await;
    for _ in 0..4 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert!(!a.bodies().is_empty(), "A gets traffic again");

    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_ejections_total{leg=\"context\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("disagg_router_readmissions_total{leg=\"context\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn generation_5xx_is_retried_on_another_worker() {
    let ctx = fake("ctx").start().await;
    let broken = fake("broken")
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let good = fake("good").start().await;
    let url = router(config(&[&ctx], &[&broken, &good])).await;
    for _ in 0..4 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert_eq!(good.bodies().len(), 4);
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_retries_total{leg=\"generation\"} 2"),
        "{metrics}"
    );
}

/// A generation worker that takes requests and answers none while its `/health` passes (a hung
/// engine) is passed over by new requests once stalled for `--stall-timeout`, and shown as
/// stalled in `/workers`; the request it holds is cut when its client hangs up.
#[tokio::test]
async fn a_stalled_worker_is_passed_over_while_another_is_not() {
    let ctx = fake("ctx").start().await;
    let (dropped, hung_up) = drop_signal();
    let hung = fake("hung")
        .generation(Gen::HangSignal(dropped))
        .start()
        .await;
    let good = fake("good").start().await;
    let mut cfg = config(&[&ctx], &[&hung, &good]);
    cfg.stall_timeout = Duration::from_millis(300);
    let url = router(cfg).await;
    // Round robin sends one of these two to each; the hung worker keeps its own.
    let stuck: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { post(&url, &completion(false)).await.status() })
        })
        .collect();
    eventually(LIMIT, "each worker got one request", || async {
        hung.bodies().len() == 1 && good.bodies().len() == 1
    })
    .await;
    assert_eq!(
        worker_state(&url, "decode", &hung.url).await["stalled"],
        false,
        "not stalled yet"
    );
    eventually(LIMIT, "the hung worker counts as stalled", || async {
        worker_state(&url, "decode", &hung.url).await["stalled"] == true
    })
    .await;
    for _ in 0..6 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert_eq!(
        hung.bodies().len(),
        1,
        "a new request went to the stalled worker"
    );
    assert_eq!(good.bodies().len(), 7);
    assert_eq!(
        worker_state(&url, "decode", &good.url).await["stalled"],
        false
    );
    for task in stuck {
        task.abort();
    }
    tokio::time::timeout(LIMIT, hung_up)
        .await
        .expect("the router hung up on the stalled worker when its client went")
        .unwrap();
}

/// A generation worker that answers `/health` but fails every request (500s here; a hung one
/// hitting its deadlines alike) is ejected after `--request-failures` of them in a row, and its
/// passing probes do not let it back before `--ejection-cooldown`: requests stop paying a retry
/// on it. The census shows it ejected, with its failed requests counted.
#[tokio::test]
async fn a_worker_failing_every_request_is_ejected_however_its_health_answers() {
    let ctx = fake("ctx").start().await;
    let broken = fake("broken")
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let good = fake("good").start().await;
    let mut cfg = config(&[&ctx], &[&broken, &good]);
    cfg.request_failures = 2;
    cfg.ejection_cooldown = Duration::from_secs(60);
    cfg.health_interval = Duration::from_millis(50);
    let url = router(cfg).await;
    for _ in 0..4 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    let state = worker_state(&url, "decode", &broken.url).await;
    assert_eq!(state["state"], "ejected", "{state}");
    assert_eq!(state["consecutive_failed_requests"], 2, "{state}");
    let tried = broken.bodies().len();
    assert_eq!(tried, 2, "ejected after two");
    // Its /health passes every 50 ms: it stays out for the cooldown, and gets nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..4 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert_eq!(
        broken.bodies().len(),
        tried,
        "a request went to the ejected worker"
    );
    assert_eq!(
        worker_state(&url, "decode", &broken.url).await["state"],
        "ejected"
    );
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_ejections_total{leg=\"generation\"} 1"),
        "{metrics}"
    );
    // The router's /health counts the workers in rotation, not those whose /health passes.
    let health: serde_json::Value = reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["generation"],
        serde_json::json!({"healthy": 1, "total": 2}),
        "{health}"
    );
}

/// A generation worker that takes requests and never answers, while its `/health` passes (a
/// hung engine's often does), under a sequential client: nothing else is in flight for the
/// stall detector to pass it over, so each request it gets waits out its deadline. The first
/// that does, having held the request past `--stall-timeout` with nothing answered, ejects it
/// at once (not after `--request-failures` of them), for the cooldown; its passing probes do not
/// bring it back sooner.
#[tokio::test]
async fn a_worker_that_hung_on_a_request_is_ejected_at_its_first_deadline() {
    let ctx = fake("ctx").start().await;
    let hung = fake("hung").generation(Gen::Hang).start().await;
    let good = fake("good").start().await;
    let mut cfg = config(&[&ctx], &[&hung, &good]);
    cfg.request_timeout = Duration::from_millis(600);
    cfg.stall_timeout = Duration::from_millis(300);
    cfg.request_failures = 5;
    cfg.ejection_cooldown = Duration::from_secs(60);
    cfg.health_interval = Duration::from_millis(50);
    let url = router(cfg).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(post(&url, &completion(false)).await.status().as_u16());
    }
    assert_eq!(
        hung.bodies().len(),
        1,
        "requests went to the hung worker: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 504).count(),
        1,
        "{statuses:?}"
    );
    let state = worker_state(&url, "decode", &hung.url).await;
    assert_eq!(state["state"], "ejected", "{state}");
    // An answered request does not count as hung: the good worker, idle between requests, is
    // in rotation.
    assert_eq!(
        worker_state(&url, "decode", &good.url).await["state"],
        "healthy"
    );
}

/// A generation worker whose every stream breaks under way, after its first byte (which counts
/// as an answer), fails its requests all the same: `--request-failures` of them in a row eject
/// it, and the requests after go to the other worker, whole.
#[tokio::test]
async fn a_worker_cutting_every_stream_under_way_is_ejected() {
    let ctx = fake("ctx").start().await;
    let cutting = fake("cutting").generation(Gen::CutStream).start().await;
    let good = fake("good").start().await;
    let mut cfg = config(&[&ctx], &[&cutting, &good]);
    cfg.request_failures = 2;
    cfg.ejection_cooldown = Duration::from_secs(60);
    let url = router(cfg).await;
    let mut cut = 0;
    for _ in 0..8 {
        let resp = post(&url, &completion(true)).await;
        assert_eq!(resp.status(), 200);
        if resp.bytes().await.is_err() {
            cut += 1;
        }
    }
    assert_eq!(cut, 2, "ejected after two cut streams");
    assert_eq!(cutting.bodies().len(), 2);
    let state = worker_state(&url, "decode", &cutting.url).await;
    assert_eq!(state["state"], "ejected", "{state}");
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_ejections_total{leg=\"generation\"} 1"),
        "{metrics}"
    );
}

/// Every generation worker ejected for failing its requests, each still answering its own
/// `/health`: the router's `/health` says 503, as its requests get, not "ok".
#[tokio::test]
async fn health_is_503_while_every_generation_worker_is_ejected() {
    let ctx = fake("ctx").start().await;
    let broken = fake("broken")
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&broken]);
    cfg.request_failures = 2;
    cfg.ejection_cooldown = Duration::from_secs(60);
    let url = router(cfg).await;
    for _ in 0..2 {
        assert_eq!(post(&url, &completion(false)).await.status(), 502);
    }
    assert_eq!(post(&url, &completion(false)).await.status(), 503);
    let health = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(health.status(), 503);
}

/// `/v1/models` carries the client's `Authorization` to the worker, as the completions do: a
/// worker started with an API key refused it without.
#[tokio::test]
async fn models_carries_the_clients_authorization() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/models"))
        .header("authorization", "Bearer sekret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = generation.seen();
    let models = seen.iter().find(|s| s.path == "/v1/models").expect("asked");
    assert_eq!(models.authorization.as_deref(), Some("Bearer sekret"));
}

/// SGLang's `/health` generates a token before it answers (a second or more on a busy
/// worker): in the SGLang dialect a probe waits for it, where in the others a worker that slow
/// is counted down. Two such probes in a row eject a TensorRT-LLM worker; the SGLang one stays.
#[tokio::test]
async fn a_slow_sglang_health_is_waited_for() {
    let mut routers = Vec::new();
    for (dialect, ejected) in [
        (disagg_router::Dialect::Sglang, false),
        (disagg_router::Dialect::Trtllm, true),
    ] {
        let ctx = fake("ctx").start().await;
        let slow = fake("slow")
            .health_delay(Duration::from_millis(2000))
            .start()
            .await;
        let mut cfg = support::config_dialect(dialect, &[&ctx], &[&slow]);
        cfg.health_interval = Duration::from_secs(3);
        routers.push((
            dialect,
            ejected,
            router(cfg).await,
            slow.url.clone(),
            ctx,
            slow,
        ));
    }
    // Two probe rounds of a 2 s /health: the TensorRT-LLM one fails at 1.5 s and again at 6 s.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    for (dialect, ejected, url, slow, _ctx, _worker) in &routers {
        let state = worker_state(url, "decode", slow).await;
        let want = if *ejected { "ejected" } else { "healthy" };
        assert_eq!(state["state"], want, "{dialect:?}: {state}");
    }
}

/// `/v1/models` from a router whose first generation worker is dead but not yet ejected (the
/// health checker has not come round): the next worker answers, as a benchmark asking the
/// model's name at its start needs; the dead one's refusal counts towards its ejection.
#[tokio::test]
async fn models_passes_over_a_worker_that_cannot_be_reached() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config_urls(
        vec![ctx.url.clone()],
        vec![dead_url.clone(), generation.url.clone()],
    );
    cfg.health_interval = Duration::from_secs(3600);
    let url = router(cfg).await;
    let resp = reqwest::get(format!("{url}/v1/models")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"][0]["id"], "fake-model", "{body}");
    let dead_state = worker_state(&url, "decode", &dead_url).await;
    assert!(
        dead_state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the connection")),
        "{dead_state}"
    );
}

/// A router started before its generation worker: 503 while nothing answers there, then,
/// once the worker is up, served within a second, not up to a whole `--health-interval` (5 s)
/// later: a group with no healthy worker is probed every 500 ms.
#[tokio::test]
async fn a_router_started_before_its_worker_serves_as_soon_as_it_is_up() {
    let ctx = fake("ctx").start().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gen_url = format!("http://127.0.0.1:{port}");
    let mut cfg = config_urls(vec![ctx.url.clone()], vec![gen_url.clone()]);
    // Out at its first failed probe, so the test need not wait for the second, 5 s later.
    cfg.eject_after = std::num::NonZeroU32::MIN;
    let url = router(cfg).await;
    eventually(LIMIT, "the absent worker is ejected", || async {
        worker_state(&url, "decode", &gen_url).await["state"] == "ejected"
    })
    .await;
    api_error(post(&url, &completion(false)).await, 503).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let up = Instant::now();
    let _generation = fake("gen").start_on(listener).await;
    eventually(LIMIT, "the worker is readmitted", || async {
        worker_state(&url, "decode", &gen_url).await["state"] == "healthy"
    })
    .await;
    assert!(
        up.elapsed() < Duration::from_secs(2),
        "readmitted {:?} after it came up",
        up.elapsed()
    );
    assert_eq!(post(&url, &completion(false)).await.status(), 200);
}

/// A generation worker that took the request and died before answering may have pulled the
/// context's KV, which the context worker then frees: the same hand-off is not sent to another
/// worker (there it would fail as the client's fault, or read freed blocks), and the client
/// gets a 502 naming the dead worker. One that refused the connection never saw it: retried.
#[tokio::test]
async fn a_hand_off_is_not_sent_again_after_a_worker_took_it_and_died() {
    let ctx = fake("ctx").start().await;
    let crashed = fake("crashed").generation(Gen::Crash).start().await;
    let good = fake("good").start().await;
    let url = router(config(&[&ctx], &[&crashed, &good])).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = post(&url, &completion(false)).await;
        let status = resp.status().as_u16();
        if status == 502 {
            let msg = api_error(resp, 502).await;
            assert!(
                msg.contains(&format!("generation worker {} failed", crashed.url)),
                "{msg}"
            );
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502], "round robin, no retry");
    assert_eq!(crashed.bodies().len(), 2);
    assert_eq!(
        good.bodies().len(),
        2,
        "never given a crashed attempt's hand-off"
    );
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_retries_total{leg=\"generation\"} 0"),
        "{metrics}"
    );
    // A worker that refused the connection never saw the hand-off: sent on to another.
    let refused = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let url = router(config_urls(
        vec![ctx.url.clone()],
        vec![refused, good.url.clone()],
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
}

/// No context leg runs while no generation worker could take its hand-off: the 503 comes
/// first, and the context worker holds no KV for nobody.
#[tokio::test]
async fn no_context_leg_runs_while_no_generation_worker_is_healthy() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .health(StatusCode::SERVICE_UNAVAILABLE)
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.health_interval = Duration::from_millis(50);
    cfg.eject_after = std::num::NonZeroU32::MIN;
    let url = router(cfg).await;
    eventually(LIMIT, "the generation worker is ejected", || async {
        worker_state(&url, "decode", &generation.url).await["state"] == "ejected"
    })
    .await;
    let msg = api_error(post(&url, &completion(false)).await, 503).await;
    assert!(msg.contains("no healthy generation worker"), "{msg}");
    // Not "answered /health": this one was put out for its failed probes, but a worker can be
    // out for refused connections or failed requests, which /workers tells apart.
    assert!(msg.contains("GET /workers says why"), "{msg}");
    assert!(ctx.bodies().is_empty(), "no prefill: {:?}", ctx.bodies());
}

/// With no other worker to try, a failure is answered, and no retry is logged or counted.
#[tokio::test]
async fn a_lone_broken_worker_is_not_said_to_be_retried() {
    let ctx = fake("ctx").start().await;
    let broken = fake("broken")
        .generation(Gen::Status(StatusCode::INTERNAL_SERVER_ERROR))
        .start()
        .await;
    let url = router(config(&[&ctx], &[&broken])).await;
    assert_eq!(post(&url, &completion(false)).await.status(), 502);
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_retries_total{leg=\"generation\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_healthy_worker_is_a_503() {
    let ctx = fake("ctx")
        .health(StatusCode::SERVICE_UNAVAILABLE)
        .start()
        .await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.health_interval = Duration::from_millis(50);
    cfg.eject_after = std::num::NonZeroU32::MIN;
    let url = router(cfg).await;
    eventually(LIMIT, "the context worker is ejected", || async {
        worker_state(&url, "prefill", &ctx.url).await["state"] == "ejected"
    })
    .await;
    let msg = api_error(post(&url, &completion(false)).await, 503).await;
    assert!(msg.contains("no healthy context worker"), "{msg}");
}

#[tokio::test]
async fn each_deadline_is_a_504_that_names_it() {
    let (dropped, _rx) = drop_signal();
    let slow_ctx = fake("ctx").ctx(Ctx::Hang(dropped)).start().await;
    let generation = fake("gen").start().await;
    let mut cfg = config(&[&slow_ctx], &[&generation]);
    cfg.context_timeout = Some(Duration::from_millis(200));
    let url = router(cfg).await;
    let msg = api_error(post(&url, &completion(false)).await, 504).await;
    assert!(
        msg.contains("context-leg deadline") && msg.contains(&slow_ctx.url),
        "{msg}"
    );

    let ctx = fake("ctx").start().await;
    let slow_gen = fake("gen").generation(Gen::Hang).start().await;
    let mut cfg = config(&[&ctx], &[&slow_gen]);
    cfg.first_byte_timeout = Some(Duration::from_millis(200));
    let url = router(cfg).await;
    let started = Instant::now();
    let msg = api_error(post(&url, &completion(true)).await, 504).await;
    assert!(
        msg.contains("first-byte deadline") && msg.contains("generation"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn generation_failure_is_a_prompt_502() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Status(StatusCode::BAD_GATEWAY))
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let started = Instant::now();
    let msg = api_error(post(&url, &completion(true)).await, 502).await;
    assert!(started.elapsed() < Duration::from_secs(5), "promptly");
    assert!(
        msg.contains("generation") && msg.contains(&generation.url),
        "{msg}"
    );
    let census = get_json(&url, "/workers").await;
    assert_eq!(
        census["prefill"]["workers"][0]["in_flight"], 0,
        "no context leg left running"
    );
}

/// A non-streamed answer breaking off under way (a worker dying mid-answer) is a 502 naming the
/// worker, in every dialect, and is charged to it: never a 200 whose body breaks off, which a
/// client reads as a half answer or a network fault.
#[tokio::test]
async fn a_non_streamed_answer_breaking_off_is_a_502_naming_the_worker() {
    for dialect in [Dialect::Trtllm, Dialect::Vllm, Dialect::Sglang] {
        let ctx = fake("ctx").start().await;
        let cutting = fake("cutting").generation(Gen::CutStream).start().await;
        let url = router(config_dialect(dialect, &[&ctx], &[&cutting])).await;
        let started = Instant::now();
        let msg = api_error(post(&url, &completion(false)).await, 502).await;
        assert!(started.elapsed() < Duration::from_secs(5), "promptly");
        assert!(
            msg.contains("generation")
                && msg.contains(&cutting.url)
                && msg.contains("broke off under way"),
            "{dialect:?}: {msg}"
        );
        assert_eq!(cutting.bodies().len(), 1, "{dialect:?}: not retried");
        let w = worker_state(&url, "decode", &cutting.url).await;
        assert_eq!(
            w["errors"].as_u64(),
            Some(1),
            "{dialect:?}: charged once: {w}"
        );
        // A streamed answer still goes out as it comes, and is cut as it broke.
        let resp = post(&url, &completion(true)).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.bytes().await.is_err(), "{dialect:?}");
    }
}

/// A non-streamed answer still unfinished at the request deadline is the 504 it would have been
/// before its first byte, and the worker is let go.
#[tokio::test]
async fn a_non_streamed_answer_unfinished_at_the_deadline_is_a_504() {
    let (dropped, gen_dropped) = drop_signal();
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped,
        })
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.request_timeout = Duration::from_millis(500);
    let url = router(cfg).await;
    let started = Instant::now();
    let msg = api_error(post(&url, &completion(false)).await, 504).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "at the 500 ms deadline: {took:?}"
    );
    assert!(
        msg.contains(&generation.url) && msg.contains("request deadline"),
        "{msg}"
    );
    tokio::time::timeout(LIMIT, gen_dropped)
        .await
        .expect("the generation worker sees the router hang up")
        .unwrap();
    let w = worker_state(&url, "decode", &generation.url).await;
    assert_eq!(w["deadline_errors"].as_u64(), Some(1), "{w}");
}

#[tokio::test]
async fn client_hang_up_during_the_context_leg_cancels_it() {
    let (dropped, ctx_dropped) = drop_signal();
    let ctx = fake("ctx").ctx(Ctx::Hang(dropped)).start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    // The client gives up after a short while; the router must pass the hang-up on.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let out = client
        .post(format!("{url}/v1/completions"))
        .json(&completion(true))
        .send()
        .await;
    assert!(out.is_err(), "the client timed out");
    tokio::time::timeout(LIMIT, ctx_dropped)
        .await
        .expect("the context worker sees the router hang up")
        .unwrap();
    assert!(generation.bodies().is_empty());
}

#[tokio::test]
async fn census_and_metrics_follow_a_stream() {
    let release = Arc::new(Notify::new());
    let (dropped, _rx) = drop_signal();
    let ctx = fake("ctx").start().await;
    let generation = fake("gen")
        .generation(Gen::Gated {
            release: release.clone(),
            dropped,
        })
        .start()
        .await;
    let url = router(config(&[&ctx], &[&generation])).await;
    let mut resp = post(&url, &completion(true)).await;
    assert_eq!(resp.chunk().await.unwrap().unwrap(), CHUNK_1.as_bytes());

    let census = get_json(&url, "/workers").await;
    assert_eq!(census["dialect"], "trtllm");
    assert_eq!(census["prefill"]["count"], 1);
    assert_eq!(census["decode"]["policy"], "round_robin");
    assert_eq!(census["decode"]["workers"][0]["in_flight"], 1, "{census}");
    assert_eq!(census["prefill"]["workers"][0]["in_flight"], 0, "{census}");
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    let gauge = format!(
        "disagg_router_worker_in_flight{{leg=\"generation\",worker=\"{}\"}} 1",
        generation.url
    );
    assert!(text.contains(&gauge), "{text}");

    release.notify_one();
    tokio::time::timeout(LIMIT, resp.bytes())
        .await
        .unwrap()
        .unwrap();
    eventually(LIMIT, "the lease is released", || async {
        get_json(&url, "/workers").await["decode"]["workers"][0]["in_flight"] == 0
    })
    .await;
    api_error(post(&url, &json!({"prompt": 5})).await, 400).await;
    let text = metrics_text(&url).await;
    for want in [
        "disagg_router_requests_total{route=\"/v1/completions\",status=\"200\"} 1",
        "disagg_router_requests_total{route=\"/v1/completions\",status=\"400\"} 1",
        "disagg_router_leg_seconds_count{leg=\"context\"} 1",
        "disagg_router_leg_seconds_count{leg=\"generation\"} 1",
        "disagg_router_leg_seconds_bucket{leg=\"context\",le=\"+Inf\"} 1",
        // The stream ran to its end.
        "disagg_router_streams_cut_total 0\n",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    // Also where TensorRT-LLM's disaggregated server serves its own.
    let prometheus = reqwest::get(format!("{url}/prometheus/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        prometheus.contains("disagg_router_streams_cut_total 0\n"),
        "{prometheus}"
    );
}

/// Serving threads share one state: `post` opens a new connection each time, and the
/// connections go to the threads in turn, yet there is one round-robin turn, one census and
/// one set of counters for all of them.
#[tokio::test]
async fn serving_threads_share_policies_census_and_metrics() {
    let release = Arc::new(Notify::new());
    let (dropped, _rx) = drop_signal();
    let ctx = fake("ctx").start().await;
    let a = fake("a").start().await;
    let b = fake("b").start().await;
    let gated = fake("gated")
        .generation(Gen::Gated {
            release: release.clone(),
            dropped,
        })
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&a, &b]);
    cfg.threads = 3;
    let url = router(cfg).await;
    // One request per thread: with a turn per thread all three would go to `a`.
    for _ in 0..3 {
        assert_eq!(post(&url, &completion(false)).await.status(), 200);
    }
    assert_eq!((a.seen().len(), b.seen().len()), (2, 1), "one turn for all");
    let text = metrics_text(&url).await;
    let want = "disagg_router_requests_total{route=\"/v1/completions\",status=\"200\"} 3";
    assert!(text.contains(want), "{want} in\n{text}");

    // A stream held open on one thread shows in the census read on the others.
    let mut cfg = config(&[&ctx], &[&gated]);
    cfg.threads = 3;
    let url = router(cfg).await;
    let mut resp = post(&url, &completion(true)).await;
    assert_eq!(resp.chunk().await.unwrap().unwrap(), CHUNK_1.as_bytes());
    for _ in 0..3 {
        let census = get_json(&url, "/workers").await;
        assert_eq!(census["decode"]["workers"][0]["in_flight"], 1, "{census}");
    }
    release.notify_one();
    tokio::time::timeout(LIMIT, resp.bytes())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn wrong_types_are_400s_that_name_the_field() {
    let ctx = fake("ctx").start().await;
    let generation = fake("gen").start().await;
    let url = router(config(&[&ctx], &[&generation])).await;
    for (body, want) in [
        (
            json!({"prompt": 5}),
            "`prompt` must be a string or an array",
        ),
        (
            json!({"prompt": "p", "stream": "yes"}),
            "`stream` must be a boolean",
        ),
        (json!({"prompt": "p", "max_tokens": "many"}), "`max_tokens`"),
        (json!({"max_tokens": 3}), "`prompt` is required"),
    ] {
        let msg = api_error(post(&url, &body).await, 400).await;
        assert!(msg.contains(want), "{msg}");
    }
    assert!(ctx.bodies().is_empty());
}

#[tokio::test]
async fn a_worker_that_never_accepts_hits_the_connect_deadline() {
    // A listener with a backlog of one that never accepts: once its queue is full, the kernel
    // drops further SYNs, so a new connection neither succeeds nor is refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break, // the queue is full
        }
    }
    let generation = fake("gen").start().await;
    let mut cfg = config_urls(vec![format!("http://{addr}")], vec![generation.url.clone()]);
    cfg.connect_timeout = Duration::from_millis(300);
    let url = router(cfg).await;
    let started = Instant::now();
    let msg = api_error(post(&url, &completion(false)).await, 504).await;
    assert!(
        msg.contains("connect deadline") && msg.contains("context"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop((fillers, listener));
}

#[tokio::test]
async fn a_stream_still_running_at_the_request_deadline_is_cut_and_the_worker_released() {
    let (dropped, gen_dropped) = drop_signal();
    let ctx = fake("ctx").start().await;
    // One chunk, then nothing until released (never).
    let generation = fake("gen")
        .generation(Gen::Gated {
            release: Arc::new(Notify::new()),
            dropped,
        })
        .start()
        .await;
    let mut cfg = config(&[&ctx], &[&generation]);
    cfg.request_timeout = Duration::from_millis(500);
    let url = router(cfg).await;
    let started = Instant::now();
    let mut resp = post(&url, &completion(true)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let first = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), CHUNK_1.as_bytes());
    // The rest never comes: at the request deadline the router says so in an error event (a
    // client tells a deadline from a broken connection), then cuts the stream short (an
    // error, not a clean end that would pass for a finished answer) and hangs up on the worker.
    let event = tokio::time::timeout(LIMIT, resp.chunk())
        .await
        .expect("cut at the deadline, not left hanging")
        .expect("the error event, whole")
        .expect("an event before the end");
    let event = String::from_utf8_lossy(&event).to_string();
    let body = event
        .strip_prefix("data: ")
        .and_then(|e| e.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("one whole event: {event:?}"));
    let error = ApiError::from_body(504, body.as_bytes()).expect("an OpenAI error");
    assert!(
        error
            .message
            .contains("had not finished its answer at the request deadline"),
        "{event}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"],
        504
    );
    let rest = tokio::time::timeout(LIMIT, resp.chunk()).await.unwrap();
    assert!(rest.is_err(), "aborted, not ended cleanly: {rest:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "cut at the 500 ms deadline: {took:?}"
    );
    tokio::time::timeout(LIMIT, gen_dropped)
        .await
        .expect("the generation worker sees the router hang up")
        .unwrap();
    // Charged to the worker as a deadline it missed: it hangs, it does not fail.
    let w = worker_state(&url, "decode", &generation.url).await;
    assert_eq!(
        (w["errors"].as_u64(), w["deadline_errors"].as_u64()),
        (Some(1), Some(1)),
        "{w}"
    );
    // Its status went out as 200, and is counted so; the cut is counted beside it.
    let metrics = metrics_text(&url).await;
    assert!(
        metrics.contains("disagg_router_streams_cut_total 1\n")
            && metrics.contains("status=\"200\"} 1\n"),
        "{metrics}"
    );
}

/// Each worker's failures are charged to it in the census (`errors`, `last_error` naming it,
/// out of `requests`), and a 200 of garbage is a failure of the worker, not a relayed answer.
#[tokio::test]
async fn a_worker_failing_or_answering_garbage_is_charged_with_it_in_the_census() {
    for (g, says) in [
        (
            Gen::Status(StatusCode::INTERNAL_SERVER_ERROR),
            "failed with HTTP 500",
        ),
        (
            Gen::Garbage,
            "sent an unusable response: its answer is neither JSON nor an event stream",
        ),
    ] {
        let ctx = fake("ctx").start().await;
        let generation = fake("gen").generation(g).start().await;
        let url = router(config(&[&ctx], &[&generation])).await;
        for stream in [false, true] {
            let msg = api_error(post(&url, &completion(stream)).await, 502).await;
            assert!(msg.contains(&generation.url) && msg.contains(says), "{msg}");
        }
        let w = worker_state(&url, "decode", &generation.url).await;
        assert_eq!(
            (w["requests"].as_u64(), w["errors"].as_u64()),
            (Some(2), Some(2)),
            "{w}"
        );
        let last = w["last_error"].as_str().unwrap();
        assert!(last.contains(&generation.url) && last.contains(says), "{w}");
        assert_eq!(w["in_flight"], 0, "{w}");
        assert_eq!(w["stalled_ms"], 0, "{w}");
        let c = worker_state(&url, "prefill", &ctx.url).await;
        assert_eq!(c["errors"], 0, "the context worker answered: {c}");
    }
}
