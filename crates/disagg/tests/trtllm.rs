//! Drop-in for TensorRT-LLM's perf tooling, end to end on real processes: per-point benchmark
//! logs its log parser reads point by point, benchmark_serving result files, its CSV, JUnit that
//! Jenkins accepts.

mod support;

use std::collections::BTreeMap;

use support::*;

/// TensorRT-LLM's perf-sanity log queries (PERF_METRIC_LOG_QUERIES plus the spec-decoding and
/// gen-only ones): its metric name and the label its regex `<label>\s+(-?[\d\.]+)` looks for.
const TRTLLM_QUERIES: [(&str, &str); 18] = [
    ("seq_throughput", "Request throughput (req/s):"),
    ("token_throughput", "Output token throughput (tok/s):"),
    ("total_token_throughput", "Total Token throughput (tok/s):"),
    ("user_throughput", "User throughput (tok/s):"),
    ("mean_ttft", "Mean TTFT (ms):"),
    ("median_ttft", "Median TTFT (ms):"),
    ("p99_ttft", "P99 TTFT (ms):"),
    ("mean_itl", "Mean ITL (ms):"),
    ("median_itl", "Median ITL (ms):"),
    ("p99_itl", "P99 ITL (ms):"),
    ("mean_tpot", "Mean TPOT (ms):"),
    ("median_tpot", "Median TPOT (ms):"),
    ("p99_tpot", "P99 TPOT (ms):"),
    ("mean_e2el", "Mean E2EL (ms):"),
    ("median_e2el", "Median E2EL (ms):"),
    ("p99_e2el", "P99 E2EL (ms):"),
    ("al", "Mean Avg Decoded Tokens per Iter:"),
    (
        "mean_gen_worker_per_iter_device_step_time",
        "Average Per Iter Device Step Time (ms):",
    ),
];

/// What TensorRT-LLM's parser reads from one log: for each query, the first line that has the
/// label followed by whitespace and a number.
fn trtllm_parse(log: &str) -> BTreeMap<&'static str, f64> {
    let mut found = BTreeMap::new();
    for line in log.lines() {
        for (metric, label) in TRTLLM_QUERIES {
            if found.contains_key(metric) {
                continue;
            }
            let Some(at) = line.find(label) else { continue };
            let rest = &line[at + label.len()..];
            if !rest.starts_with(char::is_whitespace) {
                continue;
            }
            let number: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            if let Ok(v) = number.parse() {
                found.insert(metric, v);
                break;
            }
        }
    }
    found
}

/// TensorRT-LLM's disagg log parser (`DEFAULT_METRICS_CONFIG[("disagg", "perf")]` of its
/// perf tests' config loader): a multi-line regex whose every match runs from a `Median TTFT
/// (ms):` line, lazily, through a `Median E2EL (ms):` line, to the next `Benchmark with
/// concurrency N done` line. What it reads: (N, median TTFT, median E2EL) per match.
fn trtllm_disagg_parse(log: &str) -> Vec<(u64, f64, f64)> {
    let value = |line: &str, label: &str| -> Option<f64> {
        let rest = &line[line.find(label)? + label.len()..];
        let v: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        v.parse().ok()
    };
    let mut found = Vec::new();
    let (mut ttft, mut e2el) = (None, None);
    for line in log.lines() {
        if ttft.is_none() {
            ttft = value(line, "Median TTFT (ms):");
        } else if e2el.is_none() {
            e2el = value(line, "Median E2EL (ms):");
        } else if let Some(n) = line
            .split_once("Benchmark with concurrency ")
            .and_then(|(_, rest)| rest.strip_suffix(" done"))
            .and_then(|n| n.parse().ok())
        {
            found.push((n, ttft.take().unwrap(), e2el.take().unwrap()));
        }
    }
    found
}

/// TensorRT-LLM's benchmark error check: the first `Failed requests: N`, and the markers.
fn trtllm_failed(log: &str) -> (Option<u64>, bool) {
    let failed = log.lines().find_map(|l| {
        l.strip_prefix("Failed requests:")
            .and_then(|r| r.trim().parse().ok())
    });
    let markers = log.contains("!FAILED REQUESTS!") || log.contains("!CHECK LOG FOR ERRORS!");
    (failed, markers)
}

/// The result file's key for each of TensorRT-LLM's metric names.
fn json_key(metric: &str) -> &'static str {
    match metric {
        "seq_throughput" => "request_throughput",
        "token_throughput" => "output_throughput",
        "total_token_throughput" => "total_token_throughput",
        "user_throughput" => "user_throughput",
        "mean_ttft" => "mean_ttft_ms",
        "median_ttft" => "median_ttft_ms",
        "p99_ttft" => "p99_ttft_ms",
        "mean_itl" => "mean_itl_ms",
        "median_itl" => "median_itl_ms",
        "p99_itl" => "p99_itl_ms",
        "mean_tpot" => "mean_tpot_ms",
        "median_tpot" => "median_tpot_ms",
        "p99_tpot" => "p99_tpot_ms",
        "mean_e2el" => "mean_e2el_ms",
        "median_e2el" => "median_e2el_ms",
        "p99_e2el" => "p99_e2el_ms",
        other => panic!("no key for {other}"),
    }
}

/// Every key the issue lists: benchmark_serving's, vLLM's newer ones, TensorRT-LLM's extras.
const RESULT_KEYS: &[&str] = &[
    "date",
    "backend",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "request_goodput:",
    "output_throughput",
    "total_token_throughput",
    "user_throughput",
    "max_output_tokens_per_s",
    "max_concurrent_requests",
    "avg_decoded_tokens_per_iter",
    "mean_ttft_ms",
    "median_ttft_ms",
    "std_ttft_ms",
    "p99_ttft_ms",
    "mean_tpot_ms",
    "median_tpot_ms",
    "std_tpot_ms",
    "p99_tpot_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "std_itl_ms",
    "p99_itl_ms",
    "mean_e2el_ms",
    "median_e2el_ms",
    "std_e2el_ms",
    "p99_e2el_ms",
    "mean_client_queue_time_ms",
    "median_client_queue_time_ms",
    "std_client_queue_time_ms",
    "p99_client_queue_time_ms",
    "input_lens",
    "output_lens",
    "ttfts",
    "itls",
    "e2els",
    "errors",
];

#[test]
fn each_point_has_its_own_log_and_result_file_and_failures_stay_with_their_point() {
    let ws = TempDir::new("points");
    // GEN sees: the canary (1), con1's warmup (2) and requests (3, 4), con2's warmup (5) and
    // requests (6..9). Requests 7 and 8 fail, both in the second point.
    let case = CaseSpec {
        name: "points",
        concurrency: "[1, 2]",
        rounds: 2,
        gen_args: "{error_on_request: [7, 8]}",
        ..Default::default()
    }
    .write(ws.path(), "points.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "failed requests fail the run: {}", r.show());
    let dir = only_run(ws.path(), "points");

    let first = read(&dir.join("benchmark.con1.log"));
    let second = read(&dir.join("benchmark.con2.log"));
    // TensorRT-LLM's error check, run on each log alone.
    assert_eq!(trtllm_failed(&first), (Some(0), false), "{first}");
    assert_eq!(trtllm_failed(&second), (Some(2), true), "{second}");
    assert!(
        second.contains(
            "=======================!FAILED REQUESTS!=======================\n\
             Total failed requests: 2\n\
             =====================!CHECK LOG FOR ERRORS!===================="
        ),
        "{second}"
    );
    assert!(second.contains("Error type: "), "{second}");
    // A clean point says 0, as benchmark_serving does: report.py takes the last such line of the
    // benchmark log, which must be the last point's.
    assert!(!first.contains("Error type: ") && first.contains("\nTotal failed requests: 0\n"));
    for (log, total, ok) in [(&first, 2, 2), (&second, 4, 2)] {
        assert!(
            log.contains(&format!(
                "Total requests:                          {total} "
            )),
            "{log}"
        );
        assert!(
            log.contains(&format!("Successful requests:                     {ok} ")),
            "{log}"
        );
    }
    // Each log carries its own point's numbers, equal to its result file's.
    for (log, label, c) in [(&first, "con1", 1u64), (&second, "con2", 2)] {
        let parsed = trtllm_parse(log);
        let result = json(&dir.join(format!("benchmark.{label}.json")));
        for (metric, _) in &TRTLLM_QUERIES[..16] {
            let from_log = parsed
                .get(metric)
                .unwrap_or_else(|| panic!("{label}: no {metric} in\n{log}"));
            let from_json = result[json_key(metric)].as_f64().unwrap();
            assert!(
                (from_log - from_json).abs() <= 0.005 + 1e-9,
                "{label} {metric}: log {from_log}, result file {from_json}"
            );
        }
        for key in RESULT_KEYS {
            assert!(
                result.get(*key).is_some(),
                "{label}: result file lacks {key}"
            );
        }
        assert_eq!(result["max_concurrency"].as_u64(), Some(c));
        assert_eq!(result["request_rate"], "inf");
        assert_eq!(result["num_prompts"].as_u64(), Some(2 * c));
        assert_eq!(result["errors"].as_array().unwrap().len() as u64, 2 * c);
        assert!(result["avg_decoded_tokens_per_iter"]["mean"].is_number());
    }
    let second_result = json(&dir.join("benchmark.con2.json"));
    let errors: Vec<&str> = second_result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        errors.iter().filter(|e| !e.is_empty()).count(),
        2,
        "{errors:?}"
    );
    // benchmark.log keeps every point, for people and for TensorRT-LLM's disagg log parser,
    // which finds each point's block by the line that closes it, and reads the file as
    // `6_bench.log` in the run's folder; each point's own log too.
    let alias = dir.join("6_bench.log");
    assert_eq!(
        std::fs::read_link(&alias).unwrap(),
        std::path::Path::new("benchmark.log")
    );
    let all = read(&alias);
    assert!(all.contains(&first) && all.contains(&second));
    // Its request counts: every `Total requests:` and `Failed requests:` number, summed.
    let sum = |label: &str| -> u64 {
        all.lines()
            .filter_map(|l| l.find(label).map(|at| &l[at + label.len()..]))
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let of_points = |key: &str| -> u64 {
        ["con1", "con2"]
            .iter()
            .map(|l| {
                json(&dir.join(format!("benchmark.{l}.json")))[key]
                    .as_u64()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(sum("Total requests:"), of_points("num_prompts"), "{all}");
    assert_eq!(sum("Failed requests:"), of_points("failed"), "{all}");
    assert!(of_points("failed") > 0);
    let medians = |label: &str| {
        let r = json(&dir.join(format!("benchmark.{label}.json")));
        (
            r["median_ttft_ms"].as_f64().unwrap(),
            r["median_e2el_ms"].as_f64().unwrap(),
        )
    };
    let parsed = trtllm_disagg_parse(&all);
    assert_eq!(
        parsed.iter().map(|p| p.0).collect::<Vec<_>>(),
        [1, 2],
        "{all}"
    );
    for ((_, ttft, e2el), label) in parsed.iter().zip(["con1", "con2"]) {
        let (t, e) = medians(label);
        assert!((ttft - t).abs() <= 0.005 + 1e-9 && (e2el - e).abs() <= 0.005 + 1e-9);
    }
    assert_eq!(trtllm_disagg_parse(&first).len(), 1, "{first}");
    assert_eq!(trtllm_disagg_parse(&second)[0].0, 2, "{second}");
    // JUnit: the point with failures fails, with its problem as the type; Jenkins accepts it.
    assert_jenkins_valid(&dir.join("results.xml"));
    let cases = junit_cases(&dir.join("results.xml"));
    let con2 = cases.iter().find(|c| c.0 == "con2").unwrap();
    assert_eq!(con2.2.as_deref(), Some("FAILED_REQUESTS"), "{cases:?}");
    assert!(cases.iter().find(|c| c.0 == "con1").unwrap().1.is_none());
}

#[test]
fn a_server_reporting_decoded_tokens_per_iteration_gets_the_spec_decoding_lines() {
    let ws = TempDir::new("spec");
    let case = CaseSpec {
        name: "spec",
        concurrency: "[2]",
        gen_args: "{decoded_tokens_per_iter: 2.5}",
        ..Default::default()
    }
    .write(ws.path(), "spec.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "spec");
    let log = read(&dir.join("benchmark.con2.log"));
    assert!(
        log.contains("-----------Avg Decoded Tokens per Iter------------\n"),
        "{log}"
    );
    assert_eq!(trtllm_parse(&log).get("al"), Some(&2.5), "{log}");
    let result = json(&dir.join("benchmark.con2.json"));
    assert_eq!(result["avg_decoded_tokens_per_iter"]["mean"], 2.5);
    assert_eq!(result["avg_decoded_tokens_per_iter"]["min"], 2.5);
    let results = json(&dir.join("results.json"));
    assert_eq!(
        results["points"][0]["avg_decoded_tokens_per_iter"]["median"],
        2.5
    );
    assert_jenkins_valid(&dir.join("results.xml"));
}

/// What the context sim received (its request log), without the canary.
fn context_requests(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let log = read(&dir.join("ctx_server_0.requests.jsonl"));
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].clone())
        .filter(|b| b["max_tokens"] != 2)
        .collect()
}

#[test]
fn trtllm_custom_jsonl_and_sharegpt_datasets_drive_a_run() {
    let ws = TempDir::new("datasets");
    let prompts = [
        ("the cat sat on the mat", 5),
        ("a dog ran far away from the house", 7),
        ("three small birds", 3),
    ];
    let custom: String = prompts
        .iter()
        .map(|(p, n)| {
            format!(
                "{}\n",
                serde_json::json!({"input": {"messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": p}], "max_tokens": n}})
            )
        })
        .collect();
    std::fs::write(ws.path().join("custom.jsonl"), custom).unwrap();
    let sharegpt = serde_json::json!(
        prompts
            .iter()
            .map(|(p, _)| serde_json::json!({"id": "x", "conversations": [
            {"from": "human", "value": p},
            {"from": "gpt", "value": "one two three four"}]}))
            .collect::<Vec<_>>()
    );
    std::fs::write(ws.path().join("sharegpt.json"), sharegpt.to_string()).unwrap();

    for (name, file) in [("custom", "custom.jsonl"), ("sharegpt", "sharegpt.json")] {
        let case = CaseSpec {
            name,
            concurrency: "[2]",
            rounds: 3,
            ctx_args: "{request_log: true}",
            ..Default::default()
        }
        .yaml()
        .replace(
            "  warmup: 1\n",
            &format!("  warmup: 1\n  dataset: {file}\n"),
        );
        let path = ws.path().join(format!("{name}.yaml"));
        std::fs::write(&path, case).unwrap();
        let r = run(&path, ws.path(), &[], &[]);
        assert_eq!(r.code(), 0, "{name}: {}", r.show());
        let dir = only_run(ws.path(), name);
        let bodies = context_requests(&dir);
        // The warmup request and the 6 measured ones.
        assert_eq!(bodies.len(), 7, "{name}: {bodies:?}");
        for b in &bodies {
            let prompt = b["prompt"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {b}"));
            let (_, n) = prompts
                .iter()
                .find(|(p, _)| *p == prompt)
                .unwrap_or_else(|| panic!("{name}: prompt {prompt:?} is not the dataset's"));
            // ShareGPT: the reply's estimated length (18 characters, 4 words: 5 tokens).
            let want = if name == "custom" { *n } else { 5 };
            assert_eq!(b["max_tokens"], want, "{name}: {b}");
        }
        let seen: std::collections::BTreeSet<&str> = bodies
            .iter()
            .map(|b| b["prompt"].as_str().unwrap())
            .collect();
        assert_eq!(seen.len(), 3, "{name}: every entry is used");
    }
}

#[test]
fn with_a_key_the_router_signs_and_a_worker_with_another_key_fails_the_run_with_401() {
    let ws = TempDir::new("auth");
    // Same key everywhere: every generation request is checked by the sim, and all pass.
    let good = CaseSpec {
        name: "auth",
        concurrency: "[2]",
        extra: "router: {internal_request_auth_key: s3cret-key}\n",
        ..Default::default()
    }
    .write(ws.path(), "auth.yaml");
    let r = run(&good, ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "auth");
    let cfg = read(&dir.join("server_config.yaml"));
    assert!(
        cfg.contains("internal_request_auth_key: s3cret-key") && cfg.contains("backend: pytorch"),
        "{cfg}"
    );
    let results = json(&dir.join("results.json"));
    assert_eq!(results["points"][0]["completed"], 4);

    // The generation sim has another key: it answers 401, and the run fails saying so.
    let bad = CaseSpec {
        name: "authbad",
        concurrency: "[2]",
        extra: "router: {internal_request_auth_key: s3cret-key}\n",
        ..Default::default()
    }
    .yaml()
    .replace(
        "gen:\n  count: 1\n  engine_args: {}\n",
        "gen:\n  count: 1\n  engine_args: {}\n  env: {DISAGG_INTERNAL_REQUEST_AUTH_KEY: other-key}\n",
    );
    let path = ws.path().join("authbad.yaml");
    std::fs::write(&path, bad).unwrap();
    let r = run(&path, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "authbad");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains("http_401")
            && reason.contains("different internal_request_auth_key values"),
        "{reason}"
    );
    let gen_log = read(&dir.join("gen_server_0.log"));
    assert!(
        gen_log.contains("401") && gen_log.contains("internal_request_auth_key"),
        "{gen_log}"
    );
}

/// TensorRT-LLM's gen-only benchmark: `TLLM_BENCHMARK_REQ_QUEUES_SIZE` on the GEN workers makes
/// them hold every generation request until that many are in (the sim plays that gate). A lone
/// canary would wait for ever, so none is sent, as TensorRT-LLM's own gen-only test sends no
/// test request; the point's 4 requests fill the gate and the run passes.
#[test]
fn under_a_gen_only_fill_gate_no_canary_is_sent_and_the_batch_runs() {
    let ws = TempDir::new("fill-gate");
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        "name: fill-gate\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\n\
         gen: {count: 1, engine_args: {itl: 5ms}, env: {TLLM_BENCHMARK_REQ_QUEUES_SIZE: \"4\"}}\n\
         benchmark: {isl: 32, osl: 8, concurrency: [4], rounds: 1}\n\
         timeouts: {worker_startup: 20s, request: 10s, benchmark: 30s, job: 60s, grace: 2s}\n",
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "fill-gate");
    let bench = read(&dir.join("benchmark.log"));
    assert!(
        bench.contains("no canary: the GEN workers' TLLM_BENCHMARK_REQ_QUEUES_SIZE=4"),
        "{bench}"
    );
    let gen_log = read(&dir.join("gen_server_0.log"));
    assert!(
        gen_log.contains("holding generation until that many requests are in")
            && gen_log.contains("4 generation requests in; the batch starts"),
        "the gate held and opened: {gen_log}"
    );
    // A gate the first point cannot fill (5, with 4 at a time) would hang every request: the
    // case is refused before launch, naming the variable.
    let stuck = case.with_file_name("stuck.yaml");
    std::fs::write(
        &stuck,
        read(&case)
            .replace("name: fill-gate", "name: fill-gate-stuck")
            .replace("\"4\"", "\"5\""),
    )
    .unwrap();
    let r = run(&stuck, ws.path(), &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("gen.env.TLLM_BENCHMARK_REQ_QUEUES_SIZE")
            && r.stderr().contains(
                "each GEN worker holds generation until 5 requests are in, but the first point \
                 sends at most 4 at a time, 4 to each of 1 GEN worker(s): it would wait for ever"
            ),
        "{}",
        r.show()
    );
}
