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

/// The benchmark ran every point and judged one invalid: the point's testcase says so, and the
/// benchmark's "stayed up" passes (it did); a benchmark failure that is more than its points'
/// verdict, or a sweep that did not reach its last point, still fails it.
#[test]
fn a_benchmark_that_only_judged_its_points_stayed_up() {
    let mut bad = point(8, 10.0);
    bad.metrics.failed = 3;
    bad.error_counts.insert("http_500".into(), 3);
    bad.validity = disagg_bench::Validity::judge(&bad.point, &bad.metrics, &bad.error_counts, 0.0);
    let verdict = bad.validity.reason().unwrap();
    let bench_case = |run: &RunDir, why: &str, planned_more: bool| {
        let mut outcome = failed_by_benchmark();
        if let disagg_harness::outcome::RunResult::Failed(f) = &mut outcome.result {
            f.reason = why.into();
        }
        outcome.roles[3].failure = Some(why.into());
        if planned_more {
            run.write_results(&[bad.clone()]);
        } else {
            run.write_results(&[point(1, 10.0), bad.clone()]);
        }
        assert_eq!(run.finish(&outcome, None), disagg_core::exit::TEST_FAILED);
        let cases = junit_cases(&run.path().join("results.xml"));
        let con8 = cases.iter().find(|c| c.name == "con8").unwrap().clone();
        assert_eq!(con8.failure_type.as_deref(), Some("FAILED_REQUESTS"));
        let bench = cases
            .iter()
            .find(|c| c.name == "BENCHMARK stayed up")
            .unwrap();
        bench.message.clone()
    };
    let run = RunDir::new("judged");
    assert_eq!(bench_case(&run, &verdict, false), None);
    let run = RunDir::new("more");
    let more = format!("{verdict}; then cannot write status.json");
    assert_eq!(bench_case(&run, &more, false), Some(more));
    // con1 was planned and not measured: the sweep did not run to its end.
    let run = RunDir::new("short");
    assert_eq!(bench_case(&run, &verdict, true), Some(verdict.clone()));
}

/// The run failed in its first point, so fast that the benchmark's progress was never
/// published: its log saying the point started makes that point `unfinished`, not `not
/// started` while the reason says it was under way.
#[test]
fn a_point_cut_short_before_any_progress_is_unfinished() {
    let run = RunDir::new("cut");
    std::fs::write(
        run.path().join("benchmark.log"),
        "disagg bench: point con1 (concurrency 1): 4 prompt(s), isl 256, osl 32, model m, \
         started 2026-12-07T00:00:00.000Z\n",
    )
    .unwrap();
    let mut outcome = failed_by_benchmark();
    let why = "GEN_0 failed: its engine exited with status 3; then concurrency 1 was under way";
    if let disagg_harness::outcome::RunResult::Failed(f) = &mut outcome.result {
        f.role = Some("GEN_0".into());
        f.reason = why.into();
    }
    outcome.roles[3].failure = None;
    assert_eq!(run.finish(&outcome, None), disagg_core::exit::TEST_FAILED);
    let cases = junit_cases(&run.path().join("results.xml"));
    let con1 = cases.iter().find(|c| c.name == "con1").unwrap();
    assert_eq!(
        con1.message.as_deref(),
        Some(format!("unfinished: {why}").as_str()),
        "{cases:?}"
    );
    let con8 = cases.iter().find(|c| c.name == "con8").unwrap();
    assert!(
        con8.message
            .as_deref()
            .unwrap()
            .starts_with("not started: "),
        "{cases:?}"
    );
}

/// A hung worker failed the run; the benchmark's requests to it failed too. The benchmark's
/// testcase keeps its own reason, and says whose account it failed on.
#[test]
fn a_role_that_failed_on_anothers_account_names_the_root_cause() {
    let run = RunDir::new("secondary");
    run.write_results(&[point(1, 10.0)]);
    let mut outcome = failed_by_benchmark();
    let why = "GEN_0 answers /health, but failed 2 of 3 request(s)";
    outcome.result = disagg_harness::outcome::RunResult::Failed(disagg_harness::outcome::Failure {
        role: Some("GEN_0".into()),
        reason: why.into(),
        timeout: false,
    });
    outcome.roles[1].failure = Some(why.into());
    assert_eq!(run.finish(&outcome, None), disagg_core::exit::TEST_FAILED);
    let cases = junit_cases(&run.path().join("results.xml"));
    let bench = cases
        .iter()
        .find(|c| c.name == "BENCHMARK stayed up")
        .unwrap();
    assert_eq!(
        bench.message.as_deref(),
        Some("the results are invalid (the run's root cause is GEN_0: see its testcase)"),
        "{cases:?}"
    );
    let gen0 = cases.iter().find(|c| c.name == "GEN_0 stayed up").unwrap();
    assert_eq!(gen0.message.as_deref(), Some(why), "{cases:?}");
}

/// A baseline no run can meet: 1000× the measured throughput of con8.
fn impossible_baseline(run: &RunDir) -> std::path::PathBuf {
    let p = run.path().join("impossible.csv");
    std::fs::write(
        &p,
        "network_name,perf_case_name,test_name,threshold,absolute_threshold,metric_type,perf_metric\n\
         quickstart-con8,disagg::test_perf_metric_token_throughput[quickstart-con8],t,-0.1,0,TOKEN_THROUGHPUT,320000\n",
    )
    .unwrap();
    p
}

/// `run --junit FILE`'s merge: every run's suite under one root with the sums of their
/// counts, and a failed suite for a case with no results.xml; valid for Jenkins as each is.
#[test]
fn merged_junit_is_valid_for_jenkins_and_sums_its_suites() {
    let pass = RunDir::new("merge-pass");
    pass.write_results(&[point(1, 10.0), point(8, 10.0)]);
    assert_eq!(pass.finish(&passed(), None), disagg_core::exit::PASS);
    let fail = RunDir::new("merge-fail");
    let mut bad = point(8, 10.0);
    bad.metrics.failed = 2;
    bad.error_counts.insert("http_502".into(), 2);
    bad.validity = disagg_bench::Validity::judge(&bad.point, &bad.metrics, &bad.error_counts, 0.0);
    fail.write_results(&[point(1, 10.0), bad]);
    assert_eq!(
        fail.finish(&failed_by_benchmark(), None),
        disagg_core::exit::TEST_FAILED
    );
    let source = |name: &str, dir: Option<&RunDir>| disagg_harness::report::SuiteSource {
        name: name.into(),
        results: dir.map(|d| d.path().join("results.xml")),
        missing: "not run: the invocation ended before it".into(),
    };
    let xml = disagg_harness::report::merge_junit(&[
        source("a", Some(&pass)),
        source("b", Some(&fail)),
        source("c.1", None),
    ])
    .unwrap();
    let file = pass.path().join("merged.xml");
    std::fs::write(&file, &xml).unwrap();
    assert_jenkins_valid(&file);
    let root = xml.lines().find(|l| l.contains("<testsuites")).unwrap();
    assert_eq!(
        root, "<testsuites name=\"disagg\" tests=\"15\" failures=\"3\" errors=\"0\">",
        "7 + 7 + 1 tests; 2 + 1 failures: {xml}"
    );
    let cases = junit_cases(&file);
    assert_eq!(cases.len(), 15);
    let last = cases.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.failure_type.as_deref()),
        ("run", Some("NOT_RUN"))
    );
    assert!(xml.contains("classname=\"disagg.c_1\""), "{xml}");
}

#[test]
fn results_xml_is_valid_for_jenkins_when_passing_failing_or_regressed() {
    // Passing.
    let run = RunDir::new("xml-pass");
    run.write_results(&[point(1, 10.0), point(8, 10.0)]);
    assert_eq!(run.finish(&passed(), None), disagg_core::exit::PASS);
    let xml = run.path().join("results.xml");
    assert_jenkins_valid(&xml);
    let text = run.read("results.xml");
    let root = text.lines().find(|l| l.contains("<testsuites")).unwrap();
    assert!(!root.contains("skipped"), "{root}");
    assert!(
        text.contains("<testsuite name=\"quickstart\" tests=\"7\" skipped=\"1\""),
        "{text}"
    );

    // Failing: a point with failed requests and the role that reported it.
    let run = RunDir::new("xml-fail");
    let mut bad = point(8, 10.0);
    bad.metrics.failed = 2;
    bad.error_counts.insert("http_502".into(), 2);
    bad.validity = disagg_bench::Validity::judge(&bad.point, &bad.metrics, &bad.error_counts, 0.0);
    run.write_results(&[point(1, 10.0), bad]);
    assert_eq!(
        run.finish(&failed_by_benchmark(), None),
        disagg_core::exit::TEST_FAILED
    );
    assert_jenkins_valid(&run.path().join("results.xml"));

    // Regressed: the failure is on the point that regressed, with its type, and on the check.
    let run = RunDir::new("xml-regressed");
    run.write_results(&[point(1, 10.0), point(8, 10.0)]);
    let baseline = impossible_baseline(&run);
    assert_eq!(
        run.finish(&passed(), Some(&baseline)),
        disagg_core::exit::PERF_REGRESSION
    );
    assert_jenkins_valid(&run.path().join("results.xml"));
    let cases = junit_cases(&run.path().join("results.xml"));
    let con8 = cases.iter().find(|c| c.name == "con8").unwrap();
    assert_eq!(
        con8.failure_type.as_deref(),
        Some("PERF_REGRESSION"),
        "{cases:?}"
    );
    assert!(
        con8.message
            .as_deref()
            .unwrap()
            .contains("TOKEN_THROUGHPUT 320.000 against baseline 320000.000"),
        "{con8:?}"
    );
    let con1 = cases.iter().find(|c| c.name == "con1").unwrap();
    assert_eq!(con1.message, None);
    let check = cases.iter().find(|c| c.name == "perf check").unwrap();
    assert_eq!(check.failure_type.as_deref(), Some("PERF_REGRESSION"));
}

#[test]
fn a_run_checked_against_its_own_csv_passes_and_the_csv_has_trtllms_layout() {
    let run = RunDir::new("own-csv");
    run.write_results(&[point(1, 10.0), point(8, 40.0)]);
    assert_eq!(run.finish(&passed(), None), disagg_core::exit::PASS);
    let csv = run.read("perf_script_test_results.csv");
    assert_eq!(
        csv.lines().next().unwrap(),
        "network_name,network_hash,sm_clk,mem_clk,gpu_idx,device_subtype,perf_case_name,test_name,\
         original_test_name,perf_metric,total_time__sec,start_timestamp,end_timestamp,state,\
         command,threshold,absolute_threshold,metric_type"
    );
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let names: Vec<String> = rdr.records().map(|r| r.unwrap()[6].to_string()).collect();
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (32, 32));
    assert!(
        csv.contains("disagg bench --url <router> --endpoint /v1/completions"),
        "{csv}"
    );

    let baseline = run.path().join("own.csv");
    std::fs::copy(run.path().join("perf_script_test_results.csv"), &baseline).unwrap();
    assert_eq!(
        run.finish(&passed(), Some(&baseline)),
        disagg_core::exit::PASS
    );
    let check = run.read("perf_check.txt");
    assert!(
        check.starts_with("perf check: passed (0 of 32 compared metrics regressed)"),
        "{check}"
    );
    assert!(!check.contains("not measured"), "{check}");
}

/// Interrupted after its last point, before it ended: every point measured, every role up,
/// yet no green page: a failing `run` testcase says it was interrupted, and the exit code is
/// the signal's.
#[test]
fn a_run_interrupted_after_its_last_point_is_no_green_junit() {
    let run = RunDir::new("interrupted-late");
    // Every point quickstart.yaml plans (`concurrency: [1, 8]`).
    let concurrencies = run.plan.benchmark.concurrency.clone().unwrap_or_default();
    assert_eq!(concurrencies, [1, 8]);
    let points: Vec<_> = concurrencies.iter().map(|&c| point(c, 10.0)).collect();
    run.write_results(&points);
    let mut outcome = passed();
    outcome.result = disagg_harness::outcome::RunResult::Interrupted;
    assert_eq!(run.finish(&outcome, None), disagg_core::exit::INTERRUPTED);
    let cases = junit_cases(&run.path().join("results.xml"));
    let r = cases
        .iter()
        .find(|c| c.name == "run")
        .expect("a run testcase");
    assert_eq!(r.failure_type.as_deref(), Some("INTERRUPTED"), "{cases:?}");
    assert!(
        r.message
            .as_deref()
            .unwrap()
            .contains("interrupted after its last point"),
        "{cases:?}"
    );
    assert_jenkins_valid(&run.path().join("results.xml"));
}
