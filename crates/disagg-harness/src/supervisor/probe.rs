//! Which worker a failed run's requests hung or failed at, when the router is not ours.
//!
//! With our own router, its `/workers` census says which worker each leg went to and what came
//! back ([`super::stuck`]). A router that is not ours (`router.kind: engine`, TensorRT-LLM's own
//! `trtllm-serve disaggregated`; `router.kind: command`) says nothing we can read, so each
//! worker is asked directly: one request of one output token, in the worker's own dialect and
//! role (what a client of that worker sends it), all at once, each bounded by [`PROBE_TIMEOUT`].
//! A worker that gives no answer within it is hung; one that answers an error status is named
//! with that status and the first bytes of its answer; one that answers 200 is not blamed, nor
//! is one that cannot be reached at all (it left; a death is named by the supervisor's own
//! checks).
//!
//! What each worker gets (`/v1/completions`, a prompt of four token ids, `max_tokens: 1`,
//! `stream: false`):
//! - TensorRT-LLM: a context server, `disaggregated_params: {request_type: context_only}` (its
//!   disaggregated server's context leg), with a fresh `disagg_request_id` when the worker's
//!   `/version` says 1.3 or newer (their server sends one; older workers refuse the field); a
//!   generation server, the request alone (what that server sends a generation server when
//!   conditional disaggregation skips the context leg).
//! - vLLM: a prefill server, the proxy's prefill leg (`kv_transfer_params` with
//!   `do_remote_decode: true`); a decode server, `kv_transfer_params` asking for neither remote
//!   prefill nor remote decode, which its connector runs locally (no params at all is what a
//!   proxy that lost the prefill's answer sends).
//! - SGLang: both, `bootstrap_host: "2.2.2.2"` (SGLang's fake bootstrap host, which skips the
//!   KV transfer; its launcher warms PD workers with it) and a fresh `bootstrap_room`.
//!
//! Each router is sent the same request as a client (no dialect's fields), at the same time and
//! within the same bound. When every worker answers its own but a router gives none (or cuts
//! it, or answers a server error), the requests are held between the router and the workers:
//! in the router, or in the KV transfer it asks of them. That router is named then, not
//! BENCHMARK, which only waited.
//!
//! Workers leave as soon as `status.json` is written, so BENCHMARK probes before it writes its
//! failure and keeps the answers in `rendezvous/probes.json` ([`snapshot`]); at the benchmark
//! deadline the supervisor probes itself, before it writes the verdict ([`suspects_now`]).

use std::time::{Duration, Instant};

use disagg_core::{Plan, RoleName};
use disagg_proto::Dialect;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::rendezvous::{self, Endpoint};

/// How long a worker gets to answer its probe (a TensorRT-LLM context worker is first asked its
/// version, for at most [`VERSION_TIMEOUT`] more). A 1-token request on a healthy engine is one
/// short prefill and no decode step: milliseconds when idle, and still well under a second
/// behind a full batch (continuous batching admits it at the next iteration, and an iteration
/// takes tens of milliseconds, a long prefill chunk a few hundred). Five seconds is ten of the
/// slowest such iterations, so a healthy worker is not called hung, and short enough to add
/// little to a run that is failing anyway.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The file in the rendezvous folder holding the probes' answers as BENCHMARK failed.
pub const PROBES_FILE: &str = "probes.json";

/// How many bytes of an error answer are quoted.
const QUOTED: usize = 200;

/// What one worker made of its probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// A success status.
    Ok { status: u16, ms: u64 },
    /// Nothing (not even a status line) within [`PROBE_TIMEOUT`].
    None { after_ms: u64 },
    /// An error status, with the first bytes of the body.
    Error { status: u16, body: String },
    /// Connected, and the connection ended without an answer.
    Cut { error: String },
    /// No connection: the worker is gone, which is not this probe's to judge.
    Unreachable { error: String },
}

/// One worker's probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probed {
    pub role: RoleName,
    pub url: String,
    pub request: Value,
    #[serde(flatten)]
    pub answer: Answer,
}

/// Every probe of one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Probes {
    run_id: String,
    workers: Vec<Probed>,
    /// The routers, each sent a client's request (absent in files written before they were).
    #[serde(default)]
    routers: Vec<Probed>,
}

impl rendezvous::HasRunId for Probes {
    fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Whether the workers must be probed: no router of the plan is ours.
pub(super) fn needed(plan: &Plan) -> bool {
    !super::stuck::has_own_router(plan)
}

/// Probes every worker and writes the answers to [`PROBES_FILE`]: what BENCHMARK does before
/// it writes its failure, while the workers are still up. Nothing without a need.
pub async fn snapshot(plan: &Plan) {
    if !needed(plan) {
        return;
    }
    say_err!(
        "disagg role BENCHMARK: the router is not disagg's own; probing each worker directly, \
         and the router as a client would (one 1-token request each, {} at most)",
        humantime::format_duration(PROBE_TIMEOUT)
    );
    let probes = probe_all(plan).await;
    for p in probes.workers.iter().chain(&probes.routers) {
        say_err!("disagg role BENCHMARK: probe of {}: {:?}", p.role, p.answer);
    }
    write(plan, &probes);
}

fn write(plan: &Plan, probes: &Probes) {
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(PROBES_FILE);
    if let Err(e) = crate::atomic::write_json(&path, probes) {
        say_err!("disagg: cannot write {}: {e}", path.display());
    }
}

/// The probes BENCHMARK kept, if it did.
pub(super) fn kept(plan: &Plan) -> Option<Probes> {
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(PROBES_FILE);
    rendezvous::read::<Probes>(&path, &plan.run_id)
}

/// Probes every worker and router now (outside any async runtime), keeps the answers, and
/// returns them; `None` when no runtime could be built.
pub(super) fn probe_now(plan: &Plan) -> Option<Probes> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let probes = rt.block_on(probe_all(plan));
    write(plan, &probes);
    Some(probes)
}

/// The workers whose probe found them hung or failing, each with its account, in plan order;
/// when every worker answered, the routers that held or failed a client's request.
pub(super) fn suspects(probes: &Probes) -> Vec<(RoleName, String)> {
    let workers: Vec<_> = probes
        .workers
        .iter()
        .filter_map(|p| account(p).map(|why| (p.role, why)))
        .collect();
    if !workers.is_empty()
        || !probes
            .workers
            .iter()
            .all(|p| matches!(p.answer, Answer::Ok { .. }))
    {
        // A worker failing, or one that could not be asked (it left): a router's trouble may
        // be that worker's, so the router is not the one to name.
        return workers;
    }
    let slowest = probes
        .workers
        .iter()
        .filter_map(|p| match p.answer {
            Answer::Ok { ms, .. } => Some(ms),
            _ => None,
        })
        .max();
    probes
        .routers
        .iter()
        .filter_map(|p| router_account(p, slowest).map(|why| (p.role, why)))
        .collect()
}

/// The workers and routers whose probe got no answer at all: hung, where the others failed.
pub(super) fn hung(probes: &Probes) -> Vec<RoleName> {
    probes
        .workers
        .iter()
        .chain(&probes.routers)
        .filter(|p| matches!(p.answer, Answer::None { .. }))
        .map(|p| p.role)
        .collect()
}

/// What the probes that found nothing asked: "each worker answered a 1-token request sent to
/// it directly", and ", and the router one sent through it" when it did too.
pub(super) fn cleared(probes: &Probes) -> String {
    let routers = &probes.routers;
    let through = if !routers.is_empty()
        && routers
            .iter()
            .all(|p| matches!(p.answer, Answer::Ok { .. }))
    {
        if routers.len() == 1 {
            ", and the router one sent through it"
        } else {
            ", and each router one sent through it"
        }
    } else {
        ""
    };
    format!("each worker answered a 1-token request sent to it directly{through}")
}

/// What went wrong with a probe: "got no answer in 5s", "got HTTP 500 Internal Server Error:
/// {...}", ...; `None` for one that was answered, or could not be reached.
fn trouble(answer: &Answer) -> Option<String> {
    Some(match answer {
        Answer::Ok { .. } | Answer::Unreachable { .. } => return None,
        Answer::None { .. } => format!(
            "got no answer in {}",
            humantime::format_duration(PROBE_TIMEOUT)
        ),
        Answer::Cut { error } => format!("had its connection cut before an answer ({error})"),
        Answer::Error { status, body } => {
            let reason = reqwest::StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map(|r| format!(" {r}"))
                .unwrap_or_default();
            format!("got HTTP {status}{reason}: {body}")
        }
    })
}

/// "GEN_0 (http://127.0.0.1:4001) answers /health, but a 1-token request sent to it directly
/// got no answer in 5s (...)". `None` for a worker that answered, or could not be reached.
fn account(p: &Probed) -> Option<String> {
    let what = trouble(&p.answer)?;
    Some(format!(
        "{} ({}) answers /health, but a 1-token request sent to it directly {what} (the router \
         is not disagg's own, so each worker was probed)",
        p.role, p.url
    ))
}

/// A router that held, cut or failed (5xx) a client's 1-token request while every worker
/// answered its own, within `slowest` ms at most. A 4xx is the request's own fault (a model
/// name the router does not know, say), which the benchmark's account already tells.
fn router_account(p: &Probed, slowest: Option<u64>) -> Option<String> {
    if matches!(p.answer, Answer::Error { status, .. } if status < 500) {
        return None;
    }
    let what = trouble(&p.answer)?;
    let within = slowest
        .map(|ms| format!(" within {ms} ms"))
        .unwrap_or_default();
    Some(format!(
        "{} ({}) answers /health, but a 1-token request sent through it {what}, while each \
         worker answered one sent to it directly{within}: the requests are held in the router, \
         or in the KV transfer it asks of the workers (the router is not disagg's own, so it \
         and each worker were probed)",
        p.role, p.url
    ))
}

/// Every worker and router that published an address, probed at once.
async fn probe_all(plan: &Plan) -> Probes {
    let client = crate::role::http_client();
    let dialect = plan.router.dialect();
    let spawn = |role: RoleName, router: bool| {
        let ep = rendezvous::read::<Endpoint>(&plan.rendezvous_file(role), &plan.run_id)?;
        let mut body = if router {
            client_request(&plan.model)
        } else {
            request(dialect, role.is_ctx(), &plan.model)
        };
        let client = client.clone();
        Some(tokio::spawn(async move {
            if !router
                && dialect == Dialect::Trtllm
                && role.is_ctx()
                && takes_disagg_ids(&client, &ep.url()).await
            {
                body["disaggregated_params"]["disagg_request_id"] = json!(fresh_disagg_id());
            }
            let answer = probe(&client, &ep.url(), &body).await;
            Probed {
                role,
                url: ep.url(),
                request: body,
                answer,
            }
        }))
    };
    let workers: Vec<_> = plan
        .workers()
        .filter_map(|w| spawn(w.role, false))
        .collect();
    let routers: Vec<_> = plan.routers().filter_map(|r| spawn(r.role, true)).collect();
    Probes {
        run_id: plan.run_id.clone(),
        workers: joined(workers).await,
        routers: joined(routers).await,
    }
}

async fn joined(handles: Vec<tokio::task::JoinHandle<Probed>>) -> Vec<Probed> {
    let mut out = Vec::new();
    for p in handles {
        if let Ok(p) = p.await {
            out.push(p);
        }
    }
    out
}

/// What a client sends a router: one token of a four-token prompt, no dialect's fields.
fn client_request(model: &str) -> Value {
    json!({"model": model, "prompt": [100, 101, 102, 103], "max_tokens": 1, "stream": false})
}

/// The one request a worker of this dialect and role takes from a client (see the module
/// docs for why each).
pub fn request(dialect: Dialect, ctx: bool, model: &str) -> Value {
    let mut body = client_request(model);
    match (dialect, ctx) {
        (Dialect::Trtllm, true) => {
            body["disaggregated_params"] = json!({"request_type": "context_only"});
        }
        (Dialect::Trtllm, false) => {}
        (Dialect::Vllm, true) => {
            body["kv_transfer_params"] = json!({
                "do_remote_decode": true, "do_remote_prefill": false,
                "remote_engine_id": null, "remote_block_ids": null,
                "remote_host": null, "remote_port": null,
            });
        }
        (Dialect::Vllm, false) => {
            body["kv_transfer_params"] =
                json!({"do_remote_decode": false, "do_remote_prefill": false});
        }
        (Dialect::Sglang, _) => {
            body["bootstrap_host"] = json!(disagg_proto::dialect::SGLANG_FAKE_BOOTSTRAP_HOST);
            body["bootstrap_room"] = json!(fresh_room());
        }
    }
    body
}

/// How long a TensorRT-LLM context worker gets to say its version before its probe.
const VERSION_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a TensorRT-LLM context worker takes a `disagg_request_id` (1.3 and newer, whose own
/// disaggregated server sends one), by its `/version`; a worker that does not say is sent
/// none, as TensorRT-LLM's server before 1.3 did, and as our router does until it knows.
async fn takes_disagg_ids(client: &reqwest::Client, base: &str) -> bool {
    let asked = client
        .get(format!("{base}/version"))
        .timeout(VERSION_TIMEOUT)
        .send();
    let Ok(Ok(r)) = tokio::time::timeout(VERSION_TIMEOUT, asked).await else {
        return false;
    };
    match tokio::time::timeout(VERSION_TIMEOUT, r.json::<Value>()).await {
        Ok(Ok(v)) => disagg_proto::trtllm::takes_disagg_ids(&v),
        _ => false,
    }
}

/// A fresh TensorRT-LLM global request id, in the range its workers keep for them.
fn fresh_disagg_id() -> u64 {
    use disagg_proto::trtllm::MIN_DISAGG_REQUEST_ID;
    MIN_DISAGG_REQUEST_ID + fresh_room() % (i64::MAX as u64 - MIN_DISAGG_REQUEST_ID)
}

/// A room no real request is using (SGLang's routers draw theirs at random from the 63-bit
/// range; an active room used twice upsets its schedulers).
fn fresh_room() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() >> 1
}

async fn probe(client: &reqwest::Client, base: &str, body: &Value) -> Answer {
    let start = Instant::now();
    let sent = client
        .post(format!("{base}/v1/completions"))
        .json(body)
        .send();
    let r = match tokio::time::timeout(PROBE_TIMEOUT, sent).await {
        Err(_) => {
            return Answer::None {
                after_ms: start.elapsed().as_millis() as u64,
            };
        }
        Ok(Err(e)) if e.is_connect() => {
            return Answer::Unreachable {
                error: e.to_string(),
            };
        }
        // Connected, then nothing usable: the connection was cut under the request.
        Ok(Err(e)) => {
            return Answer::Cut {
                error: e.to_string(),
            };
        }
        Ok(Ok(r)) => r,
    };
    let status = r.status().as_u16();
    // The body of a success is not needed; an error's first bytes say what went wrong. Both
    // stay within the bound.
    let left = PROBE_TIMEOUT.saturating_sub(start.elapsed());
    if r.status().is_success() {
        return match tokio::time::timeout(left, r.bytes()).await {
            Ok(Ok(_)) => Answer::Ok {
                status,
                ms: start.elapsed().as_millis() as u64,
            },
            Ok(Err(e)) => Answer::Cut {
                error: format!("HTTP {status}, then the body was cut: {e}"),
            },
            Err(_) => Answer::None {
                after_ms: start.elapsed().as_millis() as u64,
            },
        };
    }
    let body = match tokio::time::timeout(left, r.bytes()).await {
        Ok(Ok(b)) => quote(&b),
        _ => String::new(),
    };
    Answer::Error { status, body }
}

/// The first [`QUOTED`] bytes of a body, as text.
fn quote(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(&b[..b.len().min(QUOTED)]).into_owned();
    if b.len() > QUOTED {
        format!("{}…", text.trim_end())
    } else {
        text.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(answer: Answer) -> Probed {
        Probed {
            role: RoleName::Gen(0),
            url: "http://127.0.0.1:4001".into(),
            request: json!({}),
            answer,
        }
    }

    #[test]
    fn a_hung_or_failing_worker_is_named_with_how_it_was_found() {
        assert_eq!(
            account(&probed(Answer::None { after_ms: 5000 })).unwrap(),
            "GEN_0 (http://127.0.0.1:4001) answers /health, but a 1-token request sent to it \
             directly got no answer in 5s (the router is not disagg's own, so each worker was \
             probed)"
        );
        assert_eq!(
            account(&probed(Answer::Error {
                status: 500,
                body: "{\"error\": \"boom\"}".into()
            }))
            .unwrap(),
            "GEN_0 (http://127.0.0.1:4001) answers /health, but a 1-token request sent to it \
             directly got HTTP 500 Internal Server Error: {\"error\": \"boom\"} (the router is \
             not disagg's own, so each worker was probed)"
        );
        assert_eq!(account(&probed(Answer::Ok { status: 200, ms: 3 })), None);
        assert_eq!(
            account(&probed(Answer::Unreachable {
                error: "refused".into()
            })),
            None
        );
    }

    #[test]
    fn a_router_is_named_only_when_every_worker_answered_its_own_probe() {
        let at = |role, answer| Probed {
            role,
            url: "http://127.0.0.1:4000".into(),
            request: json!({}),
            answer,
        };
        let ok = |ms| Answer::Ok { status: 200, ms };
        let hung = Answer::None { after_ms: 5000 };
        let probes = |workers, routers| Probes {
            run_id: "r".into(),
            workers,
            routers,
        };
        let router = RoleName::DisaggServer(None);
        let held = probes(
            vec![at(RoleName::Ctx(0), ok(3)), at(RoleName::Gen(0), ok(12))],
            vec![at(router, hung.clone())],
        );
        let found = suspects(&held);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, router);
        assert_eq!(
            found[0].1,
            "DISAGG_SERVER (http://127.0.0.1:4000) answers /health, but a 1-token request sent \
             through it got no answer in 5s, while each worker answered one sent to it directly \
             within 12 ms: the requests are held in the router, or in the KV transfer it asks of \
             the workers (the router is not disagg's own, so it and each worker were probed)"
        );
        // A hung worker is the one named, not the router waiting on it.
        let worker_hung = probes(
            vec![
                at(RoleName::Ctx(0), ok(3)),
                at(RoleName::Gen(0), hung.clone()),
            ],
            vec![at(router, hung.clone())],
        );
        let found = suspects(&worker_hung);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, RoleName::Gen(0));
        // A worker gone: what the router does is that worker's doing, maybe.
        let gone = Answer::Unreachable {
            error: "refused".into(),
        };
        assert!(
            suspects(&probes(
                vec![at(RoleName::Ctx(0), ok(3)), at(RoleName::Gen(0), gone)],
                vec![at(router, hung.clone())],
            ))
            .is_empty()
        );
        // A 4xx is the request's fault; a 5xx and a cut are the router's.
        let answered = |answer| {
            suspects(&probes(
                vec![at(RoleName::Ctx(0), ok(3))],
                vec![at(router, answer)],
            ))
            .len()
        };
        let error = |status| Answer::Error {
            status,
            body: String::new(),
        };
        assert_eq!(answered(error(404)), 0);
        assert_eq!(answered(error(502)), 1);
        assert_eq!(
            answered(Answer::Cut {
                error: "eof".into()
            }),
            1
        );
        assert_eq!(answered(ok(20)), 0);
        // What was asked, when nobody was found.
        let fine = probes(vec![at(RoleName::Ctx(0), ok(3))], vec![at(router, ok(20))]);
        assert_eq!(
            cleared(&fine),
            "each worker answered a 1-token request sent to it directly, and the router one sent \
             through it"
        );
        let unasked = probes(vec![at(RoleName::Ctx(0), ok(3))], vec![]);
        assert_eq!(
            cleared(&unasked),
            "each worker answered a 1-token request sent to it directly"
        );
    }

    #[test]
    fn each_dialect_and_role_gets_what_its_engine_takes_from_a_client() {
        let ctx = request(Dialect::Trtllm, true, "m");
        assert_eq!(ctx["disaggregated_params"]["request_type"], "context_only");
        assert_eq!(ctx["max_tokens"], 1);
        let gen_ = request(Dialect::Trtllm, false, "m");
        assert!(gen_.get("disaggregated_params").is_none());
        assert_eq!(
            request(Dialect::Vllm, true, "m")["kv_transfer_params"]["do_remote_decode"],
            true
        );
        assert_eq!(
            request(Dialect::Vllm, false, "m")["kv_transfer_params"],
            json!({"do_remote_decode": false, "do_remote_prefill": false})
        );
        let sglang = request(Dialect::Sglang, false, "m");
        assert_eq!(sglang["bootstrap_host"], "2.2.2.2");
        assert!(sglang["bootstrap_room"].as_u64().unwrap() < 1 << 63);
        assert!(sglang.get("bootstrap_port").is_none());
    }

    #[test]
    fn an_error_body_is_quoted_up_to_its_first_bytes() {
        assert_eq!(quote(b"short\n"), "short");
        let long = "x".repeat(500);
        let q = quote(long.as_bytes());
        assert!(q.ends_with('…') && q.chars().count() == QUOTED + 1, "{q}");
    }
}
