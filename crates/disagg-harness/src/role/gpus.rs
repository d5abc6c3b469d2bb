//! What GPUs a role process has: the `CUDA_VISIBLE_DEVICES` its engine will see and, on request,
//! which GPU devices its cgroup lets it open. Every role logs one line of it at start, so a
//! worker's log says which GPUs it was given and the router's says it holds none.

use crate::slurm::steps::GPUS_ENV_VAR;

/// A device path prefix (`/dev/nvidia`) whose numbered devices each role tries to open and
/// reports: opened (or "no such device", ENXIO/ENODEV: the cgroup let it through) or denied
/// (EPERM/EACCES). Off by default: on a GPU node an open may wake a GPU that has no persistence
/// daemon.
pub const PROBE_ENV_VAR: &str = "DISAGG_GPU_DEVICES";

/// On a cluster without GPU gres the plan's GPUs come as [`GPUS_ENV_VAR`]: they become this
/// process's `CUDA_VISIBLE_DEVICES`, which the engine inherits.
///
/// # Safety
/// Must run before the process starts any thread (the environment is not thread-safe).
pub unsafe fn take_planned_gpus() {
    if let Some(v) = std::env::var_os(GPUS_ENV_VAR) {
        // SAFETY: the caller guarantees no other thread runs.
        unsafe {
            std::env::set_var("CUDA_VISIBLE_DEVICES", v);
            std::env::remove_var(GPUS_ENV_VAR);
        }
    }
}

/// `GPUs: CUDA_VISIBLE_DEVICES=0,1; devices: may open /dev/nvidia2 /dev/nvidia3, denied ...`.
pub fn report() -> String {
    let cvd = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => format!("CUDA_VISIBLE_DEVICES={v}"),
        Err(_) => "CUDA_VISIBLE_DEVICES unset".into(),
    };
    match std::env::var(PROBE_ENV_VAR) {
        Ok(prefix) if !prefix.is_empty() => format!("GPUs: {cvd}; {}", probe(&prefix)),
        _ => format!("GPUs: {cvd}"),
    }
}

/// `CPUs: 8 usable; Slurm gave the step 8 on this node`: what the engine may run on (its
/// affinity and cgroup quota), and what Slurm allotted the step (`SLURM_CPUS_ON_NODE`), so a
/// worker pinned to fewer CPUs than its engine needs is seen in its log.
pub fn cpus_report() -> String {
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    match std::env::var("SLURM_CPUS_ON_NODE") {
        Ok(n) => format!("CPUs: {usable} usable; Slurm gave the step {n} on this node"),
        Err(_) => format!("CPUs: {usable} usable"),
    }
}

/// Tries to open every `<prefix><N>`, in N order.
fn probe(prefix: &str) -> String {
    let path = std::path::Path::new(prefix);
    let (dir, stem) = match (path.parent(), path.file_name()) {
        (Some(d), Some(f)) => (d, f.to_string_lossy().into_owned()),
        _ => return format!("devices: {prefix} is not a device path prefix"),
    };
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&stem)?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    let (mut open, mut denied, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for (_, p) in found {
        let shown = p.display().to_string();
        match std::fs::File::open(&p) {
            Ok(_) => open.push(shown),
            Err(e) => {
                use nix::errno::Errno;
                match e.raw_os_error().map(Errno::from_raw) {
                    Some(Errno::ENXIO | Errno::ENODEV) => open.push(shown),
                    Some(Errno::EPERM | Errno::EACCES) => denied.push(shown),
                    _ => other.push(format!("{shown} ({e})")),
                }
            }
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(" ")
        }
    };
    let mut s = format!(
        "devices {prefix}N: may open {}; denied {}",
        list(&open),
        list(&denied)
    );
    if !other.is_empty() {
        s.push_str(&format!("; cannot tell {}", other.join(" ")));
    }
    s
}
