//! The standalone `disagg bench` command: flags to config, canary, sweep, reports.

use crate::{
    BenchArgs, BenchConfig, BenchError, SharedPrefix, canary, point_files, run_sweep_with,
};

pub(crate) fn to_config(args: &BenchArgs) -> BenchConfig {
    BenchConfig {
        url: args.url.first().cloned().unwrap_or_default(),
        extra_urls: args.url.iter().skip(1).cloned().collect(),
        endpoint: args.endpoint.clone(),
        model: args.model.clone(),
        isl: args.isl,
        osl: args.osl,
        range_ratio: args.range_ratio,
        concurrency: if args.concurrency.is_empty() {
            vec![1]
        } else {
            args.concurrency.clone()
        },
        request_rates: args.request_rate.clone(),
        num_prompts: args.num_prompts,
        burstiness: args.burstiness,
        max_concurrency: args.max_concurrency,
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
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
    }
}

pub(crate) async fn run(args: BenchArgs) -> Result<bool, BenchError> {
    let cfg = args.to_config();
    canary(&cfg).await?;
    // Each point is printed, and its files written, as soon as it is measured.
    let mut written = Ok(());
    let sweep = run_sweep_with(&cfg, |p| {
        print!("{}", point_files::log_text(&cfg, &p.report));
        if let (Some(dir), Ok(())) = (&args.output_dir, &written) {
            written = point_files::write(dir, &cfg, p).map(|_| ());
        }
    })
    .await?;
    written?;
    if let Some(dir) = &args.output_dir {
        sweep.write_outputs(dir)?;
    }
    match sweep.invalid_reason() {
        Some(reason) => {
            eprintln!("invalid results: {reason}");
            Ok(false)
        }
        None => Ok(true),
    }
}
