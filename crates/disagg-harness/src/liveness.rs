//! Liveness: once a role has published its address, the supervisor probes its `/health` every
//! [`PROBE_EVERY`], from a thread of its own, and remembers when it last answered. A role that
//! has not answered for `timeouts.unresponsive` is hung (stopped, deadlocked, wedged on a GPU),
//! and the supervisor fails the run naming it, instead of letting the benchmark fail later on
//! timeouts or 503s that point at nobody.
//!
//! What counts as an answer: for a worker, `/health` with 200 (an engine that answers 5xx is
//! not serving); for the router, any HTTP answer at all, since its `/health` reflects its
//! workers, which are watched themselves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use disagg_core::RoleName;
use tokio::sync::mpsc;

/// How often every watched role is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One probe's limit. Longer than the router's own probe of its workers (1.5 s): the router's
/// `/health` waits for theirs before it answers.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the prober has seen of one role.
#[derive(Debug, Clone)]
struct Seen {
    last_answer: Instant,
    /// The same moment on the wall clock, for the report.
    last_answer_at: SystemTime,
    /// Why the last finished probe did not count, since the last answer.
    last_miss: Option<String>,
    /// What is probed (`http://host:port`): where the role serves, on which node.
    url: String,
}

/// A role that has not answered for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    pub role: RoleName,
    pub for_: Duration,
    /// "GEN_0 stopped answering http://dgn2:33773/health at 2026-...Z (...)".
    pub reason: String,
}

/// The prober. Dropping it stops its thread and every probe.
pub struct Liveness {
    seen: Arc<Mutex<BTreeMap<RoleName, Seen>>>,
    /// Set once the run is over ([`Liveness::freeze`]): probes record nothing more.
    frozen: Arc<AtomicBool>,
    tx: Option<mpsc::UnboundedSender<(RoleName, String)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Liveness {
    pub fn start() -> std::io::Result<Self> {
        let seen: Arc<Mutex<BTreeMap<RoleName, Seen>>> = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<(RoleName, String)>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = seen.clone();
        let frozen = Arc::new(AtomicBool::new(false));
        let frozen_ = frozen.clone();
        let thread = std::thread::Builder::new()
            .name("liveness".into())
            .spawn(move || {
                rt.block_on(async move {
                    let client = crate::role::http_client();
                    // Each probe loop lives as long as this runtime: until the sender is dropped.
                    while let Some((role, url)) = rx.recv().await {
                        tokio::spawn(probe_loop(
                            client.clone(),
                            role,
                            url,
                            shared.clone(),
                            frozen_.clone(),
                        ));
                    }
                });
            })?;
        Ok(Self {
            seen,
            frozen,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Starts probing `role` at `url` (`http://host:port`), counting it as answering now.
    pub fn watch(&self, role: RoleName, url: String) {
        self.lock().insert(
            role,
            Seen {
                last_answer: Instant::now(),
                last_answer_at: SystemTime::now(),
                last_miss: None,
                url: url.clone(),
            },
        );
        if let Some(tx) = &self.tx {
            let _ = tx.send((role, url));
        }
    }

    /// Keeps what the probes have seen as it is: once the run is over, its roles are released
    /// and stop, and a probe refused by a role on its way out would read as the last word on
    /// one that hung before.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// Counts `gap` as answered for every role: the watcher itself was stopped or starved that
    /// long (its own loop stood still), and its probes with it, so their silence is its own.
    pub fn excuse(&self, gap: Duration) {
        let now = Instant::now();
        for s in self.lock().values_mut() {
            s.last_answer = (s.last_answer + gap).min(now);
        }
    }

    /// The roles that have not answered for at least `min`, most upstream first (workers, then
    /// the router).
    pub fn silent(&self, min: Duration) -> Vec<Silent> {
        let now = Instant::now();
        let mut out: Vec<Silent> = self
            .lock()
            .iter()
            .filter_map(|(role, s)| {
                let for_ = now.saturating_duration_since(s.last_answer);
                (for_ >= min).then(|| Silent {
                    role: *role,
                    for_,
                    reason: describe(*role, s, for_),
                })
            })
            .collect();
        out.sort_by_key(|s| (!s.role.is_worker(), s.role));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<RoleName, Seen>> {
        // A poisoned map still holds the last facts; they are all we need.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn describe(role: RoleName, s: &Seen, for_: Duration) -> String {
    let at = humantime::format_rfc3339_seconds(s.last_answer_at);
    let last = s
        .last_miss
        .as_deref()
        .unwrap_or("still waiting for an answer");
    let secs = Duration::from_millis(for_.as_millis() as u64 / 100 * 100);
    format!(
        "{role} stopped answering {}/health at {at}: no answer for {} (last probe: {last})",
        s.url,
        humantime::format_duration(secs)
    )
}

async fn probe_loop(
    client: reqwest::Client,
    role: RoleName,
    url: String,
    seen: Arc<Mutex<BTreeMap<RoleName, Seen>>>,
    frozen: Arc<AtomicBool>,
) {
    let health = format!("{url}/health");
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let miss = match client.get(&health).timeout(PROBE_TIMEOUT).send().await {
            Ok(r) if r.status().is_success() || !role.is_worker() => None,
            Ok(r) => Some(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => Some(format!(
                "no answer within {}",
                humantime::format_duration(PROBE_TIMEOUT)
            )),
            Err(e) => Some(error_chain(&e)),
        };
        if frozen.load(Ordering::SeqCst) {
            return;
        }
        let mut map = seen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = map.get_mut(&role) else {
            continue;
        };
        match miss {
            None => {
                s.last_answer = Instant::now();
                s.last_answer_at = SystemTime::now();
                s.last_miss = None;
            }
            Some(why) => s.last_miss = Some(why),
        }
    }
}

/// reqwest hides the useful part (refused, reset) in the source chain.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers `/health` until told to stop answering (it keeps the connection
    /// open and says nothing, like a SIGSTOPped process).
    fn server() -> (String, Arc<std::sync::atomic::AtomicBool>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = hang.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut c in l.incoming().flatten() {
                let mut buf = [0u8; 1024];
                if h.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(c);
                    continue;
                }
                if matches!(c.read(&mut buf), Ok(n) if n > 0) {
                    let _ = c.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            }
        });
        (url, hang)
    }

    #[test]
    fn a_role_that_stops_answering_is_found_silent_and_named() {
        let (url, hang) = server();
        let live = Liveness::start().unwrap();
        live.watch(RoleName::Gen(0), url);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(live.silent(Duration::from_secs(2)).is_empty(), "it answers");
        hang.store(true, std::sync::atomic::Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(20);
        let silent = loop {
            let s = live.silent(Duration::from_secs(5));
            if !s.is_empty() || Instant::now() > until {
                break s;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(silent.len(), 1, "{silent:?}");
        assert_eq!(silent[0].role, RoleName::Gen(0));
        assert!(
            silent[0]
                .reason
                .starts_with("GEN_0 stopped answering http://"),
            "{}",
            silent[0].reason
        );
        assert!(
            silent[0].reason.contains("no answer within 3s"),
            "{}",
            silent[0].reason
        );
    }

    /// Once frozen (the run is over, its roles on their way out), probes record nothing: the
    /// last word on a role stays what it was before.
    #[test]
    fn a_frozen_prober_records_nothing_more() {
        let (url, hang) = server();
        let live = Liveness::start().unwrap();
        live.watch(RoleName::Gen(0), url);
        std::thread::sleep(Duration::from_millis(1500));
        live.freeze();
        hang.store(true, std::sync::atomic::Ordering::SeqCst);
        // Long enough for a probe to time out (3 s) and be recorded, were it not frozen.
        std::thread::sleep(Duration::from_millis(4500));
        let silent = live.silent(Duration::from_secs(3));
        assert_eq!(silent.len(), 1, "{silent:?}");
        assert!(
            silent[0]
                .reason
                .contains("(last probe: still waiting for an answer)"),
            "{}",
            silent[0].reason
        );
    }

    /// A watcher that stood still excuses the silence it saw meanwhile, no more.
    #[test]
    fn silence_while_the_watcher_stood_still_is_excused() {
        let (url, hang) = server();
        let live = Liveness::start().unwrap();
        live.watch(RoleName::Ctx(0), url);
        hang.store(true, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(live.silent(Duration::from_secs(1)).len(), 1);
        live.excuse(Duration::from_secs(60));
        assert!(live.silent(Duration::from_secs(1)).is_empty(), "excused");
        // Its silence counts again from now: it is still hung.
        std::thread::sleep(Duration::from_millis(1200));
        assert_eq!(live.silent(Duration::from_secs(1)).len(), 1);
    }
}
