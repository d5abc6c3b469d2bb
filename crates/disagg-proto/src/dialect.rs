//! The wire dialects and the worker-picking policies: named by a case, written into
//! `server_config.yaml`, and taken as flags by `disagg router` and `disagg sim`. Defined here
//! once so that the case, the router and the sim cannot drift apart.

use serde::{Deserialize, Serialize};

/// The wire dialect between a router and its context/generation workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// TensorRT-LLM: `context_only` then `generation_only` (PROTOCOLS.md §1).
    #[default]
    Trtllm,
    /// vLLM with a KV connector: prefill with `max_tokens: 1`, then decode with the returned
    /// `kv_transfer_params` (PROTOCOLS.md §2).
    Vllm,
    /// SGLang: one body with bootstrap fields to prefill and decode at once (PROTOCOLS.md §3).
    Sglang,
}

impl Dialect {
    /// Every dialect, for tables and tests that must cover them all.
    pub const ALL: [Dialect; 3] = [Dialect::Trtllm, Dialect::Vllm, Dialect::Sglang];

    /// The name in case files, `--dialect` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Trtllm => "trtllm",
            Dialect::Vllm => "vllm",
            Dialect::Sglang => "sglang",
        }
    }
}

/// SGLang's fake bootstrap host (`FAKE_BOOTSTRAP_HOST` in SGLang's
/// `python/sglang/srt/disaggregation/utils.py`). A prefill or decode server given a request with
/// this `bootstrap_host` skips the KV transfer (`_is_fake_transfer`): the prefill keeps nothing
/// for a peer and the decode waits for none. SGLang's own launcher sends its PD workers such a
/// request (with `bootstrap_room: 0` and no port) to warm them up; `disagg run` sends one to
/// probe a worker directly.
pub const SGLANG_FAKE_BOOTSTRAP_HOST: &str = "2.2.2.2";

/// How a router picks a worker within one group (context or generation).
///
/// The case and `server_config.yaml` spell these in snake_case (`round_robin`); the router's
/// `--prefill-policy`/`--decode-policy` flags in kebab-case (`round-robin`), and take the
/// snake_case spelling too, which the router's own startup line prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Each healthy worker in turn.
    #[default]
    #[cfg_attr(feature = "clap", value(alias = "round_robin"))]
    RoundRobin,
    /// Least loaded by in-flight requests (TensorRT-LLM's `load_balancing`).
    #[cfg_attr(feature = "clap", value(alias = "least_requests"))]
    LeastRequests,
    /// Least loaded by in-flight tokens, estimated from the prompt's size plus `max_tokens`
    /// (TensorRT-LLM's `load_balancing` with `use_tokens: true`).
    #[cfg_attr(feature = "clap", value(alias = "least_tokens"))]
    LeastTokens,
    /// Requests whose prompts start alike go to the same worker, so its prefix cache is reused,
    /// unless that worker is clearly busier than the least loaded one (TensorRT-LLM's
    /// `kv_cache_aware`).
    #[cfg_attr(feature = "clap", value(alias = "prefix_affinity"))]
    PrefixAffinity,
}

impl Policy {
    /// Every policy, for tables and tests that must cover them all.
    pub const ALL: [Policy; 4] = [
        Policy::RoundRobin,
        Policy::LeastRequests,
        Policy::LeastTokens,
        Policy::PrefixAffinity,
    ];

    /// The name in case files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::LeastRequests => "least_requests",
            Policy::LeastTokens => "least_tokens",
            Policy::PrefixAffinity => "prefix_affinity",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names() {
        for d in Dialect::ALL {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
        }
        for p in Policy::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
    }
}
