//! `disagg sim` flags: the stable command-line contract (the harness builds this argv from a
//! worker group's `engine_args`), plus the enums they name.

use std::path::PathBuf;
use std::time::Duration;

/// Which half of the work this sim does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimRole {
    Context,
    Generation,
    Both,
}

pub use disagg_proto::Dialect;

use crate::dialect::trtllm::TrtllmVersion;

/// Named timing models; explicit `--prefill-*` / `--decode-*` / limit flags override a batched
/// preset's values (see `engine/cost.rs` for the numbers and where they come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Every request on its own clock: prefill `--prefill-per-token × prompt`, then one token
    /// per `--itl`. No batching, no queueing: the historical behaviour.
    Simple,
    /// The continuous-batching scheduler with costs taken from `--prefill-per-token` (b) and
    /// `--itl` (d), everything else zero, unless given explicitly.
    Batched,
    /// The continuous-batching scheduler fitted to `shared/data/h100-llama8b-eager.json`.
    H100Llama8bEager,
}

/// `disagg sim` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Which requests this server accepts: context_only, generation_only, or both (aggregated too).
    #[arg(long, value_enum, default_value_t = SimRole::Both)]
    pub role: SimRole,
    /// Wire dialect.
    #[arg(long, value_enum, default_value_t = Dialect::Trtllm)]
    pub dialect: Dialect,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind; 0 picks a free one, published through --ready-file or stdout.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Host a generation sim should use to fetch KV records from this one (put into the
    /// hand-off params). Defaults to --host, or this machine's hostname when --host is a
    /// wildcard address (0.0.0.0, ::), so that sims on other nodes can reach it.
    #[arg(long)]
    pub advertise_host: Option<String>,
    #[command(flatten)]
    pub serving: disagg_shards::ServingThreads,
    /// Run the serving threads under the real-time policy SCHED_FIFO (priority 1), so that other
    /// processes on the machine, a load generator for one, cannot delay a token. Needs root or
    /// CAP_SYS_NICE (or an RLIMIT_RTPRIO of at least 1); the sim refuses to start without it.
    #[arg(long)]
    pub realtime: bool,
    /// Where to write `host:port` once bound (atomically). Without it, it goes to stdout.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Model name reported in responses and /v1/models. In the vLLM dialect it and the
    /// --model-alias names are the only names served: a request for another model gets vLLM's
    /// 404.
    #[arg(long, default_value = "sim")]
    pub model: String,
    /// A further name served beside --model (repeatable), as vLLM's `--served-model-name A B`
    /// serves B too (a stand-in reads it): a request for it is answered, responses carry
    /// --model (the first name), and /v1/models lists every name.
    #[arg(long = "model-alias", value_name = "NAME")]
    pub model_aliases: Vec<String>,
    /// Where the model would be loaded from, as SGLang's /model_info and /server_info report
    /// it; --model when absent.
    #[arg(long)]
    pub model_path: Option<String>,
    /// Refuse `/v1/*` (and `/generate`) requests without `Authorization: Bearer KEY`, with 401,
    /// as `vllm serve --api-key` and SGLang's `--api-key` do (a stand-in reads their flag).
    #[arg(long)]
    pub api_key: Option<String>,
    /// SGLang, context role: the port of the bootstrap server decode sims pull KV through, on
    /// --host (SGLang's --disaggregation-bootstrap-port, same default); 0 picks a free one.
    #[arg(long, default_value_t = 8998)]
    pub bootstrap_port: u16,
    /// vLLM: the host of the NIXL side channel, bound and handed to decode in
    /// kv_transfer_params.remote_host, as vLLM does with this variable.
    #[arg(long, env = "VLLM_NIXL_SIDE_CHANNEL_HOST", default_value = "localhost")]
    pub side_channel_host: String,
    /// vLLM: the NIXL side-channel port, which decode sims pull KV through; each
    /// data-parallel rank binds this plus its rank, as vLLM does. Two vLLM workers on one node
    /// collide unless each gets its own; 0 picks free ones (consecutive, one per rank).
    #[arg(long, env = "VLLM_NIXL_SIDE_CHANNEL_PORT", default_value_t = 5600)]
    pub side_channel_port: u16,
    /// vLLM: data-parallel ranks, each binding its own side-channel port.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub data_parallel_size: u16,
    /// vLLM, data-parallel ranks spread over nodes: how many run on this node (default: all).
    /// They bind the side-channel ports of their global ranks, from
    /// --data-parallel-start-rank.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub data_parallel_size_local: Option<u16>,
    /// vLLM, data-parallel ranks spread over nodes: the global rank of this node's first.
    #[arg(long, default_value_t = 0)]
    pub data_parallel_start_rank: u16,
    /// Time after start before /health answers 200.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub startup_delay: Duration,
    /// /health never answers 200.
    #[arg(long)]
    pub never_ready: bool,
    /// Every /version answer waits this long first: an engine slow to answer it, or (with a
    /// delay longer than a client waits) one that never does, for testing what a router does
    /// meanwhile.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub version_delay: Duration,
    /// The model emits EOS at this output position (0-based): output ends there with
    /// finish_reason "stop", unless the request sets ignore_eos or min_tokens is larger.
    /// Give context and generation sims the same value.
    #[arg(long)]
    pub eos_at: Option<u64>,
    /// The maximum context length in tokens (prompt plus output), refused or cut as the
    /// dialect's engine does: vLLM's --max-model-len, SGLang's --context-length, TensorRT-LLM's
    /// max_seq_len. Takes vLLM's forms too (8192, 8k = 8000, 8K = 8192). A chat request without
    /// max_tokens then generates up to the context's end, as the engines do (16 tokens without
    /// it). Default: no limit. Give context and generation sims the same value.
    #[arg(long, value_parser = crate::context_len::parse_flag)]
    pub max_model_len: Option<u64>,
    /// TensorRT-LLM dialect: the engine prefills long prompts in chunks
    /// (`enable_chunked_prefill`), so a prompt longer than --max-num-tokens is served instead
    /// of refused.
    #[arg(long)]
    pub enable_chunked_prefill: bool,
    /// SGLang dialect: SGLang's --allow-auto-truncate. A prompt that does not fit the context
    /// (--max-model-len) is cut to the context length and its output to the room left (none,
    /// so it answers with no tokens), and a total over the context gets its max_new_tokens cut
    /// to the room left, each with SGLang's warning on stderr, where SGLang refuses them
    /// without it.
    #[arg(long)]
    pub allow_auto_truncate: bool,
    /// TensorRT-LLM dialect: the engine runs the overlap scheduler (trtllm-serve's default,
    /// unless its extra-options YAML sets disable_overlap_scheduler: true), so, playing a
    /// release before 1.3 (--trtllm-version), it refuses every context-only request, as
    /// TensorRT-LLM's PyTorch backend did; 1.3 and newer serve them. Set for trtllm-serve
    /// stand-ins from their YAML.
    #[arg(long)]
    pub overlap_scheduler: bool,
    /// vLLM dialect: vLLM's --max-logprobs, the most sample or prompt logprobs a request may
    /// ask for (-1: the vocabulary's size), refused above it in vLLM's words.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..))]
    pub max_logprobs: i64,

    #[command(flatten)]
    pub timing: TimingArgs,

    #[command(flatten)]
    pub kv: KvArgs,

    #[command(flatten)]
    pub faults: FaultArgs,

    #[command(flatten)]
    pub dist: DistArgs,

    /// The GPUs this process would drive, as a stand-in reads them from the engine's argv;
    /// checked at start against `CUDA_VISIBLE_DEVICES` ([`GpuNeed`]).
    #[arg(skip)]
    pub gpu_need: Option<GpuNeed>,

    /// A TensorRT-LLM server under `trtllm-llmapi-launch`: the ranks its extra-options YAML
    /// asks (tp×pp×cp) and what says so; checked at start against the MPI world the wrapper
    /// finds (`SLURM_NTASKS`, else `OMPI_COMM_WORLD_SIZE`, else 1).
    #[arg(skip)]
    pub mpi_ranks: Option<(u32, String)>,

    /// Ports the engine binds besides its own (SGLang's attention-DP sockets within one node),
    /// as a stand-in reads them from the engine's argv: bound at start and held, so one another
    /// process holds fails the sim as it fails the engine; and why the engine binds them.
    #[arg(skip)]
    pub engine_ports: Option<(String, Vec<u16>, String)>,

    /// Append one JSON line per request received (time, path, X-Request-Id, body) to FILE.
    #[arg(long)]
    pub request_log: Option<PathBuf>,

    /// TensorRT-LLM dialect: put this `avg_decoded_tokens_per_iter` (at least 1) in every
    /// generated choice, as a server with speculative decoding reports its accepted tokens per
    /// step (e.g. 2.4 with MTP).
    #[arg(long, value_parser = parse_decoded_per_iter)]
    pub decoded_tokens_per_iter: Option<f64>,

    /// TensorRT-LLM dialect, generation role: its gen-only benchmark fill gate. No generation
    /// request starts until this many have arrived (counted since start); then all go, and the
    /// gate stays open. TensorRT-LLM's GEN workers read it from the environment, as here.
    #[arg(long, env = "TLLM_BENCHMARK_REQ_QUEUES_SIZE")]
    pub benchmark_req_queues_size: Option<u64>,

    /// TensorRT-LLM dialect: TensorRT-LLM's `internal_request_auth_key`. A request whose
    /// `disaggregated_params` carry protected fields (`encoded_opaque_state`,
    /// `ctx_info_endpoint`) must then be signed with it (`x-trtllm-disagg-auth`), else it is
    /// refused with 401. Read from the environment too, so it stays out of the process list.
    #[arg(long, env = "DISAGG_INTERNAL_REQUEST_AUTH_KEY", hide_env_values = true)]
    pub internal_request_auth_key: Option<String>,

    /// TensorRT-LLM dialect: the TensorRT-LLM version the sim plays (default 1.3.0), reported
    /// as `tensorrt_llm` on /version. From 1.3 a `disaggregated_params.disagg_request_id` is
    /// taken: the context answer echoes it (as its `ctx_request_id` too) and the KV hand-off is
    /// keyed on it. Older versions refuse it, like any field their request model lacks, with
    /// 400 (pydantic's `extra="forbid"`).
    #[arg(long, value_parser = TrtllmVersion::parse)]
    pub trtllm_version: Option<TrtllmVersion>,
}

impl SimArgs {
    /// Flags that only the TensorRT-LLM dialect has.
    pub(crate) fn check_dialect(&self) -> Result<(), crate::SimError> {
        if self.dialect != Dialect::Trtllm && self.internal_request_auth_key.is_some() {
            return Err(crate::SimError::Flags(format!(
                "--internal-request-auth-key (DISAGG_INTERNAL_REQUEST_AUTH_KEY) is TensorRT-LLM's; \
                 the {} dialect signs nothing (use --dialect trtllm or drop the key)",
                self.dialect.as_str()
            )));
        }
        if self.dialect != Dialect::Trtllm && self.trtllm_version.is_some() {
            return Err(crate::SimError::Flags(format!(
                "--trtllm-version is the TensorRT-LLM version the sim plays; the {} dialect \
                 has none (use --dialect trtllm or drop the flag)",
                self.dialect.as_str()
            )));
        }
        if self.dialect != Dialect::Trtllm && self.enable_chunked_prefill {
            return Err(crate::SimError::Flags(format!(
                "--enable-chunked-prefill is TensorRT-LLM's exemption from its max_num_tokens \
                 check; the {} dialect has none (use --dialect trtllm or drop the flag)",
                self.dialect.as_str()
            )));
        }
        if self.dialect != Dialect::Sglang && self.allow_auto_truncate {
            return Err(crate::SimError::Flags(format!(
                "--allow-auto-truncate is SGLang's; the {} dialect refuses or cuts requests its \
                 own way (use --dialect sglang or drop the flag)",
                self.dialect.as_str()
            )));
        }
        if self.dialect != Dialect::Trtllm && self.decoded_tokens_per_iter.is_some() {
            return Err(crate::SimError::Flags(format!(
                "--decoded-tokens-per-iter is TensorRT-LLM's avg_decoded_tokens_per_iter; the {} \
                 dialect has no such field (use --dialect trtllm or drop the flag)",
                self.dialect.as_str()
            )));
        }
        Ok(())
    }
}

fn parse_decoded_per_iter(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 1.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of decoded tokens per iteration (at least 1)"
        )),
    }
}

/// Timing model flags.
#[derive(Debug, Clone, clap::Args)]
pub struct TimingArgs {
    /// Timing model; `simple` keeps --prefill-per-token and --itl as fixed per-request costs.
    #[arg(long, value_enum, default_value_t = Preset::Simple)]
    pub preset: Preset,
    /// Prefill time per prompt token (preset `simple`; `b` of preset `batched`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20us")]
    pub prefill_per_token: Duration,
    /// Time between generated tokens (preset `simple`; `d` of preset `batched`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5ms")]
    pub itl: Duration,
    /// Preset `simple`: tokens are released on a grid of this step, so a token leaves up to one
    /// step after its due time, and the gaps between a stream's tokens stay exact when --itl is
    /// a multiple of it. A smaller step costs more CPU under load; 0 releases every token at
    /// its own due time. At most 100ms. Default: the largest step of at most 1ms that divides
    /// --itl (1ms for a whole number of milliseconds; 0 if no whole microsecond divides it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub clock_step: Option<Duration>,
    /// Batched: sequences per step (running plus newly admitted).
    #[arg(long)]
    pub max_batch_size: Option<std::num::NonZeroU64>,
    /// Batched: token budget per step (prefill tokens plus one per decoding sequence).
    /// TensorRT-LLM dialect, any preset: also the engine's max_num_tokens request check: a
    /// context or plain request whose prompt is longer is refused with TensorRT-LLM's 400
    /// (generation-only requests are not checked), unless --enable-chunked-prefill.
    #[arg(long)]
    pub max_num_tokens: Option<std::num::NonZeroU64>,
    /// Batched: KV cache capacity in tokens; a request reserves prompt + max_tokens.
    #[arg(long)]
    pub kv_capacity_tokens: Option<std::num::NonZeroU64>,
    /// Batched: prefill step cost `a`, in ms.
    #[arg(long)]
    pub prefill_base_ms: Option<f64>,
    /// Batched: prefill cost `b` per prompt token in the step, in µs.
    #[arg(long)]
    pub prefill_per_token_us: Option<f64>,
    /// Batched: prefill cost `c` per squared prompt length (attention), in ns.
    #[arg(long)]
    pub prefill_per_token_sq_ns: Option<f64>,
    /// Batched: decode step cost `d`, in ms.
    #[arg(long)]
    pub decode_base_ms: Option<f64>,
    /// Batched: decode cost `e` per sequence in the batch, in µs.
    #[arg(long)]
    pub decode_per_seq_us: Option<f64>,
    /// Batched: decode cost `f` per KV token read by the step, in ns.
    #[arg(long)]
    pub decode_per_kv_token_ns: Option<f64>,
}

/// A server spanning nodes: one sim per node, joined as vLLM's and SGLang's processes are
/// (`--nnodes`, `--node-rank`, `--dist-init-addr`). Node rank 0 binds the rendezvous port on
/// every interface and serves nothing until every other node has joined with the same world
/// (nodes, model, parallel sizes); the others serve no HTTP (headless). A node that leaves the
/// group fails the others, as a lost rank fails a real engine's collectives.
#[derive(Debug, Clone, clap::Args)]
pub struct DistArgs {
    /// Nodes (one sim each) of this server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub nnodes: u32,
    /// This node's rank, 0 to --nnodes - 1; 0 serves.
    #[arg(long, default_value_t = 0)]
    pub node_rank: u32,
    /// HOST:PORT of node rank 0's rendezvous (needed with --nnodes above 1).
    #[arg(long)]
    pub dist_init_addr: Option<String>,
    /// How long node rank 0 waits for the others to join, and they for it to answer
    /// (torch.distributed's default for NCCL groups).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub dist_timeout: Duration,
    /// What every node of the group must agree on; the stand-in sets it from the engine's
    /// model and parallel flags.
    #[arg(skip)]
    pub world: String,
    /// Ports after the rendezvous port that node rank 0 binds as well, as offsets (SGLang's
    /// scheduler publishes to the other nodes on two of them); the stand-in sets them.
    #[arg(skip)]
    pub derived_ports: Vec<u16>,
}

/// What a real engine's process needs to see of its node's GPUs, or it fails at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuNeed {
    /// At least this many (vLLM and SGLang drive their node's share of the server's GPUs;
    /// trtllm-serve alone spawns its ranks over them), and the flags that say so.
    Count(u32, String),
    /// One, picked by the rank's local index on its node (an MPI rank under
    /// trtllm-llmapi-launch): that index must be visible.
    LocalRank,
}

/// KV hand-off flags.
#[derive(Debug, Clone, clap::Args)]
pub struct KvArgs {
    /// Bytes of KV cache per token; the hand-off moves prompt_len × this.
    #[arg(long, default_value_t = 131_072)]
    pub kv_bytes_per_token: u64,
    /// Hand-off bandwidth in GB/s (10^9 bytes per second); the transfer takes kv_bytes / this.
    #[arg(long, default_value_t = 50.0, value_parser = positive_f64)]
    pub kv_bandwidth_gbs: f64,
    /// A context sim drops a KV record nobody fetched after this long (counted in /metrics);
    /// a decode that asks for it later fails. Default: 60 s; as a stand-in, the engine's own
    /// limit: vLLM's VLLM_NIXL_ABORT_REQUEST_TIMEOUT (480 s), SGLang's waiting timeout (see
    /// --kv-wait-timeout), TensorRT-LLM's `cache_transceiver_config.kv_transfer_timeout_ms`
    /// (none by default: the sim keeps a record a day).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub kv_ttl: Option<Duration>,
    /// How long a generation sim waits for a record that is not there yet (SGLang sends both
    /// legs at once, so decode may ask before prefill is done); then it fails with status 500,
    /// as SGLang's decode does. Seconds, or a duration ("90s"); SGLang's own variable sets it,
    /// with its default.
    #[arg(long, env = "SGLANG_DISAGGREGATION_WAITING_TIMEOUT", value_parser = seconds_or_duration, default_value = "300")]
    pub kv_wait_timeout: Duration,
    /// SGLang, context role: how long a prefill waits for its decode server's handshake (the
    /// decode leg of the same bootstrap_room) before it runs; then it fails with status 500, as
    /// SGLang's prefill does. Seconds, or a duration ("90s"); SGLang's own variable sets it.
    #[arg(long, env = "SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT", value_parser = seconds_or_duration, default_value = "300")]
    pub bootstrap_timeout: Duration,
    /// The KV cache's element type (vLLM's and SGLang's --kv-cache-dtype, TensorRT-LLM's
    /// kv_cache_config.dtype; a stand-in reads it). A context sim hands it over with each KV
    /// record, and a generation sim refuses a record stored otherwise where the engine would.
    /// Default: the engine's (`auto`).
    #[arg(long, value_name = "DTYPE")]
    pub kv_cache_dtype: Option<String>,
    /// Tokens per KV block or page (vLLM's --block-size, SGLang's --page-size, TensorRT-LLM's
    /// kv_cache_config.tokens_per_block), handed over and checked as --kv-cache-dtype is.
    /// Default: the engine's (16, 1 and 32).
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(1..))]
    pub kv_block_size: Option<u32>,
    /// How KV moves between the workers (SGLang's --disaggregation-transfer-backend,
    /// TensorRT-LLM's cache_transceiver_config.backend, vLLM's kv_connector), handed over and
    /// checked as --kv-cache-dtype is. Default: the engine's (mooncake, DEFAULT, NixlConnector).
    #[arg(long, value_name = "NAME")]
    pub kv_transfer_backend: Option<String>,
}

/// `--kv-ttl` when neither it nor the engine stood in for says otherwise.
pub const DEFAULT_KV_TTL: Duration = Duration::from_secs(60);

/// How long a record nobody fetched is kept when the engine stood in for sets no limit: long
/// enough that no test meets it, finite so the store cannot grow without end.
pub const NO_KV_TTL: Duration = Duration::from_secs(24 * 3600);

impl KvArgs {
    /// How long an unfetched KV record is kept.
    pub fn ttl(&self) -> Duration {
        self.kv_ttl.unwrap_or(DEFAULT_KV_TTL)
    }
}

/// Whole seconds (how SGLang's environment variables count) or a humantime duration.
fn seconds_or_duration(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string()),
    }
}

/// Scripted faults. Request numbers count completion requests as they arrive, from 1.
#[derive(Debug, Clone, clap::Args)]
pub struct FaultArgs {
    /// Exit with status 1 once this many completion requests have been served (successfully;
    /// rejected requests do not count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub fail_after_requests: Option<u64>,
    /// Once this many completion requests have been served, stop answering anything (open
    /// streams freeze too) while keeping every socket open.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub hang_after_requests: Option<u64>,
    /// Once this many completion requests have been served, completion requests (open streams
    /// too) get no answer, while /health, /metrics and /version still answer: an engine whose
    /// scheduler is stuck behind a live HTTP front end.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_after_requests: Option<u64>,
    /// Answer the N-th completion request with a 500 (repeatable).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub error_on_request: Vec<u64>,
    /// Cut the connection of the N-th completion request's stream (repeatable).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub drop_stream_on_request: Vec<u64>,
    /// How many token chunks a dropped stream delivers before the cut.
    #[arg(long, default_value_t = 1)]
    pub drop_after_tokens: u64,
    /// Generation side: every KV hand-off takes this much longer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub kv_transfer_delay: Duration,
    /// Generation side: the N-th KV hand-off fails (repeatable).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub kv_transfer_fail_on: Vec<u64>,
    /// Act as a server that does not honour `ignore_eos` (nor `min_tokens`): with --eos-at,
    /// every answer ends at the scripted EOS whatever the request asks.
    #[arg(long)]
    pub disregard_ignore_eos: bool,
}

/// A finite number above zero: a bandwidth of 0, a negative one or NaN has no meaning.
fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number above 0, got {s}"))
    }
}
