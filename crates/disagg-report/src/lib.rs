//! `report.html`: one self-contained HTML file (inline SVG plots drawn with `plotters`, inline
//! CSS, no script, nothing fetched) for a run, a sweep or a config's history.
//!
//! ```text
//! Report { runs, history } ──render──▶ <html>
//!   Pareto frontier: tok/s/GPU against tok/s/user, a mark per run and point, the frontier
//!                    drawn and filled, each mark labelled with its topology and point
//!   TTFT, TPOT, ITL against concurrency, p50 and p99, a line pair per run
//!   per run: the latency distributions of its HDR histograms (percentile → ms)
//!   history: each gated metric over time, the band around the baseline, regressions marked
//!   and under every plot, the table it was drawn from
//! ```
//!
//! Every Pareto mark is an SVG `<circle data-pareto-mark="...">`, so a test (or a reader's
//! browser) can count them in the DOM.

mod plots;

use std::fmt::Write as _;

use disagg_bench::PointReport;

/// One run: what it was and what it measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub config_name: String,
    /// e.g. `ctx2×1gpu gen1×2gpu`.
    pub topology: String,
    /// Every worker GPU.
    pub gpus: u32,
    pub run_dir: String,
    pub verdict: String,
    /// Why it failed, when it did and its folder says.
    pub reason: Option<String>,
    pub points: Vec<PointReport>,
}

impl Run {
    /// How the report names this run among `runs`: its topology, with its config name when
    /// another run has the same topology (a sweep over anything but the topology).
    pub fn tag(&self, runs: &[Run]) -> String {
        if runs.iter().filter(|r| r.topology == self.topology).count() > 1 {
            format!("{} ({})", self.topology, self.config_name)
        } else {
            self.topology.clone()
        }
    }
}

/// One gated metric of one point over time.
#[derive(Debug, Clone)]
pub struct HistorySeries {
    pub point: String,
    pub metric: String,
    pub rows: Vec<HistoryRow>,
}

/// One run in a [`HistorySeries`].
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub recorded_at: String,
    pub run_id: String,
    pub measured: Option<f64>,
    /// The gate's baseline and band (a fraction of it), when the run was gated.
    pub baseline: Option<f64>,
    pub band: Option<f64>,
    /// The gate's verdict (`ok`, `regressed`, ...), when the run was gated.
    pub verdict: Option<String>,
}

impl HistoryRow {
    pub fn regressed(&self) -> bool {
        self.verdict.as_deref() == Some("regressed")
    }
}

/// What a report shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: String,
    /// A line under the title (where it came from).
    pub subtitle: String,
    pub runs: Vec<Run>,
    pub history: Vec<HistorySeries>,
}

/// One mark of the Pareto plot.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoMark {
    pub run: usize,
    pub label: String,
    /// tok/s/user
    pub x: f64,
    /// tok/s/GPU
    pub y: f64,
    pub frontier: bool,
    /// Why the mark is no candidate for the frontier: the point is invalid (too many failed
    /// requests, ...), or its run failed. Such a mark is drawn and listed, never on the frontier,
    /// and dominates no other.
    pub excluded: Option<String>,
}

/// Whether a run's verdict leaves its points standing: passed or regressed (measured, and
/// judged), or not known yet.
fn run_stands(verdict: &str) -> bool {
    !matches!(verdict, "FAILED" | "failed" | "interrupted")
}

/// Every run's every point as a mark, the non-dominated valid ones (higher is better on both
/// axes) on the frontier.
pub fn pareto(runs: &[Run]) -> Vec<ParetoMark> {
    let mut marks: Vec<ParetoMark> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let tag = r.tag(runs);
            r.points.iter().map(move |p| ParetoMark {
                run: i,
                label: format!("{tag} {}", p.point.label()),
                x: p.metrics.user_throughput,
                y: p.metrics.output_throughput / r.gpus.max(1) as f64,
                frontier: false,
                excluded: match p.validity.reason() {
                    Some(why) => Some(format!("invalid: {why}")),
                    None => (!run_stands(&r.verdict)).then(|| format!("run {}", r.verdict)),
                },
            })
        })
        .filter(|m| m.x.is_finite() && m.y.is_finite())
        .collect();
    let candidates: Vec<(f64, f64)> = marks
        .iter()
        .filter(|m| m.excluded.is_none())
        .map(|m| (m.x, m.y))
        .collect();
    for m in marks.iter_mut().filter(|m| m.excluded.is_none()) {
        m.frontier = !candidates
            .iter()
            .any(|&(x, y)| x >= m.x && y >= m.y && (x > m.x || y > m.y));
    }
    marks
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 2em}\
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th{background:#f0f0f0}td.l,th.l{text-align:left}\
figure{margin:1em 0}svg{max-width:100%;height:auto}\
.regressed{color:#b00;font-weight:bold}";

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".into()
    }
}

/// The whole page.
pub fn render(r: &Report) -> Result<String, String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head><body>\n\
         <h1>{}</h1><p>{}</p>\n",
        esc(&r.title),
        esc(&r.title),
        esc(&r.subtitle)
    );
    if !r.runs.is_empty() {
        runs_table(&mut h, &r.runs);
        let marks = pareto(&r.runs);
        let _ = writeln!(
            h,
            "<h2>Pareto frontier</h2><p>{} marks, {} on the frontier (filled): output tok/s per GPU against tok/s per user.</p>",
            marks.len(),
            marks.iter().filter(|m| m.frontier).count()
        );
        let _ = writeln!(
            h,
            "<figure id=\"pareto\">{}</figure>",
            plots::pareto(&marks)?
        );
        h.push_str("<table><tr><th class=\"l\">mark</th><th>tok/s/user</th><th>tok/s/GPU</th><th>frontier</th></tr>\n");
        for m in &marks {
            let frontier = match (&m.excluded, m.frontier) {
                (Some(why), _) => format!("no ({why})"),
                (None, true) => "yes".into(),
                (None, false) => String::new(),
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(&m.label),
                num(m.x),
                num(m.y),
                esc(&frontier)
            );
        }
        h.push_str("</table>\n<h2>Latency against concurrency</h2>\n");
        for (name, pick) in plots::LATENCIES {
            let _ = writeln!(
                h,
                "<figure id=\"{name}\">{}</figure>",
                plots::latency_vs_concurrency(name, pick, &r.runs)?
            );
            let _ = writeln!(
                h,
                "<table><tr><th class=\"l\">run</th><th>concurrency</th><th>{0} p50 (ms)</th><th>{0} p99 (ms)</th></tr>",
                name.to_uppercase()
            );
            for run in &r.runs {
                for p in &run.points {
                    let s = pick(&p.metrics);
                    let _ = writeln!(
                        h,
                        "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&run.tag(&r.runs)),
                        p.point
                            .concurrency
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                        num(s.median_ms),
                        num(s.p99_ms)
                    );
                }
            }
            h.push_str("</table>\n");
        }
        h.push_str("<h2>Latency distributions (HDR histograms)</h2>\n");
        // The tables above follow TensorRT-LLM's and vLLM's benchmarks (a median interpolates
        // between the two middle samples); a histogram's percentile is the value at that rank:
        // on a small point the two p50s can differ, and both are right.
        h.push_str(
            "<p>Percentiles here are the histogram's (the sample at that rank); the tables above \
             interpolate their medians and percentiles as TensorRT-LLM's and vLLM's benchmarks \
             do, so on a point of few requests the two can differ.</p>\n",
        );
        for run in &r.runs {
            let _ = writeln!(
                h,
                "<h3>{} — {}</h3>",
                esc(&run.config_name),
                esc(&run.topology)
            );
            if run.points.is_empty() {
                let _ = writeln!(
                    h,
                    "<p>No point measured (run {}{}).</p>",
                    esc(&run.verdict),
                    run.reason
                        .as_deref()
                        .map(|r| format!(": {}", esc(r)))
                        .unwrap_or_default()
                );
                continue;
            }
            for metric in ["ttft", "tpot", "itl", "e2el"] {
                let Some(svg) = plots::distribution(run, metric)? else {
                    continue;
                };
                let _ = writeln!(h, "<figure>{svg}</figure>");
                distribution_table(&mut h, run, metric);
            }
        }
    }
    if !r.history.is_empty() {
        h.push_str("<h2>History of the gated metrics</h2>\n");
        for s in &r.history {
            let _ = writeln!(h, "<figure>{}</figure>", plots::history(s)?);
            let _ = writeln!(
                h,
                "<table><tr><th class=\"l\">recorded</th><th class=\"l\">run</th><th>{} {}</th><th>baseline</th><th>band</th><th class=\"l\">verdict</th></tr>",
                esc(&s.point),
                esc(&s.metric)
            );
            for row in &s.rows {
                let _ = writeln!(
                    h,
                    "<tr{}><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                    if row.regressed() {
                        " class=\"regressed\""
                    } else {
                        ""
                    },
                    esc(&row.recorded_at),
                    esc(&row.run_id),
                    row.measured.map(num).unwrap_or_else(|| "-".into()),
                    row.baseline.map(num).unwrap_or_else(|| "-".into()),
                    row.band
                        .map(|b| format!("±{:.1}%", b * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    esc(row.verdict.as_deref().unwrap_or("not gated"))
                );
            }
            h.push_str("</table>\n");
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn runs_table(h: &mut String, runs: &[Run]) {
    h.push_str("<h2>Runs</h2><table><tr><th class=\"l\">config</th><th class=\"l\">topology</th><th>GPUs</th><th class=\"l\">verdict</th><th class=\"l\">run folder</th></tr>\n");
    for r in runs {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&r.config_name),
            esc(&r.topology),
            r.gpus,
            esc(&r.verdict),
            esc(&r.run_dir)
        );
        if let Some(why) = &r.reason {
            let _ = writeln!(
                h,
                "<tr class=\"why\"><td class=\"l\" colspan=\"5\">why: {}</td></tr>",
                esc(why)
            );
        }
    }
    h.push_str("</table>\n");
}

fn distribution_table(h: &mut String, run: &Run, metric: &str) {
    let _ = writeln!(
        h,
        "<table><tr><th class=\"l\">point</th><th class=\"l\">{} percentiles (ms)</th></tr>",
        metric.to_uppercase()
    );
    for p in &run.points {
        let Some(ps) = p.hdr_percentiles_ms.get(metric) else {
            continue;
        };
        let mut cells: Vec<(f64, String, f64)> = ps
            .iter()
            .filter_map(|(k, v)| Some((plots::percentile_of(k)?, k.clone(), *v)))
            .collect();
        cells.sort_by(|a, b| a.0.total_cmp(&b.0));
        let text: Vec<String> = cells
            .iter()
            .map(|(_, k, v)| format!("{k}: {}", num(*v)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&p.point.label()),
            esc(&text.join(", "))
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(c: u32, user: f64, output: f64) -> PointReport {
        PointReport {
            point: disagg_bench::PointId::closed(c),
            started_at: std::time::SystemTime::UNIX_EPOCH,
            ended_at: std::time::SystemTime::UNIX_EPOCH,
            num_prompts: 1,
            metrics: disagg_bench::Metrics {
                user_throughput: user,
                output_throughput: output,
                ..Default::default()
            },
            error_counts: Default::default(),
            hdr_percentiles_ms: Default::default(),
            validity: Default::default(),
        }
    }

    #[test]
    fn the_frontier_holds_the_marks_no_other_beats_on_both_axes() {
        let runs = vec![
            Run {
                config_name: "a".into(),
                topology: "A".into(),
                gpus: 2,
                run_dir: String::new(),
                verdict: "passed".into(),
                reason: None,
                // (user tok/s, tok/s/GPU): (100, 50), (50, 200)
                points: vec![point(1, 100.0, 100.0), point(8, 50.0, 400.0)],
            },
            Run {
                config_name: "b".into(),
                topology: "B".into(),
                gpus: 4,
                run_dir: String::new(),
                verdict: "passed".into(),
                reason: None,
                // (90, 25): beaten by A con1 on both; (40, 250): on the frontier.
                points: vec![point(1, 90.0, 100.0), point(8, 40.0, 1000.0)],
            },
        ];
        let marks = pareto(&runs);
        let on: Vec<(&str, bool)> = marks
            .iter()
            .map(|m| (m.label.as_str(), m.frontier))
            .collect();
        assert_eq!(
            on,
            [
                ("A con1", true),
                ("A con8", true),
                ("B con1", false),
                ("B con8", true)
            ]
        );
        let html = render(&Report {
            title: "t <x>".into(),
            runs,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(html.matches("data-pareto-mark=").count(), 4);
        assert_eq!(html.matches("data-frontier=\"true\"").count(), 3);
        assert!(html.contains("<title>t &lt;x&gt;</title>"));
    }

    #[test]
    fn invalid_points_and_failed_runs_are_drawn_but_never_on_the_frontier() {
        let mut bad = point(4, 1000.0, 1000.0);
        bad.validity.problems.push(disagg_bench::Problem {
            kind: disagg_bench::ProblemKind::FailedRequests,
            message: "concurrency 4: 1 of 8 requests failed".into(),
        });
        let run = |name: &str, verdict: &str, points| Run {
            config_name: name.into(),
            topology: name.into(),
            gpus: 1,
            run_dir: String::new(),
            verdict: verdict.into(),
            reason: None,
            points,
        };
        let runs = vec![
            run("a", "FAILED", vec![point(1, 100.0, 100.0), bad]),
            run("b", "FAILED", vec![point(1, 500.0, 500.0)]),
            run("c", "passed", vec![point(1, 50.0, 50.0)]),
        ];
        let marks = pareto(&runs);
        let got: Vec<(&str, bool, Option<&str>)> = marks
            .iter()
            .map(|m| (m.label.as_str(), m.frontier, m.excluded.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("a con1", false, Some("run FAILED"),),
                (
                    "a con4",
                    false,
                    Some("invalid: concurrency 4: 1 of 8 requests failed"),
                ),
                ("b con1", false, Some("run FAILED")),
                // Beaten on both axes only by marks that are no candidates.
                ("c con1", true, None),
            ]
        );
        let html = render(&Report {
            title: "t".into(),
            runs,
            ..Default::default()
        })
        .unwrap();
        assert!(
            html.contains(
                "<td class=\"l\">no (invalid: concurrency 4: 1 of 8 requests failed)</td>"
            ),
            "{html}"
        );
    }

    #[test]
    fn runs_of_one_topology_are_told_apart_by_their_config_names() {
        let run = |name: &str| Run {
            config_name: name.into(),
            topology: "ctx1×1gpu gen1×1gpu".into(),
            gpus: 2,
            run_dir: String::new(),
            verdict: "passed".into(),
            reason: None,
            points: vec![point(1, 100.0, 100.0)],
        };
        let runs = vec![run("sw-osl50"), run("sw-osl60")];
        let labels: Vec<String> = pareto(&runs).into_iter().map(|m| m.label).collect();
        assert_eq!(
            labels,
            [
                "ctx1×1gpu gen1×1gpu (sw-osl50) con1",
                "ctx1×1gpu gen1×1gpu (sw-osl60) con1"
            ]
        );
        let html = render(&Report {
            title: "t".into(),
            runs,
            ..Default::default()
        })
        .unwrap();
        assert!(html.contains("gen1×1gpu (sw-osl60)</td>"), "{html}");
    }
}
