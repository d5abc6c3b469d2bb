//! Publishing the bound address, so whoever started the sim can find a port chosen by the OS.

use std::io::{self, Write};
use std::path::Path;

use crate::SimError;

/// `host:port`, with IPv6 literals bracketed so the result parses as an address.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Writes `authority` plus a newline to `ready_file`, or prints it to stdout without one.
pub(crate) fn publish(ready_file: Option<&Path>, authority: &str) -> Result<(), SimError> {
    let Some(path) = ready_file else {
        // stdout is line-buffered, so the newline flushes it for a reading parent.
        println!("{authority}");
        return Ok(());
    };
    write_atomically(path, format!("{authority}\n").as_bytes()).map_err(|source| {
        SimError::ReadyFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Write-then-rename in the same directory: a watcher never reads a half-written address.
/// (Blocking I/O is fine here: it happens once, before serving starts.)
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(authority("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(authority("node-a", 8000), "node-a:8000");
        assert_eq!(authority("::1", 9), "[::1]:9");
        assert_eq!(authority("[::1]", 9), "[::1]:9");
    }

    #[test]
    fn ready_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("disagg-sim-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("ctx_0.addr");
        std::fs::write(&file, "stale").expect("seed");
        publish(Some(&file), "127.0.0.1:4242").expect("publish");
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            "127.0.0.1:4242\n"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_ready_file_names_the_path() {
        let path = Path::new("/nonexistent-dir-for-disagg-sim/ready");
        let err = publish(Some(path), "127.0.0.1:1").expect_err("must fail");
        assert!(
            err.to_string()
                .contains("/nonexistent-dir-for-disagg-sim/ready"),
            "{err}"
        );
    }
}
