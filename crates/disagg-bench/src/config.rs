//! Checks on a [`BenchConfig`] before anything is sent.

use crate::{BenchConfig, BenchError};

impl BenchConfig {
    /// The endpoint on every router: `url` first, then `extra_urls`.
    pub(crate) fn request_urls(&self) -> Vec<String> {
        std::iter::once(&self.url)
            .chain(&self.extra_urls)
            .map(|u| join(u, &self.endpoint))
            .collect()
    }

    /// [`Self::request_urls`], parsed once: a request then clones a parsed URL, where parsing
    /// its string each time cost about 4% of the bench's CPU.
    pub(crate) fn parsed_request_urls(&self) -> Result<Vec<http::Uri>, BenchError> {
        self.request_urls()
            .into_iter()
            .map(|u| match u.parse::<http::Uri>() {
                Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
                Ok(_) => Err(BenchError::Config(format!("url {u:?} has no host"))),
                Err(e) => Err(BenchError::Config(format!("url {u:?} is not a URL: {e}"))),
            })
            .collect()
    }

    /// Chat endpoints take messages of text, not token ids.
    pub(crate) fn is_chat(&self) -> bool {
        self.endpoint
            .trim_end_matches('/')
            .ends_with("chat/completions")
    }

    /// SGLang's native `/generate`: `text` or `input_ids` with `sampling_params`, answered
    /// with the text and `meta_info` instead of OpenAI's `choices` and `usage`.
    pub(crate) fn is_generate(&self) -> bool {
        self.endpoint.trim_end_matches('/').ends_with("/generate")
    }

    pub(crate) fn is_open_loop(&self) -> bool {
        !self.request_rates.is_empty()
    }

    /// The points the sweep measures, in order: what a report of an unfinished sweep names as
    /// not measured.
    pub fn point_ids(&self) -> Vec<crate::PointId> {
        if self.is_open_loop() {
            self.request_rates
                .iter()
                .map(|&r| crate::PointId {
                    concurrency: self.max_concurrency,
                    request_rate: Some(crate::RequestRate(r)),
                })
                .collect()
        } else {
            self.concurrency
                .iter()
                .map(|&c| crate::PointId::closed(c))
                .collect()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), BenchError> {
        let bad = |msg: String| Err(BenchError::Config(msg));
        for url in std::iter::once(&self.url).chain(&self.extra_urls) {
            if url.starts_with("https://") {
                return bad(format!(
                    "url {url:?}: https is not supported (this build speaks plain HTTP, as the \
                     router does to its workers); use the server's http:// address"
                ));
            }
            if !url.starts_with("http://") {
                return bad(format!("url {url:?} must start with http://"));
            }
        }
        if self.is_open_loop() {
            if let Some(r) = self.request_rates.iter().find(|r| r.is_nan() || **r <= 0.0) {
                return bad(format!("request rate {r} must be positive (or inf)"));
            }
            if self.num_prompts.is_none() {
                return bad("the open loop (request rates) needs num_prompts".into());
            }
            if self.burstiness.is_nan() || self.burstiness <= 0.0 {
                return bad(format!(
                    "burstiness {} must be positive (1 is Poisson, lower is burstier, inf evenly \
                     spaced)",
                    self.burstiness
                ));
            }
            if let Some(r) = repeated(&self.request_rates) {
                return bad(format!(
                    "request rate {r} is listed twice; each point has its own files and perf \
                     case name"
                ));
            }
        } else {
            if self.concurrency.is_empty() {
                return bad("no concurrency points".into());
            }
            if self.concurrency.contains(&0) {
                return bad("concurrency 0 would send nothing".into());
            }
            if let Some(c) = repeated(&self.concurrency) {
                return bad(format!(
                    "concurrency {c} is listed twice; each point has its own files and perf \
                     case name"
                ));
            }
        }
        if self.max_concurrency == Some(0) {
            return bad("max concurrency 0 would send nothing".into());
        }
        if self.num_prompts == Some(0) {
            return bad("num_prompts 0 would send nothing".into());
        }
        if self.duration_limit.is_some_and(|d| d.is_zero()) {
            return bad("the duration limit must be positive".into());
        }
        if let Some(sp) = &self.shared_prefix {
            let (shortest, _) = crate::workload::length_bounds(self.isl, self.range_ratio);
            if sp.prefix_len == 0 || sp.prefix_len >= shortest {
                return bad(format!(
                    "shared prefix of {} tokens must be at least 1 and below the shortest input \
                     ({shortest} tokens)",
                    sp.prefix_len
                ));
            }
            if self.dataset.is_some() {
                return bad("shared-prefix mode makes its own prompts; drop the dataset".into());
            }
        }
        if !(0.0..=1.0).contains(&self.max_failure_rate) {
            return bad(format!(
                "max failure rate {} must be in [0, 1]",
                self.max_failure_rate
            ));
        }
        if self.rounds == 0 {
            return bad("rounds must be at least 1".into());
        }
        if self.dataset.is_none() && (self.isl == 0 || self.osl == 0) {
            return bad(format!(
                "isl and osl must be at least 1 (got isl {}, osl {})",
                self.isl, self.osl
            ));
        }
        // Past any model's context: the prompts alone would take gigabytes to build.
        if self.isl.max(self.osl) > MAX_TOKENS_PER_REQUEST {
            return bad(format!(
                "isl {} / osl {}: at most {MAX_TOKENS_PER_REQUEST} tokens each, beyond any \
                 model's context",
                self.isl, self.osl
            ));
        }
        // Each request in flight holds a connection, and each connection a file descriptor.
        let in_flight = if self.is_open_loop() {
            self.max_concurrency.unwrap_or(0)
        } else {
            self.concurrency.iter().copied().max().unwrap_or(0)
        };
        if let Some(limit) = open_files_limit() {
            let urls = 1 + self.extra_urls.len() as u64;
            if u64::from(in_flight) + FDS_KEPT + urls > limit {
                return bad(format!(
                    "concurrency {in_flight} needs as many connections, and this process may \
                     open {limit} files (`ulimit -n`): raise the limit, or lower the \
                     concurrency"
                ));
            }
        }
        // Every request of a point is built before its first is sent (about 8 bytes a prompt
        // token, body included): a count bounded only by --duration would still be built whole.
        let requests = match self.num_prompts {
            Some(n) => n,
            None => {
                u64::from(self.concurrency.iter().copied().max().unwrap_or(0))
                    * u64::from(self.rounds)
            }
        };
        let longest = crate::workload::length_bounds(self.isl, self.range_ratio).1;
        let tokens = requests.saturating_mul(u64::from(longest));
        if requests > MAX_REQUESTS_PER_POINT
            || (self.dataset.is_none() && tokens > MAX_PROMPT_TOKENS_PER_POINT)
        {
            return bad(format!(
                "{requests} requests of up to {longest} prompt tokens a point: at most \
                 {MAX_REQUESTS_PER_POINT} requests and {MAX_PROMPT_TOKENS_PER_POINT} prompt \
                 tokens (every request of a point is built before the first is sent, about 8 \
                 bytes a token, even when --duration stops the point early): lower \
                 --num-prompts (or rounds)"
            ));
        }
        if self.warmup > MAX_WARMUP {
            return bad(format!(
                "warmup {} requests: at most {MAX_WARMUP} (a warm-up warms, it does not measure)",
                self.warmup
            ));
        }
        if !(0.0..1.0).contains(&self.range_ratio) {
            return bad(format!(
                "range ratio {} must be in [0, 1): lengths are uniform in [L·(1−r), L·(1+r)], \
                 so 0 gives exact lengths (SGLang's --random-range-ratio 1, which draws from \
                 [L·r, L], is 0 here)",
                self.range_ratio
            ));
        }
        if self.request_timeout.is_zero() {
            return bad("request timeout must be positive".into());
        }
        if let Some(p) = self
            .percentiles
            .iter()
            .find(|p| !(0.0..=100.0).contains(*p))
        {
            return bad(format!("percentile {p} must be in [0, 100]"));
        }
        Ok(())
    }
}

/// The longest input or output a request may ask, in tokens.
const MAX_TOKENS_PER_REQUEST: u32 = 10_000_000;

/// Most requests in one point.
const MAX_REQUESTS_PER_POINT: u64 = 10_000_000;

/// Most prompt tokens built for one point (about 4 GB).
const MAX_PROMPT_TOKENS_PER_POINT: u64 = 500_000_000;

/// Most warm-up requests.
const MAX_WARMUP: u32 = 10_000;

/// File descriptors the bench keeps besides its connections (stdio, the runtime, files).
const FDS_KEPT: u64 = 64;

/// This process's soft limit on open files (Linux's /proc/self/limits), if it says.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `{url}{endpoint}`, without doubling the slash between them.
fn join(url: &str, endpoint: &str) -> String {
    format!(
        "{}/{}",
        url.trim_end_matches('/'),
        endpoint.trim_start_matches('/')
    )
}

/// The first value listed twice.
fn repeated<T: PartialEq + Copy>(values: &[T]) -> Option<T> {
    values
        .iter()
        .enumerate()
        .find(|(i, v)| values[..*i].contains(v))
        .map(|(_, v)| *v)
}
