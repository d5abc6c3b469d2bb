//! Config names: the folder a case's runs live in (PROTOCOLS.md §6).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::case::{CacheTransceiver, Case, Parallel};

/// A config name that is safe as one folder name: `[A-Za-z0-9._+-]`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigName(String);

impl ConfigName {
    /// Checks a name; the error says why it cannot be a folder name.
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("it is empty".into());
        }
        if name.len() > 200 {
            return Err(format!(
                "it is {} characters long; the limit is 200",
                name.len()
            ));
        }
        if name == "." || name == ".." || name.contains("..") {
            return Err("it contains `..`".into());
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
        {
            return Err(format!("it contains {c:?}"));
        }
        if name.starts_with('-') || name.starts_with('.') {
            return Err("it starts with `-` or `.`".into());
        }
        Ok(Self(name.to_string()))
    }

    /// The name the pattern gives a case:
    /// `[<gpu>_]<model>-<precision>_<ISL>k<OSL>k[_con<C>]_ctx<N>[_<ctx-par>]_gen<M>_<gen-par>_eplb<E>_mtp<T>_ccb-<UCX|NIXL>[_routers<R>]`,
    /// the last part with several router replicas only (TensorRT-LLM's pattern has one router):
    /// a case measured through 1 and through 3 routers is two configs, with their own runs and
    /// baseline rows.
    /// Characters outside the safe set are replaced by `-`. The error (a name too long, or
    /// nothing left of it) says why no folder name could be derived; the case must then set
    /// `name`, since a fallback shared by several cases would mix their runs and baselines.
    pub fn derive(case: &Case) -> Result<Self, String> {
        let mut s = String::new();
        if let Some(gpu) = &case.hardware.gpu {
            s.push_str(gpu);
            s.push('_');
        }
        s.push_str(&format!("{}-{}", case.model.name, case.model.precision));
        s.push_str(&format!(
            "_{}{}",
            kilo(case.benchmark.isl),
            kilo(case.benchmark.osl)
        ));
        if let (None, [c]) = (
            &case.benchmark.request_rate,
            case.benchmark.concurrency().as_slice(),
        ) {
            s.push_str(&format!("_con{c}"));
        }
        s.push_str(&format!("_ctx{}", case.ctx.count));
        let ctx_par = par_token(&case.ctx.parallel);
        if ctx_par != "tp1" {
            s.push_str(&format!("_{ctx_par}"));
        }
        s.push_str(&format!(
            "_gen{}_{}",
            case.generation.count,
            par_token(&case.generation.parallel)
        ));
        s.push_str(&format!("_eplb{}_mtp{}", case.model.eplb, case.model.mtp));
        s.push_str(match case.hardware.named_transceiver() {
            CacheTransceiver::Ucx => "_ccb-UCX",
            CacheTransceiver::Nixl => "_ccb-NIXL",
        });
        if case.router.replicas > 1 {
            s.push_str(&format!("_routers{}", case.router.replicas));
        }
        let safe: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let safe = safe
            .replace("..", "-")
            .trim_start_matches(['-', '.'])
            .to_string();
        Self::new(&safe).map_err(|why| {
            let shown: String = safe.chars().take(60).collect();
            format!("(`{shown}...`) cannot be a folder name: {why}")
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `1024 → 1k`; lengths that are not whole kilotokens to 5 decimals (`256 → 0.25k`,
/// `16 → 0.01562k`): lengths a token apart differ by 0.00098k, so no two share a name.
fn kilo(tokens: u32) -> String {
    if tokens % 1024 == 0 {
        format!("{}k", tokens / 1024)
    } else {
        let v = format!("{:.5}", tokens as f64 / 1024.0);
        format!("{}k", v.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `dep8` (attention DP), `tep8` (TP+EP), `tp4`, with `pp2` appended for pipeline stages.
fn par_token(p: &Parallel) -> String {
    let mut t = if p.attention_dp {
        format!("dep{}", p.tp)
    } else if p.ep > 1 {
        format!("tep{}", p.tp)
    } else {
        format!("tp{}", p.tp)
    };
    if p.pp > 1 {
        t.push_str(&format!("pp{}", p.pp));
    }
    if p.cp > 1 {
        t.push_str(&format!("cp{}", p.cp));
    }
    t
}

impl fmt::Display for ConfigName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConfigName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::new(&s)
    }
}

impl From<ConfigName> for String {
    fn from(n: ConfigName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_rejected() {
        for bad in ["../x", "a/b", "..", ".", "", "a b", "x\n", "-rf", "a..b"] {
            assert!(ConfigName::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "quickstart",
            "deepseek-r1-fp4_1k1k_ctx1_gen1_dep8_bs768_eplb0_mtp0_ccb-UCX",
            "a.b+c",
        ] {
            assert!(ConfigName::new(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn kilo_tokens() {
        assert_eq!(kilo(1024), "1k");
        assert_eq!(kilo(8192), "8k");
        assert_eq!(kilo(256), "0.25k");
        assert_eq!(kilo(32), "0.03125k");
    }

    #[test]
    fn parallel_tokens() {
        let p = |tp, pp, ep, attention_dp| Parallel {
            tp,
            pp,
            ep,
            attention_dp,
            cp: 1,
        };
        assert_eq!(par_token(&p(8, 1, 8, true)), "dep8");
        assert_eq!(par_token(&p(4, 1, 4, false)), "tep4");
        assert_eq!(par_token(&p(4, 2, 1, false)), "tp4pp2");
        assert_eq!(
            par_token(&Parallel {
                cp: 2,
                ..p(2, 1, 1, false)
            }),
            "tp2cp2"
        );
    }
}
