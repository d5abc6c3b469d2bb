//! DISAGG_SERVER: wait for every worker, write `server_config.yaml` (TensorRT-LLM's format) with
//! their addresses, serve our router on it, and publish its address once its `/health` passes.

use disagg_core::{Plan, RoleName};
use disagg_proto::trtllm::{GroupRouter, RouterType, ServerConfig, ServerGroup};

use super::shared::{POLL, healthy, http_client, publish, wait_for_endpoint, wait_for_status};

pub async fn run(plan: &Plan) -> Result<(), String> {
    let mut ctx = Vec::new();
    let mut gen_urls = Vec::new();
    for w in plan.workers() {
        let ep = tokio::select! {
            ep = wait_for_endpoint(plan, w.role) => ep,
            _ = wait_for_status(plan) => return Ok(()),
        };
        eprintln!("disagg role DISAGG_SERVER: {} is at {}", w.role, ep.url());
        match w.role {
            RoleName::Ctx(_) => ctx.push(ep.host_port()),
            _ => gen_urls.push(ep.host_port()),
        }
    }
    let host = "127.0.0.1";
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .map_err(|e| format!("cannot bind {host}:0: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let group = |urls: Vec<String>| ServerGroup {
        num_instances: urls.len(),
        urls,
        router: GroupRouter {
            kind: RouterType::RoundRobin,
            use_tokens: None,
        },
    };
    let config = ServerConfig {
        hostname: host.to_string(),
        port,
        backend: None,
        context_servers: group(ctx),
        generation_servers: group(gen_urls),
        other: Default::default(),
    };
    let path = plan.run_dir.join("server_config.yaml");
    crate::atomic::write(&path, config.to_yaml().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("disagg role DISAGG_SERVER: wrote {}", path.display());

    let mut router_cfg = disagg_router::RouterConfig::from_server_config(&config);
    router_cfg.request_timeout = plan.deadlines.request;
    let released = {
        let plan = plan.clone();
        async move {
            wait_for_status(&plan).await;
        }
    };
    let mut server = tokio::spawn(disagg_router::serve(listener, router_cfg, released));
    let client = http_client();
    let base = format!("http://{host}:{port}");
    loop {
        if server.is_finished() {
            break;
        }
        if healthy(&client, &base).await {
            publish(plan, RoleName::DisaggServer, host, port, std::process::id())?;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    match (&mut server).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the router stopped: {e}")),
        Err(e) => Err(format!("the router task failed: {e}")),
    }
}
