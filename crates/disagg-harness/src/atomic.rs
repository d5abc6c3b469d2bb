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
