//! One request and its timestamps: sent, each content chunk, end.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use disagg_proto::openai::Usage;
use disagg_proto::sse::{Event, Parser};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;

use crate::LatencyOrigin;
use crate::workload::PreparedRequest;

/// Where and how requests go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `{url}{endpoint}` for every router; request `i` goes to `urls[i % len]`, so load spreads
    /// evenly and the same seed sends the same request to the same router.
    pub urls: Vec<http::Uri>,
    pub streaming: bool,
    pub timeout: Duration,
    /// Streams only: no byte for this long, of this request's answer or of any other (see
    /// [`LastByte`]), fails the request as `stalled`.
    pub stall: Option<Duration>,
    pub last_byte: std::sync::Arc<LastByte>,
    /// The server was asked to ignore EOS, so each output length is a promise to check.
    pub ignore_eos: bool,
    /// `Authorization` for every request (`Bearer <api key>`).
    pub authorization: Option<http::HeaderValue>,
}

/// `Bearer <key>`, for [`Target::authorization`]; `None` without a key (or one no header can
/// hold, which the command line refuses first).
pub(crate) fn bearer(key: Option<&str>) -> Option<http::HeaderValue> {
    key.and_then(|k| http::HeaderValue::from_str(&format!("Bearer {k}")).ok())
}

/// What one request did. `sent` and `end` are kept for failures too, so the point's duration
/// covers every request that was measured.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Position in the point's request sequence.
    pub index: usize,
    /// When the load model meant to send it. In a closed loop that is `sent`; in an uncapped
    /// open loop a late send (a busy client) shows up as latency instead of vanishing, and
    /// under a cap the wait for a slot is the client's queue time.
    pub scheduled: Instant,
    pub sent: Instant,
    pub end: Instant,
    pub input_tokens: u64,
    /// Which of the target's URLs it went to.
    pub url_index: usize,
    /// The output length the server was held to (`ignore_eos`), if any.
    pub promised_output: Option<u32>,
    pub result: Result<Success, Failure>,
    /// A failed stream's content chunks, as far as they came (empty for a success, whose
    /// chunks are its `Success`'s): where an answer froze or broke shows in its timeline.
    pub partial: Vec<Instant>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    /// Arrival of every chunk that carried text. Frames that arrive in the same read share its
    /// instant: that is when the client could first see them.
    pub chunks: Vec<Instant>,
    pub output_tokens: u64,
    /// `usage.prompt_tokens`, when the server reported it.
    pub prompt_tokens: Option<u64>,
    /// Whether `output_tokens` is the server's `usage.completion_tokens` (else a chunk count).
    pub usage_reported: bool,
    pub streamed: bool,
    /// TensorRT-LLM's `choices[0].avg_decoded_tokens_per_iter`, the last one the server sent.
    pub avg_decoded_tokens_per_iter: Option<f64>,
    /// The first event that carried a choice (or `/generate`'s counts), text or not: the first
    /// token's time when no event carried text (an answer of special tokens only), as vLLM
    /// takes it.
    pub first_choice: Option<Instant>,
}

impl Outcome {
    /// When its latencies start: its scheduled time or its send ([`PointId::latency_origin`](
    /// crate::PointId::latency_origin)).
    pub fn origin(&self, from: LatencyOrigin) -> Instant {
        match from {
            LatencyOrigin::Scheduled => self.scheduled,
            LatencyOrigin::Sent => self.sent,
        }
    }

    /// From the origin to the end.
    pub fn e2e(&self, from: LatencyOrigin) -> Duration {
        self.end.saturating_duration_since(self.origin(from))
    }

    /// Time from the origin to the first content chunk. A whole (non-streamed) answer arrives
    /// at once, so there TTFT is the end-to-end latency, as in benchmark_serving.
    pub fn ttft(&self, from: LatencyOrigin) -> Option<Duration> {
        let ok = self.result.as_ref().ok()?;
        if ok.streamed {
            (ok.chunks.first().or(ok.first_choice.as_ref()))
                .map(|&first| first.saturating_duration_since(self.origin(from)))
        } else {
            Some(self.e2e(from))
        }
    }
}

/// Why a request failed; `kind()` is the key it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection: why, in words (refused, the bench's own file descriptors, ...).
    Connect(Option<String>),
    /// No whole answer within the request timeout (this long).
    Timeout(Duration),
    /// A stream that had no byte for this long (the bench's `stall`): a hung server.
    Stalled(Duration),
    /// A non-2xx answer, with the message of its OpenAI-style error body when it had one.
    Status(u16, Option<String>),
    /// The stream ended before `data: [DONE]` (or a whole body before its end): how.
    StreamCut(&'static str),
    /// A body or frame that is not the JSON we expect, or an in-band `error` object.
    BadBody,
    /// Any other transport error while sending.
    Transport,
    /// With `ignore_eos`, an answer whose output length is not the `max_tokens` asked for (a
    /// server that stopped early or ran on). Never a success: its TPOT and tok/s would be
    /// measured on another workload than the one asked for.
    WrongLength { got: u64, want: u32 },
    /// A well-formed answer with no generated tokens. Never a success: a server that answers
    /// instantly with nothing would otherwise post the best numbers of the sweep.
    ZeroTokens,
    /// A streamed request answered with one whole JSON body (`application/json`): the server
    /// ignores `stream: true`, so no token has a time of its own.
    NotAStream,
}

impl Failure {
    /// A request that got nothing until a limit ran out: the bench's timeout or stall, or a
    /// router's 504 (its own request deadline). A server that hangs fails this way, slowly.
    pub fn waited_out_a_limit(&self) -> bool {
        matches!(
            self,
            Failure::Timeout(_) | Failure::Stalled(_) | Failure::Status(504, _)
        )
    }

    /// The kind, and the server's message when it gave one: `http_401: invalid ...`.
    pub fn describe(&self) -> String {
        match self {
            Failure::Status(_, Some(message)) | Failure::Connect(Some(message)) => {
                format!("{}: {message}", self.kind())
            }
            Failure::StreamCut(how) => format!("{}: {how}", self.kind()),
            Failure::WrongLength { got, want } => format!(
                "{}: {got} output tokens where ignore_eos asked for {want}",
                self.kind()
            ),
            Failure::Stalled(after) => format!(
                "{}: no byte of the answer for {}",
                self.kind(),
                humantime::format_duration(*after)
            ),
            Failure::Timeout(limit) => format!(
                "{}: no whole answer within the request timeout, {} (a long output still \
                 streaming needs a longer one: --request-timeout, a case's timeouts.request)",
                self.kind(),
                humantime::format_duration(*limit)
            ),
            Failure::NotAStream => format!(
                "{}: a streamed request was answered with one whole JSON body \
                 (content-type application/json): the server ignores `stream: true`",
                self.kind()
            ),
            _ => self.kind(),
        }
    }

    pub fn kind(&self) -> String {
        match self {
            Failure::Connect(_) => "connect".into(),
            Failure::Timeout(_) => "timeout".into(),
            Failure::Stalled(_) => "stalled".into(),
            Failure::Status(code, _) => format!("http_{code}"),
            Failure::StreamCut(_) => "stream_cut".into(),
            Failure::BadBody => "bad_body".into(),
            Failure::Transport => "transport".into(),
            Failure::ZeroTokens => "zero_tokens".into(),
            Failure::WrongLength { .. } => "wrong_output_length".into(),
            Failure::NotAStream => "not_a_stream".into(),
        }
    }
}

/// Why a connection could not be opened, in words: the server's refusal and the bench's own
/// shortage of file descriptors look alike as a bare `connect`.
fn connect_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut next = Some(err);
    let mut last = err.to_string();
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.raw_os_error() {
                Some(24 | 23) => "the bench is out of file descriptors (raise `ulimit -n`, or \
                                  lower the concurrency); not the server's doing"
                    .to_string(),
                _ => match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                    _ => io.to_string(),
                },
            };
        }
        last = e.to_string();
        next = e.source();
    }
    last
}

/// The bench's HTTP client: hyper's pooled HTTP/1 client, request bodies sent whole.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One HTTP client for the whole sweep, so connections are reused across requests. Plain HTTP
/// only, and no proxy from the environment (it would be measured along with the server).
pub(crate) fn build_client(max_concurrency: u32) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Small SSE frames must not wait for Nagle's algorithm, or ITL measures the client.
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        // Keep one idle connection per worker so closed-loop requests never reconnect.
        .pool_max_idle_per_host(max_concurrency as usize)
        .build(connector)
}

/// Sends one request and records its timeline; the whole exchange is bounded by the timeout.
pub(crate) async fn send(
    client: &HttpClient,
    target: &Target,
    index: usize,
    req: &PreparedRequest,
    scheduled: Instant,
) -> Outcome {
    let url_index = index % target.urls.len();
    let sent = Instant::now();
    // Room for a chunk per output token from the start: growing the list as chunks arrive
    // reallocated it several times per request.
    let expected = (req.output_len as usize).min(MAX_PRESIZED_CHUNKS);
    // Filled as chunks arrive, here rather than in the exchange: a timeout drops the exchange,
    // and what came before it stays.
    let mut chunks = Vec::new();
    let exchange = exchange(
        client,
        target,
        &target.urls[url_index],
        req.body.clone(),
        expected,
        &mut chunks,
    );
    let result = match tokio::time::timeout(target.timeout, exchange).await {
        Ok(Ok(ok)) if ok.output_tokens == 0 => Err(Failure::ZeroTokens),
        Ok(Ok(ok)) if target.ignore_eos && wrong_length(&ok, req.output_len) => {
            chunks = ok.chunks;
            Err(Failure::WrongLength {
                got: ok.output_tokens,
                want: req.output_len,
            })
        }
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout(target.timeout)),
    };
    Outcome {
        index,
        scheduled: scheduled.min(sent),
        sent,
        end: Instant::now(),
        // Token-id prompts are exact; a text prompt's estimate gives way to the server's count.
        input_tokens: match (&result, req.input_exact) {
            (
                Ok(Success {
                    prompt_tokens: Some(p),
                    ..
                }),
                false,
            ) => *p,
            _ => u64::from(req.input_len),
        },
        url_index,
        promised_output: target.ignore_eos.then_some(req.output_len),
        partial: if result.is_err() { chunks } else { Vec::new() },
        result,
    }
}

/// Whether an answer held to `want` tokens by `ignore_eos` has another length. With the
/// server's `usage` the count is exact; without it the bench counted content chunks, which can
/// carry several tokens each (speculative decoding), so only more chunks than `want` is proof.
fn wrong_length(ok: &Success, want: u32) -> bool {
    let want = u64::from(want);
    if ok.usage_reported {
        ok.output_tokens != want
    } else {
        ok.output_tokens > want
    }
}

async fn exchange(
    client: &HttpClient,
    target: &Target,
    url: &http::Uri,
    body: Bytes,
    expected_chunks: usize,
    chunks: &mut Vec<Instant>,
) -> Result<Success, Failure> {
    let mut request =
        http::Request::post(url.clone()).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(auth) = &target.authorization {
        request = request.header(http::header::AUTHORIZATION, auth);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|_| Failure::Transport)?;
    let stall = target
        .stall
        .filter(|_| target.streaming)
        .map(|after| Stall {
            after,
            last: &target.last_byte,
        });
    let pending = client.request(request);
    // The answer's head (a router sends it with the first byte) is due as any byte is.
    let resp = match &stall {
        Some(s) => s.wait(pending, Instant::now()).await?,
        None => pending.await,
    };
    let resp = resp.map_err(|e| {
        if e.is_connect() {
            Failure::Connect(Some(connect_cause(&e)))
        } else {
            Failure::Transport
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        // Reading the (small) error body lets the connection go back to the pool, and its
        // message says why. Whatever its shape (OpenAI's, vLLM's, FastAPI's, an nginx page), so a
        // failure's description says `http_404: <the server's own words>`.
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = disagg_proto::error_message(&body);
        return Err(Failure::Status(status.as_u16(), Some(message)));
    }
    let whole_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if target.streaming && whole_json {
        // Read to its end, so the connection goes back to the pool.
        let _ = resp.into_body().collect().await;
        return Err(Failure::NotAStream);
    }
    if target.streaming {
        read_stream(resp.into_body(), expected_chunks, stall, chunks).await
    } else {
        read_whole(resp.into_body()).await
    }
}

/// The most chunk timestamps reserved up front per request (a 16k-token answer: 128 KiB).
const MAX_PRESIZED_CHUNKS: usize = 16 * 1024;

/// When any answer of the sweep last sent a byte. The bench's stall is a server that sends
/// nothing to anyone for that long; a request waiting its turn in a busy server's queue, while
/// others stream, is not one.
#[derive(Debug)]
pub(crate) struct LastByte {
    base: Instant,
    /// Milliseconds after `base`; raised (never lowered) at most once a millisecond per task.
    ms: std::sync::atomic::AtomicU64,
}

impl LastByte {
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = now.saturating_duration_since(self.base).as_millis() as u64;
        if self.ms.load(Relaxed) < ms {
            self.ms.fetch_max(ms, Relaxed);
        }
    }

    fn at(&self) -> Instant {
        self.base + Duration::from_millis(self.ms.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The stall rule for one request: `after` with no byte, neither of its own (since `own`)
/// nor of any other answer of the sweep.
struct Stall<'a> {
    after: Duration,
    last: &'a LastByte,
}

impl Stall<'_> {
    /// When the rule's limit runs out, given this request's last byte at `own`.
    fn due(&self, own: Instant) -> Instant {
        own.max(self.last.at()) + self.after
    }

    /// Awaits `fut` unless the rule's limit runs out first (then `stalled`). One timer, moved
    /// on only when it fires early, so waiting costs nothing per byte of other answers.
    async fn wait<F: std::future::Future>(
        &self,
        fut: F,
        own: Instant,
    ) -> Result<F::Output, Failure> {
        tokio::pin!(fut);
        let sleep = tokio::time::sleep_until(self.due(own).into());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                () = sleep.as_mut() => {
                    let due = self.due(own);
                    if due <= Instant::now() {
                        return Err(Failure::Stalled(self.after));
                    }
                    sleep.as_mut().reset(due.into());
                }
            }
        }
    }
}

async fn read_stream(
    mut body: Incoming,
    expected: usize,
    stall: Option<Stall<'_>>,
    chunks: &mut Vec<Instant>,
) -> Result<Success, Failure> {
    // The head just came: a byte, for this request and for the sweep.
    let mut own = Instant::now();
    if let Some(s) = &stall {
        s.last.touch(own);
    }
    let mut parser = Parser::new();
    chunks.reserve(expected);
    let mut usage = None;
    let mut decoded_per_iter = None;
    let mut first_choice = None;
    // Reused from chunk to chunk; its events are slices of the chunk they came in.
    let mut events = Vec::new();
    // Ends when the server sends [DONE] or closes the stream; the caller's timeout bounds both.
    loop {
        let frame = match &stall {
            None => body.frame().await,
            Some(s) => s.wait(body.frame(), own).await?,
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|_| Failure::StreamCut(BROKE))?;
        let arrived = Instant::now();
        if let Some(s) = &stall {
            own = arrived;
            s.last.touch(arrived);
        }
        // Trailers carry no events.
        let Ok(bytes) = frame.into_data() else {
            continue;
        };
        events.clear();
        parser.push_into(bytes, &mut events);
        for event in events.drain(..) {
            match event {
                Event::Done => {
                    let output_tokens =
                        usage.map_or(chunks.len() as u64, |u: Usage| u.completion_tokens);
                    return Ok(Success {
                        chunks: std::mem::take(chunks),
                        output_tokens,
                        prompt_tokens: usage.map(|u| u.prompt_tokens),
                        usage_reported: usage.is_some(),
                        streamed: true,
                        avg_decoded_tokens_per_iter: decoded_per_iter,
                        first_choice,
                    });
                }
                Event::Data(data) => {
                    let chunk = parse_chunk(&data)?;
                    // SGLang's `/generate` events carry the text so far and its token count: an
                    // event is content when that count grew.
                    let content = match &chunk.meta_info {
                        Some(m) => m.completion_tokens > usage.map_or(0, |u| u.completion_tokens),
                        None => chunk.has_text(),
                    };
                    if content {
                        chunks.push(arrived);
                    }
                    if first_choice.is_none()
                        && (chunk.choices.0.is_some() || chunk.meta_info.is_some())
                    {
                        first_choice = Some(arrived);
                    }
                    if let Some(u) = chunk.usage() {
                        usage = Some(u);
                    }
                    if let Some(a) = chunk.decoded_per_iter() {
                        decoded_per_iter = Some(a);
                    }
                }
            }
        }
    }
    Err(Failure::StreamCut(
        "the server ended the stream without `data: [DONE]` (vLLM's and TensorRT-LLM's \
         benchmarks count such a stream as answered; this bench does not, as the answer may be \
         short of its tokens)",
    ))
}

/// How a stream or body whose connection failed under it ends.
const BROKE: &str = "the connection broke before the answer ended";

async fn read_whole(body: Incoming) -> Result<Success, Failure> {
    let body = body
        .collect()
        .await
        .map_err(|_| Failure::StreamCut(BROKE))?
        .to_bytes();
    let arrived = Instant::now();
    let chunk = parse_chunk(&body)?;
    let has_text = chunk.has_text();
    let usage = chunk.usage();
    let output_tokens = match usage {
        Some(usage) => usage.completion_tokens,
        None => u64::from(has_text),
    };
    Ok(Success {
        chunks: if has_text { vec![arrived] } else { vec![] },
        output_tokens,
        prompt_tokens: usage.map(|u| u.prompt_tokens),
        usage_reported: usage.is_some(),
        streamed: false,
        avg_decoded_tokens_per_iter: chunk.decoded_per_iter(),
        first_choice: None,
    })
}

/// The parts of a completion (or chunk) the bench reads. Text is borrowed from the frame, not
/// copied: this runs for every chunk of every stream, and only its presence matters.
#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: First<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    /// SGLang's `/generate`: the text (so far, when streamed) and its counts.
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    meta_info: Option<MetaInfo>,
    /// Any error object (`null` reads as none): its `code`, when it has one.
    #[serde(default)]
    error: Option<StreamError>,
    /// `"error"` in a flat error event (`{"object":"error","message":...,"code":500}`, the
    /// shape of TensorRT-LLM's and SGLang's `ErrorResponse`), whose code is then top-level.
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// The first element of a JSON array, the rest skipped unread: a chunk's `choices` has one,
/// and collecting it into a `Vec` cost an allocation per chunk of every stream.
#[derive(Debug)]
struct First<T>(Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<First<T>, A::Error> {
                let first = seq.next_element::<T>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    /// Chat-shaped servers put streamed text here.
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// And whole chat answers here.
    #[serde(default, borrow)]
    message: Option<Delta<'a>>,
    /// TensorRT-LLM's speculative-decoding figure, per choice.
    #[serde(default)]
    avg_decoded_tokens_per_iter: Option<f64>,
}

/// `/generate`'s `meta_info`: the counts the bench reads (SGLang sends many more fields).
#[derive(Debug, Clone, Copy, Deserialize)]
struct MetaInfo {
    #[serde(default)]
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    /// A reasoning model's thinking, streamed apart from the answer by the engines' reasoning
    /// parsers (vLLM's and SGLang's `reasoning_content`, newer vLLM's `reasoning`): its tokens
    /// are output tokens, and the first of them is the first token.
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
}

impl Chunk<'_> {
    fn decoded_per_iter(&self) -> Option<f64> {
        self.choices.0.as_ref()?.avg_decoded_tokens_per_iter
    }

    /// The server's counts: OpenAI's `usage`, or `/generate`'s `meta_info`.
    fn usage(&self) -> Option<Usage> {
        self.usage.or_else(|| {
            self.meta_info
                .map(|m| Usage::new(m.prompt_tokens, m.completion_tokens))
        })
    }

    fn has_text(&self) -> bool {
        if self.text.as_deref().is_some_and(|t| !t.is_empty()) {
            return true;
        }
        self.choices.0.as_ref().is_some_and(|c| {
            let text = c.text.as_deref().unwrap_or_default();
            let content = |d: &Option<Delta>| {
                d.as_ref().is_some_and(|d| {
                    [&d.content, &d.reasoning_content, &d.reasoning]
                        .iter()
                        .any(|t| t.as_deref().is_some_and(|t| !t.is_empty()))
                })
            };
            !text.is_empty() || content(&c.delta) || content(&c.message)
        })
    }
}

/// An error object sent as a stream's event: only its status code is read here (its message is
/// read from the event whole, whatever its shape).
#[derive(Debug, Deserialize)]
struct StreamError {
    #[serde(default)]
    code: Option<serde_json::Value>,
}

fn parse_chunk(data: &[u8]) -> Result<Chunk<'_>, Failure> {
    let chunk: Chunk = serde_json::from_slice(data).map_err(|_| Failure::BadBody)?;
    // Servers that fail mid-stream, or refuse a request once its stream has begun (SGLang checks
    // the context length there), send an error object with status 200 already gone: its code
    // and its words, as a refusal before the stream would give them.
    let flat = chunk.object.as_deref() == Some("error");
    if chunk.error.is_some() || flat {
        let code = (chunk.error.as_ref().and_then(|e| e.code.as_ref()))
            .or(chunk.code.as_ref().filter(|_| flat))
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c));
        return Err(match code {
            Some(code) => Failure::Status(code, Some(disagg_proto::error_message(data))),
            None => Failure::BadBody,
        });
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_are_the_counted_keys() {
        assert_eq!(Failure::Status(500, None).kind(), "http_500");
        assert_eq!(
            Failure::Status(401, Some("bad key".into())).describe(),
            "http_401: bad key"
        );
        assert_eq!(Failure::Timeout(Duration::from_secs(2)).kind(), "timeout");
        assert_eq!(
            Failure::Timeout(Duration::from_secs(2)).describe(),
            "timeout: no whole answer within the request timeout, 2s (a long output still \
             streaming needs a longer one: --request-timeout, a case's timeouts.request)"
        );
        assert_eq!(Failure::Connect(None).kind(), "connect");
        assert_eq!(
            Failure::Connect(Some("connection refused".into())).describe(),
            "connect: connection refused"
        );
        assert_eq!(Failure::StreamCut(BROKE).kind(), "stream_cut");
        assert_eq!(
            Failure::StreamCut(BROKE).describe(),
            "stream_cut: the connection broke before the answer ended"
        );
        assert_eq!(Failure::BadBody.kind(), "bad_body");
        assert_eq!(Failure::ZeroTokens.kind(), "zero_tokens");
    }

    /// SGLang's `/generate` answers with the text and `meta_info`, not `choices` and `usage`.
    #[test]
    fn generate_answers_count_from_meta_info() {
        let c = parse_chunk(
            br#"{"text":"a b","output_ids":[5,6],"meta_info":{"id":"x","prompt_tokens":4,"completion_tokens":2,"finish_reason":{"type":"length","length":2}}}"#,
        )
        .unwrap();
        assert!(c.has_text());
        let u = c.usage().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (4, 2));
        let c = parse_chunk(br#"{"text":"","meta_info":{"completion_tokens":0}}"#).unwrap();
        assert!(!c.has_text());
        assert!(parse_chunk(br#"{"error":{"message":"x"}}"#).is_err());
    }

    #[test]
    fn chunks_with_empty_text_are_not_content() {
        let c = parse_chunk(br#"{"choices":[{"text":""}],"usage":null}"#).unwrap();
        assert!(!c.has_text());
        assert!(c.usage.is_none());
        let c = parse_chunk(br#"{"choices":[{"text":"a"}]}"#).unwrap();
        assert!(c.has_text());
        let c = parse_chunk(br#"{"choices":[{"delta":{"content":"b"}}]}"#).unwrap();
        assert!(c.has_text());
        // The chat stream's opening chunk, the role alone, is no token.
        let c =
            parse_chunk(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert!(!c.has_text());
        // A reasoning model's thinking is output, in either engine's field.
        for body in [
            &br#"{"choices":[{"delta":{"reasoning_content":"hm","content":null}}]}"#[..],
            br#"{"choices":[{"delta":{"reasoning":"hm"}}]}"#,
        ] {
            assert!(parse_chunk(body).unwrap().has_text());
        }
        // Only the first choice is read; the rest are skipped, whatever they hold.
        let c =
            parse_chunk(br#"{"choices":[{"text":"a"},{"text":"","x":[1,{"y":null}]}]}"#).unwrap();
        assert!(c.has_text());
        let c = parse_chunk(br#"{"choices":[{"text":""},{"text":"b"}]}"#).unwrap();
        assert!(!c.has_text());
        assert!(parse_chunk(br#"{"choices":null}"#).is_err());
        assert!(parse_chunk(br#"{"choices":[{"text":"a"},]}"#).is_err());
        let c = parse_chunk(br#"{"choices":[{"message":{"content":"c"}}]}"#).unwrap();
        assert!(c.has_text());
        assert_eq!(c.decoded_per_iter(), None);
        let c = parse_chunk(br#"{"choices":[{"text":"d","avg_decoded_tokens_per_iter":2.5}]}"#)
            .unwrap();
        assert_eq!(c.decoded_per_iter(), Some(2.5));
        let c = parse_chunk(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}"#,
        )
        .unwrap();
        assert_eq!(c.usage.unwrap().completion_tokens, 9);
        // A server that leaves total_tokens out is read, not failed as a bad body.
        let c = parse_chunk(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}"#)
            .unwrap();
        assert_eq!(c.usage.unwrap().total_tokens, 12);
    }

    #[test]
    fn bad_json_and_error_objects_fail() {
        assert_eq!(parse_chunk(b"{not json").unwrap_err(), Failure::BadBody);
        assert_eq!(
            parse_chunk(br#"{"error":{"message":"boom"}}"#).unwrap_err(),
            Failure::BadBody
        );
        // SGLang's refusal on a begun stream: its code and its words.
        assert_eq!(
            parse_chunk(br#"{"error":{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}}"#)
                .unwrap_err(),
            Failure::Status(400, Some("too long".into()))
        );
        assert!(parse_chunk(br#"{"choices":[{"text":"a"}],"error":null}"#).is_ok());
        // The flat shape (TensorRT-LLM's and SGLang's ErrorResponse) mid-stream: it used to
        // read as an event with no text, and the cut answer as a success.
        assert_eq!(
            parse_chunk(br#"{"object":"error","message":"engine died","type":"InternalServerError","param":null,"code":500}"#)
                .unwrap_err(),
            Failure::Status(500, Some("engine died".into()))
        );
        assert_eq!(
            parse_chunk(br#"{"object":"error","message":"?"}"#).unwrap_err(),
            Failure::BadBody
        );
        // A `code` of anything else is not an error's.
        assert!(parse_chunk(br#"{"object":"text_completion","code":500,"choices":[]}"#).is_ok());
        // Escaped text is decoded (owned), plain text borrowed; both count as content.
        assert!(
            parse_chunk(br#"{"choices":[{"text":"\u0041"}]}"#)
                .unwrap()
                .has_text()
        );
    }
}
