//! One connection, SQLite or PostgreSQL, behind the few calls the store makes: statements are
//! written with `?` parameters and typed values, rows come back as [`Val`]s.

use std::path::Path;
use std::time::Duration;

/// A parameter or a column: typed, possibly null (PostgreSQL checks a null's type too).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    I(Option<i64>),
    F(Option<f64>),
    T(Option<String>),
}

impl Val {
    pub fn int(v: i64) -> Self {
        Val::I(Some(v))
    }
    pub fn text(v: &str) -> Self {
        Val::T(Some(v.to_string()))
    }
}

pub(crate) fn get_i(row: &[Val], i: usize) -> Result<i64, String> {
    opt_i(row, i)?.ok_or_else(|| format!("column {i} is null"))
}
pub(crate) fn get_f(row: &[Val], i: usize) -> Result<f64, String> {
    opt_f(row, i)?.ok_or_else(|| format!("column {i} is null"))
}
pub(crate) fn get_t(row: &[Val], i: usize) -> Result<String, String> {
    opt_t(row, i)?.ok_or_else(|| format!("column {i} is null"))
}
pub(crate) fn opt_i(row: &[Val], i: usize) -> Result<Option<i64>, String> {
    match row.get(i) {
        Some(Val::I(v)) => Ok(*v),
        Some(Val::F(None)) | Some(Val::T(None)) => Ok(None),
        other => Err(format!("column {i}: expected an integer, got {other:?}")),
    }
}
pub(crate) fn opt_f(row: &[Val], i: usize) -> Result<Option<f64>, String> {
    match row.get(i) {
        Some(Val::F(v)) => Ok(*v),
        // SQLite keeps a whole REAL as an integer when it can.
        Some(Val::I(v)) => Ok(v.map(|x| x as f64)),
        Some(Val::T(None)) => Ok(None),
        other => Err(format!("column {i}: expected a number, got {other:?}")),
    }
}
pub(crate) fn opt_t(row: &[Val], i: usize) -> Result<Option<String>, String> {
    match row.get(i) {
        Some(Val::T(v)) => Ok(v.clone()),
        Some(Val::I(None)) | Some(Val::F(None)) => Ok(None),
        other => Err(format!("column {i}: expected text, got {other:?}")),
    }
}

/// The schema, per backend: the same tables, columns and indexes, as version 1 had them, and
/// `meta`, which keeps the version; [`MIGRATIONS`] take it from there.
pub(crate) const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  run_dir TEXT NOT NULL UNIQUE,
  run_id TEXT NOT NULL,
  config_name TEXT NOT NULL,
  case_hash TEXT NOT NULL,
  sweep TEXT,
  recorded_at TEXT NOT NULL,
  verdict TEXT NOT NULL,
  exit_code INTEGER NOT NULL,
  disagg_version TEXT NOT NULL,
  engine TEXT NOT NULL,
  engine_version TEXT,
  gpu_model TEXT,
  ctx_servers INTEGER NOT NULL,
  ctx_gpus_per_server INTEGER NOT NULL,
  gen_servers INTEGER NOT NULL,
  gen_gpus_per_server INTEGER NOT NULL,
  gpus INTEGER NOT NULL,
  topology TEXT NOT NULL,
  perf_verdict TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_config ON runs (config_name, recorded_at);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (case_hash, recorded_at);
CREATE TABLE IF NOT EXISTS points (
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  label TEXT NOT NULL,
  concurrency INTEGER,
  request_rate REAL,
  valid INTEGER NOT NULL,
  point_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_by_run ON points (run);
CREATE TABLE IF NOT EXISTS metrics (
  point INTEGER NOT NULL REFERENCES points (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (point, name)
);
CREATE TABLE IF NOT EXISTS checks (
  id INTEGER PRIMARY KEY,
  run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  point_label TEXT NOT NULL,
  metric TEXT NOT NULL,
  baseline REAL,
  band REAL,
  measured REAL,
  verdict TEXT NOT NULL,
  source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_by_run ON checks (run);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
";

/// The schema's version this disagg writes, kept in `meta` (`schema_version`). Version 1 is
/// the tables above as they were first made (stores of before 2026-12-07 have no `meta`); each
/// later version is reached by its step in [`MIGRATIONS`], in order, in the transaction that
/// makes the schema.
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// The step from the version before to each version: additions only, so that a disagg one
/// version behind still reads the store.
const MIGRATIONS: [(i64, &str); 1] = [(
    2,
    // How the run was launched: `local` or `slurm`, and the Slurm job id.
    "ALTER TABLE runs ADD COLUMN launcher TEXT; ALTER TABLE runs ADD COLUMN slurm_job TEXT;",
)];

fn postgres_schema() -> String {
    SQLITE_SCHEMA
        .replace("id INTEGER PRIMARY KEY", "id BIGSERIAL PRIMARY KEY")
        .replace(" INTEGER", " BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
}

pub(crate) enum Conn {
    Sqlite(Box<rusqlite::Connection>),
    Postgres(Box<postgres::Client>),
}

/// How long a PostgreSQL connection may take to open, startup exchange included.
const PG_CONNECT: Duration = Duration::from_secs(10);

/// How long one statement may run, waiting for a lock included, unless the URL's `options` say.
const PG_STATEMENT: Duration = Duration::from_secs(60);

/// A PostgreSQL error with its cause: tokio-postgres says only "db error" (or "error
/// communicating with the server") and keeps the server's message, the part that tells a wrong
/// password from a missing database, in its source.
fn pg_err(e: &postgres::Error) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = cause.source();
    }
    out
}

/// `?` → `$1, $2, ...` (no statement of ours has a `?` inside a string).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// The tables and indexes [`SQLITE_SCHEMA`] makes, by name.
fn sqlite_schema_names() -> Vec<&'static str> {
    SQLITE_SCHEMA
        .split("IF NOT EXISTS")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Whether every table and index of the schema is in the file (an error reads as no: the
/// schema step then says what is wrong).
fn sqlite_schema_present(c: &rusqlite::Connection) -> bool {
    let names = sqlite_schema_names();
    let marks = vec!["?"; names.len()].join(",");
    let sql = format!("SELECT count(*) FROM sqlite_master WHERE name IN ({marks})");
    c.query_row(&sql, rusqlite::params_from_iter(names.iter()), |r| {
        r.get::<_, i64>(0)
    })
    .is_ok_and(|n| n == names.len() as i64)
}

impl Conn {
    pub(crate) fn sqlite(path: &Path) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        c.busy_timeout(crate::BUSY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        // Switching to WAL takes a lock for a moment; another process opening at the same
        // instant may be told "busy" without the busy handler, so try again, bounded.
        let until = std::time::Instant::now() + crate::BUSY_TIMEOUT;
        loop {
            let mode = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
            match mode {
                Ok(m) if m.eq_ignore_ascii_case("wal") => break,
                Ok(m) => return Err(format!("cannot use WAL mode (the file stays in {m} mode)")),
                Err(e) if std::time::Instant::now() < until && is_busy(&e) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|e| e.to_string())?;
        Ok(Conn::Sqlite(Box::new(c)))
    }

    /// A SQLite store opened for reading only, for a folder this process cannot write (a
    /// read-only mount, another user's workspace): no WAL switch, no schema. Tried as is
    /// (reads what a WAL holds when its files are there), then as immutable (read-only media).
    pub(crate) fn sqlite_read_only(path: &Path) -> Result<Self, String> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        let uri = |extra: &str| format!("file:{}?mode=ro{extra}", path.display());
        let usable = |c: &rusqlite::Connection| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok()
        };
        let mut last = String::new();
        for extra in ["", "&immutable=1"] {
            match rusqlite::Connection::open_with_flags(uri(extra), flags) {
                Ok(c) if usable(&c) => {
                    c.busy_timeout(crate::BUSY_TIMEOUT)
                        .map_err(|e| e.to_string())?;
                    return Ok(Conn::Sqlite(Box::new(c)));
                }
                Ok(_) => last = "cannot read it".to_string(),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// Connects within [`PG_CONNECT`] (the TCP connect and the startup exchange both: a proxy
    /// that accepts and never answers must not hold the caller), and bounds each statement
    /// server-side ([`PG_STATEMENT`]), lock waits included, unless the URL's `options` set them.
    pub(crate) fn postgres(url: &str) -> Result<Self, String> {
        let mut cfg: postgres::Config = url.parse().map_err(|e| pg_err(&e))?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(PG_CONNECT);
        }
        // A peer gone silent mid-exchange is noticed by TCP, not after the kernel's hours.
        cfg.keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(PG_STATEMENT);
        let options = cfg.get_options().unwrap_or_default().to_string();
        let mut set = Vec::new();
        for (name, value) in [
            ("statement_timeout", PG_STATEMENT),
            ("lock_timeout", PG_STATEMENT),
        ] {
            if !options.contains(name) {
                set.push(format!("SET {name} = '{}s';", value.as_secs()));
            }
        }
        // The TCP connect's own timeout, and as long again for the startup exchange.
        let bound = 2 * cfg.get_connect_timeout().copied().unwrap_or(PG_CONNECT);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("postgres-connect".into())
            .spawn(move || {
                let _ = tx.send(cfg.connect(postgres::NoTls));
            })
            .map_err(|e| format!("cannot connect: no thread to connect on: {e}"))?;
        let mut client = match rx.recv_timeout(bound) {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(format!("cannot connect: {}", pg_err(&e))),
            Err(_) => {
                return Err(format!(
                    "cannot connect: no answer within {} s (the server, or what listens at its \
                     address, took the connection and never finished the startup exchange)",
                    bound.as_secs()
                ));
            }
        };
        if !set.is_empty() {
            client
                .batch_execute(&set.concat())
                .map_err(|e| format!("cannot set the session's timeouts: {}", pg_err(&e)))?;
        }
        Ok(Conn::Postgres(Box::new(client)))
    }

    /// Makes the schema, or brings it up to [`SCHEMA_VERSION`], and returns the store's
    /// version: higher than ours when a newer disagg wrote it (it is then left as it is).
    pub(crate) fn create_schema(&mut self) -> Result<i64, String> {
        // Made before: a plain read, which in WAL mode waits for no writer. Only a store that
        // lacks part of the schema takes the write lock to make it: a reader (`disagg
        // history`, a run's gate) waited up to the busy timeout behind any writer, just to
        // find the tables there.
        if let Conn::Sqlite(c) = self {
            if sqlite_schema_present(c) {
                let version = self.schema_version()?;
                if version >= SCHEMA_VERSION {
                    return Ok(version);
                }
            }
        }
        let schema = match self {
            Conn::Sqlite(_) => SQLITE_SCHEMA.to_string(),
            // Concurrent CREATE ... IF NOT EXISTS can collide in PostgreSQL's catalog: one
            // creator at a time, under a transaction-scoped advisory lock.
            Conn::Postgres(_) => format!(
                "SELECT pg_advisory_xact_lock(7226512); {}",
                postgres_schema()
            ),
        };
        self.transaction(|c| {
            c.batch(&schema)?;
            let version = c.schema_version()?;
            if version > SCHEMA_VERSION {
                return Ok(version);
            }
            for (to, step) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
                c.batch(step)
                    .map_err(|e| format!("cannot bring the schema to version {to}: {e}"))?;
            }
            c.exec(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[Val::text(&SCHEMA_VERSION.to_string())],
            )?;
            Ok(SCHEMA_VERSION)
        })
    }

    /// The version `meta` gives; 1 for a store without one (made before versions were kept),
    /// and for one without `meta` at all (a read-only store of then).
    pub(crate) fn schema_version(&mut self) -> Result<i64, String> {
        let has_meta = match self {
            Conn::Sqlite(c) => {
                c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| e.to_string())?
                    > 0
            }
            Conn::Postgres(_) => true,
        };
        if !has_meta {
            return Ok(1);
        }
        let rows = self.query("SELECT value FROM meta WHERE key = 'schema_version'", &[])?;
        match rows.first() {
            None => Ok(1),
            Some(row) => {
                let text = get_t(row, 0)?;
                text.trim().parse().map_err(|_| {
                    format!("its schema_version (in table meta) is `{text}`, not a number")
                })
            }
        }
    }

    /// Runs `f` in one transaction (SQLite: `BEGIN IMMEDIATE`, so writers queue up front rather
    /// than fail on upgrading a read lock), rolled back on error.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<T, String> {
        let begin = match self {
            Conn::Sqlite(_) => "BEGIN IMMEDIATE",
            Conn::Postgres(_) => "BEGIN",
        };
        self.batch(begin)?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(|e| e.to_string()),
            Conn::Postgres(c) => c.batch_execute(sql).map_err(|e| pg_err(&e)),
        }
    }

    pub(crate) fn exec(&mut self, sql: &str, params: &[Val]) -> Result<u64, String> {
        match self {
            Conn::Sqlite(c) => c
                .execute(
                    sql,
                    rusqlite::params_from_iter(params.iter().map(SqliteVal)),
                )
                .map(|n| n as u64)
                .map_err(|e| format!("{e} (in `{sql}`)")),
            Conn::Postgres(c) => {
                let ps = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    ps.iter().map(|p| p.as_ref()).collect();
                c.execute(numbered(sql).as_str(), &refs)
                    .map_err(|e| format!("{} (in `{sql}`)", pg_err(&e)))
            }
        }
    }

    pub(crate) fn query(&mut self, sql: &str, params: &[Val]) -> Result<Vec<Vec<Val>>, String> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare(sql).map_err(|e| format!("{e} (in `{sql}`)"))?;
                let n = st.column_count();
                let rows = st
                    .query_map(
                        rusqlite::params_from_iter(params.iter().map(SqliteVal)),
                        |r| {
                            (0..n)
                                .map(|i| {
                                    use rusqlite::types::ValueRef;
                                    Ok(match r.get_ref(i)? {
                                        ValueRef::Null => Val::T(None),
                                        ValueRef::Integer(v) => Val::I(Some(v)),
                                        ValueRef::Real(v) => Val::F(Some(v)),
                                        ValueRef::Text(t) => {
                                            Val::T(Some(String::from_utf8_lossy(t).into_owned()))
                                        }
                                        ValueRef::Blob(_) => Val::T(None),
                                    })
                                })
                                .collect::<Result<Vec<Val>, rusqlite::Error>>()
                        },
                    )
                    .map_err(|e| format!("{e} (in `{sql}`)"))?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{e} (in `{sql}`)"))
            }
            Conn::Postgres(c) => {
                use postgres::types::Type;
                let ps = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    ps.iter().map(|p| p.as_ref()).collect();
                let rows = c
                    .query(numbered(sql).as_str(), &refs)
                    .map_err(|e| format!("{} (in `{sql}`)", pg_err(&e)))?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| {
                                let t = r.columns()[i].type_().clone();
                                let v = if t == Type::INT8 {
                                    Val::I(r.try_get(i).map_err(|e| e.to_string())?)
                                } else if t == Type::INT4 {
                                    Val::I(
                                        r.try_get::<_, Option<i32>>(i)
                                            .map_err(|e| e.to_string())?
                                            .map(i64::from),
                                    )
                                } else if t == Type::FLOAT8 {
                                    Val::F(r.try_get(i).map_err(|e| e.to_string())?)
                                } else {
                                    Val::T(r.try_get(i).map_err(|e| e.to_string())?)
                                };
                                Ok(v)
                            })
                            .collect::<Result<Vec<Val>, String>>()
                    })
                    .collect()
            }
        }
    }

    pub(crate) fn integrity(&mut self, pragma: &str) -> Result<String, String> {
        match self {
            Conn::Sqlite(c) => c
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, String>(0))
                .map_err(|e| e.to_string()),
            Conn::Postgres(_) => Ok("ok".into()),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

struct SqliteVal<'a>(&'a Val);

impl rusqlite::ToSql for SqliteVal<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self.0 {
            Val::I(v) => v.to_sql(),
            Val::F(v) => v.to_sql(),
            Val::T(v) => v.to_sql(),
        }
    }
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Val::I(x) => Box::new(*x),
                Val::F(x) => Box::new(*x),
                Val::T(x) => Box::new(x.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_names_are_every_table_and_index() {
        assert_eq!(
            super::sqlite_schema_names(),
            [
                "runs",
                "runs_by_config",
                "runs_by_hash",
                "points",
                "points_by_run",
                "metrics",
                "checks",
                "checks_by_run",
                "meta"
            ]
        );
    }

    /// A reader opens and reads a store whose write lock another process holds, at once: it
    /// used to take the write lock itself (to make tables that were there) and wait up to the
    /// busy timeout (60 s) behind any writer.
    #[test]
    fn a_reader_does_not_wait_behind_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.sqlite");
        let location = file.display().to_string();
        drop(crate::Store::open(&location).unwrap());
        let writer = rusqlite::Connection::open(&file).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        let t0 = std::time::Instant::now();
        let mut reader = crate::Store::open(&location).unwrap();
        assert!(reader.all_runs().unwrap().is_empty());
        let waited = t0.elapsed();
        writer.execute_batch("ROLLBACK").unwrap();
        assert!(
            waited < std::time::Duration::from_secs(10),
            "the reader waited {waited:?} behind the writer"
        );
    }

    #[test]
    fn postgres_gets_its_own_types_and_numbered_parameters() {
        let s = super::postgres_schema();
        assert!(s.contains("id BIGSERIAL PRIMARY KEY"), "{s}");
        assert!(s.contains("exit_code BIGINT NOT NULL"), "{s}");
        assert!(s.contains("value DOUBLE PRECISION NOT NULL"), "{s}");
        assert!(!s.contains(" INTEGER") && !s.contains(" REAL"), "{s}");
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND c = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
    }
}
