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

#[derive(Debug, Serialize, Deserialize)]
struct Probes {
    run_id: String,
    workers: Vec<Probed>,
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
    eprintln!(
        "disagg role BENCHMARK: the router is not disagg's own; probing each worker directly \
         (one 1-token request, {} at most)",
        humantime::format_duration(PROBE_TIMEOUT)
    );
    let workers = probe_all(plan).await;
    for p in &workers {
        eprintln!("disagg role BENCHMARK: probe of {}: {:?}", p.role, p.answer);
    }
    write(plan, workers);
}

fn write(plan: &Plan, workers: Vec<Probed>) {
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(PROBES_FILE);
    let probes = Probes {
        run_id: plan.run_id.clone(),
        workers,
    };
    if let Err(e) = crate::atomic::write_json(&path, &probes) {
        say_err!("disagg: cannot write {}: {e}", path.display());
    }
}

/// The probes BENCHMARK kept, if it did.
pub(super) fn kept(plan: &Plan) -> Option<Vec<Probed>> {
    let path = disagg_core::plan::rendezvous_dir(&plan.run_dir).join(PROBES_FILE);
    rendezvous::read::<Probes>(&path, &plan.run_id).map(|p| p.workers)
}

/// Probes every worker now (outside any async runtime), keeps the answers, and returns them.
pub(super) fn probe_now(plan: &Plan) -> Vec<Probed> {
    let workers = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(probe_all(plan)),
        Err(_) => return Vec::new(),
    };
    write(plan, workers.clone());
    workers
}

/// The workers whose probe found them hung or failing, each with its account, in plan order.
pub(super) fn suspects(probes: &[Probed]) -> Vec<(RoleName, String)> {
    probes
        .iter()
        .filter_map(|p| account(p).map(|why| (p.role, why)))
        .collect()
}

/// [`probe_now`], then [`suspects`]: what the supervisor does at the benchmark deadline.
pub(super) fn suspects_now(plan: &Plan) -> Vec<(RoleName, String)> {
    suspects(&probe_now(plan))
}

/// "GEN_0 (http://127.0.0.1:4001) answers /health, but a 1-token request sent to it directly
/// got no answer in 5s" / "... got HTTP 500 Internal Server Error: {...}". `None` for a worker
/// that answered, or could not be reached.
fn account(p: &Probed) -> Option<String> {
    let what = match &p.answer {
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
    };
    Some(format!(
        "{} ({}) answers /health, but a 1-token request sent to it directly {what} (the router \
         is not disagg's own, so each worker was probed)",
        p.role, p.url
    ))
}

/// Every worker that published an address, probed at once.
async fn probe_all(plan: &Plan) -> Vec<Probed> {
    let client = crate::role::http_client();
    let dialect = plan.router.dialect();
    let probes: Vec<_> = plan
        .workers()
        .filter_map(|w| {
            let ep = rendezvous::read::<Endpoint>(&plan.rendezvous_file(w.role), &plan.run_id)?;
            let mut body = request(dialect, w.role.is_ctx(), &plan.model);
            let (client, role) = (client.clone(), w.role);
            Some(tokio::spawn(async move {
                if dialect == Dialect::Trtllm
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
        })
        .collect();
    let mut out = Vec::new();
    for p in probes {
        if let Ok(p) = p.await {
            out.push(p);
        }
    }
    out
}

/// The one request a worker of this dialect and role takes from a client (see the module
/// docs for why each).
pub fn request(dialect: Dialect, ctx: bool, model: &str) -> Value {
    let mut body = json!({
        "model": model,
        "prompt": [100, 101, 102, 103],
        "max_tokens": 1,
        "stream": false,
    });
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
