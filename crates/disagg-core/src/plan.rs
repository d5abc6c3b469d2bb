//! The plan: every role of one run, with its command, GPUs, environment and log file, and the
//! deadlines. It is written to `plan.json` in the run folder, and each role process reads its own
//! entry from there, so what `disagg plan` prints is exactly what runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::case::{Benchmark, EnvValue, RouterKind, RouterSpec, SlurmSpec, Timeouts};
use crate::load::LoadedCase;
use crate::name::ConfigName;

/// Version of `plan.json`'s layout.
pub const PLAN_VERSION: u32 = 1;

/// One role of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleName {
    Ctx(u32),
    Gen(u32),
    /// A router: the only one (`DISAGG_SERVER`, `None`), or replica `i` of several
    /// (`DISAGG_SERVER_i`, `router.replicas` > 1).
    DisaggServer(Option<u32>),
    Benchmark,
}

impl RoleName {
    /// The router of a run with one.
    pub const DISAGG_SERVER: RoleName = RoleName::DisaggServer(None);

    pub fn is_ctx(&self) -> bool {
        matches!(self, RoleName::Ctx(_))
    }

    pub fn is_worker(&self) -> bool {
        matches!(self, RoleName::Ctx(_) | RoleName::Gen(_))
    }

    pub fn is_router(&self) -> bool {
        matches!(self, RoleName::DisaggServer(_))
    }

    /// The `server_config.yaml` a router role writes (one per replica).
    pub fn server_config_file(&self) -> String {
        match self {
            RoleName::DisaggServer(Some(i)) => format!("server_config_{i}.yaml"),
            _ => "server_config.yaml".into(),
        }
    }

    /// The role's log file name in the run folder (ARCHITECTURE.md).
    pub fn log_file(&self) -> String {
        match self {
            RoleName::Ctx(i) => format!("ctx_server_{i}.log"),
            RoleName::Gen(i) => format!("gen_server_{i}.log"),
            RoleName::DisaggServer(None) => "disagg_server.log".into(),
            RoleName::DisaggServer(Some(i)) => format!("disagg_server_{i}.log"),
            RoleName::Benchmark => "benchmark.log".into(),
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleName::Ctx(i) => write!(f, "CTX_{i}"),
            RoleName::Gen(i) => write!(f, "GEN_{i}"),
            RoleName::DisaggServer(None) => f.write_str("DISAGG_SERVER"),
            RoleName::DisaggServer(Some(i)) => write!(f, "DISAGG_SERVER_{i}"),
            RoleName::Benchmark => f.write_str("BENCHMARK"),
        }
    }
}

impl FromStr for RoleName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let index = |rest: &str| {
            rest.parse::<u32>()
                .map_err(|_| format!("`{s}`: the index after `_` must be a number"))
        };
        match s {
            "DISAGG_SERVER" => Ok(RoleName::DISAGG_SERVER),
            "BENCHMARK" => Ok(RoleName::Benchmark),
            _ => {
                if let Some(rest) = s.strip_prefix("DISAGG_SERVER_") {
                    Ok(RoleName::DisaggServer(Some(index(rest)?)))
                } else if let Some(rest) = s.strip_prefix("CTX_") {
                    Ok(RoleName::Ctx(index(rest)?))
                } else if let Some(rest) = s.strip_prefix("GEN_") {
                    Ok(RoleName::Gen(index(rest)?))
                } else {
                    Err(format!(
                        "`{s}` is not a role; roles are CTX_<i>, GEN_<i>, DISAGG_SERVER (or \
                         DISAGG_SERVER_<i> of several), BENCHMARK"
                    ))
                }
            }
        }
    }
}

impl Serialize for RoleName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One GPU: its node (0-based within the job) and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuSlot {
    pub node: u32,
    pub index: u32,
}

/// What a worker role starts and how it finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineLaunch {
    /// May hold `{host}`, `{port}` and `{bootstrap_port}`, which the role fills in.
    pub argv: Vec<String>,
    /// The sim writes `host:port` here once bound; engines without one get the ports the role
    /// picks and are found through them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_file: Option<PathBuf>,
    /// The address the engine binds (`{host}`); for `0.0.0.0` the role publishes the node's
    /// hostname.
    #[serde(default = "loopback")]
    pub host: String,
    /// Variables set for the engine alone (on top of the role's); values may hold
    /// `{publish_host}` and the role's ports, which the role fills in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Consecutive ports from `{side_channel_port}` the engine binds (vLLM: one per
    /// data-parallel rank); the role picks them all free.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub side_channel_span: u32,
    /// A server that runs one process per node (vLLM, SGLang spanning nodes): the arguments
    /// node rank `i` adds to `argv` (its `--node-rank`, vLLM's `--headless` above 0). Node rank
    /// 0 serves; it binds the group's rendezvous port, `{dist_init_port}` on
    /// `{dist_init_host}`, which the role picks there and hands to the other nodes' ranks.
    /// Empty for a server on one node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_args: Vec<Vec<String>>,
    /// Consecutive ports from `{dist_init_port}` node rank 0's engine binds (SGLang derives its
    /// inter-node sockets from the rendezvous port); the role picks them all free.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub dist_span: u32,
}

impl EngineLaunch {
    /// The argv node rank `rank` runs: `argv` plus its own `node_args`.
    pub fn argv_of_node(&self, rank: u32) -> Vec<String> {
        let mut argv = self.argv.clone();
        if let Some(extra) = self.node_args.get(rank as usize) {
            argv.extend(extra.iter().cloned());
        }
        argv
    }
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn loopback() -> String {
    "127.0.0.1".into()
}

/// One role's entry in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePlan {
    pub role: RoleName,
    /// Log file name in the run folder.
    pub log: String,
    pub gpus: Vec<GpuSlot>,
    /// The role process: `disagg role <ROLE> --run-dir <DIR>`.
    pub argv: Vec<String>,
    /// For workers: the engine the role starts and watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineLaunch>,
    /// Variables set for the role (and what it starts).
    pub env_set: BTreeMap<String, String>,
    /// Variables removed from the role's environment.
    pub env_unset: Vec<String>,
    /// Processes (MPI ranks) of the role's step: 1, or tp×pp×cp for a multi-rank engine.
    #[serde(default = "one")]
    pub ranks: u32,
}

fn one() -> u32 {
    1
}

/// Everything one run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: u32,
    pub config_name: ConfigName,
    pub run_id: String,
    pub run_dir: PathBuf,
    /// The case file as given.
    pub case_file: PathBuf,
    pub model: String,
    /// `model.path`, where real engines load the model from (a container must see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<String>,
    pub roles: Vec<RolePlan>,
    pub deadlines: Timeouts,
    pub router: RouterSpec,
    pub benchmark: Benchmark,
    /// Baseline CSV, resolved; `None` when the case has none.
    pub perf_baseline: Option<PathBuf>,
    /// `perf.baseline: history`: the history gate's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perf_history: Option<crate::case::HistoryGate>,
    /// `setup` argv, run once before the workers into `install.log`.
    pub setup: Option<Vec<String>>,
    /// Nodes of the job: those the workers span (GPU slots packed in order), then
    /// `front_nodes` for the routers and the benchmark; 1 at least.
    #[serde(default = "one_node")]
    pub nodes: u32,
    /// Nodes of their own for the routers and the benchmark (`slurm.front_nodes`), the last
    /// ones of the job.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub front_nodes: u32,
    /// GPUs per node, for the Slurm tasks per node.
    #[serde(default = "eight")]
    pub gpus_per_node: u32,
    /// The case's `slurm:` section, for `--launcher slurm`.
    #[serde(default)]
    pub slurm: SlurmSpec,
    /// Files written into the run folder before launch (name → content), e.g. trtllm's
    /// per-group extra-options YAML.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

fn one_node() -> u32 {
    1
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn eight() -> u32 {
    8
}

impl Plan {
    /// The plan as the local launcher runs it: one process per role on this machine, so every
    /// role has one rank, and a TensorRT-LLM server of several GPUs runs as one `trtllm-serve`
    /// that spawns its ranks itself, not under `trtllm-llmapi-launch` (which would find a world
    /// of one process). `disagg plan` shows it so; Slurm runs the plan as built.
    pub fn on_one_machine(mut self) -> Self {
        for r in &mut self.roles {
            if let Some(launch) = &mut r.engine {
                crate::engines::trtllm::one_process(launch);
            }
            r.ranks = 1;
        }
        self
    }

    /// Whether the workers span more than one node, so that roles reach each other by hostname.
    pub fn multi_node(&self) -> bool {
        self.nodes > 1
    }

    pub fn role(&self, name: RoleName) -> Option<&RolePlan> {
        self.roles.iter().find(|r| r.role == name)
    }

    pub fn workers(&self) -> impl Iterator<Item = &RolePlan> {
        self.roles.iter().filter(|r| r.role.is_worker())
    }

    /// TensorRT-LLM's gen-only fill gate: the largest `TLLM_BENCHMARK_REQ_QUEUES_SIZE` a GEN
    /// worker gets, when above 1. Such a worker starts no generation until that many requests
    /// are in, so a lone request (the canary) would wait for ever.
    pub fn gen_fill_gate(&self) -> Option<u64> {
        fill_gate(&self.roles)
    }

    /// The router roles: DISAGG_SERVER, or DISAGG_SERVER_0.. with `router.replicas` > 1.
    pub fn routers(&self) -> impl Iterator<Item = &RolePlan> {
        self.roles.iter().filter(|r| r.role.is_router())
    }

    /// The node (0-based within the job) a router or the benchmark runs on. Without front
    /// nodes: router replica `i` on node `i` of the job (wrapping around when there are more
    /// replicas than nodes), the benchmark on the first node. With them: replica `i` on front
    /// node `i % front_nodes`, the benchmark on the first front node.
    pub fn router_node(&self, role: RoleName) -> u32 {
        let (first, count) = match self.front_nodes {
            0 => (0, self.nodes.max(1)),
            n => (self.nodes.saturating_sub(n), n),
        };
        match role {
            RoleName::DisaggServer(Some(i)) => first + i % count,
            _ => first,
        }
    }

    /// GPUs of all workers together (for tok/s per GPU).
    pub fn worker_gpus(&self) -> usize {
        self.workers().map(|r| r.gpus.len()).sum()
    }

    /// Where a role publishes its address (ARCHITECTURE.md's rendezvous).
    pub fn rendezvous_file(&self, role: RoleName) -> PathBuf {
        rendezvous_dir(&self.run_dir).join(format!("{role}.json"))
    }

    pub fn status_file(&self) -> PathBuf {
        rendezvous_dir(&self.run_dir).join("status.json")
    }
}

pub fn rendezvous_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("rendezvous")
}

/// Builds the plan of `case` for a run in `run_dir`; `exe` is the `disagg` binary the roles run.
pub fn build(case: &LoadedCase, run_id: &str, run_dir: &Path, exe: &Path) -> Plan {
    let c = &case.case;
    let exe_s = exe.display().to_string();
    let role_argv = |role: RoleName| {
        vec![
            exe_s.clone(),
            "role".into(),
            role.to_string(),
            "--run-dir".into(),
            run_dir.display().to_string(),
        ]
    };
    let common_env = |role: RoleName| {
        let mut env = BTreeMap::new();
        env.insert("DISAGG_SERVING_TYPE".to_string(), role.to_string());
        env.insert("DISAGG_RUN_ID".to_string(), run_id.to_string());
        env.insert("DISAGG_RUN_DIR".to_string(), run_dir.display().to_string());
        // Python engines (and TensorRT-LLM's own router) write their logs unbuffered: a role's
        // log is a file, where Python buffers stdout in 8 KiB blocks, so a crash lost the lines
        // that explain it, and a point's iteration lines (gen-only step times) could reach the
        // log after the point. The case's env may set it otherwise; `worker_unset` may drop it.
        env.insert("PYTHONUNBUFFERED".to_string(), "1".to_string());
        env
    };
    let gpus_per_node = c.hardware.gpus_per_node;
    // A worker that another node must reach binds every interface and publishes its node's
    // hostname; on one node everything stays on loopback.
    let front_nodes = c.slurm.front_nodes;
    let nodes = span(&place_workers(c)) + front_nodes;
    let bind_host = if nodes > 1 { ANY_HOST } else { LOOPBACK };
    let mut next_gpu = 0u32;
    let mut roles = Vec::new();
    let mut files = BTreeMap::new();
    for (is_ctx, group) in [(true, &c.ctx), (false, &c.generation)] {
        for i in 0..group.count {
            let role = if is_ctx {
                RoleName::Ctx(i)
            } else {
                RoleName::Gen(i)
            };
            let gpus = allocate(
                &mut next_gpu,
                group.parallel.gpus_per_server(),
                gpus_per_node,
            );
            let mut env = common_env(role);
            // Our default gives way to the case's unset list (its own values do not).
            if c.env.worker_unset.iter().any(|k| k == "PYTHONUNBUFFERED") {
                env.remove("PYTHONUNBUFFERED");
            }
            extend(&mut env, &c.env.worker);
            extend(&mut env, &group.env);
            // The case's own CUDA_VISIBLE_DEVICES (`env.worker`, the group's `env`) names the
            // node's GPUs the workers may use (the free ones of a shared machine): the plan's
            // GPU k is its k-th (`validate` checks it names enough).
            let pool = gpu_pool(&env);
            // Per node: a server spanning nodes sees the same indices on each of them.
            let first = gpus.first().map(|g| g.node).unwrap_or(0);
            let visible: Vec<String> = gpus
                .iter()
                .filter(|g| g.node == first)
                .map(|g| match &pool {
                    Some(p) => p
                        .get(g.index as usize)
                        .cloned()
                        .unwrap_or_else(|| g.index.to_string()),
                    None => g.index.to_string(),
                })
                .collect();
            env.insert("CUDA_VISIBLE_DEVICES".into(), visible.join(","));
            let built = crate::engines::build(
                c.engine,
                &group.engine_args,
                &crate::engines::WorkerSpec {
                    exe: &exe_s,
                    role,
                    is_ctx,
                    model: c.model.path.as_deref().unwrap_or(&c.model.name),
                    served_model: &c.model.name,
                    parallel: group.parallel,
                    gpus: &gpus,
                    run_dir,
                    ready_file: rendezvous_dir(run_dir).join(format!("{role}.engine")),
                    cache_transceiver: c.hardware.cache_transceiver,
                    dialect: c.router.dialect(),
                    auth_key: c.router.internal_request_auth_key.as_deref(),
                    bind_host,
                    kv_events: c.router.kind == crate::case::RouterKind::Engine
                        && if is_ctx {
                            c.router.ctx_policy()
                        } else {
                            c.router.gen_policy()
                        } == crate::case::Policy::PrefixAffinity,
                },
            );
            // The sim reads its key from the environment, so it stays out of the process list.
            if let (crate::case::Engine::Sim, Some(key)) =
                (c.engine, &c.router.internal_request_auth_key)
            {
                // A group's own env may set another (to test a mismatched key).
                env.entry("DISAGG_INTERNAL_REQUEST_AUTH_KEY".into())
                    .or_insert_with(|| key.clone());
            }
            if let Some((name, text)) = built.file {
                files.insert(name, text);
            }
            // A variable the case sets for these workers (`env.worker`, the group's `env`) wins
            // over the one disagg sets for their engine: `VLLM_NIXL_SIDE_CHANNEL_HOST` as the
            // node's address where its hostname resolves to a loopback one.
            let mut launch = built.launch;
            launch
                .env
                .retain(|k, _| !c.env.worker.contains_key(k) && !group.env.contains_key(k));
            roles.push(RolePlan {
                role,
                log: role.log_file(),
                gpus,
                argv: role_argv(role),
                engine: Some(launch),
                env_set: env,
                env_unset: c.env.worker_unset.clone(),
                ranks: built.ranks,
            });
        }
    }
    let routers: Vec<RoleName> = match c.router.replicas {
        0 | 1 => vec![RoleName::DISAGG_SERVER],
        n => (0..n).map(|i| RoleName::DisaggServer(Some(i))).collect(),
    };
    let others = routers
        .into_iter()
        .map(|r| (r, &c.env.server))
        .chain([(RoleName::Benchmark, &c.env.benchmark)]);
    for (role, vars) in others {
        let mut env = common_env(role);
        extend(&mut env, vars);
        let engine = match role {
            RoleName::DisaggServer(_) => {
                router_launch(&c.router, &c.timeouts, role, run_dir, &exe_s, bind_host)
            }
            _ => None,
        };
        roles.push(RolePlan {
            role,
            log: role.log_file(),
            gpus: Vec::new(),
            argv: role_argv(role),
            engine,
            env_set: env,
            env_unset: Vec::new(),
            ranks: 1,
        });
    }
    let gate = fill_gate(&roles);
    let mpi = default_mpi(c, &roles);
    Plan {
        version: PLAN_VERSION,
        config_name: case.config_name.clone(),
        run_id: run_id.to_string(),
        run_dir: run_dir.to_path_buf(),
        case_file: case.path.clone(),
        model: c.model.name.clone(),
        model_path: c.model.path.clone(),
        roles,
        deadlines: Timeouts {
            // Under a gen-only fill gate, GEN holds its first requests until the whole batch
            // is in, however long the context servers take: no default stall limit then.
            stall: match (c.timeouts.stall, gate) {
                (None, Some(_)) => None,
                _ => c.timeouts.stall_in_force(c.benchmark.streaming),
            },
            ..c.timeouts
        },
        router: c.router.clone(),
        benchmark: resolve_benchmark_paths(&c.benchmark, &case.path),
        perf_baseline: case.baseline_path(),
        perf_history: c.perf.history_gate(),
        setup: c.setup.as_ref().map(|s| s.argv()),
        nodes,
        front_nodes,
        gpus_per_node,
        slurm: crate::slurm::SlurmSpec {
            mpi: c.slurm.mpi.clone().or(mpi),
            ..c.slurm.clone()
        },
        files,
    }
}

/// `srun --mpi=` for the worker steps when the case does not say: PMIx for TensorRT-LLM
/// servers of several ranks, which `trtllm-llmapi-launch` joins into one MPI world through it
/// (TensorRT-LLM's Slurm scripts pass `--mpi=pmix`). Left to the cluster's `MpiDefault`,
/// often `none`, each rank would be an MPI world of its own. A cluster without the plugin
/// refuses the step at once, naming it; `slurm.mpi` picks another (`pmi2`, `none`).
fn default_mpi(c: &crate::case::Case, roles: &[RolePlan]) -> Option<String> {
    (c.engine == crate::case::Engine::Trtllm && roles.iter().any(|r| r.ranks > 1))
        .then(|| "pmix".to_string())
}

/// Where a worker on one node binds, and what it publishes.
pub const LOOPBACK: &str = "127.0.0.1";
/// Where a server that other nodes must reach binds; it publishes its node's hostname.
pub const ANY_HOST: &str = "0.0.0.0";

/// Whether an address is a loopback one, which no other node can reach.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Every worker with its GPU slots, in plan order (CTX_0.., then GEN_0..), as [`build`] places
/// them.
pub fn place_workers(c: &crate::case::Case) -> Vec<(RoleName, Vec<GpuSlot>)> {
    let mut next = 0u32;
    let mut out = Vec::new();
    for (is_ctx, group) in [(true, &c.ctx), (false, &c.generation)] {
        for i in 0..group.count {
            let role = if is_ctx {
                RoleName::Ctx(i)
            } else {
                RoleName::Gen(i)
            };
            let gpus = allocate(
                &mut next,
                group.parallel.gpus_per_server(),
                c.hardware.gpus_per_node,
            );
            out.push((role, gpus));
        }
    }
    out
}

/// A worker group whose servers each run one process on every node they span (vLLM, SGLang
/// larger than a node, joined through `--nnodes`): its name and the nodes of one server. The
/// local launcher, on one machine, cannot run it.
pub fn per_node_servers(c: &crate::case::Case) -> Option<(&'static str, u32)> {
    if !matches!(
        c.engine,
        crate::case::Engine::Vllm | crate::case::Engine::Sglang
    ) {
        return None;
    }
    let per_node = c.hardware.gpus_per_node.max(1);
    [("ctx", &c.ctx), ("gen", &c.generation)]
        .into_iter()
        .map(|(g, group)| (g, group.parallel.gpus_per_server().div_ceil(per_node)))
        .find(|&(_, nodes)| nodes > 1)
}

/// Nodes the workers span; 1 at least.
pub fn span(placed: &[(RoleName, Vec<GpuSlot>)]) -> u32 {
    placed
        .iter()
        .flat_map(|(_, g)| g.iter().map(|g| g.node + 1))
        .max()
        .unwrap_or(1)
}

/// The router DISAGG_SERVER starts instead of serving ours in-process, if any. It reads the
/// `server_config.yaml` the role writes (`server_config_<i>.yaml` for replica `i`), with the
/// host and port the role picked.
fn router_launch(
    r: &RouterSpec,
    t: &crate::case::Timeouts,
    role: RoleName,
    run_dir: &Path,
    exe: &str,
    bind_host: &str,
) -> Option<EngineLaunch> {
    let config = run_dir
        .join(role.server_config_file())
        .display()
        .to_string();
    let (argv, host): (Vec<String>, &str) = match r.kind {
        RouterKind::Builtin => return None,
        // Its own bounds default to 180 s each: `-t` (--server_start_timeout) how long it waits
        // for every worker's /health, `-r` (--request_timeout) each request to a worker. A
        // long-prompt or long-output request outlasts 180 s; the case's deadlines are the ones
        // to keep (whole seconds, rounded up, as it takes integers).
        RouterKind::Engine => (
            vec![
                "trtllm-serve".into(),
                "disaggregated".into(),
                "-c".into(),
                config,
                "-t".into(),
                whole_seconds(t.worker_startup),
                "-r".into(),
                whole_seconds(t.request),
            ],
            "0.0.0.0",
        ),
        RouterKind::Command => (
            r.argv
                .iter()
                .flatten()
                .map(|a| {
                    a.replace("{server_config}", &config)
                        .replace("{disagg}", exe)
                })
                .collect(),
            bind_host,
        ),
    };
    Some(EngineLaunch {
        argv,
        ready_file: None,
        host: host.into(),
        env: BTreeMap::new(),
        side_channel_span: 1,
        node_args: Vec::new(),
        dist_span: 1,
    })
}

/// A duration as a whole number of seconds, rounded up, at least 1.
fn whole_seconds(d: std::time::Duration) -> String {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .max(1)
        .to_string()
}

/// Dataset and tokenizer paths are relative to the case file; the plan carries them absolute,
/// since roles run from wherever the executor starts them.
pub fn resolve_benchmark_paths(b: &Benchmark, case_file: &Path) -> Benchmark {
    let dir = case_file.parent().unwrap_or(Path::new("."));
    let resolve = |f: &Option<String>| {
        f.as_ref().map(|f| {
            let p = dir.join(f);
            std::path::absolute(&p).unwrap_or(p).display().to_string()
        })
    };
    Benchmark {
        dataset: resolve(&b.dataset),
        tokenizer: resolve(&b.tokenizer),
        ..b.clone()
    }
}

/// The GPUs a worker's own `CUDA_VISIBLE_DEVICES` (the case's, in `env`) names, in order.
pub fn gpu_pool(env: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let v = env.get("CUDA_VISIBLE_DEVICES")?;
    Some(
        v.split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn extend(env: &mut BTreeMap<String, String>, vars: &BTreeMap<String, EnvValue>) {
    for (k, v) in vars {
        env.insert(k.clone(), v.as_string());
    }
}

/// Packs servers onto nodes in order; a server never straddles a node unless it is larger than one.
///
/// A server larger than a node takes whole nodes: it starts on a node of its own, fills each
/// node in turn (its ranks block-wise, `gpus_per_node` per node, the remainder on the last, as
/// TensorRT-LLM's Slurm scripts place them), and nothing else is placed on its last node. Slurm
/// asks the same GPU count of every node of a step (`--gres=gpu:N`), so the step holds all of
/// its last node's GPUs anyway; those it does not use stay idle ([`idle_gpus`]).
fn allocate(next: &mut u32, count: u32, per_node: u32) -> Vec<GpuSlot> {
    let offset = *next % per_node;
    if offset != 0 && (count > per_node || offset + count > per_node) {
        *next += per_node - offset;
    }
    let slots = (0..count)
        .map(|k| GpuSlot {
            node: (*next + k) / per_node,
            index: (*next + k) % per_node,
        })
        .collect();
    *next += count;
    if count > per_node {
        *next = next.div_ceil(per_node) * per_node;
    }
    slots
}

/// For a server spanning nodes whose last node it does not fill: that node and the GPU indices
/// there which it holds but does not use (see [`allocate`]).
pub fn idle_gpus(gpus: &[GpuSlot], per_node: u32) -> Option<(u32, Vec<u32>)> {
    let first = gpus.first()?.node;
    let last = gpus.last()?.node;
    if first == last {
        return None;
    }
    let used = gpus.iter().filter(|g| g.node == last).count() as u32;
    (used < per_node).then(|| (last, (used..per_node).collect()))
}

/// `a-b` for a run of consecutive indices, else the list.
fn index_range(v: &[u32]) -> String {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if v.len() > 1 && b - a + 1 == v.len() as u32 => format!("{a}-{b}"),
        _ => v
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// What `disagg validate` and `disagg run` say of values that look like shell variables
/// (`$NAME`, `${NAME}`) in paths and environment values: nothing expands them (every argv and
/// variable is passed as written, no shell in between), so `${MODEL_DIR}/llama` reaches the
/// engine as those very characters.
pub fn unexpanded_notes(c: &crate::case::Case) -> Vec<String> {
    fn variable(v: &str) -> Option<&str> {
        let at = v.find('$')?;
        let rest = &v[at + 1..];
        let starts = rest
            .chars()
            .next()
            .is_some_and(|ch| ch == '{' || ch == '_' || ch.is_ascii_alphabetic());
        starts.then_some(&v[at..])
    }
    let mut out = Vec::new();
    let mut say = |key: String, v: &str| {
        if let Some(var) = variable(v) {
            let name: String = var
                .trim_start_matches(['$', '{'])
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            out.push(format!(
                "`{key}` is `{v}`: nothing expands `${name}` here (values reach the engines as \
                 written, with no shell in between); write the value itself"
            ));
        }
    };
    if let Some(p) = &c.model.path {
        say("model.path".into(), p);
    }
    for (k, v) in [
        ("benchmark.dataset", &c.benchmark.dataset),
        ("benchmark.tokenizer", &c.benchmark.tokenizer),
    ] {
        if let Some(v) = v {
            say(k.into(), v);
        }
    }
    let envs = [
        ("env.worker", &c.env.worker),
        ("env.server", &c.env.server),
        ("env.benchmark", &c.env.benchmark),
        ("ctx.env", &c.ctx.env),
        ("gen.env", &c.generation.env),
    ];
    for (scope, env) in envs {
        for (name, v) in env {
            if let crate::case::EnvValue::Str(v) = v {
                say(format!("{scope}.{name}"), v);
            }
        }
    }
    out
}

/// The vLLM or SGLang `engine_args` keys whose options (`--key-with-dashes`, as the plan passes
/// them) no release of the engine takes: its argparse refuses the server at start
/// ("unrecognized arguments"), and so does the sim's stand-in. Notes, not case errors: these
/// option lists change with every release, and new options come in families a letter apart
/// (`--attn-cp-size`, `--attn-dp-size`), so a near miss may be an option newer than the list.
fn flag_notes(
    c: &crate::case::Case,
    engine: disagg_proto::engine_flags::FlagEngine,
    name: &str,
    prog: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (group, m) in option_groups(c) {
        for (k, v) in m.iter().filter_map(|(k, v)| Some((k.as_str()?, v))) {
            let flag = format!("--{}", k.replace('_', "-"));
            // `false` and null leave the option out of the command line (`to_flags`).
            let passed = !matches!(
                v,
                serde_yaml_ng::Value::Bool(false) | serde_yaml_ng::Value::Null
            );
            if !passed || engine.takes(&flag) {
                continue;
            }
            let near = crate::load::closest_known(&flag, engine.options())
                .map(|n| {
                    format!(
                        " (did you mean `{}`?)",
                        n.trim_start_matches('-').replace('-', "_")
                    )
                })
                .unwrap_or_default();
            out.push(format!(
                "`{group}.engine_args.{k}` is `{flag}`, an option no {name} release disagg knows \
                 takes{near}: `{prog}` refuses to start on an option it does not have \
                 (\"unrecognized arguments\"), and so does the sim's stand-in; check it against \
                 your release's `--help`"
            ));
        }
    }
    out
}

/// What `disagg validate` and `disagg run` say of the benchmark's load that runs but does not
/// measure what it seems to: a closed-loop point with fewer prompts than its concurrency never
/// has that many requests in flight.
pub fn load_notes(c: &crate::case::Case) -> Vec<String> {
    let b = &c.benchmark;
    let closed = b.request_rate.as_ref().is_none_or(|r| r.is_empty());
    let (Some(n), true) = (b.num_prompts, closed) else {
        return Vec::new();
    };
    let over: Vec<String> = b
        .concurrency
        .iter()
        .flatten()
        .filter(|&&k| u64::from(k) > n)
        .map(|k| k.to_string())
        .collect();
    if over.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "`benchmark.num_prompts` ({n}) is below the concurrency of point(s) {}: such a point \
         never has more than {n} requests in flight, so it measures concurrency {n} under \
         another name; raise num_prompts to at least the concurrency (or leave it out: \
         concurrency × rounds)",
        over.join(", ")
    )]
}

/// The groups whose `engine_args` are an options mapping, by their case key (`ctx`, `gen`).
fn option_groups(
    c: &crate::case::Case,
) -> impl Iterator<Item = (&'static str, &serde_yaml_ng::Mapping)> {
    [("ctx", &c.ctx), ("gen", &c.generation)]
        .into_iter()
        .filter_map(|(group, g)| match &g.engine_args {
            crate::engines::EngineArgs::Options(m) => Some((group, m)),
            _ => None,
        })
}

/// What `disagg validate` and `disagg run` say of an `engine_args` key no release of the engine
/// disagg knows takes: for TensorRT-LLM, a top-level or nested key that is no near miss of a
/// known one (those are case errors); for vLLM and SGLang, any unknown option ([`flag_notes`]).
/// It may be newer than disagg's list, or a mistake the server refuses at start.
pub fn engine_arg_notes(c: &crate::case::Case) -> Vec<String> {
    use disagg_proto::engine_flags::FlagEngine;
    let flags = match c.engine {
        crate::case::Engine::Vllm => Some((FlagEngine::Vllm, "vLLM", "vllm serve")),
        crate::case::Engine::Sglang => Some((FlagEngine::Sglang, "SGLang", "sglang.launch_server")),
        _ => None,
    };
    if let Some((engine, name, prog)) = flags {
        return flag_notes(c, engine, name, prog);
    }
    if c.engine != crate::case::Engine::Trtllm {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (group, m) in option_groups(c) {
        for k in m.keys().filter_map(|k| k.as_str()) {
            if !disagg_proto::llm_args::LLM_ARGS.contains(&k) {
                out.push(format!(
                    "`{group}.engine_args.{k}` is not an argument of any TensorRT-LLM release \
                     disagg knows (up to 1.4): a release that lacks it refuses to start (\"LLM \
                     got invalid argument\"), and so does the sim's trtllm-serve stand-in; \
                     check the name against your release's `tensorrt_llm/llmapi/llm_args.py`"
                ));
            }
        }
        for (section, k, _) in disagg_proto::llm_args::unknown_nested_keys(m) {
            out.push(format!(
                "`{group}.engine_args.{section}.{k}` is not a key of `{section}` in any \
                 TensorRT-LLM release disagg knows (up to 1.4): from 1.0 on a release that lacks \
                 it refuses to start (\"Extra inputs are not permitted\"), and so does the \
                 sim's trtllm-serve stand-in; check the name against your release's \
                 `tensorrt_llm/llmapi/llm_args.py`"
            ));
        }
    }
    out
}

/// What `disagg validate` and `disagg plan` say about where the workers go, how they are
/// routed and in what: one line per server that spans nodes without filling its last one, one
/// when TensorRT-LLM's own cache-aware router must tokenize the benchmark's prompts, and one for
/// a container image written as enroot does not read it.
pub fn placement_notes(c: &crate::case::Case) -> Vec<String> {
    let per_node = c.hardware.gpus_per_node;
    let mut notes: Vec<String> = place_workers(c)
        .iter()
        .filter_map(|(role, gpus)| {
            let (node, idle) = idle_gpus(gpus, per_node)?;
            Some(idle_note(*role, gpus, node, &idle))
        })
        .collect();
    notes.extend(kv_router_note(c));
    notes.extend(image_form_note(c));
    notes
}

/// enroot (which pyxis runs) reads an image as `[REGISTRY#]IMAGE[:TAG]`: in `nvcr.io/nvidia/x`
/// the registry is part of the image's name, looked up on Docker Hub unless the user's enroot
/// credentials happen to name `nvcr.io` (enroot calls that form "mistakenly specified").
fn image_form_note(c: &crate::case::Case) -> Option<String> {
    let image = &c.slurm.container.as_ref()?.image;
    let fixed = enroot_image(image)?;
    let bare = image.strip_prefix("docker://").unwrap_or(image);
    Some(format!(
        "slurm.container.image `{image}`: enroot (under pyxis) reads an image as \
         `REGISTRY#IMAGE:TAG`, so this one is looked up on Docker Hub as `{bare}` unless your \
         enroot credentials name its registry; write `{fixed}`"
    ))
}

/// `image` in enroot's form (`[USER@]REGISTRY#IMAGE[:TAG]`) when it names its registry before a
/// `/` (`nvcr.io/nvidia/x:1` → `nvcr.io#nvidia/x:1`); `None` when it is fine as it is (enroot's
/// form already, Docker Hub's, or a squashfs file).
pub fn enroot_image(image: &str) -> Option<String> {
    let bare = image.strip_prefix("docker://").unwrap_or(image);
    // A squashfs file, or a registry already given enroot's way.
    if bare.starts_with(['/', '.']) || bare.contains('#') {
        return None;
    }
    let (first, rest) = bare.split_once('/')?;
    let host = first.rsplit_once('@').map_or(first, |(_, h)| h);
    let registry = host.contains('.') || host.contains(':') || host == "localhost";
    registry.then(|| format!("{first}#{rest}"))
}

/// TensorRT-LLM's `kv_cache_aware` router (`router.kind: engine` with `prefix_affinity`) hashes
/// each prompt's tokens: token ids as they come, text and chat prompts tokenized with
/// `AutoTokenizer.from_pretrained(<the request's model>)`, which is `model.name`.
fn kv_router_note(c: &crate::case::Case) -> Option<String> {
    use crate::case::{Policy, RouterKind};
    let r = &c.router;
    let cache_aware = r.kind == RouterKind::Engine
        && (r.ctx_policy() == Policy::PrefixAffinity || r.gen_policy() == Policy::PrefixAffinity);
    let b = &c.benchmark;
    let text = b.endpoint.contains("chat") || b.tokenizer.is_some() || b.dataset.is_some();
    (cache_aware && text).then(|| {
        format!(
            "router.kind engine with prefix_affinity runs TensorRT-LLM's kv_cache_aware router, \
             which tokenizes every text or chat prompt with \
             AutoTokenizer.from_pretrained(\"{}\") (model.name, the name the benchmark sends): \
             unless that loads a tokenizer (a local path or a Hugging Face id) on the router's \
             node, every request fails there (older releases fail every chat request whatever \
             the name); the random workload without benchmark.tokenizer sends token ids, which \
             it takes as they are",
            c.model.name
        )
    })
}

fn idle_note(role: RoleName, gpus: &[GpuSlot], node: u32, idle: &[u32]) -> String {
    let first = gpus.first().map_or(0, |g| g.node);
    let shares: Vec<String> = (first..=node)
        .map(|n| gpus.iter().filter(|g| g.node == n).count().to_string())
        .collect();
    format!(
        "{role} spans {} nodes with {} GPUs ({}) and has its last, node {}, to itself: GPUs {} there stay \
         idle (a Slurm step gets the same GPU count on every node)",
        shares.len(),
        gpus.len(),
        shares.join(" + "),
        // Counted from 1, as every note's nodes are.
        node + 1,
        index_range(idle)
    )
}

/// The largest `TLLM_BENCHMARK_REQ_QUEUES_SIZE` above 1 among GEN roles (see
/// [`Plan::gen_fill_gate`]).
/// TensorRT-LLM's variable for its gen-only fill gate, set on GEN workers.
pub const FILL_GATE_VAR: &str = "TLLM_BENCHMARK_REQ_QUEUES_SIZE";

fn fill_gate(roles: &[RolePlan]) -> Option<u64> {
    roles
        .iter()
        .filter(|r| matches!(r.role, RoleName::Gen(_)))
        .flat_map(|r| {
            let launch = r.engine.as_ref().and_then(|e| e.env.get(FILL_GATE_VAR));
            [r.env_set.get(FILL_GATE_VAR), launch]
        })
        .flatten()
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 1)
        .max()
}

/// The human-readable plan `disagg plan` prints.
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let h = |d| humantime::format_duration(d).to_string();
    let mut s = String::new();
    let _ = writeln!(s, "config name: {}", plan.config_name);
    let _ = writeln!(s, "run folder:  {}", plan.run_dir.display());
    let d = &plan.deadlines;
    let _ = writeln!(
        s,
        "deadlines:   worker_startup {}, request {}, benchmark {}, job {}, grace {}, unresponsive {}{}",
        h(d.worker_startup),
        h(d.request),
        h(d.benchmark),
        h(d.job),
        h(d.grace),
        h(d.unresponsive),
        d.stall
            .map(|stall| format!(", stall {}", h(stall)))
            .unwrap_or_default()
    );
    if let Some(b) = &plan.perf_baseline {
        let _ = writeln!(s, "baseline:    {}", b.display());
    }
    if let Some(setup) = &plan.setup {
        let _ = writeln!(s, "setup:       {setup:?} -> install.log");
    }
    for (name, text) in &plan.files {
        let _ = writeln!(s, "\nfile {name}:");
        for line in text.lines() {
            let _ = writeln!(s, "  | {line}");
        }
    }
    for r in &plan.roles {
        let _ = writeln!(s, "\n{} -> {}", r.role, r.log);
        if r.ranks > 1 {
            let _ = writeln!(s, "  ranks:     {}", r.ranks);
        }
        if !r.gpus.is_empty() {
            let gpus: Vec<String> = r
                .gpus
                .iter()
                .map(|g| format!("node{}:{}", g.node, g.index))
                .collect();
            let _ = writeln!(s, "  gpus:      {}", gpus.join(" "));
            if let Some((node, idle)) = idle_gpus(&r.gpus, plan.gpus_per_node) {
                let _ = writeln!(
                    s,
                    "  note:      {}",
                    idle_note(r.role, &r.gpus, node, &idle)
                );
            }
        }
        let _ = writeln!(s, "  argv:      {}", r.argv.join(" "));
        if let Some(e) = &r.engine {
            let _ = writeln!(s, "  engine:    {}", e.argv.join(" "));
            for (i, extra) in e
                .node_args
                .iter()
                .enumerate()
                .filter(|(_, x)| !x.is_empty())
            {
                let _ = writeln!(s, "  node {i} adds: {}", extra.join(" "));
            }
            for (k, v) in &e.env {
                let _ = writeln!(s, "  engine env: {k}={v}");
            }
        }
        for (k, v) in &r.env_set {
            let _ = writeln!(s, "  env set:   {k}={v}");
        }
        for k in &r.env_unset {
            let _ = writeln!(s, "  env unset: {k}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_with_its_registry_before_a_slash_is_noted_in_enroots_form() {
        let note = |image: &str| {
            let mut c: crate::case::Case = serde_yaml_ng::from_str(
                "model: {name: m}\nctx: {count: 1}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 8}\n",
            )
            .unwrap();
            c.slurm.container = Some(crate::slurm::Container {
                image: image.into(),
                mounts: Vec::new(),
                workdir: None,
            });
            image_form_note(&c)
        };
        let n = note("nvcr.io/nvidia/pytorch:24.05-py3").unwrap();
        assert!(
            n.contains("write `nvcr.io#nvidia/pytorch:24.05-py3`"),
            "{n}"
        );
        assert!(
            note("docker://me@registry.local:5000/team/img:1")
                .unwrap()
                .contains("write `me@registry.local:5000#team/img:1`")
        );
        for fine in [
            "nvcr.io#nvidia/pytorch:24.05-py3",
            "lmsysorg/sglang:v0.5.23",
            "ubuntu",
            "/lustre/images/trtllm.sqsh",
            "./img.sqsh",
        ] {
            assert_eq!(note(fine), None, "{fine}");
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in [
            RoleName::Ctx(0),
            RoleName::Gen(12),
            RoleName::DISAGG_SERVER,
            RoleName::DisaggServer(Some(0)),
            RoleName::DisaggServer(Some(3)),
            RoleName::Benchmark,
        ] {
            assert_eq!(r.to_string().parse::<RoleName>().unwrap(), r);
        }
        assert_eq!(
            RoleName::DisaggServer(Some(2)).to_string(),
            "DISAGG_SERVER_2"
        );
        assert_eq!(
            RoleName::DisaggServer(Some(2)).log_file(),
            "disagg_server_2.log"
        );
        assert!("DISAGG_SERVER_x".parse::<RoleName>().is_err());
        assert!("CTX_x".parse::<RoleName>().is_err());
        assert!("WORKER".parse::<RoleName>().is_err());
    }

    #[test]
    fn whole_seconds_round_up_and_never_reach_zero() {
        use std::time::Duration;
        assert_eq!(whole_seconds(Duration::from_secs(1800)), "1800");
        assert_eq!(whole_seconds(Duration::from_millis(1500)), "2");
        assert_eq!(whole_seconds(Duration::from_millis(200)), "1");
        assert_eq!(whole_seconds(Duration::ZERO), "1");
    }

    #[test]
    fn servers_do_not_straddle_nodes() {
        let mut next = 0;
        let a = allocate(&mut next, 4, 8);
        let b = allocate(&mut next, 8, 8);
        assert_eq!(
            a.iter().map(|g| (g.node, g.index)).collect::<Vec<_>>(),
            vec![(0, 0), (0, 1), (0, 2), (0, 3)]
        );
        assert_eq!(b[0], GpuSlot { node: 1, index: 0 });
        assert_eq!(b[7], GpuSlot { node: 1, index: 7 });
        let mut next = 4;
        let c = allocate(&mut next, 16, 8);
        assert_eq!(c[0], GpuSlot { node: 1, index: 0 });
        assert_eq!(c[15], GpuSlot { node: 2, index: 7 });
    }

    #[test]
    fn a_server_spanning_nodes_has_its_last_node_to_itself() {
        // TensorRT-LLM ctx tp 12 and gen tp 4 on 8-GPU nodes: 8 + 4 for CTX_0, whose step
        // holds all 8 GPUs of its second node; GEN_0 goes to the third.
        let mut next = 0;
        let ctx = allocate(&mut next, 12, 8);
        let gen_ = allocate(&mut next, 4, 8);
        let at = |v: &[GpuSlot]| v.iter().map(|g| (g.node, g.index)).collect::<Vec<_>>();
        assert_eq!(at(&ctx[..8]), (0..8).map(|i| (0, i)).collect::<Vec<_>>());
        assert_eq!(at(&ctx[8..]), vec![(1, 0), (1, 1), (1, 2), (1, 3)]);
        assert_eq!(at(&gen_), vec![(2, 0), (2, 1), (2, 2), (2, 3)]);
        assert_eq!(idle_gpus(&ctx, 8), Some((1, vec![4, 5, 6, 7])));
        assert_eq!(idle_gpus(&gen_, 8), None);
        assert_eq!(
            idle_note(RoleName::Ctx(0), &ctx, 1, &[4, 5, 6, 7]),
            "CTX_0 spans 2 nodes with 12 GPUs (8 + 4) and has its last, node 2, to itself: GPUs 4-7 there \
             stay idle (a Slurm step gets the same GPU count on every node)"
        );
        // Whole nodes leave nothing idle, and the next server starts right after.
        let mut next = 0;
        let a = allocate(&mut next, 16, 8);
        assert_eq!(idle_gpus(&a, 8), None);
        assert_eq!(allocate(&mut next, 1, 8)[0], GpuSlot { node: 2, index: 0 });
    }
}
