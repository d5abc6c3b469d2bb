#!/usr/bin/env python3
"""The summary of a perf/compare.sh run: medians over repetitions with their [min-max] spread,
the ratios against the peers, the issue's goals, and the machine, date and load it ran under.

    summarize.py OUT_DIR [MAX_LOAD]

Reads OUT_DIR/machine.txt, routers.tsv, clients.tsv and replicas.tsv (whichever exist) and
prints Markdown. Each repetition's `load` is how many cores other work kept busy in the 3 s
before it started, while the script ran nothing (compare.sh's busy_cores); one above MAX_LOAD
(0.25) makes the section say LOADED: its figures were taken on a busy machine and are not clean.
"""

import csv
import os
import statistics
import sys


def rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def stats(values):
    v = [x for x in map(num, values) if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(s, digits=3):
    if s is None:
        return "-"
    med, lo, hi, _ = s
    if lo == hi:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{lo:.{digits}f}–{hi:.{digits}f}]"


def loaded(rs, max_load):
    loads = sorted({float(r["load"]) for r in rs if num(r.get("load")) is not None})
    if not loads:
        return ""
    busy = [x for x in loads if x > max_load]
    span = (
        "cores busy with other work in the 3 s before each repetition: "
        f"{loads[0]:.2f}–{loads[-1]:.2f}"
    )
    if busy:
        return (
            f"**LOADED**: {span} (above {max_load}): these figures were taken on a busy "
            "machine and are not clean.\n"
        )
    return f"{span}.\n"


def med(s):
    return s[0] if s else None


def ratio(a, b, digits=1):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{digits}f}×"


def goal(value, limit, better="lower"):
    if value is None:
        return "not measured"
    ok = value <= limit if better == "lower" else value >= limit
    return "met" if ok else "not met"


def routers(out, max_load):
    rs = rows(os.path.join(out, "routers.tsv"))
    if not rs:
        return
    print("## Router: added latency, CPU and throughput against nginx\n")
    print(loaded(rs, max_load))
    print(
        "Medians over repetitions, [min–max]. Added = the router's latency minus a direct "
        "request to the nginx generation backend at the same concurrency. CPU = the router "
        "process's own CPU time (schedstat) per request.\n"
    )
    # How many requests each run sent, so a run at a fraction of its size (QUICK) shows.
    sizes = {}
    for r in rs:
        n = (num(r.get("ok")) or 0) + (num(r.get("failed")) or 0)
        key = (int(r["isl"]), r["conc"])
        sizes.setdefault(key, set()).add(int(n))
    print(
        "Requests per run: "
        + ", ".join(
            f"{isl // 1024}k c={conc}: " + "/".join(str(n) for n in sorted(ns))
            for (isl, conc), ns in sorted(sizes.items(), key=lambda kv: (kv[0][0], int(kv[0][1])))
        )
        + ".\n"
    )
    print(
        "| prompt | router | added p50 ms (c=1) | added p99 ms (c=1) | CPU ms/req (c=1) "
        "| req/s (c=64) | CPU ms/req (c=64) |"
    )
    print("|---|---|---|---|---|---|---|")
    table = {}
    for isl in sorted({int(r["isl"]) for r in rs}):
        for name in dict.fromkeys(r["router"] for r in rs if int(r["isl"]) == isl):
            sel = [r for r in rs if int(r["isl"]) == isl and r["router"] == name]
            by_c = lambda c, k: stats([r[k] for r in sel if r["conc"] == str(c)])
            t = {
                "a50": by_c(1, "added_p50_ms"),
                "a99": by_c(1, "added_p99_ms"),
                "cpu1": by_c(1, "cpu_ms_per_req"),
                "rps64": by_c(64, "req_per_s"),
                "cpu64": by_c(64, "cpu_ms_per_req"),
                "failed": sum(int(r["failed"]) for r in sel if r["failed"].isdigit()),
            }
            table[(isl, name)] = t
            fail = f" ({t['failed']} failed)" if t["failed"] else ""
            print(
                f"| {isl // 1024}k | {name}{fail} | {fmt(t['a50'])} | {fmt(t['a99'])} "
                f"| {fmt(t['cpu1'])} | {fmt(t['rps64'], 0)} | {fmt(t['cpu64'])} |"
            )
    print()
    goals = {1024: (0.04, 0.04), 32768: (0.08, 0.06)}
    for isl in sorted({k[0] for k in table}):
        ours = {n: t for (i, n), t in table.items() if i == isl and n.startswith("disagg")}
        peers = {
            n: t
            for (i, n), t in table.items()
            if i == isl and not n.startswith("disagg") and n != "direct"
        }
        if not ours:
            continue

        def best(group, key, pick):
            vals = [(med(t[key]), n) for n, t in group.items() if med(t[key]) is not None]
            return pick(vals) if vals else (None, None)

        o50, o50n = best(ours, "a50", min)
        ocpu, ocpun = best(ours, "cpu1", min)
        orps, orpsn = best(ours, "rps64", max)
        p50, p50n = best(peers, "a50", min)
        pcpu, pcpun = best(peers, "cpu1", min)
        prps, prpsn = best(peers, "rps64", max)
        lat_goal, cpu_goal = goals.get(isl, (None, None))
        print(f"**{isl // 1024}k prompts**, our best dialect against the better peer:")
        print(
            f"- added p50 at 1 connection: {o50n} {o50:.3f} ms vs {p50n or '-'} "
            f"{'-' if p50 is None else f'{p50:.3f}'} ms: {ratio(p50, o50)} lower"
            + (f"; goal ≤ {lat_goal} ms: {goal(o50, lat_goal)}" if lat_goal else "")
        )
        if ocpu is not None:
            print(
                f"- router CPU per request: {ocpun} {ocpu:.3f} ms vs {pcpun or '-'} "
                f"{'-' if pcpu is None else f'{pcpu:.3f}'} ms: {ratio(pcpu, ocpu)} less"
                + (f"; goal ≤ {cpu_goal} ms: {goal(ocpu, cpu_goal)}" if cpu_goal else "")
            )
        if orps is not None:
            r = None if prps is None else orps / prps
            print(
                f"- req/s at 64 connections: {orpsn} {orps:.0f} vs {prpsn or '-'} "
                f"{'-' if prps is None else f'{prps:.0f}'}: {ratio(orps, prps)}"
                + (f"; goal ≥ 4×: {goal(r, 4.0, 'higher')}" if isl == 1024 else "")
            )
        print()


def clients(out, max_load):
    rs = rows(os.path.join(out, "clients.tsv"))
    if not rs:
        return
    print("## Load generators against nginx (concurrency 256, 128 tokens in, 32 out, streamed)\n")
    print(loaded(rs, max_load))
    print(
        "Medians over repetitions, [min–max]. req/s as each client reports it. CPU = the "
        "client's user+sys time per request, marginal between a small and a big run (so "
        "start-up and imports are not charged per request), and in total for the big run. "
        "nginx = nginx's own CPU per request during the big run: on 2 cores, what it uses "
        "is not left to the client.\n"
    )
    print("| client | req/s | CPU ms/req (marginal) | CPU ms/req (total) | nginx CPU ms/req |")
    print("|---|---|---|---|---|")
    table = {}
    for c in dict.fromkeys(r["client"] for r in rs):
        sel = [r for r in rs if r["client"] == c]
        t = {
            "rps": stats([r["req_per_s"] for r in sel]),
            "cpu": stats([r["cpu_ms_per_req_marginal"] for r in sel]),
            "tot": stats([r["cpu_ms_per_req_total"] for r in sel]),
            # Absent in runs from before the column existed.
            "nginx": stats([r.get("nginx_ms_per_req") for r in sel]),
        }
        table[c] = t
        print(
            f"| {c} | {fmt(t['rps'], 0)} | {fmt(t['cpu'])} | {fmt(t['tot'])} "
            f"| {fmt(t['nginx'])} |"
        )
    print()
    def versus(other):
        """(req/s ratio, CPU ratio) of disagg bench over `other`, or None."""
        ours, theirs = table.get("disagg-bench"), table.get(other)
        if not ours or not theirs:
            return None
        vals = [med(ours["rps"]), med(theirs["rps"]), med(ours["cpu"]), med(theirs["cpu"])]
        if any(v is None for v in vals) or vals[1] == 0 or vals[3] == 0:
            return None
        return vals[0] / vals[1], vals[2] / vals[3]

    r = versus("sglang-rust")
    if r:
        print(
            f"disagg bench vs sglang's Rust client: {r[0]:.2f}× the req/s at {r[1]:.2f}× the "
            f"CPU per request; goal ≥ 3× at ≤ 0.5×: "
            f"{'met' if r[0] >= 3 and r[1] <= 0.5 else 'not met'}\n"
        )
    elif "sglang-rust" in table:
        print("disagg bench vs sglang's Rust client: not measured (a client gave no figures)\n")
    for c in ("vllm", "sglang-python"):
        r = versus(c)
        if r:
            print(f"disagg bench vs {c}: {r[0]:.1f}× the req/s at {r[1]:.2f}× the CPU per request\n")


def replicas(out, max_load):
    rs = rows(os.path.join(out, "replicas.tsv"))
    if not rs:
        return
    for r in rs:
        r.setdefault("variant", "free")  # runs before the capped variant had one kind only
    print("## N routers: `disagg run perf/replicas.yaml` with router.replicas N\n")
    print(loaded(rs, max_load))
    for variant in sorted({r["variant"] for r in rs}, key=lambda v: (v != "free", v)):
        vs = [r for r in rs if r["variant"] == variant]
        if variant == "free":
            print(
                f"As it is: the routers, four sims and the benchmark share this machine's "
                f"{os.cpu_count()} cores, so replicas add throughput only where cores are left "
                "for them.\n"
            )
        else:
            print(
                f"Router-bound by construction ({variant}): every router process held to "
                f"{variant[3:]}% of one core in a CPU cgroup of its own (perf/cpu-cap.sh), so N "
                "replicas have N times the router CPU. A special setup: a throttled router "
                "serves its queue in bursts, whose size, and so its CPU per request, changes "
                "with the load each replica gets. Router CPU per request: the router processes' "
                "whole CPU time (start-up and health checks included) over every request they "
                "carried, warm-up included.\n"
            )
        print("| replicas | req/s | × one router (per repetition) | router CPU-ms per request |")
        print("|---|---|---|---|")
        one = {r["rep"]: num(r["req_per_s"]) for r in vs if r["replicas"] == "1"}
        for n in sorted({int(r["replicas"]) for r in vs}):
            at = [r for r in vs if r["replicas"] == str(n)]
            s = stats([r["req_per_s"] for r in at])
            paired = stats(
                [
                    num(r["req_per_s"]) / one[r["rep"]]
                    for r in at
                    if num(r["req_per_s"]) and one.get(r["rep"])
                ]
            )
            cpu = stats([r.get("router_cpu_ms") for r in at])
            print(f"| {n} | {fmt(s, 1)} | {fmt(paired, 2)} | {fmt(cpu)} |")
        print()


def main():
    out = sys.argv[1]
    max_load = float(sys.argv[2]) if len(sys.argv) > 2 else 0.25
    print("# perf/compare.sh\n")
    with open(os.path.join(out, "machine.txt")) as f:
        for line in f:
            print(f"- {line.rstrip()}")
    print()
    routers(out, max_load)
    clients(out, max_load)
    replicas(out, max_load)


if __name__ == "__main__":
    main()
