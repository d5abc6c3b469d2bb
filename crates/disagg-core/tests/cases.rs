//! Case parsing, as a table: each bad case names its key and line, and hints at the fix.

use std::path::Path;

use disagg_core::{CaseError, parse_case};

const QUICKSTART: &str = include_str!("../../../examples/quickstart.yaml");

fn parse(text: &str) -> Result<disagg_core::load::LoadedCase, CaseError> {
    parse_case(text, Path::new("cases/t.yaml"))
}

/// The quickstart with `from` replaced by `to` (which must occur exactly once).
fn edit(from: &str, to: &str) -> String {
    assert_eq!(
        QUICKSTART.matches(from).count(),
        1,
        "{from:?} must occur once in the quickstart"
    );
    QUICKSTART.replace(from, to)
}

#[test]
fn the_issue_example_is_accepted_as_written() {
    let c = parse(QUICKSTART).unwrap();
    assert_eq!(c.config_name.as_str(), "quickstart");
    assert_eq!(c.case.benchmark.concurrency(), vec![1, 8]);
    assert_eq!(c.case.env.worker_unset, vec!["UCX_TLS".to_string()]);
    assert_eq!(c.case.timeouts.benchmark.as_secs(), 600);
}

#[test]
fn a_minimal_case_takes_defaults_and_derives_its_name() {
    let text = "model: {name: llama-3.1-8b}\nctx: {count: 1, engine_args: {}}\ngen: {count: 2, parallel: {tp: 4, ep: 4, attention_dp: true}, engine_args: {}}\nbenchmark: {isl: 1024, osl: 1024, concurrency: [64]}\n";
    let c = parse(text).unwrap();
    assert_eq!(
        c.config_name.as_str(),
        "llama-3.1-8b-bf16_1k1k_con64_ctx1_gen2_dep4_eplb0_mtp0_ccb-UCX"
    );
    assert_eq!(c.case.env.worker_unset, vec!["UCX_TLS".to_string()]);
    assert_eq!(c.case.benchmark.rounds, 4);
    // Several routers are another config: their own folder, runs and baseline rows.
    let c = parse(&format!("{text}router: {{replicas: 3}}\n")).unwrap();
    assert_eq!(
        c.config_name.as_str(),
        "llama-3.1-8b-bf16_1k1k_con64_ctx1_gen2_dep4_eplb0_mtp0_ccb-UCX_routers3"
    );
}

struct Bad {
    what: &'static str,
    text: String,
    key: &'static str,
    line: Option<usize>,
    message_has: &'static str,
    hint_has: &'static str,
}

#[test]
fn bad_cases_name_the_key_line_and_fix() {
    let table = vec![
        Bad {
            what: "an auth key for a dialect that signs nothing",
            text: edit(
                "router: {kind: builtin, policy: round_robin, replicas: 1}",
                "router: {kind: builtin, policy: round_robin, replicas: 1, dialect: vllm, internal_request_auth_key: k}",
            ),
            key: "router.internal_request_auth_key",
            line: None,
            message_has: "only TensorRT-LLM's dialect signs hand-offs",
            hint_has: "remove the key",
        },
        Bad {
            what: "an empty auth key",
            text: edit(
                "router: {kind: builtin, policy: round_robin, replicas: 1}",
                "router: {kind: builtin, policy: round_robin, replicas: 1, internal_request_auth_key: \" \"}",
            ),
            key: "router.internal_request_auth_key",
            line: None,
            message_has: "the key is empty",
            hint_has: "openssl rand",
        },
        Bad {
            what: "unknown key, close to a known one",
            text: edit("  rounds: 4", "  roundz: 4"),
            key: "benchmark.roundz",
            line: Some(23),
            message_has: "unknown key `roundz` in `benchmark`",
            hint_has: "did you mean `rounds`?",
        },
        Bad {
            what: "a YAML merge key",
            text: edit("  rounds: 4", "  <<: {rounds: 4}"),
            key: "benchmark.<<",
            line: None,
            message_has: "unknown key `<<` in `benchmark`",
            hint_has: "YAML merge keys (`<<: *anchor`) are not supported",
        },
        Bad {
            what: "unknown top-level key",
            text: format!("{QUICKSTART}bogus_section: 1\n"),
            key: "bogus_section",
            line: Some(36),
            message_has: "unknown key `bogus_section` at the top level",
            hint_has: "remove it",
        },
        Bad {
            what: "wrong type",
            text: edit("  isl: 256", "  isl: lots"),
            key: "benchmark.isl",
            line: Some(20),
            message_has: "invalid type: string \"lots\", expected u32",
            hint_has: "whole number",
        },
        Bad {
            what: "missing benchmark",
            text: QUICKSTART.split("benchmark:\n").next().unwrap().to_string(),
            key: "benchmark",
            line: None,
            message_has: "required key `benchmark` is missing",
            hint_has: "add `benchmark`",
        },
        Bad {
            what: "inverted deadlines",
            text: edit(
                "request: 60s, benchmark: 10m",
                "request: 20m, benchmark: 10m",
            ),
            key: "timeouts.request",
            line: Some(32),
            message_has: "request (20m) must be shorter than benchmark (10m)",
            hint_has: "deadlines must nest",
        },
        Bad {
            what: "job shorter than startup + benchmark",
            text: edit("job: 30m", "job: 10m"),
            key: "timeouts.benchmark",
            line: Some(32),
            message_has: "benchmark (10m) must be shorter than job (10m)",
            hint_has: "deadlines must nest",
        },
        Bad {
            what: "an unresponsive limit shorter than two probes",
            text: edit("unresponsive: 10s", "unresponsive: 500ms"),
            key: "timeouts.unresponsive",
            line: Some(32),
            message_has: "unresponsive (500ms) is shorter than 2s",
            hint_has: "at least 2s",
        },
        Bad {
            what: "a stall limit shorter than two census reads",
            text: edit("unresponsive: 10s", "unresponsive: 10s, stall: 1s"),
            key: "timeouts.stall",
            line: Some(32),
            message_has: "stall (1s) is shorter than 2s",
            hint_has: "or 0s to turn it off",
        },
        Bad {
            what: "name with ..",
            text: edit("name: quickstart ", "name: ../x "),
            key: "name",
            line: Some(4),
            message_has: "`../x` cannot be a folder name",
            hint_has: "no `/`",
        },
        Bad {
            what: "name with /",
            text: edit("name: quickstart ", "name: a/b "),
            key: "name",
            line: Some(4),
            message_has: "cannot be a folder name",
            hint_has: "letters, digits",
        },
        Bad {
            what: "unknown sim engine arg",
            text: edit(
                "  engine_args: {}                # engine-specific",
                "  engine_args: {itll: 5ms}        # engine-specific",
            ),
            key: "ctx.engine_args.itll",
            line: Some(11),
            message_has: "unknown key `itll` in `ctx.engine_args`",
            hint_has: "did you mean `itl`?",
        },
        Bad {
            what: "a worker env block at the top level",
            text: format!("{QUICKSTART}worker: {{FOO: bar}}\n"),
            key: "worker",
            line: Some(QUICKSTART.lines().count() + 1),
            message_has: "unknown key `worker` at the top level",
            hint_has: "move it to `env.worker`",
        },
        Bad {
            what: "a benchmark env block in the benchmark",
            text: edit("  streaming: true\n", "  streaming: true\n  env: {FOO: bar}\n"),
            key: "benchmark.env",
            line: Some(26),
            message_has: "unknown key `env` in `benchmark`",
            hint_has: "move it to `env.benchmark`",
        },
        Bad {
            what: "a tab for indentation",
            text: edit("  worker: {}  ", "\tworker: {}  "),
            key: "env",
            line: Some(28),
            message_has: "not valid YAML",
            hint_has: "that line holds a tab",
        },
        Bad {
            what: "bad duration",
            text: edit("worker_startup: 60s", "worker_startup: 60"),
            key: "timeouts.worker_startup",
            line: Some(32),
            message_has: "`60` has no unit, so it is no duration",
            hint_has: "write `60s` for seconds",
        },
        Bad {
            what: "a duration of no known unit",
            text: edit("worker_startup: 60s", "worker_startup: 60 parsecs"),
            key: "timeouts.worker_startup",
            line: Some(32),
            message_has: "invalid",
            hint_has: "duration",
        },
        Bad {
            what: "unknown engine",
            text: edit("engine: sim ", "engine: simm "),
            key: "engine",
            line: Some(6),
            message_has: "`simm` is not one of: sim",
            hint_has: "did you mean `sim`?",
        },
        Bad {
            what: "zero concurrency",
            text: edit("concurrency: [1, 8]", "concurrency: [0, 8]"),
            key: "benchmark.concurrency",
            line: Some(22),
            message_has: "each at least 1",
            hint_has: "concurrency: [1, 8]",
        },
        Bad {
            what: "a concurrency listed twice",
            text: edit("concurrency: [1, 8]", "concurrency: [8, 1, 8]"),
            key: "benchmark.concurrency",
            line: Some(22),
            message_has: "lists concurrency 8 twice",
            hint_has: "raise `rounds`",
        },
        Bad {
            what: "a request rate listed twice",
            text: edit(
                "  concurrency: [1, 8]",
                "  request_rate: [10, .inf, 10]\n  num_prompts: 20",
            ),
            key: "benchmark.request_rate",
            line: Some(22),
            message_has: "lists request rate 10 twice",
            hint_has: "raise `num_prompts`",
        },
        Bad {
            what: "a negative temperature",
            text: edit(
                "  streaming: true",
                "  streaming: true\n  temperature: -0.5",
            ),
            key: "benchmark.temperature",
            line: None,
            message_has: "-0.5 is not a temperature",
            hint_has: "`null` to send none",
        },
        Bad {
            what: "open and closed loop at once",
            text: edit(
                "  streaming: true",
                "  streaming: true\n  request_rate: [10]\n  num_prompts: 20",
            ),
            key: "benchmark.request_rate",
            line: Some(26),
            message_has: "cannot both be set",
            hint_has: "max_concurrency",
        },
        Bad {
            what: "open loop without num_prompts",
            text: edit("  concurrency: [1, 8]", "  request_rate: [10, .inf]"),
            key: "benchmark.num_prompts",
            line: Some(19),
            message_has: "needs `num_prompts`",
            hint_has: "num_prompts: 200",
        },
        Bad {
            what: "unknown endpoint",
            text: edit(
                "  streaming: true",
                "  streaming: true\n  endpoint: /v1/embeddings",
            ),
            key: "benchmark.endpoint",
            line: Some(26),
            message_has: "not a served endpoint",
            hint_has: "/v1/chat/completions",
        },
        Bad {
            what: "unknown policy",
            text: edit("policy: round_robin,", "policy: least_loaded,"),
            key: "router.policy",
            line: Some(18),
            message_has: "`least_loaded` is not one of: round_robin, least_requests, least_tokens, prefix_affinity",
            hint_has: "use one of",
        },
        Bad {
            what: "missing dataset",
            text: edit(
                "  streaming: true",
                "  streaming: true\n  dataset: nowhere.jsonl",
            ),
            key: "benchmark.dataset",
            line: Some(26),
            message_has: "nowhere.jsonl is not a file",
            hint_has: "relative to the case file",
        },
        Bad {
            what: "a history band that lets a throughput fall to nothing",
            text: edit(
                "  baseline: null ",
                "  history: {threshold: 5}\n  baseline: history ",
            ),
            key: "perf.history.threshold",
            line: None,
            message_has: "5 is a band of 500%",
            hint_has: "`threshold: 0.05` is 5%",
        },
        Bad {
            what: "a history window that holds no earlier run",
            text: edit(
                "  baseline: null ",
                "  history: {window: 0s}\n  baseline: history ",
            ),
            key: "perf.history.window",
            line: None,
            message_has: "a window of 0s holds no earlier run",
            hint_has: "`window: 30d`",
        },
        Bad {
            what: "a CSV or a list, not a mapping",
            text: "perf_case_name,metric_type\nx-con1,SEQ_THROUGHPUT\n".repeat(50),
            key: "",
            line: None,
            message_has: "this is not a case: its top level is a string, where a case is a mapping",
            hint_has: "quickstart",
        },
        Bad {
            what: "a key given twice: said where it is given again",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   name: y\nbenchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "name",
            line: Some(6),
            message_has: "`name` is given twice",
            hint_has: "keep one `name:`",
        },
        Bad {
            what: "a key given twice in a nested mapping: its whole path, where it is again",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   benchmark:\n  isl: 8\n  osl: 4\n  isl: 16\n"
                .into(),
            key: "benchmark.isl",
            line: Some(9),
            message_has: "`isl` is given twice",
            hint_has: "keep one `isl:`",
        },
        Bad {
            what: "an open-loop cap in the closed loop",
            text: edit(
                "  streaming: true",
                "  streaming: true\n  max_concurrency: 8",
            ),
            key: "benchmark.max_concurrency",
            line: None,
            message_has: "runs the closed loop, which would ignore it",
            hint_has: "`concurrency: [8]`",
        },
        Bad {
            what: "a TensorRT-LLM argument a letter off a known one",
            text: "name: x\nmodel: {name: tiny, path: /m}\nengine: trtllm\nctx: {count: 1}\n\
                   gen:\n  count: 1\n  engine_args: {kv_cache_confg: {free_gpu_memory_fraction: 0.5}}\n\
                   benchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "gen.engine_args.kv_cache_confg",
            line: Some(7),
            message_has: "`kv_cache_confg` is not an argument of any TensorRT-LLM release",
            hint_has: "did you mean `kv_cache_config`?",
        },
        Bad {
            what: "a key of a TensorRT-LLM section a few letters off a known one",
            text: "name: x\nmodel: {name: tiny, path: /m}\nengine: trtllm\nctx: {count: 1}\n\
                   gen:\n  count: 1\n  engine_args:\n    kv_cache_config:\n      free_gpu_mem_fraction: 0.5\n\
                   benchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "gen.engine_args.kv_cache_config.free_gpu_mem_fraction",
            line: Some(9),
            message_has: "`free_gpu_mem_fraction` is not a key of TensorRT-LLM's `kv_cache_config`",
            hint_has: "did you mean `free_gpu_memory_fraction`?",
        },
        Bad {
            what: "a command engine's placeholder a letter off",
            text: "name: x\nmodel: {name: tiny}\nengine: command\n\
                   ctx: {count: 1, engine_args: {argv: [srv, --port, \"{port}\", --json, '{\"a\": 1}', --role, \"{rol}\"]}}\n\
                   gen: {count: 1, engine_args: {argv: [srv, --port, \"{port}\"]}}\n\
                   benchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "ctx.engine_args.argv[6]",
            line: Some(4),
            message_has: "`{rol}` is not a placeholder `disagg` fills in an engine command",
            hint_has: "did you mean `{role}`?",
        },
        Bad {
            what: "a command router's unknown placeholder",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   router: {kind: command, argv: [r, -c, \"{config}\", --port, \"{port}\"]}\n\
                   benchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "router.argv[2]",
            line: Some(6),
            message_has: "`{config}` is not a placeholder `disagg` fills in a router command",
            hint_has: "`{server_config}`, `{disagg}`, `{host}`, `{port}`",
        },
        Bad {
            what: "an MPI plugin a letter off",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   benchmark: {isl: 8, osl: 4}\nslurm: {mpi: pmx}\n"
                .into(),
            key: "slurm.mpi",
            line: Some(7),
            message_has: "`pmx` is no Slurm MPI plugin",
            hint_has: "did you mean `pmix`?",
        },
        Bad {
            what: "an empty setup command",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   benchmark: {isl: 8, osl: 4}\nsetup: []\n"
                .into(),
            key: "setup",
            line: Some(7),
            message_has: "the setup command is empty",
            hint_has: "drop the key",
        },
        Bad {
            what: "a string where perf's mapping goes: the hint shows perf's own",
            text: "name: x\nmodel: {name: tiny}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   benchmark: {isl: 8, osl: 4}\nperf: \"history\"\n"
                .into(),
            key: "perf",
            line: Some(7),
            message_has: "expected struct Perf",
            hint_has: "`{baseline: history}`",
        },
        Bad {
            what: "an unclosed brace, noticed a line later",
            text: "name: x\nmodel: {name: tiny\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                   benchmark: {isl: 8, osl: 4}\n"
                .into(),
            key: "",
            line: Some(3),
            message_has: "while parsing a flow mapping",
            hint_has: "a `{` or `[` opened on this line or one before it is not closed",
        },
        Bad {
            what: "empty file",
            text: "\n".into(),
            key: "",
            line: None,
            message_has: "empty",
            hint_has: "quickstart",
        },
    ];
    for b in table {
        let err = match parse(&b.text) {
            Ok(_) => panic!("{}: accepted", b.what),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.key, b.key, "{}: {shown}", b.what);
        if b.line.is_some() {
            assert_eq!(err.line, b.line, "{}: {shown}", b.what);
        }
        assert!(err.message.contains(b.message_has), "{}: {shown}", b.what);
        let hint = err.hint.clone().unwrap_or_default();
        assert!(hint.contains(b.hint_has), "{}: {shown}", b.what);
        assert!(
            shown.starts_with("cases/t.yaml"),
            "{}: the file is named: {shown}",
            b.what
        );
        assert!(shown.contains("\nhint: "), "{}: {shown}", b.what);
        assert!(shown.len() < 1000, "{}: a short message: {shown}", b.what);
    }
}

#[test]
fn the_shape_check_counts_only_real_nesting() {
    // Brackets in quotes, comments and plain scalars are text, not nesting.
    let deep_text = "[".repeat(100);
    for (what, setup) in [
        ("double quotes", format!("setup: \"echo {deep_text}\"")),
        ("single quotes", format!("setup: 'echo {deep_text}'")),
        ("a comment", format!("setup: null  # {deep_text}")),
        (
            "a plain scalar with an apostrophe",
            "setup: echo it's".to_string(),
        ),
    ] {
        let text = QUICKSTART.replacen("setup: null", &setup, 1);
        parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // An apostrophe inside a plain scalar does not hide real nesting after it.
    let text = QUICKSTART.replacen(
        "setup: null",
        &format!(
            "setup: echo it's\nextra: {}1{}",
            "[".repeat(65),
            "]".repeat(65)
        ),
        1,
    );
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("nested more than 64 deep"), "{e}");
}
