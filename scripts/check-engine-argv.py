#!/usr/bin/env python3
"""Checks every worker's engine argv in `disagg plan --json` output with the real engines' own
command-line parsers, so a flag an engine rejects is caught before a GPU job is queued.

    disagg plan --json examples/vllm.yaml > vllm.json
    scripts/check-engine-argv.py --vllm-python VENV/bin/python \
        --sglang-python VENV2/bin/python vllm.json sglang.json ...

vLLM and SGLang pin different torch versions, so each is checked by the Python of its own
environment (`--vllm-python`, `--sglang-python`); this script re-runs itself there with
`--inner`. What is checked, per engine:

- vllm:   `vllm serve`'s own parser (the `serve` subcommand of vLLM's CLI, built by
          `make_arg_parser`), `validate_parsed_serve_args`, `AsyncEngineArgs.from_cli_args`,
          the KV-transfer config (`KVTransferConfig`, and a connector vLLM knows), the NIXL
          side-channel variables as vLLM reads them, and that the served model name is the one
          the benchmark sends.
- sglang: `python -m sglang.launch_server`'s own parser (`ServerArgs.add_cli_args`, as
          `prepare_server_args` builds it), `ServerArgs.from_cli_args`, the choices of the
          disaggregation flags, and the served model name.

The placeholders the worker role fills in at start ({host}, {port}, {bootstrap_port}, the
rendezvous of a server spanning nodes, and those in the engine's env) get sample values, and a
server spanning nodes is checked at each node rank's argv. Nothing is started and no model is downloaded, so checks
that need the model's config (`create_engine_config()`, ServerArgs' resolution hooks) are not
run. Exit status: 0 when every worker passes, 1 when one fails, 2 on bad usage.
"""

import argparse
import json
import os
import subprocess
import sys

SAMPLE = {
    "{host}": "0.0.0.0",
    "{port}": "8000",
    "{bootstrap_port}": "8998",
    "{side_channel_port}": "5600",
    "{publish_host}": "node-a",
    "{dist_init_host}": "node-a",
    "{dist_init_port}": "29500",
}


def fill(s):
    for k, v in SAMPLE.items():
        s = s.replace(k, v)
    return s


def engine_of(argv):
    if argv[:2] == ["vllm", "serve"]:
        return "vllm"
    if len(argv) >= 3 and argv[1:3] == ["-m", "sglang.launch_server"]:
        return "sglang"
    return None


# ---------------------------------------------------------------------------------------------
# Inside an engine's environment: one worker, given as JSON on stdin.


def inner_vllm(w):
    import contextlib
    import io

    env = w["env"]
    os.environ.update(env)
    import vllm  # noqa: F401
    import vllm.envs as envs
    from vllm import platforms

    # Without a GPU vLLM cannot infer a device, and its parser's defaults need one: use its CPU
    # platform, as `vllm bench` does. This changes the device default only, not which flags parse.
    if platforms.current_platform.is_unspecified():
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    sub = parser.add_subparsers(required=False, dest="subparser")
    cmd = ServeSubcommand()
    cmd.subparser_init(sub)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(w["argv"][1:])
    except SystemExit:
        return [err.getvalue().strip().splitlines()[-1]]
    problems = []
    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag
    try:
        cmd.validate(args)
        engine_args = AsyncEngineArgs.from_cli_args(args)
    except Exception as e:  # the engine's own refusal, whatever its type
        return [f"{type(e).__name__}: {e}"]
    kv = engine_args.kv_transfer_config
    if kv is None:
        problems.append("no --kv-transfer-config: this is not a disaggregated worker")
    else:
        from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory

        if kv.kv_connector not in KVConnectorFactory._registry:
            problems.append(f"kv_connector {kv.kv_connector!r} is not one vLLM knows")
        if kv.kv_connector == "NixlConnector":
            for var in ("VLLM_NIXL_SIDE_CHANNEL_HOST", "VLLM_NIXL_SIDE_CHANNEL_PORT"):
                if var not in env:
                    problems.append(f"{var} is not set: vLLM uses its default "
                                    f"({getattr(envs, var)!r}) for every worker")
            try:
                envs.VLLM_NIXL_SIDE_CHANNEL_PORT  # noqa: B018 (vLLM parses it here)
            except Exception as e:
                problems.append(f"VLLM_NIXL_SIDE_CHANNEL_PORT: {e}")
    served = engine_args.served_model_name or [engine_args.model]
    if isinstance(served, str):
        served = [served]
    if w["model"] not in served:
        problems.append(f"the benchmark sends model {w['model']!r}, but vLLM serves {served}")
    return problems


def inner_sglang(w):
    import contextlib
    import io

    os.environ.update(w["env"])
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="python3 -m sglang.launch_server")
    ServerArgs.add_cli_args(parser)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(w["argv"][3:])
    except SystemExit:
        return [err.getvalue().strip().splitlines()[-1]]
    try:
        ServerArgs.from_cli_args(args)
    except Exception as e:  # the engine's own refusal, whatever its type
        return [f"{type(e).__name__}: {e}"]
    problems = []
    served = getattr(args, "served_model_name", None) or args.model_path
    if served != w["model"]:
        problems.append(f"the benchmark sends model {w['model']!r}, but SGLang serves {served!r}")
    return problems


def inner(engine):
    """Checks a list of workers (JSON on stdin); prints one list of problems per worker."""
    check = {"vllm": inner_vllm, "sglang": inner_sglang}[engine]
    out = []
    for w in json.load(sys.stdin):
        try:
            out.append(check(w))
        except Exception as e:
            out.append([f"the check itself failed: {type(e).__name__}: {e}"])
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------
# The driver: reads plans, sends each worker to its engine's Python.


def version(python, package):
    out = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True, text=True,
    )
    return out.stdout.strip() or f"unknown ({out.stderr.strip().splitlines()[-1:]})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plans", nargs="+", help="`disagg plan --json` output files")
    ap.add_argument("--vllm-python", help="the Python of an environment with vLLM installed")
    ap.add_argument("--sglang-python", help="the Python of an environment with SGLang installed")
    ap.add_argument("--inner", choices=["vllm", "sglang"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        return inner(a.inner)
    pythons = {"vllm": a.vllm_python, "sglang": a.sglang_python}
    for engine, python in pythons.items():
        if python:
            print(f"{engine} {version(python, engine)} at {python}")
    failed = checked = 0
    todo = {"vllm": [], "sglang": []}
    for path in a.plans:
        with open(path) as f:
            plan = json.load(f)
        for role in plan["roles"]:
            launch = role.get("engine")
            if not launch or not role["role"].startswith(("CTX_", "GEN_")):
                continue
            base = [fill(x) for x in launch["argv"]]
            engine = engine_of(base)
            name = f"{plan['config_name']} {role['role']}"
            if engine is None:
                print(f"skip {name}: `{base[0]}` is not an engine this script knows")
                continue
            env = {k: fill(v) for k, v in launch.get("env", {}).items()}
            # A server spanning nodes: each node rank's own argv (its `node_args` appended).
            per_node = launch.get("node_args") or [[]]
            for rank, extra in enumerate(per_node):
                argv = base + [fill(x) for x in extra]
                who = name if len(per_node) == 1 else f"{name} node rank {rank}"
                todo[engine].append((who, {"argv": argv, "env": env, "model": plan["model"]}))
    for engine, workers in todo.items():
        if not workers:
            continue
        python = pythons[engine]
        if not python:
            for name, _ in workers:
                print(f"FAIL {name}: a {engine} worker, but no --{engine}-python was given")
            checked += len(workers)
            failed += len(workers)
            continue
        # One process per engine: importing vLLM or SGLang takes most of a minute.
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--inner", engine, "x"],
            input=json.dumps([w for _, w in workers]), capture_output=True, text=True,
        )
        try:
            results = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            results = [[f"the {engine} check crashed: {out.stderr.strip()[-2000:]}"]] * len(workers)
        for (name, w), problems in zip(workers, results):
            checked += 1
            if problems:
                failed += 1
                for p in problems:
                    print(f"FAIL {name}: {p}")
            else:
                print(f"ok   {name}: {' '.join(w['argv'])}")
                for k, v in sorted(w["env"].items()):
                    print(f"       env {k}={v}")
    print(f"{checked - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
