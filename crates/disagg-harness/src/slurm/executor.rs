//! Starts each role as an `srun` step of the job we run in. The `srun` process is tracked like a
//! local role (own process group, exits observed without reaping); signalling it reaches the
//! step, because `srun` forwards TERM to its tasks.

use std::fs::File;
use std::process::Command;

use disagg_core::{Plan, RolePlan};

use super::steps;
use crate::executor::{Executor, Running, launch_process};

/// Runs inside an allocation: knows the job's hosts and the plan's Slurm settings.
#[derive(Debug)]
pub struct SlurmExecutor {
    plan: Plan,
    job: steps::Job,
}

impl SlurmExecutor {
    pub fn new(plan: &Plan, job: steps::Job) -> Self {
        Self {
            plan: plan.clone(),
            job,
        }
    }

    /// From the allocation's environment: `SLURM_JOB_NODELIST`, expanded by `scontrol`, and
    /// `SLURM_JOB_CPUS_PER_NODE`.
    pub fn from_env(plan: &Plan) -> Result<Self, String> {
        let list = std::env::var("SLURM_JOB_NODELIST")
            .map_err(|_| "SLURM_JOB_NODELIST is not set: not inside a Slurm job".to_string())?;
        let out = Command::new("scontrol")
            .args(["show", "hostnames", &list])
            .output()
            .map_err(|e| format!("cannot run `scontrol show hostnames`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`scontrol show hostnames {list}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let hosts: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if (hosts.len() as u32) < plan.nodes {
            return Err(format!(
                "the job has {} node(s), the plan needs {}",
                hosts.len(),
                plan.nodes
            ));
        }
        let cpus_var = std::env::var("SLURM_JOB_CPUS_PER_NODE").unwrap_or_default();
        let cpus = steps::parse_cpus_per_node(&cpus_var).ok_or_else(|| {
            format!("SLURM_JOB_CPUS_PER_NODE is `{cpus_var}`, not Slurm's `72(x2),36` form")
        })?;
        let threads_per_core = Command::new("scontrol")
            .args(["show", "node", "-o", &hosts.join(",")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| steps::parse_threads_per_core(&String::from_utf8_lossy(&o.stdout), &hosts))
            .unwrap_or_else(|| vec![1; hosts.len()]);
        Ok(Self::new(
            plan,
            steps::Job {
                hosts,
                cpus,
                threads_per_core,
            },
        ))
    }
}

impl Executor for SlurmExecutor {
    fn launch(&mut self, role: &RolePlan, log: File) -> std::io::Result<Box<dyn Running>> {
        let s = steps::step(&self.plan, role, &self.job);
        launch_process(&s.argv, &s.env_set, &s.env_unset, log)
    }
}
