//! Engines: how a worker's engine is started, per `engine:`. Each engine is an argv template
//! (never a shell string) plus what the role must do around it: pick ports, write a config file,
//! wrap multi-rank workers.
//!
//! Placeholders the worker role fills in when it starts the engine: `{host}`, `{port}`,
//! `{bootstrap_port}`, `{side_channel_port}` (ports it picks, all covered by its retry),
//! `{publish_host}` (the host it publishes for the worker, which other nodes can reach) and
//! `{hostname}` (the node the rank runs on), in the argv and in the engine's own env; filled in
//! by the plan: `{gpus}`, `{role}`, `{model}`, `{served_model}`, `{disagg}`.
//!
//! To add an engine: a variant of [`crate::case::Engine`], its args type and a file here with
//! one `launch` function, then a snapshot case in `tests/engines.rs`.

mod command;
pub(crate) mod flags;
pub mod sglang;
pub mod sim;
pub mod trtllm;
pub mod vllm;
pub mod yaml11;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use command::CommandArgs;

use crate::case::{CacheTransceiver, Dialect, Engine, Parallel, SimEngineArgs};
use crate::plan::{EngineLaunch, GpuSlot, RoleName};

/// A worker group's `engine_args`, typed by the case's `engine:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EngineArgs {
    Sim(Box<SimEngineArgs>),
    Command(CommandArgs),
    /// trtllm: the extra-options YAML; vllm and sglang: more command-line flags.
    Options(serde_yaml_ng::Mapping),
}

impl Default for EngineArgs {
    fn default() -> Self {
        EngineArgs::Sim(Box::default())
    }
}

/// What the plan knows about one worker when it builds the engine's command.
pub struct WorkerSpec<'a> {
    pub exe: &'a str,
    pub role: RoleName,
    pub is_ctx: bool,
    /// `model.path` when set, else `model.name`: what the engine loads.
    pub model: &'a str,
    /// `model.name`: the name the benchmark sends, which the engine must serve.
    pub served_model: &'a str,
    pub parallel: Parallel,
    pub gpus: &'a [GpuSlot],
    pub run_dir: &'a Path,
    pub ready_file: PathBuf,
    /// `hardware.cache_transceiver`; `None` keeps each engine's default.
    pub cache_transceiver: Option<CacheTransceiver>,
    /// The router's dialect, which the sim speaks too.
    pub dialect: Dialect,
    /// `router.internal_request_auth_key`, which workers check signatures with.
    pub auth_key: Option<&'a str>,
    /// Where servers bind by default: loopback on one node, every interface (publishing the
    /// node's hostname) when the workers span several.
    pub bind_host: &'a str,
    /// TensorRT-LLM's own router routes this group by its workers' KV cache events
    /// (`router.kind: engine` with `prefix_affinity`): the workers must publish them.
    pub kv_events: bool,
}

impl WorkerSpec<'_> {
    /// The nodes the server spans (1 for a server within a node).
    pub fn nodes(&self) -> u32 {
        let mut nodes: Vec<u32> = self.gpus.iter().map(|g| g.node).collect();
        nodes.dedup();
        nodes.len().max(1) as u32
    }

    pub fn gpu_list(&self) -> String {
        self.gpus
            .iter()
            .map(|g| g.index.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A worker's engine: its launch, its rank count, and a file to write into the run folder.
pub struct Built {
    pub launch: EngineLaunch,
    pub ranks: u32,
    pub file: Option<(String, String)>,
}

/// Builds the engine launch of one worker.
pub fn build(engine: Engine, args: &EngineArgs, w: &WorkerSpec<'_>) -> Built {
    match (engine, args) {
        (Engine::Sim, EngineArgs::Sim(a)) => sim::build(a, w),
        (Engine::Command, EngineArgs::Command(a)) => command::build(a, w),
        (Engine::Trtllm, EngineArgs::Options(m)) => trtllm::build(m, w),
        (Engine::Vllm, EngineArgs::Options(m)) => vllm::build(m, w),
        (Engine::Sglang, EngineArgs::Options(m)) => sglang::build(m, w),
        (e, _) => unreachable!("engine_args of {e:?} are typed by the loader"),
    }
}

/// Processes (ranks) of one server of a group: one per GPU for trtllm, `engine_args.ranks` for
/// a command, one per node for vLLM and SGLang (a process that drives its node's GPUs, joined
/// to the others through `--nnodes`), one for the sim.
pub fn ranks(engine: Engine, args: &EngineArgs, parallel: Parallel, gpus_per_node: u32) -> u32 {
    match (engine, args) {
        (Engine::Trtllm, _) => trtllm::ranks(parallel),
        (Engine::Command, EngineArgs::Command(a)) => a.ranks.max(1),
        (Engine::Vllm | Engine::Sglang, _) => parallel
            .gpus_per_server()
            .div_ceil(gpus_per_node.max(1))
            .max(1),
        _ => 1,
    }
}

/// The rendezvous address of a server spanning nodes, filled in by the worker role: node rank
/// 0's host and a port it picks there (see [`EngineLaunch::node_args`]).
pub const DIST_INIT_HOST: &str = "{dist_init_host}";
pub const DIST_INIT_PORT: &str = "{dist_init_port}";

/// An engine that binds the port it is given: the role picks free ports and fills them in.
fn port_launch(argv: Vec<String>, host: &str) -> EngineLaunch {
    EngineLaunch {
        argv,
        ready_file: None,
        host: host.to_string(),
        env: Default::default(),
        side_channel_span: 1,
        node_args: Vec::new(),
        dist_span: 1,
    }
}

/// Fills the plan-time placeholders of one argument.
fn fill(arg: &str, w: &WorkerSpec<'_>) -> String {
    arg.replace("{gpus}", &w.gpu_list())
        .replace("{role}", &w.role.to_string())
        .replace("{model}", w.model)
        .replace("{served_model}", w.served_model)
        .replace("{disagg}", w.exe)
}
