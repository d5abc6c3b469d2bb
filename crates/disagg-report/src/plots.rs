//! The plots, each an SVG string drawn by `plotters`.

use disagg_bench::{LatencyStats, Metrics};
use plotters::prelude::*;

use crate::{HistorySeries, ParetoMark, Run};

const SIZE: (u32, u32) = (860, 480);
const FONT: &str = "sans-serif";

type Pick = fn(&Metrics) -> &LatencyStats;
/// A run's (concurrency, p50, p99) points.
type LatencyLine = (usize, Vec<(f64, f64, f64)>);

/// The latencies plotted against concurrency.
pub(crate) const LATENCIES: [(&str, Pick); 3] = [
    ("ttft", |m| &m.ttft),
    ("tpot", |m| &m.tpot),
    ("itl", |m| &m.itl),
];

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("cannot draw a plot: {e:?}")
}

/// A range around the values, never empty.
fn span(values: impl Iterator<Item = f64>, from_zero: bool) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
    (if from_zero { lo } else { lo - pad })..(hi + pad)
}

fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

/// tok/s/GPU against tok/s/user: every mark a circle (filled on the frontier), the frontier a
/// red line, each mark labelled.
pub(crate) fn pareto(marks: &[ParetoMark]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Pareto frontier: throughput per GPU against speed per user",
                (FONT, 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                span(marks.iter().map(|m| m.x), false),
                span(marks.iter().map(|m| m.y), true),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("output tok/s per user")
            .y_desc("output tok/s per GPU")
            .draw()
            .map_err(err)?;
        let mut front: Vec<(f64, f64)> = marks
            .iter()
            .filter(|m| m.frontier)
            .map(|m| (m.x, m.y))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front, RED.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(marks.iter().map(|m| {
                let c = colour(m.run);
                let style = if m.frontier {
                    c.filled()
                } else {
                    c.stroke_width(2)
                };
                Circle::new((m.x, m.y), 6, style)
            }))
            .map_err(err)?;
        chart
            .draw_series(
                marks
                    .iter()
                    .map(|m| Text::new(m.label.clone(), (m.x, m.y), (FONT, 11).into_font())),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    // Tag each mark so it can be counted in the DOM (every circle here is a mark).
    let mut tagged = String::with_capacity(svg.len() + marks.len() * 40);
    let mut rest = svg.as_str();
    let mut i = 0;
    while let Some(at) = rest.find("<circle") {
        tagged.push_str(&rest[..at]);
        let m = marks.get(i);
        tagged.push_str(&format!(
            "<circle data-pareto-mark=\"{}\" data-frontier=\"{}\"",
            crate::esc(m.map(|m| m.label.as_str()).unwrap_or("")),
            m.is_some_and(|m| m.frontier)
        ));
        rest = &rest[at + "<circle".len()..];
        i += 1;
    }
    tagged.push_str(rest);
    if i != marks.len() {
        return Err(format!(
            "the Pareto plot has {i} circles for {} marks",
            marks.len()
        ));
    }
    Ok(tagged)
}

/// p50 (solid) and p99 (thin) of one latency against concurrency, a pair of lines per run.
pub(crate) fn latency_vs_concurrency(
    name: &str,
    pick: Pick,
    runs: &[Run],
) -> Result<String, String> {
    let series: Vec<LatencyLine> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut pts: Vec<(f64, f64, f64)> = r
                .points
                .iter()
                .filter_map(|p| {
                    let c = p.point.concurrency? as f64;
                    let s = pick(&p.metrics);
                    Some((c, s.median_ms, s.p99_ms))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (i, pts)
        })
        .collect();
    let all = || series.iter().flat_map(|(_, v)| v.iter());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{} against concurrency (p50 thick, p99 thin)",
                    name.to_uppercase()
                ),
                (FONT, 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                span(all().map(|p| p.0), false),
                span(all().flat_map(|p| [p.1, p.2]), true),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("concurrency")
            .y_desc(format!("{} (ms)", name.to_uppercase()))
            .draw()
            .map_err(err)?;
        for (i, pts) in &series {
            let c = colour(*i);
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(3),
                ))
                .map_err(err)?
                .label(runs[*i].tag(runs))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
                });
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.2)),
                    c.stroke_width(1),
                ))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// `p99.9` → 99.9.
pub(crate) fn percentile_of(key: &str) -> Option<f64> {
    key.strip_prefix('p')?.parse().ok()
}

/// A percentile on HdrHistogram's tail scale, in "nines": p90 → 1, p99 → 2, p99.9 → 3; `None`
/// for p100 and beyond, which this scale cannot place.
pub(crate) fn nines(p: f64) -> Option<f64> {
    (0.0..100.0)
        .contains(&p)
        .then(|| -(1.0 - p / 100.0).log10())
}

/// The percentile at `x` nines, rounded for an axis label: 1 → 90, 2 → 99.
fn percentile_at(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let text = format!("{p:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One run's HDR percentiles of a metric, a line per point; `None` when it has none.
pub(crate) fn distribution(run: &Run, metric: &str) -> Result<Option<String>, String> {
    let series: Vec<(String, Vec<(f64, f64)>)> = run
        .points
        .iter()
        .filter_map(|p| {
            let ps = p.hdr_percentiles_ms.get(metric)?;
            let mut v: Vec<(f64, f64)> = ps
                .iter()
                .filter_map(|(k, v)| Some((nines(percentile_of(k)?)?, *v)))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!v.is_empty()).then(|| (p.point.label(), v))
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let all = || series.iter().flat_map(|(_, v)| v.iter());
    // (Less a hair: p99.9 is 3.0000000000000004 nines in floating point.)
    let top_nines = (all().map(|p| p.0).fold(1.0f64, f64::max) - 1e-9).ceil();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{} distribution, {}", metric.to_uppercase(), run.topology),
                (FONT, 16),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..top_nines, span(all().map(|p| p.1), true))
            .map_err(err)?;
        chart
            .configure_mesh()
            // A tick per nine: p0, p90, p99, p99.9, ...
            .x_labels(top_nines as usize + 1)
            .x_desc("percentile (log scale of the tail)")
            .x_label_formatter(&|x| format!("p{}", percentile_at(*x)))
            .y_desc("ms")
            .draw()
            .map_err(err)?;
        for (i, (label, pts)) in series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Some(svg))
}

/// A gated metric over the runs: the measured values, the baseline and its band, and a red
/// cross on each regression.
pub(crate) fn history(s: &HistorySeries) -> Result<String, String> {
    let n = s.rows.len();
    let measured: Vec<(f64, f64)> = s
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i as f64, r.measured?)))
        .collect();
    let bands: Vec<(f64, f64, f64, f64)> = s
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let b = r.baseline?;
            let w = r.band? * b.abs();
            Some((i as f64, b, b - w, b + w))
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let ys = measured
            .iter()
            .map(|p| p.1)
            .chain(bands.iter().flat_map(|b| [b.2, b.3]));
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} {} over time", s.point, s.metric), (FONT, 16))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n.max(1) as f64 - 0.5), span(ys, false))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("run (oldest first)")
            .y_desc(s.metric.as_str())
            .draw()
            .map_err(err)?;
        for (x, _, lo, hi) in &bands {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.3, *lo), (x + 0.3, *hi)],
                    RGBColor(120, 170, 220).mix(0.35).filled(),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(bands.iter().map(|(x, b, _, _)| {
                PathElement::new(vec![(x - 0.3, *b), (x + 0.3, *b)], BLACK.stroke_width(1))
            }))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                measured.iter().copied(),
                colour(0).stroke_width(2),
            ))
            .map_err(err)?;
        chart
            .draw_series(
                s.rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.regressed())
                    .filter_map(|(i, r)| {
                        Some(Cross::new((i as f64, r.measured?), 8, RED.stroke_width(3)))
                    }),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_scale_counts_nines() {
        assert!((nines(90.0).unwrap() - 1.0).abs() < 1e-9);
        assert!((nines(99.9).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), None);
        assert_eq!(percentile_at(2.0), "99");
        assert_eq!(percentile_at(nines(50.0).unwrap()), "50");
    }
}
