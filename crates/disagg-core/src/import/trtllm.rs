//! `disagg import trtllm`: a TensorRT-LLM perf-sanity disaggregated config → a case.
//!
//! The source has `metadata`, `slurm`, `benchmark`, `hardware`, `environment` (with the
//! `worker_env_var` / `ctx_worker_env_var` / `gen_worker_env_var` / `server_env_var` /
//! `benchmark_env_var` / `client_env_var` strings), `profiling`, `accuracy` (never run) and
//! `worker_config.ctx` / `.gen` (each an extra-options YAML for `trtllm-serve`). Every key is
//! either mapped, or named in a note.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::yaml::{placeholder, put, show, str_of, u64_of};
use super::{ImportError, Imported, Note};

/// Keys of a worker config that become the group's `parallel:`.
const PARALLEL_KEYS: [(&str, &str); 5] = [
    ("tensor_parallel_size", "tp"),
    ("pipeline_parallel_size", "pp"),
    ("moe_expert_parallel_size", "ep"),
    ("enable_attention_dp", "attention_dp"),
    // TensorRT-LLM's world size is tp×pp×cp: a server of cp 2 has twice the GPUs.
    ("context_parallel_size", "cp"),
];

struct Ctx {
    notes: Vec<Note>,
}

impl Ctx {
    fn note(&mut self, key: &str, what: impl Into<String>) {
        self.notes.push(Note {
            key: key.into(),
            what: what.into(),
        });
    }
}

/// How to import, beyond the file itself.
pub struct Options<'a> {
    /// `--gen-only`: run the config as TensorRT-LLM's `gen_only` test does (also when the
    /// config's `benchmark.mode` says `gen_only`).
    pub gen_only: bool,
    /// `--per-gen-server-concurrency`: `concurrency_list` gives each generation server's
    /// concurrency, as TensorRT-LLM's Slurm benchmark scripts read it (`run_benchmark.sh`
    /// multiplies every value by `num_gen_servers`); without it the list is the whole
    /// deployment's, as its perf-sanity harness reads it (straight to `--max-concurrency`).
    pub per_gen_server_concurrency: bool,
    /// `$LLM_MODELS_ROOT`, under which TensorRT-LLM looks for `dataset_file` first.
    pub models_root: Option<std::path::PathBuf>,
    /// Whether a path names a file (the real file system, or a test's).
    pub exists: &'a dyn Fn(&Path) -> bool,
    /// A file's text (for `extra_llm_api_config_path` and a `load_balancer` file).
    pub read: &'a dyn Fn(&Path) -> Option<String>,
}

impl Options<'_> {
    /// No `--gen-only`; `$LLM_MODELS_ROOT` and files as they are on this machine.
    pub fn from_env() -> Options<'static> {
        Options {
            gen_only: false,
            per_gen_server_concurrency: false,
            models_root: std::env::var_os("LLM_MODELS_ROOT").map(Into::into),
            exists: &|p: &Path| p.is_file(),
            read: &|p: &Path| std::fs::read_to_string(p).ok(),
        }
    }
}

/// Converts `text`; `name` (usually the file stem) becomes the case's name.
pub fn convert(text: &str, name: &str) -> Result<Imported, ImportError> {
    convert_with(text, name, &Options::from_env())
}

/// [`convert`] with explicit [`Options`].
pub fn convert_with(text: &str, name: &str, opts: &Options<'_>) -> Result<Imported, ImportError> {
    let root: Value =
        serde_yaml_ng::from_str(text).map_err(|e| ImportError::Yaml(e.to_string()))?;
    let root = root
        .as_mapping()
        .ok_or_else(|| shape("", "is not a mapping"))?;
    let mut cx = Ctx { notes: Vec::new() };
    let section = |k: &str| -> Result<Mapping, ImportError> {
        match root.get(k) {
            None | Some(Value::Null) => Ok(Mapping::new()),
            Some(Value::Mapping(m)) => Ok(m.clone()),
            Some(_) => Err(shape(k, "is not a mapping")),
        }
    };
    let workers = section("worker_config")?;
    for (k, _) in root {
        let k = k.as_str().unwrap_or("?");
        if ![
            "metadata",
            "slurm",
            "benchmark",
            "hardware",
            "environment",
            "worker_config",
            "profiling",
            "internal_request_auth_key",
            "accuracy",
        ]
        .contains(&k)
        {
            cx.note(k, "unknown section; not imported");
        }
    }
    accuracy_note(&mut cx, root.get("accuracy"));
    let profiling = section("profiling")?;
    for (k, v) in &profiling {
        let k = k.as_str().unwrap_or("?");
        if !matches!(v, Value::Bool(false) | Value::Null) {
            cx.note(
                &format!("profiling.{k}"),
                format!("{} has no equivalent (profile by hand)", show(v)),
            );
        }
    }

    // A mistyped or empty group would import as a one-GPU server with no options, and pass.
    for (k, _) in &workers {
        let k = k.as_str().unwrap_or("?");
        if !["ctx", "gen"].contains(&k) {
            return Err(shape(
                &format!("worker_config.{k}"),
                "is not a worker group: `worker_config` holds `ctx` and `gen`",
            ));
        }
    }
    let ctx_servers = root
        .get("hardware")
        .and_then(|h| h.get("num_ctx_servers"))
        .and_then(Value::as_u64);
    for k in ["ctx", "gen"] {
        let empty = matches!(workers.get(k), None | Some(Value::Null));
        if empty && !(k == "ctx" && ctx_servers == Some(0)) {
            return Err(shape(
                &format!("worker_config.{k}"),
                "is missing or empty: the servers' trtllm-serve options (their parallelism \
                 among them) would be lost",
            ));
        }
    }
    let mut src = Src {
        ctx_cfg: worker(&workers, "ctx")?,
        gen_cfg: worker(&workers, "gen")?,
        metadata: section("metadata")?,
        slurm: section("slurm")?,
        bench: section("benchmark")?,
        hw: section("hardware")?,
        env: section("environment")?,
    };

    resolve_paths(&mut cx, "ctx", &mut src.ctx_cfg, opts);
    resolve_paths(&mut cx, "gen", &mut src.gen_cfg, opts);
    let model = model_section(&mut cx, &src, opts)?;
    let hw = hardware_section(&mut cx, &src);
    let (mut ctx, mut generation) = groups_section(&mut cx, &src);
    let BenchOut {
        bench,
        env,
        ctx_env,
        gen_env,
    } = benchmark_section(&mut cx, &src, opts)?;
    for (g, e) in [(&mut ctx, ctx_env), (&mut generation, gen_env)] {
        if !e.is_empty() {
            put(g, "env", Value::Mapping(e));
        }
    }
    let mut slurm = slurm_section(&mut cx, &src);

    let mut case = Mapping::new();
    put(&mut case, "name", name);
    put(&mut case, "model", Value::Mapping(model));
    put(&mut case, "engine", "trtllm");
    put(&mut case, "hardware", Value::Mapping(hw));
    put(&mut case, "ctx", Value::Mapping(ctx));
    put(&mut case, "gen", Value::Mapping(generation));
    // The router TensorRT-LLM's harness runs: its own disaggregated server
    // (`trtllm-serve disaggregated -c server_config.yaml`), so that the imported test measures
    // what the source measures. `kind: builtin` puts disagg's router in its place.
    let mut router = Mapping::new();
    put(&mut router, "kind", "engine");
    // TensorRT-LLM's harness gives the disaggregated server and every worker this key.
    match root.get("internal_request_auth_key") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if placeholder(k) => cx.note(
            "internal_request_auth_key",
            format!("placeholder `{k}` left unset; give `router.internal_request_auth_key`"),
        ),
        Some(Value::String(k)) if !k.trim().is_empty() => {
            put(&mut router, "internal_request_auth_key", k.as_str());
        }
        Some(v) => cx.note(
            "internal_request_auth_key",
            format!("{} is not a key; not imported", show(v)),
        ),
    }
    put(&mut case, "router", Value::Mapping(router));
    put(&mut case, "benchmark", Value::Mapping(bench));
    if !env.is_empty() {
        put(&mut case, "env", Value::Mapping(env));
    }
    let limit = slurm
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| crate::slurm::parse_time(t).ok());
    let test_timeout = u64_of(&src.slurm, "timeout").filter(|&t| t > 0);
    let timeouts = timeouts_within(&mut cx, limit, test_timeout);
    put(&mut case, "timeouts", Value::Mapping(timeouts));
    segment(&mut cx, &src, &case, &mut slurm, name);
    if !slurm.is_empty() {
        put(&mut case, "slurm", Value::Mapping(slurm));
    }
    // Quoted for YAML 1.1 readers too (`ENROOT_ALLOW_DEV: 'yes'`): TensorRT-LLM's Python tools
    // read such files with PyYAML, which would turn `yes` into True.
    let body = crate::engines::yaml11::to_string(&Value::Mapping(case));
    let mut out = String::from(
        "# Imported by `disagg import trtllm` from a TensorRT-LLM perf-sanity disagg config.\n",
    );
    if !cx.notes.is_empty() {
        out.push_str("# Not carried over as it was:\n");
        for n in &cx.notes {
            out.push_str(&format!("#   {n}\n"));
        }
    }
    out.push_str(&body);
    if let Err(error) = crate::parse_case(&out, Path::new(&format!("{name}.yaml"))) {
        return Err(ImportError::Invalid {
            error: Box::new(error),
            case_yaml: out,
        });
    }
    Ok(Imported {
        case_yaml: out,
        notes: cx.notes,
    })
}

/// TensorRT-LLM's perf-sanity submit asks for all of a multi-node job's nodes in one segment
/// (`--segment=<nodes>`), whatever the GPU: its CI for every multi-node disaggregated job
/// (L0_Test.groovy's getNodeArgs), its local submit.py always, and its Slurm benchmark's
/// submit.py unless `slurm.set_segment: false`, which is honoured here too. On GB200/GB300 NVL72
/// racks (Slurm's topology/block) that keeps the job in one NVLink domain. The count is the
/// plan's, known here; a case whose worker counts change later must change it too (the note says
/// so). One node is one segment anyway, and an `extra_args` that has its own `--segment` keeps
/// it.
fn segment(cx: &mut Ctx, src: &Src, case: &Mapping, slurm: &mut Mapping, name: &str) {
    if src.slurm.get("set_segment").and_then(Value::as_bool) == Some(false) {
        return;
    }
    let has_own = |slurm: &Mapping| {
        slurm
            .get("extra_args")
            .and_then(Value::as_sequence)
            .is_some_and(|a| {
                a.iter()
                    .any(|a| a.as_str().is_some_and(|a| a.starts_with("--segment")))
            })
    };
    if has_own(slurm) {
        return;
    }
    let Ok(text) = serde_yaml_ng::to_string(&Value::Mapping(case.clone())) else {
        return;
    };
    // Where the case does not load, the final check says why.
    let Ok(loaded) = crate::parse_case(&text, Path::new(&format!("{name}.yaml"))) else {
        return;
    };
    let nodes = crate::plan::span(&crate::plan::place_workers(&loaded.case));
    if nodes < 2 {
        return;
    }
    let arg = format!("--segment={nodes}");
    match slurm.get_mut("extra_args") {
        Some(Value::Sequence(args)) => args.push(Value::from(arg.as_str())),
        _ => put(
            slurm,
            "extra_args",
            Value::Sequence(vec![arg.as_str().into()]),
        ),
    }
    cx.note(
        "slurm.set_segment",
        format!(
            "`{arg}` added to slurm.extra_args: all {nodes} nodes in one segment (on an NVL72 \
             rack, one NVLink domain), as TensorRT-LLM's perf-sanity submit asks whatever the \
             GPU; segments are Slurm's topology/block (23.11+; an older Slurm refuses the \
             option): change it with the worker counts, or remove it where it is refused"
        ),
    );
}

/// TensorRT-LLM's `accuracy` section (its AccuracyConfig: lm_eval tasks its harness runs against
/// the server once the benchmark is done, when `enable_accuracy_test` is true): known, and never
/// run by disagg, which the note says, and whether anything is lost by that.
fn accuracy_note(cx: &mut Ctx, accuracy: Option<&Value>) {
    let Some(acc) = accuracy else {
        return;
    };
    let on = acc
        .get("enable_accuracy_test")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    if !on {
        cx.note(
            "accuracy",
            "TensorRT-LLM's accuracy test is off here (enable_accuracy_test is not true): \
             nothing lost, disagg runs no accuracy test",
        );
        return;
    }
    let tasks = match acc.get("tasks") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "gsm8k".into(),
    };
    cx.note(
        "accuracy",
        format!(
            "TensorRT-LLM's accuracy test (lm_eval {tasks} against the server after the \
             benchmark) is not run by disagg: run it by hand against the router"
        ),
    );
}

/// The source's sections, read once.
struct Src {
    metadata: Mapping,
    slurm: Mapping,
    bench: Mapping,
    hw: Mapping,
    env: Mapping,
    ctx_cfg: Mapping,
    gen_cfg: Mapping,
}

/// `model:` from `metadata`, `environment.model_path` and the workers' MTP and EPLB settings.
fn model_section(cx: &mut Ctx, src: &Src, opts: &Options<'_>) -> Result<Mapping, ImportError> {
    // model
    let mut model = Mapping::new();
    // The Slurm benchmark's own config.yaml (examples/disaggregated/slurm/benchmark) has no
    // `metadata`: its model is `environment.model_path`, whose last part names it.
    let model_path = str_of(&src.env, "model_path").filter(|p| !placeholder(p));
    let from_path = model_path.and_then(|p| {
        Path::new(p.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
    });
    let model_name = match (str_of(&src.metadata, "model_name"), from_path) {
        (Some(n), _) => n.to_string(),
        (None, Some(n)) => {
            cx.note(
                "metadata.model_name",
                format!(
                    "absent (as in the Slurm benchmark's config.yaml): `model.name` is `{n}`, the \
                     last part of environment.model_path; set it to the name your servers serve"
                ),
            );
            n
        }
        (None, None) => {
            return Err(shape(
                "metadata.model_name",
                "is missing, and environment.model_path is absent or a placeholder, so there is \
                 no model name to take: add `metadata: {model_name: NAME}`, or set \
                 environment.model_path to the model's folder",
            ));
        }
    };
    put(&mut model, "name", model_name.as_str());
    if let Some(p) = str_of(&src.metadata, "precision") {
        put(&mut model, "precision", p);
    }
    match str_of(&src.env, "model_path").filter(|p| !placeholder(p)) {
        Some(p) => put(&mut model, "path", p),
        None => {
            if let Some(d) = str_of(&src.metadata, "model_dir_name") {
                cx.note(
                    "environment.model_path",
                    format!("a placeholder; set `model.path` to where {d} is on your cluster"),
                );
            }
        }
    }
    if let Some(mtp) = mtp_of(&src.gen_cfg).or_else(|| mtp_of(&src.ctx_cfg)) {
        put(&mut model, "mtp", mtp);
    }
    if let Some(slots) = eplb_of(&src.gen_cfg, opts) {
        put(&mut model, "eplb", slots);
    }

    Ok(model)
}

/// `hardware:` from `hardware`, `metadata.supported_gpus` and the cache transceiver backend.
fn hardware_section(cx: &mut Ctx, src: &Src) -> Mapping {
    // hardware
    let mut hw = Mapping::new();
    let gpus_per_node = u64_of(&src.hw, "gpus_per_node").unwrap_or(8);
    put(&mut hw, "gpus_per_node", gpus_per_node);
    if let Some(Value::Sequence(gpus)) = src.metadata.get("supported_gpus") {
        if let Some(g) = gpus.first().and_then(Value::as_str) {
            put(&mut hw, "gpu", g.to_ascii_lowercase());
        }
        if gpus.len() > 1 {
            cx.note(
                "metadata.supported_gpus",
                "only the first GPU type names the case",
            );
        }
    }
    let given = backend_of(&src.gen_cfg).or_else(|| backend_of(&src.ctx_cfg));
    let backend = match given.as_deref() {
        Some("DEFAULT") => Some(default_backend(cx, src)),
        _ => given,
    };
    match backend.as_deref() {
        Some("UCX") | None => {}
        Some("NIXL") => put(&mut hw, "cache_transceiver", "NIXL"),
        Some(other) => cx.note(
            "worker_config.*.cache_transceiver_config.backend",
            format!(
                "`{other}` kept in the engine config; `hardware.cache_transceiver` (UCX or \
                 NIXL) is left at UCX, which is what a derived config name would say"
            ),
        ),
    }
    for (k, v) in &src.hw {
        let k = k.as_str().unwrap_or("?");
        if !["gpus_per_node", "num_ctx_servers", "num_gen_servers"].contains(&k) {
            let why = match k {
                // TensorRT-LLM packs servers of several kinds onto shared nodes; a case gives
                // each server whole nodes of its own once it spans nodes.
                "compact_packing" if v.as_bool() == Some(true) => {
                    " (servers are placed as `disagg plan` shows: the job may take more nodes \
                     than TensorRT-LLM's compact packing would)"
                }
                _ => "",
            };
            cx.note(
                &format!("hardware.{k}"),
                format!("{} not imported{why}", show(v)),
            );
        }
    }

    hw
}

/// The legacy variables by which TensorRT-LLM picks the backend of `backend: DEFAULT`, the first
/// set to 1 winning (its `kv_cache_transceiver.py`).
const BACKEND_VARS: [(&str, &str); 4] = [
    ("TRTLLM_USE_NIXL_KVCACHE", "NIXL"),
    ("TRTLLM_USE_UCX_KVCACHE", "UCX"),
    ("TRTLLM_USE_MOONCAKE_KVCACHE", "MOONCAKE"),
    ("TRTLLM_USE_MPI_KVCACHE", "MPI"),
];

/// The backend TensorRT-LLM runs for `cache_transceiver_config.backend: DEFAULT`, with a note
/// saying which and why: the one a legacy variable in the workers' environment picks, else its
/// release's default: NIXL from 1.2 on (PR 7926, "Set nixl to default cache transceiver
/// backend"; hybrid Mamba models aside), UCX before. The release is read from the container
/// image's tag or the wheel's name; without one, the current default, NIXL. The engine options
/// keep `DEFAULT`, for the engine to resolve as upstream's run does.
fn default_backend(cx: &mut Ctx, src: &Src) -> String {
    let key = "worker_config.*.cache_transceiver_config.backend";
    let mut env = String::new();
    for k in ["worker_env_var", "ctx_worker_env_var", "gen_worker_env_var"] {
        if let Some(v) = str_of(&src.env, k) {
            env.push(' ');
            env.push_str(&v);
        }
    }
    let set = |var: &str| {
        env.split_whitespace()
            .any(|t| t.split_once('=') == Some((var, "1")))
    };
    if let Some((var, b)) = BACKEND_VARS.iter().find(|(var, _)| set(var)) {
        cx.note(
            key,
            format!(
                "`DEFAULT` is {b} here: TensorRT-LLM takes it from {var}=1 in the workers' \
                 environment; hardware.cache_transceiver says {b} (the engine options keep \
                 DEFAULT)"
            ),
        );
        return b.to_string();
    }
    match trtllm_release(src) {
        Some((version, from, (major, minor))) => {
            let b = if (major, minor) >= (1, 2) {
                "NIXL"
            } else {
                "UCX"
            };
            cx.note(
                key,
                format!(
                    "`DEFAULT` is {b} here: TensorRT-LLM {version} ({from}) defaults to {b} \
                     (NIXL from 1.2 on, UCX before); hardware.cache_transceiver says {b} (the \
                     engine options keep DEFAULT)"
                ),
            );
            b.to_string()
        }
        None => {
            cx.note(
                key,
                "`DEFAULT` taken as NIXL, current TensorRT-LLM's default (from 1.2 on; its \
                 releases before default to UCX): the config names no release (container image \
                 or wheel); hardware.cache_transceiver says NIXL (the engine options keep \
                 DEFAULT, which the engine resolves by its release)",
            );
            "NIXL".to_string()
        }
    }
}

/// The TensorRT-LLM release a config runs, from its container image's tag
/// (`.../tensorrt-llm/release:1.2.0rc4`) or its wheel's name (`tensorrt_llm-1.1.0-...whl`): the
/// version as written, where it was read, and its major and minor.
fn trtllm_release(src: &Src) -> Option<(String, &'static str, (u32, u32))> {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let v = v.strip_prefix('v').unwrap_or(v);
        let mut parts = v.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((major, minor.parse().ok()?))
    };
    let image = str_of(&src.env, "container_image").filter(|i| !placeholder(i));
    if let Some(image) = image.filter(|i| i.contains("tensorrt-llm") || i.contains("tensorrt_llm"))
    {
        let last = image.rsplit('/').next().unwrap_or(&image);
        if let Some((_, tag)) = last.split_once(':') {
            if let Some(v) = parse(tag) {
                return Some((tag.to_string(), "the container image's tag", v));
            }
        }
    }
    let wheel = str_of(&src.env, "trtllm_wheel_path").filter(|w| !placeholder(w))?;
    let name = Path::new(&wheel).file_name()?.to_str()?.to_string();
    let version = name
        .strip_prefix("tensorrt_llm-")?
        .split('-')
        .next()?
        .to_string();
    let v = parse(&version)?;
    Some((version, "the wheel's name", v))
}

/// `ctx:` and `gen:` from the server counts and `worker_config`.
fn groups_section(cx: &mut Ctx, src: &Src) -> (Mapping, Mapping) {
    // worker groups
    let count = |k: &str| u64_of(&src.hw, k).unwrap_or(1);
    let ctx_count = count("num_ctx_servers");
    if ctx_count == 0 {
        cx.note(
            "hardware.num_ctx_servers",
            "0 context servers cannot be run: a case has at least one; imported as 1",
        );
    }
    let ctx = group(cx, "ctx", ctx_count.max(1), src.ctx_cfg.clone());
    let generation = group(
        cx,
        "gen",
        count("num_gen_servers").max(1),
        src.gen_cfg.clone(),
    );

    (ctx, generation)
}

/// How TensorRT-LLM runs the config: end to end, or measuring the generation servers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GenMode {
    E2e,
    /// `gen_only`: context servers still run and transfer KV; GEN workers queue the whole batch.
    GenOnly,
    /// `gen_only_no_context`: no context phase at all; GEN workers make up the KV.
    NoContext,
}

/// What [`benchmark_section`] makes: `benchmark:`, `env:` and the groups' own `env:`.
struct BenchOut {
    bench: Mapping,
    env: Mapping,
    ctx_env: Mapping,
    gen_env: Mapping,
}

/// `benchmark:`, `env:` and the groups' `env:` (the benchmark mode adds variables).
fn benchmark_section(cx: &mut Ctx, src: &Src, opts: &Options<'_>) -> Result<BenchOut, ImportError> {
    // benchmark
    let mut bench = Mapping::new();
    let need = |k: &str| {
        u64_of(&src.bench, k).ok_or_else(|| match src.bench.get(k) {
            None | Some(Value::Null) => shape(&format!("benchmark.{k}"), "is missing"),
            Some(v) => shape(
                &format!("benchmark.{k}"),
                &format!("is {}, not a whole number of tokens", show(v)),
            ),
        })
    };
    let (isl, osl) = (need("input_length")?, need("output_length")?);
    let ratio = src
        .bench
        .get("benchmark_ratio")
        .map(|v| v.as_f64().ok_or(v))
        .transpose();
    let sa_client = src
        .bench
        .get("use_nv_sa_benchmark")
        .and_then(Value::as_bool)
        == Some(true);
    match ratio {
        Ok(None) | Ok(Some(0.0)) => {
            put(&mut bench, "isl", isl);
            put(&mut bench, "osl", osl);
        }
        // TensorRT-LLM's own client: lengths uniform in [L(1−r), L(1+r)], our meaning.
        Ok(Some(r)) if !sa_client && r > 0.0 && r < 1.0 => {
            put(&mut bench, "isl", isl);
            put(&mut bench, "osl", osl);
            put(&mut bench, "range_ratio", r);
        }
        // The SA client (bench_serving) draws from [r·L, L]: the same range is
        // L' = L(1+r)/2 with ratio r' = (1−r)/(1+r).
        Ok(Some(r)) if sa_client && r > 0.0 && r <= 1.0 => {
            let convert = |l: u64| (l as f64 * (1.0 + r) / 2.0).round() as u64;
            let r2 = (1.0 - r) / (1.0 + r);
            put(&mut bench, "isl", convert(isl));
            put(&mut bench, "osl", convert(osl));
            if r2 > 0.0 {
                put(&mut bench, "range_ratio", r2);
            }
            cx.note(
                "benchmark.benchmark_ratio",
                format!(
                    "{r} with use_nv_sa_benchmark: the SA client draws lengths from [{r}·L, L]; \
                     imported as the same range in our L·(1±r) form: isl {isl}→{}, osl \
                     {osl}→{}, range_ratio {r2}",
                    convert(isl),
                    convert(osl)
                ),
            );
        }
        Ok(Some(_)) | Err(_) => {
            put(&mut bench, "isl", isl);
            put(&mut bench, "osl", osl);
            cx.note(
                "benchmark.benchmark_ratio",
                format!(
                    "{} is not a ratio in (0, 1); lengths are exact",
                    src.bench
                        .get("benchmark_ratio")
                        .map(show)
                        .unwrap_or_default()
                ),
            );
        }
    }
    let conc: Vec<u64> = match src.bench.get("concurrency_list") {
        Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_u64).collect(),
        Some(Value::Number(n)) => n.as_u64().into_iter().collect(),
        Some(Value::String(s)) => s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(|t| t.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| shape("benchmark.concurrency_list", "is not a list of numbers"))?,
        _ => return Err(shape("benchmark.concurrency_list", "is missing")),
    };
    // TensorRT-LLM reads this list two ways: its perf-sanity harness as the deployment's
    // concurrency, its Slurm benchmark scripts (examples/disaggregated/slurm, run_benchmark.sh)
    // as each generation server's, multiplied by num_gen_servers. The user says which.
    let gen_servers = u64_of(&src.hw, "num_gen_servers").unwrap_or(1).max(1);
    let conc_given = conc.clone();
    let conc: Vec<u64> = if opts.per_gen_server_concurrency {
        if gen_servers > 1 {
            cx.note(
                "benchmark.concurrency_list",
                format!(
                    "{conc:?} per generation server (--per-gen-server-concurrency), times \
                     num_gen_servers {gen_servers}, as TensorRT-LLM's Slurm scripts run it"
                ),
            );
        }
        conc.into_iter().map(|c| c * gen_servers).collect()
    } else {
        if gen_servers > 1 {
            cx.note(
                "benchmark.concurrency_list",
                format!(
                    "{conc:?} taken as the whole deployment's concurrency, as TensorRT-LLM's \
                     perf-sanity harness runs it; its Slurm scripts (run_benchmark.sh) multiply \
                     it by num_gen_servers ({gen_servers}): import with \
                     --per-gen-server-concurrency for that"
                ),
            );
        }
        conc
    };
    let mode = src.bench.get("mode").and_then(Value::as_str).unwrap_or("");
    let gen_mode = if mode.contains("gen_only_no_context") {
        GenMode::NoContext
    } else if opts.gen_only || mode.starts_with("gen_only") {
        GenMode::GenOnly
    } else {
        GenMode::E2e
    };
    if gen_mode != GenMode::E2e {
        // TensorRT-LLM's gen_only test: the first concurrency only, one round, and a single
        // warm-up request (its test input) at concurrency 1 only.
        let first = *conc
            .first()
            .ok_or_else(|| shape("benchmark.concurrency_list", "is empty"))?;
        put(
            &mut bench,
            "concurrency",
            Value::Sequence(vec![first.into()]),
        );
        put(&mut bench, "rounds", 1u64);
        put(&mut bench, "warmup", u64::from(first == 1));
        if conc.len() > 1 {
            cx.note(
                "benchmark.concurrency_list",
                format!("gen-only runs its first concurrency only ({first}); {conc:?} given"),
            );
        }
    } else {
        put(
            &mut bench,
            "concurrency",
            Value::Sequence(conc.into_iter().map(Value::from).collect()),
        );
        // TensorRT-LLM runs one round (prompts = concurrency) when multi_round is absent.
        put(
            &mut bench,
            "rounds",
            u64_of(&src.bench, "multi_round").unwrap_or(1),
        );
    }
    if let Some(s) = src.bench.get("streaming").and_then(Value::as_bool) {
        put(&mut bench, "streaming", s);
    }
    // TensorRT-LLM's perf-sanity client runs benchmark_serving with `--no-test-input`: no
    // request before its first point (the gen-only warm-up lane aside, `warmup` above).
    put(&mut bench, "canary", false);
    cx.note(
        "benchmark",
        "`canary: false`: no canary request before the sweep, as TensorRT-LLM's perf-sanity \
         client sends no test input, so the first point meets the servers cold as its does; \
         set `canary: true` to have a dead or misconfigured server fail the run in seconds",
    );
    let env_worker = env_string(cx, &src.env, "worker_env_var");
    // TensorRT-LLM appends these to `worker_env_var` for its CTX / GEN workers only.
    let env_ctx = env_string(cx, &src.env, "ctx_worker_env_var");
    let mut env_gen = env_string(cx, &src.env, "gen_worker_env_var");
    let mut env_server = env_string(cx, &src.env, "server_env_var");
    // The client's: `benchmark_env_var` (its CI launcher), `client_env_var` (its perf-sanity
    // test) and `benchmark.env_var` (a mapping, its Slurm benchmark scripts).
    let mut env_bench = env_string(cx, &src.env, "benchmark_env_var");
    env_bench.extend(env_string(cx, &src.env, "client_env_var"));
    match src.bench.get("env_var") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some(k), Value::String(_) | Value::Number(_) | Value::Bool(_))
                        if env_name(k) =>
                    {
                        let v = str_of(m, k).unwrap_or_else(|| show(v).trim_matches('`').into());
                        env_bench.insert(Value::from(k), Value::from(v));
                    }
                    _ => cx.note(
                        "benchmark.env_var",
                        format!("{}: {} is not NAME: VALUE; left out", show(k), show(v)),
                    ),
                }
            }
        }
        Some(v) => cx.note(
            "benchmark.env_var",
            format!("{} is not a mapping of NAME: VALUE; left out", show(v)),
        ),
    }
    // How TensorRT-LLM's launchers set up a generation-only run (they read the mode from the
    // test name, `gen_only`, and `gen_only_no_context` from benchmark.mode).
    match gen_mode {
        GenMode::E2e => {}
        GenMode::GenOnly => {
            let first = conc_given.first().copied().unwrap_or(1);
            let (queue, capacity) = fill_target(&src.gen_cfg, first);
            // GEN only, as TensorRT-LLM's current perf-sanity launchers export both (its
            // CI's and local submit.py, GEN_WORKER_ENV_VARS): their comment says the first on
            // CTX workers has hung gen_only runs with KV blocks never released. (Older
            // launchers, and the Slurm benchmark's start_worker.sh, set both on every worker.)
            // The GEN worker waits for this many queued requests, so the batch starts at once.
            for (k, v) in [
                ("TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP", "1".to_string()),
                (crate::plan::FILL_GATE_VAR, queue.to_string()),
            ] {
                env_gen.insert(Value::from(k), Value::from(v));
            }
            let why = match capacity {
                Some(c) if c < first => format!(
                    " (the concurrency {first} capped at what one GEN server holds at once, \
                     {c}: its max_batch_size{}, as TensorRT-LLM's launcher caps it; a fill \
                     target above that is never reached)",
                    if attention_dp(&src.gen_cfg) {
                        " × tensor_parallel_size, with attention DP"
                    } else {
                        ""
                    }
                ),
                _ => String::new(),
            };
            cx.note(
                "benchmark.mode",
                format!(
                    "gen-only: GEN workers get TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 and \
                     TLLM_BENCHMARK_REQ_QUEUES_SIZE={queue}{why}, as TensorRT-LLM's launcher \
                     sets them; the CTX workers get neither"
                ),
            );
        }
        GenMode::NoContext => {
            // The GEN workers and the disaggregated server skip the context phase and its KV
            // transfer; TensorRT-LLM starts no CTX workers at all.
            for m in [&mut env_gen, &mut env_server] {
                m.insert(
                    Value::from("TRTLLM_DISAGG_BENCHMARK_GEN_ONLY"),
                    Value::from("1"),
                );
            }
            cx.note(
                "benchmark.mode",
                "`gen_only_no_context`: GEN workers and the router get \
                 TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 (no KV transfer); TensorRT-LLM starts no \
                 context servers, but a case has at least one, so the ctx group still runs \
                 (idle); the router's variable only means something to `router.kind: engine`",
            );
        }
    }
    for (k, v) in &src.bench {
        let key = format!("benchmark.{}", k.as_str().unwrap_or("?"));
        match k.as_str().unwrap_or("") {
            "input_length" | "output_length" | "concurrency_list" | "multi_round" | "streaming"
            | "benchmark_ratio" => {}
            "env_var" => {}
            "mode" => match v.as_str().unwrap_or("") {
                "e2e" | "gen_only" | "gen_only_no_context" => {}
                other => cx.note(
                    &key,
                    format!("mode `{other}` is not known; imported as e2e"),
                ),
            },
            "use_nv_sa_benchmark" if v.as_bool() == Some(false) => {}
            "use_nv_sa_benchmark" if v.as_bool() == Some(true) => cx.note(
                &key,
                "the SA client (bench_serving) is replaced by disagg bench, with the same \
                 length range (see benchmark_ratio)",
            ),
            "dataset_file" => match dataset_path(v, opts) {
                DatasetFile::None => {}
                DatasetFile::Placeholder => cx.note(
                    &key,
                    format!(
                        "{} is the template's placeholder, not a file; random prompts of \
                         isl/osl tokens instead (set benchmark.dataset for a dataset)",
                        show(v)
                    ),
                ),
                DatasetFile::Found(path) => put(&mut bench, "dataset", path),
                DatasetFile::Missing(tried) => cx.note(
                    &key,
                    format!(
                        "{} not found ({tried}); random prompts of isl/osl tokens instead",
                        show(v)
                    ),
                ),
            },
            "script_file" => {}
            _ => cx.note(&key, format!("{} has no equivalent", show(v))),
        }
    }

    // env
    let mut env = Mapping::new();
    for (k, m) in [
        ("worker", env_worker),
        ("server", env_server),
        ("benchmark", env_bench),
    ] {
        if !m.is_empty() {
            put(&mut env, k, Value::Mapping(m));
        }
    }

    Ok(BenchOut {
        bench,
        env,
        ctx_env: env_ctx,
        gen_env: env_gen,
    })
}

/// What `dataset_file` resolves to.
enum DatasetFile {
    /// Unset or empty.
    None,
    /// The template's `<dataset_file>`, never filled in.
    Placeholder,
    Found(String),
    /// Not found; where it was looked for.
    Missing(String),
}

/// TensorRT-LLM's rule: `$LLM_MODELS_ROOT/<dataset_file>` when that exists, else the path as
/// given when that exists, else none (random prompts).
fn dataset_path(v: &Value, opts: &Options<'_>) -> DatasetFile {
    let Some(file) = v.as_str().filter(|f| !f.trim().is_empty()) else {
        return DatasetFile::None;
    };
    if placeholder(file) {
        return DatasetFile::Placeholder;
    }
    let mut tried = Vec::new();
    if let Some(root) = &opts.models_root {
        let under = root.join(file);
        if (opts.exists)(&under) {
            return DatasetFile::Found(under.display().to_string());
        }
        tried.push(under.display().to_string());
    } else {
        tried.push("$LLM_MODELS_ROOT is not set".to_string());
    }
    let given = Path::new(file);
    if (opts.exists)(given) {
        let absolute = std::path::absolute(given).unwrap_or_else(|_| given.to_path_buf());
        return DatasetFile::Found(absolute.display().to_string());
    }
    tried.push(file.to_string());
    DatasetFile::Missing(tried.join(", "))
}

/// `slurm:` from `slurm` and the container settings of `environment`, and notes on the rest of
/// `environment` and `metadata`.
fn slurm_section(cx: &mut Ctx, src: &Src) -> Mapping {
    // slurm
    let mut slurm = Mapping::new();
    for (from, to) in [
        ("partition", "partition"),
        ("account", "account"),
        ("job_time", "time"),
        ("job_name", "job_name"),
    ] {
        match str_of(&src.slurm, from) {
            Some(v) if placeholder(&v) => cx.note(
                &format!("slurm.{from}"),
                format!("placeholder `{v}` left unset; give `slurm.{to}` for your cluster"),
            ),
            Some(v) => put(&mut slurm, to, v),
            None => {}
        }
    }
    if let Some(x) = str_of(&src.slurm, "extra_args") {
        let args: Vec<Value> = x.split_whitespace().map(Value::from).collect();
        if !args.is_empty() {
            put(&mut slurm, "extra_args", Value::Sequence(args));
        }
    }
    // TensorRT-LLM's disaggregated Slurm script starts every worker step with `--mpi=pmix`
    // (its multi-rank servers need PMIx); the router and benchmark steps never get MPI here.
    put(&mut slurm, "mpi", "pmix");
    for (k, v) in &src.slurm {
        let k = k.as_str().unwrap_or("?");
        match k {
            "partition" | "account" | "job_time" | "job_name" | "extra_args" | "script_file"
            | "set_segment" => {}
            "timeout" if u64_of(&src.slurm, "timeout").is_some_and(|t| t > 0) => {}
            "numa_bind" if v.as_bool() == Some(true) => cx.note("slurm.numa_bind", "NUMA binding is not done by disagg; wrap the engine with `numactl` through `engine: command` if needed"),
            "numa_bind" => {}
            _ => cx.note(&format!("slurm.{k}"), format!("{} not imported", show(v))),
        }
    }
    let image = str_of(&src.env, "container_image").filter(|v| !placeholder(v));
    if let Some(image) = image {
        let mut c = Mapping::new();
        match crate::plan::enroot_image(&image) {
            Some(fixed) => {
                cx.note(
                    "environment.container_image",
                    format!(
                        "`{image}` written `{fixed}`, as enroot (under pyxis) reads an image: \
                         `REGISTRY#IMAGE:TAG` (as TensorRT-LLM's perf scripts rewrite it)"
                    ),
                );
                put(&mut c, "image", fixed.as_str());
            }
            None => put(&mut c, "image", image),
        }
        if let Some(m) = str_of(&src.env, "container_mount").filter(|v| !placeholder(v)) {
            let mounts: Vec<Value> = m
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect();
            put(&mut c, "mounts", Value::Sequence(mounts));
        }
        put(&mut slurm, "container", Value::Mapping(c));
    } else if str_of(&src.env, "container_image").is_some() {
        cx.note(
            "environment.container_image",
            "a placeholder; set `slurm.container.image` to run in a container",
        );
    }
    for (k, v) in &src.env {
        let k = k.as_str().unwrap_or("?");
        match k {
            "worker_env_var" | "server_env_var" | "benchmark_env_var" | "client_env_var"
            | "ctx_worker_env_var" | "gen_worker_env_var" | "model_path" | "container_image"
            | "container_mount" => {}
            "work_dir" => cx.note(
                "environment.work_dir",
                "use `disagg run --workspace` (or $WORKSPACE) instead",
            ),
            "build_wheel" | "trtllm_repo" | "trtllm_wheel_path"
                if matches!(v, Value::Bool(false) | Value::Null) || v.as_str() == Some("") => {}
            "build_wheel" | "trtllm_repo" | "trtllm_wheel_path" => cx.note(
                &format!("environment.{k}"),
                format!("{} not imported (install steps go in `setup:`)", show(v)),
            ),
            "server_health_timeout" => cx.note(
                "environment.server_health_timeout",
                format!(
                    "{} not imported: `timeouts.worker_startup` bounds the wait for the servers",
                    show(v)
                ),
            ),
            _ => cx.note(
                &format!("environment.{k}"),
                format!("{} not imported", show(v)),
            ),
        }
    }
    for (k, _) in &src.metadata {
        let k = k.as_str().unwrap_or("?");
        if ![
            "model_name",
            "precision",
            "model_dir_name",
            "supported_gpus",
            "script_file",
            "benchmark_type",
        ]
        .contains(&k)
        {
            cx.note(&format!("metadata.{k}"), "not imported");
        }
    }

    slurm
}

/// How long TensorRT-LLM's perf-sanity test waits for its disaggregated server to become ready
/// (every worker loaded, tuned and warmed up; its `DISAGG_SERVER_READY_TIMEOUT`, 3600 s), in
/// minutes. The largest models need over half an hour of it.
const TRTLLM_READY_BOUND_MIN: u64 = 60;

/// Deadlines that nest inside the Slurm time limit (2h when unknown) and within the test's own
/// `slurm.timeout` (perf-sanity's whole-test bound): the job ends a little before Slurm would
/// end it; model loading gets TensorRT-LLM's own readiness bound, unless that is more than two
/// thirds of the job (the benchmark needs the rest, as `worker_startup + benchmark ≤ job` says),
/// which a note reports.
fn timeouts_within(
    cx: &mut Ctx,
    limit: Option<std::time::Duration>,
    test_timeout: Option<u64>,
) -> Mapping {
    let limit = limit.map_or(120, |d| d.as_secs() / 60).max(4);
    let mut job = limit - (limit / 20).max(2);
    if let Some(t) = test_timeout.map(|s| (s / 60).max(2)) {
        job = job.min(t);
    }
    let startup = TRTLLM_READY_BOUND_MIN.min(job - job / 3).max(1);
    if startup < TRTLLM_READY_BOUND_MIN {
        cx.note(
            "slurm.job_time",
            format!(
                "timeouts.worker_startup is {startup}m, two thirds of the job's {job}m: TensorRT-LLM \
                 waits up to {TRTLLM_READY_BOUND_MIN}m for its workers to be ready; give a longer \
                 job_time (or slurm.time and timeouts) if the model loads slower"
            ),
        );
    }
    let benchmark = job - startup;
    let request = (benchmark / 2).clamp(1, 30);
    let mut t = Mapping::new();
    put(&mut t, "worker_startup", format!("{startup}m"));
    put(&mut t, "request", format!("{request}m"));
    put(&mut t, "benchmark", format!("{benchmark}m"));
    put(&mut t, "job", format!("{job}m"));
    t
}

fn shape(key: &str, problem: &str) -> ImportError {
    ImportError::Shape {
        key: key.into(),
        problem: problem.into(),
    }
}

fn worker(workers: &Mapping, k: &str) -> Result<Mapping, ImportError> {
    match workers.get(k) {
        Some(Value::Mapping(m)) => Ok(m.clone()),
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(_) => Err(shape(&format!("worker_config.{k}"), "is not a mapping")),
    }
}

/// One worker group: its parallelism taken out of the engine config, the rest kept as the
/// extra-options YAML.
fn group(cx: &mut Ctx, which: &str, count: u64, mut cfg: Mapping) -> Mapping {
    let mut parallel = Mapping::new();
    for (from, to) in PARALLEL_KEYS {
        if let Some(v) = cfg.remove(from) {
            let keep = match (&v, to) {
                (Value::Bool(_), "attention_dp") => true,
                (Value::Number(n), _) => n.as_u64().is_some_and(|n| n >= 1),
                _ => false,
            };
            if keep {
                put(&mut parallel, to, v);
            } else {
                cx.note(
                    &format!("worker_config.{which}.{from}"),
                    format!("{} is not a valid value; left out", show(&v)),
                );
            }
        }
    }
    let mut g = Mapping::new();
    put(&mut g, "count", count);
    put(&mut g, "parallel", Value::Mapping(parallel));
    put(&mut g, "engine_args", Value::Mapping(cfg));
    g
}

/// `"A=1 B=two"` → `{A: "1", B: two}`; tokens without `=` are noted.
fn env_string(cx: &mut Ctx, env: &Mapping, key: &str) -> Mapping {
    let mut out = Mapping::new();
    let Some(s) = str_of(env, key) else {
        return out;
    };
    for tok in s.split_whitespace() {
        match tok.split_once('=') {
            Some((k, v)) if env_name(k) => {
                out.insert(
                    Value::from(k),
                    Value::from(v.trim_matches(|c| c == '"' || c == '\'')),
                );
            }
            _ => cx.note(
                &format!("environment.{key}"),
                format!("`{tok}` is not NAME=VALUE; left out"),
            ),
        }
    }
    out
}

/// A name a shell would take for a variable.
fn env_name(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The MTP depth: `max_draft_len`, else `num_nextn_predict_layers`, the name TensorRT-LLM's MTP
/// config had before (configs written then still give only it; its perf-sanity harness falls
/// back to it the same way).
fn mtp_of(cfg: &Mapping) -> Option<u64> {
    let s = cfg.get("speculative_config")?.as_mapping()?;
    if s.get("decoding_type")?.as_str()? != "MTP" {
        return None;
    }
    u64_of(s, "max_draft_len").or_else(|| u64_of(s, "num_nextn_predict_layers"))
}

/// Whether a worker config turns attention DP on.
fn attention_dp(cfg: &Mapping) -> bool {
    match cfg.get("enable_attention_dp") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// TensorRT-LLM's gen-only fill target (`get_benchmark_request_queue_size` in its perf-sanity
/// submit scripts): the concurrency, capped at what one GEN executor holds at once, its
/// `max_batch_size`, times its `tensor_parallel_size` under attention DP (each rank batches
/// its own); without `max_batch_size`, the concurrency. Also that capacity, when known.
fn fill_target(gen_cfg: &Mapping, concurrency: u64) -> (u64, Option<u64>) {
    let Some(batch) = u64_of(gen_cfg, "max_batch_size") else {
        return (concurrency, None);
    };
    let tp = u64_of(gen_cfg, "tensor_parallel_size").unwrap_or(1);
    let capacity = if attention_dp(gen_cfg) {
        batch.saturating_mul(tp)
    } else {
        batch
    };
    (concurrency.min(capacity), Some(capacity))
}

/// The generation servers' EPLB slots: inline, or in the `load_balancer` file (once resolved).
fn eplb_of(cfg: &Mapping, opts: &Options<'_>) -> Option<u64> {
    let lb = cfg.get("moe_config")?.as_mapping()?.get("load_balancer")?;
    let file;
    let lb = match lb {
        Value::String(p) => {
            file = serde_yaml_ng::from_str::<Value>(&(opts.read)(Path::new(p))?).ok()?;
            &file
        }
        other => other,
    };
    lb.as_mapping()?.get("num_slots")?.as_u64()
}

fn backend_of(cfg: &Mapping) -> Option<String> {
    Some(
        cfg.get("cache_transceiver_config")?
            .as_mapping()?
            .get("backend")?
            .as_str()?
            .to_ascii_uppercase(),
    )
}

/// Paths in a worker config that TensorRT-LLM resolves itself before it writes the engine's
/// options: `extra_llm_api_config_path` (a file merged in, the config's own keys winning),
/// `speculative_config.speculative_model` (under `$LLM_MODELS_ROOT`) and a
/// `moe_config.load_balancer` file (under its repo root). What is found is resolved here; what
/// is not is noted, with what to do.
fn resolve_paths(cx: &mut Ctx, which: &str, cfg: &mut Mapping, opts: &Options<'_>) {
    let key = |k: &str| format!("worker_config.{which}.{k}");
    // A path TensorRT-LLM takes relative to its repo root, which the import cannot know: as
    // given (absolute, or relative to where the import runs, e.g. a TensorRT-LLM checkout).
    let found = |f: &str| {
        let p = Path::new(f);
        (opts.exists)(p).then(|| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
    };
    match cfg.remove("extra_llm_api_config_path") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f.trim().is_empty() => {}
        Some(Value::String(f)) => {
            let k = key("extra_llm_api_config_path");
            let merged = found(&f).map(|p| {
                let text = (opts.read)(&p).unwrap_or_default();
                (p, serde_yaml_ng::from_str::<Value>(&text))
            });
            match merged {
                Some((p, Ok(Value::Mapping(extra)))) => {
                    for (k, v) in extra {
                        if !cfg.contains_key(&k) {
                            cfg.insert(k, v);
                        }
                    }
                    cx.note(
                        &k,
                        format!(
                            "`{}` merged into the engine options (the config's own keys win), as \
                             TensorRT-LLM does",
                            p.display()
                        ),
                    );
                }
                Some((p, _)) => cx.note(
                    &k,
                    format!(
                        "`{}` is not a YAML mapping of engine options; not merged: its options \
                         are missing from `{which}.engine_args`",
                        p.display()
                    ),
                ),
                None => cx.note(
                    &k,
                    format!(
                        "`{f}` not found: TensorRT-LLM reads it relative to its repo root; import \
                         from a TensorRT-LLM checkout, or copy that file's options into \
                         `{which}.engine_args` (they are missing)"
                    ),
                ),
            }
        }
        Some(v) => cx.note(
            &key("extra_llm_api_config_path"),
            format!("{} is not a path; left out", show(&v)),
        ),
    }
    if let Some(Value::Mapping(spec)) = cfg.get_mut("speculative_config") {
        if let Some(Value::String(m)) = spec.get("speculative_model") {
            if !m.trim().is_empty() && Path::new(m).is_relative() {
                match &opts.models_root {
                    Some(root) => {
                        let p = root.join(m).display().to_string();
                        spec.insert("speculative_model".into(), p.into());
                    }
                    None => cx.note(
                        &key("speculative_config.speculative_model"),
                        format!(
                            "`{m}` is under $LLM_MODELS_ROOT for TensorRT-LLM, which is not set: \
                             set it and import again, or give `{which}.engine_args.\
                             speculative_config.speculative_model` as an absolute path"
                        ),
                    ),
                }
            }
        }
    }
    if let Some(Value::Mapping(moe)) = cfg.get_mut("moe_config") {
        if let Some(Value::String(lb)) = moe.get("load_balancer") {
            if !lb.trim().is_empty() && Path::new(lb).is_relative() {
                match found(lb) {
                    Some(p) => {
                        moe.insert("load_balancer".into(), p.display().to_string().into());
                    }
                    None => cx.note(
                        &key("moe_config.load_balancer"),
                        format!(
                            "`{lb}` is relative to TensorRT-LLM's repo root, which the import \
                             cannot know: import from a TensorRT-LLM checkout, or give \
                             `{which}.engine_args.moe_config.load_balancer` as an absolute path \
                             (trtllm-serve would read it relative to its working directory)"
                        ),
                    ),
                }
            }
        }
    }
}
