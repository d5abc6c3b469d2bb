//! The one quoting function for the batch script.

/// Quotes `s` as one word for POSIX `sh` (and for sbatch's `#SBATCH` tokenizer, given a value
/// with no backslash or newline, which the case check rejects there).
///
/// Plain words stay as they are, so the script reads naturally; anything else is wrapped in
/// single quotes, inside which `sh` expands nothing, and each `'` becomes `'\''`.
pub fn sh_quote(s: &str) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b);
    if !s.is_empty() && s.bytes().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes and joins argv into one line of `sh`.
pub fn sh_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| sh_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_plain_and_the_rest_is_single_quoted() {
        assert_eq!(sh_quote("--nodes=2"), "--nodes=2");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(sh_quote("#x"), "'#x'");
    }
}
