//! Ports a role picks for its engine (or an external router) to bind.
//!
//! A port is picked, found free, let go, and only then bound by the engine, so something else
//! may take it in between. Two things make that rare enough not to matter:
//!
//! - Ports come from below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by
//!   default), from its lower half down: no `bind(0)` and no outgoing connection of any process
//!   is ever given one of them. Picking with `bind(0)`, as we did, drew from the very pool every
//!   other test's server and every client socket draws from.
//! - Each port picked is held with a lock file (`flock`) in a folder shared by every `disagg` on
//!   the machine ([`LOCK_DIR`], or `$DISAGG_PORT_LOCKS`) until the role ends, and other roles
//!   skip ports whose lock is held: parallel runs on one machine (a CI agent's executors, the
//!   test suite) never pick the same port.
//!
//! What remains is a program outside `disagg` binding one of these ports explicitly in that
//! window; the worker's one retry after "address in use" covers that. When the lock folder
//! cannot be used (another user's, read-only), ports are picked without locks.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The machine-wide folder of port lock files (one empty file per port ever picked).
pub const LOCK_DIR: &str = "/tmp/disagg-ports";

/// How many candidate runs of ports to try before giving up.
const TRIES: usize = 256;

/// Ports held for one role: the first of `span` consecutive ports, free when picked and locked
/// against other `disagg` roles until this is dropped.
#[derive(Debug)]
pub struct Reserved {
    pub first: u16,
    _locks: Vec<Flock<File>>,
}

/// The folder of port lock files: `$DISAGG_PORT_LOCKS`, else [`LOCK_DIR`].
pub fn lock_dir() -> PathBuf {
    std::env::var_os("DISAGG_PORT_LOCKS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(LOCK_DIR))
}

/// `span` consecutive ports free on `host` and held for the caller (see the module's text).
pub fn reserve(host: &str, span: u16) -> Result<Reserved, String> {
    reserve_in(host, span, pool(), &lock_dir())
}

/// The ports to pick from: the lower half of what lies below the ephemeral range (16384–32767
/// with Linux's default range), or what lies above it when below is too small.
fn pool() -> (u16, u16) {
    let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999));
    pool_outside(lo, hi)
}

/// The pool for an ephemeral range `lo..=hi`: `[lo/2, lo)` when that holds at least 1024
/// ports above the privileged ones, else `(hi, 65535]` when that does, else everything
/// unprivileged (a machine whose ephemeral range covers it all).
fn pool_outside(lo: u16, hi: u16) -> (u16, u16) {
    let below = ((lo / 2).max(1024), lo.saturating_sub(1));
    let above = (hi.saturating_add(1), u16::MAX);
    let size = |(a, b): (u16, u16)| if b >= a { (b - a) as u32 + 1 } else { 0 };
    if size(below) >= 1024 {
        below
    } else if size(above) >= 1024 {
        above
    } else {
        (1024, u16::MAX)
    }
}

fn reserve_in(host: &str, span: u16, (lo, hi): (u16, u16), dir: &Path) -> Result<Reserved, String> {
    let span = span.max(1);
    // Where a run may start so that it ends inside the pool.
    let starts = (hi as u32 + 1).saturating_sub(lo as u32 + span as u32 - 1);
    if starts == 0 {
        return Err(format!(
            "cannot pick {span} consecutive ports from {lo}-{hi}: the pool is too small"
        ));
    }
    let locks = Locks::open(dir);
    let mut seed = RandomState::new().build_hasher();
    seed.write_u32(std::process::id());
    let from = (seed.finish() % starts as u64) as u32;
    let mut last_error = None;
    for i in 0..TRIES.min(starts as usize) {
        // Spread the tries over the pool: a taken run says little about its neighbours, and a
        // prime stride (1 for a pool it divides) visits every start once.
        let stride = if starts % 7919 == 0 { 1 } else { 7919 };
        let first = lo as u32 + (from + i as u32 * stride) % starts;
        let first = first as u16;
        match take(host, first, span, &locks) {
            Ok(held) => {
                return Ok(Reserved {
                    first,
                    _locks: held,
                });
            }
            Err(e) => last_error = e,
        }
    }
    Err(format!(
        "cannot find {span} consecutive free ports on {host} in {lo}-{hi} ({} tries){}",
        TRIES.min(starts as usize),
        last_error
            .map(|e| format!("; last: {e}"))
            .unwrap_or_default()
    ))
}

/// Locks and checks `first..first+span`: the held locks, or why not (None: merely taken).
fn take(
    host: &str,
    first: u16,
    span: u16,
    locks: &Locks,
) -> Result<Vec<Flock<File>>, Option<String>> {
    let mut held = Vec::new();
    let mut bound = Vec::new();
    for port in first..first + span {
        if let Some(lock) = locks.try_lock(port)? {
            held.push(lock);
        }
        match TcpListener::bind((host, port)) {
            Ok(l) => bound.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(None),
            // Not a taken port (the host is not this machine's, say): no other port will do.
            Err(e) => return Err(Some(format!("cannot bind {host}:{port}: {e}"))),
        }
    }
    // The probe listeners close here; the locks stay with the caller.
    Ok(held)
}

/// The lock folder, when usable.
struct Locks(Option<PathBuf>);

impl Locks {
    fn open(dir: &Path) -> Self {
        if !dir.is_dir() {
            if std::fs::create_dir_all(dir).is_err() {
                return Self(None);
            }
            // Shared by every user, like /tmp itself: anyone may add a lock file, no one may
            // remove another's. Best effort; a folder we cannot open up still serves us.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
            }
        }
        Self(Some(dir.to_path_buf()))
    }

    /// The port's lock, held; `Err(None)` when another role holds it; `Ok(None)` when there is
    /// no usable lock for it (no folder, a file we cannot open).
    fn try_lock(&self, port: u16) -> Result<Option<Flock<File>>, Option<String>> {
        let Some(dir) = &self.0 else {
            return Ok(None);
        };
        let path = dir.join(port.to_string());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            // Another user's lock file: a read-only descriptor locks as well.
            .or_else(|_| File::open(&path));
        let Ok(file) = file else {
            return Ok(None);
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(lock)),
            Err((_, Errno::EWOULDBLOCK)) => Err(None),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_lies_outside_the_ephemeral_range() {
        assert_eq!(pool_outside(32768, 60999), (16384, 32767));
        // A range starting low: above it instead.
        assert_eq!(pool_outside(1500, 40000), (40001, 65535));
        // A range covering everything: no way out.
        assert_eq!(pool_outside(1024, 65535), (1024, 65535));
        let (lo, hi) = pool();
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let e: Vec<u16> = range
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert!(hi < e[0] || lo > e[1], "{lo}-{hi} overlaps {e:?}");
    }

    #[test]
    fn a_held_port_is_skipped_by_the_next_pick_and_freed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // A pool of two ports, so each pick after the first has one choice.
        let base = free_pair_base();
        let pool = (base, base + 1);
        let a = reserve_in("127.0.0.1", 1, pool, dir.path()).unwrap();
        let b = reserve_in("127.0.0.1", 1, pool, dir.path()).unwrap();
        assert_ne!(a.first, b.first);
        // Nothing is left to pick while both are held.
        let e = reserve_in("127.0.0.1", 1, pool, dir.path()).unwrap_err();
        assert!(e.contains("cannot find 1 consecutive free ports"), "{e}");
        let freed = a.first;
        drop(a);
        let c = reserve_in("127.0.0.1", 1, pool, dir.path()).unwrap();
        assert_eq!(c.first, freed);
        // The port itself is free for the engine to bind.
        TcpListener::bind(("127.0.0.1", c.first)).unwrap();
        // A run is held as a whole: with one port of the pool locked, no run of 2 fits.
        let e = reserve_in("127.0.0.1", 2, pool, dir.path()).unwrap_err();
        assert!(e.contains("cannot find 2 consecutive"), "{e}");
        drop((b, c));
        let run = reserve_in("127.0.0.1", 2, pool, dir.path()).unwrap();
        assert_eq!(run.first, base);
    }

    #[test]
    fn a_bound_port_is_never_picked() {
        let dir = tempfile::tempdir().unwrap();
        let base = free_pair_base();
        let _taken = TcpListener::bind(("127.0.0.1", base)).unwrap();
        for _ in 0..8 {
            let r = reserve_in("127.0.0.1", 1, (base, base + 1), dir.path()).unwrap();
            assert_eq!(r.first, base + 1);
        }
    }

    #[test]
    fn an_unusable_lock_folder_still_picks_and_a_foreign_host_says_why() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // A file where the folder should be: no locks, but a port all the same.
        let r = reserve_in("127.0.0.1", 1, pool(), &file.path().join("x")).unwrap();
        TcpListener::bind(("127.0.0.1", r.first)).unwrap();
        // An address of no interface here: the error names it, not a full pool.
        let e = reserve_in("192.0.2.1", 1, pool(), &file.path().join("x")).unwrap_err();
        assert!(e.contains("cannot bind 192.0.2.1:"), "{e}");
    }

    /// The first of 4 consecutive ports in the pool free right now (the tests' own pools).
    fn free_pair_base() -> u16 {
        let (lo, hi) = pool();
        (lo..hi - 4)
            .step_by(97)
            .find(|&p| (p..p + 4).all(|q| TcpListener::bind(("127.0.0.1", q)).is_ok()))
            .expect("4 free ports in the pool")
    }
}
