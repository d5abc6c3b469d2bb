//! Serving threads (`--threads`): one task accepts client connections and hands each, in turn,
//! to a runtime of one thread, which serves the connection to its end with its own upstream
//! client. A request's client connection, its worker connections and every wake-up between them
//! then stay on one thread. On one work-stealing runtime the handler and the tasks driving its
//! upstream connections could sit on different workers, which then woke each other (a futex and
//! a context switch): twice the context switches per request; see the README's "Measured".
//!
//! Each serving runtime is Tokio's multi-thread scheduler with a single worker rather than its
//! current-thread scheduler: with nothing to steal from it is just as single-threaded, and with
//! 32k-token prompts at 64 connections it served 3–20% more requests per second than the
//! current-thread scheduler on the 2-core test VM (4 interleaved runs), as many as the old
//! shared runtime, where the current-thread one served fewer. At 1k-token prompts the two did
//! not differ beyond noise. Our guess, not measured: the multi-thread scheduler runs a task
//! woken by the running one next (its LIFO slot), while the buffers are still in cache; the
//! current-thread one queues it behind every other ready task.
//!
//! Everything but the client is the one [`AppState`] all threads share (policies, worker
//! health and load, metrics, ids), so routing decisions and `/workers`, `/metrics` see every
//! request whichever thread served it. The health checker stays on the caller's runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::app::{AppState, app};
use crate::error::RouterError;
use crate::serve::SHUTDOWN_GRACE;

type Handoff = (std::net::TcpStream, SocketAddr);

/// Serves on `listener` from `threads` serving threads until `shutdown` resolves, then lets
/// in-flight requests finish (bounded by [`SHUTDOWN_GRACE`]). Accepting runs on the caller's
/// runtime.
pub(crate) async fn serve(
    mut listener: TcpListener,
    state: &AppState,
    threads: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RouterError> {
    let local = listener.local_addr().map_err(RouterError::Serve)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shards = Shards::start(state, local, threads, &stop_rx)?;
    tokio::select! {
        res = shards.accept(&mut listener) => return res,
        () = shutdown => {}
    }
    // New connections are refused from here on, as with axum's own graceful shutdown.
    drop(listener);
    let _ = stop_tx.send(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, shards.finished()).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(
                "requests still in flight after {SHUTDOWN_GRACE:?} of shutdown grace; dropping them"
            );
            Ok(())
        }
    }
}

/// Running serving threads. Dropping this ends them, their connections closed.
struct Shards {
    handoff: Vec<mpsc::UnboundedSender<Handoff>>,
    /// Each thread's result once its graceful shutdown is done.
    done: Vec<oneshot::Receiver<io::Result<()>>>,
    /// One runtime per serving thread; shut down (without waiting) on drop.
    runtimes: Vec<tokio::runtime::Runtime>,
}

impl Drop for Shards {
    fn drop(&mut self) {
        // `shutdown_background`: dropping a runtime may block, which an async context forbids.
        for rt in self.runtimes.drain(..) {
            rt.shutdown_background();
        }
    }
}

impl Shards {
    fn start(
        state: &AppState,
        local: SocketAddr,
        threads: usize,
        stop: &watch::Receiver<bool>,
    ) -> Result<Self, RouterError> {
        let threads = threads.max(1);
        let header_timeout = state.config().header_timeout;
        let mut shards = Self {
            handoff: Vec::with_capacity(threads),
            done: Vec::with_capacity(threads),
            runtimes: Vec::with_capacity(threads),
        };
        for i in 0..threads {
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = oneshot::channel();
            let app = app(state.shard()?);
            let mut stop = stop.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(format!("router-shard-{i}"))
                .enable_all()
                .build()
                .map_err(RouterError::Serve)?;
            let graceful = async move {
                // A dropped sender (the acceptor is gone) stops this thread too.
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            let serve = crate::conn::serve(Handed { rx, local }, app, header_timeout, graceful);
            runtime.spawn(async move {
                serve.await;
                let _ = done_tx.send(Ok(()));
            });
            shards.handoff.push(tx);
            shards.done.push(done_rx);
            shards.runtimes.push(runtime);
        }
        Ok(shards)
    }

    /// Accepts on `listener` and hands the connections to the threads in turn; returns only if
    /// a thread has died. Accept errors are handled as axum's own listener does (a connection
    /// error is skipped, anything else waits a second and retries).
    async fn accept(&mut self, listener: &mut TcpListener) -> Result<(), RouterError> {
        let mut next = 0;
        loop {
            let (tcp, peer) = axum::serve::Listener::accept(listener).await;
            // Small SSE frames to clients must not wait on Nagle: that would show up as
            // TTFT/ITL noise.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a client connection: {e}");
            }
            let std = match tcp.into_std() {
                Ok(std) => std,
                Err(e) => {
                    tracing::warn!("dropped a connection from {peer}: {e}");
                    continue;
                }
            };
            if self.handoff[next].send((std, peer)).is_err() {
                return Err(RouterError::Serve(io::Error::other(format!(
                    "serving thread router-shard-{next} stopped"
                ))));
            }
            next = (next + 1) % self.handoff.len();
        }
    }

    /// Waits for every thread to finish its graceful shutdown; the first failure wins.
    async fn finished(&mut self) -> Result<(), RouterError> {
        let mut out = Ok(());
        for (i, done) in self.done.iter_mut().enumerate() {
            let res = match done.await {
                Ok(res) => res,
                Err(_) => Err(io::Error::other(format!(
                    "serving thread router-shard-{i} stopped"
                ))),
            };
            if out.is_ok() {
                out = res.map_err(RouterError::Serve);
            }
        }
        out
    }
}

/// A thread's end of the hand-over: axum serves what the acceptor sends.
struct Handed {
    rx: mpsc::UnboundedReceiver<Handoff>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((std, peer)) = self.rx.recv().await else {
                // The acceptor is gone; the stop signal ends this thread.
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
