//! Sweeps end to end with the sim: expand, plan, validate, run, the sweep folder, and resume.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// ctx.count [1, 2] × gen.parallel.tp [1, 2]: the sweep.
fn write_sweep(dir: &Path) -> PathBuf {
    let spec = CaseSpec {
        name: "sw",
        gen_args: "{itl: 20ms}",
        concurrency: "[1, 2]",
        extra: "sweep:\n  ctx.count: [1, 2]\n  gen.parallel.tp: [1, 2]\n",
        ..Default::default()
    };
    spec.write(dir, "sweep.yaml")
}

fn sweep_json(ws: &Path) -> Option<serde_json::Value> {
    let p = ws.join("disagg_sweeps/sw/latest/sweep.json");
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn statuses(v: &serde_json::Value) -> Vec<String> {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plan_lists_every_point_with_its_name_and_gpus_and_validate_checks_them_all() {
    let dir = TempDir::new("sweep-plan");
    let case = write_sweep(dir.path());
    let r = disagg(&["plan", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    assert!(out.contains("sweep sw: 4 points"), "{out}");
    for (i, (name, gpus)) in [
        ("sw_ctx.count-1_gen.parallel.tp-1", 2),
        ("sw_ctx.count-1_gen.parallel.tp-2", 3),
        ("sw_ctx.count-2_gen.parallel.tp-1", 3),
        ("sw_ctx.count-2_gen.parallel.tp-2", 4),
    ]
    .iter()
    .enumerate()
    {
        let line = out
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], (i + 1).to_string(), "{line}");
        assert_eq!(cols[1], gpus.to_string(), "{line}");
    }
    let r = disagg(&["plan", case.to_str().unwrap(), "--point", "4"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(r.stdout().contains("GEN_0"), "{}", r.show());
    assert!(!r.stdout().contains("CTX_2"), "{}", r.show());
    let r = disagg(&["plan", case.to_str().unwrap(), "--point", "5"], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains("there is no point 5: the sweep has 4 (1 to 4)"),
        "{}",
        r.show()
    );

    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert_eq!(r.stdout().matches("ok: ").count(), 4, "{}", r.show());

    // Bad points stop everything before anything runs, naming the points and the key: the one
    // mistake they share, once.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        read(&case).replace("gen.parallel.tp: [1, 2]", "gen.parallel.tp: [1, 0]"),
    )
    .unwrap();
    let ws = dir.path().join("ws");
    let r = run(&bad, &ws, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    let err = r.stderr();
    assert!(
        err.contains(
            "sweep points 2 (ctx.count=1 gen.parallel.tp=0), 4 (ctx.count=2 gen.parallel.tp=0): \
             must be at least 1"
        ) && err.matches("key `gen.parallel.tp`").count() == 1,
        "{err}"
    );
    assert!(!ws.exists(), "nothing is created for a bad sweep");
}

#[test]
fn a_sweep_runs_four_points_and_resumes_after_a_kill_running_only_the_rest() {
    let dir = TempDir::new("sweep-run");
    let case = write_sweep(dir.path());
    let ws = dir.path().join("ws");
    let mut child = std::process::Command::new(DISAGG)
        .args(["run", case.to_str().unwrap(), "--workspace"])
        .arg(&ws)
        .env_remove("WORKSPACE")
        .env_remove("SKIP_PERF_CHECK")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the second point has passed.
    let until = Instant::now() + Duration::from_secs(180);
    let first = loop {
        if let Some(v) = sweep_json(&ws) {
            if statuses(&v).iter().filter(|s| *s == "passed").count() >= 2 {
                break v;
            }
        }
        if Instant::now() > until || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the sweep did not pass two points: {:?}", sweep_json(&ws));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "a sweep stopped by SIGTERM exits 143"
    );
    let killed = sweep_json(&ws).unwrap();
    let st = statuses(&killed);
    assert_eq!(&st[..2], ["passed", "passed"], "{killed}");
    assert!(
        st[2..].iter().all(|s| s == "interrupted" || s == "not_run"),
        "{killed}"
    );
    // Its report lists every point, those not run with their status.
    let html = read(&ws.join("disagg_sweeps/sw/latest/report.html"));
    let rows = html
        .split("<h2>Runs</h2>")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no runs table: {html}"));
    assert_eq!(rows.matches("<tr><td").count(), 4, "{rows}");
    assert!(html.contains("4 points from "), "{html}");
    if st[3] == "not_run" {
        assert!(
            rows.contains(">point 4</td>") && rows.contains(">not run</td>"),
            "{rows}"
        );
    }
    let first_runs: Vec<String> = first["points"].as_array().unwrap()[..2]
        .iter()
        .map(|p| p["run_dir"].as_str().unwrap().to_string())
        .collect();

    let r = run(&case, &ws, &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    assert_eq!(out.matches("not run again (--resume)").count(), 2, "{out}");
    assert_eq!(
        out.matches(": run ").count(),
        2,
        "only two points ran: {out}"
    );

    // One sweep folder, its four points passed, each linked to its own passed run folder.
    let sweeps: Vec<_> = std::fs::read_dir(ws.join("disagg_sweeps/sw"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "latest")
        .collect();
    assert_eq!(sweeps.len(), 1, "one sweep folder: {sweeps:?}");
    let v = sweep_json(&ws).unwrap();
    assert_eq!(statuses(&v), ["passed"; 4], "{v}");
    let points = v["points"].as_array().unwrap();
    let reused: Vec<bool> = points.iter().map(|p| p["reused"] == true).collect();
    assert_eq!(reused, [true, true, false, false], "{v}");
    for (p, run) in points[..2].iter().zip(&first_runs) {
        assert_eq!(
            p["run_dir"].as_str().unwrap(),
            run,
            "the earlier run is reused"
        );
    }
    let sweep_dir = ws.join("disagg_sweeps/sw/latest");
    let mut linked = Vec::new();
    for e in std::fs::read_dir(sweep_dir.join("points")).unwrap() {
        let e = e.unwrap();
        let target = std::fs::canonicalize(e.path()).unwrap();
        assert_eq!(read(&target.join("exit_code")).trim(), "0");
        assert!(target.join("results.json").is_file());
        assert_nothing_left(&target);
        linked.push(target);
    }
    linked.sort();
    linked.dedup();
    assert_eq!(linked.len(), 4, "four run folders: {linked:?}");
    let summary = read(&sweep_dir.join("summary.md"));
    assert!(
        summary.contains("4 points: 4 passed (2 reused)"),
        "{summary}"
    );
    // Every point has exactly one passed run: nothing ran twice.
    let passed: usize = points
        .iter()
        .map(|p| {
            runs(&ws, p["config_name"].as_str().unwrap())
                .iter()
                .filter(|d| {
                    std::fs::read_to_string(d.join("exit_code")).is_ok_and(|c| c.trim() == "0")
                })
                .count()
        })
        .sum();
    assert_eq!(passed, 4);

    // A copy of the workspace, the original gone: its sweep's report reads the copy's runs
    // through the folder's relative links, not the absolute paths sweep.json holds.
    let copy = dir.path().join("ws-copy");
    let cp = std::process::Command::new("cp")
        .args(["-a", ws.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::remove_dir_all(&ws).unwrap();
    let html = dir.path().join("copy.html");
    let r = disagg(
        &[
            "report",
            copy.join("disagg_sweeps/sw/latest").to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let page = read(&html);
    assert!(page.contains("4 with results"), "{}", r.show());
    assert!(!page.contains("cannot be read"), "{}", r.show());
}

/// A `--resume` does not continue in a sweep folder another `disagg run` is writing into (its
/// use lock is held): it writes a new one, saying so, and the other's summary stays its own.
#[test]
fn a_resume_does_not_share_a_sweep_folder_in_use() {
    let dir = TempDir::new("sweep-in-use");
    let ws = dir.path().join("ws");
    let case = CaseSpec {
        name: "sw",
        concurrency: "[1]",
        rounds: 1,
        extra: "sweep:\n  ctx.count: [1, 2]\n",
        ..Default::default()
    }
    .write(dir.path(), "sweep.yaml");
    let r = run(&case, &ws, &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let first = std::fs::canonicalize(ws.join("disagg_sweeps/sw/latest")).unwrap();
    // Another `disagg run` writing into it, as far as the lock says.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(first.join(".in-use.lock"))
        .unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let summary = read(&first.join("summary.md"));
    let r = run(&case, &ws, &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().contains(&format!(
            "{} is in use by another `disagg run`",
            first.display()
        )),
        "{}",
        r.show()
    );
    let second = std::fs::canonicalize(ws.join("disagg_sweeps/sw/latest")).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        read(&first.join("summary.md")),
        summary,
        "the folder in use"
    );
    drop(held);
    // Free again: the next --resume continues in the latest folder.
    let r = run(&case, &ws, &["--resume"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains(&format!("resuming in {}", second.display())),
        "{}",
        r.show()
    );
}

/// A `--resume` stopped before it reran a failed point leaves that point as it was (failed,
/// with its run folder), not "not run": QA saw a resume stopped in point 1 erase point 3's
/// failure from the sweep's reports.
#[test]
fn a_resume_stopped_early_keeps_the_points_it_did_not_reach() {
    let dir = TempDir::new("sweep-resume-stop");
    let case = CaseSpec {
        name: "sw",
        gen_args: "{fail_after_requests: \"{f}\"}",
        concurrency: "[1]",
        extra: "sweep:\n  f: [1, 1000, 2]\n",
        ..Default::default()
    }
    .write(dir.path(), "sweep.yaml");
    let ws = dir.path().join("ws");
    let r = run(&case, &ws, &[], &[("SKIP_PERF_CHECK", "true")]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let first = sweep_json(&ws).unwrap();
    assert_eq!(statuses(&first), ["failed", "passed", "failed"], "{first}");
    let third_run = first["points"][2]["run_dir"].as_str().unwrap().to_string();

    let mut child = std::process::Command::new(DISAGG)
        .args(["run", case.to_str().unwrap(), "--resume", "--workspace"])
        .arg(&ws)
        .env_remove("WORKSPACE")
        .env("SKIP_PERF_CHECK", "true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    while sweep_json(&ws).is_none_or(|v| statuses(&v)[0] != "running") {
        if Instant::now() > until || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the resume never reran point 1: {:?}", sweep_json(&ws));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    let after = sweep_json(&ws).unwrap();
    assert_eq!(
        statuses(&after),
        ["interrupted", "passed", "failed"],
        "{after}"
    );
    assert_eq!(after["points"][2]["run_dir"], third_run.as_str(), "{after}");
    let summary = read(&ws.join("disagg_sweeps/sw/latest/summary.md"));
    assert!(
        summary.contains("1 failed, 1 interrupted, 0 not run") && summary.contains("| FAILED: "),
        "{summary}"
    );
}
