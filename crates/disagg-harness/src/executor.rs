//! Executors start role processes. The supervisor is the same for every executor; only how a
//! role is started and signalled differs. The local executor spawns processes here; a Slurm
//! executor would start `srun` steps.

use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use disagg_core::RolePlan;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

/// How a role process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(&self) -> bool {
        matches!(self, Exit::Code(0))
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => {
                let name = Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "was killed by signal {s} ({name})")
            }
        }
    }
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// A started role.
pub trait Running: Send {
    fn pid(&self) -> u32;
    /// Non-blocking: `Some` once the role has ended (and is reaped).
    fn try_wait(&mut self) -> std::io::Result<Option<Exit>>;
    /// Asks the role (its whole process group) to stop.
    fn terminate(&mut self);
    /// Stops the role's whole process group now.
    fn kill(&mut self);
    /// Collects the ended leader; after this the role cannot be signalled.
    fn reap(&mut self);
}

/// Starts roles.
pub trait Executor {
    fn launch(&mut self, role: &RolePlan, log: File) -> std::io::Result<Box<dyn Running>>;

    /// Once every role is reaped: stops what the roles left behind outside their process groups
    /// (`setsid`, daemons, MPI launchers), and returns the pids that would not end. By default
    /// every descendant of this process (see `procs`), which the roles' launchers are.
    fn stop_leftovers(&mut self, grace: Duration) -> Vec<u32> {
        crate::procs::sweep(grace)
            .into_iter()
            .map(|p| p.as_raw() as u32)
            .collect()
    }
}

/// Spawns each role as a local process in its own process group, with the role's env, and its
/// stdout and stderr appended to its log file.
#[derive(Debug, Default)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn launch(&mut self, role: &RolePlan, log: File) -> std::io::Result<Box<dyn Running>> {
        launch_process(&role.argv, &role.env_set, &role.env_unset, log)
    }
}

/// Spawns `argv` (see [`spawn`]) and tracks it as a role: the local roles themselves, and the
/// `srun` processes of the Slurm executor.
pub fn launch_process(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
    unset: &[String],
    log: File,
) -> std::io::Result<Box<dyn Running>> {
    let child = spawn(argv, env, unset, log, None)?;
    let pid = Pid::from_raw(child.id() as i32);
    // Dropping `Child` neither waits nor kills; from here on the pid is tracked directly.
    drop(child);
    Ok(Box::new(LocalRole {
        pid,
        exit: None,
        reaped: false,
    }))
}

/// Spawns `argv` in a new process group with `env` set and `unset` removed, output to `log`.
pub fn spawn(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
    unset: &[String],
    log: File,
    cwd: Option<&Path>,
) -> std::io::Result<Child> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    for k in unset {
        cmd.env_remove(k);
    }
    cmd.envs(env);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    // The child dies with us: if `disagg run` is killed (even with SIGKILL), each role gets
    // SIGTERM, stops everything it started, and leaves. Checked against the parent's pid, so a
    // parent that died before the setting took hold is caught too.
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid) are made.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)?;
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("its supervisor has already exited"));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A local role, tracked by pid. Its exit is observed with `WNOWAIT`, so the leader stays a
/// zombie until [`Running::reap`]: its pid, and so its process-group id, cannot be reused by an
/// unrelated process while we may still signal the group.
struct LocalRole {
    pid: Pid,
    exit: Option<Exit>,
    reaped: bool,
}

impl LocalRole {
    fn signal_group(&self, sig: Signal) {
        if !self.reaped {
            let _ = killpg(self.pid, sig);
        }
    }
}

impl Running for LocalRole {
    fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }
    fn try_wait(&mut self) -> std::io::Result<Option<Exit>> {
        if self.exit.is_none() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(Id::Pid(self.pid), flags).map_err(std::io::Error::from)? {
                WaitStatus::Exited(_, code) => self.exit = Some(Exit::Code(code)),
                WaitStatus::Signaled(_, sig, _) => self.exit = Some(Exit::Signal(sig as i32)),
                _ => {}
            }
        }
        Ok(self.exit)
    }
    fn terminate(&mut self) {
        self.signal_group(Signal::SIGTERM);
        // A stopped (SIGSTOP, or hung in a debugger) process only acts on TERM once continued.
        self.signal_group(Signal::SIGCONT);
    }
    fn kill(&mut self) {
        self.signal_group(Signal::SIGKILL);
    }
    fn reap(&mut self) {
        if !self.reaped {
            let _ = waitpid(self.pid, None);
            self.reaped = true;
        }
    }
}

impl Drop for LocalRole {
    fn drop(&mut self) {
        // Never leave a process behind, even on a panic path.
        self.kill();
        self.reap();
    }
}
