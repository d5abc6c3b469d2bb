#!/usr/bin/env bash
# The peers perf/compare.sh measures against, installed under $PEERS (default /tmp/disagg-peers),
# never in the repository. Every one comes from PyPI through pip, by name and version.
#
#   routers/    a venv with sglang-router 0.3.2 and vllm-router 0.1.17 (about 220 MB)
#   sglang-rc/  sglang 0.5.23's Rust load generator (`python -m sglang.benchmark.rust_client`):
#               only its extension module (`sglang/srt/rust_extensions/_bench*.so`, ~8 MB) is
#               taken out of the sglang wheel and run by run.py, the same entry the module
#               offers, without installing sglang (torch and the rest are ~11 GB). The module
#               is built for CPython 3.11, so python3.11 must exist.
#   tok/        a word-level tokenizer.json made here: the clients want one, and nothing is
#               downloaded from a model hub.
#   python/     only with `install python`: vllm 0.33 (for `vllm bench serve`) and sglang
#               0.5.23 (for `python -m sglang.bench_serving`) with all their dependencies.
#               That is several GB (torch): check `df -h /` first.
#
# Usage: perf/peers.sh install [python] | remove | status
set -euo pipefail

PEERS=${PEERS:-/tmp/disagg-peers}
SGLANG_ROUTER=0.3.2
VLLM_ROUTER=0.1.17
SGLANG=0.5.23
VLLM=0.33.0
PY311=${PY311:-python3.11}
# Nothing here talks to anything but the package index; a client that tries a model hub at run
# time is sent to a closed local port by compare.sh.

install_routers() {
    [ -x "$PEERS/routers/bin/sglang-router" ] && [ -x "$PEERS/routers/bin/vllm-router" ] && return
    echo "peers: installing sglang-router $SGLANG_ROUTER and vllm-router $VLLM_ROUTER" >&2
    python3 -m venv "$PEERS/routers"
    "$PEERS/routers/bin/pip" install -q "sglang-router==$SGLANG_ROUTER" "vllm-router==$VLLM_ROUTER"
}

install_sglang_rust_client() {
    local dir=$PEERS/sglang-rc
    ls "$dir"/_bench.*.so >/dev/null 2>&1 && return
    command -v "$PY311" >/dev/null || {
        echo "peers: $PY311 not found; the sglang Rust client's module is built for CPython 3.11" >&2
        return 1
    }
    echo "peers: taking the Rust client out of sglang $SGLANG's wheel" >&2
    local wheel
    wheel=$(mktemp -d "$PEERS/wheel.XXXXXX")
    "$PY311" -m pip download -q --no-deps -d "$wheel" "sglang==$SGLANG"
    mkdir -p "$dir"
    "$PY311" - "$wheel" "$dir" <<'PY'
import glob, os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
(path,) = glob.glob(os.path.join(wheel, "sglang-*.whl"))
with zipfile.ZipFile(path) as z:
    names = [n for n in z.namelist() if n.startswith("sglang/srt/rust_extensions/_bench.")]
    if not names:
        sys.exit("no Rust bench client in " + path)
    for n in names:
        with open(os.path.join(out, os.path.basename(n)), "wb") as f:
            f.write(z.read(n))
PY
    rm -rf "$wheel"
    cat >"$dir/run.py" <<'PY'
"""Runs sglang's Rust bench client as `python -m sglang.benchmark.rust_client` does: argv
forwarded to the extension module's run_argv (clap owns the flags)."""
import importlib.util, os, sys
here = os.path.dirname(os.path.abspath(__file__))
so = next(f for f in os.listdir(here) if f.startswith("_bench.") and f.endswith(".so"))
spec = importlib.util.spec_from_file_location("_bench", os.path.join(here, so))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
try:
    m.run_argv(["python -m sglang.benchmark.rust_client"] + sys.argv[1:])
except SystemExit as e:
    sys.exit(e.code or 0)
PY
}

make_tokenizer() {
    [ -e "$PEERS/tok/tokenizer.json" ] && return
    mkdir -p "$PEERS/tok"
    python3 - "$PEERS/tok" <<'PY'
import json, random, sys
out = sys.argv[1]
random.seed(0)
letters = "abcdefghijklmnopqrstuvwxyz"
words = set()
while len(words) < 4000:
    words.add("".join(random.choice(letters) for _ in range(random.randint(2, 8))))
special = ["<unk>", "<s>", "</s>"]
vocab = {t: i for i, t in enumerate(special)}
for w in sorted(words):
    vocab[w] = len(vocab)
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}
                     for i, t in enumerate(special)],
    "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"},
    "post_processor": None, "decoder": None,
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
}
json.dump(tok, open(f"{out}/tokenizer.json", "w"))
json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
           "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 1000000},
          open(f"{out}/tokenizer_config.json", "w"))
PY
}

install_python_clients() {
    local avail
    avail=$(df -Pk "$PEERS" | awk 'NR == 2 { print int($4 / 1024 / 1024) }')
    if [ "$avail" -lt 25 ]; then
        echo "peers: only ${avail} GB free; vllm and sglang with torch need about 20 GB: not installing the Python clients" >&2
        return 1
    fi
    [ -x "$PEERS/python/vllm/bin/vllm" ] || {
        "$PY311" -m venv "$PEERS/python/vllm"
        "$PEERS/python/vllm/bin/pip" install -q "vllm==$VLLM"
    }
    [ -x "$PEERS/python/sglang/bin/python" ] && "$PEERS/python/sglang/bin/python" -c "import sglang" 2>/dev/null || {
        "$PY311" -m venv "$PEERS/python/sglang"
        "$PEERS/python/sglang/bin/pip" install -q "sglang==$SGLANG"
    }
}

case ${1:-} in
install)
    mkdir -p "$PEERS"
    install_routers
    install_sglang_rust_client
    make_tokenizer
    if [ "${2:-}" = python ]; then install_python_clients; fi
    du -sh "$PEERS" >&2
    ;;
remove)
    rm -rf "$PEERS"
    ;;
status)
    [ -d "$PEERS" ] && du -sh "$PEERS"/* 2>/dev/null || echo "no peers under $PEERS"
    ;;
*)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
