//! CTX_i / GEN_i: start the engine, wait for its `/health`, publish its address, then watch it
//! until the run is over. The engine dying at any point fails the role at once, with its status.
//!
//! Engines that bind ports they are given get free ports picked here (`{port}`,
//! `{bootstrap_port}`, `{side_channel_port}` and the span after it), in their argv and in their
//! own env, with `{publish_host}` (the host this role publishes). They come from outside the
//! kernel's ephemeral range and are locked against other roles' picks ([`super::ports`]); a
//! program outside `disagg` may still bind one first, so an engine that dies before it is ready
//! saying "address in use" is started once more on other ports, all of them picked anew.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use disagg_core::plan::EngineLaunch;
use disagg_core::{Plan, RoleName};
use tokio::process::Command;

use super::shared::{POLL, healthy, http_client, publish_endpoint};
use crate::executor::Exit;
use crate::rendezvous::{self, DistInit, Endpoint, Status};
use disagg_core::engines::{DIST_INIT_HOST, DIST_INIT_PORT};

/// Why a start failed, and whether it failed before the engine was ready.
struct StartFailure {
    reason: String,
    early: bool,
}

pub async fn run(plan: &Plan, role: RoleName) -> Result<(), String> {
    let me = plan.role(role).expect("checked by run_role");
    let launch = me
        .engine
        .as_ref()
        .ok_or_else(|| format!("the plan gives {role} no engine to start"))?;
    // In a multi-rank step every rank runs the engine (an MPI program, or vLLM/SGLang on each
    // node of a server spanning nodes), but only rank 0 serves.
    let rank = std::env::var("SLURM_PROCID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    // One process per node, joined at a rendezvous node rank 0 holds: its other ranks hold
    // that first address, so a start on other ports would leave them behind.
    let spans_nodes = !launch.node_args.is_empty();
    let log = plan.run_dir.join(&me.log);
    for attempt in 0..2 {
        let mut ports = Ports::pick(launch, rank == 0)?;
        let dist = match (spans_nodes, rank) {
            (false, _) => None,
            (true, 0) => Some(publish_dist(plan, role, launch, &ports)?),
            (true, _) => match wait_for_dist(plan, role, rank).await {
                Some(d) => {
                    ports.join(&d);
                    Some(d)
                }
                // The run ended before node rank 0 got going.
                None => return Ok(()),
            },
        };
        let start = Start::new(launch, &ports, rank, dist.as_ref());
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let result = if rank > 0 {
            follow(plan, role, &start, rank).await
        } else {
            serve(plan, role, launch, &start, &ports).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(f)
                if f.early
                    && attempt == 0
                    && !spans_nodes
                    && ports.picked()
                    && address_in_use(&log, offset) =>
            {
                say!(
                    "disagg role {role}: the engine found its port taken ({}); retrying once on another",
                    f.reason
                );
            }
            Err(f) => return Err(f.reason),
        }
    }
    unreachable!("the second attempt returns")
}

/// Node rank 0 of a server spanning nodes: tells the other ranks where to join, before its
/// engine starts.
fn publish_dist(
    plan: &Plan,
    role: RoleName,
    launch: &EngineLaunch,
    ports: &Ports,
) -> Result<DistInit, String> {
    let d = DistInit {
        run_id: plan.run_id.clone(),
        role,
        host: advertised_host(&launch.host),
        port: ports.dist,
        bootstrap_port: (ports.bootstrap != 0).then_some(ports.bootstrap),
    };
    let path = DistInit::path(plan, role);
    crate::atomic::write_json(&path, &d)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    say!(
        "disagg role {role}: node rank 0 holds the rendezvous of the server's {} nodes at {}",
        launch.node_args.len(),
        disagg_proto::ready::authority(&d.host, d.port)
    );
    Ok(d)
}

/// A rank above 0 of a server spanning nodes: node rank 0's rendezvous, once it is written;
/// `None` if the run ends first.
async fn wait_for_dist(plan: &Plan, role: RoleName, rank: u32) -> Option<DistInit> {
    let path = DistInit::path(plan, role);
    loop {
        if let Some(d) = rendezvous::read::<DistInit>(&path, &plan.run_id) {
            say!(
                "disagg role {role}: node rank {rank} joins node rank 0 at {}",
                disagg_proto::ready::authority(&d.host, d.port)
            );
            return Some(d);
        }
        if released(plan) {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Ports picked for one start of the engine (0: not wanted), held against other roles'
/// picks until dropped (see [`super::ports`]).
struct Ports {
    port: u16,
    bootstrap: u16,
    /// Node rank 0 of a server spanning nodes: the rendezvous port (`{dist_init_port}`).
    dist: u16,
    /// The first of `launch.side_channel_span` consecutive free ports.
    side_channel: u16,
    _held: Vec<super::ports::Reserved>,
}

impl Ports {
    /// `rank0`: whether this process would hold a rendezvous (the other ranks take its port).
    fn pick(launch: &EngineLaunch, rank0: bool) -> Result<Self, String> {
        let wants = |p: &str| {
            launch.argv.iter().any(|a| a.contains(p)) || launch.env.values().any(|v| v.contains(p))
        };
        let host = launch.host.as_str();
        let mut held = Vec::new();
        let mut pick = |p: &str, span: u32| -> Result<u16, String> {
            if !wants(p) {
                return Ok(0);
            }
            let span = u16::try_from(span).map_err(|_| format!("a span of {span} ports"))?;
            let r = super::ports::reserve(host, span)?;
            let first = r.first;
            held.push(r);
            Ok(first)
        };
        Ok(Self {
            port: pick("{port}", 1)?,
            bootstrap: pick("{bootstrap_port}", 1)?,
            dist: if rank0 {
                pick(DIST_INIT_PORT, launch.dist_span.max(1))?
            } else {
                0
            },
            side_channel: pick("{side_channel_port}", launch.side_channel_span.max(1))?,
            _held: held,
        })
    }

    /// A node rank above 0 of a server spanning nodes: node rank 0's bootstrap port, not one
    /// of its own (see [`DistInit::bootstrap_port`]).
    fn join(&mut self, d: &DistInit) {
        if let Some(b) = d.bootstrap_port.filter(|&b| b != 0 && self.bootstrap != 0) {
            self.bootstrap = b;
        }
    }

    /// Whether the role chose any port, so a bind failure may be a lost race worth a retry.
    fn picked(&self) -> bool {
        self.port != 0 || self.bootstrap != 0 || self.side_channel != 0 || self.dist != 0
    }

    fn fill(&self, s: &str) -> String {
        s.replace("{port}", &self.port.to_string())
            .replace("{bootstrap_port}", &self.bootstrap.to_string())
            .replace("{side_channel_port}", &self.side_channel.to_string())
    }
}

/// One start of the engine: its argv and its own env, every placeholder filled in.
struct Start {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Start {
    /// The start of node rank `rank`, joining `dist` if the server spans nodes.
    fn new(launch: &EngineLaunch, ports: &Ports, rank: u32, dist: Option<&DistInit>) -> Self {
        let publish = advertised_host(&launch.host);
        let node = super::shared::hostname();
        let (dist_host, dist_port) = match dist {
            Some(d) => (d.host.clone(), d.port.to_string()),
            // A server within one node with a rendezvous span of its own (SGLang's attention
            // DP) holds it on loopback: all its processes are here.
            None if ports.dist != 0 => (
                disagg_core::plan::LOOPBACK.to_string(),
                ports.dist.to_string(),
            ),
            None => (String::new(), String::new()),
        };
        let fill = |s: &str| {
            let s = ports
                .fill(s)
                .replace("{host}", &launch.host)
                .replace("{publish_host}", &publish)
                .replace("{hostname}", &node);
            if !dist_port.is_empty() {
                s.replace(DIST_INIT_HOST, &dist_host)
                    .replace(DIST_INIT_PORT, &dist_port)
            } else {
                s
            }
        };
        Self {
            argv: launch.argv_of_node(rank).iter().map(|a| fill(a)).collect(),
            env: launch
                .env
                .iter()
                .map(|(k, v)| (k.clone(), fill(v)))
                .collect(),
        }
    }
}

fn address_in_use(log: &Path, offset: u64) -> bool {
    let Ok(bytes) = std::fs::read(log) else {
        return false;
    };
    let tail = String::from_utf8_lossy(bytes.get(offset as usize..).unwrap_or_default());
    let tail = tail.to_ascii_lowercase();
    tail.contains("address already in use") || tail.contains("address in use")
}

fn spawn(
    role: RoleName,
    start: &Start,
    image: Option<&str>,
) -> Result<tokio::process::Child, StartFailure> {
    let argv = &start.argv;
    let (program, args) = argv.split_first().ok_or(StartFailure {
        reason: "the engine command is empty".into(),
        early: false,
    })?;
    let env: Vec<String> = start.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    say!(
        "disagg role {role}: starting engine: {}{}",
        env.concat(),
        argv.join(" ")
    );
    // The engine inherits our stdout/stderr (the role's log) and our process group, so the
    // supervisor's group signals reach it even if this wrapper is gone. On a multi-rank step
    // its lines go through us instead, to carry the rank and host.
    let ranks_share_the_log = !super::shared::line_prefix().is_empty();
    let out = || {
        if ranks_share_the_log {
            Stdio::piped()
        } else {
            Stdio::inherit()
        }
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(&start.env)
        .stdin(Stdio::null())
        .stdout(out())
        .stderr(out())
        // No kill_on_drop: the role stops its engine with TERM and a grace period, and sweeps
        // every descendant when it ends (see `run_role`), however it ends.
        .spawn()
        .map_err(|e| StartFailure {
            reason: format!(
                "cannot start the engine `{program}`: {e}{}",
                why_not_started(program, &e, &start.env, image)
            ),
            early: false,
        })?;
    if let Some(o) = child.stdout.take() {
        super::shared::relay_lines(o);
    }
    if let Some(e) = child.stderr.take() {
        super::shared::relay_lines(e);
    }
    Ok(child)
}

fn early(reason: String) -> StartFailure {
    StartFailure {
        reason,
        early: true,
    }
}

fn late(reason: String) -> StartFailure {
    StartFailure {
        reason,
        early: false,
    }
}

/// Rank 0: start, wait for health, publish, watch.
async fn serve(
    plan: &Plan,
    role: RoleName,
    launch: &EngineLaunch,
    start: &Start,
    ports: &Ports,
) -> Result<(), StartFailure> {
    if let Some(f) = &launch.ready_file {
        let _ = std::fs::remove_file(f);
    }
    let mut engine = spawn(role, start, container_image(plan))?;
    let pid = engine.id().unwrap_or(0);
    let client = http_client();
    let exited = |e: std::io::Error| late(e.to_string());

    // 1. Its address (from its ready file, or the port we gave it), then its health.
    let (probe, port, wildcard) = loop {
        if let Some(status) = engine.try_wait().map_err(exited)? {
            return Err(early(format!(
                "{} {} before it was ready",
                engine_name(plan, 0),
                ended(status)
            )));
        }
        match &launch.ready_file {
            Some(f) => {
                if let Ok(text) = std::fs::read_to_string(f) {
                    if let Some(line) = text.lines().next().filter(|l| !l.trim().is_empty()) {
                        let addr = line.trim().to_string();
                        let (host, port) = split_host_port(&addr).ok_or_else(|| {
                            late(format!("the engine published `{addr}`, not host:port"))
                        })?;
                        // A wildcard bind is probed on loopback, from this node.
                        break (
                            disagg_proto::ready::authority(probe_host(&host), port),
                            port,
                            probe_host(&host) != host,
                        );
                    }
                }
            }
            None => {
                break (
                    format!("{}:{}", probe_host(&launch.host), ports.port),
                    ports.port,
                    probe_host(&launch.host) != launch.host,
                );
            }
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    };
    let loopback = format!("http://{probe}");
    // An engine whose argv binds its node's name (`--host {hostname}`, as TensorRT-LLM's own
    // Slurm scripts start trtllm-serve with `--host $(hostname)`) does not answer on loopback:
    // a bind the plan left to it (a wildcard) is asked at the node's name too.
    let named = wildcard.then(|| {
        format!(
            "http://{}",
            disagg_proto::ready::authority(&super::shared::hostname(), port)
        )
    });
    let also = named
        .as_ref()
        .map(|n| format!(" (or {n}/health)"))
        .unwrap_or_default();
    say!("disagg role {role}: engine (pid {pid}) at {probe}; waiting for {loopback}/health{also}");
    let base = loop {
        if let Some(status) = engine.try_wait().map_err(exited)? {
            return Err(early(format!(
                "{} {} before its /health answered 200",
                engine_name(plan, 0),
                ended(status)
            )));
        }
        if healthy(&client, &loopback).await {
            break loopback;
        }
        if let Some(n) = &named {
            if healthy(&client, n).await {
                break n.clone();
            }
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    };
    let host = publish_host(&launch.host, &probe);
    let given = |p: u16| (p != 0).then_some(p);
    let ep = Endpoint {
        run_id: plan.run_id.clone(),
        role,
        host,
        port,
        pid,
        bootstrap_port: given(ports.bootstrap),
        side_channel_port: given(ports.side_channel),
        engine_version: super::shared::engine_version(&client, &base).await,
    };
    publish_endpoint(plan, ep).map_err(late)?;

    // 2. Watch it until the run is over.
    let alone = plan
        .role(role)
        .is_some_and(|r| r.ranks <= 1 && launch.node_args.is_empty());
    watch(engine, plan, &engine_name(plan, 0), " while serving", alone).await
}

/// Ranks above 0: run the engine until the run is over; its death fails the role, naming the
/// rank and its node (the step's own status is srun's TERM of the others).
async fn follow(plan: &Plan, role: RoleName, start: &Start, rank: u32) -> Result<(), StartFailure> {
    let engine = spawn(role, start, container_image(plan))?;
    watch(engine, plan, &engine_name(plan, rank), "", false)
        .await
        .map_err(|mut f| {
            // Said as node rank 0's are: before the server served, or while it did.
            let served =
                rendezvous::read::<Endpoint>(&plan.rendezvous_file(role), &plan.run_id).is_some();
            f.reason.push_str(if served {
                " while serving"
            } else {
                " before the server was ready"
            });
            f
        })
}

/// How the role's failure names its engine: with the rank and node in a step of several ranks
/// (`its engine's rank 1 (on node-c)`), with the node in a job of several nodes.
fn engine_name(plan: &Plan, rank: u32) -> String {
    if super::shared::line_prefix().is_empty() {
        if plan.nodes > 1 {
            format!("its engine (on {})", super::shared::hostname())
        } else {
            "its engine".into()
        }
    } else {
        format!(
            "its engine's rank {rank} (on {})",
            super::shared::hostname()
        )
    }
}

/// Until the run is over: the engine's death fails the role the moment it happens (the first
/// rank of a step to fail is its root cause, so the time counts), unless the run was already
/// released (its other ranks are stopped as the run ends, and it may go with them).
///
/// An engine that is its role's only process has no other rank to go with: nothing but its
/// role stops it, and the role has not yet when it sees the exit. Its exit after the release is
/// its own (a crash on the last request, or as the load ended) and fails the role all the same;
/// it passed silently, with the exit status unsaid.
async fn watch(
    mut engine: tokio::process::Child,
    plan: &Plan,
    name: &str,
    when: &str,
    alone: bool,
) -> Result<(), StartFailure> {
    loop {
        tokio::select! {
            status = engine.wait() => {
                let status = status.map_err(|e| late(e.to_string()))?;
                if released(plan) {
                    if !alone {
                        say_err!(
                            "{}disagg role: {name} {} after the run was released (its other \
                             ranks are stopped as the run ends)",
                            super::shared::line_prefix(),
                            Exit::from(status)
                        );
                        return Ok(());
                    }
                    return Err(late(format!(
                        "{name} {} as the benchmark ended (after its last requests, before the \
                         run stopped it)",
                        ended(status)
                    )));
                }
                return Err(late(format!("{name} {}{when}", ended(status))));
            }
            _ = tokio::time::sleep(POLL) => {
                if released(plan) {
                    return stop(engine, plan).await;
                }
            }
        }
    }
}

/// How an engine's exit is said in its role's failure. A clean exit is a failure too (an
/// engine serves until the run stops it): said so, since "exited with status 0" under a
/// failure reads as a contradiction.
fn ended(status: std::process::ExitStatus) -> String {
    let exit = Exit::from(status);
    if exit == Exit::Code(0) {
        format!(
            "{exit} (an engine must serve until the run stops it; it ended on its own, with no \
             error)"
        )
    } else {
        exit.to_string()
    }
}

/// Where to probe an engine bound to `host`.
pub(super) fn probe_host(host: &str) -> &str {
    match host {
        "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        h => h,
    }
}

/// What other roles, maybe on other nodes, should connect to: the node's hostname for a
/// wildcard bind, else the address probed.
pub(super) fn publish_host(bound: &str, probe: &str) -> String {
    match bound {
        "0.0.0.0" | "::" | "[::]" => advertised_host(bound),
        _ => split_host_port(probe)
            .map(|(h, _)| h)
            .unwrap_or_else(|| bound.to_string()),
    }
}

/// The host published for an engine bound to `bound`, known before it starts (`{publish_host}`):
/// the node's hostname for a wildcard bind, else the bound address itself.
fn advertised_host(bound: &str) -> String {
    match bound {
        "0.0.0.0" | "::" | "[::]" => super::shared::hostname(),
        _ => bound.to_string(),
    }
}

pub(super) fn released(plan: &Plan) -> bool {
    rendezvous::read::<Status>(&plan.status_file(), &plan.run_id).is_some()
}

async fn stop(engine: tokio::process::Child, plan: &Plan) -> Result<(), StartFailure> {
    terminate(engine, plan).await;
    Ok(())
}

/// TERM, a grace period, KILL: the same ladder as the supervisor's, for our one child.
pub(super) async fn terminate(mut engine: tokio::process::Child, plan: &Plan) {
    if let Some(pid) = engine.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let grace = plan.deadlines.grace.min(Duration::from_secs(30));
    if tokio::time::timeout(grace, engine.wait()).await.is_err() {
        let _ = engine.kill().await;
    }
}

pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The image this role's step runs in: the case's container, under Slurm (the local launcher
/// runs no container).
fn container_image(plan: &Plan) -> Option<&str> {
    plan.slurm
        .container
        .as_ref()
        .filter(|_| std::env::var_os("SLURM_JOB_ID").is_some())
        .map(|c| c.image.as_str())
}

/// What a failed start means in words: a bare name not found is not on the workers' PATH (which
/// is quoted), or, in a container, not in its image; a permission error is a file not
/// executable.
fn why_not_started(
    program: &str,
    e: &std::io::Error,
    env: &std::collections::BTreeMap<String, String>,
    image: Option<&str>,
) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound if !program.contains('/') => {
            let path = env
                .get("PATH")
                .cloned()
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_default();
            match image {
                Some(image) => format!(
                    "; it is not on the container's PATH ({path}): use an image that has it \
                     (this one is {image}), mount its folder (`slurm.container.mounts`) and put \
                     it on PATH, or name it by its full path inside the container"
                ),
                None => format!(
                    "; it is not on the workers' PATH ({path}): install it there, put its folder \
                     on PATH for `disagg run`, or name it by its full path"
                ),
            }
        }
        std::io::ErrorKind::PermissionDenied => {
            "; it is not executable (chmod +x), or a folder on the way is not searchable"
                .to_string()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_missing_in_a_container_points_at_the_image() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        let env: BTreeMap<String, String> = [("PATH".to_string(), "/usr/bin".to_string())].into();
        let there = why_not_started("vllm", &e, &env, Some("nvcr.io/x/vllm:1"));
        assert!(
            there.starts_with("; it is not on the container's PATH (/usr/bin): use an image that has it (this one is nvcr.io/x/vllm:1)"),
            "{there}"
        );
        let here = why_not_started("vllm", &e, &env, None);
        assert!(
            here.contains("put its folder on PATH for `disagg run`"),
            "{here}"
        );
    }

    /// After the benchmark's release, an engine that was its role's only process and exited on
    /// its own (a crash on the last request) fails the role; a rank of a step of several may
    /// go with the others as they are stopped.
    #[tokio::test]
    async fn an_engine_alone_that_exits_after_the_release_fails_its_role() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(disagg_core::plan::rendezvous_dir(dir.path())).unwrap();
        let case = disagg_core::parse_case(
            "model: {name: m}\nctx: {count: 1}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 8}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let plan = disagg_core::plan::build(&case, "RUN1", dir.path(), Path::new("disagg"));
        crate::atomic::write_json_new(
            &plan.status_file(),
            &Status {
                run_id: "RUN1".into(),
                state: rendezvous::State::Done,
                role: None,
                reason: None,
            },
        )
        .unwrap();
        let crash = || Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let e = watch(crash(), &plan, "its engine", " while serving", true)
            .await
            .unwrap_err();
        assert!(
            e.reason
                .contains("its engine exited with status 3 as the benchmark ended"),
            "{}",
            e.reason
        );
        assert!(
            watch(crash(), &plan, "its engine's rank 1", "", false)
                .await
                .is_ok()
        );
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:80"),
            Some(("127.0.0.1".into(), 80))
        );
        assert_eq!(split_host_port("[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("nope"), None);
    }

    #[test]
    fn address_in_use_is_found_only_after_the_offset() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let log = dir.join("w.log");
        std::fs::write(&log, "old: Address already in use\nnew: started\n").unwrap();
        assert!(address_in_use(&log, 0));
        assert!(!address_in_use(&log, 28));
    }

    fn launch(argv: &[&str], env: &[(&str, &str)], span: u32) -> EngineLaunch {
        EngineLaunch {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            ready_file: None,
            host: "127.0.0.1".into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            side_channel_span: span,
            node_args: Vec::new(),
            dist_span: 1,
        }
    }

    #[test]
    fn ports_and_hosts_are_filled_in_the_argv_and_the_engines_env() {
        let p = Ports {
            port: 8001,
            bootstrap: 9001,
            dist: 0,
            side_channel: 5601,
            _held: Vec::new(),
        };
        let l = launch(
            &["--host", "{host}", "--port", "{port}", "b={bootstrap_port}"],
            &[("SIDE", "{publish_host}:{side_channel_port}")],
            1,
        );
        let s = Start::new(&l, &p, 0, None);
        assert_eq!(s.argv, ["--host", "127.0.0.1", "--port", "8001", "b=9001"]);
        assert_eq!(s.env["SIDE"], "127.0.0.1:5601");
    }

    #[test]
    fn each_node_rank_runs_its_own_args_joined_at_node_rank_0s_rendezvous() {
        let mut l = launch(
            &[
                "srv",
                "--dist-init-addr",
                "{dist_init_host}:{dist_init_port}",
            ],
            &[],
            1,
        );
        l.node_args = vec![
            vec!["--node-rank".into(), "0".into()],
            vec!["--node-rank".into(), "1".into(), "--headless".into()],
        ];
        // Only node rank 0 picks the rendezvous port; the others take it from its file.
        let p0 = Ports::pick(&l, true).unwrap();
        assert!(p0.dist != 0 && p0.picked());
        assert_eq!(Ports::pick(&l, false).unwrap().dist, 0);
        let d = DistInit {
            run_id: "R".into(),
            role: RoleName::Gen(0),
            host: "node1".into(),
            port: 4242,
            bootstrap_port: None,
        };
        let s = Start::new(&l, &p0, 1, Some(&d));
        assert_eq!(
            s.argv,
            [
                "srv",
                "--dist-init-addr",
                "node1:4242",
                "--node-rank",
                "1",
                "--headless"
            ]
        );
        assert_eq!(
            Start::new(&l, &p0, 0, Some(&d)).argv[3..],
            ["--node-rank", "0"]
        );
    }

    /// SGLang's prefill ranks on other nodes register at the rendezvous host on their own
    /// bootstrap port: every node's process is started with node rank 0's.
    #[test]
    fn a_prefill_spanning_nodes_gives_every_node_rank_0s_bootstrap_port() {
        let mut l = launch(
            &[
                "srv",
                "--disaggregation-bootstrap-port",
                "{bootstrap_port}",
                "--dist-init-addr",
                "{dist_init_host}:{dist_init_port}",
            ],
            &[],
            1,
        );
        l.node_args = vec![
            vec!["--node-rank".into(), "0".into()],
            vec!["--node-rank".into(), "1".into()],
        ];
        let p0 = Ports::pick(&l, true).unwrap();
        let d = DistInit {
            run_id: "R".into(),
            role: RoleName::Ctx(0),
            host: "node1".into(),
            port: p0.dist,
            bootstrap_port: Some(p0.bootstrap),
        };
        let mut p1 = Ports::pick(&l, false).unwrap();
        assert_ne!(p1.bootstrap, p0.bootstrap, "picked on its own");
        p1.join(&d);
        let s1 = Start::new(&l, &p1, 1, Some(&d));
        assert_eq!(s1.argv[2], p0.bootstrap.to_string(), "{:?}", s1.argv);
        assert_eq!(
            Start::new(&l, &p0, 0, Some(&d)).argv[2],
            p0.bootstrap.to_string()
        );
    }

    #[test]
    fn only_wanted_ports_are_picked_and_a_span_is_free_as_a_whole() {
        let l = launch(&["{port}"], &[("P", "{side_channel_port}")], 4);
        let p = Ports::pick(&l, true).unwrap();
        assert!(p.port != 0 && p.side_channel != 0 && p.bootstrap == 0);
        assert!(p.picked());
        for i in 0..4 {
            std::net::TcpListener::bind(("127.0.0.1", p.side_channel + i))
                .unwrap_or_else(|e| panic!("side channel port +{i} is taken: {e}"));
        }
        // Held against other roles' picks while the role lives.
        let again = Ports::pick(&l, true).unwrap();
        assert!(again.port != p.port && again.side_channel != p.side_channel);
        let none = Ports::pick(&launch(&["srv"], &[], 1), true).unwrap();
        assert!(!none.picked(), "nothing to pick, nothing to retry for");
    }
}
