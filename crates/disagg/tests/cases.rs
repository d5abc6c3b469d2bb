//! Bad cases exit 2, name the key, and launch nothing: no folder is created.

mod support;

use support::*;

#[test]
fn bad_cases_exit_2_and_create_no_folder() {
    let good = CaseSpec::default().yaml();
    let table: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            good.replace("  osl: 8", "  osl: 8\n  ols: 8"),
            "key `benchmark.ols`",
        ),
        (
            "wrong type",
            good.replace("  isl: 64", "  isl: [64]"),
            "key `benchmark.isl`",
        ),
        (
            "missing benchmark",
            good.split("benchmark:\n").next().unwrap().to_string() + "timeouts: {job: 120s}\n",
            "key `benchmark`",
        ),
        (
            "inverted deadlines",
            good.replace(
                "request: 20s, benchmark: 60s",
                "request: 90s, benchmark: 60s",
            ),
            "key `timeouts.request`",
        ),
        (
            "unsafe name",
            good.replace("name: e2e", "name: ../x"),
            "key `name`",
        ),
        (
            "a job Slurm may requeue into its own run folder",
            format!("{good}slurm: {{extra_args: [--requeue]}}\n"),
            "key `slurm.extra_args`",
        ),
        (
            "an assignment among the variables to remove",
            format!("{good}env: {{worker_unset: [\"X=Y\"]}}\n"),
            "key `env.worker_unset`",
        ),
        (
            "a variable both set and removed",
            format!("{good}env: {{worker: {{FOO: x}}, worker_unset: [FOO]}}\n"),
            "key `env.worker_unset`",
        ),
        (
            "no run kept for the history gate",
            format!("{good}perf: {{baseline: history, history: {{runs: 0}}}}\n"),
            "key `perf.history.runs`",
        ),
    ];
    for (what, text, key) in table {
        let ws = TempDir::new("bad");
        let case = ws.path().join("case.yaml");
        std::fs::write(&case, &text).unwrap();
        let workspace = ws.path().join("ws");
        for cmd in [vec!["run"], vec!["validate"], vec!["plan"]] {
            let mut args = cmd.clone();
            args.push(case.to_str().unwrap());
            if cmd[0] != "validate" {
                args.extend(["--workspace", workspace.to_str().unwrap()]);
            }
            let r = disagg(&args, &[]);
            assert_eq!(r.code(), 2, "{what} / {}: {}", cmd[0], r.show());
            let err = r.stderr();
            assert!(err.contains(key), "{what}: {err}");
            assert!(
                err.contains(case.to_str().unwrap()),
                "{what}: names the file: {err}"
            );
            assert!(err.contains("hint: "), "{what}: {err}");
            assert!(!workspace.exists(), "{what}: a folder was created");
        }
    }
}

/// Settings the benchmark itself refuses (it checks them before it builds or sends anything)
/// are case errors for `validate` and `run`, before any worker starts: found by BENCHMARK, they
/// cost a whole start-up (on GPUs, up to an hour) and read as a failed test (exit 1).
#[test]
fn settings_the_benchmark_would_refuse_are_case_errors() {
    let good = CaseSpec::default().yaml();
    for (what, text, says) in [
        (
            "a zero duration limit",
            good.replace("  osl: 8", "  osl: 8\n  duration: 0s"),
            "the duration limit must be positive",
        ),
        (
            "a point too large to build",
            good.replace("  osl: 8", "  osl: 8\n  num_prompts: 100000000"),
            "at most 10000000 requests",
        ),
    ] {
        let ws = TempDir::new("bad-bench");
        let case = ws.path().join("case.yaml");
        std::fs::write(&case, &text).unwrap();
        let workspace = ws.path().join("ws");
        for cmd in ["validate", "run"] {
            let mut args = vec![cmd, case.to_str().unwrap()];
            if cmd == "run" {
                args.extend(["--workspace", workspace.to_str().unwrap()]);
            }
            let r = disagg(&args, &[]);
            assert_eq!(r.code(), 2, "{what} / {cmd}: {}", r.show());
            let err = r.stderr();
            assert!(
                err.contains(case.to_str().unwrap())
                    && err.contains("key `benchmark`")
                    && err.contains("the benchmark would refuse these settings: ")
                    && err.contains(says),
                "{what} / {cmd}: {err}"
            );
            assert!(!workspace.exists(), "{what}: a folder was created");
        }
    }
}

/// A value that looks like a shell variable is passed as written (no shell expands an argv or
/// a variable): `validate` says so, and `run` warns, where it would reach the engine literally.
#[test]
fn shell_variables_in_values_are_pointed_out() {
    let ws = TempDir::new("dollar");
    let case = ws.path().join("case.yaml");
    let text = format!(
        "{}env: {{worker: {{HF_HOME: \"$HOME/hf\", PRICE: \"5$\"}}}}\n",
        CaseSpec::default().yaml()
    );
    std::fs::write(&case, text).unwrap();
    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("note: `env.worker.HF_HOME` is `$HOME/hf`: nothing expands `$HOME` here"),
        "{}",
        r.show()
    );
    assert!(
        !r.stdout().contains("PRICE"),
        "a lone `$` is no variable: {}",
        r.show()
    );
}

/// A TensorRT-LLM argument no known release takes, far from every known one (a typo is a case
/// error): maybe newer than disagg's list, so `validate` passes the case and notes it.
#[test]
fn an_unknown_trtllm_argument_is_noted() {
    let ws = TempDir::new("llmargs");
    let case = ws.path().join("case.yaml");
    std::fs::write(
        &case,
        "name: x\nmodel: {name: tiny, path: /m}\nengine: trtllm\n\
         ctx: {count: 1, engine_args: {kv_cache_config: {free_gpu_memory_fraction: 0.5, brand_new_knob: 1}}}\n\
         gen: {count: 1, engine_args: {brand_new_setting_2027: true}}\n\
         benchmark: {isl: 8, osl: 4}\n",
    )
    .unwrap();
    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().contains(
            "note: `gen.engine_args.brand_new_setting_2027` is not an argument of any \
             TensorRT-LLM release disagg knows"
        ),
        "{}",
        r.show()
    );
    // Inside a section whose settings refuse unknown keys, the same.
    assert!(
        r.stdout().contains(
            "note: `ctx.engine_args.kv_cache_config.brand_new_knob` is not a key of \
             `kv_cache_config` in any TensorRT-LLM release disagg knows"
        ),
        "{}",
        r.show()
    );
    assert!(
        !r.stdout().contains("free_gpu_memory_fraction"),
        "{}",
        r.show()
    );
}

/// A vLLM or SGLang option no release takes: `validate` passes the case (the option may be
/// newer than disagg's list) and notes it, with the known option it is nearest to.
#[test]
fn an_unknown_vllm_or_sglang_option_is_noted() {
    let ws = TempDir::new("engineflags");
    for (engine, args, said) in [
        (
            "vllm",
            "{enforce_eagr: true, max_model_len: 4096}",
            "note: `gen.engine_args.enforce_eagr` is `--enforce-eagr`, an option no vLLM release \
             disagg knows takes (did you mean `enforce_eager`?): `vllm serve` refuses to start",
        ),
        (
            "sglang",
            "{mem_fraction_statik: 0.8, context_length: 4096}",
            "note: `gen.engine_args.mem_fraction_statik` is `--mem-fraction-statik`, an option no \
             SGLang release disagg knows takes (did you mean `mem_fraction_static`?)",
        ),
    ] {
        let case = ws.path().join(format!("{engine}.yaml"));
        std::fs::write(
            &case,
            format!(
                "name: x\nmodel: {{name: tiny, path: /m}}\nengine: {engine}\nctx: {{count: 1}}\n\
                 gen: {{count: 1, engine_args: {args}}}\nbenchmark: {{isl: 8, osl: 4}}\n"
            ),
        )
        .unwrap();
        let r = disagg(&["validate", case.to_str().unwrap()], &[]);
        assert_eq!(r.code(), 0, "{}", r.show());
        assert!(r.stdout().contains(said), "{}", r.show());
        assert!(!r.stdout().contains("context_length` is"), "{}", r.show());
        assert!(!r.stdout().contains("max_model_len` is"), "{}", r.show());
    }
}

/// A closed-loop point with fewer prompts than its concurrency never reaches it: `validate`
/// passes the case and says so, naming the points.
#[test]
fn fewer_prompts_than_the_concurrency_is_noted() {
    let ws = TempDir::new("fewprompts");
    let case = ws.path().join("case.yaml");
    std::fs::write(
        &case,
        CaseSpec {
            concurrency: "[1, 4, 8, 16]",
            benchmark_extra: "  num_prompts: 4\n",
            ..CaseSpec::default()
        }
        .yaml(),
    )
    .unwrap();
    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout().contains(
            "note: `benchmark.num_prompts` (4) is below the concurrency of point(s) 8, 16"
        ),
        "{}",
        r.show()
    );
}

#[test]
fn one_bad_case_among_good_ones_launches_nothing() {
    let ws = TempDir::new("mixed");
    let good = CaseSpec::default().write(ws.path(), "good.yaml");
    let bad = ws.path().join("bad.yaml");
    std::fs::write(
        &bad,
        CaseSpec::default()
            .yaml()
            .replace("engine: sim", "engine: sim\nbogus: 1"),
    )
    .unwrap();
    let workspace = ws.path().join("ws");
    let r = run_two(&good, &bad, &workspace);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(!workspace.exists());
    // `validate` still says which are good.
    let r = disagg(
        &["validate", good.to_str().unwrap(), bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stdout().contains(&format!("ok: {}", good.display())) && r.stderr().contains("bogus"),
        "{}",
        r.show()
    );
}

/// A case refused for its baseline is not `ok`; in a sweep, the refusal names the point.
#[test]
fn validate_says_ok_only_of_cases_it_keeps() {
    let ws = TempDir::new("ok-kept");
    let spec = CaseSpec {
        name: "kept",
        ..Default::default()
    };
    let missing = ws.path().join("missing.yaml");
    std::fs::write(&missing, spec.yaml() + "perf: {baseline: nowhere.csv}\n").unwrap();
    let r = disagg(&["validate", missing.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(!r.stdout().contains("ok:"), "{}", r.show());
    assert!(r.stderr().contains("nowhere.csv"), "{}", r.show());
    // A sweep whose second point's baseline is missing: the first is ok, the second named.
    std::fs::write(
        ws.path().join("b1.csv"),
        "perf_case_name,metric_type,perf_metric,threshold,absolute_threshold\n\
         kept_n-1-con1,SEQ_THROUGHPUT,0.01,-0.1,0\n",
    )
    .unwrap();
    let sweep = ws.path().join("sweep.yaml");
    std::fs::write(
        &sweep,
        spec.yaml() + "perf: {baseline: \"b{n}.csv\"}\nsweep:\n  n: [1, 2]\n",
    )
    .unwrap();
    let r = disagg(&["validate", sweep.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert_eq!(r.stdout().matches("ok: ").count(), 1, "{}", r.show());
    assert!(
        r.stderr().contains("error: sweep point 2: ") && r.stderr().contains("b2.csv"),
        "{}",
        r.show()
    );
}

fn run_two(a: &std::path::Path, b: &std::path::Path, ws: &std::path::Path) -> Ran {
    disagg(
        &[
            "run",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn a_missing_baseline_is_a_case_error() {
    let ws = TempDir::new("nobase");
    let case = CaseSpec {
        extra: "perf: {baseline: nowhere.csv}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let workspace = ws.path().join("ws");
    let r = run(&case, &workspace, &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    assert!(
        r.stderr().contains("nowhere.csv") && r.stderr().contains("hint:"),
        "{}",
        r.show()
    );
    assert!(!workspace.exists());
}

#[test]
fn plan_prints_every_role_without_running_anything() {
    let ws = TempDir::new("plan");
    let case = CaseSpec {
        extra: "env:\n  worker: {NCCL_DEBUG: INFO}\n  server: {RUST_LOG: info}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let workspace = ws.path().join("ws");
    let r = disagg(
        &[
            "plan",
            case.to_str().unwrap(),
            "--workspace",
            workspace.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    assert!(out.contains("config name: e2e"), "{out}");
    assert!(
        out.contains(&format!(
            "run folder:  {}",
            std::path::absolute(&workspace)
                .unwrap()
                .join("disagg_logs/e2e")
                .display()
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "deadlines:   worker_startup 20s, request 20s, benchmark 1m, job 2m, grace 2s"
        ),
        "{out}"
    );
    for role in [
        "CTX_0 -> ctx_server_0.log",
        "GEN_0 -> gen_server_0.log",
        "DISAGG_SERVER -> disagg_server.log",
        "BENCHMARK -> benchmark.log",
    ] {
        assert!(out.contains(role), "{out}");
    }
    assert!(out.contains("env set:   NCCL_DEBUG=INFO"), "{out}");
    assert!(out.contains("env unset: UCX_TLS"), "{out}");
    assert!(out.contains("env set:   RUST_LOG=info"), "{out}");
    assert!(
        out.contains("gpus:      node0:0") && out.contains("gpus:      node0:1"),
        "{out}"
    );
    assert!(
        out.contains(" sim --role generation --dialect trtllm"),
        "{out}"
    );
    assert!(!workspace.exists(), "plan created a folder");
    let r = disagg(
        &[
            "plan",
            "--json",
            case.to_str().unwrap(),
            "--workspace",
            workspace.to_str().unwrap(),
        ],
        &[],
    );
    let plan: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(plan["roles"].as_array().unwrap().len(), 4);
    // Env is role-scoped: worker vars only on workers, server vars only on the server.
    for role in plan["roles"].as_array().unwrap() {
        let name = role["role"].as_str().unwrap();
        let env = &role["env_set"];
        assert_eq!(
            env.get("NCCL_DEBUG").is_some(),
            name.starts_with("CTX") || name.starts_with("GEN"),
            "{name}"
        );
        assert_eq!(
            env.get("RUST_LOG").is_some(),
            name == "DISAGG_SERVER",
            "{name}"
        );
        assert_eq!(env["DISAGG_SERVING_TYPE"], name);
    }
}

#[test]
fn validate_refuses_a_multi_node_case_whose_worker_would_publish_loopback() {
    // One GPU per node: CTX_0 on node 0, GEN_0 on node 1; GEN_0's command binds loopback,
    // which the router on node 0 could never reach.
    let text = r#"name: mn-loopback
model: {name: tiny}
engine: command
hardware: {gpus_per_node: 1}
ctx: {count: 1, engine_args: {argv: ["{disagg}", sim, --role, context, --host, "{host}", --port, "{port}"]}}
gen:
  count: 1
  engine_args:
    argv: ["{disagg}", sim, --role, generation, --host, "{host}", --port, "{port}"]
    host: 127.0.0.1
benchmark: {isl: 8, osl: 8}
"#;
    let ws = TempDir::new("loopback");
    let case = ws.path().join("case.yaml");
    std::fs::write(&case, text).unwrap();
    let r = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    let err = r.stderr();
    assert!(err.contains("gen.engine_args.host"), "{err}");
    assert!(err.contains("case.yaml:10:"), "names the line: {err}");
    assert!(
        err.contains("GEN_0 (node 1) would bind and publish the loopback address `127.0.0.1`"),
        "{err}"
    );
    assert!(err.contains("span 2 nodes"), "{err}");
    assert!(err.contains("hint: remove `host`"), "{err}");
    // Without the loopback host it is a valid multi-node case.
    std::fs::write(&case, text.replace("    host: 127.0.0.1\n", "")).unwrap();
    let ok = disagg(&["validate", case.to_str().unwrap()], &[]);
    assert_eq!(ok.code(), 0, "{}", ok.show());
}

/// A case `run` refuses with the local launcher (real engines on several nodes) validates, and
/// says it needs `--launcher slurm`: an `ok:` alone read as "runs here".
#[test]
fn validate_says_when_a_case_runs_only_under_slurm() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/trtllm-multinode.yaml");
    let r = disagg(&["validate", example.to_str().unwrap()], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
    assert!(
        r.stdout()
            .contains("note: only with `--launcher slurm`: the workers take"),
        "{}",
        r.show()
    );
    let quick =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart.yaml");
    let r = disagg(&["validate", quick.to_str().unwrap()], &[]);
    assert!(!r.stdout().contains("--launcher slurm"), "{}", r.show());
}

#[test]
fn plan_for_slurm_shows_each_steps_gpus_and_the_engine_it_runs() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/trtllm-multinode.yaml");
    let ws = TempDir::new("plan-slurm");
    let r = disagg(
        &[
            "plan",
            example.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--workspace",
            ws.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code(), 0, "{}", r.show());
    let out = r.stdout();
    // Each step's line, then its engine right under it.
    let step = |role: &str| -> Vec<&str> {
        let mut lines = out
            .lines()
            .skip_while(|l| !l.starts_with(&format!("# {role}: srun ")));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no {role} step in\n{out}"));
        std::iter::once(first)
            .chain(lines.take_while(|l| l.starts_with("#   ")))
            .collect()
    };
    let ctx = step("CTX_0");
    assert!(ctx[0].contains(" --gres=gpu:4 "), "{ctx:?}");
    assert!(ctx[0].contains(" --immediate=5 "), "{ctx:?}");
    assert!(
        ctx.iter().any(|l| l.starts_with(
            "#   engine (on each of 4 ranks): trtllm-llmapi-launch trtllm-serve /models/DeepSeek-R1-FP4 --host '{host}' --port '{port}' --extra_llm_api_options "
        )),
        "{ctx:?}"
    );
    let gen_ = step("GEN_0");
    assert!(
        gen_[0].contains(" --nodes=2 ") && gen_[0].contains(" --gres=gpu:8 "),
        "{gen_:?}"
    );
    assert!(
        gen_.iter()
            .any(|l| l.starts_with("#   engine (on each of 16 ranks): ")),
        "{gen_:?}"
    );
    // The job asks for GPUs once: the case's own `--gres=gpu:8` (no second request).
    assert_eq!(out.matches("#SBATCH --gres").count(), 1, "{out}");
    // The router and benchmark hold no GPU; the router step shows trtllm's own router.
    let server = step("DISAGG_SERVER");
    assert!(
        server[0].contains(" --overlap ") && server[0].contains(" --gres=gpu:0 "),
        "{server:?}"
    );
    assert!(
        server
            .iter()
            .any(|l| l.starts_with("#   engine: trtllm-serve disaggregated -c ")),
        "{server:?}"
    );
    assert!(step("BENCHMARK")[0].contains(" --gres=gpu:0 "));
    // Workers get their GPUs from Slurm, not from a CUDA_VISIBLE_DEVICES Slurm would overwrite.
    assert!(!out.contains("CUDA_VISIBLE_DEVICES"), "{out}");
}

/// `disagg validate FILE`: its result and how long it took.
/// `disagg validate FILE`: its exit code, its stderr, and the CPU time it spent (user + system,
/// read from /proc while it is a zombie), which, unlike wall time, does not grow when the rest
/// of the suite loads the machine.
fn validate(ws: &TempDir, file: &str, text: &[u8]) -> (i32, String, std::time::Duration) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let p = ws.path().join(file);
    std::fs::write(&p, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_disagg"))
        .args(["validate", p.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Exited, not reaped: its /proc entry still holds what it spent.
    nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(pid),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    )
    .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields 14 and 15 (utime, stime), counted after the command name's closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|t| t.parse::<u64>().unwrap())
        .sum();
    // /proc counts in USER_HZ, 100 on every Linux architecture we build for.
    let hz = 100;
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (
        code,
        stderr,
        std::time::Duration::from_millis(ticks * 1000 / hz),
    )
}

#[test]
fn hostile_case_files_are_refused_fast_and_say_why() {
    let ws = TempDir::new("hostile");
    let good = CaseSpec::default().yaml();
    let deep_flow = good.replace(
        "  concurrency: [1, 4]",
        &format!(
            "  concurrency: {}1{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    );
    let deep_block = good.replace(
        "  concurrency: [1, 4]",
        &format!("  concurrency:\n    {}1", "- ".repeat(100_000)),
    );
    let mut huge_list = good.replace("  concurrency: [1, 4]\n", "").into_bytes();
    huge_list.extend_from_slice(b"benchmark_more: {concurrency: [");
    huge_list.extend(std::iter::repeat_n(b"1,".as_slice(), 20_000_000).flatten());
    huge_list.extend_from_slice(b"1]}\n");
    let long_list = good.replace(
        "  concurrency: [1, 4]",
        &format!("  concurrency: [{}1]", "1,".repeat(20_000)),
    );
    for (what, text, says) in [
        (
            "100k-deep flow nesting",
            deep_flow.into_bytes(),
            "nested more than 64 deep",
        ),
        (
            "100k-deep block nesting",
            deep_block.into_bytes(),
            "benchmark.concurrency",
        ),
        ("a 20-million-entry list", huge_list, "larger than 256 KiB"),
        (
            "a 20k-entry list",
            long_list.into_bytes(),
            "lists 20001 values; at most 256",
        ),
    ] {
        let (code, stderr, cpu) = validate(&ws, "hostile.yaml", &text);
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(stderr.contains("hint: "), "{what}: {stderr}");
        assert!(
            cpu < std::time::Duration::from_secs(1),
            "{what}: refused after {cpu:?} of CPU"
        );
    }
}

#[test]
fn a_second_document_a_newline_in_env_and_an_underivable_name_are_errors() {
    let ws = TempDir::new("shape");
    let good = CaseSpec::default().yaml();
    let unnamed = good.replace("name: e2e\n", "");
    for (what, text, says) in [
        (
            "a second document",
            format!("{good}---\nname: other\n"),
            "a second YAML document (after `---`)",
        ),
        (
            "a newline in an env value",
            format!("{good}env: {{worker: {{NCCL_DEBUG: \"INFO\\necho pwned\"}}}}\n"),
            "key `env.worker.NCCL_DEBUG`",
        ),
        (
            "a derived name over 200 characters",
            unnamed.replace("llama-3.1-8b", &"m".repeat(220)),
            "the config name derived from this case",
        ),
    ] {
        let (code, stderr, _) = validate(&ws, "c.yaml", text.as_bytes());
        assert_eq!(code, 2, "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
    }
    // The same name too long, written out: the hint says to set `name`.
    let (_, stderr, _) = validate(
        &ws,
        "c.yaml",
        unnamed.replace("llama-3.1-8b", &"m".repeat(220)).as_bytes(),
    );
    assert!(stderr.contains("set `name:`"), "{stderr}");
    // A leading `---` and a trailing `...` are one document still; so is one with a trailing
    // `---` that starts nothing (a generated file's end).
    let (code, stderr, _) = validate(&ws, "c.yaml", format!("---\n{good}...\n").as_bytes());
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr, _) = validate(&ws, "c.yaml", format!("{good}---\n# end\n").as_bytes());
    assert_eq!(code, 0, "{stderr}");
}

/// A dataset or tokenizer the benchmark could not read is a case error found before anything
/// starts (2, naming the key and the bad line), not a run that starts every server and fails.
#[test]
fn a_dataset_or_tokenizer_the_benchmark_cannot_read_is_a_case_error() {
    let good = CaseSpec::default().yaml();
    for (what, file, contents, key, said) in [
        (
            "a bad line",
            "d.jsonl",
            "{\"prompt\": \"a b\", \"output_tokens\": 4}\nbad json line\n",
            "benchmark.dataset",
            "d.jsonl:2",
        ),
        (
            "an empty dataset",
            "d.jsonl",
            "",
            "benchmark.dataset",
            "d.jsonl",
        ),
        (
            "an empty tokenizer",
            "t.json",
            "{}",
            "benchmark.tokenizer",
            "t.json",
        ),
    ] {
        let ws = TempDir::new("bad-inputs");
        std::fs::write(ws.path().join(file), contents).unwrap();
        let line = if key == "benchmark.dataset" {
            format!("  dataset: {file}\n")
        } else {
            format!("  tokenizer: {file}\n")
        };
        let case = ws.path().join("case.yaml");
        std::fs::write(
            &case,
            good.replace("  warmup: 1\n", &format!("  warmup: 1\n{line}")),
        )
        .unwrap();
        let r = disagg(&["validate", case.to_str().unwrap()], &[]);
        assert_eq!(r.code(), 2, "{what}: {}", r.show());
        let err = r.stderr();
        assert!(
            err.contains(key) && err.contains(said) && err.contains("hint: "),
            "{what}: {err}"
        );
        let workspace = ws.path().join("ws");
        let r = disagg(
            &[
                "run",
                case.to_str().unwrap(),
                "--workspace",
                workspace.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(r.code(), 2, "{what}: {}", r.show());
        assert!(!workspace.exists(), "{what}: a folder was created");
    }
}
