//! The case's `slurm:` section: what the batch script's header and the `srun` steps take from
//! the case. Every key is optional; an absent section means "the cluster's defaults".

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Slurm's time format (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH[:MM[:SS]]`); the cluster's default
    /// when absent. Slurm rounds it up to whole minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The job name; the config name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// More `sbatch` options, each one argument (e.g. `--exclusive`, `--gres=gpu:8`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// A pyxis/enroot container for every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// `srun --mpi=` for worker steps only (e.g. `pmix`); the router and benchmark never get MPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi: Option<String>,
    /// Whether the cluster hands out GPUs as gres (`gpu`), as GPU clusters do. Then the job asks
    /// for `hardware.gpus_per_node` GPUs per node (unless `extra_args` already asks for GPUs),
    /// each worker step for its own (`--gres=gpu:k`), and the router and benchmark steps for
    /// none. `false` for a cluster without GPU gres: nothing is asked, and each worker sets
    /// `CUDA_VISIBLE_DEVICES` inside its step, where Slurm no longer touches it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub gpu_gres: bool,
    /// Nodes of their own for the routers and the benchmark, after the workers' nodes: router
    /// replica `i` on front node `i % front_nodes`, the benchmark on the first. 0 (the default):
    /// they run on the workers' nodes (replica `i` on node `i`, the benchmark on node 0). Slurm
    /// asks the same of every node of a job, so with `gpu_gres` the front nodes are GPU nodes too.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub front_nodes: u32,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            time: None,
            job_name: None,
            extra_args: Vec::new(),
            container: None,
            mpi: None,
            gpu_gres: true,
            front_nodes: 0,
        }
    }
}

impl SlurmSpec {
    /// Whether `extra_args` already asks Slurm for GPUs (`--gres=gpu:N`, `--gpus*`, `-G`).
    pub fn asks_for_gpus(&self) -> bool {
        self.extra_args.iter().any(|a| {
            a.strip_prefix("--gres=")
                .is_some_and(|g| g.split(',').any(|r| r == "gpu" || r.starts_with("gpu:")))
                || a.starts_with("--gpus")
                || a.starts_with("-G")
        })
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
}

/// Parses Slurm's `--time` formats into a duration, rounded up to whole minutes as Slurm does.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    parse_time_secs(s).map(|secs| Duration::from_secs(secs.div_ceil(60) * 60))
}

/// [`parse_time`] before Slurm's rounding up to whole minutes; `None` when not a time.
pub fn parse_time_exact(s: &str) -> Option<Duration> {
    parse_time_secs(s).ok().map(Duration::from_secs)
}

fn parse_time_secs(s: &str) -> Result<u64, String> {
    // Slurm's words for no limit: disagg bounds every run by timeouts.job, under the limit.
    if ["unlimited", "infinite", "-1"].contains(&s.trim().to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{s}` asks Slurm for no time limit; disagg checks timeouts.job against the job's \
             limit, so give one above timeouts.job, or leave `slurm.time` out to take the \
             partition's default"
        ));
    }
    let bad = || {
        format!("`{s}` is not a Slurm time; use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS")
    };
    let num = |p: &str| -> Result<u64, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<u64>().map_err(|_| bad())
    };
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => num(m)? * 60,
        (None, [m, sec]) => num(m)? * 60 + num(sec)?,
        (None, [h, m, sec]) => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
        (Some(d), [h]) => d * 86400 + num(h)? * 3600,
        (Some(d), [h, m]) => d * 86400 + num(h)? * 3600 + num(m)? * 60,
        (Some(d), [h, m, sec]) => d * 86400 + num(h)? * 3600 + num(m)? * 60 + num(sec)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!(
            "`{s}` is no time at all to disagg (to Slurm, 0 means no limit); give a limit above \
             timeouts.job, or leave `slurm.time` out to take the partition's default"
        ));
    }
    Ok(secs)
}

/// Why `v` cannot go into a `#SBATCH` line, if it cannot: sbatch reads those lines with its own
/// tokenizer, which treats backslashes as escapes and ends at a newline, unlike `sh`.
pub fn header_value_problem(v: &str) -> Option<&'static str> {
    if v.is_empty() {
        Some("is empty")
    } else if v.chars().any(|c| c.is_control()) {
        Some("contains a newline or another control character")
    } else if v.contains('\\') {
        Some("contains a backslash, which sbatch reads as an escape")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times() {
        let m = |s| parse_time(s).map(|d| d.as_secs() / 60);
        assert_eq!(m("30"), Ok(30));
        assert_eq!(m("1:30"), Ok(2)); // rounded up to whole minutes
        assert_eq!(m("02:00:00"), Ok(120));
        assert_eq!(m("1-00"), Ok(1440));
        assert_eq!(m("1-01:01"), Ok(1501));
        assert_eq!(m("0-00:00:59"), Ok(1));
        for bad in ["", "x", "1h", "1:2:3:4", "-1", "0", "1--2"] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }
}
