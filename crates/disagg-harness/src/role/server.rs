//! DISAGG_SERVER: wait for every worker, write `server_config.yaml` (TensorRT-LLM's format) with
//! their addresses, serve our router on it, and publish its address once its `/health` passes.

use disagg_core::case::{Dialect, Policy};
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
            // SGLang's prefill is named with its bootstrap port; the sim serves it on its HTTP port.
            RoleName::Ctx(_) if plan.router.dialect == Dialect::Sglang => {
                ctx.push(format!("{}@{}", ep.host_port(), ep.port))
            }
            RoleName::Ctx(_) => ctx.push(ep.host_port()),
            _ => gen_urls.push(ep.host_port()),
        }
    }
    let host = "127.0.0.1";
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .map_err(|e| format!("cannot bind {host}:0: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let group = |urls: Vec<String>, policy: Policy| ServerGroup {
        num_instances: urls.len(),
        urls,
        router: group_router(policy),
    };
    let config = ServerConfig {
        hostname: host.to_string(),
        port,
        backend: None,
        context_servers: group(ctx, plan.router.ctx_policy()),
        generation_servers: group(gen_urls, plan.router.gen_policy()),
        other: Default::default(),
    };
    let path = plan.run_dir.join("server_config.yaml");
    crate::atomic::write(&path, config.to_yaml().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("disagg role DISAGG_SERVER: wrote {}", path.display());

    let mut router_cfg = disagg_router::RouterConfig::from_server_config(&config);
    router_cfg.request_timeout = plan.deadlines.request;
    router_cfg.dialect = match plan.router.dialect {
        Dialect::Trtllm => disagg_router::Dialect::Trtllm,
        Dialect::Vllm => disagg_router::Dialect::Vllm,
        Dialect::Sglang => disagg_router::Dialect::Sglang,
    };
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

/// A case policy in `server_config.yaml`'s words; the router reads them back the same way.
fn group_router(policy: Policy) -> GroupRouter {
    match policy {
        Policy::RoundRobin => GroupRouter {
            kind: RouterType::RoundRobin,
            use_tokens: None,
        },
        Policy::LeastRequests => GroupRouter {
            kind: RouterType::LoadBalancing,
            use_tokens: Some(false),
        },
        Policy::LeastTokens => GroupRouter {
            kind: RouterType::LoadBalancing,
            use_tokens: Some(true),
        },
        Policy::PrefixAffinity => GroupRouter {
            kind: RouterType::KvCacheAware,
            use_tokens: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use disagg_proto::trtllm::ServerConfig;

    #[test]
    fn every_case_policy_reaches_the_router_unchanged() {
        for (policy, want) in [
            (Policy::RoundRobin, disagg_router::Policy::RoundRobin),
            (Policy::LeastRequests, disagg_router::Policy::LeastRequests),
            (Policy::LeastTokens, disagg_router::Policy::LeastTokens),
            (
                Policy::PrefixAffinity,
                disagg_router::Policy::PrefixAffinity,
            ),
        ] {
            let group = |u: &str| ServerGroup {
                num_instances: 1,
                urls: vec![u.into()],
                router: group_router(policy),
            };
            let cfg = ServerConfig {
                hostname: "127.0.0.1".into(),
                port: 1,
                backend: None,
                context_servers: group("127.0.0.1:2"),
                generation_servers: group("127.0.0.1:3"),
                other: Default::default(),
            };
            let back = ServerConfig::from_yaml(&cfg.to_yaml()).unwrap();
            let rc = disagg_router::RouterConfig::from_server_config(&back);
            assert_eq!(
                (rc.prefill_policy, rc.decode_policy),
                (want, want),
                "{policy:?}"
            );
        }
    }
}
