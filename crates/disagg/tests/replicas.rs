//! `router.replicas: N`: N router processes, each with its own log, config file and "stayed up"
//! testcase; the benchmark spreads its requests over all of them, and the death of any one fails
//! the run at once, naming it. Real processes over loopback.

mod support;

use std::time::Duration;

use support::*;

const REPLICAS: u32 = 3;

/// "served 14 client requests (...)" in a router replica's log: what it carried.
fn served(log: &str) -> Option<u64> {
    let at = log.rfind(": served ")?;
    log[at + ": served ".len()..]
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn three_router_replicas_share_the_load_each_with_its_own_log_config_and_testcase() {
    let ws = TempDir::new("replicas");
    let case = CaseSpec {
        name: "replicas",
        concurrency: "[3]",
        rounds: 4,
        extra: "router: {replicas: 3}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let ran = run(&case, ws.path(), &[], &[]);
    assert_eq!(ran.code(), 0, "{}", ran.show());
    let dir = only_run(ws.path(), "replicas");
    assert!(!dir.join("disagg_server.log").exists());
    assert!(!dir.join("server_config.yaml").exists());
    let mut ports = Vec::new();
    let mut total = 0;
    for i in 0..REPLICAS {
        let role = format!("DISAGG_SERVER_{i}");
        let ep = json(&dir.join(format!("rendezvous/{role}.json")));
        ports.push(ep["port"].as_u64().unwrap());
        let config = read(&dir.join(format!("server_config_{i}.yaml")));
        assert!(
            config.contains(&format!("port: {}", ports[i as usize])),
            "{role}'s config names its own port: {config}"
        );
        let log = read(&dir.join(format!("disagg_server_{i}.log")));
        let n = served(&log).unwrap_or_else(|| panic!("{role} says what it served: {log}"));
        // Its canary, its warm-up (warmup: 1 warms each router), and its share of the 12
        // measured requests (round robin: 4 each).
        let (canary, warmup, share) = (1, 1, 4);
        assert_eq!(n, canary + warmup + share, "{role} served {n}: {log}");
        total += n;
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), REPLICAS as usize, "one port per replica");
    // 3 canaries, 3 warm-ups, 12 measured requests: every request went through one router.
    assert_eq!(total, 3 + 3 + 12);
    let requests = read(&dir.join("bench/requests.jsonl"));
    for i in 0..REPLICAS as u64 {
        let on_i = requests
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["url_index"] == i)
            .count();
        assert_eq!(on_i, 4, "router {i}'s share of the measured requests");
    }
    let cases = junit_cases(&dir.join("results.xml"));
    for i in 0..REPLICAS {
        let name = format!("DISAGG_SERVER_{i} stayed up");
        let c = cases.iter().find(|c| c.0 == name);
        assert!(c.is_some_and(|c| c.1.is_none()), "{name}: {cases:?}");
    }
    assert!(!cases.iter().any(|c| c.0 == "DISAGG_SERVER stayed up"));
    assert_nothing_left(&dir);
}

#[test]
fn killing_one_replica_fails_the_run_within_5s_naming_it() {
    let ws = TempDir::new("replica-kill");
    let case = CaseSpec {
        name: "replica-kill",
        gen_args: "{itl: 20ms}",
        concurrency: "[3]",
        rounds: 200,
        osl: 32,
        extra: "router: {replicas: 3}\n",
        ..Default::default()
    }
    .write(ws.path(), "c.yaml");
    let run = Background::start(&case, ws.path());
    let dir = wait_for(ws.path(), "replica-kill", "the sweep", |d| {
        std::fs::read_to_string(d.join("benchmark.log")).is_ok_and(|l| l.contains("canary passed"))
    });
    // The in-process router: the replica's published pid is its role process.
    let pid = json(&dir.join("rendezvous/DISAGG_SERVER_1.json"))["pid"]
        .as_i64()
        .unwrap();
    let (code, took, stdout, stderr) = kill_and_wait(pid as u32, run);
    let show = format!("exit {code} after {took:?}\n{stdout}\n{stderr}");
    assert_eq!(code, 1, "{show}");
    assert!(took < Duration::from_secs(5), "{show}");
    let status = json(&dir.join("rendezvous/status.json"));
    assert_eq!(status["role"], "DISAGG_SERVER_1", "{status}");
    let reason = status["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("DISAGG_SERVER_1 was killed by signal 9"),
        "{status}"
    );
    // In the sweep: the benchmark's own failure is the echo, not the canary.
    assert!(!reason.contains("canary"), "{status}");
    assert!(stdout.contains("DISAGG_SERVER_1"), "{show}");
    let cases = junit_cases(&dir.join("results.xml"));
    let stayed_up = |i: u32| {
        cases
            .iter()
            .find(|c| c.0 == format!("DISAGG_SERVER_{i} stayed up"))
            .unwrap_or_else(|| panic!("no testcase for DISAGG_SERVER_{i}: {cases:?}"))
    };
    assert!(
        stayed_up(1)
            .1
            .as_deref()
            .unwrap_or("")
            .contains("killed by signal 9"),
        "{cases:?}"
    );
    for i in [0, 2] {
        assert!(
            stayed_up(i).1.is_none(),
            "only replica 1 is blamed: {cases:?}"
        );
    }
    assert_nothing_left(&dir);
}
