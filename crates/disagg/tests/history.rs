//! The results store and the history gate end to end: runs of one case are recorded; the gate
//! skips (and says so) without enough history, passes on steady runs, and fails a run whose
//! engine got 30 % slower with exit code 3, also after runs of it with the check skipped. The case stays the same (same hash): only the engine
//! script it runs changes, as a new engine build would.

mod support;

use std::path::Path;

use support::*;

/// `disagg validate CASE --workspace WS` with `env`.
fn validate(case: &Path, ws: &Path, env: &[(&str, &str)]) -> Ran {
    disagg(
        &[
            "validate",
            case.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
        ],
        env,
    )
}

/// A case whose generation engine is `engine.sh`, a wrapper around `disagg sim` that sets the
/// inter-token latency. It gates on the median TPOT, which the sim paces on its token clock;
/// throughput on this shared 2-core machine moves by 15-20 % between identical runs.
fn write_case(dir: &Path, name: &str) -> std::path::PathBuf {
    let script = dir.join("engine.sh");
    set_itl(&script, "5ms");
    let case = format!(
        r#"name: {name}
model: {{name: llama-3.1-8b}}
engine: command
ctx:
  count: 1
  engine_args:
    argv: ["{{disagg}}", sim, --role, context, --host, "{{host}}", --port, "{{port}}", --model, "{{model}}"]
gen:
  count: 1
  engine_args:
    argv: ["{script}", "{{disagg}}", sim, --role, generation, --host, "{{host}}", --port, "{{port}}", --model, "{{model}}"]
benchmark: {{isl: 64, osl: 16, concurrency: [4], rounds: 4, warmup: 1}}
timeouts: {{worker_startup: 30s, request: 20s, benchmark: 60s, job: 120s, grace: 2s}}
perf:
  baseline: history
  history: {{runs: 5, min_runs: 3, threshold: 0.15, metrics: [MEDIAN_TPOT]}}
"#,
        script = script.display()
    );
    let p = dir.join("case.yaml");
    std::fs::write(&p, case).unwrap();
    p
}

fn set_itl(script: &Path, itl: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = script.with_extension("tmp");
    std::fs::write(&tmp, format!("#!/bin/sh\nexec \"$@\" --itl {itl}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, script).unwrap();
}

fn gate_on_history(store: Option<&str>) {
    let dir = TempDir::new("history");
    let ws = dir.path().join("ws");
    let name = format!(
        "hist-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let case = write_case(dir.path(), &name);
    let env: Vec<(&str, &str)> = store.map(|s| vec![("DISAGG_STORE", s)]).unwrap_or_default();
    let perf_check = |ws: &Path| {
        let run = runs(ws, &name).pop().unwrap();
        (read(&run.join("perf_check.txt")), run)
    };
    for i in 0..5 {
        let r = run(&case, &ws, &[], &env);
        assert_eq!(r.code(), 0, "run {}: {}", i + 1, r.show());
        let (text, dir) = perf_check(&ws);
        if i < 3 {
            // Too little history: skipped, with the reason, never "passed".
            assert!(
                text.starts_with("perf check: skipped: only ")
                    && text.contains(&format!("only {i} earlier reference run(s)"))
                    && text.contains("needs at least 3"),
                "run {}: {text}",
                i + 1
            );
            let cases = junit_cases(&dir.join("results.xml"));
            let perf = cases.iter().find(|c| c.0 == "perf check").unwrap();
            assert!(perf.3, "the JUnit perf check is skipped: {cases:?}");
        } else {
            assert!(
                text.starts_with("perf check: passed (0 of 1 metrics regressed)"),
                "run {}: {text}",
                i + 1
            );
            assert!(
                text.contains(&format!("the last {i} reference runs")),
                "{text}"
            );
        }
    }
    // A new engine build, 30 % slower per token: same case, same hash. The gate and a deadline
    // were retuned meanwhile, which measure nothing: the history is still this case's.
    set_itl(&dir.path().join("engine.sh"), "6500us");
    let tuned = dir.path().join("tuned.yaml");
    let text = std::fs::read_to_string(&case)
        .unwrap()
        .replace("grace: 2s", "grace: 3s")
        .replace("{runs: 5, min_runs: 3,", "{runs: 6, min_runs: 3,");
    assert!(
        text.contains("grace: 3s") && text.contains("runs: 6,"),
        "{text}"
    );
    std::fs::write(&tuned, text).unwrap();
    let r = run(&tuned, &ws, &[], &env);
    assert_eq!(r.code(), 3, "the slower run regresses: {}", r.show());
    let (text, regressed) = perf_check(&ws);
    assert!(text.starts_with("perf check: REGRESSED"), "{text}");
    assert!(text.contains("the last 5 reference runs"), "{text}");
    // The regressed point fails its own JUnit testcase, as with a CSV baseline.
    let cases = junit_cases(&regressed.join("results.xml"));
    let con4 = cases.iter().find(|c| c.0 == "con4").unwrap();
    assert_eq!(con4.2.as_deref(), Some("PERF_REGRESSION"), "{cases:?}");
    assert!(
        con4.1
            .as_deref()
            .is_some_and(|m| m.contains("MEDIAN_OUTPUT_TOKEN_TIME") && m.contains("median")),
        "{cases:?}"
    );
    // Every verdict shows the baseline, the band and the measured value.
    let tpot = text
        .lines()
        .find(|l| l.contains("MEDIAN_OUTPUT_TOKEN_TIME"))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = tpot.split_whitespace().collect();
    let baseline: f64 = cols[2].parse().unwrap();
    let measured: f64 = cols[4].parse().unwrap();
    assert!(cols[3].starts_with('±'), "{tpot}");
    assert!(
        (4.5..5.6).contains(&baseline) && measured > baseline * 1.2,
        "{tpot}"
    );
    assert!(tpot.ends_with("REGRESSED"), "{tpot}");

    // The slower engine run with the check skipped: each passes and says the check was skipped,
    // but none becomes a reference, so the baseline does not move towards the regression.
    for i in 0..3 {
        let r = run(&case, &ws, &["--skip-perf-check"], &env);
        assert_eq!(r.code(), 0, "skipped run {}: {}", i + 1, r.show());
        let (text, _) = perf_check(&ws);
        assert!(
            text.starts_with("perf check: skipped (SKIP_PERF_CHECK or --skip-perf-check)"),
            "{text}"
        );
    }
    let r = run(&case, &ws, &[], &env);
    assert_eq!(
        r.code(),
        3,
        "the skipped runs moved the baseline: {}",
        r.show()
    );
    let (text, _) = perf_check(&ws);
    assert!(
        text.starts_with("perf check: REGRESSED") && text.contains("the last 5 reference runs"),
        "{text}"
    );

    // The store has every run; `disagg history` prints them in order.
    let mut args = vec![
        "history",
        name.as_str(),
        "--metric",
        "MEDIAN_TPOT",
        "--workspace",
    ];
    args.push(ws.to_str().unwrap());
    let h = disagg(&args, &env);
    assert_eq!(h.code(), 0, "{}", h.show());
    let out = h.stdout();
    assert!(out.contains("10 run(s)"), "{out}");
    // A config it has no run of: the names it has are in the hint, the closest first (a
    // shared store, PostgreSQL's here, has other tests' too).
    let asked = format!("{name}-typo");
    let typo = disagg(
        &["history", &asked, "--workspace", ws.to_str().unwrap()],
        &env,
    );
    assert_eq!(typo.code(), 2, "{}", typo.show());
    let hint = typo.stderr();
    assert!(
        hint.contains(&format!("hint: the configs it has runs of: {name}"))
            || hint.contains(&format!("the closest: {name}")),
        "{}",
        typo.show()
    );
    assert!(
        out.lines().nth(1).unwrap().ends_with("  ref  perf check"),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 10, "{out}");
    assert!(
        out.lines().nth(1).unwrap().contains(" launcher ")
            && rows.iter().all(|r| r.contains(" local ")),
        "each run says how it was launched: {out}"
    );
    // The first 3 started the history (too few runs to compare), the next 2 passed the check:
    // all 5 are references; neither a regression nor a run with the check skipped is.
    assert!(
        rows[..3]
            .iter()
            .all(|r| r.contains(" passed ") && r.contains("  yes  skipped (too few runs): ")),
        "{out}"
    );
    assert!(
        rows[3..5]
            .iter()
            .all(|r| r.contains(" passed ") && r.ends_with("  yes  passed")),
        "{out}"
    );
    for i in [5, 9] {
        assert!(
            rows[i].contains(" regressed ") && rows[i].ends_with("  no   regressed"),
            "{out}"
        );
    }
    assert!(
        rows[6..9].iter().all(|r| r.contains(" passed ")
            && r.ends_with("  no   skipped (SKIP_PERF_CHECK or --skip-perf-check)")),
        "{out}"
    );
    // The engine's version as its /version reported it.
    let version = format!("command disagg-sim {}", env!("CARGO_PKG_VERSION"));
    assert!(rows.iter().all(|r| r.contains(&version)), "{out}");

    // The config's history as a report: the gated metric over time, the regression marked.
    let html = dir.path().join("history.html");
    let mut args = vec!["report", name.as_str(), "-o", html.to_str().unwrap()];
    args.extend(["--workspace", ws.to_str().unwrap()]);
    let r = disagg(&args, &env);
    assert_eq!(r.code(), 0, "{}", r.show());
    let page = read(&html);
    assert!(
        page.contains("History of the gated metrics"),
        "no history section"
    );
    assert!(page.contains("con4 MEDIAN_OUTPUT_TOKEN_TIME over time"));
    assert_eq!(page.matches("<tr class=\"regressed\">").count(), 2);
    // Which runs are references, and why a run was not gated, are said.
    assert!(page.contains(" (ref)</td>"), "no reference marked");
    assert!(
        page.contains("not gated: skipped (SKIP_PERF_CHECK or --skip-perf-check)"),
        "the skipped runs"
    );

    // `disagg history NAME --accept` of the run in folder `dir`: its id and what it said.
    let accept = |dir: &Path| {
        let id = dir.file_name().unwrap().to_str().unwrap().to_string();
        let args = [
            "history",
            &name,
            "--accept",
            &id,
            "--workspace",
            ws.to_str().unwrap(),
        ];
        let r = disagg(&args, &env);
        assert_eq!(r.code(), 0, "{}", r.show());
        (id, r.stdout())
    };
    // A run measured with the check off may be taken (someone means it), and is said to be.
    let (_, said) = accept(&runs(&ws, &name)[7]);
    assert!(
        said.starts_with("note: its perf check was skipped (SKIP_PERF_CHECK"),
        "{said}"
    );
    // The slower engine was meant: its last regressed run is accepted as the new baseline,
    // and the gate starts its history there (too few runs yet: skipped, and the run passes),
    // where every run stayed red until the old references left the window.
    let (run_id, said) = accept(&runs(&ws, &name).pop().unwrap());
    assert!(
        said.starts_with(&format!("accepted run {run_id} of {name}")),
        "{said}"
    );
    let r = run(&case, &ws, &[], &env);
    assert_eq!(
        r.code(),
        0,
        "the accepted run starts the history: {}",
        r.show()
    );
    let (text, _) = perf_check(&ws);
    assert!(text.contains("only 1 earlier reference run(s)"), "{text}");
}

#[test]
fn the_history_gate_skips_without_history_and_fails_a_30_percent_slower_engine() {
    gate_on_history(None);
}

/// The same against PostgreSQL (`DISAGG_TEST_POSTGRES`, which CI starts).
#[test]
fn the_history_gate_works_the_same_on_postgres() {
    match std::env::var("DISAGG_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => gate_on_history(Some(&url)),
        _ => {
            assert!(
                std::env::var("DISAGG_REQUIRE_SLURM").as_deref() != Ok("1"),
                "DISAGG_REQUIRE_SLURM=1 but DISAGG_TEST_POSTGRES is not set (scripts/dev-postgres.sh up)"
            );
            eprintln!("POSTGRES TEST DID NOT RUN: set DISAGG_TEST_POSTGRES");
        }
    }
}

/// A history gate whose store cannot be used is refused before anything is launched (exit 2),
/// naming the store, the key and the fix: never a run that measures, then passes with its
/// check "skipped: no history".
#[test]
fn a_history_gate_on_an_unusable_store_is_refused_before_launch() {
    let dir = TempDir::new("history-store");
    let ws = dir.path().join("ws");
    let name = format!("hist-store-{}", std::process::id());
    let case = write_case(dir.path(), &name);
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, "this is not a database, just bytes\n".repeat(200)).unwrap();
    let garbage = garbage.to_str().unwrap().to_string();
    let unreachable = "postgresql://u:secret@127.0.0.1:1/db";
    for (store, named) in [
        (garbage.as_str(), garbage.as_str()),
        (unreachable, "postgresql://u:***@127.0.0.1:1/db"),
    ] {
        let r = run(&case, &ws, &[], &[("DISAGG_STORE", store)]);
        assert_eq!(r.code(), 2, "{store}: {}", r.show());
        let err = r.stderr();
        assert!(
            err.contains(&format!("results store {named}"))
                && err.contains("perf.baseline")
                && err.contains("hint: point DISAGG_STORE at"),
            "{store}: {err}"
        );
        assert!(!err.contains("secret"), "the password is shown: {err}");
        assert!(runs(&ws, &name).is_empty(), "{store}: a run was launched");
        // `validate` refuses it as `run` does, and says no `ok:` of it.
        let v = validate(&case, &ws, &[("DISAGG_STORE", store)]);
        assert_eq!(v.code(), 2, "{store}: {}", v.show());
        assert!(!v.stdout().contains("ok:"), "{store}: {}", v.show());
        assert!(
            v.stderr().contains(&format!("results store {named}")),
            "{}",
            v.show()
        );
        // With the check skipped the gate needs no store: the run goes ahead.
    }
    // A SQLite store not there yet is one `run` makes: fine for `validate`, which makes none.
    let v = validate(&case, &ws, &[]);
    assert_eq!(v.code(), 0, "{}", v.show());
    assert!(
        !ws.join("disagg_results.sqlite").exists(),
        "validate made a store"
    );
    let r = run(
        &case,
        &ws,
        &["--skip-perf-check"],
        &[("DISAGG_STORE", unreachable)],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stderr()
            .contains("warning: the run is not in the results store"),
        "{}",
        r.show()
    );
    // The run folder says it too, for whoever reads it after the console is gone.
    let summary = read(&runs(&ws, &name).pop().unwrap().join("summary.md"));
    assert!(
        summary.contains("## Warnings\n\n- the run is not in the results store: results store postgresql://u:***@127.0.0.1:1/db"),
        "{summary}"
    );
    // The workspace's own store broken, with no DISAGG_STORE: the fix is to move it aside.
    let own = ws.join("disagg_results.sqlite");
    std::fs::copy(dir.path().join("garbage.sqlite"), &own).unwrap();
    let r = run(&case, &ws, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr()
            .contains(&format!("hint: move {} aside", own.display())),
        "{}",
        r.show()
    );
    // Damaged past its schema, it opens fine: it is read whole before launch, not found broken
    // by the gate's query once the benchmark has run.
    std::fs::remove_file(&own).unwrap();
    let r = run(&case, &ws, &["--skip-perf-check"], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let launched = runs(&ws, &name).len();
    let mut bytes = std::fs::read(&own).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(bytes.len() > 2 * page, "{} bytes", bytes.len());
    bytes[page..].fill(0x5a);
    std::fs::write(&own, &bytes).unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", own.display()));
    }
    let r = run(&case, &ws, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    let err = r.stderr();
    assert!(
        err.contains(&format!("results store {}", own.display()))
            && (err.contains("damaged") || err.contains("malformed"))
            && err.contains(&format!("hint: move {} aside", own.display())),
        "{}",
        r.show()
    );
    assert_eq!(runs(&ws, &name).len(), launched, "a run was launched");
    // `validate` says so too, rather than "ok" for the case `run` refuses.
    let v = validate(&case, &ws, &[]);
    assert_eq!(v.code(), 2, "{}", v.show());
    assert!(
        v.stderr().contains("damaged") || v.stderr().contains("malformed"),
        "{}",
        v.show()
    );
}

/// Runs the gated case with its results store at `<dir>/store.sqlite` (DISAGG_STORE), the
/// generation engine first running `shell` (which may name the store as `{store}`): the run's
/// output and its run folder.
fn run_while_the_engine_does(tag: &str, shell: &str) -> (Ran, std::path::PathBuf, TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new(tag);
    let ws = dir.path().join("ws");
    let name = format!("{tag}-{}", std::process::id());
    let case = write_case(dir.path(), &name);
    let store = dir.path().join("store.sqlite");
    let script = dir.path().join("engine.sh");
    let shell = shell.replace("{store}", &store.display().to_string());
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{shell}\nexec \"$@\" --itl 5ms\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run(
        &case,
        &ws,
        &[],
        &[("DISAGG_STORE", store.to_str().unwrap())],
    );
    let run_dir = runs(&ws, &name).pop().unwrap();
    (r, run_dir, dir)
}

/// A results store that breaks after the run was launched (here: the generation engine
/// overwrites it as it starts): the history gate the case asks for cannot be applied, so the
/// run fails (exit 1) and says why in perf_check.txt, the JUnit perf check (an error) and the
/// verdict. It used to pass, exit 0, the check "skipped".
#[test]
fn a_store_that_breaks_during_the_run_fails_it_as_not_gated() {
    let (r, run_dir, _dir) = run_while_the_engine_does(
        "history-breaks",
        "for i in $(seq 200); do echo 'not a database'; done > '{store}'",
    );
    assert_eq!(r.code(), 1, "{}", r.show());
    assert!(
        r.stdout().contains(
            "FAILED: the perf check could not be done: the results store cannot be opened"
        ),
        "{}",
        r.show()
    );
    let text = read(&run_dir.join("perf_check.txt"));
    assert!(
        text.starts_with("perf check: NOT DONE: the results store cannot be opened")
            && text.contains("The run is failed"),
        "{text}"
    );
    let junit = read(&run_dir.join("results.xml"));
    assert!(
        junit.contains("type=\"PERF_CHECK_NOT_DONE\"")
            && junit.contains("the perf check could not be done"),
        "{junit}"
    );
    assert_eq!(read(&run_dir.join("exit_code")).trim(), "1");
    // What was measured stays: the measurement was fine, only the gate was not applied.
    let results = read(&run_dir.join("results.json"));
    assert!(results.contains("\"valid\": true"), "{results}");
}

/// A results store removed while the run ran (a cleanup job, a colleague's `rm`) is not made
/// anew and empty for the gate, which then skipped for too little history and passed the run:
/// the gate cannot be applied, and the run fails saying so. The run itself is still recorded.
#[test]
fn a_store_removed_during_the_run_fails_it_as_not_gated() {
    let (r, run_dir, _dir) = run_while_the_engine_does(
        "history-removed",
        "rm -f '{store}' '{store}-wal' '{store}-shm'",
    );
    assert_eq!(r.code(), 1, "{}", r.show());
    let text = read(&run_dir.join("perf_check.txt"));
    assert!(
        text.starts_with("perf check: NOT DONE: the results store")
            && text.contains("was there when the run was launched and is gone now"),
        "{text}"
    );
    assert_eq!(read(&run_dir.join("exit_code")).trim(), "1");
}

/// `psql URL -c SQL`, which must succeed: the test's own PostgreSQL chores.
fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql (CI's PostgreSQL has it)");
    assert!(
        out.status.success(),
        "psql -c {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A results store that stops answering once the benchmark is over (here: another session
/// holds its `runs` table locked) does not make `disagg run` deaf: a Ctrl-C then ends it at
/// once, exit 130, with the run folder written and the store's silence said. It used to sit
/// in the store's socket until the lock went, SIGINT and SIGTERM ignored, then exit 0.
#[test]
fn ctrl_c_ends_a_run_waiting_on_a_store_that_does_not_answer() {
    let url = match std::env::var("DISAGG_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("DISAGG_REQUIRE_SLURM").as_deref() != Ok("1"),
                "DISAGG_REQUIRE_SLURM=1 but DISAGG_TEST_POSTGRES is not set"
            );
            eprintln!("POSTGRES TEST DID NOT RUN: set DISAGG_TEST_POSTGRES");
            return;
        }
    };
    let dir = TempDir::new("silent-store");
    let ws = dir.path().join("ws");
    let schema = format!("disagg_silent_{}", std::process::id());
    psql(
        &url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = format!("{url}{sep}options=-csearch_path%3D{schema}");
    let name = format!("silent-{}", std::process::id());
    let case = CaseSpec {
        name: &name,
        ..Default::default()
    }
    .write(dir.path(), "c.yaml");
    // A first run makes the store's tables, and is recorded.
    let first = run(&case, &ws, &[], &[("DISAGG_STORE", &store)]);
    assert_eq!(first.code(), 0, "{}", first.show());
    assert_eq!(
        psql(&url, &format!("SELECT count(*) FROM {schema}.runs")),
        "1"
    );
    // Another session takes the table and keeps it.
    let mut holder = std::process::Command::new("psql")
        .args([
            url.as_str(),
            "-X",
            "-q",
            "-c",
            &format!(
                "BEGIN; LOCK TABLE {schema}.runs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)"
            ),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locked = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON l.relation = c.oid \
         WHERE c.relname = 'runs' AND c.relnamespace = '{schema}'::regnamespace \
         AND l.mode = 'AccessExclusiveLock' AND l.granted"
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while psql(&url, &locked) != "1" {
        assert!(
            std::time::Instant::now() < until,
            "the lock was never taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = Background::start_env(&case, &ws, &[("DISAGG_STORE", &store)]);
    // The verdict files are written before the store is: from then on it waits on the store.
    let run_dir = wait_for(&ws, &name, "the second run's results.xml", |d| {
        runs(&ws, &name).len() == 2 && d.join("results.xml").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !run_dir.join("exit_code").exists(),
        "the run did not wait on the store"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.pid() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let signalled = std::time::Instant::now();
    let (code, out, err) = second.wait(std::time::Duration::from_secs(20));
    let took = signalled.elapsed();
    // The server runs on with the holder's statement after its client goes: end it there.
    psql(
        &url,
        &format!(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_class c \
             ON l.relation = c.oid WHERE c.relname = 'runs' \
             AND c.relnamespace = '{schema}'::regnamespace AND l.pid <> pg_backend_pid()"
        ),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    psql(&url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    assert_eq!(code, 130, "{out}\n{err}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "ended {took:?} after SIGINT"
    );
    assert!(
        err.contains("the run is not in the results store: interrupted while waiting for it"),
        "{err}"
    );
    assert_eq!(read(&run_dir.join("exit_code")).trim(), "130");
    assert!(run_dir.join("results.json").exists() && run_dir.join("report.html").exists());
    // outcome.json, written before the store was, says the interruption its exit code says.
    let outcome = json(&run_dir.join("outcome.json"));
    assert_eq!(
        outcome["interrupted"], "while writing the results store",
        "{outcome}"
    );
    assert_eq!(outcome["signal"], "SIGINT", "{outcome}");
}

/// A PostgreSQL stand-in that finishes the startup exchange (trust authentication), then never
/// answers a query: a frozen server, or a pooler with no server to give. Returns its port.
fn silent_postgres() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                // The startup message: a length (itself included), then the rest.
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                if s.read_exact(&mut rest).is_err() {
                    return;
                }
                // AuthenticationOk, then ReadyForQuery (idle).
                let _ = s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I']);
                // Whatever comes next is read and never answered, until the client goes.
                let mut sink = [0u8; 4096];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// `perf.baseline: history` checks its store before launch: a server that logs in and then says
/// nothing held `disagg run` for ever, deaf to Ctrl-C and SIGTERM. Now a signal ends the wait
/// at once (nothing launched), and the password in the URL is never shown.
#[test]
fn a_signal_ends_the_pre_launch_store_check_on_a_server_that_never_answers() {
    let port = silent_postgres();
    let dir = TempDir::new("silent-pg");
    let ws = dir.path().join("ws");
    let name = format!("silent-pg-{}", std::process::id());
    let case = CaseSpec {
        name: &name,
        extra: "perf: {baseline: history}\n",
        ..Default::default()
    }
    .write(dir.path(), "c.yaml");
    let store = format!("postgresql://u@127.0.0.1:{port}/db?password=hunter2");
    let run = Background::start_env(&case, &ws, &[("DISAGG_STORE", &store)]);
    // Long enough to be past the connection, in the wait on the first statement, and past
    // the moment the wait is said.
    std::thread::sleep(std::time::Duration::from_secs(6));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let signalled = std::time::Instant::now();
    let (code, out, err) = run.wait(std::time::Duration::from_secs(20));
    assert_eq!(code, 143, "{out}\n{err}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
    assert!(
        err.contains("interrupted while opening the results store; nothing was launched"),
        "{err}"
    );
    assert!(
        err.contains("disagg: waiting for the results store (another process may hold it)"),
        "the wait is said, not a silent console: {err}"
    );
    assert!(!format!("{out}{err}").contains("hunter2"), "{out}\n{err}");
    assert!(runs(&ws, &name).is_empty(), "nothing was launched");
}
