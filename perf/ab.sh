#!/usr/bin/env bash
# Two builds of `disagg` A/B, interleaved, against nginx: for deciding whether a change to the
# router's or the load generator's hot path pays, before perf/compare.sh measures it against the
# peers.
#
#   perf/ab.sh router BIN_A BIN_B
#   perf/ab.sh bench BIN_A BIN_B
#
# router  each pair runs the router bench (crates/disagg-router/benches/router.rs) once with
#         BIN_A and once with BIN_B as the `disagg router` process (every dialect, concurrency
#         $CONC); per dialect, prompt length and concurrency: router CPU per request (ms, its
#         process's schedstat) and req/s.
# bench   each pair runs `BIN bench` once per build against nginx's canned 32-chunk SSE stream
#         (concurrency 256, 128 tokens in, 32 out, $BENCH_N requests, as compare.sh's clients
#         part); its CPU (user+sys, from /usr/bin/time) and the req/s it reports.
#
# A runs first in odd pairs and B in even ones, so drift hits both alike. Every run is printed,
# then the median and [min-max] of each figure per build, and B's median over A's.
# Knobs: PAIRS (3); router: ISL (1024 or 32768; both when unset), CONC (64; a list like 1,64
# runs each), CARGO_TARGET_DIR; bench: BENCH_N (40000).
# Needs: nginx (Debian's package), python3, /usr/bin/time. Everything runs on 127.0.0.1, bounded
# by request counts and `timeout`.
set -euo pipefail

usage() { echo "usage: perf/ab.sh router|bench BIN_A BIN_B (two disagg binaries)" >&2; exit 2; }
[ $# -eq 3 ] || usage
MODE=$1
case $MODE in router | bench) ;; *) usage ;; esac
A=$(realpath "$2") B=$(realpath "$3")
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "ab: $bin is not an executable" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=perf/lib.sh
. "$ROOT/perf/lib.sh"
PAIRS=${PAIRS:-3}
CONC=${CONC:-64}
BENCH_N=${BENCH_N:-40000}
command -v nginx >/dev/null || { echo "ab: nginx is missing: apt-get install nginx" >&2; exit 1; }

OUT=$(mktemp -d /tmp/disagg-ab.XXXXXX)
chmod 755 "$OUT" # nginx's worker process reads the canned answers as another user
cleanup() {
    stop_nginx
    rm -rf "$OUT"
}
trap cleanup EXIT

ROUTER_BENCH=
if [ "$MODE" = router ]; then
    ROUTER_BENCH=$(router_bench_exe "$ROOT")
    [ -x "$ROUTER_BENCH" ] || { echo "ab: no router bench executable" >&2; exit 1; }
fi

start_nginx "$OUT/nginx" || exit 1

# run LABEL BIN: one run, its rows appended to $OUT/LABEL.tsv: ISL, name, concurrency, req/s,
# and CPU (router: ms per request; bench: the process's ms in all).
run() {
    echo "== $1 ($2)"
    if [ "$MODE" = router ]; then
        env BENCH_BACKENDS="ctx1024=http://127.0.0.1:$P_CTX1K,ctx32768=http://127.0.0.1:$P_CTX32K,gen=http://127.0.0.1:$P_GEN" \
            BENCH_DISAGG="$2" PEER_VENV=/nonexistent BENCH_CONCURRENCY="$CONC" BENCH_ISL="${ISL:-}" \
            BENCH_OUT="$OUT/$1.raw" timeout 600 "$ROUTER_BENCH" 2>"$OUT/$1.err" | grep '^| .* | disagg ' ||
            { echo "ab: the router bench failed:" >&2; tail -5 "$OUT/$1.err" >&2; exit 1; }
        # The bench's rows: isl name c ok failed p50 p99 added50 added99 req/s cpu switches.
        awk -F'\t' -v OFS='\t' '$11 != "-" { print $1, $2, $3, $10, $11 }' "$OUT/$1.raw" >>"$OUT/$1.tsv"
        : >"$OUT/$1.raw"
    else
        /usr/bin/time -f "%U %S" -o "$OUT/$1.time" timeout 300 "$2" bench \
            --url "http://127.0.0.1:$P_SSE" --model m --isl 128 --osl 32 --concurrency 256 \
            --num-prompts "$BENCH_N" --ignore-eos false >"$OUT/$1.log" 2>&1 ||
            { echo "ab: the bench failed:" >&2; tail -5 "$OUT/$1.log" >&2; exit 1; }
        rps=$(awk -F: '/^Request throughput \(req\/s\):/ { gsub(/ /, "", $2); print $2 }' "$OUT/$1.log")
        cpu=$(awk '{ print $1 + $2 }' "$OUT/$1.time")
        echo "   $rps req/s, $cpu CPU-s"
        # The process's whole CPU in ms; the summary divides it by the request count.
        printf '128\tdisagg bench\t256\t%s\t%s\n' "$rps" "$(awk -v c="$cpu" 'BEGIN { print c * 1000 }')" >>"$OUT/$1.tsv"
    fi
}
for i in $(seq "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then run A "$A"; run B "$B"; else run B "$B"; run A "$A"; fi
done

python3 - "$OUT" "$MODE" "$BENCH_N" <<'PY'
import statistics, sys
out, mode, bench_n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = {}
for label in "AB":
    for line in open(f"{out}/{label}.tsv"):
        isl, name, c, rps, cpu = line.rstrip("\n").split("\t")
        data.setdefault((int(isl), name, int(c)), {}).setdefault(label, []).append((float(cpu), float(rps)))
def med(v, f):
    return f"{statistics.median(v):{f}} [{min(v):{f}}-{max(v):{f}}]"
if mode == "router":
    print("\nrouter CPU ms per request and req/s, median [min-max]")
    print("\n| ISL | router | connections | A: CPU ms/req | B: CPU ms/req | B/A | A: req/s | B: req/s |")
    print("|---|---|---|---|---|---|---|---|")
else:
    print(f"\nbench CPU ms per request (whole process, {bench_n} requests) and req/s, median [min-max]")
    print("\n| ISL | client | connections | A: CPU ms/req | B: CPU ms/req | B/A | A: req/s | B: req/s |")
    print("|---|---|---|---|---|---|---|---|")
for (isl, name, c), d in sorted(data.items()):
    a, b = d.get("A", []), d.get("B", [])
    if not a or not b:
        continue
    def per_req(rows):
        return [x / bench_n for x, _ in rows] if mode == "bench" else [x for x, _ in rows]
    ca, cb = per_req(a), per_req(b)
    ratio = statistics.median(cb) / statistics.median(ca)
    print(f"| {isl} | {name} | {c} | {med(ca, '.4f')} | {med(cb, '.4f')} "
          f"| {ratio:.2f} | {med([y for _, y in a], '.0f')} | {med([y for _, y in b], '.0f')} |")
PY
