//! `disagg logs` and `disagg triage` on real run folders.

mod support;

use support::*;

#[test]
fn logs_lists_runs_and_packs_one_and_triage_finds_the_crash() {
    let ws = TempDir::new("logs");
    let case = CaseSpec {
        name: "logs",
        concurrency: "[2]",
        rounds: 20,
        gen_args: "{fail_after_requests: 3}",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "logs");

    let l = disagg(
        &["logs", "logs", "--workspace", ws.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(l.code(), 0, "{}", l.show());
    let out = l.stdout();
    assert!(out.contains("logs: 1 run(s)"), "{out}");
    assert!(out.contains("failed: GEN_0 exited with status 1"), "{out}");
    assert!(
        out.contains("gen_server_0.log") && out.contains("results.xml"),
        "{out}"
    );
    // TensorRT-LLM's names are listed as what they point at.
    assert!(
        out.lines()
            .any(|l| l.contains("3_output_GEN_0.log") && l.ends_with("-> gen_server_0.log")),
        "{out}"
    );

    let tarball = ws.path().join("run.tar.gz");
    let p = disagg(
        &[
            "logs",
            "logs",
            "--workspace",
            ws.path().to_str().unwrap(),
            "--pack",
            tarball.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(p.code(), 0, "{}", p.show());
    let listing = std::process::Command::new("tar")
        .args(["-tzf", tarball.to_str().unwrap()])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    let run_id = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        names.contains(&format!("logs/{run_id}/gen_server_0.log")),
        "{names}"
    );
    assert!(
        names.contains(&format!("logs/{run_id}/rendezvous/status.json")),
        "{names}"
    );

    let t = disagg(&["triage", dir.to_str().unwrap()], &[]);
    assert_eq!(t.code(), 1, "{}", t.show());
    let out = t.stdout();
    assert!(out.contains("gen_server_0.log"), "names the file: {out}");
    assert!(
        out.contains("role failure") || out.contains("GEN_0"),
        "{out}"
    );

    let missing = disagg(
        &["logs", "nope", "--workspace", ws.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(missing.code(), 2, "{}", missing.show());
    let bad = disagg(
        &["logs", "../etc", "--workspace", ws.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(bad.code(), 2, "{}", bad.show());
}

#[test]
fn the_role_can_come_from_disagg_serving_type() {
    let ws = TempDir::new("role-env");
    let r = disagg(
        &["role", "--run-dir", ws.path().to_str().unwrap()],
        &[("DISAGG_SERVING_TYPE", "GEN_0")],
    );
    // No plan.json there: the role says so and exits 2, having read its name from the env.
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("disagg role GEN_0") && r.stderr().contains("plan.json"),
        "{}",
        r.show()
    );
}

/// `disagg plan --json | head -c1`: the reader leaves early; disagg ends as a Unix filter does
/// (by SIGPIPE), without a panic and a backtrace on stderr.
#[test]
fn a_printing_command_whose_reader_leaves_ends_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // 128 workers: a plan far larger than a pipe's buffer, so disagg is still writing when
    // its reader leaves.
    let ws = TempDir::new("sigpipe");
    let case = ws.path().join("big.yaml");
    std::fs::write(
        &case,
        "name: big\nmodel: {name: m}\nengine: sim\nctx: {count: 64, engine_args: {}}\n\
         gen: {count: 64, engine_args: {}}\nbenchmark: {isl: 8, osl: 8, concurrency: [1]}\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_disagg"))
        .args(["plan", case.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(13), "{:?} {stderr}", out.status);
}

/// `disagg import trtllm` of a config whose requests its context servers would refuse: the case
/// is still written, and the error points into it (its file, its line, its key), exit 2.
#[test]
fn import_writes_a_case_that_does_not_validate_and_points_into_it() {
    let ws = TempDir::new("import-nofit");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/gb200_ctx2_dep4_gen1_dep16_multinode.yaml");
    let text = std::fs::read_to_string(sample)
        .unwrap()
        .replace("    enable_chunked_prefill: true\n", "");
    let src = ws.path().join("cfg.yaml");
    std::fs::write(&src, text).unwrap();
    let out = ws.path().join("case.yaml");
    let r = disagg(
        &[
            "import",
            "trtllm",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 2, "{}", r.show());
    let written = std::fs::read_to_string(&out).expect("the case is written");
    let err = r.stderr();
    assert!(
        err.contains(&format!(
            "was converted, but the case does not validate; it is written to {}",
            out.display()
        )),
        "{err}"
    );
    let line = written
        .lines()
        .position(|l| l.contains("max_num_tokens: 8448"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:", out.display())) && err.contains("max_num_tokens"),
        "{err}"
    );
    assert!(line > 1, "{written}");
    // `validate` says the same of the file.
    let v = disagg(&["validate", out.to_str().unwrap()], &[]);
    assert_eq!(v.code(), 2, "{}", v.show());
}

/// `disagg import -o` makes the folder it names; a path it cannot write is a usage error (exit
/// 2) naming the option and the fix, not a test failure.
#[test]
fn import_output_makes_its_folder_and_an_unwritable_one_is_a_usage_error() {
    let ws = TempDir::new("import-out");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/b200_ctx1_dep4_gen1_dep8.yaml");
    let out = ws.path().join("new/sub/case.yaml");
    let import = |out: &std::path::Path| {
        disagg(
            &[
                "import",
                "trtllm",
                sample.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            &[],
        )
    };
    let r = import(&out);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("engine: trtllm")
    );
    // A folder that is a file: nothing can be written under it.
    let blocked = ws.path().join("a-file");
    std::fs::write(&blocked, "x").unwrap();
    let r = import(&blocked.join("case.yaml"));
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains(&format!(
            "error: --output {}: cannot write the case there",
            blocked.join("case.yaml").display()
        )) && r
            .stderr()
            .contains("hint: give -o a path in a writable folder"),
        "{}",
        r.show()
    );
}

/// `disagg history` and `disagg report CONFIG` only read: pointed at a workspace that recorded
/// nothing, they say so (exit 2, with the way to name the right one) and create nothing there.
#[test]
fn reading_the_history_of_an_empty_workspace_creates_nothing() {
    let ws = TempDir::new("emptyws");
    let empty = ws.path().join("never-used");
    for args in [
        vec!["history", "some-config", "--workspace"],
        vec!["report", "some-config", "--workspace"],
    ] {
        let mut args = args;
        args.push(empty.to_str().unwrap());
        let r = disagg(&args, &[("DISAGG_STORE", "")]);
        assert_eq!(r.code(), 2, "{}", r.show());
        assert!(
            r.stderr()
                .contains("no run has been recorded in this workspace")
                && r.stderr().contains("hint: "),
            "{}",
            r.show()
        );
        assert!(!empty.exists(), "{args:?} created {}", empty.display());
    }
}
