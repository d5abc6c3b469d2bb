//! Text prompts of a target token length, for endpoints that take text (chat).
//!
//! Without the heavy `tokenizers` crate, prompts are built from words that each cost one token:
//! - from a local HuggingFace `tokenizer.json`: the vocabulary's word-start entries (`Ġword` in
//!   byte-level BPE, `▁word` in SentencePiece, plain words in WordPiece), each of which encodes
//!   as a single token when it follows a space;
//! - without one: a fixed list of common English words, one token each in every common
//!   vocabulary.
//!
//! Lengths of arbitrary text (dataset prompts and replies) are estimated: by greedy longest match
//! against the vocabulary when there is one, else by a words-and-characters rule. The server's
//! `usage` replaces the input estimate whenever it reports `prompt_tokens`.

use std::collections::HashSet;
use std::path::Path;

use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::Value;

use crate::BenchError;

/// Common short English words; each is a single token (after a space) in GPT-2, Llama,
/// Mistral, Qwen and BERT vocabularies.
const COMMON_WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at",
    "from", "his", "her", "it", "an", "were", "are", "which", "this", "be", "or", "had", "not",
    "but", "first", "one", "their", "its", "new", "after", "who", "they", "have", "has", "been",
    "two", "she", "he", "all", "also", "other", "time", "into", "more", "city", "during", "year",
    "would", "when", "there", "only", "most", "some", "later", "between", "about", "over", "world",
    "state", "life", "school", "work", "house", "water", "story", "music", "game", "team",
    "season", "film", "book", "river", "road", "family", "group", "small", "large", "early",
    "long", "old", "high", "under", "three", "people", "part", "area", "name", "line", "known",
    "used", "made", "same", "place", "number", "end", "home", "day", "north", "south", "west",
    "east", "side", "light", "power", "land", "field", "point", "right", "left",
];

/// How prompt text is made and measured.
#[derive(Debug, Clone)]
pub(crate) struct TextModel {
    /// Words that cost one token each when written after a space.
    words: Vec<String>,
    /// The vocabulary as text pieces, for estimating lengths; empty without a tokenizer.
    vocab: HashSet<String>,
    /// Whether vocabulary pieces mark a preceding space (`Ġ`/`▁`) rather than being plain words.
    space_marked: bool,
}

impl TextModel {
    pub fn common_words() -> Self {
        Self {
            words: COMMON_WORDS.iter().map(|w| w.to_string()).collect(),
            vocab: HashSet::new(),
            space_marked: false,
        }
    }

    /// Reads a HuggingFace `tokenizer.json` (offline; nothing is fetched).
    pub fn from_tokenizer_file(path: &Path) -> Result<Self, BenchError> {
        let fail = |reason: String| BenchError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let json: Value = serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        Self::from_tokenizer_json(&json).map_err(fail)
    }

    pub fn from_tokenizer_json(json: &Value) -> Result<Self, String> {
        let vocab = &json["model"]["vocab"];
        // BPE and WordPiece: {"piece": id}; Unigram: [["piece", score], ...]. Ordered by id (or
        // position) so the word list, and with it every prompt, is the same on every machine.
        let mut pieces: Vec<(u64, String)> = match vocab {
            Value::Object(map) => map
                .iter()
                .filter_map(|(piece, id)| Some((id.as_u64()?, piece.clone())))
                .collect(),
            Value::Array(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some((i as u64, e.get(0)?.as_str()?.to_string())))
                .collect(),
            _ => return Err("no model.vocab object or list".into()),
        };
        pieces.sort();
        let space_marked = pieces
            .iter()
            .any(|(_, p)| p.starts_with('Ġ') || p.starts_with('▁'));
        let words: Vec<String> = pieces
            .iter()
            .filter_map(|(_, p)| {
                let word = if space_marked {
                    p.strip_prefix('Ġ').or_else(|| p.strip_prefix('▁'))?
                } else {
                    p.as_str()
                };
                let plain =
                    (2..=12).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_lowercase());
                plain.then(|| word.to_string())
            })
            .collect();
        if words.len() < 16 {
            return Err(format!(
                "only {} whole-word tokens in the vocabulary; need at least 16 to build prompts",
                words.len()
            ));
        }
        Ok(Self {
            words,
            vocab: pieces.into_iter().map(|(_, p)| p).collect(),
            space_marked,
        })
    }

    /// About `tokens` tokens of text: that many one-token words, space-separated.
    pub fn text(&self, rng: &mut SmallRng, tokens: u32) -> String {
        let mut out = String::with_capacity(tokens as usize * 6);
        for i in 0..tokens {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&self.words[rng.random_range(0..self.words.len())]);
        }
        out
    }

    /// An estimate of how many tokens `text` encodes to (at least 1 for non-empty text).
    pub fn estimate_tokens(&self, text: &str) -> u32 {
        let count = if self.vocab.is_empty() {
            // About four characters per token for English, but never fewer tokens than words.
            let words = text.split_whitespace().count();
            words.max(text.chars().count().div_ceil(4))
        } else {
            text.split_whitespace().map(|w| self.greedy_pieces(w)).sum()
        };
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Pieces of one whitespace-separated word by greedy longest match; a character matching
    /// nothing costs one token.
    fn greedy_pieces(&self, word: &str) -> usize {
        let chars: Vec<char> = word.chars().collect();
        let (mut at, mut pieces) = (0, 0);
        while at < chars.len() {
            let mut best = 1;
            for end in (at + 1..=chars.len()).rev() {
                let piece: String = chars[at..end].iter().collect();
                let marked = if at == 0 && self.space_marked {
                    ["Ġ", "▁"]
                        .iter()
                        .any(|m| self.vocab.contains(&format!("{m}{piece}")))
                } else {
                    false
                };
                if marked || self.vocab.contains(&piece) {
                    best = end - at;
                    break;
                }
            }
            at += best;
            pieces += 1;
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use serde_json::json;

    use super::*;

    fn bpe() -> Value {
        let mut vocab = serde_json::Map::new();
        let pieces = [
            "Ġthe", "Ġcat", "Ġsat", "Ġon", "Ġmat", "Ġdog", "Ġran", "Ġfar", "Ġaway", "Ġred",
            "Ġblue", "Ġsky", "Ġsea", "Ġsun", "Ġmoon", "Ġstar", "Ġhat", "th", "e", "c", "a", "t",
            "ĠThe", "Ġ123", "!", "Ġx",
        ];
        for (id, p) in pieces.iter().enumerate() {
            vocab.insert(p.to_string(), json!(id));
        }
        json!({"model": {"type": "BPE", "vocab": vocab, "merges": []}})
    }

    #[test]
    fn word_start_pieces_become_words() {
        let m = TextModel::from_tokenizer_json(&bpe()).unwrap();
        // Capitalised, numeric and single-letter pieces are left out.
        assert_eq!(m.words.len(), 17);
        assert!(
            m.words
                .iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        );
        let text = m.text(&mut SmallRng::seed_from_u64(1), 50);
        assert_eq!(text.split(' ').count(), 50);
        assert_eq!(m.estimate_tokens(&text), 50);
    }

    #[test]
    fn unigram_vocabularies_are_lists() {
        let list: Vec<Value> = [
            "▁the", "▁cat", "▁sat", "▁on", "▁mat", "▁dog", "▁ran", "▁far", "▁away", "▁red",
            "▁blue", "▁sky", "▁sea", "▁sun", "▁moon", "▁star",
        ]
        .iter()
        .map(|p| json!([p, -1.0]))
        .collect();
        let m =
            TextModel::from_tokenizer_json(&json!({"model": {"type": "Unigram", "vocab": list}}))
                .unwrap();
        assert_eq!(m.words[0], "the");
        assert_eq!(m.estimate_tokens("the cat sat"), 3);
    }

    #[test]
    fn estimates_split_unknown_words_into_pieces() {
        let m = TextModel::from_tokenizer_json(&bpe()).unwrap();
        // "cat" matches "Ġcat"; "that" has no word piece: "th" + "a" + "t"; "!" is one.
        assert_eq!(m.estimate_tokens("cat that !"), 5);
        assert_eq!(m.estimate_tokens(""), 0);
    }

    #[test]
    fn small_or_missing_vocabularies_are_errors() {
        let err = TextModel::from_tokenizer_json(&json!({"model": {}})).unwrap_err();
        assert!(err.contains("model.vocab"), "{err}");
        let err =
            TextModel::from_tokenizer_json(&json!({"model": {"vocab": {"Ġa": 0}}})).unwrap_err();
        assert!(err.contains("whole-word tokens"), "{err}");
    }

    #[test]
    fn common_words_are_deterministic_and_estimated_by_rule() {
        let m = TextModel::common_words();
        let a = m.text(&mut SmallRng::seed_from_u64(3), 20);
        assert_eq!(a, m.text(&mut SmallRng::seed_from_u64(3), 20));
        assert_eq!(a.split(' ').count(), 20);
        // Words win over characters for short words; characters win for long runs.
        assert_eq!(m.estimate_tokens("the cat sat"), 3);
        assert_eq!(m.estimate_tokens("abcdefghijklmnop"), 4);
    }
}
