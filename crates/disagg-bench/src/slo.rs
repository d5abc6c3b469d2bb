//! Goodput's service-level objectives: `ttft:MS,tpot:MS,e2el:MS`, any subset, as
//! benchmark_serving's `--goodput` takes them.

use std::fmt;
use std::str::FromStr;

use crate::Slo;

impl Slo {
    /// Whether a request with these latencies (ms) meets every objective that is set. A request
    /// with one output token has no TPOT and cannot miss a TPOT objective.
    pub(crate) fn met(&self, ttft_ms: f64, tpot_ms: Option<f64>, e2el_ms: f64) -> bool {
        let within = |limit: Option<f64>, v: f64| limit.is_none_or(|l| v <= l);
        within(self.ttft_ms, ttft_ms)
            && tpot_ms.is_none_or(|t| within(self.tpot_ms, t))
            && within(self.e2el_ms, e2el_ms)
    }
}

impl FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut slo = Slo::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once(':')
                .ok_or_else(|| format!("{part:?} is not NAME:MS (e.g. ttft:200)"))?;
            let ms: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{value:?} in {part:?} is not a positive number of ms"))?;
            let slot = match name.trim() {
                "ttft" => &mut slo.ttft_ms,
                "tpot" => &mut slo.tpot_ms,
                "e2el" => &mut slo.e2el_ms,
                other => {
                    return Err(format!(
                        "unknown goodput metric {other:?}; use ttft, tpot or e2el"
                    ));
                }
            };
            if slot.replace(ms).is_some() {
                return Err(format!("{name} is given twice"));
            }
        }
        if slo == Slo::default() {
            return Err("no objective given (e.g. ttft:200,tpot:20)".into());
        }
        Ok(slo)
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("ttft", self.ttft_ms),
            ("tpot", self.tpot_ms),
            ("e2el", self.e2el_ms),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| format!("{n}:{v}")))
        .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_subset() {
        assert_eq!(
            "ttft:200,tpot:20.5,e2el:3000".parse::<Slo>().unwrap(),
            Slo {
                ttft_ms: Some(200.0),
                tpot_ms: Some(20.5),
                e2el_ms: Some(3000.0)
            }
        );
        let only = "tpot:15".parse::<Slo>().unwrap();
        assert_eq!((only.ttft_ms, only.tpot_ms), (None, Some(15.0)));
        assert_eq!(only.to_string(), "tpot:15");
    }

    #[test]
    fn rejects_bad_objectives_with_the_reason() {
        for (bad, says) in [
            ("itl:5", "unknown goodput metric"),
            ("ttft", "is not NAME:MS"),
            ("ttft:-1", "positive"),
            ("ttft:abc", "positive"),
            ("ttft:1,ttft:2", "twice"),
            ("", "no objective"),
        ] {
            let err = bad.parse::<Slo>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn every_set_objective_must_hold() {
        let slo = "ttft:100,tpot:10".parse::<Slo>().unwrap();
        assert!(slo.met(100.0, Some(10.0), 5000.0), "limits are inclusive");
        assert!(!slo.met(100.1, Some(5.0), 0.0));
        assert!(!slo.met(50.0, Some(10.1), 0.0));
        assert!(slo.met(50.0, None, 0.0), "one token has no TPOT to miss");
    }
}
