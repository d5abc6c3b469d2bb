#!/usr/bin/env bash
# Our router and load generator side by side with their peers, against nginx (Debian's package)
# as the backend, in one go; prints medians with their spread, the ratios the README quotes,
# and the machine, the date, the commit and the load.
#
#   routers   disagg router (trtllm, vllm and sglang dialects, each a `disagg router` process)
#             vs sglang-router 0.3.2 and vllm-router 0.1.17 in PD mode: added latency over a
#             direct nginx exchange (p50, p99) at 1 connection, router CPU per request (its
#             process, from /proc schedstat) and req/s at 64 connections, 1k- and 32k-token
#             prompts (crates/disagg-router/benches/router.rs does the measuring);
#   clients   disagg bench vs sglang 0.5.23's Rust client (`sglang.benchmark.rust_client`), and
#             `vllm bench serve` / sglang bench_serving when installed (`perf/peers.sh install
#             python`): req/s at concurrency 256, 128 tokens in, 32 out (streamed), and client
#             CPU per request, marginal between a small and a big run (start-up not charged),
#             and nginx's own CPU per request in the big run (what the 2 cores leave a client);
#   replicas  `disagg run perf/replicas.yaml`: req/s of a router-bound sim case with
#             router.replicas 1, 2 and 4, twice: as it is ("free": on a machine with few cores
#             the routers share them with the sims and the benchmark, so replicas have no cores
#             to add), and with every router process held to $REPLICA_CAP% of one core in a CPU
#             cgroup of its own (perf/cpu-cap.sh; a `kind: command` router running `disagg
#             router`), which makes the routers the bottleneck by construction and gives N
#             replicas N times the router CPU; its rows also give the routers' CPU per request
#             (their cgroups' whole usage, start-up included, over every request they
#             carried, warm-up included).
#
# Each repetition runs every contender once, in turn (interleaved), so drift hits all alike;
# the summary gives the median and [min-max] over repetitions. Figures taken while the machine
# was busy are labelled so: before every repetition the script idles 3 s and records how many
# cores other work kept busy meanwhile (from /proc/stat; the load average would also count this
# script's previous repetition), and says LOADED when that was above $MAX_LOAD.
#
# Usage: perf/compare.sh [routers] [clients] [replicas]      (default: all three)
# Knobs: REPS (5), QUICK=1 (a tenth of the requests, for trying the script), OUT (results
#        folder; default /tmp/disagg-perf.<UTC time>), PEERS (/tmp/disagg-peers),
#        KEEP_PEERS=1 (keep the installed peers; by default they are removed at the end: the
#        disk is small), MAX_LOAD (0.25 cores), REPLICA_CAP (5, percent of a core; 0: no
#        capped variant, which also needs root and a writable cgroup CPU controller),
#        CARGO_TARGET_DIR.
# Needs: cargo, python3 and python3.11 (the sglang Rust client's module), nginx (installed
# with apt-get when missing and running as root), /usr/bin/time.
# Everything runs on 127.0.0.1; every run is bounded by a request count and by `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/perf
# shellcheck source=perf/lib.sh
. "$HERE/lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPS=${REPS:-5}
QUICK=${QUICK:-}
MAX_LOAD=${MAX_LOAD:-0.25}
REPLICA_CAP=${REPLICA_CAP:-5}
export PEERS=${PEERS:-/tmp/disagg-peers}
OUT=${OUT:-/tmp/disagg-perf.$(date -u +%Y%m%dT%H%M%SZ)}
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(routers clients replicas)
for p in "${PARTS[@]}"; do
    case $p in routers | clients | replicas) ;; *)
        echo "unknown part $p: routers, clients or replicas" >&2
        exit 2
        ;;
    esac
done
wants() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
mkdir -p "$OUT"

log() { echo "compare: $*" >&2; }
# Cores kept busy over the next 3 s, in which this script runs nothing: other work's share of
# the machine as a repetition starts.
busy_cores() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 3
    b=$(head -1 /proc/stat)
    awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN {
        split(a, x); split(b, y)
        # user nice system idle iowait irq softirq steal
        busy = (y[2]-x[2]) + (y[3]-x[3]) + (y[4]-x[4]) + (y[7]-x[7]) + (y[8]-x[8]) + (y[9]-x[9])
        total = busy + (y[5]-x[5]) + (y[6]-x[6])
        printf "%.2f\n", (total > 0 ? busy / total * n : 0) }'
}

# ---- what ran where ----
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (with uncommitted changes)')"
    echo "reps: $REPS${QUICK:+ (QUICK: a tenth of the requests)}"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# ---- build ----
log "building (release)"
(cd "$ROOT" && cargo build --release -q -p disagg --bin disagg)
DISAGG=$TARGET/release/disagg
ROUTER_BENCH=
if wants routers; then
    ROUTER_BENCH=$(router_bench_exe "$ROOT")
    [ -x "$ROUTER_BENCH" ] || { log "no router bench executable"; exit 1; }
fi

# ---- peers and nginx (the routers and clients parts; replicas needs neither) ----
cleanup() {
    stop_nginx
    if [ -z "${KEEP_PEERS:-}" ] && { wants routers || wants clients; }; then
        "$HERE/peers.sh" remove
    fi
}
trap cleanup EXIT
if wants routers || wants clients; then
    "$HERE/peers.sh" install
    if ! command -v nginx >/dev/null; then
        [ "$(id -u)" = 0 ] || { log "nginx is missing: apt-get install nginx"; exit 1; }
        log "installing nginx (Debian's package)"
        apt-get install -y -q --no-install-recommends nginx >/dev/null
    fi
    start_nginx "$OUT/nginx" || exit 1
    log "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') on 127.0.0.1 ports $P_CTX1K $P_CTX32K $P_GEN $P_SSE"
    echo "nginx: $(nginx -v 2>&1 | sed 's/.*nginx\///'), 1 worker process" >>"$OUT/machine.txt"
fi
# From here on, only loopback. Peers try model hubs and telemetry: any such attempt meets a
# closed local port and fails at once. (Set after the install above, which needs the registries.)
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9
export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1

# ---- clients ----
CONC=256 ISL=128 OSL=32
if [ -n "$QUICK" ]; then N_BIG=4000 N_SMALL=1000 PY_N_BIG=1200 PY_N_SMALL=400; else
    N_BIG=${N_BIG:-40000} N_SMALL=${N_SMALL:-10000} PY_N_BIG=${PY_N_BIG:-6000} PY_N_SMALL=${PY_N_SMALL:-2000}; fi
SSE_URL=http://127.0.0.1:${P_SSE:-} # set by start_nginx (routers and clients only)
PY311=${PY311:-python3.11}

client_available() {
    case $1 in
    disagg-bench) true ;;
    sglang-rust) ls "$PEERS"/sglang-rc/_bench.*.so >/dev/null 2>&1 ;;
    vllm) [ -x "$PEERS/python/vllm/bin/vllm" ] ;;
    sglang-python) [ -x "$PEERS/python/sglang/bin/python" ] ;;
    esac
}

# client_cmd CLIENT N OUTDIR: the client's argv, one word per line.
client_cmd() {
    local n=$2 out=$3
    case $1 in
    disagg-bench)
        # nginx's canned stream is 32 chunks whatever max_tokens says, so the output length
        # is not held to max_tokens here (the canary asks for 2). No --output-dir: its
        # per-request timelines are extra work the other clients are not asked for; the
        # figures come from the printed summary, like theirs.
        printf '%s\n' "$DISAGG" bench --url "$SSE_URL" --model m --isl $ISL --osl $OSL \
            --concurrency $CONC --num-prompts "$n" --ignore-eos false
        ;;
    sglang-rust)
        # --random-range-ratio 1: exact lengths in sglang's reading ([r·L, L]).
        printf '%s\n' "$PY311" "$PEERS/sglang-rc/run.py" --backend vllm --base-url "$SSE_URL" \
            --model m --tokenizer "$PEERS/tok" --dataset-name random-ids \
            --random-input-len $ISL --random-output-len $OSL --random-range-ratio 1 \
            --num-prompts "$n" --max-concurrency $CONC --disable-tqdm --warmup-requests 1 \
            --output-file "$out/result.jsonl"
        ;;
    vllm)
        printf '%s\n' "$PEERS/python/vllm/bin/vllm" bench serve --backend vllm \
            --base-url "$SSE_URL" --model m --tokenizer "$PEERS/tok" --dataset-name random \
            --random-input-len $ISL --random-output-len $OSL --num-prompts "$n" \
            --max-concurrency $CONC --ignore-eos --disable-tqdm --save-result \
            --result-dir "$out" --result-filename result.json
        ;;
    sglang-python)
        printf '%s\n' "$PEERS/python/sglang/bin/python" -m sglang.bench_serving --backend vllm \
            --base-url "$SSE_URL" --model m --tokenizer "$PEERS/tok" --dataset-name random-ids \
            --random-input-len $ISL --random-output-len $OSL --random-range-ratio 1 \
            --num-prompts "$n" --max-concurrency $CONC --disable-tqdm --warmup-requests 1 \
            --output-file "$out/result.jsonl"
        ;;
    esac
}

# req/s as the client itself reports it.
client_rps() {
    python3 - "$1" "$2" <<'PY'
import json, sys
client, out = sys.argv[1], sys.argv[2]
try:
    if client == "disagg-bench":
        # benchmark_serving's summary layout (PROTOCOLS.md §4), printed to stdout.
        line = next(l for l in open(f"{out}/log") if l.startswith("Request throughput (req/s):"))
        p = {"request_throughput": float(line.split(":")[1])}
    elif client == "vllm":
        p = json.load(open(f"{out}/result.json"))
    else:
        p = json.loads(open(f"{out}/result.jsonl").read().strip().splitlines()[-1])
    print(f'{p["request_throughput"]:.1f}')
except Exception:
    print("-")
PY
}

# run_client CLIENT N DIR: runs it under /usr/bin/time; prints "cpu_seconds wall_seconds".
run_client() {
    local c=$1 n=$2 dir=$3
    mkdir -p "$dir"
    local -a argv
    mapfile -t argv < <(client_cmd "$c" "$n" "$dir")
    /usr/bin/time -f "%U %S %e" -o "$dir/time" timeout 600 "${argv[@]}" >"$dir/log" 2>&1 ||
        log "$c exited non-zero; see $dir/log"
    awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }' "$dir/time"
}

# nginx's CPU time so far, in ns: its worker processes' /proc schedstat.
nginx_ns() {
    local t=0 p
    for p in $(pgrep -P "$NGINX_PID"); do
        t=$((t + $(cut -d' ' -f1 "/proc/$p/schedstat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

clients() {
    local rows=$OUT/clients.tsv
    printf 'rep\tload\tclient\treq_per_s\tcpu_ms_per_req_marginal\tcpu_ms_per_req_total\tnginx_ms_per_req\n' >"$rows"
    for rep in $(seq "$REPS"); do
        local load
        load=$(busy_cores)
        for c in disagg-bench sglang-rust vllm sglang-python; do
            if ! client_available "$c"; then
                [ "$rep" = 1 ] && log "clients: $c is not installed under $PEERS (skipped)"
                continue
            fi
            local big=$N_BIG small=$N_SMALL
            case $c in vllm | sglang-python) big=$PY_N_BIG small=$PY_N_SMALL ;; esac
            local d=$OUT/clients/$rep/$c
            read -r cpu_small _ < <(run_client "$c" "$small" "$d/small")
            local n0 n1
            n0=$(nginx_ns)
            read -r cpu_big _ < <(run_client "$c" "$big" "$d/big")
            n1=$(nginx_ns)
            local rps
            rps=$(client_rps "$c" "$d/big")
            # A run that gave no figures (it failed) has no CPU per request either.
            awk -v rep="$rep" -v load="$load" -v c="$c" -v rps="$rps" -v cb="$cpu_big" \
                -v cs="$cpu_small" -v nb="$big" -v ns="$small" -v ng="$((n1 - n0))" 'BEGIN {
                if (rps == "-") { printf "%s\t%s\t%s\t-\t-\t-\t-\n", rep, load, c; exit }
                printf "%s\t%s\t%s\t%s\t%.4f\t%.4f\t%.4f\n", rep, load, c, rps,
                    (cb - cs) * 1000 / (nb - ns), cb * 1000 / nb, ng / 1e6 / nb }' >>"$rows"
            log "clients rep $rep: $(tail -1 "$rows")"
        done
    done
}

# ---- routers ----
routers() {
    local rows=$OUT/routers.tsv
    printf 'rep\tload\tisl\trouter\tconc\tok\tfailed\tp50_ms\tp99_ms\tadded_p50_ms\tadded_p99_ms\treq_per_s\tcpu_ms_per_req\tswitches_per_req\n' >"$rows"
    for rep in $(seq "$REPS"); do
        local load
        load=$(busy_cores)
        log "routers rep $rep (load $load)"
        BENCH_BACKENDS="ctx1024=http://127.0.0.1:$P_CTX1K,ctx32768=http://127.0.0.1:$P_CTX32K,gen=http://127.0.0.1:$P_GEN" \
            BENCH_DISAGG=$DISAGG PEER_VENV=$PEERS/routers BENCH_OUT=$OUT/routers.$rep.raw \
            BENCH_CONCURRENCY=1,64 BENCH_QUICK=$QUICK \
            timeout 1800 "$ROUTER_BENCH" >"$OUT/routers.$rep.md" 2>"$OUT/routers.$rep.log" ||
            log "router bench rep $rep exited non-zero; see $OUT/routers.$rep.log"
        sed "s/^/$rep\t$load\t/" "$OUT/routers.$rep.raw" >>"$rows" 2>/dev/null || true
    done
}

# ---- replicas ----
# The capped variant's cgroups: PREFIX-<router pid> (perf/cpu-cap.sh). cap_usage_ms prints the
# CPU the routers of the run that just ended used, in ms, and removes their (empty) cgroups.
CAP_PREFIX=disagg-perf-$$
cap_possible() {
    [ "$(id -u)" = 0 ] &&
        { grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
            { [ -w /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpuacct ]; }; }
}
cap_usage_ms() {
    local us=0 d
    for d in /sys/fs/cgroup/"$CAP_PREFIX"-* /sys/fs/cgroup/cpuacct/"$CAP_PREFIX"-*; do
        [ -d "$d" ] || continue
        if [ -f "$d/cpuacct.usage" ]; then
            us=$((us + $(cat "$d/cpuacct.usage") / 1000))
        else
            us=$((us + $(awk '$1 == "usage_usec" {print $2}' "$d/cpu.stat")))
        fi
    done
    cap_remove
    echo $((us / 1000))
}
cap_remove() {
    local d
    for d in /sys/fs/cgroup/"$CAP_PREFIX"-* /sys/fs/cgroup/cpu/"$CAP_PREFIX"-* \
        /sys/fs/cgroup/cpuacct/"$CAP_PREFIX"-*; do
        [ -d "$d" ] && { rmdir "$d" || log "could not remove cgroup $d (still in use?)"; }
    done
    return 0
}

replicas() {
    local rows=$OUT/replicas.tsv
    printf 'rep\tload\tvariant\treplicas\treq_per_s\trouter_cpu_ms\n' >"$rows"
    local case_file=$HERE/replicas.yaml
    local variants=(free)
    if [ "$REPLICA_CAP" != 0 ]; then
        if cap_possible; then
            variants+=("cap$REPLICA_CAP")
            trap 'cleanup; cap_remove' EXIT
        else
            log "replicas: no capped variant (needs root and a writable cgroup CPU controller)"
        fi
    fi
    local rounds=8 warmup
    [ -n "$QUICK" ] && rounds=2
    warmup=$(sed -n 's/^ *warmup: *\([0-9]*\).*/\1/p' "$case_file")
    for rep in $(seq "$REPS"); do
        local load
        load=$(busy_cores)
        for variant in "${variants[@]}"; do
            for n in 1 2 4; do
                local ws=$OUT/replicas/$rep/$variant-r$n
                mkdir -p "$ws"
                local router=()
                [ "$variant" != free ] && router=(-e "/^router:/a\\  kind: command\\n  argv: [$HERE/cpu-cap.sh, \"$REPLICA_CAP\", $CAP_PREFIX, \"{disagg}\", router, --config, \"{server_config}\"]")
                sed -e "s/^\(  *replicas:\) .*/\1 $n/" -e "s/^\(  *rounds:\) .*/\1 $rounds/" \
                    "${router[@]}" "$case_file" >"$ws/case.yaml"
                SKIP_PERF_CHECK=true timeout 900 "$DISAGG" run "$ws/case.yaml" --workspace "$ws" \
                    >"$ws/out.log" 2>&1 || log "replicas $variant $n exited non-zero; see $ws/out.log"
                local cpu_ms=-
                [ "$variant" != free ] && cpu_ms=$(cap_usage_ms)
                local figures
                figures=$(python3 -c '
import json, sys
try:
    p = json.load(open(sys.argv[1]))["points"][0]
    cpu = sys.argv[2]
    # every request the routers carried: the measured ones and the warm-up
    n = p["completed"] + p["failed"] + int(sys.argv[3])
    per = "%.3f" % (float(cpu) / n) if cpu != "-" else "-"
    print("%.1f\t%s" % (p["request_throughput"], per))
except Exception:
    print("-\t-")' "$ws/disagg_logs/perf-replicas/latest/results.json" "$cpu_ms" "$warmup")
                printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$load" "$variant" "$n" "$figures" >>"$rows"
                log "replicas rep $rep: $variant, $n router(s): $(echo "$figures" | tr '\t' ' ') (req/s, router CPU-ms per request)"
            done
        done
    done
}

for p in "${PARTS[@]}"; do "$p"; done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$HERE/summarize.py" "$OUT" "$MAX_LOAD" | tee "$OUT/report.md"
log "raw results in $OUT"
