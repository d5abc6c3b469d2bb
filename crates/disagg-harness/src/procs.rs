//! Every process a run started, found by ancestry rather than by process group.
//!
//! An engine's child may leave its process group (`setsid`, MPI launchers, daemonising engines),
//! so signalling groups is not enough. But `disagg run` and every role wrapper are child
//! subreapers: whatever a role starts, however it detaches, stays a descendant of the nearest
//! of them until it is reaped. So "the processes of this run" is exactly "the descendants of
//! this process", read from `/proc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How often [`sweep`] looks again while it waits.
const POLL: Duration = Duration::from_millis(20);

/// One entry of `/proc`: its parent, and whether it has ended but is not reaped yet.
#[derive(Debug, Clone, Copy)]
struct Entry {
    ppid: i32,
    zombie: bool,
}

/// Every process's parent and state, from `/proc/<pid>/stat`. Processes that end while this
/// reads are simply missing.
fn table() -> HashMap<i32, Entry> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so read after the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(ppid)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(ppid) = ppid.parse::<i32>() else {
            continue;
        };
        out.insert(
            pid,
            Entry {
                ppid,
                zombie: state == "Z" || state == "X",
            },
        );
    }
    out
}

/// The descendants of `root` (not `root` itself), with whether each has ended (a zombie).
pub fn descendants(root: Pid) -> Vec<(Pid, bool)> {
    let table = table();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, e) in &table {
        children.entry(e.ppid).or_default().push(*pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.as_raw()];
    while let Some(p) = stack.pop() {
        for c in children.get(&p).into_iter().flatten() {
            out.push((Pid::from_raw(*c), table[c].zombie));
            stack.push(*c);
        }
    }
    out
}

/// The descendants of this process that are still running.
pub fn living_descendants() -> Vec<Pid> {
    descendants(nix::unistd::getpid())
        .into_iter()
        .filter(|(_, zombie)| !zombie)
        .map(|(p, _)| p)
        .collect()
}

/// Reaps every ended child of this process without blocking.
pub fn reap_children() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Stops every descendant of this process, including those that left its process groups:
/// TERM (and CONT, so a stopped one acts on it), up to `grace` for them to end, then KILL,
/// reaping throughout; returns once none is left, or `grace` after the KILL. Returns the pids
/// still there at the end (empty unless something cannot be killed, e.g. stuck in a driver).
///
/// Only call this once the caller is done with its own child handles: it reaps any child.
pub fn sweep(grace: Duration) -> Vec<Pid> {
    let signal_all = |sig: Signal| {
        for p in living_descendants() {
            let _ = kill(p, sig);
            if sig == Signal::SIGTERM {
                let _ = kill(p, Signal::SIGCONT);
            }
        }
    };
    let wait_until = |until: Instant| loop {
        reap_children();
        let left = descendants(nix::unistd::getpid());
        if left.is_empty() || Instant::now() >= until {
            return left.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        }
        std::thread::sleep(POLL);
    };
    if living_descendants().is_empty() {
        reap_children();
        return wait_until(Instant::now());
    }
    signal_all(Signal::SIGTERM);
    let stubborn = wait_until(Instant::now() + grace);
    if stubborn.is_empty() {
        return Vec::new();
    }
    // Said in the role's log: an engine that ignores SIGTERM is why its teardown took longer.
    say_err!(
        "disagg: {} process(es) still running {} after SIGTERM (pid {}): sending SIGKILL",
        stubborn.len(),
        humantime::format_duration(grace),
        stubborn
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    signal_all(Signal::SIGKILL);
    wait_until(Instant::now() + grace)
}

/// Makes this process a child subreaper: descendants orphaned by their parent are re-parented
/// to it (not to init), so they stay findable by [`descendants`] and are reaped here.
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descendants_of_a_shell_include_a_detached_child() {
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "setsid sleep 30 & sleep 30"])
            .spawn()
            .unwrap();
        let sh_pid = Pid::from_raw(sh.id() as i32);
        let until = Instant::now() + Duration::from_secs(5);
        let found = loop {
            let d = descendants(sh_pid);
            if d.len() >= 2 || Instant::now() > until {
                break d;
            }
            std::thread::sleep(POLL);
        };
        for (p, _) in &found {
            let _ = kill(*p, Signal::SIGKILL);
        }
        let _ = kill(sh_pid, Signal::SIGKILL);
        let _ = sh.wait();
        // Both sleeps, although one has a session (and process group) of its own.
        assert_eq!(found.len(), 2, "{found:?}");
        let me = descendants(nix::unistd::getpid());
        assert!(
            !me.iter().any(|(p, _)| *p == sh_pid),
            "sh is reaped: {me:?}"
        );
    }
}
