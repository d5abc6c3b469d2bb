//! Truth under failure, on real processes over loopback: a hung role is named as the root cause,
//! nothing of a run outlives it, and interrupted runs keep what they finished.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

/// A `disagg run` in the background, killed and reaped if the test ends early.
struct Background {
    child: Option<Child>,
}

impl Background {
    fn start(case: &Path, ws: &Path) -> Self {
        let child = Command::new(DISAGG)
            .args([
                "run",
                case.to_str().unwrap(),
                "--workspace",
                ws.to_str().unwrap(),
            ])
            .env_remove("SKIP_PERF_CHECK")
            .env_remove("WORKSPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child: Some(child) }
    }

    /// Waits for the run to end (bounded): (exit code, stdout, stderr).
    fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let mut child = self.child.take().unwrap();
        let until = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "disagg run did not end within {limit:?}\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (bounded) until `ready(run_dir)` holds for the config's run; returns the run folder.
fn wait_for(ws: &Path, config: &str, what: &str, ready: impl Fn(&Path) -> bool) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dir) = runs(ws, config).pop() {
            if ready(&dir) {
                return dir;
            }
        }
        assert!(Instant::now() < until, "{config}: {what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The benchmark is past its canary, so the sweep is running.
fn sweeping(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("benchmark.log")).is_ok_and(|l| l.contains("canary"))
}

#[test]
fn a_stopped_worker_or_router_fails_the_run_within_15s_named_as_the_root_cause() {
    for role in ["CTX_0", "GEN_0", "DISAGG_SERVER"] {
        let ws = TempDir::new("hung");
        let config = format!("hung-{}", role.to_ascii_lowercase().replace('_', "-"));
        let case = CaseSpec {
            name: &config,
            gen_args: "{itl: 20ms}",
            concurrency: "[2]",
            rounds: 200,
            osl: 32,
            ..Default::default()
        }
        .write(ws.path(), "c.yaml");
        let run = Background::start(&case, ws.path());
        let dir = wait_for(ws.path(), &config, "the sweep", sweeping);
        std::thread::sleep(Duration::from_millis(500));
        // The published pid: the engine for a worker, the router's own process for the router.
        let pid = json(&dir.join(format!("rendezvous/{role}.json")))["pid"]
            .as_i64()
            .unwrap();
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        let stopped = Instant::now();
        let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
        let took = stopped.elapsed();
        let show = format!("{role}: exit {code}\n{stdout}\n{stderr}");
        println!("{role}: exit {code} {took:?} after the stop");
        assert_eq!(code, 1, "{show}");
        assert!(
            took < Duration::from_secs(15),
            "{role}: took {took:?}\n{show}"
        );
        let status = json(&dir.join("rendezvous/status.json"));
        assert_eq!(status["role"], role, "{status}");
        let named = format!("{role} stopped answering /health at ");
        assert!(
            status["reason"].as_str().unwrap().starts_with(&named),
            "{status}"
        );
        let cases = junit_cases(&dir.join("results.xml"));
        let stayed_up = cases
            .iter()
            .find(|c| c.0 == format!("{role} stayed up"))
            .unwrap();
        assert!(
            stayed_up.1.as_deref().unwrap_or("").starts_with(&named),
            "{cases:?}"
        );
        assert!(
            cases
                .iter()
                .filter(|c| c.0.ends_with("stayed up") && c.0 != format!("{role} stayed up"))
                .all(|c| c.1.is_none()),
            "only {role} is blamed: {cases:?}"
        );
        assert!(stdout.contains(&format!("FAILED: {named}")), "{show}");
        assert_nothing_left(&dir);
    }
}

#[test]
fn a_sim_that_hangs_mid_run_is_named_not_the_benchmark() {
    let ws = TempDir::new("simhang");
    let case = CaseSpec {
        name: "simhang",
        gen_args: "{hang_after_requests: 10, itl: 5ms}",
        concurrency: "[2]",
        rounds: 50,
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "simhang");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .starts_with("GEN_0 stopped answering /health at "),
        "{status}"
    );
    assert!(r.elapsed < Duration::from_secs(30), "{}", r.show());
    assert_nothing_left(&dir);
}
