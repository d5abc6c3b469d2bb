//! Snapshots of what a user reads: `disagg --help` and every subcommand's, and `disagg validate`'s
//! error for one case of each kind of mistake (exit code 2, file, line, key, hint). A change to
//! any of them shows up in review as a snapshot diff (`cargo insta review`).

use std::path::Path;
use std::process::{Command, Output};

const DISAGG: &str = env!("CARGO_BIN_EXE_disagg");

/// Runs `disagg` with an empty environment: help shows the values of the variables a flag
/// reads (`[env: WORKSPACE=...]`), which differ from machine to machine.
fn disagg(args: &[&str], cwd: &Path) -> Output {
    Command::new(DISAGG)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .output()
        .expect("disagg runs")
}

/// The subcommands `disagg --help` lists.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn help_of_disagg_and_of_every_subcommand() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let top = disagg(&["--help"], here);
    assert_eq!(top.status.code(), Some(0));
    let top = String::from_utf8(top.stdout).unwrap();
    insta::assert_snapshot!("help", top);
    let commands = subcommands(&top);
    assert!(commands.len() >= 10, "{commands:?}");
    for c in commands {
        let out = disagg(&[&c, "--help"], here);
        assert_eq!(out.status.code(), Some(0), "{c}");
        insta::assert_snapshot!(format!("help_{c}"), String::from_utf8(out.stdout).unwrap());
    }
}

/// A valid case to break one way at a time.
const GOOD: &str = "\
model: {name: llama-3.1-8b}
engine: sim
ctx: {count: 1}
gen: {count: 1}
benchmark: {isl: 64, osl: 8, concurrency: [1, 4]}
timeouts: {worker_startup: 60s, request: 60s, benchmark: 10m, job: 30m}
";

#[test]
fn one_case_error_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    let kinds: &[(&str, Option<String>)] = &[
        ("missing_file", None),
        (
            "yaml_syntax",
            Some(GOOD.replace("engine: sim", "engine: sim: vllm")),
        ),
        (
            "unknown_key",
            Some(GOOD.replace("isl: 64", "isl: 64, osll: 8")),
        ),
        ("wrong_type", Some(GOOD.replace("isl: 64", "isl: many"))),
        ("missing_key", Some(GOOD.replace("isl: 64, ", ""))),
        (
            "bad_value",
            Some(GOOD.replace("concurrency: [1, 4]", "concurrency: [0]")),
        ),
        (
            "bad_duration",
            Some(GOOD.replace("request: 60s", "request: 60 parsecs")),
        ),
        (
            "deadline_hierarchy",
            Some(GOOD.replace("benchmark: 10m, job: 30m", "benchmark: 10m, job: 5m")),
        ),
        (
            "engine_and_dialect",
            Some(GOOD.replace("engine: sim", "engine: vllm\nrouter: {dialect: sglang}")),
        ),
        (
            "server_spans_nodes_as_one_process",
            Some(GOOD.replace(
                "gen: {count: 1}",
                "hardware: {gpus_per_node: 8}\ngen: {count: 1, parallel: {tp: 16}}",
            )),
        ),
        (
            "sim_rejects_settings",
            Some(GOOD.replace(
                "gen: {count: 1}",
                "gen: {count: 1, engine_args: {max_batch_size: 8}}",
            )),
        ),
    ];
    for (kind, text) in kinds {
        let file = format!("{kind}.yaml");
        if let Some(text) = text {
            assert_ne!(text, GOOD, "{kind}: the edit took");
            std::fs::write(dir.path().join(&file), text).unwrap();
        }
        let out = disagg(&["validate", &file], dir.path());
        assert_eq!(out.status.code(), Some(2), "{kind}: {out:?}");
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        insta::assert_snapshot!(format!("case_error_{kind}"), shown);
    }
}
