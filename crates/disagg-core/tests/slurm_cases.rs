//! The `slurm:` section, as a table: accepted as the issue writes it, and each mistake named by
//! key and line with a hint.

use std::path::Path;

use disagg_core::parse_case;

const QUICKSTART: &str = include_str!("../../../examples/quickstart.yaml");

fn with_slurm(section: &str) -> String {
    format!("{QUICKSTART}slurm:\n{section}")
}

#[test]
fn the_issue_example_is_accepted() {
    let text = with_slurm(
        "  partition: batch\n  account: myteam\n  time: \"02:00:00\"\n  job_name: disagg\n  extra_args: [\"--exclusive\"]\n  container: {image: nvcr.io/x/y:tag, mounts: [\"/lustre:/lustre\"], workdir: /workspace}\n  mpi: pmix\n",
    );
    let c = parse_case(&text, Path::new("t.yaml")).unwrap();
    let s = &c.case.slurm;
    assert_eq!(s.partition.as_deref(), Some("batch"));
    assert_eq!(s.time.as_deref(), Some("02:00:00"));
    assert_eq!(s.extra_args, vec!["--exclusive".to_string()]);
    assert_eq!(
        s.container.as_ref().unwrap().mounts,
        vec!["/lustre:/lustre"]
    );
    assert_eq!(s.mpi.as_deref(), Some("pmix"));
}

/// Options the header does not set pass, even those whose names begin like one it does.
#[test]
fn extra_args_the_header_does_not_own_pass() {
    for arg in [
        "--exclusive",
        "--mem=0",
        "--cpus-per-task=8",
        "--time-min=10",
        "--nodelist=n[1-3]",
        "--export-file=/tmp/e",
        "--gres=gpu:8",
        "-G8",
        "--begin=now+1hour",
        "--error-free",
        "--segment=1",
    ] {
        let text = with_slurm(&format!("  extra_args: [\"{arg}\"]\n"));
        let r = parse_case(&text, Path::new("t.yaml"));
        // `--error-free` is no sbatch option, but neither is it `--error`.
        assert!(r.is_ok(), "{arg}: {:?}", r.err().map(|e| e.to_string()));
    }
}

#[test]
fn an_absent_section_takes_the_cluster_defaults() {
    let c = parse_case(QUICKSTART, Path::new("t.yaml")).unwrap();
    assert_eq!(c.case.slurm, Default::default());
}

#[test]
fn bad_slurm_sections_name_the_key_line_and_fix() {
    // (what, section, key, message fragment, hint fragment)
    let table = [
        (
            "unknown key",
            "  partiton: batch\n",
            "slurm.partiton",
            "unknown key `partiton` in `slurm`",
            "did you mean `partition`?",
        ),
        (
            "unknown container key",
            "  container: {image: x, mount: [a]}\n",
            "slurm.container.mount",
            "unknown key `mount`",
            "did you mean `mounts`?",
        ),
        (
            "time not a Slurm time",
            "  time: 2h\n",
            "slurm.time",
            "is not a Slurm time",
            "02:00:00",
        ),
        (
            "a GPU gres below what the plan puts on a node",
            "  extra_args: [\"--gres=gpu:h100:1\"]\n",
            "slurm.extra_args",
            "asks for 1 GPU(s) per node, but the plan puts 2 on a node",
            "hardware.gpus_per_node",
        ),
        (
            "GPUs per node below the plan's, in --gpus-per-node",
            "  extra_args: [\"--gpus-per-node=1\"]\n",
            "slurm.extra_args",
            "asks for 1 GPU(s) per node, but the plan puts 2 on a node",
            "hardware.gpus_per_node",
        ),
        (
            "GPUs for the whole job below the plan's",
            "  extra_args: [\"--gpus=1\"]\n",
            "slurm.extra_args",
            "asks for 1 GPU(s) for the whole job, but its workers use 2",
            "drop it",
        ),
        (
            "GPUs for the whole job below the plan's, short",
            "  extra_args: [\"-G1\"]\n",
            "slurm.extra_args",
            "asks for 1 GPU(s) for the whole job",
            "drop it",
        ),
        (
            "a segment the job's node count is no multiple of",
            "  extra_args: [\"--segment=2\"]\n",
            "slurm.extra_args",
            "asks Slurm to place the job's nodes in segments of 2, but the job has 1 node(s)",
            "`--segment=1`",
        ),
        (
            "an option and its value as two items",
            "  extra_args: [\"--mem\", \"0\"]\n",
            "slurm.extra_args",
            "`0` is not an sbatch option",
            "`\"--mem=0\"`",
        ),
        (
            "extra_args as one string",
            "  extra_args: \"--exclusive\"\n",
            "slurm.extra_args",
            "invalid type",
            "`[\"--exclusive\", \"--mem=0\"]`",
        ),
        (
            "no time limit, in Slurm's words",
            "  time: UNLIMITED\n",
            "slurm.time",
            "asks Slurm for no time limit",
            "02:00:00",
        ),
        (
            "no time limit as 0",
            "  time: \"0\"\n",
            "slurm.time",
            "to Slurm, 0 means no limit",
            "02:00:00",
        ),
        (
            "seconds Slurm rounds up to the job deadline",
            "  time: \"29:59\"\n",
            "slurm.time",
            "(30m: `29:59`, which Slurm rounds up to whole minutes) must be longer than \
             timeouts.job (30m)",
            "benchmark < job < Slurm time limit",
        ),
        (
            "time shorter than the job deadline",
            "  time: \"10\"\n",
            "slurm.time",
            "must be longer than timeouts.job (30m)",
            "benchmark < job < Slurm time limit",
        ),
        (
            "newline in a header value",
            "  partition: \"a\\nb\"\n",
            "slurm.partition",
            "newline",
            "one line",
        ),
        (
            "backslash in a header value",
            "  account: 'a\\b'\n",
            "slurm.account",
            "backslash",
            "without backslashes",
        ),
        (
            "extra arg that is no option",
            "  extra_args: [exclusive]\n",
            "slurm.extra_args",
            "`exclusive` is not an sbatch option",
            "one item",
        ),
        (
            "mpi with a space",
            "  mpi: \"pmix x\"\n",
            "slurm.mpi",
            "not an MPI plugin name",
            "pmix",
        ),
        (
            "more front nodes than routers",
            "  front_nodes: 2\n",
            "slurm.front_nodes",
            "2 front nodes for 1 router(s)",
            "router.replicas",
        ),
        (
            "container without image",
            "  container: {image: \"\"}\n",
            "slurm.container.image",
            "must name an image",
            "image:",
        ),
        (
            "mount with a comma",
            "  container: {image: x, mounts: [\"/a:/a,/b:/b\"]}\n",
            "slurm.container.mounts",
            "without commas",
            "own item",
        ),
        (
            "a time limit past the one validate checks",
            "  extra_args: [\"--time=00:01:00\"]\n",
            "slurm.extra_args",
            "`--time=00:01:00` overrides the job's time limit",
            "use `slurm.time` instead",
        ),
        (
            "two options the header owns: both said at once",
            "  extra_args: [\"--time=00:01:00\", \"--exclusive\", -N2]\n",
            "slurm.extra_args",
            "checks against timeouts.job; `-N2` overrides the node count",
            "use `slurm.time` instead",
        ),
        (
            "a short option the header owns, value attached",
            "  extra_args: [-N2]\n",
            "slurm.extra_args",
            "overrides the node count the plan needs",
            "disagg plan --launcher slurm",
        ),
        (
            "an export without ALL",
            "  extra_args: [--exclusive, --export=NONE]\n",
            "slurm.extra_args",
            "without ALL the job steps lose PATH",
            "`env`",
        ),
        (
            "the job log moved out of the run folder",
            "  extra_args: [\"-o /tmp/x-%j.log\"]\n",
            "slurm.extra_args",
            "moves the job's log out of the run folder",
            "kept in the run folder",
        ),
        (
            "an owned option written with a space",
            "  extra_args: [\"--time 00:10:00\"]\n",
            "slurm.extra_args",
            "`--time 00:10:00` overrides the job's time limit",
            "use `slurm.time` instead",
        ),
        (
            "an option and its value as one item with a space",
            "  extra_args: [\"--mem 0\"]\n",
            "slurm.extra_args",
            "`--mem 0` holds a space",
            "`\"--mem=0\"`",
        ),
        (
            "two options in one item",
            "  extra_args: [\"--exclusive --mem=0\"]\n",
            "slurm.extra_args",
            "holds a space",
            "give each option as an item of its own: `[\"--exclusive\", \"--mem=0\"]`",
        ),
        (
            "a signal before the time limit, which nothing takes",
            "  extra_args: [\"--signal=B:USR1@100\"]\n",
            "slurm.extra_args",
            "no process of the run (nor an engine) takes that signal",
            "timeouts.job",
        ),
        (
            "sbatch told to block until the job ends",
            "  extra_args: [--wait]\n",
            "slurm.extra_args",
            "would wait for each other",
            "--no-wait",
        ),
        (
            "mount of too many fields",
            "  container: {image: x, mounts: [\"/tmp/a:b:c:d\"]}\n",
            "slurm.container.mounts",
            "SRC[:DST[:FLAGS]]",
            "/data:/data:ro",
        ),
        (
            "extra_args not a list",
            "  extra_args: --exclusive\n",
            "slurm.extra_args",
            "invalid type",
            "list",
        ),
    ];
    for (what, section, key, msg, hint) in table {
        let text = with_slurm(section);
        let err = match parse_case(&text, Path::new("t.yaml")) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        let shown = err.to_string();
        assert_eq!(err.key, key, "{what}: {shown}");
        assert!(
            err.line.is_some_and(|l| l >= 37),
            "{what}: points into the section: {shown}"
        );
        assert!(err.message.contains(msg), "{what}: {shown}");
        assert!(
            err.hint.clone().unwrap_or_default().contains(hint),
            "{what}: {shown}"
        );
    }
}

#[test]
fn a_container_case_refuses_a_path_its_mounts_cannot_hold_naming_it() {
    let text = with_slurm("  container: {image: x}\n").replace(
        "model: {name: llama-3.1-8b, precision: bf16}",
        "model: {name: llama-3.1-8b, precision: bf16, path: \"/models/a:b\"}",
    );
    let err = parse_case(&text, Path::new("t.yaml")).unwrap_err();
    assert_eq!(err.key, "model.path", "{err}");
    assert!(
        err.message
            .contains("`/models/a:b` cannot be mounted into the container"),
        "{err}"
    );
    assert!(err.line.is_some(), "{err}");
    // Without a container the same path is fine.
    let plain = QUICKSTART.replace(
        "model: {name: llama-3.1-8b, precision: bf16}",
        "model: {name: llama-3.1-8b, precision: bf16, path: \"/models/a:b\"}",
    );
    parse_case(&plain, Path::new("t.yaml")).unwrap();
}
