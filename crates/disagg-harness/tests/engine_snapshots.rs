//! What each engine's case submits under Slurm: the batch script, every role's srun step with its
//! env, and the files written into the run folder. Fixed run id, folder, binary and hosts, so the
//! snapshots are stable. They show multi-node workers, and MPI on worker steps only.

use std::path::Path;

use disagg_core::{Plan, parse_case};
use disagg_harness::slurm::{quote::sh_join, script, steps};

const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// A job on `hosts` holding 64 CPUs on each.
fn job(hosts: &[String]) -> steps::Job {
    steps::Job {
        hosts: hosts.to_vec(),
        cpus: vec![64; hosts.len()],
        threads_per_core: vec![1; hosts.len()],
    }
}

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
        let st = steps::step(&plan, r, &job(&hosts));
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
            for (i, extra) in e.node_args.iter().enumerate() {
                out.push_str(&format!("  node rank {i} adds: {}\n", sh_join(extra)));
            }
            if e.dist_span > 1 {
                out.push_str(&format!("  rendezvous ports: {}\n", e.dist_span));
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
fn sglang_multinode() {
    let plan = plan_of("sglang-multinode.yaml");
    assert_eq!(plan.nodes, 3, "ctx on node 0, gen on nodes 1-2");
    insta::assert_snapshot!(everything("sglang-multinode.yaml"));
}

#[test]
fn command() {
    insta::assert_snapshot!(everything("command-sim.yaml"));
}

#[test]
fn mpi_goes_to_worker_steps_only() {
    let plan = plan_of("trtllm-multinode.yaml");
    for r in &plan.roles {
        let st = steps::step(&plan, r, &steps::Job::default());
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
            let st = steps::step(&plan, r, &job(&hosts));
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

/// Where each non-worker step runs, by its `--nodelist`, with the job's node count.
fn front_placement(text: &str, hosts: &[&str]) -> (u32, Vec<(String, String)>) {
    let case = parse_case(text, Path::new("f.yaml")).unwrap();
    let plan = disagg_core::plan::build(
        &case,
        "RUN1",
        Path::new("/ws/disagg_logs/x/RUN1"),
        Path::new("/opt/disagg/bin/disagg"),
    );
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let placed = plan
        .roles
        .iter()
        .map(|r| {
            let st = steps::step(&plan, r, &job(&hosts));
            let node = st
                .argv
                .iter()
                .find_map(|a| a.strip_prefix("--nodelist="))
                .unwrap()
                .to_string();
            (r.role.to_string(), node)
        })
        .collect();
    (plan.nodes, placed)
}

#[test]
fn front_nodes_give_the_routers_and_the_benchmark_nodes_of_their_own() {
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    // CTX_0 and GEN_0 on a node each, the router and the benchmark on a third.
    let one = "model: {name: m}\nhardware: {gpus_per_node: 1}\n\
               ctx: {count: 1}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 8}\n\
               slurm: {front_nodes: 1}\n";
    let (nodes, placed) = front_placement(one, &["n0", "n1", "n2"]);
    assert_eq!(nodes, 3, "two worker nodes and one front node");
    assert_eq!(
        placed,
        vec![
            pair("CTX_0", "n0"),
            pair("GEN_0", "n1"),
            pair("DISAGG_SERVER", "n2"),
            pair("BENCHMARK", "n2"),
        ]
    );
    // Three replicas on two front nodes: around the front nodes only, never onto a worker's.
    let three = "model: {name: m}\nhardware: {gpus_per_node: 2}\n\
                 ctx: {count: 1}\ngen: {count: 1}\nrouter: {replicas: 3}\n\
                 benchmark: {isl: 8, osl: 8}\nslurm: {front_nodes: 2}\n";
    let (nodes, placed) = front_placement(three, &["n0", "f0", "f1"]);
    assert_eq!(nodes, 3, "both workers share a node; two front nodes");
    assert_eq!(
        placed,
        vec![
            pair("CTX_0", "n0"),
            pair("GEN_0", "n0"),
            pair("DISAGG_SERVER_0", "f0"),
            pair("DISAGG_SERVER_1", "f1"),
            pair("DISAGG_SERVER_2", "f0"),
            pair("BENCHMARK", "f0"),
        ]
    );
}

/// TensorRT-LLM servers of several ranks join one MPI world through PMIx when the case names
/// no plugin (left to a cluster's `MpiDefault=none`, each rank would be a world of its own);
/// the case's `slurm.mpi` wins, other engines and one-rank servers get none, and the router and
/// benchmark steps never get MPI.
#[test]
fn multi_rank_trtllm_worker_steps_get_pmix_unless_the_case_says() {
    let hosts: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let mpi_of = |text: &str| -> Vec<(String, Option<String>)> {
        let case = parse_case(text, Path::new("m.yaml")).unwrap();
        let plan = disagg_core::plan::build(
            &case,
            "RUN1",
            Path::new("/ws/disagg_logs/x/RUN1"),
            Path::new("/opt/disagg/bin/disagg"),
        );
        plan.roles
            .iter()
            .map(|r| {
                let st = steps::step(&plan, r, &job(&hosts));
                let mpi = st
                    .argv
                    .iter()
                    .find_map(|a| a.strip_prefix("--mpi="))
                    .map(str::to_string);
                (r.role.to_string(), mpi)
            })
            .collect()
    };
    let case = |engine: &str, tp: u32, slurm: &str| {
        format!(
            "model: {{name: m}}\nengine: {engine}\nhardware: {{gpus_per_node: 8}}\n\
             ctx: {{count: 1, parallel: {{tp: {tp}}}}}\ngen: {{count: 1}}\n\
             benchmark: {{isl: 8, osl: 8}}\n{slurm}"
        )
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        mpi_of(&case("trtllm", 4, "")),
        vec![
            ("CTX_0".into(), some("pmix")),
            ("GEN_0".into(), some("pmix")),
            ("DISAGG_SERVER".into(), some("none")),
            ("BENCHMARK".into(), some("none")),
        ]
    );
    let said = mpi_of(&case("trtllm", 4, "slurm: {mpi: pmi2}\n"));
    assert_eq!(said[0], ("CTX_0".into(), some("pmi2")));
    // One rank per server: nothing to join.
    assert_eq!(mpi_of(&case("trtllm", 1, ""))[0], ("CTX_0".into(), None));
    assert_eq!(mpi_of(&case("vllm", 4, ""))[0], ("CTX_0".into(), None));
}

/// TensorRT-LLM's own cache-aware router (`kind: engine`, `prefix_affinity`) learns each
/// worker's cached blocks from its KV cache events: the routed group's workers keep them (block
/// reuse on, an event buffer), beside what engine_args set; other policies add nothing. The case
/// is told when that router must tokenize text prompts with `model.name`.
#[test]
fn trtllms_cache_aware_router_gets_workers_that_publish_kv_events() {
    let build = |router: &str, gen_args: &str, bench: &str| {
        let text = format!(
            "model: {{name: llama}}\nengine: trtllm\nhardware: {{gpus_per_node: 8}}\n\
             ctx: {{count: 1}}\ngen: {{count: 1, engine_args: {gen_args}}}\n\
             router: {router}\nbenchmark: {bench}\n"
        );
        let case = parse_case(&text, Path::new("kv.yaml")).unwrap();
        let plan = disagg_core::plan::build(
            &case,
            "RUN1",
            Path::new("/ws/disagg_logs/x/RUN1"),
            Path::new("/opt/disagg/bin/disagg"),
        );
        let yaml =
            |f: &str| -> serde_yaml_ng::Value { serde_yaml_ng::from_str(&plan.files[f]).unwrap() };
        (
            yaml("ctx_config.yaml")["kv_cache_config"].clone(),
            yaml("gen_config.yaml")["kv_cache_config"].clone(),
            disagg_core::plan::placement_notes(&case.case),
        )
    };
    let kv = |reuse: bool, buffer: u64, more: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&format!(
            "{{enable_block_reuse: {reuse}, event_buffer_max_size: {buffer}{more}}}"
        ))
        .unwrap()
    };
    let (ctx, gen_, notes) = build(
        "{kind: engine, ctx_policy: prefix_affinity}",
        "{kv_cache_config: {free_gpu_memory_fraction: 0.8}}",
        "{isl: 8, osl: 8}",
    );
    assert_eq!(ctx, kv(true, 1024, ""));
    assert_eq!(
        gen_,
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("{free_gpu_memory_fraction: 0.8}").unwrap(),
        "the generation servers are routed round robin"
    );
    assert!(notes.is_empty(), "token ids need no tokenizer: {notes:?}");
    // Both groups; the case's own values stay.
    let (ctx, gen_, _) = build(
        "{kind: engine, policy: prefix_affinity}",
        "{kv_cache_config: {event_buffer_max_size: 64, dtype: fp8}}",
        "{isl: 8, osl: 8}",
    );
    assert_eq!(ctx, kv(true, 1024, ""));
    assert_eq!(gen_, kv(true, 64, ", dtype: fp8"));
    // Chat prompts: tokenized with model.name by that router.
    let (_, _, notes) = build(
        "{kind: engine, policy: prefix_affinity}",
        "{}",
        "{isl: 8, osl: 8, endpoint: /v1/chat/completions}",
    );
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("AutoTokenizer.from_pretrained(\"llama\")"),
        "{notes:?}"
    );
    // The builtin router tracks prefixes itself.
    let (ctx, _, notes) = build(
        "{kind: builtin, policy: prefix_affinity}",
        "{}",
        "{isl: 8, osl: 8, endpoint: /v1/chat/completions}",
    );
    assert_eq!(ctx, serde_yaml_ng::Value::Null);
    assert!(notes.is_empty());
}

/// Slurm can TERM the batch script just as it execs the supervisor: the script's last words
/// leave TERM and INT ignored across `exec`, so the signal cannot kill the supervisor before its
/// own handlers are in (it died without a report).
#[test]
fn the_supervisor_starts_with_term_and_int_ignored() {
    let script = script::render(
        &plan_of("vllm.yaml"),
        Path::new("/opt/disagg/bin/disagg"),
        false,
    )
    .unwrap();
    let lines: Vec<&str> = script.lines().collect();
    let exec = lines
        .iter()
        .position(|l| l.starts_with("exec "))
        .expect("the script ends in exec");
    assert_eq!(lines[exec - 1], "trap '' TERM INT", "{script}");
    // What that line does to the exec'd process: it lives through both signals.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{}\nexec sh -c 'kill -TERM $$; kill -INT $$; echo alive'",
            lines[exec - 1]
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");
}
