//! Serving client connections: what `axum::serve` does, plus the one limit it cannot set. Hyper
//! only enforces its header read timeout when given a timer, and `axum::serve` gives it none,
//! so a client that opens a connection and sends its request head slowly (or never) held a
//! connection, a task and a buffer forever. Here every HTTP/1.1 connection has a timer and
//! `header_timeout`: a head not complete that long after the connection opened, or after its
//! previous request, closes the connection.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

/// Serves `app` on every connection `listener` accepts until `shutdown` resolves; then stops
/// accepting, lets each connection finish its request in flight, and returns once all have
/// closed (the caller bounds how long that may take).
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    // Dropped (or sent) when the server stops: every connection then shuts down gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    // Each connection holds a receiver; `closed` resolves once every one has gone.
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let res = tokio::select! {
                res = conn.as_mut() => res,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = res {
                // Timed-out heads, resets and hang-ups are the client's business.
                tracing::debug!("connection from {peer:?} ended: {e}");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(());
    drop(open_rx);
    open_tx.closed().await;
}
