//! How a server tells whoever started it where it listens: it binds (port 0 picks a free
//! port), then publishes `host:port` to a ready file, written atomically, or to stdout.
//! The sim, the router and the harness's rendezvous all use this one writer.

use std::io::{self, Write};
use std::path::Path;

/// `host:port`, with IPv6 literals bracketed so the result parses as an address.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Write-then-rename in the same folder: a reader polling for the file never sees it half
/// written. The data is synced before the rename so a crash cannot leave an empty file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
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

/// Publishes `authority` plus a newline to `ready_file`, or to stdout (flushed at once, since
/// the starter may be reading a pipe).
pub fn publish(ready_file: Option<&Path>, authority: &str) -> io::Result<()> {
    let line = format!("{authority}\n");
    match ready_file {
        Some(path) => write_atomically(path, line.as_bytes()),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_no_temp_file_is_left() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let path = dir.join("addr");
        publish(Some(&path), "old:1").unwrap();
        publish(Some(&path), &authority("::1", 8000)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[::1]:8000\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomically(Path::new("/"), b"x").is_err());
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(authority("[::1]", 80), "[::1]:80");
    }
}
