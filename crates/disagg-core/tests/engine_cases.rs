//! Engine and router settings: what each engine accepts, and each mistake named by key with a hint.

use std::path::Path;

use disagg_core::engines::EngineArgs;
use disagg_core::parse_case;

fn case(engine: &str, ctx_args: &str, extra: &str) -> String {
    let gen_args = if engine == "command" { CMD } else { "{}" };
    format!(
        "model: {{name: m}}\nengine: {engine}\nctx:\n  count: 1\n  parallel: {{tp: 2}}\n  engine_args: {ctx_args}\ngen: {{count: 1, engine_args: {gen_args}}}\n{extra}benchmark: {{isl: 8, osl: 8}}\n"
    )
}

const CMD: &str = r#"{argv: [srv, --port, "{port}"]}"#;

#[test]
fn each_engine_takes_its_own_args() {
    let c = parse_case(&case("command", CMD, ""), Path::new("t.yaml")).unwrap();
    assert!(matches!(c.case.ctx.engine_args, EngineArgs::Command(_)));
    let t = parse_case(
        &case("trtllm", "{max_batch_size: 8}", ""),
        Path::new("t.yaml"),
    )
    .unwrap();
    assert!(matches!(t.case.ctx.engine_args, EngineArgs::Options(_)));
    let r = parse_case(
        &case("trtllm", "{}", "router: {kind: engine}\n"),
        Path::new("t.yaml"),
    )
    .unwrap();
    assert_eq!(r.case.router.kind, disagg_core::case::RouterKind::Engine);
}

#[test]
fn bad_engine_and_router_settings_name_the_key_and_fix() {
    let table = [
        (
            "command without {port}",
            case("command", "{argv: [srv]}", ""),
            "ctx.engine_args.argv",
            "never takes `{port}`",
            "{port}",
        ),
        (
            "command with an empty argv",
            case("command", "{argv: []}", ""),
            "ctx.engine_args.argv",
            "empty",
            "argv",
        ),
        (
            "command with a sim arg",
            case("command", "{argv: [x, \"{port}\"], itl: 5ms}", ""),
            "ctx.engine_args.itl",
            "unknown key `itl`",
            "known keys",
        ),
        (
            "sim with an unknown arg",
            case("sim", "{argv: [x]}", ""),
            "ctx.engine_args.argv",
            "unknown key `argv`",
            "known keys",
        ),
        (
            "trtllm contradicting parallel",
            case("trtllm", "{tensor_parallel_size: 4}", ""),
            "ctx.engine_args.tensor_parallel_size",
            "contradicts ctx.parallel (2)",
            "once",
        ),
        (
            "engine router without trtllm",
            case("vllm", "{}", "router: {kind: engine}\n"),
            "router.kind",
            "needs `engine: trtllm`",
            "kind: command",
        ),
        (
            "command router without argv",
            case("sim", "{}", "router: {kind: command}\n"),
            "router.argv",
            "needs the router's `argv`",
            "server_config",
        ),
        (
            "argv for the builtin router",
            case("sim", "{}", "router: {argv: [x]}\n"),
            "router.argv",
            "only for `kind: command`",
            "remove it",
        ),
        (
            "vllm server across nodes",
            case("vllm", "{}", "hardware: {gpus_per_node: 1}\n"),
            "ctx.parallel",
            "spans nodes",
            "within one node",
        ),
        (
            "a vllm case routed in the trtllm dialect",
            case("vllm", "{}", "router: {dialect: trtllm}\n"),
            "router.dialect",
            "speaks only the vllm dialect",
            "dialect: vllm",
        ),
        (
            "an sglang case routed in the vllm dialect",
            case("sglang", "{}", "router: {dialect: vllm}\n"),
            "router.dialect",
            "speaks only the sglang dialect",
            "drop `router.dialect`",
        ),
        (
            "unknown engine",
            case("tgi", "{}", ""),
            "engine",
            "`tgi` is not one of",
            "use one of",
        ),
    ];
    for (what, text, key, msg, hint) in table {
        let err = match parse_case(&text, Path::new("t.yaml")) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.key, key, "{what}: {shown}");
        assert!(err.line.is_some(), "{what}: {shown}");
        assert!(err.message.contains(msg), "{what}: {shown}");
        assert!(
            err.hint.clone().unwrap_or_default().contains(hint),
            "{what}: {shown}"
        );
    }
}

#[test]
fn the_router_speaks_the_engines_dialect_unless_the_case_says_otherwise() {
    use disagg_core::case::Dialect;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (file, want) in [
        ("vllm.yaml", Dialect::Vllm),
        ("sglang.yaml", Dialect::Sglang),
        ("trtllm-multinode.yaml", Dialect::Trtllm),
        ("quickstart.yaml", Dialect::Trtllm),
    ] {
        let c = disagg_core::load_case(&examples.join(file)).unwrap();
        assert_eq!(c.case.router.dialect, Some(want), "{file}");
    }
    // The sim and `command` speak whatever the case asks.
    for engine in ["sim", "command"] {
        let args = if engine == "command" { CMD } else { "{}" };
        let c = parse_case(
            &case(engine, args, "router: {dialect: vllm}\n"),
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(c.case.router.dialect, Some(Dialect::Vllm), "{engine}");
    }
    let c = parse_case(
        &case("vllm", "{}", "router: {dialect: vllm}\n"),
        Path::new("t.yaml"),
    )
    .unwrap();
    assert_eq!(c.case.router.dialect, Some(Dialect::Vllm));
}
