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

/// The job's tasks per node, which srun takes as its `--ntasks-per-node` when inherited.
const NTASKS_PER_NODE: &str = "SLURM_NTASKS_PER_NODE";

/// A process to start: argv plus environment changes, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub argv: Vec<String>,
    pub env_set: BTreeMap<String, String>,
    pub env_unset: Vec<String>,
}

/// What a job holds, known only inside it: its nodes in order (`SLURM_JOB_NODELIST`) and the
/// CPUs it has on each (`SLURM_JOB_CPUS_PER_NODE`). Empty outside a job (`disagg plan`), where
/// they show as `<nodeI>` and `<CPUs…>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    pub hosts: Vec<String>,
    pub cpus: Vec<u32>,
    /// Hardware threads per core of each node (`scontrol show node`: `ThreadsPerCore`); 1
    /// where unknown. Where Slurm allocates whole cores, a task's CPUs are rounded up to
    /// them, so a share is asked in whole cores, or the workers' steps would ask more than the
    /// job holds.
    pub threads_per_core: Vec<u32>,
}

/// `scontrol show node -o`'s `ThreadsPerCore` of each of `hosts`, in order (1 where absent).
pub fn parse_threads_per_core(out: &str, hosts: &[String]) -> Vec<u32> {
    let of = |host: &str| -> Option<u32> {
        out.lines()
            .find(|l| {
                l.split_whitespace()
                    .any(|w| w == format!("NodeName={host}"))
            })?
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ThreadsPerCore="))?
            .parse()
            .ok()
    };
    hosts.iter().map(|h| of(h).unwrap_or(1).max(1)).collect()
}

/// `SLURM_JOB_CPUS_PER_NODE` (`72(x2),36`): the job's CPUs on each of its nodes, in order.
pub fn parse_cpus_per_node(v: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim) {
        let (n, times) = match part.split_once("(x") {
            Some((n, rest)) => (n, rest.strip_suffix(')')?.parse::<usize>().ok()?),
            None => (part, 1),
        };
        let n = n.parse::<u32>().ok()?;
        out.extend(std::iter::repeat_n(n, times));
    }
    (!out.is_empty()).then_some(out)
}

/// `--cpus-per-task` of a worker's tasks: its share of the job's CPUs on each of its nodes, as
/// its share of that node's GPUs (`gpus` of `gpus_per_node`), split over its `tasks` there;
/// the least over its nodes, and at least 1. Without the job's CPUs (outside it), the same as
/// a formula: `<CPUs>` (all of them), `<CPUs/8>`, `<CPUs*3/8>`.
fn cpus_per_task(per_node: &[(u32, u32, u32)], gpus_per_node: u32, job: &Job) -> String {
    let g = gpus_per_node.max(1);
    // (numerator, denominator) of each task's share, and the CPUs it makes on that node.
    let shares: Vec<(u32, u32, Option<u32>)> = per_node
        .iter()
        .map(|&(node, gpus, tasks)| {
            let den = g * tasks.max(1);
            let threads = job
                .threads_per_core
                .get(node as usize)
                .copied()
                .unwrap_or(1)
                .max(1);
            let cpus = job.cpus.get(node as usize).map(|c| {
                let k = (u64::from(*c) * u64::from(gpus) / u64::from(den)) as u32;
                // Whole cores: Slurm would round a part of one up, past the job's CPUs.
                (k / threads * threads).max(threads)
            });
            (gpus, den, cpus)
        })
        .collect();
    if shares.iter().all(|s| s.2.is_some()) {
        let least = shares.iter().filter_map(|s| s.2).min().unwrap_or(1);
        return least.max(1).to_string();
    }
    let Some(&(num, den, _)) = shares
        .iter()
        .min_by(|a, b| (u64::from(a.0) * u64::from(b.1)).cmp(&(u64::from(b.0) * u64::from(a.1))))
    else {
        return "1".into();
    };
    if num == 0 {
        return "1".into();
    }
    let d = gcd(num, den);
    match (num / d, den / d) {
        (1, 1) => "<CPUs>".into(),
        (1, den) => format!("<CPUs/{den}>"),
        (num, den) => format!("<CPUs*{num}/{den}>"),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// The step for `role` in `job`.
pub fn step(plan: &Plan, role: &RolePlan, job: &Job) -> Step {
    let hosts = &job.hosts;
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
    let mut env_unset = role.env_unset.clone();
    if role.role.is_worker() {
        let mut nodes: Vec<u32> = role.gpus.iter().map(|g| g.node).collect();
        nodes.dedup();
        if nodes.is_empty() {
            nodes.push(0);
        }
        let ranks = role.ranks.max(1);
        // GPUs of the worker on each of its nodes.
        let shares: Vec<u32> = nodes
            .iter()
            .map(|n| role.gpus.iter().filter(|g| g.node == *n).count() as u32)
            .collect();
        argv.extend([
            format!("--nodes={}", nodes.len()),
            format!("--ntasks={ranks}"),
        ]);
        if nodes.len() > 1
            && ranks as usize == role.gpus.len()
            && shares.windows(2).any(|w| w[0] != w[1])
        {
            // One rank per GPU over nodes it does not fill alike (8 + 4): srun would spread the
            // ranks evenly (6 + 6) and ignore `--ntasks-per-node`, so each rank is put on its
            // node by name, block-wise as the plan's GPUs are. The job's own
            // SLURM_NTASKS_PER_NODE, which srun reads as that option, is dropped.
            argv.push("--distribution=arbitrary".into());
            let per_rank: Vec<String> = nodes
                .iter()
                .zip(&shares)
                .flat_map(|(n, k)| std::iter::repeat_n(host(*n), *k as usize))
                .collect();
            argv.push(format!("--nodelist={}", per_rank.join(",")));
            env_unset.push(NTASKS_PER_NODE.into());
        } else {
            let per_node = if ranks as usize == role.gpus.len() {
                shares.iter().copied().max().unwrap_or(1)
            } else {
                ranks.div_ceil(nodes.len() as u32)
            };
            argv.extend([
                format!("--ntasks-per-node={per_node}"),
                format!(
                    "--nodelist={}",
                    nodes.iter().map(|n| host(*n)).collect::<Vec<_>>().join(",")
                ),
            ]);
        }
        // Tasks on each node: one per GPU there for a rank-per-GPU engine, else spread evenly.
        let tasks_on = |share: u32| {
            if ranks as usize == role.gpus.len() {
                share
            } else {
                ranks.div_ceil(nodes.len() as u32)
            }
        };
        let per_node: Vec<(u32, u32, u32)> = nodes
            .iter()
            .zip(&shares)
            .map(|(n, k)| (*n, *k, tasks_on(*k)))
            .collect();
        argv.extend([
            // Only the CPUs asked for: without it a step takes every CPU of its nodes, and the
            // next server's step on the same node waits ("Requested nodes are busy"). What it
            // asks is its GPUs' share of the job's CPUs there, not srun's default of one per
            // task, which under core binding (task/affinity, or task/cgroup with
            // ConstrainCores) would run a TP-8 engine's every process on one CPU.
            "--exact".into(),
            format!(
                "--cpus-per-task={}",
                cpus_per_task(&per_node, plan.gpus_per_node, job)
            ),
            // The job's memory on the node without taking it from the other steps: a step's
            // default (DefMemPerCPU × its CPUs where memory is a consumable) is far less than
            // an engine loading its weights needs.
            "--mem=0".into(),
            "--kill-on-bad-exit=1".into(),
            format!("--immediate={STEP_WAIT_S}"),
        ]);
        // Slurm sets CUDA_VISIBLE_DEVICES in every step of a job with GPUs (to the step's own,
        // or all of the node's for a step without --gres) and removes it from the steps of a
        // job without: the plan's value cannot survive as an ordinary variable.
        let visible = env_set.remove(CUDA_VISIBLE_DEVICES);
        if plan.slurm.gpu_gres {
            // Exactly this worker's GPUs, per node; with device cgroups the others cannot even
            // be opened. A step spanning nodes asks for its largest share on every node: the
            // plan gives such a worker its last node to itself, so the GPUs it holds there
            // beyond its share stay idle rather than taken from another worker.
            let most = shares.iter().copied().max().unwrap_or(0);
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
    argv.extend(container_args(
        plan,
        &container_name(&plan.run_id),
        &plan.run_dir.display().to_string(),
    ));
    argv.push("--".into());
    argv.extend(role.argv.iter().cloned());
    Step {
        argv,
        env_set,
        env_unset,
    }
}

/// The job's container on every node: one per node, made by the first step there (the setup
/// step, or one of its own) and reused by every later step, so what the setup installs is there
/// for the workers and no step imports the image again. Named by the job (the run id), so a
/// cluster keeping named containers across jobs never hands a job another's.
pub fn container_name(run_id: &str) -> String {
    format!("disagg-{run_id}")
}

/// pyxis/enroot flags, for every step that runs our binary: the image, the job's named
/// container, every mount the step needs (see [`container_mounts`]) and the workdir: the
/// case's, else `run_dir` (the run folder, where a step runs without a container too; pyxis
/// would start it in the image's own WORKDIR, `/workspace` in NGC images, where the setup's and
/// a command engine's relative paths name other files).
pub fn container_args(plan: &Plan, name: &str, run_dir: &str) -> Vec<String> {
    let Some(c) = &plan.slurm.container else {
        return Vec::new();
    };
    let mut v = vec![
        format!("--container-image={}", c.image),
        format!("--container-name={name}"),
    ];
    // A path that cannot be written in the list was refused before submission.
    let mounts = container_mounts(plan).unwrap_or_else(|_| c.mounts.clone());
    if !mounts.is_empty() {
        v.push(format!("--container-mounts={}", mounts.join(",")));
    }
    v.push(format!(
        "--container-workdir={}",
        c.workdir.as_deref().unwrap_or(run_dir)
    ));
    v
}

/// A path a container step needs that cannot be mounted.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} {path} cannot be mounted into the container: `--container-mounts` separates mounts with `,` and its fields with `:`"
)]
pub struct MountError {
    pub what: &'static str,
    pub path: String,
}

/// The case's mounts, plus each path a container step needs that they do not already show at
/// the same path: the `disagg` binary (every step runs it), the config folder holding the run
/// folder (plan, logs, rendezvous, engine config files), the benchmark's dataset and tokenizer,
/// and `model.path` when it exists here (a path that does not is taken to be inside the image).
pub fn container_mounts(plan: &Plan) -> Result<Vec<String>, MountError> {
    let Some(c) = &plan.slurm.container else {
        return Ok(Vec::new());
    };
    let mut mounts = c.mounts.clone();
    let mut needed: Vec<(&'static str, String)> = Vec::new();
    if let Some(exe) = plan.roles.first().and_then(|r| r.argv.first()) {
        needed.push(("the disagg binary", exe.clone()));
    }
    // Written to by every step: a case's read-only mount holding it (`/lustre:/lustre:ro`, to
    // keep the weights safe) gets a writable one of it after (later mounts go over earlier).
    let mut writable = Vec::new();
    if let Some(config_dir) = plan.run_dir.parent() {
        writable.push(config_dir.display().to_string());
        needed.push(("the run folder's parent", config_dir.display().to_string()));
    }
    for (what, p) in [
        ("benchmark.dataset", &plan.benchmark.dataset),
        ("benchmark.tokenizer", &plan.benchmark.tokenizer),
    ] {
        if let Some(p) = p {
            needed.push((what, p.clone()));
        }
    }
    if let Some(m) = &plan.model_path {
        if m.starts_with('/') && std::path::Path::new(m).exists() {
            needed.push(("model.path", m.clone()));
        }
    }
    for (what, path) in needed {
        // A case's own mount showing it needs nothing written; only a path we must add has to
        // fit the list.
        if shown_at_same_path(&mounts, &path, writable.contains(&path)) {
            continue;
        }
        if path.contains(',') || path.contains(':') {
            return Err(MountError { what, path });
        }
        mounts.push(format!("{path}:{path}"));
    }
    Ok(mounts)
}

/// Whether a mount `SRC:DST[:FLAGS]` with `SRC == DST` contains `path` (a mount elsewhere would
/// show it inside the container at another path, which our argv would not find), and, when
/// `writable`, the last such mount is not read-only (`ro` among its `+`-separated flags).
fn shown_at_same_path(mounts: &[String], path: &str, writable: bool) -> bool {
    let path = std::path::Path::new(path);
    mounts
        .iter()
        .rev()
        .find_map(|m| {
            let mut fields = m.split(':');
            match (fields.next(), fields.next()) {
                (Some(src), Some(dst)) if src == dst && path.starts_with(src) => Some(
                    fields
                        .next()
                        .unwrap_or_default()
                        .split('+')
                        .all(|f| f != "ro"),
                ),
                _ => None,
            }
        })
        .is_some_and(|rw| rw || !writable)
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
        let st = step(plan, r, &Job::default());
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
            for (i, extra) in e
                .node_args
                .iter()
                .enumerate()
                .filter(|(_, x)| !x.is_empty())
            {
                let _ = writeln!(
                    s,
                    "#   node rank {i} (task {i}) adds: {}",
                    super::quote::sh_join(extra)
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(container: &str, model_path: &str, run_dir: &str) -> Plan {
        let text = format!(
            "model: {{name: m, path: {model_path}}}\nctx: {{count: 1}}\ngen: {{count: 1}}\nbenchmark: {{isl: 8, osl: 8}}\nslurm: {{container: {container}}}\n"
        );
        let case = disagg_core::parse_case(&text, std::path::Path::new("c.yaml")).unwrap();
        disagg_core::plan::build(
            &case,
            "7",
            std::path::Path::new(run_dir),
            std::path::Path::new("/opt/disagg/bin/disagg"),
        )
    }

    #[test]
    fn what_a_container_step_needs_is_mounted_at_its_own_path_unless_a_mount_shows_it() {
        // `/` exists here (a model path that does not is taken to be inside the image).
        let p = plan(
            "{image: img, mounts: [\"/ws:/ws\", \"/opt:/elsewhere\"]}",
            "/",
            "/ws/disagg_logs/x/7",
        );
        let m = container_mounts(&p).unwrap();
        assert_eq!(
            m,
            [
                "/ws:/ws",
                "/opt:/elsewhere",
                // Under /opt, but shown at /elsewhere inside: mounted again at its own path.
                "/opt/disagg/bin/disagg:/opt/disagg/bin/disagg",
                // The run folder is under /ws, shown at /ws: nothing to add. The model is at /.
                "/:/",
            ]
        );
        let args = container_args(&p, &container_name("7"), "/ws/disagg_logs/x/7").join(" ");
        assert!(args.contains("--container-name=disagg-7"), "{args}");
        // Where the step runs without a container: the run folder, unless the case says.
        assert!(
            args.ends_with("--container-workdir=/ws/disagg_logs/x/7"),
            "{args}"
        );
        let inside = plan("{image: img}", "/nowhere/model", "/ws/disagg_logs/x/7");
        assert!(
            !container_mounts(&inside)
                .unwrap()
                .iter()
                .any(|m| m.starts_with("/nowhere")),
            "a model path that is not here is left to the image"
        );
    }

    /// A read-only mount holding the run folder (`/lustre:/lustre:ro`, to keep the weights
    /// safe): every step writes there, so a writable mount of it goes after; read-only is fine
    /// for what is only read (the binary).
    #[test]
    fn a_read_only_mount_holding_the_run_folder_gets_a_writable_one_after_it() {
        let p = plan(
            "{image: img, mounts: [\"/lustre:/lustre:ro+rprivate\", \"/opt:/opt:ro\"]}",
            "/nowhere/model",
            "/lustre/ws/disagg_logs/x/7",
        );
        assert_eq!(
            container_mounts(&p).unwrap(),
            [
                "/lustre:/lustre:ro+rprivate",
                "/opt:/opt:ro",
                "/lustre/ws/disagg_logs/x:/lustre/ws/disagg_logs/x",
            ]
        );
        // A writable mount after the read-only one: nothing to add.
        let p = plan(
            "{image: img, mounts: [\"/lustre:/lustre:ro\", \"/lustre/ws:/lustre/ws\", \"/opt:/opt\"]}",
            "/nowhere/model",
            "/lustre/ws/disagg_logs/x/7",
        );
        assert_eq!(container_mounts(&p).unwrap().len(), 3);
    }

    #[test]
    fn a_path_the_mount_list_cannot_hold_is_refused_with_its_name() {
        let p = plan("{image: img}", "/m", "/ws/a,b/disagg_logs/x/7");
        let e = container_mounts(&p).unwrap_err();
        assert_eq!(e.path, "/ws/a,b/disagg_logs/x");
        assert!(
            e.to_string()
                .contains("/ws/a,b/disagg_logs/x cannot be mounted"),
            "{e}"
        );
    }

    fn built(text: &str) -> Plan {
        let case = disagg_core::parse_case(text, std::path::Path::new("c.yaml")).unwrap();
        disagg_core::plan::build(
            &case,
            "7",
            std::path::Path::new("/ws/disagg_logs/x/7"),
            std::path::Path::new("/opt/disagg/bin/disagg"),
        )
    }

    /// Its step in a job of `hosts` holding 64 CPUs on each.
    fn worker_step(plan: &Plan, role: &str, hosts: &[String]) -> Step {
        let r = plan.role(role.parse().unwrap()).unwrap();
        let job = Job {
            hosts: hosts.to_vec(),
            cpus: vec![64; hosts.len()],
            threads_per_core: vec![1; hosts.len()],
        };
        step(plan, r, &job)
    }

    fn has(st: &Step, arg: &str) -> bool {
        st.argv.iter().any(|a| a == arg)
    }

    const TRT12: &str = "model: {name: m}\nengine: trtllm\nhardware: {gpus_per_node: 8}\nctx: {count: 1, parallel: {tp: 12}}\ngen: {count: 1, parallel: {tp: 4}}\nbenchmark: {isl: 8, osl: 8}\n";

    #[test]
    fn a_worker_spanning_nodes_unevenly_puts_each_rank_on_its_node_and_holds_the_last_whole() {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let p = built(TRT12);
        assert_eq!(p.nodes, 3);
        let ctx = worker_step(&p, "CTX_0", &hosts);
        // 8 ranks on the first node, 4 on the second, named one by one; the second node's 8
        // GPUs all held (nothing else is placed there).
        let nodelist = format!("--nodelist={},b,b,b,b", ["a"; 8].join(","));
        for arg in [
            "--nodes=2",
            "--ntasks=12",
            "--distribution=arbitrary",
            nodelist.as_str(),
            "--gres=gpu:8",
        ] {
            assert!(has(&ctx, arg), "{arg} missing: {:?}", ctx.argv);
        }
        assert!(
            !ctx.argv.iter().any(|a| a.starts_with("--ntasks-per-node")),
            "{:?}",
            ctx.argv
        );
        assert!(ctx.env_unset.iter().any(|k| k == "SLURM_NTASKS_PER_NODE"));
        // GEN_0 on a node of its own, with just its 4 GPUs.
        let gen_ = worker_step(&p, "GEN_0", &hosts);
        for arg in [
            "--nodes=1",
            "--ntasks=4",
            "--ntasks-per-node=4",
            "--nodelist=c",
            "--gres=gpu:4",
        ] {
            assert!(has(&gen_, arg), "{arg} missing: {:?}", gen_.argv);
        }
        assert!(!has(&gen_, "--distribution=arbitrary"));
        // Without gres: every rank sees its node's first 8 indices (the last node is its own).
        let p = built(&format!("{TRT12}slurm: {{gpu_gres: false}}\n"));
        let ctx = worker_step(&p, "CTX_0", &hosts);
        assert_eq!(
            ctx.env_set.get(GPUS_ENV_VAR).map(String::as_str),
            Some("0,1,2,3,4,5,6,7")
        );
        assert!(!ctx.argv.iter().any(|a| a.starts_with("--gres")));
        let gen_ = worker_step(&p, "GEN_0", &hosts);
        assert_eq!(
            gen_.env_set.get(GPUS_ENV_VAR).map(String::as_str),
            Some("0,1,2,3")
        );
        assert!(has(&gen_, "--nodelist=c"));
    }

    #[test]
    fn a_worker_filling_its_nodes_runs_gpus_per_node_ranks_on_each() {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let p = built(&TRT12.replace("tp: 12", "tp: 16"));
        let ctx = worker_step(&p, "CTX_0", &hosts);
        for arg in [
            "--nodes=2",
            "--ntasks=16",
            "--ntasks-per-node=8",
            "--nodelist=a,b",
            "--gres=gpu:8",
        ] {
            assert!(has(&ctx, arg), "{arg} missing: {:?}", ctx.argv);
        }
        assert!(!has(&ctx, "--distribution=arbitrary"));
        assert!(!ctx.env_unset.iter().any(|k| k == "SLURM_NTASKS_PER_NODE"));
    }

    #[test]
    fn each_worker_task_gets_its_gpus_share_of_the_jobs_cpus_and_all_of_its_memory() {
        let hosts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let p = built(TRT12);
        // One rank per GPU: 8 CPUs each of 64 on a node of 8 GPUs, wherever the rank is.
        for role in ["CTX_0", "GEN_0"] {
            let st = worker_step(&p, role, &hosts);
            assert!(has(&st, "--cpus-per-task=8"), "{role}: {:?}", st.argv);
            assert!(has(&st, "--exact") && has(&st, "--mem=0"), "{:?}", st.argv);
        }
        // One process per server (vLLM TP 4): half a node's GPUs, half its CPUs.
        let vllm = "model: {name: m}\nengine: vllm\nhardware: {gpus_per_node: 8}\nctx: {count: 1, parallel: {tp: 4}}\ngen: {count: 1, parallel: {tp: 4}}\nbenchmark: {isl: 8, osl: 8}\n";
        let p = built(vllm);
        assert!(has(&worker_step(&p, "GEN_0", &hosts), "--cpus-per-task=32"));
        // Outside a job (`disagg plan`) the share shows as a formula; the router takes none.
        let r = p.role("GEN_0".parse().unwrap()).unwrap();
        assert!(has(
            &step(&p, r, &Job::default()),
            "--cpus-per-task=<CPUs/2>"
        ));
        let router = p.role("DISAGG_SERVER".parse().unwrap()).unwrap();
        let st = step(&p, router, &Job::default());
        assert!(!st.argv.iter().any(|a| a.starts_with("--cpus-per-task")));
        // A job holding fewer CPUs than GPUs still gives each task one.
        let tiny = Job {
            hosts: hosts.clone(),
            cpus: vec![4; 3],
            threads_per_core: vec![1; 3],
        };
        let r = built(TRT12);
        let ctx = r.role("CTX_0".parse().unwrap()).unwrap();
        assert!(has(&step(&r, ctx, &tiny), "--cpus-per-task=1"));
        // Two threads per core (Slurm allocating whole cores): a share of 3 CPUs is asked as
        // one core, 2, since Slurm would round 3 up to 4 and the ranks would not all fit.
        let ht = Job {
            hosts: hosts.clone(),
            cpus: vec![24; 3],
            threads_per_core: vec![2; 3],
        };
        assert!(has(&step(&r, ctx, &ht), "--cpus-per-task=2"));
        let tiny_ht = Job {
            cpus: vec![4; 3],
            ..ht
        };
        assert!(
            has(&step(&r, ctx, &tiny_ht), "--cpus-per-task=2"),
            "one whole core at least"
        );
    }

    #[test]
    fn threads_per_core_are_read_per_node() {
        let out = "NodeName=a Arch=x86_64 CoresPerSocket=28 ThreadsPerCore=2 CPUTot=112\nNodeName=b ThreadsPerCore=1\n";
        let hosts: Vec<String> = ["b", "a", "c"].map(String::from).to_vec();
        assert_eq!(parse_threads_per_core(out, &hosts), [1, 2, 1]);
    }

    #[test]
    fn slurms_cpus_per_node_are_read_in_node_order() {
        assert_eq!(parse_cpus_per_node("72(x2),36"), Some(vec![72, 72, 36]));
        assert_eq!(parse_cpus_per_node("16"), Some(vec![16]));
        assert_eq!(parse_cpus_per_node(""), None);
        assert_eq!(parse_cpus_per_node("8(x"), None);
    }

    #[test]
    fn a_case_mount_showing_a_path_the_list_cannot_hold_is_enough() {
        // The refusal's own hint: mount a folder holding it yourself.
        let p = plan(
            "{image: img, mounts: [\"/ws:/ws\"]}",
            "/nowhere/m",
            "/ws/a,b/disagg_logs/x/7",
        );
        let m = container_mounts(&p).unwrap();
        assert_eq!(
            m,
            ["/ws:/ws", "/opt/disagg/bin/disagg:/opt/disagg/bin/disagg"]
        );
        // A mount elsewhere does not show it at its own path: still refused.
        let p = plan(
            "{image: img, mounts: [\"/ws:/inside\"]}",
            "/nowhere/m",
            "/ws/a,b/disagg_logs/x/7",
        );
        assert_eq!(
            container_mounts(&p).unwrap_err().path,
            "/ws/a,b/disagg_logs/x"
        );
    }
}
