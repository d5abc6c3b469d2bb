//! What each engine's case submits under Slurm: the batch script, every role's srun step with its
//! env, and the files written into the run folder. Fixed run id, folder, binary and hosts, so the
//! snapshots are stable. They show multi-node workers, and MPI on worker steps only.

use std::path::Path;

use disagg_core::{Plan, parse_case};
use disagg_harness::slurm::{quote::sh_join, script, steps};

const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];

fn plan_of(file: &str) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let case = parse_case(&text, Path::new(file)).unwrap();
    disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    )
}

fn everything(file: &str) -> String {
    let plan = plan_of(file);
    let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let mut out = script::render(&plan, Path::new("/opt/disagg/bin/disagg"), false).unwrap();
    for r in &plan.roles {
        let st = steps::step(&plan, r, &hosts);
        out.push_str(&format!("\n== {} step\n{}\n", r.role, sh_join(&st.argv)));
        for (k, v) in &st.env_set {
            out.push_str(&format!("  set   {k}={v}\n"));
        }
        for k in &st.env_unset {
            out.push_str(&format!("  unset {k}\n"));
        }
        if let Some(e) = &r.engine {
            out.push_str(&format!(
                "  engine ({} rank(s), binds {}): {}\n",
                r.ranks,
                e.host,
                sh_join(&e.argv)
            ));
            for (k, v) in &e.env {
                out.push_str(&format!("  engine env {k}={v}\n"));
            }
            if e.side_channel_span > 1 {
                out.push_str(&format!("  side-channel ports: {}\n", e.side_channel_span));
            }
        }
    }
    for (name, text) in &plan.files {
        out.push_str(&format!("\n== file {name}\n{text}"));
    }
    out
}

#[test]
fn trtllm_multinode() {
    let plan = plan_of("trtllm-multinode.yaml");
    assert_eq!(plan.nodes, 3, "ctx on node 0, gen on nodes 1-2");
    insta::assert_snapshot!(everything("trtllm-multinode.yaml"));
}

#[test]
fn vllm() {
    insta::assert_snapshot!(everything("vllm.yaml"));
}

#[test]
fn sglang() {
    insta::assert_snapshot!(everything("sglang.yaml"));
}

#[test]
fn command() {
    insta::assert_snapshot!(everything("command-sim.yaml"));
}

#[test]
fn mpi_goes_to_worker_steps_only() {
    let plan = plan_of("trtllm-multinode.yaml");
    for r in &plan.roles {
        let st = steps::step(&plan, r, &[]);
        let mpi: Vec<&String> = st.argv.iter().filter(|a| a.starts_with("--mpi=")).collect();
        if r.role.is_worker() {
            assert_eq!(mpi, ["--mpi=pmix"], "{}", r.role);
            assert!(!st.env_set.contains_key(steps::CLEAR_ENV_VAR));
        } else {
            assert_eq!(mpi, ["--mpi=none"], "{}", r.role);
            assert!(st.argv.contains(&"--overlap".to_string()));
            assert_eq!(
                st.env_set.get(steps::CLEAR_ENV_VAR).map(String::as_str),
                Some("PMI,PMIX,OMPI,SLURM_")
            );
        }
    }
}

#[test]
fn router_replicas_run_on_the_first_nodes_each_with_its_own_config() {
    // Three workers of one GPU on nodes of one GPU: a 3-node job, and 4 router replicas.
    let text = "model: {name: m}\nengine: command\nhardware: {gpus_per_node: 1}\n\
                ctx: {count: 1, engine_args: {argv: [e, '{port}']}}\n\
                gen: {count: 2, engine_args: {argv: [e, '{port}']}}\n\
                router: {kind: command, argv: [r, -c, '{server_config}'], replicas: 4}\n\
                benchmark: {isl: 8, osl: 8}\n";
    let case = parse_case(text, Path::new("r.yaml")).unwrap();
    let plan = disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    );
    assert_eq!(plan.nodes, 3);
    let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let placed: Vec<(String, String, String, String)> = plan
        .roles
        .iter()
        .filter(|r| !r.role.is_worker())
        .map(|r| {
            let st = steps::step(&plan, r, &hosts);
            let node = st
                .argv
                .iter()
                .find_map(|a| a.strip_prefix("--nodelist="))
                .unwrap()
                .to_string();
            let config = r
                .engine
                .as_ref()
                .map(|e| e.argv.last().unwrap().clone())
                .unwrap_or_default();
            (r.role.to_string(), r.log.clone(), node, config)
        })
        .collect();
    let want = |i: usize, node: &str| {
        (
            format!("DISAGG_SERVER_{i}"),
            format!("disagg_server_{i}.log"),
            node.to_string(),
            format!("/ws/disagg_logs/x/RUN1/server_config_{i}.yaml"),
        )
    };
    assert_eq!(
        placed,
        vec![
            want(0, "node-a"),
            want(1, "node-b"),
            want(2, "node-c"),
            // More replicas than nodes: around again.
            want(3, "node-a"),
            (
                "BENCHMARK".into(),
                "benchmark.log".into(),
                "node-a".into(),
                String::new()
            ),
        ]
    );
}
