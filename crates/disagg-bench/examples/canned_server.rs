//! A minimal OpenAI-completions stand-in for measuring load generators, not servers: a raw
//! HTTP/1.1 keep-alive loop on tokio that answers every POST with the same SSE stream of
//! `--chunks` content chunks, a usage frame and `[DONE]`.
//!
//! - `--ttft-ms 0 --itl-ms 0` (zero delay): the whole stream is one pre-built buffer written at
//!   once, like nginx serving a static file, so the server costs almost nothing per request.
//! - otherwise (fixed timing): the first chunk after TTFT, each next one ITL later, with chunked
//!   transfer encoding; these are the "truth" a client's TTFT and ITL are compared with. This mode
//!   runs one OS thread per connection with blocking sockets and `std::thread::sleep`, because
//!   tokio's timer rounds every sleep up to a whole millisecond, which would put 0.5–1.5 ms of
//!   server lateness into the truth; nanosleep is late by tens of microseconds.
//!
//! Prints `listening on http://ADDR` once bound. Usage:
//! `canned_server [--port P] [--chunks N] [--ttft-ms T] [--itl-ms I]`

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
struct Opts {
    port: u16,
    chunks: u32,
    ttft: Duration,
    itl: Duration,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        port: 0,
        chunks: 32,
        ttft: Duration::ZERO,
        itl: Duration::ZERO,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        let ms = |v: &str| Duration::from_secs_f64(v.parse::<f64>().expect("a number") / 1e3);
        match pair[0].as_str() {
            "--port" => o.port = value.parse().expect("a port"),
            "--chunks" => o.chunks = value.parse().expect("a count"),
            "--ttft-ms" => o.ttft = ms(value),
            "--itl-ms" => o.itl = ms(value),
            other => panic!("unknown flag {other}"),
        }
    }
    o
}

fn content_frame() -> &'static [u8] {
    b"data: {\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"x\"}],\"usage\":null}\n\n"
}

/// The last content chunk carries the usage (some Python clients index `choices[0]` of every
/// frame, so a usage-only frame with empty choices would break them), then `[DONE]`.
fn tail_frames(chunks: u32) -> Vec<u8> {
    let mut t = format!(
        "data: {{\"object\":\"text_completion\",\"choices\":[{{\"index\":0,\"text\":\"x\"}}],\"usage\":{{\"prompt_tokens\":128,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
        128 + chunks
    )
    .into_bytes();
    t.extend_from_slice(b"data: [DONE]\n\n");
    t
}

/// The whole zero-delay response, headers included.
fn canned_response(chunks: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 1..chunks {
        body.extend_from_slice(content_frame());
    }
    body.extend(tail_frames(chunks));
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend(body);
    r
}

fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// What a client asked for.
#[derive(PartialEq)]
enum Request {
    /// Readiness and model probes (`GET /v1/models`, server info): answered with `{}`.
    Get,
    Post,
    Closed,
}

/// Reads one request (headers, then `content-length` bytes of body).
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Request> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let kind = if head.starts_with("get ") {
                Request::Get
            } else {
                Request::Post
            };
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            let total = end + 4 + len;
            while buf.len() < total {
                let mut chunk = [0u8; 16384];
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(Request::Closed);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(kind);
        }
        let mut chunk = [0u8; 16384];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Request::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The zero-delay server's connection loop: every POST gets the pre-built stream in one write.
async fn serve(mut sock: TcpStream, canned: &'static [u8]) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(16384);
    loop {
        match read_request(&mut sock, &mut buf).await? {
            Request::Closed => return Ok(()),
            Request::Get => {
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                )
                .await?;
                continue;
            }
            Request::Post => {}
        }
        sock.write_all(canned).await?;
    }
}

/// The fixed-timing server: a thread per connection, deadlines from each request's arrival.
fn serve_timed(o: Opts) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", o.port))?;
    println!("listening on http://{}", listener.local_addr()?);
    for sock in listener.incoming() {
        let mut sock = sock?;
        std::thread::spawn(move || -> std::io::Result<()> {
            sock.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(16384);
            let mut chunk = [0u8; 16384];
            loop {
                // One request: headers, then content-length bytes of body.
                let (total, get) = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap_or(0));
                        if buf.len() >= end + 4 + len {
                            break (end + 4 + len, head.starts_with("get "));
                        }
                    }
                    let n = sock.read(&mut chunk)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                };
                buf.drain(..total);
                if get {
                    sock.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                    )?;
                    continue;
                }
                let start = std::time::Instant::now();
                let until = |d: Duration| {
                    let now = std::time::Instant::now();
                    if start + d > now {
                        std::thread::sleep(start + d - now);
                    }
                };
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                )?;
                let last = o.chunks.saturating_sub(1);
                for i in 0..last {
                    until(o.ttft + o.itl * i);
                    sock.write_all(&chunked(content_frame()))?;
                }
                until(o.ttft + o.itl * last);
                let mut end = chunked(&tail_frames(o.chunks));
                end.extend_from_slice(b"0\r\n\r\n");
                sock.write_all(&end)?;
            }
        });
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let o = parse_args();
    if !(o.ttft.is_zero() && o.itl.is_zero()) {
        return serve_timed(o);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", o.port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let canned: &'static [u8] = Box::leak(canned_response(o.chunks).into_boxed_slice());
        loop {
            let (sock, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = serve(sock, canned).await;
            });
        }
    })
}
