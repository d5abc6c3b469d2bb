//! `--request-log FILE`: one JSON line per completion request received, body included, so a
//! test or a human can see exactly what a router sent.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

#[derive(Debug)]
pub(crate) struct RequestLog {
    path: PathBuf,
    file: Mutex<LineWriter<File>>,
}

impl RequestLog {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(LineWriter::new(file)),
        })
    }

    /// Appends one line. A body that is not JSON is kept as a string, so nothing is lost.
    pub(crate) fn record(&self, path: &str, request_id: Option<&str>, body: &[u8]) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let body = serde_json::from_slice::<Value>(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        let line = json!({"ts": ts, "path": path, "x_request_id": request_id, "body": body});
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // Logging must never fail a request; a full disk shows up once on stderr.
        if let Err(e) = writeln!(f, "{line}") {
            say_err!("disagg-sim: cannot append to {}: {e}", self.path.display());
        }
    }
}
