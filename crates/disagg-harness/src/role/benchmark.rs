//! BENCHMARK: wait for the router, send a canary, run the sweep, write each point's log (to this
//! role's log, `benchmark.log`, and to `benchmark.<label>.log`) and result file
//! (`benchmark.<label>.json`) as the point ends, then `results.json` and the status that releases
//! everyone.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use disagg_core::Plan;

use super::shared::{POLL, healthy, http_client, wait_for_endpoint, wait_for_status};
use crate::rendezvous::{State, Status};

pub async fn run(plan: &Plan) -> Result<(), String> {
    // Nobody can probe a role that serves nothing: its beat tells the supervisor it is not
    // stopped or frozen (`crate::beat`).
    let _beat = crate::beat::start(plan, "BENCHMARK");
    // Every router (one, or each replica): the requests are spread over all of them.
    let mut urls = Vec::new();
    let client = http_client();
    for r in plan.routers() {
        let ep = tokio::select! {
            ep = wait_for_endpoint(plan, r.role) => ep,
            _ = wait_for_status(plan) => return Ok(()),
        };
        while !healthy(&client, &ep.url()).await {
            tokio::time::sleep(POLL).await;
        }
        urls.push(ep.url());
    }
    let (first, more) = urls.split_first().ok_or("the plan has no router")?;
    let mut cfg = bench_config(plan, first.clone());
    cfg.extra_urls = more.to_vec();
    say_err!(
        "disagg role BENCHMARK: {} at {}; canary",
        if more.is_empty() { "router" } else { "routers" },
        urls.join(", ")
    );
    if !plan.benchmark.canary {
        say_err!(
            "disagg role BENCHMARK: no canary: the case says benchmark.canary: false (the first \
             point meets the servers cold, as TensorRT-LLM's perf-sanity client does); sweep"
        );
    } else if let Some(n) = plan.gen_fill_gate() {
        // TensorRT-LLM's gen-only test sends no test request either, for the same reason.
        say_err!(
            "disagg role BENCHMARK: no canary: the GEN workers' TLLM_BENCHMARK_REQ_QUEUES_SIZE={n} \
             holds every generation request until {n} are in, so a lone one would wait for ever; \
             sweep"
        );
    } else {
        if let Err(e) = disagg_bench::canary(&cfg).await {
            return finish(plan, Some(format!("the canary request failed: {e}")), None).await;
        }
        say_err!("disagg role BENCHMARK: canary passed; sweep");
    }
    // Each point's log goes to this role's log (benchmark.log) and, with its result file, into
    // files of its own as soon as it is measured.
    let mut unwritten = Vec::new();
    // Generation workers that log their iterations (TensorRT-LLM's print_iter_log) give each
    // point its mean device step time, TensorRT-LLM's gen-only figure.
    let gen_logs: Vec<std::path::PathBuf> = plan
        .workers()
        .filter(|w| !w.role.is_ctx())
        .map(|w| plan.run_dir.join(&w.log))
        .collect();
    let mut since = crate::gen_steps::ends(&gen_logs);
    let mut measured: Vec<disagg_bench::PointReport> = Vec::new();
    // The recorded points whole (every request's timeline, the histograms): `bench/` is
    // rewritten from these as each point is recorded.
    let mut recorded: Vec<disagg_bench::PointResult> = Vec::new();
    let planned = cfg.point_ids().len();
    // The point being measured, published every second for `disagg run` to show.
    let live = std::sync::Arc::new(disagg_bench::Live::default());
    let _publisher = AbortOnDrop(tokio::spawn(publish_progress(plan.clone(), live.clone())));
    let sweep = disagg_bench::run_sweep_live(&cfg, &live, |p| {
        if let Some(ms) = crate::gen_steps::mean_since(&gen_logs, &since) {
            p.report.metrics.gen_device_step_time_ms = Some(ms);
        }
        since = crate::gen_steps::ends(&gen_logs);
        // A signal stopped the run under this point: its requests failed because every role
        // was being stopped, which says nothing of the workers. It is not a measured point.
        if crate::rendezvous::read::<Status>(&plan.status_file(), &plan.run_id)
            .is_some_and(|s| s.is_interruption())
        {
            say_raw!(
                "{}",
                disagg_bench::point_files::unrecorded_log_text(&cfg, &p.report)
            );
            say_err!(
                "disagg role BENCHMARK: the run was interrupted under the point at {}; not \
                 recording it",
                p.report.point
            );
            return ControlFlow::Break(());
        }
        // Whether the run is over, or a role failed. A dead worker fails the rest of a point's
        // requests in milliseconds, faster than its death is seen: a point with failures
        // waits a moment for a role's account of them first. A point that failed because a
        // role died under it measured nothing of the servers (its requests came back at once,
        // refused), so it is not recorded, however far it got: the run's verdict names the
        // role, and the point shows as not measured.
        let wait = if p.report.metrics.failed == 0 {
            Duration::ZERO
        } else if p.report.error_counts.contains_key("connect") && router_gone(&urls) {
            // A router that refuses connections is dead, and said so only once the supervisor
            // sees its step end: seconds under Slurm for one SIGKILLed, with no account of its
            // own. Its point measured nothing of the servers.
            ROUTER_GONE_WAIT
        } else {
            EXPLAIN_FAILURES
        };
        let over = tokio::task::block_in_place(|| run_over(plan, wait));
        if let (Some(why), true) = (&over, p.report.metrics.failed > 0) {
            // TensorRT-LLM's log parser fails a case on the file's last `Total failed
            // requests:`; without it the points before would read as a clean run.
            say_raw!(
                "{}",
                disagg_bench::point_files::unrecorded_log_text(&cfg, &p.report)
            );
            say_err!(
                "disagg role BENCHMARK: the point at {} failed {} request(s), and {why}; not \
                 recording it",
                p.report.point,
                p.report.metrics.failed
            );
            return ControlFlow::Break(());
        }
        say_raw!("{}", disagg_bench::point_files::log_text(&cfg, &p.report));
        if let Err(e) = disagg_bench::point_files::write(&plan.run_dir, &cfg, p) {
            unwritten.push(e.to_string());
        } else if let (Some(c), None) = (p.report.point.concurrency, p.report.point.request_rate) {
            // Where TensorRT-LLM's benchmark scripts save a concurrency's result file, which its
            // perf harness reads (num_prompts, completed) with its SA benchmark client.
            let file = format!("{}.json", disagg_bench::point_files::stem(&p.report));
            crate::run::link_alias(
                &plan.run_dir,
                &format!("../{file}"),
                &format!("concurrency_{c}/result.json"),
            );
        }
        // results.json with every point so far: a run interrupted or timed out in a later point
        // still reports this one (the final write at the end replaces it).
        measured.push(p.report.clone());
        if let Err(e) = write_partial(plan, &measured, planned) {
            unwritten.push(e);
        }
        // And bench/ with them: this role may be stopped by a signal (the run ending under
        // it, `disagg run` killed) before the sweep's end writes it.
        recorded.push(p.clone());
        write_bench_dir(plan, &recorded);
        // No further point once the run is over.
        match over {
            Some(why) => {
                say_err!("disagg role BENCHMARK: no further point: {why}");
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    });
    // The run can end under the sweep: a worker died and the supervisor wrote its verdict. Stop
    // at once, so that no further point starts and no request is sent to a run that is over.
    let sweep = tokio::select! {
        s = sweep => s,
        status = wait_for_status(plan) => {
            say_err!(
                "disagg role BENCHMARK: the run ended under the sweep ({}); stopping",
                status.reason.as_deref().unwrap_or("no reason given")
            );
            return Ok(());
        }
    };
    if let Some(e) = unwritten.first() {
        return finish(
            plan,
            Some(format!("cannot write a point's files: {e}")),
            None,
        )
        .await;
    }
    let mut sweep = match sweep {
        Ok(s) => s,
        Err(e) => {
            return finish(
                plan,
                Some(format!("the benchmark could not run: {e}")),
                None,
            )
            .await;
        }
    };
    // Only the points recorded above: a point the sweep measured but this role did not record
    // (a role died or the run was interrupted under it) is its last, and stays out of every
    // report, as its log said.
    let left_out = sweep
        .points
        .get(measured.len())
        .map(|p| (p.report.point.to_string(), p.report.metrics.completed));
    sweep.points.truncate(measured.len());
    // Per-request timelines, the CSV and the HDR distributions, beside our own results.json.
    if let Err(e) = sweep.write_outputs(&plan.run_dir.join("bench")) {
        say_err!("disagg role BENCHMARK: warning: {e}");
    }
    // With every point left out, "no points were run" would read as if nothing was sent.
    let invalid = match &left_out {
        Some((point, completed)) if sweep.points.is_empty() => Some(format!(
            "{point} was under way ({completed} request(s) completed) and is left out of the \
             reports; no point was recorded"
        )),
        _ => sweep.invalid_reason(),
    };
    // A sweep that stopped at a point it left out did not finish, whatever the verdict says.
    let stopped = left_out.map(|(point, _)| {
        format!(
            "{point} is left out, {} of {planned} point(s) recorded",
            sweep.points.len()
        )
    });
    finish_stopped(plan, invalid, Some(&sweep), stopped).await
}

/// `bench/` (per-request timelines, the CSV, the HDR distributions) of the points recorded so
/// far.
fn write_bench_dir(plan: &Plan, points: &[disagg_bench::PointResult]) {
    let sweep = disagg_bench::Sweep {
        points: points.to_vec(),
    };
    if let Err(e) = sweep.write_outputs(&plan.run_dir.join("bench")) {
        say_err!("disagg role BENCHMARK: warning: {e}");
    }
}

/// This role was stopped by `sig` before the run had a verdict (its parent-death signal:
/// `disagg run` was killed): the points it recorded stay, but `results.json`, which said
/// "valid" so far, says the run did not finish. With a verdict, the supervisor marks it.
pub fn mark_stopped(plan: &Plan, sig: &str) {
    if crate::rendezvous::read::<Status>(&plan.status_file(), &plan.run_id).is_some() {
        return;
    }
    let marked = crate::run::invalidate_results(plan, |results| {
        format!(
            "the benchmark was stopped by {sig} after {} point(s), before the run had a verdict",
            results.points.len()
        )
    });
    if let Err(e) = marked {
        say_err!("disagg role BENCHMARK: {e}");
    }
}

/// How often `rendezvous/progress.json` is rewritten while a point runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Writes the sweep's live snapshot to `rendezvous/progress.json` every [`PROGRESS_EVERY`].
async fn publish_progress(plan: Plan, live: std::sync::Arc<disagg_bench::Live>) {
    let path =
        disagg_core::plan::rendezvous_dir(&plan.run_dir).join(crate::rendezvous::PROGRESS_FILE);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(now) = live.snapshot() {
            let p = crate::rendezvous::Progress {
                run_id: plan.run_id.clone(),
                now,
            };
            // Progress is for people; a missed update is not worth failing a run for.
            let _ = crate::atomic::write_json(&path, &p);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `results.json` with the points measured so far, while the sweep goes on.
fn write_partial(
    plan: &Plan,
    points: &[disagg_bench::PointReport],
    planned: usize,
) -> Result<(), String> {
    let reasons: Vec<String> = points.iter().filter_map(|p| p.validity.reason()).collect();
    crate::run::write_results(
        plan,
        reasons.is_empty(),
        (!reasons.is_empty()).then(|| reasons.join("; ")),
        vec![format!(
            "partial: {} of {planned} point(s) measured so far; the sweep had not finished when this was written",
            points.len()
        )],
        points.to_vec(),
    )
}

/// How long a point with failed requests waits for a role to account for them (a worker's exit
/// note, the supervisor's verdict) before the next point starts.
const EXPLAIN_FAILURES: Duration = Duration::from_secs(1);

/// How long a point whose requests found a router refusing connections waits for the run's
/// account of that router (the supervisor sees a killed router's step end within seconds).
const ROUTER_GONE_WAIT: Duration = Duration::from_secs(10);

/// Whether a router of `urls` (`http://host:port`) refuses connections now.
fn router_gone(urls: &[String]) -> bool {
    use std::net::ToSocketAddrs as _;
    urls.iter().any(|u| {
        let hostport = u
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or_default();
        let Ok(mut addrs) = hostport.to_socket_addrs() else {
            return false;
        };
        addrs.next().is_some_and(|a| {
            matches!(
                std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        })
    })
}

/// Whether the run is over or a role has failed, waiting up to `within` for it: the reason.
fn run_over(plan: &Plan, within: Duration) -> Option<String> {
    let until = Instant::now() + within;
    loop {
        if let Some(s) = crate::rendezvous::read::<Status>(&plan.status_file(), &plan.run_id) {
            return Some(format!(
                "the run is over ({})",
                s.reason.as_deref().unwrap_or("done")
            ));
        }
        for r in &plan.roles {
            if let Some(n) = crate::supervisor::exit_note(plan, r.role) {
                return Some(format!("{} failed: {}", n.role, n.reason));
            }
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The benchmark's own limit on one request. Our router ends a request at `timeouts.request`
/// itself, with an answer naming the worker it was stuck on, and charges that worker with it
/// (see its `/workers`): the benchmark waits a little longer (a tenth more, between 0.5 s and
/// 5 s), so that answer comes first and the run can name the worker. With a router not ours,
/// the benchmark's limit is `timeouts.request` itself.
pub fn client_request_timeout(plan: &Plan) -> Duration {
    let request = plan.deadlines.request;
    behind_own_routers(plan, request, (request / 10).clamp(ms(500), ms(5000)))
}

/// `timeouts.stall` at the client, for streamed requests. With our routers, a tenth longer
/// (between 3 s and 30 s): the supervisor reads their census once a second and names the
/// worker; the client's own limit is the fallback. With another router the client is the only
/// one to see a stall, and the workers are then probed to name the hung one.
pub fn client_stall(plan: &Plan) -> Option<Duration> {
    let stall = plan.deadlines.stall?;
    Some(behind_own_routers(
        plan,
        stall,
        (stall / 10).clamp(ms(3000), ms(30_000)),
    ))
}

/// `limit`, plus `margin` when every router is ours (it acts first, knowing the worker).
fn behind_own_routers(plan: &Plan, limit: Duration, margin: Duration) -> Duration {
    if plan.routers().all(|r| r.engine.is_none()) {
        limit + margin
    } else {
        limit
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The case's `benchmark` section as `disagg bench` settings.
pub fn bench_config(plan: &Plan, url: String) -> disagg_bench::BenchConfig {
    let b = &plan.benchmark;
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    disagg_bench::BenchConfig {
        url,
        endpoint: b.endpoint.clone(),
        model: plan.model.clone(),
        isl: b.isl,
        osl: b.osl,
        range_ratio: b.range_ratio,
        concurrency: b.concurrency(),
        rounds: b.rounds,
        warmup: b.warmup,
        streaming: b.streaming,
        request_timeout: client_request_timeout(plan),
        seed: b.seed,
        percentiles: b.percentiles.clone(),
        max_failure_rate: b.max_failure_rate,
        keep_going: b.keep_going,
        stall: client_stall(plan),
        ignore_eos: b.ignore_eos,
        temperature: b.temperature,
        extra_urls: Vec::new(),
        request_rates: b.request_rate.clone().unwrap_or_default(),
        num_prompts: b.num_prompts,
        burstiness: b.burstiness,
        max_concurrency: b.max_concurrency,
        duration_limit: b.duration,
        goodput: b.goodput.map(|g| disagg_bench::Slo {
            ttft_ms: ms(g.ttft),
            tpot_ms: ms(g.tpot),
            e2el_ms: ms(g.e2el),
        }),
        gpus: std::num::NonZeroU32::new(plan.worker_gpus() as u32),
        dataset: b.dataset.as_ref().map(Into::into),
        tokenizer: b.tokenizer.as_ref().map(Into::into),
        shared_prefix: b.shared_prefix.and_then(|sp| {
            std::num::NonZeroU32::new(sp.groups).map(|groups| disagg_bench::SharedPrefix {
                groups,
                prefix_len: sp.prefix_len,
            })
        }),
        // `env.benchmark: {OPENAI_API_KEY: ...}`, as benchmark_serving reads it, for workers
        // started with an API key (the router carries the header on to them).
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
    }
}

/// Writes results.json (when there are results) and status.json; the error is the role's failure.
/// A failure first has the routers' census kept (see [`crate::supervisor::stuck`]): they leave
/// once status.json is written, and they know which worker the failing requests were on. With a
/// router not ours, each worker is probed directly instead ([`crate::supervisor::probe`]).
async fn finish(
    plan: &Plan,
    failure: Option<String>,
    sweep: Option<&disagg_bench::Sweep>,
) -> Result<(), String> {
    finish_stopped(plan, failure, sweep, None).await
}

/// [`finish`], with the reason of a sweep that ended early on its `done` status (the supervisor
/// quotes it when a role's death fails the run after all).
async fn finish_stopped(
    plan: &Plan,
    failure: Option<String>,
    sweep: Option<&disagg_bench::Sweep>,
    stopped: Option<String>,
) -> Result<(), String> {
    if failure.is_some() {
        crate::supervisor::stuck::snapshot(plan).await;
        crate::supervisor::probe::snapshot(plan).await;
    }
    if let Some(sweep) = sweep {
        let results = disagg_bench::ResultsFile {
            run_id: Some(plan.run_id.clone()),
            config_name: Some(plan.config_name.to_string()),
            valid: failure.is_none(),
            invalid_reason: failure.clone(),
            warnings: sweep.warnings(),
            points: sweep.reports(),
        };
        let path = plan.run_dir.join("results.json");
        crate::atomic::write_json(&path, &results)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let status = Status {
        run_id: plan.run_id.clone(),
        state: if failure.is_some() {
            State::Failed
        } else {
            State::Done
        },
        role: failure.as_ref().map(|_| "BENCHMARK".to_string()),
        reason: failure.clone().or(stopped),
    };
    // Only if the run is not over already: the supervisor's final word (a worker's death, a
    // hung role) must never be overwritten by this role finishing a moment later.
    crate::atomic::write_json_new(&plan.status_file(), &status)
        .map_err(|e| format!("cannot write status.json: {e}"))?;
    match failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::router_gone;

    /// A router that refuses connections is gone; one that takes them (busy or not) is not.
    #[test]
    fn a_router_refusing_connections_is_gone() {
        let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up_url = format!("http://{}", up.local_addr().unwrap());
        let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down_url = format!("http://{}/", down.local_addr().unwrap());
        drop(down);
        assert!(!router_gone(std::slice::from_ref(&up_url)));
        assert!(router_gone(&[up_url, down_url]));
    }
}
