//! `disagg sim`: a simulated LLM engine speaking the disaggregated dialects of TensorRT-LLM,
//! vLLM and SGLang, with a real KV hand-off, an engine-like timing model and scripted faults.
//!
//! API contract (stable; the harness and the binary rely on it):
//! - [`SimArgs`]: the `disagg sim` flags (clap), also built by the harness from a worker
//!   group's `engine_args`.
//! - [`run`]: binds, publishes `host:port` (ready file or stdout), serves until killed.
//! - [`app`] / [`serve`] with a [`SimState`]: the same server, in-process, for tests and
//!   embedding; an [`ExitHook`] decides what a scripted crash does.
//!
//! How it works (DESIGN.md has the diagram):
//! - `request` + `dialect/` validate a `/v1/completions` (or chat, or SGLang `/generate`) body
//!   into a job per prompt: aggregated, context (prefill) or generation (decode), checked
//!   against `--role`; `context_len` refuses (or cuts) what does not fit `--max-model-len`, as
//!   the dialect's engine does.
//! - `handoff/`: a context sim keeps a KV record per prefill; a generation sim fetches it over
//!   HTTP (`GET /kv/{key}`), verifies it against its request and charges the transfer time.
//! - `tokens` is the "model": outputs are a pure function of the prompt's token ids and the
//!   position, so aggregated and disaggregated runs produce the same text.
//! - `engine/` decides when each token is due: per-request clocks (`--preset simple`) or a
//!   continuous-batching scheduler with a step cost model (`batched`, `h100-llama8b-eager`).
//! - `completions` serves the job (`generate`: in SGLang's native shapes); `faults` scripts crashes, hangs, 500s, cut streams and
//!   failed hand-offs; `metrics` and `request_log` make it observable.

// The console, which never panics (see `disagg_proto::say_err!`): the sim's log may be a file
// on a full disk, and a lost line must not take the engine down. By name in every module.
macro_rules! say_err {
    ($($arg:tt)*) => { disagg_proto::say_err!($($arg)*) };
}

use std::path::PathBuf;

mod args;
mod completions;
mod context_len;
mod dialect;
mod dist;
mod engine;
mod error;
mod faults;
mod generate;
mod handoff;
mod metrics;
mod ready;
mod request;
mod request_log;
mod response;
mod server;
mod side;
mod standin;
mod tokens;

pub use args::{
    Dialect, DistArgs, FaultArgs, GpuNeed, KvArgs, Preset, SimArgs, SimRole, TimingArgs,
};
pub use dialect::trtllm::TrtllmVersion;
pub use engine::cost::TimingError;
pub use faults::ExitHook;
pub use server::{SimState, app, serve, serve_sharded};
pub use standin::stand_in;

/// Why the sim could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write ready file {path}: {source}")]
    ReadyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// The serving threads (`--threads`, `--realtime`).
    #[error(transparent)]
    Threads(#[from] disagg_shards::Error),
    #[error("invalid timing flags: {0}")]
    Timing(#[from] TimingError),
    #[error("cannot open request log {path}: {source}")]
    RequestLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the KV fetch client: {0}")]
    Client(String),
    #[error("{0}")]
    Flags(String),
    #[error("cannot bind {what} at {addr}: {source}; {hint}")]
    SideChannel {
        what: &'static str,
        addr: String,
        source: std::io::Error,
        hint: &'static str,
    },
}

/// Parses `disagg sim` argv (as a launcher would pass it: `[exe, "sim", flags...]`) into the
/// sim's flags, as `disagg sim` itself would. The error is clap's own message.
pub fn parse_argv(argv: &[String]) -> Result<SimArgs, String> {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }
    <Cli as clap::Parser>::try_parse_from(argv.iter().skip(1))
        .map(|cli| cli.sim)
        .map_err(|e| e.render().to_string().trim().to_string())
}

/// Checks `disagg sim` argv (as a launcher would pass it) without starting anything: the flags
/// parse and the timing settings are consistent. The error is the sim's own message.
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    let args = parse_argv(argv)?;
    engine::cost::TimingModel::from_args(&args.timing, args.dialect == Dialect::Trtllm)
        .map(drop)
        .map_err(|e| e.to_string())?;
    args.check_dialect().map_err(|e| e.to_string())
}

/// Runs the sim until the process is killed (or a scripted crash exits it).
pub async fn run(args: SimArgs) -> Result<(), SimError> {
    if let Some(need) = &args.gpu_need {
        check_gpus(
            need,
            std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
            local_rank(),
        )?;
    }
    if let Some((ranks, why)) = &args.mpi_ranks {
        check_mpi_world(*ranks, why, mpi_world())?;
    }
    let _held = hold_engine_ports(args.engine_ports.as_ref())?;
    if args.dist.nnodes > 1 {
        dist::address(&args.dist)?;
        if args.dist.node_rank > 0 {
            return run_headless(args).await;
        }
    }
    // Created before binding, so the startup delay counts from process start, as an engine's
    // model loading would.
    let state = SimState::new(&args, ExitHook::exit_process())?;
    // Node rank 0 of a server spanning nodes serves nothing until every other node has joined.
    if args.dist.nnodes > 1 {
        let d = args.dist.clone();
        blocking(move || dist::host(&d)).await?.watch();
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|source| SimError::Bind {
            addr: ready::authority(&args.host, args.port),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind {
        addr: ready::authority(&args.host, args.port),
        source,
    })?;
    let bound = ready::authority(&args.host, local.port());
    // The serving threads start (and get --realtime) before anyone is told the sim is up.
    let shards = server::serving_threads(&state, local, args.serving.count(), args.realtime)?;
    state.serve_side_channel()?;
    state.set_port(local.port());
    let (adv_host, adv_port) = state.advertised();
    say_err!(
        "disagg-sim: listening on {bound}; KV hand-offs name {}",
        ready::authority(&adv_host, adv_port)
    );
    say_err!(
        "disagg-sim: role={:?} dialect={} model={} preset={:?} prefill_per_token={:?} itl={:?} \
         clock_step={} startup_delay={:?} threads={} realtime={}{}",
        args.role,
        args.dialect.as_str(),
        args.model,
        args.timing.preset,
        args.timing.prefill_per_token,
        args.timing.itl,
        state
            .clock_step()
            .map_or("-".to_string(), |s| format!("{s:?}")),
        args.startup_delay,
        shards.len(),
        args.realtime,
        state.side_channel().map_or(String::new(), |(h, p)| format!(
            " kv_port={}",
            ready::authority(&h, p)
        ))
    );
    ready::publish(args.ready_file.as_deref(), &bound)?;
    server::serve_until_killed(shards, listener).await
}

/// A node above rank 0 of a server spanning nodes: joins node rank 0 and serves no HTTP
/// (vLLM's `--headless`, SGLang's other nodes); vLLM's data-parallel ranks on this node bind
/// their side channels, as their engine cores do. Runs until node rank 0 goes, or a signal.
async fn run_headless(args: SimArgs) -> Result<(), SimError> {
    let dp_here = args.dialect == Dialect::Vllm && args.data_parallel_size_local.is_some();
    let _side = if dp_here {
        side::SideChannel::bind(&args)?
    } else {
        None
    };
    let d = args.dist.clone();
    let (stream, head) = blocking(move || dist::join(&d)).await?;
    say_err!(
        "disagg-sim: node rank {} of {} joined node rank 0 on {head} at {}; headless: no HTTP \
         here, node rank 0 serves",
        args.dist.node_rank,
        args.dist.nnodes,
        args.dist.dist_init_addr.as_deref().unwrap_or_default()
    );
    let d = args.dist.clone();
    blocking(move || -> Result<(), SimError> { dist::follow(stream, &head, &d) }).await
}

/// This process's index among the ranks on its node, as MPI or Slurm tell it (0 alone).
fn local_rank() -> u32 {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "PMIX_LOCAL_RANK",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.parse().ok())
    .unwrap_or(0)
}

/// Binds the ports the engine would bind besides its own, held while the sim runs.
fn hold_engine_ports(
    ports: Option<&(String, Vec<u16>, String)>,
) -> Result<Vec<std::net::TcpListener>, SimError> {
    let Some((host, ports, why)) = ports else {
        return Ok(Vec::new());
    };
    ports
        .iter()
        .map(|&port| {
            std::net::TcpListener::bind((host.as_str(), port)).map_err(|source| SimError::Bind {
                addr: format!("{} ({why})", ready::authority(host, port)),
                source,
            })
        })
        .collect()
}

/// The MPI world `trtllm-llmapi-launch` finds: `SLURM_NTASKS`, else `OMPI_COMM_WORLD_SIZE`,
/// else 1 (and the variable that said it).
fn mpi_world() -> (u32, &'static str) {
    ["SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"]
        .into_iter()
        .find_map(|k| Some((std::env::var(k).ok()?.parse().ok()?, k)))
        .unwrap_or((1, "neither SLURM_NTASKS nor OMPI_COMM_WORLD_SIZE is set"))
}

/// A TensorRT-LLM server under `trtllm-llmapi-launch` runs its model on the MPI world the
/// wrapper finds, one rank per process of the step: a world of another size than the model's
/// ranks cannot serve it (a lone process under the wrapper serves one rank, whatever
/// `tensor_parallel_size` says). So fails the sim standing in for it.
pub fn check_mpi_world(ranks: u32, why: &str, (world, from): (u32, &str)) -> Result<(), SimError> {
    if world == ranks {
        return Ok(());
    }
    Err(SimError::Flags(format!(
        "trtllm-llmapi-launch finds an MPI world of {world} process(es) ({from}), but the \
         server has {ranks} rank(s) ({why}): TensorRT-LLM runs one rank per process of that \
         world, so the engine cannot serve this model; start one task per rank (srun \
         --ntasks={ranks}, mpirun -n {ranks}), or on one machine run trtllm-serve without the \
         wrapper (it spawns its ranks itself)"
    )))
}

/// A real engine fails at start when it cannot see the GPUs it is to drive: so does the sim
/// standing in for it. An unset `CUDA_VISIBLE_DEVICES` shows every GPU of the machine, which
/// the sim cannot count, so it passes.
pub fn check_gpus(need: &GpuNeed, visible: Option<&str>, local_rank: u32) -> Result<(), SimError> {
    let Some(visible) = visible else {
        return Ok(());
    };
    let seen = visible.split(',').filter(|d| !d.trim().is_empty()).count() as u32;
    let (want, why) = match need {
        GpuNeed::Count(n, why) => (*n, why.clone()),
        GpuNeed::LocalRank => (
            local_rank + 1,
            format!("its rank is local rank {local_rank} on this node and takes that GPU"),
        ),
    };
    if seen >= want {
        return Ok(());
    }
    Err(SimError::Flags(format!(
        "CUDA_VISIBLE_DEVICES={visible:?} shows {seen} GPU(s), but this process needs {want}: \
         {why}; the engine fails the same way at start (its GPU binding gives it too few)"
    )))
}

/// Runs blocking socket work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SimError> + Send + 'static,
) -> Result<T, SimError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SimError::Flags(format!("the rendezvous thread failed: {e}")))?
}
