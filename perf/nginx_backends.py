#!/usr/bin/env python3
"""Writes an nginx configuration and the canned answers it serves, for the comparisons in
compare.sh: nginx (Debian's package) is the backend every router and client is measured
against, so that none of them is flattered by our own test server.

    nginx_backends.py DIR PORT_CTX_1K PORT_CTX_32K PORT_GEN PORT_SSE

- PORT_CTX_1K / PORT_CTX_32K: a context (prefill) worker whose JSON answer fits every dialect
  (TensorRT-LLM's hand-off with prompt_token_ids of 1k / 32k ids, vLLM's kv_transfer_params);
- PORT_GEN: a generation worker's JSON answer;
- PORT_SSE: a streamed completion of 32 chunks (usage on the last), for load generators.

nginx serves files to GET only; a POST gets 405, which `error_page 405 =200 $uri` turns into the
file itself (an internal redirect as GET), after nginx has read and discarded the request body,
so keep-alive connections stay usable. Any other path (health and info probes) gets info.json.
Run with `nginx -p DIR -c DIR/nginx.conf`; one worker process, no access log.
"""

import json
import os
import sys


def xorshift(seed):
    x = seed
    while True:
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        yield x


def context_answer(isl):
    rnd = xorshift(0x9E3779B9)
    ids = [next(rnd) % 128_000 for _ in range(isl)]
    return {
        "id": "ctx",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "text": "x",
                "finish_reason": "length",
                "disaggregated_params": {
                    "request_type": "context_only",
                    "first_gen_tokens": [7],
                    "ctx_request_id": 1,
                    "encoded_opaque_state": None,
                    "draft_tokens": None,
                },
            }
        ],
        "prompt_token_ids": ids,
        "kv_transfer_params": {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_engine_id": "e",
            "remote_block_ids": [1, 2],
            "remote_host": "127.0.0.1",
            "remote_port": 1,
        },
        "usage": {"prompt_tokens": isl, "completion_tokens": 1, "total_tokens": isl},
    }


GEN_ANSWER = {
    "id": "gen",
    "object": "text_completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "text": " the end of the answer", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 1024, "completion_tokens": 16, "total_tokens": 1040},
}

# What routers and clients may ask a worker at start-up (health, server and model info).
INFO = {
    "status": "ok",
    "model_path": "m",
    "tokenizer_path": "m",
    "is_generation": True,
    "object": "list",
    "data": [{"id": "m", "object": "model", "owned_by": "nginx", "max_model_len": 1 << 20}],
}


def sse(chunks=32, prompt_tokens=128):
    """The stream of the bench comparison: chunks-1 content frames, then the last one with the
    usage (some Python clients index choices[0] of every frame), then [DONE]."""
    frame = {"object": "text_completion", "choices": [{"index": 0, "text": "x"}], "usage": None}
    last = dict(frame)
    last["usage"] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": chunks,
        "total_tokens": prompt_tokens + chunks,
    }
    body = "".join(f"data: {json.dumps(frame)}\n\n" for _ in range(chunks - 1))
    return body + f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    root = os.path.abspath(sys.argv[1])
    ports = dict(zip(["ctx1k", "ctx32k", "gen", "sse"], sys.argv[2:]))
    answers = {
        "ctx1k": json.dumps(context_answer(1024), separators=(",", ":")),
        "ctx32k": json.dumps(context_answer(32768), separators=(",", ":")),
        "gen": json.dumps(GEN_ANSWER, separators=(",", ":")),
        "sse": sse(),
    }
    servers = []
    for name, port in ports.items():
        www = f"{root}/www/{name}"
        for route in ["v1/completions", "v1/chat/completions", "generate"]:
            write(f"{www}/{route}", answers[name])
        write(f"{www}/info.json", json.dumps(INFO))
        kind = "text/event-stream" if name == "sse" else "application/json"
        servers.append(
            f"""    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {www};
        default_type {kind};
        location / {{
            error_page 405 =200 $uri;
            try_files $uri /info.json;
        }}
        location = /info.json {{ default_type application/json; }}
    }}
"""
        )
    conf = f"""# Written by perf/nginx_backends.py: canned backends on loopback.
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
{''.join(servers)}}}
"""
    os.makedirs(f"{root}/tmp", exist_ok=True)
    write(f"{root}/nginx.conf", conf)


if __name__ == "__main__":
    main()
