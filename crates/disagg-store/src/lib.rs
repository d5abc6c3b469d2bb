//! The results store: every run, point, metric and perf check, in SQLite or PostgreSQL.
//!
//! ```text
//! runs    one row per run folder: config name, case hash, run id, verdict, exit code,
//!         versions (disagg, engine, GPU model), GPUs per role, topology
//!  └ points   one row per measured point (label, concurrency, rate, valid, the point's JSON)
//!     └ metrics  one row per metric of a point (TOKEN_THROUGHPUT, MEDIAN_TTFT, ...)
//!  └ checks   one row per perf-check verdict (point, metric, baseline, band, measured, verdict)
//! ```
//!
//! The embedded default is one SQLite file in the workspace (`disagg_results.sqlite`, built in:
//! no system library), opened in WAL mode with a busy timeout, each run recorded in one
//! `BEGIN IMMEDIATE` transaction, so many processes on one machine may record at once. For a
//! team, or runs finishing on several nodes, `DISAGG_STORE=postgresql://...` names a PostgreSQL
//! database with the same schema (SQLite's WAL needs one machine's shared memory; a network
//! filesystem is no place for it).
//!
//! Every SQL statement is written once, with `?` parameters; [`Conn`] adapts it to each
//! backend.

mod conn;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use conn::Val;
use conn::{Conn, get_f, get_i, get_t};

/// The SQLite file of a workspace.
pub const SQLITE_FILE: &str = "disagg_results.sqlite";
/// The environment variable naming a store.
pub const STORE_ENV: &str = "DISAGG_STORE";

/// A store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("results store {store}: {message}")]
    Open { store: String, message: String },
    #[error("results store {store}: {message}")]
    Query { store: String, message: String },
}

/// How many GPUs a role group has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Group {
    pub servers: u32,
    pub gpus_per_server: u32,
}

impl Group {
    pub fn gpus(&self) -> u32 {
        self.servers * self.gpus_per_server
    }
}

/// What is known of the software and hardware a run used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Versions {
    pub disagg: String,
    /// As the engine reported it, when it did.
    pub engine: Option<String>,
    /// The GPU model, when `nvidia-smi` answered.
    pub gpu_model: Option<String>,
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run_id: String,
    pub config_name: String,
    pub case_hash: String,
    /// The run folder: unique; recording it again replaces the earlier record.
    pub run_dir: String,
    /// The sweep it was a point of.
    pub sweep: Option<String>,
    pub recorded_at: SystemTime,
    /// `passed`, `regressed`, `failed` or `interrupted`.
    pub verdict: String,
    pub exit_code: i32,
    pub engine: String,
    pub versions: Versions,
    pub ctx: Group,
    pub generation: Group,
    /// e.g. `ctx2×tp1 gen1×tp2`.
    pub topology: String,
    /// The perf check's verdict: `passed`, `regressed`, `skipped: ...`, `no baseline`, ...
    pub perf_verdict: String,
    pub launcher: Launcher,
    pub points: Vec<PointRecord>,
    pub checks: Vec<CheckRecord>,
}

/// One measured point of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    /// `con8`, `rate2.5`.
    pub label: String,
    pub concurrency: Option<u32>,
    pub request_rate: Option<f64>,
    pub valid: bool,
    /// Metric name → value.
    pub metrics: Vec<(String, f64)>,
    /// The point as `results.json` has it, for reports.
    pub json: String,
}

/// One verdict of a perf check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    pub point: String,
    pub metric: String,
    pub baseline: Option<f64>,
    /// The relative band a change must leave to count (a fraction).
    pub band: Option<f64>,
    pub measured: Option<f64>,
    pub verdict: String,
    /// `csv` or `history`.
    pub source: String,
}

/// A run read back (without its points).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    pub id: i64,
    pub run_id: String,
    pub config_name: String,
    pub case_hash: String,
    pub run_dir: String,
    pub sweep: Option<String>,
    pub recorded_at: String,
    pub verdict: String,
    pub exit_code: i32,
    pub engine: String,
    pub versions: Versions,
    pub ctx: Group,
    pub generation: Group,
    pub topology: String,
    pub perf_verdict: String,
    /// `None` for runs recorded before the store kept it (schema version 1).
    pub launcher: Option<Launcher>,
}

/// How a run's roles were launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// As processes on the machine `disagg run` ran on.
    Local,
    /// As a Slurm job, with its id when it was submitted.
    Slurm(Option<String>),
}

impl Launcher {
    /// The `launcher` column: `local` or `slurm`.
    pub fn name(&self) -> &'static str {
        match self {
            Launcher::Local => "local",
            Launcher::Slurm(_) => "slurm",
        }
    }

    /// The `slurm_job` column.
    pub fn slurm_job(&self) -> Option<&str> {
        match self {
            Launcher::Slurm(job) => job.as_deref(),
            Launcher::Local => None,
        }
    }

    fn from_columns(name: Option<String>, job: Option<String>) -> Option<Self> {
        match name.as_deref()? {
            "slurm" => Some(Launcher::Slurm(job)),
            _ => Some(Launcher::Local),
        }
    }
}

impl std::fmt::Display for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Launcher::Local => f.write_str("local"),
            Launcher::Slurm(Some(job)) => write!(f, "slurm job {job}"),
            Launcher::Slurm(None) => f.write_str("slurm"),
        }
    }
}

impl StoredRun {
    pub fn gpus(&self) -> u32 {
        self.ctx.gpus() + self.generation.gpus()
    }

    /// Whether the history gate may take this run as a reference: it passed (exit code 0) and
    /// its own perf check was on and did not fail it: the check ran and passed
    /// ([`PERF_PASSED`]), or it was a history check with too few earlier runs to compare with
    /// ([`PERF_TOO_FEW_RUNS`]: how a history starts, since nothing could check the first runs),
    /// or a history check that passed what it could gate and found some metric's history too
    /// noisy to gate ([`PERF_TOO_NOISY`]: else a noisy history could not be replaced by new runs
    /// until it left the window). A run whose check was turned off (`SKIP_PERF_CHECK`), or
    /// could not be made, is never one.
    pub fn is_reference(&self) -> bool {
        // Accepted as the new baseline (`disagg history --accept`): a regression someone meant.
        if self.is_accepted() {
            return matches!(self.exit_code, 0 | 3);
        }
        self.exit_code == 0
            && (self.perf_verdict == PERF_PASSED
                || self.perf_verdict.starts_with(PERF_TOO_FEW_RUNS)
                || self.perf_verdict.starts_with(PERF_TOO_NOISY)
                // Recorded before these words: the too-few-runs skip.
                || self.perf_verdict.starts_with("skipped: only "))
    }
}

impl StoredRun {
    /// Whether someone accepted it as its case's new baseline: the history gate takes it, and
    /// the runs after it, as references, and none before it.
    pub fn is_accepted(&self) -> bool {
        self.perf_verdict.starts_with(PERF_ACCEPTED)
    }
}

/// The start of an accepted run's `perf_verdict` (its own verdict follows).
pub const PERF_ACCEPTED: &str = "accepted as the new baseline; its check said: ";

/// A run's `perf_verdict` when its perf check ran and passed.
pub const PERF_PASSED: &str = "passed";
/// The start of a run's `perf_verdict` when its history check had too few earlier runs.
pub const PERF_TOO_FEW_RUNS: &str = "skipped (too few runs)";
/// The start of a run's `perf_verdict` when its history check regressed nothing it could gate
/// and found some metric's history too noisy to gate.
pub const PERF_TOO_NOISY: &str = "passed (too noisy to gate";

/// A stored point with its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub run: i64,
    pub label: String,
    pub concurrency: Option<u32>,
    pub request_rate: Option<f64>,
    pub valid: bool,
    pub metrics: Vec<(String, f64)>,
    pub json: String,
}

/// An open store.
pub struct Store {
    conn: Conn,
    name: String,
    /// The schema's version: [`conn::SCHEMA_VERSION`], or an older one when the store could
    /// only be read, or a newer one when a newer disagg wrote it.
    version: i64,
}

/// RFC 3339 UTC with milliseconds: sorts as text in both backends.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Where a workspace's runs are recorded: `DISAGG_STORE` when set, else the workspace's SQLite
/// file.
pub fn default_location(workspace: &Path) -> String {
    match std::env::var(STORE_ENV) {
        Ok(s) if !s.trim().is_empty() => s,
        _ => workspace.join(SQLITE_FILE).display().to_string(),
    }
}

/// A `postgres://` or `postgresql://` URL (else a SQLite file path, `sqlite://` optional).
fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The scheme of a location that looks like a URL of another kind (`postgresq://`, `mysql://`):
/// refused, where it would be taken for a SQLite path and make folders named after the URL,
/// password and all.
fn unknown_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once("://")?;
    let url_like = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    (url_like && !matches!(scheme, "postgres" | "postgresql" | "sqlite")).then_some(scheme)
}

/// The SQLite file a location names (`sqlite://` optional).
fn sqlite_file(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("sqlite://").unwrap_or(location))
}

/// A location naming a SQLite file by a relative path, made absolute against the current folder
/// (`sqlite://` kept); `None` for a URL, an absolute path, or a path that cannot be resolved.
/// A relative `DISAGG_STORE` is read from the folder `disagg` started in, but a Slurm job runs
/// in its run folder: resolved once, at start, it names the same file everywhere.
pub fn absolute_location(location: &str) -> Option<String> {
    let trimmed = location.trim();
    if trimmed.is_empty() || is_url(trimmed) || unknown_scheme(trimmed).is_some() {
        return None;
    }
    let file = sqlite_file(trimmed);
    if file.is_absolute() {
        return None;
    }
    let abs = std::path::absolute(&file).ok()?;
    let prefix = if trimmed.starts_with("sqlite://") {
        "sqlite://"
    } else {
        ""
    };
    Some(format!("{prefix}{}", abs.display()))
}

/// Whether the workspace's store ([`default_location`]) is there to open without making one: a
/// URL names a server, a SQLite file must exist.
pub fn default_exists(workspace: &Path) -> bool {
    let location = default_location(workspace);
    is_url(&location) || unknown_scheme(&location).is_some() || sqlite_file(&location).exists()
}

impl Store {
    /// Opens (and creates, for SQLite) the store `location`: a `postgres://` or
    /// `postgresql://` URL, or a SQLite file path (`sqlite://` optional).
    pub fn open(location: &str) -> Result<Self, StoreError> {
        if let Some(scheme) = unknown_scheme(location) {
            return Err(StoreError::Open {
                store: redact(location),
                message: format!(
                    "`{scheme}://` is no store disagg knows: a results store is a postgresql:// \
                     (or postgres://) URL, or a SQLite file path (sqlite:// optional)"
                ),
            });
        }
        let conn = if is_url(location) {
            Conn::postgres(location)
        } else {
            Conn::sqlite(&sqlite_file(location))
        }
        .map_err(|message| StoreError::Open {
            store: redact(location),
            message,
        })?;
        let mut store = Store {
            conn,
            name: redact(location),
            version: conn::SCHEMA_VERSION,
        };
        store.version = store.conn.create_schema().map_err(|m| store.query_err(m))?;
        Ok(store)
    }

    /// The workspace's store ([`default_location`]).
    pub fn open_default(workspace: &Path) -> Result<Self, StoreError> {
        Self::open(&default_location(workspace))
    }

    /// The workspace's store for reading only: a SQLite file that does not exist is an error
    /// (no run was recorded there), not a new empty store and a new workspace folder; one in a
    /// folder this process cannot write is read as it is.
    pub fn open_default_existing(workspace: &Path) -> Result<Self, StoreError> {
        let location = default_location(workspace);
        if !default_exists(workspace) {
            return Err(StoreError::Open {
                store: redact(&location),
                message: format!(
                    "no such file: no run has been recorded in this workspace\nhint: name the \
                     workspace the runs used (--workspace, else $WORKSPACE, else ./workspace), \
                     or the store in ${STORE_ENV}"
                ),
            });
        }
        match Self::open(&location) {
            // A SQLite store in a folder this process cannot write: read it as it is.
            Err(e) if !is_url(&location) => match Conn::sqlite_read_only(&sqlite_file(&location)) {
                Ok(conn) => Ok(Store::read_only(conn, redact(&location))),
                Err(_) => Err(e),
            },
            opened => opened,
        }
    }

    /// A store opened for reading only, as its schema is.
    fn read_only(mut conn: Conn, name: String) -> Self {
        Store {
            version: conn.schema_version().unwrap_or(1),
            conn,
            name,
        }
    }

    /// The store's name for messages (passwords removed).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn query_err(&self, message: String) -> StoreError {
        StoreError::Query {
            store: self.name.clone(),
            message,
        }
    }

    /// Records a run, its points, their metrics and its checks, in one transaction; a run folder
    /// recorded before is replaced. Returns the run's row id.
    pub fn record(&mut self, r: &RunRecord) -> Result<i64, StoreError> {
        if self.version > conn::SCHEMA_VERSION {
            return Err(self.query_err(format!(
                "a newer disagg keeps it (its schema is version {}, this disagg {} knows up to \
                 version {}), so this one does not write to it\nhint: use a disagg as new as the \
                 one that recorded the latest runs, or name another store in ${STORE_ENV}",
                self.version,
                env!("CARGO_PKG_VERSION"),
                conn::SCHEMA_VERSION
            )));
        }
        let res = self.conn.transaction(|c| {
            c.exec(
                "DELETE FROM runs WHERE run_dir = ?",
                &[Val::text(&r.run_dir)],
            )?;
            let rows = c.query(
                "INSERT INTO runs (run_dir, run_id, config_name, case_hash, sweep, recorded_at, \
                 verdict, exit_code, disagg_version, engine, engine_version, gpu_model, \
                 ctx_servers, ctx_gpus_per_server, gen_servers, gen_gpus_per_server, gpus, \
                 topology, perf_verdict, launcher, slurm_job) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 RETURNING id",
                &[
                    Val::text(&r.run_dir),
                    Val::text(&r.run_id),
                    Val::text(&r.config_name),
                    Val::text(&r.case_hash),
                    Val::T(r.sweep.clone()),
                    Val::text(&timestamp(r.recorded_at)),
                    Val::text(&r.verdict),
                    Val::int(r.exit_code as i64),
                    Val::text(&r.versions.disagg),
                    Val::text(&r.engine),
                    Val::T(r.versions.engine.clone()),
                    Val::T(r.versions.gpu_model.clone()),
                    Val::int(r.ctx.servers as i64),
                    Val::int(r.ctx.gpus_per_server as i64),
                    Val::int(r.generation.servers as i64),
                    Val::int(r.generation.gpus_per_server as i64),
                    Val::int((r.ctx.gpus() + r.generation.gpus()) as i64),
                    Val::text(&r.topology),
                    Val::text(&r.perf_verdict),
                    Val::text(r.launcher.name()),
                    Val::T(r.launcher.slurm_job().map(str::to_string)),
                ],
            )?;
            let run = get_i(&rows[0], 0)?;
            for p in &r.points {
                let rows = c.query(
                    "INSERT INTO points (run, label, concurrency, request_rate, valid, point_json) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    &[
                        Val::int(run),
                        Val::text(&p.label),
                        Val::I(p.concurrency.map(i64::from)),
                        Val::F(p.request_rate.filter(|r| r.is_finite())),
                        Val::int(p.valid as i64),
                        Val::text(&p.json),
                    ],
                )?;
                let point = get_i(&rows[0], 0)?;
                for (name, value) in &p.metrics {
                    c.exec(
                        "INSERT INTO metrics (point, name, value) VALUES (?, ?, ?)",
                        &[Val::int(point), Val::text(name), Val::F(Some(*value))],
                    )?;
                }
            }
            for k in &r.checks {
                c.exec(
                    "INSERT INTO checks (run, point_label, metric, baseline, band, measured, \
                     verdict, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        Val::int(run),
                        Val::text(&k.point),
                        Val::text(&k.metric),
                        Val::F(k.baseline),
                        Val::F(k.band),
                        Val::F(k.measured),
                        Val::text(&k.verdict),
                        Val::text(&k.source),
                    ],
                )?;
            }
            Ok(run)
        });
        res.map_err(|m| self.query_err(m))
    }

    const RUN_COLUMNS: &'static str = "id, run_id, config_name, case_hash, run_dir, sweep, \
        recorded_at, verdict, exit_code, engine, disagg_version, engine_version, gpu_model, \
        ctx_servers, ctx_gpus_per_server, gen_servers, gen_gpus_per_server, topology, perf_verdict";

    /// The columns of schema version 2 on, as nulls in a store of version 1 (read-only).
    fn launch_columns(&self) -> &'static str {
        if self.version >= 2 {
            "launcher, slurm_job"
        } else {
            "NULL, NULL"
        }
    }

    fn run_from(row: &[Val]) -> Result<StoredRun, String> {
        Ok(StoredRun {
            id: get_i(row, 0)?,
            run_id: get_t(row, 1)?,
            config_name: get_t(row, 2)?,
            case_hash: get_t(row, 3)?,
            run_dir: get_t(row, 4)?,
            sweep: conn::opt_t(row, 5)?,
            recorded_at: get_t(row, 6)?,
            verdict: get_t(row, 7)?,
            exit_code: get_i(row, 8)? as i32,
            engine: get_t(row, 9)?,
            versions: Versions {
                disagg: get_t(row, 10)?,
                engine: conn::opt_t(row, 11)?,
                gpu_model: conn::opt_t(row, 12)?,
            },
            ctx: Group {
                servers: get_i(row, 13)? as u32,
                gpus_per_server: get_i(row, 14)? as u32,
            },
            generation: Group {
                servers: get_i(row, 15)? as u32,
                gpus_per_server: get_i(row, 16)? as u32,
            },
            topology: get_t(row, 17)?,
            perf_verdict: get_t(row, 18)?,
            launcher: Launcher::from_columns(conn::opt_t(row, 19)?, conn::opt_t(row, 20)?),
        })
    }

    fn select_runs(&mut self, filter: &str, params: &[Val]) -> Result<Vec<StoredRun>, StoreError> {
        let sql = format!(
            "SELECT {}, {} FROM runs {filter}",
            Self::RUN_COLUMNS,
            self.launch_columns()
        );
        let rows = self
            .conn
            .query(&sql, params)
            .map_err(|m| self.query_err(m))?;
        rows.iter()
            .map(|r| Self::run_from(r))
            .collect::<Result<_, _>>()
            .map_err(|m| self.query_err(m))
    }

    /// Every run of a config, oldest first.
    pub fn runs_of(&mut self, config: &str) -> Result<Vec<StoredRun>, StoreError> {
        self.select_runs(
            "WHERE config_name = ? ORDER BY recorded_at, id",
            &[Val::text(config)],
        )
    }

    /// The run recorded for a run folder.
    pub fn run_at(&mut self, run_dir: &str) -> Result<Option<StoredRun>, StoreError> {
        Ok(self
            .select_runs("WHERE run_dir = ?", &[Val::text(run_dir)])?
            .into_iter()
            .next())
    }

    /// The last `limit` runs of a case hash recorded at or after `since` that may be a history
    /// gate's reference ([`StoredRun::is_reference`]), newest first, leaving out the run folder
    /// `except`.
    /// Only runs on the same GPU model as `gpu_model` count (`None`: runs where `nvidia-smi`
    /// did not answer either): an A100 runner is not judged against its case's H100 history.
    pub fn reference_runs(
        &mut self,
        case_hash: &str,
        gpu_model: Option<&str>,
        since: SystemTime,
        except: &str,
        limit: usize,
    ) -> Result<Vec<StoredRun>, StoreError> {
        let mut runs = self.select_runs(
            "WHERE case_hash = ? AND exit_code IN (0, 3) AND recorded_at >= ? AND run_dir <> ? \
             ORDER BY recorded_at DESC, id DESC",
            &[
                Val::text(case_hash),
                Val::text(&timestamp(since)),
                Val::text(except),
            ],
        )?;
        runs.retain(|r| r.is_reference() && r.versions.gpu_model.as_deref() == gpu_model);
        // The newest accepted run starts the history: none before it counts.
        if let Some(i) = runs.iter().position(StoredRun::is_accepted) {
            runs.truncate(i + 1);
        }
        runs.truncate(limit);
        Ok(runs)
    }

    /// Accepts the run `run_id` of `config` (its newest record of that id) as its case's new
    /// baseline (`disagg history --accept`): after an intended change, the gate compares with
    /// it and the runs after it, not with the history before. A run that failed is no
    /// reference, and is refused; one that regressed (exit 3), or passed, is taken.
    pub fn accept(&mut self, config: &str, run_id: &str) -> Result<StoredRun, StoreError> {
        if self.version > conn::SCHEMA_VERSION {
            return Err(self.query_err(format!(
                "a newer disagg keeps it (its schema is version {}), so this one does not change it",
                self.version
            )));
        }
        let mut runs = self.select_runs(
            "WHERE config_name = ? AND run_id = ? ORDER BY recorded_at DESC, id DESC",
            &[Val::text(config), Val::text(run_id)],
        )?;
        if runs.is_empty() {
            return Err(self.query_err(format!(
                "no run `{run_id}` of `{config}` is recorded (`disagg history {config}` lists them)"
            )));
        }
        let mut run = runs.remove(0);
        if !matches!(run.exit_code, 0 | 3) {
            return Err(self.query_err(format!(
                "run `{run_id}` of `{config}` ended with exit code {} ({}): a failed run is no \
                 reference; accept one that passed or only regressed",
                run.exit_code, run.verdict
            )));
        }
        if !run.is_accepted() {
            run.perf_verdict = format!("{PERF_ACCEPTED}{}", run.perf_verdict);
            let verdict = run.perf_verdict.clone();
            self.conn
                .exec(
                    "UPDATE runs SET perf_verdict = ? WHERE id = ?",
                    &[Val::text(&verdict), Val::int(run.id)],
                )
                .map_err(|m| self.query_err(m))?;
        }
        Ok(run)
    }

    /// Every run recorded, oldest first.
    pub fn all_runs(&mut self) -> Result<Vec<StoredRun>, StoreError> {
        self.select_runs("ORDER BY recorded_at, id", &[])
    }

    /// A run's points with their metrics, in the order recorded.
    pub fn points_of(&mut self, run: i64) -> Result<Vec<StoredPoint>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT id, label, concurrency, request_rate, valid, point_json FROM points \
                 WHERE run = ? ORDER BY id",
                &[Val::int(run)],
            )
            .map_err(|m| self.query_err(m))?;
        let mut out = Vec::new();
        for row in rows {
            let id = get_i(&row, 0).map_err(|m| self.query_err(m))?;
            let metrics = self
                .conn
                .query(
                    "SELECT name, value FROM metrics WHERE point = ? ORDER BY name",
                    &[Val::int(id)],
                )
                .map_err(|m| self.query_err(m))?
                .iter()
                .map(|m| Ok((get_t(m, 0)?, get_f(m, 1)?)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|m| self.query_err(m))?;
            let p = (|| {
                Ok::<_, String>(StoredPoint {
                    run,
                    label: get_t(&row, 1)?,
                    concurrency: conn::opt_i(&row, 2)?.map(|c| c as u32),
                    request_rate: conn::opt_f(&row, 3)?,
                    valid: get_i(&row, 4)? != 0,
                    metrics,
                    json: get_t(&row, 5)?,
                })
            })()
            .map_err(|m| self.query_err(m))?;
            out.push(p);
        }
        Ok(out)
    }

    /// A run's perf-check verdicts.
    pub fn checks_of(&mut self, run: i64) -> Result<Vec<CheckRecord>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT point_label, metric, baseline, band, measured, verdict, source FROM checks \
                 WHERE run = ? ORDER BY id",
                &[Val::int(run)],
            )
            .map_err(|m| self.query_err(m))?;
        rows.iter()
            .map(|r| {
                Ok(CheckRecord {
                    point: get_t(r, 0)?,
                    metric: get_t(r, 1)?,
                    baseline: conn::opt_f(r, 2)?,
                    band: conn::opt_f(r, 3)?,
                    measured: conn::opt_f(r, 4)?,
                    verdict: get_t(r, 5)?,
                    source: get_t(r, 6)?,
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|m| self.query_err(m))
    }

    /// Row counts of (runs, points, metrics, checks).
    pub fn counts(&mut self) -> Result<[i64; 4], StoreError> {
        let mut out = [0; 4];
        for (i, t) in ["runs", "points", "metrics", "checks"].iter().enumerate() {
            let rows = self
                .conn
                .query(&format!("SELECT COUNT(*) FROM {t}"), &[])
                .map_err(|m| self.query_err(m))?;
            out[i] = get_i(&rows[0], 0).map_err(|m| self.query_err(m))?;
        }
        Ok(out)
    }

    /// SQLite's `PRAGMA integrity_check` (`ok` when sound); PostgreSQL answers `ok`.
    pub fn integrity(&mut self) -> Result<String, StoreError> {
        self.conn
            .integrity("integrity_check")
            .map_err(|m| self.query_err(m))
    }

    /// SQLite's `PRAGMA quick_check(1)`: every page read, the first damage found said (`ok`
    /// when none), in one pass over the file; PostgreSQL answers `ok`. Opening a store reads
    /// only its schema, so a file damaged past it opens fine and fails its first query.
    pub fn quick_check(&mut self) -> Result<String, StoreError> {
        self.conn
            .integrity("quick_check(1)")
            .map_err(|m| self.query_err(m))
    }
}

/// The store a workspace's runs go to ([`default_location`]) as messages may show it: its
/// password hidden.
pub fn default_location_shown(workspace: &Path) -> String {
    redact(&default_location(workspace))
}

/// `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`, and a `password=`
/// parameter of the query string is hidden the same way; a password holding a raw `@` is
/// hidden whole (the host follows the last `@`).
fn redact(location: &str) -> String {
    let (main, query) = match location.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (location, None),
    };
    let main = match main.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((cred, host)) => match cred.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => main.to_string(),
            },
            None => main.to_string(),
        },
        None => main.to_string(),
    };
    match query {
        None => main,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{main}?{}", params.join("&"))
        }
    }
}

/// How long a writer waits for another to finish before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    #[test]
    fn a_relative_sqlite_store_is_made_absolute_and_nothing_else_is() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            super::absolute_location("runs/s.sqlite").as_deref(),
            Some(here.join("runs/s.sqlite").to_str().unwrap())
        );
        assert_eq!(
            super::absolute_location("sqlite://s.sqlite"),
            Some(format!("sqlite://{}", here.join("s.sqlite").display()))
        );
        for kept in ["/abs/s.sqlite", "postgresql://u@h/db", "mysql://x", ""] {
            assert_eq!(super::absolute_location(kept), None, "{kept}");
        }
    }

    use super::*;

    fn run(dir: &str, exit_code: i32, perf_verdict: &str, at: u64) -> RunRecord {
        RunRecord {
            run_id: dir.into(),
            config_name: "c".into(),
            case_hash: "h".into(),
            run_dir: dir.into(),
            sweep: None,
            recorded_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + at),
            verdict: "passed".into(),
            exit_code,
            engine: "sim".into(),
            versions: Versions::default(),
            ctx: Group::default(),
            generation: Group::default(),
            topology: String::new(),
            perf_verdict: perf_verdict.into(),
            launcher: Launcher::Slurm(Some("77".into())),
            points: Vec::new(),
            checks: Vec::new(),
        }
    }

    #[test]
    fn a_url_of_another_kind_is_refused_not_taken_for_a_file() {
        for location in ["postgresq://u:secret@127.0.0.1:5432/db", "mysql://x@y/z"] {
            let e = Store::open(location).err().expect(location).to_string();
            assert!(
                e.contains("is no store disagg knows") && !e.contains("secret"),
                "{e}"
            );
        }
        // A path holding `://` further in is a path.
        assert_eq!(unknown_scheme("/tmp/a://b"), None);
        assert_eq!(unknown_scheme("sqlite://x.db"), None);
        assert!(!std::path::Path::new("postgresq:").exists());
        assert!(!std::path::Path::new("mysql:").exists());
    }

    #[test]
    fn only_runs_whose_perf_check_ran_and_passed_are_references() {
        let dir = std::env::temp_dir().join(format!("disagg-store-ref-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = Store::open(&dir.join("s.sqlite").display().to_string()).unwrap();
        let runs = [
            run("boot", 0, "skipped (too few runs): only 0 earlier", 1),
            run("old", 0, "skipped: only 1 earlier passed run(s)", 2),
            run("ok", 0, "passed", 3),
            run("skip", 0, "skipped (SKIP_PERF_CHECK)", 4),
            run("unread", 0, "skipped: the history cannot be read: x", 5),
            run("regressed", 3, "regressed", 6),
            run("failed", 1, "not run", 7),
            run("ok2", 0, "passed", 8),
            run(
                "noisy",
                0,
                "passed (too noisy to gate: 1 metric(s) not checked)",
                8,
            ),
            run("self", 0, "passed", 9),
        ];
        for r in &runs {
            store.record(r).unwrap();
        }
        let since = SystemTime::UNIX_EPOCH;
        let dirs = |v: Vec<StoredRun>| v.into_iter().map(|r| r.run_dir).collect::<Vec<_>>();
        assert_eq!(
            dirs(store.reference_runs("h", None, since, "self", 10).unwrap()),
            ["noisy", "ok2", "ok", "old", "boot"]
        );
        // The limit counts references only: the skipped run does not take a place.
        assert_eq!(
            dirs(store.reference_runs("h", None, since, "self", 2).unwrap()),
            ["noisy", "ok2"]
        );
        // Another GPU model's runs are no reference.
        let mut h100 = run("h100", 0, "passed", 10);
        h100.versions.gpu_model = Some("NVIDIA H100 80GB HBM3".into());
        store.record(&h100).unwrap();
        assert_eq!(
            dirs(
                store
                    .reference_runs("h", Some("NVIDIA H100 80GB HBM3"), since, "self", 10)
                    .unwrap()
            ),
            ["h100"]
        );
        assert_eq!(
            dirs(store.reference_runs("h", None, since, "self", 1).unwrap()),
            ["noisy"]
        );
        // An intended change: the regressed run is accepted as the new baseline, and the
        // history starts there (it, and the runs after it); a failed run cannot be.
        let e = store.accept("c", "failed").unwrap_err().to_string();
        assert!(e.contains("a failed run is no reference"), "{e}");
        let taken = store.accept("c", "regressed").unwrap();
        assert!(taken.is_accepted() && taken.is_reference(), "{taken:?}");
        assert_eq!(
            dirs(store.reference_runs("h", None, since, "self", 10).unwrap()),
            ["noisy", "ok2", "regressed"]
        );
        // Accepting it again changes nothing; a newer accepted run moves the start.
        store.accept("c", "regressed").unwrap();
        store.accept("c", "ok2").unwrap();
        assert_eq!(
            dirs(store.reference_runs("h", None, since, "self", 10).unwrap()),
            ["noisy", "ok2"]
        );
        assert!(store.accept("c", "nope").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store in a folder this process cannot write is still read (here: opened read-only
    /// as the fallback does; a root test process cannot be refused a write).
    #[test]
    fn a_store_opened_read_only_reads_its_runs() {
        let dir = std::env::temp_dir().join(format!("disagg-store-ro-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.sqlite");
        {
            let mut store = Store::open(&file.display().to_string()).unwrap();
            store.record(&run("one", 0, "passed", 1)).unwrap();
        }
        let mut ro = Store::read_only(Conn::sqlite_read_only(&file).unwrap(), "ro".into());
        let runs = ro.runs_of("c").unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run_dir, "one");
        assert!(ro.record(&run("two", 0, "passed", 2)).is_err(), "read only");
        assert!(Conn::sqlite_read_only(&dir.join("missing.sqlite")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store of before schema versions (version 1: no `meta`, no launcher columns) is read
    /// as it is when it can only be read, and brought to version 2 when opened to write, its
    /// runs kept; a store a newer disagg wrote is read, and not written.
    #[test]
    fn a_store_of_an_older_schema_is_brought_up_and_a_newer_one_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v1.sqlite");
        let v1 = rusqlite::Connection::open(&file).unwrap();
        let schema = conn::SQLITE_SCHEMA;
        v1.execute_batch(&schema[..schema.find("CREATE TABLE IF NOT EXISTS meta").unwrap()])
            .unwrap();
        v1.execute_batch(
            "INSERT INTO runs (run_dir, run_id, config_name, case_hash, recorded_at, verdict, \
             exit_code, disagg_version, engine, ctx_servers, ctx_gpus_per_server, gen_servers, \
             gen_gpus_per_server, gpus, topology, perf_verdict) VALUES ('old', 'r', 'c', 'h', \
             '2026-12-01T00:00:00.000Z', 'passed', 0, '0.1.0', 'sim', 1, 1, 1, 1, 2, 't', \
             'passed')",
        )
        .unwrap();
        drop(v1);
        let location = file.display().to_string();
        let mut ro = Store::read_only(Conn::sqlite_read_only(&file).unwrap(), "ro".into());
        assert_eq!(ro.version, 1);
        let runs = ro.all_runs().unwrap();
        assert_eq!(
            (runs[0].run_dir.as_str(), &runs[0].launcher),
            ("old", &None)
        );
        drop(ro);
        let mut store = Store::open(&location).unwrap();
        assert_eq!(store.version, conn::SCHEMA_VERSION);
        store.record(&run("new", 0, "passed", 2)).unwrap();
        let runs = store.all_runs().unwrap();
        let launchers: Vec<_> = runs
            .iter()
            .map(|r| (r.run_dir.as_str(), r.launcher.clone()))
            .collect();
        assert_eq!(
            launchers,
            [
                ("old", None),
                ("new", Some(Launcher::Slurm(Some("77".into()))))
            ]
        );
        drop(store);
        // Opened again: at its version, nothing to do.
        assert_eq!(
            Store::open(&location).unwrap().version,
            conn::SCHEMA_VERSION
        );
        let newer = rusqlite::Connection::open(&file).unwrap();
        newer
            .execute_batch("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
            .unwrap();
        drop(newer);
        let mut store = Store::open(&location).unwrap();
        assert_eq!(store.version, 99);
        assert_eq!(store.all_runs().unwrap().len(), 2, "still read");
        let e = store
            .record(&run("third", 0, "passed", 3))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a newer disagg keeps it (its schema is version 99") && e.contains("hint: "),
            "{e}"
        );
        assert_eq!(store.all_runs().unwrap().len(), 2, "nothing written");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgresql://u:pw@127.0.0.1:5432/db"),
            "postgresql://u:***@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("/ws/disagg_results.sqlite"),
            "/ws/disagg_results.sqlite"
        );
        assert_eq!(
            redact("postgresql://u@127.0.0.1/db?password=pw&options=-c%20x%3Dy"),
            "postgresql://u@127.0.0.1/db?password=***&options=-c%20x%3Dy"
        );
        assert_eq!(
            redact("postgresql://u:s3cret@pw@host/db"),
            "postgresql://u:***@host/db"
        );
        assert_eq!(redact("postgresql://host/db"), "postgresql://host/db");
    }
}
