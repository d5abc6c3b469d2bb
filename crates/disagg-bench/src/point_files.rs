//! Each point's own files, written as soon as the point is measured, so a person or a parser finds
//! one point's numbers without reading any other point's:
//! - `benchmark.<label>.log`: benchmark_serving's output for that point alone, in TensorRT-LLM's
//!   layout (its harness keeps one log per client and reads the first match of each regex);
//! - `benchmark.<label>.json`: a benchmark_serving result file (`--save-result
//!   --save-detailed`): one flat object with vLLM's keys plus TensorRT-LLM's.
//!
//! `<label>` is the point's [`PointId::label`](crate::PointId::label): `con8`, `rate2.5`,
//! `rateinf`; a sweep never has two points with one label.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::result::{latency_sections, put_latency};
use crate::{BenchConfig, BenchError, PointReport, PointResult, RequestRate, summary};

/// `benchmark.con8` (the files add `.log` and `.json`).
pub fn stem(p: &PointReport) -> String {
    format!("benchmark.{}", p.point.label())
}

/// The point's log: a line saying what ran, benchmark_serving's preamble (load, failures by
/// type), its result block, what the block has no line for, then the line TensorRT-LLM's
/// disaggregated benchmark script prints after each concurrency (`Benchmark with concurrency N
/// done`), which its disagg log parser needs to close a point's block (an open-loop point says
/// `Benchmark with request rate R done`).
pub fn log_text(cfg: &BenchConfig, p: &PointReport) -> String {
    let done = match (p.point.request_rate, p.point.concurrency) {
        (None, Some(c)) => format!("Benchmark with concurrency {c} done\n"),
        (Some(r), _) => format!("Benchmark with request rate {} done\n", r.0),
        (None, None) => "Benchmark done\n".to_string(),
    };
    log_text_header(cfg, p)
        + &summary::preamble(p, cfg.burstiness)
        + &summary::text_summary(p)
        + &summary::details_summary(p)
        + &done
}

fn log_text_header(cfg: &BenchConfig, p: &PointReport) -> String {
    let lengths = match &cfg.dataset {
        Some(d) => format!("lengths from {}", d.display()),
        None => format!("isl {}, osl {}", cfg.isl, cfg.osl),
    };
    format!(
        "disagg bench: point {} ({}): {} prompt(s), {lengths}, model {}, started {}\n",
        p.point.label(),
        p.point,
        p.num_prompts,
        cfg.model,
        humantime::format_rfc3339_millis(p.started_at),
    )
}

/// The log of a point that is not recorded (a role died or the run was stopped under it): the
/// line saying what ran and benchmark_serving's preamble, whose `Total failed requests: N`
/// TensorRT-LLM's log parser reads (the last one in the file) to fail the case, without the
/// result block or the `done` line, so that no parser takes the point for a measured one.
pub fn unrecorded_log_text(cfg: &BenchConfig, p: &PointReport) -> String {
    let mut text = log_text_header(cfg, p) + &summary::preamble(p, cfg.burstiness);
    if p.metrics.failed > 0 {
        text += &format!(
            "{}\nTotal failed requests: {}\n{}\n",
            summary::FAILED_MARKER,
            p.metrics.failed,
            summary::CHECK_LOG_MARKER
        );
    }
    text
}

/// benchmark_serving's `backend`: the OpenAI completions or chat API, or SGLang's native
/// `/generate` (the `sglang` backend of SGLang's bench_serving).
fn backend(cfg: &BenchConfig) -> &'static str {
    if cfg.endpoint.contains("chat") {
        "openai-chat"
    } else if cfg.endpoint.trim_end_matches('/').ends_with("/generate") {
        "sglang"
    } else {
        "openai"
    }
}

/// `%Y%m%d-%H%M%S` (UTC), benchmark_serving's `date`.
pub(crate) fn date(t: std::time::SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-28T12:34:56Z
    format!(
        "{}{}{}-{}{}{}",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..13],
        &s[14..16],
        &s[17..19]
    )
}

/// The result file: what vLLM's and TensorRT-LLM's benchmark_serving save for one run, with the
/// per-request lists of `--save-detailed`. Every number is the report's, so it equals the log's.
pub fn result_json(cfg: &BenchConfig, p: &PointResult) -> Map<String, Value> {
    let r = &p.report;
    let m = &r.metrics;
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    // Setup and traffic.
    put("date", date(r.started_at).into());
    put("endpoint_type", backend(cfg).into());
    put("backend", backend(cfg).into());
    put("label", backend(cfg).into());
    put("model_id", cfg.model.clone().into());
    let tokenizer = cfg
        .tokenizer
        .as_ref()
        .map_or(cfg.model.clone(), |t| t.display().to_string());
    put("tokenizer_id", tokenizer.into());
    put("num_prompts", r.num_prompts.into());
    put(
        "request_rate",
        serde_json::to_value(r.point.request_rate.unwrap_or(RequestRate(f64::INFINITY)))
            .expect("a rate serializes"),
    );
    // JSON has no infinity: `inf` (evenly spaced) is written as the string, like the rate.
    put(
        "burstiness",
        if cfg.burstiness.is_finite() {
            cfg.burstiness.into()
        } else {
            "inf".into()
        },
    );
    put("max_concurrency", r.point.concurrency.into());
    // Results.
    put("duration", m.duration_s.into());
    put("completed", m.completed.into());
    put("failed", m.failed.into());
    put("total_input_tokens", m.total_input_tokens.into());
    put("total_output_tokens", m.total_output_tokens.into());
    put("request_throughput", m.request_throughput.into());
    put("request_goodput", m.request_goodput.into());
    // TensorRT-LLM writes goodput under this key, colon included.
    put("request_goodput:", m.request_goodput.into());
    put("output_throughput", m.output_throughput.into());
    put("total_token_throughput", m.total_token_throughput.into());
    put("user_throughput", m.user_throughput.into());
    put("max_output_tokens_per_s", m.max_output_tokens_per_s.into());
    put("max_concurrent_requests", m.max_concurrent_requests.into());
    // TensorRT-LLM always writes this object; zeros when the server reported nothing.
    let decoded = m.avg_decoded_tokens_per_iter.clone().unwrap_or_else(|| {
        let mut zeros = crate::FigureStats::default();
        for (q, _) in m.ttft.percentile_rows() {
            zeros
                .percentiles
                .insert(format!("p{}", crate::result::percentile_word(q)), 0.0);
        }
        zeros
    });
    put(
        "avg_decoded_tokens_per_iter",
        serde_json::to_value(decoded).expect("numbers serialize"),
    );
    for (name, s) in latency_sections(m) {
        put_latency(&mut o, name, s, false);
    }
    if let Some(q) = &m.client_queue_time {
        put_latency(&mut o, "client_queue_time", q, false);
    }
    if let Some(t) = m.gen_device_step_time_ms {
        o.insert("mean_gen_worker_per_iter_device_step_time".into(), t.into());
    }
    // Per request, in request order, times in seconds as benchmark_serving keeps them. Each
    // latency counts from the point's origin (the send, or in an uncapped open loop the
    // scheduled time), and `start_times` is that origin, so that start + latency is the end.
    let s = |ns: u64| ns as f64 / 1e9;
    let reqs = &p.requests;
    let origin = |q: &crate::RequestRecord| match r.point.latency_origin() {
        crate::LatencyOrigin::Scheduled => q.scheduled_ns,
        crate::LatencyOrigin::Sent => q.sent_ns,
    };
    let ttft = |q: &crate::RequestRecord| {
        q.chunk_ns
            .first()
            .map_or(0.0, |&c| s(c.saturating_sub(origin(q))))
    };
    let latency = |q: &crate::RequestRecord| s(q.end_ns.saturating_sub(origin(q)));
    let arrival = |q: &crate::RequestRecord| match r.point.request_rate {
        Some(_) => q.scheduled_ns,
        None => 0,
    };
    let lists = [
        (
            "input_lens",
            reqs.iter()
                .map(|q| json!(q.input_tokens))
                .collect::<Vec<_>>(),
        ),
        (
            "output_lens",
            reqs.iter()
                .map(|q| json!(q.output_tokens.unwrap_or(0)))
                .collect(),
        ),
        ("ttfts", reqs.iter().map(|q| json!(ttft(q))).collect()),
        (
            "itls",
            reqs.iter()
                .map(|q| {
                    json!(
                        q.chunk_ns
                            .windows(2)
                            .map(|w| s(w[1] - w[0]))
                            .collect::<Vec<_>>()
                    )
                })
                .collect(),
        ),
        ("e2els", reqs.iter().map(|q| json!(latency(q))).collect()),
        (
            "latencies",
            reqs.iter().map(|q| json!(latency(q))).collect(),
        ),
        (
            "start_times",
            reqs.iter().map(|q| json!(s(origin(q)))).collect(),
        ),
        (
            "queue_times",
            reqs.iter()
                .map(|q| json!(s(q.sent_ns.saturating_sub(arrival(q)))))
                .collect(),
        ),
        (
            "errors",
            reqs.iter()
                .map(|q| json!(q.error.clone().unwrap_or_default()))
                .collect(),
        ),
    ];
    for (k, v) in lists {
        o.insert(k.into(), Value::Array(v));
    }
    o
}

/// Writes the point's log and result file into `dir` (each whole, then renamed into place);
/// returns their paths.
pub fn write(dir: &Path, cfg: &BenchConfig, p: &PointResult) -> Result<[PathBuf; 2], BenchError> {
    let stem = stem(&p.report);
    let log = dir.join(format!("{stem}.log"));
    let json = dir.join(format!("{stem}.json"));
    let mut body = serde_json::to_vec_pretty(&Value::Object(result_json(cfg, p)))
        .expect("a JSON value serializes");
    body.push(b'\n');
    put(&log, log_text(cfg, &p.report).as_bytes())?;
    put(&json, &body)?;
    Ok([log, json])
}

/// Writes `path` whole or not at all: into a file beside it, renamed over it once complete, so
/// a full disk or a kill mid-write leaves the earlier version (a results file rewritten after
/// each point keeps the points it had), and no half-written temporary behind.
pub(crate) fn put(path: &Path, bytes: &[u8]) -> Result<(), BenchError> {
    let fail = |source| BenchError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(fail)
}

#[cfg(test)]
mod tests {
    /// A write that fails leaves the earlier file as it was: results.json, rewritten after each
    /// point, was cut to 4096 bytes (invalid JSON) by a full disk.
    #[test]
    fn a_failed_write_keeps_the_earlier_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        super::put(&path, b"{\"points\": [1]}\n").unwrap();
        // The temporary cannot be written (a folder in its place): the write fails.
        std::fs::create_dir(dir.path().join("results.json.tmp")).unwrap();
        assert!(super::put(&path, b"{\"points\": [1, 2]}\n").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"points\": [1]}\n"
        );
    }

    #[test]
    fn the_backend_is_named_by_the_endpoint_as_benchmark_serving_names_it() {
        let cfg = |e: &str| crate::BenchConfig {
            endpoint: e.into(),
            ..Default::default()
        };
        assert_eq!(super::backend(&cfg("/v1/completions")), "openai");
        assert_eq!(super::backend(&cfg("/v1/chat/completions")), "openai-chat");
        assert_eq!(super::backend(&cfg("/generate")), "sglang");
    }

    use super::*;

    #[test]
    fn dates_are_benchmark_serving_s() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        assert_eq!(date(t), "20260921-141320");
    }
}
