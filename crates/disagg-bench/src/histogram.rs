//! HDR histograms of one point's latencies: bounded memory however long the run, mergeable, and
//! written in HdrHistogram's percentile-distribution text (`.hgrm`) that its plotters read.
//! The summary's numbers stay exact (numpy-style, over every value), as benchmark_serving's are;
//! the histograms are the compact record for plotting and comparing tails.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Three significant digits: 10 µs of resolution at a 10 ms ITL, 1 ms at 1 s.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistograms {
    pub ttft: Histogram<u64>,
    pub tpot: Histogram<u64>,
    pub itl: Histogram<u64>,
    pub e2el: Histogram<u64>,
}

/// An empty histogram that grows to whatever range it is given.
fn empty() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is valid")
}

impl Default for LatencyHistograms {
    fn default() -> Self {
        Self {
            ttft: empty(),
            tpot: empty(),
            itl: empty(),
            e2el: empty(),
        }
    }
}

impl LatencyHistograms {
    /// `(name, histogram)` in the summary's order.
    pub fn named(&self) -> [(&'static str, &Histogram<u64>); 4] {
        [
            ("ttft", &self.ttft),
            ("tpot", &self.tpot),
            ("itl", &self.itl),
            ("e2el", &self.e2el),
        ]
    }
}

/// Records millisecond values (as the metrics hold them) in nanoseconds.
pub(crate) fn from_ms(values: &[f64]) -> Histogram<u64> {
    let mut h = empty();
    for &v in values {
        let ns = (v * 1e6).round().max(0.0) as u64;
        // `record` grows the histogram (saturating_record would clamp instead); it only fails
        // past 2^62 ns, about 146 years, where clamping is the honest answer.
        if h.record(ns).is_err() {
            h.saturating_record(ns);
        }
    }
    h
}

/// `percentile` (0–100) in milliseconds; 0 for an empty histogram.
pub(crate) fn percentile_ms(h: &Histogram<u64>, percentile: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(percentile / 100.0) as f64 / 1e6
}

/// HdrHistogram's percentile-distribution text, values in milliseconds: five steps per halving
/// of the remaining tail, then mean, deviation, max and count as trailer comments.
pub(crate) fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let ms = |ns: u64| ns as f64 / 1e6;
    for q in h.iter_quantiles(5) {
        let quantile = q.quantile_iterated_to();
        let inverse = if quantile < 1.0 {
            format!("{:>14.2}", 1.0 / (1.0 - quantile))
        } else {
            format!("{:>14}", "inf")
        };
        let _ = writeln!(
            out,
            "{:>12.3} {:>14.12} {:>10} {inverse}",
            ms(q.value_iterated_to()),
            quantile,
            q.count_since_last_iteration(),
        );
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1e6,
        h.stdev() / 1e6
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        ms(h.max()),
        h.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_stay_within_three_digits() {
        let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 0.1).collect(); // 0.1..100 ms
        let h = from_ms(&values);
        assert_eq!(h.len(), 1000);
        // HDR percentiles are ranks, not numpy's interpolation: allow one 0.1 ms step between
        // neighbouring samples plus the 0.1% bucket width.
        for (p, exact) in [(50.0, 50.0), (90.0, 90.0), (99.0, 99.0), (99.9, 99.9)] {
            let got = percentile_ms(&h, p);
            assert!(
                (got - exact).abs() <= 0.1 + exact * 1e-3,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(percentile_ms(&from_ms(&[]), 99.0), 0.0);
    }

    #[test]
    fn hgrm_lists_the_distribution_and_totals() {
        let h = from_ms(&[10.0, 10.0, 20.0, 40.0]);
        let text = hgrm(&h);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().trim_start().starts_with("Value"));
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        // Values ascend, percentiles end at 1, counts add up to every recorded value.
        let values: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(rows.last().unwrap()[1].parse::<f64>().unwrap(), 1.0);
        let total: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
        assert_eq!(total, 4);
        assert!((values.last().unwrap() - 40.0).abs() < 0.05);
        assert!(text.contains("Total count    =            4]"), "{text}");
    }
}
