//! A run folder planned from a real case, with results written here, and readers for what the
//! reports leave in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use disagg_bench::{LatencyStats, Metrics, PointId, PointReport, ResultsFile};
use disagg_core::Plan;
use disagg_harness::outcome::{Failure, Outcome, RoleOutcome, RunResult};
use disagg_harness::perf::BaselineRow;

/// A temporary run folder with the quickstart case's plan, removed on drop.
pub struct RunDir {
    dir: PathBuf,
    pub plan: Plan,
    /// Removes the folder when the test ends, passed or failed.
    _tmp: tempfile::TempDir,
}

impl RunDir {
    pub fn new(tag: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("disagg-reports-{tag}-"))
            .tempdir()
            .unwrap();
        // Laid out as `disagg run` lays it out, so the run is recorded in a results store (the
        // temporary workspace's), as every run is.
        let dir = tmp.path().join("disagg_logs").join(tag).join("RUN1");
        std::fs::create_dir_all(&dir).unwrap();
        let case_path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.yaml");
        let text = std::fs::read_to_string(&case_path).unwrap();
        let case = disagg_core::parse_case(&text, &case_path).unwrap();
        let plan = disagg_core::plan::build(&case, "RUN1", &dir, Path::new("disagg"));
        // Every role ran: its log is there (empty), as a launched role's is, under the plan's
        // names and those of the outcomes below.
        for r in &plan.roles {
            std::fs::write(dir.join(&r.log), "").unwrap();
        }
        for r in ["CTX_0", "GEN_0", "DISAGG_SERVER", "BENCHMARK"] {
            std::fs::write(dir.join(format!("{}.log", r.to_lowercase())), "").unwrap();
        }
        Self {
            dir,
            plan,
            _tmp: tmp,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Writes results.json as the BENCHMARK role does.
    pub fn write_results(&self, points: &[PointReport]) {
        let invalid: Vec<String> = points.iter().filter_map(|p| p.validity.reason()).collect();
        let file = ResultsFile {
            run_id: Some("RUN1".into()),
            config_name: Some(self.plan.config_name.to_string()),
            valid: invalid.is_empty(),
            invalid_reason: (!invalid.is_empty()).then(|| invalid.join("; ")),
            warnings: vec![],
            points: points.to_vec(),
        };
        std::fs::write(
            self.dir.join("results.json"),
            serde_json::to_vec_pretty(&file).unwrap(),
        )
        .unwrap();
    }

    /// The reports, as after a run; returns the exit code.
    pub fn finish(&self, outcome: &Outcome, baseline: Option<&Path>) -> i32 {
        let rows: Option<(PathBuf, Vec<BaselineRow>)> = baseline.map(|b| {
            (
                b.to_path_buf(),
                disagg_harness::perf::read_baseline(b).unwrap(),
            )
        });
        disagg_harness::run::finish(&self.plan, outcome, rows.as_ref(), baseline.is_none())
    }
}

fn roles(failure: Option<(&str, &str)>) -> Vec<RoleOutcome> {
    ["CTX_0", "GEN_0", "DISAGG_SERVER", "BENCHMARK"]
        .iter()
        .map(|r| RoleOutcome {
            role: r.parse().unwrap(),
            log: format!("{}.log", r.to_lowercase()),
            failure: failure
                .filter(|(role, _)| role == r)
                .map(|(_, why)| why.to_string()),
        })
        .collect()
}

pub fn passed() -> Outcome {
    Outcome {
        result: RunResult::Passed,
        roles: roles(None),
        duration_s: 12.0,
    }
}

pub fn failed_by_benchmark() -> Outcome {
    let why = "the results are invalid";
    Outcome {
        result: RunResult::Failed(Failure {
            role: Some("BENCHMARK".into()),
            reason: why.into(),
            timeout: false,
        }),
        roles: roles(Some(("BENCHMARK", why))),
        duration_s: 12.0,
    }
}

/// A valid closed-loop point at concurrency `c` with the given request throughput.
pub fn point(c: u32, req_per_s: f64) -> PointReport {
    let lat = |base: f64| LatencyStats {
        mean_ms: base,
        median_ms: base,
        std_ms: 1.0,
        p99_ms: base * 1.5,
        percentiles: vec![],
    };
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    PointReport {
        point: PointId::closed(c),
        started_at: t0,
        ended_at: t0 + std::time::Duration::from_secs(3),
        num_prompts: u64::from(c) * 4,
        metrics: Metrics {
            duration_s: 3.0,
            completed: u64::from(c) * 4,
            total_input_tokens: u64::from(c) * 4 * 256,
            total_output_tokens: u64::from(c) * 4 * 32,
            request_throughput: req_per_s,
            output_throughput: req_per_s * 32.0,
            total_token_throughput: req_per_s * 288.0,
            user_throughput: 100.0,
            ttft: lat(30.0),
            tpot: lat(10.0),
            itl: lat(10.0),
            e2el: lat(340.0),
            ..Default::default()
        },
        error_counts: Default::default(),
        hdr_percentiles_ms: Default::default(),
        validity: Default::default(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub message: Option<String>,
    pub failure_type: Option<String>,
    pub skipped: bool,
}

/// Every testcase of results.xml with its failure (message and type) or skip.
pub fn junit_cases(path: &Path) -> Vec<Case> {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases: Vec<Case> = Vec::new();
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("results.xml is not XML: {e}\n{xml}"))
        {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let attr = |k: &str| {
                    e.attributes()
                        .filter_map(|a| a.ok())
                        .find(|a| a.key.as_ref() == k.as_bytes())
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"testcase" => cases.push(Case {
                        name: attr("name").unwrap(),
                        message: None,
                        failure_type: None,
                        skipped: false,
                    }),
                    b"failure" => {
                        let last = cases.last_mut().expect("failure inside a testcase");
                        last.message = Some(attr("message").unwrap_or_default());
                        last.failure_type = attr("type");
                    }
                    b"skipped" => {
                        cases.last_mut().expect("skipped inside a testcase").skipped = true
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    cases
}

/// Whether this run must have every tool its tests need (CI), rather than skip what is missing.
pub fn ci_requires_tools() -> bool {
    ["CI", "DISAGG_REQUIRE_SLURM"].iter().any(|v| {
        std::env::var(v)
            .map(|x| matches!(x.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    })
}

/// Validates a JUnit file against Jenkins' xunit schema (`tests/fixtures/junit-10.xsd`) with
/// xmllint. Without xmllint the check fails under CI and is reported as not run elsewhere.
pub fn assert_jenkins_valid(xml: &Path) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit-10.xsd");
    let out = match std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(xml)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !ci_requires_tools() => {
            eprintln!(
                "XMLLINT TEST DID NOT RUN: xmllint is not installed (apt-get install libxml2-utils)"
            );
            return;
        }
        Err(e) => panic!("xmllint cannot run ({e}); CI needs it: apt-get install libxml2-utils"),
    };
    assert!(
        out.status.success(),
        "{} does not validate against junit-10.xsd:\n{}\n{}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(xml).unwrap_or_default()
    );
}
