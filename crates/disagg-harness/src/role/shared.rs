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
            engine_version: None,
        },
    )
}

/// Publishes `ep` (a worker's, with the extra ports its engine was given).
pub fn publish_endpoint(plan: &Plan, ep: Endpoint) -> Result<(), String> {
    let role = ep.role;
    let path = plan.rendezvous_file(role);
    crate::atomic::write_json(&path, &ep)
        .map_err(|e| format!("cannot publish {}: {e}", path.display()))?;
    say!("disagg role {role}: ready at {}", ep.url());
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
    // A rank of a step of several tasks (they share the role's log, so they have a prefix).
    let rank = (!line_prefix().is_empty())
        .then(|| std::env::var("SLURM_PROCID").ok()?.parse::<u32>().ok())
        .flatten();
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .ok();
    let note = ExitNote {
        run_id: plan.run_id.clone(),
        role,
        reason: failed.reason.clone(),
        blame: failed.blame,
        rank,
        at_ms,
    };
    let path = crate::supervisor::exit_note_path_of_rank(plan, role, rank.unwrap_or(0));
    let _ = crate::atomic::write_json(&path, &note);
}

static LINE_PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Decides the line prefix of this process: `[rank R @ host] ` in a step of several tasks (a
/// multi-rank worker, whose ranks share one log), empty otherwise. Reads Slurm's variables, so
/// it runs before the role clears any.
pub fn init_line_prefix() {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let tasks = var("SLURM_STEP_NUM_TASKS").or_else(|| var("SLURM_NTASKS"));
    let prefix = match (tasks, var("SLURM_PROCID")) {
        (Some(n), Some(rank)) if n > 1 => format!("[rank {rank} @ {}] ", hostname()),
        _ => String::new(),
    };
    let _ = LINE_PREFIX.set(prefix);
}

/// See [`init_line_prefix`].
pub fn line_prefix() -> &'static str {
    LINE_PREFIX.get().map(String::as_str).unwrap_or("")
}

/// Copies an engine's output to this role's stderr (its log), each line behind the line prefix.
pub fn relay_lines<R>(from: R)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        use std::io::Write as _;
        use tokio::io::AsyncBufReadExt as _;
        let mut reader = tokio::io::BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(line_prefix().as_bytes());
                    let _ = err.write_all(&line);
                }
            }
        }
    });
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
/// The engine's version from its `/version` (`{"version": ..., "engine": ...}`), when it
/// answers within 2 s; engines without one give `None`.
pub async fn engine_version(client: &reqwest::Client, base: &str) -> Option<String> {
    let r = client
        .get(format!("{base}/version"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    let version = v.get("version")?.as_str()?;
    Some(match v.get("engine").and_then(|e| e.as_str()) {
        Some(engine) => format!("{engine} {version}"),
        None => version.to_string(),
    })
}

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
