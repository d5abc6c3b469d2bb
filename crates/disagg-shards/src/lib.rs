//! Serving threads (`--threads`), shared by `disagg router` and `disagg sim`.
//!
//! One task accepts client connections on the caller's runtime and hands each, in turn, to a
//! serving thread: a runtime of its own that serves the connection to its end. A request's
//! client connection and every wake-up of the work it causes (the router's worker connections,
//! the sim's token clock) then stay on one thread. On one work-stealing runtime they could sit
//! on different workers, which then woke each other (a futex and a context switch) for every
//! request or token round; the router's and the sim's READMEs have the measurements.
//!
//! Each caller picks its threads' [`Scheduler`] for a measured reason (see there), the sim may
//! run them under SCHED_FIFO, and both share one meaning of `--threads` ([`ServingThreads`]),
//! one accept loop with one way of logging its errors, and one shutdown path
//! ([`Shards::serve`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

/// The most serving threads the default starts, whatever the CPU count: a router or a sim on a
/// 128-core GPU node needs no 128 event loops (8 carry far more than these processes need).
pub const MAX_DEFAULT_THREADS: usize = 8;

/// Serving threads when `--threads` is not given: one per CPU this process may run on, at most
/// [`MAX_DEFAULT_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFAULT_THREADS)
}

/// The `--threads` flag, flattened into `disagg router`'s and `disagg sim`'s flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct ServingThreads {
    /// Serving threads, each with its own event loop (and, in the router, its own connections
    /// to the workers); accepted client connections are handed to them in turn. Default: one
    /// per CPU this process may run on, at most 8. 0: no serving threads; everything runs on the
    /// process's main runtime (the router's only way before 2026-11-28).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl ServingThreads {
    /// How many serving threads to start: the flag, else [`default_threads`].
    pub fn count(self) -> usize {
        self.threads.unwrap_or_else(default_threads)
    }
}

/// The runtime each serving thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// Tokio's current-thread scheduler on a thread of ours (the sim: its per-thread token clock
    /// was measured on it).
    CurrentThread,
    /// Tokio's multi-thread scheduler with a single worker (the router). With nothing to steal
    /// it is just as single-threaded; with 32k-token prompts at 64 connections the router served
    /// 3–20% more requests per second on it than on the current-thread scheduler (2-core VM, 4
    /// interleaved runs), and no fewer at 1k-token prompts. Our guess, not measured: it runs a
    /// task woken by the running one next (its LIFO slot), while the buffers are still in cache.
    OneWorker,
}

/// How to start the serving threads.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Thread names are `{name}-{i}` (what `top -H` and the benches' /proc readers see).
    pub name: &'static str,
    /// Serving threads; 0: serve on the caller's runtime.
    pub threads: usize,
    pub scheduler: Scheduler,
    /// Run each serving thread under SCHED_FIFO at priority 1 (the sim's `--realtime`).
    pub realtime: bool,
}

/// Why the serving threads could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start serving thread {thread}: {source}")]
    Start { thread: String, source: io::Error },
    #[error(
        "--realtime: cannot switch the serving threads to SCHED_FIFO: {0}; run as root, grant \
         CAP_SYS_NICE (setcap cap_sys_nice+ep), raise RLIMIT_RTPRIO to 1, or drop --realtime"
    )]
    Realtime(io::Error),
    #[error(
        "--realtime needs serving threads: --threads 0 serves on the main runtime; give \
         --threads 1 or more, or drop --realtime"
    )]
    RealtimeWithoutThreads,
    #[error("--threads 0 serves on the caller's runtime, and there is none")]
    NoRuntime,
    #[error("accepting connections failed: {0}")]
    Accept(io::Error),
    #[error("serving thread {0} stopped")]
    Stopped(String),
}

/// Resolves when the serving threads are told to stop: the server it is given to stops
/// accepting and lets its connections finish.
pub type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

type Handoff = (std::net::TcpStream, SocketAddr);

/// Running serving threads, each with a server waiting for connections. Dropping this ends them
/// at once, their connections closed.
pub struct Shards {
    name: &'static str,
    handoff: Vec<mpsc::UnboundedSender<Handoff>>,
    /// Each server's end, once its graceful shutdown is done.
    done: Vec<oneshot::Receiver<()>>,
    stop: watch::Sender<bool>,
    /// Dropped last: what ends each thread (or task) at once.
    owners: Vec<Owner>,
}

/// Ends one serving thread when dropped.
enum Owner {
    /// A one-worker runtime; shut down without waiting (dropping a runtime may block, which an
    /// async context forbids).
    Runtime(Option<tokio::runtime::Runtime>),
    /// A thread of ours running a current-thread runtime until this sender goes.
    Thread(#[allow(dead_code)] oneshot::Sender<()>),
    /// The server task on the caller's runtime (`threads` 0).
    Task(tokio::task::AbortHandle),
}

impl Drop for Owner {
    fn drop(&mut self) {
        match self {
            Owner::Runtime(rt) => {
                if let Some(rt) = rt.take() {
                    rt.shutdown_background();
                }
            }
            Owner::Thread(_) => {}
            Owner::Task(task) => task.abort(),
        }
    }
}

impl Shards {
    /// Starts `opts.threads` serving threads for a listener bound at `local` (0: one server task
    /// on the caller's runtime) and returns once each runs (under SCHED_FIFO if asked), or with
    /// the first failure. `server(i, connections, stop)` is thread `i`'s server: it serves what
    /// `connections` accepts until `stop` resolves, then drains and returns.
    pub fn start<S, F>(opts: &Options, local: SocketAddr, mut server: S) -> Result<Self, Error>
    where
        S: FnMut(usize, Connections, Stop) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        if opts.realtime && opts.threads == 0 {
            return Err(Error::RealtimeWithoutThreads);
        }
        let (stop, _) = watch::channel(false);
        let n = opts.threads.max(1);
        let mut shards = Self {
            name: opts.name,
            handoff: Vec::with_capacity(n),
            done: Vec::with_capacity(n),
            stop,
            owners: Vec::with_capacity(n),
        };
        for i in 0..n {
            let thread = format!("{}-{i}", opts.name);
            let (handle, owner) = if opts.threads == 0 {
                let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
                (handle, None)
            } else {
                let (handle, owner) = spawn_runtime(opts.scheduler, &thread)?;
                (handle, Some(owner))
            };
            if let Some(owner) = owner {
                shards.owners.push(owner);
            }
            if opts.realtime {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                // Runs on the serving thread itself: the policy is per thread.
                handle.spawn(async move {
                    let _ = tx.send(fifo());
                });
                match rx.recv() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(Error::Realtime(e)),
                    Err(_) => return Err(Error::Stopped(thread)),
                }
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = oneshot::channel();
            let mut stopping = shards.stop.subscribe();
            let stop: Stop = Box::pin(async move {
                // A dropped sender (the acceptor is gone) stops this server too.
                let _ = stopping.wait_for(|stopping| *stopping).await;
            });
            let serve = server(i, Connections { rx, local }, stop);
            let task = handle.spawn(async move {
                serve.await;
                let _ = done_tx.send(());
            });
            if opts.threads == 0 {
                shards.owners.push(Owner::Task(task.abort_handle()));
            }
            shards.handoff.push(tx);
            shards.done.push(done_rx);
        }
        Ok(shards)
    }

    /// How many serving threads run (0: the server runs on the caller's runtime).
    pub fn len(&self) -> usize {
        self.owners
            .iter()
            .filter(|o| !matches!(o, Owner::Task(_)))
            .count()
    }

    /// Whether the server runs on the caller's runtime, with no threads of its own.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Accepts on `listener` and hands the connections to the servers in turn until `shutdown`
    /// resolves; then closes the listener (new connections are refused, as with axum's own
    /// graceful shutdown), tells every server to stop, and waits up to `grace` for their
    /// requests in flight, dropping whatever is left after it. Returns early with an error if
    /// the listener fails for good or a serving thread has died.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), Error> {
        tokio::select! {
            res = self.accept(&listener) => return res,
            () = shutdown => {}
        }
        drop(listener);
        let _ = self.stop.send(true);
        match tokio::time::timeout(grace, self.finished()).await {
            Ok(res) => res,
            Err(_) => {
                tracing::warn!(
                    "requests still in flight after {grace:?} of shutdown grace; dropping them"
                );
                Ok(())
            }
        }
    }

    /// Returns only with the error that stops accepting.
    async fn accept(&self, listener: &TcpListener) -> Result<(), Error> {
        let mut next = 0;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if connection_error(&e) => {
                    tracing::debug!("a connection failed before it was accepted: {e}");
                    continue;
                }
                Err(e) if resource_error(&e) => {
                    // Connections wait in the backlog meanwhile.
                    tracing::warn!("accepting connections failed, retrying in 50 ms: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(Error::Accept(e)),
            };
            // Small SSE frames (tokens, relayed chunks) must not wait on Nagle: that would show
            // up as TTFT/ITL noise.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a connection from {peer}: {e}");
            }
            let std = match tcp.into_std() {
                Ok(std) => std,
                Err(e) => {
                    tracing::warn!("dropped a connection from {peer}: {e}");
                    continue;
                }
            };
            if self.handoff[next].send((std, peer)).is_err() {
                return Err(Error::Stopped(format!("{}-{next}", self.name)));
            }
            next = (next + 1) % self.handoff.len();
        }
    }

    /// Waits for every server to finish its graceful shutdown.
    async fn finished(&mut self) -> Result<(), Error> {
        let mut out = Ok(());
        for (i, done) in self.done.iter_mut().enumerate() {
            if done.await.is_err() && out.is_ok() {
                out = Err(Error::Stopped(format!("{}-{i}", self.name)));
            }
        }
        out
    }
}

/// Starts one serving thread's runtime; returns a handle to spawn on it and what ends it.
fn spawn_runtime(
    scheduler: Scheduler,
    thread: &str,
) -> Result<(tokio::runtime::Handle, Owner), Error> {
    let start = |source| Error::Start {
        thread: thread.to_string(),
        source,
    };
    match scheduler {
        Scheduler::OneWorker => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(thread)
                .enable_all()
                .build()
                .map_err(start)?;
            Ok((rt.handle().clone(), Owner::Runtime(Some(rt))))
        }
        Scheduler::CurrentThread => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(start)?;
            let handle = rt.handle().clone();
            let (end, ended) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(thread.to_string())
                .spawn(move || {
                    // Drives every task spawned on `handle` until the owner goes; the runtime,
                    // and with it every connection, is dropped on this thread.
                    rt.block_on(async {
                        let _ = ended.await;
                    });
                })
                .map_err(start)?;
            Ok((handle, Owner::Thread(end)))
        }
    }
}

/// A serving thread's end of the hand-over: its server accepts what the acceptor sends.
pub struct Connections {
    rx: mpsc::UnboundedReceiver<Handoff>,
    local: SocketAddr,
}

impl axum::serve::Listener for Connections {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((std, peer)) = self.rx.recv().await else {
                // The acceptor is gone; the stop signal ends this server.
                return std::future::pending().await;
            };
            match TcpStream::from_std(std) {
                Ok(tcp) => return (tcp, peer),
                Err(e) => tracing::warn!("dropped a connection from {peer}: {e}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// An accept error about one connection, not the listener: Linux's accept(2) also passes on
/// the network errors already pending on the new connection, to be treated like EAGAIN.
fn connection_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|errno| {
        [
            libc::ENETDOWN,
            libc::EPROTO,
            libc::ENOPROTOOPT,
            libc::EHOSTDOWN,
            libc::ENONET,
            libc::EHOSTUNREACH,
            libc::EOPNOTSUPP,
            libc::ENETUNREACH,
            libc::ETIMEDOUT,
        ]
        .contains(&errno)
    })
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: a full table, not a broken listener.
fn resource_error(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(|errno| {
        [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(&errno)
    })
}

/// Puts the calling thread under SCHED_FIFO at the lowest real-time priority: above every
/// normal process, below the kernel's own real-time threads.
fn fifo() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::IntoFuture;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use tokio::sync::Notify;

    /// `/` says which thread served it; `/slow` tells `entered` it is in, then answers once
    /// `release` is notified.
    fn app(entered: Arc<Notify>, release: Arc<Notify>) -> axum::Router {
        use axum::routing::get;
        axum::Router::new()
            .route(
                "/",
                get(|| async {
                    std::thread::current()
                        .name()
                        .unwrap_or("unnamed")
                        .to_string()
                }),
            )
            .route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "late"
                }),
            )
    }

    fn axum_server(
        app: axum::Router,
    ) -> impl FnMut(usize, Connections, Stop) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        move |_, conns, stop| {
            let serve = axum::serve(conns, app.clone()).with_graceful_shutdown(stop);
            Box::pin(async move {
                let _ = serve.into_future().await;
            })
        }
    }

    /// One GET on a new connection, from a plain blocking socket; the body.
    fn get(addr: SocketAddr, path: &str) -> io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
    }

    async fn bound() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn opts(threads: usize, scheduler: Scheduler) -> Options {
        Options {
            name: "test-shard",
            threads,
            scheduler,
            realtime: false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_go_to_the_serving_threads_in_turn_and_shutdown_closes_the_listener() {
        for (threads, scheduler) in [
            (0, Scheduler::OneWorker),
            (1, Scheduler::CurrentThread),
            (3, Scheduler::CurrentThread),
            (3, Scheduler::OneWorker),
        ] {
            let (listener, addr) = bound().await;
            let idle = || Arc::new(Notify::new());
            let shards = Shards::start(
                &opts(threads, scheduler),
                addr,
                axum_server(app(idle(), idle())),
            )
            .unwrap();
            assert_eq!(shards.len(), threads);
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let served = tokio::spawn(shards.serve(
                listener,
                async {
                    let _ = stop_rx.await;
                },
                Duration::from_secs(5),
            ));
            let names = tokio::task::spawn_blocking(move || {
                (0..6).map(|_| get(addr, "/").unwrap()).collect::<Vec<_>>()
            })
            .await
            .unwrap();
            if threads == 0 {
                assert!(
                    names.iter().all(|n| !n.starts_with("test-shard")),
                    "{names:?}"
                );
            } else {
                let want: Vec<String> = (0..6)
                    .map(|i| format!("test-shard-{}", i % threads))
                    .collect();
                assert_eq!(names, want, "{threads} {scheduler:?}");
            }
            stop_tx.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), served)
                .await
                .expect("serve returns promptly when idle")
                .unwrap()
                .unwrap();
            assert!(
                std::net::TcpStream::connect(addr).is_err(),
                "the listener is closed"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_waits_for_a_request_in_flight_and_gives_up_after_the_grace() {
        for release_it in [true, false] {
            let (listener, addr) = bound().await;
            let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
            let shards = Shards::start(
                &opts(2, Scheduler::OneWorker),
                addr,
                axum_server(app(entered.clone(), release.clone())),
            )
            .unwrap();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let grace = Duration::from_millis(300);
            let served = tokio::spawn(shards.serve(
                listener,
                async {
                    let _ = stop_rx.await;
                },
                grace,
            ));
            let slow = tokio::task::spawn_blocking(move || get(addr, "/slow"));
            entered.notified().await;
            stop_tx.send(()).unwrap();
            if release_it {
                release.notify_one();
                assert_eq!(slow.await.unwrap().unwrap(), "late");
                served.await.unwrap().unwrap();
            } else {
                let t = std::time::Instant::now();
                served.await.unwrap().unwrap();
                assert!(
                    t.elapsed() >= grace - Duration::from_millis(50),
                    "{:?}",
                    t.elapsed()
                );
                drop(slow);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_ends_on_its_own_stops_serve_with_its_name() {
        let (listener, addr) = bound().await;
        let shards = Shards::start(&opts(1, Scheduler::CurrentThread), addr, |_, conns, _| {
            drop(conns);
            async {}
        })
        .unwrap();
        let served = tokio::spawn(shards.serve(listener, std::future::pending(), Duration::ZERO));
        let _ = tokio::task::spawn_blocking(move || get(addr, "/")).await;
        let err = tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.to_string(), "serving thread test-shard-0 stopped");
    }

    #[tokio::test]
    async fn realtime_needs_threads_of_its_own() {
        let o = Options {
            realtime: true,
            ..opts(0, Scheduler::CurrentThread)
        };
        let e = Shards::start(&o, "127.0.0.1:1".parse().unwrap(), |_, _, _| async {})
            .err()
            .unwrap();
        assert!(matches!(e, Error::RealtimeWithoutThreads), "{e}");
    }

    #[test]
    fn accept_errors_about_one_connection_are_skipped_and_full_tables_retried() {
        for errno in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::ENETUNREACH,
            libc::EINTR,
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(connection_error(&e) && !resource_error(&e), "{e}");
        }
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(resource_error(&e) && !connection_error(&e), "{e}");
        }
        for errno in [libc::EBADF, libc::EINVAL, libc::ENOTSOCK] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(!resource_error(&e) && !connection_error(&e), "{e}");
        }
    }

    #[test]
    fn threads_default_to_one_per_cpu_at_most_8_and_0_is_kept() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serving: ServingThreads,
        }
        let count = |argv: &[&str]| Cli::try_parse_from(argv).unwrap().serving.count();
        assert_eq!(count(&["x"]), default_threads());
        assert!((1..=MAX_DEFAULT_THREADS).contains(&default_threads()));
        assert_eq!(count(&["x", "--threads", "0"]), 0);
        assert_eq!(count(&["x", "--threads", "3"]), 3);
    }
}
