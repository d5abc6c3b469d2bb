//! Reading loosely typed YAML mappings, as other harnesses' configs are.

use serde_yaml_ng::{Mapping, Value};

pub(super) fn str_of(m: &Mapping, k: &str) -> Option<String> {
    match m.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn u64_of(m: &Mapping, k: &str) -> Option<u64> {
    match m.get(k)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn put(m: &mut Mapping, k: &str, v: impl Into<Value>) {
    m.insert(Value::from(k), v.into());
}

/// `<partition>`-style values left for the user to fill in.
pub(super) fn placeholder(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || (v.starts_with('<') && v.ends_with('>'))
}

pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!(
            "`{}`",
            serde_yaml_ng::to_string(other).unwrap_or_default().trim()
        ),
    }
}
