//! `engine_args` as command-line flags, for engines configured by flags (vllm, sglang).

use serde_yaml_ng::{Mapping, Value};

/// `{max_model_len: 4096, enforce_eager: true}` → `--max-model-len 4096 --enforce-eager`.
/// `false` and null leave the flag out; a list repeats its values after one flag; a mapping is
/// passed as JSON (how these engines take structured options). Keys in `skip` are left out.
pub fn to_flags(m: &Mapping, skip: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in m {
        let Some(k) = k.as_str() else { continue };
        if skip.contains(&k) {
            continue;
        }
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            Value::Bool(false) | Value::Null => {}
            Value::Bool(true) => out.push(flag),
            Value::Sequence(items) => {
                out.push(flag);
                out.extend(items.iter().map(scalar));
            }
            other => {
                out.push(flag);
                out.push(scalar(other));
            }
        }
    }
    out
}

/// A scalar as its text; a mapping or list as JSON.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
