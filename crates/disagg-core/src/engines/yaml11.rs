//! YAML for Python readers. serde_yaml_ng writes YAML 1.2, where `yes`, `on` or `1_000` are
//! plain strings and need no quotes; TensorRT-LLM reads its options with PyYAML, a YAML 1.1
//! reader, which turns them into `True` and `1000`. Every string such a reader would not read
//! back as that string is written single-quoted.

use serde_yaml_ng::Value;

/// `value` as YAML that a YAML 1.1 reader (PyYAML) reads back unchanged.
pub fn to_string(value: &Value) -> String {
    // Each string at risk becomes a placeholder (a plain word serde writes as is), which is then
    // replaced by the quoted string in the text.
    let mut quoted: Vec<String> = Vec::new();
    let tagged = mark(value, &mut quoted);
    let mut text = serde_yaml_ng::to_string(&tagged).unwrap_or_default();
    for (i, s) in quoted.iter().enumerate().rev() {
        text = text.replace(&placeholder(i), &format!("'{}'", s.replace('\'', "''")));
    }
    text
}

fn placeholder(i: usize) -> String {
    format!("disaggyaml11quoted{i}x")
}

fn mark(v: &Value, quoted: &mut Vec<String>) -> Value {
    match v {
        Value::String(s) if read_otherwise(s) => {
            quoted.push(s.clone());
            Value::String(placeholder(quoted.len() - 1))
        }
        Value::Sequence(items) => Value::Sequence(items.iter().map(|x| mark(x, quoted)).collect()),
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, x)| (mark(k, quoted), mark(x, quoted)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether YAML 1.1's implicit types (as PyYAML resolves them) would read this plain scalar as
/// something other than a string: a bool, an int or float in 1.1's wider syntax, a date, or the
/// merge and value keys.
pub fn read_otherwise(s: &str) -> bool {
    const BOOLS: [&str; 22] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ];
    if BOOLS.contains(&s) || s == "<<" || s == "=" {
        return true;
    }
    // Dates and timestamps start with YYYY-M-D.
    let b = s.as_bytes();
    if b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        return true;
    }
    // Numbers: 1.1 allows `_` separators, `:` (base 60), `0b`, and leading `.`.
    let body = s.trim_start_matches(['+', '-']);
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '_' | ':' | '.' | 'x' | 'o' | 'b'))
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && (body.contains('_') || body.contains(':') || body.starts_with("0b"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_a_yaml_11_reader_would_retype_are_quoted() {
        let mut m = serde_yaml_ng::Mapping::new();
        for s in [
            "yes",
            "off",
            "ON",
            "y",
            "1_000",
            "12:30",
            "0b101",
            "2026-01-02",
            "<<",
            "it's",
        ] {
            m.insert(s.into(), s.into());
        }
        m.insert("plain".into(), "UCX".into());
        m.insert("n".into(), Value::Bool(true));
        m.insert("count".into(), 8.into());
        let text = to_string(&Value::Mapping(m));
        for line in [
            "'yes': 'yes'",
            "'off': 'off'",
            "'ON': 'ON'",
            "'y': 'y'",
            "'1_000': '1_000'",
            "'12:30': '12:30'",
            "'0b101': '0b101'",
            "'2026-01-02': '2026-01-02'",
            "'<<': '<<'",
            "plain: UCX",
            "'n': true",
            "count: 8",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
        // Plain strings stay plain, and what serde already quotes stays as it is.
        assert!(text.contains("it's: it's"), "{text}");
        let back: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["yes"], Value::String("yes".into()));
        assert_eq!(back["1_000"], Value::String("1_000".into()));
    }
}
