//! The benchmark's largest request against what each group's engine holds requests to: what
//! the engine would refuse is a case error naming the key, the lengths and the fix; what it
//! would serve cut short is a note; what the case does not state is not checked.

use std::path::Path;

use disagg_core::{CaseError, parse_case};

/// A case of `engine` (with `router` lines, e.g. a sim's dialect) whose groups have these
/// `engine_args`, and this benchmark.
fn case(engine: &str, router: &str, ctx: &str, generation: &str, bench: &str) -> String {
    format!(
        "model: {{name: m}}\nengine: {engine}\n{router}ctx:\n  count: 1\n  engine_args: {ctx}\n\
         gen:\n  count: 1\n  engine_args: {generation}\nbenchmark: {bench}\n"
    )
}

fn sim(dialect: &str, ctx: &str, generation: &str, bench: &str) -> String {
    case(
        "sim",
        &format!("router: {{dialect: {dialect}}}\n"),
        ctx,
        generation,
        bench,
    )
}

fn refused(text: &str) -> CaseError {
    parse_case(text, Path::new("case.yaml")).expect_err(&format!("accepted:\n{text}"))
}

/// The notes of a case that is accepted.
fn notes(text: &str) -> Vec<String> {
    let c =
        parse_case(text, Path::new("case.yaml")).unwrap_or_else(|e| panic!("refused: {e}\n{text}"));
    disagg_core::fit::notes(&c.case)
}

fn has(what: &str, text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{what}: no `{p}` in:\n{text}");
    }
}

const B90_20: &str = "{isl: 90, osl: 20}";

#[test]
fn vllm_refuses_on_the_leg_whose_prompt_and_max_tokens_do_not_fit() {
    let e = refused(&sim("vllm", "{}", "{max_model_len: 100}", B90_20));
    assert_eq!(e.key, "gen.engine_args.max_model_len");
    assert_eq!(e.line, Some(9), "the key's line");
    has(
        "vllm",
        &e.to_string(),
        &[
            "case.yaml:9",
            "isl 90 + osl 20: 110 tokens",
            "GEN's context of 100 tokens",
            "vLLM refuses prompt + max_tokens (90 + 20)",
            "hint: raise gen.engine_args.max_model_len to at least 110, or lower \
             benchmark.isl/osl",
        ],
    );
    // The prefill leg asks one token: 91 fits in 100.
    assert!(notes(&sim("vllm", "{max_model_len: 100}", "{}", B90_20)).is_empty());
    let e = refused(&sim("vllm", "{max_model_len: 90}", "{}", B90_20));
    assert_eq!(e.key, "ctx.engine_args.max_model_len");
    has("vllm ctx", &e.message, &["(90 + 1)"]);
    // It fits exactly.
    assert!(notes(&sim("vllm", "{}", "{max_model_len: 110}", B90_20)).is_empty());
}

#[test]
fn sglang_refuses_on_both_legs_unless_it_auto_truncates() {
    for (ctx, generation, key) in [
        (
            "{max_model_len: 100}",
            "{}",
            "ctx.engine_args.max_model_len",
        ),
        (
            "{}",
            "{max_model_len: 100}",
            "gen.engine_args.max_model_len",
        ),
    ] {
        let e = refused(&sim("sglang", ctx, generation, B90_20));
        assert_eq!(e.key, key);
        has("sglang", &e.message, &["SGLang refuses it with 400"]);
    }
    // A prompt of the whole context, even with room asked for nothing more.
    let e = refused(&sim(
        "sglang",
        "{max_model_len: 90}",
        "{max_model_len: 200}",
        B90_20,
    ));
    assert_eq!(e.key, "ctx.engine_args.max_model_len");
    has(
        "refused",
        &refused(&sim("sglang", "{max_model_len: 100}", "{}", B90_20)).to_string(),
        &["or `allow_auto_truncate: true`"],
    );
    // Truncated, the answer is shorter than osl: the benchmark fails it unless it accepts
    // shorter answers.
    let truncating = |bench| {
        sim(
            "sglang",
            "{max_model_len: 100, allow_auto_truncate: true}",
            "{max_model_len: 100, allow_auto_truncate: true}",
            bench,
        )
    };
    let e = refused(&truncating(B90_20));
    has(
        "ignore_eos",
        &e.to_string(),
        &[
            "SGLang cuts max_new_tokens to the 10 tokens left",
            "(wrong_output_length)",
            "or `ignore_eos: false` to accept shorter answers",
        ],
    );
    let n = notes(&truncating("{isl: 90, osl: 20, ignore_eos: false}"));
    assert_eq!(n.len(), 2, "{n:?}");
    has(
        "truncated",
        &n[0],
        &[
            "SGLang cuts max_new_tokens to the 10 tokens left",
            "(`ctx.engine_args.max_model_len`)",
        ],
    );
    // The real engine, by its own flag names: a prompt of the whole context, truncated, has no
    // room for output at all, which the benchmark always fails.
    let e = refused(&case(
        "sglang",
        "",
        "{context_length: 4096}",
        "{context_length: 4096}",
        "{isl: 4096, osl: 8}",
    ));
    assert_eq!(e.key, "ctx.engine_args.context_length");
    let e = refused(&case(
        "sglang",
        "",
        "{context_length: 4096, allow_auto_truncate: true}",
        "{context_length: 8192}",
        "{isl: 4096, osl: 8, ignore_eos: false}",
    ));
    assert_eq!(e.key, "ctx.engine_args.context_length");
    has(
        "no room",
        &e.message,
        &["leaves none for output", "(zero_tokens)"],
    );
}

#[test]
fn trtllm_refuses_a_prompt_without_room_and_notes_a_cut_output() {
    let shorter = "{isl: 90, osl: 20, ignore_eos: false}";
    let n = notes(&sim("trtllm", "{}", "{max_model_len: 100}", shorter));
    assert_eq!(n.len(), 1, "{n:?}");
    has(
        "cut",
        &n[0],
        &[
            "TensorRT-LLM cuts max_tokens to the 10 tokens left",
            "(`gen.engine_args.max_model_len`)",
            "raise gen.engine_args.max_model_len to at least 110",
        ],
    );
    // With ignore_eos (the default) the benchmark fails every cut answer.
    let e = refused(&sim("trtllm", "{}", "{max_model_len: 100}", B90_20));
    assert_eq!(e.key, "gen.engine_args.max_model_len");
    has(
        "exact",
        &e.to_string(),
        &[
            "TensorRT-LLM cuts max_tokens to the 10 tokens left",
            "with benchmark.ignore_eos every answer must have osl tokens",
            "(wrong_output_length)",
        ],
    );
    let e = refused(&sim("trtllm", "{}", "{max_model_len: 90}", shorter));
    assert_eq!(e.key, "gen.engine_args.max_model_len");
    has("no room", &e.message, &["leaves no room under max_seq_len"]);
    // The context leg asks one token: a prompt one short of the context fits.
    assert!(notes(&sim("trtllm", "{max_model_len: 91}", "{}", B90_20)).is_empty());
}

#[test]
fn trtllm_holds_the_context_legs_prompt_to_max_num_tokens() {
    let batched = |extra: &str| format!("{{preset: batched, max_num_tokens: 64{extra}}}");
    let e = refused(&sim("trtllm", &batched(""), "{}", B90_20));
    assert_eq!(e.key, "ctx.engine_args.max_num_tokens");
    has(
        "max_num_tokens",
        &e.to_string(),
        &[
            "(isl 90 + osl 20: 90 tokens) is longer than max_num_tokens 64 of CTX workers",
            "hint: set ctx.engine_args.max_num_tokens to at least 90, or \
             `enable_chunked_prefill: true`",
        ],
    );
    assert!(
        notes(&sim(
            "trtllm",
            &batched(", enable_chunked_prefill: true"),
            "{}",
            B90_20
        ))
        .is_empty()
    );
    // Generation-only requests are not held to it; other dialects have no such check.
    assert!(notes(&sim("trtllm", "{}", &batched(""), B90_20)).is_empty());
    assert!(notes(&sim("vllm", &batched(""), "{}", B90_20)).is_empty());

    // trtllm-serve holds prompts to its default 8192 when the YAML sets none.
    let long = "{isl: 9000, osl: 10}";
    let e = refused(&case("trtllm", "", "{}", "{}", long));
    assert_eq!(e.key, "ctx.engine_args");
    has(
        "default",
        &e.message,
        &["trtllm-serve's default max_num_tokens 8192"],
    );
    for ctx in ["{max_num_tokens: 9000}", "{enable_chunked_prefill: true}"] {
        assert!(notes(&case("trtllm", "", ctx, "{max_num_tokens: 512}", long)).is_empty());
    }
    let n = notes(&case(
        "trtllm",
        "",
        "{max_seq_len: 9100}",
        "{max_seq_len: 9005}",
        "{isl: 8000, osl: 1024, ignore_eos: false}",
    ));
    // The context leg asks one token: only the generation leg is cut.
    assert_eq!(n.len(), 1, "{n:?}");
    has(
        "yaml",
        &n[0],
        &["(`gen.engine_args.max_seq_len`)", "1005 tokens left"],
    );
}

#[test]
fn vllm_engine_lengths_read_as_vllm_reads_them() {
    let e = refused(&case(
        "vllm",
        "",
        "{}",
        "{max_model_len: 4k}",
        "{isl: 3990, osl: 20}",
    ));
    assert_eq!(e.key, "gen.engine_args.max_model_len");
    has("4k", &e.message, &["context of 4000 tokens"]);
    // 4K is 4096; auto is sized by vLLM from the GPU: not checked.
    for len in ["4K", "auto"] {
        let text = case(
            "vllm",
            "",
            "{}",
            &format!("{{max_model_len: {len}}}"),
            "{isl: 3990, osl: 20}",
        );
        assert!(notes(&text).is_empty(), "{len}");
    }
}

#[test]
fn the_largest_request_is_at_the_top_of_the_range_ratio() {
    let e = refused(&sim(
        "vllm",
        "{}",
        "{max_model_len: 1600}",
        "{isl: 1000, osl: 100, range_ratio: 0.5}",
    ));
    has(
        "range",
        &e.to_string(),
        &[
            "isl 1000 and osl 100 at range_ratio 0.5 reach 1500 + 150: 1650 tokens",
            "at least 1650",
        ],
    );
}

#[test]
fn what_the_case_does_not_state_is_not_checked() {
    // No limit set: the engine sizes its context itself.
    assert!(notes(&sim("vllm", "{}", "{}", "{isl: 100000, osl: 1000}")).is_empty());
    // A dataset's lengths are the file's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.jsonl"), "").unwrap();
    let ds = sim(
        "vllm",
        "{}",
        "{max_model_len: 16}",
        "{isl: 90, osl: 20, dataset: d.jsonl}",
    );
    let c = parse_case(&ds, &dir.path().join("case.yaml")).expect("a dataset case");
    assert!(disagg_core::fit::notes(&c.case).is_empty());
    // A command engine's limits are its own.
    let cmd = r#"{argv: [srv, --port, "{port}"]}"#;
    assert!(notes(&case("command", "", cmd, cmd, "{isl: 100000, osl: 10}")).is_empty());
}

#[test]
fn a_sweep_point_that_does_not_fit_is_named_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sw.yaml");
    let text = case(
        "vllm",
        "",
        "{max_model_len: 4096}",
        "{max_model_len: 4096}",
        "{isl: 1024, osl: 128}",
    ) + "sweep:\n  zip:\n    - {benchmark.isl: [1024, 4000], benchmark.osl: [128, 256]}\n";
    std::fs::write(&file, text).unwrap();
    let errors = match disagg_core::sweep::load_file(&file) {
        Ok(_) => panic!("the second point does not fit"),
        Err(e) => e,
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    has(
        "sweep",
        &e,
        &[
            "key `gen.engine_args.max_model_len`",
            "sweep point 2 (benchmark.isl=4000 benchmark.osl=256)",
            "isl 4000 + osl 256: 4256 tokens",
            "raise gen.engine_args.max_model_len to at least 4256",
        ],
    );
}

/// SGLang refuses `input + max_new_tokens >= context_len`: a 1k/1k workload needs a context of
/// 2049, not 2048 (QA: accepted at 2048, and every request would fail on GPUs).
#[test]
fn sglang_refuses_a_total_equal_to_its_context() {
    let b = "{isl: 1024, osl: 1024}";
    let e = refused(&case("sglang", "", "{}", "{context_length: 2048}", b));
    assert_eq!(e.key, "gen.engine_args.context_length");
    has(
        "at the limit",
        &e.to_string(),
        &["SGLang refuses it", "at least 2049"],
    );
    parse_case(
        &case("sglang", "", "{}", "{context_length: 2049}", b),
        Path::new("case.yaml"),
    )
    .unwrap();
    // The sim playing SGLang alike.
    refused(&sim("sglang", "{}", "{max_model_len: 2048}", b));
}

/// vLLM and SGLang options become `--` + the key with `-`: either spelling is read, and both
/// at once is an error (the engine would take the last).
#[test]
fn hyphenated_options_are_the_same_options() {
    let b = "{isl: 4000, osl: 1024}";
    let e = refused(&case("vllm", "", "{}", "{max-model-len: 2048}", b));
    assert_eq!(e.key, "gen.engine_args.max-model-len");
    let e = refused(&case("sglang", "", "{context-length: 2048}", "{}", b));
    assert_eq!(e.key, "ctx.engine_args.context-length");
    let e = refused(&case(
        "vllm",
        "",
        "{}",
        "{max_model_len: 8192, max-model-len: 2048}",
        "{isl: 8, osl: 8}",
    ));
    has(
        "both",
        &e.to_string(),
        &["`max-model-len` and `max_model_len` are the same flag (--max-model-len)"],
    );
    // What disagg sets is refused in either spelling.
    let e = refused(&case(
        "vllm",
        "",
        "{}",
        "{tensor-parallel-size: 2}",
        "{isl: 8, osl: 8}",
    ));
    has(
        "owned",
        &e.to_string(),
        &[
            "`tensor-parallel-size` is set by disagg",
            "set `parallel.tp`",
        ],
    );
}

/// TensorRT-LLM holds each context-parallel rank to its share of the prompt (QA: a cp case
/// built for long prompts was refused on the whole prompt).
#[test]
fn trtllm_context_parallelism_splits_the_prompt() {
    let with_cp = |cp: u32, ctx: &str, generation: &str, bench: &str| {
        format!(
            "model: {{name: m}}\nengine: trtllm\nctx:\n  count: 1\n  parallel: {{cp: {cp}}}\n  \
             engine_args: {ctx}\ngen:\n  count: 1\n  parallel: {{cp: {cp}}}\n  engine_args: \
             {generation}\nbenchmark: {bench}\n"
        )
    };
    let b = "{isl: 32000, osl: 1000}";
    // 32000 / 4 = 8000 ≤ 8192.
    parse_case(
        &with_cp(4, "{max_num_tokens: 8192}", "{}", b),
        Path::new("case.yaml"),
    )
    .unwrap();
    // 32000 / 2 = 16000 ≤ 16384, and 16000 + 1000 fit under max_seq_len 20000.
    parse_case(
        &with_cp(
            2,
            "{max_num_tokens: 16384, max_seq_len: 20000}",
            "{max_seq_len: 20000}",
            b,
        ),
        Path::new("case.yaml"),
    )
    .unwrap();
    // Not enough ranks: 16000 per rank over 8192.
    let e = refused(&with_cp(2, "{max_num_tokens: 8192}", "{}", b));
    has(
        "cp 2",
        &e.to_string(),
        &[
            "16000 per rank of its context parallelism 2",
            "max_num_tokens to at least 16000",
        ],
    );
    let e = refused(&with_cp(
        2,
        "{enable_chunked_prefill: true}",
        "{max_seq_len: 16000}",
        b,
    ));
    has(
        "no room",
        &e.to_string(),
        &["a 16000-token prompt leaves no room under max_seq_len"],
    );
}
