//! What `disagg run` shows while the benchmark runs, from `rendezvous/progress.json`: the point,
//! requests done of its total, failures, req/s and the point's ETA. A progress bar when stderr
//! is a terminal; otherwise a line every [`LINE_EVERY`] on stdout, which CI logs keep.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::rendezvous::Progress;

/// How often a progress line is printed when stderr is not a terminal.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// The live view of one run.
pub struct LiveView {
    terminal: bool,
    bar: Option<(String, ProgressBar)>,
    next_line: Instant,
    /// The point and count of the last line printed: an unchanged one is not printed again.
    last_line: Option<(String, u64)>,
    /// When progress was last shown: the run's heartbeat stays quiet meanwhile.
    shown: Option<Instant>,
    /// The run's name, when several runs are shown at once (Slurm jobs), and the bars they
    /// share.
    label: Option<String>,
    multi: Option<MultiProgress>,
}

impl Default for LiveView {
    fn default() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            bar: None,
            next_line: Instant::now(),
            last_line: None,
            shown: None,
            label: None,
            multi: None,
        }
    }
}

impl LiveView {
    /// The view of one of several runs shown at once: its lines and its bar (one of `bars`)
    /// start with `label`.
    pub fn labelled(label: String, bars: &MultiProgress) -> Self {
        let mut v = Self::default();
        v.label = Some(label);
        v.multi = Some(bars.clone());
        v
    }

    /// Shows `p` (as a bar, or as a line when one is due).
    pub fn show(&mut self, p: &Progress) {
        let now = Instant::now();
        let s = &p.now;
        let point = format!("{} ({}/{})", s.point, s.index, s.points);
        let name = match &self.label {
            Some(l) => format!("{l}: "),
            None => String::new(),
        };
        if self.terminal {
            if self.bar.as_ref().is_none_or(|(label, _)| *label != point) {
                self.finish();
                let bar = match &self.multi {
                    Some(m) => m.add(ProgressBar::new(s.total)),
                    None => ProgressBar::new(s.total),
                };
                bar.set_style(
                    ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                        .expect("the template is valid")
                        .progress_chars("=> "),
                );
                bar.set_prefix(format!("{name}{point}"));
                self.bar = Some((point, bar));
            }
            if let Some((_, bar)) = &self.bar {
                bar.set_position(s.done);
                bar.set_message(details(p));
            }
        } else if now >= self.next_line && self.last_line != Some((point.clone(), s.done)) {
            self.next_line = now + LINE_EVERY;
            self.last_line = Some((point, s.done));
            say!(
                "disagg: {name}{} (point {} of {}): {} of {} requests, {}",
                s.point,
                s.index,
                s.points,
                s.done,
                s.total,
                details(p)
            );
        }
        self.shown = Some(now);
    }

    /// Whether progress was shown within `within`.
    pub fn showing(&self, within: Duration) -> bool {
        self.shown.is_some_and(|t| t.elapsed() < within)
    }

    /// Clears the bar, if one is drawn.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.finish();
    }
}

/// "2 failed, 45.2 req/s, ETA 3s".
fn details(p: &Progress) -> String {
    let s = &p.now;
    let eta = match s.eta() {
        Some(d) => humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
        None => "unknown yet".into(),
    };
    format!("{} failed, {:.1} req/s, ETA {eta}", s.failed, s.rate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_point_the_counts_the_rate_and_the_eta() {
        let p = Progress {
            run_id: "r".into(),
            now: disagg_bench::LiveSnapshot {
                point: "con8".into(),
                index: 2,
                points: 3,
                done: 40,
                total: 120,
                failed: 1,
                in_flight: 8,
                elapsed_s: 10.0,
            },
        };
        assert_eq!(details(&p), "1 failed, 4.0 req/s, ETA 20s");
        let mut none = p.clone();
        none.now.done = 0;
        assert_eq!(details(&none), "1 failed, 0.0 req/s, ETA unknown yet");
    }
}
