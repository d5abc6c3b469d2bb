//! Shared by the end-to-end tests: a temp workspace, case files, running `disagg`, and checks
//! that nothing of a run is left behind.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DISAGG: &str = env!("CARGO_BIN_EXE_disagg");

/// A temp folder (the `tempfile` crate's), removed on drop; kept with `DISAGG_KEEP_TMP=1`, to
/// look at a failed run's files.
pub struct TempDir(Option<tempfile::TempDir>);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("disagg-e2e-{tag}-"))
            .tempdir()
            .unwrap();
        Self(Some(dir))
    }
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("a live TempDir").path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("DISAGG_KEEP_TMP").is_some() {
            if let Some(dir) = self.0.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// A Slurm test's workspace: a temp folder in /tmp (which every node of the dev Slurm shares),
/// readable by job steps that run as another user (SlurmUser). Removed on drop, unless the test
/// failed: then it is kept, and its path printed.
pub struct JobDir(Option<tempfile::TempDir>);

impl JobDir {
    pub fn new(prefix: &str) -> Self {
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Self(Some(tmp))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("a live JobDir").path()
    }

    /// The ids of the jobs its runs submitted (each run folder's `slurm_job_id`).
    pub fn job_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let configs = std::fs::read_dir(self.path().join("disagg_logs"));
        for c in configs.into_iter().flatten().flatten() {
            for r in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                if let Ok(id) = std::fs::read_to_string(r.path().join("slurm_job_id")) {
                    ids.push(id.trim().to_string());
                }
            }
        }
        ids
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(tmp) = self.0.take() {
                eprintln!("kept {}", tmp.keep().display());
            }
        }
    }
}

/// A small, fast case. `gen_args` and `ctx_args` are YAML flow maps of sim engine_args.
pub struct CaseSpec<'a> {
    pub name: &'a str,
    pub ctx_args: &'a str,
    pub gen_args: &'a str,
    pub concurrency: &'a str,
    pub rounds: u32,
    pub osl: u32,
    pub timeouts: &'a str,
    /// More lines of the `benchmark` map, each `  key: value\n`.
    pub benchmark_extra: &'a str,
    pub extra: &'a str,
}

impl Default for CaseSpec<'_> {
    fn default() -> Self {
        Self {
            name: "e2e",
            ctx_args: "{}",
            gen_args: "{}",
            concurrency: "[1, 4]",
            rounds: 2,
            osl: 8,
            timeouts: "{worker_startup: 20s, request: 20s, benchmark: 60s, job: 120s, grace: 2s}",
            benchmark_extra: "",
            extra: "",
        }
    }
}

impl CaseSpec<'_> {
    pub fn yaml(&self) -> String {
        format!(
            "name: {name}\nmodel: {{name: llama-3.1-8b, precision: bf16}}\nengine: sim\nctx:\n  count: 1\n  engine_args: {ctx}\ngen:\n  count: 1\n  engine_args: {gen}\nbenchmark:\n  isl: 64\n  osl: {osl}\n  concurrency: {con}\n  rounds: {rounds}\n  warmup: 1\n{bench_extra}timeouts: {timeouts}\n{extra}",
            name = self.name,
            ctx = self.ctx_args,
            gen = self.gen_args,
            osl = self.osl,
            con = self.concurrency,
            rounds = self.rounds,
            timeouts = self.timeouts,
            bench_extra = self.benchmark_extra,
            extra = self.extra,
        )
    }

    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, self.yaml()).unwrap();
        p
    }
}

pub struct Ran {
    pub out: Output,
    pub elapsed: Duration,
    pub ended: std::time::SystemTime,
}

impl Ran {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// Runs `disagg args...` with `env`, bounded by a generous wall-clock limit.
pub fn disagg(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = Command::new(DISAGG);
    cmd.args(args)
        .env_remove("WORKSPACE")
        .env_remove("SKIP_PERF_CHECK")
        .env_remove("DISAGG_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // A watchdog so a hung run fails the test instead of hanging it.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(240);
        while Instant::now() < until {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watchdog.join();
    Ran {
        out,
        elapsed: start.elapsed(),
        ended: std::time::SystemTime::now(),
    }
}

/// `disagg run CASE --workspace WS` plus extra args.
pub fn run(case: &Path, ws: &Path, extra: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut args = vec![
        "run",
        case.to_str().unwrap(),
        "--workspace",
        ws.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    disagg(&args, env)
}

/// The run folders of a config, oldest first.
pub fn runs(ws: &Path, config: &str) -> Vec<PathBuf> {
    let dir = ws.join("disagg_logs").join(config);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.ends_with("latest"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

pub fn only_run(ws: &Path, config: &str) -> PathBuf {
    let r = runs(ws, config);
    assert_eq!(r.len(), 1, "expected one run of {config}: {r:?}");
    r.into_iter().next().unwrap()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Processes whose command line mentions `needle` (our run folder); zombies have none.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push((pid, cmd));
            }
        }
    }
    found
}

/// Asserts no process of the run is left: none mentions its folder, and no published pid lives.
pub fn assert_nothing_left(run_dir: &Path) {
    let left = processes_mentioning(run_dir.to_str().unwrap());
    assert!(left.is_empty(), "processes of the run are left: {left:?}");
    let rdv = run_dir.join("rendezvous");
    for e in std::fs::read_dir(&rdv).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            if let Some(pid) = json(&p).get("pid").and_then(|v| v.as_u64()) {
                let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| !s.contains(") Z "))
                    .unwrap_or(false);
                assert!(!alive, "pid {pid} from {} is still running", p.display());
            }
        }
    }
}

/// Parses results.xml and returns (testcase name, failure message or None, failure type).
/// The failure message of `ROLE stayed up` in the JUnit of `dir`; `None` when it passed (or is
/// not there).
pub fn stayed_up_failure(dir: &Path, role: &str) -> Option<String> {
    junit_cases(&dir.join("results.xml"))
        .into_iter()
        .find(|c| c.0 == format!("{role} stayed up"))
        .and_then(|c| c.1)
}

pub fn junit_cases(path: &Path) -> Vec<(String, Option<String>, Option<String>, bool)> {
    use quick_xml::events::Event;
    let xml = read(path);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases = Vec::new();
    let mut saw_suites = false;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("results.xml is not XML: {e}\n{xml}"))
        {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let attr = |k: &str| {
                    e.attributes()
                        .filter_map(|a| a.ok())
                        .find(|a| a.key.as_ref() == k.as_bytes())
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"testsuites" => saw_suites = true,
                    b"testcase" => cases.push((attr("name").unwrap(), None, None, false)),
                    b"failure" => {
                        let last = cases.last_mut().expect("failure inside a testcase");
                        last.1 = Some(attr("message").unwrap_or_default());
                        last.2 = attr("type");
                    }
                    b"skipped" => cases.last_mut().expect("skipped inside a testcase").3 = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert!(saw_suites, "results.xml has no <testsuites>");
    cases
}

/// A process as `/proc/PID/stat` tells it: (parent, state, start time in clock ticks).
pub fn proc_stat(pid: u32) -> Option<(u32, char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised name start at field 3 (state); start time is field 22.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.first()?.chars().next()?,
        f.get(22 - 3)?.parse().ok()?,
    ))
}

/// Every process below `root`, each with its start time (so a reused pid is not mistaken for it).
pub fn descendants_of(root: u32) -> Vec<(u32, u64)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
            if let Some((ppid, _, start)) = proc_stat(pid) {
                all.push((pid, ppid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for (pid, ppid, start) in &all {
            if *ppid == p {
                out.push((*pid, *start));
                stack.push(*pid);
            }
        }
    }
    out
}

/// Whether the process `pid` that started at `start` still runs (a zombie has ended).
pub fn still_running(pid: u32, start: u64) -> bool {
    proc_stat(pid).is_some_and(|(_, state, s)| s == start && state != 'Z' && state != 'X')
}

/// Whether this run must have every tool its tests need (CI), rather than skip what is missing.
pub fn ci_requires_tools() -> bool {
    ["CI", "DISAGG_REQUIRE_SLURM"].iter().any(|v| {
        std::env::var(v)
            .map(|x| matches!(x.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    })
}

/// Validates a JUnit file against Jenkins' xunit schema (the harness's test fixture
/// `junit-10.xsd`) with xmllint. Without xmllint the check fails under CI and is reported as
/// not run elsewhere.
pub fn assert_jenkins_valid(xml: &Path) {
    let xsd =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../disagg-harness/tests/fixtures/junit-10.xsd");
    let out = match Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(xml)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !ci_requires_tools() => {
            eprintln!(
                "XMLLINT TEST DID NOT RUN: xmllint is not installed (apt-get install libxml2-utils)"
            );
            return;
        }
        Err(e) => panic!("xmllint cannot run ({e}); CI needs it: apt-get install libxml2-utils"),
    };
    assert!(
        out.status.success(),
        "{} does not validate against junit-10.xsd:\n{}\n{}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(xml).unwrap_or_default()
    );
}

/// A running `disagg` server process, killed and reaped on drop.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// Starts `disagg args...` and reads the `host:port` it prints once bound (an event, not a wait).
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(Command::new(DISAGG).args(args), args)
    }

    /// [`Server::start`] after the shell command `first` (a `ulimit`, say), in one `sh`.
    pub fn start_after(first: &str, args: &[&str]) -> Self {
        let script = format!("{first} && exec \"$0\" \"$@\"");
        Self::spawn(
            Command::new("sh").args(["-c", &script, DISAGG]).args(args),
            args,
        )
    }

    fn spawn(cmd: &mut Command, args: &[&str]) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_string();
        assert!(addr.contains(':'), "{args:?} printed {line:?}");
        Self { child, addr }
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `disagg run` in the background, killed and reaped if the test ends early.
pub struct Background {
    child: Option<Child>,
}

impl Background {
    pub fn start(case: &Path, ws: &Path) -> Self {
        Self::start_env(case, ws, &[])
    }

    /// [`Background::start`] with these variables set.
    pub fn start_env(case: &Path, ws: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(DISAGG);
        cmd.args([
            "run",
            case.to_str().unwrap(),
            "--workspace",
            ws.to_str().unwrap(),
        ])
        .env_remove("SKIP_PERF_CHECK")
        .env_remove("WORKSPACE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Any `disagg` command line (a launcher, environment of its own), its output captured.
    pub fn spawn(mut cmd: Command) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child: Some(child) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Whether the run has already ended.
    pub fn ended(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Ends the run and fails the test with `why` and the run's output: for a run that never
    /// got where the test waits for it.
    pub fn abandon(mut self, why: &str) -> ! {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "{why}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits for the run to end (bounded): (exit code, stdout, stderr).
    pub fn wait(mut self, limit: Duration) -> (i32, String, String) {
        let until = Instant::now() + limit;
        while !self.ended() {
            if Instant::now() > until {
                self.abandon(&format!("disagg run did not end within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Kills `pid` (one of the run's processes: an engine, a router replica) with SIGKILL and waits,
/// up to 60 s, for the run to end: (exit code, how long after the kill it ended, stdout, stderr).
pub fn kill_and_wait(pid: u32, run: Background) -> (i32, Duration, String, String) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    (code, killed.elapsed(), stdout, stderr)
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (bounded) until `ready(run_dir)` holds for the config's run; returns the run folder.
pub fn wait_for(ws: &Path, config: &str, what: &str, ready: impl Fn(&Path) -> bool) -> PathBuf {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dir) = runs(ws, config).pop() {
            if ready(&dir) {
                return dir;
            }
        }
        assert!(Instant::now() < until, "{config}: {what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The benchmark is past its canary, so the sweep is running.
pub fn sweeping(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("benchmark.log")).is_ok_and(|l| l.contains("canary"))
}

/// A folder of engine stand-ins under `dir`: `vllm` and `python3` that exec `disagg sim --
/// <the engine's argv>`. Returns a PATH with it first.
pub fn stand_ins(dir: &Path) -> String {
    stand_ins_of(dir, &["vllm", "python3"])
}

/// A PATH whose `programs` exec `disagg sim -- <program> <args>` (the sim standing in for
/// each engine at its argv), ahead of the rest.
pub fn stand_ins_of(dir: &Path, programs: &[&str]) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in programs {
        let path = bin.join(program);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec '{DISAGG}' sim --itl 1ms -- {program} \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A small filesystem of its own (a tmpfs of `size`, e.g. `4m`) mounted on `dir`, unmounted when
/// dropped; `None` where it cannot be mounted (not root).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).ok()?;
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
