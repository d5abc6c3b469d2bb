//! CTX_i / GEN_i: start the engine, wait for its `/health`, publish its address, then watch it
//! until the run is over. The engine dying at any point fails the role at once, with its status.
//!
//! Engines that bind a port they are given get free ports picked here (`{port}`,
//! `{bootstrap_port}`); picking is racy, so an engine that dies before it is ready saying
//! "address in use" is started once more on other ports.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use disagg_core::plan::EngineLaunch;
use disagg_core::{Plan, RoleName};
use tokio::process::Command;

use super::shared::{POLL, healthy, http_client, publish};
use crate::executor::Exit;
use crate::rendezvous::{self, Status};

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
    // In a multi-rank step every rank runs the engine (an MPI program), but only rank 0 serves.
    let rank = std::env::var("SLURM_PROCID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let log = plan.run_dir.join(&me.log);
    for attempt in 0..2 {
        let ports = Ports::pick(launch)?;
        let argv = ports.fill(&launch.argv);
        let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let result = if rank > 0 {
            follow(plan, role, &argv).await
        } else {
            serve(plan, role, launch, &argv, &ports).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(f)
                if f.early
                    && attempt == 0
                    && launch.ready_file.is_none()
                    && address_in_use(&log, offset) =>
            {
                eprintln!(
                    "disagg role {role}: the engine found its port taken ({}); retrying once on another",
                    f.reason
                );
            }
            Err(f) => return Err(f.reason),
        }
    }
    unreachable!("the second attempt returns")
}

/// Ports picked for one start of the engine.
struct Ports {
    port: u16,
    bootstrap: u16,
}

impl Ports {
    fn pick(launch: &EngineLaunch) -> Result<Self, String> {
        let wants = |p: &str| launch.argv.iter().any(|a| a.contains(p));
        let free = |host: &str| -> Result<u16, String> {
            let l = std::net::TcpListener::bind((host, 0))
                .map_err(|e| format!("cannot find a free port on {host}: {e}"))?;
            Ok(l.local_addr().map_err(|e| e.to_string())?.port())
        };
        Ok(Self {
            port: if wants("{port}") {
                free(&launch.host)?
            } else {
                0
            },
            bootstrap: if wants("{bootstrap_port}") {
                free(&launch.host)?
            } else {
                0
            },
        })
    }

    fn fill(&self, argv: &[String]) -> Vec<String> {
        argv.iter()
            .map(|a| {
                a.replace("{port}", &self.port.to_string())
                    .replace("{bootstrap_port}", &self.bootstrap.to_string())
            })
            .collect()
    }
}

/// The host to fill in for `{host}` is the launch's own; `fill` of the role only does ports, so
/// the host is substituted here.
fn with_host(argv: Vec<String>, host: &str) -> Vec<String> {
    argv.into_iter()
        .map(|a| a.replace("{host}", host))
        .collect()
}

fn address_in_use(log: &Path, offset: u64) -> bool {
    let Ok(bytes) = std::fs::read(log) else {
        return false;
    };
    let tail = String::from_utf8_lossy(bytes.get(offset as usize..).unwrap_or_default());
    let tail = tail.to_ascii_lowercase();
    tail.contains("address already in use") || tail.contains("address in use")
}

fn spawn(role: RoleName, argv: &[String]) -> Result<tokio::process::Child, StartFailure> {
    let (program, args) = argv.split_first().ok_or(StartFailure {
        reason: "the engine command is empty".into(),
        early: false,
    })?;
    eprintln!("disagg role {role}: starting engine: {}", argv.join(" "));
    // The engine inherits our stdout/stderr (the role's log) and our process group, so the
    // supervisor's group signals reach it even if this wrapper is gone.
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        // No kill_on_drop: the role stops its engine with TERM and a grace period, and sweeps
        // every descendant when it ends (see `run_role`), however it ends.
        .spawn()
        .map_err(|e| StartFailure {
            reason: format!("cannot start the engine `{program}`: {e}"),
            early: false,
        })
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
    argv: &[String],
    ports: &Ports,
) -> Result<(), StartFailure> {
    if let Some(f) = &launch.ready_file {
        let _ = std::fs::remove_file(f);
    }
    let argv = with_host(argv.to_vec(), &launch.host);
    let mut engine = spawn(role, &argv)?;
    let pid = engine.id().unwrap_or(0);
    let client = http_client();
    let exited = |e: std::io::Error| late(e.to_string());

    // 1. Its address (from its ready file, or the port we gave it), then its health.
    let (probe, port) = loop {
        if let Some(status) = engine.try_wait().map_err(exited)? {
            return Err(early(format!(
                "its engine {} before it was ready",
                Exit::from(status)
            )));
        }
        match &launch.ready_file {
            Some(f) => {
                if let Ok(text) = std::fs::read_to_string(f) {
                    if let Some(line) = text.lines().next().filter(|l| !l.trim().is_empty()) {
                        let addr = line.trim().to_string();
                        let (_, port) = split_host_port(&addr).ok_or_else(|| {
                            late(format!("the engine published `{addr}`, not host:port"))
                        })?;
                        break (addr, port);
                    }
                }
            }
            None => {
                break (
                    format!("{}:{}", probe_host(&launch.host), ports.port),
                    ports.port,
                );
            }
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    };
    let base = format!("http://{probe}");
    eprintln!("disagg role {role}: engine (pid {pid}) at {probe}; waiting for {base}/health");
    loop {
        if let Some(status) = engine.try_wait().map_err(exited)? {
            return Err(early(format!(
                "its engine {} before its /health answered 200",
                Exit::from(status)
            )));
        }
        if healthy(&client, &base).await {
            break;
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    }
    let host = publish_host(&launch.host, &probe);
    publish(plan, role, &host, port, pid).map_err(late)?;

    // 2. Watch it until the run is over.
    loop {
        if let Some(status) = engine.try_wait().map_err(exited)? {
            return Err(late(format!(
                "its engine {} while serving",
                Exit::from(status)
            )));
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Ranks above 0: run the engine until the run is over; its death fails the role.
async fn follow(plan: &Plan, role: RoleName, argv: &[String]) -> Result<(), StartFailure> {
    let launch = plan
        .role(role)
        .and_then(|r| r.engine.as_ref())
        .expect("checked by run");
    let argv = with_host(argv.to_vec(), &launch.host);
    let mut engine = spawn(role, &argv)?;
    loop {
        if let Some(status) = engine.try_wait().map_err(|e| late(e.to_string()))? {
            return Err(late(format!(
                "its engine (a non-zero rank) {}",
                Exit::from(status)
            )));
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Where to probe an engine bound to `host`.
pub(super) fn probe_host(host: &str) -> &str {
    match host {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    }
}

/// What other roles, maybe on other nodes, should connect to.
pub(super) fn publish_host(bound: &str, probe: &str) -> String {
    match bound {
        "0.0.0.0" | "::" => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "127.0.0.1".into()),
        _ => split_host_port(probe)
            .map(|(h, _)| h)
            .unwrap_or_else(|| bound.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = std::env::temp_dir().join(format!("disagg-aiu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("w.log");
        std::fs::write(&log, "old: Address already in use\nnew: started\n").unwrap();
        assert!(address_in_use(&log, 0));
        assert!(!address_in_use(&log, 28));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ports_are_filled_in() {
        let p = Ports {
            port: 8001,
            bootstrap: 9001,
        };
        let argv = vec![
            "--port".to_string(),
            "{port}".into(),
            "b={bootstrap_port}".into(),
        ];
        assert_eq!(p.fill(&argv), vec!["--port", "8001", "b=9001"]);
    }
}
