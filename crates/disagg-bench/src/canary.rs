//! The canary: one generation before the sweep, so a dead or misconfigured server fails in
//! seconds with its reason instead of after a whole sweep of failures. It is the size of the
//! sweep's largest request (input and output), so that a context too small for the workload
//! (vLLM's `--max-model-len`, SGLang's `--context-length`, TensorRT-LLM's `max_seq_len`) fails
//! here, quoting the server's refusal, and not as a sweep of 400s.
//!
//! With several routers, each gets one, all at once: the first router's is that full-size
//! request (the workers behind every router are the same, and so is their limit), the others'
//! the tiny pair, which is all it takes to find a dead or broken router. One full-size request
//! per router, one after the other, cost as many whole generations as there are routers (64
//! routers at osl 100 and 20 ms a token outlasted a minute's benchmark deadline).

use std::time::Instant;

use crate::client::{self, Failure, Target};
use crate::workload;
use crate::{BenchConfig, BenchError};

/// With a dataset, whose longest entry is known only once loaded: short enough to cost the
/// server nothing, long enough to be a real prompt.
const PROMPT_TOKENS: u32 = 8;
const MAX_TOKENS: u32 = 2;

/// The canary's input and output lengths: the largest the sweep's generated requests can have
/// (`isl`/`osl` at the top of `range_ratio`), or the tiny pair for a dataset.
fn lengths(cfg: &BenchConfig) -> (u32, u32) {
    if cfg.dataset.is_some() {
        return (PROMPT_TOKENS, MAX_TOKENS);
    }
    let (_, isl) = workload::length_bounds(cfg.isl, cfg.range_ratio);
    let (_, osl) = workload::length_bounds(cfg.osl, cfg.range_ratio);
    (isl, osl)
}

/// One canary per router, at once, so a dead one among several is named (the first in the
/// order given, when several fail).
pub(crate) async fn canary(cfg: &BenchConfig) -> Result<(), BenchError> {
    cfg.validate()?;
    let urls = cfg.parsed_request_urls()?;
    let client = client::build_client(u32::try_from(urls.len()).unwrap_or(u32::MAX).max(1));
    let tries = urls.into_iter().enumerate().map(|(i, url)| {
        let lengths = if i == 0 {
            lengths(cfg)
        } else {
            (PROMPT_TOKENS, MAX_TOKENS)
        };
        canary_one(cfg, &client, url, lengths)
    });
    futures_util::future::join_all(tries)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(drop)
}

async fn canary_one(
    cfg: &BenchConfig,
    client: &client::HttpClient,
    url: http::Uri,
    (input_len, output_len): (u32, u32),
) -> Result<(), BenchError> {
    let fail = |reason: String| BenchError::Canary {
        url: url.to_string(),
        reason,
    };
    let target = Target {
        urls: vec![url.clone()],
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
        stall: cfg.stall.filter(|_| cfg.streaming),
        last_byte: std::sync::Arc::new(client::LastByte::new()),
        ignore_eos: cfg.ignore_eos,
        authorization: client::bearer(cfg.api_key.as_deref()),
    };
    let req = workload::canary_request(cfg, input_len, output_len);
    let outcome = client::send(client, &target, 0, &req, Instant::now()).await;
    match outcome.result {
        Ok(_) => Ok(()),
        Err(Failure::ZeroTokens) => {
            Err(fail("the server answered but generated zero tokens".into()))
        }
        Err(failure) => Err(fail(failure.describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_is_as_long_as_the_sweeps_longest_request() {
        let cfg = |isl, osl, range_ratio, dataset: Option<&str>| BenchConfig {
            isl,
            osl,
            range_ratio,
            dataset: dataset.map(Into::into),
            ..BenchConfig::default()
        };
        assert_eq!(lengths(&cfg(1024, 128, 0.0, None)), (1024, 128));
        assert_eq!(lengths(&cfg(1000, 100, 0.5, None)), (1500, 150));
        assert_eq!(lengths(&cfg(1000, 100, 0.0, Some("d.jsonl"))), (8, 2));
    }
}
