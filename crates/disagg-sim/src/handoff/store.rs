//! The context side's KV records, and `GET /kv/{key}` that hands them out.
//!
//! A record is taken by the first fetch (a real engine frees the blocks once transferred), so a
//! second generation request for the same hand-off fails instead of decoding twice. Records
//! nobody fetches expire after `--kv-ttl`; expiry is swept lazily on every store operation and
//! scrape (deadlines are in insertion order, so the sweep only looks at the front of a queue).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use disagg_proto::ApiError;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::KvRecord;
use crate::engine::{KvHold, later};
use crate::error::HttpError;
use crate::metrics::Metrics;
use crate::server::SimState;

#[derive(Debug)]
pub(crate) struct KvStore {
    ttl: Duration,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<u64, Slot>,
    /// (deadline, key, serial) in insertion order; a stale serial means the record is gone.
    expiry: VecDeque<(Instant, u64, u64)>,
    serial: u64,
}

#[derive(Debug)]
enum Slot {
    Ready {
        record: KvRecord,
        serial: u64,
        /// The prompt KV the engine keeps for this record; freed when the slot goes.
        _hold: Option<KvHold>,
    },
    /// Fetches that arrived first (SGLang) wait to be woken by the insert.
    Waiting(Vec<oneshot::Sender<()>>),
    /// SGLang prefills that wait for their decode's handshake: woken by its fetch.
    Awaiting(Vec<oneshot::Sender<()>>),
}

impl KvStore {
    pub(crate) fn new(ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            ttl,
            metrics,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the record of a finished prefill. A key still holding a record is refused: the
    /// router reused an SGLang `bootstrap_room` while the first hand-off was pending.
    pub(crate) fn insert(
        &self,
        key: u64,
        record: KvRecord,
        hold: Option<KvHold>,
    ) -> Result<(), ApiError> {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        inner.serial += 1;
        let serial = inner.serial;
        let waiters = match inner.slots.remove(&key) {
            Some(old @ Slot::Ready { .. }) => {
                inner.slots.insert(key, old);
                return Err(ApiError::bad_request(format!(
                    "key {key} already holds a KV record that was not fetched yet; hand-off \
                     keys (bootstrap_room, disagg_request_id) must be unique per request"
                )));
            }
            Some(Slot::Waiting(w)) => w,
            Some(Slot::Awaiting(_)) | None => Vec::new(),
        };
        inner.slots.insert(
            key,
            Slot::Ready {
                record,
                serial,
                _hold: hold,
            },
        );
        inner
            .expiry
            .push_back((Instant::now() + self.ttl, key, serial));
        drop(inner);
        self.metrics.kv_records_stored.fetch_add(1, Relaxed);
        self.metrics.kv_records_live.fetch_add(1, Relaxed);
        for w in waiters {
            let _ = w.send(());
        }
        Ok(())
    }

    /// Takes the record under `key`, waiting up to `wait` for it to appear.
    pub(crate) async fn take(&self, key: u64, wait: Duration) -> Option<KvRecord> {
        // `wait` comes from the query string: absurd values must not overflow.
        let deadline = later(Instant::now(), wait);
        loop {
            let woken = {
                let mut inner = self.lock();
                self.sweep(&mut inner, Instant::now());
                match inner.slots.remove(&key) {
                    Some(Slot::Ready { record, .. }) => {
                        self.metrics.kv_records_fetched.fetch_add(1, Relaxed);
                        self.metrics.kv_records_live.fetch_sub(1, Relaxed);
                        return Some(record);
                    }
                    _ if Instant::now() >= deadline => return None,
                    other => {
                        let mut waiters = match other {
                            Some(Slot::Waiting(w)) => w,
                            // The decode is here: the prefills waiting for it run.
                            Some(Slot::Awaiting(prefills)) => {
                                for p in prefills {
                                    let _ = p.send(());
                                }
                                Vec::new()
                            }
                            _ => Vec::new(),
                        };
                        waiters.retain(|w| !w.is_closed());
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        inner.slots.insert(key, Slot::Waiting(waiters));
                        rx
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline, woken).await;
            if Instant::now() >= deadline {
                self.forget_waiter(key);
            }
        }
    }

    /// Waits until a decode asked for the record under `key` (SGLang's prefill runs only once
    /// its decode server has bootstrapped the room), or fails after `timeout` with SGLang's
    /// status and words.
    pub(crate) async fn await_decode(&self, key: u64, timeout: Duration) -> Result<(), ApiError> {
        let start = Instant::now();
        let woken = {
            let mut inner = self.lock();
            self.sweep(&mut inner, start);
            match inner.slots.remove(&key) {
                // A decode is waiting, or the room still holds a record (refused by insert).
                Some(slot @ (Slot::Waiting(_) | Slot::Ready { .. })) => {
                    inner.slots.insert(key, slot);
                    return Ok(());
                }
                other => {
                    let mut prefills = match other {
                        Some(Slot::Awaiting(p)) => p,
                        _ => Vec::new(),
                    };
                    prefills.retain(|p| !p.is_closed());
                    let (tx, rx) = oneshot::channel();
                    prefills.push(tx);
                    inner.slots.insert(key, Slot::Awaiting(prefills));
                    rx
                }
            }
        };
        if let Ok(Ok(())) = tokio::time::timeout_at(later(start, timeout), woken).await {
            return Ok(());
        }
        self.forget_waiter(key);
        Err(ApiError::internal(format!(
            "KVTransferError(bootstrap_room={key}): Request {key} timed out after {:.1}s in \
             KVPoll.Bootstrapping (no decode server bootstrapped this room: a router must send \
             the decode leg with the same bootstrap_room, at the same time as the prefill; \
             SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT sets the wait)",
            start.elapsed().as_secs_f64()
        )))
    }

    /// Drops a waiting slot nobody listens to any more, so timed-out rooms do not pile up.
    fn forget_waiter(&self, key: u64) {
        let mut inner = self.lock();
        if let Some(Slot::Waiting(w) | Slot::Awaiting(w)) = inner.slots.get_mut(&key) {
            w.retain(|w| !w.is_closed());
            if w.is_empty() {
                inner.slots.remove(&key);
            }
        }
    }

    /// Expires records past their deadline (called from every operation and from scrapes).
    pub(crate) fn sweep_now(&self) {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
    }

    fn sweep(&self, inner: &mut Inner, now: Instant) {
        while let Some(&(deadline, key, serial)) = inner.expiry.front() {
            if deadline > now {
                break;
            }
            inner.expiry.pop_front();
            if matches!(inner.slots.get(&key), Some(Slot::Ready { serial: s, .. }) if *s == serial)
            {
                inner.slots.remove(&key);
                self.metrics.kv_records_expired.fetch_add(1, Relaxed);
                self.metrics.kv_records_live.fetch_sub(1, Relaxed);
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FetchQuery {
    /// How long to wait for a record that is not there yet, in ms.
    #[serde(default)]
    wait_ms: u64,
}

/// `GET /kv/{key}`: the record as JSON (and it is gone from here), or 404 saying why not.
pub(crate) async fn fetch_record(
    State(sim): State<SimState>,
    Path(key): Path<u64>,
    Query(q): Query<FetchQuery>,
) -> Response {
    match sim
        .kv_store()
        .take(key, Duration::from_millis(q.wait_ms))
        .await
    {
        Some(record) => axum::Json(record).into_response(),
        None => HttpError(ApiError::not_found(format!(
            "no KV record under key {key}: never prefilled here, already fetched, or expired \
             after --kv-ttl"
        )))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(first: u32) -> KvRecord {
        KvRecord {
            prompt_token_ids: vec![1],
            first_token: first,
            request_id: None,
            block_ids: None,
            layout: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn records_are_taken_once_and_expire() {
        let m = Arc::new(Metrics::default());
        let s = KvStore::new(Duration::from_secs(10), m.clone());
        s.insert(1, record(1), None).expect("new key");
        s.insert(2, record(2), None).expect("new key");
        assert!(
            s.insert(2, record(3), None).is_err(),
            "a pending key is not reused"
        );
        assert_eq!(s.take(1, Duration::ZERO).await, Some(record(1)));
        assert_eq!(s.take(1, Duration::ZERO).await, None);
        tokio::time::advance(Duration::from_secs(11)).await;
        s.sweep_now();
        assert_eq!(m.kv_records_expired.load(Relaxed), 1);
        assert_eq!(s.take(2, Duration::ZERO).await, None);
        assert_eq!(m.kv_records_live.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_sglang_prefill_waits_for_its_decode_then_fails_as_sglang_does() {
        let s = Arc::new(KvStore::new(Duration::from_secs(10), Arc::default()));
        let prefill = tokio::spawn({
            let s = s.clone();
            async move { s.await_decode(5, Duration::from_secs(300)).await }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!prefill.is_finished(), "the prefill waits for its decode");
        let decode = tokio::spawn({
            let s = s.clone();
            async move { s.take(5, Duration::from_secs(30)).await }
        });
        prefill.await.expect("joined").expect("the decode came");
        s.insert(5, record(5), None).expect("new key");
        assert_eq!(decode.await.expect("joined"), Some(record(5)));
        // A decode already waiting lets a prefill run at once.
        let decode = tokio::spawn({
            let s = s.clone();
            async move { s.take(6, Duration::from_secs(30)).await }
        });
        // (Paused time moves on only once the decode task waits.)
        tokio::time::sleep(Duration::from_millis(1)).await;
        s.await_decode(6, Duration::ZERO).await.expect("no wait");
        s.insert(6, record(6), None).expect("new key");
        assert_eq!(decode.await.expect("joined"), Some(record(6)));
        // A prefill sent alone fails at the timeout, with SGLang's 500 and words.
        let e = s
            .await_decode(7, Duration::from_secs(300))
            .await
            .expect_err("nobody bootstrapped room 7");
        assert_eq!(e.status, 500);
        assert!(
            e.message
                .contains("Request 7 timed out after 300.0s in KVPoll.Bootstrapping"),
            "{e}"
        );
        assert!(s.lock().slots.is_empty(), "no waiter left behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_waits_for_the_prefill() {
        let s = Arc::new(KvStore::new(Duration::from_secs(10), Arc::default()));
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.take(9, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.insert(9, record(9), None).expect("new key");
        assert_eq!(waiting.await.expect("joined"), Some(record(9)));
        // And gives up at its deadline.
        assert_eq!(s.take(10, Duration::from_secs(2)).await, None);
        assert!(s.lock().slots.is_empty(), "no waiter left behind");
    }
}
