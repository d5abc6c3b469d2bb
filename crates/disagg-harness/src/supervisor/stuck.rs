//! Which worker the benchmark's failing requests were on. When BENCHMARK fails and no role died
//! or went silent, a worker may still be at fault: it answers `/health` but every request to it
//! hangs, errs (500s), or is cut. Our router knows which worker each leg went to and what came
//! back: its `/workers` census counts, per worker, the requests sent, those that failed there
//! (with the last failure's account), and how long the ones in flight have gone unfinished.
//! The supervisor names the worker, mapped to its role by the address it published.
//!
//! Routers leave as soon as `status.json` is written, so BENCHMARK, before it writes its
//! failure, asks them and keeps their answers in `rendezvous/census.json` ([`snapshot`]); the
//! supervisor reads that, or asks the routers itself when there is none.

use std::collections::BTreeMap;
use std::time::Duration;

use disagg_core::{Plan, RoleName};
use serde::{Deserialize, Serialize};

use crate::rendezvous::{self, Endpoint};

/// How long one router gets to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Requests in flight on a worker that has finished none (nor streamed a byte) for this long
/// are stuck there.
const STALLED: Duration = Duration::from_secs(2);

/// What the routers say of one worker, summed over them.
#[derive(Debug, Default)]
struct Seen {
    url: String,
    requests: u64,
    errors: u64,
    /// Of `errors`, a deadline passing (a router of this version says; 0 from an older one).
    deadline_errors: u64,
    in_flight: u64,
    stalled: Duration,
    last_error: Option<String>,
    routers: Vec<RoleName>,
}

/// Whether any router of the plan is ours (one whose census can be asked).
pub(super) fn has_own_router(plan: &Plan) -> bool {
    plan.routers().any(|r| r.engine.is_none())
}

/// The file in the rendezvous folder holding the routers' census as BENCHMARK failed.
pub const CENSUS_FILE: &str = "census.json";

/// Every router's census at one moment.
#[derive(Debug, Serialize, Deserialize)]
struct Census {
    run_id: String,
    routers: Vec<(RoleName, serde_json::Value)>,
}

impl rendezvous::HasRunId for Census {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Asks every router of ours for its census and writes it to [`CENSUS_FILE`]: what BENCHMARK
/// does before it writes its failure, while the routers are still up.
pub async fn snapshot(plan: &Plan) {
    let routers = ask(&own_routers(plan)).await;
    if routers.is_empty() {
        return;
    }
    let census = Census {
        run_id: plan.run_id.clone(),
        routers,
    };
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(CENSUS_FILE);
    if let Err(e) = crate::atomic::write_json(&path, &census) {
        say_err!(
            "disagg role BENCHMARK: cannot write {}: {e}",
            path.display()
        );
    }
}

/// Our routers that published an address, with their census URL.
fn own_routers(plan: &Plan) -> Vec<(RoleName, String)> {
    let mut out = Vec::new();
    for r in plan.routers().filter(|r| r.engine.is_none()) {
        if let Some(ep) = rendezvous::read::<Endpoint>(&plan.rendezvous_file(r.role), &plan.run_id)
        {
            out.push((r.role, format!("{}/workers", ep.url())));
        }
    }
    out
}

/// The workers our routers saw fail or hang requests, each with its account, the worst first.
/// Empty when the routers saw nothing wrong, or none could be asked.
pub(super) fn suspects(plan: &Plan) -> Vec<(RoleName, String)> {
    suspects_hung(plan)
        .into_iter()
        .map(|(r, why, _)| (r, why))
        .collect()
}

/// [`suspects`], each also saying whether it only hung its requests (none failed there).
pub(super) fn suspects_hung(plan: &Plan) -> Vec<(RoleName, String, bool)> {
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(CENSUS_FILE);
    let censuses = match rendezvous::read::<Census>(&path, &plan.run_id) {
        Some(c) => c.routers,
        None => ask_now(&own_routers(plan)),
    };
    let seen = merge(plan, censuses);
    let mut out: Vec<(u64, Duration, RoleName, String, bool)> = seen
        .into_iter()
        .filter(|(_, s)| s.errors > 0 || (s.in_flight > 0 && s.stalled >= STALLED))
        .map(|(role, s)| {
            // Hung, not failing: nothing but deadlines passed on it (or none yet, stalled).
            let hung = s.errors == s.deadline_errors;
            (s.errors, s.stalled, role, account(role, &s), hung)
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
    out.into_iter()
        .map(|(_, _, r, why, hung)| (r, why, hung))
        .collect()
}

/// How often [`StallWatch`] reads the routers' census.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A worker found stalled by [`StallWatch`].
#[derive(Debug, Clone)]
pub(super) struct Stalled {
    pub role: RoleName,
    /// "GEN_0 (http://…) answers /health, but finished none of …", and any other worker
    /// stalled as long.
    pub reason: String,
}

/// `timeouts.stall` at work: from a thread of its own, reads our routers' census every
/// [`WATCH_EVERY`] and keeps the worker whose requests have gone longest with no byte of an
/// answer, once that is `limit` or more. Dropping it stops the thread (after its current ask,
/// bounded by [`ASK_TIMEOUT`]; it is not waited for).
pub(super) struct StallWatch {
    found: std::sync::Arc<std::sync::Mutex<Option<Stalled>>>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl StallWatch {
    /// Starts watching; `None` when the plan has no router of ours (no census to read) or the
    /// thread cannot start.
    pub(super) fn start(plan: &Plan, limit: Duration) -> Option<Self> {
        if !has_own_router(plan) {
            return None;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let found: std::sync::Arc<std::sync::Mutex<Option<Stalled>>> = Default::default();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (plan, shared) = (plan.clone(), found.clone());
        std::thread::Builder::new()
            .name("stall-watch".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(WATCH_EVERY)
                {
                    let routers = own_routers(&plan);
                    if routers.is_empty() {
                        continue;
                    }
                    let seen = merge(&plan, rt.block_on(ask(&routers)));
                    let now = stalled(&seen, limit);
                    *shared.lock().unwrap_or_else(|e| e.into_inner()) = now;
                }
            })
            .ok()?;
        Some(Self { found, _stop: stop })
    }

    /// The worker stalled for `limit` or more at the last reading, if any.
    pub(super) fn found(&self) -> Option<Stalled> {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The worker of `seen` stalled for `limit` or more, context workers first, then the one
/// stalled longest, with any other over the limit named after it. SGLang's legs run together:
/// a decode waits for its prefill's KV, so a hung prefill stalls its decode too, and the
/// prefill is the likelier cause (with TensorRT-LLM and vLLM the decode leg starts only once
/// the prefill has answered, and a hung decode leaves its prefill alone).
fn stalled(seen: &BTreeMap<RoleName, Seen>, limit: Duration) -> Option<Stalled> {
    let mut over: Vec<(&RoleName, &Seen)> = seen
        .iter()
        .filter(|(_, s)| s.in_flight > 0 && s.stalled >= limit)
        .collect();
    over.sort_by_key(|(role, s)| {
        (
            !matches!(role, RoleName::Ctx(_)),
            std::cmp::Reverse(s.stalled),
            **role,
        )
    });
    let (first, rest) = over.split_first()?;
    let mut reason = account(*first.0, first.1);
    for (role, s) in rest {
        reason.push_str(&format!("; also {}", account(**role, s)));
    }
    Some(Stalled {
        role: *first.0,
        reason,
    })
}

/// What the routers' censuses say of each worker, summed over the routers, keyed by the role
/// whose published address the router names.
fn merge(plan: &Plan, censuses: Vec<(RoleName, serde_json::Value)>) -> BTreeMap<RoleName, Seen> {
    // A worker as the router knows it (`http://host:port`, SGLang's `host:port@bootstrap`) is
    // the address its role published.
    let mut roles: BTreeMap<String, RoleName> = BTreeMap::new();
    for w in plan.workers() {
        if let Some(ep) = rendezvous::read::<Endpoint>(&plan.rendezvous_file(w.role), &plan.run_id)
        {
            roles.insert(ep.host_port(), w.role);
        }
    }
    let mut seen: BTreeMap<RoleName, Seen> = BTreeMap::new();
    for (router, census) in censuses {
        for group in ["prefill", "decode"] {
            let Some(workers) = census[group]["workers"].as_array() else {
                continue;
            };
            for w in workers {
                let url = w["url"].as_str().unwrap_or_default();
                let Some(role) = roles.get(authority(url)) else {
                    continue;
                };
                let n = |k: &str| w[k].as_u64().unwrap_or(0);
                let s = seen.entry(*role).or_default();
                s.url = url.to_string();
                s.requests += n("requests");
                s.errors += n("errors");
                s.deadline_errors += n("deadline_errors");
                s.in_flight += n("in_flight");
                s.stalled = s.stalled.max(Duration::from_millis(n("stalled_ms")));
                if let Some(e) = w["last_error"].as_str() {
                    s.last_error = Some(e.to_string());
                }
                // The routers the account names: those with something to say of it.
                if (n("in_flight") > 0 || n("errors") > 0) && !s.routers.contains(&router) {
                    s.routers.push(router);
                }
            }
        }
    }
    seen
}

/// "GEN_0 (http://127.0.0.1:4001) answers /health, but failed 8 of 8 request(s) DISAGG_SERVER
/// sent it; the last: ..." / "... but finished none of the 4 request(s) DISAGG_SERVER has in
/// flight on it, nor sent a byte of them, for 6s 100ms".
fn account(role: RoleName, s: &Seen) -> String {
    let by = s
        .routers
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" and ");
    let has = if s.routers.len() > 1 { "have" } else { "has" };
    let mut parts = Vec::new();
    if s.errors > 0 {
        let last = s
            .last_error
            .as_deref()
            .map(|e| format!("; the last: {}", excerpt(e)))
            .unwrap_or_default();
        parts.push(format!(
            "failed {} of {} request(s) {by} sent it{last}",
            s.errors, s.requests
        ));
    }
    if s.in_flight > 0 && s.stalled >= STALLED {
        let secs = Duration::from_millis(s.stalled.as_millis() as u64 / 100 * 100);
        parts.push(format!(
            "finished none of the {} request(s) {by} {has} in flight on it, nor sent a byte of \
             them, for {}",
            s.in_flight,
            humantime::format_duration(secs)
        ));
    }
    format!(
        "{role} ({}) answers /health, but {}",
        s.url,
        parts.join("; and it ")
    )
}

/// At most 300 characters of a failure's account: a worker's error body can be long.
fn excerpt(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `host:port` of a worker URL as the router names it.
fn authority(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let rest = rest.split('@').next().unwrap_or(rest);
    rest.trim_end_matches('/')
}

/// [`ask`], from outside any async runtime.
fn ask_now(routers: &[(RoleName, String)]) -> Vec<(RoleName, serde_json::Value)> {
    if routers.is_empty() {
        return Vec::new();
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(ask(routers)),
        Err(_) => Vec::new(),
    }
}

/// Every router's census, asked at once, each bounded by [`ASK_TIMEOUT`]; those that did not
/// answer are left out.
async fn ask(routers: &[(RoleName, String)]) -> Vec<(RoleName, serde_json::Value)> {
    {
        let client = crate::role::http_client();
        let asks: Vec<_> = routers
            .iter()
            .map(|(role, url)| {
                let (client, role, url) = (client.clone(), *role, url.clone());
                tokio::spawn(async move {
                    let r = client.get(&url).timeout(ASK_TIMEOUT).send().await.ok()?;
                    let body = r.bytes().await.ok()?;
                    let v = serde_json::from_slice::<serde_json::Value>(&body).ok()?;
                    Some((role, v))
                })
            })
            .collect();
        let mut out = Vec::new();
        for a in asks {
            if let Ok(Some(v)) = a.await {
                out.push(v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_url_is_matched_by_its_authority() {
        assert_eq!(authority("http://127.0.0.1:4001"), "127.0.0.1:4001");
        assert_eq!(authority("127.0.0.1:4001@9000"), "127.0.0.1:4001");
        assert_eq!(authority("http://node-1:80/"), "node-1:80");
    }

    #[test]
    fn a_stalled_context_worker_then_the_longest_stalled_is_named_first_with_the_others() {
        let worker = |url: &str, in_flight, secs| Seen {
            url: url.into(),
            requests: 4,
            in_flight,
            stalled: Duration::from_secs(secs),
            routers: vec![RoleName::DisaggServer(None)],
            ..Default::default()
        };
        let mut seen = BTreeMap::new();
        seen.insert(RoleName::Ctx(0), worker("http://c:1", 2, 6));
        seen.insert(RoleName::Gen(0), worker("http://g:1", 2, 9));
        seen.insert(RoleName::Gen(1), worker("http://g:2", 0, 0));
        seen.insert(RoleName::Gen(2), worker("http://g:3", 1, 4));
        let limit = Duration::from_secs(5);
        let found = stalled(&seen, limit).expect("two over the limit");
        // The context worker first, though the other has waited longer: its decode waits on it.
        assert_eq!(found.role, RoleName::Ctx(0));
        assert!(
            found
                .reason
                .starts_with("CTX_0 (http://c:1) answers /health, but finished none")
                && found
                    .reason
                    .contains("; also GEN_0 (http://g:1) answers /health")
                && !found.reason.contains("GEN_2"),
            "{}",
            found.reason
        );
        seen.remove(&RoleName::Ctx(0));
        assert_eq!(stalled(&seen, limit).unwrap().role, RoleName::Gen(0));
        assert!(stalled(&seen, Duration::from_secs(10)).is_none());
    }

    #[test]
    fn the_account_says_what_failed_and_what_hangs() {
        let s = Seen {
            url: "http://127.0.0.1:4001".into(),
            requests: 8,
            errors: 8,
            deadline_errors: 0,
            in_flight: 2,
            stalled: Duration::from_millis(6150),
            last_error: Some("generation worker http://127.0.0.1:4001 failed with HTTP 500".into()),
            routers: vec![RoleName::DisaggServer(None)],
        };
        assert_eq!(
            account(RoleName::Gen(0), &s),
            "GEN_0 (http://127.0.0.1:4001) answers /health, but failed 8 of 8 request(s) \
             DISAGG_SERVER sent it; the last: generation worker http://127.0.0.1:4001 failed \
             with HTTP 500; and it finished none of the 2 request(s) DISAGG_SERVER has in \
             flight on it, nor sent a byte of them, for 6s 100ms"
        );
    }
}
