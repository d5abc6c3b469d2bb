//! Thread-per-core serving: one event loop per thread, each with its own token clock.
//!
//! On a multi-threaded Tokio runtime every token of every stream could wake on either worker:
//! the workers woke each other (a futex and a context switch), stole each other's tasks, and
//! shared one lock around the token clock. At 2500 streams that cost 0.66 of a core against
//! 0.51 for a single thread, and made the order in which due tokens left vary from round to
//! round. Here one task accepts and hands each connection, in turn, to a shard: a thread
//! with a single-threaded runtime that serves the connection to its end. A stream's tokens
//! then all wake on one thread, from that thread's own pacer (`engine::pacer`), and no lock is
//! contended on the way. Everything else (the engine, the KV store, metrics, faults) is the
//! one [`SimState`] all shards share.

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::SimError;
use crate::server::{SimState, app};

/// A shard's end of the hand-over: axum serves what the acceptor sends.
struct Handed {
    rx: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handed {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((std, peer)) = self.rx.recv().await else {
                // The acceptor is gone; the stop signal ends this shard.
                return std::future::pending().await;
            };
            match TcpStream::from_std(std) {
                Ok(tcp) => return (tcp, peer),
                Err(e) => eprintln!("disagg-sim: dropped a connection from {peer}: {e}"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The most shards `--threads 0` starts, whatever the CPU count: a sim on a 128-core GPU node
/// needs no 128 event loops.
const MAX_DEFAULT_THREADS: usize = 8;

/// How many shards `--threads 0` means: one per CPU this process may run on, at most 8.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFAULT_THREADS)
}

/// Serves [`app`] on `listener` from `threads` shard threads (0: one per CPU, at most 8) until the
/// process ends; with `realtime`, the shards run under SCHED_FIFO (`--realtime`). Accepting
/// runs on the caller's runtime. Fails if a shard cannot start (or cannot get the real-time
/// policy), if one dies, or if the listener fails for good.
pub async fn serve_sharded(
    listener: TcpListener,
    state: SimState,
    threads: usize,
    realtime: bool,
) -> Result<(), SimError> {
    let local = listener.local_addr().map_err(SimError::Serve)?;
    let shards = Shards::start(&state, local, threads, realtime)?;
    state.serve_side_channel()?;
    shards.accept(listener).await
}

/// Running shard threads, waiting for connections.
pub(crate) struct Shards {
    handoff: Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    /// Dropped with the shards: every shard thread then ends, its connections closed.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Shards {
    /// Starts the shard threads for a sim listening on `local`; returns once every one runs
    /// (under SCHED_FIFO if `realtime`), or with the first one's failure.
    pub(crate) fn start(
        state: &SimState,
        local: SocketAddr,
        threads: usize,
        realtime: bool,
    ) -> Result<Self, SimError> {
        state.set_port(local.port());
        let threads = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        let mut handoff = Vec::with_capacity(threads);
        let mut stops = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::unbounded_channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let app = app(state.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(SimError::Serve)?;
            let (started_tx, started) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name(format!("sim-shard-{i}"))
                .spawn(move || {
                    let policy = if realtime { fifo() } else { Ok(()) };
                    let go = policy.is_ok();
                    let _ = started_tx.send(policy);
                    if !go {
                        return;
                    }
                    let serve = axum::serve(Handed { rx, local }, app).into_future();
                    runtime.block_on(async {
                        tokio::select! {
                            served = serve => if let Err(e) = served {
                                eprintln!("disagg-sim: serving thread sim-shard-{i} failed: {e}");
                            },
                            _ = stopped => {}
                        }
                    });
                })
                .map_err(SimError::Serve)?;
            match started.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => return Err(SimError::Realtime(source)),
                Err(_) => {
                    let e = io::Error::other(format!("serving thread sim-shard-{i} did not start"));
                    return Err(SimError::Serve(e));
                }
            }
            handoff.push(tx);
            stops.push(stop);
        }
        Ok(Self {
            handoff,
            _stop: stops,
        })
    }

    /// How many shards run.
    pub(crate) fn len(&self) -> usize {
        self.handoff.len()
    }

    /// Accepts on `listener` and hands the connections to the shards in turn, until the
    /// listener fails for good or a shard has died.
    pub(crate) async fn accept(self, listener: TcpListener) -> Result<(), SimError> {
        let mut next = 0;
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if transient(&e) => {
                    // Out of fds or memory: connections wait in the backlog meanwhile.
                    eprintln!("disagg-sim: accept failed, retrying in 50 ms: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(SimError::Serve(e)),
            };
            // Streamed tokens are small writes; Nagle would hold them back and distort ITL.
            let _ = tcp.set_nodelay(true);
            let std = tcp.into_std().map_err(SimError::Serve)?;
            if self.handoff[next].send((std, peer)).is_err() {
                return Err(SimError::Serve(io::Error::other(format!(
                    "serving thread sim-shard-{next} stopped"
                ))));
            }
            next = (next + 1) % self.handoff.len();
        }
    }
}

/// Accept errors that pass: the listener itself is fine.
fn transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(is_resource_errno)
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: a full table, not a broken listener.
fn is_resource_errno(errno: i32) -> bool {
    use nix::errno::Errno;
    [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
        .iter()
        .any(|e| *e as i32 == errno)
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
