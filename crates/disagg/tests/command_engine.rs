//! The generic `command` engine end to end on this machine, with `disagg sim` as the engine:
//! ports picked by the role, placeholders filled in, and one retry when the port was taken.

use std::path::{Path, PathBuf};
use std::process::Command;

const DISAGG: &str = env!("CARGO_BIN_EXE_disagg");

/// A workspace of its own, removed when the test ends.
fn workspace(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("disagg-cmd-{name}-"))
        .tempdir()
        .unwrap()
}

fn case(name: &str, ctx_argv: &str) -> String {
    format!(
        "name: {name}\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 2}}\nctx: {{count: 1, engine_args: {{argv: {ctx_argv}}}}}\ngen: {{count: 1, engine_args: {{argv: [\"{{disagg}}\", sim, --role, generation, --host, \"{{host}}\", --port, \"{{port}}\", --model, \"{{model}}\"]}}}}\nbenchmark: {{isl: 32, osl: 4, concurrency: [2], rounds: 2}}\ntimeouts: {{worker_startup: 20s, request: 10s, benchmark: 30s, job: 1m}}\n"
    )
}

fn run(ws: &Path, case_text: &str) -> (std::process::Output, PathBuf) {
    let file = ws.join("case.yaml");
    std::fs::write(&file, case_text).unwrap();
    let out = Command::new(DISAGG)
        .args([
            "run",
            file.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
        ])
        .env("SKIP_PERF_CHECK", "true")
        .output()
        .unwrap();
    (out, ws.to_path_buf())
}

fn show(o: &std::process::Output) -> String {
    format!(
        "{:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_command_engine_runs_disagg_sim_through_the_generic_path() {
    let ws = workspace("plain");
    let (out, ws) = run(
        ws.path(),
        &case(
            "cmd-plain",
            r#"["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}", --model, "{model}"]"#,
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let log =
        std::fs::read_to_string(ws.join("disagg_logs/cmd-plain/latest/ctx_server_0.log")).unwrap();
    assert!(
        log.contains("sim --role context --host 127.0.0.1 --port "),
        "{log}"
    );
    assert!(!log.contains("{port}"), "placeholders are filled in: {log}");
}

#[test]
fn an_engine_whose_port_was_taken_is_retried_once_on_another() {
    let ws = workspace("retry");
    let marker = ws.path().join("first-start-done");
    // The first start says what a real engine says when its port is taken, and dies.
    let argv = format!(
        r#"[sh, -c, "if [ ! -e '{}' ]; then touch '{}'; echo 'OSError: [Errno 98] Address already in use' >&2; exit 1; fi; exec \"$0\" sim --role context --host \"$1\" --port \"$2\"", "{{disagg}}", "{{host}}", "{{port}}"]"#,
        marker.display(),
        marker.display()
    );
    let (out, ws) = run(ws.path(), &case("cmd-retry", &argv));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let log =
        std::fs::read_to_string(ws.join("disagg_logs/cmd-retry/latest/ctx_server_0.log")).unwrap();
    assert!(log.contains("retrying once on another"), "{log}");
    assert_eq!(log.matches("starting engine").count(), 2, "{log}");
}

#[test]
fn an_engine_that_dies_for_another_reason_is_not_retried() {
    let ws = workspace("noretry");
    let (out, ws) = run(
        ws.path(),
        &case("cmd-noretry", r#"[sh, -c, "echo boom; exit 3", "{port}"]"#),
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let log = std::fs::read_to_string(ws.join("disagg_logs/cmd-noretry/latest/ctx_server_0.log"))
        .unwrap();
    assert_eq!(log.matches("starting engine").count(), 1, "{log}");
}

#[test]
fn a_command_router_reads_the_server_config_the_role_writes() {
    let ws = workspace("router");
    let text = case(
        "cmd-router",
        r#"["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}"]"#,
    )
    .replacen(
        "\nbenchmark:",
        "\nrouter: {kind: command, argv: [\"{disagg}\", router, --config, \"{server_config}\"]}\nbenchmark:",
        1,
    );
    let (out, ws) = run(ws.path(), &text);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let log = std::fs::read_to_string(ws.join("disagg_logs/cmd-router/latest/disagg_server.log"))
        .unwrap();
    assert!(log.contains("starting router: "), "{log}");
    assert!(log.contains("server_config.yaml"), "{log}");
}

/// A run whose reports cannot be written (here `results.xml` is a folder, as a full disk or a
/// lost mount would leave it) is not a pass: CI would read no verdict. The run measured every
/// point, and still exits 1, saying which report is missing; the reports it did write say so
/// too (they said PASSED: a green summary or JUnit on a red job).
#[test]
fn a_run_whose_reports_cannot_be_written_fails() {
    for blocked in ["results.xml", "exit_code"] {
        a_run_whose_report_cannot_be_written_fails(blocked);
    }
}

fn a_run_whose_report_cannot_be_written_fails(blocked: &str) {
    let ws = workspace("lost");
    let blocker = ws.path().join("disagg_logs/cmd-lost/latest").join(blocked);
    let argv = format!(
        r#"[sh, -c, "mkdir '{}' && exec \"$0\" sim --role context --host \"$1\" --port \"$2\"", "{{disagg}}", "{{host}}", "{{port}}"]"#,
        blocker.display()
    );
    let (out, _) = run(ws.path(), &case("cmd-lost", &argv));
    let said = show(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAILED: 1 of the run's reports could not be written")
            && said.contains(blocked),
        "{said}"
    );
    let dir = ws.path().join("disagg_logs/cmd-lost/latest");
    if blocked != "exit_code" {
        let code = std::fs::read_to_string(dir.join("exit_code"));
        assert_eq!(code.unwrap().trim(), "1");
    }
    // The reports that were written said PASSED: they now say what the exit code says.
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("FAILED: 1 of the run's reports could not be written")
            && !summary.contains("PASSED")
            && summary.contains("exit code 1"),
        "{summary}"
    );
    let outcome = std::fs::read_to_string(dir.join("outcome.json")).unwrap();
    assert!(outcome.contains("\"failed\""), "{outcome}");
    // So do the perf check's text, the CSV (no row a baseline could take), results.json ...
    let perf = std::fs::read_to_string(dir.join("perf_check.txt")).unwrap();
    assert!(perf.starts_with("perf check: not run"), "{perf}");
    let csv = std::fs::read_to_string(dir.join("perf_script_test_results.csv")).unwrap();
    assert!(
        csv.lines().count() > 1 && !csv.contains(",valid,") && csv.contains(",failed,"),
        "{csv}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["valid"], false, "{results}");
    // ... and the results store: a run CI saw fail is no reference for the history gate.
    let history = Command::new(DISAGG)
        .args([
            "history",
            "cmd-lost",
            "--workspace",
            ws.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let history = show(&history);
    assert!(
        history.contains(" failed ") && !history.contains(" passed "),
        "{blocked}: {history}"
    );
}

/// An engine that is not on the PATH: the failure says so, with the PATH it searched.
#[test]
fn an_engine_not_on_the_path_is_said_to_be_not_on_it() {
    let ws = workspace("nopath");
    let (out, _) = run(
        ws.path(),
        &case("cmd-nopath", r#"[no-such-engine-xyz, "{port}"]"#),
    );
    let said = show(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot start the engine `no-such-engine-xyz`")
            && said.contains("it is not on the workers' PATH ("),
        "{said}"
    );
}

/// An engine that exits 0 on its own fails its role (an engine serves until the run stops it),
/// and the account says why a clean exit is a failure.
#[test]
fn an_engine_that_exits_cleanly_is_a_failure_said_to_be_one() {
    let ws = workspace("exit0");
    let (out, _) = run(
        ws.path(),
        &case("cmd-exit0", r#"[sh, -c, "echo bye; exit 0", "{port}"]"#),
    );
    let said = show(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("its engine exited with status 0")
            && said.contains("it ended on its own, with no error"),
        "{said}"
    );
}
