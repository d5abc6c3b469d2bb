//! The result model: one point's results as one type, written by the bench and read back by the
//! harness (JUnit, the perf CSV, the summary), so that a renamed field is a compile error, never a
//! silent 0.
//!
//! On disk a point is one flat JSON object under benchmark_serving's key names (`duration`,
//! `completed`, `mean_ttft_ms`, `p99_itl_ms`, `max_concurrency`, `request_rate`, ...), plus our
//! own keys (`failed`, `error_counts`, `problems`, ...). Serialisation and deserialisation live
//! side by side below; every key is read back, and a missing one is an error that names it.
//!
//! Validity is judged once, when the point is measured ([`Validity::judge`]), and carried with
//! the point; nothing downstream recomputes it. To add a validity rule: add a [`ProblemKind`]
//! (its `junit_type` is the JUnit `<failure type>`), and a check in [`Validity::judge`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Latency statistics of one metric, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyStats {
    pub mean_ms: f64,
    pub median_ms: f64,
    pub std_ms: f64,
    /// Always computed, whatever percentiles the user asked for: the harness's perf gates and
    /// reports read it (kept in results.json as `p99_<m>_ms`).
    pub p99_ms: f64,
    /// (percentile, value) for each percentile the user asked for (`--percentiles`), which
    /// replace the default, p99, as vLLM's `--metric-percentiles` does; empty for the default.
    pub percentiles: Vec<(f64, f64)>,
}

impl LatencyStats {
    /// The percentiles to show, ascending: the user's, or p99 by default.
    pub fn percentile_rows(&self) -> Vec<(f64, f64)> {
        if self.percentiles.is_empty() {
            return vec![(99.0, self.p99_ms)];
        }
        let mut rows = self.percentiles.clone();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows
    }
}

/// Statistics of a unitless per-request figure the server reports (TensorRT-LLM's
/// `avg_decoded_tokens_per_iter`): mean, min, max, median, std and percentiles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FigureStats {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub std: f64,
    /// `p99` (and any extra percentile, `p50`, `p99.9`) to its value.
    pub percentiles: BTreeMap<String, f64>,
}

/// One point's numbers (PROTOCOLS.md §4 definitions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub duration_s: f64,
    pub completed: u64,
    pub failed: u64,
    /// Requests that completed with zero generated tokens (also counted in `failed`).
    pub zero_token_requests: u64,
    pub total_input_tokens: u64,
    pub total_output_tokens: u64,
    pub request_throughput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub user_throughput: f64,
    /// Completed requests meeting every goodput objective, per second; `None` without
    /// objectives.
    pub request_goodput: Option<f64>,
    /// Output and total tokens per second per GPU; `None` when the GPU count is not given.
    pub output_throughput_per_gpu: Option<f64>,
    pub total_token_throughput_per_gpu: Option<f64>,
    /// The latest any request left after its scheduled time: how far the client fell behind
    /// its own load model (always 0 in a closed loop, where requests are due when sent).
    pub max_send_lag_ms: f64,
    /// The most content chunks received in any one second of the point (vLLM's peak output
    /// rate, counting a chunk as a token as it does).
    pub max_output_tokens_per_s: f64,
    /// The most requests in flight at once (vLLM's `max_concurrent_requests`).
    pub max_concurrent_requests: u64,
    pub ttft: LatencyStats,
    pub tpot: LatencyStats,
    pub itl: LatencyStats,
    pub e2el: LatencyStats,
    /// How long requests waited in the client for a slot under a concurrency cap, from their
    /// arrival (the point's start in the closed loop, their scheduled time in the open loop) to
    /// their send; `None` without a cap, as vLLM leaves it out.
    pub client_queue_time: Option<LatencyStats>,
    /// TensorRT-LLM's per-request `avg_decoded_tokens_per_iter` (above 1 with speculative
    /// decoding); `None` when the server reported it for no request.
    pub avg_decoded_tokens_per_iter: Option<FigureStats>,
    /// The generation workers' mean device step time per iteration in gen-only mode, read from
    /// their logs after the point; `None` when not measured.
    pub gen_device_step_time_ms: Option<f64>,
}

/// The open loop's arrival rate in requests/s; infinite means all at once. Written as a number,
/// or `"inf"` as benchmark_serving writes an infinite rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRate(pub f64);

impl Serialize for RequestRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str("inf")
        }
    }
}

impl<'de> Deserialize<'de> for RequestRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(RequestRate)
                .ok_or_else(|| D::Error::custom("request_rate is not a number")),
            Value::String(s) if s == "inf" => Ok(RequestRate(f64::INFINITY)),
            other => Err(D::Error::custom(format!(
                "request_rate must be a number or \"inf\", not {other}"
            ))),
        }
    }
}

/// Which point of a sweep: a closed-loop concurrency, or an open-loop rate with an optional cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointId {
    /// The cap on requests in flight: the closed loop's concurrency, or the open loop's
    /// `max_concurrency` (`None`: uncapped).
    pub concurrency: Option<u32>,
    /// The open loop's arrival rate; `None` for the closed loop.
    pub request_rate: Option<RequestRate>,
}

impl PointId {
    pub fn closed(concurrency: u32) -> Self {
        Self {
            concurrency: Some(concurrency),
            request_rate: None,
        }
    }

    /// A short name fit for files and perf case names: `con8`, `rate2.5`, `rateinf`.
    pub fn label(&self) -> String {
        match (self.request_rate, self.concurrency) {
            (Some(RequestRate(r)), _) if r.is_finite() => format!("rate{r}"),
            (Some(_), _) => "rateinf".into(),
            (None, Some(c)) => format!("con{c}"),
            (None, None) => "closed".into(),
        }
    }

    /// Where this point's TTFT and E2EL count from: each request's scheduled time in an open
    /// loop without a cap, so that a client that fell behind its own schedule is charged for it
    /// (coordinated omission cannot flatter the server); its send everywhere else, as vLLM's and
    /// SGLang's benchmarks count. Under a cap (the closed loop's concurrency, `--max-concurrency`)
    /// a request waits in the client's queue for a slot, and that wait is the client's, not the
    /// server's: it is reported apart (`client_queue_time`, per request `queue_times`).
    pub fn latency_origin(&self) -> LatencyOrigin {
        match (self.request_rate, self.concurrency) {
            (Some(_), None) => LatencyOrigin::Scheduled,
            _ => LatencyOrigin::Sent,
        }
    }
}

/// What a request's TTFT and E2EL count from ([`PointId::latency_origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyOrigin {
    /// When the load model meant to send it.
    Scheduled,
    /// When it left the client.
    Sent,
}

impl fmt::Display for PointId {
    /// How a point is named in messages: `concurrency 8`, `rate 2.5 req/s (max concurrency 4)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.request_rate, self.concurrency) {
            (None, Some(c)) => write!(f, "concurrency {c}"),
            (Some(RequestRate(r)), Some(c)) => write!(f, "rate {r} req/s (max concurrency {c})"),
            (Some(RequestRate(r)), None) => write!(f, "rate {r} req/s"),
            (None, None) => write!(f, "closed loop"),
        }
    }
}

/// Why a point's numbers are not a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// More requests failed than the failure-rate limit allows.
    FailedRequests,
    /// Requests answered with no generated tokens.
    ZeroTokenRequests,
    /// The point produced no output at all.
    NoOutput,
}

impl ProblemKind {
    /// The JUnit `<failure type>` of a point with this problem.
    pub fn junit_type(&self) -> &'static str {
        match self {
            ProblemKind::FailedRequests => "FAILED_REQUESTS",
            ProblemKind::ZeroTokenRequests => "ZERO_TOKEN_REQUESTS",
            ProblemKind::NoOutput => "NO_OUTPUT",
        }
    }
}

/// One reason a point is invalid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// A sentence naming the point and the numbers, e.g. `concurrency 8: 3 of 32 requests failed
    /// (9.4% > limit 0.0%; http_500: 3)`.
    pub message: String,
}

/// A point's verdict: valid when it has no problem.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validity {
    pub problems: Vec<Problem>,
}

impl Validity {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one place a point is judged: its failure rate against `max_failure_rate`, requests
    /// with zero tokens (never excused by any limit), and a point with no output at all.
    pub fn judge(
        point: &PointId,
        m: &Metrics,
        error_counts: &BTreeMap<String, u64>,
        max_failure_rate: f64,
    ) -> Self {
        let mut problems = Vec::new();
        let attempted = m.completed + m.failed;
        let rate = if attempted == 0 {
            0.0
        } else {
            m.failed as f64 / attempted as f64
        };
        if rate > max_failure_rate {
            let by_kind: Vec<String> = error_counts
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            // A kind whose name does not say enough on its own gets its sentence.
            let why = if error_counts.contains_key("wrong_output_length") {
                "; wrong_output_length: with ignore_eos every answer must have max_tokens output tokens, and these had fewer or more (see requests.jsonl)"
            } else {
                ""
            };
            problems.push(Problem {
                kind: ProblemKind::FailedRequests,
                message: format!(
                    "{point}: {} of {attempted} requests failed ({:.1}% > limit {:.1}%; {}){why}",
                    m.failed,
                    rate * 100.0,
                    max_failure_rate * 100.0,
                    by_kind.join(", "),
                ),
            });
        }
        if m.zero_token_requests > 0 {
            problems.push(Problem {
                kind: ProblemKind::ZeroTokenRequests,
                message: format!(
                    "{point}: {} request(s) generated zero tokens",
                    m.zero_token_requests
                ),
            });
        }
        if m.total_output_tokens == 0 {
            problems.push(Problem {
                kind: ProblemKind::NoOutput,
                message: format!("{point}: zero generated tokens"),
            });
        }
        Self { problems }
    }

    /// Every problem's message, `; `-separated; `None` when valid.
    pub fn reason(&self) -> Option<String> {
        (!self.is_valid()).then(|| {
            self.problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// One measured point: what it was, when, its numbers, its failures and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct PointReport {
    pub point: PointId,
    /// Wall-clock start (first scheduled send) and end (last completion).
    pub started_at: SystemTime,
    pub ended_at: SystemTime,
    /// Requests the point meant to send (a duration limit may stop it earlier).
    pub num_prompts: u64,
    pub metrics: Metrics,
    /// Failed requests by kind (`http_500`, `timeout`, `zero_tokens`, ...).
    pub error_counts: BTreeMap<String, u64>,
    /// The HDR histograms' percentiles: metric (`ttft`, ...) → `p99` → milliseconds.
    pub hdr_percentiles_ms: BTreeMap<String, BTreeMap<String, f64>>,
    pub validity: Validity,
}

/// The four latency sections: JSON key part and the stats.
pub(crate) fn latency_sections(m: &Metrics) -> [(&'static str, &LatencyStats); 4] {
    [
        ("ttft", &m.ttft),
        ("tpot", &m.tpot),
        ("itl", &m.itl),
        ("e2el", &m.e2el),
    ]
}

/// Python's `str(int(p)) if int(p) == p else str(p)`: `50`, `99.9`.
pub fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// benchmark_serving's keys for one latency metric: `mean_<m>_ms`, `median_<m>_ms`,
/// `std_<m>_ms` and `p<NN>_<m>_ms` for each percentile shown; `keep_p99` adds `p99_<m>_ms` when
/// the user's percentiles leave it out (results.json: the harness reads it).
pub(crate) fn put_latency(
    out: &mut Map<String, Value>,
    name: &str,
    s: &LatencyStats,
    keep_p99: bool,
) {
    out.insert(format!("mean_{name}_ms"), s.mean_ms.into());
    out.insert(format!("median_{name}_ms"), s.median_ms.into());
    out.insert(format!("std_{name}_ms"), s.std_ms.into());
    for (p, v) in s.percentile_rows() {
        out.insert(format!("p{}_{name}_ms", percentile_word(p)), v.into());
    }
    if keep_p99 {
        out.insert(format!("p99_{name}_ms"), s.p99_ms.into());
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl PointReport {
    /// The point as one flat JSON object, keys in a stable order.
    pub fn to_map(&self) -> Map<String, Value> {
        let m = &self.metrics;
        let mut o = Map::new();
        let mut put = |k: &str, v: Value| {
            o.insert(k.to_string(), v);
        };
        put("started_at", rfc3339(self.started_at).into());
        put("ended_at", rfc3339(self.ended_at).into());
        put("num_prompts", self.num_prompts.into());
        put("duration", m.duration_s.into());
        put("completed", m.completed.into());
        put("failed", m.failed.into());
        put("zero_token_requests", m.zero_token_requests.into());
        put("total_input_tokens", m.total_input_tokens.into());
        put("total_output_tokens", m.total_output_tokens.into());
        put("request_throughput", m.request_throughput.into());
        put("output_throughput", m.output_throughput.into());
        put("total_token_throughput", m.total_token_throughput.into());
        put("user_throughput", m.user_throughput.into());
        put("request_goodput", m.request_goodput.into());
        put(
            "output_throughput_per_gpu",
            m.output_throughput_per_gpu.into(),
        );
        put(
            "total_token_throughput_per_gpu",
            m.total_token_throughput_per_gpu.into(),
        );
        put("max_send_lag_ms", m.max_send_lag_ms.into());
        put("max_output_tokens_per_s", m.max_output_tokens_per_s.into());
        put("max_concurrent_requests", m.max_concurrent_requests.into());
        for (name, s) in latency_sections(m) {
            put_latency(&mut o, name, s, true);
        }
        if let Some(q) = &m.client_queue_time {
            put_latency(&mut o, "client_queue_time", q, true);
        }
        // The percentiles the user asked for (empty: the default, p99); p99 is kept besides.
        o.insert(
            "percentiles".into(),
            m.ttft
                .percentiles
                .iter()
                .map(|&(p, _)| Value::from(p))
                .collect::<Vec<_>>()
                .into(),
        );
        if let Some(a) = &m.avg_decoded_tokens_per_iter {
            o.insert(
                "avg_decoded_tokens_per_iter".into(),
                serde_json::to_value(a).expect("plain numbers serialize"),
            );
        }
        if let Some(t) = m.gen_device_step_time_ms {
            o.insert("gen_device_step_time_ms".into(), t.into());
        }
        o.insert(
            "load".into(),
            if self.point.request_rate.is_some() {
                "open_loop"
            } else {
                "closed_loop"
            }
            .into(),
        );
        o.insert("max_concurrency".into(), self.point.concurrency.into());
        o.insert(
            "request_rate".into(),
            serde_json::to_value(
                self.point
                    .request_rate
                    .unwrap_or(RequestRate(f64::INFINITY)),
            )
            .expect("a rate serializes"),
        );
        o.insert(
            "error_counts".into(),
            serde_json::to_value(&self.error_counts).expect("counts serialize"),
        );
        o.insert(
            "hdr_percentiles_ms".into(),
            serde_json::to_value(&self.hdr_percentiles_ms).expect("numbers serialize"),
        );
        o.insert("valid".into(), self.validity.is_valid().into());
        o.insert(
            "problems".into(),
            serde_json::to_value(&self.validity.problems).expect("problems serialize"),
        );
        o
    }

    /// Reads back what [`PointReport::to_map`] wrote; a missing or mistyped key is an error
    /// that names it.
    pub fn from_map(mut o: Map<String, Value>) -> Result<Self, String> {
        fn take<T: DeserializeOwned>(o: &mut Map<String, Value>, k: &str) -> Result<T, String> {
            let v = o.remove(k).ok_or_else(|| format!("missing key `{k}`"))?;
            serde_json::from_value(v).map_err(|e| format!("key `{k}`: {e}"))
        }
        fn take_opt<T: DeserializeOwned>(
            o: &mut Map<String, Value>,
            k: &str,
        ) -> Result<Option<T>, String> {
            match o.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => serde_json::from_value(v)
                    .map(Some)
                    .map_err(|e| format!("key `{k}`: {e}")),
            }
        }
        fn time(o: &mut Map<String, Value>, k: &str) -> Result<SystemTime, String> {
            let s: String = take(o, k)?;
            humantime::parse_rfc3339_weak(&s).map_err(|e| format!("key `{k}`: {e}"))
        }
        /// `mean_<m>_ms`, `median_<m>_ms`, `std_<m>_ms`, `p99_<m>_ms` and any other
        /// `p<NN>_<m>_ms`.
        fn latency(
            o: &mut Map<String, Value>,
            name: &str,
            asked: Option<&[f64]>,
        ) -> Result<LatencyStats, String> {
            let mut s = LatencyStats {
                mean_ms: take(o, &format!("mean_{name}_ms"))?,
                median_ms: take(o, &format!("median_{name}_ms"))?,
                std_ms: take(o, &format!("std_{name}_ms"))?,
                p99_ms: take(o, &format!("p99_{name}_ms"))?,
                percentiles: Vec::new(),
            };
            let suffix = format!("_{name}_ms");
            let extra: Vec<(String, f64)> = o
                .keys()
                .filter_map(|k| {
                    let word = k.strip_prefix('p')?.strip_suffix(suffix.as_str())?;
                    Some((k.clone(), word.parse::<f64>().ok()?))
                })
                .collect();
            for (key, p) in extra {
                s.percentiles.push((p, take(o, &key)?));
            }
            match asked {
                // p99 is kept whatever was asked; shown only when asked for.
                Some(asked) if asked.contains(&99.0) => s.percentiles.push((99.0, s.p99_ms)),
                Some(_) => {}
                // Written before the user's list replaced p99: it was always shown.
                None if !s.percentiles.is_empty() => s.percentiles.push((99.0, s.p99_ms)),
                None => {}
            }
            s.percentiles.sort_by(|a, b| a.0.total_cmp(&b.0));
            Ok(s)
        }
        let asked: Option<Vec<f64>> = take_opt(&mut o, "percentiles")?;
        let asked = asked.as_deref();
        let started_at = time(&mut o, "started_at")?;
        let ended_at = time(&mut o, "ended_at")?;
        let num_prompts = take(&mut o, "num_prompts")?;
        let has_queue = o.contains_key("mean_client_queue_time_ms");
        let metrics = Metrics {
            duration_s: take(&mut o, "duration")?,
            completed: take(&mut o, "completed")?,
            failed: take(&mut o, "failed")?,
            zero_token_requests: take(&mut o, "zero_token_requests")?,
            total_input_tokens: take(&mut o, "total_input_tokens")?,
            total_output_tokens: take(&mut o, "total_output_tokens")?,
            request_throughput: take(&mut o, "request_throughput")?,
            output_throughput: take(&mut o, "output_throughput")?,
            total_token_throughput: take(&mut o, "total_token_throughput")?,
            user_throughput: take(&mut o, "user_throughput")?,
            request_goodput: take_opt(&mut o, "request_goodput")?,
            output_throughput_per_gpu: take_opt(&mut o, "output_throughput_per_gpu")?,
            total_token_throughput_per_gpu: take_opt(&mut o, "total_token_throughput_per_gpu")?,
            max_send_lag_ms: take(&mut o, "max_send_lag_ms")?,
            max_output_tokens_per_s: take(&mut o, "max_output_tokens_per_s")?,
            max_concurrent_requests: take(&mut o, "max_concurrent_requests")?,
            ttft: latency(&mut o, "ttft", asked)?,
            tpot: latency(&mut o, "tpot", asked)?,
            itl: latency(&mut o, "itl", asked)?,
            e2el: latency(&mut o, "e2el", asked)?,
            client_queue_time: if has_queue {
                Some(latency(&mut o, "client_queue_time", asked)?)
            } else {
                None
            },
            avg_decoded_tokens_per_iter: take_opt(&mut o, "avg_decoded_tokens_per_iter")?,
            gen_device_step_time_ms: take_opt(&mut o, "gen_device_step_time_ms")?,
        };
        let concurrency = take_opt(&mut o, "max_concurrency")?;
        let rate: RequestRate = take(&mut o, "request_rate")?;
        let open = match take::<String>(&mut o, "load")?.as_str() {
            "open_loop" => true,
            "closed_loop" => false,
            other => {
                return Err(format!(
                    "key `load`: `{other}` is neither open_loop nor closed_loop"
                ));
            }
        };
        let problems: Vec<Problem> = take(&mut o, "problems")?;
        let valid: bool = take(&mut o, "valid")?;
        if valid != problems.is_empty() {
            return Err(format!(
                "`valid` is {valid} but `problems` lists {} problem(s)",
                problems.len()
            ));
        }
        Ok(Self {
            point: PointId {
                concurrency,
                // A closed-loop point is written with benchmark_serving's infinite rate.
                request_rate: open.then_some(rate),
            },
            started_at,
            ended_at,
            num_prompts,
            metrics,
            error_counts: take(&mut o, "error_counts")?,
            hdr_percentiles_ms: take(&mut o, "hdr_percentiles_ms")?,
            validity: Validity { problems },
        })
    }
}

impl Serialize for PointReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let map = self.to_map();
        let mut out = s.serialize_map(Some(map.len()))?;
        for (k, v) in &map {
            out.serialize_entry(k, v)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for PointReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        PointReport::from_map(map).map_err(D::Error::custom)
    }
}

/// `results.json`: the sweep's verdict and every point. Written by the bench (standalone or as
/// the BENCHMARK role, which also sets `run_id` and `config_name`) and read by the harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_name: Option<String>,
    pub valid: bool,
    pub invalid_reason: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub points: Vec<PointReport>,
}

impl ResultsFile {
    /// Reads `results.json`; the error names the file and what is wrong with it.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lat(base: f64, extra: &[f64]) -> LatencyStats {
        LatencyStats {
            mean_ms: base,
            median_ms: base + 0.5,
            std_ms: 1.25,
            p99_ms: base * 2.0,
            percentiles: extra.iter().map(|&p| (p, base + p)).collect(),
        }
    }

    pub(crate) fn full() -> PointReport {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_123);
        let metrics = Metrics {
            duration_s: 12.5,
            completed: 30,
            failed: 2,
            zero_token_requests: 1,
            total_input_tokens: 3000,
            total_output_tokens: 900,
            request_throughput: 2.4,
            output_throughput: 72.0,
            total_token_throughput: 312.0,
            user_throughput: 9.5,
            request_goodput: Some(1.5),
            output_throughput_per_gpu: Some(36.0),
            total_token_throughput_per_gpu: Some(156.0),
            max_send_lag_ms: 0.25,
            max_output_tokens_per_s: 80.0,
            max_concurrent_requests: 8,
            ttft: lat(30.0, &[50.0, 90.0]),
            tpot: lat(10.0, &[50.0, 90.0]),
            itl: lat(9.0, &[50.0, 90.0]),
            e2el: lat(300.0, &[50.0, 90.0]),
            client_queue_time: Some(lat(1.0, &[50.0, 90.0])),
            avg_decoded_tokens_per_iter: Some(FigureStats {
                mean: 2.5,
                min: 2.0,
                max: 3.0,
                median: 2.5,
                std: 0.5,
                percentiles: [("p99".to_string(), 3.0)].into(),
            }),
            gen_device_step_time_ms: Some(6.94),
        };
        let point = PointId::closed(8);
        let errors: BTreeMap<String, u64> =
            [("http_500".to_string(), 1), ("zero_tokens".to_string(), 1)].into();
        PointReport {
            validity: Validity::judge(&point, &metrics, &errors, 0.0),
            point,
            started_at: t0,
            ended_at: t0 + Duration::from_millis(12_500),
            num_prompts: 32,
            metrics,
            error_counts: errors,
            hdr_percentiles_ms: [(
                "ttft".to_string(),
                [("p50".to_string(), 30.1), ("p99.9".to_string(), 61.0)].into(),
            )]
            .into(),
        }
    }

    #[test]
    fn a_point_round_trips_through_json_with_every_field() {
        let p = full();
        let text = serde_json::to_string(&p).unwrap();
        let back: PointReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);

        let mut bare = full();
        bare.metrics.request_goodput = None;
        bare.metrics.output_throughput_per_gpu = None;
        bare.metrics.total_token_throughput_per_gpu = None;
        bare.metrics.client_queue_time = None;
        bare.metrics.avg_decoded_tokens_per_iter = None;
        bare.metrics.gen_device_step_time_ms = None;
        bare.metrics.ttft.percentiles.clear();
        bare.point = PointId {
            concurrency: None,
            request_rate: Some(RequestRate(2.5)),
        };
        let back: PointReport =
            serde_json::from_str(&serde_json::to_string(&bare).unwrap()).unwrap();
        assert_eq!(back, bare);
    }

    #[test]
    fn the_json_uses_benchmark_serving_keys() {
        let v = serde_json::to_value(full()).unwrap();
        for key in [
            "duration",
            "completed",
            "total_input_tokens",
            "total_output_tokens",
            "request_throughput",
            "output_throughput",
            "total_token_throughput",
            "user_throughput",
            "mean_ttft_ms",
            "median_tpot_ms",
            "std_itl_ms",
            "p99_e2el_ms",
            "p90_ttft_ms",
            "mean_client_queue_time_ms",
            "max_output_tokens_per_s",
            "max_concurrent_requests",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["max_concurrency"], 8);
        assert_eq!(v["request_rate"], "inf");
        assert_eq!(v["valid"], false);
        assert_eq!(v["problems"][0]["kind"], "failed_requests");
        assert_eq!(v["started_at"], "2026-09-21T14:13:20.123Z");
    }

    #[test]
    fn a_missing_or_mistyped_key_is_an_error_naming_it_never_a_zero() {
        let mut m = full().to_map();
        m.remove("output_throughput");
        let e = PointReport::from_map(m).unwrap_err();
        assert_eq!(e, "missing key `output_throughput`");
        let mut m = full().to_map();
        m.insert("completed".into(), "many".into());
        let e = PointReport::from_map(m).unwrap_err();
        assert!(e.starts_with("key `completed`"), "{e}");
        let mut m = full().to_map();
        m.insert("valid".into(), true.into());
        let e = PointReport::from_map(m).unwrap_err();
        assert!(e.contains("problems"), "{e}");
    }

    #[test]
    fn validity_is_judged_once_with_typed_kinds() {
        let p = full();
        let kinds: Vec<ProblemKind> = p.validity.problems.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [ProblemKind::FailedRequests, ProblemKind::ZeroTokenRequests]
        );
        assert_eq!(
            p.validity.reason().unwrap(),
            "concurrency 8: 2 of 32 requests failed (6.2% > limit 0.0%; http_500: 1, \
             zero_tokens: 1); concurrency 8: 1 request(s) generated zero tokens"
        );
        assert_eq!(ProblemKind::FailedRequests.junit_type(), "FAILED_REQUESTS");
    }

    #[test]
    fn point_labels_name_files_and_cases() {
        assert_eq!(PointId::closed(8).label(), "con8");
        let open = PointId {
            concurrency: Some(4),
            request_rate: Some(RequestRate(2.5)),
        };
        assert_eq!(open.label(), "rate2.5");
        assert_eq!(open.to_string(), "rate 2.5 req/s (max concurrency 4)");
        let burst = PointId {
            concurrency: None,
            request_rate: Some(RequestRate(f64::INFINITY)),
        };
        assert_eq!(burst.label(), "rateinf");
        let back: PointReport = serde_json::from_value(
            serde_json::to_value(PointReport {
                point: burst,
                ..full()
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(back.point, burst);
        // An open loop at an infinite rate under a cap is not the closed loop at that cap.
        let capped_burst = PointId {
            concurrency: Some(4),
            request_rate: Some(RequestRate(f64::INFINITY)),
        };
        let back: PointReport = serde_json::from_value(
            serde_json::to_value(PointReport {
                point: capped_burst,
                ..full()
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(back.point, capped_burst);
        assert_ne!(back.point, PointId::closed(4));
    }
}
