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
    // TensorRT-LLM's router counts the tokens of context requests given as completions.
    parse_case(
        &case(
            "trtllm",
            "{}",
            "router: {kind: engine, ctx_policy: least_tokens, gen_policy: least_requests}\n",
        ),
        Path::new("t.yaml"),
    )
    .unwrap();
    // The builtin router counts generation tokens too.
    parse_case(
        &case("trtllm", "{}", "router: {policy: least_tokens}\n"),
        Path::new("t.yaml"),
    )
    .unwrap();
}

#[test]
fn servers_of_one_rank_per_gpu_or_per_node_may_span_nodes() {
    for (engine, args) in [
        ("trtllm", "{}"),
        ("command", r#"{ranks: 2, argv: [srv, --port, "{port}"]}"#),
        ("vllm", "{}"),
        ("sglang", "{}"),
    ] {
        let text = case(engine, args, "hardware: {gpus_per_node: 1}\n");
        parse_case(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{engine}: {e}"));
    }
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
            "trtllm expert parallelism that does not split tp",
            case("trtllm", "{}", "").replace("parallel: {tp: 2}", "parallel: {tp: 2, ep: 4}"),
            "ctx.parallel.ep",
            "ep 4 does not split tp 2",
            "divisor of tp",
        ),
        (
            "trtllm groups on two KV transfer backends",
            case("trtllm", "{cache_transceiver_config: {backend: NIXL}}", ""),
            "ctx.engine_args.cache_transceiver_config.backend",
            "context servers transfer KV over NIXL and the generation servers over UCX",
            "hardware.cache_transceiver",
        ),
        (
            "trtllm context parallelism contradicting parallel",
            case("trtllm", "{context_parallel_size: 2}", ""),
            "ctx.engine_args.context_parallel_size",
            "contradicts ctx.parallel (1)",
            "once",
        ),
        (
            "vllm with TensorRT-LLM's context parallelism",
            case("vllm", "{}", "").replace("parallel: {tp: 2}", "parallel: {tp: 2, cp: 2}"),
            "ctx.parallel.cp",
            "cp: 2 is TensorRT-LLM's context parallelism",
            "leave `cp` out",
        ),
        (
            "sglang with TensorRT-LLM's context parallelism",
            case("sglang", "{}", "").replace("parallel: {tp: 2}", "parallel: {tp: 2, cp: 2}"),
            "ctx.parallel.cp",
            "disagg launches no such mode of sglang",
            "leave `cp` out",
        ),
        (
            "engine router without trtllm",
            case("vllm", "{}", "router: {kind: engine}\n"),
            "router.kind",
            "needs `engine: trtllm`",
            "kind: command",
        ),
        (
            "TensorRT-LLM's router counting generation tokens",
            case(
                "trtllm",
                "{}",
                "router: {kind: engine, policy: least_tokens}\n",
            ),
            "router.policy",
            "cannot count a generation-only request's tokens",
            "gen_policy: least_requests",
        ),
        (
            "TensorRT-LLM's router counting generation tokens, per group",
            case(
                "trtllm",
                "{}",
                "router: {kind: engine, ctx_policy: least_tokens, gen_policy: least_tokens}\n",
            ),
            "router.gen_policy",
            "fails every request",
            "kind: builtin",
        ),
        (
            "TensorRT-LLM's router counting chat tokens",
            case(
                "trtllm",
                "{}",
                "router: {kind: engine, ctx_policy: least_tokens, gen_policy: least_requests}\n",
            )
            .replace("osl: 8}", "osl: 8, endpoint: /v1/chat/completions}"),
            "router.ctx_policy",
            "ChatCompletionRequest",
            "least_requests",
        ),
        (
            "command router without argv",
            case("sim", "{}", "router: {kind: command}\n"),
            "router.argv",
            "needs the router's `argv`",
            "server_config",
        ),
        (
            "no router at all",
            case("sim", "{}", "router: {replicas: 0}\n"),
            "router.replicas",
            "0 router replicas: a run has 1 to 64",
            "leave it out for one router",
        ),
        (
            "a thousand routers",
            case("sim", "{}", "router: {replicas: 1000}\n"),
            "router.replicas",
            "1000 router replicas",
            "router processes",
        ),
        (
            "argv for the builtin router",
            case("sim", "{}", "router: {argv: [x]}\n"),
            "router.argv",
            "only for `kind: command`",
            "remove it",
        ),
        (
            "vllm server over part of a node",
            case("vllm", "{}", "hardware: {gpus_per_node: 1}\n")
                .replace("tp: 2", "tp: 3, pp: 1")
                .replace("gpus_per_node: 1", "gpus_per_node: 2"),
            "ctx.parallel",
            "vllm splits a server's GPUs evenly over its nodes (`--nnodes`), and 3 is not a multiple of 2",
            "make tp×pp×cp a multiple of 2 (whole nodes)",
        ),
        (
            "vllm data-parallel ranks that do not split over the nodes",
            case("vllm", "{}", "hardware: {gpus_per_node: 4}\n")
                .replace("tp: 2", "tp: 2, pp: 6, attention_dp: true"),
            "ctx.parallel",
            "spreads its data-parallel ranks (parallel.attention_dp: tp 2) evenly over the 3 nodes",
            "make tp a multiple of 3",
        ),
        (
            "vllm across nodes on Ray",
            case(
                "vllm",
                "{distributed_executor_backend: ray}",
                "hardware: {gpus_per_node: 1}\n",
            ),
            "ctx.engine_args.distributed_executor_backend",
            "runs vLLM's multiprocessing backend on each (--nnodes), not `ray`",
            "remove `distributed_executor_backend`",
        ),
        (
            "sim server across nodes",
            case("sim", "{}", "hardware: {gpus_per_node: 1}\n"),
            "ctx.parallel",
            "tp×pp×cp is 2 GPUs per server, more than hardware.gpus_per_node (1)",
            "more servers of fewer GPUs (`ctx.count`)",
        ),
        (
            "one-rank command across nodes",
            case("command", CMD, "hardware: {gpus_per_node: 1}\n"),
            "ctx.parallel",
            "would get that node's 1 GPUs only",
            "set `ctx.engine_args.ranks: 2`",
        ),
        (
            "command of too few ranks across nodes",
            case(
                "command",
                r#"{ranks: 3, argv: [srv, --port, "{port}"]}"#,
                "hardware: {gpus_per_node: 1}\n",
            ),
            "ctx.parallel",
            "its 3 ranks do not run one per GPU",
            "set `ctx.engine_args.ranks: 2`",
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
            "a served name the benchmark does not send",
            case("vllm", "{served_model_name: x}", ""),
            "ctx.engine_args.served_model_name",
            "set by disagg",
            "model.name",
        ),
        (
            "an sglang bootstrap port of its own",
            case("sglang", "{disaggregation_bootstrap_port: 8998}", ""),
            "ctx.engine_args.disaggregation_bootstrap_port",
            "set by disagg",
            "role picks",
        ),
        (
            "vllm prefill and decode on two connectors",
            case(
                "vllm",
                r#"{kv_transfer_config: {kv_connector: P2pNcclConnector, kv_role: kv_producer}}"#,
                "",
            ),
            "ctx.engine_args.kv_transfer_config",
            "the prefill servers run P2pNcclConnector and the decode servers NixlConnector",
            "same kv_connector",
        ),
        (
            "vllm P2pNcclConnector behind disagg's router",
            case(
                "vllm",
                r#"{kv_transfer_config: {kv_connector: P2pNcclConnector, kv_role: kv_producer}}"#,
                "",
            )
            .replace(
                "gen: {count: 1, engine_args: {}}",
                r#"gen: {count: 1, engine_args: {kv_transfer_config: '{"kv_connector": "P2pNcclConnector", "kv_role": "kv_consumer"}'}}"#,
            ),
            "ctx.engine_args.kv_transfer_config",
            "which disagg's router does not write",
            "kind: command",
        ),
        (
            "UCX for sglang",
            case("sglang", "{}", "hardware: {cache_transceiver: UCX}\n"),
            "hardware.cache_transceiver",
            "no UCX transfer backend",
            "NIXL",
        ),
        (
            "the sglang transfer backend twice",
            case(
                "sglang",
                "{disaggregation_transfer_backend: mooncake}",
                "hardware: {cache_transceiver: NIXL}\n",
            ),
            "ctx.engine_args.disaggregation_transfer_backend",
            "set twice",
            "once",
        ),
        (
            "an sglang command prefill without a bootstrap port",
            case("command", CMD, "router: {dialect: sglang}\n"),
            "ctx.engine_args.argv",
            "needs a bootstrap port",
            "{bootstrap_port}",
        ),
        (
            "command on loopback across nodes",
            case(
                "command",
                r#"{argv: [srv, --port, "{port}"], host: 127.0.0.1}"#,
                "hardware: {gpus_per_node: 2}\n",
            ),
            "ctx.engine_args.host",
            "CTX_0 (node 0) would bind and publish the loopback address `127.0.0.1`, but with hardware.gpus_per_node 2 the workers span 2 nodes",
            "remove `host`",
        ),
        (
            "command on localhost across nodes",
            case(
                "command",
                r#"{argv: [srv, --port, "{port}"], host: localhost}"#,
                "hardware: {gpus_per_node: 2}\n",
            ),
            "ctx.engine_args.host",
            "loopback address `localhost`",
            "{hostname}",
        ),
        (
            "command binding loopback in its argv across nodes",
            case(
                "command",
                r#"{argv: [srv, --host, 127.0.0.1, --port, "{port}"]}"#,
                "hardware: {gpus_per_node: 2}\n",
            ),
            "ctx.engine_args.argv[2]",
            "loopback address `127.0.0.1`",
            "write `{host}` in the argv",
        ),
        (
            "command binding localhost in its argv across nodes",
            case(
                "command",
                r#"{argv: [srv, "--host=localhost", --port, "{port}"]}"#,
                "hardware: {gpus_per_node: 2}\n",
            ),
            "ctx.engine_args.argv[1]",
            "loopback address `localhost`",
            "{host}",
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

fn plan_of(text: &str) -> disagg_core::Plan {
    let c = parse_case(text, Path::new("t.yaml")).unwrap();
    disagg_core::plan::build(&c, "R", Path::new("/run"), Path::new("/bin/disagg"))
}

fn engine_of(plan: &disagg_core::Plan, role: &str) -> disagg_core::plan::EngineLaunch {
    plan.roles
        .iter()
        .find(|r| r.role.to_string() == role)
        .and_then(|r| r.engine.clone())
        .unwrap()
}

#[test]
fn attention_dp_maps_to_each_engines_data_parallel_flags() {
    let text = |engine| {
        format!(
            "model: {{name: m, path: org/m}}\nengine: {engine}\nctx: {{count: 1, engine_args: {{}}}}\ngen: {{count: 1, parallel: {{tp: 4, ep: 4, attention_dp: true}}, engine_args: {{}}}}\nbenchmark: {{isl: 8, osl: 8}}\n"
        )
    };
    let v = engine_of(&plan_of(&text("vllm")), "GEN_0");
    let argv = v.argv.join(" ");
    assert!(
        argv.contains("--tensor-parallel-size 1 ")
            && argv.contains("--data-parallel-size 4 ")
            && argv.contains("--enable-expert-parallel"),
        "{argv}"
    );
    assert_eq!(v.side_channel_span, 4, "one side-channel port per DP rank");
    // Plain TP: one per TP rank, as vLLM of the 0.9-0.11 era binds them.
    let t = engine_of(
        &plan_of(&text("vllm").replace("attention_dp: true", "attention_dp: false")),
        "GEN_0",
    );
    assert_eq!(t.side_channel_span, 4, "{:?}", t.argv);
    let s = engine_of(&plan_of(&text("sglang")), "GEN_0");
    let argv = s.argv.join(" ");
    // The spelling every SGLang 0.5.x takes (`--attn-dp-size` is refused before mid-2026).
    assert!(
        argv.contains("--tp-size 4 ") && argv.contains("--enable-dp-attention --dp-size 4"),
        "{argv}"
    );
    assert!(!argv.contains("--attn-dp-size"), "{argv}");
}

#[test]
fn the_transfer_backend_reaches_every_engine_and_the_served_name_is_the_benchmarks() {
    let text = |engine, hw: &str| {
        format!(
            "model: {{name: m, path: org/m}}\nengine: {engine}\n{hw}ctx: {{count: 1, engine_args: {{}}}}\ngen: {{count: 1, engine_args: {{}}}}\nbenchmark: {{isl: 8, osl: 8}}\n"
        )
    };
    let nixl = "hardware: {cache_transceiver: NIXL}\n";
    let ucx = "hardware: {cache_transceiver: UCX}\n";
    // vLLM: NixlConnector either way (it moves KV over UCX); an explicit UCX names the backend.
    for (hw, extra) in [("", false), (nixl, false), (ucx, true)] {
        let e = engine_of(&plan_of(&text("vllm", hw)), "CTX_0");
        let argv = e.argv.join(" ");
        assert!(argv.contains(r#""kv_connector":"NixlConnector""#), "{argv}");
        assert_eq!(
            argv.contains(r#""backends":["UCX"]"#),
            extra,
            "{hw}: {argv}"
        );
        assert!(argv.contains("org/m --served-model-name m "), "{argv}");
        assert_eq!(e.env["VLLM_NIXL_SIDE_CHANNEL_PORT"], "{side_channel_port}");
        assert_eq!(e.env["VLLM_NIXL_SIDE_CHANNEL_HOST"], "{publish_host}");
    }
    // SGLang: its nixl backend for NIXL; its own default (mooncake) when unset.
    let e = engine_of(&plan_of(&text("sglang", nixl)), "GEN_0");
    let argv = e.argv.join(" ");
    assert!(
        argv.contains("--disaggregation-transfer-backend nixl"),
        "{argv}"
    );
    assert!(
        argv.contains("--model-path org/m --served-model-name m "),
        "{argv}"
    );
    let e = engine_of(&plan_of(&text("sglang", "")), "GEN_0");
    assert!(
        !e.argv
            .join(" ")
            .contains("--disaggregation-transfer-backend")
    );
    // TensorRT-LLM: its cache transceiver, UCX by default as the config name says.
    for (hw, want) in [("", "UCX"), (nixl, "NIXL")] {
        let p = plan_of(&text("trtllm", hw));
        assert!(
            p.files["ctx_config.yaml"].contains(&format!("backend: {want}")),
            "{hw}"
        );
    }
}

#[test]
fn engine_args_may_be_left_out_unless_the_engine_needs_them() {
    for engine in ["sim", "vllm", "sglang", "trtllm"] {
        let text = format!(
            "model: {{name: m}}\nengine: {engine}\nctx: {{count: 1}}\ngen: {{count: 1}}\nbenchmark: {{isl: 8, osl: 8}}\n"
        );
        parse_case(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{engine}: {e}"));
    }
    let text = "model: {name: m}\nengine: command\nctx: {count: 1}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 8}\n";
    let err = parse_case(text, Path::new("t.yaml")).unwrap_err();
    assert_eq!(err.key, "ctx.engine_args.argv", "{err}");
    assert!(err.message.contains("empty"), "{err}");
}

#[test]
fn trtllm_options_that_pyyaml_would_retype_are_quoted() {
    // A string `'on'` in the case (YAML 1.2 would also read a plain `on` as a string, but
    // PyYAML, which trtllm-serve uses, reads it as True).
    let p = plan_of(&case(
        "trtllm",
        r#"{kv_cache_config: {dtype: auto, mode: "on"}, stream_interval: 10, tag: "1_000"}"#,
        "",
    ));
    let file = &p.files["ctx_config.yaml"];
    for line in [
        "  mode: 'on'",
        "tag: '1_000'",
        "stream_interval: 10",
        "  dtype: auto",
    ] {
        assert!(file.lines().any(|l| l == line), "{line:?} not in\n{file}");
    }
}

#[test]
fn on_one_node_loopback_is_fine_and_across_nodes_workers_bind_every_interface() {
    let plan = |text: &str| {
        let c = parse_case(text, Path::new("t.yaml")).unwrap();
        disagg_core::plan::build(&c, "r", Path::new("/ws/r"), Path::new("/bin/disagg"))
    };
    let loopback = r#"{argv: [srv, --port, "{port}"], host: 127.0.0.1}"#;
    // One node (2 GPUs for CTX_0, 1 for GEN_0 on 8): loopback is accepted and kept.
    let one = plan(&case("command", loopback, ""));
    assert!(!one.multi_node());
    assert_eq!(one.roles[0].engine.as_ref().unwrap().host, "127.0.0.1");
    // Several nodes: the default binds 0.0.0.0 (the role publishes the hostname), sims too.
    let cmd = plan(&case("command", CMD, "hardware: {gpus_per_node: 2}\n"));
    assert!(cmd.multi_node());
    for r in cmd.workers() {
        assert_eq!(r.engine.as_ref().unwrap().host, "0.0.0.0", "{}", r.role);
    }
    let sim = plan(&case("sim", "{}", "hardware: {gpus_per_node: 2}\n"));
    for r in sim.workers() {
        let e = r.engine.as_ref().unwrap();
        assert_eq!(e.host, "0.0.0.0");
        let at = e.argv.iter().position(|a| a == "--host").unwrap();
        assert_eq!(e.argv[at + 1], "0.0.0.0", "{:?}", e.argv);
    }
    let local = plan(&case("sim", "{}", ""));
    assert_eq!(local.roles[0].engine.as_ref().unwrap().host, "127.0.0.1");
}

#[test]
fn loopback_addresses_are_told_apart() {
    use disagg_core::plan::is_loopback;
    for h in [
        "127.0.0.1",
        "127.0.1.1",
        "localhost",
        "LocalHost",
        "::1",
        "[::1]",
    ] {
        assert!(is_loopback(h), "{h}");
    }
    for h in ["0.0.0.0", "::", "10.0.0.1", "node-a", "dgn1"] {
        assert!(!is_loopback(h), "{h}");
    }
}

#[test]
fn every_role_writes_python_output_unbuffered_unless_the_case_says_otherwise() {
    let plan = plan_of(&case("vllm", "{}", ""));
    for r in &plan.roles {
        assert_eq!(
            r.env_set.get("PYTHONUNBUFFERED").map(String::as_str),
            Some("1"),
            "{}",
            r.role
        );
    }
    // The case's env wins, and worker_unset drops it from the workers.
    let plan = plan_of(&case(
        "vllm",
        "{}",
        "env: {server: {PYTHONUNBUFFERED: \"0\"}, worker_unset: [UCX_TLS, PYTHONUNBUFFERED]}\n",
    ));
    let role = |name: &str| {
        plan.roles
            .iter()
            .find(|r| r.role.to_string() == name)
            .unwrap()
    };
    assert_eq!(role("DISAGG_SERVER").env_set["PYTHONUNBUFFERED"], "0");
    assert!(
        role("CTX_0")
            .env_unset
            .iter()
            .any(|k| k == "PYTHONUNBUFFERED")
    );
}

/// A vLLM or SGLang server larger than a node runs one process per node: node rank 0 serves and
/// holds the rendezvous the role fills in; the others join it (vLLM's `--headless`).
#[test]
fn vllm_and_sglang_servers_larger_than_a_node_run_one_process_per_node() {
    let text = |engine: &str, parallel: &str| {
        format!(
            "model: {{name: m, path: org/m}}\nengine: {engine}\nhardware: {{gpus_per_node: 4}}\nctx: {{count: 1, engine_args: {{}}}}\ngen: {{count: 1, parallel: {parallel}, engine_args: {{}}}}\nbenchmark: {{isl: 8, osl: 8}}\n"
        )
    };
    let role = |plan: &disagg_core::Plan, name: &str| {
        plan.roles
            .iter()
            .find(|r| r.role.to_string() == name)
            .cloned()
            .unwrap()
    };
    // SGLang, TP 8 over two nodes of 4.
    let plan = plan_of(&text("sglang", "{tp: 8}"));
    let gen_ = role(&plan, "GEN_0");
    assert_eq!(gen_.ranks, 2, "one process per node");
    let e = gen_.engine.unwrap();
    let argv = e.argv.join(" ");
    assert!(
        argv.contains("--tp-size 8 ")
            && argv.contains("--nnodes 2 --dist-init-addr {dist_init_host}:{dist_init_port}"),
        "{argv}"
    );
    assert_eq!(
        e.argv_of_node(1)[e.argv.len()..],
        ["--node-rank".to_string(), "1".to_string()]
    );
    assert_eq!(
        e.dist_span, 7,
        "the rendezvous and the six ports SGLang derives from it"
    );
    assert_eq!(gen_.env_set["CUDA_VISIBLE_DEVICES"], "0,1,2,3", "per node");
    assert_eq!(role(&plan, "CTX_0").ranks, 1, "within a node: one process");
    // vLLM, TP 4 × PP 2: one world over the nodes, the second headless.
    let e = role(&plan_of(&text("vllm", "{tp: 4, pp: 2}")), "GEN_0")
        .engine
        .unwrap();
    let argv = e.argv.join(" ");
    assert!(
        argv.contains("--nnodes 2 --master-addr {dist_init_host} --master-port {dist_init_port}"),
        "{argv}"
    );
    assert_eq!(e.node_args[0], ["--node-rank", "0"]);
    assert_eq!(e.node_args[1], ["--node-rank", "1", "--headless"]);
    // vLLM with attention DP 8: its ranks spread four per node, the second node from rank 4.
    let e = role(
        &plan_of(&text("vllm", "{tp: 8, ep: 8, attention_dp: true}")),
        "GEN_0",
    )
    .engine
    .unwrap();
    let argv = e.argv.join(" ");
    assert!(
        argv.contains("--data-parallel-size 8 ")
            && argv.contains(
                "--data-parallel-size-local 4 --data-parallel-address {dist_init_host} \
                 --data-parallel-rpc-port {dist_init_port}"
            )
            && !argv.contains("--nnodes"),
        "{argv}"
    );
    assert!(e.node_args[0].is_empty(), "{:?}", e.node_args);
    assert_eq!(
        e.node_args[1],
        ["--data-parallel-start-rank", "4", "--headless"]
    );
    assert_eq!(e.side_channel_span, 8);
}

/// A variable the case sets for a group's workers wins over the one disagg sets for their
/// engine: vLLM's side-channel host as the node's address (its hostname may resolve to a
/// loopback one), for that group only.
#[test]
fn a_groups_env_wins_over_the_engine_env_disagg_sets() {
    let text = "name: x\nmodel: {name: m, path: /m}\nengine: vllm\nhardware: {gpus_per_node: 8}\n\
                ctx: {count: 1}\n\
                gen: {count: 1, env: {VLLM_NIXL_SIDE_CHANNEL_HOST: 10.0.0.5}}\n\
                benchmark: {isl: 8, osl: 4}\n";
    let plan = plan_of(text);
    let gen_launch = engine_of(&plan, "GEN_0");
    assert!(
        !gen_launch.env.contains_key("VLLM_NIXL_SIDE_CHANNEL_HOST"),
        "{:?}",
        gen_launch.env
    );
    let gen_role = plan
        .roles
        .iter()
        .find(|r| r.role.to_string() == "GEN_0")
        .unwrap();
    assert_eq!(
        gen_role
            .env_set
            .get("VLLM_NIXL_SIDE_CHANNEL_HOST")
            .map(String::as_str),
        Some("10.0.0.5")
    );
    // The other group keeps what disagg sets.
    assert_eq!(
        engine_of(&plan, "CTX_0")
            .env
            .get("VLLM_NIXL_SIDE_CHANNEL_HOST")
            .map(String::as_str),
        Some("{publish_host}")
    );
}

/// The case's own `CUDA_VISIBLE_DEVICES` names the GPUs of a node the workers may use (the free
/// ones of a shared machine): the plan's GPU k is its k-th, per group (a group's own wins). It
/// was overwritten with GPUs 0 up, silently. Too few, or one twice, is a case error.
#[test]
fn the_cases_cuda_visible_devices_names_the_gpus_the_workers_use() {
    let text = |env: &str| {
        format!(
            "name: x\nmodel: {{name: m}}\nengine: sim\nhardware: {{gpus_per_node: 8}}\n\
             ctx: {{count: 2}}\ngen: {{count: 1, parallel: {{tp: 2}}{env}}}\n\
             env: {{worker: {{CUDA_VISIBLE_DEVICES: \"4,5,6,7\"}}}}\n\
             benchmark: {{isl: 8, osl: 4}}\n"
        )
    };
    let cvd = |plan: &disagg_core::Plan, role: &str| {
        plan.roles
            .iter()
            .find(|r| r.role.to_string() == role)
            .and_then(|r| r.env_set.get("CUDA_VISIBLE_DEVICES").cloned())
            .unwrap()
    };
    let plan = plan_of(&text(""));
    assert_eq!(
        [
            cvd(&plan, "CTX_0"),
            cvd(&plan, "CTX_1"),
            cvd(&plan, "GEN_0")
        ],
        ["4", "5", "6,7"]
    );
    let plan = plan_of(&text(", env: {CUDA_VISIBLE_DEVICES: \"1,2,3,0\"}"));
    assert_eq!(
        [cvd(&plan, "CTX_1"), cvd(&plan, "GEN_0")],
        ["5".to_string(), "3,0".to_string()]
    );
    for (env, says) in [
        (
            ", env: {CUDA_VISIBLE_DEVICES: \"1,2\"}",
            "names 2 GPU(s), but the plan gives the gen servers GPUs 0 to 3",
        ),
        (
            ", env: {CUDA_VISIBLE_DEVICES: \"1,2,1,0\"}",
            "names GPU 1 twice",
        ),
    ] {
        let err = parse_case(&text(env), Path::new("t.yaml")).unwrap_err();
        let e = err.to_string();
        assert!(
            e.contains(says) && e.contains("gen.env.CUDA_VISIBLE_DEVICES"),
            "{e}"
        );
        // At its line, as every case error is.
        assert!(err.line.is_some(), "{e}");
    }
}

/// A group on `DEFAULT` takes the backend its release picks (UCX before 1.2, NIXL since): beside
/// a named one it is not judged a mismatch, which it may not be.
#[test]
fn a_default_transceiver_backend_is_not_judged_against_a_named_one() {
    for other in ["", "hardware: {cache_transceiver: NIXL}\n"] {
        let text = case(
            "trtllm",
            "{cache_transceiver_config: {backend: DEFAULT}}",
            other,
        );
        let r = parse_case(&text, Path::new("t.yaml"));
        assert!(r.is_ok(), "{other}: {:?}", r.err().map(|e| e.to_string()));
    }
}
