//! The `srun` step of each role: pure, so `disagg plan --launcher slurm` and the snapshot tests
//! show exactly what the executor starts.

use std::collections::BTreeMap;

use disagg_core::{Plan, RolePlan};

/// Variables a step of the router or the benchmark must not see: an MPI library finding them
/// would try to join the workers' world. Cleared by the role process itself before it starts
/// anything, because `srun` adds `SLURM_*` to the step after we hand it the environment.
pub const MPI_ENV_PREFIXES: &[&str] = &["PMI", "PMIX", "OMPI", "SLURM_"];

/// The variable through which a role process learns which prefixes to clear.
pub const CLEAR_ENV_VAR: &str = "DISAGG_CLEAR_ENV_PREFIXES";

/// On a cluster without GPU gres, a worker's GPUs travel under this name and the role sets
/// `CUDA_VISIBLE_DEVICES` from it inside the step: Slurm removes a `CUDA_VISIBLE_DEVICES` it did
/// not set itself from a step's environment.
pub const GPUS_ENV_VAR: &str = "DISAGG_CUDA_VISIBLE_DEVICES";

/// How long a worker step may wait for its resources before srun gives up (`--immediate`).
/// Within our own allocation every step fits by construction, so waiting means the plan and the
/// job disagree (GPUs asked in `extra_args` too few for the plan): fail in seconds with srun's
/// reason, instead of a step that never starts and a worker_startup timeout.
pub const STEP_WAIT_S: u32 = 5;

const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// A process to start: argv plus environment changes, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub argv: Vec<String>,
    pub env_set: BTreeMap<String, String>,
    pub env_unset: Vec<String>,
}

/// The step for `role`; `hosts` are the job's nodes in order (from `SLURM_JOB_NODELIST`).
pub fn step(plan: &Plan, role: &RolePlan, hosts: &[String]) -> Step {
    let host = |i: u32| {
        hosts
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("<node{i}>"))
    };
    let mut argv: Vec<String> = vec![
        "srun".into(),
        format!("--job-name={}", role.role),
        // Without ALL the step loses PATH and everything else the batch script had.
        "--export=ALL".into(),
    ];
    let mut env_set = role.env_set.clone();
    if role.role.is_worker() {
        let mut nodes: Vec<u32> = role.gpus.iter().map(|g| g.node).collect();
        nodes.dedup();
        if nodes.is_empty() {
            nodes.push(0);
        }
        let ranks = role.ranks.max(1);
        let per_node = ranks.div_ceil(nodes.len() as u32);
        argv.extend([
            format!("--nodes={}", nodes.len()),
            format!("--ntasks={ranks}"),
            format!("--ntasks-per-node={per_node}"),
            format!(
                "--nodelist={}",
                nodes.iter().map(|n| host(*n)).collect::<Vec<_>>().join(",")
            ),
            // Only the CPUs asked for: without it a step takes every CPU of its nodes, and the
            // next server's step on the same node waits ("Requested nodes are busy").
            "--exact".into(),
            "--kill-on-bad-exit=1".into(),
            format!("--immediate={STEP_WAIT_S}"),
        ]);
        // Slurm sets CUDA_VISIBLE_DEVICES in every step of a job with GPUs (to the step's own,
        // or all of the node's for a step without --gres) and removes it from the steps of a
        // job without: the plan's value cannot survive as an ordinary variable.
        let visible = env_set.remove(CUDA_VISIBLE_DEVICES);
        if plan.slurm.gpu_gres {
            // Exactly this worker's GPUs, per node; with device cgroups the others cannot even
            // be opened. A step spanning nodes asks for its largest share on every node.
            let most = nodes
                .iter()
                .map(|n| role.gpus.iter().filter(|g| g.node == *n).count())
                .max()
                .unwrap_or(0);
            argv.push(format!("--gres=gpu:{most}"));
        } else if let Some(v) = visible {
            env_set.insert(GPUS_ENV_VAR.into(), v);
        }
        if let Some(mpi) = &plan.slurm.mpi {
            argv.push(format!("--mpi={mpi}"));
        }
    } else {
        argv.extend([
            "--overlap".into(),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            "--ntasks-per-node=1".into(),
            // Router replica i on the job's node i (wrapping around); the benchmark on the first.
            format!("--nodelist={}", host(plan.router_node(role.role))),
            "--mpi=none".into(),
        ]);
        // Without it an --overlap step is given every GPU of the job on its node.
        if plan.slurm.gpu_gres {
            argv.push("--gres=gpu:0".into());
        }
        env_set.insert(CLEAR_ENV_VAR.into(), MPI_ENV_PREFIXES.join(","));
    }
    argv.extend(container_args(plan));
    argv.push("--".into());
    argv.extend(role.argv.iter().cloned());
    Step {
        argv,
        env_set,
        env_unset: role.env_unset.clone(),
    }
}

/// pyxis/enroot flags, for every step that runs our binary.
pub fn container_args(plan: &Plan) -> Vec<String> {
    let Some(c) = &plan.slurm.container else {
        return Vec::new();
    };
    let mut v = vec![format!("--container-image={}", c.image)];
    if !c.mounts.is_empty() {
        v.push(format!("--container-mounts={}", c.mounts.join(",")));
    }
    if let Some(w) = &c.workdir {
        v.push(format!("--container-workdir={w}"));
    }
    v
}

/// Removes every variable whose name starts with one of `prefixes` (comma-separated) from this
/// process's environment, and the request itself; returns how many it removed.
///
/// # Safety
/// Must run before the process starts any thread (the environment is not thread-safe).
pub unsafe fn clear_env_prefixes(prefixes: &str) -> usize {
    let prefixes: Vec<&str> = prefixes.split(',').filter(|p| !p.is_empty()).collect();
    let doomed: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| {
            let k = k.to_string_lossy();
            k == CLEAR_ENV_VAR || prefixes.iter().any(|p| k.starts_with(p))
        })
        .collect();
    let n = doomed.len();
    for k in doomed {
        // SAFETY: the caller guarantees no other thread runs.
        unsafe { std::env::remove_var(k) };
    }
    n
}

/// The steps as comment lines after the script, for `disagg plan --launcher slurm`: the job's
/// hosts are known only inside it, so they show as `<nodeI>`.
pub fn render_steps(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::from("\n# srun steps started by `disagg supervise --executor slurm`:\n");
    for r in &plan.roles {
        let st = step(plan, r, &[]);
        let _ = writeln!(s, "# {}: {}", r.role, super::quote::sh_join(&st.argv));
        for (k, v) in &st.env_set {
            let _ = writeln!(s, "#   env set:   {k}={v}");
        }
        for k in &st.env_unset {
            let _ = writeln!(s, "#   env unset: {k}");
        }
        if let Some(e) = &r.engine {
            let ranks = if r.ranks > 1 {
                format!(" (on each of {} ranks)", r.ranks)
            } else {
                String::new()
            };
            let _ = writeln!(s, "#   engine{ranks}: {}", super::quote::sh_join(&e.argv));
        }
    }
    s
}
