//! End-to-end: the bench against small fake OpenAI servers on loopback, each with scripted
//! behaviour (known delays, every Nth request failing, zero tokens, cut streams).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clap::Parser as _;
use disagg_bench::{BenchArgs, BenchConfig, BenchError, canary, run, run_sweep};
use disagg_proto::openai::Usage;
use disagg_proto::sse;
use serde_json::{Value, json};

/// What the fake server does; every field is deterministic.
#[derive(Debug, Clone, Default)]
struct Script {
    ttft: Duration,
    itl: Duration,
    /// Each content chunk stands for this many tokens (usage stays exact), 0 meaning 1.
    tokens_per_chunk: u64,
    /// Answer 500 to every Nth request (1-based).
    fail_every: Option<u64>,
    /// Generate nothing: no content chunks, usage of 0.
    zero_tokens: bool,
    /// Stop the stream after the first chunk without `[DONE]`.
    cut_stream: bool,
    /// Hold every request this long before answering.
    stall: Duration,
    /// Generate this many tokens fewer than asked (at least one), as a server that stops at EOS.
    short_by: u64,
    /// Send no usage at the end of a stream (as asked for with include_usage).
    no_usage: bool,
    /// Answer a streamed request with one whole JSON body, as a server ignoring `stream`.
    whole_on_stream: bool,
    /// Serve one request at a time; the others wait their turn, headers and all (a busy
    /// engine's queue).
    serial: bool,
    /// Answer `GET /v1/models` with a 404, as a server without OpenAI's model list.
    no_models: bool,
}

#[derive(Debug)]
struct Fake {
    script: Script,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// One permit: with `serial`, held by the request being answered.
    turn: Arc<tokio::sync::Semaphore>,
    /// `GET /v1/models` asked.
    model_lists: AtomicU64,
    /// The `model` of the last generation asked for.
    last_model: std::sync::Mutex<Option<String>>,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            script: Script::default(),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            turn: Arc::new(tokio::sync::Semaphore::new(1)),
            model_lists: AtomicU64::new(0),
            last_model: std::sync::Mutex::new(None),
        }
    }
}

/// Decrements the in-flight count when the response (or its stream) is finished or dropped.
struct InFlight(Arc<Fake>);

impl InFlight {
    fn enter(fake: &Arc<Fake>) -> Self {
        let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        fake.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(fake))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// OpenAI's model list: two models, the first the one to take.
async fn models(State(fake): State<Arc<Fake>>) -> Response {
    fake.model_lists.fetch_add(1, Ordering::SeqCst);
    if fake.script.no_models {
        return (StatusCode::NOT_FOUND, "no such route").into_response();
    }
    Json(json!({"object": "list", "data": [{"id": "fake-model"}, {"id": "fake-lora"}]}))
        .into_response()
}

async fn completions(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    generate(fake, body, false).await
}

async fn chat(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    generate(fake, body, true).await
}

/// Words of a text prompt stand for tokens, as the bench's word model sizes them.
fn prompt_len(body: &Value, chat: bool) -> u64 {
    let words = |v: &Value| v.as_str().map_or(0, |t| t.split_whitespace().count()) as u64;
    if chat {
        return words(&body["messages"][0]["content"]);
    }
    match &body["prompt"] {
        Value::Array(ids) => ids.len() as u64,
        text => words(text),
    }
}

async fn generate(fake: Arc<Fake>, body: Value, chat: bool) -> Response {
    let guard = InFlight::enter(&fake);
    *fake.last_model.lock().unwrap() = body["model"].as_str().map(str::to_string);
    let n = fake.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let turn = if fake.script.serial {
        Some(Arc::clone(&fake.turn).acquire_owned().await.unwrap())
    } else {
        None
    };
    let s = &fake.script;
    tokio::time::sleep(s.stall).await;
    if s.fail_every.is_some_and(|every| n % every == 0) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "scripted failure").into_response();
    }
    // The bench must ask for exactly osl tokens, ignoring EOS, with a token-id prompt.
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(0);
    let prompt_len = prompt_len(&body, chat);
    let held = body["ignore_eos"] == true;
    if (held && body["min_tokens"].as_u64() != Some(max_tokens)) || prompt_len == 0 {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    let tokens = if s.zero_tokens {
        0
    } else {
        max_tokens.saturating_sub(s.short_by).max(1)
    };
    let usage = Usage::new(prompt_len, tokens);
    if body["stream"] != true || s.whole_on_stream {
        tokio::time::sleep(s.ttft + s.itl * tokens.saturating_sub(1) as u32).await;
        let text = if tokens > 0 {
            "x".repeat(tokens as usize)
        } else {
            String::new()
        };
        return Json(json!({"choices": [{"index": 0, "text": text}], "usage": usage}))
            .into_response();
    }
    let per_chunk = s.tokens_per_chunk.max(1);
    let chunks = tokens.div_ceil(per_chunk);
    let script = s.clone();
    // State: (chunks sent so far, finished, guard). Bounded: `chunks` content frames, then usage
    // and [DONE].
    let stream = futures_util::stream::unfold(
        (0u64, false, Some((guard, turn))),
        move |(sent, finished, guard)| {
            let script = script.clone();
            async move {
                if finished {
                    return None;
                }
                if sent < chunks {
                    tokio::time::sleep(if sent == 0 { script.ttft } else { script.itl }).await;
                    let choice = if chat {
                        json!({"index": 0, "delta": {"content": "x"}})
                    } else {
                        json!({"index": 0, "text": "x"})
                    };
                    let frame = sse::frame(
                        json!({"choices": [choice], "usage": null})
                            .to_string()
                            .as_bytes(),
                    );
                    let cut = script.cut_stream;
                    return Some((
                        Ok::<Bytes, std::convert::Infallible>(frame),
                        (sent + 1, cut, guard),
                    ));
                }
                let mut tail = if script.no_usage {
                    Vec::new()
                } else {
                    sse::frame(
                        json!({"choices": [], "usage": usage})
                            .to_string()
                            .as_bytes(),
                    )
                    .to_vec()
                };
                tail.extend_from_slice(sse::DONE_FRAME);
                drop(guard);
                Some((Ok(Bytes::from(tail)), (sent, true, None)))
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Binds first, then serves: the URL is usable as soon as this returns.
async fn serve(script: Script) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script,
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/v1/completions", axum::routing::post(completions))
        .route("/v1/chat/completions", axum::routing::post(chat))
        .route("/v1/models", axum::routing::get(models))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), fake)
}

fn config(url: &str) -> BenchConfig {
    BenchConfig {
        url: url.to_string(),
        endpoint: "/v1/completions".into(),
        model: "fake".into(),
        isl: 64,
        osl: 8,
        range_ratio: 0.0,
        concurrency: vec![4],
        rounds: 3,
        warmup: 0,
        streaming: true,
        request_timeout: Duration::from_secs(10),
        seed: 1,
        percentiles: vec![50.0],
        ..BenchConfig::default()
    }
}

fn timed() -> Script {
    Script {
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(10),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_known_delays_in_a_closed_loop() {
    let (url, fake) = serve(timed()).await;
    let mut cfg = config(&url);
    cfg.concurrency = vec![1, 4];
    cfg.warmup = 2;
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.invalid_reason(), None);
    assert_eq!(sweep.points.len(), 2);
    // Lower bounds leave 20% for jitter: the server's sleeps are exact minimums, but the client
    // can see one chunk late and the next on time, which shortens that measured gap.
    for p in &sweep.points {
        let m = &p.report.metrics;
        let c = p.report.point.concurrency.unwrap();
        let n = u64::from(c) * 3;
        assert_eq!((m.completed, m.failed), (n, 0), "point {c}");
        assert_eq!(p.requests.len() as u64, n);
        assert_eq!(m.total_input_tokens, n * 64);
        assert_eq!(m.total_output_tokens, n * 8);
        assert!(
            (24.0..=80.0).contains(&m.ttft.median_ms),
            "ttft {}",
            m.ttft.median_ms
        );
        assert!(
            (8.0..=25.0).contains(&m.itl.median_ms),
            "itl {}",
            m.itl.median_ms
        );
        assert!(
            (8.0..=25.0).contains(&m.tpot.median_ms),
            "tpot {}",
            m.tpot.median_ms
        );
        // 30 ms + 7 gaps of 10 ms at least.
        assert!(m.e2el.median_ms >= 90.0, "e2el {}", m.e2el.median_ms);
        assert!(m.duration_s > 0.0 && m.request_throughput > 0.0);
        assert_eq!(m.ttft.percentiles.len(), 1);
    }
    // Warmup 2 per point plus the measured requests, never more than 4 at once.
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2 + 3 + 2 + 12);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_counts_tokens_not_chunks() {
    let (url, _) = serve(Script {
        tokens_per_chunk: 4,
        ..Default::default()
    })
    .await;
    let sweep = run_sweep(&config(&url)).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    // 2 chunks of 4 tokens each per request; usage says 8.
    assert_eq!(m.total_output_tokens, 12 * 8);
}

/// Without usage, output tokens are counted as text events, which a server bundling tokens
/// makes too few: the point says so, on stderr and in results.json's warnings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_usage_are_counted_by_events_and_said() {
    let (url, _) = serve(Script {
        tokens_per_chunk: 4,
        no_usage: true,
        ..Default::default()
    })
    .await;
    let sweep = run_sweep(&config(&url)).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    assert_eq!(m.total_output_tokens, 12 * 2);
    let w = sweep.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("con4: 12 of 12 answers came without usage")
            && w[0].contains("12 of them had fewer text events than the output length asked"),
        "{w:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    sweep.write_outputs(dir.path()).unwrap();
    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(results["warnings"][0], w[0].as_str());
    // With usage, nothing to say.
    let (url, _) = serve(Script {
        tokens_per_chunk: 4,
        ..Default::default()
    })
    .await;
    assert!(
        run_sweep(&config(&url))
            .await
            .unwrap()
            .warnings()
            .is_empty()
    );
}

/// A server that ignores `stream: true` fails every request as `not_a_stream`, said as such
/// (it read as `stream_cut`, a server dying mid-answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_to_a_streamed_request_is_not_a_stream() {
    let (url, _) = serve(Script {
        whole_on_stream: true,
        ..Default::default()
    })
    .await;
    let sweep = run_sweep(&config(&url)).await.unwrap();
    let p = &sweep.points[0];
    assert_eq!(p.report.error_counts.get("not_a_stream"), Some(&12));
    assert!(sweep.invalid_reason().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_ttft_is_the_whole_request() {
    let (url, _) = serve(timed()).await;
    let mut cfg = config(&url);
    cfg.streaming = false;
    let sweep = run_sweep(&cfg).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    assert_eq!(sweep.invalid_reason(), None);
    assert_eq!(m.total_output_tokens, 12 * 8);
    assert_eq!(m.ttft.median_ms, m.e2el.median_ms);
    assert_eq!(m.itl.mean_ms, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenth_request_failing_is_counted_and_judged_against_the_limit() {
    let (url, _) = serve(Script {
        fail_every: Some(10),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.rounds = 5; // 20 requests: the 10th and the 20th fail
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0];
    assert_eq!(
        (p.report.metrics.completed, p.report.metrics.failed),
        (18, 2)
    );
    assert_eq!(p.report.error_counts.get("http_500"), Some(&2));
    let reason = sweep
        .invalid_reason()
        .expect("the default limit of 0 makes any failure invalid");
    assert!(reason.contains("2 of 20 requests failed"), "{reason}");
    assert!(reason.contains("http_500: 2"), "{reason}");
    assert_eq!(p.report.to_map()["error_counts"], json!({"http_500": 2}));
    let details = disagg_bench::details_summary(&p.report);
    assert!(details.contains("http_500:"), "{details}");

    // 10% failed: over a 5% limit, within a 10% one.
    let mut cfg = config(&url);
    cfg.rounds = 5;
    cfg.max_failure_rate = 0.05;
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.metrics.failed, 2);
    let reason = sweep.invalid_reason().expect("10% is over 5%");
    assert!(reason.contains("> limit 5.0%"), "{reason}");
    cfg.max_failure_rate = 0.10;
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.metrics.failed, 2);
    assert_eq!(sweep.invalid_reason(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_run_fails_above_the_failure_limit_and_passes_within_it() {
    let (url, _) = serve(Script {
        fail_every: Some(10),
        ..Default::default()
    })
    .await;
    let args = |limit: &str| {
        Cli::try_parse_from([
            "bench",
            "--url",
            &url,
            "--isl",
            "8",
            "--osl",
            "2",
            "--concurrency",
            "4",
            "--rounds",
            "5",
            "--max-failure-rate",
            limit,
        ])
        .unwrap()
        .bench
    };
    // The server's request counter runs across both runs (canary included), so each run of 21
    // requests sees two scripted failures among its 20 measured ones.
    assert!(!run(args("0")).await.unwrap(), "failures over the limit");
    assert!(
        run(args("0.15")).await.unwrap(),
        "failures within the limit"
    );
}

/// Regression: `--percentiles 25,99.9,100` also showed p99. The list replaces the default, as
/// vLLM's `--metric-percentiles` does, in what is shown (summary, the point's log and
/// benchmark_serving file); results.json keeps p99 besides, which the harness's gates read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_percentiles_asked_for_replace_p99_where_they_are_shown() {
    let (url, _) = serve(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let args = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--model",
        "m",
        "--isl",
        "8",
        "--osl",
        "4",
        "--concurrency",
        "1",
        "--rounds",
        "2",
        "--percentiles",
        "25,99.9,100",
        "--output-dir",
        out.to_str().unwrap(),
    ])
    .unwrap()
    .bench;
    assert!(run(args).await.unwrap());
    for file in ["summary.txt", "benchmark.con1.log"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        for shown in ["P25 TTFT (ms):", "P99.9 ITL (ms):", "P100 E2EL (ms):"] {
            assert!(text.contains(shown), "{file}: {shown}\n{text}");
        }
        assert!(!text.contains("P99 "), "{file}:\n{text}");
    }
    let point: Value =
        serde_json::from_slice(&std::fs::read(out.join("benchmark.con1.json")).unwrap()).unwrap();
    assert!(point.get("p99.9_ttft_ms").is_some() && point.get("p100_tpot_ms").is_some());
    assert_eq!(point.get("p99_ttft_ms"), None, "{point}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let p = &results["points"][0];
    assert!(p["p99_ttft_ms"].as_f64().is_some(), "kept for the harness");
    assert!(p["p25_ttft_ms"].as_f64().is_some());
    assert_eq!(p["percentiles"], json!([25.0, 99.9, 100.0]));
    // Read back as the harness reads it: p99 there, the user's list shown.
    let report = disagg_bench::PointReport::from_map(p.as_object().unwrap().clone()).unwrap();
    let shown: Vec<f64> = report
        .metrics
        .ttft
        .percentile_rows()
        .iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(shown, vec![25.0, 99.9, 100.0]);
    assert!(report.metrics.ttft.p99_ms > 0.0);
}

/// Regression: reusing --output-dir left an earlier run's per-point files beside the new ones,
/// unsaid, and anything globbing `benchmark.*` mixed the runs. They are moved into
/// `earlier-<time>/` first; files the bench does not write stay where they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_runs_files_are_moved_aside_not_mixed_with_the_new_ones() {
    let (url, _) = serve(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let stale = [
        "benchmark.rate5.json",
        "benchmark.rate5.log",
        "benchmark.con1.json",
        "results.json",
        "summary.txt",
        "hdr",
    ];
    for name in &stale[..5] {
        std::fs::write(out.join(name), "earlier run").unwrap();
    }
    std::fs::create_dir(out.join("hdr")).unwrap();
    std::fs::write(out.join("hdr/point3_ttft.hgrm"), "earlier run").unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let args = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--model",
        "m",
        "--isl",
        "8",
        "--osl",
        "2",
        "--concurrency",
        "1",
        "--rounds",
        "1",
        "--output-dir",
        out.to_str().unwrap(),
    ])
    .unwrap()
    .bench;
    assert!(run(args).await.unwrap());
    let names = |d: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let top = names(out);
    let aside: Vec<&String> = top.iter().filter(|n| n.starts_with("earlier-")).collect();
    assert_eq!(aside.len(), 1, "{top:?}");
    let aside = out.join(aside[0]);
    let mut moved = stale.map(String::from).to_vec();
    moved.sort();
    assert_eq!(names(&aside), moved);
    assert_eq!(
        std::fs::read_to_string(aside.join("benchmark.con1.json")).unwrap(),
        "earlier run"
    );
    assert!(aside.join("hdr/point3_ttft.hgrm").exists());
    // This run's files alone at the top, and what the bench never writes left alone.
    assert!(!out.join("benchmark.rate5.json").exists());
    assert!(out.join("hdr/point0_ttft.hgrm").exists());
    assert!(!out.join("hdr/point3_ttft.hgrm").exists());
    assert_ne!(
        std::fs::read_to_string(out.join("benchmark.con1.json")).unwrap(),
        "earlier run"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Regression: a failed canary exited 1 leaving nothing in --output-dir, so CI kept only stderr.
/// results.json and summary.txt now say the run is invalid, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_leaves_results_marked_invalid_with_its_reason() {
    let (url, _) = serve(Script {
        fail_every: Some(1),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--model",
        "m",
        "--isl",
        "8",
        "--osl",
        "2",
        "--output-dir",
        out.to_str().unwrap(),
    ])
    .unwrap()
    .bench;
    match run(args).await {
        Err(BenchError::Canary { reason, .. }) => assert!(reason.contains("http_500"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], false);
    let why = results["invalid_reason"].as_str().unwrap();
    assert!(
        why.contains("canary request") && why.contains("http_500: scripted failure"),
        "{why}"
    );
    assert_eq!(results["points"], json!([]));
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(
        summary.contains("invalid results: canary request"),
        "{summary}"
    );
}

/// Regression: `--model` defaulted to `sim`, which a real server refuses as an unknown model.
/// Not given, it is the first model the server lists, as `vllm bench serve` takes it; given, it
/// is sent as it is, and the list is not asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_model_the_first_model_the_server_lists_is_used() {
    let (url, fake) = serve(Script::default()).await;
    let args = |extra: &[&str]| {
        let base = [
            "bench",
            "--url",
            &url,
            "--isl",
            "8",
            "--osl",
            "2",
            "--concurrency",
            "1",
            "--rounds",
            "1",
        ];
        Cli::try_parse_from(base.iter().chain(extra).copied())
            .unwrap()
            .bench
    };
    assert!(run(args(&[])).await.unwrap());
    assert_eq!(fake.model_lists.load(Ordering::SeqCst), 1);
    assert_eq!(
        fake.last_model.lock().unwrap().as_deref(),
        Some("fake-model")
    );
    assert!(run(args(&["--model", "mine"])).await.unwrap());
    assert_eq!(fake.model_lists.load(Ordering::SeqCst), 1, "not asked");
    assert_eq!(fake.last_model.lock().unwrap().as_deref(), Some("mine"));

    // A server without the list: the bench stops before sending a generation, saying why.
    let (url, fake) = serve(Script {
        no_models: true,
        ..Default::default()
    })
    .await;
    let no_list = Cli::try_parse_from([
        "bench", "--url", &url, "--isl", "8", "--osl", "2", "--rounds", "1",
    ])
    .unwrap()
    .bench;
    match run(no_list).await {
        Err(e @ BenchError::Model { .. }) => {
            let said = e.to_string();
            assert!(
                said.contains("/v1/models") && said.contains("404") && said.contains("--model"),
                "{said}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_of_another_length_than_ignore_eos_asked_for_are_failed_requests() {
    let (url, _) = serve(Script {
        short_by: 3,
        ..Default::default()
    })
    .await;
    let sweep = run_sweep(&config(&url)).await.unwrap();
    let p = &sweep.points[0].report;
    assert_eq!((p.metrics.completed, p.metrics.failed), (0, 12));
    assert_eq!(
        p.error_counts,
        std::collections::BTreeMap::from([("wrong_output_length".to_string(), 12)])
    );
    let why = sweep.invalid_reason().expect("the point is invalid");
    assert!(
        why.contains("12 of 12 requests failed") && why.contains("wrong_output_length: 12"),
        "{why}"
    );
    assert!(
        why.contains("with ignore_eos every answer must have max_tokens output tokens"),
        "says why: {why}"
    );
    // Each request's record says what it got.
    let r = &sweep.points[0].requests[0];
    assert_eq!(r.error.as_deref(), Some("wrong_output_length"), "{r:?}");
    assert_eq!(
        (r.output_tokens, r.requested_output_tokens),
        (Some(5), Some(8))
    );

    // Without ignore_eos, a model stopping early is its right, not a finding.
    let mut cfg = config(&url);
    cfg.ignore_eos = false;
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.metrics.completed, 12);
    assert_eq!(sweep.invalid_reason(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_generated_tokens_is_invalid() {
    let (url, _) = serve(Script {
        zero_tokens: true,
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    // Even a run that tolerates every failure cannot pass on empty answers.
    cfg.max_failure_rate = 1.0;
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0];
    assert_eq!(
        (p.report.metrics.completed, p.report.metrics.failed),
        (0, 12)
    );
    assert_eq!(p.report.metrics.zero_token_requests, 12);
    assert_eq!(p.report.error_counts.get("zero_tokens"), Some(&12));
    let reason = sweep
        .invalid_reason()
        .expect("zero tokens make the sweep invalid");
    assert!(
        reason.contains("12 request(s) generated zero tokens"),
        "{reason}"
    );
    // The canary refuses such a server outright.
    match canary(&config(&url)).await {
        Err(BenchError::Canary { reason, .. }) => assert!(reason.contains("zero"), "{reason}"),
        other => panic!("expected a canary error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_streams_and_timeouts_are_failures() {
    let (url, _) = serve(Script {
        cut_stream: true,
        ..Default::default()
    })
    .await;
    let sweep = run_sweep(&config(&url)).await.unwrap();
    assert_eq!(
        sweep.points[0].report.error_counts.get("stream_cut"),
        Some(&12)
    );

    let (url, _) = serve(Script {
        stall: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.rounds = 1;
    cfg.request_timeout = Duration::from_millis(200);
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.error_counts.get("timeout"), Some(&4));
}

/// Past its failure budget (floor(max_failure_rate × requests) failures) a point has failed
/// whatever follows; once some of its failures waited out a limit (here the request timeout),
/// each further wave would wait as long, so it sends nothing more, and says so. Failures that
/// come back at once cost nothing: every request still goes, for a full count (the tests
/// above), as it does with `keep_going`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_whose_requests_hang_stops_once_its_failure_budget_is_spent() {
    let hangs = Script {
        stall: Duration::from_secs(30),
        ..Default::default()
    };
    let (url, fake) = serve(hangs.clone()).await;
    // 12 requests, 4 at a time, each timing out: no more than the first 4 go.
    let cfg = BenchConfig {
        request_timeout: Duration::from_millis(200),
        ..config(&url)
    };
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0].report;
    let sent = fake.requests.load(Ordering::SeqCst);
    assert!((1..=4).contains(&sent), "{sent} sent");
    assert_eq!(p.metrics.failed, sent);
    let why = sweep.invalid_reason().expect("the point failed");
    assert!(
        why.contains(&format!(
            "; stopped after {sent} of 12 requests: {sent} failed, more than max_failure_rate 0 \
             allows (0), some waiting out a limit"
        )),
        "{why}"
    );

    // Nor does the sweep go on: a further point would wait as long.
    let (url, fake) = serve(hangs.clone()).await;
    let cfg = BenchConfig {
        request_timeout: Duration::from_millis(200),
        concurrency: vec![4, 2],
        ..config(&url)
    };
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points.len(), 1, "no second point");
    assert!(fake.requests.load(Ordering::SeqCst) <= 4);

    // With keep_going, all 12 go.
    let (url, fake) = serve(hangs.clone()).await;
    let cfg = BenchConfig {
        request_timeout: Duration::from_millis(200),
        keep_going: true,
        ..config(&url)
    };
    run_sweep(&cfg).await.unwrap();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 12);

    // Within the budget (4 of 4 at 100%), every request goes.
    let (url, fake) = serve(hangs.clone()).await;
    let cfg = BenchConfig {
        request_timeout: Duration::from_millis(200),
        rounds: 1,
        max_failure_rate: 1.0,
        ..config(&url)
    };
    run_sweep(&cfg).await.unwrap();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 4);

    // The open loop stops its schedule the same way.
    let (url, fake) = serve(hangs).await;
    let cfg = BenchConfig {
        request_timeout: Duration::from_millis(200),
        request_rates: vec![50.0],
        num_prompts: Some(40),
        ..config(&url)
    };
    let sweep = run_sweep(&cfg).await.unwrap();
    let sent = fake.requests.load(Ordering::SeqCst);
    assert!(sent < 40, "{sent} sent");
    assert!(
        sweep
            .invalid_reason()
            .unwrap()
            .contains(&format!("stopped after {sent} of 40 requests")),
        "{:?}",
        sweep.invalid_reason()
    );
}

/// `stall`: a stream with no byte for that long fails as `stalled`, whether its first byte never
/// comes or the next one; a slow stream whose bytes keep coming is not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_byte_for_stall_fails_as_stalled() {
    let stall = Duration::from_millis(300);
    for (what, script) in [
        (
            "no first byte",
            Script {
                stall: Duration::from_secs(30),
                ..Default::default()
            },
        ),
        (
            "no next byte",
            Script {
                itl: Duration::from_secs(30),
                ..Default::default()
            },
        ),
    ] {
        let (url, _) = serve(script).await;
        let cfg = BenchConfig {
            rounds: 1,
            stall: Some(stall),
            ..config(&url)
        };
        let started = std::time::Instant::now();
        let sweep = run_sweep(&cfg).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        let p = &sweep.points[0];
        assert_eq!(p.report.error_counts.get("stalled"), Some(&4), "{what}");
        assert!(
            p.requests[0]
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("stalled")),
            "{what}: {:?}",
            p.requests[0]
        );
    }
    // A busy server answering one request at a time: the fourth waits about 2.4 s for its first
    // byte, eight times the stall, while the others stream. Not a stall: the server is not
    // silent.
    let (url, _) = serve(Script {
        itl: Duration::from_millis(100),
        serial: true,
        ..Default::default()
    })
    .await;
    let cfg = BenchConfig {
        rounds: 1,
        stall: Some(stall),
        ..config(&url)
    };
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.invalid_reason(), None, "queued is not stalled");
    // A token every 100 ms for 8 tokens: slower in all than the stall, never silent as long.
    let (url, _) = serve(Script {
        itl: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let cfg = BenchConfig {
        rounds: 1,
        stall: Some(stall),
        ..config(&url)
    };
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.invalid_reason(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_passes_on_a_healthy_server() {
    let (url, fake) = serve(timed()).await;
    canary(&config(&url)).await.unwrap();
    assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
}

/// Several routers: one canary each, all at once (three servers that each take 600 ms end in
/// well under the 1.8 s that one after the other takes), and the first dead one in order is
/// named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canaries_of_several_routers_go_at_once_and_name_the_dead_one() {
    let slow = || Script {
        stall: Duration::from_millis(600),
        ..timed()
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(serve(slow()).await);
    }
    let cfg = BenchConfig {
        extra_urls: servers[1..].iter().map(|(u, _)| u.clone()).collect(),
        ..config(&servers[0].0)
    };
    let started = std::time::Instant::now();
    canary(&cfg).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    for (_, fake) in &servers {
        assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    }
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let cfg = BenchConfig {
        extra_urls: vec![servers[1].0.clone(), dead.clone()],
        ..config(&servers[0].0)
    };
    match canary(&cfg).await {
        Err(BenchError::Canary { url, .. }) => assert!(url.starts_with(&dead), "{url}"),
        other => panic!("expected the dead router's canary error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_fails_on_a_refusing_port() {
    // Bind then drop: nothing listens there any more, so connecting is refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    match canary(&config(&url)).await {
        Err(BenchError::Canary { reason, url: u }) => {
            assert_eq!(reason, "connect: connection refused");
            assert!(u.ends_with("/v1/completions"), "{u}");
        }
        other => panic!("expected a canary error, got {other:?}"),
    }
}

/// A server that answers every path with `status` and `body` as `content_type`.
async fn serve_error(status: u16, content_type: &'static str, body: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_quotes_the_servers_words_whatever_their_shape() {
    let nginx = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n\
                 <center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n\
                 </body>\r\n</html>\r\n";
    let cases = [
        // A router or proxy in front of nothing at that path.
        (404, "text/html", nginx, "http_404: 404 Not Found"),
        // FastAPI (vLLM, SGLang) at a path it does not serve.
        (
            404,
            "application/json",
            r#"{"detail":"Not Found"}"#,
            "http_404: Not Found",
        ),
        // vLLM's and SGLang's flat error object.
        (
            400,
            "application/json",
            r#"{"object":"error","message":"This model's maximum context length is 8 tokens","type":"BadRequestError","param":null,"code":400}"#,
            "http_400: This model's maximum context length is 8 tokens",
        ),
        (503, "text/plain", "", "http_503: (empty body)"),
    ];
    for (status, content_type, body, want) in cases {
        let url = serve_error(status, content_type, body).await;
        match canary(&config(&url)).await {
            Err(BenchError::Canary { reason, .. }) => assert_eq!(reason, want),
            other => panic!("expected a canary error for {body:?}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_config_errors() {
    let mut cfg = config("http://127.0.0.1:1");
    cfg.concurrency = vec![];
    assert!(matches!(run_sweep(&cfg).await, Err(BenchError::Config(_))));
    let mut cfg = config("http://127.0.0.1:1");
    cfg.range_ratio = 1.5;
    assert!(matches!(run_sweep(&cfg).await, Err(BenchError::Config(_))));
    // SGLang's exact lengths (`--random-range-ratio 1`) are 0 here, and the refusal says so.
    let mut cfg = config("http://127.0.0.1:1");
    cfg.range_ratio = 1.0;
    match run_sweep(&cfg).await {
        Err(BenchError::Config(why)) => assert!(
            why.contains("so 0 gives exact lengths (SGLang's --random-range-ratio 1"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // A point listed twice would overwrite its own files and perf case name.
    let mut cfg = config("http://127.0.0.1:1");
    cfg.concurrency = vec![1, 8, 1];
    match run_sweep(&cfg).await {
        Err(BenchError::Config(why)) => {
            assert!(why.contains("concurrency 1 is listed twice"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // Loads no machine can serve are refused before anything is built or sent: prompts past
    // any context, more connections than the process may open, a warm-up that is a sweep.
    let refused = |cfg: BenchConfig, says: &'static str| async move {
        match run_sweep(&cfg).await {
            Err(BenchError::Config(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("{says}: {other:?}"),
        }
    };
    let mut cfg = config("http://127.0.0.1:1");
    cfg.isl = 1_000_000_000;
    refused(cfg, "beyond any model's context").await;
    let mut cfg = config("http://127.0.0.1:1");
    cfg.concurrency = vec![1, 1_000_000_000];
    refused(cfg, "`ulimit -n`").await;
    let mut cfg = config("http://127.0.0.1:1");
    cfg.warmup = 100_000;
    refused(cfg, "a warm-up warms").await;
    // Every request of a point is built before the first leaves, --duration or not.
    let mut cfg = config("http://127.0.0.1:1");
    cfg.num_prompts = Some(200_000_000);
    refused(cfg, "at most 10000000 requests").await;
    let mut cfg = config("http://127.0.0.1:1");
    (cfg.num_prompts, cfg.isl) = (Some(1_000_000), 1024);
    refused(cfg, "1000000 requests of up to 1024 prompt tokens a point").await;
    // https would fail every request as a transport error: refused up front, saying why.
    for (url, says) in [
        ("https://127.0.0.1:1", "https is not supported"),
        ("127.0.0.1:1", "must start with http://"),
    ] {
        match canary(&config(url)).await {
            Err(BenchError::Config(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_on_schedule() {
    let (url, fake) = serve(Script::default()).await;
    let mut cfg = config(&url);
    cfg.request_rates = vec![100.0, f64::INFINITY];
    cfg.num_prompts = Some(30);
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.invalid_reason(), None);
    let (paced, burst) = (&sweep.points[0], &sweep.points[1]);
    assert_eq!(
        (
            paced.report.point.request_rate,
            paced.report.point.concurrency
        ),
        (Some(disagg_bench::RequestRate(100.0)), None)
    );
    assert_eq!(paced.report.metrics.completed, 30);
    // 30 arrivals at 100/s span about 0.3 s; Poisson spread and scheduling allow a wide band.
    assert!(
        (0.1..2.0).contains(&paced.report.metrics.duration_s),
        "{}",
        paced.report.metrics.duration_s
    );
    let json = paced.report.to_map();
    assert_eq!(json["request_rate"], 100.0);
    assert_eq!(json["max_concurrency"], Value::Null);
    let text = disagg_bench::text_summary(&paced.report);
    assert!(!text.contains("Maximum request concurrency"), "{text}");
    // Every request of the infinite rate is due at once.
    assert_eq!(burst.report.metrics.completed, 30);
    assert!(burst.requests.iter().all(|r| r.scheduled_ns == 0));
    assert_eq!(burst.report.to_map()["request_rate"], "inf");
    assert_eq!(fake.requests.load(Ordering::SeqCst), 60);
}

/// Regression: with `--request-rate inf --max-concurrency N` every request is due at 0, and its
/// TTFT and E2EL were counted from there, so they grew with --num-prompts (75x what vLLM reported
/// for the same server), and the result file's `start_times` (sends) plus `latencies` overshot
/// the ends. Under a cap they count from the send, as vLLM's do, and the wait for a slot is the
/// client queue time, apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_open_loop_counts_latency_from_the_send_and_the_queue_wait_apart() {
    let (url, fake) = serve(Script {
        stall: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.request_rates = vec![f64::INFINITY];
    cfg.num_prompts = Some(6);
    cfg.max_concurrency = Some(2);
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0];
    let m = &p.report.metrics;
    assert_eq!(m.completed, 6);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
    // All six were due at 0 and served two at a time for 100 ms each: the last pair waited
    // about 200 ms for a slot. That wait is the client's queue time, not the server's TTFT.
    assert!(
        m.ttft.p99_ms < 190.0,
        "TTFT from the send: {}",
        m.ttft.p99_ms
    );
    assert!(
        m.e2el.p99_ms < 190.0,
        "E2EL from the send: {}",
        m.e2el.p99_ms
    );
    let q = m
        .client_queue_time
        .as_ref()
        .expect("a cap has a client queue");
    assert!(q.p99_ms >= 190.0, "{q:?}");
    assert!(m.max_send_lag_ms >= 190.0, "{}", m.max_send_lag_ms);
    // The benchmark_serving result file says the same, request by request, and its timeline
    // holds together: start_times (the sends) + latencies = the ends.
    let file = disagg_bench::point_files::result_json(&cfg, p);
    let list = |k: &str| -> Vec<f64> {
        file[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (ttfts, latencies, starts, queues) = (
        list("ttfts"),
        list("latencies"),
        list("start_times"),
        list("queue_times"),
    );
    assert!(ttfts.iter().all(|&t| t < 0.19), "{ttfts:?}");
    assert!(queues.iter().any(|&t| t >= 0.19), "{queues:?}");
    for (i, r) in p.requests.iter().enumerate() {
        let end = r.end_ns as f64 / 1e9;
        assert!(
            (starts[i] + latencies[i] - end).abs() < 1e-6,
            "request {i}: {} + {} != {end}",
            starts[i],
            latencies[i]
        );
        assert_eq!(starts[i], r.sent_ns as f64 / 1e9);
    }
    assert!((file["mean_ttft_ms"].as_f64().unwrap() - m.ttft.mean_ms).abs() < 1e-9);
    assert!(file["mean_client_queue_time_ms"].as_f64().unwrap() >= 50.0);
    // The files say how it was counted too, not only stderr: results.json's warnings and
    // summary.txt.
    assert!(
        sweep.warnings().iter().any(|w| w.contains(
            "note: requests waited in the client for one of the --max-concurrency 2 slots"
        )),
        "{:?}",
        sweep.warnings()
    );
    let dir = tempfile::tempdir().unwrap();
    sweep.write_outputs(dir.path()).unwrap();
    let summary = std::fs::read_to_string(dir.path().join("summary.txt")).unwrap();
    assert!(
        summary.contains("count from each request's send"),
        "{summary}"
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    let point = &results["points"][0];
    assert!(point["p99_ttft_ms"].as_f64().unwrap() < 190.0, "{point}");
    assert!(point["p99_client_queue_time_ms"].as_f64().unwrap() >= 190.0);
}

/// Without a cap an open loop keeps counting from each request's scheduled time (a client that
/// fell behind its schedule is charged for it), and its result file's `start_times` are those
/// scheduled times, so that start + latency is still the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncapped_open_loop_counts_latency_from_the_schedule() {
    let (url, _) = serve(Script {
        stall: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.request_rates = vec![50.0];
    cfg.num_prompts = Some(5);
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0];
    assert_eq!(p.report.metrics.client_queue_time, None);
    let file = disagg_bench::point_files::result_json(&cfg, p);
    for (i, r) in p.requests.iter().enumerate() {
        let start = file["start_times"][i].as_f64().unwrap();
        let latency = file["latencies"][i].as_f64().unwrap();
        assert_eq!(start, r.scheduled_ns as f64 / 1e9);
        assert!((start + latency - r.end_ns as f64 / 1e9).abs() < 1e-6);
        let ttft = file["ttfts"][i].as_f64().unwrap();
        assert_eq!(ttft, (r.chunk_ns[0] - r.scheduled_ns) as f64 / 1e9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duration_limit_stops_sending() {
    let (url, _) = serve(Script {
        stall: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.concurrency = vec![1];
    cfg.num_prompts = Some(1000);
    cfg.duration_limit = Some(Duration::from_millis(300));
    let sweep = run_sweep(&cfg).await.unwrap();
    let p = &sweep.points[0];
    // At most one request per 50 ms fits in 300 ms; the limit cut the rest.
    assert!(
        (1..=7).contains(&p.report.metrics.completed),
        "{}",
        p.report.metrics.completed
    );
    assert_eq!(p.report.metrics.failed, 0);
    assert_eq!(sweep.invalid_reason(), None);
    assert!(
        sweep
            .warnings()
            .iter()
            .any(|w| w.contains("the duration limit stopped the point after ")),
        "{:?}",
        sweep.warnings()
    );
}

/// The open loop under a concurrency cap: a request that waited for a slot past the limit is
/// not sent (it was, whenever it had been due before the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duration_limit_stops_a_capped_open_loop() {
    let (url, _) = serve(Script {
        stall: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&url);
    cfg.request_rates = vec![f64::INFINITY];
    cfg.max_concurrency = Some(1);
    cfg.num_prompts = Some(20);
    cfg.duration_limit = Some(Duration::from_millis(300));
    let sweep = run_sweep(&cfg).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    assert!((1..=7).contains(&m.completed), "{}", m.completed);
    assert!(m.duration_s < 0.6, "{}", m.duration_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_share_the_load() {
    let (a, fake_a) = serve(Script::default()).await;
    let (b, fake_b) = serve(Script::default()).await;
    let mut cfg = config(&a);
    cfg.extra_urls = vec![b];
    canary(&cfg).await.unwrap();
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.metrics.completed, 12);
    // One canary each, then 12 requests round-robin.
    assert_eq!(fake_a.requests.load(Ordering::SeqCst), 7);
    assert_eq!(fake_b.requests.load(Ordering::SeqCst), 7);
    let on_b = sweep.points[0]
        .requests
        .iter()
        .filter(|r| r.url_index == 1)
        .count();
    assert_eq!(on_b, 6);
    // A warm-up of one request warms every router: one each, at least.
    let (fa, fb) = (
        fake_a.requests.load(Ordering::SeqCst),
        fake_b.requests.load(Ordering::SeqCst),
    );
    cfg.warmup = 1;
    run_sweep(&cfg).await.unwrap();
    assert_eq!(fake_a.requests.load(Ordering::SeqCst) - fa, 7);
    assert_eq!(fake_b.requests.load(Ordering::SeqCst) - fb, 7);
}

/// A file in a temp folder of its own (the `tempfile` crate's), removed when dropped.
struct TempFile(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        Self(path, dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_prompts_are_text_and_input_comes_from_usage() {
    let (url, _) = serve(timed()).await;
    let mut cfg = config(&url);
    cfg.endpoint = "/v1/chat/completions".into();
    canary(&cfg).await.unwrap();
    let sweep = run_sweep(&cfg).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    assert_eq!(sweep.invalid_reason(), None);
    assert_eq!((m.completed, m.total_output_tokens), (12, 12 * 8));
    // The fake counts words; 64 one-token words per prompt.
    assert_eq!(m.total_input_tokens, 12 * 64);
    assert!(
        (24.0..=80.0).contains(&m.ttft.median_ms),
        "{}",
        m.ttft.median_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonl_dataset_drives_the_requests() {
    let (url, _) = serve(Script::default()).await;
    let data = TempFile::new(
        "ok.jsonl",
        "{\"input_ids\": [5, 6, 7], \"output_tokens\": 4}\n\
         {\"prompt\": \"one two three four five\", \"output_tokens\": 2}\n",
    );
    let mut cfg = config(&url);
    cfg.dataset = Some(data.0.clone());
    let sweep = run_sweep(&cfg).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    // 12 requests alternate between the two entries.
    assert_eq!(m.completed, 12);
    assert_eq!(m.total_output_tokens, 6 * 4 + 6 * 2);
    assert_eq!(m.total_input_tokens, 6 * 3 + 6 * 5);
}

/// With a dataset, whose entries give each request's lengths, `--isl`/`--osl` are not asked
/// for (they were required, then ignored, and printed in the point's header as if used);
/// without one they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_needs_no_isl_or_osl_and_the_header_says_where_lengths_come_from() {
    let (url, _) = serve(Script::default()).await;
    let data = TempFile::new(
        "d.jsonl",
        "{\"input_ids\": [5, 6, 7], \"output_tokens\": 4}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let base = [
        "bench",
        "--url",
        &url,
        "--model",
        "m",
        "--concurrency",
        "1",
        "--rounds",
        "2",
    ];
    assert!(Cli::try_parse_from(base).is_err(), "no lengths, no dataset");
    let mut with = base.to_vec();
    let data_path = data.0.display().to_string();
    let out = dir.path().display().to_string();
    with.extend(["--dataset", &data_path, "--output-dir", &out]);
    let args = Cli::try_parse_from(with).unwrap().bench;
    assert!(run(args).await.unwrap());
    let log = std::fs::read_to_string(dir.path().join("benchmark.con1.log")).unwrap();
    assert!(
        log.starts_with("disagg bench: point con1 ")
            && log.contains(&format!("lengths from {data_path}, model m")),
        "{log}"
    );
}

/// vLLM's and SGLang's names for the same flags are taken: users of those benches met tips
/// toward the wrong flag (`--disable-stream` → `--isl`).
#[test]
fn upstream_bench_flag_names_are_taken() {
    let a = Cli::try_parse_from([
        "bench",
        "--base-url",
        "http://127.0.0.1:1",
        "--random-input-len",
        "64",
        "--random-output-len",
        "8",
        "--disable-stream",
        "--result-dir",
        "/tmp/x",
    ])
    .unwrap()
    .bench;
    assert_eq!(a.url, ["http://127.0.0.1:1"]);
    assert_eq!((a.isl, a.osl), (Some(64), Some(8)));
    assert!(a.no_stream);
    assert_eq!(
        a.output_dir.as_deref(),
        Some(std::path::Path::new("/tmp/x"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_dataset_line_stops_the_run_and_names_the_line() {
    let data = TempFile::new(
        "bad.jsonl",
        "{\"input_ids\": [5], \"output_tokens\": 4}\n{\"input_ids\": [5]}\n",
    );
    let mut cfg = config("http://127.0.0.1:1");
    cfg.dataset = Some(data.0.clone());
    match run_sweep(&cfg).await {
        Err(e @ BenchError::Dataset { line: Some(2), .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("bad.jsonl:2: missing field `output_tokens`"),
                "{msg}"
            );
        }
        other => panic!("expected a dataset error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharegpt_prompts_go_to_chat_sized_by_a_tokenizer_file() {
    let (url, _) = serve(Script::default()).await;
    let words = [
        "the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "red", "blue", "sky", "sea",
        "sun", "moon", "star",
    ];
    let vocab: serde_json::Map<String, Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("Ġ{w}"), json!(i)))
        .collect();
    let tokenizer = TempFile::new(
        "tokenizer.json",
        &json!({"model": {"type": "BPE", "vocab": vocab, "merges": []}}).to_string(),
    );
    let data = TempFile::new(
        "sharegpt.json",
        &json!([
            {"id": "1", "conversations": [
                {"from": "human", "value": "the cat sat on the mat"},
                {"from": "gpt", "value": "the dog ran far away"}
            ]},
            {"id": "2", "conversations": [{"from": "human", "value": "alone"}]}
        ])
        .to_string(),
    );
    let mut cfg = config(&url);
    cfg.endpoint = "/v1/chat/completions".into();
    cfg.dataset = Some(data.0.clone());
    cfg.tokenizer = Some(tokenizer.0.clone());
    let sweep = run_sweep(&cfg).await.unwrap();
    let m = &sweep.points[0].report.metrics;
    assert_eq!(sweep.invalid_reason(), None);
    // Output length: the reply's five tokens; input: the server's count of six words.
    assert_eq!(m.total_output_tokens, 12 * 5);
    assert_eq!(m.total_input_tokens, 12 * 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prefix_requests_reach_the_server_whole() {
    let (url, _) = serve(Script::default()).await;
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--isl",
        "32",
        "--osl",
        "2",
        "--concurrency",
        "2",
        "--rounds",
        "2",
        "--shared-prefix-groups",
        "2",
        "--shared-prefix-len",
        "16",
    ])
    .unwrap();
    let cfg = cli.bench.to_config();
    let sp = cfg.shared_prefix.unwrap();
    assert_eq!((sp.groups.get(), sp.prefix_len), (2, 16));
    let sweep = run_sweep(&cfg).await.unwrap();
    assert_eq!(sweep.points[0].report.metrics.total_input_tokens, 4 * 32);
    // A prefix as long as the input leaves no room for the rest.
    let mut too_long = cfg.clone();
    too_long.shared_prefix = Some(disagg_bench::SharedPrefix {
        prefix_len: 32,
        ..sp
    });
    assert!(matches!(
        run_sweep(&too_long).await,
        Err(BenchError::Config(_))
    ));
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

#[test]
fn flags_become_a_config() {
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        "http://127.0.0.1:8000",
        "--isl",
        "1024",
        "--osl",
        "128",
        "--concurrency",
        "1,8,64",
        "--percentiles",
        "50,90",
        "--no-stream",
        "--request-timeout",
        "90s",
    ])
    .unwrap();
    let cfg = cli.bench.to_config();
    assert_eq!(cfg.concurrency, vec![1, 8, 64]);
    assert_eq!(cfg.percentiles, vec![50.0, 90.0]);
    assert!(!cfg.streaming);
    assert_eq!(cfg.request_timeout, Duration::from_secs(90));
    assert_eq!(
        (cfg.isl, cfg.osl, cfg.rounds, cfg.warmup),
        (1024, 128, 4, 0)
    );
    assert_eq!(cfg.endpoint, "/v1/completions");
}

#[test]
fn open_loop_flags_become_a_config() {
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        "http://a:1",
        "--url",
        "http://b:2",
        "--isl",
        "8",
        "--osl",
        "2",
        "--request-rate",
        "5,inf",
        "--num-prompts",
        "100",
        "--burstiness",
        "0.5",
        "--max-concurrency",
        "16",
        "--duration",
        "2m",
        "--max-failure-rate",
        "0.01",
        "--ignore-eos=false",
        "--goodput",
        "ttft:100,e2el:2000",
        "--gpus",
        "8",
    ])
    .unwrap();
    let cfg = cli.bench.to_config();
    assert_eq!(cfg.url, "http://a:1");
    assert_eq!(cfg.extra_urls, vec!["http://b:2".to_string()]);
    assert_eq!(cfg.request_rates, vec![5.0, f64::INFINITY]);
    assert_eq!(cfg.num_prompts, Some(100));
    assert_eq!(cfg.burstiness, 0.5);
    assert_eq!(cfg.max_concurrency, Some(16));
    assert_eq!(cfg.duration_limit, Some(Duration::from_secs(120)));
    assert_eq!(cfg.max_failure_rate, 0.01);
    assert!(!cfg.ignore_eos);
    let slo = cfg.goodput.unwrap();
    assert_eq!(
        (slo.ttft_ms, slo.tpot_ms, slo.e2el_ms),
        (Some(100.0), None, Some(2000.0))
    );
    assert_eq!(cfg.gpus.map(|g| g.get()), Some(8));
    // The open loop needs a count, and a closed-loop concurrency makes no sense with it.
    let base = ["bench", "--url", "http://a:1", "--isl", "8", "--osl", "2"];
    let with = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra).copied());
    assert!(with(&["--goodput", "itl:3"]).is_err());
    assert!(with(&["--request-rate", "5"]).is_err());
    assert!(
        with(&[
            "--request-rate",
            "5",
            "--num-prompts",
            "9",
            "--concurrency",
            "4"
        ])
        .is_err()
    );
    assert!(
        with(&["--ignore-eos"])
            .unwrap()
            .bench
            .to_config()
            .ignore_eos
    );
    // vLLM's `--max-concurrency N` alone (its rate is inf): N in flight, counted from the send,
    // which is the closed loop at N; with a closed-loop concurrency it says nothing more.
    let cfg = with(&["--max-concurrency", "8", "--num-prompts", "16"])
        .unwrap()
        .bench
        .to_config();
    assert_eq!(
        (
            cfg.concurrency,
            cfg.request_rates.len(),
            cfg.max_concurrency
        ),
        (vec![8], 0, None)
    );
    assert!(with(&["--max-concurrency", "8", "--concurrency", "4"]).is_err());
    // Burstiness shapes the open loop's gaps; a closed loop has none.
    assert!(with(&["--burstiness", "0.5"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_run_writes_results_and_summary() {
    let (url, _) = serve(timed()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let cli = Cli::try_parse_from([
        "bench",
        "--url",
        &url,
        "--isl",
        "16",
        "--osl",
        "4",
        "--concurrency",
        "1,2",
        "--rounds",
        "2",
        "--output-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    assert!(run(cli.bench).await.unwrap(), "a clean run is valid");
    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    let points = results["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1]["max_concurrency"], 2);
    assert_eq!(points[1]["completed"], 4);
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert_eq!(
        summary
            .matches("============ Serving Benchmark Result ============")
            .count(),
        2
    );
    assert_eq!(results["valid"], true);
    assert!(
        points[0]["hdr_percentiles_ms"]["ttft"]["p99"]
            .as_f64()
            .unwrap()
            >= 30.0
    );
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert!(
        header.contains(&"duration") && header.contains(&"completed"),
        "{csv}"
    );
    // 1×2 + 2×2 requests, each with 4 chunk timestamps after its send.
    let jsonl = std::fs::read_to_string(dir.join("requests.jsonl")).unwrap();
    let records: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 6);
    for r in &records {
        let chunks = r["chunk_ns"].as_array().unwrap();
        assert_eq!(chunks.len(), 4);
        assert!(chunks[0].as_u64().unwrap() >= r["sent_ns"].as_u64().unwrap() + 30_000_000);
        assert!(r["end_ns"].as_u64() >= chunks[3].as_u64());
    }
    for metric in ["ttft", "tpot", "itl", "e2el"] {
        let hgrm = std::fs::read_to_string(dir.join(format!("hdr/point1_{metric}.hgrm"))).unwrap();
        assert!(hgrm.contains("Total count"), "{hgrm}");
    }
}
