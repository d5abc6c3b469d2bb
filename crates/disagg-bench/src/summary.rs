//! benchmark_serving's outputs: the text block harnesses scrape with regexes, and the JSON keys.
//! Both must stay byte-compatible, so the layout lives here and nowhere else.

use std::fmt::Write as _;

use crate::result::{LatencyStats, percentile_word};
use crate::{Metrics, PointReport};

/// Width of the title lines.
const WIDTH: usize = 50;

/// The four latency sections: JSON key, label abbreviation, section title.
fn sections(m: &Metrics) -> [(&'static str, &'static str, &'static str, &LatencyStats); 4] {
    [
        ("ttft", "TTFT", "Time to First Token", &m.ttft),
        (
            "tpot",
            "TPOT",
            "Time per Output Token (excl. 1st token)",
            &m.tpot,
        ),
        ("itl", "ITL", "Inter-token Latency", &m.itl),
        ("e2el", "E2EL", "End-to-end Latency", &m.e2el),
    ]
}

/// TensorRT-LLM's failure markers, printed after the throughputs when any request failed; its
/// harness fails a run on either.
pub const FAILED_MARKER: &str = "=======================!FAILED REQUESTS!=======================";
pub const CHECK_LOG_MARKER: &str =
    "=====================!CHECK LOG FOR ERRORS!====================";

/// `{:<40} {:<10}`: the value starts in column 41 and is padded, so lines end in spaces.
fn int(out: &mut String, label: &str, v: u64) {
    let _ = writeln!(out, "{label:<40} {v:<10}");
}

fn float(out: &mut String, label: &str, v: f64) {
    let _ = writeln!(out, "{label:<40} {v:<10.2}");
}

/// The block TensorRT-LLM's benchmark_serving prints (a superset of vLLM's), so both their log
/// parsers read every number they look for:
/// - counts (`Total requests:` first), throughputs, and goodput when objectives were set;
/// - when any request failed, the `!FAILED REQUESTS!` block with `Total failed requests:`;
/// - `Avg Decoded Tokens per Iter` (mean, median, std dev, min, max, percentiles) when the server
///   reported it (speculative decoding);
/// - per latency: mean, median, std dev and the percentiles;
/// - after the closing line, `Average Per Iter Device Step Time (ms):` when measured (gen-only).
pub(crate) fn text_summary(point: &PointReport) -> String {
    let m = &point.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "{:=^WIDTH$}", " Serving Benchmark Result ");
    int(&mut out, "Total requests:", m.completed + m.failed);
    int(&mut out, "Successful requests:", m.completed);
    int(&mut out, "Failed requests:", m.failed);
    // vLLM prints this line when concurrency is capped.
    if let Some(c) = point.point.concurrency {
        int(&mut out, "Maximum request concurrency:", u64::from(c));
    }
    float(&mut out, "Benchmark duration (s):", m.duration_s);
    int(&mut out, "Total input tokens:", m.total_input_tokens);
    int(&mut out, "Total generated tokens:", m.total_output_tokens);
    float(
        &mut out,
        "Request throughput (req/s):",
        m.request_throughput,
    );
    // benchmark_serving prints goodput only when objectives were given.
    if let Some(goodput) = m.request_goodput {
        float(&mut out, "Request goodput (req/s):", goodput);
    }
    float(
        &mut out,
        "Output token throughput (tok/s):",
        m.output_throughput,
    );
    float(
        &mut out,
        "Total Token throughput (tok/s):",
        m.total_token_throughput,
    );
    float(&mut out, "User throughput (tok/s):", m.user_throughput);
    if m.failed > 0 {
        let _ = writeln!(out, "{FAILED_MARKER}");
        let _ = writeln!(out, "Total failed requests: {}", m.failed);
        let _ = writeln!(out, "{CHECK_LOG_MARKER}");
    }
    if let Some(a) = m
        .avg_decoded_tokens_per_iter
        .as_ref()
        .filter(|a| a.mean > 0.0)
    {
        let name = "Avg Decoded Tokens per Iter";
        let _ = writeln!(out, "{name:-^WIDTH$}");
        float(&mut out, &format!("Mean {name}:"), a.mean);
        float(&mut out, &format!("Median {name}:"), a.median);
        float(&mut out, &format!("Std Dev {name}:"), a.std);
        float(&mut out, &format!("Min {name}:"), a.min);
        float(&mut out, &format!("Max {name}:"), a.max);
        let mut rows: Vec<(f64, f64)> = a
            .percentiles
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix('p')?.parse::<f64>().ok()?, *v)))
            .collect();
        rows.sort_by(|x, y| x.0.total_cmp(&y.0));
        for (p, v) in rows {
            float(&mut out, &format!("P{} {name}:", percentile_word(p)), v);
        }
    }
    for (_, abbr, title, stats) in sections(m) {
        let _ = writeln!(out, "{title:-^WIDTH$}");
        float(&mut out, &format!("Mean {abbr} (ms):"), stats.mean_ms);
        float(&mut out, &format!("Median {abbr} (ms):"), stats.median_ms);
        float(&mut out, &format!("Std Dev {abbr} (ms):"), stats.std_ms);
        for (p, v) in stats.percentile_rows() {
            float(
                &mut out,
                &format!("P{} {abbr} (ms):", percentile_word(p)),
                v,
            );
        }
    }
    let _ = writeln!(out, "{}", "=".repeat(WIDTH));
    // TensorRT-LLM's harness appends this line, apart from the block, in gen-only mode.
    if let Some(t) = m.gen_device_step_time_ms {
        let _ = writeln!(out, "Average Per Iter Device Step Time (ms): {t:.2}");
    }
    out
}

/// What benchmark_serving prints before its block: the load, then each failure kind (when
/// something failed) and the failed total.
pub(crate) fn preamble(point: &PointReport, burstiness: f64) -> String {
    let mut out = String::new();
    let rate = match point.point.request_rate {
        Some(r) if r.0.is_finite() => format!("{}", r.0),
        _ => "inf".into(),
    };
    let _ = writeln!(out, "Traffic request rate: {rate}");
    let process = if burstiness == 1.0 {
        "Poisson process"
    } else {
        "Gamma distribution"
    };
    let _ = writeln!(out, "Burstiness factor: {burstiness:?} ({process})");
    let cap = point
        .point
        .concurrency
        .map_or("None".to_string(), |c| c.to_string());
    let _ = writeln!(out, "Maximum request concurrency: {cap}");
    if point.metrics.failed > 0 {
        for (kind, n) in &point.error_counts {
            let _ = writeln!(out, "Error type: {kind}, Count: {n} requests");
        }
    }
    // Always, 0 too, as benchmark_serving's calculate_metrics prints it: TensorRT-LLM's
    // report.py takes the log's last such line as the case's failed count, so a clean last
    // point after a failed one must say 0.
    let _ = writeln!(out, "Total failed requests: {}", point.metrics.failed);
    out
}

pub(crate) fn details_summary(point: &PointReport) -> String {
    let m = &point.metrics;
    let mut out = String::new();
    if !point.error_counts.is_empty() {
        let _ = writeln!(out, "{:-^WIDTH$}", "Failed Requests by Type");
        for (kind, n) in &point.error_counts {
            let _ = writeln!(out, "{:<40} {n:<10}", format!("{kind}:"));
        }
    }
    let per_gpu = [
        (
            "Output token throughput per GPU (tok/s):",
            m.output_throughput_per_gpu,
        ),
        (
            "Total token throughput per GPU (tok/s):",
            m.total_token_throughput_per_gpu,
        ),
    ];
    for (label, value) in per_gpu {
        if let Some(v) = value {
            let _ = writeln!(out, "{label:<40} {v:<10.2}");
        }
    }
    if !out.is_empty() {
        let _ = writeln!(out, "{}", "=".repeat(WIDTH));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Metrics;

    fn lat(base: f64) -> LatencyStats {
        LatencyStats {
            mean_ms: base,
            median_ms: base + 0.5,
            std_ms: 1.25,
            p99_ms: base * 2.0,
            // `--percentiles 90,50,99`: the user's list, in any order, shown ascending.
            percentiles: vec![(90.0, base * 1.5), (50.0, base + 0.5), (99.0, base * 2.0)],
        }
    }

    fn point() -> PointReport {
        PointReport {
            point: crate::PointId::closed(8),
            started_at: std::time::SystemTime::UNIX_EPOCH,
            ended_at: std::time::SystemTime::UNIX_EPOCH,
            num_prompts: 64,
            metrics: Metrics {
                duration_s: 12.3456,
                completed: 64,
                failed: 0,
                zero_token_requests: 0,
                total_input_tokens: 65536,
                total_output_tokens: 8192,
                request_throughput: 5.184,
                output_throughput: 663.55,
                total_token_throughput: 5972.0,
                user_throughput: 83.123,
                max_send_lag_ms: 0.0,
                request_goodput: None,
                output_throughput_per_gpu: None,
                total_token_throughput_per_gpu: None,
                ttft: lat(30.0),
                tpot: lat(10.0),
                itl: lat(9.999),
                e2el: lat(1300.0),
                ..Default::default()
            },
            error_counts: BTreeMap::new(),
            hdr_percentiles_ms: BTreeMap::new(),
            validity: Default::default(),
        }
    }

    #[test]
    fn text_summary_matches_benchmark_serving_line_for_line() {
        let expected = "\
============ Serving Benchmark Result ============
Total requests:                          64        
Successful requests:                     64        
Failed requests:                         0         
Maximum request concurrency:             8         
Benchmark duration (s):                  12.35     
Total input tokens:                      65536     
Total generated tokens:                  8192      
Request throughput (req/s):              5.18      
Output token throughput (tok/s):         663.55    
Total Token throughput (tok/s):          5972.00   
User throughput (tok/s):                 83.12     
---------------Time to First Token----------------
Mean TTFT (ms):                          30.00     
Median TTFT (ms):                        30.50     
Std Dev TTFT (ms):                       1.25      
P50 TTFT (ms):                           30.50     
P90 TTFT (ms):                           45.00     
P99 TTFT (ms):                           60.00     
-----Time per Output Token (excl. 1st token)------
Mean TPOT (ms):                          10.00     
Median TPOT (ms):                        10.50     
Std Dev TPOT (ms):                       1.25      
P50 TPOT (ms):                           10.50     
P90 TPOT (ms):                           15.00     
P99 TPOT (ms):                           20.00     
---------------Inter-token Latency----------------
Mean ITL (ms):                           10.00     
Median ITL (ms):                         10.50     
Std Dev ITL (ms):                        1.25      
P50 ITL (ms):                            10.50     
P90 ITL (ms):                            15.00     
P99 ITL (ms):                            20.00     
----------------End-to-end Latency----------------
Mean E2EL (ms):                          1300.00   
Median E2EL (ms):                        1300.50   
Std Dev E2EL (ms):                       1.25      
P50 E2EL (ms):                           1300.50   
P90 E2EL (ms):                           1950.00   
P99 E2EL (ms):                           2600.00   
==================================================
";
        let got = text_summary(&point());
        let (got_lines, want_lines): (Vec<_>, Vec<_>) =
            (got.lines().collect(), expected.lines().collect());
        for (i, (g, w)) in got_lines.iter().zip(&want_lines).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got_lines.len(), want_lines.len());
        assert_eq!(got, expected);
        assert!(got.lines().all(|l| l.len() >= WIDTH));
    }

    #[test]
    fn goodput_line_follows_request_throughput_only_when_asked() {
        let mut p = point();
        assert!(!text_summary(&p).contains("goodput"));
        p.metrics.request_goodput = Some(4.5);
        let text = text_summary(&p);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("Request throughput"))
            .unwrap();
        assert_eq!(
            lines[at + 1],
            "Request goodput (req/s):                 4.50      "
        );
        assert_eq!(p.to_map()["request_goodput"], 4.5);
        assert_eq!(point().to_map()["request_goodput"], serde_json::Value::Null);
    }

    #[test]
    fn per_gpu_throughput_is_a_detail() {
        let mut p = point();
        p.metrics.output_throughput_per_gpu = Some(165.9);
        p.metrics.total_token_throughput_per_gpu = Some(1493.0);
        assert_eq!(
            details_summary(&p),
            "Output token throughput per GPU (tok/s): 165.90    \n\
             Total token throughput per GPU (tok/s):  1493.00   \n\
             ==================================================\n"
        );
    }

    #[test]
    fn details_list_failures_by_type() {
        let mut p = point();
        assert_eq!(details_summary(&p), "");
        p.error_counts.insert("http_500".into(), 2);
        p.error_counts.insert("timeout".into(), 1);
        let expected = "\
-------------Failed Requests by Type--------------
http_500:                                2         
timeout:                                 1         
==================================================
";
        assert_eq!(details_summary(&p), expected);
    }

    #[test]
    fn percentile_words_follow_python() {
        assert_eq!(percentile_word(99.0), "99");
        assert_eq!(percentile_word(50.0), "50");
        assert_eq!(percentile_word(99.9), "99.9");
    }

    #[test]
    fn failed_requests_print_tensorrt_llms_failure_block_and_preamble() {
        let mut p = point();
        assert!(!text_summary(&p).contains("FAILED"));
        // Said with 0 too, as benchmark_serving does: report.py reads the log's last one, so a
        // clean point after a failed one must not leave the failed one's count last.
        assert!(
            preamble(&p, 1.0).ends_with("\nTotal failed requests: 0\n"),
            "{}",
            preamble(&p, 1.0)
        );
        assert!(!preamble(&p, 1.0).contains("Error type"));
        p.metrics.completed = 40;
        p.metrics.failed = 24;
        p.error_counts.insert("http_500".into(), 20);
        p.error_counts.insert("timeout".into(), 4);
        let text = text_summary(&p);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "Total requests:                          64        "
        );
        let at = lines
            .iter()
            .position(|l| l.starts_with("User throughput"))
            .unwrap();
        assert_eq!(
            &lines[at + 1..at + 4],
            [
                "=======================!FAILED REQUESTS!=======================",
                "Total failed requests: 24",
                "=====================!CHECK LOG FOR ERRORS!====================",
            ]
        );
        assert_eq!(
            preamble(&p, 1.0),
            "Traffic request rate: inf\n\
             Burstiness factor: 1.0 (Poisson process)\n\
             Maximum request concurrency: 8\n\
             Error type: http_500, Count: 20 requests\n\
             Error type: timeout, Count: 4 requests\n\
             Total failed requests: 24\n"
        );
    }

    #[test]
    fn a_point_left_out_counts_its_failures_but_reads_as_no_measured_point() {
        let cfg = crate::BenchConfig::default();
        let mut p = point();
        p.metrics.completed = 3;
        p.metrics.failed = 13;
        p.error_counts.insert("http_503".into(), 13);
        let measured = crate::point_files::log_text(&cfg, &point());
        let log = measured.clone() + &crate::point_files::unrecorded_log_text(&cfg, &p);
        // TensorRT-LLM's report.py fails a case on the log's last `Total failed requests:`.
        let last = log
            .lines()
            .filter_map(|l| l.strip_prefix("Total failed requests:"))
            .next_back()
            .map(str::trim);
        assert_eq!(last, Some("13"), "{log}");
        let left_out = &log[measured.len()..];
        assert!(left_out.contains(FAILED_MARKER), "{left_out}");
        // No result block and no `done` line: no parser takes it for a measured point.
        assert!(!left_out.contains("Median TTFT"), "{left_out}");
        assert!(!left_out.contains(" done"), "{left_out}");
        assert_eq!(log.matches("Benchmark with concurrency 8 done").count(), 1);
    }

    #[test]
    fn spec_decoding_and_gen_only_lines_appear_when_reported() {
        let mut p = point();
        assert!(!text_summary(&p).contains("Decoded"));
        assert!(!text_summary(&p).contains("Device Step"));
        p.metrics.avg_decoded_tokens_per_iter = Some(crate::FigureStats {
            mean: 2.5,
            min: 1.0,
            max: 4.0,
            median: 2.25,
            std: 0.75,
            percentiles: [("p99".to_string(), 3.96), ("p50".to_string(), 2.25)].into(),
        });
        p.metrics.gen_device_step_time_ms = Some(6.944);
        let text = text_summary(&p);
        let expected = "\
-----------Avg Decoded Tokens per Iter------------
Mean Avg Decoded Tokens per Iter:        2.50      
Median Avg Decoded Tokens per Iter:      2.25      
Std Dev Avg Decoded Tokens per Iter:     0.75      
Min Avg Decoded Tokens per Iter:         1.00      
Max Avg Decoded Tokens per Iter:         4.00      
P50 Avg Decoded Tokens per Iter:         2.25      
P99 Avg Decoded Tokens per Iter:         3.96      
---------------Time to First Token----------------
";
        assert!(text.contains(expected), "{text}");
        assert!(
            text.ends_with(
                "==================================================\n\
                 Average Per Iter Device Step Time (ms): 6.94\n"
            ),
            "{text}"
        );
    }
}
