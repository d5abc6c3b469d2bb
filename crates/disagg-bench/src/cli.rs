//! The standalone `disagg bench` command: flags to config, canary, sweep, reports.

use crate::{
    BenchArgs, BenchConfig, BenchError, PointResult, SharedPrefix, Sweep, canary, point_files,
    run_sweep_with,
};

pub(crate) fn to_config(args: &BenchArgs) -> BenchConfig {
    BenchConfig {
        url: args.url.first().cloned().unwrap_or_default(),
        extra_urls: args.url.iter().skip(1).cloned().collect(),
        endpoint: args.endpoint.clone(),
        // Not given: asked of the server when the command starts (`run`).
        model: args.model.clone().unwrap_or_default(),
        // With a dataset its entries give the lengths: 0, unused.
        isl: args.isl.filter(|_| args.dataset.is_none()).unwrap_or(0),
        osl: args.osl.filter(|_| args.dataset.is_none()).unwrap_or(0),
        range_ratio: args.range_ratio,
        concurrency: match (args.concurrency.is_empty(), args.max_concurrency) {
            (false, _) => args.concurrency.clone(),
            // vLLM's `--max-concurrency N` at its default rate, inf: N in flight, each counted
            // from its send, which is the closed loop at N.
            (true, Some(n)) if args.request_rate.is_empty() => vec![n],
            (true, _) => vec![1],
        },
        request_rates: args.request_rate.clone(),
        num_prompts: args.num_prompts,
        burstiness: args.burstiness,
        max_concurrency: args
            .max_concurrency
            .filter(|_| !args.request_rate.is_empty()),
        duration_limit: args.duration,
        goodput: args.goodput,
        gpus: args.gpus,
        dataset: args.dataset.clone(),
        tokenizer: args.tokenizer.clone(),
        shared_prefix: args
            .shared_prefix_groups
            .zip(args.shared_prefix_len)
            .map(|(groups, prefix_len)| SharedPrefix { groups, prefix_len }),
        rounds: args.rounds,
        warmup: args.warmup,
        streaming: !args.no_stream,
        request_timeout: args.request_timeout,
        seed: args.seed,
        percentiles: args.percentiles.clone(),
        max_failure_rate: args.max_failure_rate,
        keep_going: args.keep_going,
        // 0s is off, as the case's `timeouts.stall: 0s`.
        stall: args.stall.filter(|d| !d.is_zero()),
        ignore_eos: args.ignore_eos,
        temperature: args.temperature.0,
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
    }
}

pub(crate) async fn run(args: BenchArgs) -> Result<bool, BenchError> {
    let mut cfg = args.to_config();
    // Before anything is written there: an earlier run's files are moved aside, never mixed
    // with this run's, never lost.
    if let Some(dir) = &args.output_dir {
        if let Some((aside, n)) = crate::outputs::set_aside_earlier(dir)? {
            say_err!(
                "disagg bench: {} held an earlier run's files: moved {n} of them to {}",
                dir.display(),
                aside.display()
            );
        }
    }
    if args.model.is_none() {
        // Bad URLs are refused before anything is asked of them.
        cfg.validate()?;
        cfg.model = match crate::models::first_served_model(&cfg).await {
            Ok(model) => model,
            Err(e) => return Err(kept_as_invalid(args.output_dir.as_deref(), e)),
        };
        say_err!(
            "disagg bench: --model not given: using {:?}, the first model {}/v1/models lists",
            cfg.model,
            cfg.url.trim_end_matches('/')
        );
    }
    let cfg = cfg;
    // Taken from the start (the canary too): a Ctrl-C keeps what was measured.
    let mut signals = Signals::new();
    let mut finished: Vec<PointResult> = Vec::new();
    // Each point is printed, and its files written, as soon as it is measured.
    let mut written = Ok(());
    let sweep = {
        let work = async {
            canary(&cfg).await?;
            run_sweep_with(&cfg, |p| {
                say_raw!("{}", point_files::log_text(&cfg, &p.report));
                if let (Some(dir), Ok(())) = (&args.output_dir, &written) {
                    written = point_files::write(dir, &cfg, p).map(|_| ());
                }
                finished.push(p.clone());
            })
            .await
        };
        tokio::select! {
            r = work => match r {
                Ok(sweep) => Ok(sweep),
                Err(e) => return Err(kept_as_invalid(args.output_dir.as_deref(), e)),
            },
            s = signals.recv() => Err(s),
        }
    };
    let sweep = match sweep {
        Ok(sweep) => sweep,
        Err((signal, name)) => {
            let planned = cfg.point_ids().len();
            let stopped = format!(
                "interrupted by {name}: {} of {planned} point(s) measured, the one under way left out",
                finished.len()
            );
            say_err!("disagg bench: {stopped}");
            if let Some(dir) = &args.output_dir {
                let sweep = Sweep { points: finished };
                crate::outputs::write(dir, &sweep, Some(&stopped))?;
                say_err!("disagg bench: the finished points are in {}", dir.display());
            }
            return Err(BenchError::Interrupted { signal, name });
        }
    };
    written?;
    if let Some(dir) = &args.output_dir {
        sweep.write_outputs(dir)?;
    }
    match sweep.invalid_reason() {
        Some(reason) => {
            say_err!("invalid results: {reason}");
            Ok(false)
        }
        None => Ok(true),
    }
}

/// A server found unfit before any point (the canary failed, or it named no model to take):
/// the output folder still gets results.json and summary.txt, marked invalid with the reason,
/// so that CI keeps more than stderr. Other errors (bad settings, a dataset) are the command
/// line's, and nothing is written.
fn kept_as_invalid(dir: Option<&std::path::Path>, e: BenchError) -> BenchError {
    let (Some(dir), BenchError::Canary { .. } | BenchError::Model { .. }) = (dir, &e) else {
        return e;
    };
    let reason = e.to_string();
    match crate::outputs::write(dir, &Sweep { points: Vec::new() }, Some(&reason)) {
        Ok(()) => say_err!(
            "disagg bench: {} says the run is invalid, and why",
            dir.join("results.json").display()
        ),
        Err(w) => say_err!("disagg bench: {w}"),
    }
    e
}

/// SIGINT, SIGTERM and SIGHUP, caught from when the bench starts (one that cannot be caught
/// keeps its default action).
struct Signals {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The first of them to arrive.
    async fn recv(&mut self) -> (i32, &'static str) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = one(&mut self.int) => (2, "SIGINT"),
            () = one(&mut self.term) => (15, "SIGTERM"),
            () = one(&mut self.hup) => (1, "SIGHUP"),
        }
    }
}
