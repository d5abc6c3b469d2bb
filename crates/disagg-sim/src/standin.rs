//! `disagg sim [FLAGS] -- ENGINE ARGV...`: the sim standing in for a real engine at exactly the
//! argv (and environment) a plan gives that engine. It reads what the engine would act on (its
//! address, the model it loads and the name it serves, its disaggregation role, its bootstrap
//! port; vLLM's NIXL side channel comes from the same variables, read as the sim's own flags),
//! and ignores flags it has no use for (the real parsers are checked by
//! `scripts/check-engine-argv.py`), except that it refuses an option no release of the engine
//! has, as its parser does: trtllm-serve's click (`llm_args::SERVE_OPTIONS`), vLLM's and
//! SGLang's argparse (`engine_flags`; vLLM's `--config FILE` YAML read in as its options). A plan whose ports or names do not fit together then fails
//! here as it would on GPUs. The engine's context limit (vLLM's `--max-model-len`, SGLang's
//! `--context-length`, trtllm-serve's `--max_seq_len` or its extra-options YAML's
//! `max_seq_len`) becomes the sim's `--max-model-len`, so a request that would not fit is
//! refused here as there; so do trtllm-serve's `max_num_tokens` (its default 8192 when unset)
//! and `enable_chunked_prefill`, and SGLang's `--allow-auto-truncate`.

use std::path::Path;
use std::time::Duration;

use disagg_proto::engine_flags::FlagEngine;

use crate::{Dialect, SimArgs, SimRole};
use disagg_proto::lengths::parse_count;

/// `args` (the sim's own flags, timing and faults) set up to stand in for `argv`.
pub fn stand_in(mut args: SimArgs, argv: &[String]) -> Result<SimArgs, String> {
    let mut argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    // A multi-rank TensorRT-LLM server runs under this wrapper, one GPU per rank.
    let launched = argv.first() == Some(&"trtllm-llmapi-launch");
    if launched {
        argv.remove(0);
    }
    let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p));
    match (program, argv.get(1).copied(), argv.get(2).copied()) {
        (Some("vllm"), Some("serve"), _) => {
            let expanded = vllm_config(&argv[2..])?;
            let expanded: Vec<&str> = expanded.iter().map(String::as_str).collect();
            let words = vllm_words(&expanded);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let f = Flags::parse(&words, &VLLM)?;
            f.known_to(FlagEngine::Vllm)?;
            vllm(&mut args, f)?
        }
        (Some(p), Some("-m"), Some("sglang.launch_server")) if p.starts_with("python") => {
            let f = Flags::parse(&argv[3..], &SGLANG)?;
            f.known_to(FlagEngine::Sglang)?;
            sglang(&mut args, f)?
        }
        (Some("trtllm-serve"), Some("disaggregated" | "disaggregated_mpi_worker"), _) => {
            return Err(format!(
                "cannot stand in for `{}`: that is TensorRT-LLM's disaggregated server (the \
                 router), not a worker; run `disagg router --config SERVER_CONFIG` in its place",
                argv.join(" ")
            ));
        }
        (Some("trtllm-serve"), _, _) => {
            // `trtllm-serve serve MODEL` and `trtllm-serve MODEL` are one command (serve is
            // its default subcommand).
            let rest = if argv.get(1) == Some(&"serve") {
                &argv[2..]
            } else {
                &argv[1..]
            };
            let (ranks, why) = trtllm(&mut args, Flags::parse(rest, &TRTLLM)?)?;
            if launched {
                args.gpu_need = Some(crate::GpuNeed::LocalRank);
                args.mpi_ranks = Some((ranks, why));
            } else if ranks > 1 {
                // trtllm-serve alone spawns a rank per GPU over those it sees.
                args.gpu_need = Some(crate::GpuNeed::Count(ranks, why));
            }
        }
        _ => {
            return Err(format!(
                "cannot stand in for `{}`: the sim knows `vllm serve ...`, `python3 -m \
                 sglang.launch_server ...` and `trtllm-serve ...`",
                argv.join(" ")
            ));
        }
    }
    Ok(args)
}

/// vLLM's `--config FILE` (a YAML of options), read in as its parser does
/// (`FlexibleArgumentParser._pull_args_from_config`): each key becomes `--key`, with `true` a
/// bare switch, `false` its `--no-key` form when the option has one (else left out), a list its
/// items, a mapping its JSON, anything else its text; they go after the model, before the rest of
/// the command line, which so wins. Its keys are then read, and checked, as options given on the
/// command line would be: a key no release takes stops the server. `argv` is what follows
/// `vllm serve`; without `--config` it is returned as it is.
fn vllm_config(argv: &[&str]) -> Result<Vec<String>, String> {
    let owned = || argv.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let Some(at) = argv.iter().position(|w| *w == "--config") else {
        return Ok(owned());
    };
    if argv.iter().filter(|w| **w == "--config").count() > 1 {
        return Err("vllm serve: More than one config file specified!".into());
    }
    let Some(path) = argv.get(at + 1) else {
        return Err(
            "vllm serve: No config file specified! Please check your command-line arguments."
                .into(),
        );
    };
    let extension = path.rsplit('.').next().unwrap_or(path);
    if !matches!(extension, "yaml" | "yml") {
        return Err(format!(
            "vllm serve: Config file must be of a yaml/yml type. {extension} supplied"
        ));
    }
    let unreadable = |e: String| {
        format!(
            "vllm serve: Unable to read the config file at {path}. Check path correctness ({e})"
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .and_then(|mut v: serde_yaml_ng::Value| v.apply_merge().map(|()| v))
        .map_err(|e| unreadable(e.to_string()))?;
    let serde_yaml_ng::Value::Mapping(map) = doc else {
        return Err(unreadable(
            "its top level is not a mapping of options".into(),
        ));
    };
    // Python's str() of a scalar, which is what vLLM puts on the command line.
    let text_of = |v: &serde_yaml_ng::Value| -> String {
        match v {
            serde_yaml_ng::Value::Null => "None".into(),
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            other => serde_yaml_ng::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    };
    let mut from_file: Vec<String> = Vec::new();
    for (key, value) in &map {
        let key = text_of(key);
        match value {
            serde_yaml_ng::Value::Bool(true) => from_file.push(format!("--{key}")),
            serde_yaml_ng::Value::Bool(false) => {
                let no = format!("--no-{key}");
                if FlagEngine::Vllm
                    .options()
                    .binary_search(&no.as_str())
                    .is_ok()
                {
                    from_file.push(no);
                }
            }
            serde_yaml_ng::Value::Sequence(items) => {
                if !items.is_empty() {
                    from_file.push(format!("--{key}"));
                    from_file.extend(items.iter().map(text_of));
                }
            }
            serde_yaml_ng::Value::Mapping(_) => {
                let json = serde_json::to_string(value)
                    .map_err(|e| unreadable(format!("`{key}` is not JSON: {e}")))?;
                from_file.extend([format!("--{key}"), json]);
            }
            other => from_file.extend([format!("--{key}"), text_of(other)]),
        }
    }
    let rest = argv[..at]
        .iter()
        .chain(&argv[at + 2..])
        .map(|w| w.to_string());
    // The model given first on the command line stays first.
    let model_first = argv.first().is_some_and(|w| !w.starts_with('-'));
    if !model_first && !from_file.iter().any(|w| w == "--model") {
        return Err(
            "vllm serve: No model specified! Please specify model either as a \
                    positional argument or in a config file."
                .into(),
        );
    }
    Ok(if model_first {
        std::iter::once(argv[0].to_string())
            .chain(from_file)
            .chain(rest.skip(1))
            .collect()
    } else {
        from_file.into_iter().chain(rest).collect()
    })
}

/// vLLM's argv as its parser (FlexibleArgumentParser) reads it: an option's `--snake_case`
/// name is its `--kebab-case` one, and a structured option given key by key
/// (`--kv-transfer-config.kv_role kv_both`, `--kv-transfer-config.kv_role=kv_both`) is one
/// JSON value, as if given whole. Values and positional words are left as they are.
fn vllm_words(argv: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Structured options given key by key: option → its JSON object, in first-seen order.
    let mut dotted: Vec<(String, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let w = argv[i];
        i += 1;
        let Some(long) = w.strip_prefix("--").filter(|l| !l.is_empty()) else {
            // The short aliases of the options the stand-in reads, by their long names.
            const SHORT: [(&str, &str); 8] = [
                ("-tp", "--tensor-parallel-size"),
                ("-pp", "--pipeline-parallel-size"),
                ("-dp", "--data-parallel-size"),
                ("-dpl", "--data-parallel-size-local"),
                ("-dpa", "--data-parallel-address"),
                ("-dpp", "--data-parallel-rpc-port"),
                ("-dpr", "--data-parallel-start-rank"),
                ("-asc", "--api-server-count"),
            ];
            let (k, v) = w.split_once('=').map_or((w, None), |(k, v)| (k, Some(v)));
            out.push(match (SHORT.iter().find(|(s, _)| *s == k), v) {
                (Some((_, long)), Some(v)) => format!("{long}={v}"),
                (Some((_, long)), None) => long.to_string(),
                (None, _) => w.to_string(),
            });
            continue;
        };
        let (key, value) = match long.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (long, None),
        };
        let (name, sub) = match key.split_once('.') {
            Some((n, sub)) => (n.replace('_', "-"), Some(sub)),
            None => (key.replace('_', "-"), None),
        };
        let Some(sub) = sub else {
            out.push(match value {
                Some(v) => format!("--{name}={v}"),
                None => format!("--{name}"),
            });
            continue;
        };
        let value = match value {
            Some(v) => v,
            None if i < argv.len() => {
                i += 1;
                argv[i - 1]
            }
            None => "",
        };
        let parsed = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        let at = match dotted.iter().position(|(n, _)| *n == name) {
            Some(at) => at,
            None => {
                dotted.push((name.clone(), serde_json::Map::new()));
                dotted.len() - 1
            }
        };
        let mut map = &mut dotted[at].1;
        let mut parts = sub.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), parsed.clone());
                break;
            }
            let inner = map
                .entry(part.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if !inner.is_object() {
                *inner = serde_json::Value::Object(Default::default());
            }
            map = inner.as_object_mut().expect("an object");
        }
    }
    for (name, map) in dotted {
        let flag = format!("--{name}");
        // Given whole too: the keys given one by one go into it (vLLM merges them).
        match out.iter().position(|w| *w == flag) {
            Some(at) if at + 1 < out.len() => {
                let mut whole: serde_json::Value =
                    serde_json::from_str(&out[at + 1]).unwrap_or_default();
                if let Some(o) = whole.as_object_mut() {
                    o.extend(map);
                    out[at + 1] = whole.to_string();
                }
            }
            _ => {
                out.push(flag);
                out.push(serde_json::Value::Object(map).to_string());
            }
        }
    }
    out
}

/// `vllm serve MODEL`: binds every interface unless `--host` says otherwise, serves the model's
/// own name unless `--served-model-name` says otherwise; kv_transfer_params decide the half.
fn vllm(args: &mut SimArgs, f: Flags<'_>) -> Result<(), String> {
    let model = f
        .positional
        .first()
        .copied()
        .or(f.last("--model"))
        .ok_or("vllm serve without a model")?;
    args.dialect = Dialect::Vllm;
    args.role = SimRole::Both;
    args.host = f.last("--host").unwrap_or("0.0.0.0").to_string();
    args.port = port(f.last("--port").unwrap_or("8000"), "--port")?;
    args.model_path = Some(model.to_string());
    // vLLM serves every name given, and answers with the first.
    let names = f.values("--served-model-name");
    args.model = names.first().copied().unwrap_or(model).to_string();
    args.model_aliases = names.iter().skip(1).map(|n| n.to_string()).collect();
    args.api_key = f
        .last("--api-key")
        .map(str::to_string)
        .or_else(|| std::env::var("VLLM_API_KEY").ok().filter(|k| !k.is_empty()));
    let kv = f
        .last("--kv-transfer-config")
        .ok_or("vllm serve without --kv-transfer-config is not a disaggregated worker")?;
    let kv: serde_json::Value = serde_json::from_str(kv)
        .map_err(|e| format!("--kv-transfer-config is not JSON ({e}): {kv}"))?;
    if kv["kv_connector"] != "NixlConnector" {
        return Err(format!(
            "the sim stands in for vLLM's NixlConnector, not {}",
            kv["kv_connector"]
        ));
    }
    // vLLM's KVTransferConfig refuses to start without a role, or with another.
    const KV_ROLES: [&str; 3] = ["kv_both", "kv_consumer", "kv_producer"];
    match &kv["kv_role"] {
        serde_json::Value::Null => {
            return Err(format!(
                "--kv-transfer-config: Please specify kv_role when kv_connector is set; \
                 supported roles are {KV_ROLES:?}"
            ));
        }
        serde_json::Value::String(r) if KV_ROLES.contains(&r.as_str()) => {}
        other => {
            return Err(format!(
                "--kv-transfer-config: Unsupported kv_role: {other}. Supported roles are \
                 {KV_ROLES:?}"
            ));
        }
    }
    // What shapes the KV it hands over, which its peer checks (handoff::KvLayout).
    if let Some(v) = f.last_of(&["--kv-cache-dtype", "--kv_cache_dtype"]) {
        args.kv.kv_cache_dtype = Some(v.to_string());
    }
    if let Some(v) = f.last_of(&["--block-size", "--block_size"]) {
        args.kv.kv_block_size = Some(block_tokens(v, "--block-size")?);
    }
    args.kv.kv_transfer_backend = Some("NixlConnector".into());
    // How long a prefill's blocks wait for the decode to read them: NIXL frees them after
    // VLLM_NIXL_ABORT_REQUEST_TIMEOUT seconds (vllm/envs.py, 480 by default).
    if args.kv.kv_ttl.is_none() {
        args.kv.kv_ttl = Some(vllm_abort_timeout(
            std::env::var("VLLM_NIXL_ABORT_REQUEST_TIMEOUT")
                .ok()
                .as_deref(),
        )?);
    }
    if let Some(dp) = f.last("--data-parallel-size") {
        args.data_parallel_size = dp
            .parse()
            .map_err(|_| format!("--data-parallel-size {dp} is not a number"))?;
    }
    // vLLM's parser takes `--max_model_len` for `--max-model-len` too.
    if let Some(v) = f.last_of(&["--max-model-len", "--max_model_len"]) {
        args.max_model_len = limit(v, "--max-model-len")?;
    }
    if let Some(v) = f.last_of(&["--max-logprobs", "--max_logprobs"]) {
        args.max_logprobs = v
            .parse()
            .ok()
            .filter(|n| *n >= -1)
            .ok_or_else(|| format!("--max-logprobs {v} is not a number of logprobs (or -1)"))?;
    }
    vllm_nodes(args, &f)
}

/// VLLM_NIXL_ABORT_REQUEST_TIMEOUT as vLLM reads it (an int of seconds; 480 when unset).
fn vllm_abort_timeout(v: Option<&str>) -> Result<Duration, String> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(Duration::from_secs(480)),
        Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
            format!(
                "VLLM_NIXL_ABORT_REQUEST_TIMEOUT={v} is not a whole number of seconds (vLLM \
                 reads it with int() and does not start)"
            )
        }),
    }
}

/// vLLM over several nodes, either way vLLM has: one TP×PP world whose processes on other
/// nodes run `--headless` (`--nnodes`, `--node-rank`, `--master-addr`/`--master-port`), or
/// data-parallel ranks spread over nodes (`--data-parallel-size-local` of them here, from
/// `--data-parallel-start-rank`, joined at `--data-parallel-address`/`--data-parallel-rpc-port`).
fn vllm_nodes(args: &mut SimArgs, f: &Flags<'_>) -> Result<(), String> {
    let num = |flag: &str, default: u32| -> Result<u32, String> {
        f.last(flag).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{flag} {v} is not a number (an unfilled placeholder?)"))
        })
    };
    let dp = u32::from(args.data_parallel_size);
    let nnodes = num("--nnodes", 1)?;
    let local = num("--data-parallel-size-local", dp)?;
    let d = &mut args.dist;
    if nnodes > 1 {
        d.nnodes = nnodes;
        d.node_rank = num("--node-rank", 0)?;
        d.dist_init_addr = Some(format!(
            "{}:{}",
            f.last("--master-addr").unwrap_or("127.0.0.1"),
            f.last("--master-port").unwrap_or("29501")
        ));
    } else if local < dp {
        if local == 0 || dp % local != 0 {
            return Err(format!(
                "--data-parallel-size {dp} is not a whole number of nodes of \
                 --data-parallel-size-local {local}"
            ));
        }
        let start = num("--data-parallel-start-rank", 0)?;
        d.nnodes = dp / local;
        d.node_rank = start / local;
        d.dist_init_addr = Some(format!(
            "{}:{}",
            f.last("--data-parallel-address").unwrap_or("127.0.0.1"),
            f.last("--data-parallel-rpc-port").unwrap_or("29550")
        ));
        args.data_parallel_size_local = u16::try_from(local).ok();
        args.data_parallel_start_rank = u16::try_from(start).unwrap_or(u16::MAX);
    }
    // The GPUs of this node: its data-parallel ranks' TP×PP, or its share of one TP×PP world.
    let tp = num("--tensor-parallel-size", 1)?;
    let pp = num("--pipeline-parallel-size", 1)?;
    let ranks_here = args.data_parallel_size_local.map_or(dp, u32::from);
    let need = if args.data_parallel_size_local.is_some() || nnodes <= 1 {
        ranks_here * tp * pp
    } else {
        (tp * pp).div_ceil(nnodes)
    };
    args.gpu_need = Some(crate::GpuNeed::Count(
        need,
        format!(
            "--tensor-parallel-size {tp} × --pipeline-parallel-size {pp} × {ranks_here} \
             data-parallel rank(s) here{}",
            if nnodes > 1 {
                format!(", over --nnodes {nnodes}")
            } else {
                String::new()
            }
        ),
    ));
    if args.dist.nnodes > 1 {
        if args.dist.node_rank > 0 && !f.has("--headless") {
            return Err(format!(
                "node rank {} of a vLLM server spanning nodes without `--headless`: the stand-in \
                 plays vLLM's documented multi-node layout, where only the first node serves \
                 the API and the others run headless",
                args.dist.node_rank
            ));
        }
        args.dist.world = world(
            args,
            f,
            &["--tensor-parallel-size", "--pipeline-parallel-size"],
        );
    }
    Ok(())
}

/// What every node of a group must agree on: the model, the node count and the engine's
/// parallel sizes as its flags give them.
fn world(args: &SimArgs, f: &Flags<'_>, sizes: &[&str]) -> String {
    let mut w = format!(
        "{} nnodes={} dp={}",
        args.model_path.as_deref().unwrap_or(&args.model),
        args.dist.nnodes,
        args.data_parallel_size
    );
    for flag in sizes {
        w.push_str(&format!(" {flag}={}", f.last(flag).unwrap_or("1")));
    }
    w
}

/// `python3 -m sglang.launch_server`: `--disaggregation-mode` decides the half; a prefill opens
/// its bootstrap server on `--disaggregation-bootstrap-port`.
fn sglang(args: &mut SimArgs, f: Flags<'_>) -> Result<(), String> {
    let model = f
        .last("--model-path")
        .or(f.last("--model"))
        .ok_or("sglang.launch_server without --model-path")?;
    args.dialect = Dialect::Sglang;
    // A prefill's KV waits for its decode as long as the decode waits for it.
    if args.kv.kv_ttl.is_none() {
        args.kv.kv_ttl = Some(args.kv.kv_wait_timeout);
    }
    args.role = match f.last("--disaggregation-mode").unwrap_or("null") {
        "prefill" => SimRole::Context,
        "decode" => SimRole::Generation,
        "null" => SimRole::Both,
        other => {
            return Err(format!(
                "--disaggregation-mode {other} is not prefill, decode or null"
            ));
        }
    };
    args.host = f.last("--host").unwrap_or("127.0.0.1").to_string();
    args.port = port(f.last("--port").unwrap_or("30000"), "--port")?;
    args.bootstrap_port = port(
        f.last("--disaggregation-bootstrap-port").unwrap_or("8998"),
        "--disaggregation-bootstrap-port",
    )?;
    args.model_path = Some(model.to_string());
    args.model = f.last("--served-model-name").unwrap_or(model).to_string();
    args.api_key = f.last("--api-key").map(str::to_string);
    if let Some(v) = f.last("--context-length") {
        args.max_model_len = limit(v, "--context-length")?;
    }
    if f.has("--allow-auto-truncate") {
        args.allow_auto_truncate = true;
    }
    // argparse's choices (SGLang's DISAGG_TRANSFER_BACKEND_CHOICES).
    const BACKENDS: [&str; 6] = ["mooncake", "nixl", "ascend", "fake", "mori", "mooncake_tcp"];
    if let Some(b) = f.last("--disaggregation-transfer-backend") {
        if !BACKENDS.contains(&b) {
            return Err(format!(
                "argument --disaggregation-transfer-backend: invalid choice: '{b}' (choose \
                 from {})",
                BACKENDS.map(|b| format!("'{b}'")).join(", ")
            ));
        }
        args.kv.kv_transfer_backend = Some(b.to_string());
    }
    // What shapes the KV it hands over, which its decode checks (handoff::KvLayout).
    if let Some(v) = f.last("--kv-cache-dtype") {
        args.kv.kv_cache_dtype = Some(v.to_string());
    }
    if let Some(v) = f.last("--page-size") {
        args.kv.kv_block_size = Some(block_tokens(v, "--page-size")?);
    }
    // The GPUs of this node: its share of TP×PP (DP attention runs inside the TP group).
    let size = |flags: &[&str]| -> Result<u32, String> {
        f.last_of(flags).map_or(Ok(1), |v| {
            v.parse()
                .map_err(|_| format!("{} {v} is not a number", flags[0]))
        })
    };
    let (tp, pp) = (size(&["--tp-size", "--tp"])?, size(&["--pp-size", "--pp"])?);
    let nnodes: u32 = f
        .last("--nnodes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    // Attention DP within one node: SGLang's processes talk over TCP from its rendezvous port
    // (`--dist-init-addr`, else `--port` + 233): torch's store there, then the tokenizer,
    // detokenizer, rpc, metrics and scheduler-input sockets after it, and one per DP rank.
    let dp = if f.has("--enable-dp-attention") {
        size(&["--dp-size", "--dp"])?
    } else {
        size(&["--attn-dp-size"])?
    };
    if nnodes == 1 && (dp > 1 || f.has("--enable-dp-attention")) {
        let (host, base) = match f.last("--dist-init-addr") {
            Some(addr) => {
                let (h, p) = addr
                    .rsplit_once(':')
                    .ok_or_else(|| format!("--dist-init-addr {addr} is not HOST:PORT"))?;
                (h.to_string(), port(p, "--dist-init-addr")?)
            }
            None => (
                "127.0.0.1".to_string(),
                args.port
                    .checked_add(233)
                    .ok_or("--port + 233 is past 65535")?,
            ),
        };
        let ports = (0..6 + dp.max(1))
            .map(|i| u16::try_from(u32::from(base) + i))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|_| format!("SGLang's attention-DP ports from {base} run past 65535"))?;
        args.engine_ports = Some((
            host,
            ports,
            "SGLang's attention-DP sockets: --dist-init-addr's port, else --port + 233, and the \
             ports after it"
                .to_string(),
        ));
    }
    args.gpu_need = Some(crate::GpuNeed::Count(
        (tp * pp).div_ceil(nnodes),
        format!("--tp-size {tp} × --pp-size {pp} over --nnodes {nnodes}"),
    ));
    // Over several nodes: `--nnodes` processes, node rank 0 serving, joined at
    // `--dist-init-addr`.
    if let Some(n) = f.last("--nnodes") {
        let d = &mut args.dist;
        d.nnodes = n
            .parse()
            .map_err(|_| format!("--nnodes {n} is not a number"))?;
        if let Some(r) = f.last("--node-rank") {
            d.node_rank = r
                .parse()
                .map_err(|_| format!("--node-rank {r} is not a number"))?;
        }
        d.dist_init_addr = f.last("--dist-init-addr").map(str::to_string);
        // Node rank 0's scheduler publishes requests to the other nodes on the rendezvous port
        // + 5 and + 6 (SGLang's PortArgs: pub_sub_addr, pub_sub_sync_addr).
        d.derived_ports = vec![5, 6];
        args.dist.world = world(
            args,
            &f,
            &["--tp-size", "--pp-size", "--attn-dp-size", "--dp-size"],
        );
        // A prefill's ranks on other nodes register with node rank 0's bootstrap server at the
        // rendezvous host on their own --disaggregation-bootstrap-port (SGLang before
        // sgl-project/sglang#24378): one given another port than node rank 0's is refused
        // there, and the decode fails at the first request. The group does not form here.
        if args.role == SimRole::Context {
            args.dist.world.push_str(&format!(
                " disaggregation-bootstrap-port={}",
                args.bootstrap_port
            ));
        }
    }
    Ok(())
}

/// trtllm-serve's `--max_num_tokens` default (`BuildConfig.max_num_tokens`), which it passes to
/// the engine when neither the flag nor the extra-options YAML sets one.
const TRTLLM_MAX_NUM_TOKENS: u64 = 8192;

/// `trtllm-serve MODEL`: disaggregated_params decide the half. `max_seq_len`,
/// `max_num_tokens` and `enable_chunked_prefill` come from the extra-options YAML
/// (`--extra_llm_api_options`, or its newer alias `--config`), which trtllm-serve applies over
/// its flags, else from its flags (`--max_seq_len`, `--max_num_tokens`,
/// `--enable_chunked_prefill`). `max_input_len` is not read: the PyTorch backend, which
/// trtllm-serve runs, does not hold requests to it.
/// `--served_model_name` names the model it answers with. An option no release has, or a
/// second positional word, is refused, as click refuses it.
/// Returns the server's ranks (tp×pp×cp: `--tp_size`/`--pp_size`/`--cp_size` or their long
/// spellings, which the extra-options YAML's sizes override, as trtllm-serve applies the file
/// last) and the words saying so.
fn trtllm(args: &mut SimArgs, f: Flags<'_>) -> Result<(u32, String), String> {
    let model = f
        .positional
        .first()
        .copied()
        .ok_or("trtllm-serve without a model")?;
    // Click refuses an option the command does not have, before anything starts.
    use disagg_proto::llm_args::{SERVE_OPTIONS, SERVE_SWITCHES};
    if let Some((unknown, _)) = f
        .flags
        .iter()
        .find(|(k, _)| !SERVE_OPTIONS.contains(k) && !SERVE_SWITCHES.contains(k))
    {
        return Err(format!(
            "trtllm-serve serve: No such option: {unknown} (click refuses an option trtllm-serve \
             does not have; `trtllm-serve serve --help` lists them)"
        ));
    }
    if let Some((extra, _)) = f
        .positional
        .split_first()
        .and_then(|(_, rest)| rest.split_first())
    {
        return Err(format!(
            "trtllm-serve serve: Got unexpected extra argument ({extra}) (it takes one MODEL)"
        ));
    }
    args.dialect = Dialect::Trtllm;
    args.role = SimRole::Both;
    args.host = f.last("--host").unwrap_or("localhost").to_string();
    args.port = port(f.last("--port").unwrap_or("8000"), "--port")?;
    args.model_path = Some(model.to_string());
    args.model = f
        .last_of(&["--served_model_name", "--served-model-name"])
        .unwrap_or(model)
        .to_string();
    if let Some(v) = f.last("--max_seq_len") {
        args.max_model_len = limit(v, "--max_seq_len")?;
    }
    let mut max_num_tokens = f
        .last("--max_num_tokens")
        .map(|v| count(v, "--max_num_tokens"))
        .transpose()?;
    if f.has("--enable_chunked_prefill") {
        args.enable_chunked_prefill = true;
    }
    if let Some(v) = f.last("--kv_cache_dtype") {
        args.kv.kv_cache_dtype = Some(v.to_string());
    }
    let mut sizes = [
        (
            "tensor_parallel_size",
            f.last_of(&["--tp_size", "--tensor_parallel_size"]),
        ),
        (
            "pipeline_parallel_size",
            f.last_of(&["--pp_size", "--pipeline_parallel_size"]),
        ),
        (
            "context_parallel_size",
            f.last_of(&["--cp_size", "--context_parallel_size"]),
        ),
    ]
    .map(|(key, flag)| (key, flag.map(|v| count(v, key)).transpose()));
    if let Some((flag, path)) = ["--extra_llm_api_options", "--config"]
        .into_iter()
        .find_map(|flag| f.last(flag).map(|p| (flag, p)))
    {
        let yaml = ExtraOptions::read(Path::new(path), flag)?;
        if let Some(n) = yaml.count("max_seq_len")? {
            args.max_model_len = Some(n);
        }
        if let Some(n) = yaml.count("max_num_tokens")? {
            max_num_tokens = Some(n);
        }
        if let Some(on) = yaml.flag("enable_chunked_prefill")? {
            args.enable_chunked_prefill = on;
        }
        // The PyTorch backend's default is the overlap scheduler, which refuses context-only
        // requests; a server without the file runs the sim's own way (--overlap-scheduler).
        args.overlap_scheduler = !yaml.flag("disable_overlap_scheduler")?.unwrap_or(false);
        if let Some(b) = yaml.transceiver_backend()? {
            args.kv.kv_transfer_backend = Some(b);
        }
        // What shapes the KV it hands over, which its peer checks (handoff::KvLayout).
        if let Some(d) = yaml.text("kv_cache_config", "dtype")? {
            args.kv.kv_cache_dtype = Some(d);
        }
        if let Some(n) = yaml.nested_count("kv_cache_config", "tokens_per_block")? {
            args.kv.kv_block_size = Some(
                u32::try_from(n)
                    .map_err(|_| format!("kv_cache_config.tokens_per_block {n} is too large"))?,
            );
        }
        if args.kv.kv_ttl.is_none() {
            args.kv.kv_ttl = yaml.transfer_timeout()?;
        }
        yaml.known_keys()?;
        for (key, size) in &mut sizes {
            if let Some(n) = yaml.count(key)? {
                *size = Ok(Some(n));
            }
        }
    }
    // TensorRT-LLM sets no limit unless the options file does.
    args.kv.kv_ttl.get_or_insert(crate::args::NO_KV_TTL);
    let mut ranks = 1u64;
    let mut said = Vec::new();
    for (key, size) in sizes {
        let n = size?.unwrap_or(1);
        ranks = ranks.saturating_mul(n);
        said.push(format!("{key} {n}"));
    }
    let ranks =
        u32::try_from(ranks).map_err(|_| format!("{} ranks: too many", said.join(" × ")))?;
    // The engine's own value, else the sim's flag, else trtllm-serve's default.
    let n = max_num_tokens
        .or(args.timing.max_num_tokens.map(|n| n.get()))
        .unwrap_or(TRTLLM_MAX_NUM_TOKENS);
    args.timing.max_num_tokens = std::num::NonZeroU64::new(n);
    Ok((ranks, said.join(" × ")))
}

/// A trtllm-serve extra-options YAML. trtllm-serve cannot start without the file, and neither
/// can its stand-in.
struct ExtraOptions<'a> {
    doc: serde_yaml_ng::Value,
    path: &'a Path,
    flag: &'a str,
}

impl<'a> ExtraOptions<'a> {
    fn read(path: &'a Path, flag: &'a str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{flag} {}: cannot read it: {e}", path.display()))?;
        let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| format!("{flag} {}: not YAML: {e}", path.display()))?;
        // PyYAML, which TensorRT-LLM reads the file with, resolves `<<: *anchor` merges.
        doc.apply_merge()
            .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
        Ok(Self { doc, path, flag })
    }

    fn bad(&self, key: &str, want: &str, v: &serde_yaml_ng::Value) -> String {
        format!(
            "{} {}: {key} must be {want}, not {}",
            self.flag,
            self.path.display(),
            serde_yaml_ng::to_string(v).unwrap_or_default().trim()
        )
    }

    /// A token count the file sets (`None`: not set, or null).
    fn count(&self, key: &str) -> Result<Option<u64>, String> {
        match self.doc.get(key) {
            None | Some(serde_yaml_ng::Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(Some)
                .ok_or_else(|| self.bad(key, "a token count", v)),
        }
    }

    /// Every top-level key is one of TensorRT-LLM's LLM arguments; a typo fails the server at
    /// start, in the LLM constructor's words.
    fn known_keys(&self) -> Result<(), String> {
        if self.doc.is_null() {
            return Ok(()); // an empty file sets nothing
        }
        let Some(map) = self.doc.as_mapping() else {
            return Err(format!(
                "{} {}: Configuration file root must be a mapping.",
                self.flag,
                self.path.display()
            ));
        };
        for key in map.keys() {
            let name = key.as_str().unwrap_or_default();
            if !disagg_proto::llm_args::LLM_ARGS.contains(&name) {
                return Err(format!(
                    "Failed to parse the arguments for the LLM constructor: LLM got invalid \
                     argument: {} ({} {}: a top-level key none of TensorRT-LLM's releases \
                     takes)",
                    serde_yaml_ng::to_string(key).unwrap_or_default().trim(),
                    self.flag,
                    self.path.display()
                ));
            }
        }
        // From 1.0 on the sections' settings models refuse a key they lack, in pydantic's
        // words, before the server starts.
        if let Some((section, k, _)) = disagg_proto::llm_args::unknown_nested_keys(map)
            .into_iter()
            .next()
        {
            return Err(format!(
                "1 validation error for TorchLlmArgs: {section}.{k}: Extra inputs are not \
                 permitted [type=extra_forbidden] ({} {}: a key no TensorRT-LLM release takes \
                 in `{section}`)",
                self.flag,
                self.path.display()
            ));
        }
        Ok(())
    }

    /// `cache_transceiver_config.backend`, one of the values TensorRT-LLM's settings model
    /// allows (its Literal; the model forbids anything else, and the server does not start).
    fn transceiver_backend(&self) -> Result<Option<String>, String> {
        const BACKENDS: [&str; 5] = ["DEFAULT", "UCX", "NIXL", "MOONCAKE", "MPI"];
        let Some(v) = self
            .doc
            .get("cache_transceiver_config")
            .and_then(|c| c.get("backend"))
            .filter(|v| !v.is_null())
        else {
            return Ok(None);
        };
        match v.as_str() {
            Some(b) if BACKENDS.contains(&b) => Ok(Some(b.to_string())),
            _ => Err(self.bad(
                "cache_transceiver_config.backend",
                "one of DEFAULT, UCX, NIXL, MOONCAKE, MPI (TensorRT-LLM refuses any other)",
                v,
            )),
        }
    }

    /// `cache_transceiver_config.kv_transfer_timeout_ms` (a whole number above 0, or unset:
    /// no limit), after which TensorRT-LLM cancels a transfer.
    fn transfer_timeout(&self) -> Result<Option<Duration>, String> {
        let Some(v) = self
            .doc
            .get("cache_transceiver_config")
            .and_then(|c| c.get("kv_transfer_timeout_ms"))
            .filter(|v| !v.is_null())
        else {
            return Ok(None);
        };
        match v.as_u64().filter(|ms| *ms > 0) {
            Some(ms) => Ok(Some(Duration::from_millis(ms))),
            None => Err(self.bad(
                "cache_transceiver_config.kv_transfer_timeout_ms",
                "a whole number of milliseconds above 0 (TensorRT-LLM refuses any other)",
                v,
            )),
        }
    }

    /// A text setting in a section (`None`: not set, or null).
    fn text(&self, section: &str, key: &str) -> Result<Option<String>, String> {
        match self.doc.get(section).and_then(|c| c.get(key)) {
            None | Some(serde_yaml_ng::Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(|t| Some(t.to_string()))
                .ok_or_else(|| self.bad(&format!("{section}.{key}"), "a string", v)),
        }
    }

    /// A count above 0 in a section (`None`: not set, or null).
    fn nested_count(&self, section: &str, key: &str) -> Result<Option<u64>, String> {
        match self.doc.get(section).and_then(|c| c.get(key)) {
            None | Some(serde_yaml_ng::Value::Null) => Ok(None),
            Some(v) => {
                v.as_u64().filter(|&n| n > 0).map(Some).ok_or_else(|| {
                    self.bad(&format!("{section}.{key}"), "a whole number above 0", v)
                })
            }
        }
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, String> {
        match self.doc.get(key) {
            None | Some(serde_yaml_ng::Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, "true or false", v)),
        }
    }
}

/// Tokens per KV block or page, a whole number above 0 (the engines refuse a server with
/// anything else).
fn block_tokens(v: &str, flag: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} {v} is not a number of tokens above 0"))
}

/// A whole-number flag, as click's `type=int` takes it.
fn count(v: &str, flag: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} {v} is not a token count"))
}

/// A context-length flag's value as the sim's limit (`None`: the engine sizes it itself).
fn limit(v: &str, flag: &str) -> Result<Option<u64>, String> {
    parse_count(v).map_err(|e| format!("{flag}: {e}"))
}

fn port(v: &str, flag: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| format!("{flag} {v} is not a port (an unfilled placeholder?)"))
}

/// An engine's flags, argparse-style: `--flag value` or `--flag=value`. A flag takes one value,
/// a switch none, and a list flag (`nargs="+"`) every word up to the next `-`-prefixed one;
/// any other word is positional wherever it stands (`vllm serve --port 8001 MODEL` names the
/// model, as argparse and click read it).
struct Flags<'a> {
    positional: Vec<&'a str>,
    flags: Vec<(&'a str, Vec<&'a str>)>,
}

/// How an engine's parser reads the flags the sim cares about around positional words.
struct Grammar {
    /// Flags that take a list (`nargs="+"`).
    lists: &'static [&'static str],
    /// Flags that take no value (`store_true`, click's `is_flag`).
    switches: &'static [&'static str],
}

const VLLM: Grammar = Grammar {
    lists: &[
        "--served-model-name",
        "--cuda-graph-sizes",
        "--lora-modules",
    ],
    switches: &[
        "--enforce-eager",
        "--trust-remote-code",
        "--headless",
        "--enable-expert-parallel",
        "--enable-chunked-prefill",
        "--no-enable-chunked-prefill",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--disable-log-requests",
        "--disable-log-stats",
        "--async-scheduling",
    ],
};

const SGLANG: Grammar = Grammar {
    lists: &["--cuda-graph-bs"],
    switches: &[],
};

const TRTLLM: Grammar = Grammar {
    lists: &[],
    switches: disagg_proto::llm_args::SERVE_SWITCHES,
};

impl<'a> Flags<'a> {
    /// Every option is one the engine's parser takes (argparse refuses the server at start
    /// otherwise: "unrecognized arguments").
    fn known_to(&self, engine: FlagEngine) -> Result<(), String> {
        match self.flags.iter().find(|(k, _)| !engine.takes(k)) {
            Some((k, _)) => Err(engine.refusal(k)),
            None => Ok(()),
        }
    }

    fn parse(words: &[&'a str], grammar: &Grammar) -> Result<Self, String> {
        let mut out = Flags {
            positional: Vec::new(),
            flags: Vec::new(),
        };
        for w in words {
            if w.starts_with('-') && w.len() > 1 && w.parse::<f64>().is_err() {
                match w.split_once('=') {
                    Some((k, v)) => out.flags.push((k, vec![v])),
                    None => out.flags.push((w, Vec::new())),
                }
                continue;
            }
            let takes = out.flags.last().is_some_and(|(k, values)| {
                grammar.lists.contains(k) || (values.is_empty() && !grammar.switches.contains(k))
            });
            match out.flags.last_mut() {
                Some((_, values)) if takes => values.push(w),
                _ => out.positional.push(w),
            }
        }
        Ok(out)
    }

    /// The values of the last occurrence of `flag` (argparse: the last one wins).
    fn values(&self, flag: &str) -> Vec<&'a str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| *k == flag)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Whether `flag` (a switch) is given.
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(k, _)| *k == flag)
    }

    fn last(&self, flag: &str) -> Option<&'a str> {
        self.values(flag).last().copied()
    }

    /// The last value given under any of `names` (one flag's spellings).
    fn last_of(&self, names: &[&str]) -> Option<&'a str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| names.contains(k))
            .and_then(|(_, v)| v.last().copied())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn base() -> SimArgs {
        Cli::try_parse_from(["sim", "--itl", "2ms"]).unwrap().sim
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_vllm_worker_serves_its_served_name_on_its_port() {
        let a = stand_in(
            base(),
            &words(
                r#"vllm serve meta-llama/L --served-model-name llama --host 0.0.0.0 --port 8100 --tensor-parallel-size 2 --enforce-eager --kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"} --data-parallel-size 2"#,
            ),
        )
        .unwrap();
        assert_eq!(a.dialect, Dialect::Vllm);
        assert_eq!(a.role, SimRole::Both);
        assert_eq!((a.host.as_str(), a.port), ("0.0.0.0", 8100));
        assert_eq!(a.model, "llama");
        assert_eq!(a.model_path.as_deref(), Some("meta-llama/L"));
        assert_eq!(a.data_parallel_size, 2);
        assert_eq!(
            a.timing.itl,
            std::time::Duration::from_millis(2),
            "own flags kept"
        );
        let plain = stand_in(
            base(),
            &words(r#"vllm serve m --kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#),
        )
        .unwrap();
        assert_eq!(
            (plain.model.as_str(), plain.port),
            ("m", 8000),
            "vLLM's defaults"
        );
    }

    /// vLLM's `--config FILE`: its keys are options, after the model and before the rest of the
    /// command line (which wins), read and checked as the command line's are.
    #[test]
    fn a_vllm_config_file_is_read_as_options() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let good = file(
            "w.yaml",
            "served-model-name: llama\nport: 8100\nenforce_eager: true\n\
             enable-prefix-caching: false\ntensor-parallel-size: 2\n\
             kv-transfer-config: {kv_connector: NixlConnector, kv_role: kv_both}\n",
        );
        let a = stand_in(base(), &words(&format!("vllm serve m --config {good}"))).unwrap();
        assert_eq!((a.model.as_str(), a.port), ("llama", 8100));
        assert_eq!(a.model_path.as_deref(), Some("m"));
        // The command line wins over the file.
        let a = stand_in(
            base(),
            &words(&format!("vllm serve m --config {good} --port 8200")),
        )
        .unwrap();
        assert_eq!(a.port, 8200);
        // The model may come from the file.
        let with_model = file(
            "m.yaml",
            "model: org/M\nkv_transfer_config: {kv_connector: NixlConnector, kv_role: kv_both}\n",
        );
        let a = stand_in(base(), &words(&format!("vllm serve --config {with_model}"))).unwrap();
        assert_eq!(a.model_path.as_deref(), Some("org/M"));
        // What vLLM refuses.
        let typo = file(
            "t.yaml",
            "enforce-eagr: true\nkv-transfer-config: {kv_connector: NixlConnector, kv_role: kv_both}\n",
        );
        for (argv, says) in [
            (
                format!("vllm serve m --config {typo}"),
                "unrecognized arguments: --enforce-eagr".to_string(),
            ),
            (
                format!("vllm serve --config {good}"),
                "No model specified!".into(),
            ),
            (
                format!("vllm serve m --config {}", file("c.json", "{}")),
                "Config file must be of a yaml/yml type. json supplied".into(),
            ),
            (
                format!("vllm serve m --config {}/none.yaml", dir.path().display()),
                "Unable to read the config file at".into(),
            ),
            (
                format!("vllm serve m --config {good} --config {good}"),
                "More than one config file specified!".into(),
            ),
            (
                "vllm serve m --config".into(),
                "No config file specified!".into(),
            ),
        ] {
            let e = stand_in(base(), &words(&argv)).unwrap_err();
            assert!(e.contains(&says), "{argv}: {e}");
        }
        assert_eq!(
            super::vllm_config(&["m", "--config", &good, "--port", "1"]).unwrap(),
            [
                "m",
                "--served-model-name",
                "llama",
                "--port",
                "8100",
                "--enforce_eager",
                "--no-enable-prefix-caching",
                "--tensor-parallel-size",
                "2",
                "--kv-transfer-config",
                r#"{"kv_connector":"NixlConnector","kv_role":"kv_both"}"#,
                "--port",
                "1"
            ]
        );
    }

    /// A prefill's node ranks must share node rank 0's bootstrap port (SGLang's other nodes
    /// register at the rendezvous host on their own): another port is another world, which
    /// node rank 0 refuses when the node joins.
    #[test]
    fn an_sglang_prefill_spanning_nodes_needs_one_bootstrap_port() {
        let node = |rank: u32, port: u32, mode: &str| {
            stand_in(
                base(),
                &words(&format!(
                    "python3 -m sglang.launch_server --model-path Q --tp-size 16 --nnodes 2 \
                     --node-rank {rank} --dist-init-addr n1:5000 --disaggregation-mode {mode} \
                     --disaggregation-bootstrap-port {port}"
                )),
            )
            .unwrap()
            .dist
            .world
        };
        assert_eq!(node(0, 9100, "prefill"), node(1, 9100, "prefill"));
        assert_ne!(node(0, 9100, "prefill"), node(1, 9200, "prefill"));
        // A decode serves no bootstrap: its port is no part of its world.
        assert_eq!(node(0, 9100, "decode"), node(1, 9200, "decode"));
    }

    #[test]
    fn an_sglang_prefill_opens_its_bootstrap_port() {
        let a = stand_in(
            base(),
            &words(
                "python3 -m sglang.launch_server --model-path Q/Q --served-model-name q --host 0.0.0.0 --port 31000 --disaggregation-mode prefill --disaggregation-bootstrap-port 9100 --mem-fraction-static 0.8",
            ),
        )
        .unwrap();
        assert_eq!((a.dialect, a.role), (Dialect::Sglang, SimRole::Context));
        assert_eq!((a.port, a.bootstrap_port), (31000, 9100));
        assert_eq!(a.model, "q");
        let d = stand_in(
            base(),
            &words("python3 -m sglang.launch_server --model-path Q/Q --disaggregation-mode decode"),
        )
        .unwrap();
        assert_eq!(
            (d.role, d.port, d.model.as_str()),
            (SimRole::Generation, 30000, "Q/Q")
        );
    }

    #[test]
    fn each_engines_context_flag_becomes_the_limit() {
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        for (argv, want) in [
            (format!("vllm serve m {nixl}"), None),
            (format!("vllm serve m --max-model-len 16 {nixl}"), Some(16)),
            (
                format!("vllm serve m --max_model_len=32k {nixl}"),
                Some(32_000),
            ),
            (
                format!("vllm serve m --max-model-len 4K {nixl}"),
                Some(4096),
            ),
            (format!("vllm serve m --max-model-len auto {nixl}"), None),
            (
                "python3 -m sglang.launch_server --model-path m --context-length 2048".into(),
                Some(2048),
            ),
            ("trtllm-serve m --max_seq_len 1024".into(), Some(1024)),
        ] {
            let a = stand_in(base(), &words(&argv)).unwrap();
            assert_eq!(a.max_model_len, want, "{argv}");
        }
        // The sim's own flag holds unless the engine's argv sets one.
        let mut own = base();
        own.max_model_len = Some(99);
        let a = stand_in(own.clone(), &words(&format!("vllm serve m {nixl}"))).unwrap();
        assert_eq!(a.max_model_len, Some(99));
        let e = stand_in(
            base(),
            &words(&format!("vllm serve m --max-model-len 8x {nixl}")),
        )
        .unwrap_err();
        assert!(
            e.contains("--max-model-len") && e.contains("not a token count"),
            "{e}"
        );
    }

    /// vLLM's `--max-logprobs` becomes the sim's cap; a value vLLM would not take is an error.
    #[test]
    fn vllms_max_logprobs_becomes_the_cap() {
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        let cap = |extra: &str| stand_in(base(), &words(&format!("vllm serve m {extra} {nixl}")));
        assert_eq!(cap("").unwrap().max_logprobs, 20);
        assert_eq!(cap("--max-logprobs 64").unwrap().max_logprobs, 64);
        assert_eq!(cap("--max_logprobs=-1").unwrap().max_logprobs, -1);
        let e = cap("--max-logprobs -5").unwrap_err();
        assert!(e.contains("--max-logprobs -5"), "{e}");
    }

    /// Settings each engine refuses at start, the sim refuses too: a run on the sim must not
    /// pass where every real worker would fail.
    #[test]
    fn engine_settings_the_engines_refuse_fail_the_stand_in() {
        let vllm = |kv: &str| {
            stand_in(
                base(),
                &words(&format!("vllm serve m --kv-transfer-config {kv}")),
            )
        };
        let e = vllm(r#"{"kv_connector":"NixlConnector"}"#).unwrap_err();
        assert!(
            e.contains("Please specify kv_role when kv_connector is set"),
            "{e}"
        );
        let e = vllm(r#"{"kv_connector":"NixlConnector","kv_role":"kv_sideways"}"#).unwrap_err();
        assert!(e.contains("Unsupported kv_role: \"kv_sideways\""), "{e}");
        for role in ["kv_both", "kv_producer", "kv_consumer"] {
            vllm(&format!(
                r#"{{"kv_connector":"NixlConnector","kv_role":"{role}"}}"#
            ))
            .expect(role);
        }
        let sglang = |backend: &str| {
            stand_in(
                base(),
                &words(&format!(
                    "python3 -m sglang.launch_server --model-path m --disaggregation-mode prefill \
                     --disaggregation-transfer-backend {backend}"
                )),
            )
        };
        let e = sglang("bogus").unwrap_err();
        assert!(
            e.contains("invalid choice: 'bogus'") && e.contains("'nixl'"),
            "{e}"
        );
        sglang("nixl").expect("a backend SGLang knows");
        // An option no release of the engine takes fails its argparse, as here.
        let e = stand_in(base(), &words("vllm serve m --enforce-eagr --port 8000")).unwrap_err();
        assert!(
            e.starts_with("vllm serve: error: unrecognized arguments: --enforce-eagr"),
            "{e}"
        );
        stand_in(
            base(),
            &words(
                "vllm serve m --enforce_eager --tensor-parallel-size=1 --no-enable-prefix-caching \
                 --kv-transfer-config {\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}",
            ),
        )
        .expect("vLLM's parser takes snake_case spellings and --no- forms");
        // As vLLM reads them: snake_case names, a structured option given key by key.
        for argv in [
            "vllm serve m --served_model_name x --kv_transfer_config \
             {\"kv_connector\":\"NixlConnector\",\"kv_role\":\"kv_both\"}",
            "vllm serve m --served_model_name x --kv-transfer-config.kv_connector NixlConnector \
             --kv-transfer-config.kv_role=kv_both",
        ] {
            let a = stand_in(base(), &words(argv)).unwrap_or_else(|e| panic!("{argv}: {e}"));
            assert_eq!(a.model, "x", "{argv}");
        }
        assert_eq!(
            super::vllm_words(&[
                "--a_b.c_d.e",
                "1",
                "--a-b.f=x",
                "pos",
                "--g_h=2",
                "-dp",
                "3"
            ]),
            [
                "pos",
                "--g-h=2",
                "--data-parallel-size",
                "3",
                "--a-b",
                r#"{"c_d":{"e":1},"f":"x"}"#
            ]
        );
        let e = stand_in(
            base(),
            &words("python3 -m sglang.launch_server --model-path m --tp_size 1"),
        )
        .unwrap_err();
        assert!(
            e.starts_with("launch_server.py: error: unrecognized arguments: --tp_size"),
            "{e}"
        );
        sglang("mooncake").expect("a backend SGLang knows");
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("extra.yaml");
        let trtllm = |text: &str| {
            std::fs::write(&yaml, text).unwrap();
            stand_in(
                base(),
                &words(&format!(
                    "trtllm-serve m --extra_llm_api_options {}",
                    yaml.display()
                )),
            )
        };
        let e = trtllm("max_batch_size: 8\nnot_a_real_llm_arg: 1\n").unwrap_err();
        assert!(
            e.contains("LLM got invalid argument: not_a_real_llm_arg"),
            "{e}"
        );
        let e = trtllm(
            "kv_cache_config:\n  enable_block_reuse: false\n  kv_events_config: {hwm: 1, topc: x}\n",
        )
        .unwrap_err();
        assert!(
            e.contains(
                "kv_cache_config.kv_events_config.topc: Extra inputs are not permitted \
                 [type=extra_forbidden]"
            ),
            "{e}"
        );
        trtllm("kv_cache_config: {free_gpu_memory_fraction: 0.5, tokens_per_block: 32}\ncuda_graph_config: null\nspeculative_config: {decoding_type: MTP, max_draft_len: 3}\n")
            .expect("keys TensorRT-LLM takes");
        trtllm("base: &kv {enable_block_reuse: false}\nkv_cache_config: {<<: *kv, dtype: fp8}\n")
            .expect_err("`base` is no argument");
        let merged = trtllm("kv_cache_config: {<<: {enable_block_reuse: false}, dtype: fp8}\n");
        assert!(
            merged.is_ok(),
            "merges are resolved as PyYAML does: {merged:?}"
        );
        let e = trtllm("- a list\n").unwrap_err();
        assert!(e.contains("root must be a mapping"), "{e}");
        let e = trtllm("cache_transceiver_config: {backend: FOO}\n").unwrap_err();
        assert!(
            e.contains("cache_transceiver_config.backend must be one of DEFAULT, UCX, NIXL"),
            "{e}"
        );
        // The overlap scheduler is TensorRT-LLM's default: on unless the file turns it off.
        let a = trtllm("cache_transceiver_config: {backend: UCX}\n").unwrap();
        assert!(a.overlap_scheduler);
        let a =
            trtllm("disable_overlap_scheduler: true\ncache_transceiver_config: {backend: NIXL}\n")
                .unwrap();
        assert!(!a.overlap_scheduler);
        let a = stand_in(base(), &words("trtllm-serve m")).unwrap();
        assert!(!a.overlap_scheduler, "without the file, the sim's own way");
    }

    /// argparse and click take the model wherever it stands among the flags.
    #[test]
    fn the_model_may_follow_the_flags() {
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        for argv in [
            format!("vllm serve --port 18001 m {nixl}"),
            format!("vllm serve --enforce-eager --port 18001 {nixl} m"),
        ] {
            let a = stand_in(base(), &words(&argv)).expect(&argv);
            assert_eq!((a.model.as_str(), a.port), ("m", 18001), "{argv}");
        }
        let a = stand_in(
            base(),
            &words(&format!("vllm serve m --served-model-name a b {nixl}")),
        )
        .unwrap();
        assert_eq!(
            (a.model.as_str(), a.model_aliases.as_slice()),
            ("a", &["b".to_string()][..])
        );
        let a = stand_in(base(), &words("trtllm-serve --port 8001 my/model")).unwrap();
        assert_eq!((a.model.as_str(), a.port), ("my/model", 8001));
        let a = stand_in(base(), &words("trtllm-serve --trust_remote_code my/model")).unwrap();
        assert_eq!(a.model, "my/model");
    }

    /// Click refuses an option `trtllm-serve serve` does not have, and a second MODEL; the
    /// options of any release pass, in either spelling.
    #[test]
    fn trtllm_serve_refuses_options_no_release_has() {
        let e = stand_in(base(), &words("trtllm-serve m --tp-size 2")).unwrap_err();
        assert!(e.contains("No such option: --tp-size"), "{e}");
        let e = stand_in(base(), &words("trtllm-serve serve m --max_input_len 9")).unwrap_err();
        assert!(e.contains("No such option: --max_input_len"), "{e}");
        let e = stand_in(base(), &words("trtllm-serve m other --port 1")).unwrap_err();
        assert!(e.contains("unexpected extra argument (other)"), "{e}");
        let a = stand_in(
            base(),
            &words(
                "trtllm-serve serve --enable_attention_dp --no-telemetry my/model \
                 --tensor_parallel_size 2 --cp_size 2 --served_model_name mine --log_level info \
                 --kv_cache_free_gpu_memory_fraction 0.8",
            ),
        )
        .unwrap();
        assert_eq!(a.model, "mine");
        assert_eq!(a.model_path.as_deref(), Some("my/model"));
        assert_eq!(
            a.gpu_need,
            Some(crate::GpuNeed::Count(
                4,
                "tensor_parallel_size 2 × pipeline_parallel_size 1 × context_parallel_size 2"
                    .into()
            ))
        );
    }

    /// `serve` is trtllm-serve's default subcommand; `disaggregated` is its router, which a
    /// worker sim must not quietly play.
    #[test]
    fn trtllm_serve_reads_its_serve_subcommand_and_refuses_the_disaggregated_server() {
        let a = stand_in(base(), &words("trtllm-serve serve my/model --port 9001")).unwrap();
        assert_eq!((a.model.as_str(), a.port), ("my/model", 9001));
        let a = stand_in(base(), &words("trtllm-serve my/model")).unwrap();
        assert_eq!(a.model, "my/model");
        let e = stand_in(base(), &words("trtllm-serve disaggregated -c /x.yaml")).unwrap_err();
        assert!(
            e.contains("disaggregated server") && e.contains("disagg router --config"),
            "{e}"
        );
    }

    #[test]
    fn trtllm_serve_takes_max_seq_len_from_its_yaml_over_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("extra.yaml");
        std::fs::write(&yaml, "max_batch_size: 8\nmax_seq_len: 512\n").unwrap();
        for flag in ["--extra_llm_api_options", "--config"] {
            let argv = format!(
                "trtllm-serve m --max_seq_len 1024 {flag} {}",
                yaml.display()
            );
            let a = stand_in(base(), &words(&argv)).unwrap();
            assert_eq!(a.max_model_len, Some(512), "{argv}");
        }
        std::fs::write(&yaml, "max_batch_size: 8\n").unwrap();
        let argv = format!(
            "trtllm-serve m --max_seq_len 1024 --extra_llm_api_options {}",
            yaml.display()
        );
        assert_eq!(
            stand_in(base(), &words(&argv)).unwrap().max_model_len,
            Some(1024),
            "no max_seq_len in the YAML: the flag's"
        );
        std::fs::write(&yaml, "max_seq_len: lots\n").unwrap();
        let e = stand_in(base(), &words(&argv)).unwrap_err();
        assert!(e.contains("max_seq_len must be a token count"), "{e}");
        let missing = format!(
            "trtllm-serve m --extra_llm_api_options {}",
            dir.path().join("nope.yaml").display()
        );
        let e = stand_in(base(), &words(&missing)).unwrap_err();
        assert!(e.contains("cannot read it"), "{e}");
    }

    /// An unfetched KV record is kept as long as the engine stood in for keeps its blocks: a
    /// shorter limit fails decodes the engine would serve.
    #[test]
    fn each_engine_keeps_an_unfetched_kv_as_long_as_the_engine_does() {
        let secs = |a: SimArgs| a.kv.ttl().as_secs();
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        let v = stand_in(base(), &words(&format!("vllm serve m {nixl}"))).unwrap();
        assert_eq!(secs(v), 480, "VLLM_NIXL_ABORT_REQUEST_TIMEOUT's default");
        assert_eq!(vllm_abort_timeout(Some("30")), Ok(Duration::from_secs(30)));
        assert!(
            vllm_abort_timeout(Some("1.5"))
                .unwrap_err()
                .contains("VLLM_NIXL_ABORT_REQUEST_TIMEOUT=1.5")
        );
        let sg = stand_in(
            base(),
            &words("python3 -m sglang.launch_server --model-path Q --disaggregation-mode prefill"),
        )
        .unwrap();
        assert_eq!(secs(sg), 300, "SGLang's waiting timeout");
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("extra.yaml");
        let trt = |body: &str| {
            std::fs::write(&yaml, body).unwrap();
            stand_in(
                base(),
                &words(&format!(
                    "trtllm-serve m --extra_llm_api_options {}",
                    yaml.display()
                )),
            )
        };
        assert_eq!(
            trt("cache_transceiver_config: {backend: UCX}\n")
                .unwrap()
                .kv
                .ttl(),
            crate::args::NO_KV_TTL,
            "TensorRT-LLM sets no limit by default"
        );
        assert_eq!(
            trt("cache_transceiver_config: {kv_transfer_timeout_ms: 1500}\n")
                .unwrap()
                .kv
                .ttl(),
            Duration::from_millis(1500)
        );
        let e = trt("cache_transceiver_config: {kv_transfer_timeout_ms: 0}\n").unwrap_err();
        assert!(e.contains("kv_transfer_timeout_ms"), "{e}");
        // The sim's own flag wins over the engine's limit.
        let mut given = base();
        given.kv.kv_ttl = Some(Duration::from_secs(5));
        let v = stand_in(given, &words(&format!("vllm serve m {nixl}"))).unwrap();
        assert_eq!(secs(v), 5);
    }

    /// What shapes each engine's KV comes from its own flags (or YAML), and a decode refuses
    /// a prefill's that differs where the engine does (handoff::layout has the rules).
    #[test]
    fn each_engines_kv_layout_comes_from_its_argv() {
        use crate::handoff::KvLayout;
        let layout = |a: SimArgs| KvLayout::of(&a);
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        let v = |extra: &str| {
            layout(stand_in(base(), &words(&format!("vllm serve org/m {nixl} {extra}"))).unwrap())
        };
        let fp8 = v("--kv-cache-dtype fp8 --block-size 32 --served-model-name x");
        assert_eq!(
            (
                fp8.model.as_str(),
                fp8.cache_dtype.as_deref(),
                fp8.block_size,
                fp8.backend.as_deref()
            ),
            ("org/m", Some("fp8"), Some(32), None),
            "the model loaded, not the name served; NixlConnector is the default"
        );
        assert_eq!(v("--kv_cache_dtype auto --block-size 16"), v(""));
        let e = v("").accept(&fp8).unwrap_err();
        assert!(e.contains("NIXL compatibility hash mismatch"), "{e}");
        let sg = |extra: &str| {
            layout(
                stand_in(
                    base(),
                    &words(&format!(
                        "python3 -m sglang.launch_server --model-path org/m \
                         --disaggregation-mode prefill {extra}"
                    )),
                )
                .unwrap(),
            )
        };
        let paged =
            sg("--page-size 64 --kv-cache-dtype fp8_e5m2 --disaggregation-transfer-backend nixl");
        assert_eq!(
            (
                paged.cache_dtype.as_deref(),
                paged.block_size,
                paged.backend.as_deref()
            ),
            (Some("fp8_e5m2"), Some(64), Some("nixl"))
        );
        assert_eq!(
            sg("--page-size 1 --disaggregation-transfer-backend mooncake"),
            sg("")
        );
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("extra.yaml");
        let trt = |flags: &str, body: &str| {
            std::fs::write(&yaml, body).unwrap();
            stand_in(
                base(),
                &words(&format!(
                    "trtllm-serve org/m {flags} --extra_llm_api_options {}",
                    yaml.display()
                )),
            )
            .map(layout)
        };
        let t = trt(
            "--kv_cache_dtype bf16",
            "kv_cache_config: {dtype: fp8, tokens_per_block: 64}\n\
             cache_transceiver_config: {backend: UCX}\n",
        )
        .unwrap();
        assert_eq!(
            (t.cache_dtype.as_deref(), t.block_size, t.backend.as_deref()),
            (Some("fp8"), Some(64), Some("UCX")),
            "the YAML wins over the flag"
        );
        assert_eq!(
            trt("--kv_cache_dtype bf16", "")
                .unwrap()
                .cache_dtype
                .as_deref(),
            Some("bfloat16")
        );
        let e = trt("", "kv_cache_config: {tokens_per_block: 0}\n").unwrap_err();
        assert!(e.contains("kv_cache_config.tokens_per_block"), "{e}");
    }

    #[test]
    fn a_trtllm_server_of_several_ranks_needs_their_gpus_alone_and_their_world_under_the_wrapper() {
        use crate::{GpuNeed, check_mpi_world};
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("ctx_config.yaml");
        std::fs::write(
            &yaml,
            "tensor_parallel_size: 2\npipeline_parallel_size: 2\nmax_batch_size: 8\n",
        )
        .unwrap();
        let opts = format!("--extra_llm_api_options {}", yaml.display());
        // Alone, trtllm-serve spawns a rank per GPU: it must see four.
        let alone = stand_in(base(), &words(&format!("trtllm-serve m {opts}"))).unwrap();
        let Some(GpuNeed::Count(4, why)) = &alone.gpu_need else {
            panic!("{:?}", alone.gpu_need)
        };
        assert_eq!(
            why,
            "tensor_parallel_size 2 × pipeline_parallel_size 2 × context_parallel_size 1"
        );
        assert_eq!(alone.mpi_ranks, None);
        // The file's sizes win over the flags, as trtllm-serve applies the file last.
        let both = stand_in(
            base(),
            &words(&format!("trtllm-serve m --tp_size 8 {opts}")),
        )
        .unwrap();
        assert!(matches!(both.gpu_need, Some(GpuNeed::Count(4, _))));
        let flags = stand_in(base(), &words("trtllm-serve m --tp_size 2")).unwrap();
        assert!(matches!(flags.gpu_need, Some(GpuNeed::Count(2, _))));
        assert_eq!(
            stand_in(base(), &words("trtllm-serve m")).unwrap().gpu_need,
            None
        );
        // Under the wrapper, one rank per process: the GPU of its local rank, and a world of
        // four processes.
        let launched = stand_in(
            base(),
            &words(&format!("trtllm-llmapi-launch trtllm-serve m {opts}")),
        )
        .unwrap();
        assert_eq!(launched.gpu_need, Some(GpuNeed::LocalRank));
        let (ranks, why) = launched.mpi_ranks.clone().unwrap();
        assert_eq!(ranks, 4);
        assert!(check_mpi_world(ranks, &why, (4, "SLURM_NTASKS")).is_ok());
        let e = check_mpi_world(
            ranks,
            &why,
            (1, "neither SLURM_NTASKS nor OMPI_COMM_WORLD_SIZE is set"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "trtllm-llmapi-launch finds an MPI world of 1 process(es) (neither SLURM_NTASKS \
                 nor OMPI_COMM_WORLD_SIZE is set), but the server has 4 rank(s) \
                 (tensor_parallel_size 2 × pipeline_parallel_size 2"
            ),
            "{e}"
        );
    }

    #[test]
    fn sglang_with_attention_dp_on_one_node_holds_its_rendezvous_ports() {
        let held = |argv: &str| {
            stand_in(base(), &words(argv))
                .unwrap()
                .engine_ports
                .map(|(host, ports, _)| (host, ports))
        };
        let sglang = "python3 -m sglang.launch_server --model-path m --port 30000 --tp-size 4";
        // By default from --port + 233: the store, five sockets, one per DP rank.
        assert_eq!(
            held(&format!("{sglang} --attn-dp-size 4")),
            Some(("127.0.0.1".into(), (30233..30243).collect()))
        );
        assert_eq!(
            held(&format!(
                "{sglang} --attn-dp-size 4 --dist-init-addr 127.0.0.1:41000"
            )),
            Some(("127.0.0.1".into(), (41000..41010).collect()))
        );
        assert_eq!(
            held(&format!("{sglang} --enable-dp-attention --dp-size 2")),
            Some(("127.0.0.1".into(), (30233..30241).collect()))
        );
        // No attention DP: IPC sockets, no ports. Over nodes: the rendezvous is dist.rs's.
        assert_eq!(held(sglang), None);
        assert_eq!(
            held(&format!(
                "{sglang} --attn-dp-size 4 --nnodes 2 --dist-init-addr h:41000 --node-rank 0"
            )),
            None
        );
    }

    #[test]
    fn trtllm_serve_holds_prompts_to_its_max_num_tokens_unless_chunked_prefill() {
        let held = |argv: &str| {
            let a = stand_in(base(), &words(argv)).unwrap();
            (
                a.timing.max_num_tokens.map(|n| n.get()),
                a.enable_chunked_prefill,
            )
        };
        // trtllm-serve's own default when nothing sets it.
        assert_eq!(held("trtllm-serve m"), (Some(8192), false));
        assert_eq!(
            held("trtllm-serve m --max_num_tokens 512 --enable_chunked_prefill"),
            (Some(512), true)
        );
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("extra.yaml");
        std::fs::write(&yaml, "max_num_tokens: 256\nenable_chunked_prefill: true\n").unwrap();
        assert_eq!(
            held(&format!(
                "trtllm-serve m --max_num_tokens 512 --config {}",
                yaml.display()
            )),
            (Some(256), true),
            "the YAML over the flags"
        );
        std::fs::write(&yaml, "enable_chunked_prefill: false\n").unwrap();
        assert_eq!(
            held(&format!(
                "trtllm-serve m --enable_chunked_prefill --max_num_tokens 512 \
                 --extra_llm_api_options {}",
                yaml.display()
            )),
            (Some(512), false)
        );
        // The sim's own flag holds when the engine's argv sets none.
        let mut own = base();
        own.timing.max_num_tokens = std::num::NonZeroU64::new(99);
        let a = stand_in(own, &words("trtllm-serve m")).unwrap();
        assert_eq!(a.timing.max_num_tokens.map(|n| n.get()), Some(99));
        std::fs::write(&yaml, "max_num_tokens: many\n").unwrap();
        let e = stand_in(
            base(),
            &words(&format!("trtllm-serve m --config {}", yaml.display())),
        )
        .unwrap_err();
        assert!(e.contains("max_num_tokens must be a token count"), "{e}");
        std::fs::write(&yaml, "enable_chunked_prefill: sometimes\n").unwrap();
        let e = stand_in(
            base(),
            &words(&format!("trtllm-serve m --config {}", yaml.display())),
        )
        .unwrap_err();
        assert!(
            e.contains("enable_chunked_prefill must be true or false"),
            "{e}"
        );
        let e = stand_in(base(), &words("trtllm-serve m --max_num_tokens lots")).unwrap_err();
        assert!(
            e.contains("--max_num_tokens lots is not a token count"),
            "{e}"
        );
    }

    #[test]
    fn an_sglang_worker_may_auto_truncate() {
        let sglang = "python3 -m sglang.launch_server --model-path m --context-length 64";
        assert!(
            !stand_in(base(), &words(sglang))
                .unwrap()
                .allow_auto_truncate
        );
        let a = stand_in(base(), &words(&format!("{sglang} --allow-auto-truncate"))).unwrap();
        assert!(a.allow_auto_truncate);
        assert_eq!(a.max_model_len, Some(64));
    }

    #[test]
    fn what_the_sim_cannot_stand_in_for_is_an_error() {
        for (argv, want) in [
            ("tgi --port 1", "cannot stand in"),
            ("vllm serve m --port 1", "not a disaggregated worker"),
            (
                "vllm serve m --port {port} --kv-transfer-config {}",
                "unfilled placeholder",
            ),
            (
                "python3 -m sglang.launch_server --model-path m --disaggregation-mode both",
                "not prefill, decode or null",
            ),
        ] {
            let e = stand_in(base(), &words(argv)).unwrap_err();
            assert!(e.contains(want), "{argv}: {e}");
        }
    }

    #[test]
    fn each_engines_multi_node_flags_make_a_group() {
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        // SGLang: node rank 1 of 2 joins the rendezvous; tp is the world's.
        let a = stand_in(
            base(),
            &words("python3 -m sglang.launch_server --model-path Q --tp-size 8 --nnodes 2 --dist-init-addr sxn1:4000 --node-rank 1"),
        )
        .unwrap();
        assert_eq!((a.dist.nnodes, a.dist.node_rank), (2, 1));
        assert_eq!(a.dist.dist_init_addr.as_deref(), Some("sxn1:4000"));
        assert!(a.dist.world.contains("--tp-size=8"), "{}", a.dist.world);
        // vLLM, one TP×PP world: the other nodes must run headless.
        let v = stand_in(
            base(),
            &words(&format!("vllm serve m --tensor-parallel-size 4 --pipeline-parallel-size 2 --nnodes 2 --master-addr sxn1 --master-port 4001 {nixl} --node-rank 1 --headless")),
        )
        .unwrap();
        assert_eq!((v.dist.nnodes, v.dist.node_rank), (2, 1));
        assert_eq!(v.dist.dist_init_addr.as_deref(), Some("sxn1:4001"));
        let e = stand_in(
            base(),
            &words(&format!(
                "vllm serve m --nnodes 2 --master-addr h {nixl} --node-rank 1"
            )),
        )
        .unwrap_err();
        assert!(e.contains("without `--headless`"), "{e}");
        // vLLM, data-parallel ranks over nodes: this node's four from rank 4, on their ports.
        let d = stand_in(
            base(),
            &words(&format!("vllm serve m --data-parallel-size 8 --data-parallel-size-local 4 --data-parallel-address sxn1 --data-parallel-rpc-port 4002 {nixl} --data-parallel-start-rank 4 --headless")),
        )
        .unwrap();
        assert_eq!((d.dist.nnodes, d.dist.node_rank), (2, 1));
        assert_eq!(d.dist.dist_init_addr.as_deref(), Some("sxn1:4002"));
        assert_eq!(
            (d.data_parallel_size_local, d.data_parallel_start_rank),
            (Some(4), 4)
        );
        let e = stand_in(
            base(),
            &words(&format!(
                "vllm serve m --data-parallel-size 8 --data-parallel-size-local 3 {nixl}"
            )),
        )
        .unwrap_err();
        assert!(e.contains("not a whole number of nodes"), "{e}");
        // One node: no group.
        let one = stand_in(base(), &words(&format!("vllm serve m {nixl}"))).unwrap();
        assert_eq!(one.dist.nnodes, 1);
    }

    #[test]
    fn each_engine_needs_its_nodes_share_of_the_gpus_and_fails_without_it() {
        use crate::{GpuNeed, check_gpus};
        let nixl = r#"--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}"#;
        let need = |argv: &str| match stand_in(base(), &words(argv)).unwrap().gpu_need {
            Some(GpuNeed::Count(n, _)) => n,
            other => panic!("{argv}: {other:?}"),
        };
        assert_eq!(
            need(&format!(
                "vllm serve m --tensor-parallel-size 4 --pipeline-parallel-size 2 {nixl}"
            )),
            8
        );
        assert_eq!(
            need(&format!(
                "vllm serve m --tensor-parallel-size 1 --data-parallel-size 8 {nixl}"
            )),
            8
        );
        assert_eq!(
            need(&format!(
                "vllm serve m --data-parallel-size 8 --data-parallel-size-local 4 {nixl} --data-parallel-start-rank 4 --headless"
            )),
            4,
            "this node's data-parallel ranks"
        );
        assert_eq!(
            need(&format!(
                "vllm serve m --tensor-parallel-size 8 --pipeline-parallel-size 2 --nnodes 2 --master-addr h {nixl} --node-rank 0"
            )),
            8,
            "its share of one world over two nodes"
        );
        assert_eq!(
            need(
                "python3 -m sglang.launch_server --model-path m --tp-size 16 --nnodes 2 --dist-init-addr h:1 --node-rank 1"
            ),
            8
        );
        assert_eq!(
            need("python3 -m sglang.launch_server --model-path m --tp 4"),
            4
        );
        let t = stand_in(base(), &words("trtllm-llmapi-launch trtllm-serve m")).unwrap();
        assert_eq!(t.gpu_need, Some(GpuNeed::LocalRank));
        // Checked against what the process sees.
        let four = GpuNeed::Count(4, "tp 4".into());
        assert!(check_gpus(&four, None, 0).is_ok(), "unset: every GPU");
        assert!(check_gpus(&four, Some("0,1,2,3"), 0).is_ok());
        let e = check_gpus(&four, Some("0,1"), 0).unwrap_err().to_string();
        assert!(
            e.contains(
                "CUDA_VISIBLE_DEVICES=\"0,1\" shows 2 GPU(s), but this process needs 4: tp 4"
            ),
            "{e}"
        );
        assert!(check_gpus(&four, Some(""), 0).is_err(), "none");
        assert!(check_gpus(&GpuNeed::LocalRank, Some("0,1,2,3"), 3).is_ok());
        let e = check_gpus(&GpuNeed::LocalRank, Some("0"), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("local rank 1"), "{e}");
    }
}
