//! `disagg import trtllm` on three sample perf-sanity configs (written for these tests from the
//! documented format): the case it writes, what it reports, and the plan that case makes.

use std::path::Path;

use disagg_core::engines::EngineArgs;
use disagg_core::import::trtllm::convert;
use disagg_core::{Plan, RoleName, parse_case};

fn import(file: &str) -> (String, Vec<String>, Plan) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let stem = file.trim_end_matches(".yaml");
    // Deterministic whatever the machine: no $LLM_MODELS_ROOT, no dataset file.
    let nowhere = |_: &Path| false;
    let opts = disagg_core::import::trtllm::Options {
        gen_only: false,
        per_gen_server_concurrency: false,
        models_root: None,
        exists: &nowhere,
        read: &|_: &Path| None,
    };
    let imported = disagg_core::import::trtllm::convert_with(&text, stem, &opts).unwrap();
    let case = parse_case(&imported.case_yaml, Path::new(file)).unwrap();
    let plan = disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    );
    let notes = imported.notes.iter().map(|n| n.to_string()).collect();
    (imported.case_yaml, notes, plan)
}

fn env_of(plan: &Plan, role: RoleName) -> std::collections::BTreeMap<String, String> {
    plan.role(role).unwrap().env_set.clone()
}

/// The plan of an imported case's text.
fn plan_of(yaml: &str) -> Plan {
    let case = parse_case(yaml, Path::new("t.yaml")).unwrap();
    disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    )
}

fn ranks(plan: &Plan, role: RoleName) -> (u32, Vec<u32>) {
    let r = plan.role(role).unwrap();
    let mut nodes: Vec<u32> = r.gpus.iter().map(|g| g.node).collect();
    nodes.dedup();
    (r.ranks, nodes)
}

#[test]
fn one_context_server_dep4_and_one_generation_server_dep8() {
    let (yaml, notes, plan) = import("b200_ctx1_dep4_gen1_dep8.yaml");
    assert_eq!(ranks(&plan, RoleName::Ctx(0)), (4, vec![0]));
    assert_eq!(ranks(&plan, RoleName::Gen(0)), (8, vec![1]));
    assert_eq!(plan.nodes, 2);
    // TensorRT-LLM's Slurm script runs its workers under PMIx; the imported case says so.
    assert_eq!(plan.slurm.mpi.as_deref(), Some("pmix"), "{yaml}");
    let gen_engine = plan
        .role(RoleName::Gen(0))
        .unwrap()
        .engine
        .as_ref()
        .unwrap();
    assert_eq!(gen_engine.argv[0], "trtllm-llmapi-launch");
    assert!(plan.files["gen_config.yaml"].contains("tensor_parallel_size: 8"));
    assert!(plan.files["gen_config.yaml"].contains("decoding_type: MTP"));
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("benchmark.dataset_file"))
    );
    insta::assert_snapshot!("dep4_dep8_case", yaml);
    insta::assert_snapshot!("dep4_dep8_plan", disagg_core::plan::render(&plan));
}

#[test]
fn a_multi_node_generation_server() {
    let (yaml, notes, plan) = import("gb200_ctx2_dep4_gen1_dep16_multinode.yaml");
    assert_eq!(ranks(&plan, RoleName::Ctx(0)), (4, vec![0]));
    assert_eq!(ranks(&plan, RoleName::Ctx(1)), (4, vec![1]));
    assert_eq!(ranks(&plan, RoleName::Gen(0)), (16, vec![2, 3, 4, 5]));
    assert_eq!(plan.nodes, 6);
    // TensorRT-LLM's own client reads benchmark_ratio as we do: imported exactly, no note.
    assert!(yaml.contains("range_ratio: 0.8"), "{yaml}");
    assert!(
        !notes
            .iter()
            .any(|n| n.starts_with("benchmark.benchmark_ratio"))
    );
    for must in ["profiling.nsys_on", "environment.model_path"] {
        assert!(
            notes.iter().any(|n| n.starts_with(must)),
            "{must} not reported: {notes:?}"
        );
    }
    insta::assert_snapshot!("multinode_case", yaml);
    insta::assert_snapshot!("multinode_plan", disagg_core::plan::render(&plan));
}

#[test]
fn a_generation_only_benchmark() {
    let (yaml, notes, plan) = import("gb200_gen_only_tep8.yaml");
    // As TensorRT-LLM's launcher runs `gen_only`: the GEN workers queue the whole batch
    // (the first concurrency, 1) and transfer KV without overlap; the CTX workers get neither
    // (on them the flag has hung runs), and nobody fakes the KV cache.
    let gen_env = env_of(&plan, RoleName::Gen(0));
    assert_eq!(
        gen_env.get("TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP"),
        Some(&"1".to_string())
    );
    assert_eq!(
        gen_env.get("TLLM_BENCHMARK_REQ_QUEUES_SIZE"),
        Some(&"1".to_string())
    );
    let ctx_env = env_of(&plan, RoleName::Ctx(0));
    assert!(!ctx_env.contains_key("TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP"));
    assert!(!ctx_env.contains_key("TLLM_BENCHMARK_REQ_QUEUES_SIZE"));
    for r in &plan.roles {
        assert!(
            !r.env_set.contains_key("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY"),
            "{}",
            r.role
        );
    }
    assert_eq!(ranks(&plan, RoleName::Gen(0)), (8, vec![1, 2]));
    assert!(notes.iter().any(|n| n.starts_with("benchmark.mode")));
    assert!(notes.iter().any(|n| n.contains("BAD_TOKEN")), "{notes:?}");
    let case = parse_case(&yaml, Path::new("t.yaml")).unwrap();
    assert!(matches!(
        case.case.generation.engine_args,
        EngineArgs::Options(_)
    ));
    insta::assert_snapshot!("gen_only_case", yaml);
    insta::assert_snapshot!("gen_only_plan", disagg_core::plan::render(&plan));
}

#[test]
fn what_cannot_be_read_is_an_error_naming_the_key() {
    let err = convert(
        "metadata: {model_name: m}\nbenchmark: {input_length: 8}\n\
         worker_config: {ctx: {tensor_parallel_size: 1}, gen: {tensor_parallel_size: 1}}\n",
        "x",
    )
    .unwrap_err();
    assert!(err.to_string().contains("benchmark.output_length"), "{err}");
    let err = convert(
        "metadata: {model_name: m}\nbenchmark: {input_length: -5, output_length: 8}\n\
         worker_config: {ctx: {tensor_parallel_size: 1}, gen: {tensor_parallel_size: 1}}\n",
        "x",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("benchmark.input_length") && err.contains("not a whole number of tokens"),
        "present, but not a count: {err}"
    );
    let err = convert("- a list", "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the file is not a mapping (a TensorRT-LLM disagg config is a mapping of sections)"
    );
}

/// A mistyped or empty worker group is an error: imported as nothing, the servers would run
/// as one GPU each with no options, and the case would validate.
#[test]
fn a_mistyped_or_empty_worker_group_is_an_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/b200_ctx1_dep4_gen1_dep8.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("\n  gen:").count(), 1);
    let typo = text.replace("\n  gen:", "\n  gne:");
    let err = convert(&typo, "x").unwrap_err().to_string();
    assert!(
        err.contains("worker_config.gne") && err.contains("holds `ctx` and `gen`"),
        "{err}"
    );
    let empty = text.replace("\n  gen:", "\n  gen: null\n  gen_x:");
    let err = convert(&empty, "x").unwrap_err().to_string();
    assert!(err.contains("worker_config.gen"), "{err}");
}

/// The multinode sample with its benchmark section edited.
fn with_benchmark(edit: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/gb200_ctx2_dep4_gen1_dep16_multinode.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edit {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    text
}

/// `benchmark.dataset` as written (the file it names need not exist here).
fn dataset_of(yaml: &str) -> Option<String> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    v["benchmark"]["dataset"].as_str().map(String::from)
}

fn bench_of(yaml: &str) -> disagg_core::case::Benchmark {
    parse_case(yaml, Path::new("t.yaml"))
        .unwrap()
        .case
        .benchmark
}

#[test]
fn the_sa_clients_ratio_is_converted_to_the_same_range() {
    // [0.8·L, L] is L' = 0.9·L with ratio (1 − 0.8)/(1 + 0.8) = 1/9.
    let text = with_benchmark(&[("use_nv_sa_benchmark: false", "use_nv_sa_benchmark: true")]);
    let imported = convert(&text, "sa").unwrap();
    let b = bench_of(&imported.case_yaml);
    assert_eq!(
        (b.isl, b.osl),
        (7373, 922),
        "8192·0.9 = 7372.8, 1024·0.9 = 921.6"
    );
    assert!(
        (b.range_ratio - 1.0 / 9.0).abs() < 1e-12,
        "{}",
        b.range_ratio
    );
    // The same range: [L'(1−r'), L'(1+r')] ≈ [0.8·L, L].
    let (lo, hi) = (
        b.isl as f64 * (1.0 - b.range_ratio),
        b.isl as f64 * (1.0 + b.range_ratio),
    );
    assert!(
        (lo - 0.8 * 8192.0).abs() < 1.0 && (hi - 8192.0).abs() < 1.0,
        "{lo} {hi}"
    );
    let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("benchmark.benchmark_ratio") && n.contains("[0.8·L, L]")),
        "{notes:?}"
    );
    // Without the SA client the ratio is TensorRT-LLM's (and ours) as is.
    let b = bench_of(&convert(&with_benchmark(&[]), "own").unwrap().case_yaml);
    assert_eq!((b.isl, b.osl, b.range_ratio), (8192, 1024, 0.8));
}

#[test]
fn dataset_file_follows_trtllms_resolution_rule() {
    use disagg_core::import::trtllm::{Options, convert_with};
    let tmp_tmp = tempfile::tempdir().unwrap();
    let tmp = tmp_tmp.path().to_path_buf();
    let root = tmp.join("models");
    std::fs::create_dir_all(root.join("datasets")).unwrap();
    let under_root = root.join("datasets/aa.jsonl");
    std::fs::write(&under_root, "{}\n").unwrap();
    let elsewhere = tmp.join("elsewhere.jsonl");
    std::fs::write(&elsewhere, "{}\n").unwrap();
    let exists = |p: &Path| p.is_file();
    let text_for = |file: &str| {
        with_benchmark(&[(
            "dataset_file: <dataset_file>",
            &format!("dataset_file: {file}"),
        )])
    };
    let opts = Options {
        gen_only: false,
        per_gen_server_concurrency: false,
        models_root: Some(root.clone()),
        exists: &exists,
        read: &|_: &Path| None,
    };
    // Under $LLM_MODELS_ROOT first.
    let d = dataset_of(
        &convert_with(&text_for("datasets/aa.jsonl"), "d", &opts)
            .unwrap()
            .case_yaml,
    );
    assert_eq!(d.as_deref(), Some(under_root.to_str().unwrap()));
    // Else as given.
    let d = dataset_of(
        &convert_with(&text_for(elsewhere.to_str().unwrap()), "d", &opts)
            .unwrap()
            .case_yaml,
    );
    assert_eq!(d.as_deref(), Some(elsewhere.to_str().unwrap()));
    // Else random prompts, and the note says where it looked.
    let imported = convert_with(&text_for("datasets/missing.jsonl"), "d", &opts).unwrap();
    assert_eq!(dataset_of(&imported.case_yaml), None);
    let note = imported
        .notes
        .iter()
        .map(|n| n.to_string())
        .find(|n| n.starts_with("benchmark.dataset_file"))
        .unwrap();
    assert!(
        note.contains(root.join("datasets/missing.jsonl").to_str().unwrap())
            && note.contains("random prompts"),
        "{note}"
    );
    // The template's placeholder, never filled in: random prompts, said as such.
    let imported = convert_with(&text_for("<dataset_file>"), "d", &opts).unwrap();
    assert_eq!(dataset_of(&imported.case_yaml), None);
    let note = imported
        .notes
        .iter()
        .map(|n| n.to_string())
        .find(|n| n.starts_with("benchmark.dataset_file"))
        .expect("a note for the placeholder");
    assert!(
        note.contains("placeholder") && note.contains("random prompts"),
        "{note}"
    );
}

#[test]
fn gen_only_runs_the_first_concurrency_once_after_one_warm_up_request() {
    use disagg_core::import::trtllm::{Options, convert_with};
    let text = with_benchmark(&[("concurrency_list: '2048'", "concurrency_list: '1 8 64'")]);
    let opts = Options {
        gen_only: true,
        ..Options::from_env()
    };
    let b = bench_of(&convert_with(&text, "g", &opts).unwrap().case_yaml);
    assert_eq!((b.concurrency(), b.rounds, b.warmup), (vec![1], 1, 1));
    let text = with_benchmark(&[("concurrency_list: '2048'", "concurrency_list: '8 64'")]);
    let b = bench_of(&convert_with(&text, "g", &opts).unwrap().case_yaml);
    assert_eq!((b.concurrency(), b.rounds, b.warmup), (vec![8], 1, 0));
    // Without it, the whole list and multi_round.
    let b = bench_of(&convert(&text, "e").unwrap().case_yaml);
    assert_eq!((b.concurrency(), b.rounds), (vec![8, 64], 3));
}

/// The gen-only sample with edits (each found once).
fn gen_only_with(edit: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/gb200_gen_only_tep8.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edit {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text = text.replace(from, to);
    }
    text
}

/// The fill target is capped as TensorRT-LLM's launcher caps it
/// (`get_benchmark_request_queue_size`): at the GEN server's max_batch_size, times its tp under
/// attention DP. Uncapped, a GEN server of max_batch_size 1 would wait for ever for 8 requests
/// it can never hold, and the case (4 GEN servers sharing 8) would not even load.
#[test]
fn the_gen_only_fill_target_is_capped_at_what_a_gen_server_holds() {
    let queue = |edit: &[(&str, &str)]| -> (String, Vec<String>, Plan) {
        let imported = convert(&gen_only_with(edit), "g").unwrap_or_else(|e| panic!("{e}"));
        let plan = plan_of(&imported.case_yaml);
        let gen_env = env_of(&plan, RoleName::Gen(0));
        let notes = imported.notes.iter().map(|n| n.to_string()).collect();
        (
            gen_env["TLLM_BENCHMARK_REQ_QUEUES_SIZE"].clone(),
            notes,
            plan,
        )
    };
    // Upstream's gb300 ..._con8_ctx1_dep4_gen4_tep8_...: 8 requests over four tep8 GEN servers
    // of max_batch_size 1 wait for 1 each.
    let (q, notes, plan) = queue(&[
        ("concurrency_list: '1 4 16'", "concurrency_list: '8'"),
        ("num_gen_servers: 1", "num_gen_servers: 4"),
        ("    max_batch_size: 16\n", "    max_batch_size: 1\n"),
    ]);
    assert_eq!(q, "1");
    for g in 0..4 {
        assert_eq!(
            env_of(&plan, RoleName::Gen(g))["TLLM_BENCHMARK_REQ_QUEUES_SIZE"],
            "1"
        );
    }
    assert!(
        notes.iter().any(|n| n.starts_with("benchmark.mode")
            && n.contains("TLLM_BENCHMARK_REQ_QUEUES_SIZE=1")
            && n.contains("concurrency 8 capped")),
        "{notes:?}"
    );
    // Attention DP: each of the tp ranks batches its own (8 × 4 holds 16).
    let adp = [
        ("concurrency_list: '1 4 16'", "concurrency_list: '16'"),
        ("    max_batch_size: 16\n", "    max_batch_size: 8\n"),
        ("tensor_parallel_size: 8", "tensor_parallel_size: 4"),
        (
            "    enable_attention_dp: false\n    cuda_graph_config",
            "    enable_attention_dp: true\n    cuda_graph_config",
        ),
    ];
    assert_eq!(queue(&adp).0, "16");
    // Without it, tp does not count: 8 of 16.
    assert_eq!(queue(&adp[..3]).0, "8");
    // No max_batch_size: the concurrency, as TensorRT-LLM takes it.
    assert_eq!(
        queue(&[
            ("concurrency_list: '1 4 16'", "concurrency_list: '4'"),
            ("    max_batch_size: 16\n", ""),
        ])
        .0,
        "4"
    );
}

/// TensorRT-LLM's perf-sanity client passes `--no-test-input`: the imported case sends no
/// canary either, so its first point meets the servers as cold as upstream's, and says so.
#[test]
fn the_imported_case_sends_no_canary_as_perf_sanity_sends_no_test_input() {
    for file in [
        "b200_ctx1_dep4_gen1_dep8.yaml",
        "gb200_ctx2_dep4_gen1_dep16_multinode.yaml",
        "gb200_gen_only_tep8.yaml",
    ] {
        let (yaml, notes, plan) = import(file);
        assert!(!bench_of(&yaml).canary, "{file}: {yaml}");
        assert!(!plan.benchmark.canary, "{file}");
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("benchmark: `canary: false`")),
            "{file}: {notes:?}"
        );
    }
}

/// The MTP depth names the case (`model.mtp`, `_mtpN` in its config name): `max_draft_len`,
/// else `num_nextn_predict_layers`, its older name, as TensorRT-LLM's perf-sanity reads it.
#[test]
fn the_mtp_depth_falls_back_to_num_nextn_predict_layers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/b200_ctx1_dep4_gen1_dep8.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mtp = |text: &str| {
        let yaml = convert(text, "m").unwrap().case_yaml;
        parse_case(&yaml, Path::new("m.yaml"))
            .unwrap()
            .case
            .model
            .mtp
    };
    let both = "      num_nextn_predict_layers: 1\n      max_draft_len: 1\n";
    assert_eq!(text.matches(both).count(), 1);
    assert_eq!(mtp(&text), 1);
    // max_draft_len wins where both are given.
    assert_eq!(
        mtp(&text.replace(
            both,
            "      num_nextn_predict_layers: 2\n      max_draft_len: 3\n"
        )),
        3
    );
    // The older name alone.
    assert_eq!(
        mtp(&text.replace(both, "      num_nextn_predict_layers: 3\n")),
        3
    );
    // Not MTP: none.
    assert_eq!(
        mtp(&text.replace(
            "decoding_type: MTP",
            "decoding_type: Eagle\n      speculative_model: /m/eagle"
        )),
        0
    );
}

/// `accuracy` is TensorRT-LLM's own section (its AccuracyConfig), not an unknown one: the note
/// says disagg does not run it, and that nothing is lost when it is off.
#[test]
fn the_accuracy_section_is_known_and_said_not_to_be_run() {
    let notes = |accuracy: &str| -> Vec<String> {
        let text = format!("{}accuracy:\n{accuracy}", with_benchmark(&[]));
        convert(&text, "a")
            .unwrap()
            .notes
            .iter()
            .map(|n| n.to_string())
            .filter(|n| n.starts_with("accuracy"))
            .collect()
    };
    let off = notes("  enable_accuracy_test: false\n");
    assert_eq!(off.len(), 1, "{off:?}");
    assert!(
        off[0].contains("nothing lost") && !off[0].contains("unknown section"),
        "{off:?}"
    );
    let on =
        notes("  enable_accuracy_test: true\n  tasks:\n    gsm8k: {model: local-completions}\n");
    assert_eq!(on.len(), 1, "{on:?}");
    assert!(
        on[0].contains("lm_eval gsm8k") && on[0].contains("not run by disagg"),
        "{on:?}"
    );
}

/// `cache_transceiver_config.backend: DEFAULT` is what TensorRT-LLM makes of it: NIXL from 1.2 on
/// (UCX before), read from the container image's tag or the wheel's name, unless a legacy
/// variable in the workers' environment picks one; NIXL, the current default, when no release
/// is named. The note says which and why; the engine options keep DEFAULT.
#[test]
fn a_default_transceiver_backend_is_the_one_tensorrt_llm_picks_for_it() {
    use disagg_core::case::CacheTransceiver::{Nixl, Ucx};
    let backend = |edit: &[(&str, &str)]| {
        let imported = convert(&gen_only_with(edit), "d").unwrap();
        let case = parse_case(&imported.case_yaml, Path::new("d.yaml")).unwrap();
        let note = imported
            .notes
            .iter()
            .map(|n| n.to_string())
            .find(|n| n.starts_with("worker_config.*.cache_transceiver_config.backend"))
            .unwrap_or_default();
        assert!(
            imported.case_yaml.contains("backend: DEFAULT"),
            "the engine resolves it: {}",
            imported.case_yaml
        );
        (case.case.hardware.named_transceiver(), note)
    };
    // No release named (the image a placeholder): NIXL, said to be assumed.
    let (b, note) = backend(&[]);
    assert_eq!(b, Nixl);
    assert!(
        note.contains("`DEFAULT` taken as NIXL") && note.contains("UCX"),
        "{note}"
    );
    let image = "container_image: <container_image>";
    // Before 1.2, UCX; from 1.2 on (release candidates too), NIXL.
    let (b, note) = backend(&[(
        image,
        "container_image: nvcr.io/nvidia/tensorrt-llm/release:1.1.0",
    )]);
    assert_eq!(b, Ucx);
    assert!(
        note.contains("TensorRT-LLM 1.1.0 (the container image's tag) defaults to UCX"),
        "{note}"
    );
    let (b, note) = backend(&[(
        image,
        "container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc4",
    )]);
    assert_eq!(b, Nixl);
    assert!(note.contains("1.2.0rc4"), "{note}");
    // The wheel names it when the image does not.
    let (b, _) = backend(&[(
        "  build_wheel: false\n",
        "  build_wheel: false\n  trtllm_wheel_path: /w/tensorrt_llm-1.0.0-cp312-cp312-linux_x86_64.whl\n",
    )]);
    assert_eq!(b, Ucx);
    // A legacy variable in the workers' environment wins over the release.
    let (b, note) = backend(&[
        (
            image,
            "container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        ),
        (
            "worker_env_var: TLLM_LOG_LEVEL=INFO BAD_TOKEN",
            "worker_env_var: TLLM_LOG_LEVEL=INFO TRTLLM_USE_UCX_KVCACHE=1",
        ),
    ]);
    assert_eq!(b, Ucx);
    assert!(note.contains("TRTLLM_USE_UCX_KVCACHE=1"), "{note}");
}

#[test]
fn the_auth_key_goes_to_the_router() {
    let text = format!(
        "{}internal_request_auth_key: 0123abcd\n",
        with_benchmark(&[])
    );
    let imported = convert(&text, "k").unwrap();
    let case = parse_case(&imported.case_yaml, Path::new("t.yaml")).unwrap();
    assert_eq!(
        case.case.router.internal_request_auth_key.as_deref(),
        Some("0123abcd")
    );
    assert!(
        !imported
            .notes
            .iter()
            .any(|n| n.to_string().starts_with("internal_request_auth_key")),
        "carried over, so not a note"
    );
    let plan = disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    );
    assert!(
        plan.files["gen_config.yaml"].contains("internal_request_auth_key: 0123abcd"),
        "{}",
        plan.files["gen_config.yaml"]
    );
}

#[test]
fn concurrency_is_the_deployments_unless_said_to_be_per_generation_server() {
    use disagg_core::import::trtllm::{Options, convert_with};
    // (Its own `--segment=6` would no longer be the job's node count, which validate refuses:
    // left out, the import writes the right one.)
    let text = with_benchmark(&[("concurrency_list: '2048'", "concurrency_list: '8 64'")])
        .replace("num_gen_servers: 1", "num_gen_servers: 2")
        .replace(" --segment=6", "");
    // As perf-sanity runs it: the list as given, with a note saying so and how to change it.
    let imported = convert(&text, "c").unwrap();
    assert_eq!(bench_of(&imported.case_yaml).concurrency(), vec![8, 64]);
    let note = imported
        .notes
        .iter()
        .map(|n| n.to_string())
        .find(|n| n.starts_with("benchmark.concurrency_list"))
        .expect("a note on the concurrency");
    assert!(note.contains("--per-gen-server-concurrency"), "{note}");
    // As TensorRT-LLM's Slurm scripts run it: each value times num_gen_servers.
    let opts = Options {
        per_gen_server_concurrency: true,
        ..Options::from_env()
    };
    let b = bench_of(&convert_with(&text, "c", &opts).unwrap().case_yaml);
    assert_eq!((b.concurrency(), b.rounds), (vec![16, 128], 3));
    // One generation server: nothing to say either way.
    let one = with_benchmark(&[]);
    assert!(
        !convert(&one, "c")
            .unwrap()
            .notes
            .iter()
            .any(|n| n.to_string().starts_with("benchmark.concurrency_list"))
    );
}

#[test]
fn the_router_is_tensorrt_llms_own_disaggregated_server() {
    let (yaml, _, plan) = import("b200_ctx1_dep4_gen1_dep8.yaml");
    let case = parse_case(&yaml, Path::new("t.yaml")).unwrap();
    assert_eq!(case.case.router.kind, disagg_core::case::RouterKind::Engine);
    let server = plan
        .role(RoleName::DISAGG_SERVER)
        .and_then(|r| r.engine.as_ref())
        .expect("the router runs a command");
    assert_eq!(server.argv[..2], ["trtllm-serve", "disaggregated"]);
    // Not its 180 s defaults: the case's worker startup (-t) and request (-r) deadlines.
    let t = case.case.timeouts;
    let flag = |f: &str| {
        let i = server.argv.iter().position(|a| a == f).expect(f);
        server.argv[i + 1].parse::<u64>().unwrap()
    };
    assert_eq!(flag("-t"), t.worker_startup.as_secs(), "{:?}", server.argv);
    assert_eq!(flag("-r"), t.request.as_secs(), "{:?}", server.argv);
    assert!(flag("-r") > 180, "{:?}", server.argv);
}

#[test]
fn gen_only_no_context_fakes_the_kv_cache_on_the_gen_workers_and_the_router() {
    let text = with_benchmark(&[("mode: e2e", "mode: gen_only_no_context")]);
    let imported = convert(&text, "nc").unwrap();
    let plan = plan_of(&imported.case_yaml);
    let one = Some("1".to_string());
    for role in [RoleName::Gen(0), RoleName::DISAGG_SERVER] {
        let env = env_of(&plan, role);
        assert_eq!(
            env.get("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY"),
            one.as_ref(),
            "{role}"
        );
        // No KV transfer to overlap or to wait for.
        assert!(
            !env.contains_key("TLLM_BENCHMARK_REQ_QUEUES_SIZE"),
            "{role}"
        );
        assert!(
            !env.contains_key("TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP"),
            "{role}"
        );
    }
    for role in [RoleName::Ctx(0), RoleName::Ctx(1), RoleName::Benchmark] {
        assert!(
            !env_of(&plan, role).contains_key("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY"),
            "{role}"
        );
    }
    // The context servers TensorRT-LLM would not start still run here: said so.
    let note = imported
        .notes
        .iter()
        .map(|n| n.to_string())
        .find(|n| n.starts_with("benchmark.mode"))
        .expect("a note on the mode");
    assert!(note.contains("ctx group still runs"), "{note}");
    // And it is a gen-only run: first concurrency, one round.
    let b = bench_of(&imported.case_yaml);
    assert_eq!((b.concurrency(), b.rounds), (vec![2048], 1));
    // Only TensorRT-LLM's own server runs it: with disagg's router in its place, every request
    // would still go through a context server whose KV nobody fetches. Refused, naming the key.
    let builtin = imported
        .case_yaml
        .replacen("\n  kind: engine\n", "\n  kind: builtin\n", 1);
    assert_ne!(builtin, imported.case_yaml);
    let e = disagg_core::parse_case(&builtin, std::path::Path::new("nc.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("env.server.TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
            && e.contains("only its own disaggregated server")
            && e.contains("router: {kind: engine}"),
        "{e}"
    );
}

#[test]
fn per_role_and_client_environment_reaches_each_role() {
    let text = with_benchmark(&[
        (
            "  benchmark_env_var: HF_HUB_OFFLINE=1\n",
            "  benchmark_env_var: HF_HUB_OFFLINE=1\n  client_env_var: FOO=bar\n  \
             ctx_worker_env_var: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True\n  \
             gen_worker_env_var: TLLM_GEN_FLAG=1 TLLM_LOG_LEVEL=DEBUG\n",
        ),
        (
            "  streaming: true\n",
            "  streaming: true\n  env_var:\n    BENCH_X: '7'\n",
        ),
    ]);
    let imported = convert(&text, "e").unwrap();
    let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
    for key in [
        "environment.client_env_var",
        "environment.ctx_worker_env_var",
        "environment.gen_worker_env_var",
        "benchmark.env_var",
    ] {
        assert!(
            !notes.iter().any(|n| n.starts_with(key)),
            "{key} is carried over, so not a note: {notes:?}"
        );
    }
    let plan = plan_of(&imported.case_yaml);
    let get = |role, k: &str| env_of(&plan, role).get(k).cloned();
    for ctx in [RoleName::Ctx(0), RoleName::Ctx(1)] {
        assert_eq!(
            get(ctx, "PYTORCH_CUDA_ALLOC_CONF").as_deref(),
            Some("expandable_segments:True")
        );
        assert_eq!(get(ctx, "TLLM_LOG_LEVEL").as_deref(), Some("INFO"));
        assert_eq!(get(ctx, "TLLM_GEN_FLAG"), None);
    }
    // Appended to worker_env_var: the role's own value wins.
    let g = RoleName::Gen(0);
    assert_eq!(get(g, "TLLM_GEN_FLAG").as_deref(), Some("1"));
    assert_eq!(get(g, "TLLM_LOG_LEVEL").as_deref(), Some("DEBUG"));
    assert_eq!(get(g, "TRTLLM_ENABLE_PDL").as_deref(), Some("1"));
    assert_eq!(get(g, "PYTORCH_CUDA_ALLOC_CONF"), None);
    let b = RoleName::Benchmark;
    assert_eq!(get(b, "HF_HUB_OFFLINE").as_deref(), Some("1"));
    assert_eq!(get(b, "FOO").as_deref(), Some("bar"));
    assert_eq!(get(b, "BENCH_X").as_deref(), Some("7"));
    assert_eq!(get(b, "TLLM_GEN_FLAG"), None);
}

#[test]
fn without_multi_round_one_round_is_run_as_tensorrt_llm_does() {
    let text = with_benchmark(&[("  multi_round: 3\n", "")]);
    let b = bench_of(&convert(&text, "r").unwrap().case_yaml);
    assert_eq!((b.concurrency(), b.rounds), (vec![2048], 1));
}

fn timeouts_of(yaml: &str) -> disagg_core::case::Timeouts {
    parse_case(yaml, Path::new("t.yaml")).unwrap().case.timeouts
}

#[test]
fn workers_get_tensorrt_llms_hour_to_become_ready_when_the_job_leaves_room() {
    use std::time::Duration;
    let min = |m: u64| Duration::from_secs(m * 60);
    // 3 h of Slurm time: the whole hour TensorRT-LLM's perf-sanity test waits, no note.
    let imported = convert(&with_benchmark(&[]), "t").unwrap();
    let t = timeouts_of(&imported.case_yaml);
    assert_eq!(t.worker_startup, min(60));
    assert!(t.worker_startup + t.benchmark <= t.job && t.job < min(180));
    assert!(
        !imported
            .notes
            .iter()
            .any(|n| n.to_string().contains("worker_startup")),
        "{:?}",
        imported.notes
    );
    // 1 h 30 min: two thirds of the job at most, so the benchmark keeps the rest; said so.
    let text = with_benchmark(&[]).replace("job_time: \"03:00:00\"", "job_time: \"01:30:00\"");
    let imported = convert(&text, "t").unwrap();
    let t = timeouts_of(&imported.case_yaml);
    assert_eq!(t.worker_startup, min(58), "86m − 86m/3");
    assert_eq!(t.worker_startup + t.benchmark, t.job);
    let note = imported
        .notes
        .iter()
        .map(|n| n.to_string())
        .find(|n| n.contains("worker_startup"))
        .expect("a note on the shortened startup");
    assert!(note.contains("60m"), "{note}");
    // slurm.timeout is the test's own bound: the job ends within it.
    let text = with_benchmark(&[]).replace(
        "  numa_bind: true\n",
        "  numa_bind: true\n  timeout: 3600\n",
    );
    let imported = convert(&text, "t").unwrap();
    let t = timeouts_of(&imported.case_yaml);
    assert_eq!((t.job, t.worker_startup), (min(60), min(40)));
    assert!(
        !imported
            .notes
            .iter()
            .any(|n| n.to_string().starts_with("slurm.timeout")),
        "{:?}",
        imported.notes
    );
}

#[test]
fn context_parallelism_counts_in_a_servers_gpus() {
    // TensorRT-LLM's world size is tp×pp×cp: ctx tp 4, cp 2 is 8 GPUs, two 4-GPU nodes each.
    let text = with_benchmark(&[
        (
            "    enable_chunked_prefill: true\n    tensor_parallel_size: 4\n",
            "    enable_chunked_prefill: true\n    tensor_parallel_size: 4\n    context_parallel_size: 2\n",
        ),
        // Its own segment is no longer the job's node count (see above).
        (" --segment=6", ""),
    ]);
    let imported = convert(&text, "cp").unwrap();
    let case = parse_case(&imported.case_yaml, Path::new("t.yaml")).unwrap();
    assert_eq!(
        (case.case.ctx.parallel.tp, case.case.ctx.parallel.cp),
        (4, 2)
    );
    assert_eq!(case.case.generation.parallel.cp, 1);
    let plan = plan_of(&imported.case_yaml);
    assert_eq!(ranks(&plan, RoleName::Ctx(0)), (8, vec![0, 1]));
    assert_eq!(ranks(&plan, RoleName::Ctx(1)), (8, vec![2, 3]));
    assert_eq!(ranks(&plan, RoleName::Gen(0)), (16, vec![4, 5, 6, 7]));
    assert_eq!(plan.nodes, 8);
    let ctx_config = &plan.files["ctx_config.yaml"];
    assert!(
        ctx_config.contains("context_parallel_size: 2"),
        "{ctx_config}"
    );
    assert!(
        ctx_config.contains("tensor_parallel_size: 4"),
        "{ctx_config}"
    );
    // cp 1 stays out of the engine's file, as before.
    assert!(!plan.files["gen_config.yaml"].contains("context_parallel_size"));
}

/// The multinode sample with an extra options file, an EPLB file and a draft model, all given
/// the way TensorRT-LLM's configs give them (repo- or model-root relative).
fn with_paths() -> String {
    with_benchmark(&[]).replace(
        "      load_balancer: {num_slots: 288, layer_updates_per_iter: 1}\n",
        "      load_balancer: lb/eplb.yaml\n",
    ).replace(
        "    max_num_tokens: 384\n",
        "    max_num_tokens: 384\n    extra_llm_api_config_path: cfg/extra.yaml\n    \
         speculative_config: {decoding_type: Eagle3, max_draft_len: 3, speculative_model: EAGLE3-x}\n",
    )
}

fn gen_args(yaml: &str) -> serde_yaml_ng::Value {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
    v["gen"]["engine_args"].clone()
}

#[test]
fn paths_tensorrt_llm_resolves_are_resolved_here_when_found() {
    use disagg_core::import::trtllm::{Options, convert_with};
    use std::collections::BTreeMap;
    let abs = |f: &str| std::path::absolute(f).unwrap();
    let files: BTreeMap<std::path::PathBuf, &str> = [
        (
            abs("cfg/extra.yaml"),
            "max_seq_len: 20000\nmax_batch_size: 999\n",
        ),
        (
            abs("lb/eplb.yaml"),
            "num_slots: 416\nlayer_updates_per_iter: 1\n",
        ),
    ]
    .into();
    let exists = |p: &Path| files.contains_key(&abs(p.to_str().unwrap()));
    let read = |p: &Path| files.get(&abs(p.to_str().unwrap())).map(|t| t.to_string());
    let opts = Options {
        gen_only: false,
        per_gen_server_concurrency: false,
        models_root: Some("/models".into()),
        exists: &exists,
        read: &read,
    };
    let imported = convert_with(&with_paths(), "p", &opts).unwrap();
    let args = gen_args(&imported.case_yaml);
    // The extra file merged in, the config's own keys winning; its key gone.
    assert_eq!(args["max_seq_len"].as_u64(), Some(20000));
    assert_eq!(args["max_batch_size"].as_u64(), Some(128));
    assert!(args.get("extra_llm_api_config_path").is_none(), "{args:?}");
    // The EPLB file absolute, its slots in the config name; the draft model under the root.
    let lb = abs("lb/eplb.yaml").display().to_string();
    assert_eq!(
        args["moe_config"]["load_balancer"].as_str(),
        Some(lb.as_str())
    );
    let case = parse_case(&imported.case_yaml, Path::new("t.yaml")).unwrap();
    assert_eq!(case.case.model.eplb, 416);
    assert_eq!(
        args["speculative_config"]["speculative_model"].as_str(),
        Some("/models/EAGLE3-x")
    );
    let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
    assert!(
        notes.iter().any(
            |n| n.starts_with("worker_config.gen.extra_llm_api_config_path")
                && n.contains("merged")
        ),
        "{notes:?}"
    );
    for k in ["load_balancer", "speculative_model"] {
        assert!(!notes.iter().any(|n| n.contains(k)), "{k}: {notes:?}");
    }
}

#[test]
fn paths_that_cannot_be_resolved_are_noted_with_what_to_do() {
    let (yaml, notes, _) = {
        let text = with_paths();
        let nowhere = |_: &Path| false;
        let opts = disagg_core::import::trtllm::Options {
            gen_only: false,
            per_gen_server_concurrency: false,
            models_root: None,
            exists: &nowhere,
            read: &|_: &Path| None,
        };
        let i = disagg_core::import::trtllm::convert_with(&text, "p", &opts).unwrap();
        let notes: Vec<String> = i.notes.iter().map(|n| n.to_string()).collect();
        (i.case_yaml, notes, ())
    };
    let note = |k: &str| {
        notes
            .iter()
            .find(|n| n.starts_with(k))
            .unwrap_or_else(|| panic!("no note on {k}: {notes:?}"))
            .clone()
    };
    assert!(
        note("worker_config.gen.extra_llm_api_config_path").contains("repo root"),
        "{notes:?}"
    );
    assert!(
        note("worker_config.gen.moe_config.load_balancer").contains("absolute path"),
        "{notes:?}"
    );
    assert!(
        note("worker_config.gen.speculative_config.speculative_model").contains("$LLM_MODELS_ROOT"),
        "{notes:?}"
    );
    // Left as given where trtllm-serve still reads a key; never a key it does not know.
    let args = gen_args(&yaml);
    assert_eq!(
        args["moe_config"]["load_balancer"].as_str(),
        Some("lb/eplb.yaml")
    );
    assert_eq!(
        args["speculative_config"]["speculative_model"].as_str(),
        Some("EAGLE3-x")
    );
    assert!(args.get("extra_llm_api_config_path").is_none(), "{args:?}");
}

#[test]
fn a_multi_node_job_asks_for_one_segment_of_all_its_nodes() {
    let segments = |plan: &Plan| -> Vec<String> {
        plan.slurm
            .extra_args
            .iter()
            .filter(|a| a.starts_with("--segment"))
            .cloned()
            .collect()
    };
    // As TensorRT-LLM's submit script: --segment=<the job's nodes>, with a note.
    let (_, notes, plan) = import("gb200_gen_only_tep8.yaml");
    assert_eq!(plan.nodes, 3);
    assert_eq!(segments(&plan), ["--segment=3"]);
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("slurm.set_segment") && n.contains("--segment=3")),
        "{notes:?}"
    );
    // A config that gives its own keeps it, once.
    let plan = plan_of(&convert(&with_benchmark(&[]), "s").unwrap().case_yaml);
    assert_eq!(segments(&plan), ["--segment=6"]);
    let text = with_benchmark(&[(
        "extra_args: --gres=gpu:4 --segment=6",
        "extra_args: --gres=gpu:4",
    )]);
    let plan = plan_of(&convert(&text, "s").unwrap().case_yaml);
    assert_eq!(segments(&plan), ["--segment=6"]);
    // Its own, once the job has another node count, is what Slurm would refuse: the import
    // writes the case and the error points at it.
    let grown = with_benchmark(&[]).replace("num_gen_servers: 1", "num_gen_servers: 2");
    let e = convert(&grown, "s").unwrap_err().to_string();
    assert!(
        e.contains("`--segment=6` asks Slurm to place the job's nodes in segments of 6, but the job has 10 node(s)"),
        "{e}"
    );
    // set_segment: false, or one node: none.
    let off = text.replace(
        "  numa_bind: true\n",
        "  numa_bind: true\n  set_segment: false\n",
    );
    let imported = convert(&off, "s").unwrap();
    assert!(segments(&plan_of(&imported.case_yaml)).is_empty());
    assert!(
        !imported
            .notes
            .iter()
            .any(|n| n.to_string().starts_with("slurm.set_segment")),
        "{:?}",
        imported.notes
    );
    // (Its own GPU gres grown with it: 4 per node would be refused for a 64-GPU node.)
    let one = text
        .replace("gpus_per_node: 4", "gpus_per_node: 64")
        .replace("--gres=gpu:4", "--gres=gpu:64");
    let plan = plan_of(&convert(&one, "s").unwrap().case_yaml);
    assert_eq!((plan.nodes, segments(&plan).len()), (1, 0));
    // Whatever the GPU, as TensorRT-LLM's perf-sanity submit asks (its CI for every multi-node
    // disaggregated job, its local submit.py always): a B200 job of two nodes too.
    let (_, notes, plan) = import("b200_ctx1_dep4_gen1_dep8.yaml");
    assert_eq!(plan.nodes, 2);
    assert_eq!(segments(&plan), ["--segment=2"]);
    assert!(
        notes.iter().any(|n| n.starts_with("slurm.set_segment")
            && n.contains("`--segment=2` added")
            && !n.contains("not added")),
        "{notes:?}"
    );
}

/// A config whose requests do not fit its context servers converts, but fails validation: the
/// error carries the converted case, so `disagg import` can write it where the error points.
/// Under `gen_only_no_context` the context servers get no request at all: not checked.
#[test]
fn a_converted_case_that_does_not_validate_keeps_its_text_and_idle_context_servers_are_not_checked()
{
    // Chunked prefill off: a 14745-token prompt (8192 at ratio 0.8) over max_num_tokens 8448.
    let no_chunks = ("    enable_chunked_prefill: true\n", "");
    let text = with_benchmark(&[no_chunks]);
    match convert(&text, "nofit") {
        Err(disagg_core::import::ImportError::Invalid { error, case_yaml }) => {
            assert_eq!(error.key, "ctx.engine_args.max_num_tokens", "{error}");
            assert!(case_yaml.contains("max_num_tokens: 8448"), "{case_yaml}");
        }
        other => panic!("expected Invalid, got {:?}", other.map(|i| i.case_yaml)),
    }
    let text = with_benchmark(&[no_chunks, ("mode: e2e", "mode: gen_only_no_context")]);
    convert(&text, "nc").expect("the idle ctx group holds no request");
}

/// The Slurm benchmark's own config.yaml (examples/disaggregated/slurm/benchmark) has no
/// `metadata`: the model's name is the last part of `environment.model_path`, said in a note;
/// with a placeholder path there is no name to take, and the error says what to add.
#[test]
fn a_slurm_benchmark_config_without_metadata_takes_the_name_from_the_model_path() {
    let text = "slurm: {partition: p, account: a, job_time: \"02:00:00\"}\n\
                benchmark: {mode: e2e, multi_round: 8, streaming: true, concurrency_list: \"16\", \
                input_length: 1024, output_length: 1024}\n\
                hardware: {gpus_per_node: 4, num_ctx_servers: 1, num_gen_servers: 1}\n\
                environment: {model_path: /models/DeepSeek-R1-FP4/, container_image: img}\n\
                accuracy: {enable_accuracy_test: false}\n\
                worker_config:\n  gen: {tensor_parallel_size: 4, max_batch_size: 64}\n  \
                ctx: {tensor_parallel_size: 4, max_batch_size: 4}\n";
    let imported = convert(text, "config").unwrap();
    let case = parse_case(&imported.case_yaml, Path::new("config.yaml")).unwrap();
    assert_eq!(case.case.model.name, "DeepSeek-R1-FP4");
    assert_eq!(
        case.case.model.path.as_deref(),
        Some("/models/DeepSeek-R1-FP4/")
    );
    let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
    assert!(
        notes.iter().any(|n| n.contains("metadata.model_name")
            && n.contains("`model.name` is `DeepSeek-R1-FP4`")),
        "{notes:?}"
    );
    let placeholder = text.replace("/models/DeepSeek-R1-FP4/", "\"<model_path>\"");
    let err = convert(&placeholder, "config").unwrap_err().to_string();
    assert!(
        err.contains("metadata.model_name") && err.contains("add `metadata: {model_name: NAME}`"),
        "{err}"
    );
}
