# Shared by perf/compare.sh and perf/ab.sh (sourced, not run): the router bench's executable and
# nginx as the canned backend. Everything on 127.0.0.1.

# router_bench_exe ROOT: prints the path of the router bench (crates/disagg-router/benches/
# router.rs), built in release if needed; prints nothing when there is none.
router_bench_exe() {
    (cd "$1" && cargo bench -q -p disagg-router --bench router --no-run \
        --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "router" and m.get("executable"):
        print(m["executable"])')
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx DIR: writes nginx's configuration and canned answers into DIR (perf/nginx_backends.py,
# which says what each port serves), starts nginx and waits until it answers. Sets P_CTX1K,
# P_CTX32K, P_GEN, P_SSE and NGINX_PID (the caller stops it with stop_nginx). Returns 1, with
# nginx's error log on stderr, when it does not answer within 5 s. DIR's parents must be
# readable by nginx's worker user.
start_nginx() {
    local dir=$1
    P_CTX1K=$(free_port) P_CTX32K=$(free_port) P_GEN=$(free_port) P_SSE=$(free_port)
    python3 "$(dirname "${BASH_SOURCE[0]}")/nginx_backends.py" "$dir" "$P_CTX1K" "$P_CTX32K" "$P_GEN" "$P_SSE"
    nginx -p "$dir" -c "$dir/nginx.conf" &
    NGINX_PID=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$P_SSE/health" && return 0
        sleep 0.05
    done
    echo "nginx did not start:" >&2
    cat "$dir/error.log" >&2 || true
    return 1
}

# stop_nginx: ends the nginx start_nginx started, by its pid.
stop_nginx() {
    if [ -n "${NGINX_PID:-}" ]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    fi
}
