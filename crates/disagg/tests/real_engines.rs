//! The shipped vLLM and SGLang examples, run end to end with `disagg sim` standing in for the
//! engine at exactly the argv and env their plans give: `vllm` and `python3` on the PATH are
//! stand-ins that exec `disagg sim -- <the engine's argv>`. The sim binds what the engine binds
//! (SGLang's bootstrap port, vLLM's NIXL side channel from its variables) and serves only the
//! name the engine would serve, so a port or a name that does not fit fails here.

mod support;

use std::path::{Path, PathBuf};

use support::{DISAGG, TempDir, json, only_run, read, run, stand_ins};

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(file)
}

#[test]
fn the_vllm_example_runs_at_its_plans_argv_and_env() {
    let ws = TempDir::new("vllm-example");
    let path = stand_ins(ws.path());
    let r = run(&example("vllm.yaml"), ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-1p1d");
    let plan = json(&dir.join("plan.json"));
    assert_eq!(
        plan["router"]["dialect"], "vllm",
        "routed in its own dialect"
    );
    // Every request of both points was served: the served name is the one the benchmark sends
    // (the sim answers any other with vLLM's 404), and decode pulled every KV cache through the
    // prefill's side channel.
    let points = json(&dir.join("results.json"))["points"].clone();
    let completed: Vec<u64> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .collect();
    assert_eq!(completed, [16 * 4, 64 * 4], "{points}");
    // Two workers on one node, a side-channel port each, handed to the engine in the variables
    // vLLM reads, with the host the role published.
    let mut ports = Vec::new();
    for role in ["CTX_0", "GEN_0"] {
        let ep = json(&dir.join(format!("rendezvous/{role}.json")));
        let port = ep["side_channel_port"].as_u64().expect("published");
        let host = ep["host"].as_str().unwrap();
        let log = read(&dir.join(if role == "CTX_0" {
            "ctx_server_0.log"
        } else {
            "gen_server_0.log"
        }));
        assert!(
            log.contains(&format!("VLLM_NIXL_SIDE_CHANNEL_PORT={port} "))
                && log.contains(&format!("VLLM_NIXL_SIDE_CHANNEL_HOST={host} ")),
            "{role}: {log}"
        );
        assert!(
            log.contains(&format!("kv_port={host}:{port}")) && log.contains("model=llama-3.1-8b"),
            "{role}: the stand-in bound it and serves the benchmark's name: {log}"
        );
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
}

#[test]
fn the_sglang_example_runs_at_its_plans_argv_and_env() {
    let ws = TempDir::new("sglang-example");
    let path = stand_ins(ws.path());
    let r = run(&example("sglang.yaml"), ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "sglang-2p1d");
    let plan = json(&dir.join("plan.json"));
    assert_eq!(
        plan["router"]["dialect"], "sglang",
        "routed in its own dialect"
    );
    let completed = json(&dir.join("results.json"))["points"][0]["completed"].as_u64();
    assert_eq!(completed, Some(32 * 4));
    // Both prefills: the router names the bootstrap port each was started with, not its HTTP
    // port.
    let cfg = read(&dir.join("server_config.yaml"));
    for i in 0..2 {
        let ep = json(&dir.join(format!("rendezvous/CTX_{i}.json")));
        let bootstrap = ep["bootstrap_port"].as_u64().expect("published");
        assert_ne!(Some(bootstrap), ep["port"].as_u64());
        let named = format!(
            "{}:{}@{bootstrap}",
            ep["host"].as_str().unwrap(),
            ep["port"]
        );
        assert!(cfg.contains(&named), "CTX_{i} is {named}: {cfg}");
        let log = read(&dir.join(format!("ctx_server_{i}.log")));
        assert!(
            log.contains(&format!("--disaggregation-bootstrap-port {bootstrap} "))
                // On one node it binds loopback, as every worker of a one-node plan does.
                && log.contains(&format!("kv_port=127.0.0.1:{bootstrap}")),
            "CTX_{i} was started with it and bound it: {log}"
        );
    }
    // The decode server's attention DP talks over TCP from a rendezvous span its role picked
    // (SGLang's default, --port + 233 on, is reserved by nobody), which the stand-in bound.
    let log = read(&dir.join("gen_server_0.log"));
    let at = log
        .find("--dist-init-addr 127.0.0.1:")
        .unwrap_or_else(|| panic!("GEN_0 got no rendezvous of its own: {log}"));
    let port: String = log[at + "--dist-init-addr 127.0.0.1:".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let port: u16 = port.parse().unwrap();
    let gen_port = json(&dir.join("rendezvous/GEN_0.json"))["port"]
        .as_u64()
        .unwrap();
    assert_ne!(u64::from(port), gen_port + 233, "not SGLang's default");
}

/// A vLLM worker left at its defaults: the model's path as its served name. The benchmark
/// sends `model.name`, so vLLM (and the sim in its place) answers 404 and the run fails at its
/// canary instead of reporting numbers.
#[test]
fn a_vllm_worker_that_serves_another_name_fails_the_run() {
    let ws = TempDir::new("vllm-name");
    let case = ws.path().join("c.yaml");
    let argv = |extra: &str| {
        format!(
            r#"{{argv: ["{{disagg}}", sim, --itl, 1ms, --side-channel-port, "{{side_channel_port}}", --, vllm, serve, "{{model}}", --host, "{{host}}", --port, "{{port}}", --kv-transfer-config, '{{"kv_connector":"NixlConnector","kv_role":"kv_both"}}'{extra}]}}"#
        )
    };
    std::fs::write(
        &case,
        format!(
            "name: vllm-name\nmodel: {{name: llama, path: meta-llama/Llama}}\nengine: command\nrouter: {{dialect: vllm}}\nhardware: {{gpus_per_node: 2}}\nctx: {{count: 1, engine_args: {}}}\ngen: {{count: 1, engine_args: {}}}\nbenchmark: {{isl: 16, osl: 4, concurrency: [1], rounds: 1}}\ntimeouts: {{worker_startup: 30s, request: 10s, benchmark: 1m, job: 2m}}\n",
            argv(""),
            argv(""),
        ),
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-name");
    let bench = read(&dir.join("benchmark.log"));
    // The benchmark quotes the engine's words as they came through the router.
    assert!(
        bench.contains("canary")
            && bench.contains("http_404")
            && bench.contains("`llama` does not exist"),
        "{bench}"
    );
    let ctx = read(&dir.join("ctx_server_0.log"));
    assert!(
        ctx.contains("404: The model `llama` does not exist."),
        "the engine says why: {ctx}"
    );
}

/// Two vLLM workers on one node left on one side-channel port (as vLLM's default does to every
/// worker): the second cannot bind it, and a retry on new HTTP ports does not help, since the
/// side channel stays where the variables put it. The plan of `engine: vllm` gives each worker
/// its own port (the test above).
#[test]
fn two_vllm_workers_on_one_side_channel_port_fail_the_run() {
    let ws = TempDir::new("vllm-side");
    let case = ws.path().join("c.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let argv = r#"{argv: ["{disagg}", sim, --itl, 1ms, --, vllm, serve, "{model}", --host, "{host}", --port, "{port}", --kv-transfer-config, '{"kv_connector":"NixlConnector","kv_role":"kv_both"}']}"#;
    std::fs::write(
        &case,
        format!(
            "name: vllm-side\nmodel: {{name: llama}}\nengine: command\nrouter: {{dialect: vllm}}\nhardware: {{gpus_per_node: 2}}\nctx: {{count: 1, engine_args: {argv}}}\ngen: {{count: 1, engine_args: {argv}}}\nenv: {{worker: {{VLLM_NIXL_SIDE_CHANNEL_HOST: 127.0.0.1, VLLM_NIXL_SIDE_CHANNEL_PORT: {port}}}}}\nbenchmark: {{isl: 16, osl: 4, concurrency: [1], rounds: 1}}\ntimeouts: {{worker_startup: 30s, request: 10s, benchmark: 1m, job: 2m}}\n"
        ),
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-side");
    let logs = read(&dir.join("ctx_server_0.log")) + &read(&dir.join("gen_server_0.log"));
    assert!(
        logs.contains("cannot bind the NIXL side channel (VLLM_NIXL_SIDE_CHANNEL_HOST/PORT")
            && logs.contains(&format!("127.0.0.1:{port}"))
            && logs.contains("retrying once"),
        "{logs}"
    );
}

/// A process killed and reaped on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `disagg sim` standing in for one node of an SGLang decode server of TP 8 over two nodes.
fn sglang_node(rank: u32, http: u16, dist: u16, stderr: &Path) -> Reaped {
    let argv = format!(
        "python3 -m sglang.launch_server --model-path org/m --served-model-name m --host 127.0.0.1 \
         --port {http} --tp-size 8 --disaggregation-mode decode --nnodes 2 --dist-init-addr \
         127.0.0.1:{dist} --node-rank {rank}"
    );
    let child = std::process::Command::new(DISAGG)
        .args(["sim", "--dist-timeout", "20s", "--"])
        .args(argv.split_whitespace())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    Reaped(child)
}

/// Waits (bounded) until `file` holds `text`.
fn wait_for_text(file: &Path, text: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(file)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            std::time::Instant::now() < until,
            "no `{text}` in {}: {}",
            file.display(),
            read(file)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A server over two nodes as SGLang runs one: node rank 0 serves nothing until node rank 1 has
/// joined its rendezvous, and goes down, naming it, when that node goes.
#[test]
fn an_sglang_server_over_two_nodes_serves_once_both_joined_and_fails_when_one_goes() {
    use std::io::{BufRead, Read, Write};
    let ws = TempDir::new("sglang-nodes");
    // The rendezvous port and the 5 after it (the engine derives its node sockets from it),
    // from below the ephemeral range and locked as a run's roles lock theirs: a port from
    // `bind(0)` had its +5 taken by another test's connection now and then.
    let held = disagg_harness::role::ports::reserve("127.0.0.1", 6).unwrap();
    let (http, dist) = (free_port(), held.first);
    let (err0, err1) = (ws.path().join("rank0.err"), ws.path().join("rank1.err"));
    let mut head = sglang_node(0, http, dist, &err0);
    let stdout = head.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    wait_for_text(&err0, &format!("waiting at :{dist} for 1 node(s) to join"));
    assert!(
        rx.try_recv().is_err(),
        "node rank 0 bound its HTTP port alone"
    );
    let member = sglang_node(1, free_port(), dist, &err1);
    let bound = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("node rank 0 serves once node rank 1 joined");
    assert_eq!(bound.trim(), format!("127.0.0.1:{http}"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    wait_for_text(&err1, "headless: no HTTP here, node rank 0 serves");
    // Node rank 1 dies: node rank 0 fails at once, naming it.
    drop(member);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(st) = head.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < until,
            "node rank 0 outlived node rank 1"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{}", read(&err0));
    let text = read(&err0);
    assert!(
        text.contains("node rank 1 (") && text.contains("left the group"),
        "{text}"
    );
}

/// The local launcher runs on one machine: a vLLM or SGLang server larger than a node (one
/// process per node) is refused before anything starts, with the fix.
#[test]
fn the_local_launcher_refuses_a_server_that_runs_a_process_on_each_of_several_nodes() {
    let ws = TempDir::new("local-nodes");
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        "name: spans\nmodel: {name: m}\nengine: sglang\nhardware: {gpus_per_node: 4}\nctx: {count: 1}\ngen: {count: 1, parallel: {tp: 8}}\nbenchmark: {isl: 8, osl: 4}\n",
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    let err = r.stderr();
    assert!(
        err.contains("each gen server spans 2 nodes") && err.contains("`--launcher slurm`"),
        "{}",
        r.show()
    );
    assert!(
        !ws.path().join("disagg_logs").exists(),
        "nothing was started"
    );
}

/// Workers of a real engine placed on two nodes would share this machine's GPUs under the local
/// launcher (each node's GPU 0 is the same GPU 0): refused before anything starts, naming them.
#[test]
fn the_local_launcher_refuses_workers_placed_on_several_nodes_that_would_share_gpus() {
    let ws = TempDir::new("local-shared");
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        "name: shared\nmodel: {name: m}\nengine: trtllm\nhardware: {gpus_per_node: 4}\nctx: {count: 5, parallel: {tp: 2}}\ngen: {count: 1}\nbenchmark: {isl: 8, osl: 4}\n",
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[]);
    assert_eq!(r.code(), 2, "{}", r.show());
    let err = r.stderr();
    assert!(
        err.contains("the workers take 3 nodes")
            && err.contains(
                "(CTX_0, CTX_1 on node 1; CTX_2, CTX_3 on node 2; CTX_4, GEN_0 on node 3)"
            )
            && err.contains("`--launcher slurm`"),
        "{}",
        r.show()
    );
    assert!(
        !ws.path().join("disagg_logs").exists(),
        "nothing was started"
    );
    // `disagg plan` shows the plan, and warns that `run` refuses it.
    let r = support::disagg(&["plan", case.to_str().unwrap()], &[]);
    assert!(
        r.stderr()
            .contains("warning: `disagg run` with this launcher refuses this case"),
        "{}",
        r.show()
    );
}

/// A TensorRT-LLM server of several GPUs on one machine runs as one `trtllm-serve`, which
/// spawns its ranks itself: under `trtllm-llmapi-launch`, with no launcher's MPI world, it
/// would serve one rank whatever its `tensor_parallel_size` (the sim, standing in for both,
/// fails so). `disagg plan` shows the local form; `--launcher slurm` keeps the wrapper, with a
/// step of one task per rank.
#[test]
fn a_trtllm_server_of_several_gpus_runs_as_one_trtllm_serve_on_one_machine() {
    let ws = TempDir::new("trtllm-local-tp");
    let path = support::stand_ins_of(ws.path(), &["trtllm-serve", "trtllm-llmapi-launch"]);
    let case = ws.path().join("c.yaml");
    std::fs::write(
        &case,
        "name: trt-tp2\nmodel: {name: tiny}\nengine: trtllm\nhardware: {gpus_per_node: 4}\nctx: {count: 1, parallel: {tp: 2}}\ngen: {count: 1}\nbenchmark: {isl: 16, osl: 4, concurrency: [2], rounds: 2}\ntimeouts: {worker_startup: 60s, request: 30s, benchmark: 60s, job: 2m}\n",
    )
    .unwrap();
    let r = run(&case, ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "trt-tp2");
    let plan = json(&dir.join("plan.json"));
    let ctx = plan["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "CTX_0")
        .unwrap()
        .clone();
    assert_eq!(ctx["engine"]["argv"][0], "trtllm-serve", "{ctx}");
    assert_eq!(ctx["ranks"], 1, "{ctx}");
    assert_eq!(ctx["env_set"]["CUDA_VISIBLE_DEVICES"], "0,1", "{ctx}");
    let yaml = read(&dir.join("ctx_config.yaml"));
    assert!(
        yaml.contains("tensor_parallel_size: 2")
            && yaml.contains("disable_overlap_scheduler: true"),
        "{yaml}"
    );
    // The plan as each launcher runs it.
    let ws_arg = ["--workspace", ws.path().to_str().unwrap()];
    let local = support::disagg(
        &[&["plan", case.to_str().unwrap()][..], &ws_arg].concat(),
        &[],
    );
    assert!(
        local
            .stdout()
            .contains("engine:    trtllm-serve tiny --host")
            && !local.stdout().contains("trtllm-llmapi-launch"),
        "{}",
        local.show()
    );
    let slurm = support::disagg(
        &[
            &["plan", case.to_str().unwrap(), "--launcher", "slurm"][..],
            &ws_arg,
        ]
        .concat(),
        &[],
    );
    assert!(
        slurm
            .stdout()
            .contains("(on each of 2 ranks): trtllm-llmapi-launch trtllm-serve tiny "),
        "{}",
        slurm.show()
    );
    // The wrapper on one machine: the sim fails as the engine would, naming why.
    let lone = support::disagg(
        &[
            "sim",
            "--",
            "trtllm-llmapi-launch",
            "trtllm-serve",
            "tiny",
            "--port",
            "0",
            "--extra_llm_api_options",
            dir.join("ctx_config.yaml").to_str().unwrap(),
        ],
        &[("CUDA_VISIBLE_DEVICES", "0,1")],
    );
    assert_ne!(lone.code(), 0, "{}", lone.show());
    assert!(
        lone.stderr()
            .contains("finds an MPI world of 1 process(es) (neither SLURM_NTASKS nor OMPI_COMM_WORLD_SIZE is set), but the server has 2 rank(s)"),
        "{}",
        lone.show()
    );
}

/// A GPU binding that gives a worker fewer GPUs than its engine drives fails the run at start,
/// as the engine would: here a `vllm` that sees only the first of its two planned GPUs.
#[test]
fn a_worker_that_sees_fewer_gpus_than_its_engine_drives_fails_at_start_naming_them() {
    use std::os::unix::fs::PermissionsExt;
    let ws = TempDir::new("vllm-gpus");
    let path = stand_ins(ws.path());
    let narrow = ws.path().join("narrow");
    std::fs::create_dir_all(&narrow).unwrap();
    let vllm = narrow.join("vllm");
    std::fs::write(
        &vllm,
        format!(
            "#!/bin/sh\nCUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES%%,*}} exec '{DISAGG}' sim -- vllm \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&vllm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{path}", narrow.display());
    let r = run(&example("vllm.yaml"), ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-1p1d");
    let status = json(&dir.join("rendezvous/status.json"));
    let role = status["role"].as_str().unwrap_or_default().to_string();
    assert!(role == "CTX_0" || role == "GEN_0", "{status}");
    let log = read(&dir.join(if role == "CTX_0" {
        "ctx_server_0.log"
    } else {
        "gen_server_0.log"
    }));
    assert!(
        log.contains("shows 1 GPU(s), but this process needs 2: --tensor-parallel-size 2"),
        "{log}"
    );
}

/// vLLM workers started with an API key (`engine_args: {api_key: ...}` → `--api-key`) refuse
/// any request without it, as vLLM does. With `OPENAI_API_KEY` in the benchmark's env (what
/// benchmark_serving reads) every request carries it and the router carries it on to both
/// legs; without, the run fails at its canary on the workers' 401.
#[test]
fn vllm_workers_with_an_api_key_are_served_when_the_benchmark_has_it() {
    let ws = TempDir::new("vllm-key");
    let path = stand_ins(ws.path());
    let example_text = read(&example("vllm.yaml"));
    let keyed = example_text
        .replace(
            "engine_args: {max_model_len: 8192, enforce_eager: true, gpu_memory_utilization: 0.85}",
            "engine_args: {max_model_len: 8192, api_key: sk-test}",
        )
        .replace(
            "    max_model_len: 8192\n    kv_transfer_config:",
            "    max_model_len: 8192\n    api_key: sk-test\n    kv_transfer_config:",
        )
        .replace(
            "benchmark: {isl: 1024, osl: 256, concurrency: [16, 64]}",
            "benchmark: {isl: 64, osl: 4, concurrency: [2], rounds: 2}",
        );
    assert_eq!(keyed.matches("api_key: sk-test").count(), 2, "{keyed}");
    let without = ws.path().join("without.yaml");
    std::fs::write(
        &without,
        keyed.replace("name: vllm-1p1d", "name: vllm-nokey"),
    )
    .unwrap();
    let r = run(&without, ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let bench = read(&only_run(ws.path(), "vllm-nokey").join("benchmark.log"));
    assert!(
        bench.contains("canary") && bench.contains("http_401"),
        "{bench}"
    );
    let with = ws.path().join("with.yaml");
    std::fs::write(
        &with,
        format!("{keyed}env: {{benchmark: {{OPENAI_API_KEY: sk-test}}}}\n"),
    )
    .unwrap();
    let r = run(&with, ws.path(), &[], &[("PATH", &path)]);
    assert_eq!(r.code(), 0, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-1p1d");
    assert!(
        read(&dir.join("ctx_server_0.log")).contains("--api-key sk-test"),
        "the engine was started with the key"
    );
}

/// A vLLM prefill storing its KV cache as fp8 and a decode storing it at the model's dtype:
/// real vLLM refuses the NIXL handshake (their compatibility hashes differ), so the sim in its
/// place refuses the hand-off and the run fails naming the setting; the same pair with one KV
/// cache dtype passes. Before, the sim took any KV, and such a case passed here and failed on
/// GPUs.
#[test]
fn a_prefill_and_decode_of_different_kv_cache_dtypes_fail_the_run_as_vllm_does() {
    let case_of = |ws: &Path, ctx_dtype: &str, gen_dtype: &str| {
        let argv = |dtype: &str| {
            format!(
                r#"{{argv: ["{{disagg}}", sim, --itl, 1ms, --side-channel-port, "{{side_channel_port}}", --, vllm, serve, "{{model}}", --host, "{{host}}", --port, "{{port}}", --kv-cache-dtype, {dtype}, --kv-transfer-config, '{{"kv_connector":"NixlConnector","kv_role":"kv_both"}}']}}"#
            )
        };
        let case = ws.join("c.yaml");
        std::fs::write(
            &case,
            format!(
                "name: vllm-kv\nmodel: {{name: llama}}\nengine: command\nrouter: {{dialect: vllm}}\nhardware: {{gpus_per_node: 2}}\nctx: {{count: 1, engine_args: {}}}\ngen: {{count: 1, engine_args: {}}}\nbenchmark: {{isl: 16, osl: 4, concurrency: [1], rounds: 1}}\ntimeouts: {{worker_startup: 30s, request: 10s, benchmark: 1m, job: 2m}}\n",
                argv(ctx_dtype),
                argv(gen_dtype),
            ),
        )
        .unwrap();
        case
    };
    let ws = TempDir::new("vllm-kv-dtype");
    let r = run(&case_of(ws.path(), "fp8", "auto"), ws.path(), &[], &[]);
    assert_eq!(r.code(), 1, "{}", r.show());
    let dir = only_run(ws.path(), "vllm-kv");
    let status = json(&dir.join("rendezvous/status.json"));
    let reason = status["reason"].as_str().unwrap_or_default();
    let needle = "KV cache dtype is fp8, this worker's is auto (--kv-cache-dtype)";
    assert!(
        reason.contains(&format!(
            "KV hand-off refused for remote_block_ids starting at 1: the context worker's {needle}"
        )),
        "the run's reason names both values and the flag: {status}\n{}",
        r.show()
    );
    let gen_log = read(&dir.join("gen_server_0.log"));
    assert!(
        gen_log.contains(&format!("{needle}; prefill and decode must store KV alike (vLLM: NIXL compatibility hash mismatch)")),
        "the decode says why, in vLLM's words too: {gen_log}"
    );

    let ws = TempDir::new("vllm-kv-dtype-same");
    let r = run(&case_of(ws.path(), "fp8", "fp8"), ws.path(), &[], &[]);
    assert_eq!(r.code(), 0, "{}", r.show());
}
