//! Converting other harnesses' configs into cases. Each importer is pure (text in, case text and
//! notes out): whatever it cannot map is returned as a note, never silently dropped.

pub mod trtllm;
mod yaml;

/// An imported case: its YAML, and what did not map (or mapped by assumption).
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub case_yaml: String,
    pub notes: Vec<Note>,
}

/// One thing the importer could not carry over as it was, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Dotted key in the source, e.g. `profiling.nsys_on`.
    pub key: String,
    pub what: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.what)
    }
}

/// "`key` problem", or, for the file's top level (no key), "the file problem".
fn shape_message(key: &str, problem: &str) -> String {
    if key.is_empty() {
        format!("the file {problem} (a TensorRT-LLM disagg config is a mapping of sections)")
    } else {
        format!("`{key}` {problem}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not YAML: {0}")]
    Yaml(String),
    #[error("{}", shape_message(key, problem))]
    Shape { key: String, problem: String },
    /// The case was converted but does not pass `validate`; `case_yaml` is what was
    /// converted, so it can be written out and fixed there (the error's lines are its lines).
    #[error("the converted case does not load:\n{error}")]
    Invalid {
        error: Box<crate::CaseError>,
        case_yaml: String,
    },
}
