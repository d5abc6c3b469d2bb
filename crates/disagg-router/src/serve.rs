//! Running the app: on a given listener ([`serve`]) or as the standalone command ([`run`]).

use std::future::Future;

use crate::app::{AppState, app};
use crate::config::{RouterArgs, RouterConfig};
use crate::error::RouterError;

/// Serves on `listener` until `shutdown` resolves, then drains in-flight requests (bounded by
/// `cfg.shutdown_grace`, `--shutdown-grace`, 10 s by default). With `cfg.threads` ≥ 1 the requests are served on that many serving
/// threads of its own (`disagg-shards`, each a one-worker runtime with its own upstream client),
/// and this call's runtime only accepts and runs the health checker; with 0 everything runs on
/// the caller's runtime.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: RouterConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RouterError> {
    cfg.validate()?;
    log_startup(&listener, &cfg);
    let local = listener.local_addr().map_err(RouterError::Serve)?;
    let (threads, header_timeout, grace) = (cfg.threads, cfg.header_timeout, cfg.shutdown_grace);
    let state = AppState::new(cfg)?;
    // The checker lives exactly as long as this call: aborted however `serve` returns.
    let checker = AbortOnDrop(tokio::spawn(state.health_checker()));
    // One app per serving thread, each with its own upstream client: hyper drives a pooled
    // connection on the runtime that opened it, so a shared client would wake other threads.
    // Everything else is the one state all threads share.
    let apps = if threads == 0 {
        vec![app(state.clone())]
    } else {
        (0..threads)
            .map(|_| state.shard().map(app))
            .collect::<Result<Vec<_>, _>>()?
    };
    let opts = disagg_shards::Options {
        name: "router-shard",
        threads,
        scheduler: disagg_shards::Scheduler::OneWorker,
        realtime: false,
    };
    let shards = disagg_shards::Shards::start(&opts, local, |i, connections, stop| {
        crate::conn::serve(connections, apps[i].clone(), header_timeout, stop)
    })?;
    let out = shards.serve(listener, shutdown, grace).await;
    // What the grace cut: the requests still at a worker (a generation worker holds a streamed
    // answer's for its whole length).
    let held =
        |g: &crate::policy::WorkerGroup| -> usize { g.workers.iter().map(|w| w.in_flight()).sum() };
    let (ctx, generation) = (held(&state.0.prefill), held(&state.0.decode));
    if ctx + generation > 0 {
        tracing::warn!(
            "shut down with requests still in flight after the {grace:?} of --shutdown-grace \
             ({generation} at generation workers, {ctx} at context workers): their answers were \
             cut"
        );
    }
    drop(checker);
    Ok(out?)
}

/// The one line that says what this router is: where, which dialect, which workers, which
/// policies and limits. An operator reading `disagg_server.log` starts here.
fn log_startup(listener: &tokio::net::TcpListener, cfg: &RouterConfig) {
    let addr = listener
        .local_addr()
        .map_or_else(|e| format!("? ({e})"), |a| a.to_string());
    let prefill: Vec<String> = (cfg.prefill.iter().enumerate())
        .map(|(i, u)| match cfg.bootstrap_port(i) {
            Some(p) if cfg.dialect == crate::Dialect::Sglang => format!("{u}@{p}"),
            _ => u.clone(),
        })
        .collect();
    tracing::info!(
        "router on {addr}: dialect {}; context workers [{}] by {}; generation workers [{}] by {}; \
         {} serving thread(s); request timeout {:?}, connect timeout {:?}, {} retries; \
         /health every {:?}, out of rotation after {} failure(s) in a row; passed over when \
         stalled {}",
        cfg.dialect.as_str(),
        prefill.join(", "),
        cfg.prefill_policy.as_str(),
        cfg.decode.join(", "),
        cfg.decode_policy.as_str(),
        cfg.threads,
        cfg.request_timeout,
        cfg.connect_timeout,
        cfg.max_retries,
        cfg.health_interval,
        cfg.eject_after,
        if cfg.stall_timeout.is_zero() {
            "never".to_string()
        } else {
            format!("for {:?}", cfg.stall_timeout)
        },
    );
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The standalone command.
pub async fn run(args: RouterArgs) -> Result<(), RouterError> {
    let ready_file = args.ready_file.clone();
    let cfg = args.into_config()?;
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|source| RouterError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| RouterError::Bind { addr, source })?
        .port();
    // Publish the configured host with the real port: with `--port 0` only the listener knows it.
    let host = if cfg.host.contains(':') {
        format!("[{}]", cfg.host)
    } else {
        cfg.host.clone()
    };
    let published = format!("{host}:{port}\n");
    disagg_proto::ready::publish(ready_file.as_deref(), published.trim_end()).map_err(
        |source| RouterError::ReadyFile {
            path: ready_file.clone().unwrap_or_else(|| "stdout".into()),
            source,
        },
    )?;
    serve(listener, cfg, stop_signal()).await
}

/// SIGTERM (supervisors) or Ctrl-C (people).
async fn stop_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn serve_returns_after_shutdown() {
        // 0: on this runtime; 1 and 3: on serving threads of its own.
        for threads in [0, 1, 3] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut cfg = RouterConfig::new(
                vec!["http://127.0.0.1:9".into()],
                vec!["http://127.0.0.1:9".into()],
            );
            cfg.request_timeout = Duration::from_secs(1);
            cfg.threads = threads;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, cfg, async {
                let _ = rx.await;
            }));
            // An idle keep-alive connection must not hold the shutdown up.
            let client = reqwest::Client::new();
            let resp = client
                .get(format!("http://{addr}/workers"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "threads {threads}");
            tx.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .unwrap_or_else(|_| panic!("serve stops promptly when idle, threads {threads}"))
                .unwrap()
                .unwrap();
            assert!(
                tokio::net::TcpStream::connect(addr).await.is_err(),
                "the listener is closed, threads {threads}"
            );
        }
    }
}
