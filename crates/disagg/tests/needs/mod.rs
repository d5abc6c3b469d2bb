//! The test harness of the tests that need a service this machine may lack (a Slurm), built on
//! libtest-mimic (`harness = false` in Cargo.toml) because libtest cannot do what they need:
//! its `#[ignore]` is fixed when the test is compiled (a build script or cfg that looks for
//! `sinfo` would be wrong on the next machine, or after `dev-slurm.sh up`), and a test that
//! returns early when the service is missing counts as *passed*, so a machine without Slurm
//! reported those tests green.
//!
//! Here the test binary asks once, when it runs, whether the service answers:
//! - it answers: every test runs;
//! - it does not, and `DISAGG_REQUIRE_SLURM=1` (CI): every test runs and fails, saying why;
//! - it does not, otherwise: the tests are marked ignored, so `cargo test` prints
//!   `... ignored` for each and counts them in its `N ignored` summary, followed by a `note:`
//!   line with the reason (`cargo nextest` lists them as skipped, for the same reason).
//!   `--include-ignored` runs them anyway, and they fail with the reason.
//!
//! Tests in such a file that need no service are in a group without a check, and always run.

use std::process::Command;
use std::sync::Arc;

/// The test of this harness itself, in every file that uses it.
const SELF_TEST: &str = "without_the_service_these_tests_are_ignored_and_required_they_fail";

/// A test: its name (what `cargo test NAME` filters on) and its body, which panics to fail.
pub type Test = (&'static str, fn());

/// `[("name", name), ...]` for test functions.
#[macro_export]
macro_rules! tests {
    ($($f:ident),* $(,)?) => {
        vec![$((stringify!($f), $f as fn())),*]
    };
}

/// Whether the service answers; `Err` says why not and how to bring it up.
pub type Check = fn() -> Result<(), String>;

/// Tests that need one service (`check` looks for it), or none (`check: None`).
pub struct Needs {
    /// What they need, for the reason printed when they are ignored ("a Slurm").
    pub service: &'static str,
    pub check: Option<Check>,
    pub tests: Vec<Test>,
}

/// Runs every group of tests as described in the module docs, then exits with libtest's exit
/// code. `source` is the test file's text: a `#[test]` function in it would never run (this
/// harness is not libtest), so one is a failing test of its own.
pub fn main(source: &'static str, groups: Vec<Needs>) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let required = std::env::var("DISAGG_REQUIRE_SLURM").is_ok_and(|v| v == "1");
    let mut trials = Vec::new();
    let mut notes = Vec::new();
    let mut needing = 0;
    // What the self-test must find: each group's note, when its service is out of reach.
    let mut expected_notes = Vec::new();
    for group in groups {
        let missing: Option<Arc<str>> = group.check.and_then(|c| c().err()).map(Arc::from);
        let ignore = missing.is_some() && !required;
        if group.check.is_some() {
            needing += group.tests.len();
            expected_notes.push(format!(
                "note: {} test(s) ignored: they need {}, and ",
                group.tests.len(),
                group.service
            ));
        }
        if let (true, Some(why)) = (ignore, &missing) {
            notes.push(format!(
                "note: {} test(s) ignored: they need {}, and {why}; DISAGG_REQUIRE_SLURM=1 \
                 makes them run (and fail without it)",
                group.tests.len(),
                group.service
            ));
        }
        for (name, body) in group.tests {
            let missing = missing.clone();
            let trial = libtest_mimic::Trial::test(name, move || match missing {
                Some(why) if required => Err(format!("DISAGG_REQUIRE_SLURM=1 but {why}").into()),
                Some(why) => Err(format!("run with --include-ignored, but {why}").into()),
                None => {
                    body();
                    Ok(())
                }
            });
            trials.push(trial.with_ignored_flag(ignore));
        }
    }
    trials.push(libtest_mimic::Trial::test(
        "every_test_here_is_listed_in_main",
        move || match source.lines().position(|l| l.trim() == "#[test]") {
            Some(i) => Err(format!(
                "line {}: #[test] functions never run under this harness; drop the attribute \
                 and list the function in main's tests![...]",
                i + 1
            )
            .into()),
            None => Ok(()),
        },
    ));
    trials.push(libtest_mimic::Trial::test(SELF_TEST, move || {
        self_test(needing, &expected_notes)
    }));
    let listing = args.list;
    let conclusion = libtest_mimic::run(&args, trials);
    if !listing && conclusion.num_ignored > 0 {
        for note in notes {
            println!("{note}");
        }
        println!();
    }
    conclusion.exit()
}

/// Runs this test binary again (all but this test) with `sinfo` out of reach (an empty PATH):
/// the tests that need the service must be reported as ignored, with the reason, and under
/// `DISAGG_REQUIRE_SLURM=1` they must fail, saying why.
fn self_test(needing: usize, notes: &[String]) -> Result<(), libtest_mimic::Failed> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let run = |required: &str| {
        Command::new(&exe)
            .args(["--skip", SELF_TEST, "--test-threads", "1"])
            .env("PATH", "/nonexistent")
            .env("DISAGG_REQUIRE_SLURM", required)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))
    };
    let show = |o: &std::process::Output| {
        format!(
            "exit {:?}\n{}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let absent = run("0")?;
    let out = String::from_utf8_lossy(&absent.stdout);
    let summary = format!("0 failed; {needing} ignored;");
    if absent.status.code() != Some(0)
        || !out.contains(&summary)
        || !notes.iter().all(|n| out.contains(n.as_str()))
    {
        return Err(format!(
            "without sinfo: want `{summary}` and {notes:?}:\n{}",
            show(&absent)
        )
        .into());
    }
    let required = run("1")?;
    let out = String::from_utf8_lossy(&required.stdout);
    let summary = format!("{needing} failed; 0 ignored;");
    if required.status.code() != Some(101)
        || !out.contains(&summary)
        || !out.contains("DISAGG_REQUIRE_SLURM=1 but ")
    {
        return Err(format!(
            "required, without sinfo: want `{summary}`:\n{}",
            show(&required)
        )
        .into());
    }
    Ok(())
}
