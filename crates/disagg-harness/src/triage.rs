//! `disagg triage`: find the first failure in a run's logs and show it in context.
//!
//! Logs are read in the order things happen: setup, workers, router, benchmark, then the Slurm
//! log. The first line that matches a known failure pattern is reported with the lines around
//! it; failing that, a non-zero exit recorded in the status.

use std::path::{Path, PathBuf};

/// What the triage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub pattern: &'static str,
    /// The matching line with up to [`CONTEXT`] lines either side.
    pub excerpt: String,
}

pub const CONTEXT: usize = 5;

/// Tells whether a log line is a failure of one kind.
type Matcher = fn(&str) -> bool;

/// (name, matcher), in the order they are tried on each line.
const PATTERNS: &[(&str, Matcher)] = &[
    ("Python traceback", |l| {
        l.starts_with("Traceback (most recent call last)")
    }),
    ("Rust panic", |l| l.contains("panicked at")),
    ("out of memory", |l| {
        let l = l.to_ascii_lowercase();
        l.contains("out of memory") || l.contains("outofmemoryerror")
    }),
    ("address already in use", |l| {
        l.to_ascii_lowercase().contains("address already in use")
    }),
    ("role failure", |l| l.contains(": FAILED: ")),
];

/// The logs of a run, in triage order.
pub fn ordered_logs(run_dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = Vec::new();
    names.push("install.log".into());
    let mut workers: Vec<String> = std::fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (n.starts_with("ctx_server_") || n.starts_with("gen_server_"))
                        && n.ends_with(".log")
                })
                .collect()
        })
        .unwrap_or_default();
    workers.sort_by_key(|n| {
        (
            !n.starts_with("ctx"),
            n.trim_end_matches(".log")
                .rsplit('_')
                .next()
                .and_then(|i| i.parse::<u32>().ok()),
        )
    });
    names.extend(workers);
    names.push("disagg_server.log".into());
    names.push("benchmark.log".into());
    let mut slurm: Vec<String> = std::fs::read_dir(run_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("slurm-") && n.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    slurm.sort();
    names.extend(slurm);
    names
        .into_iter()
        .map(|n| run_dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

/// The first failure in the run's logs, if any pattern matches.
pub fn first_failure(run_dir: &Path) -> Option<Finding> {
    for file in ordered_logs(run_dir) {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some((name, _)) = PATTERNS.iter().find(|(_, m)| m(line)) {
                let from = i.saturating_sub(CONTEXT);
                let to = (i + CONTEXT + 1).min(lines.len());
                let excerpt = (from..to)
                    .map(|k| {
                        format!(
                            "{}{:>6} | {}",
                            if k == i { ">" } else { " " },
                            k + 1,
                            lines[k]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                return Some(Finding {
                    file,
                    line: i + 1,
                    pattern: name,
                    excerpt,
                });
            }
        }
    }
    None
}

/// The report `disagg triage` prints; `Err` when the folder is not a run folder.
pub fn triage(run_dir: &Path) -> Result<(bool, String), String> {
    if !run_dir.join("plan.json").is_file() && !run_dir.join("rendezvous").is_dir() {
        return Err(format!(
            "{} is not a run folder (no plan.json)",
            run_dir.display()
        ));
    }
    if let Some(f) = first_failure(run_dir) {
        return Ok((
            true,
            format!(
                "first failure: {} in {} line {}\n{}\n",
                f.pattern,
                f.file.display(),
                f.line,
                f.excerpt
            ),
        ));
    }
    let status = std::fs::read(run_dir.join("rendezvous/status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    if let Some(s) = status {
        if s.get("state").and_then(|v| v.as_str()) == Some("failed") {
            return Ok((
                true,
                format!(
                    "first failure: recorded in {}: {} failed: {}\n",
                    run_dir.join("rendezvous/status.json").display(),
                    s.get("role").and_then(|v| v.as_str()).unwrap_or("the job"),
                    s.get("reason")
                        .and_then(|v| v.as_str())
                        .unwrap_or("no reason given")
                ),
            ));
        }
    }
    Ok((
        false,
        format!("no failure found in the logs of {}\n", run_dir.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_failure_in_run_order() {
        let dir = std::env::temp_dir().join(format!("disagg-triage-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(dir.join("plan.json"), "{}").unwrap();
        std::fs::write(
            dir.join("benchmark.log"),
            "thread 'main' panicked at src/x.rs:1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("gen_server_0.log"),
            "ok\nok\nTraceback (most recent call last):\n  File x\nValueError\n",
        )
        .unwrap();
        std::fs::write(dir.join("ctx_server_0.log"), "fine\n").unwrap();
        let f = first_failure(&dir).unwrap();
        assert_eq!(f.pattern, "Python traceback");
        assert!(f.file.ends_with("gen_server_0.log"));
        assert_eq!(f.line, 3);
        assert!(f.excerpt.contains(">     3 | Traceback"), "{}", f.excerpt);
        std::fs::write(dir.join("install.log"), "ERROR: CUDA out of memory\n").unwrap();
        assert_eq!(
            first_failure(&dir).unwrap().pattern,
            "out of memory",
            "setup comes first"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn falls_back_to_the_recorded_status() {
        let dir = std::env::temp_dir().join(format!("disagg-triage-st-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rendezvous")).unwrap();
        std::fs::write(dir.join("rendezvous/status.json"), r#"{"run_id":"x","state":"failed","role":"GEN_0","reason":"GEN_0 exited with status 1"}"#).unwrap();
        let (found, text) = triage(&dir).unwrap();
        assert!(found);
        assert!(
            text.contains("GEN_0 failed: GEN_0 exited with status 1"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
