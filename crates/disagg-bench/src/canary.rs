//! The canary: one tiny generation before the sweep, so a dead or misconfigured server fails in
//! seconds with its reason instead of after a whole sweep of failures.

use std::time::Instant;

use crate::client::{self, Failure, Target};
use crate::workload;
use crate::{BenchConfig, BenchError};

/// Short enough to cost the server nothing, long enough to be a real prompt.
const PROMPT_TOKENS: u32 = 8;
const MAX_TOKENS: u32 = 2;

/// One canary per router, so a dead one among several is named.
pub(crate) async fn canary(cfg: &BenchConfig) -> Result<(), BenchError> {
    cfg.validate()?;
    let client = client::build_client(1);
    for url in cfg.parsed_request_urls()? {
        canary_one(cfg, &client, url).await?;
    }
    Ok(())
}

async fn canary_one(
    cfg: &BenchConfig,
    client: &client::HttpClient,
    url: http::Uri,
) -> Result<(), BenchError> {
    let fail = |reason: String| BenchError::Canary {
        url: url.to_string(),
        reason,
    };
    let target = Target {
        urls: vec![url.clone()],
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
        ignore_eos: cfg.ignore_eos,
    };
    let req = workload::canary_request(cfg, PROMPT_TOKENS, MAX_TOKENS);
    let outcome = client::send(client, &target, 0, &req, Instant::now()).await;
    match outcome.result {
        Ok(_) => Ok(()),
        Err(Failure::ZeroTokens) => {
            Err(fail("the server answered but generated zero tokens".into()))
        }
        Err(failure) => Err(fail(failure.describe())),
    }
}
