#!/usr/bin/env bash
# Two builds of `disagg` A/B as routers, interleaved, against nginx: for deciding whether a change
# to the router's hot path pays, before perf/compare.sh measures it against the peers.
#
#   perf/ab.sh BIN_A BIN_B
#
# Each pair runs the router bench (crates/disagg-router/benches/router.rs) once with BIN_A and
# once with BIN_B as the `disagg router` process (every dialect, concurrency $CONC), A first in
# odd pairs and B first in even ones, so drift hits both alike. It prints every run, then for each
# dialect and prompt length the median and [min-max] of router CPU per request (ms) and req/s.
# Knobs: PAIRS (3), ISL (1024 or 32768; both when unset), CONC (64), CARGO_TARGET_DIR.
# Needs: nginx (Debian's package), python3. Everything runs on 127.0.0.1, bounded by the bench's
# request counts and its 20 s limit per run.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: perf/ab.sh BIN_A BIN_B (two disagg binaries)" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2")
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "ab: $bin is not an executable" >&2; exit 2; }
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PAIRS=${PAIRS:-3}
CONC=${CONC:-64}
command -v nginx >/dev/null || { echo "ab: nginx is missing: apt-get install nginx" >&2; exit 1; }

OUT=$(mktemp -d /tmp/disagg-ab.XXXXXX)
chmod 755 "$OUT" # nginx's worker process reads the canned answers as another user
NGINX_PID=
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

BENCH=$(cd "$ROOT" && cargo bench -q -p disagg-router --bench router --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "router" and m.get("executable"):
        print(m["executable"])')
[ -x "$BENCH" ] || { echo "ab: no router bench executable" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port) P2=$(free_port) P3=$(free_port) P4=$(free_port)
python3 "$ROOT/perf/nginx_backends.py" "$OUT/nginx" "$P1" "$P2" "$P3" "$P4"
nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$P4/health" && break
    sleep 0.05
done
curl -sf -o /dev/null "http://127.0.0.1:$P4/health" || { echo "ab: nginx did not start" >&2; exit 1; }

run() { # LABEL BIN
    echo "== $1 ($2)"
    env BENCH_BACKENDS="ctx1024=http://127.0.0.1:$P1,ctx32768=http://127.0.0.1:$P2,gen=http://127.0.0.1:$P3" \
        BENCH_DISAGG="$2" PEER_VENV=/nonexistent BENCH_CONCURRENCY="$CONC" BENCH_ISL="${ISL:-}" \
        BENCH_OUT="$OUT/$1.tsv" timeout 600 "$BENCH" 2>"$OUT/$1.err" | grep '^| .* | disagg ' ||
        { echo "ab: the bench failed:" >&2; tail -5 "$OUT/$1.err" >&2; exit 1; }
}
for i in $(seq "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then run A "$A"; run B "$B"; else run B "$B"; run A "$A"; fi
done

python3 - "$OUT" <<'PY'
import statistics, sys
out = sys.argv[1]
data = {}
for label in "AB":
    for line in open(f"{out}/{label}.tsv"):
        f = line.rstrip("\n").split("\t")
        isl, name, rps, cpu = f[0], f[1], float(f[9]), f[10]
        if cpu == "-":
            continue
        data.setdefault((isl, name), {}).setdefault(label, []).append((float(cpu), rps))
def med(v, f):
    return f"{statistics.median(v):{f}} [{min(v):{f}}-{max(v):{f}}]"
print("\n| ISL | router | A: CPU ms/req | B: CPU ms/req | B/A | A: req/s | B: req/s |")
print("|---|---|---|---|---|---|---|")
for (isl, name), d in sorted(data.items()):
    a, b = d.get("A", []), d.get("B", [])
    if not a or not b:
        continue
    ratio = statistics.median(x for x, _ in b) / statistics.median(x for x, _ in a)
    print(f"| {isl} | {name} | {med([x for x, _ in a], '.4f')} | {med([x for x, _ in b], '.4f')} "
          f"| {ratio:.2f} | {med([y for _, y in a], '.0f')} | {med([y for _, y in b], '.0f')} |")
PY
