//! What every role needs: publishing, waiting on the rendezvous, health polling.

use std::time::Duration;

use disagg_core::{Plan, RoleName};

use crate::rendezvous::{self, Endpoint, ExitNote, Status};

/// How often roles look at the rendezvous folder.
pub const POLL: Duration = Duration::from_millis(50);

pub fn publish(plan: &Plan, role: RoleName, host: &str, port: u16, pid: u32) -> Result<(), String> {
    publish_endpoint(
        plan,
        Endpoint {
            run_id: plan.run_id.clone(),
            role,
            host: host.to_string(),
            port,
            pid,
            bootstrap_port: None,
            side_channel_port: None,
        },
    )
}

/// Publishes `ep` (a worker's, with the extra ports its engine was given).
pub fn publish_endpoint(plan: &Plan, ep: Endpoint) -> Result<(), String> {
    let role = ep.role;
    let path = plan.rendezvous_file(role);
    crate::atomic::write_json(&path, &ep)
        .map_err(|e| format!("cannot publish {}: {e}", path.display()))?;
    eprintln!("disagg role {role}: ready at {}", ep.url());
    Ok(())
}

/// Why a role failed, and which role the failure is about when it is another one.
#[derive(Debug)]
pub struct Failed {
    pub reason: String,
    pub blame: Option<RoleName>,
}

impl From<String> for Failed {
    fn from(reason: String) -> Self {
        Self {
            reason,
            blame: None,
        }
    }
}

impl From<&str> for Failed {
    fn from(reason: &str) -> Self {
        reason.to_string().into()
    }
}

pub fn write_exit_note(plan: &Plan, role: RoleName, failed: &Failed) {
    let note = ExitNote {
        run_id: plan.run_id.clone(),
        role,
        reason: failed.reason.clone(),
        blame: failed.blame,
    };
    let _ = crate::atomic::write_json(&crate::supervisor::exit_note_path(plan, role), &note);
}

/// This machine's (this node's) hostname, what a server bound to every interface publishes.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// Resolves once `status.json` of this run exists.
pub async fn wait_for_status(plan: &Plan) -> Status {
    loop {
        if let Some(s) = rendezvous::read::<Status>(&plan.status_file(), &plan.run_id) {
            return s;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for another role's published address (the supervisor bounds how long).
pub async fn wait_for_endpoint(plan: &Plan, role: RoleName) -> Endpoint {
    loop {
        if let Some(ep) = rendezvous::read::<Endpoint>(&plan.rendezvous_file(role), &plan.run_id) {
            return ep;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One `/health` probe: true on 200.
pub async fn healthy(client: &reqwest::Client, base: &str) -> bool {
    match client
        .get(format!("{base}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
}
