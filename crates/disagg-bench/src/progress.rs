//! Live progress of one point: counters the request tasks bump, and a reporter that shows done,
//! in-flight, req/s and errors until the point ends.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Outcome;

/// How often progress lines go to a non-terminal stderr.
const LINE_EVERY: Duration = Duration::from_secs(2);
/// How often the terminal bar is redrawn.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Counters the reporter reads while requests run. Relaxed atomics: a progress line that is a
/// request behind is fine, a lock on the request path is not.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
    /// Failed requests that waited out a limit: `timeout`, `stalled`, or a router's 504.
    hung: AtomicU64,
    /// The failures the point may have and still be valid; `None`: no limit (warmup, or
    /// `keep_going`).
    budget: Option<u64>,
}

impl Progress {
    /// A point's counters; see [`Self::should_stop`].
    pub fn with_failure_budget(budget: Option<u64>) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// More requests have failed than the point may have, so it has failed whatever follows,
    /// and some of them hung until a limit: each further wave would wait as long, so the point
    /// sends nothing more. Failures that come back at once cost nothing, and all of the point's
    /// requests still go, for a full count.
    pub fn should_stop(&self) -> bool {
        self.budget.is_some_and(|b| {
            self.failed.load(Ordering::Relaxed) > b && self.hung.load(Ordering::Relaxed) > 0
        })
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn finished(&self, outcome: &Outcome) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Err(failure) = &outcome.result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if failure.waited_out_a_limit() {
                self.hung.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A point's name and the counters its requests bump.
pub(crate) struct Watched<'a> {
    pub label: &'a str,
    pub progress: Arc<Progress>,
}

/// What a sweep is doing right now, for a watcher outside it (the harness shows it while
/// `disagg run` waits): the point being measured and its counters. Cheap to read at any time.
#[derive(Debug, Default)]
pub struct Live {
    now: std::sync::Mutex<Option<LivePoint>>,
}

#[derive(Debug)]
struct LivePoint {
    index: usize,
    points: usize,
    label: String,
    total: u64,
    started: Instant,
    progress: Arc<Progress>,
}

/// One look at a running sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveSnapshot {
    /// The point's label (`con8`, `rate2.5`).
    pub point: String,
    /// 1-based position of the point, and how many the sweep has.
    pub index: usize,
    pub points: usize,
    /// Requests ended (completed or failed) of the point's total.
    pub done: u64,
    pub total: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Since the point's requests started (warmup excluded).
    pub elapsed_s: f64,
}

impl LiveSnapshot {
    /// Requests ended per second so far in this point.
    pub fn rate(&self) -> f64 {
        if self.elapsed_s > 0.0 {
            self.done as f64 / self.elapsed_s
        } else {
            0.0
        }
    }

    /// Time left in this point at the rate so far; `None` before anything ended.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0)
            .then(|| Duration::from_secs_f64(self.total.saturating_sub(self.done) as f64 / rate))
    }
}

impl Live {
    pub(crate) fn begin(
        &self,
        index: usize,
        points: usize,
        label: &str,
        total: u64,
        progress: &Arc<Progress>,
    ) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = Some(LivePoint {
            index,
            points,
            label: label.to_string(),
            total,
            started: Instant::now(),
            progress: Arc::clone(progress),
        });
    }

    pub(crate) fn end(&self) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The point being measured, if one is.
    pub fn snapshot(&self) -> Option<LiveSnapshot> {
        let now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let p = now.as_ref()?;
        Some(LiveSnapshot {
            point: p.label.clone(),
            index: p.index,
            points: p.points,
            done: p.progress.done.load(Ordering::Relaxed),
            total: p.total,
            failed: p.progress.failed.load(Ordering::Relaxed),
            in_flight: p.progress.in_flight.load(Ordering::Relaxed),
            elapsed_s: p.started.elapsed().as_secs_f64(),
        })
    }
}

/// Shows progress until dropped: a live bar when stderr is a terminal, plain periodic lines
/// otherwise (logs and CI keep a readable record instead of carriage-return noise).
pub(crate) struct Reporter {
    task: tokio::task::JoinHandle<()>,
    /// The terminal bar, kept here so it can be cleared cleanly when the point ends.
    bar: Option<(ProgressBar, Arc<Progress>, Instant)>,
}

impl Reporter {
    pub fn start(progress: &Arc<Progress>, label: &str, total: usize) -> Self {
        let (progress, label) = (Arc::clone(progress), label.to_string());
        if std::io::stderr().is_terminal() {
            let started = Instant::now();
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label);
            let task = tokio::spawn(redraw(bar.clone(), Arc::clone(&progress), started));
            Self {
                task,
                bar: Some((bar, progress, started)),
            }
        } else {
            let task = tokio::spawn(lines(progress, label, total));
            Self { task, bar: None }
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
        if let Some((bar, progress, started)) = &self.bar {
            // The sweep prints the point's closing line next; the bar would only repeat it.
            draw(bar, progress, *started);
            bar.finish_and_clear();
        }
    }
}

/// A snapshot of the counters, with the completion rate since the start.
fn snapshot(progress: &Progress, started: Instant) -> (u64, u64, u64, f64) {
    let done = progress.done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let rate = if elapsed > 0.0 {
        done as f64 / elapsed
    } else {
        0.0
    };
    (
        done,
        progress.in_flight.load(Ordering::Relaxed),
        progress.failed.load(Ordering::Relaxed),
        rate,
    )
}

async fn lines(progress: Arc<Progress>, label: String, total: usize) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(LINE_EVERY);
    tick.tick().await; // the first tick is immediate; nothing to say yet
    loop {
        tick.tick().await;
        let (done, in_flight, failed, rate) = snapshot(&progress, started);
        say_err!(
            "{label} done {done}/{total} in-flight {in_flight} failed {failed} {rate:.1} req/s"
        );
    }
}

/// Redraws the bar from the counters, never from the request path.
async fn redraw(bar: ProgressBar, progress: Arc<Progress>, started: Instant) {
    let mut tick = tokio::time::interval(BAR_EVERY);
    loop {
        tick.tick().await;
        draw(&bar, &progress, started);
    }
}

fn draw(bar: &ProgressBar, progress: &Progress, started: Instant) {
    let (done, in_flight, failed, rate) = snapshot(progress, started);
    bar.set_position(done);
    bar.set_message(format!(
        "in-flight {in_flight} failed {failed} {rate:.0} req/s"
    ));
}
