//! CTX_i / GEN_i: start the engine, wait for its `/health`, publish its address, then watch it
//! until the run is over. The engine dying at any point fails the role at once, with its status.

use std::process::Stdio;
use std::time::Duration;

use disagg_core::{Plan, RoleName};
use tokio::process::Command;

use super::shared::{POLL, healthy, http_client, publish};
use crate::executor::Exit;
use crate::rendezvous::{self, Status};

pub async fn run(plan: &Plan, role: RoleName) -> Result<(), String> {
    let me = plan.role(role).expect("checked by run_role");
    let launch = me
        .engine
        .as_ref()
        .ok_or_else(|| format!("the plan gives {role} no engine to start"))?;
    let (program, args) = launch
        .argv
        .split_first()
        .ok_or("the engine command is empty")?;
    let _ = std::fs::remove_file(&launch.ready_file);
    eprintln!(
        "disagg role {role}: starting engine: {}",
        launch.argv.join(" ")
    );
    // The engine inherits our stdout/stderr (the role's log) and our process group, so the
    // supervisor's group signals reach it even if this wrapper is gone.
    let mut engine = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the engine `{program}`: {e}"))?;
    let pid = engine.id().unwrap_or(0);
    let client = http_client();

    // 1. Its address, then its health; the engine dying meanwhile ends the wait.
    let addr = loop {
        if let Some(status) = engine.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "its engine {} before it was ready",
                Exit::from(status)
            ));
        }
        if let Ok(text) = std::fs::read_to_string(&launch.ready_file) {
            if let Some(line) = text.lines().next().filter(|l| !l.trim().is_empty()) {
                break line.trim().to_string();
            }
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    };
    let (host, port) = split_host_port(&addr)
        .ok_or_else(|| format!("the engine published `{addr}`, not host:port"))?;
    let base = format!("http://{addr}");
    eprintln!("disagg role {role}: engine (pid {pid}) bound {addr}; waiting for {base}/health");
    loop {
        if let Some(status) = engine.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "the engine {status} before its /health answered 200"
            ));
        }
        if healthy(&client, &base).await {
            break;
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    }
    publish(plan, role, &host, port, pid)?;

    // 2. Watch it until the run is over.
    loop {
        if let Some(status) = engine.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("its engine {} while serving", Exit::from(status)));
        }
        if released(plan) {
            return stop(engine, plan).await;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn released(plan: &Plan) -> bool {
    rendezvous::read::<Status>(&plan.status_file(), &plan.run_id).is_some()
}

/// TERM, a grace period, KILL: the same ladder as the supervisor's, for our one child.
async fn stop(mut engine: tokio::process::Child, plan: &Plan) -> Result<(), String> {
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
    Ok(())
}

pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:80"),
            Some(("127.0.0.1".into(), 80))
        );
        assert_eq!(split_host_port("[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(split_host_port("nope"), None);
    }
}
