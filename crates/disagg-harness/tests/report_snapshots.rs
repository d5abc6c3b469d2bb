//! Snapshots of the reports a finished run leaves (`results.xml`, `summary.md`), for a passing
//! run, a run with a failed point, and a run that regressed against its baseline, from results
//! given here. What changes from run to run (the run folder, timestamps) is redacted.

mod support;

use support::*;

/// The report, with the run folder and the wall-clock times replaced.
fn redacted(run: &RunDir, file: &str) -> String {
    let text = run.read(file);
    let text = text.replace(&run.path().display().to_string(), "[RUN]");
    let stamp = regex_lite_replace(&text, "timestamp=\"", "\"", "[TIMESTAMP]");
    regex_lite_replace(&stamp, " time=\"", "\"", "[SECONDS]")
}

/// Replaces what lies between each `start` and the next `end` with `with`.
fn regex_lite_replace(text: &str, start: &str, end: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(start) {
        out.push_str(&rest[..i + start.len()]);
        rest = &rest[i + start.len()..];
        let j = rest.find(end).unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn reports_of_a_passing_run() {
    let run = RunDir::new("snap-pass");
    run.write_results(&[point(1, 10.0), point(8, 10.0)]);
    assert_eq!(run.finish(&passed(), None), disagg_core::exit::PASS);
    insta::assert_snapshot!("passing_results_xml", redacted(&run, "results.xml"));
    insta::assert_snapshot!("passing_summary_md", redacted(&run, "summary.md"));
}

#[test]
fn reports_of_a_run_with_a_failed_point() {
    let run = RunDir::new("snap-fail");
    let mut bad = point(8, 10.0);
    bad.metrics.failed = 2;
    bad.error_counts.insert("http_502".into(), 2);
    bad.validity = disagg_bench::Validity::judge(&bad.point, &bad.metrics, &bad.error_counts, 0.0);
    run.write_results(&[point(1, 10.0), bad]);
    assert_eq!(
        run.finish(&failed_by_benchmark(), None),
        disagg_core::exit::TEST_FAILED
    );
    insta::assert_snapshot!("failing_results_xml", redacted(&run, "results.xml"));
    insta::assert_snapshot!("failing_summary_md", redacted(&run, "summary.md"));
}

#[test]
fn reports_of_a_regressed_run() {
    let run = RunDir::new("snap-regressed");
    run.write_results(&[point(1, 10.0), point(8, 10.0)]);
    let baseline = run.path().join("impossible.csv");
    std::fs::write(
        &baseline,
        "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n\
         quickstart-con8,disagg::test_perf_metric_token_throughput[quickstart-con8],t,-0.1,0,TOKEN_THROUGHPUT,320000\n",
    )
    .unwrap();
    assert_eq!(
        run.finish(&passed(), Some(&baseline)),
        disagg_core::exit::PERF_REGRESSION
    );
    insta::assert_snapshot!("regressed_results_xml", redacted(&run, "results.xml"));
    insta::assert_snapshot!("regressed_summary_md", redacted(&run, "summary.md"));
}
