//! Write-then-rename, so a reader never sees half a file.

use std::path::Path;

/// Writes `bytes` to `path` atomically (a synced temp file in the same folder, then rename).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    disagg_proto::ready::write_atomically(path, bytes)
}

/// Serializes `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// Writes `value` as pretty JSON to `path` only if no file is there yet, atomically: a complete
/// temp file is hard-linked into place, which fails if `path` exists. `Ok(false)`: someone
/// else's file was there first and is left as it is.
pub fn write_json_new<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<bool> {
    use std::io::Write;
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let linked = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_file_is_written_once_and_never_over_another() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let p = dir.join("status.json");
        assert!(super::write_json_new(&p, &"first").unwrap());
        assert!(!super::write_json_new(&p, &"second").unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "\"first\"\n");
        super::write_json(&p, &"final").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "\"final\"\n");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp file is left"
        );
    }
}
