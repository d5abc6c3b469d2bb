//! `disagg router` as a process: what it logs, what it refuses at start, and the limits that
//! keep its memory and connections bounded whatever clients send. Apart from `parts.rs`, whose
//! timing checks must not share the CPU with these loads.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::*;

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_router_logs_its_startup_and_names_the_worker_it_ejects() {
    let ctx = Server::start(&["sim", "--role", "context", "--itl", "1ms"]);
    let dead = format!("127.0.0.1:{}", closed_port());
    // Until the checker ejects the dead worker: 2 failed probes 100 ms apart.
    let (addr, text) = router_log_until(
        &[
            "--prefill",
            &ctx.addr,
            "--decode",
            &dead,
            "--health-interval",
            "100ms",
        ],
        " ejected after",
    );
    let startup = text
        .lines()
        .find(|l| l.contains(&format!("router on {addr}: dialect trtllm;")))
        .unwrap_or_else(|| panic!("no startup line naming {addr}:\n{text}"));
    assert!(
        startup.contains(" INFO ")
            && startup.contains(&format!(
                "context workers [http://{}] by round_robin",
                ctx.addr
            ))
            && startup.contains(&format!(
                "generation workers [http://{dead}] by round_robin"
            )),
        "{startup}"
    );
    let ejected = text
        .lines()
        .find(|l| l.contains(" ejected after"))
        .unwrap_or_else(|| panic!("no ejection line:\n{text}"));
    assert!(
        ejected.contains(" WARN ")
            && ejected.contains(&format!("generation worker http://{dead} ejected after 2 failure(s) in a row: /health failed")),
        "{ejected}"
    );
    assert!(
        !text.contains(&format!("context worker http://{} ejected", ctx.addr)),
        "the live worker stays in: {text}"
    );
}

/// `disagg router ARGS --port 0`, its log (stderr) in a file, until the log holds `needle`
/// (at most 20 s); then stopped. Its address and its log.
fn router_log_until(args: &[&str], needle: &str) -> (String, String) {
    let dir = TempDir::new("router-log");
    let log_path = dir.path().join("disagg_server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(DISAGG)
        .arg("router")
        .args(args)
        .args(["--port", "0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = read(&log_path);
        if text.contains(needle) || std::time::Instant::now() >= until {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    (addr.trim().to_string(), text)
}

/// The peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// Sends one POST of `body` over a fresh connection; the status line's code, or `None` when
/// the router closed the connection before answering (it refused the body part way).
fn post_raw(addr: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    for chunk in body.chunks(1 << 20) {
        if s.write_all(chunk).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
}

/// The documented bound (crates/disagg-router/README.md, "Limits"): peak RSS under
/// 1.25 × `--max-inflight-body-bytes` + 64 MiB, so 384 MiB with the defaults. Without the budget
/// the same eight bodies took it to 573 MiB on the test VM (2026-12-05), 1.26 GB in an earlier run.
const MAX_RSS_MIB_FOR_BIG_BODIES: f64 = 1.25 * 256.0 + 64.0;

#[test]
fn eight_parallel_60mb_bodies_keep_the_router_under_its_memory_bound() {
    let dead = format!("127.0.0.1:{}", closed_port());
    let router = Server::start(&[
        "router",
        "--prefill",
        &dead,
        "--decode",
        &dead,
        "--port",
        "0",
        "--threads",
        "2",
        // The dead workers stay in rotation, so every accepted body goes all the way to a leg.
        "--eject-after",
        "1000",
    ]);
    let before = peak_rss_mib(router.child.id());
    let prompt = "a".repeat(60_000_000);
    let body =
        std::sync::Arc::new(format!(r#"{{"prompt":"{prompt}","max_tokens":4}}"#).into_bytes());
    let codes: Vec<Option<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let body = body.clone();
                let addr = router.addr.clone();
                s.spawn(move || post_raw(&addr, &body))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let peak = peak_rss_mib(router.child.id());
    println!(
        "router peak RSS: {before:.0} MiB idle, {peak:.0} MiB after 8 x 60 MB bodies; answers {codes:?}"
    );
    // Bodies within the budget reach the (dead) workers: 502; the others are refused: 503, or a
    // connection closed before the whole body was sent.
    assert!(codes.contains(&Some(502)), "{codes:?}");
    assert!(
        codes.iter().any(|c| *c == Some(503) || c.is_none()),
        "some bodies are refused: {codes:?}"
    );
    assert!(
        peak < MAX_RSS_MIB_FOR_BIG_BODIES,
        "peak RSS {peak:.0} MiB, bound {MAX_RSS_MIB_FOR_BIG_BODIES} MiB"
    );
    // And it still serves.
    let small = br#"{"prompt":"hi","max_tokens":4}"#;
    assert_eq!(post_raw(&router.addr, small), Some(502));
}

#[test]
fn slow_header_connections_are_closed_after_the_header_timeout() {
    use std::io::{Read, Write};
    let dead = format!("127.0.0.1:{}", closed_port());
    let router = Server::start(&[
        "router",
        "--prefill",
        &dead,
        "--decode",
        &dead,
        "--port",
        "0",
        "--header-timeout",
        "1s",
    ]);
    // Each connection: (socket, when it opened, how long it lived). Opened 50 at a time between
    // polls, so each close is seen within a poll of when it happened.
    let mut conns: Vec<(
        std::net::TcpStream,
        std::time::Instant,
        Option<std::time::Duration>,
    )> = Vec::new();
    let start = std::time::Instant::now();
    let until = start + std::time::Duration::from_secs(15);
    let mut next_byte = start;
    while (conns.len() < 500 || conns.iter().any(|c| c.2.is_none()))
        && std::time::Instant::now() < until
    {
        for _ in 0..50.min(500 - conns.len()) {
            let mut s = std::net::TcpStream::connect(&router.addr).unwrap();
            s.write_all(b"POST /v1/completions HTTP/1.1\r\nhost: r\r\n")
                .unwrap();
            s.set_nonblocking(true).unwrap();
            conns.push((s, std::time::Instant::now(), None));
        }
        // A slowloris: one more header byte per connection every 200 ms, until each is closed.
        let trickle = std::time::Instant::now() >= next_byte;
        if trickle {
            next_byte += std::time::Duration::from_millis(200);
        }
        for (s, opened, lived) in conns.iter_mut().filter(|c| c.2.is_none()) {
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => *lived = Some(opened.elapsed()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if trickle {
                        let _ = s.write_all(b"x");
                    }
                }
                Err(_) => *lived = Some(opened.elapsed()),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let open = conns.iter().filter(|c| c.2.is_none()).count();
    assert_eq!(conns.len(), 500);
    assert_eq!(
        open, 0,
        "{open} of 500 slow-header connections are still open after 15 s"
    );
    let first = conns.iter().filter_map(|c| c.2).min().unwrap();
    let last = conns.iter().filter_map(|c| c.2).max().unwrap();
    println!("500 slow-header connections closed {first:?} to {last:?} after they opened");
    assert!(
        first >= std::time::Duration::from_millis(950),
        "closed by the header timeout (1s), not before: {first:?}"
    );
    // A close is seen when this thread next polls its 500 sockets, which under the parallel
    // suite on 2 cores can lag by a second or more; a router without the timeout would keep
    // them open to the end (15 s), so 4 s still tells the two apart.
    assert!(
        last < std::time::Duration::from_secs(4),
        "every one closed soon after the timeout: {last:?}"
    );
}

#[test]
fn a_worker_url_the_router_cannot_use_stops_it_at_start() {
    for (dialect, prefill, says) in [
        (
            "sglang",
            "http://h:1@8998x",
            "--prefill http://h:1@8998x: it carries user info",
        ),
        (
            "trtllm",
            "ftp://x:1",
            "--prefill ftp://x:1: the scheme is `ftp`, not http",
        ),
        ("trtllm", "127.0.0.1:1@8998", "the trtllm dialect has none"),
    ] {
        let r = disagg(
            &[
                "router",
                "--dialect",
                dialect,
                "--prefill",
                prefill,
                "--decode",
                "127.0.0.1:2",
                "--port",
                "0",
            ],
            &[],
        );
        assert_eq!(r.code(), 2, "{}", r.show());
        assert!(
            r.stdout().is_empty(),
            "no address is published: {}",
            r.show()
        );
        assert!(
            r.stderr().contains(says) && r.stderr().contains("hint: "),
            "{}",
            r.show()
        );
    }
}

#[test]
fn a_body_that_stops_arriving_gets_408_after_the_body_timeout() {
    use std::io::{Read, Write};
    let dead = format!("127.0.0.1:{}", closed_port());
    let router = Server::start(&[
        "router",
        "--prefill",
        &dead,
        "--decode",
        &dead,
        "--port",
        "0",
        "--body-timeout",
        "1s",
    ]);
    let mut s = std::net::TcpStream::connect(&router.addr).unwrap();
    s.write_all(
        b"POST /v1/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\": \"",
    )
    .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let sent = std::time::Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let took = sent.elapsed();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("--body-timeout"), "{text}");
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "answered after {took:?}"
    );
}

/// One HTTP/1.1 exchange over a fresh connection (`connection: close`): the status and the
/// body as text.
fn exchange(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The `disaggregated_params` of every request a sim logged (`--request-log`).
fn logged_params(log: &std::path::Path) -> Vec<serde_json::Value> {
    read(log)
        .lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["body"]["disaggregated_params"].clone()
        })
        .collect()
}

/// A context sim playing TensorRT-LLM `version` that logs what it is sent, whose `/version`
/// answers after `version_delay`, a generation sim, and a `disagg router` in front of them.
fn trtllm_pair(
    version: &str,
    version_delay: &str,
    log: &std::path::Path,
) -> (Server, Server, Server) {
    let ctx = Server::start(&[
        "sim",
        "--role",
        "context",
        "--itl",
        "1ms",
        "--trtllm-version",
        version,
        "--version-delay",
        version_delay,
        "--request-log",
        log.to_str().unwrap(),
    ]);
    let generation = Server::start(&[
        "sim",
        "--role",
        "generation",
        "--itl",
        "1ms",
        "--trtllm-version",
        version,
    ]);
    let router = Server::start(&[
        "router",
        "--prefill",
        &ctx.addr,
        "--decode",
        &generation.addr,
        "--port",
        "0",
    ]);
    (ctx, generation, router)
}

const COMPLETION: &str = r#"{"model": "m", "prompt": "a b c d", "max_tokens": 3}"#;

/// Regression: a router's first requests went out before its first `/version` round had
/// answered, so without `disagg_request_id` whatever the worker's version. Here `/version`
/// answers 300 ms late and the request is sent the moment the router prints its address; its
/// very first context request must carry the id to a 1.3 worker, and must not to a 1.0 one
/// (which refuses it with 400).
#[test]
fn a_router_hit_at_once_sends_disagg_request_ids_by_version_from_its_first_request() {
    for version in ["1.3.0", "1.0.0"] {
        let dir = TempDir::new("router-first-request");
        let log = dir.path().join("ctx.jsonl");
        let (_ctx, _gen, router) = trtllm_pair(version, "300ms", &log);
        let (status, body) = exchange(&router.addr, "POST", "/v1/completions", COMPLETION);
        assert_eq!(status, 200, "{version}: {body}");
        let sent = logged_params(&log);
        assert_eq!(sent.len(), 1, "{version}: one context request: {sent:?}");
        let id = &sent[0]["disagg_request_id"];
        if version == "1.3.0" {
            assert!(id.as_u64().is_some_and(|id| id >= 1 << 40), "{id}");
        } else {
            assert!(id.is_null(), "1.0 gets no id: {}", sent[0]);
        }
    }
}

/// A context worker whose `/version` does not answer (here it would after 60 s) holds a
/// request up once, for the router's 1.5 s ask, and no request after it: they go without the
/// id, as to an older version, and the census says why.
#[test]
fn a_worker_that_never_answers_version_costs_one_bounded_wait() {
    let dir = TempDir::new("router-silent-version");
    let log = dir.path().join("ctx.jsonl");
    let (_ctx, _gen, router) = trtllm_pair("1.3.0", "60s", &log);
    let started = std::time::Instant::now();
    let (status, body) = exchange(&router.addr, "POST", "/v1/completions", COMPLETION);
    let first = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        first >= std::time::Duration::from_millis(1400)
            && first < std::time::Duration::from_secs(6),
        "the first request waits for the ask, bounded: {first:?}"
    );
    let started = std::time::Instant::now();
    let (status, body) = exchange(&router.addr, "POST", "/v1/completions", COMPLETION);
    let second = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        second < std::time::Duration::from_secs(1),
        "no wait once the ask went unanswered: {second:?}"
    );
    for sent in logged_params(&log) {
        assert!(sent["disagg_request_id"].is_null(), "{sent}");
    }
    let (_, census) = exchange(&router.addr, "GET", "/workers", "");
    let census: serde_json::Value = serde_json::from_str(&census).unwrap();
    assert_eq!(
        census["prefill"]["workers"][0]["disagg_request_id"], "omitted (/version not answered)",
        "{census}"
    );
}

/// The body of an HTTP/1.1 answer, its chunked transfer coding undone.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size:?}"));
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// Every `data:` event of an event stream but `[DONE]`, as JSON.
fn events(stream: &str) -> Vec<serde_json::Value> {
    stream
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// Per prompt (`index`, 0 without), the `input_token_logprobs` of every event for it.
fn rows_by_index(events: &[serde_json::Value]) -> Vec<Vec<serde_json::Value>> {
    let mut out: Vec<Vec<serde_json::Value>> = Vec::new();
    for e in events {
        let i = e["index"].as_u64().unwrap_or(0) as usize;
        if out.len() <= i {
            out.resize(i + 1, Vec::new());
        }
        out[i].push(e["meta_info"]["input_token_logprobs"].clone());
    }
    out
}

/// SGLang's `/generate` streamed with `return_logprob`, through `disagg router` to sims: every
/// decode event carries prefill's `input_token_logprobs` before decode's own (empty: decode ran
/// no prompt forward), as mini_lb merges them, so each event's rows are the aggregated sim's;
/// for a batch, per prompt (`index`). The sims give the rows as SGLang does: from
/// `logprob_start_len` (default: the last prompt token), the first logprob null.
#[test]
fn a_streamed_generate_with_return_logprob_carries_prefills_input_logprobs_in_every_event() {
    let sim = |role: &str| {
        Server::start(&[
            "sim",
            "--dialect",
            "sglang",
            "--role",
            role,
            "--itl",
            "1ms",
            "--bootstrap-port",
            "0",
        ])
    };
    let (ctx, generation, aggregated) = (sim("context"), sim("generation"), sim("both"));
    let (_, info) = exchange(&ctx.addr, "GET", "/server_info", "");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let bootstrap = info["disaggregation_bootstrap_port"].as_u64().unwrap();
    let router = Server::start(&[
        "router",
        "--dialect",
        "sglang",
        "--prefill",
        &format!("{}@{bootstrap}", ctx.addr),
        "--decode",
        &generation.addr,
        "--port",
        "0",
    ]);

    // The sims' rows, whole: SGLang's default start is the prompt's last token.
    let whole = |addr: &str, body: serde_json::Value| {
        let (status, answer) = exchange(addr, "POST", "/generate", &body.to_string());
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["meta_info"]["input_token_logprobs"].clone()
    };
    let ask = serde_json::json!({"input_ids": [11, 12, 13], "return_logprob": true,
                                 "sampling_params": {"max_new_tokens": 2}});
    assert_eq!(
        whole(&aggregated.addr, ask.clone()),
        serde_json::json!([[null, 13, null]])
    );
    let mut from0 = ask.clone();
    from0["logprob_start_len"] = serde_json::json!(0);
    let all = whole(&aggregated.addr, from0.clone());
    let rows = all.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    assert!(
        rows[0][0].is_null() && rows[1][0].as_f64().is_some_and(|l| l < 0.0),
        "{all}"
    );
    assert_eq!(
        (&rows[0][1], &rows[1][1], &rows[2][1]),
        (
            &serde_json::json!(11),
            &serde_json::json!(12),
            &serde_json::json!(13)
        )
    );
    let mut too_far = ask.clone();
    too_far["logprob_start_len"] = serde_json::json!(3);
    let (status, _) = exchange(&aggregated.addr, "POST", "/generate", &too_far.to_string());
    assert_eq!(
        status, 400,
        "a start past the prompt is refused, as SGLang does"
    );

    for body in [
        serde_json::json!({"text": "a b c d e", "stream": true, "return_logprob": true,
                           "logprob_start_len": 0, "sampling_params": {"max_new_tokens": 4}}),
        serde_json::json!({"text": ["a b", "c d e"], "stream": true, "return_logprob": true,
                           "logprob_start_len": 0, "sampling_params": {"max_new_tokens": 3}}),
    ] {
        let streamed = |addr: &str| {
            let (status, answer) = exchange(addr, "POST", "/generate", &body.to_string());
            assert_eq!(status, 200, "{answer}");
            events(&dechunk(&answer))
        };
        let (via_router, direct) = (streamed(&router.addr), streamed(&aggregated.addr));
        let (got, want) = (rows_by_index(&via_router), rows_by_index(&direct));
        assert_eq!(got.len(), want.len(), "{via_router:?}");
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(got.len(), want.len(), "prompt {i}: one event per token");
            assert!(!want[0].as_array().unwrap().is_empty());
            for g in got {
                assert_eq!(
                    g, &want[0],
                    "prompt {i}: every event carries prefill's rows"
                );
            }
        }
        // Per prompt: a batch's prompts interleave in no fixed order.
        let text = |evs: &[serde_json::Value]| {
            let mut by_index = std::collections::BTreeMap::<u64, Vec<serde_json::Value>>::new();
            for e in evs {
                let i = e["index"].as_u64().unwrap_or(0);
                by_index.entry(i).or_default().push(e["text"].clone());
            }
            by_index
        };
        assert_eq!(
            text(&via_router),
            text(&direct),
            "the stream itself is decode's"
        );
    }
}

/// vLLM: a prefill that stops on its one token (EOS) keeps no KV. Through `disagg router` to
/// sims scripted to stop there: without a minimum, the prefill's answer is the client's; with
/// `min_tokens` the prefill was not given, the decode sim recomputes the request whole (it
/// refuses a decode without params, so the router must say "no remote KV" rather than drop them).
#[test]
fn a_vllm_prefill_that_stops_on_eos_answers_or_is_recomputed_for_a_minimum() {
    let sim = |role: &str| {
        Server::start(&[
            "sim",
            "--dialect",
            "vllm",
            "--role",
            role,
            "--itl",
            "1ms",
            "--eos-at",
            "0",
            "--side-channel-port",
            "0",
        ])
    };
    let (prefill, decode) = (sim("context"), sim("generation"));
    let router = Server::start(&[
        "router",
        "--dialect",
        "vllm",
        "--prefill",
        &prefill.addr,
        "--decode",
        &decode.addr,
        "--port",
        "0",
    ]);
    let ask = |body: &str| {
        let (status, answer) = exchange(&router.addr, "POST", "/v1/completions", body);
        assert_eq!(status, 200, "{body}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        (
            answer["choices"][0]["finish_reason"].clone(),
            answer["usage"]["completion_tokens"].clone(),
        )
    };
    assert_eq!(
        ask(r#"{"prompt": "a b c d", "max_tokens": 8}"#),
        (serde_json::json!("stop"), serde_json::json!(1))
    );
    assert_eq!(
        ask(r#"{"prompt": "a b c d", "max_tokens": 8, "min_tokens": 5}"#),
        (serde_json::json!("length"), serde_json::json!(8)),
        "the EOS is scripted at 0 only, which min_tokens suppresses"
    );
}

/// A router that has run out of its own file descriptors cannot open a connection to a worker:
/// it answers 503 saying so, and neither blames nor ejects the (healthy) worker, which it used
/// to count as refusing connections, ejecting every worker under a flood.
#[test]
fn a_router_out_of_file_descriptors_answers_503_and_blames_no_worker() {
    use std::io::{Read, Write};
    let sim = |role| Server::start(&["sim", "--role", role, "--itl", "20ms"]);
    let (ctx, generation) = (sim("context"), sim("generation"));
    // At rest the router holds about 23 descriptors; 40 leaves room for a few connections.
    let router = Server::start_after(
        "ulimit -n 40",
        &[
            "router",
            "--prefill",
            &ctx.addr,
            "--decode",
            &generation.addr,
            "--port",
            "0",
            "--max-retries",
            "0",
        ],
    );
    // Hold more connections than it has descriptors for, each sending a request at once: the
    // first ones accepted take the last descriptors, so their worker connections cannot open.
    let body = r#"{"model": "m", "prompt": "a b c d", "max_tokens": 4}"#;
    let head = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut streams: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            let s = std::net::TcpStream::connect(&router.addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            s
        })
        .collect();
    for s in &mut streams {
        s.write_all(head.as_bytes()).unwrap();
    }
    // Read the answers of the ones it accepted (the rest it reaches only as these close).
    let mut statuses = Vec::new();
    let mut refused_503 = Vec::new();
    for mut s in streams {
        let mut out = Vec::new();
        if s.read_to_end(&mut out).is_err() {
            continue;
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let Some(status) = text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)) else {
            continue;
        };
        if status == "503" && text.contains("out of file descriptors") {
            refused_503.push(text.clone());
        }
        assert!(
            !text.contains("refused the connection"),
            "the worker was blamed: {text}"
        );
        statuses.push(status.to_string());
    }
    assert!(
        !refused_503.is_empty(),
        "no request met the shortage: {statuses:?}"
    );
    // Once the connections are closed it serves again, with every worker still in.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let metrics = loop {
        let (status, text) = exchange(&router.addr, "GET", "/metrics", "");
        if status == 200 {
            break text;
        }
        assert!(std::time::Instant::now() < until, "{status}: {text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let ejections: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("disagg_router_ejections_total"))
        .collect();
    assert!(
        !ejections.is_empty() && ejections.iter().all(|l| l.ends_with(" 0")),
        "{ejections:?}"
    );
    let (status, answer) = exchange(&router.addr, "POST", "/v1/completions", body);
    assert_eq!(status, 200, "{answer}");
}

/// A router left on its default dialect (trtllm) in front of workers that say they speak
/// vLLM's: a warning names the flag; every request failed with words about roles.
#[test]
fn a_router_in_front_of_workers_of_another_dialect_says_which_flag_to_pass() {
    // (Each its own NIXL side-channel port: two on one host collide at 5600.)
    let sim = |role| {
        Server::start(&[
            "sim",
            "--dialect",
            "vllm",
            "--role",
            role,
            "--itl",
            "1ms",
            "--side-channel-port",
            "0",
        ])
    };
    let (ctx, gen_) = (sim("context"), sim("generation"));
    let (_, text) = router_log_until(
        &["--prefill", &ctx.addr, "--decode", &gen_.addr],
        "--dialect vllm",
    );
    assert!(
        text.contains(" WARN ")
            && text.contains(
                "its /version says it speaks the vllm dialect, and this router speaks trtllm"
            )
            && text.contains("start the router with `--dialect vllm`"),
        "{text}"
    );
}
