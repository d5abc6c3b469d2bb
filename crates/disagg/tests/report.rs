//! `disagg report` on a sweep, opened by a real browser: headless Chromium (Debian's `chromium`)
//! loads the file with no console errors, and the Pareto plot has one mark per point and
//! concurrency. A screenshot is kept under target/tmp. Also `disagg compare`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn chromium() -> Option<PathBuf> {
    for c in ["chromium", "chromium-browser"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
            let p = Path::new(dir).join(c);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let required = std::env::var("DISAGG_REQUIRE_SLURM").as_deref() == Ok("1");
    assert!(
        !required,
        "DISAGG_REQUIRE_SLURM=1 but Chromium is missing: apt-get install chromium"
    );
    eprintln!("CHROMIUM TEST DID NOT RUN: apt-get install chromium");
    None
}

/// Runs headless Chromium on `page` with `extra` flags; (stdout, stderr). Bounded: the whole
/// process group is killed after 90 s.
fn headless(browser: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    use std::os::unix::process::CommandExt;
    let profile = TempDir::new("chromium-profile");
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-domain-reliability",
        "--no-pings",
        "--disable-features=OptimizationHints,MediaRouter,Translate",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(format!("file://{}", page.display()))
    .env("HOME", profile.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let child = cmd.spawn().expect("chromium starts");
    let pgid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(90);
        while Instant::now() < until {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        true
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !watchdog.join().unwrap(),
        "chromium hung on {}",
        page.display()
    );
    // Whatever the browser left in its group goes too.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The page's console messages as Chromium logs them (`...:CONSOLE(line)] "text", source: ...`).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

fn run_sweep(dir: &Path, ws: &Path) -> PathBuf {
    let spec = CaseSpec {
        name: "rep",
        concurrency: "[1, 2]",
        extra: "sweep:\n  ctx.count: [1, 2]\n  gen.parallel.tp: [1, 2]\n",
        ..Default::default()
    };
    let case = spec.write(dir, "sweep.yaml");
    let r = run(&case, ws, &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    std::fs::canonicalize(ws.join("disagg_sweeps/rep/latest")).unwrap()
}

#[test]
fn the_sweep_report_opens_in_chromium_without_errors_with_a_pareto_mark_per_point() {
    let dir = TempDir::new("report");
    let ws = dir.path().join("ws");
    let sweep = run_sweep(dir.path(), &ws);
    // The sweep and every run wrote their report at the end.
    assert!(sweep.join("report.html").is_file());
    for e in std::fs::read_dir(sweep.join("points")).unwrap() {
        // Each run's own report shows its verdict (written after the exit code).
        let html = std::fs::read_to_string(e.unwrap().path().join("report.html")).unwrap();
        assert!(
            html.contains("<td class=\"l\">passed</td>") && !html.contains("unfinished"),
            "{html}"
        );
    }
    // A point's run through its config's `latest` link: titled by its run id.
    let point = std::fs::read_dir(sweep.join("points"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let config_dir = std::fs::canonicalize(&point).unwrap();
    let run_id = config_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let config_dir = config_dir.parent().unwrap();
    let one = dir.path().join("one.html");
    let r = disagg(
        &[
            "report",
            config_dir.join("latest").to_str().unwrap(),
            "-o",
            one.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(read(&one).contains(&format!(" — run {run_id}</title>")));
    // The config folder itself: the error points at its runs.
    let r = disagg(&["report", config_dir.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("hint: it holds runs: give one"),
        "{}",
        r.show()
    );
    // Nowhere to write: a usage error.
    let r = disagg(
        &[
            "report",
            sweep.to_str().unwrap(),
            "-o",
            "/nonexistent/dir/r.html",
        ],
        &[],
    );
    assert_eq!(r.code(), 2, "{}", r.show());
    let out = dir.path().join("report.html");
    let r = disagg(
        &[
            "report",
            sweep.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let html = read(&out);
    // Self-contained: nothing to fetch.
    for needle in ["http://", "https://", "<script", "src="] {
        assert!(
            !html.contains(needle) || needle == "http://" && only_svg_namespace(&html),
            "the report refers to `{needle}`"
        );
    }
    for section in [
        "Pareto frontier",
        "TTFT against concurrency",
        "TPOT against concurrency",
        "ITL against concurrency",
        "TTFT distribution",
    ] {
        assert!(html.contains(section), "missing {section}");
    }

    let Some(browser) = chromium() else { return };
    let (dom, stderr) = headless(&browser, &out, &["--dump-dom"]);
    let console = console_lines(&stderr);
    assert!(
        console.is_empty(),
        "console messages: {console:?}\n{stderr}"
    );
    // The Pareto figure, as the browser parsed it: one mark per point and concurrency.
    let start = dom
        .find("id=\"pareto\"")
        .unwrap_or_else(|| panic!("no Pareto figure in the DOM:\n{dom}"));
    let end = start + dom[start..].find("</figure>").unwrap();
    let figure = &dom[start..end];
    assert_eq!(
        figure.matches("<circle").count(),
        8,
        "4 points × 2 concurrencies"
    );
    assert_eq!(figure.matches("data-pareto-mark=").count(), 8);
    assert!(
        figure.matches("data-frontier=\"true\"").count() >= 1,
        "some mark is on the frontier"
    );
    for topo in ["ctx1×1gpu gen1×1gpu con1", "ctx2×1gpu gen1×2gpu con2"] {
        assert!(figure.contains(topo), "mark label {topo} missing");
    }

    // A screenshot, kept as a test artifact.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-sweep.png");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = headless(
        &browser,
        &out,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
            "--hide-scrollbars",
        ],
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot at {}: {stderr}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());

    // The console check sees errors when there are some (it is not a check that cannot fail).
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body><script>console.error('planted error')</script></body></html>",
    )
    .unwrap();
    let (_, stderr) = headless(&browser, &bad, &["--dump-dom"]);
    assert!(
        console_lines(&stderr)
            .iter()
            .any(|l| l.contains("planted error")),
        "a planted console error is not seen: {stderr}"
    );
}

/// The only `http://` in the page is the SVG namespace.
fn only_svg_namespace(html: &str) -> bool {
    html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count()
}

#[test]
fn compare_prints_two_runs_side_by_side() {
    let dir = TempDir::new("compare");
    let ws = dir.path().join("ws");
    let case = CaseSpec {
        name: "cmp",
        concurrency: "[2]",
        ..Default::default()
    }
    .write(dir.path(), "c.yaml");
    for _ in 0..2 {
        let r = run(&case, &ws, &[], &[]);
        assert_eq!(r.code(), 0, "{}", r.show());
    }
    let runs = runs(&ws, "cmp");
    let r = disagg(
        &[
            "compare",
            runs[0].to_str().unwrap(),
            runs[1].to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    assert!(out.contains("\ncon2\n"), "{out}");
    let a = json(&runs[0].join("results.json"));
    let b = json(&runs[1].join("results.json"));
    let line = out
        .lines()
        .find(|l| l.starts_with("TOKEN_THROUGHPUT "))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (va, vb) = (
        a["points"][0]["output_throughput"].as_f64().unwrap(),
        b["points"][0]["output_throughput"].as_f64().unwrap(),
    );
    assert_eq!(cols[1], format!("{va:.3}"), "{line}");
    assert_eq!(cols[2], format!("{vb:.3}"), "{line}");
    assert_eq!(cols[3], format!("{:+.3}", vb - va), "{line}");
    assert!(!out.contains("measured different workloads"), "{out}");
    // A run of the same config with another output length: compared, and said to be no like
    // for like.
    let other = CaseSpec {
        name: "cmp",
        concurrency: "[2]",
        osl: 16,
        ..Default::default()
    }
    .write(dir.path(), "c16.yaml");
    let r = run(&other, &ws, &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let third = crate::runs(&ws, "cmp").pop().unwrap();
    let r = disagg(
        &[
            "compare",
            runs[0].to_str().unwrap(),
            third.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("note: A and B measured different workloads"),
        "{}",
        r.show()
    );
    // A point whose requests all failed is shown, never ranked (its zero latencies would read
    // as -100% better).
    let mut bad = b.clone();
    bad["points"][0]["valid"] = serde_json::json!(false);
    bad["points"][0]["problems"] = serde_json::json!([{"kind": "failed_requests",
        "message": "con2: 8 of 8 requests failed"}]);
    let bad_file = dir.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let r = disagg(
        &[
            "compare",
            runs[0].to_str().unwrap(),
            bad_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    assert!(
        out.contains("con2 (not compared: B is not valid: con2: 8 of 8 requests failed)"),
        "{out}"
    );
    assert!(!out.contains("better") && !out.contains("worse"), "{out}");
    // What each run was is said: a failed run's figures are no pass.
    let failed = dir.path().join("failed");
    std::fs::create_dir(&failed).unwrap();
    for f in ["results.json", "plan.json"] {
        std::fs::copy(runs[1].join(f), failed.join(f)).unwrap();
    }
    std::fs::write(failed.join("exit_code"), "1\n").unwrap();
    let r = disagg(
        &[
            "compare",
            runs[0].to_str().unwrap(),
            failed.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().starts_with(&format!(
            "A: {} (run passed)\nB: {} (run FAILED)\n",
            runs[0].display(),
            failed.display()
        )),
        "{}",
        r.show()
    );
    // And its points are shown, never ranked, even where their own requests went well.
    assert!(
        r.stdout()
            .contains("con2 (not compared: B is not valid: its run FAILED)"),
        "{}",
        r.show()
    );
    assert!(
        !r.stdout().contains("better") && !r.stdout().contains("worse"),
        "{}",
        r.show()
    );
    // A run killed before its benchmark wrote anything (a plan, no results, no exit code) is
    // unfinished, with no points; an exit_code cut short says so.
    let early = dir.path().join("early");
    std::fs::create_dir(&early).unwrap();
    std::fs::copy(runs[1].join("plan.json"), early.join("plan.json")).unwrap();
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    for f in ["results.json", "plan.json"] {
        std::fs::copy(runs[1].join(f), cut.join(f)).unwrap();
    }
    std::fs::write(cut.join("exit_code"), "").unwrap();
    for (b, said) in [
        (&early, "(run unfinished)"),
        (&cut, "(run unfinished: its exit_code holds \"\")"),
    ] {
        let r = disagg(
            &["compare", runs[0].to_str().unwrap(), b.to_str().unwrap()],
            &[],
        );
        assert_eq!(r.code(), 0, "{}", r.show());
        assert!(
            r.stdout().contains(&format!("B: {} {said}", b.display())),
            "{}",
            r.show()
        );
    }
    let r = disagg(&["compare", runs[0].to_str().unwrap(), "/nonexistent"], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("hint: give a run folder"),
        "{}",
        r.show()
    );
}

/// Last night's sweep against tonight's: point by point, each pair of runs side by side; a
/// sweep against a run is refused with a hint.
#[test]
fn compare_takes_two_sweep_folders_point_by_point() {
    let dir = TempDir::new("compare-sweeps");
    let ws = dir.path().join("ws");
    let case = CaseSpec {
        name: "cmps",
        concurrency: "[1]",
        rounds: 1,
        extra: "sweep:\n  benchmark.isl: [8, 16]\n",
        ..Default::default()
    }
    .write(dir.path(), "s.yaml");
    let mut sweeps = Vec::new();
    for _ in 0..2 {
        let r = run(&case, &ws, &[], &[]);
        assert_eq!(r.code(), 0, "{}", r.show());
        sweeps.push(std::fs::canonicalize(ws.join("disagg_sweeps/cmps/latest")).unwrap());
    }
    assert_ne!(sweeps[0], sweeps[1]);
    let r = disagg(
        &[
            "compare",
            sweeps[0].to_str().unwrap(),
            sweeps[1].to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    let record = json(&sweeps[0].join("sweep.json"));
    for p in record["points"].as_array().unwrap() {
        let name = p["config_name"].as_str().unwrap();
        let at = out
            .find(&format!("=== {name} ===\n"))
            .unwrap_or_else(|| panic!("no section for {name}:\n{out}"));
        // Each section is that point's two runs, side by side.
        let section = &out[at..];
        assert!(section.contains("\ncon1\n"), "{out}");
        assert!(
            section.contains(&format!("A: {}", p["run_dir"].as_str().unwrap())),
            "{out}"
        );
    }
    let run_dir = record["points"][0]["run_dir"].as_str().unwrap().to_string();
    let r = disagg(&["compare", sweeps[0].to_str().unwrap(), &run_dir], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("is a sweep folder and")
            && r.stderr().contains("hint: compare two sweep folders"),
        "{}",
        r.show()
    );
}

/// A path that is not there is said to be a missing path, not a config with no runs in a store
/// nobody asked about.
#[test]
fn a_report_of_a_path_that_is_not_there_says_so() {
    let dir = TempDir::new("report-missing");
    let missing = dir.path().join("no/such/run");
    let out = dir.path().join("r.html");
    let r = disagg(
        &[
            "report",
            missing.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--workspace",
            dir.path().join("ws").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains(&format!(
            "{}: no such run folder, sweep folder or file",
            missing.display()
        )) && !r.stderr().contains("results store"),
        "{}",
        r.show()
    );
    assert!(!out.exists());
}
