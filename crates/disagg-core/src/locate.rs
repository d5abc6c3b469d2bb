//! Finds the line of a dotted key in YAML text, for errors found after deserialization
//! (semantic checks), where the parser's own position is no longer at hand.
//!
//! It is a scan, not a parser: it finds `seg:` for each segment in turn, each after the previous
//! one, which is right for block and flow mappings alike. When a segment is not found it returns
//! the line of the deepest one that was, so an error still points near its cause.

/// 1-based line of `path` (e.g. `timeouts.job`), or of its closest ancestor present.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let mut from = 0usize;
    let mut found = None;
    for (depth, seg) in path.split('.').filter(|s| !s.is_empty()).enumerate() {
        match find_key(text, seg, from, depth == 0) {
            Some(pos) => {
                found = Some(pos);
                from = pos + seg.len();
            }
            None => break,
        }
    }
    found.map(|pos| text[..pos].matches('\n').count() + 1)
}

fn find_key(text: &str, key: &str, from: usize, top_level: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut start = from;
    while let Some(rel) = text.get(start..)?.find(key) {
        let pos = start + rel;
        start = pos + key.len();
        let before_ok = pos == 0 || {
            let b = bytes[pos - 1];
            b == b' '
                || b == b'{'
                || b == b','
                || b == b'\n'
                || b == b'\t'
                || b == b'"'
                || b == b'\''
        };
        if top_level && pos != 0 && bytes[pos - 1] != b'\n' {
            continue;
        }
        let rest = text[start..]
            .trim_start_matches(['"', '\''])
            .trim_start_matches([' ', '\t']);
        if before_ok && rest.starts_with(':') {
            return Some(pos);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::line_of;

    #[test]
    fn finds_block_and_flow_keys() {
        let text = "name: x\nbenchmark:\n  isl: 3\n  osl: 4\ntimeouts: {request: 1s, job: 2s}\n";
        assert_eq!(line_of(text, "benchmark.osl"), Some(4));
        assert_eq!(line_of(text, "timeouts.job"), Some(5));
        assert_eq!(line_of(text, "name"), Some(1));
        // Missing leaf: the parent's line.
        assert_eq!(line_of(text, "benchmark.rounds"), Some(2));
        assert_eq!(line_of(text, "perf.baseline"), None);
    }

    #[test]
    fn nested_key_is_not_taken_for_top_level() {
        let text = "ctx:\n  env: {}\nenv:\n  worker: {}\n";
        assert_eq!(line_of(text, "env.worker"), Some(4));
    }
}
