//! `disagg run --launcher slurm` on a real multi-node Slurm: three nodes, each its own network
//! namespace, hostname and slurmd, with fake GPUs through gres and device cgroups
//! (`bash scripts/dev-slurm.sh up --nodes 3 --gpus-per-node 8 --constrain-devices`). Where that
//! cluster does not answer, each test says so on stderr and returns; with
//! `DISAGG_REQUIRE_SLURM=1` (CI) it fails instead.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{DISAGG, json, processes_mentioning, read};

/// The multi-node Slurm's config, as `scripts/dev-slurm.sh up --nodes N` writes it.
fn slurm_conf() -> String {
    std::env::var("DISAGG_MULTINODE_SLURM_CONF")
        .unwrap_or_else(|_| "/etc/disagg-slurm-mn/slurm.conf".into())
}

const UP: &str = "bash scripts/dev-slurm.sh up --nodes 3 --gpus-per-node 8 --constrain-devices";

/// A Slurm command against the multi-node cluster.
fn slurm(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// True when the three-node cluster answers; otherwise reports that the test did not run (or
/// fails, under `DISAGG_REQUIRE_SLURM=1`).
fn cluster_up(test: &str) -> bool {
    let nodes = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%N %T"])
        .env("SLURM_CONF", slurm_conf())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let usable = nodes
        .lines()
        .filter(|l| {
            let state = l.split_whitespace().nth(1).unwrap_or("");
            ["idle", "mixed", "allocated", "completing"]
                .iter()
                .any(|s| state.starts_with(s))
        })
        .count();
    if usable >= 3 {
        return true;
    }
    let why = format!(
        "the multi-node Slurm ({}) does not answer with 3 usable nodes (sinfo: {:?}); bring it up with `{UP}`",
        slurm_conf(),
        nodes.trim()
    );
    if std::env::var("DISAGG_REQUIRE_SLURM").is_ok_and(|v| v == "1") {
        panic!("DISAGG_REQUIRE_SLURM=1 but {why}");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SLURM TEST DID NOT RUN: {test}: {why}");
    false
}

/// A workspace of one test, in /tmp (which every node shares); on drop it cancels any job of
/// its own still queued or running, and keeps the folder of a failed test.
struct Ws {
    dir: PathBuf,
}

impl Ws {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("disagg-mn-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn case(&self, file: &str, text: &str) -> PathBuf {
        let p = self.dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `disagg ARGS --workspace DIR` against the multi-node cluster.
    fn disagg(&self, args: &[&str]) -> Output {
        Command::new(DISAGG)
            .args(args)
            .arg("--workspace")
            .arg(&self.dir)
            .env("SLURM_CONF", slurm_conf())
            .env("SKIP_PERF_CHECK", "true")
            .output()
            .expect("disagg runs")
    }

    /// Writes `yaml` as `<config>.yaml` and runs it on the cluster, waiting for the job.
    fn run(&self, config: &str, yaml: &str) -> Output {
        let c = self.case(&format!("{config}.yaml"), yaml);
        self.disagg(&["run", c.to_str().unwrap(), "--launcher", "slurm"])
    }

    fn run_dir(&self, config: &str) -> PathBuf {
        std::fs::canonicalize(self.dir.join("disagg_logs").join(config).join("latest")).unwrap()
    }

    fn job_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for c in std::fs::read_dir(self.dir.join("disagg_logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for r in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                if let Ok(id) = std::fs::read_to_string(r.path().join("slurm_job_id")) {
                    ids.push(id.trim().to_string());
                }
            }
        }
        ids
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        for id in self.job_ids() {
            if job_state(&id).is_some_and(|s| !terminal(&s)) {
                let _ = slurm("scancel", &[&id]);
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn job_state(id: &str) -> Option<String> {
    let out = slurm("scontrol", &["show", "job", "-o", id]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("JobState=").map(str::to_string))
}

fn terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED"
    )
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The published address of `role` in a run folder: (host, port).
fn published(dir: &Path, role: &str) -> (String, u16) {
    let v = json(&dir.join("rendezvous").join(format!("{role}.json")));
    (
        v["host"].as_str().unwrap().to_string(),
        v["port"].as_u64().unwrap() as u16,
    )
}

/// Waits (bounded) until no process mentions the run folder on any node: the nodes share this
/// machine's process table, so one look covers them all.
fn assert_no_process_left(dir: &Path) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_mentioning(dir.to_str().unwrap());
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "processes of the run are left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The repository's `examples/` file `name`.
fn example(name: &str) -> String {
    read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
    )
}

/// Decodes standard padded base64 (the sim's KV hand-off state).
fn base64(text: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn the_quickstart_on_one_gpu_per_node_runs_ctx_and_gen_on_two_nodes_and_hands_kv_across() {
    if !cluster_up("the_quickstart_across_nodes") {
        return;
    }
    let ws = Ws::new("quickstart");
    let gen_with_log = "gen:\n  count: 1\n  parallel: {tp: 1}\n  engine_args: {request_log: true}";
    let yaml = example("quickstart.yaml")
        .replace(
            "hardware: {gpus_per_node: 8}",
            "hardware: {gpus_per_node: 1}",
        )
        .replace(
            "gen:\n  count: 1\n  parallel: {tp: 1}\n  engine_args: {}",
            gen_with_log,
        );
    assert!(yaml.contains("gpus_per_node: 1") && yaml.contains(gen_with_log));
    let out = ws.run("quickstart", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("quickstart");

    // CTX_0 on the first node, GEN_0 on the second, each published under its node's name.
    let (ctx_host, ctx_port) = published(&dir, "CTX_0");
    let (gen_host, _) = published(&dir, "GEN_0");
    let (router_host, _) = published(&dir, "DISAGG_SERVER");
    assert_eq!(ctx_host, "dgn1");
    assert_eq!(gen_host, "dgn2");
    assert_eq!(
        router_host, "dgn1",
        "the router publishes its node's name too"
    );
    let config = read(&dir.join("server_config.yaml"));
    assert!(
        config.contains(&format!("dgn1:{ctx_port}")) && config.contains("dgn2:"),
        "{config}"
    );
    assert!(
        !config.contains("127.0.0.1"),
        "a loopback address crossed nodes:\n{config}"
    );

    // The context sim advertised its node for the KV hand-off, and every generation request
    // fetched from there: across nodes.
    let ctx_log = read(&dir.join("ctx_server_0.log"));
    assert!(
        ctx_log.contains(&format!("KV hand-offs name dgn1:{ctx_port}")),
        "{ctx_log}"
    );
    let requests = read(&dir.join("gen_server_0.requests.jsonl"));
    let mut handed = 0;
    for line in requests.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let body = &v["body"];
        let Some(state) = body["disaggregated_params"]["encoded_opaque_state"].as_str() else {
            continue;
        };
        let peer = String::from_utf8(base64(state)).unwrap();
        assert_eq!(peer, format!("disagg-sim/1 dgn1:{ctx_port}"), "{line}");
        handed += 1;
    }
    // Warmup 2 + concurrency [1, 8] × rounds 4, plus the canary.
    assert!(handed >= 36, "only {handed} hand-offs in {requests}");
    let results = json(&dir.join("results.json"));
    for p in results["points"].as_array().unwrap() {
        assert_eq!(p["failed"].as_u64(), Some(0), "{p}");
    }
    assert_no_process_left(&dir);
}

/// A command-engine case that runs `disagg sim`: `ctx` and `gen` are the argv tails after
/// `{disagg} sim --role R`, and `extra` holds more top-level keys.
fn command_case(name: &str, gpus_per_node: u32, ctx: &str, gen_: &str, extra: &str) -> String {
    let argv = |role: &str, tail: &str| {
        format!(r#"["{{disagg}}", sim, --role, {role}, --model, "{{model}}", {tail}]"#)
    };
    format!(
        "name: {name}\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: {gpus_per_node}}}\nctx: {{count: 1, engine_args: {{argv: {}}}}}\ngen: {{count: 1, engine_args: {{argv: {}}}}}\nbenchmark: {{isl: 32, osl: 4, concurrency: [2], rounds: 2}}\n{extra}",
        argv("context", ctx),
        argv("generation", gen_),
    )
}

const ON_HOST: &str = r#"--host, "{host}", --port, "{port}""#;

#[test]
fn a_published_address_other_nodes_cannot_reach_fails_the_run_naming_the_worker_and_address() {
    if !cluster_up("an_unreachable_published_address") {
        return;
    }
    let ws = Ws::new("unreachable");
    // GEN_0's command ignores `{host}` (0.0.0.0 on several nodes) and binds loopback: its own
    // node sees it healthy, the router on the first node cannot connect to it.
    let yaml = command_case(
        "mn-unreachable",
        1,
        ON_HOST,
        r#"--host, 127.0.0.1, --port, "{port}""#,
        "timeouts: {worker_startup: 60s, request: 10s, benchmark: 60s, job: 3m}\n",
    );
    let t0 = Instant::now();
    let out = ws.run("mn-unreachable", &yaml);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Well before worker_startup (60 s): the address was tried, not waited out.
    assert!(took < Duration::from_secs(45), "took {took:?}");
    let dir = ws.run_dir("mn-unreachable");
    let (gen_host, gen_port) = published(&dir, "GEN_0");
    assert_eq!(gen_host, "dgn2");
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: GEN_0"), "{summary}");
    assert!(
        summary.contains(&format!(
            "GEN_0 published dgn2:{gen_port}, which cannot be reached from dgn1"
        )),
        "{summary}"
    );
    assert!(!summary.contains("was not ready within"), "{summary}");
    let xml = read(&dir.join("results.xml"));
    assert!(xml.contains("GEN_0 stayed up"), "{xml}");
    let id = read(&dir.join("slurm_job_id"));
    assert_eq!(job_state(id.trim()).as_deref(), Some("CANCELLED"));
    assert_no_process_left(&dir);
}
