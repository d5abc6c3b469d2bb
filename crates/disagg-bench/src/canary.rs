//! The canary: one tiny generation before the sweep, so a dead or misconfigured server fails in
//! seconds with its reason instead of after a whole sweep of failures.

use crate::client::{self, Target};
use crate::workload::{self, Workload};
use crate::{BenchConfig, BenchError};

/// Short enough to cost the server nothing, long enough to be a real prompt.
const PROMPT_TOKENS: u32 = 8;
const MAX_TOKENS: u32 = 2;

pub(crate) async fn canary(cfg: &BenchConfig) -> Result<(), BenchError> {
    cfg.validate()?;
    let fail = |reason: String| BenchError::Canary {
        url: cfg.request_url(),
        reason,
    };
    let client = client::build_client(1)?;
    let target = Target {
        url: cfg.request_url(),
        streaming: cfg.streaming,
        timeout: cfg.request_timeout,
    };
    // Its own seed stream, so the canary never shifts the sweep's prompts.
    let prompt = Workload::new(cfg.seed ^ 0xca4a_5eed).prompt(PROMPT_TOKENS);
    let body = workload::body(cfg, &prompt, MAX_TOKENS);
    let outcome = client::send(&client, &target, body, u64::from(PROMPT_TOKENS)).await;
    match outcome.result {
        Ok(ok) if ok.output_tokens >= 1 => Ok(()),
        Ok(_) => Err(fail("the server answered but generated zero tokens".into())),
        Err(failure) => Err(fail(failure.kind())),
    }
}
