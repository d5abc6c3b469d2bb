//! DISAGG_SERVER: wait for every worker, write `server_config.yaml` (TensorRT-LLM's format) with
//! their addresses, serve our router on it, and publish its address once its `/health` passes.
//! With `router.replicas` > 1, each of DISAGG_SERVER_0.. does the same on its own port, config
//! file (`server_config_<i>.yaml`) and log.

use disagg_core::case::{Dialect, Policy};
use disagg_core::{Plan, RoleName};
use disagg_proto::trtllm::{GroupRouter, RouterType, ServerConfig, ServerGroup};

use std::time::{Duration, Instant};

use super::shared::{
    Failed, POLL, healthy, hostname, http_client, publish, wait_for_endpoint, wait_for_status,
};
use crate::rendezvous::Endpoint;

/// How long a worker's published address may refuse the router before the run fails. The
/// worker has already seen its engine healthy, so a working address answers at once; this only
/// rides out a slow first connection. At most half the supervisor's liveness limit
/// (`timeouts.unresponsive`), so that the cause is named as such.
const REACH_WITHIN: Duration = Duration::from_secs(5);

pub async fn run(plan: &Plan, me: RoleName) -> Result<(), Failed> {
    open_files_suffice(plan)?;
    let mut ctx = Vec::new();
    let mut gen_urls = Vec::new();
    let client = http_client();
    for w in plan.workers() {
        let ep = tokio::select! {
            ep = wait_for_endpoint(plan, w.role) => ep,
            _ = wait_for_status(plan) => return Ok(()),
        };
        say_err!("disagg role {me}: {} is at {}", w.role, ep.url());
        reach(
            &client,
            &ep,
            REACH_WITHIN.min(plan.deadlines.unresponsive / 2),
        )
        .await?;
        match w.role {
            // SGLang's decode pulls KV through the prefill's bootstrap server, on the port the
            // prefill was started with: the router must name it (`host:port@bootstrap`).
            RoleName::Ctx(_) if plan.router.dialect() == Dialect::Sglang => {
                let bootstrap = ep.bootstrap_port.ok_or_else(|| {
                    format!(
                        "{} published no bootstrap port, and an SGLang prefill needs one: its \
                         engine's argv must take `{{bootstrap_port}}`",
                        w.role
                    )
                })?;
                ctx.push(format!("{}@{bootstrap}", ep.host_port()))
            }
            RoleName::Ctx(_) => ctx.push(ep.host_port()),
            _ => gen_urls.push(ep.host_port()),
        }
    }
    let my_plan = plan
        .role(me)
        .ok_or_else(|| format!("the plan has no {me}"))?;
    if let Some(launch) = &my_plan.engine {
        return Ok(external(plan, me, launch, ctx, gen_urls).await?);
    }
    // On several nodes the router binds every interface and publishes its node's hostname, so
    // that nothing crossing nodes carries a loopback address.
    let host = if plan.multi_node() {
        disagg_core::plan::ANY_HOST
    } else {
        disagg_core::plan::LOOPBACK
    };
    let listener = tokio::net::TcpListener::bind((host, 0))
        .await
        .map_err(|e| format!("cannot bind {host}:0: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let published = if plan.multi_node() {
        hostname()
    } else {
        host.to_string()
    };
    let config = write_config(plan, me, &published, port, ctx, gen_urls)?;

    let mut router_cfg = disagg_router::RouterConfig::from_server_config(&config);
    router_cfg.request_timeout = plan.deadlines.request;
    router_cfg.dialect = plan.router.dialect();
    // A test reports what each worker did with its requests: no routing around a failing one,
    // whose failures the run names (its census) instead of turning them into 503s.
    router_cfg.request_failures = 0;
    // Replicas fed in turn by the benchmark start their round robins apart: else each sends its
    // `j`th request to the same worker as every other replica, at the same moment.
    if let RoleName::DisaggServer(Some(i)) = me {
        router_cfg.first_turn = i as usize;
    }
    let base = format!("http://{}:{port}", super::worker::probe_host(host));
    let released = {
        let plan = plan.clone();
        let (client, base) = (client.clone(), base.clone());
        async move {
            wait_for_status(&plan).await;
            // Still serving: say what this router carried (with several, each its share).
            match served(&client, &base).await {
                Ok(s) => say_err!("disagg role {me}: {s}"),
                Err(e) => say_err!("disagg role {me}: cannot read its own /metrics: {e}"),
            }
        }
    };
    let mut server = tokio::spawn(disagg_router::serve(listener, router_cfg, released));
    loop {
        if server.is_finished() {
            break;
        }
        if healthy(&client, &base).await {
            publish(plan, me, &published, port, std::process::id())?;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    match (&mut server).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the router stopped: {e}").into()),
        Err(e) => Err(format!("the router task failed: {e}").into()),
    }
}

/// Checks that a worker's published address answers from here. A worker on another node that
/// published an address only its own node can reach (loopback, or a name that resolves to one)
/// fails the run now, naming that worker and its address, instead of a router that never gets
/// ready.
/// A router holds a connection from the client and up to two to the workers for each request
/// in flight: a process that may open fewer files than that at the benchmark's concurrency
/// (`ulimit -n`; `disagg` raises the soft limit to the hard one) fails its requests with
/// EMFILE, which the benchmark counted as 503s and was blamed for. Refused at the start, named.
fn open_files_suffice(plan: &Plan) -> Result<(), Failed> {
    use nix::sys::resource::{Resource, getrlimit};
    let b = &plan.benchmark;
    let in_flight = if b.request_rate.is_some() {
        b.max_concurrency.unwrap_or(0)
    } else {
        b.concurrency().into_iter().max().unwrap_or(0)
    };
    let routers = plan.routers().count().max(1) as u64;
    let per_router = u64::from(in_flight).div_ceil(routers);
    let needed = 3 * per_router + OPEN_FILES_KEPT;
    let Ok((limit, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if per_router == 0 || limit >= needed {
        return Ok(());
    }
    Err(format!(
        "this router may open {limit} files (`ulimit -n`, its hard limit on {}), and at the \
         benchmark's concurrency ({per_router} requests in flight through it) it needs about \
         {needed}: a connection from the client and up to two to the workers for each; raise \
         the hard limit (`ulimit -Hn`, the job's or container's nofile), or lower the \
         concurrency",
        super::shared::hostname()
    )
    .into())
}

/// Files a router holds besides its connections (its log, listeners, the runtime's own).
const OPEN_FILES_KEPT: u64 = 64;

async fn reach(client: &reqwest::Client, ep: &Endpoint, within: Duration) -> Result<(), Failed> {
    let until = Instant::now() + within;
    let url = format!("{}/health", ep.url());
    loop {
        let why = match client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) => error_chain(&e),
        };
        if Instant::now() >= until {
            return Err(Failed {
                reason: format!(
                    "{} published {}, which cannot be reached from {} (the router's node) within {}: {why}; a worker other nodes must reach binds 0.0.0.0 and publishes its node's hostname, which must resolve to an address of that node everywhere",
                    ep.role,
                    ep.host_port(),
                    hostname(),
                    humantime::format_duration(within)
                ),
                blame: Some(ep.role),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An error with its causes ("error sending request: ... : Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

/// "served 14 client requests (/v1/completions 200: 14)", from the router's own `/metrics`.
async fn served(client: &reqwest::Client, base: &str) -> Result<String, String> {
    let text = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(served_line(&text))
}

/// The requests counter of a `/metrics` text, summed and by route and status.
fn served_line(metrics: &str) -> String {
    let label = |labels: &str, key: &str| {
        labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'))
            .unwrap_or("?")
            .to_string()
    };
    let mut total = 0u64;
    let mut parts = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("disagg_router_requests_total{") else {
            continue;
        };
        let Some((labels, n)) = rest.split_once("} ") else {
            continue;
        };
        let Ok(n) = n.trim().parse::<u64>() else {
            continue;
        };
        total += n;
        parts.push(format!(
            "{} {}: {n}",
            label(labels, "route"),
            label(labels, "status")
        ));
    }
    format!("served {total} client requests ({})", parts.join(", "))
}

/// Writes `me`'s `server_config.yaml` (TensorRT-LLM's format) for a router at `host:port`.
fn write_config(
    plan: &Plan,
    me: RoleName,
    host: &str,
    port: u16,
    ctx: Vec<String>,
    gen_urls: Vec<String>,
) -> Result<ServerConfig, String> {
    let group = |urls: Vec<String>, policy: Policy, file: &str| ServerGroup {
        num_instances: urls.len(),
        urls,
        router: GroupRouter {
            other: kv_aware_args(plan, policy, file),
            ..group_router(policy)
        },
    };
    let config = ServerConfig {
        hostname: host.to_string(),
        port,
        // TensorRT-LLM's harness always writes it; its disaggregated server reads it.
        backend: Some("pytorch".into()),
        internal_request_auth_key: plan.router.internal_request_auth_key.clone(),
        context_servers: group(ctx, plan.router.ctx_policy(), "ctx_config.yaml"),
        generation_servers: group(gen_urls, plan.router.gen_policy(), "gen_config.yaml"),
        other: Default::default(),
    };
    let path = plan.run_dir.join(me.server_config_file());
    crate::atomic::write(&path, config.to_yaml().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    say_err!("disagg role {me}: wrote {}", path.display());
    Ok(config)
}

/// A router of its own process (`router.kind: engine | command`): it reads the config written
/// here, with a port picked here, and is watched like an engine.
async fn external(
    plan: &Plan,
    me: RoleName,
    launch: &disagg_core::plan::EngineLaunch,
    ctx: Vec<String>,
    gen_urls: Vec<String>,
) -> Result<(), String> {
    use super::worker::{probe_host, publish_host, released, terminate};
    // Held against other roles' picks until this role ends (see `super::ports`).
    let held = super::ports::reserve(&launch.host, 1)?;
    let port = held.first;
    write_config(plan, me, &launch.host, port, ctx, gen_urls)?;
    let argv: Vec<String> = launch
        .argv
        .iter()
        .map(|a| {
            a.replace("{host}", &launch.host)
                .replace("{port}", &port.to_string())
        })
        .collect();
    let (program, args) = argv.split_first().ok_or("the router command is empty")?;
    say_err!("disagg role {me}: starting router: {}", argv.join(" "));
    let mut router = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        // No kill_on_drop: the role sweeps everything it started when it ends (`run_role`).
        .spawn()
        .map_err(|e| format!("cannot start the router `{program}`: {e}"))?;
    let pid = router.id().unwrap_or(0);
    let probe = format!("{}:{port}", probe_host(&launch.host));
    let base = format!("http://{probe}");
    let client = http_client();
    let mut published = false;
    loop {
        if let Some(status) = router.try_wait().map_err(|e| e.to_string())? {
            let when = if published {
                "while serving"
            } else {
                "before its /health answered 200"
            };
            return Err(format!(
                "its router {} {when}",
                crate::executor::Exit::from(status)
            ));
        }
        if released(plan) {
            terminate(router, plan).await;
            return Ok(());
        }
        if !published && healthy(&client, &base).await {
            let host = publish_host(&launch.host, &probe);
            publish(plan, me, &host, port, pid)?;
            published = true;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A case policy in `server_config.yaml`'s words; the router reads them back the same way.
/// What TensorRT-LLM's cache-aware router must share with the workers it routes, from their
/// extra-options file (`file` in the plan): `kv_cache_config.tokens_per_block` (with another
/// block size its block hashes never match the workers', and prefix affinity silently never
/// hits; releases before 1.3 default it to 32 whatever the workers use), `max_batch_size` and
/// `max_num_tokens`, as TensorRT-LLM's own `extract_router_config` carries them over. Empty for
/// any other policy, or what the workers' file does not set.
fn kv_aware_args(
    plan: &Plan,
    policy: Policy,
    file: &str,
) -> std::collections::BTreeMap<String, serde_yaml_ng::Value> {
    let mut out = std::collections::BTreeMap::new();
    if policy != Policy::PrefixAffinity {
        return out;
    }
    let Some(doc) = plan
        .files
        .get(file)
        .and_then(|t| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(t).ok())
    else {
        return out;
    };
    for (key, value) in [
        (
            "tokens_per_block",
            doc.get("kv_cache_config")
                .and_then(|k| k.get("tokens_per_block")),
        ),
        ("max_batch_size", doc.get("max_batch_size")),
        ("max_num_tokens", doc.get("max_num_tokens")),
    ] {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            out.insert(key.to_string(), v.clone());
        }
    }
    out
}

fn group_router(policy: Policy) -> GroupRouter {
    match policy {
        Policy::RoundRobin => GroupRouter {
            kind: RouterType::RoundRobin,
            use_tokens: None,
            ..Default::default()
        },
        Policy::LeastRequests => GroupRouter {
            kind: RouterType::LoadBalancing,
            use_tokens: Some(false),
            ..Default::default()
        },
        Policy::LeastTokens => GroupRouter {
            kind: RouterType::LoadBalancing,
            use_tokens: Some(true),
            ..Default::default()
        },
        Policy::PrefixAffinity => GroupRouter {
            kind: RouterType::KvCacheAware,
            use_tokens: None,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use disagg_proto::trtllm::ServerConfig;

    #[test]
    fn the_served_line_sums_the_requests_counter() {
        let m = "# TYPE disagg_router_requests_total counter\n\
                 disagg_router_requests_total{route=\"/v1/completions\",status=\"200\"} 12\n\
                 disagg_router_requests_total{route=\"/v1/completions\",status=\"503\"} 2\n\
                 disagg_router_leg_seconds_count{leg=\"context\"} 14\n";
        assert_eq!(
            served_line(m),
            "served 14 client requests (/v1/completions 200: 12, /v1/completions 503: 2)"
        );
        assert_eq!(served_line(""), "served 0 client requests ()");
    }

    /// TensorRT-LLM's cache-aware router gets the workers' block size (and batch limits) in
    /// its router block, as its `extract_router_config` carries them over: with its own
    /// default block size its hashes would never match the workers' blocks.
    #[test]
    fn the_cache_aware_router_gets_the_workers_block_size() {
        let text = "name: x\nmodel: {name: m, path: /m}\nengine: trtllm\n\
                    ctx: {count: 1, engine_args: {max_num_tokens: 4096}}\n\
                    gen: {count: 1, engine_args: {max_batch_size: 64, \
                    kv_cache_config: {tokens_per_block: 64}}}\n\
                    router: {kind: engine, gen_policy: prefix_affinity}\n\
                    benchmark: {isl: 8, osl: 4}\n";
        let case = disagg_core::parse_case(text, std::path::Path::new("x.yaml")).unwrap();
        let plan = disagg_core::plan::build(
            &case,
            "R",
            std::path::Path::new("/ws/R"),
            std::path::Path::new("disagg"),
        );
        let gen_args = kv_aware_args(&plan, Policy::PrefixAffinity, "gen_config.yaml");
        assert_eq!(gen_args["tokens_per_block"], serde_yaml_ng::Value::from(64));
        assert_eq!(gen_args["max_batch_size"], serde_yaml_ng::Value::from(64));
        assert!(!gen_args.contains_key("max_num_tokens"), "{gen_args:?}");
        // Another policy gets none of them.
        assert!(kv_aware_args(&plan, Policy::RoundRobin, "ctx_config.yaml").is_empty());
        let ctx_args = kv_aware_args(&plan, Policy::PrefixAffinity, "ctx_config.yaml");
        assert_eq!(ctx_args["max_num_tokens"], serde_yaml_ng::Value::from(4096));
    }

    #[test]
    fn every_case_policy_reaches_the_router_unchanged() {
        for policy in Policy::ALL {
            let group = |u: &str| ServerGroup {
                num_instances: 1,
                urls: vec![u.into()],
                router: group_router(policy),
            };
            let cfg = ServerConfig {
                hostname: "127.0.0.1".into(),
                port: 1,
                backend: None,
                internal_request_auth_key: None,
                context_servers: group("127.0.0.1:2"),
                generation_servers: group("127.0.0.1:3"),
                other: Default::default(),
            };
            let back = ServerConfig::from_yaml(&cfg.to_yaml()).unwrap();
            let rc = disagg_router::RouterConfig::from_server_config(&back);
            assert_eq!(
                (rc.prefill_policy, rc.decode_policy),
                (policy, policy),
                "{policy:?}"
            );
        }
    }
}
