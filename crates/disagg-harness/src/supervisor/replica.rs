//! Which router replica the benchmark's failing requests went through. With several routers
//! that are not ours (no census to ask), a replica that answers `/health` but hangs or fails
//! the requests sent through it is found in the benchmark's own record: each request in
//! `bench/requests.jsonl` carries the index of the router URL it was sent to, which is the
//! replica's index. When every failed request went through one replica, and the requests
//! through the others all succeeded, that replica is the root cause, not the benchmark.

use std::collections::BTreeMap;

use disagg_core::{Plan, RoleName};

/// One request, as much of its record as this needs.
#[derive(serde::Deserialize)]
struct Sent {
    url_index: usize,
    error: Option<String>,
}

/// Per replica: requests, and failed ones by kind.
#[derive(Default)]
struct Tally {
    sent: u64,
    failed: BTreeMap<String, u64>,
}

/// The replica every failed request went through, with its account, when there is one such,
/// and whether its requests only waited out a limit (hung, where others failed).
pub(super) fn suspect(plan: &Plan) -> Option<(RoleName, String, bool)> {
    let replicas = plan.routers().count();
    if replicas < 2 {
        return None;
    }
    let text = std::fs::read_to_string(plan.run_dir.join("bench").join("requests.jsonl")).ok()?;
    let mut tally: BTreeMap<usize, Tally> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(s) = serde_json::from_str::<Sent>(line) else {
            continue;
        };
        let t = tally.entry(s.url_index).or_default();
        t.sent += 1;
        if let Some(kind) = s.error {
            *t.failed.entry(kind).or_default() += 1;
        }
    }
    let failing: Vec<(&usize, &Tally)> =
        tally.iter().filter(|(_, t)| !t.failed.is_empty()).collect();
    let &[(&index, bad)] = failing.as_slice() else {
        return None;
    };
    let others: u64 = tally
        .iter()
        .filter(|(i, _)| **i != index)
        .map(|(_, t)| t.sent)
        .sum();
    if others == 0 || index >= replicas {
        return None;
    }
    let role = RoleName::DisaggServer(Some(index as u32));
    let hung = bad
        .failed
        .keys()
        .all(|k| matches!(k.as_str(), "timeout" | "stalled" | "http_504"));
    let failed: u64 = bad.failed.values().sum();
    let kinds: Vec<String> = bad
        .failed
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    Some((
        role,
        format!(
            "{role} failed {failed} of the {} request(s) sent through it ({}), where the {others} \
             sent through the other replicas all succeeded (bench/requests.jsonl: url_index \
             {index})",
            bad.sent,
            kinds.join(", ")
        ),
        hung,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(url_index: usize, error: Option<&str>) -> String {
        serde_json::json!({"url_index": url_index, "error": error, "index": 0}).to_string()
    }

    #[test]
    fn the_one_replica_all_failures_went_through_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = "model: {name: m}\nengine: sim\nctx: {count: 1}\ngen: {count: 1}\n\
                    router: {replicas: 3}\nbenchmark: {isl: 8, osl: 4}\n";
        let case = disagg_core::parse_case(text, std::path::Path::new("case.yaml")).unwrap();
        let plan = disagg_core::plan::build(&case, "RUN1", dir.path(), "disagg".as_ref());
        std::fs::create_dir_all(dir.path().join("bench")).unwrap();
        let write = |lines: Vec<String>| {
            std::fs::write(dir.path().join("bench/requests.jsonl"), lines.join("\n")).unwrap()
        };
        write(vec![
            line(0, None),
            line(1, Some("timeout")),
            line(2, None),
            line(0, None),
            line(1, Some("timeout")),
            line(2, None),
        ]);
        let (role, why, hung) = suspect(&plan).expect("replica 1");
        assert_eq!(role, RoleName::DisaggServer(Some(1)));
        assert!(hung, "its requests only timed out");
        assert!(
            why.contains("failed 2 of the 2 request(s) sent through it (timeout: 2)")
                && why.contains("the 4 sent through the other replicas all succeeded"),
            "{why}"
        );
        // A replica that answered errors failed, it did not hang.
        write(vec![
            line(0, None),
            line(1, Some("http_500")),
            line(2, None),
        ]);
        assert!(!suspect(&plan).expect("replica 1").2);
        // Failures through two replicas: no one replica to blame.
        write(vec![
            line(0, Some("timeout")),
            line(1, Some("timeout")),
            line(2, None),
        ]);
        assert_eq!(suspect(&plan), None);
        // Nothing sent through the others: nothing to compare with.
        write(vec![line(1, Some("timeout"))]);
        assert_eq!(suspect(&plan), None);
    }
}
