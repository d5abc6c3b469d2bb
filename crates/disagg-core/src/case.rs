//! The case file schema, version 1.
//!
//! Every struct denies unknown keys, so a typo is an error rather than a silently ignored
//! setting. Defaults are those of the issue's example case; `examples/quickstart.yaml` spells
//! them all out.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::slurm::{Container, SlurmSpec};

/// A whole case, generic over the engine-specific `engine_args` of the worker groups so the
/// same schema is first read with untyped args (to learn the engine) and then with typed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "EA: Deserialize<'de> + Default")
)]
pub struct RawCase<EA> {
    /// The config name; derived from the case when absent (PROTOCOLS.md §6).
    #[serde(default)]
    pub name: Option<String>,
    pub model: Model,
    #[serde(default)]
    pub engine: Engine,
    #[serde(default)]
    pub hardware: Hardware,
    pub ctx: WorkerGroup<EA>,
    #[serde(rename = "gen")]
    pub generation: WorkerGroup<EA>,
    #[serde(default)]
    pub router: RouterSpec,
    pub benchmark: Benchmark,
    #[serde(default)]
    pub env: EnvSpec,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub perf: Perf,
    /// Command run once before the workers; its output goes to `install.log`.
    #[serde(default)]
    pub setup: Option<Setup>,
    /// How the case runs under `--launcher slurm`; ignored locally.
    #[serde(default)]
    pub slurm: SlurmSpec,
}

/// The validated case, its engine args typed by its engine.
pub type Case = RawCase<crate::engines::EngineArgs>;

impl<EA> RawCase<EA> {
    /// The same case with each worker group's `engine_args` converted by `f`.
    pub fn map_args<T>(self, f: impl Fn(EA) -> T) -> RawCase<T> {
        let group = |g: WorkerGroup<EA>| WorkerGroup {
            count: g.count,
            parallel: g.parallel,
            engine_args: f(g.engine_args),
            env: g.env,
        };
        RawCase {
            name: self.name,
            model: self.model,
            engine: self.engine,
            hardware: self.hardware,
            ctx: group(self.ctx),
            generation: group(self.generation),
            router: self.router,
            benchmark: self.benchmark,
            env: self.env,
            timeouts: self.timeouts,
            perf: self.perf,
            setup: self.setup,
            slurm: self.slurm,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    #[serde(default = "default_precision")]
    pub precision: String,
    /// Expert-parallel load-balancer slots; only used in the config name.
    #[serde(default)]
    pub eplb: u32,
    /// MTP draft layers; only used in the config name.
    #[serde(default)]
    pub mtp: u32,
    /// Where real engines load the model from; `name` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

fn default_precision() -> String {
    "bf16".into()
}

/// Which engine serves CTX/GEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// `disagg sim`, the simulated engine.
    #[default]
    Sim,
    /// TensorRT-LLM's `trtllm-serve`.
    Trtllm,
    /// `vllm serve`.
    Vllm,
    /// `python3 -m sglang.launch_server`.
    Sglang,
    /// Any argv with placeholders.
    Command,
}

impl Engine {
    /// The only dialect a real engine speaks; `None` for the sim and `command`, which may speak
    /// any.
    pub fn native_dialect(self) -> Option<Dialect> {
        match self {
            Engine::Trtllm => Some(Dialect::Trtllm),
            Engine::Vllm => Some(Dialect::Vllm),
            Engine::Sglang => Some(Dialect::Sglang),
            Engine::Sim | Engine::Command => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sim => "sim",
            Engine::Trtllm => "trtllm",
            Engine::Vllm => "vllm",
            Engine::Sglang => "sglang",
            Engine::Command => "command",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    #[serde(default = "default_gpus_per_node")]
    pub gpus_per_node: u32,
    /// GPU type, used as the config-name prefix when set (e.g. `gb200`).
    #[serde(default)]
    pub gpu: Option<String>,
    /// KV cache transfer backend, passed to every engine (TensorRT-LLM's cache transceiver,
    /// vLLM's NIXL connector backend, SGLang's transfer backend); each engine's own default
    /// when absent. The config name's `ccb-` suffix says UCX then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_transceiver: Option<CacheTransceiver>,
}

impl Hardware {
    /// The backend the config name shows: UCX unless the case says otherwise.
    pub fn named_transceiver(&self) -> CacheTransceiver {
        self.cache_transceiver.unwrap_or_default()
    }
}

impl Default for Hardware {
    fn default() -> Self {
        Self {
            gpus_per_node: default_gpus_per_node(),
            gpu: None,
            cache_transceiver: None,
        }
    }
}

fn default_gpus_per_node() -> u32 {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CacheTransceiver {
    #[default]
    #[serde(rename = "UCX", alias = "ucx")]
    Ucx,
    #[serde(rename = "NIXL", alias = "nixl")]
    Nixl,
}

/// CTX or GEN workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "EA: Deserialize<'de> + Default")
)]
pub struct WorkerGroup<EA> {
    pub count: u32,
    #[serde(default)]
    pub parallel: Parallel,
    /// The engine's own settings; none when absent (a `command` engine still needs its argv).
    #[serde(default)]
    pub engine_args: EA,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parallel {
    #[serde(default = "one")]
    pub tp: u32,
    #[serde(default = "one")]
    pub pp: u32,
    #[serde(default = "one")]
    pub ep: u32,
    #[serde(default)]
    pub attention_dp: bool,
    /// Context parallelism (TensorRT-LLM's `context_parallel_size`): each server runs tp×pp×cp
    /// ranks, one per GPU.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub cp: u32,
}

impl Default for Parallel {
    fn default() -> Self {
        Self {
            tp: 1,
            pp: 1,
            ep: 1,
            attention_dp: false,
            cp: 1,
        }
    }
}

impl Parallel {
    /// GPUs one server of this group uses: TensorRT-LLM's world size, tp×pp×cp.
    pub fn gpus_per_server(&self) -> u32 {
        self.tp * self.pp * self.cp
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The sim's `engine_args`: each key is the `disagg sim` flag of the same name (see
/// `disagg sim --help`); unset keys keep the sim's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEngineArgs {
    #[serde(default, with = "humantime_serde")]
    pub startup_delay: Duration,
    #[serde(default)]
    pub never_ready: bool,
    #[serde(default = "default_prefill_per_token", with = "humantime_serde")]
    pub prefill_per_token: Duration,
    #[serde(default = "default_itl", with = "humantime_serde")]
    pub itl: Duration,
    /// The engine exits with status 1 after serving this many requests.
    #[serde(default)]
    pub fail_after_requests: Option<u64>,
    /// Timing model: `simple` (per request), `batched`, `h100-llama8b-eager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<SimPreset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_num_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_capacity_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_base_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_per_token_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_per_token_sq_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_base_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_per_seq_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_per_kv_token_ns: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes_per_token: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bandwidth_gbs: Option<f64>,
    /// TensorRT-LLM dialect: the `avg_decoded_tokens_per_iter` to report
    /// (`--decoded-tokens-per-iter`), as with speculative decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded_tokens_per_iter: Option<f64>,
    /// TensorRT-LLM dialect: the TensorRT-LLM version the sim plays (`--trtllm-version`;
    /// 1.3.0 unless set): below 1.3 it refuses `disaggregated_params.disagg_request_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trtllm_version: Option<String>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub kv_ttl: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub kv_wait_timeout: Option<Duration>,
    /// Scripted EOS at this output position (context and generation sims alike).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_at: Option<u64>,
    /// The engine's maximum context length in tokens (`--max-model-len`): requests that do not
    /// fit are refused (or cut) as the dialect's engine does. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u64>,
    /// TensorRT-LLM dialect: chunked prefill (`--enable-chunked-prefill`), which lifts the
    /// `max_num_tokens` check of prompts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_chunked_prefill: bool,
    /// SGLang dialect: `--allow-auto-truncate`: what does not fit `max_model_len` is cut, not
    /// refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_auto_truncate: bool,
    /// vLLM dialect: `--max-logprobs`, the most sample or prompt logprobs a request may ask for
    /// (-1: the vocabulary); unset: vLLM's 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_logprobs: Option<i64>,
    /// What shapes the worker's KV, which a generation sim compares with its context sim's as
    /// its dialect's engine does (`--kv-cache-dtype`, `--kv-block-size`, `--kv-transfer-backend`):
    /// set in one group's engine_args to play a prefill and decode that disagree. Unset: the
    /// engine's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_block_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_transfer_backend: Option<String>,
    /// Stops answering after this many requests, keeping its socket open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_after_requests: Option<u64>,
    /// After this many requests, completions get no answer while `/health` still does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_after_requests: Option<u64>,
    /// These requests (1-based) get a 500.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_on_request: Vec<u64>,
    /// These requests' streams are cut after `drop_after_tokens` tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_stream_on_request: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_tokens: Option<u64>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub kv_transfer_delay: Option<Duration>,
    /// These KV fetches (1-based) fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv_transfer_fail_on: Vec<u64>,
    /// A server that does not honour `ignore_eos`: with `eos_at`, answers end at the EOS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disregard_ignore_eos: bool,
    /// Log every request received, with its body, to `<role log>.requests.jsonl`.
    #[serde(default)]
    pub request_log: bool,
    /// Serving threads (the sim's `--threads`, defined in `disagg-shards`); unset: one per CPU,
    /// at most 8; 0: none, everything on the sim's main runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Serve under SCHED_FIFO (`--realtime`; needs root or CAP_SYS_NICE).
    #[serde(default)]
    pub realtime: bool,
    /// The token clock's release grid (`--clock-step`, simple preset).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_step: Option<Duration>,
}

/// The sim's timing presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimPreset {
    Simple,
    Batched,
    H100Llama8bEager,
}

impl SimPreset {
    pub fn as_str(&self) -> &'static str {
        match self {
            SimPreset::Simple => "simple",
            SimPreset::Batched => "batched",
            SimPreset::H100Llama8bEager => "h100-llama8b-eager",
        }
    }
}

impl Default for SimEngineArgs {
    fn default() -> Self {
        Self {
            startup_delay: Duration::ZERO,
            never_ready: false,
            prefill_per_token: default_prefill_per_token(),
            itl: default_itl(),
            fail_after_requests: None,
            preset: None,
            max_batch_size: None,
            max_num_tokens: None,
            kv_capacity_tokens: None,
            prefill_base_ms: None,
            prefill_per_token_us: None,
            prefill_per_token_sq_ns: None,
            decode_base_ms: None,
            decode_per_seq_us: None,
            decode_per_kv_token_ns: None,
            kv_bytes_per_token: None,
            kv_bandwidth_gbs: None,
            decoded_tokens_per_iter: None,
            trtllm_version: None,
            kv_ttl: None,
            kv_wait_timeout: None,
            eos_at: None,
            max_model_len: None,
            enable_chunked_prefill: false,
            allow_auto_truncate: false,
            max_logprobs: None,
            kv_cache_dtype: None,
            kv_block_size: None,
            kv_transfer_backend: None,
            hang_after_requests: None,
            stall_after_requests: None,
            error_on_request: Vec::new(),
            drop_stream_on_request: Vec::new(),
            drop_after_tokens: None,
            kv_transfer_delay: None,
            kv_transfer_fail_on: Vec::new(),
            disregard_ignore_eos: false,
            request_log: false,
            threads: None,
            realtime: false,
            clock_step: None,
        }
    }
}

fn default_prefill_per_token() -> Duration {
    Duration::from_micros(20)
}
fn default_itl() -> Duration {
    Duration::from_millis(5)
}

/// An env var value: a YAML string as is, a number or a boolean as its value's text. YAML has
/// already read a number by the time we see it: `0x10` is 16 and `1e3` is 1000 (quote a
/// value whose spelling matters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Str(String),
    Int(i64),
    Float(EnvFloat),
    Bool(bool),
}

/// A float env value, compared by its bits (a case is compared and hashed as data).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvFloat(pub f64);

impl PartialEq for EnvFloat {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for EnvFloat {}

impl EnvValue {
    pub fn as_string(&self) -> String {
        match self {
            EnvValue::Str(s) => s.clone(),
            EnvValue::Int(i) => i.to_string(),
            EnvValue::Float(f) => f.0.to_string(),
            EnvValue::Bool(b) => b.to_string(),
        }
    }
}

/// DISAGG_SERVER: which router, which dialect it speaks to the workers, and how it picks them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    #[serde(default)]
    pub kind: RouterKind,
    /// The wire dialect to the workers; the engine's own when absent (the loader fills it in,
    /// so a loaded case and its plan always carry one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// The policy of both groups, unless `ctx_policy` / `gen_policy` say otherwise.
    #[serde(default)]
    pub policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx_policy: Option<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_policy: Option<Policy>,
    /// For `kind: command`: the router's argv; `{server_config}`, `{host}`, `{port}` and
    /// `{disagg}` are filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// TensorRT-LLM's `internal_request_auth_key`: written into `server_config.yaml`, given to
    /// every worker (the sim's `--internal-request-auth-key` through its environment, trtllm's
    /// extra-options YAML), and used by the router to sign generation requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_request_auth_key: Option<String>,
    /// Router processes (DISAGG_SERVER_0.. when more than one), each serving every worker; the
    /// benchmark spreads its requests over all of them. For loads one router cannot carry.
    #[serde(default = "one_replica", skip_serializing_if = "is_one_replica")]
    pub replicas: u32,
}

/// Most router replicas a case may ask for: far more than any one client can need, few enough
/// that a typo (`replicas: 1000`) is caught before it starts a thousand processes.
pub const MAX_ROUTER_REPLICAS: u32 = 64;

fn one_replica() -> u32 {
    1
}

fn is_one_replica(n: &u32) -> bool {
    *n == 1
}

impl Default for RouterSpec {
    fn default() -> Self {
        Self {
            kind: RouterKind::default(),
            dialect: None,
            policy: Policy::default(),
            ctx_policy: None,
            gen_policy: None,
            argv: None,
            internal_request_auth_key: None,
            replicas: 1,
        }
    }
}

impl RouterSpec {
    /// The dialect in effect: the one the loader resolved (trtllm for a spec built by hand
    /// without one).
    pub fn dialect(&self) -> Dialect {
        self.dialect.unwrap_or_default()
    }
    pub fn ctx_policy(&self) -> Policy {
        self.ctx_policy.unwrap_or(self.policy)
    }
    pub fn gen_policy(&self) -> Policy {
        self.gen_policy.unwrap_or(self.policy)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// `disagg router`, in the DISAGG_SERVER role's own process.
    #[default]
    Builtin,
    /// The engine's own: `trtllm-serve disaggregated -c server_config.yaml -t <worker_startup>
    /// -r <request>` (trtllm only).
    Engine,
    /// Any router that reads `server_config.yaml`, given as `argv`.
    Command,
}

pub use disagg_proto::{Dialect, Policy};

/// The BENCHMARK role's load: `disagg bench`'s options, as case keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub isl: u32,
    pub osl: u32,
    /// Closed loop: one point per concurrency [default: [1]]. Not with `request_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Vec<u32>>,
    /// Prompts per point = concurrency × rounds.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    #[serde(default)]
    pub range_ratio: f64,
    #[serde(default = "yes")]
    pub streaming: bool,
    #[serde(default)]
    pub warmup: u32,
    /// One request before the sweep, as long as its longest, that must come back whole (a dead
    /// or misconfigured server fails the run there, in seconds). `false` sends none, as
    /// TensorRT-LLM's perf-sanity client runs (`--no-test-input`): the servers then meet the
    /// first point cold, as theirs do.
    #[serde(default = "yes")]
    pub canary: bool,
    /// Seed of the random prompts.
    #[serde(default)]
    pub seed: u64,
    /// Percentiles reported besides p99.
    #[serde(default)]
    pub percentiles: Vec<f64>,
    /// `/v1/completions` (token-id prompts) or `/v1/chat/completions` (text prompts).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// Highest share of failed requests (0 to 1) a point may have and still pass.
    #[serde(default)]
    pub max_failure_rate: f64,
    /// Send every request of a point even once it has more failures than `max_failure_rate`
    /// allows, some of which waited out a limit (by default it stops sending then; those in
    /// flight finish).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_going: bool,
    /// Ask for exactly `osl` tokens; shorter outputs are flagged.
    #[serde(default = "yes")]
    pub ignore_eos: bool,
    /// Sampling temperature sent with every request: 0 (greedy) by default, as TensorRT-LLM's
    /// benchmark_serving sends; `null` sends none (the server's default).
    #[serde(default = "zero_temperature")]
    pub temperature: Option<f64>,
    /// Open loop: one point per rate (requests/s; `.inf`, or `inf`, sends all at once). Needs
    /// `num_prompts`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rates")]
    pub request_rate: Option<Vec<f64>>,
    /// Requests per point (open loop; in the closed loop it replaces concurrency × rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_prompts: Option<u64>,
    /// Gamma shape of open-loop gaps: 1 is Poisson, lower is burstier.
    #[serde(default = "one_f64")]
    pub burstiness: f64,
    /// Open loop: cap on requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// No request of a point is sent after this long.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Goodput objectives: a request counts when it meets every one set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Goodput>,
    /// ShareGPT JSON or JSONL dataset, relative to the case file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A local HuggingFace `tokenizer.json`, relative to the case file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Random prompts opening with one of `groups` common prefixes of `prefix_len` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefix>,
}

impl Benchmark {
    /// The closed loop's points.
    pub fn concurrency(&self) -> Vec<u32> {
        self.concurrency.clone().unwrap_or_else(default_concurrency)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goodput {
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttft: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub tpot: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub e2el: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefix {
    pub groups: u32,
    pub prefix_len: u32,
}

fn default_endpoint() -> String {
    "/v1/completions".into()
}

/// Request rates that may be infinite. JSON has no infinity (serde_json writes `null`, which
/// then reads back as no number: every role failed to read its plan), so an infinite rate is
/// written as the string `"inf"`; it is read back from that, from YAML's `.inf`, and from the
/// spelling vLLM's `--request-rate inf` takes.
mod rates {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Rate {
        Number(f64),
        Word(String),
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        let rates: Option<Vec<Rate>> = v.as_ref().map(|list| {
            list.iter()
                .map(|&r| match r {
                    r if r == f64::INFINITY => Rate::Word("inf".into()),
                    r => Rate::Number(r),
                })
                .collect()
        });
        rates.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<f64>>, D::Error> {
        let Some(rates) = Option::<Vec<Rate>>::deserialize(d)? else {
            return Ok(None);
        };
        rates
            .into_iter()
            .map(|r| match r {
                Rate::Number(n) => Ok(n),
                Rate::Word(w) => match w.trim().to_ascii_lowercase().as_str() {
                    "inf" | "+inf" | ".inf" | "infinity" => Ok(f64::INFINITY),
                    _ if w.trim().parse::<f64>().is_ok() => Err(serde::de::Error::custom(format!(
                        "request rate \"{w}\" is quoted: write the number without quotes"
                    ))),
                    _ => Err(serde::de::Error::custom(format!(
                        "`{w}` is not a request rate: write a number of requests per second, \
                         or `inf` to send every request at once"
                    ))),
                },
            })
            .collect::<Result<Vec<f64>, D::Error>>()
            .map(Some)
    }
}

fn one_f64() -> f64 {
    1.0
}

fn zero_temperature() -> Option<f64> {
    Some(0.0)
}

fn default_concurrency() -> Vec<u32> {
    vec![1]
}
fn default_rounds() -> u32 {
    4
}
fn yes() -> bool {
    true
}

/// Role-scoped environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Set for every CTX/GEN worker.
    #[serde(default)]
    pub worker: BTreeMap<String, EnvValue>,
    /// Removed from every worker's environment.
    #[serde(default = "default_worker_unset")]
    pub worker_unset: Vec<String>,
    /// Set for DISAGG_SERVER.
    #[serde(default)]
    pub server: BTreeMap<String, EnvValue>,
    /// Set for BENCHMARK.
    #[serde(default)]
    pub benchmark: BTreeMap<String, EnvValue>,
}

impl Default for EnvSpec {
    fn default() -> Self {
        Self {
            worker: BTreeMap::new(),
            worker_unset: default_worker_unset(),
            server: BTreeMap::new(),
            benchmark: BTreeMap::new(),
        }
    }
}

fn default_worker_unset() -> Vec<String> {
    vec!["UCX_TLS".into()]
}

/// Deadlines. The hierarchy `worker_startup < job`, `request < benchmark < job` and
/// `worker_startup + benchmark <= job` is checked when the case is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// From launch until every worker answers `/health`.
    #[serde(default = "d60s", with = "humantime_serde")]
    pub worker_startup: Duration,
    /// One request, both legs.
    #[serde(default = "d60s", with = "humantime_serde")]
    pub request: Duration,
    /// The BENCHMARK role, from its start: canary, warmup and sweep.
    #[serde(default = "d10m", with = "humantime_serde")]
    pub benchmark: Duration,
    /// The whole run.
    #[serde(default = "d30m", with = "humantime_serde")]
    pub job: Duration,
    /// Between SIGTERM and SIGKILL when stopping roles.
    #[serde(default = "d5s", with = "humantime_serde")]
    pub grace: Duration,
    /// A ready worker or router whose `/health` gives no answer (a worker: no 200) for this
    /// long fails the run, named as its root cause: a hung process, not a slow benchmark.
    #[serde(default = "d10s", with = "humantime_serde")]
    pub unresponsive: Duration,
    /// A worker on which our router has requests in flight, and from which it has had neither
    /// a finished answer nor a byte of a streamed one for this long, fails the run, named as
    /// its root cause: an engine that hangs its requests while its `/health` answers. In a
    /// case: unset takes [`DEFAULT_STALL`] when the benchmark streams and that is shorter than
    /// `request`, else none; `0s` turns it off. In a plan: the limit in force, or none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub stall: Option<Duration>,
}

/// `timeouts.stall` when the case leaves it unset and the benchmark streams: long enough for
/// any one prefill, short next to the request timeouts long-sequence cases carry.
pub const DEFAULT_STALL: Duration = Duration::from_secs(300);

impl Timeouts {
    /// The stall limit in force for a case whose benchmark streams or not (see [`Self::stall`]).
    pub fn stall_in_force(&self, streaming: bool) -> Option<Duration> {
        match self.stall {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => (streaming && DEFAULT_STALL < self.request).then_some(DEFAULT_STALL),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            worker_startup: d60s(),
            request: d60s(),
            benchmark: d10m(),
            job: d30m(),
            grace: d5s(),
            unresponsive: d10s(),
            stall: None,
        }
    }
}

fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d60s() -> Duration {
    Duration::from_secs(60)
}
fn d10m() -> Duration {
    Duration::from_secs(600)
}
fn d30m() -> Duration {
    Duration::from_secs(1800)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Perf {
    /// Baseline CSV, relative to the case file, or [`HISTORY_BASELINE`] to gate on the results
    /// store's history of this case.
    #[serde(default)]
    pub baseline: Option<String>,
    /// How `baseline: history` gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryGate>,
}

/// `perf.baseline: history`.
pub const HISTORY_BASELINE: &str = "history";

impl Perf {
    /// The history gate's settings when the case gates on history.
    pub fn history_gate(&self) -> Option<HistoryGate> {
        (self.baseline.as_deref() == Some(HISTORY_BASELINE))
            .then(|| self.history.clone().unwrap_or_default())
    }
}

/// The history gate: each gated metric against the last `runs` reference runs of the same case
/// hash within `window`, with a band of the larger of `threshold` and `noise` times those runs'
/// relative robust spread (1.4826 × MAD). Fewer than `min_runs` runs: the check is skipped,
/// with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryGate {
    #[serde(default = "ten")]
    pub runs: u32,
    #[serde(default = "d30d", with = "humantime_serde")]
    pub window: Duration,
    #[serde(default = "three")]
    pub min_runs: u32,
    /// The relative threshold (a fraction): `0.05` is 5 %.
    #[serde(default = "five_percent")]
    pub threshold: f64,
    /// How many robust standard deviations (1.4826 × MAD) of the history a change must exceed.
    #[serde(default = "three_f")]
    pub noise: f64,
    /// The metrics that gate (`TOKEN_THROUGHPUT`, `MEDIAN_TTFT`, ...); by default the
    /// throughputs, as PROTOCOLS.md §5 gates.
    #[serde(default)]
    pub metrics: Vec<String>,
}

impl Default for HistoryGate {
    fn default() -> Self {
        Self {
            runs: ten(),
            window: d30d(),
            min_runs: three(),
            threshold: five_percent(),
            noise: three_f(),
            metrics: Vec::new(),
        }
    }
}

fn ten() -> u32 {
    10
}
fn three() -> u32 {
    3
}
fn d30d() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn five_percent() -> f64 {
    0.05
}
fn three_f() -> f64 {
    3.0
}

/// `setup:` either a shell snippet (run with `sh -c`, as the user wrote it) or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Setup {
    Shell(String),
    Argv(Vec<String>),
}

impl Setup {
    pub fn argv(&self) -> Vec<String> {
        match self {
            Setup::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Setup::Argv(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_infinite_request_rate_survives_json_and_reads_from_each_spelling() {
        let b = |yaml: &str| -> Benchmark {
            serde_yaml_ng::from_str(&format!("{{isl: 8, osl: 8, num_prompts: 4, {yaml}}}")).unwrap()
        };
        for spelling in ["[2.5, .inf]", "[2.5, inf]", "[2.5, \"Infinity\"]"] {
            let bench = b(&format!("request_rate: {spelling}"));
            assert_eq!(
                bench.request_rate,
                Some(vec![2.5, f64::INFINITY]),
                "{spelling}"
            );
            let json = serde_json::to_string(&bench).unwrap();
            assert!(json.contains(r#""request_rate":[2.5,"inf"]"#), "{json}");
            let back: Benchmark = serde_json::from_str(&json).unwrap();
            assert_eq!(back.request_rate, bench.request_rate);
        }
        let e = serde_yaml_ng::from_str::<Benchmark>("{isl: 8, osl: 8, request_rate: [fast]}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "`fast` is not a request rate: write a number of requests per second, or `inf`"
            ),
            "{e}"
        );
        let e = serde_yaml_ng::from_str::<Benchmark>("{isl: 8, osl: 8, request_rate: [\"2\"]}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("request rate \"2\" is quoted"), "{e}");
    }

    #[test]
    fn the_stall_limit_defaults_to_5m_for_streamed_benchmarks_and_0s_turns_it_off() {
        let t = |request: u64, stall: Option<u64>| Timeouts {
            request: Duration::from_secs(request),
            stall: stall.map(Duration::from_secs),
            ..Timeouts::default()
        };
        assert_eq!(t(1800, None).stall_in_force(true), Some(DEFAULT_STALL));
        assert_eq!(
            t(1800, None).stall_in_force(false),
            None,
            "no byte until the end"
        );
        assert_eq!(
            t(60, None).stall_in_force(true),
            None,
            "requests time out first"
        );
        assert_eq!(
            t(60, Some(30)).stall_in_force(false),
            Some(Duration::from_secs(30))
        );
        assert_eq!(t(1800, Some(0)).stall_in_force(true), None);
    }

    #[test]
    fn env_values_of_every_scalar_kind_become_their_text() {
        let v: BTreeMap<String, EnvValue> =
            serde_yaml_ng::from_str("A: x\nB: 3\nC: 1.5\nD: 1e3\nE: true\nF: '0x10'\nG: 0x10\n")
                .unwrap();
        let text: Vec<String> = v.values().map(EnvValue::as_string).collect();
        assert_eq!(text, ["x", "3", "1.5", "1000", "true", "0x10", "16"]);
    }
}
