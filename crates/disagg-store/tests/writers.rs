//! Many processes recording into one store at once (several Slurm jobs finishing together):
//! every row is there and reads back as written, none corrupt. Against SQLite always, and
//! against PostgreSQL when `DISAGG_TEST_POSTGRES` names one (CI starts one; under
//! `DISAGG_REQUIRE_SLURM=1` its absence fails the test).

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use disagg_store::{CheckRecord, Group, PointRecord, RunRecord, Store, Versions};
use support::postgres_url;

mod support;

const WRITERS: usize = 8;
const RUNS_EACH: usize = 20;
const METRICS: [&str; 6] = [
    "SEQ_THROUGHPUT",
    "TOKEN_THROUGHPUT",
    "USER_THROUGHPUT",
    "MEDIAN_TTFT",
    "P99_TTFT",
    "OUTPUT_THROUGHPUT_PER_GPU",
];

/// The run writer `w` records as its `i`th: every value derived from (w, i).
fn record(tag: &str, w: usize, i: usize) -> RunRecord {
    let points = [1u32, 8]
        .iter()
        .map(|&c| PointRecord {
            label: format!("con{c}"),
            concurrency: Some(c),
            request_rate: None,
            valid: true,
            metrics: METRICS
                .iter()
                .enumerate()
                .map(|(k, m)| {
                    (
                        m.to_string(),
                        (w * 1000 + i * 10 + k) as f64 + c as f64 / 8.0,
                    )
                })
                .collect(),
            json: format!("{{\"writer\": {w}, \"run\": {i}, \"concurrency\": {c}}}"),
        })
        .collect();
    RunRecord {
        run_id: format!("{i}"),
        config_name: format!("{tag}-w{w}"),
        case_hash: format!("hash-{tag}-{w}"),
        run_dir: format!("/ws/{tag}/w{w}/{i}"),
        sweep: None,
        recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i as u64),
        verdict: "passed".into(),
        exit_code: 0,
        engine: "sim".into(),
        versions: Versions {
            disagg: "0.1.0".into(),
            engine: None,
            gpu_model: None,
        },
        ctx: Group {
            servers: 1,
            gpus_per_server: 1,
        },
        generation: Group {
            servers: 2,
            gpus_per_server: 2,
        },
        topology: "ctx1×tp1 gen2×tp2".into(),
        perf_verdict: "no baseline".into(),
        launcher: disagg_store::Launcher::Local,
        points,
        checks: vec![CheckRecord {
            point: "con8".into(),
            metric: "TOKEN_THROUGHPUT".into(),
            baseline: Some(100.0),
            band: Some(0.05),
            measured: Some(w as f64),
            verdict: "ok".into(),
            source: "history".into(),
        }],
    }
}

/// Run by [`eight_writers`] in each child process.
#[test]
#[ignore = "a child process of the concurrent-writer tests, not a test on its own"]
fn writer_child() {
    let location = std::env::var("DISAGG_STORE_TEST_LOCATION").unwrap();
    let tag = std::env::var("DISAGG_STORE_TEST_TAG").unwrap();
    let w: usize = std::env::var("DISAGG_STORE_TEST_WRITER")
        .unwrap()
        .parse()
        .unwrap();
    let start: u64 = std::env::var("DISAGG_STORE_TEST_START")
        .unwrap()
        .parse()
        .unwrap();
    // Everyone opens and writes at the same instant.
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(start);
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let mut store = Store::open(&location).expect("the store opens");
    for i in 0..RUNS_EACH {
        store
            .record(&record(&tag, w, i))
            .expect("a run is recorded");
    }
}

fn eight_writers(location: &str, tag: &str) {
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let mut children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "writer_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DISAGG_STORE_TEST_LOCATION", location)
                .env("DISAGG_STORE_TEST_TAG", tag)
                .env("DISAGG_STORE_TEST_WRITER", w.to_string())
                .env("DISAGG_STORE_TEST_START", start.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(120);
    for (w, c) in children.iter_mut().enumerate() {
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                let out = c.wait_with_output_ref();
                assert!(st.success(), "writer {w} failed: {out}");
                break;
            }
            if Instant::now() > until {
                let _ = c.kill();
                let _ = c.wait();
                panic!("writer {w} did not finish in 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut store = Store::open(location).unwrap();
    assert_eq!(store.integrity().unwrap(), "ok");
    for w in 0..WRITERS {
        let runs = store.runs_of(&format!("{tag}-w{w}")).unwrap();
        assert_eq!(runs.len(), RUNS_EACH, "writer {w}'s runs");
        for (i, run) in runs.iter().enumerate() {
            let want = record(tag, w, i);
            assert_eq!(run.run_dir, want.run_dir);
            assert_eq!(run.gpus(), 5);
            assert_eq!(run.topology, want.topology);
            let points = store.points_of(run.id).unwrap();
            assert_eq!(points.len(), 2);
            for (got, want) in points.iter().zip(&want.points) {
                assert_eq!(got.label, want.label);
                assert_eq!(got.json, want.json);
                let mut metrics = want.metrics.clone();
                metrics.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(got.metrics, metrics, "writer {w} run {i}");
            }
            assert_eq!(store.checks_of(run.id).unwrap(), want.checks);
        }
    }
}

trait OutputRef {
    fn wait_with_output_ref(&mut self) -> String;
}

impl OutputRef for std::process::Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(o) = self.stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(e) = self.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

fn unique_tag() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn eight_processes_record_into_one_sqlite_store_at_once() {
    let dir = tempfile::Builder::new()
        .prefix("disagg-store-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("disagg_results.sqlite");
    eight_writers(path.to_str().unwrap(), "sq");
    let mut store = Store::open(path.to_str().unwrap()).unwrap();
    let [runs, points, metrics, checks] = store.counts().unwrap();
    let n = (WRITERS * RUNS_EACH) as i64;
    assert_eq!(
        (runs, points, metrics, checks),
        (n, 2 * n, 2 * n * METRICS.len() as i64, n)
    );
    // Recording a run folder again replaces it rather than adding a second copy.
    store.record(&record("sq", 0, 0)).unwrap();
    assert_eq!(store.counts().unwrap(), [runs, points, metrics, checks]);
    drop(store);
}

#[test]
fn eight_processes_record_into_one_postgres_store_at_once() {
    let Some(url) = postgres_url() else { return };
    let tag = unique_tag();
    eight_writers(&url, &tag);
    let mut store = Store::open(&url).unwrap();
    let before = store.counts().unwrap();
    store.record(&record(&tag, 0, 0)).unwrap();
    assert_eq!(store.counts().unwrap(), before, "re-recording replaces");
}

/// A PostgreSQL store of the first schema (no `meta`, no launcher columns) is brought to the
/// current one when opened, its runs kept; in a schema of its own, so other tests' stores are
/// not touched.
#[test]
fn a_postgres_store_of_the_first_schema_is_brought_up_to_date() {
    let Some(url) = postgres_url() else { return };
    let schema = format!("disagg_v1_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.runs (id BIGSERIAL PRIMARY KEY, run_dir TEXT NOT NULL UNIQUE,
               run_id TEXT NOT NULL, config_name TEXT NOT NULL, case_hash TEXT NOT NULL,
               sweep TEXT, recorded_at TEXT NOT NULL, verdict TEXT NOT NULL,
               exit_code BIGINT NOT NULL, disagg_version TEXT NOT NULL, engine TEXT NOT NULL,
               engine_version TEXT, gpu_model TEXT, ctx_servers BIGINT NOT NULL,
               ctx_gpus_per_server BIGINT NOT NULL, gen_servers BIGINT NOT NULL,
               gen_gpus_per_server BIGINT NOT NULL, gpus BIGINT NOT NULL, topology TEXT NOT NULL,
               perf_verdict TEXT NOT NULL);
             INSERT INTO {schema}.runs (run_dir, run_id, config_name, case_hash, recorded_at,
               verdict, exit_code, disagg_version, engine, ctx_servers, ctx_gpus_per_server,
               gen_servers, gen_gpus_per_server, gpus, topology, perf_verdict)
               VALUES ('/ws/old', 'r', 'old', 'h', '2026-12-01T00:00:00.000Z', 'passed', 0,
               '0.1.0', 'sim', 1, 1, 1, 1, 2, 't', 'passed');"
        ))
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let location = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let result = std::panic::catch_unwind(|| {
        let mut store = Store::open(&location).unwrap();
        let mut run = record("v1", 0, 0);
        run.launcher = disagg_store::Launcher::Slurm(Some("4242".into()));
        store.record(&run).unwrap();
        let runs = store.all_runs().unwrap();
        let launchers: Vec<_> = runs.iter().map(|r| r.launcher.clone()).collect();
        assert_eq!(
            launchers,
            [
                None,
                Some(disagg_store::Launcher::Slurm(Some("4242".into())))
            ]
        );
        // Opened again: nothing to do, the same runs.
        assert_eq!(Store::open(&location).unwrap().all_runs().unwrap(), runs);
    });
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
