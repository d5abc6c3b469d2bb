//! Router overhead on loopback: `cargo bench -p disagg-router --bench router`.
//!
//! Zero-delay canned backends (a context worker whose answer fits every dialect, and a
//! generation worker), then closed-loop load at concurrency 1, 64 and 256 with 1k- and
//! 32k-token prompts (text; see [`request_body`]) against:
//! - the generation worker directly (the baseline);
//! - our router in each dialect (in this process, with its default serving threads, as
//!   `disagg router`; `BENCH_THREADS=N` sets `--threads`);
//! - the PD modes of `sglang-router` and `vllm-router`, when a venv holding them is found
//!   (`PEER_VENV`, default `/tmp/peer-venv`), as child processes.
//!
//! "added" is the router's percentile minus the direct percentile. CPU and context switches
//! per request are the router's own threads (ours) or process (peers), from /proc, divided by
//! requests. The client, the backends and the router share the machine, so absolute figures
//! are only comparable within one run. `BENCH_QUICK=1` runs a tenth of the requests;
//! `BENCH_ISL=1024` only that prompt length.
//!
//! `perf/compare.sh` runs it repeatedly, interleaved, with:
//! - `BENCH_BACKENDS=ctx1024=URL,ctx32768=URL,gen=URL`: external backends (nginx) instead of
//!   the in-process canned ones;
//! - `BENCH_DISAGG=PATH`: our router as a `disagg router` process (measured by pid, like the
//!   peers) instead of in this process;
//! - `BENCH_OUT=FILE`: every row appended as tab-separated values, for the summary;
//! - `BENCH_CONCURRENCY=1,64`: only those concurrencies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use axum::routing::{any, post};
use disagg_router::{Dialect, RouterConfig};

const CONCURRENCY: [usize; 3] = [1, 64, 256];
const ISL: [usize; 2] = [1024, 32768];
/// Every run stops after this long even if its request count is not reached.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// Waiting for a peer router to accept requests.
const PEER_STARTUP: Duration = Duration::from_secs(60);
/// CPU time is read in nanoseconds (`/proc/.../schedstat`): at 100 Hz ticks a run of 2000
/// requests at 0.07 ms each would be 14 ticks, too coarse to compare routers.
const NS_PER_MS: f64 = 1e6;

fn main() {
    // Set and not empty or 0: perf/compare.sh passes `BENCH_QUICK=$QUICK`, empty when not
    // asked, and an empty value once ran every "full" comparison at a tenth of its requests.
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    // `BENCH_ISL=1024` runs only that prompt length.
    let only_isl: Option<usize> = std::env::var("BENCH_ISL").ok().and_then(|v| v.parse().ok());
    let concurrency: Vec<usize> = match std::env::var("BENCH_CONCURRENCY") {
        Ok(v) => v
            .split(',')
            .map(|c| c.trim().parse().expect("BENCH_CONCURRENCY: numbers"))
            .collect(),
        Err(_) => CONCURRENCY.to_vec(),
    };
    let backends = match std::env::var("BENCH_BACKENDS") {
        Ok(spec) => external_backends(&spec),
        Err(_) => start_backends(),
    };
    let disagg_bin = std::env::var_os("BENCH_DISAGG").map(PathBuf::from);
    let mut out = std::env::var_os("BENCH_OUT").map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("BENCH_OUT {}: {e}", Path::new(&p).display()))
    });
    let venv = std::env::var_os("PEER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/peer-venv"));
    let client_rt = runtime("client", 1);
    let mut rows = Vec::new();
    for isl in ISL {
        if only_isl.is_some_and(|only| only != isl) {
            continue;
        }
        let body = request_body(isl);
        let ctx = &backends.ctx[&isl];
        let gen_url = &backends.generation;
        let mut targets: Vec<Target> = vec![Target::direct(gen_url)];
        for dialect in [Dialect::Trtllm, Dialect::Vllm, Dialect::Sglang] {
            match &disagg_bin {
                Some(bin) => match Target::ours_process(bin, dialect, ctx, gen_url) {
                    Ok(t) => targets.push(t),
                    Err(e) => panic!("disagg router ({}): {e}", dialect.as_str()),
                },
                None => targets.push(Target::ours(dialect, ctx, gen_url)),
            }
        }
        for peer in [Peer::Sglang, Peer::Vllm] {
            match Target::peer(peer, &venv, ctx, gen_url, &client_rt, &body) {
                Ok(t) => targets.push(t),
                Err(e) => eprintln!("skipping {}: {e}", peer.name()),
            }
        }
        let mut direct = Vec::new();
        for target in &targets {
            for (k, c) in concurrency.iter().enumerate() {
                let n = requests(isl, *c, quick);
                let client = client();
                let url = format!("{}/v1/completions", target.url);
                // Warm the pools so connection set-up is neither timed nor counted as CPU.
                client_rt.block_on(warm(&client, &url, &body, *c));
                let cpu0 = target.cpu_ns();
                let cs0 = target.switches();
                let run = client_rt.block_on(load(&client, &url, &body, *c, n));
                let cpu = target.cpu_ns().zip(cpu0).map(|(a, b)| a - b);
                let switches = target.switches().zip(cs0).map(|(a, b)| a - b);
                if target.name == "direct" {
                    direct.push((run.p50, run.p99));
                }
                let (d50, d99) = direct.get(k).copied().unwrap_or_default();
                rows.push(Row {
                    isl,
                    name: target.name.clone(),
                    c: *c,
                    run,
                    d50,
                    d99,
                    cpu,
                    switches,
                });
                print_row(rows.last().unwrap());
                if let Some(f) = out.as_mut() {
                    use std::io::Write as _;
                    writeln!(f, "{}", tsv_row(rows.last().unwrap())).expect("BENCH_OUT write");
                }
            }
        }
    }
    print_table(&rows);
}

/// Requests per run: enough for a stable p99, bounded so the whole bench stays in minutes.
fn requests(isl: usize, c: usize, quick: bool) -> usize {
    let n = match (isl > 4096, c) {
        (false, 1) => 2000,
        (false, _) => 8000,
        (true, 1) => 400,
        (true, _) => 2000,
    };
    if quick { (n / 10).max(c) } else { n }
}

// ---- the canned backends ----

struct Backends {
    ctx: std::collections::HashMap<usize, String>,
    generation: String,
}

/// `ctx1024=URL,ctx32768=URL,gen=URL`: backends someone else serves (nginx, in compare.sh).
fn external_backends(spec: &str) -> Backends {
    let mut ctx = std::collections::HashMap::new();
    let mut generation = None;
    for part in spec.split(',') {
        let (k, url) = part
            .split_once('=')
            .unwrap_or_else(|| panic!("BENCH_BACKENDS: `{part}` is not NAME=URL"));
        match k.strip_prefix("ctx") {
            Some(isl) => {
                let isl: usize = isl.parse().expect("BENCH_BACKENDS: ctx<ISL>");
                ctx.insert(isl, url.to_string());
            }
            None if k == "gen" => generation = Some(url.to_string()),
            None => panic!("BENCH_BACKENDS: unknown backend `{k}`"),
        }
    }
    for isl in ISL {
        assert!(ctx.contains_key(&isl), "BENCH_BACKENDS: no ctx{isl}");
    }
    Backends {
        ctx,
        generation: generation.expect("BENCH_BACKENDS: no gen"),
    }
}

fn start_backends() -> Backends {
    let rt = runtime("backend", 1);
    let mut ctx = std::collections::HashMap::new();
    for isl in ISL {
        let answer = Bytes::from(context_answer(isl));
        let app = Router::new()
            .route(
                "/v1/completions",
                post(move |body: Bytes| canned(answer.clone(), body)),
            )
            .fallback(any(|body: Bytes| canned(Bytes::from_static(INFO), body)));
        ctx.insert(isl, rt.block_on(bind(app)));
    }
    let app = Router::new()
        .route(
            "/v1/completions",
            post(|body: Bytes| canned(Bytes::from_static(GEN_ANSWER), body)),
        )
        .fallback(any(|body: Bytes| canned(Bytes::from_static(INFO), body)));
    let generation = rt.block_on(bind(app));
    // The runtime keeps serving on its thread for the life of the process.
    std::thread::Builder::new()
        .name("backend".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .expect("spawn backend thread");
    Backends { ctx, generation }
}

async fn bind(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Answers `body` once the request (taken, so read whole) is in: a server that answers before
/// reading a large request makes its connection unusable for keep-alive.
async fn canned(body: Bytes, _request: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    r
}

/// What a peer may ask of a worker at start-up (health, server and model info).
const INFO: &[u8] = br#"{"status":"ok","model_path":"m","tokenizer_path":"m","is_generation":true,"object":"list","data":[{"id":"m","object":"model"}]}"#;

const GEN_ANSWER: &[u8] = br#"{"id":"gen","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the end of the answer","finish_reason":"length"}],"usage":{"prompt_tokens":1024,"completion_tokens":16,"total_tokens":1040}}"#;

/// A context answer every dialect accepts: TRT-LLM's hand-off, vLLM's kv_transfer_params.
fn context_answer(isl: usize) -> Vec<u8> {
    let ids = token_ids(isl);
    format!(
        r#"{{"id":"ctx","object":"text_completion","created":1,"model":"m","choices":[{{"index":0,"text":"x","finish_reason":"length","disaggregated_params":{{"request_type":"context_only","first_gen_tokens":[7],"ctx_request_id":1,"encoded_opaque_state":null,"draft_tokens":null}}}}],"prompt_token_ids":{ids},"kv_transfer_params":{{"do_remote_prefill":true,"do_remote_decode":false,"remote_engine_id":"e","remote_block_ids":[1,2],"remote_host":"127.0.0.1","remote_port":1}},"usage":{{"prompt_tokens":{isl},"completion_tokens":1,"total_tokens":{isl}}}}}"#
    )
    .into_bytes()
}

/// A text prompt of `isl` random five-letter words (about one token each, six bytes with the
/// space, the size of a token-id array). Text rather than ids because sglang-router 0.3.2
/// rejects token-id prompts; every target gets the same body.
fn request_body(isl: usize) -> Bytes {
    let mut x: u64 = 0x2545_f491;
    let mut prompt = String::with_capacity(isl * 6);
    for _ in 0..isl {
        for _ in 0..5 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            prompt.push(char::from(b'a' + (x % 26) as u8));
        }
        prompt.push(' ');
    }
    Bytes::from(format!(
        r#"{{"model":"m","prompt":"{prompt}","max_tokens":16,"stream":false}}"#
    ))
}

/// Random token ids (fixed seed) as a JSON array.
fn token_ids(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9;
    let ids: Vec<String> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 128_000).to_string()
        })
        .collect();
    format!("[{}]", ids.join(","))
}

// ---- the routers under test ----

#[derive(Clone, Copy)]
enum Peer {
    Sglang,
    Vllm,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Sglang => "sglang-router PD",
            Peer::Vllm => "vllm-router PD",
        }
    }
}

struct Target {
    name: String,
    url: String,
    cpu: Cpu,
    /// Keeps a peer running; killed on drop.
    _child: Option<KillOnDrop>,
}

enum Cpu {
    None,
    /// Our threads, by name prefix.
    Threads(String),
    Process(u32),
}

impl Target {
    fn direct(url: &str) -> Self {
        Self {
            name: "direct".into(),
            url: url.into(),
            cpu: Cpu::None,
            _child: None,
        }
    }

    fn ours(dialect: Dialect, ctx: &str, generation: &str) -> Self {
        let name = format!("disagg {}", dialect.as_str());
        let thread = format!("rt-{}", dialect.as_str());
        let mut cfg = RouterConfig::new(vec![ctx.into()], vec![generation.into()]);
        cfg.dialect = dialect;
        if let Some(n) = std::env::var("BENCH_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            cfg.threads = n;
        }
        // As `disagg router`: accepting (and with `threads` 0, serving) on a 2-thread runtime.
        let rt = runtime(&thread, 2);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind router");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || {
                let _ = rt.block_on(disagg_router::serve(listener, cfg, std::future::pending()));
            })
            .expect("spawn router thread");
        Self {
            name,
            url,
            cpu: Cpu::Threads(thread),
            _child: None,
        }
    }

    /// Ours as `disagg router`, a process of its own like the peers (`BENCH_DISAGG`).
    fn ours_process(
        bin: &Path,
        dialect: Dialect,
        ctx: &str,
        generation: &str,
    ) -> Result<Self, String> {
        let ready = std::env::temp_dir().join(format!(
            "disagg-router-bench-{}-{}.addr",
            std::process::id(),
            dialect.as_str()
        ));
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(bin);
        cmd.args(["router", "--dialect", dialect.as_str(), "--prefill", ctx])
            .args(["--decode", generation, "--host", "127.0.0.1", "--port", "0"])
            .arg("--ready-file")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(n) = std::env::var("BENCH_THREADS") {
            cmd.args(["--threads", &n]);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        let guard = KillOnDrop(child);
        let end = Instant::now() + PEER_STARTUP;
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&ready) {
                if !a.trim().is_empty() {
                    break a.trim().to_string();
                }
            }
            if Instant::now() > end {
                return Err(format!("no address in {} in time", ready.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = std::fs::remove_file(&ready);
        Ok(Self {
            name: format!("disagg {}", dialect.as_str()),
            url: format!("http://{addr}"),
            cpu: Cpu::Process(pid),
            _child: Some(guard),
        })
    }

    fn peer(
        peer: Peer,
        venv: &Path,
        ctx: &str,
        generation: &str,
        rt: &tokio::runtime::Runtime,
        body: &Bytes,
    ) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let (exe, mode) = match peer {
            Peer::Sglang => ("sglang-router", vec!["launch", "--pd-disaggregation"]),
            Peer::Vllm => ("vllm-router", vec!["--vllm-pd-disaggregation"]),
        };
        let exe = venv.join("bin").join(exe);
        if !exe.exists() {
            return Err(format!("{} not found", exe.display()));
        }
        let port_s = port.to_string();
        // Each peer also opens a Prometheus listener, on the same default port: give each its own.
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port()
            .to_string();
        let mut args: Vec<&str> = mode;
        args.extend(["--prefill", ctx]);
        if let Peer::Sglang = peer {
            args.push("8998");
        }
        args.extend([
            "--decode",
            generation,
            "--host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--prometheus-host",
            "127.0.0.1",
            "--prometheus-port",
            &metrics_port,
        ]);
        let child = Command::new(&exe)
            .args(&args)
            // Peers try to fetch tokenizers from the internet; this bench stays on loopback, so
            // any such attempt is sent to a closed local port and fails fast.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("HF_HUB_OFFLINE", "1")
            .stdout(peer_log(peer))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(peer_log_path(peer))
                    .map_err(|e| e.to_string())?,
            ))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        let pid = child.id();
        let guard = KillOnDrop(child);
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let ready = rt.block_on(async {
            let end = Instant::now() + PEER_STARTUP;
            while Instant::now() < end {
                let r = client
                    .post(format!("{url}/v1/completions"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                if matches!(&r, Ok(r) if r.status().is_success()) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(format!("not answering 200 within {PEER_STARTUP:?}"))
        });
        ready?;
        Ok(Self {
            name: peer.name().into(),
            url,
            cpu: Cpu::Process(pid),
            _child: Some(guard),
        })
    }

    /// The /proc task directories of the router's threads (ours) or process (peers).
    fn tasks(&self) -> Option<Vec<PathBuf>> {
        let (dir, prefix) = match &self.cpu {
            Cpu::None => return None,
            Cpu::Process(pid) => (format!("/proc/{pid}/task"), None),
            Cpu::Threads(prefix) => ("/proc/self/task".to_string(), Some(prefix.as_str())),
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let dir = entry.path();
            if let Some(prefix) = prefix {
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                // Serving threads are shared by name between our three routers, but only the
                // one under load does any work.
                let comm = comm.trim_end();
                if !comm.starts_with(prefix) && !comm.starts_with("router-shard") {
                    continue;
                }
            }
            out.push(dir);
        }
        Some(out)
    }

    fn cpu_ns(&self) -> Option<u64> {
        let mut sum = 0;
        for dir in self.tasks()? {
            sum += run_ns(&dir.join("schedstat").to_string_lossy())?;
        }
        Some(sum)
    }

    /// Context switches (voluntary and not) of the router's threads: each is a thread going to
    /// sleep or being preempted, so a wake-up per switch.
    fn switches(&self) -> Option<u64> {
        let mut sum = 0;
        for dir in self.tasks()? {
            let text = std::fs::read_to_string(dir.join("status")).ok()?;
            for line in text.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    sum += v.trim().parse::<u64>().ok()?;
                }
            }
        }
        Some(sum)
    }
}

/// Nanoseconds a task has run on a CPU: the first field of its `/proc/.../schedstat`.
fn run_ns(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peers' output goes to /tmp, to read when one does not come up.
fn peer_log_path(peer: Peer) -> String {
    format!("/tmp/disagg-bench-{}.log", peer.name().replace(' ', "-"))
}

fn peer_log(peer: Peer) -> Stdio {
    std::fs::File::create(peer_log_path(peer)).map_or(Stdio::null(), Stdio::from)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    let b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let mut b = b;
    b.enable_all().thread_name(name).build().expect("runtime")
}

// ---- the load loop ----

#[derive(Default)]
struct Run {
    ok: usize,
    failed: usize,
    secs: f64,
    p50: f64,
    p99: f64,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client")
}

/// Closed loop: `c` workers, `n` requests in all (bounded by [`RUN_LIMIT`]); latencies in ms.
async fn load(client: &reqwest::Client, url: &str, body: &Bytes, c: usize, n: usize) -> Run {
    let url: Arc<str> = url.into();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let end = started + RUN_LIMIT;
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failed = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n
                    && Instant::now() < end
                {
                    let t = Instant::now();
                    if one(&client, &url, &body).await {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        failed += 1;
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    let mut failed = 0;
    for w in workers {
        if let Ok((lat, f)) = w.await {
            all.extend(lat);
            failed += f;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Run {
        ok: all.len(),
        failed,
        secs,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

async fn warm(client: &reqwest::Client, url: &str, body: &Bytes, c: usize) {
    let tasks: Vec<_> = (0..c.min(256)).map(|_| one(client, url, body)).collect();
    futures_util::future::join_all(tasks).await;
}

async fn one(client: &reqwest::Client, url: &str, body: &Bytes) -> bool {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    }
}

// ---- the table ----

struct Row {
    isl: usize,
    name: String,
    c: usize,
    run: Run,
    d50: f64,
    d99: f64,
    cpu: Option<u64>,
    switches: Option<u64>,
}

fn print_row(r: &Row) {
    eprintln!(
        "  isl {:>5} {:<18} c={:<3} ok {:>5} failed {:>3} p50 {:.3} ms p99 {:.3} ms {:.0} req/s",
        r.isl,
        r.name,
        r.c,
        r.run.ok,
        r.run.failed,
        r.run.p50,
        r.run.p99,
        r.run.ok as f64 / r.run.secs
    );
}

/// One row for `BENCH_OUT`: isl, router, conc, ok, failed, p50, p99, added p50, added p99,
/// req/s, router CPU ms per request, switches per request ("-" where not measured).
fn tsv_row(r: &Row) -> String {
    let direct = r.name == "direct";
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let per_req = |v: Option<u64>| {
        v.filter(|_| r.run.ok > 0)
            .map(|v| v as f64 / r.run.ok as f64)
    };
    [
        r.isl.to_string(),
        r.name.clone(),
        r.c.to_string(),
        r.run.ok.to_string(),
        r.run.failed.to_string(),
        format!("{:.4}", r.run.p50),
        format!("{:.4}", r.run.p99),
        opt((!direct).then_some(r.run.p50 - r.d50)),
        opt((!direct).then_some(r.run.p99 - r.d99)),
        format!("{:.1}", r.run.ok as f64 / r.run.secs),
        opt(per_req(r.cpu).map(|t| t / NS_PER_MS)),
        opt(per_req(r.switches)),
    ]
    .join("\t")
}

fn print_table(rows: &[Row]) {
    println!(
        "| ISL | router | conc | ok | failed | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s | router CPU ms/req | router switches/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let added = |v: f64, d: f64| {
            if r.name == "direct" {
                "-".to_string()
            } else {
                format!("{:.3}", v - d)
            }
        };
        let cpu = r.cpu.filter(|_| r.run.ok > 0).map_or("-".to_string(), |t| {
            format!("{:.3}", t as f64 / NS_PER_MS / r.run.ok as f64)
        });
        let switches = (r.switches.filter(|_| r.run.ok > 0)).map_or("-".to_string(), |n| {
            format!("{:.2}", n as f64 / r.run.ok as f64)
        });
        println!(
            "| {}k | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {:.0} | {} | {} |",
            r.isl / 1024,
            r.name,
            r.c,
            r.run.ok,
            r.run.failed,
            r.run.p50,
            r.run.p99,
            added(r.run.p50, r.d50),
            added(r.run.p99, r.d99),
            r.run.ok as f64 / r.run.secs,
            cpu,
            switches
        );
    }
}
