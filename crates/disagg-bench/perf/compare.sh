#!/usr/bin/env bash
# Loopback comparison of disagg-bench with the Python clients, one client process at a time,
# against the `canned_server` example (a zero-delay canned stream, then fixed TTFT/ITL timing).
#
# Prints, per client:
#   capacity  — completed req/s and streamed chunks/s at concurrency 256, 128 tokens in, 32 out,
#               against the zero-delay server (as the client itself reports it);
#   CPU       — client CPU (user+sys) per 1k requests: marginal, from two runs of different
#               sizes, so interpreter start-up and imports are not charged per request;
#   accuracy  — median TTFT and ITL minus the server's truth (TTFT 50 ms, ITL 10 ms) at
#               concurrency 256.
#
# Python clients are used when their virtualenvs exist under $PYCLIENTS (see README.md for
# how they were installed); missing ones are reported as such. Everything runs on 127.0.0.1,
# every run is bounded by a request count and by `timeout`.
#
# Usage: CARGO_TARGET_DIR=... crates/disagg-bench/perf/compare.sh
# Knobs: N_BIG / N_SMALL (requests per capacity run, ours), PY_N_BIG / PY_N_SMALL (Python),
#        ACC_N (requests per accuracy run), PYCLIENTS (venv root), TOKENIZER_DIR (an HF
#        tokenizer directory the Python clients need; made with `tokenizers` if absent),
#        KEEP_WORK=1 (keep the work folder, which is removed at the end unless a client failed).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/examples
PYCLIENTS=${PYCLIENTS:-/tmp/pyclients}
N_BIG=${N_BIG:-40000}
N_SMALL=${N_SMALL:-10000}
PY_N_BIG=${PY_N_BIG:-6000}
PY_N_SMALL=${PY_N_SMALL:-2000}
ACC_N=${ACC_N:-2048}
CONC=256
ISL=128
OSL=32
WORK=$(mktemp -d /tmp/disagg-bench-perf.XXXXXX)
TOKENIZER_DIR=${TOKENIZER_DIR:-$WORK/tok}
export HF_HUB_DISABLE_TELEMETRY=1 NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p disagg-bench --examples)

SERVER_PID=
start_server() { # args for canned_server
    stop_server
    "$BIN/canned_server" "$@" >"$WORK/server.out" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        URL=$(sed -n 's/^listening on //p' "$WORK/server.out")
        [ -n "$URL" ] && return 0
        sleep 0.05
    done
    echo "canned_server did not start" >&2
    exit 1
}
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
# The work folder (~50 MB of per-request timelines) goes at the end, unless KEEP_WORK=1 or a
# client failed: then its logs are what to read.
KEPT=${KEEP_WORK:-}
finish() {
    stop_server
    if [ -z "$KEPT" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap finish EXIT

# run NAME CMD...: runs one client under /usr/bin/time; leaves $WORK/NAME.{log,time}.
run() {
    local name=$1
    shift
    /usr/bin/time -f "%U %S %e" -o "$WORK/$name.time" timeout 600 "$@" >"$WORK/$name.log" 2>&1 ||
        { echo "  ($name exited non-zero; see $WORK/$name.log)" >&2; KEPT=1; }
}
cpu_s() { awk '{print $1 + $2}' "$WORK/$1.time"; }

# Per-client command lines: client_cmd CLIENT N URL OUTDIR
client_cmd() {
    local client=$1 n=$2 url=$3 out=$4
    case $client in
    disagg-bench)
        # The canned server streams its fixed 32 chunks whatever max_tokens says, so lengths are
        # not held to max_tokens here (the canary asks for 2).
        echo "$BIN/bench_cli --url $url --isl $ISL --osl $OSL --concurrency $CONC --ignore-eos false" \
            "--num-prompts $n --percentiles 50 --output-dir $out"
        ;;
    sglang)
        echo "env HF_HUB_OFFLINE=1 $PYCLIENTS/sglang/bin/python -m sglang.bench_serving" \
            "--backend vllm --base-url $url --model m --tokenizer $TOKENIZER_DIR" \
            "--dataset-name random-ids --random-input-len $ISL --random-output-len $OSL" \
            "--random-range-ratio 1 --num-prompts $n --max-concurrency $CONC" \
            "--output-file $out/result.jsonl --disable-tqdm --warmup-requests 1"
        ;;
    aiperf)
        echo "$PYCLIENTS/aiperf/bin/aiperf profile --model m --url $url" \
            "--endpoint-type completions --streaming --concurrency $CONC --request-count $n" \
            "--isl $ISL --osl $OSL --tokenizer $TOKENIZER_DIR --use-server-token-count" \
            "--ui-type none --artifact-dir $out"
        ;;
    vllm)
        echo "env HF_HUB_OFFLINE=1 $PYCLIENTS/vllm/bin/vllm bench serve --backend vllm" \
            "--base-url $url --model m --tokenizer $TOKENIZER_DIR --dataset-name random" \
            "--random-input-len $ISL --random-output-len $OSL --num-prompts $n" \
            "--max-concurrency $CONC --ignore-eos --disable-tqdm --save-result" \
            "--result-dir $out --result-filename result.json"
        ;;
    guidellm)
        cat >"$out.scenario.json" <<JSON
{"metadata": {"name": "loopback", "description": "disagg-bench comparison"},
 "spec": {"backend": {"kind": "openai_http", "target": "$url", "request_format": "/v1/completions", "model": "m"},
          "profile": {"kind": "concurrent", "streams": $CONC},
          "tokenizer": {"kind": "huggingface_auto", "model": "$TOKENIZER_DIR"},
          "data": [{"kind": "synthetic_text", "prompt_tokens": $ISL, "output_tokens": $OSL}],
          "constraints": [{"kind": "max_requests", "count": $n}]}}
JSON
        echo "$PYCLIENTS/guidellm/bin/guidellm run --scenario $out.scenario.json" \
            "--output kind=json,path=$out/result.json --disable-console-interactive"
        ;;
    esac
}

# report CLIENT OUTDIR: prints "req_per_s median_ttft_ms median_itl_ms" from the client's file.
report() {
    python3 - "$1" "$2" <<'PY'
import glob, json, sys
client, out = sys.argv[1], sys.argv[2]
try:
    if client == "disagg-bench":
        p = json.load(open(f"{out}/results.json"))["points"][0]
        r = (p["request_throughput"], p["median_ttft_ms"], p["median_itl_ms"])
    elif client == "sglang":
        p = json.loads(open(f"{out}/result.jsonl").read().strip().splitlines()[-1])
        r = (p["request_throughput"], p["median_ttft_ms"], p["median_itl_ms"])
    elif client == "vllm":
        p = json.load(open(f"{out}/result.json"))
        r = (p["request_throughput"], p["median_ttft_ms"], p["median_itl_ms"])
    elif client == "aiperf":
        p = json.load(open(glob.glob(f"{out}/**/profile_export_aiperf.json", recursive=True)[0]))
        r = (p["request_throughput"]["avg"], p["time_to_first_token"]["p50"],
             p["inter_token_latency"]["p50"])
    elif client == "guidellm":
        m = json.load(open(f"{out}/result.json"))["benchmarks"][0]["metrics"]
        r = (m["requests_per_second"]["successful"]["mean"],
             m["time_to_first_token_ms"]["successful"]["median"],
             m["inter_token_latency_ms"]["successful"]["median"])
    print(" ".join(f"{x:.3f}" for x in r))
except Exception as e:  # a client that failed gets a row of dashes, not a crash
    print("- - -")
PY
}

available() {
    case $1 in
    disagg-bench) [ -x "$BIN/bench_cli" ] ;;
    sglang) [ -x "$PYCLIENTS/sglang/bin/python" ] ;;
    aiperf) [ -x "$PYCLIENTS/aiperf/bin/aiperf" ] ;;
    guidellm) [ -x "$PYCLIENTS/guidellm/bin/guidellm" ] ;;
    vllm) [ -x "$PYCLIENTS/vllm/bin/vllm" ] ;;
    esac
}

# The Python clients need an HF tokenizer directory; make a small offline one if none is given.
if [ ! -e "$TOKENIZER_DIR/tokenizer.json" ] && [ -x "$PYCLIENTS/sglang/bin/python" ]; then
    "$PYCLIENTS/sglang/bin/python" - "$TOKENIZER_DIR" <<'PY' >/dev/null 2>&1
import random, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
random.seed(0)
letters = "abcdefghijklmnopqrstuvwxyz"
words = ["".join(random.choice(letters) for _ in range(random.randint(2, 8))) for _ in range(3000)]
corpus = [" ".join(random.choice(words) for _ in range(50)) for _ in range(2000)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(
    vocab_size=4000, special_tokens=["<s>", "</s>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(sys.argv[1])
PY
fi

CLIENTS=(disagg-bench vllm sglang aiperf guidellm)
printf '%s\n' "work dir: $WORK" "machine: $(nproc) cores, $(uname -sr)" "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n%-13s %10s %12s %14s %14s %12s %12s\n' client "req/s" "chunks/s" "CPU-ms/1k req" \
    "CPU-ms/1k tot" "TTFT-truth" "ITL-truth"
for c in "${CLIENTS[@]}"; do
    if ! available "$c"; then
        printf '%-13s %s\n' "$c" "not installed under $PYCLIENTS"
        continue
    fi
    if [ "$c" = disagg-bench ]; then big=$N_BIG small=$N_SMALL; else big=$PY_N_BIG small=$PY_N_SMALL; fi
    start_server --chunks $OSL
    for n in $small $big; do
        mkdir -p "$WORK/$c-zero-$n"
        # shellcheck disable=SC2046
        run "$c-zero-$n" $(client_cmd "$c" "$n" "$URL" "$WORK/$c-zero-$n")
    done
    read -r rps _ _ <<<"$(report "$c" "$WORK/$c-zero-$big")"
    cpu_big=$(cpu_s "$c-zero-$big")
    cpu_small=$(cpu_s "$c-zero-$small")
    marginal=$(awk -v b="$cpu_big" -v s="$cpu_small" -v nb="$big" -v ns="$small" \
        'BEGIN { printf "%.1f", (b - s) * 1e6 / (nb - ns) }')
    total=$(awk -v b="$cpu_big" -v nb="$big" 'BEGIN { printf "%.1f", b * 1e6 / nb }')
    chunks=$(awk -v r="$rps" -v o=$OSL 'BEGIN { if (r == "-") print "-"; else printf "%.0f", r * o }')

    start_server --chunks $OSL --ttft-ms 50 --itl-ms 10
    mkdir -p "$WORK/$c-timed"
    # shellcheck disable=SC2046
    run "$c-timed" $(client_cmd "$c" "$ACC_N" "$URL" "$WORK/$c-timed")
    read -r _ ttft itl <<<"$(report "$c" "$WORK/$c-timed")"
    dttft=$(awk -v t="$ttft" 'BEGIN { if (t == "-") print "-"; else printf "%+.3f", t - 50 }')
    ditl=$(awk -v t="$itl" 'BEGIN { if (t == "-") print "-"; else printf "%+.3f", t - 10 }')
    printf '%-13s %10s %12s %14s %14s %12s %12s\n' "$c" "$rps" "$chunks" "$marginal" "$total" \
        "$dttft" "$ditl"
done
stop_server
