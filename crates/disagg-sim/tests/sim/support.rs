//! A sim served in-process on a port-0 listener, plus a small client.
//!
//! The listener is bound before the server task starts, so the kernel queues connections and
//! tests never wait for readiness.

use std::time::{Duration, Instant};

use clap::Parser;
use disagg_proto::sse::{Event, Parser as SseParser};
use disagg_sim::{ExitHook, SimArgs, SimState, serve};
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

/// A running sim. Dropping it stops the server.
pub struct Sim {
    pub base: String,
    pub client: reqwest::Client,
    /// Receives one `()` each time the sim's exit hook fires.
    pub exits: mpsc::UnboundedReceiver<()>,
    /// The served sim's state (`None` for another server), for its own timing figures.
    pub state: Option<SimState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The same client helpers for another server speaking the client API (e.g. a router).
pub fn client_for(base: String) -> Sim {
    let (_, exits) = mpsc::unbounded_channel();
    Sim {
        base,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        exits,
        state: None,
        task: None,
    }
}

/// Parses `disagg sim` flags as the binary would.
pub fn try_parse_args(flags: &[&str]) -> Result<SimArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("sim").chain(flags.iter().copied())).map(|c| c.sim)
}

pub fn parse_args(flags: &[&str]) -> SimArgs {
    try_parse_args(flags).expect("valid sim flags")
}

/// The hand-off ports on free ones: SGLang's and vLLM's defaults (8998, 5600) would make
/// concurrent tests collide, as two engines on one node do. `flags` may override them.
const FREE_SIDE_PORTS: &[&str] = &[
    "--bootstrap-port",
    "0",
    "--side-channel-host",
    "127.0.0.1",
    "--side-channel-port",
    "0",
];

/// Starts a sim with `disagg sim` flags, e.g. `&["--role", "context", "--itl", "1ms"]`.
pub async fn start(flags: &[&str]) -> Sim {
    let all: Vec<&str> = FREE_SIDE_PORTS.iter().chain(flags).copied().collect();
    let args = parse_args(&all);
    let (tx, exits) = mpsc::unbounded_channel();
    let state = SimState::new(
        &args,
        ExitHook::new(move || {
            let _ = tx.send(());
        }),
    )
    .expect("valid sim state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let served = state.clone();
    let task = tokio::spawn(async move {
        serve(listener, served).await.expect("serve");
    });
    Sim {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        exits,
        state: Some(state),
        task: Some(task),
    }
}

/// One event of a streamed response and when it arrived.
#[derive(Debug)]
pub struct Arrival {
    pub at: Instant,
    pub event: Event,
}

impl Arrival {
    pub fn json(&self) -> Value {
        match &self.event {
            Event::Data(d) => serde_json::from_slice(d).expect("chunk is JSON"),
            Event::Done => panic!("expected a data chunk, got [DONE]"),
        }
    }
}

/// A client's body names a model (TensorRT-LLM requires one): an empty name where the test gave
/// none, which vLLM takes for the one it serves and SGLang ignores. [`Sim::post_raw`] sends a
/// body as given.
pub fn with_model(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.entry("model").or_insert(Value::String(String::new()));
    }
    body
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    }

    /// POSTs raw bytes as JSON and returns the status and the body parsed as JSON.
    pub async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, json)
    }

    pub async fn complete(&self, body: &Value) -> (u16, Value) {
        self.post_raw("/v1/completions", &with_model(body).to_string())
            .await
    }

    /// POSTs a completions body with an `X-Request-Id` header (vLLM's proxy sends one).
    pub async fn complete_as(&self, request_id: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/v1/completions"))
            .header("x-request-id", request_id)
            .json(&with_model(body))
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).expect("JSON body");
        (status, json)
    }

    /// `host:port` of this sim, as hand-off params name it.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// `host:port` of the side channel (SGLang's bootstrap server, vLLM's NIXL side channel).
    pub fn side_channel(&self) -> String {
        let (host, port) = self
            .state
            .as_ref()
            .and_then(|s| s.side_channel())
            .expect("this sim has a side channel");
        format!("{host}:{port}")
    }

    /// The port of an SGLang prefill's bootstrap server.
    pub fn bootstrap_port(&self) -> u16 {
        let side = self.side_channel();
        side.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        String::from_utf8(body).expect("UTF-8 metrics")
    }

    /// Scrapes `/metrics` until `series` reads `value`, and returns that scrape: a wait on what
    /// the sim reports rather than on time. Fails after 5 s.
    pub async fn until_metric(&self, series: &str, value: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.metrics().await;
            if metric(&text, series) == value {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{series} never read {value}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// POSTs a streaming request and records every SSE event with its arrival time.
    pub async fn stream(&self, body: &Value) -> (Instant, Vec<Arrival>) {
        let sent = Instant::now();
        let (events, cut) = self.stream_until_cut(body).await;
        assert!(cut.is_none(), "stream failed: {cut:?}");
        (sent, events)
    }

    /// [`Sim::stream`] on another path (SGLang's `/generate`).
    pub async fn stream_at(&self, path: &str, body: &Value) -> (Instant, Vec<Arrival>) {
        let sent = Instant::now();
        let (events, cut) = self.stream_until_cut_at(path, body).await;
        assert!(cut.is_none(), "stream failed: {cut:?}");
        (sent, events)
    }

    /// Like [`Sim::stream`], but a cut connection is returned instead of failing the test.
    pub async fn stream_until_cut(&self, body: &Value) -> (Vec<Arrival>, Option<String>) {
        self.stream_until_cut_at("/v1/completions", body).await
    }

    async fn stream_until_cut_at(
        &self,
        path: &str,
        body: &Value,
    ) -> (Vec<Arrival>, Option<String>) {
        let mut r = self
            .client
            .post(self.url(path))
            .json(&with_model(body))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 200, "streaming request failed");
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(content_type, "text/event-stream");
        let mut parser = SseParser::new();
        let mut arrivals = Vec::new();
        loop {
            match r.chunk().await {
                Ok(Some(chunk)) => {
                    let at = Instant::now();
                    arrivals.extend(
                        parser
                            .push(&chunk)
                            .into_iter()
                            .map(|event| Arrival { at, event }),
                    );
                }
                Ok(None) => break,
                Err(e) => return (arrivals, Some(format!("{e:?}"))),
            }
        }
        assert_eq!(parser.pending(), 0, "stream ended mid-event");
        (arrivals, None)
    }
}

/// The message of an OpenAI error body, asserting the body has that shape.
pub fn error_message(body: &Value) -> String {
    // OpenAI's envelope (vLLM, SGLang, the sim's own), or TensorRT-LLM's flat ErrorResponse.
    let e = if body["object"] == "error" {
        body
    } else {
        &body["error"]
    };
    assert!(e["type"].is_string(), "not an OpenAI error body: {body}");
    e["message"].as_str().expect("error message").to_string()
}

/// The text of a streamed completion: its token chunks concatenated.
pub fn streamed_text(events: &[Arrival]) -> String {
    events
        .iter()
        .filter(|a| a.event != Event::Done)
        .map(|a| {
            let v = a.json();
            v["choices"][0]["text"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// Reads a counter or gauge from Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}
