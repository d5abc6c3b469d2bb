//! The reports of a finished run, written by `run::finish` from a run folder: what CI reads
//! (results.xml, perf_script_test_results.csv, perf_check.txt, the exit code), for runs whose
//! results are given here rather than measured, so every outcome is covered quickly.

mod support;

use support::*;

#[test]
fn results_that_cannot_be_read_fail_a_run_the_roles_passed() {
    let run = RunDir::new("unreadable");
    std::fs::write(
        run.path().join("results.json"),
        "{\"points\": [{\"duration\": 1}]}",
    )
    .unwrap();
    let code = run.finish(&passed(), None);
    assert_eq!(code, disagg_core::exit::TEST_FAILED);
    let xml = run.read("results.xml");
    assert!(xml.contains("the results cannot be read"), "{xml}");
    assert!(xml.contains("results.json"), "{xml}");
}

#[test]
fn a_point_failure_names_its_problem_kind_as_the_junit_type() {
    let run = RunDir::new("kinds");
    let mut bad = point(8, 10.0);
    bad.metrics.failed = 3;
    bad.error_counts.insert("http_500".into(), 3);
    bad.validity = disagg_bench::Validity::judge(&bad.point, &bad.metrics, &bad.error_counts, 0.0);
    run.write_results(&[point(1, 10.0), bad]);
    let code = run.finish(&failed_by_benchmark(), None);
    assert_eq!(code, disagg_core::exit::TEST_FAILED);
    let cases = junit_cases(&run.path().join("results.xml"));
    let con8 = cases.iter().find(|c| c.name == "con8").unwrap();
    assert_eq!(con8.failure_type.as_deref(), Some("FAILED_REQUESTS"));
    assert!(
        con8.message
            .as_deref()
            .unwrap()
            .contains("3 of 35 requests failed"),
        "{con8:?}"
    );
    let con1 = cases.iter().find(|c| c.name == "con1").unwrap();
    assert_eq!(con1.message, None);
}
