//! `disagg logs`: list a config's runs and their files, and pack one run into a tarball.

use std::path::{Path, PathBuf};

use crate::rundir;

/// Runs of a config, oldest first (run ids are timestamps, so names sort by time).
pub fn list_runs(workspace: &Path, config: &str) -> std::io::Result<Vec<PathBuf>> {
    let dir = workspace.join("disagg_logs").join(config);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    runs.sort();
    Ok(runs)
}

/// The run folder of `run` (an id, or `latest`), or the newest one.
pub fn find_run(workspace: &Path, config: &str, run: Option<&str>) -> Result<PathBuf, String> {
    let name = disagg_core::ConfigName::new(config)
        .map_err(|why| format!("`{config}` is not a config name: {why}"))?;
    let dir = rundir::config_dir(workspace, &name);
    let runs = list_runs(workspace, config)
        .map_err(|e| format!("no runs of {config} in {}: {e}", dir.display()))?;
    match run {
        Some(id) if id != "latest" => {
            let safe = disagg_core::ConfigName::new(id)
                .map_err(|why| format!("`{id}` is not a run id: {why}"))?;
            let p = dir.join(safe.as_str());
            if p.is_dir() {
                Ok(p)
            } else {
                Err(format!("no run {id} in {}", dir.display()))
            }
        }
        _ => runs
            .last()
            .cloned()
            .ok_or_else(|| format!("no runs of {config} in {}", dir.display())),
    }
}

/// A listing: each run with its status, then the files of the chosen one.
pub fn describe(workspace: &Path, config: &str, run: Option<&str>) -> Result<String, String> {
    let runs = list_runs(workspace, config).map_err(|e| {
        format!(
            "no runs of {config} under {}: {e}",
            workspace.join("disagg_logs").display()
        )
    })?;
    let mut out = format!(
        "{config}: {} run(s) in {}\n",
        runs.len(),
        workspace.join("disagg_logs").join(config).display()
    );
    for r in &runs {
        let status = std::fs::read(r.join("rendezvous/status.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| {
                let state = v
                    .get("state")
                    .and_then(|s| s.as_str())
                    .unwrap_or("?")
                    .to_string();
                match v.get("reason").and_then(|s| s.as_str()) {
                    Some(reason) => format!("{state}: {reason}"),
                    None => state,
                }
            })
            .unwrap_or_else(|| "no status (running, or stopped before the end)".into());
        out.push_str(&format!(
            "  {}  {status}\n",
            r.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    let chosen = find_run(workspace, config, run)?;
    out.push_str(&format!("files of {}:\n", chosen.display()));
    let mut files = Vec::new();
    collect(&chosen, &chosen, &mut files);
    files.sort();
    for (rel, size) in files {
        out.push_str(&format!("  {rel:<40} {size:>10} bytes\n"));
    }
    Ok(out)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if let Ok(m) = e.metadata() {
            out.push((
                p.strip_prefix(root).unwrap_or(&p).display().to_string(),
                m.len(),
            ));
        }
    }
}

/// Packs a run folder into `dest` (`.tar.gz`), its files under `<config>/<run_id>/`.
pub fn pack(run_dir: &Path, dest: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(dest)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let run = run_dir.file_name().unwrap_or_default();
    let config = run_dir
        .parent()
        .and_then(|p| p.file_name())
        .unwrap_or_default();
    tar.append_dir_all(Path::new(config).join(run), run_dir)?;
    tar.into_inner()?.finish()?.sync_all()
}
