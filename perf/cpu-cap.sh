#!/usr/bin/env bash
# Runs a command held to a share of one CPU core, in a CPU cgroup of its own: how
# perf/compare.sh makes a router the bottleneck of its `replicas` case on a machine with too few
# cores to show it otherwise (each replica gets the same cap, so N replicas have N times the CPU).
#
#   perf/cpu-cap.sh PERCENT PREFIX CMD [ARG...]
#
# PERCENT  the share of one core (1-100), as a CFS quota over a 100 ms period
# PREFIX   the cgroup is PREFIX-<pid>, so the caller can find it (its CPU use: cgroup v2's
#          cpu.stat usage_usec, or v1's cpuacct.usage under /sys/fs/cgroup/cpuacct) and remove it
#          once the command has ended (perf/compare.sh does both)
#
# The command is exec'd: it keeps this script's pid, so whoever started it can signal it and
# wait for it. Needs root and a cgroup CPU controller (v2 with `cpu` in the root's
# subtree_control, or v1's `cpu` and `cpuacct` hierarchies); fails, naming what is missing,
# otherwise.
set -euo pipefail

usage() { echo "usage: perf/cpu-cap.sh PERCENT PREFIX CMD [ARG...]" >&2; exit 2; }
[ $# -ge 3 ] || usage
pct=$1 prefix=$2
shift 2
case $pct in '' | *[!0-9]*) usage ;; esac
[ "$pct" -ge 1 ] && [ "$pct" -le 100 ] || usage
period=100000
quota=$((period * pct / 100))
name=$prefix-$$
root=/sys/fs/cgroup

if [ -f "$root/cgroup.controllers" ]; then
    grep -qw cpu "$root/cgroup.subtree_control" || {
        echo "cpu-cap: cgroup v2 without the cpu controller in $root/cgroup.subtree_control" >&2
        exit 1
    }
    mkdir "$root/$name"
    echo "$quota $period" >"$root/$name/cpu.max"
    echo $$ >"$root/$name/cgroup.procs"
elif [ -w "$root/cpu" ] && [ -w "$root/cpuacct" ]; then
    mkdir "$root/cpu/$name" "$root/cpuacct/$name"
    echo $period >"$root/cpu/$name/cpu.cfs_period_us"
    echo $quota >"$root/cpu/$name/cpu.cfs_quota_us"
    echo $$ >"$root/cpu/$name/cgroup.procs"
    echo $$ >"$root/cpuacct/$name/cgroup.procs"
else
    echo "cpu-cap: no writable cgroup CPU controller under $root (needs root, and v2 or v1's cpu and cpuacct)" >&2
    exit 1
fi
exec "$@"
