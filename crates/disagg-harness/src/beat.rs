//! A heartbeat for a process nobody can probe: BENCHMARK serves nothing, so the liveness prober
//! ([`crate::liveness`]) cannot tell a stopped or frozen benchmark from a busy one, and nothing
//! at all watches a Slurm job's supervisor but the `disagg run` waiting for it. Such a process
//! rewrites `rendezvous/<NAME>.beat` every [`BEAT_EVERY`] from a thread of its own, and its
//! watcher acts when the count there has not moved for long enough: the supervisor fails the run
//! naming BENCHMARK after `timeouts.unresponsive`; `disagg run` cancels a job whose SUPERVISOR
//! stopped beating ([`supervisor_silence`]).
//!
//! The file is one line, `<run id> <host> <pid> <count>`, the count zero-padded so every write
//! has the same length: it is rewritten in place (opened, written at offset 0, closed), never
//! replaced by a rename, so a reader on another node of a shared (NFS) folder finds the same file
//! and, opening it, the latest contents (close-to-open), and never a half-written line.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use disagg_core::Plan;

/// How often a beating role rewrites its file.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// How often the supervisor reads it.
const READ_EVERY: Duration = Duration::from_millis(500);

/// The name a Slurm job's supervisor beats under.
pub const SUPERVISOR: &str = "SUPERVISOR";

/// How long `disagg run` waits on a job's silent supervisor before it cancels the job: six
/// times `timeouts.unresponsive`, a minute by default, and never under 30 s, since cancelling a
/// healthy run on a shared filesystem's hiccup costs more than waiting.
pub fn supervisor_silence(plan: &Plan) -> Duration {
    (plan.deadlines.unresponsive * 6).max(Duration::from_secs(30))
}

pub fn path(plan: &Plan, name: &str) -> PathBuf {
    disagg_core::plan::rendezvous_dir(&plan.run_dir).join(format!("{name}.beat"))
}

/// This process beating until dropped.
pub struct Beating {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts beating as `name`, from a thread of its own: a runtime kept busy by the load does not
/// delay it, a stopped process or one frozen in a write to the run folder stops it.
pub fn start(plan: &Plan, name: &str) -> Beating {
    let path = path(plan, name);
    let head = format!(
        "{} {} {}",
        plan.run_id,
        crate::role::shared::hostname(),
        std::process::id()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("{name} beat"))
        .spawn(move || {
            let mut count: u64 = 0;
            while !stopping.load(Ordering::SeqCst) {
                count += 1;
                // A missed beat is not worth failing for here; the supervisor judges the gap.
                let _ = write(&path, &format!("{head} {count:020}\n"));
                std::thread::park_timeout(BEAT_EVERY);
            }
        })
        .ok();
    Beating { stop, thread }
}

fn write(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(line.as_bytes())
}

/// About how long `name` has beaten in this run (its count of beats, one a
/// [`BEAT_EVERY`]): what says how long a Slurm job's supervisor ran when it wrote no report and
/// Slurm keeps no account. `None` when it never beat.
pub fn beaten_for(plan: &Plan, name: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path(plan, name)).ok()?;
    let read = parse(&text, &plan.run_id)?;
    Some(BEAT_EVERY * u32::try_from(read.count).unwrap_or(u32::MAX))
}

/// One beat as read: where the process runs, and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    host: String,
    pid: u32,
    count: u64,
}

fn parse(text: &str, run_id: &str) -> Option<Read> {
    let mut words = text.lines().next()?.split(' ');
    if words.next()? != run_id {
        return None;
    }
    let host = words.next()?.to_string();
    let pid = words.next()?.parse().ok()?;
    let count = words.next()?.parse().ok()?;
    Some(Read { host, pid, count })
}

/// A beat that has not moved for a while: how long, and the words naming the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub for_: Duration,
    pub reason: String,
}

/// A watch on one process's beat.
pub struct Watch {
    name: String,
    path: PathBuf,
    run_id: String,
    /// The last count read, when it first read so, and that moment on the wall clock.
    last: Option<(Read, Instant, SystemTime)>,
    next_read: Instant,
}

impl Watch {
    pub fn new(plan: &Plan, name: &str) -> Self {
        Self {
            name: name.to_string(),
            path: path(plan, name),
            run_id: plan.run_id.clone(),
            last: None,
            next_read: Instant::now(),
        }
    }

    /// Whether the process has beaten at all (as last read by [`Watch::stale`]).
    pub fn started(&self) -> bool {
        self.last.is_some()
    }

    /// Counts `gap` as beating: the watcher itself stood still that long.
    pub fn excuse(&mut self, gap: Duration) {
        let now = Instant::now();
        if let Some((_, since, _)) = &mut self.last {
            *since = (*since + gap).min(now);
        }
    }

    /// Whether the beat was seen to change within `limit` before `now` (as last read by
    /// [`Watch::stale`]).
    pub fn heard_within(&self, now: Instant, limit: Duration) -> bool {
        self.last
            .as_ref()
            .is_some_and(|(_, since, _)| now.saturating_duration_since(*since) < limit)
    }

    /// Stale if its count has not moved for `limit` since it first beat. A file not there yet
    /// (the process not started) or unreadable for a moment is no evidence either way.
    pub fn stale(&mut self, now: Instant, limit: Duration) -> Option<Stale> {
        if now >= self.next_read {
            self.next_read = now + READ_EVERY;
            let read = std::fs::read_to_string(&self.path)
                .ok()
                .and_then(|t| parse(&t, &self.run_id));
            if let Some(read) = read {
                if self.last.as_ref().is_none_or(|(l, _, _)| *l != read) {
                    self.last = Some((read, now, SystemTime::now()));
                }
            }
        }
        let (read, since, at) = self.last.as_ref()?;
        let for_ = now.saturating_duration_since(*since);
        (for_ >= limit).then(|| Stale {
            for_,
            reason: format!(
                "{} stopped beating: rendezvous/{}.beat, rewritten every second by its process \
                 (pid {} on {}), last changed at {}, {} ago: the process is stopped or frozen \
                 (a signal, or a write to a hung filesystem)",
                self.name,
                self.name,
                read.pid,
                read.host,
                humantime::format_rfc3339_seconds(*at),
                humantime::format_duration(Duration::from_secs(for_.as_secs()))
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_only_for_its_run() {
        let line = "RUN1 dgn3 4242 00000000000000000007\n";
        assert_eq!(
            parse(line, "RUN1"),
            Some(Read {
                host: "dgn3".into(),
                pid: 4242,
                count: 7
            })
        );
        assert_eq!(parse(line, "RUN2"), None);
        assert_eq!(parse("RUN1 dgn3", "RUN1"), None);
        assert_eq!(parse("", "RUN1"), None);
    }

    #[test]
    fn a_beat_that_stops_is_silent_after_the_limit_and_one_that_goes_on_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARK.beat");
        let mut w = Watch {
            name: "BENCHMARK".into(),
            path: path.clone(),
            run_id: "RUN1".into(),
            last: None,
            next_read: Instant::now(),
        };
        let t0 = Instant::now();
        // Not started: no evidence, however long.
        for s in [0, 30, 60] {
            assert_eq!(
                w.stale(t0 + Duration::from_secs(s), Duration::from_secs(5)),
                None
            );
        }
        write(&path, "RUN1 h 9 00000000000000000001\n").unwrap();
        let mut at = t0 + Duration::from_secs(61);
        let mut tick = |w: &mut Watch, after_ms: u64| {
            at += Duration::from_millis(after_ms);
            w.stale(at, Duration::from_secs(5))
        };
        assert_eq!(tick(&mut w, 0), None);
        // Beating: each count seen resets the watch.
        for n in 2..12u64 {
            write(&path, &format!("RUN1 h 9 {n:020}\n")).unwrap();
            assert_eq!(tick(&mut w, 1000), None, "beat {n}");
        }
        // Stopped at 11: silent once 5 s have passed since it was first read.
        assert_eq!(tick(&mut w, 4000), None);
        let s = tick(&mut w, 1000).expect("stale");
        assert_eq!(s.for_, Duration::from_secs(5));
        assert!(
            s.reason.starts_with(
                "BENCHMARK stopped beating: rendezvous/BENCHMARK.beat, rewritten every second by \
                 its process (pid 9 on h), last changed at "
            ) && s
                .reason
                .contains(", 5s ago: the process is stopped or frozen"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn the_beating_thread_rewrites_the_file_in_place_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(disagg_core::plan::rendezvous_dir(dir.path())).unwrap();
        let case = disagg_core::parse_case(
            "model: {name: m}\nctx: {count: 1}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 8}\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let plan = disagg_core::plan::build(&case, "RUN1", dir.path(), Path::new("disagg"));
        let beating = start(&plan, "BENCHMARK");
        let file = path(&plan, "BENCHMARK");
        let read = || parse(&std::fs::read_to_string(&file).unwrap_or_default(), "RUN1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while read().is_none_or(|r| r.count < 2) {
            assert!(Instant::now() < deadline, "no second beat");
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = read().unwrap();
        assert_eq!(r.pid, std::process::id());
        assert!(beaten_for(&plan, "BENCHMARK").is_some_and(|d| d >= BEAT_EVERY * 2));
        assert_eq!(beaten_for(&plan, "SUPERVISOR"), None, "never beat");
        drop(beating);
        let last = read().unwrap().count;
        std::thread::sleep(BEAT_EVERY + Duration::from_millis(200));
        assert_eq!(read().unwrap().count, last, "no beat after the drop");
    }
}
