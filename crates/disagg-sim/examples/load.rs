//! Measures how exactly one sim keeps its timing under many concurrent streams.
//!
//! Three ways to run it:
//! - `load --serve [sim flags]`: the sim alone. Prints `listening ADDR`, serves until SIGINT or
//!   SIGTERM (or `--serve-for`, 10 min by default), then prints its own token lateness and CPU use.
//! - `load --connect ADDR --streams N --tokens T --itl D`: the client alone, against that sim
//!   (`--itl` must match the sim's). Prints client gap errors and its own CPU use.
//! - `load [sim flags]`: both in one process.
//!
//! The sim serves as `disagg sim` does: one accepting task, connections handed in turn to
//! `--threads` serving threads (one per CPU, at most 8, by default), `--realtime` honoured. Streams are
//! opened over `--ramp` so the listen backlog is not the thing being measured. Reported:
//! - client side: every gap between consecutive token chunks minus the modelled ITL, as the
//!   client's reads returned (what a benchmark would see, client scheduling included);
//! - wire: the same gaps from kernel receive timestamps (`SO_TIMESTAMPNS`), taken when the
//!   segment entered the loopback receive path inside the sim's `writev`: the sim's timing
//!   without the client's own delays. Only reads that returned exactly one chunk count; the
//!   plateau figure counts only gaps while every stream was open;
//! - server side: how late each token was when the sim released it to the HTTP layer, against
//!   its modelled due time, and how much that lateness changed from a stream's previous token
//!   (its gap error), at 5 µs resolution ([`SimState::token_lateness`],
//!   [`SimState::token_gap_error`]); `/metrics` has the lateness at coarse buckets;
//! - CPU time (user + system) and context switches of each process, from `/proc/self`.

use std::time::{Duration, Instant};

use clap::Parser;
use disagg_sim::{ExitHook, SimArgs, SimState, serve_sharded};

#[derive(Parser)]
struct Cli {
    /// Run only the sim: print `listening ADDR`, serve until SIGINT/SIGTERM or `--serve-for`.
    #[arg(long, conflicts_with = "connect")]
    serve: bool,
    /// With `--serve`: stop serving after this long at the latest.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    serve_for: Duration,
    /// Run only the client, against the sim at this address (`host:port`).
    #[arg(long)]
    connect: Option<String>,
    /// Concurrent streams.
    #[arg(long, default_value_t = 5000)]
    streams: usize,
    /// Tokens per stream.
    #[arg(long, default_value_t = 100)]
    tokens: u64,
    /// Threads of the client's runtime. One thread reads 100k chunks/s with less CPU than
    /// two that wake and rob each other.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Streams are started evenly over this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    ramp: Duration,
    #[command(flatten)]
    sim: SimArgs,
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    let cli = Cli::parse();
    if cli.serve {
        serve_only(&cli);
    } else if let Some(addr) = cli.connect.clone() {
        client_only(&cli, &addr);
    } else {
        in_process(&cli);
    }
}

/// Binds the sim on 127.0.0.1 (`--port`, 0 by default) on its own 2-thread runtime.
fn start_sim(cli: &Cli) -> (tokio::runtime::Runtime, SimState, std::net::SocketAddr) {
    // Only the accepting task runs here; the serving threads have their own runtimes.
    let sim_rt = runtime(1);
    let (listener, state) = sim_rt.block_on(async {
        let state = SimState::new(&cli.sim, ExitHook::new(|| ())).expect("sim flags");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cli.sim.port))
            .await
            .expect("bind");
        (listener, state)
    });
    let addr = listener.local_addr().expect("addr");
    let served = state.clone();
    let (threads, realtime) = (cli.sim.serving.count(), cli.sim.realtime);
    sim_rt.spawn(async move {
        if let Err(e) = serve_sharded(listener, served, threads, realtime).await {
            eprintln!("sim: {e}");
            std::process::exit(2);
        }
    });
    (sim_rt, state, addr)
}

fn serve_only(cli: &Cli) {
    let cpu0 = cpu_time();
    let (sim_rt, state, addr) = start_sim(cli);
    println!("listening {addr}");
    let started = Instant::now();
    sim_rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = tokio::time::sleep(cli.serve_for) => {}
        }
    });
    let wall = started.elapsed();
    println!("sim served for {wall:.2?}");
    report_server(&state);
    report_cpu("sim process", cpu0, wall);
}

fn client_only(cli: &Cli, addr: &str) {
    let cpu0 = cpu_time();
    let client_rt = runtime(cli.client_threads);
    let started = Instant::now();
    let results = client_rt.block_on(run_load(addr, cli));
    let wall = started.elapsed();
    report_client(cli, cli.sim.timing.itl, wall, results);
    report_cpu("client process", cpu0, wall);
}

fn in_process(cli: &Cli) {
    let cpu0 = cpu_time();
    let (_sim_rt, state, addr) = start_sim(cli);
    let client_rt = runtime(cli.client_threads);
    let base = format!("http://{addr}");
    let started = Instant::now();
    let results = client_rt.block_on(run_load(&addr.to_string(), cli));
    let wall = started.elapsed();
    let metrics = client_rt.block_on(async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    });
    report_client(cli, cli.sim.timing.itl, wall, results);
    report_server(&state);
    for p in [0.5, 0.99, 0.999] {
        println!(
            "server token lateness p{} (/metrics buckets): <= {} s",
            p * 100.0,
            histogram_quantile(&metrics, "sim_token_lateness_seconds", p)
                .unwrap_or_else(|| "?".into())
        );
    }
    report_cpu("sim + client process", cpu0, wall);
}

/// User and system CPU time of this process so far, from `/proc/self/stat` (Linux, 100 Hz
/// ticks).
fn cpu_time() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| {
        Some(Duration::from_millis(
            fields.get(i)?.parse::<u64>().ok()? * 10,
        ))
    };
    Some((ticks(11)?, ticks(12)?))
}

fn report_cpu(who: &str, before: Option<(Duration, Duration)>, wall: Duration) {
    match (before, cpu_time()) {
        (Some((u0, s0)), Some((u1, s1))) => {
            let (user, sys) = (u1.saturating_sub(u0), s1.saturating_sub(s0));
            println!(
                "{who} CPU: user {user:.2?} + sys {sys:.2?} over {wall:.2?} wall = {:.2} cores",
                (user + sys).as_secs_f64() / wall.as_secs_f64()
            );
        }
        _ => println!("{who} CPU: unavailable (no /proc/self/stat)"),
    }
    let (voluntary, involuntary) = context_switches();
    println!(
        "{who} context switches (all threads, whole life): {voluntary} voluntary, {involuntary} involuntary"
    );
}

/// Context switches summed over the process's live threads, from `/proc/self/task/*/status`.
fn context_switches() -> (u64, u64) {
    let mut sums = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return sums;
    };
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let n = |l: &str| {
                l.split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("voluntary_ctxt_switches") {
                sums.0 += n(line);
            } else if line.starts_with("nonvoluntary_ctxt_switches") {
                sums.1 += n(line);
            }
        }
    }
    sums
}

fn report_server(state: &SimState) {
    let ps = [0.5, 0.9, 0.95, 0.98, 0.99, 0.999];
    report_fine("server token lateness", &ps, state.token_lateness(&ps));
    report_fine(
        "server gap error |late - previous late|",
        &ps,
        state.token_gap_error(&ps),
    );
}

fn report_fine(what: &str, ps: &[f64], (count, q, max): (u64, Vec<Option<Duration>>, Duration)) {
    let shown: Vec<String> = ps
        .iter()
        .zip(q)
        .map(|(p, d)| {
            let v = d.map_or("> 200".to_string(), |d| {
                format!("{:.3}", d.as_secs_f64() * 1e3)
            });
            format!("p{} {v}", p * 100.0)
        })
        .collect();
    println!(
        "{what} ms (5 us buckets, upper bounds), {count} tokens: {} max {:.3}",
        shown.join(" "),
        max.as_secs_f64() * 1e3
    );
}

struct StreamResult {
    /// Arrival of each token chunk.
    arrivals: Vec<Arrival>,
    error: Option<String>,
}

async fn run_load(addr: &str, cli: &Cli) -> Vec<StreamResult> {
    let body = serde_json::json!({
        "prompt": (0..16).collect::<Vec<u32>>(),
        "max_tokens": cli.tokens,
        "stream": true,
    })
    .to_string();
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let request: std::sync::Arc<[u8]> = request.into_bytes().into();
    let step = cli.ramp / cli.streams.max(1) as u32;
    let t0 = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..cli.streams)
        .map(|i| {
            let (addr, request) = (addr.to_string(), request.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(t0 + step * i as u32).await;
                one_stream(&addr, &request)
                    .await
                    .unwrap_or_else(|(arrivals, e)| StreamResult {
                        arrivals,
                        error: Some(e.to_string()),
                    })
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| StreamResult {
            arrivals: Vec::new(),
            error: Some(e.to_string()),
        }));
    }
    out
}

/// One token chunk as the client saw it.
#[derive(Clone, Copy)]
struct Arrival {
    /// When the client's read returned.
    at: Instant,
    /// When the kernel received the chunk's segment (`SO_TIMESTAMPNS`, CLOCK_REALTIME). On
    /// loopback the receive path runs inside the sender's `writev`, so this is when the sim
    /// put the chunk on the wire, free of the client's own scheduling delay. `None` when one
    /// read returned several chunks: the kernel reports one timestamp per read, the last one.
    wire: Option<Duration>,
}

/// One streamed request over a bare TCP connection. The client is deliberately minimal (no
/// HTTP library, no JSON or SSE parsing) so that its own CPU use disturbs the measurement as
/// little as possible: a token chunk is recognised by the end of its SSE frame, `}\n\n`, and
/// the stream ends at `[DONE]`. The sim's frames are checked byte for byte by its own tests.
async fn one_stream(
    addr: &str,
    request: &[u8],
) -> Result<StreamResult, (Vec<Arrival>, std::io::Error)> {
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncWriteExt, Interest};
    let mut arrivals = Vec::new();
    let mut conn = match tokio::net::TcpStream::connect(addr).await {
        Ok(c) => c,
        Err(e) => return Err((arrivals, e)),
    };
    let _ = conn.set_nodelay(true);
    if let Err(e) =
        nix::sys::socket::setsockopt(&conn, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        return Err((arrivals, e.into()));
    }
    if let Err(e) = conn.write_all(request).await {
        return Err((arrivals, e));
    }
    let fd = conn.as_raw_fd();
    let mut buf = vec![0u8; 16 << 10];
    // The last two bytes of the previous read, so a frame end split across reads is seen.
    let mut tail = [0u8; 2];
    let mut status_checked = false;
    loop {
        let read = conn
            .async_io(Interest::READABLE, || recv_stamped(fd, &mut buf))
            .await;
        let (n, wire) = match read {
            Ok((0, _)) => {
                let e =
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before [DONE]");
                return Err((arrivals, e));
            }
            Ok(r) => r,
            Err(e) => return Err((arrivals, e)),
        };
        let at = Instant::now();
        let data = &buf[..n];
        if !status_checked {
            status_checked = true;
            if !data.starts_with(b"HTTP/1.1 200") {
                let head = String::from_utf8_lossy(&data[..n.min(200)]).into_owned();
                return Err((arrivals, std::io::Error::other(head)));
            }
        }
        let first_new = arrivals.len();
        let mut prev = tail;
        let mut done = false;
        for &b in data {
            if b == b'\n' && prev[1] == b'\n' {
                match prev[0] {
                    b'}' => arrivals.push(Arrival { at, wire: None }),
                    b']' => done = true,
                    _ => {}
                }
            }
            prev = [prev[1], b];
        }
        tail = prev;
        if arrivals.len() == first_new + 1 {
            arrivals[first_new].wire = wire;
        }
        if done {
            return Ok(StreamResult {
                arrivals,
                error: None,
            });
        }
    }
}

/// `recvmsg` with room for the `SCM_TIMESTAMPNS` control message.
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<Duration>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT)?;
    let mut wire = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(ts) = c {
            wire = Some(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32));
        }
    }
    Ok((msg.bytes, wire))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The smallest bucket bound holding at least `p` of a Prometheus histogram's observations.
fn histogram_quantile(metrics: &str, name: &str, p: f64) -> Option<String> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(String, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, n) = rest.split_once("\"} ")?;
            Some((le.to_string(), n.parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, n)| *n >= p * total)
        .map(|(le, _)| le.clone())
}

fn report_client(cli: &Cli, itl: Duration, wall: Duration, results: Vec<StreamResult>) {
    let failed: Vec<_> = results.iter().filter_map(|r| r.error.as_ref()).collect();
    let complete = results
        .iter()
        .filter(|r| r.error.is_none() && r.arrivals.len() as u64 == cli.tokens)
        .count();
    let gaps = || results.iter().flat_map(|r| r.arrivals.windows(2));
    let error_ms = |gap: Duration| gap.as_secs_f64() * 1e3 - itl.as_secs_f64() * 1e3;
    let wire_gap = |w: &[Arrival]| w[1].wire?.checked_sub(w[0].wire?);
    // The plateau: from the last stream's first token to the first stream's last token, every
    // stream is open at once. The ramp before it also carries the connection storm.
    let plateau_start = results
        .iter()
        .filter_map(|r| r.arrivals.first())
        .map(|a| a.at)
        .max();
    let plateau_end = results
        .iter()
        .filter_map(|r| r.arrivals.last())
        .map(|a| a.at)
        .min();
    let plateau = plateau_start.zip(plateau_end).filter(|(a, b)| a < b);
    println!(
        "streams {} x {} tokens, itl {:?}, wall {:.2?}",
        cli.streams, cli.tokens, itl, wall
    );
    println!("complete streams: {complete}, failed: {}", failed.len());
    if let Some(e) = failed.first() {
        println!("first failure: {e}");
    }
    report_gaps(
        "client",
        gaps().map(|w| error_ms(w[1].at - w[0].at)).collect(),
    );
    report_gaps(
        "wire (kernel receive timestamps, one chunk per read)",
        gaps().filter_map(|w| wire_gap(w).map(error_ms)).collect(),
    );
    let (a, b) = plateau.unwrap_or((Instant::now(), Instant::now()));
    report_gaps(
        &format!("wire, while every stream was open ({:.2?})", b - a),
        gaps()
            .filter(|w| w[1].at > a && w[1].at < b)
            .filter_map(|w| wire_gap(w).map(error_ms))
            .collect(),
    );
}

/// Prints the signed and absolute gap errors (ms) of one view of the gaps.
fn report_gaps(what: &str, mut errors_ms: Vec<f64>) {
    errors_ms.sort_by(f64::total_cmp);
    let mut abs: Vec<f64> = errors_ms.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    println!(
        "{what}: {} gaps; gap - itl ms: p1 {:+.3} p50 {:+.3} p99 {:+.3} max {:+.3}",
        errors_ms.len(),
        percentile(&errors_ms, 0.01),
        percentile(&errors_ms, 0.5),
        percentile(&errors_ms, 0.99),
        errors_ms.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "{what}: |gap - itl| ms: p50 {:.3} p99 {:.3} p99.9 {:.3}",
        percentile(&abs, 0.5),
        percentile(&abs, 0.99),
        percentile(&abs, 0.999)
    );
}
