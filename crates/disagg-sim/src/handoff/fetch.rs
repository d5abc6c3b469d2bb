//! The generation side of a hand-off: fetch the record from the context sim, check it, and take
//! as long as moving that much KV cache would.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use disagg_proto::ApiError;
use tokio::time::{Instant, sleep_until};

use super::{Consume, KvRecord};
use crate::server::SimState;

/// Slack on top of the wait for the HTTP exchange itself; a context sim that hangs must not
/// hang the generation sim forever.
const FETCH_SLACK: Duration = Duration::from_secs(10);

/// Performs the hand-off `c` for a request that arrived at `start`. Returns once the modelled
/// transfer is over, or with an error a router can show as is.
pub(crate) async fn receive(
    sim: &SimState,
    c: &Consume,
    prompt: &[u32],
    request_id: Option<&str>,
    start: Instant,
) -> Result<(), ApiError> {
    let result = transfer(sim, c, prompt, request_id, start).await;
    let m = sim.metrics();
    match &result {
        Ok(()) => m.kv_transfer.observe(start.elapsed()),
        Err(_) => {
            m.kv_fetches_failed.fetch_add(1, Relaxed);
        }
    }
    result
}

async fn transfer(
    sim: &SimState,
    c: &Consume,
    prompt: &[u32],
    request_id: Option<&str>,
    start: Instant,
) -> Result<(), ApiError> {
    let cfg = sim.kv_config();
    if let Some(n) = sim.faults().transfer_fails() {
        return Err(ApiError::internal(format!(
            "KV transfer for {} failed (scripted: --kv-transfer-fail-on {n})",
            c.what
        )));
    }
    let wait = if c.wait {
        cfg.wait_timeout
    } else {
        Duration::ZERO
    };
    let url = format!(
        "http://{}/kv/{}?wait_ms={}",
        c.peer,
        c.key,
        wait.as_millis()
    );
    let unreachable = |e: String| {
        ApiError::bad_gateway(format!(
            "cannot fetch the KV cache for {} from context sim {}: {e}",
            c.what, c.peer
        ))
    };
    let response = sim
        .http()
        .get(&url)
        .timeout(wait.saturating_add(FETCH_SLACK))
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if status == 404 {
        // A KV cache that cannot be loaded is the server's failure, not the request's: SGLang's
        // decode aborts it with 500 ("Decode transfer failed", after
        // SGLANG_DISAGGREGATION_WAITING_TIMEOUT in KVPoll.WaitingForInput), vLLM's finishes it
        // with an error (`kv_load_failure_policy: fail`), a 500. A 400 read as the client's.
        let waited = if c.wait {
            format!(
                " (waited {}: timed out in KVPoll.WaitingForInput; \
                 SGLANG_DISAGGREGATION_WAITING_TIMEOUT sets the wait)",
                humantime::format_duration(wait)
            )
        } else {
            String::new()
        };
        return Err(ApiError::internal(format!(
            "KV hand-off failed: context sim {} holds no record for {}{waited}; it was never \
             prefilled there, was already used by another generation request, or expired \
             (--kv-ttl). A router must forward the context response's hand-off params unchanged",
            c.peer, c.what
        )));
    }
    if status != 200 {
        let why = ApiError::from_body(status, &body)
            .map_or_else(|| format!("status {status}"), |e| e.to_string());
        return Err(unreachable(why));
    }
    let record: KvRecord = serde_json::from_slice(&body)
        .map_err(|e| unreachable(format!("unreadable KV record: {e}")))?;
    c.verify(sim.kv_layout(), &record, prompt, request_id)?;
    let bytes = prompt.len() as f64 * cfg.bytes_per_token as f64;
    let secs = if cfg.bandwidth_bytes_per_s > 0.0 {
        bytes / cfg.bandwidth_bytes_per_s
    } else {
        0.0
    };
    let modelled = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    // Absolute deadline: the real fetch time is part of the modelled transfer, not extra.
    let done = crate::engine::later(start, modelled.saturating_add(cfg.extra_delay));
    sleep_until(done).await;
    Ok(())
}

/// Hand-off settings of a generation sim.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KvConfig {
    pub(crate) bytes_per_token: u64,
    pub(crate) bandwidth_bytes_per_s: f64,
    pub(crate) wait_timeout: Duration,
    /// `--kv-transfer-delay`: a slow link, scripted.
    pub(crate) extra_delay: Duration,
    /// SGLang prefill: how long it waits for its decode's handshake (`--bootstrap-timeout`).
    pub(crate) bootstrap_timeout: Duration,
}
