//! Reports written after every launched run: `results.xml` (JUnit), `summary.md`, and the
//! summary table printed at the end.
//!
//! JUnit layout: one testsuite per case; one testcase per concurrency point; one per role
//! ("stayed up"; BENCHMARK's passes when its only failure is its points' verdict, which their
//! testcases carry); one for the perf check. A failure carries the reason, a `type`, and the last
//! [`TAIL_LINES`] lines of the log that explains it. A point that regressed fails on its own
//! testcase (type `PERF_REGRESSION`) as well as on the perf check's.
//!
//! The XML is what Jenkins' xunit plugin accepts (its `junit-10.xsd`): [`to_xml`] writes the
//! report and keeps on `<testsuites>` only the attributes that schema allows.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use disagg_bench::{PointId, PointReport};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::outcome::{Outcome, RunResult};
use crate::perf::PerfReport;

pub const TAIL_LINES: usize = 50;

/// What the perf check said.
#[derive(Debug, Clone)]
pub enum PerfOutcome {
    /// `SKIP_PERF_CHECK=true` or `--skip-perf-check`.
    Skipped,
    /// The case has no baseline.
    NoBaseline,
    /// The run failed, so there was nothing trustworthy to compare.
    NotRun,
    Checked(PerfReport),
    /// `perf.baseline: history`: compared with the store's history, or skipped with the reason.
    History(crate::history_gate::HistoryReport),
}

impl PerfOutcome {
    /// A gate said the run regressed.
    pub fn regressed(&self) -> bool {
        match self {
            PerfOutcome::Checked(r) => r.regressed(),
            PerfOutcome::History(h) => h.regressed(),
            _ => false,
        }
    }

    /// Why the gate the case asks for could not be applied (the history could not be read):
    /// the run fails on it.
    pub fn not_done(&self) -> Option<&str> {
        match self {
            PerfOutcome::History(h) if h.not_done => h.skipped.as_deref(),
            _ => None,
        }
    }

    /// The check's verdict in one word, as `outcome.json` gives it beside the run's result:
    /// `regressed`, `passed`, `not_done`, `skipped`, `no_baseline` or `not_run`.
    pub fn verdict(&self) -> &'static str {
        if self.regressed() {
            return "regressed";
        }
        if self.not_done().is_some() {
            return "not_done";
        }
        match self {
            PerfOutcome::Skipped => "skipped",
            PerfOutcome::NoBaseline => "no_baseline",
            PerfOutcome::NotRun => "not_run",
            PerfOutcome::History(h) if h.skipped.is_some() || h.checked_none() => "skipped",
            PerfOutcome::Checked(_) | PerfOutcome::History(_) => "passed",
        }
    }

    /// `perf_check.txt`.
    pub fn render(&self) -> String {
        match self {
            PerfOutcome::Skipped => {
                "perf check: skipped (SKIP_PERF_CHECK or --skip-perf-check)\n".to_string()
            }
            PerfOutcome::NoBaseline => {
                "perf check: no baseline (perf.baseline is not set)\n".to_string()
            }
            PerfOutcome::NotRun => {
                "perf check: not run: the run did not pass (it failed or was interrupted)\n"
                    .to_string()
            }
            PerfOutcome::Checked(rep) => rep.render(),
            PerfOutcome::History(h) => h.render(),
        }
    }
}

use crate::logtext::tail;

/// Why the run ended before measuring everything: "interrupted", or the failure's reason.
fn cause(outcome: &Outcome) -> String {
    match &outcome.result {
        RunResult::Failed(f) => f.reason.clone(),
        RunResult::Interrupted => "the run was interrupted".into(),
        RunResult::Passed => "the benchmark reported no result for it".into(),
    }
}

/// The planned points with no result, in order, each with why: the first is the point the run
/// ended in (`unfinished: ...`), the others never started; all of them never started when the
/// benchmark began none (no point measured, and it never published its progress: the run
/// ended before, or while the workers started).
pub fn unmeasured(
    run_dir: &Path,
    planned: &[PointId],
    points: &[PointReport],
    outcome: &Outcome,
) -> Vec<(String, String)> {
    let cause = cause(outcome);
    // Begun: a point measured, the benchmark's progress published, or its log saying a point
    // started (a point cut short within the progress file's first second left only that).
    let began = !points.is_empty()
        || disagg_core::plan::rendezvous_dir(run_dir)
            .join(crate::rendezvous::PROGRESS_FILE)
            .exists()
        || crate::logtext::head_text(
            &run_dir.join(disagg_core::RoleName::Benchmark.log_file()),
            1 << 20,
        )
        .is_some_and(|log| log.contains("disagg bench: point "));
    planned
        .iter()
        .map(PointId::label)
        .filter(|l| !points.iter().any(|p| p.point.label() == *l))
        .enumerate()
        .map(|(i, label)| {
            let why = if i == 0 && began {
                format!("unfinished: {cause}")
            } else {
                format!("not started: {cause}")
            };
            (label, why)
        })
        .collect()
}

/// Builds `results.xml`. `planned` are the points the case asked for; those without a result
/// are reported as not measured.
pub fn junit(
    config: &str,
    run_dir: &Path,
    outcome: &Outcome,
    points: &[PointReport],
    planned: &[PointId],
    perf: &PerfOutcome,
) -> Report {
    let mut suite = TestSuite::new(config.to_string());
    suite.set_time(Duration::from_secs_f64(outcome.duration_s));
    // Jenkins reads a classname's package up to its last dot: a config name's own dots
    // (`llama-3.1-8b…`, a sweep point's `gen.engine_args.itl-2ms`) would split it into
    // packages and leave a stub as the class.
    let classname = format!("disagg.{}", config.replace('.', "_"));

    // Concurrency points, each with the verdict the bench gave it when it was measured, and its
    // own regressions.
    for p in points {
        let regressions = match perf {
            PerfOutcome::Checked(r) => r.regressions_of(&p.point.label()),
            PerfOutcome::History(h) => h.regressions_of(&p.point.label()),
            _ => Vec::new(),
        };
        let status = match p.validity.problems.first() {
            None if regressions.is_empty() => TestCaseStatus::success(),
            None => {
                let why = format!("performance regression: {}", regressions.join("; "));
                let log = crate::point_log_name(p);
                let details = format!(
                    "{why}\n--- {log} ---\n{}",
                    tail(&run_dir.join(&log), TAIL_LINES)
                );
                not_passed(
                    NonSuccessKind::Failure,
                    why,
                    "PERF_REGRESSION",
                    Some(details),
                )
            }
            Some(first) => {
                let why = p.validity.reason().unwrap_or_default();
                let log = crate::point_log_name(p);
                let details = format!(
                    "{why}\n--- last lines of {log} ---\n{}",
                    tail(&run_dir.join(&log), TAIL_LINES)
                );
                not_passed(
                    NonSuccessKind::Failure,
                    why,
                    first.kind.junit_type(),
                    Some(details),
                )
            }
        };
        let mut tc = TestCase::new(p.point.label(), status);
        tc.set_classname(classname.clone());
        tc.set_time(Duration::from_secs_f64(p.metrics.duration_s.max(0.0)));
        suite.add_test_case(tc);
    }
    // Points the run ended before measuring (interrupted, timed out, a role failed): a failure
    // each, the first one marked unfinished, so CI shows what was not measured.
    let missing = unmeasured(run_dir, planned, points, outcome);
    for (label, why) in &missing {
        let s = not_passed(NonSuccessKind::Failure, why.clone(), "NOT_MEASURED", None);
        let mut tc = TestCase::new(label.clone(), s);
        tc.set_classname(classname.clone());
        suite.add_test_case(tc);
    }
    // Interrupted once every point was measured: nothing above fails, yet the run did not end
    // as planned (no teardown, no verdict of its own), and a CI page must not read green.
    if outcome.result == RunResult::Interrupted && missing.is_empty() && !points.is_empty() {
        let s = not_passed(
            NonSuccessKind::Failure,
            "the run was interrupted after its last point, before it ended: its results are \
             not valid (results.json)"
                .into(),
            "INTERRUPTED",
            None,
        );
        let mut tc = TestCase::new("run", s);
        tc.set_classname(classname.clone());
        suite.add_test_case(tc);
    }
    if points.is_empty() && missing.is_empty() {
        let s = not_passed(
            NonSuccessKind::Failure,
            format!("not measured: {}", cause(outcome)),
            "NOT_MEASURED",
            None,
        );
        let mut tc = TestCase::new("benchmark", s);
        tc.set_classname(classname.clone());
        suite.add_test_case(tc);
    }

    // Roles.
    let root = match &outcome.result {
        RunResult::Failed(f) => Some(f),
        _ => None,
    };
    // The benchmark's failure that is only its points' verdict (requests failed, a validity
    // gate), with every planned point reported: it ran to its end, and the points' testcases
    // carry the verdict. Its "stayed up" failing too said one cause three times.
    let verdict = missing.is_empty().then(|| {
        points
            .iter()
            .filter_map(|p| p.validity.reason())
            .collect::<Vec<_>>()
            .join("; ")
    });
    for r in &outcome.roles {
        let failure = r
            .failure
            .clone()
            .or_else(|| {
                root.filter(|f| f.role.as_deref() == Some(r.role.to_string().as_str()))
                    .map(|f| f.reason.clone())
            })
            .filter(|why| {
                r.role != disagg_core::RoleName::Benchmark
                    || verdict.as_deref().is_none_or(|v| v.is_empty() || why != v)
            });
        let status = match failure {
            // Never launched (the job ended in its setup, or before it started): it did not
            // stay up, nor fail; its testcase says so instead of passing.
            None if outcome.result != RunResult::Passed && !run_dir.join(&r.log).exists() => {
                let mut s = TestCaseStatus::skipped();
                if let TestCaseStatus::Skipped { message, ty, .. } = &mut s {
                    *message = Some(format!("{} never started: {}", r.role, cause(outcome)).into());
                    *ty = Some("NOT_STARTED".into());
                }
                s
            }
            None => TestCaseStatus::success(),
            Some(why) => {
                let timeout = root.is_some_and(|f| {
                    f.timeout && f.role.as_deref() == Some(r.role.to_string().as_str())
                });
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                if let TestCaseStatus::NonSuccess {
                    message,
                    ty,
                    description,
                    ..
                } = &mut s
                {
                    // A role that failed on another's account (the benchmark's requests to a
                    // hung worker) says whose: on a dashboard it must not read as the cause.
                    let root_role = root
                        .and_then(|f| f.role.as_deref())
                        .filter(|rr| *rr != r.role.to_string());
                    *message = Some(
                        match root_role {
                            Some(rr) => {
                                format!("{why} (the run's root cause is {rr}: see its testcase)")
                            }
                            None => why.clone(),
                        }
                        .into(),
                    );
                    *ty = Some(if timeout { "TIMEOUT" } else { "FAILURE" }.into());
                    *description = Some(
                        format!(
                            "{why}\n--- last {TAIL_LINES} lines of {} ---\n{}",
                            r.log,
                            tail(&run_dir.join(&r.log), TAIL_LINES)
                        )
                        .into(),
                    );
                }
                s
            }
        };
        let mut tc = TestCase::new(format!("{} stayed up", r.role), status);
        tc.set_classname(classname.clone());
        suite.add_test_case(tc);
    }
    // Failures that belong to no role (setup, the job deadline).
    if let Some(f) = root {
        let is_role = outcome
            .roles
            .iter()
            .any(|r| f.role.as_deref() == Some(r.role.to_string().as_str()));
        if !is_role {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let log = if matches!(f.role.as_deref(), Some("SETUP" | "CONTAINER")) {
                "install.log"
            } else {
                ""
            };
            if let TestCaseStatus::NonSuccess {
                message,
                ty,
                description,
                ..
            } = &mut s
            {
                *message = Some(f.reason.clone().into());
                *ty = Some(if f.timeout { "TIMEOUT" } else { "FAILURE" }.into());
                if !log.is_empty() {
                    *description = Some(
                        format!(
                            "{}\n--- last lines of {log} ---\n{}",
                            f.reason,
                            tail(&run_dir.join(log), TAIL_LINES)
                        )
                        .into(),
                    );
                }
            }
            let mut tc = TestCase::new(f.role.clone().unwrap_or_else(|| "job".into()), s);
            tc.set_classname(classname.clone());
            suite.add_test_case(tc);
        }
    }

    // The perf check.
    let status = match perf {
        PerfOutcome::Skipped => {
            skipped("perf check skipped (SKIP_PERF_CHECK or --skip-perf-check)")
        }
        PerfOutcome::NoBaseline => skipped("no baseline (perf.baseline is not set)"),
        PerfOutcome::NotRun => {
            skipped("not run: the run did not pass (it failed or was interrupted)")
        }
        PerfOutcome::History(h) if h.not_done => not_passed(
            NonSuccessKind::Error,
            format!(
                "the perf check could not be done: {}",
                h.skipped.as_deref().unwrap_or("")
            ),
            "PERF_CHECK_NOT_DONE",
            Some(h.render()),
        ),
        PerfOutcome::History(h) if h.skipped.is_some() => skipped(&format!(
            "perf check skipped: {}",
            h.skipped.as_deref().unwrap_or("")
        )),
        // Read, but nothing judged (every metric too noisy to gate): not a pass either.
        PerfOutcome::History(h) if h.checked_none() => skipped(&format!(
            "perf check skipped: no metric could be checked ({} of {} too noisy to gate)",
            h.too_noisy(),
            h.rows.len()
        )),
        PerfOutcome::History(h) if h.regressed() => not_passed(
            NonSuccessKind::Failure,
            "performance regression against the history".into(),
            "PERF_REGRESSION",
            Some(h.render()),
        ),
        PerfOutcome::History(h) => {
            let mut tc_out = TestCase::new("perf check", TestCaseStatus::success());
            tc_out.set_classname(classname.clone());
            tc_out.set_system_out(h.render());
            suite.add_test_case(tc_out);
            return finish(suite);
        }
        PerfOutcome::Checked(r) if r.regressed() => not_passed(
            NonSuccessKind::Failure,
            "performance regression".into(),
            "PERF_REGRESSION",
            Some(r.render()),
        ),
        PerfOutcome::Checked(r) => {
            let mut s = TestCaseStatus::success();
            let _ = &mut s;
            let mut tc_out = TestCase::new("perf check", s);
            tc_out.set_classname(classname.clone());
            tc_out.set_system_out(r.render());
            suite.add_test_case(tc_out);
            return finish(suite);
        }
    };
    let mut tc = TestCase::new("perf check", status);
    tc.set_classname(classname);
    suite.add_test_case(tc);
    finish(suite)
}

/// The report as XML that Jenkins' xunit plugin accepts. quick-junit writes `skipped` (and,
/// when set, `uuid`, `timestamp`, `disabled`) on `<testsuites>`, which `junit-10.xsd` does not
/// allow there; the counts stay on each `<testsuite>`, where it does, so nothing is lost.
pub fn to_xml(report: &Report) -> Result<String, std::io::Error> {
    use quick_xml::events::{BytesStart, Event};
    const ROOT_ATTRIBUTES: [&[u8]; 5] = [b"name", b"time", b"tests", b"failures", b"errors"];
    let xml = report.to_string().map_err(std::io::Error::other)?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut writer = quick_xml::Writer::new(Vec::new());
    loop {
        let event = reader.read_event().map_err(std::io::Error::other)?;
        let event = match event {
            Event::Eof => break,
            Event::Start(e) if e.name().as_ref() == b"testsuites" => {
                let mut root = BytesStart::new("testsuites");
                for a in e.attributes() {
                    let a = a.map_err(std::io::Error::other)?;
                    if ROOT_ATTRIBUTES.contains(&a.key.as_ref()) {
                        root.push_attribute(a);
                    }
                }
                Event::Start(root)
            }
            other => other,
        };
        writer.write_event(event).map_err(std::io::Error::other)?;
    }
    String::from_utf8(writer.into_inner()).map_err(std::io::Error::other)
}

/// One case's part of a combined JUnit file: its run's `results.xml`, or why it has none.
pub struct SuiteSource {
    pub name: String,
    pub results: Option<std::path::PathBuf>,
    /// The failure a case without a readable `results.xml` gets.
    pub missing: String,
}

/// Every case's `<testsuite>` under one `<testsuites>` (`disagg run --junit FILE`), with the
/// sums of their counts: what a CI's junit step reads in one file, none read twice through the
/// `latest` and sweep links a glob follows.
pub fn merge_junit(sources: &[SuiteSource]) -> Result<String, String> {
    use quick_xml::events::{BytesDecl, BytesStart, Event};
    let mut suites = quick_xml::Writer::new(Vec::new());
    let (mut tests, mut failures, mut errors) = (0u64, 0u64, 0u64);
    for s in sources {
        let xml = match s.results.as_ref().map(std::fs::read_to_string) {
            Some(Ok(text)) => text,
            _ => {
                let status =
                    not_passed(NonSuccessKind::Failure, s.missing.clone(), "NOT_RUN", None);
                let mut tc = TestCase::new("run", status);
                tc.set_classname(format!("disagg.{}", s.name.replace('.', "_")));
                let mut suite = TestSuite::new(s.name.clone());
                suite.add_test_case(tc);
                to_xml(&finish(suite)).map_err(|e| e.to_string())?
            }
        };
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut depth = 0usize;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("{}: {e}", s.name))?;
            match &event {
                Event::Eof => break,
                Event::Start(e) if e.name().as_ref() == b"testsuite" => {
                    depth += 1;
                    for a in e.attributes().flatten() {
                        let n = String::from_utf8_lossy(&a.value)
                            .parse::<u64>()
                            .unwrap_or(0);
                        match a.key.as_ref() {
                            b"tests" => tests += n,
                            b"failures" => failures += n,
                            b"errors" => errors += n,
                            _ => {}
                        }
                    }
                }
                Event::End(e) if e.name().as_ref() == b"testsuite" => {
                    suites
                        .write_event(event.clone())
                        .map_err(|e| e.to_string())?;
                    suites.get_mut().push(b'\n');
                    depth -= 1;
                    continue;
                }
                _ => {}
            }
            if depth > 0 {
                suites.write_event(event).map_err(|e| e.to_string())?;
            }
        }
    }
    let mut out = quick_xml::Writer::new(Vec::new());
    out.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(|e| e.to_string())?;
    out.get_mut().push(b'\n');
    let mut root = BytesStart::new("testsuites");
    root.push_attribute(("name", "disagg"));
    root.push_attribute(("tests", tests.to_string().as_str()));
    root.push_attribute(("failures", failures.to_string().as_str()));
    root.push_attribute(("errors", errors.to_string().as_str()));
    out.write_event(Event::Start(root))
        .map_err(|e| e.to_string())?;
    let mut text = String::from_utf8(out.into_inner()).map_err(|e| e.to_string())?;
    text.push('\n');
    text.push_str(&String::from_utf8(suites.into_inner()).map_err(|e| e.to_string())?);
    text.push_str("</testsuites>\n");
    Ok(text)
}

fn finish(suite: TestSuite) -> Report {
    let mut report = Report::new("disagg");
    report.add_test_suite(suite);
    report
}

/// A testcase that did not pass: its message, its type, and what to read under it.
fn not_passed(
    kind: NonSuccessKind,
    why: String,
    failure_type: &str,
    details: Option<String>,
) -> TestCaseStatus {
    let mut s = TestCaseStatus::non_success(kind);
    if let TestCaseStatus::NonSuccess {
        message,
        ty,
        description,
        ..
    } = &mut s
    {
        *message = Some(why.into());
        *ty = Some(failure_type.into());
        *description = details.map(Into::into);
    }
    s
}

fn skipped(why: &str) -> TestCaseStatus {
    let mut s = TestCaseStatus::skipped();
    if let TestCaseStatus::Skipped { message, .. } = &mut s {
        *message = Some(why.to_string().into());
    }
    s
}

/// The summary table printed at the end of a run and kept in `summary.md`.
/// The summary table: a row per measured point, then one per point not measured (`missing`,
/// from [`unmeasured`]).
/// `streamed`: the requests were streamed; without a stream each answer comes whole, so TTFT is
/// its whole latency (as benchmark_serving counts it) and TPOT and ITL are not measured (their
/// 0.00 read as infinitely fast tokens): dashes, and a line that says why.
pub fn summary_table(
    points: &[PointReport],
    missing: &[(String, String)],
    streamed: bool,
) -> String {
    let mut s = String::new();
    // Open-loop points are rates (`rate2`, `rateinf`), not concurrencies.
    let open = points.iter().any(|p| p.point.request_rate.is_some())
        || missing.iter().any(|(label, _)| label.starts_with("rate"));
    let _ = writeln!(
        s,
        "| {} | req/s | output tok/s | TTFT p50/p99 (ms) | TPOT p50/p99 (ms) | ITL p50/p99 (ms) | failed |",
        if open { "point" } else { "concurrency" }
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let m = &p.metrics;
        // No request completed: there are no latencies, and 0.0 ms would read as fast ones.
        if m.completed == 0 {
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.1} | — | — | — | {} |",
                p.point.label().trim_start_matches("con"),
                m.request_throughput,
                m.output_throughput,
                m.failed,
            );
            continue;
        }
        let pair = |l: &disagg_bench::LatencyStats| match streamed {
            true => format!("{:.2} / {:.2}", l.median_ms, l.p99_ms),
            false => "—".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.1} | {:.1} / {:.1} | {} | {} | {} |",
            // The closed loop's concurrency as a number; an open-loop point as its rate.
            p.point.label().trim_start_matches("con"),
            m.request_throughput,
            m.output_throughput,
            m.ttft.median_ms,
            m.ttft.p99_ms,
            pair(&m.tpot),
            pair(&m.itl),
            m.failed,
        );
    }
    for (label, why) in missing {
        let _ = writeln!(
            s,
            "| {} | — | — | — | — | — | {why} |",
            label.trim_start_matches("con")
        );
    }
    if !streamed && !points.is_empty() {
        s.push_str(
            "(not streamed: TTFT is each request's whole latency; TPOT and ITL need a stream)\n",
        );
    }
    s
}

#[cfg(test)]
mod junit_tests {
    /// A config name's dots do not reach the classname, where Jenkins would read everything
    /// before the last dot as packages.
    #[test]
    fn a_config_names_dots_stay_out_of_the_classname() {
        let dir = tempfile::tempdir().unwrap();
        let outcome = crate::outcome::Outcome {
            result: crate::outcome::RunResult::Passed,
            roles: Vec::new(),
            duration_s: 1.0,
        };
        let points = [crate::perf::tests::point(4)];
        let report = super::junit(
            "llama-3.1-8b-bf16_0.25k",
            dir.path(),
            &outcome,
            &points,
            &[],
            &super::PerfOutcome::Skipped,
        );
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "llama-3.1-8b-bf16_0.25k");
        for tc in &suite.test_cases {
            assert_eq!(
                tc.classname.as_deref(),
                Some("disagg.llama-3_1-8b-bf16_0_25k")
            );
        }
    }
}

#[cfg(test)]
mod table_tests {
    /// A point none of whose requests completed has no latencies: dashes, not 0.0 ms, which
    /// would read as fast ones.
    #[test]
    fn a_point_with_nothing_completed_shows_no_latencies() {
        let good = crate::perf::tests::point(4);
        let mut failed = crate::perf::tests::point(8);
        failed.metrics = disagg_bench::Metrics {
            failed: 16,
            ..Default::default()
        };
        let table = super::summary_table(&[good, failed], &[], true);
        assert!(
            table.contains("| 4 | 10.00 | 320.0 | 12.0 / 20.0 |"),
            "{table}"
        );
        assert!(
            table.contains("| 8 | 0.00 | 0.0 | — | — | — | 16 |"),
            "{table}"
        );
        assert!(!table.contains("not streamed"), "{table}");
    }

    /// Without a stream, TPOT and ITL are not measured: dashes and a line saying why, not
    /// 0.00 ms.
    #[test]
    fn a_run_not_streamed_shows_no_tpot_or_itl() {
        let table = super::summary_table(&[crate::perf::tests::point(4)], &[], false);
        assert!(
            table.contains("| 4 | 10.00 | 320.0 | 12.0 / 20.0 | — | — | 0 |"),
            "{table}"
        );
        assert!(
            table.ends_with(
                "(not streamed: TTFT is each request's whole latency; TPOT and ITL need a stream)\n"
            ),
            "{table}"
        );
    }
}
