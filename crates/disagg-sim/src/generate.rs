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
use crate::request::Job;
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
}

impl Native {
    fn new(rid: String, index: Option<usize>, started: Instant) -> Self {
        Self {
            rid,
            index,
            started,
            text: String::new(),
            ids: Vec::new(),
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
        let mut out = json!({"text": self.text, "output_ids": self.ids, "meta_info": meta});
        if let Some(i) = self.index {
            out["index"] = json!(i);
        }
        Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
    }
}

/// Serves a parsed `/generate` request: one job, or a batch of them.
pub(crate) async fn serve(
    sim: &SimState,
    jobs: Vec<Job>,
    batch: bool,
    start: Instant,
    request_id: Option<String>,
    drop_after: Option<u64>,
) -> Result<Response, ApiError> {
    let started = start_all(sim, &jobs, start, request_id).await?;
    let rid = |i: usize| format!("sim-{}-{i}", sim.next_id());
    if jobs.first().is_some_and(|j| j.stream) {
        let streams = jobs
            .into_iter()
            .zip(started)
            .enumerate()
            .map(|(i, (job, s))| {
                let header = sim.header(false);
                let mut e = Emitter::new(
                    sim.clone(),
                    job,
                    header,
                    s.feed,
                    s.ready,
                    drop_after.filter(|_| i == 0),
                );
                e.format = Format::Native(Box::new(Native::new(rid(i), batch.then_some(i), start)));
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
    for (i, (job, mut s)) in jobs.iter().zip(started).enumerate() {
        whole_text(job, &mut s.feed, s.ready).await?;
        let mut n = Native::new(rid(i), None, start);
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
