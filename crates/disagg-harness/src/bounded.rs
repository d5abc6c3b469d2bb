//! A results-store call after a run, bounded: it runs on a thread of its own, and the run waits
//! for it at most [`STORE_WAIT`] and never past a signal. A store that stops answering (a stuck
//! proxy in front of PostgreSQL, a table another session holds locked) must not hold a run whose
//! benchmark is over, nor make it deaf to Ctrl-C: its sockets read on, blocking, whatever the
//! signal handler says. The call abandoned goes on in the background until it ends or the
//! process does.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a finished run waits for the store: longer than a healthy store ever needs, and
/// than SQLite's busy timeout (a writer queueing behind others), short next to a job's time.
pub(crate) const STORE_WAIT: Duration = Duration::from_secs(90);

/// How long a run a signal stopped waits to be recorded: the sender may follow with SIGKILL.
pub(crate) const INTERRUPTED_STORE_WAIT: Duration = Duration::from_secs(5);

/// Why a bounded call gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// Not within the limit.
    TimedOut(Duration),
    /// A signal came first (SIGINT, SIGTERM, SIGHUP).
    Interrupted,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::TimedOut(d) => write!(f, "it did not answer within {} s", d.as_secs()),
            Unanswered::Interrupted => f.write_str("interrupted while waiting for it"),
        }
    }
}

/// How long a store call goes unsaid.
const SAY_WAITING_AFTER: Duration = Duration::from_secs(5);

/// Runs `call` on its own thread and waits for its answer at most `limit`, or until a signal
/// comes (one that came before, which interrupted the run, does not end the wait: an
/// interrupted run is recorded too). Past [`SAY_WAITING_AFTER`] it says it is waiting.
pub(crate) fn store_call<T: Send + 'static>(
    limit: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unanswered> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("results-store".into())
        .spawn(move || {
            let _ = tx.send(call());
        });
    if spawned.is_err() {
        // No thread to spare: nothing was called, and nothing will answer.
        return Err(Unanswered::TimedOut(Duration::ZERO));
    }
    let start = Instant::now();
    let until = start + limit;
    let signals = crate::run::SIGNALS.load(Ordering::SeqCst);
    // A store another process holds (a SQLite writer, a PostgreSQL lock) can take the whole
    // limit: said once, not left as a silent console.
    let mut said = false;
    loop {
        if crate::run::SIGNALS.load(Ordering::SeqCst) != signals {
            return Err(Unanswered::Interrupted);
        }
        if !said && start.elapsed() >= SAY_WAITING_AFTER {
            said = true;
            say_err!(
                "disagg: waiting for the results store (another process may hold it), at most \
                 {} in all",
                humantime::format_duration(Duration::from_secs(limit.as_secs()))
            );
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Unanswered::TimedOut(limit));
        }
        match rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The call panicked: say so rather than wait out the limit.
                return Err(Unanswered::TimedOut(Duration::ZERO));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_comes_back_and_a_silent_call_is_given_up_at_the_limit() {
        assert_eq!(store_call(Duration::from_secs(5), || 7), Ok(7));
        let started = Instant::now();
        let r = store_call(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
        });
        assert_eq!(r, Err(Unanswered::TimedOut(Duration::from_millis(200))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
