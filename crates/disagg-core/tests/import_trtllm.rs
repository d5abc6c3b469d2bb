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
    let imported = convert(&text, stem).unwrap();
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
    for must in [
        "profiling.nsys_on",
        "environment.model_path",
        "benchmark.benchmark_ratio",
    ] {
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
    let gen_role = plan.role(RoleName::Gen(0)).unwrap();
    assert_eq!(
        gen_role
            .env_set
            .get("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
            .map(String::as_str),
        Some("1")
    );
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
        "metadata: {model_name: m}\nbenchmark: {input_length: 8}\n",
        "x",
    )
    .unwrap_err();
    assert!(err.to_string().contains("benchmark.output_length"), "{err}");
    let err = convert("- a list", "x").unwrap_err();
    assert!(err.to_string().contains("not a mapping"), "{err}");
}
