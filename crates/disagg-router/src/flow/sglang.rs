//! SGLang's flow: the same body to a prefill and a decode worker at the same time, decode's
//! answer relayed (PROTOCOLS.md §3). The two legs are raced, never awaited one after the other,
//! so whichever fails first cancels the other at once (dropping its future closes its
//! connection). Routers that awaited both in turn left the survivor hanging for up to 1800 s.
//!
//! One answer is rewritten rather than relayed: a `/generate` answer asked with
//! `return_logprob`, whose `meta_info.input_token_logprobs` is prefill's followed by decode's,
//! as SGLang's routers merge them (mini_lb's `generate` and `generate_stream` in
//! `python/sglang/srt/disaggregation/mini_lb.py`; `merge_logprobs_in_json` and
//! `merge_streaming_logprobs` in sgl-router's `pd_router.rs`). Whole, the answer is merged per
//! object; streamed, every decode event is, with the rows of prefill's first event (of its
//! `index`, for a batch), prefill's answer being read before decode's first event goes out.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::app::Inner;
use crate::error::{Deadline, Leg, ProxyError};
use crate::legs::{Failed, RequestDeadline, context_call, generation_call, with_retries};
use crate::raw::Pieces;
use crate::relay::{self, Keep, Opened};
use crate::request::ClientRequest;
use crate::sglang;
use crate::worker::Lease;

pub(super) async fn flow(
    state: &Arc<Inner>,
    req: &ClientRequest,
    deadline: RequestDeadline,
) -> Result<axum::response::Response, ProxyError> {
    let input = req.pick_input();
    // A pair is retried as a pair (with a new room), avoiding only the workers that failed.
    let pick = |tried: &crate::legs::Tried| {
        let prefill = state.prefill.pick(input, tried.of(Leg::Context))?;
        Ok((
            prefill,
            state.decode.pick(input, tried.of(Leg::Generation))?,
        ))
    };
    with_retries(state, pick, |((pi, p_lease), (di, d_lease))| async move {
        let body = sglang::body(
            req,
            sglang::host_of(p_lease.url()),
            p_lease.worker.bootstrap_port,
            // A 63-bit room, as SGLang's routers draw it (mini_lb: randint(0, 2**63 - 1)).
            || state.ids.next() >> 1,
        );
        let prefill = prefill_leg(state.clone(), deadline, p_lease, req, body.clone());
        // A retry is a new pair with a new room: no hand-off is sent twice.
        let failed = |(leg, error): (Leg, ProxyError)| Failed {
            leg,
            worker: if leg == Leg::Context { pi } else { di },
            retryable: error.is_retryable(),
            error,
        };
        let (opened, prefill) = race(state, req, deadline, &d_lease, body, prefill)
            .await
            .map_err(failed)?;
        if req.return_logprob() && !req.stream() {
            let resp = merged(state, deadline, &d_lease, opened, prefill)
                .await
                .map_err(failed)?;
            state.prefill.record_answer(pi);
            state.decode.record_answer(di);
            return Ok(Ok(resp));
        }
        if req.return_logprob() {
            // Streamed: prefill's rows go into every decode event, so prefill's answer is
            // needed first (decode cannot go past its first token before prefill's KV is in).
            let prefill = match prefill {
                Prefill::Done(b) => b,
                Prefill::Running(f) => f.await.map_err(|e| failed((Leg::Context, e)))?,
            };
            state.prefill.record_answer(pi);
            state.decode.record_answer(di);
            let rows = first_input_logprobs(&prefill);
            let opened = opened.rewrite_events(move |event| merge_event(event, &rows));
            let worker = d_lease.url().to_string();
            let keep = Keep {
                leases: vec![d_lease],
                companion: None,
            };
            return Ok(relay::respond(opened, &worker, true, keep, &state.metrics).await);
        }
        state.prefill.record_answer(pi);
        state.decode.record_answer(di);
        let worker = d_lease.url().to_string();
        let companion = match prefill {
            Prefill::Done(_) => None,
            Prefill::Running(f) => Some(f.map(|r| r.map(drop)).boxed()),
        };
        let keep = Keep {
            leases: vec![d_lease],
            companion,
        };
        // A failure once decode's answer is under way is charged to its worker by the relay,
        // and is not retried (decode may have taken the KV hand-off).
        Ok(relay::respond(opened, &worker, req.stream(), keep, &state.metrics).await)
    })
    .await?
}

/// The prefill leg when decode's first byte is in: answered, or still running.
enum Prefill {
    Done(Bytes),
    Running(BoxFuture<'static, Result<Bytes, ProxyError>>),
}

/// Races both legs until decode's first byte; an error names the leg that failed first.
async fn race(
    state: &Inner,
    req: &ClientRequest,
    deadline: RequestDeadline,
    d_lease: &Lease,
    body: Pieces,
    mut prefill: BoxFuture<'static, Result<Bytes, ProxyError>>,
) -> Result<(Opened, Prefill), (Leg, ProxyError)> {
    let carried = req.carried(None);
    let decode = generation_call(
        state,
        deadline,
        d_lease.url(),
        req.endpoint.path(),
        body,
        &carried,
        None,
    );
    tokio::pin!(decode);
    let mut answered = None;
    loop {
        tokio::select! {
            done = &mut prefill, if answered.is_none() => match done {
                Ok(b) => answered = Some(b),
                Err(e) => return Err((Leg::Context, e)),
            },
            opened = &mut decode => {
                let opened = opened.map_err(|e| (Leg::Generation, e))?;
                return Ok((opened, match answered {
                    Some(b) => Prefill::Done(b),
                    None => Prefill::Running(prefill),
                }));
            }
        }
    }
}

/// Decode's whole `/generate` answer with prefill's `input_token_logprobs` put before its own
/// (per object, for a batch's list). Anything else (an error status, an answer that is not
/// JSON, or without the arrays) is passed on as decode gave it, as upstream does.
async fn merged(
    state: &Inner,
    deadline: RequestDeadline,
    d_lease: &Lease,
    opened: Opened,
    prefill: Prefill,
) -> Result<axum::response::Response, (Leg, ProxyError)> {
    let t = state.target(Leg::Generation, d_lease.url(), deadline);
    let limit = state.cfg.max_body_bytes;
    let decode = opened
        .read_all(t, limit)
        .await
        .map_err(|e| (Leg::Generation, e))?;
    let prefill = match prefill {
        Prefill::Done(b) => b,
        Prefill::Running(f) => f.await.map_err(|e| (Leg::Context, e))?,
    };
    let (status, body) = decode;
    let body = match (
        serde_json::from_slice::<Value>(&body),
        serde_json::from_slice::<Value>(&prefill),
    ) {
        (Ok(mut d), Ok(p)) if status.is_success() => {
            match (&mut d, &p) {
                (Value::Array(ds), Value::Array(ps)) => {
                    for (d, p) in ds.iter_mut().zip(ps) {
                        merge_input_logprobs(d, p);
                    }
                }
                (d, p) => merge_input_logprobs(d, p),
            }
            Bytes::from(serde_json::to_vec(&d).unwrap_or_default())
        }
        _ => body,
    };
    let mut resp = super::json_response(body.to_vec());
    *resp.status_mut() = status;
    Ok(resp)
}

/// `meta_info.input_token_logprobs`: prefill's, then decode's, when both have the list.
fn merge_input_logprobs(decode: &mut Value, prefill: &Value) {
    let Some(p) = prefill["meta_info"]["input_token_logprobs"].as_array() else {
        return;
    };
    if let Some(Value::Array(d)) = decode
        .get_mut("meta_info")
        .and_then(|m| m.get_mut("input_token_logprobs"))
    {
        let mine = std::mem::take(d);
        d.extend(p.iter().cloned());
        d.extend(mine);
    }
}

/// From prefill's `/generate` answer, per prompt (`index`, 0 without one), the
/// `meta_info.input_token_logprobs` of its first object: of its first event when streamed (as
/// mini_lb takes them), of the answer (or of each of a batch's) when whole.
fn first_input_logprobs(prefill: &[u8]) -> Vec<Option<Vec<Value>>> {
    let mut rows: Vec<Option<Vec<Value>>> = Vec::new();
    let mut take = |object: &Value, fallback: usize| {
        let i = object["index"].as_u64().map_or(fallback, |i| i as usize);
        if rows.len() <= i {
            rows.resize(i + 1, None);
        }
        if rows[i].is_none() {
            rows[i] = object["meta_info"]["input_token_logprobs"]
                .as_array()
                .cloned();
        }
    };
    match prefill.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => match serde_json::from_slice::<Value>(prefill) {
            Ok(Value::Array(objects)) => {
                for (i, o) in objects.iter().enumerate() {
                    take(o, i);
                }
            }
            Ok(object) => take(&object, 0),
            Err(_) => {}
        },
        _ => {
            let mut events = Vec::new();
            let mut parser = disagg_proto::sse::Parser::new();
            parser.push_into(Bytes::copy_from_slice(prefill), &mut events);
            for event in events {
                if let disagg_proto::sse::Event::Data(data) = event {
                    if let Ok(object) = serde_json::from_slice::<Value>(&data) {
                        take(&object, 0);
                    }
                }
            }
        }
    }
    rows
}

/// One decode event with its prompt's prefill rows put before its own
/// `meta_info.input_token_logprobs`; as it came when it has no such list or prefill gave none.
fn merge_event(event: Bytes, rows: &[Option<Vec<Value>>]) -> Bytes {
    let Ok(mut object) = serde_json::from_slice::<Value>(&event) else {
        return event;
    };
    let i = object["index"].as_u64().unwrap_or(0) as usize;
    let Some(Some(prefill)) = rows.get(i) else {
        return event;
    };
    let Some(Value::Array(mine)) = object
        .get_mut("meta_info")
        .and_then(|m| m.get_mut("input_token_logprobs"))
    else {
        return event;
    };
    let decode = std::mem::take(mine);
    mine.extend(prefill.iter().cloned());
    mine.extend(decode);
    serde_json::to_vec(&object).map_or(event, Bytes::from)
}

/// The prefill leg, owning all it needs so it can outlive the handler inside the relayed body.
/// Its answer matters as success or failure, and for `return_logprob`'s merge; decode's answer
/// is the one relayed.
fn prefill_leg(
    state: Arc<Inner>,
    deadline: RequestDeadline,
    lease: Lease,
    req: &ClientRequest,
    body: Pieces,
) -> BoxFuture<'static, Result<Bytes, ProxyError>> {
    let path = req.endpoint.path();
    let carried = req.carried(None);
    async move {
        let leg_deadline = deadline.for_leg(state.cfg.context_timeout, Deadline::Context);
        context_call(
            &state,
            deadline,
            leg_deadline,
            lease.url(),
            path,
            body,
            &carried,
        )
        .await
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prefills_first_rows_per_prompt_go_before_each_decode_events_own() {
        // Streamed: the first event of each index counts (a later one may carry other rows).
        let sse = concat!(
            "data: {\"index\":1,\"meta_info\":{\"input_token_logprobs\":[[null,7,null]]}}\n\n",
            "data: {\"index\":0,\"meta_info\":{\"input_token_logprobs\":[[null,5,null]]}}\n\n",
            "data: {\"index\":0,\"meta_info\":{\"input_token_logprobs\":[\"later\"]}}\n\n",
            "data: [DONE]\n\n"
        );
        let rows = first_input_logprobs(sse.as_bytes());
        assert_eq!(
            rows,
            vec![
                Some(vec![json!([null, 5, null])]),
                Some(vec![json!([null, 7, null])])
            ]
        );
        // Whole: one object, or a batch's list by position.
        let whole = br#"{"meta_info":{"input_token_logprobs":[[null,1,null],[-0.5,2,null]]}}"#;
        assert_eq!(
            first_input_logprobs(whole)[0].as_ref().map(Vec::len),
            Some(2)
        );
        let list = br#"[{"meta_info":{}},{"meta_info":{"input_token_logprobs":[]}}]"#;
        assert_eq!(first_input_logprobs(list), vec![None, Some(vec![])]);

        let event = Bytes::from_static(
            br#"{"index":1,"text":"x","meta_info":{"input_token_logprobs":[[-1.0,9,null]]}}"#,
        );
        let merged: Value = serde_json::from_slice(&merge_event(event, &rows)).unwrap();
        assert_eq!(
            merged["meta_info"]["input_token_logprobs"],
            json!([[null, 7, null], [-1.0, 9, null]])
        );
        assert_eq!(merged["text"], "x");
        // Passed on as it came: no list of its own, no rows for its prompt, not JSON.
        for untouched in [
            &br#"{"meta_info":{"id":"r"}}"#[..],
            br#"{"index":4,"meta_info":{"input_token_logprobs":[]}}"#,
            b"not json",
        ] {
            let e = Bytes::copy_from_slice(untouched);
            assert_eq!(merge_event(e.clone(), &rows), e);
        }
    }
}
