//! SGLang's native `POST /generate` answers (SGLang dialect), shaped as SGLang's HTTP server
//! gives them (`python/sglang/srt/entrypoints/http_server.py`, `generate_request`, and
//! `TokenizerManager` for the objects):
//! - one prompt, whole: `{"text", "output_ids", "meta_info"}`; `meta_info` carries `id`,
//!   `finish_reason` (`{"type": "length", "length": N}`, or `{"type": "stop", "matched": ID}` on
//!   EOS, `null` until the end), `prompt_tokens`, `completion_tokens`, `cached_tokens`, and
//!   `e2e_latency` (seconds) once finished;
//! - a batch, whole: a JSON list of those, one per prompt;
//! - streamed: one `data: {...}\n\n` per token whose `text` and `output_ids` are cumulative
//!   (SGLang's default; `--stream-output` makes them incremental), then `data: [DONE]\n\n`; a
//!   batch interleaves its prompts' objects, each with `index`, its place in the batch.
//!
//! With `return_logprob`, `meta_info.input_token_logprobs` holds the prompt's rows from
//! `logprob_start_len` (SGLang's default: the last prompt token only), `[logprob, token_id,
//! null]` each, the first with a `null` logprob (nothing precedes it), in every object (streamed
//! ones too), as SGLang's scheduler and tokenizer manager give them. A decode (generation) sim
//! ran no prompt forward, so its list is empty, and SGLang's PD routers put prefill's rows before
//! it; the rows are a pure function of the prompt, so a prefill's equal an aggregated sim's.
//!
//! Timing, hand-off and faults are the completions path's (`completions.rs`).

use axum::body::{Body, Bytes};
use axum::response::Response;
use disagg_proto::{ApiError, sse};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::completions::{
    Emitter, Format, finish_whole, json_response, sse_response, start_all, whole_text,
};
use crate::request::{Job, Kind};
use crate::response::Finish;
use crate::server::SimState;
use crate::tokens;

/// One prompt's answer as it grows: SGLang's output object.
#[derive(Debug)]
pub(crate) struct Native {
    rid: String,
    /// The prompt's place in a streamed batch (SGLang adds `index` there only).
    index: Option<usize>,
    started: Instant,
    text: String,
    ids: Vec<u32>,
    /// `return_logprob`: the `input_token_logprobs` rows.
    input_logprobs: Option<Value>,
}

impl Native {
    fn new(
        rid: String,
        index: Option<usize>,
        started: Instant,
        input_logprobs: Option<Value>,
    ) -> Self {
        Self {
            rid,
            index,
            started,
            text: String::new(),
            ids: Vec::new(),
            input_logprobs,
        }
    }

    /// Adds output position `i` and renders the SSE frame of the answer so far.
    pub(crate) fn frame(&mut self, job: &Job, i: u64) -> Bytes {
        // An answer with no tokens has one object, finished and empty.
        if i < job.max_tokens {
            self.push(job, i);
        }
        sse::frame(&self.object(job, (i + 1).min(job.max_tokens)))
    }

    fn push(&mut self, job: &Job, i: u64) {
        self.ids.push(tokens::token_at(job.digest, i));
        self.text.push_str(&job.text_at(i));
    }

    /// The object after `done` output tokens.
    fn object(&self, job: &Job, done: u64) -> Bytes {
        let finished = done == job.max_tokens;
        let finish_reason = match (finished, job.finish) {
            (false, _) => Value::Null,
            (true, Finish::Length) => json!({"type": "length", "length": job.max_tokens}),
            // EOS renders as no text but is an output id, as a stop token is in SGLang.
            (true, Finish::Stop) => json!({"type": "stop", "matched": self.ids.last()}),
        };
        let mut meta = json!({
            "id": self.rid,
            "finish_reason": finish_reason,
            "prompt_tokens": job.prompt.len(),
            "completion_tokens": done,
            "cached_tokens": 0,
        });
        if finished {
            meta["e2e_latency"] = json!(self.started.elapsed().as_secs_f64());
        }
        if let Some(rows) = &self.input_logprobs {
            meta["input_token_logprobs"] = rows.clone();
        }
        let mut out = json!({"text": self.text, "output_ids": self.ids, "meta_info": meta});
        if let Some(i) = self.index {
            out["index"] = json!(i);
        }
        Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
    }
}

/// `meta_info.input_token_logprobs` of `job` from prompt position `start`: SGLang's rows,
/// `[logprob, token_id, null]`, the first logprob `null`. Empty on a decode sim, which ran no
/// prompt forward. The logprobs are made up, but a pure function of the token and its place.
fn input_logprobs(job: &Job, start: usize) -> Value {
    if job.kind == Kind::GenerationOnly {
        return json!([]);
    }
    let rows = (job.prompt.iter().enumerate().skip(start))
        .map(|(pos, &id)| {
            let logprob = (pos > start).then(|| {
                let h = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ pos as u64;
                -(((h >> 40) % 1000 + 1) as f64) / 100.0
            });
            json!([logprob, id, null])
        })
        .collect();
    Value::Array(rows)
}

/// What a `/generate` request asked beyond its jobs.
pub(crate) struct Asked {
    /// The prompts came as a list: the answer is one too.
    pub(crate) batch: bool,
    /// Per job, where its `input_token_logprobs` start (`return_logprob`), if asked.
    pub(crate) logprob_starts: Vec<Option<usize>>,
    /// `--drop-stream-on-request`: cut the (first) stream after this many chunks.
    pub(crate) drop_after: Option<u64>,
}

/// Serves a parsed `/generate` request: one job, or a batch of them.
pub(crate) async fn serve(
    sim: &SimState,
    jobs: Vec<Job>,
    asked: Asked,
    start: Instant,
    request_id: Option<String>,
) -> Result<Response, ApiError> {
    let Asked {
        batch,
        logprob_starts,
        drop_after,
    } = asked;
    let logprobs: Vec<Option<Value>> = (jobs.iter().enumerate())
        .map(|(i, job)| {
            let start = logprob_starts.get(i).copied().flatten()?;
            Some(input_logprobs(job, start))
        })
        .collect();
    let started = start_all(sim, &jobs, start, request_id).await?;
    let rid = |i: usize| format!("sim-{}-{i}", sim.next_id());
    if jobs.first().is_some_and(|j| j.stream) {
        let streams = jobs
            .into_iter()
            .zip(started)
            .enumerate()
            .zip(logprobs)
            .map(|((i, (job, s)), rows)| {
                let header = sim.header(false);
                let mut e = Emitter::new(
                    sim.clone(),
                    job,
                    header,
                    s.feed,
                    s.ready,
                    drop_after.filter(|_| i == 0),
                );
                let native = Native::new(rid(i), batch.then_some(i), start, rows);
                e.format = Format::Native(Box::new(native));
                // A batch's merged stream ends once, below; its first prompt counts the
                // request (served, failed, cut).
                e.tail = !batch;
                e.counted = i == 0;
                e.into_stream()
            })
            .collect::<Vec<_>>();
        let body = if batch {
            let done =
                futures_util::stream::once(async { Ok(Bytes::from_static(sse::DONE_FRAME)) });
            Body::from_stream(futures_util::stream::select_all(streams).chain(done))
        } else {
            Body::from_stream(futures_util::stream::select_all(streams))
        };
        return Ok(sse_response(body));
    }
    let mut objects = Vec::with_capacity(jobs.len());
    for (i, ((job, mut s), rows)) in jobs.iter().zip(started).zip(logprobs).enumerate() {
        whole_text(job, &mut s.feed, s.ready).await?;
        let mut n = Native::new(rid(i), None, start, rows);
        for position in 0..job.max_tokens {
            n.push(job, position);
        }
        objects.push(n.object(job, job.max_tokens));
    }
    finish_whole(sim).await;
    let body = if batch {
        let mut list = b"[".to_vec();
        for (i, o) in objects.iter().enumerate() {
            if i > 0 {
                list.push(b',');
            }
            list.extend_from_slice(o);
        }
        list.push(b']');
        Bytes::from(list)
    } else {
        objects.pop().unwrap_or_default()
    };
    Ok(json_response(body))
}
