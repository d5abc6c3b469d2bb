//! Prompt datasets read from a local file. Two formats, told apart by the first character:
//! - ShareGPT JSON (`[` first): an array of `{"conversations": [{"from", "value"}, ...]}`; the
//!   first turn is the prompt and the second's length is the output length. Conversations with
//!   fewer than two turns are left out and counted, as benchmark_serving leaves them out.
//! - JSONL, one request per line, in either of two shapes (a file may mix them):
//!   - TensorRT-LLM's custom dataset (`--dataset-name trtllm_custom`, perf-sanity's
//!     `dataset_file`): `{"input": {"messages": [{"role": "system", ...}, {"role": "user",
//!     "content": PROMPT}], "max_tokens": N}}`; the prompt is the user message, the output length
//!     `max_tokens`;
//!   - ours: `input_ids` (token ids) or `prompt` (text), plus `output_tokens`.
//!
//! A malformed entry is an error naming its line: a silently shortened dataset would change the
//! workload without anyone knowing.

use std::path::Path;

use serde::Deserialize;

use crate::BenchError;
use crate::text::TextModel;

/// A prompt as the dataset gives it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prompt {
    Tokens(Vec<u32>),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub prompt: Prompt,
    /// Known exactly for token ids, estimated for text.
    pub input_len: u32,
    pub output_len: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dataset {
    pub entries: Vec<Entry>,
    /// ShareGPT conversations left out for having fewer than two turns.
    pub skipped_short: usize,
}

pub(crate) fn load(path: &Path, text: &TextModel) -> Result<Dataset, BenchError> {
    let contents = std::fs::read_to_string(path).map_err(|e| BenchError::Dataset {
        path: path.to_path_buf(),
        line: None,
        reason: e.to_string(),
    })?;
    parse(&contents, text).map_err(|(line, reason)| BenchError::Dataset {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// Errors are `(line, reason)`; the line is 1-based.
pub(crate) fn parse(contents: &str, text: &TextModel) -> Result<Dataset, (Option<usize>, String)> {
    let dataset = if contents.trim_start().starts_with('[') {
        sharegpt(contents, text)?
    } else {
        jsonl(contents, text)?
    };
    if dataset.entries.is_empty() {
        return Err((None, "no usable entries".into()));
    }
    Ok(dataset)
}

/// Other keys (`id`, `model`, ...) vary between ShareGPT dumps and are ignored.
#[derive(Deserialize)]
struct ShareGptEntry {
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    #[serde(rename = "from")]
    _from: String,
    value: String,
}

fn sharegpt(contents: &str, text: &TextModel) -> Result<Dataset, (Option<usize>, String)> {
    // serde_json reports the line and column of the first entry that does not fit.
    let entries: Vec<ShareGptEntry> = serde_json::from_str(contents)
        .map_err(|e| (Some(e.line()), format!("not a ShareGPT array: {e}")))?;
    let mut out = Dataset {
        entries: Vec::with_capacity(entries.len()),
        skipped_short: 0,
    };
    for e in entries {
        let [prompt, reply, ..] = e.conversations.as_slice() else {
            out.skipped_short += 1;
            continue;
        };
        out.entries.push(Entry {
            input_len: text.estimate_tokens(&prompt.value).max(1),
            output_len: text.estimate_tokens(&reply.value).max(1),
            prompt: Prompt::Text(prompt.value.clone()),
        });
    }
    Ok(out)
}

/// A line of TensorRT-LLM's custom dataset.
#[derive(Deserialize)]
struct TrtllmCustom {
    input: TrtllmInput,
}

#[derive(Deserialize)]
struct TrtllmInput {
    messages: Vec<Message>,
    max_tokens: u32,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

impl TrtllmCustom {
    /// The user message and `max_tokens`; `Err` says what the line lacks.
    fn prompt(self) -> Result<(String, u32), String> {
        let TrtllmInput {
            messages,
            max_tokens,
        } = self.input;
        if max_tokens == 0 {
            return Err("input.max_tokens must be at least 1".into());
        }
        let user = messages
            .into_iter()
            .rev()
            .find(|m| m.role == "user")
            .ok_or("input.messages has no message with role \"user\" (the prompt)")?;
        if user.content.is_empty() {
            return Err("the user message is empty".into());
        }
        Ok((user.content, max_tokens))
    }
}

#[derive(Deserialize)]
struct JsonlEntry {
    #[serde(default)]
    input_ids: Option<Vec<u32>>,
    #[serde(default)]
    prompt: Option<String>,
    output_tokens: u32,
}

fn jsonl(contents: &str, text: &TextModel) -> Result<Dataset, (Option<usize>, String)> {
    let mut entries = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        let n = Some(i + 1);
        // Blank lines (a trailing newline, spacing) are not entries.
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| (n, e.to_string()))?;
        if value.get("input").is_some() {
            let custom: TrtllmCustom = serde_json::from_value(value).map_err(|e| {
                (
                    n,
                    format!(
                        "not TensorRT-LLM's custom format ({{\"input\": {{\"messages\": \
                         [...], \"max_tokens\": N}}}}): {e}"
                    ),
                )
            })?;
            let (prompt, output_len) = custom.prompt().map_err(|why| (n, why))?;
            entries.push(Entry {
                input_len: text.estimate_tokens(&prompt).max(1),
                prompt: Prompt::Text(prompt),
                output_len,
            });
            continue;
        }
        let e: JsonlEntry = serde_json::from_value(value).map_err(|e| (n, e.to_string()))?;
        if e.output_tokens == 0 {
            return Err((n, "output_tokens must be at least 1".into()));
        }
        let (prompt, input_len) = match (e.input_ids, e.prompt) {
            (Some(ids), None) if !ids.is_empty() => {
                let len = u32::try_from(ids.len()).map_err(|_| (n, "input_ids too long".into()))?;
                (Prompt::Tokens(ids), len)
            }
            (None, Some(p)) if !p.is_empty() => {
                let len = text.estimate_tokens(&p).max(1);
                (Prompt::Text(p), len)
            }
            (Some(_), Some(_)) => return Err((n, "has both input_ids and prompt".into())),
            (None, None) => return Err((n, "needs input_ids or prompt".into())),
            _ => return Err((n, "empty input_ids or prompt".into())),
        };
        entries.push(Entry {
            prompt,
            input_len,
            output_len: e.output_tokens,
        });
    }
    Ok(Dataset {
        entries,
        skipped_short: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> TextModel {
        TextModel::common_words()
    }

    #[test]
    fn jsonl_with_input_ids_and_prompts() {
        let data = "\
{\"task_id\": 0, \"input_ids\": [1, 2, 3], \"output_tokens\": 7}

{\"prompt\": \"the cat sat\", \"output_tokens\": 2}
";
        let d = parse(data, &words()).unwrap();
        assert_eq!(
            d.entries,
            vec![
                Entry {
                    prompt: Prompt::Tokens(vec![1, 2, 3]),
                    input_len: 3,
                    output_len: 7
                },
                Entry {
                    prompt: Prompt::Text("the cat sat".into()),
                    input_len: 3,
                    output_len: 2
                },
            ]
        );
    }

    #[test]
    fn trtllm_custom_lines_take_the_user_message_and_max_tokens() {
        let data = "\
{\"input\": {\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"the cat sat on the mat\"}], \"max_tokens\": 12}}
{\"prompt\": \"the dog\", \"output_tokens\": 2}
";
        let d = parse(data, &words()).unwrap();
        assert_eq!(
            d.entries[0],
            Entry {
                prompt: Prompt::Text("the cat sat on the mat".into()),
                input_len: 6,
                output_len: 12
            }
        );
        assert_eq!(d.entries[1].output_len, 2);
        for (bad, says) in [
            (
                "{\"input\": {\"messages\": [{\"role\": \"system\", \"content\": \"x\"}], \"max_tokens\": 3}}",
                "no message with role \"user\"",
            ),
            (
                "{\"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}}",
                "missing field `max_tokens`",
            ),
            (
                "{\"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 0}}",
                "at least 1",
            ),
        ] {
            let (line, reason) = parse(&format!("{bad}\n"), &words()).unwrap_err();
            assert_eq!(line, Some(1));
            assert!(reason.contains(says), "{bad}: {reason}");
        }
    }

    #[test]
    fn bad_jsonl_lines_are_errors_with_their_line_number() {
        let good = "{\"input_ids\": [1], \"output_tokens\": 1}\n";
        for (bad, says) in [
            ("{\"input_ids\": [1]}", "missing field `output_tokens`"),
            ("{\"input_ids\": [1], \"output_tokens\": 0}", "at least 1"),
            ("{\"output_tokens\": 3}", "needs input_ids or prompt"),
            (
                "{\"input_ids\": [1], \"prompt\": \"a\", \"output_tokens\": 3}",
                "both",
            ),
            ("{\"input_ids\": [], \"output_tokens\": 3}", "empty"),
            (
                "{\"input_ids\": [-1], \"output_tokens\": 3}",
                "invalid value",
            ),
            ("not json", "expected"),
        ] {
            let data = format!("{good}\n{bad}\n{good}");
            let (line, reason) = parse(&data, &words()).unwrap_err();
            assert_eq!(line, Some(3), "{bad}");
            assert!(reason.contains(says), "{bad}: {reason}");
        }
    }

    #[test]
    fn sharegpt_takes_the_first_two_turns() {
        let data = r#"[
  {"id": "a", "conversations": [
    {"from": "human", "value": "the cat sat on the mat"},
    {"from": "gpt", "value": "one two"},
    {"from": "human", "value": "ignored"}
  ]},
  {"id": "b", "conversations": [{"from": "human", "value": "alone"}]}
]"#;
        let d = parse(data, &words()).unwrap();
        assert_eq!(d.skipped_short, 1);
        assert_eq!(
            d.entries,
            vec![Entry {
                prompt: Prompt::Text("the cat sat on the mat".into()),
                input_len: 6,
                output_len: 2
            }]
        );
    }

    #[test]
    fn bad_sharegpt_entries_are_errors_with_their_line_number() {
        let data = r#"[
  {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
  {"conversations": [{"from": "human", "value": 5}]}
]"#;
        let (line, reason) = parse(data, &words()).unwrap_err();
        assert_eq!(line, Some(3));
        assert!(reason.contains("invalid type"), "{reason}");
        let (line, reason) = parse("[{\"turns\": []}]", &words()).unwrap_err();
        assert_eq!(line, Some(1));
        assert!(reason.contains("missing field `conversations`"), "{reason}");
    }

    #[test]
    fn an_empty_dataset_is_an_error() {
        assert_eq!(
            parse("\n\n", &words()).unwrap_err(),
            (None, "no usable entries".to_string())
        );
        let only_short = r#"[{"conversations": []}]"#;
        assert!(parse(only_short, &words()).is_err());
    }
}
