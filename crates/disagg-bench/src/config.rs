//! Checks on a [`BenchConfig`] before anything is sent.

use crate::{BenchConfig, BenchError};

impl BenchConfig {
    /// `{url}{endpoint}`, without doubling the slash between them.
    pub(crate) fn request_url(&self) -> String {
        format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            self.endpoint.trim_start_matches('/')
        )
    }

    pub(crate) fn validate(&self) -> Result<(), BenchError> {
        let bad = |msg: String| Err(BenchError::Config(msg));
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad(format!(
                "url {:?} must start with http:// or https://",
                self.url
            ));
        }
        if self.concurrency.is_empty() {
            return bad("no concurrency points".into());
        }
        if self.concurrency.contains(&0) {
            return bad("concurrency 0 would send nothing".into());
        }
        if self.rounds == 0 {
            return bad("rounds must be at least 1".into());
        }
        if self.isl == 0 || self.osl == 0 {
            return bad(format!(
                "isl and osl must be at least 1 (got isl {}, osl {})",
                self.isl, self.osl
            ));
        }
        if !(0.0..1.0).contains(&self.range_ratio) {
            return bad(format!(
                "range ratio {} must be in [0, 1)",
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
