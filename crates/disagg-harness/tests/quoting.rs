//! The batch script's one quoting function, against hostile input: whatever the case says must
//! reach the program literally, through a real `sh`.

use std::process::Command;

use disagg_harness::slurm::quote::{sh_join, sh_quote};
use proptest::prelude::*;

/// Strings built from what breaks naive quoting: quotes, `$()`, backticks, newlines, globs,
/// spaces, backslashes, comment and control characters, and some non-ASCII.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "'", "\"", "$(", ")", "`", "\n", "*", "?", "[a]", " ", "\t", "\\", "#", "~", ";", "&", "|",
        "<", ">", "!", "$HOME", "${x}", "%", "=", "-", "--x", "a", "é", "\u{7f}", "'\\''",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

fn through_sh(script: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(std::env::temp_dir())
        .env("HOME", "/should-not-appear")
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "sh failed on {script:?}: {out:?}");
    out.stdout
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_quoted_value_arrives_literally(s in hostile()) {
        let got = through_sh(&format!("printf %s {}", sh_quote(&s)));
        prop_assert_eq!(String::from_utf8_lossy(&got), s);
    }

    #[test]
    fn a_quoted_argv_arrives_as_the_same_words(argv in prop::collection::vec(hostile(), 1..5)) {
        let got = through_sh(&format!("printf '%s\\0' {}", sh_join(&argv)));
        let words: Vec<String> = got
            .split(|b| *b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        prop_assert_eq!(&words[..words.len() - 1], &argv[..]);
    }
}
