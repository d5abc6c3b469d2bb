//! The sim's deterministic "model": tokenizer and next-token function.
//!
//! Every output is a pure function of the prompt's token ids and the output position, computed
//! with our own fixed hashes (FNV-1a, splitmix64) rather than `std`'s randomly seeded hasher. That
//! is what lets a generation server check a KV hand-off it never saw being made: it recomputes
//! token 0 for the prompt and compares it with `first_gen_tokens`. It also makes an aggregated run
//! and a context+generation run of the same prompt produce identical text.

/// Size of the simulated vocabulary; every token id is below it.
pub const VOCAB_SIZE: u32 = 32_000;

/// Tokenizes text: whitespace-separated words, each hashed to an id in `[0, VOCAB_SIZE)`.
pub fn tokenize(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .map(|word| (fnv1a(word.as_bytes()) % u64::from(VOCAB_SIZE)) as u32)
        .collect()
}

/// A fingerprint of a prompt, computed once per request; [`token_at`] derives outputs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptDigest(u64);

impl PromptDigest {
    pub fn of(prompt: &[u32]) -> Self {
        // Fold through splitmix64 so that order matters and nearby prompts diverge fully.
        let seed = prompt
            .iter()
            .fold(0x5EED_u64 ^ prompt.len() as u64, |acc, &id| {
                splitmix64(acc ^ u64::from(id))
            });
        Self(seed)
    }
}

/// The token this sim generates at output position `position` for a prompt.
pub fn token_at(prompt: PromptDigest, position: u64) -> u32 {
    let mixed = splitmix64(prompt.0 ^ position.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (mixed % u64::from(VOCAB_SIZE)) as u32
}

/// The text a token renders to. A leading space keeps concatenated outputs readable, and the
/// id is visible so a human can line up streamed text with `first_gen_tokens`.
pub fn token_text(id: u32) -> String {
    format!(" t{id}")
}

/// Appends a token's text to `out` without an intermediate allocation.
pub fn push_token_text(out: &mut String, id: u32) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(out, " t{id}");
}

fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizing_is_deterministic_and_in_vocab() {
        let a = tokenize("the quick  brown\tfox\nthe");
        assert_eq!(a.len(), 5);
        assert_eq!(a[0], a[4], "the same word is the same id");
        assert!(a.iter().all(|&id| id < VOCAB_SIZE));
        assert_eq!(a, tokenize("the quick brown fox the"));
        assert!(tokenize("   ").is_empty());
    }

    #[test]
    fn outputs_depend_on_prompt_and_position_only() {
        let p = PromptDigest::of(&[1, 2, 3]);
        assert_eq!(token_at(p, 0), token_at(PromptDigest::of(&[1, 2, 3]), 0));
        let outs: Vec<u32> = (0..64).map(|i| token_at(p, i)).collect();
        assert!(outs.iter().all(|&id| id < VOCAB_SIZE));
        let distinct: std::collections::BTreeSet<_> = outs.iter().collect();
        assert!(
            distinct.len() > 32,
            "positions should not collapse: {outs:?}"
        );
        // Order and length matter, so a hand-off for another prompt is caught.
        assert_ne!(PromptDigest::of(&[1, 2, 3]), PromptDigest::of(&[3, 2, 1]));
        assert_ne!(PromptDigest::of(&[0]), PromptDigest::of(&[0, 0]));
    }

    #[test]
    fn pinned_values_do_not_change_across_builds() {
        // A context server and a generation server may be different builds; they must agree.
        assert_eq!(token_text(42), " t42");
        let mut s = String::new();
        push_token_text(&mut s, 7);
        assert_eq!(s, " t7");
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
