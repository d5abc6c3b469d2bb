//! `disagg run --launcher slurm` on a real multi-node Slurm: three nodes, each its own network
//! namespace, hostname and slurmd, with fake GPUs through gres and device cgroups
//! (`bash scripts/dev-slurm.sh up --nodes 3 --gpus-per-node 8 --constrain-devices`). Where that
//! cluster does not answer, the tests are reported as ignored, with the reason; with
//! `DISAGG_REQUIRE_SLURM=1` (CI) they fail instead (`needs/mod.rs`, the harness of this file).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{
    Background, DISAGG, json, junit_cases, kill_and_wait, processes_mentioning, read, stand_ins,
};

/// The multi-node Slurm's config, as `scripts/dev-slurm.sh up --nodes N` writes it.
fn slurm_conf() -> String {
    std::env::var("DISAGG_MULTINODE_SLURM_CONF")
        .unwrap_or_else(|_| "/etc/disagg-slurm-mn/slurm.conf".into())
}

const UP: &str = "bash scripts/dev-slurm.sh up --nodes 3 --gpus-per-node 8 --constrain-devices";

/// The fake GPUs of every node (`gres.conf` `File=/dev/dggpu[0-7]`).
const GPU_DEVICES: &str = "/dev/dggpu";

/// A Slurm command against the multi-node cluster.
fn slurm(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

mod needs;

fn main() {
    needs::main(
        include_str!("multinode.rs"),
        vec![
            needs::Needs {
                service: "the three-node Slurm",
                check: Some(multinode_cluster),
                tests: tests![
                    the_quickstart_on_one_gpu_per_node_runs_ctx_gen_and_router_on_three_nodes_and_hands_kv_across,
                    a_published_address_other_nodes_cannot_reach_fails_the_run_naming_the_worker_and_address,
                    an_engine_bound_to_its_nodes_name_is_found_healthy_there,
                    a_setup_failing_on_one_node_names_it_and_its_log_tells_the_nodes_apart,
                    every_worker_gets_exactly_its_own_gpus_under_device_cgroups_and_the_router_and_benchmark_none,
                    without_gpu_gres_each_worker_still_sees_its_planned_gpus,
                    each_worker_step_gets_its_gpus_share_of_the_jobs_cpus,
                    a_step_slurm_cannot_create_fails_the_run_in_seconds_quoting_srun,
                    a_trtllm_server_spanning_nodes_unevenly_gets_its_gpus_block_wise_and_its_last_node_alone,
                    gen_0_dying_on_another_node_mid_stream_fails_the_run_within_5s_and_leaves_nothing,
                    gen_0s_role_process_killed_on_another_node_is_said_to_be_killed_there,
                    a_node_lost_mid_run_fails_it_naming_the_node_and_its_roles_and_it_is_not_requeued,
                    gen_0_hanging_its_requests_on_another_node_is_named_within_timeouts_stall,
                    a_tp2_gen_spanning_two_nodes_serves_and_its_log_tells_the_ranks_apart,
                    a_follower_rank_dying_is_named_with_its_rank_and_node,
                    an_sglang_server_spanning_two_nodes_runs_a_process_on_each_joined_at_node_rank_0,
                    a_vllm_server_with_data_parallel_ranks_over_two_nodes_serves_through_node_rank_0,
                    a_node_of_an_sglang_server_dying_fails_the_run_naming_its_rank_and_node,
                    a_node_that_hangs_before_joining_is_named_with_what_each_node_said_last,
                    three_router_replicas_run_one_per_node_and_share_the_load,
                    killing_a_router_replica_on_another_node_fails_the_run_within_5s_naming_it,
                    asking_more_gpus_per_node_than_a_node_has_fails_at_once_with_slurms_reason,
                ],
            },
            needs::Needs {
                service: "the three-node Slurm and bubblewrap",
                check: Some(multinode_cluster_and_bubblewrap),
                tests: tests![
                    the_trtllm_multinode_example_runs_each_container_step_in_a_sandbox_of_its_mounts,
                    an_imported_trtllm_case_runs_each_container_step_in_a_sandbox_of_its_mounts,
                    the_sglang_multinode_example_runs_a_process_per_node_in_each_nodes_container,
                    a_container_mount_missing_on_the_nodes_fails_at_once_naming_the_key,
                ],
            },
        ],
    )
}

/// Whether the three-node cluster answers with three usable nodes.
fn multinode_cluster() -> Result<(), String> {
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
        return Ok(());
    }
    Err(format!(
        "the multi-node Slurm ({}) does not answer with 3 usable nodes (sinfo: {:?}); bring it up with `{UP}`",
        slurm_conf(),
        nodes.trim()
    ))
}

/// A workspace of one test, in /tmp (which every node shares); on drop it cancels any job of
/// its own still queued or running, and keeps the folder of a failed test.
struct Ws {
    dir: PathBuf,
    /// Dropped after `Ws::drop` has cancelled the jobs.
    tmp: support::JobDir,
    /// Held for the test's life: shared by tests that only use the cluster, whole for one
    /// that takes a node down (which would fail any other test's job there).
    _cluster: Cluster,
}

static CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum Cluster {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Whole(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl Ws {
    fn new(name: &str) -> Self {
        let guard = CLUSTER.read().unwrap_or_else(|e| e.into_inner());
        Self::with(name, Cluster::Shared(guard))
    }

    /// A workspace whose test has the cluster to itself until it ends.
    fn whole_cluster(name: &str) -> Self {
        let guard = CLUSTER.write().unwrap_or_else(|e| e.into_inner());
        Self::with(name, Cluster::Whole(guard))
    }

    fn with(name: &str, cluster: Cluster) -> Self {
        let tmp = support::JobDir::new(&format!("disagg-mn-{name}-"));
        Self {
            dir: tmp.path().to_path_buf(),
            tmp,
            _cluster: cluster,
        }
    }

    fn case(&self, file: &str, text: &str) -> PathBuf {
        let p = self.dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `disagg ARGS --workspace DIR` against the multi-node cluster, not yet run.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DISAGG);
        cmd.args(args)
            .arg("--workspace")
            .arg(&self.dir)
            .env("SLURM_CONF", slurm_conf())
            .env("SKIP_PERF_CHECK", "true");
        cmd
    }

    /// `disagg run CASE --launcher slurm` on this workspace, in the background.
    fn background(&self, case: &Path) -> Background {
        Background::spawn(self.command(&["run", case.to_str().unwrap(), "--launcher", "slurm"]))
    }

    /// `disagg ARGS --workspace DIR` against the multi-node cluster, waited for.
    fn disagg(&self, args: &[&str]) -> Output {
        self.command(args)
            // Every role logs which of the cluster's fake GPUs its cgroup lets it open.
            .env("DISAGG_GPU_DEVICES", GPU_DEVICES)
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
}

impl Drop for Ws {
    fn drop(&mut self) {
        for id in self.tmp.job_ids() {
            if job_state(&id).is_some_and(|s| !terminal(&s)) {
                let _ = slurm("scancel", &[&id]);
            }
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

/// The nodes of the run's job, in order (node 0 first): the plan's node indices map onto them.
fn job_hosts(dir: &Path) -> Vec<String> {
    let id = read(&dir.join("slurm_job_id"));
    let shown = slurm("scontrol", &["show", "job", "-o", id.trim()]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    let list = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("NodeList="))
        .unwrap_or_else(|| panic!("no NodeList in {shown}"));
    let out = slurm("scontrol", &["show", "hostnames", list]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
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

fn the_quickstart_on_one_gpu_per_node_runs_ctx_gen_and_router_on_three_nodes_and_hands_kv_across() {
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
    // The router and the benchmark on a node of their own.
    let yaml = format!("{yaml}\nslurm: {{front_nodes: 1}}\n");
    let out = ws.run("quickstart", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("quickstart");

    // CTX_0 on the first node, GEN_0 on the second, the router on the third, each published
    // under its node's name; the benchmark beside the router.
    let (ctx_host, ctx_port) = published(&dir, "CTX_0");
    let (gen_host, _) = published(&dir, "GEN_0");
    let (router_host, _) = published(&dir, "DISAGG_SERVER");
    let hosts = job_hosts(&dir);
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    let (node0, node1, node2) = (hosts[0].as_str(), hosts[1].as_str(), hosts[2].as_str());
    assert_eq!(ctx_host, node0);
    assert_eq!(gen_host, node1);
    assert_eq!(
        router_host, node2,
        "the router runs on its own node and publishes its name"
    );
    let bench_log = read(&dir.join("benchmark.log"));
    assert!(
        bench_log.contains(&format!("disagg role BENCHMARK on {node2}: ")),
        "{bench_log}"
    );
    let config = read(&dir.join("server_config.yaml"));
    assert!(
        config.contains(&format!("{node0}:{ctx_port}")) && config.contains(&format!("{node1}:")),
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
        ctx_log.contains(&format!("KV hand-offs name {node0}:{ctx_port}")),
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
        assert_eq!(peer, format!("disagg-sim/1 {node0}:{ctx_port}"), "{line}");
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

fn a_published_address_other_nodes_cannot_reach_fails_the_run_naming_the_worker_and_address() {
    let ws = Ws::new("unreachable");
    // GEN_0's command ignores `{host}` (0.0.0.0 on several nodes) and binds loopback: its own
    // node sees it healthy, the router on the first node cannot connect to it. Inside a shell
    // command, where `validate` cannot see it (an argv item `--host 127.0.0.1` it refuses), as
    // an engine's own config file can hide it.
    let yaml = command_case(
        "mn-unreachable",
        1,
        ON_HOST,
        ON_HOST,
        "timeouts: {worker_startup: 60s, request: 10s, benchmark: 60s, job: 3m}\n",
    )
    .replace(
        r#"argv: ["{disagg}", sim, --role, generation, --model, "{model}", --host, "{host}", --port, "{port}"]"#,
        r#"argv: [sh, -c, "exec {disagg} sim --role generation --model {model} --host 127.0.0.1 --port {port}"]"#,
    );
    assert!(yaml.contains("exec {disagg} sim"), "{yaml}");
    let t0 = Instant::now();
    let out = ws.run("mn-unreachable", &yaml);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Well before worker_startup (60 s): the address was tried, not waited out.
    assert!(took < Duration::from_secs(45), "took {took:?}");
    let dir = ws.run_dir("mn-unreachable");
    let (gen_host, gen_port) = published(&dir, "GEN_0");
    let hosts = job_hosts(&dir);
    assert_eq!(gen_host, hosts[1]);
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: GEN_0"), "{summary}");
    assert!(
        summary.contains(&format!(
            "GEN_0 published {gen_host}:{gen_port}, which cannot be reached from {}",
            hosts[0]
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

/// GEN_0's engine binds its node's name (`--host {hostname}`, as TensorRT-LLM's own Slurm
/// scripts start `trtllm-serve --host $(hostname)`), not the wildcard the plan left it: it does
/// not answer on loopback, and its role asks at the node's name too. It was failed as never
/// answering /health.
fn an_engine_bound_to_its_nodes_name_is_found_healthy_there() {
    let ws = Ws::new("hostname");
    let yaml = command_case(
        "mn-hostname",
        1,
        ON_HOST,
        r#"--host, "{hostname}", --port, "{port}""#,
        "timeouts: {worker_startup: 40s, request: 10s, benchmark: 60s, job: 3m}\n",
    );
    let out = ws.run("mn-hostname", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-hostname");
    let hosts = job_hosts(&dir);
    assert_eq!(published(&dir, "GEN_0").0, hosts[1]);
    assert!(
        read(&dir.join("gen_server_0.log")).contains(&format!("(or http://{}:", hosts[1])),
        "its log says where it was asked"
    );
    assert_no_process_left(&dir);
}

/// The setup runs on both nodes of the job and fails on the second: the run fails as SETUP
/// naming that node, and `install.log`'s lines say which node wrote them (`--label`).
fn a_setup_failing_on_one_node_names_it_and_its_log_tells_the_nodes_apart() {
    let ws = Ws::new("setup2");
    let yaml = command_case(
        "mn-setup",
        1,
        ON_HOST,
        ON_HOST,
        "timeouts: {worker_startup: 40s, request: 10s, benchmark: 60s, job: 3m}\n\
         setup: \"echo installing on node $SLURM_NODEID; [ $SLURM_NODEID != 1 ] || exit 7\"\n",
    );
    let out = ws.run("mn-setup", &yaml);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = ws.run_dir("mn-setup");
    let hosts = job_hosts(&dir);
    let install = read(&dir.join("install.log"));
    for node in 0..2 {
        assert!(
            install.contains(&format!("{node}: installing on node {node}")),
            "{install}"
        );
    }
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains(&format!("setup exited with status 7 on {}", hosts[1])),
        "{summary}"
    );
    assert_no_process_left(&dir);
}

/// What a role's log says about its GPUs: (CUDA_VISIBLE_DEVICES or "unset", devices it may open,
/// devices it is denied).
fn gpus_of(dir: &Path, log: &str) -> (String, Vec<String>, Vec<String>) {
    let text = read(&dir.join(log));
    let line = text
        .lines()
        .find(|l| l.contains(": GPUs: "))
        .unwrap_or_else(|| panic!("{log} has no GPUs line:\n{text}"));
    gpus_in(line)
}

/// A rank's GPUs: (host, CUDA_VISIBLE_DEVICES, devices it may open, devices it is denied).
type RankGpus = (String, String, Vec<String>, Vec<String>);

/// What each rank of a multi-rank worker's log says about its GPUs, by rank.
fn gpus_by_rank(dir: &Path, log: &str) -> Vec<RankGpus> {
    let text = read(&dir.join(log));
    let mut ranks: Vec<(u32, RankGpus)> = text
        .lines()
        .filter(|l| l.contains(": GPUs: "))
        .map(|l| {
            let tag = l
                .strip_prefix("[rank ")
                .unwrap_or_else(|| panic!("{log}: {l}"));
            let (rank, rest) = tag.split_once(" @ ").unwrap();
            let host = rest.split(']').next().unwrap().to_string();
            let (cvd, open, denied) = gpus_in(l);
            (rank.parse().unwrap(), (host, cvd, open, denied))
        })
        .collect();
    ranks.sort_by_key(|r| r.0);
    let numbers: Vec<u32> = ranks.iter().map(|r| r.0).collect();
    assert_eq!(
        numbers,
        (0..ranks.len() as u32).collect::<Vec<_>>(),
        "{log}: every rank once:\n{text}"
    );
    ranks.into_iter().map(|r| r.1).collect()
}

/// Parses a role's `GPUs: ...` line (see [`gpus_of`]).
fn gpus_in(line: &str) -> (String, Vec<String>, Vec<String>) {
    let after = line.split(": GPUs: ").nth(1).unwrap();
    let cvd = match after.split(';').next().unwrap().trim() {
        "CUDA_VISIBLE_DEVICES unset" => "unset".to_string(),
        v => v.trim_start_matches("CUDA_VISIBLE_DEVICES=").to_string(),
    };
    let list = |key: &str| -> Vec<String> {
        let part = after
            .split(';')
            .find_map(|p| {
                p.trim()
                    .split_once(key)
                    .map(|(_, rest)| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no `{key}` in {line}"));
        if part == "none" {
            Vec::new()
        } else {
            part.split_whitespace().map(str::to_string).collect()
        }
    };
    (cvd, list("may open "), list("denied "))
}

fn every_worker_gets_exactly_its_own_gpus_under_device_cgroups_and_the_router_and_benchmark_none() {
    let ws = Ws::new("gpus");
    // One 4-GPU node: CTX_0 on two GPUs, GEN_0 and GEN_1 on one each; all three at once.
    let yaml = "name: mn-gpus\nmodel: {name: tiny}\nhardware: {gpus_per_node: 4}\nctx: {count: 1, parallel: {tp: 2}, engine_args: {}}\ngen: {count: 2, engine_args: {}}\nbenchmark: {isl: 32, osl: 4, concurrency: [2], rounds: 2}\ntimeouts: {worker_startup: 30s, request: 10s, benchmark: 60s, job: 2m}\n";
    let out = ws.run("mn-gpus", yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-gpus");
    let script = read(&dir.join("job.sbatch"));
    assert!(
        script.contains("#SBATCH --gres=gpu:4"),
        "the job asks for the GPUs:\n{script}"
    );

    let mut taken: Vec<String> = Vec::new();
    for (log, want) in [
        ("ctx_server_0.log", 2),
        ("gen_server_0.log", 1),
        ("gen_server_1.log", 1),
    ] {
        let (cvd, open, denied) = gpus_of(&dir, log);
        assert_eq!(open.len(), want, "{log}: may open {open:?}");
        assert_eq!(open.len() + denied.len(), 8, "{log}: {open:?} {denied:?}");
        // The engine sees its own GPUs, numbered from 0 inside its cgroup.
        let expect: Vec<String> = (0..want).map(|i| i.to_string()).collect();
        assert_eq!(cvd, expect.join(","), "{log}");
        for d in &open {
            assert!(
                !taken.contains(d),
                "{log} shares {d} with another worker: {taken:?}"
            );
        }
        taken.extend(open);
    }
    assert_eq!(
        taken.len(),
        4,
        "the workers hold 4 distinct GPUs: {taken:?}"
    );
    for log in ["disagg_server.log", "benchmark.log"] {
        let (cvd, open, denied) = gpus_of(&dir, log);
        assert_eq!(cvd, "unset", "{log}");
        assert!(open.is_empty(), "{log} may open {open:?}");
        assert_eq!(denied.len(), 8, "{log}");
    }
    // No step waited for another's GPUs.
    for log in ["ctx_server_0.log", "gen_server_0.log", "gen_server_1.log"] {
        let t = read(&dir.join(log));
        assert!(
            !t.contains("step creation temporarily disabled"),
            "{log}:\n{t}"
        );
    }
    assert_no_process_left(&dir);
}

/// What Slurm gave a role's step on its node, from its log's `CPUs:` line.
fn step_cpus(dir: &Path, log: &str) -> u32 {
    let text = read(&dir.join(log));
    let line = text
        .lines()
        .find(|l| l.contains(": CPUs: "))
        .unwrap_or_else(|| panic!("{log} has no CPUs line:\n{text}"));
    line.split("Slurm gave the step ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}: {line}"))
}

/// Each worker's step asks its GPUs' share of the CPUs the job holds on its node (not srun's
/// one per task, which core binding would pin a whole engine to): the job asks 4 CPUs per task
/// of 4 tasks, 16 in all; CTX_0 on 2 GPUs of 4 gets 8, each GEN on 1 gets 4.
fn each_worker_step_gets_its_gpus_share_of_the_jobs_cpus() {
    let ws = Ws::new("cpus");
    let yaml = "name: mn-cpus\nmodel: {name: tiny}\nhardware: {gpus_per_node: 4}\nctx: {count: 1, parallel: {tp: 2}, engine_args: {}}\ngen: {count: 2, engine_args: {}}\nbenchmark: {isl: 32, osl: 4, concurrency: [2], rounds: 2}\ntimeouts: {worker_startup: 30s, request: 10s, benchmark: 60s, job: 2m}\nslurm: {extra_args: [--cpus-per-task=4]}\n";
    let out = ws.run("mn-cpus", yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-cpus");
    for (log, want) in [
        ("ctx_server_0.log", 8),
        ("gen_server_0.log", 4),
        ("gen_server_1.log", 4),
    ] {
        assert_eq!(step_cpus(&dir, log), want, "{log}");
    }
    assert_no_process_left(&dir);
}

fn without_gpu_gres_each_worker_still_sees_its_planned_gpus() {
    let ws = Ws::new("nogres");
    let yaml = "name: mn-nogres\nmodel: {name: tiny}\nhardware: {gpus_per_node: 2}\nctx: {count: 1, engine_args: {}}\ngen: {count: 1, engine_args: {}}\nbenchmark: {isl: 32, osl: 4, concurrency: [2], rounds: 2}\ntimeouts: {worker_startup: 30s, request: 10s, benchmark: 60s, job: 2m}\nslurm: {gpu_gres: false}\n";
    let out = ws.run("mn-nogres", yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-nogres");
    assert!(!read(&dir.join("job.sbatch")).contains("--gres"));
    // Slurm removes a CUDA_VISIBLE_DEVICES it did not set; the role sets the plan's inside.
    assert_eq!(gpus_of(&dir, "ctx_server_0.log").0, "0");
    assert_eq!(gpus_of(&dir, "gen_server_0.log").0, "1");
    assert_eq!(gpus_of(&dir, "disagg_server.log").0, "unset");
}

fn a_trtllm_server_spanning_nodes_unevenly_gets_its_gpus_block_wise_and_its_last_node_alone() {
    // 4-GPU nodes: CTX_0 of tp 6 over two nodes (4 + 2 ranks), GEN_0 of tp 2. Before, srun spread
    // CTX_0's ranks 3 + 3 and took the second node's GPUs, so GEN_0 there never started.
    let ws = Ws::new("uneven");
    let model = ws.dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for (config, gres) in [("mn-uneven", true), ("mn-uneven-nogres", false)] {
        let yaml = format!(
            "name: {config}\nmodel: {{name: tiny, path: {}}}\nengine: trtllm\nhardware: {{gpus_per_node: 4}}\nctx: {{count: 1, parallel: {{tp: 6}}}}\ngen: {{count: 1, parallel: {{tp: 2}}}}\nrouter: {{kind: builtin}}\nbenchmark: {{isl: 32, osl: 8, concurrency: [2], rounds: 2}}\ntimeouts: {{worker_startup: 60s, request: 30s, benchmark: 2m, job: 3m}}\nslurm: {{gpu_gres: {gres}}}\n",
            model.display()
        );
        let case = ws.case(&format!("{config}.yaml"), &yaml);
        // `disagg validate` says what the plan leaves idle.
        let checked = Command::new(DISAGG)
            .args(["validate", case.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
        assert!(
            String::from_utf8_lossy(&checked.stdout).contains(
                "note: CTX_0 spans 2 nodes with 6 GPUs (4 + 2) and has its last, node 2, to itself: GPUs 2-3 there stay idle"
            ),
            "{}",
            text(&checked)
        );
        // TensorRT-LLM played by the stand-ins of the pyxis fixture's image: rank 0 serves.
        let path = format!(
            "{}:{}",
            pyxis().join("image/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = ws
            .command(&["run", case.to_str().unwrap(), "--launcher", "slurm"])
            .env("DISAGG_GPU_DEVICES", GPU_DEVICES)
            .env("DISAGG_STANDIN_EXE", DISAGG)
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{config}: {}", text(&out));
        let dir = ws.run_dir(config);
        let hosts = job_hosts(&dir);
        assert_eq!(hosts.len(), 3, "{config}: {hosts:?}");
        let plan = json(&dir.join("plan.json"));
        let planned = |role: &str| -> Vec<(usize, u64)> {
            let r = plan["roles"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["role"] == role)
                .unwrap();
            r["gpus"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    (
                        g["node"].as_u64().unwrap() as usize,
                        g["index"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        // Per host: the devices each worker may open there, to show no two share one.
        let mut held: Vec<(String, &str, Vec<String>)> = Vec::new();
        for (role, log, cvd_want) in [
            ("CTX_0", "ctx_server_0.log", "0,1,2,3"),
            ("GEN_0", "gen_server_0.log", "0,1"),
        ] {
            let ranks = gpus_by_rank(&dir, log);
            let gpus = planned(role);
            assert_eq!(ranks.len(), gpus.len(), "{config} {role}: one rank per GPU");
            for (rank, ((host, cvd, open, denied), (node, index))) in
                ranks.iter().zip(&gpus).enumerate()
            {
                // The rank runs on its planned GPU's node, and that GPU is the one its local
                // rank picks (as TensorRT-LLM's do) among those it sees.
                assert_eq!(host, &hosts[*node], "{config} {role} rank {rank}");
                let local = ranks[..rank].iter().filter(|r| &r.0 == host).count() as u64;
                assert_eq!(local, *index, "{config} {role} rank {rank}");
                assert_eq!(cvd, cvd_want, "{config} {role} rank {rank}");
                assert!((*index as usize) < cvd.split(',').count());
                if gres {
                    // The step holds as many GPUs as it sees, its last node's whole 4 included.
                    assert_eq!(
                        open.len(),
                        cvd.split(',').count(),
                        "{config} {role} rank {rank}: {open:?}"
                    );
                    assert_eq!(open.len() + denied.len(), 8);
                    if let Some(h) = held.iter_mut().find(|h| h.0 == *host && h.1 == role) {
                        assert_eq!(&h.2, open, "{config} {role}: ranks on {host} differ");
                    } else {
                        held.push((host.clone(), role, open.clone()));
                    }
                }
            }
        }
        let on = |role: &str| -> Vec<String> {
            let mut v: Vec<String> = gpus_by_rank(
                &dir,
                &format!(
                    "{}_server_0.log",
                    if role == "CTX_0" { "ctx" } else { "gen" }
                ),
            )
            .into_iter()
            .map(|r| r.0)
            .collect();
            v.dedup();
            v
        };
        assert_eq!(
            on("CTX_0"),
            [hosts[0].clone(), hosts[1].clone()],
            "{config}"
        );
        assert_eq!(
            on("GEN_0"),
            [hosts[2].clone()],
            "{config}: GEN_0 is not on CTX_0's last node"
        );
        for (i, a) in held.iter().enumerate() {
            for b in &held[i + 1..] {
                if a.0 == b.0 {
                    assert!(
                        a.2.iter().all(|d| !b.2.contains(d)),
                        "{config}: {} and {} share a GPU on {}: {:?} {:?}",
                        a.1,
                        b.1,
                        a.0,
                        a.2,
                        b.2
                    );
                }
            }
        }
        assert_no_process_left(&dir);
    }
}

fn a_step_slurm_cannot_create_fails_the_run_in_seconds_quoting_srun() {
    let ws = Ws::new("nostep");
    // The job gets 2 GPUs per node, but the plan puts 2 + 2 on node 0: the second worker step
    // can never be created ("busy"); a 4-GPU worker is a bad request. The case's own
    // `--gres=gpu:2` or `--gpus-per-node=2` is refused by validate: here the site's environment
    // asks it (`SBATCH_GRES`, which sbatch takes over the script's `#SBATCH --gres`), so the path
    // a cluster's own refusal takes stays covered.
    for (config, ctx_tp, said) in [
        ("mn-busy", 2, "Requested nodes are busy"),
        ("mn-bad", 4, "Invalid generic resource (gres) specification"),
    ] {
        let yaml = format!(
            "name: {config}\nmodel: {{name: tiny}}\nhardware: {{gpus_per_node: 4}}\nctx: {{count: 1, parallel: {{tp: {ctx_tp}}}, engine_args: {{}}}}\ngen: {{count: 1, parallel: {{tp: 2}}, engine_args: {{}}}}\nbenchmark: {{isl: 32, osl: 4, concurrency: [2], rounds: 2}}\ntimeouts: {{worker_startup: 60s, request: 10s, benchmark: 60s, job: 3m}}\n"
        );
        let t0 = Instant::now();
        let c = ws.case(&format!("{config}.yaml"), &yaml);
        let out = ws
            .command(&["run", c.to_str().unwrap(), "--launcher", "slurm"])
            .env("SBATCH_GRES", "gpu:2")
            .output()
            .unwrap();
        let took = t0.elapsed();
        assert_eq!(out.status.code(), Some(1), "{config}: {}", text(&out));
        assert!(took < Duration::from_secs(30), "{config}: took {took:?}");
        let dir = ws.run_dir(config);
        let summary = read(&dir.join("summary.md"));
        let failed = summary
            .lines()
            .find(|l| l.starts_with("FAILED: "))
            .unwrap_or_else(|| panic!("{config}: {summary}"));
        assert!(
            failed.starts_with("FAILED: CTX_0 exited with status 1: srun: error: ")
                || failed.starts_with("FAILED: GEN_0 exited with status 1: srun: error: "),
            "{config}: {failed}"
        );
        assert!(
            failed.contains("Unable to create step"),
            "{config}: {failed}"
        );
        assert!(failed.contains(said), "{config}: {failed}");
        assert!(!summary.contains("worker_startup"), "{config}: {summary}");
        assert_no_process_left(&dir);
    }
}

/// Lines of a sim's request log (one per completion request received).
fn requests_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn gen_0_dying_on_another_node_mid_stream_fails_the_run_within_5s_and_leaves_nothing() {
    let ws = Ws::new("death");
    // CTX_0 on the job's first node, GEN_0 on its second; streams of 200 tokens at 20 ms (4 s each), two points.
    let yaml = "name: mn-death\nmodel: {name: tiny}\nhardware: {gpus_per_node: 1}\nctx: {count: 1, engine_args: {request_log: true}}\ngen: {count: 1, engine_args: {itl: 20ms, request_log: true}}\nbenchmark: {isl: 32, osl: 200, concurrency: [4, 8], rounds: 2}\ntimeouts: {worker_startup: 30s, request: 30s, benchmark: 2m, job: 3m}\n";
    let case = ws.case("mn-death.yaml", yaml);
    let mut run = ws.background(&case);
    // Wait until the first point's streams are in flight on GEN_0: the canary and then 4 more.
    let config = ws.dir.join("disagg_logs/mn-death");
    let until = Instant::now() + Duration::from_secs(90);
    let (dir, engine_pid) = loop {
        let dir = std::fs::canonicalize(config.join("latest")).ok();
        if let Some(d) = &dir {
            if requests_in(&d.join("gen_server_0.requests.jsonl")) >= 5 {
                let pid = json(&d.join("rendezvous/GEN_0.json"))["pid"]
                    .as_u64()
                    .unwrap();
                break (d.clone(), pid as u32);
            }
        }
        if Instant::now() > until || run.ended() {
            run.abandon("the streams never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        published(&dir, "GEN_0").0,
        job_hosts(&dir)[1],
        "GEN_0 runs on another node"
    );
    // GEN_0's engine dies (its pid is in this machine's process table, like every node's).
    let (code, took, stdout, stderr) = kill_and_wait(engine_pid, run);
    eprintln!("disagg run exited {took:?} after GEN_0's engine was killed");
    let shown = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, 1, "{shown}");
    assert!(
        took < Duration::from_secs(5),
        "exit {took:?} after GEN_0's death\n{shown}"
    );
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: GEN_0"), "{summary}");
    // No further point started: CTX_0 saw the canary and at most the first point's 8 requests.
    let ctx_requests = requests_in(&dir.join("ctx_server_0.requests.jsonl"));
    assert!(
        ctx_requests <= 9,
        "{ctx_requests} requests reached CTX_0: a second point started"
    );
    assert!(
        !dir.join("benchmark.con8.log").exists(),
        "the second point ran"
    );
    // Nothing queued, nothing left on any node.
    let id = read(&dir.join("slurm_job_id"));
    let id = id.trim();
    assert!(
        job_state(id).is_some_and(|s| terminal(&s)),
        "{:?}",
        job_state(id)
    );
    let queued = slurm("squeue", &["-h", "-j", id]);
    assert!(
        String::from_utf8_lossy(&queued.stdout).trim().is_empty(),
        "still queued"
    );
    let left = processes_mentioning(dir.to_str().unwrap());
    assert!(left.is_empty(), "left on the nodes at exit: {left:?}");
}

/// GEN_0's role process itself is killed (`kill -9`, as the OOM killer does): it leaves no
/// account, so the run's reason is srun's, said as what it means and where.
fn gen_0s_role_process_killed_on_another_node_is_said_to_be_killed_there() {
    let ws = Ws::new("rolekill");
    let yaml = "name: mn-rolekill\nmodel: {name: tiny}\nhardware: {gpus_per_node: 1}\nctx: {count: 1, engine_args: {}}\ngen: {count: 1, engine_args: {itl: 20ms}}\nbenchmark: {isl: 32, osl: 200, concurrency: [4], rounds: 4}\ntimeouts: {worker_startup: 30s, request: 30s, benchmark: 2m, job: 3m}\n";
    let case = ws.case("mn-rolekill.yaml", yaml);
    let mut run = ws.background(&case);
    let config = ws.dir.join("disagg_logs/mn-rolekill");
    let until = Instant::now() + Duration::from_secs(90);
    let (dir, role_pid) = loop {
        if let Ok(d) = std::fs::canonicalize(config.join("latest")) {
            if let Some(engine) = std::fs::read_to_string(d.join("rendezvous/GEN_0.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["pid"].as_u64())
            {
                let (parent, _, _) = support::proc_stat(engine as u32).expect("the engine runs");
                break (d, parent);
            }
        }
        if Instant::now() > until || run.ended() {
            run.abandon("GEN_0 never got ready");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let host = published(&dir, "GEN_0").0;
    let _ = Command::new("kill")
        .args(["-9", &role_pid.to_string()])
        .status();
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    assert_eq!(code, 1, "--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "GEN_0 exited with status 137: its role process on {host} ended with no account of its own (srun: {host}: task 0: Killed)"
        )),
        "{status}"
    );
    assert_no_process_left(&dir);
}

/// Slurm loses GEN_0's node mid-run (an administrator sets it down, as a crashed node is):
/// the job ends NODE_FAIL and is not requeued into its own run folder (`--no-requeue`); the run
/// fails (1, not an interruption's 143) naming the node and GEN_0, whose "stayed up" fails.
fn a_node_lost_mid_run_fails_it_naming_the_node_and_its_roles_and_it_is_not_requeued() {
    let ws = Ws::whole_cluster("nodefail");
    let yaml = "name: mn-nodefail\nmodel: {name: tiny}\nhardware: {gpus_per_node: 1}\nctx: {count: 1, engine_args: {request_log: true}}\ngen: {count: 1, engine_args: {itl: 20ms, request_log: true}}\nbenchmark: {isl: 32, osl: 200, concurrency: [4, 8], rounds: 2}\ntimeouts: {worker_startup: 30s, request: 30s, benchmark: 2m, job: 3m}\n";
    let case = ws.case("mn-nodefail.yaml", yaml);
    let mut run = ws.background(&case);
    let config = ws.dir.join("disagg_logs/mn-nodefail");
    let until = Instant::now() + Duration::from_secs(90);
    let dir = loop {
        if let Ok(d) = std::fs::canonicalize(config.join("latest")) {
            if requests_in(&d.join("gen_server_0.requests.jsonl")) >= 5 {
                break d;
            }
        }
        if Instant::now() > until || run.ended() {
            run.abandon("the streams never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let host = published(&dir, "GEN_0").0;
    assert!(read(&dir.join("job.sbatch")).contains("#SBATCH --no-requeue"));
    let down = slurm(
        "scontrol",
        &[
            "update",
            &format!("nodename={host}"),
            "state=down",
            "reason=disagg-test",
        ],
    );
    // Whatever happens next, the node comes back for the other tests.
    struct Resume(String);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = slurm(
                "scontrol",
                &["update", &format!("nodename={}", self.0), "state=resume"],
            );
            let until = Instant::now() + Duration::from_secs(60);
            while Instant::now() < until {
                let st = slurm("sinfo", &["-h", "-n", &self.0, "-o", "%t"]);
                if String::from_utf8_lossy(&st.stdout).trim() == "idle" {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let _resume = Resume(host.clone());
    assert!(down.status.success(), "{}", text(&down));
    let (code, stdout, stderr) = run.wait(Duration::from_secs(60));
    let shown = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, 1, "{shown}");
    // Whichever the supervisor saw first (srun's word that GEN_0's node failed, a role Slurm
    // stopped on the healthy node, or Slurm's TERM), `disagg run` says what Slurm did: the
    // job ended NODE_FAIL, and the roles of the lost node are named.
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("FAILED: Slurm ended job")
            && summary.contains("as NODE_FAIL: a node of it failed: ")
            && summary.contains(&format!(": {host} ("))
            && summary.contains("GEN_0 ran there"),
        "{summary}"
    );
    // Nothing on the healthy node is blamed (it used to be, as killed "by the OOM killer").
    assert!(!summary.contains("OOM"), "{summary}");
    let junit = junit_cases(&dir.join("results.xml"));
    let stayed = |role: &str| {
        junit
            .iter()
            .find(|c| c.0 == format!("{role} stayed up"))
            .unwrap_or_else(|| panic!("a {role} testcase: {junit:?}"))
            .1
            .clone()
    };
    assert!(
        stayed("GEN_0").is_some(),
        "GEN_0 stayed up must fail: {junit:?}"
    );
    assert!(
        stayed("CTX_0").is_none(),
        "CTX_0 ran on a healthy node: {junit:?}"
    );
    // The job's own log and status.json end as the supervisor saw it; the folder says which
    // account stands.
    let end = read(&dir.join("slurm_end.txt"));
    assert!(
        end.contains("ended NODE_FAIL: a node of it failed"),
        "{end}"
    );
    // Not requeued: the job is over, and its one try's reports stand.
    let id = read(&dir.join("slurm_job_id"));
    assert_eq!(job_state(id.trim()).as_deref(), Some("NODE_FAIL"));
    // The job's own supervisor (the only account a --no-wait job has) says the same, not an
    // interruption by Slurm's TERM.
    let own = read(&dir.join(format!("slurm-{}.log", id.trim())));
    assert!(
        !own.contains("INTERRUPTED") && own.contains(&format!("a node of it failed: {host} (")),
        "{own}"
    );
    assert_no_process_left(&dir);
}

/// GEN_0, on the job's second node, answers /health but hangs every request after its second:
/// the supervisor (in the batch step, on the first node) reads the router's census across the
/// network and names GEN_0 within `timeouts.stall`, not after the 60 s request timeout.
fn gen_0_hanging_its_requests_on_another_node_is_named_within_timeouts_stall() {
    let ws = Ws::new("stall");
    let yaml = "name: mn-stall\nmodel: {name: tiny}\nhardware: {gpus_per_node: 1}\nctx: {count: 1}\ngen: {count: 1, engine_args: {stall_after_requests: 2}}\nbenchmark: {isl: 32, osl: 8, concurrency: [2], rounds: 4, warmup: 1}\ntimeouts: {worker_startup: 60s, request: 60s, benchmark: 2m, job: 3m, stall: 3s}\n";
    let t0 = Instant::now();
    let out = ws.run("mn-stall", yaml);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Well before one request timeout (60 s), Slurm's start-up included.
    assert!(took < Duration::from_secs(50), "took {took:?}");
    let dir = ws.run_dir("mn-stall");
    let (gen_host, gen_port) = published(&dir, "GEN_0");
    assert_eq!(gen_host, job_hosts(&dir)[1], "GEN_0 runs on another node");
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains(&format!(
            "FAILED: GEN_0 (http://{gen_host}:{gen_port}) answers /health, but finished none"
        )) && summary.contains("timeouts.stall is 3s"),
        "{summary}"
    );
    let id = read(&dir.join("slurm_job_id"));
    let id = id.trim();
    assert!(
        job_state(id).is_some_and(|s| terminal(&s)),
        "{:?}",
        job_state(id)
    );
    assert_no_process_left(&dir);
}

fn a_tp2_gen_spanning_two_nodes_serves_and_its_log_tells_the_ranks_apart() {
    let ws = Ws::new("tp2");
    // One GPU per node: CTX_0 on the first node, GEN_0 (tp=2, two ranks) on the others. Rank 0
    // serves; rank 1 runs the same command as a follower, as an MPI engine's other ranks do.
    let yaml = format!(
        "name: mn-tp2\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 1}}\nctx: {{count: 1, engine_args: {{argv: {}}}}}\ngen: {{count: 1, parallel: {{tp: 2}}, engine_args: {{ranks: 2, argv: {}}}}}\nbenchmark: {{isl: 32, osl: 8, concurrency: [2], rounds: 2}}\ntimeouts: {{worker_startup: 30s, request: 10s, benchmark: 60s, job: 2m}}\n",
        r#"["{disagg}", sim, --role, context, --model, "{model}", --host, "{host}", --port, "{port}", --advertise-host, "{hostname}"]"#,
        r#"["{disagg}", sim, --role, generation, --model, "{model}", --host, "{host}", --port, "{port}"]"#,
    );
    let out = ws.run("mn-tp2", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-tp2");
    assert!(read(&dir.join("job.sbatch")).contains("#SBATCH --nodes=3"));
    let hosts = job_hosts(&dir);
    assert_eq!(published(&dir, "GEN_0").0, hosts[1], "rank 0 serves");
    let log = read(&dir.join("gen_server_0.log"));
    for (rank, host) in [(0, &hosts[1]), (1, &hosts[2])] {
        let tag = format!("[rank {rank} @ {host}] ");
        for what in [
            "disagg role GEN_0: starting engine: ",
            "disagg-sim: listening on 0.0.0.0:",
        ] {
            assert!(
                log.lines().any(|l| l.starts_with(&tag) && l.contains(what)),
                "no `{tag}...{what}` line in\n{log}"
            );
        }
    }
    // Every line of the shared log says which rank wrote it.
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            l.starts_with("[rank "),
            "a line without its rank: {l:?}\n{log}"
        );
    }
    // `{hostname}` is the node the rank runs on: CTX_0's hand-offs name the first node.
    let ctx = read(&dir.join("ctx_server_0.log"));
    assert!(
        ctx.contains(&format!("--advertise-host {}", hosts[0])),
        "{ctx}"
    );
    assert!(
        ctx.contains(&format!("KV hand-offs name {}:", hosts[0])),
        "{ctx}"
    );
    assert_no_process_left(&dir);
}

/// A rank above 0 of a worker spanning nodes dies (an MPI engine's follower): the run fails on
/// that worker's account, naming the rank and the node it ran on (the step's own status is
/// srun's TERM of the other ranks).
fn a_follower_rank_dying_is_named_with_its_rank_and_node() {
    let ws = Ws::new("follower");
    let yaml = format!(
        "name: mn-follower\nmodel: {{name: tiny}}\nengine: command\nhardware: {{gpus_per_node: 1}}\nctx: {{count: 1, engine_args: {{argv: {}}}}}\ngen: {{count: 1, parallel: {{tp: 2}}, engine_args: {{ranks: 2, argv: {}}}}}\nbenchmark: {{isl: 32, osl: 8, concurrency: [2], rounds: 200}}\ntimeouts: {{worker_startup: 30s, request: 10s, benchmark: 60s, job: 2m}}\n",
        r#"["{disagg}", sim, --role, context, --model, "{model}", --host, "{host}", --port, "{port}", --advertise-host, "{hostname}"]"#,
        r#"[sh, -c, "if [ \"$SLURM_PROCID\" = 1 ]; then sleep 2; exit 3; fi; exec \"$0\" \"$@\"", "{disagg}", sim, --role, generation, --model, "{model}", --host, "{host}", --port, "{port}"]"#,
    );
    let out = ws.run("mn-follower", &yaml);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let dir = ws.run_dir("mn-follower");
    let hosts = job_hosts(&dir);
    let status = read(&dir.join("rendezvous/status.json"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "its engine's rank 1 (on {}) exited with status 3",
            hosts[2]
        )),
        "{reason}"
    );
    assert_no_process_left(&dir);
}

/// Runs `yaml` (config `config`) on the cluster with `vllm` and `python3` standing in for the
/// engines (`disagg sim -- <argv>`, support::stand_ins), optionally under another stand-in
/// folder's PATH.
fn run_engines(ws: &Ws, config: &str, yaml: &str, path: Option<String>) -> Output {
    let c = ws.case(&format!("{config}.yaml"), yaml);
    let path = path.unwrap_or_else(|| stand_ins(&ws.dir));
    ws.command(&["run", c.to_str().unwrap(), "--launcher", "slurm"])
        .env("PATH", path)
        .output()
        .expect("disagg runs")
}

/// Requests completed over the run's points.
fn completed(dir: &Path) -> u64 {
    json(&dir.join("results.json"))["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .sum()
}

/// The lines of a shared worker log that rank `rank` wrote on `host`.
fn rank_lines<'a>(log: &'a str, rank: u32, host: &str) -> Vec<&'a str> {
    let tag = format!("[rank {rank} @ {host}] ");
    log.lines().filter(|l| l.starts_with(&tag)).collect()
}

const SGLANG_TP16: &str = "model: {name: tiny, path: org/tiny}\nengine: sglang\nhardware: {gpus_per_node: 8}\nctx: {count: 1, parallel: {tp: 8}}\ngen: {count: 1, parallel: {tp: 16}}\nbenchmark: {isl: 32, osl: 8, concurrency: [4], rounds: 2}\ntimeouts: {worker_startup: 60s, request: 10s, benchmark: 60s, job: 3m}\n";

/// SGLang's own multi-node mode, as `examples/sglang-multinode.yaml` asks it: GEN_0 (TP 16,
/// DP attention) runs one process on each of two nodes of 8, joined at node rank 0's
/// rendezvous (the address its role picked and wrote for the other); node rank 0 serves, node
/// rank 1 is headless, and every request is served across nodes.
fn an_sglang_server_spanning_two_nodes_runs_a_process_on_each_joined_at_node_rank_0() {
    let ws = Ws::new("sglang-tp16");
    let yaml = example("sglang-multinode.yaml")
        .replace("partition: batch, ", "")
        .replace(
            "benchmark: {isl: 4096, osl: 1024, concurrency: [256], rounds: 4}",
            "benchmark: {isl: 64, osl: 8, concurrency: [4], rounds: 2}",
        );
    assert!(
        !yaml.contains("partition") && yaml.contains("concurrency: [4]"),
        "{yaml}"
    );
    let config = "sglang-1p1d-tp16";
    let out = run_engines(&ws, config, &yaml, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir(config);
    let hosts = job_hosts(&dir);
    let dist = json(&dir.join("rendezvous/GEN_0.dist.json"));
    assert_eq!(dist["host"], hosts[1].as_str(), "{dist}");
    let rendezvous = format!("{}:{}", hosts[1], dist["port"]);
    assert_eq!(published(&dir, "GEN_0").0, hosts[1], "node rank 0 serves");
    let log = read(&dir.join("gen_server_0.log"));
    let started = |rank: u32, host: &str| -> String {
        rank_lines(&log, rank, host)
            .into_iter()
            .find(|l| l.contains("starting engine: "))
            .unwrap_or_else(|| panic!("rank {rank} on {host} did not start:\n{log}"))
            .to_string()
    };
    for (rank, host) in [(0, &hosts[1]), (1, &hosts[2])] {
        let line = started(rank, host);
        assert!(
            line.contains("--tp-size 16 ")
                && line.contains(&format!("--nnodes 2 --dist-init-addr {rendezvous} "))
                && line.ends_with(&format!("--node-rank {rank}")),
            "{line}"
        );
    }
    let head = rank_lines(&log, 0, &hosts[1]).join("\n");
    let member = rank_lines(&log, 1, &hosts[2]).join("\n");
    assert!(
        head.contains(&format!("node rank 1 joined from {}", hosts[2])),
        "{log}"
    );
    assert!(
        member.contains(&format!(
            "joined node rank 0 on {} at {rendezvous}",
            hosts[1]
        )) && member.contains("CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7"),
        "{log}"
    );
    assert_eq!(completed(&dir), 8);
    assert_no_process_left(&dir);
}

/// vLLM's multi-node data parallelism: CTX_0's 8 attention-DP ranks run four on each of two
/// nodes, the second `--headless` from rank 4 with its own NIXL side channel on its own node;
/// GEN_0 on the third node pulls every KV cache through node rank 0.
fn a_vllm_server_with_data_parallel_ranks_over_two_nodes_serves_through_node_rank_0() {
    let ws = Ws::new("vllm-dp8");
    let yaml = "name: mn-vllm\nmodel: {name: tiny, path: org/tiny}\nengine: vllm\nhardware: {gpus_per_node: 4}\nctx: {count: 1, parallel: {tp: 8, ep: 8, attention_dp: true}}\ngen: {count: 1, parallel: {tp: 4}}\nbenchmark: {isl: 32, osl: 8, concurrency: [4], rounds: 2}\ntimeouts: {worker_startup: 60s, request: 10s, benchmark: 60s, job: 3m}\n";
    let out = run_engines(&ws, "mn-vllm", yaml, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-vllm");
    let hosts = job_hosts(&dir);
    let dist = json(&dir.join("rendezvous/CTX_0.dist.json"));
    assert_eq!(dist["host"], hosts[0].as_str(), "{dist}");
    let log = read(&dir.join("ctx_server_0.log"));
    let member = rank_lines(&log, 1, &hosts[1]).join("\n");
    assert!(
        member.contains(&format!("VLLM_NIXL_SIDE_CHANNEL_HOST={} ", hosts[1]))
            && member.contains(&format!(
                "--data-parallel-size-local 4 --data-parallel-address {} --data-parallel-rpc-port {} --data-parallel-start-rank 4 --headless",
                hosts[0], dist["port"]
            ))
            && member.contains("headless: no HTTP here"),
        "{log}"
    );
    assert_eq!(published(&dir, "CTX_0").0, hosts[0]);
    assert_eq!(completed(&dir), 8);
    assert_no_process_left(&dir);
}

/// One node of an SGLang server spanning nodes dies mid-run, first node rank 1, then node rank
/// 0: each time the run fails on GEN_0's account naming the rank that died and its node (not
/// the other, which goes down after it), and nothing is left on any node.
fn a_node_of_an_sglang_server_dying_fails_the_run_naming_its_rank_and_node() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new("sglang-die");
    let bin = ws.dir.join("dying");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("python3");
    // GEN_0's rank named by DIE_RANK kills its engine 3 s in and exits 9 or, with DIE_HOW=role,
    // kills its own role process (as the OOM killer or a lost node would: no account left).
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$SLURM_PROCID $*\" in\n  \"$DIE_RANK \"*\"--disaggregation-mode decode\"*)\n    '{DISAGG}' sim --itl 1ms -- python3 \"$@\" &\n    sleep 3\n    if [ \"$DIE_HOW\" = role ]; then kill -9 $PPID; wait; fi\n    kill -9 $!; exit 9;;\nesac\nexec '{DISAGG}' sim --itl 1ms -- python3 \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), stand_ins(&ws.dir));
    for (rank, host, how) in [(1, 2, "engine"), (0, 1, "engine"), (1, 2, "role")] {
        let config = format!("mn-sgdie{rank}{how}");
        let yaml = format!("name: {config}\n{SGLANG_TP16}").replace("rounds: 2}", "rounds: 2000}");
        let c = ws.case(&format!("{config}.yaml"), &yaml);
        let t = Instant::now();
        let out = ws
            .command(&["run", c.to_str().unwrap(), "--launcher", "slurm"])
            .env("PATH", &path)
            .env("DIE_RANK", rank.to_string())
            .env("DIE_HOW", how)
            .output()
            .expect("disagg runs");
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        let dir = ws.run_dir(&config);
        let hosts = job_hosts(&dir);
        let status = json(&dir.join("rendezvous/status.json"));
        assert_eq!(status["role"], "GEN_0", "{status}");
        let reason = status["reason"].as_str().unwrap();
        let want = match how {
            "engine" => format!(
                "GEN_0 failed: its engine's rank {rank} (on {}) exited with status 9",
                hosts[host]
            ),
            _ => format!(
                "GEN_0 failed: its rank {rank} (on {h}) ended first, with no account of its own \
                 (srun: {h}: task {rank}: Killed)",
                h = hosts[host]
            ),
        };
        assert!(reason.starts_with(&want), "rank {rank}, {how}: {reason}");
        assert_no_process_left(&dir);
    }
}

/// Node rank 1 of GEN_0 (SGLang, TP 16 over two nodes) hangs before it joins, as an engine
/// stuck loading or unable to reach node rank 0 does: GEN_0 is not ready within worker_startup,
/// and the reason quotes what each node said last, so the stuck one is seen at once.
fn a_node_that_hangs_before_joining_is_named_with_what_each_node_said_last() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Ws::new("sglang-hang");
    let bin = ws.dir.join("hanging");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("python3");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$SLURM_PROCID $*\" in\n  \"1 \"*\"--disaggregation-mode decode\"*)\n    echo 'Init torch distributed begin.'\n    exec sleep 300;;\nesac\nexec '{DISAGG}' sim --itl 1ms -- python3 \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), stand_ins(&ws.dir));
    let config = "mn-sghang";
    let yaml = format!("name: {config}\n{SGLANG_TP16}")
        .replace("worker_startup: 60s", "worker_startup: 10s");
    let t = Instant::now();
    let out = run_engines(&ws, config, &yaml, Some(path));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let dir = ws.run_dir(config);
    let hosts = job_hosts(&dir);
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "GEN_0", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("GEN_0 was not ready within worker_startup (10s)")
            && reason.contains("it spans 2 nodes")
            && reason.contains(&format!(
                "node rank 0 @ {}: disagg-sim: node rank 0 of 2: waiting at :",
                hosts[1]
            ))
            && reason.contains(&format!(
                "node rank 1 @ {}: Init torch distributed begin.",
                hosts[2]
            )),
        "{reason}"
    );
    assert_no_process_left(&dir);
}

/// The pyxis stand-in and its "image" (`tests/fixtures/pyxis`).
fn pyxis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyxis")
}

/// Whether bubblewrap runs here (the pyxis stand-in of the container tests needs it).
fn bubblewrap() -> Result<(), String> {
    let ok = Command::new("bwrap")
        .args([
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--",
            "/usr/bin/true",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err("bubblewrap (`bwrap`, Debian's bubblewrap) does not run here".into())
    }
}

/// The three-node cluster, and bubblewrap to play pyxis on it.
fn multinode_cluster_and_bubblewrap() -> Result<(), String> {
    multinode_cluster()?;
    bubblewrap()
}

/// Runs `yaml` on the cluster with pyxis played by bubblewrap: every container step's command
/// runs where only its mounts and the system folders are visible. Returns the run folder and the
/// container steps the stand-in saw.
fn run_in_containers(ws: &Ws, config: &str, yaml: &str) -> (PathBuf, Vec<String>) {
    let (out, dir, steps_log) = run_in_containers_as_it_goes(ws, config, yaml);
    let logs: String = [
        "ctx_server_0.log",
        "gen_server_0.log",
        "disagg_server.log",
        "install.log",
    ]
    .iter()
    .map(|f| {
        format!(
            "--- {f}\n{}\n",
            std::fs::read_to_string(dir.join(f)).unwrap_or_default()
        )
    })
    .collect();
    assert_eq!(out.status.code(), Some(0), "{}\n{logs}", text(&out));
    // The container steps; the stand-in enroot's removals are the job's last lines.
    let steps = read(&steps_log)
        .lines()
        .filter(|l| l.starts_with("name="))
        .map(str::to_string)
        .collect();
    (dir, steps)
}

/// [`run_in_containers`], whatever the run's end: `disagg run`'s output, the run folder and the
/// stand-in's log of container steps.
fn run_in_containers_as_it_goes(ws: &Ws, config: &str, yaml: &str) -> (Output, PathBuf, PathBuf) {
    let case = ws.case(&format!("{config}.yaml"), yaml);
    let steps_log = ws.dir.join("container-steps.log");
    // Outside every mount: the sandbox must not show it.
    let hidden = ws.dir.join("not-mounted");
    std::fs::write(&hidden, "").unwrap();
    let path = format!(
        "{}:{}",
        pyxis().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(DISAGG)
        .args([
            "run",
            case.to_str().unwrap(),
            "--launcher",
            "slurm",
            "--workspace",
        ])
        .arg(&ws.dir)
        .env("SLURM_CONF", slurm_conf())
        .env("SKIP_PERF_CHECK", "true")
        .env("PATH", path)
        .env("PYXIS_STANDIN_LOG", &steps_log)
        .env("DISAGG_STANDIN_EXE", DISAGG)
        .env("DISAGG_STANDIN_HIDDEN", &hidden)
        .output()
        .unwrap();
    (out, ws.run_dir(config), steps_log)
}

/// `examples/sglang-multinode.yaml` for the dev cluster, in a container with `mounts` (a YAML
/// list's items), its model under the workspace's `site/`, and a small workload.
fn sglang_example_in_a_container(ws: &Ws, mounts: &str) -> String {
    let root = ws.dir.join("site");
    std::fs::create_dir_all(root.join("models/DeepSeek-R1")).unwrap();
    let site = root.display().to_string();
    example("sglang-multinode.yaml")
        .replace("/models", &format!("{site}/models"))
        .replace(
            "slurm: {partition: batch, time: \"04:00:00\"}",
            &format!(
                "slurm: {{time: \"04:00:00\", container: {{image: \"lmsysorg/sglang:v0.5.23\", \
                 mounts: [{mounts}]}}}}"
            ),
        )
        .replace(
            "benchmark: {isl: 4096, osl: 1024, concurrency: [256], rounds: 4}",
            "benchmark: {isl: 64, osl: 8, concurrency: [4], rounds: 2}",
        )
}

/// A mount whose source is not on the nodes (pyxis, unlike docker, does not make it): the job's
/// container cannot start, and the run fails in seconds with enroot's words and the key to fix,
/// with nothing left running.
fn a_container_mount_missing_on_the_nodes_fails_at_once_naming_the_key() {
    let ws = Ws::new("missing-mount");
    let site = ws.dir.join("site").display().to_string();
    let yaml = sglang_example_in_a_container(
        &ws,
        &format!("\"{site}/models:{site}/models\", \"{site}/no-such-cache:/cache\""),
    );
    let started = Instant::now();
    let (out, dir, _) = run_in_containers_as_it_goes(&ws, "sglang-1p1d-tp16", &yaml);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let summary = read(&dir.join("summary.md"));
    assert!(
        summary.contains("slurm.container.mounts")
            && summary.contains(&format!(
                "enroot-mount: failed to mount: {site}/no-such-cache"
            )),
        "{summary}"
    );
    assert_no_process_left(&dir);
}

/// What every container run must show: the job's named container made first on every node and
/// reused by every step, and the disagg binary and the run folder mounted at their own paths.
fn assert_one_named_container_per_node(dir: &Path, steps: &[String], nodes: usize, roles: usize) {
    let id = read(&dir.join("slurm_job_id"));
    let name = format!("name=disagg-{}", id.trim());
    assert!(
        steps[0].contains("--job-name=CONTAINER")
            && steps[0].contains(&format!("--ntasks={nodes}")),
        "the first step makes the container on each node: {steps:?}"
    );
    assert_eq!(steps.len(), 1 + roles, "{steps:?}");
    // pyxis keeps a named container after the job (its default container_scope): once the
    // roles are gone, the supervisor removes it on every node of the job, outside the container.
    let ws = dir.ancestors().nth(3).unwrap();
    let removed: Vec<String> = read(&ws.join("container-steps.log"))
        .lines()
        .filter_map(|l| l.strip_prefix("enroot remove "))
        .map(str::to_string)
        .collect();
    let mut want: Vec<String> = job_hosts(dir)
        .iter()
        .map(|h| format!("pyxis_disagg-{} on {h}", id.trim()))
        .collect();
    want.sort();
    let mut got = removed.clone();
    got.sort();
    assert_eq!(got, want, "{}", read(&dir.join("install.log")));
    let config_dir = dir.parent().unwrap().display().to_string();
    for s in steps {
        assert!(s.starts_with(&format!("{name} ")), "{s}");
        assert!(
            s.contains(&format!("{DISAGG}:{DISAGG}")),
            "the binary is not mounted: {s}"
        );
        assert!(
            s.contains(&format!("{config_dir}:{config_dir}")),
            "the run folder is not mounted: {s}"
        );
    }
}

/// Worker steps run under PMIx (`slurm.mpi`), the router and the benchmark never.
fn assert_mpi_on_workers_only(steps: &[String]) {
    for (role, want) in [
        ("CTX_0", "--mpi=pmix"),
        ("GEN_0", "--mpi=pmix"),
        ("DISAGG_SERVER", "--mpi=none"),
        ("BENCHMARK", "--mpi=none"),
    ] {
        let s = steps
            .iter()
            .find(|s| s.contains(&format!("--job-name={role} ")))
            .unwrap_or_else(|| panic!("no {role} step: {steps:?}"));
        assert!(s.contains(want), "{role}: {s}");
    }
}

/// `examples/sglang-multinode.yaml` in a container: GEN_0's two processes, one per node, each
/// run in its node's named container (the sandbox shows only the mounts, the binary and the run
/// folder), join at node rank 0's rendezvous, and serve every request.
fn the_sglang_multinode_example_runs_a_process_per_node_in_each_nodes_container() {
    let ws = Ws::new("sgl-containers");
    let site = ws.dir.join("site").display().to_string();
    // The run folders read-only (as a site's `/lustre:/lustre:ro` holds them, to keep its
    // weights safe): each step is given a writable mount of its own.
    let logs = ws.dir.join("disagg_logs").display().to_string();
    let yaml = sglang_example_in_a_container(
        &ws,
        &format!("\"{site}/models:{site}/models:ro\", \"{logs}:{logs}:ro\""),
    );
    assert!(
        yaml.contains("container:") && yaml.contains("concurrency: [4]"),
        "{yaml}"
    );
    let (dir, steps) = run_in_containers(&ws, "sglang-1p1d-tp16", &yaml);
    // CTX_0 on one node, GEN_0 on two: three nodes, four role steps.
    assert_one_named_container_per_node(&dir, &steps, 3, 4);
    // A case without `container.workdir`: every step starts in the run folder, as without a
    // container, not in the image's WORKDIR where pyxis would start it.
    for s in &steps {
        assert!(s.contains(&format!(" workdir={} ", dir.display())), "{s}");
    }
    let hosts = job_hosts(&dir);
    let log = read(&dir.join("gen_server_0.log"));
    assert!(
        rank_lines(&log, 1, &hosts[2])
            .iter()
            .any(|l| l.contains("headless: no HTTP here")),
        "{log}"
    );
    // The image sets UCX_TLS, and its ENV wins over the host's inside the container: the role
    // unsets it again, as the case's workers have it, and says so.
    for host in [&hosts[1], &hosts[2]] {
        let lines = rank_lines(&log, if host == &hosts[1] { 0 } else { 1 }, host);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("python3 stand-in: UCX_TLS=<unset>")),
            "{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("the container's image had its own UCX_TLS (unset)")),
            "{log}"
        );
    }
    assert_eq!(completed(&dir), 8);
    assert_no_process_left(&dir);
}

fn the_trtllm_multinode_example_runs_each_container_step_in_a_sandbox_of_its_mounts() {
    let ws = Ws::new("containers");
    // The example as it is, but for the site: its /lustre and /models are folders here, and
    // its partition, account and workload are the dev cluster's.
    let root = ws.dir.join("site");
    std::fs::create_dir_all(root.join("models/DeepSeek-R1-FP4")).unwrap();
    std::fs::create_dir_all(root.join("lustre")).unwrap();
    let site = root.display().to_string();
    let example = example("trtllm-multinode.yaml");
    let yaml = example
        .replace("/models", &format!("{site}/models"))
        .replace("/lustre", &format!("{site}/lustre"))
        .replace("  partition: batch\n", "")
        .replace("  account: myteam\n", "")
        .replace(
            "benchmark: {isl: 1024, osl: 1024, concurrency: [1024], rounds: 4}",
            "benchmark: {isl: 64, osl: 8, concurrency: [4], rounds: 2}",
        );
    assert!(
        !yaml.contains("partition") && yaml.contains("concurrency: [4]"),
        "{yaml}"
    );
    let (dir, steps) = run_in_containers(&ws, "trtllm-dep4-dep16", &yaml);
    // CTX_0 dep4 on one node, GEN_0 dep16 across two: three nodes, four role steps.
    assert_one_named_container_per_node(&dir, &steps, 3, 4);
    assert_mpi_on_workers_only(&steps);
    let gen_log = read(&dir.join("gen_server_0.log"));
    assert!(
        gen_log.contains(&format!("[rank 15 @ {}] ", job_hosts(&dir)[2])),
        "all 16 ranks ran:\n{gen_log}"
    );
    // The image's ENV sets UCX_TLS and TLLM_LOG_LEVEL=WARNING, and wins over the host's inside
    // the container: every engine still runs with the case's (INFO, UCX_TLS unset).
    for log in [gen_log, read(&dir.join("ctx_server_0.log"))] {
        assert!(
            log.contains("trtllm-serve stand-in: UCX_TLS=<unset> TLLM_LOG_LEVEL=INFO")
                && !log.contains("TLLM_LOG_LEVEL=WARNING"),
            "{log}"
        );
    }
    assert_no_process_left(&dir);
}

fn an_imported_trtllm_case_runs_each_container_step_in_a_sandbox_of_its_mounts() {
    let ws = Ws::new("imported");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/import/trtllm/b200_ctx1_dep4_gen1_dep8.yaml");
    let imported = Command::new(DISAGG)
        .args(["import", "trtllm"])
        .arg(&source)
        .output()
        .unwrap();
    assert_eq!(imported.status.code(), Some(0), "{}", text(&imported));
    let site = ws.dir.join("site");
    std::fs::create_dir_all(site.join("lustre/models/DeepSeek-R1-FP4")).unwrap();
    let text_case = String::from_utf8_lossy(&imported.stdout)
        .replace("/lustre", &format!("{}/lustre", site.display()));
    // The cluster's workload, not a GB200's.
    let mut case: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text_case).unwrap();
    case["benchmark"] =
        serde_yaml_ng::from_str("{isl: 64, osl: 8, concurrency: [4], rounds: 2}").unwrap();
    assert_eq!(
        case["slurm"]["mpi"].as_str(),
        Some("pmix"),
        "slurm.mpi survives the import"
    );
    // The import asks for one segment of the job's nodes, as TensorRT-LLM's perf-sanity submit
    // does; this Slurm (22.05) has no segments and refuses the option, so it goes, as the
    // import's note says to do on such a cluster.
    let args = case["slurm"]["extra_args"].as_sequence_mut().unwrap();
    assert!(
        args.iter().any(|a| a.as_str() == Some("--segment=2")),
        "{args:?}"
    );
    args.retain(|a| !a.as_str().is_some_and(|a| a.starts_with("--segment")));
    let yaml = serde_yaml_ng::to_string(&case).unwrap();
    let config = case["name"].as_str().unwrap().to_string();
    let (dir, steps) = run_in_containers(&ws, &config, &yaml);
    // CTX_0 dep4 on one node, GEN_0 dep8 on another.
    assert_one_named_container_per_node(&dir, &steps, 2, 4);
    assert_mpi_on_workers_only(&steps);
    let gen_node = &job_hosts(&dir)[1];
    assert!(read(&dir.join("gen_server_0.log")).contains(&format!("[rank 7 @ {gen_node}] ")));
    assert_no_process_left(&dir);
}

/// "served 14 client requests (...)" in a router replica's log: what it carried.
fn served(log: &str) -> Option<u64> {
    let at = log.rfind(": served ")?;
    log[at + ": served ".len()..]
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Three nodes (one GPU each: CTX_0, GEN_0, GEN_1) and three router replicas.
const REPLICAS_CASE: &str = "model: {name: tiny}\nhardware: {gpus_per_node: 1}\nctx: {count: 1, engine_args: {}}\ngen: {count: 2, engine_args: {}}\nrouter: {replicas: 3}\n";

fn three_router_replicas_run_one_per_node_and_share_the_load() {
    let ws = Ws::new("replicas");
    let yaml = format!(
        "name: mn-replicas\n{REPLICAS_CASE}benchmark: {{isl: 32, osl: 8, concurrency: [3], rounds: 4}}\n"
    );
    let out = ws.run("mn-replicas", &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.run_dir("mn-replicas");
    let mut total = 0;
    for (i, node) in ["dgn1", "dgn2", "dgn3"].iter().enumerate() {
        let role = format!("DISAGG_SERVER_{i}");
        assert_eq!(published(&dir, &role).0, *node, "{role} runs on {node}");
        let config = read(&dir.join(format!("server_config_{i}.yaml")));
        assert!(
            !config.contains("127.0.0.1"),
            "a loopback address crossed nodes:\n{config}"
        );
        let log = read(&dir.join(format!("disagg_server_{i}.log")));
        let n = served(&log).unwrap_or_else(|| panic!("{role} says what it served: {log}"));
        // Its canary and its 4 of the 12 measured requests, whichever node it is on.
        assert!(n >= 5, "{role} served {n}: {log}");
        total += n;
    }
    // 3 canaries and 12 measured requests, each through exactly one router.
    assert_eq!(total, 15);
    let junit = read(&dir.join("results.xml"));
    for i in 0..3 {
        assert!(
            junit.contains(&format!("name=\"DISAGG_SERVER_{i} stayed up\"")),
            "{junit}"
        );
    }
    assert_no_process_left(&dir);
}

fn killing_a_router_replica_on_another_node_fails_the_run_within_5s_naming_it() {
    let ws = Ws::new("replica-death");
    let yaml = format!(
        "name: mn-replica-death\n{REPLICAS_CASE}benchmark: {{isl: 32, osl: 200, concurrency: [3], rounds: 50}}\ntimeouts: {{worker_startup: 30s, request: 30s, benchmark: 2m, job: 3m}}\n"
    )
    .replace("gen: {count: 2, engine_args: {}}", "gen: {count: 2, engine_args: {itl: 20ms}}");
    let case = ws.case("mn-replica-death.yaml", &yaml);
    let mut run = ws.background(&case);
    // Wait until the sweep runs (every replica answered its canary).
    let config = ws.dir.join("disagg_logs/mn-replica-death");
    let until = Instant::now() + Duration::from_secs(90);
    let (dir, pid) = loop {
        let dir = std::fs::canonicalize(config.join("latest")).ok();
        if let Some(d) = &dir {
            if std::fs::read_to_string(d.join("benchmark.log"))
                .is_ok_and(|l| l.contains("canary passed"))
            {
                let pid = json(&d.join("rendezvous/DISAGG_SERVER_1.json"))["pid"]
                    .as_u64()
                    .unwrap();
                break (d.clone(), pid as u32);
            }
        }
        if Instant::now() > until || run.ended() {
            run.abandon("the sweep never started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(published(&dir, "DISAGG_SERVER_1").0, "dgn2");
    // The replica's role process (it serves the router in-process), in this machine's table.
    let (code, took, stdout, stderr) = kill_and_wait(pid, run);
    eprintln!("disagg run exited {took:?} after DISAGG_SERVER_1 was killed");
    let shown = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(code, 1, "{shown}");
    assert!(
        took < Duration::from_secs(5),
        "exit {took:?} after the kill\n{shown}"
    );
    let st = json(&dir.join("rendezvous/status.json"));
    assert_eq!(st["role"], "DISAGG_SERVER_1", "{st}");
    let summary = read(&dir.join("summary.md"));
    assert!(summary.contains("FAILED: DISAGG_SERVER_1"), "{summary}");
    let cases = junit_cases(&dir.join("results.xml"));
    for i in 0..3 {
        let c = cases
            .iter()
            .find(|c| c.0 == format!("DISAGG_SERVER_{i} stayed up"))
            .unwrap_or_else(|| panic!("no testcase for DISAGG_SERVER_{i}: {cases:?}"));
        assert_eq!(c.1.is_some(), i == 1, "only replica 1 fails: {cases:?}");
    }
    assert_no_process_left(&dir);
}

fn asking_more_gpus_per_node_than_a_node_has_fails_at_once_with_slurms_reason() {
    // Nodes have 8 GPUs; Slurm queues the held job and then says BadConstraints forever.
    let ws = Ws::new("badconstraints");
    let c = ws.case(
        "mn-big.yaml",
        "name: mn-big\nmodel: {name: tiny}\nhardware: {gpus_per_node: 16}\nctx: {count: 1, parallel: {tp: 12}}\ngen: {count: 1}\nbenchmark: {isl: 32, osl: 8, concurrency: [2], rounds: 2}\ntimeouts: {worker_startup: 10s, request: 30s, benchmark: 3m, job: 5m}\nslurm: {time: \"10\"}\n",
    );
    let t0 = Instant::now();
    let (code, stdout, stderr) = ws.background(&c).wait(Duration::from_secs(60));
    let all = format!("exit {code}\n{stdout}\n{stderr}");
    assert_eq!(code, 2, "{all}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let dir = ws.run_dir("mn-big");
    let id = read(&dir.join("slurm_job_id"));
    let id = id.trim();
    for want in [
        format!("Slurm job {id} can never start"),
        "BadConstraints".into(),
        "hardware.gpus_per_node: 16".into(),
        "--gres=gpu:16".into(),
        "hint: ".into(),
    ] {
        assert!(stderr.contains(&want), "want {want:?}:\n{all}");
    }
    assert_eq!(job_state(id).as_deref(), Some("CANCELLED"));
    assert_eq!(read(&dir.join("exit_code")).trim(), "2");
}
