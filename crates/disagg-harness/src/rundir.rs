//! The run folder: `$WORKSPACE/disagg_logs/<CONFIG_NAME>/<RUN_ID>/`, with `latest` beside it.
//!
//! A run folder is created with `create_dir` (not `create_dir_all`) on its last component, so two
//! runs can never share one: a clash picks the next suffix. Nothing of an earlier run is touched.

use std::path::{Path, PathBuf};

use disagg_core::ConfigName;

/// `--workspace`, else `$WORKSPACE`, else `./workspace`.
pub fn resolve_workspace(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("WORKSPACE") {
        Some(v) => workspace_from_env(&v.to_string_lossy())
            .map_or_else(|| PathBuf::from("workspace"), PathBuf::from),
        None => PathBuf::from("workspace"),
    }
}

/// `$WORKSPACE` as a shell would have meant it: blank is unset (a folder named ` ` is no one's
/// workspace), and a leading `~` (quoted, so no shell expanded it) is `$HOME`: made literally,
/// it was a folder named `~` under the current one.
fn workspace_from_env(v: &str) -> Option<String> {
    if v.trim().is_empty() {
        return None;
    }
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty());
    match (v.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            Some(format!("{home}{rest}"))
        }
        _ => Some(v.to_string()),
    }
}

/// The `hint:` line for a workspace where folders cannot be made.
pub fn workspace_hint(workspace: &Path) -> String {
    format!(
        "hint: the workspace ({}: --workspace, else $WORKSPACE, else ./workspace) must be a \
         folder this user can create folders in",
        workspace.display()
    )
}

/// `<workspace>/disagg_logs/<name>`.
pub fn config_dir(workspace: &Path, name: &ConfigName) -> PathBuf {
    workspace.join("disagg_logs").join(name.as_str())
}

/// A UTC timestamp run id, e.g. `20261128T043512.123Z`.
pub fn timestamp_run_id() -> String {
    let now = std::time::SystemTime::now();
    let rfc = humantime::format_rfc3339_millis(now).to_string(); // 2026-11-28T04:35:12.123Z
    rfc.replace(['-', ':'], "")
}

/// Creates a fresh run folder; returns (run id, path). `latest` is left alone until the run is
/// launched ([`point_latest_at`]): a run folder that never ran (a full disk, a bad plan) must
/// not hide the last real run.
pub fn create(
    workspace: &Path,
    name: &ConfigName,
    run_id: &str,
) -> std::io::Result<(String, PathBuf)> {
    let (id, dir) = make_unique(&config_dir(workspace, name), run_id)?;
    std::fs::create_dir(dir.join("rendezvous"))?;
    Ok((id, dir))
}

/// Points `latest` beside a run folder at it: the run has been launched.
pub fn point_latest_at(run_dir: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(id)) = (run_dir.parent(), run_dir.file_name()) else {
        return Err(std::io::Error::other(format!(
            "{} is not a run folder",
            run_dir.display()
        )));
    };
    point_latest(parent, &id.to_string_lossy())
}

/// Creates a fresh folder `<parent>/<run_id>` (or the next free suffix) and points
/// `<parent>/latest` at it; returns (id, canonical path). Sweep folders.
pub fn create_in(parent: &Path, run_id: &str) -> std::io::Result<(String, PathBuf)> {
    let (id, dir) = make_unique(parent, run_id)?;
    point_latest(parent, &id)?;
    Ok((id, dir))
}

/// Creates a fresh folder `<parent>/<run_id>` (or the next free suffix); returns (id, canonical
/// path).
fn make_unique(parent: &Path, run_id: &str) -> std::io::Result<(String, PathBuf)> {
    std::fs::create_dir_all(parent)?;
    for attempt in 0..1000u32 {
        let id = if attempt == 0 {
            run_id.to_string()
        } else {
            format!("{run_id}-{attempt}")
        };
        let dir = parent.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let dir = std::fs::canonicalize(&dir)?;
                return Ok((id, dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free run folder under {}",
        parent.display()
    )))
}

/// Points `<config>/latest` at `id`, atomically (new link, then rename over the old one).
fn point_latest(parent: &Path, id: &str) -> std::io::Result<()> {
    let tmp = parent.join(format!(".latest.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(id, &tmp)?;
    std::fs::rename(&tmp, parent.join("latest"))
}

/// A file of space set aside in a run folder while its run runs ([`reserve_space`]), given back
/// for the reports ([`release_space`]): a run whose logs filled the disk can still write its
/// verdict, `outcome.json`, `results.xml` and `exit_code`, where it wrote none and read to
/// `disagg triage` as still running.
pub const RESERVE_FILE: &str = ".disk_reserve";

/// Enough for every report of a run (report.html is the largest, some hundred KiB).
const RESERVE_BYTES: usize = 2 << 20;

/// Sets [`RESERVE_FILE`]'s space aside, in bytes no filesystem compresses away. A failure is
/// said and otherwise ignored: the run goes on without the reserve.
pub fn reserve_space(run_dir: &Path) {
    // xorshift: cheap, and incompressible enough for lz4 or zstd on ZFS or btrfs.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..RESERVE_BYTES / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let path = run_dir.join(RESERVE_FILE);
    if let Err(e) = std::fs::write(&path, bytes) {
        let _ = std::fs::remove_file(&path);
        say_err!(
            "disagg: warning: cannot set space aside for the reports in {}: {e}",
            path.display()
        );
    }
}

/// Gives [`RESERVE_FILE`]'s space back (nothing when there is none).
pub fn release_space(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(RESERVE_FILE));
}

/// The `n` largest files under `dir` (its folders too, a few levels down; links not followed),
/// largest first, as `name (size)`: what filled a disk.
pub fn largest_files(dir: &Path, n: usize) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, depth: u32, out: &mut Vec<(u64, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() && depth > 0 {
                walk(root, &e.path(), depth - 1, out);
            } else if meta.is_file() && e.file_name() != RESERVE_FILE {
                let name = e.path().strip_prefix(root).map_or_else(
                    |_| e.path().display().to_string(),
                    |p| p.display().to_string(),
                );
                out.push((meta.len(), name));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, 3, &mut files);
    files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    files
        .into_iter()
        .take(n)
        .map(|(size, name)| format!("{name} ({})", human_bytes(size)))
        .collect()
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blank `$WORKSPACE` is unset, and a quoted `~` is the home folder, not a folder of that
    /// name.
    #[test]
    fn workspace_from_env_reads_it_as_a_shell_would_have() {
        assert_eq!(workspace_from_env(" "), None);
        assert_eq!(workspace_from_env(""), None);
        let home = std::env::var("HOME").unwrap();
        assert_eq!(workspace_from_env("~/ws"), Some(format!("{home}/ws")));
        assert_eq!(workspace_from_env("~"), Some(home));
        assert_eq!(
            workspace_from_env("~other/ws").as_deref(),
            Some("~other/ws")
        );
        assert_eq!(workspace_from_env("/w/a b").as_deref(), Some("/w/a b"));
    }

    #[test]
    fn same_id_twice_gives_two_folders_and_latest_moves_once_launched() {
        let ws_tmp = tempfile::tempdir().unwrap();
        let ws = ws_tmp.path().to_path_buf();
        let name = ConfigName::new("c").unwrap();
        let (a, da) = create(&ws, &name, "X").unwrap();
        point_latest_at(&da).unwrap();
        std::fs::write(da.join("f"), "first").unwrap();
        let (b, db) = create(&ws, &name, "X").unwrap();
        assert_eq!(
            std::fs::read_link(config_dir(&ws, &name).join("latest")).unwrap(),
            PathBuf::from("X"),
            "a run folder not launched yet does not move latest"
        );
        point_latest_at(&db).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("X", "X-1"));
        assert_ne!(da, db);
        assert_eq!(
            std::fs::read_link(config_dir(&ws, &name).join("latest")).unwrap(),
            PathBuf::from("X-1")
        );
        assert_eq!(std::fs::read_to_string(da.join("f")).unwrap(), "first");
    }

    #[test]
    fn timestamp_ids_are_folder_safe() {
        let id = timestamp_run_id();
        assert!(
            id.ends_with('Z') && !id.contains(':') && !id.contains('/'),
            "{id}"
        );
    }
}
