//! The standalone `disagg bench` command: flags to config, canary, sweep, reports.

use std::path::Path;

use crate::{
    BenchArgs, BenchConfig, BenchError, Sweep, canary, details_summary, run_sweep, text_summary,
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
        rounds: args.rounds,
        warmup: args.warmup,
        streaming: !args.no_stream,
        request_timeout: args.request_timeout,
        seed: args.seed,
        percentiles: args.percentiles.clone(),
        max_failure_rate: args.max_failure_rate,
        ignore_eos: args.ignore_eos,
    }
}

pub(crate) async fn run(args: BenchArgs) -> Result<bool, BenchError> {
    let cfg = args.to_config();
    canary(&cfg).await?;
    let sweep = run_sweep(&cfg).await?;
    let summary: String = sweep
        .points
        .iter()
        .map(|p| text_summary(p) + &details_summary(p))
        .collect();
    print!("{summary}");
    if let Some(dir) = &args.output_dir {
        write_outputs(dir, &sweep, &summary)?;
    }
    for warning in sweep.warnings() {
        eprintln!("warning: {warning}");
    }
    match sweep.invalid_reason() {
        Some(reason) => {
            eprintln!("invalid results: {reason}");
            Ok(false)
        }
        None => Ok(true),
    }
}

fn write_outputs(dir: &Path, sweep: &Sweep, summary: &str) -> Result<(), BenchError> {
    let write = |path: &Path, contents: &[u8]| {
        std::fs::write(path, contents).map_err(|source| BenchError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    std::fs::create_dir_all(dir).map_err(|source| BenchError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::json!({
        "valid": sweep.invalid_reason().is_none(),
        "invalid_reason": sweep.invalid_reason(),
        "warnings": sweep.warnings(),
        "points": sweep.points.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
    });
    let mut json = serde_json::to_vec_pretty(&json).expect("a JSON value always serializes");
    json.push(b'\n');
    write(&dir.join("results.json"), &json)?;
    write(&dir.join("summary.txt"), summary.as_bytes())
}
