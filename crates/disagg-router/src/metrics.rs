//! `/metrics`: the router's counters in Prometheus text format. Counters are atomics bumped on
//! the request path; the text is built only when scraped. Worker gauges (in flight, healthy)
//! are read from the census at scrape time rather than duplicated.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::app::Inner;
use crate::policy::WorkerGroup;
use crate::worker::Worker;

/// Upper bounds (seconds) of the leg latency buckets: sub-millisecond for zero-delay test
/// workers up to minutes for long prefills.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// Per-bucket (not cumulative) counts; the last slot is +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Everything counted on the request path.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (route, status) → count. A lock is fine: one short critical section per request, and
    /// the key space is a handful of routes times a handful of statuses.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Context leg: sending until its whole answer is read (SGLang: until prefill completes).
    pub context_leg: Histogram,
    /// Generation leg: sending until its first body byte.
    pub generation_leg: Histogram,
    /// Relayed answers cut short after their status (200) went out: counted under that status
    /// in `requests`, so counted here as what they were.
    pub streams_cut: AtomicU64,
    /// Requests whose client went away before their answer was complete.
    pub clients_gone: AtomicU64,
}

impl Metrics {
    pub fn count_request(&self, route: &'static str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route, status)).or_default() += 1;
        }
    }
}

pub(crate) fn render(state: &Inner) -> String {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    out.push_str(
        "# HELP disagg_router_requests_total Client requests by route and final status.\n",
    );
    out.push_str("# TYPE disagg_router_requests_total counter\n");
    if let Ok(requests) = m.requests.lock() {
        for ((route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "disagg_router_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    out.push_str("# HELP disagg_router_streams_cut_total Answers cut short after their status went out (counted in requests_total under it): a worker failed mid-answer, or the request deadline passed.\n");
    out.push_str("# TYPE disagg_router_streams_cut_total counter\n");
    let _ = writeln!(
        out,
        "disagg_router_streams_cut_total {}",
        m.streams_cut.load(Ordering::Relaxed)
    );
    out.push_str("# HELP disagg_router_clients_gone_total Client requests whose client went away before the answer was complete (a timeout of the client's, or its user gave up): one whose answer had begun is in requests_total under its status too, one that had none yet only here. Their upstream legs are cancelled.\n");
    out.push_str("# TYPE disagg_router_clients_gone_total counter\n");
    let _ = writeln!(
        out,
        "disagg_router_clients_gone_total {}",
        m.clients_gone.load(Ordering::Relaxed)
    );
    out.push_str("# HELP disagg_router_leg_seconds Upstream leg latency: context until its answer is read, generation until its first byte.\n");
    out.push_str("# TYPE disagg_router_leg_seconds histogram\n");
    m.context_leg
        .render(&mut out, "disagg_router_leg_seconds", "leg=\"context\"");
    m.generation_leg
        .render(&mut out, "disagg_router_leg_seconds", "leg=\"generation\"");

    let groups: [&WorkerGroup; 2] = [&state.prefill, &state.decode];
    counter(
        &mut out,
        "retries",
        "Upstream attempts retried on another worker.",
        &groups,
        |g| g.retries.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "ejections",
        "Workers taken out of rotation by failures.",
        &groups,
        |g| {
            g.ejections.load(Ordering::Relaxed)
                + g.workers
                    .iter()
                    .map(|w| w.cut_ejections.load(Ordering::Relaxed))
                    .sum::<u64>()
        },
    );
    counter(
        &mut out,
        "readmissions",
        "Ejected workers let back in by a passing probe.",
        &groups,
        |g| g.readmissions.load(Ordering::Relaxed),
    );
    worker_gauge(
        &mut out,
        "in_flight",
        "Requests in flight per worker.",
        &groups,
        |w| w.in_flight() as u64,
    );
    worker_gauge(
        &mut out,
        "healthy",
        "1 when the worker is in rotation.",
        &groups,
        |w| u64::from(w.is_healthy()),
    );
    out
}

fn counter(
    out: &mut String,
    name: &str,
    help: &str,
    groups: &[&WorkerGroup],
    value: impl Fn(&WorkerGroup) -> u64,
) {
    let _ = writeln!(out, "# HELP disagg_router_{name}_total {help}");
    let _ = writeln!(out, "# TYPE disagg_router_{name}_total counter");
    for g in groups {
        let _ = writeln!(
            out,
            "disagg_router_{name}_total{{leg=\"{}\"}} {}",
            g.leg,
            value(g)
        );
    }
}

/// One gauge line per worker, labelled with its leg and URL.
fn worker_gauge(
    out: &mut String,
    name: &str,
    help: &str,
    groups: &[&WorkerGroup],
    value: impl Fn(&Worker) -> u64,
) {
    let _ = writeln!(out, "# HELP disagg_router_worker_{name} {help}");
    let _ = writeln!(out, "# TYPE disagg_router_worker_{name} gauge");
    for g in groups {
        for w in &g.workers {
            let _ = writeln!(
                out,
                "disagg_router_worker_{name}{{leg=\"{}\",worker=\"{}\"}} {}",
                g.leg,
                w.url,
                value(w)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(600));
        let mut out = String::new();
        h.render(&mut out, "x", "leg=\"c\"");
        assert!(
            out.contains("x_bucket{leg=\"c\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{leg=\"c\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_bucket{leg=\"c\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{leg=\"c\"} 3\n"), "{out}");
    }
}
