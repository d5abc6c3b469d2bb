//! The generation workers' mean device step time per iteration, read from their logs as
//! TensorRT-LLM's perf-sanity harness reads it for gen-only runs (its
//! `Average Per Iter Device Step Time (ms):` line).
//!
//! A TensorRT-LLM worker with `print_iter_log` writes one line per iteration, e.g.
//! `... iter = 5, global_rank = 0, ..., prev_device_step_time = 6.94ms, ..., states = {...,
//! 'num_generation_tokens': 512, ...}`. The rule, per worker log, over the bytes written during
//! the point: lines with `iter = N` (N ≥ 5: the first iterations wait on KV transfers or warm
//! up) followed by a numeric `prev_device_step_time = X ms`; grouped by `num_generation_tokens`,
//! the group with the most lines (ties: the larger count) gives the worker's mean, or all lines
//! when no line names its count. The figure is the mean over the workers that had such lines;
//! none when no worker did (a server that does not report it).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where each worker log ends now, to read only what the next point adds.
pub fn ends(logs: &[PathBuf]) -> Vec<u64> {
    logs.iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect()
}

/// The mean device step time over what `logs` gained since `from` (as [`ends`] gave it).
pub fn mean_since(logs: &[PathBuf], from: &[u64]) -> Option<f64> {
    let means: Vec<f64> = logs
        .iter()
        .zip(from.iter().copied().chain(std::iter::repeat(0)))
        .filter_map(|(p, offset)| worker_mean(&read_from(p, offset)))
        .collect();
    (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `N` in `iter = N,` and `X` in `prev_device_step_time = Xms` when the former comes first.
fn step(line: &str) -> Option<(u64, f64)> {
    let at = line.find("iter")?;
    let rest = line[at + 4..].trim_start().strip_prefix('=')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let iter: u64 = digits.parse().ok()?;
    if !rest[digits.len()..].starts_with(',') {
        return None;
    }
    let after = &rest[digits.len()..];
    let key = "prev_device_step_time";
    let at = after.find(key)?;
    let value = after[at + key.len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let number: String = value
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if !value[number.len()..].trim_start().starts_with("ms") {
        return None;
    }
    Some((iter, number.parse().ok()?))
}

/// `K` in `'num_generation_tokens': K`.
fn generation_tokens(line: &str) -> Option<u64> {
    let key = "'num_generation_tokens':";
    let at = line.find(key)?;
    let digits: String = line[at + key.len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// One worker's mean, or `None` without a usable line.
fn worker_mean(text: &str) -> Option<f64> {
    let mut all = (0u64, 0.0f64);
    let mut by_tokens: BTreeMap<u64, (u64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let Some((iter, ms)) = step(line) else {
            continue;
        };
        if iter < 5 {
            continue;
        }
        all = (all.0 + 1, all.1 + ms);
        if let Some(k) = generation_tokens(line) {
            let e = by_tokens.entry(k).or_insert((0, 0.0));
            *e = (e.0 + 1, e.1 + ms);
        }
    }
    if all.0 == 0 {
        return None;
    }
    // The most common batch size (ties: the larger); the iterations of a draining batch fall
    // into smaller ones and would drag the mean below the steady state.
    let mode = by_tokens
        .iter()
        .max_by_key(|(k, (n, _))| (*n, **k))
        .map(|(_, (n, sum))| sum / *n as f64);
    Some(mode.unwrap_or(all.1 / all.0 as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(iter: u64, ms: &str, ngen: Option<u64>) -> String {
        let states = ngen
            .map(|k| format!("'num_ctx_tokens': 0, 'num_generation_tokens': {k}"))
            .unwrap_or_else(|| "'num_ctx_tokens': 0".into());
        format!(
            "[TRT-LLM] [I] [_torch][RANK 0] iter = {iter}, global_rank = 0, rank = 0, \
             host_step_time = 6.79ms, prev_device_step_time = {ms}, timestamp = x, \
             states = {{{states}}}\n"
        )
    }

    #[test]
    fn steps_are_read_as_trtllms_harness_reads_them() {
        assert_eq!(step(&line(7, "6.94ms", Some(8))), Some((7, 6.94)));
        assert_eq!(step(&line(1, "N/A", Some(8))), None);
        assert_eq!(step("iter = 3 prev_device_step_time = 1ms"), None);
        assert_eq!(generation_tokens(&line(7, "1ms", Some(512))), Some(512));
    }

    #[test]
    fn the_mean_is_the_most_common_batch_sizes_after_warm_up() {
        let mut log = String::new();
        // Iterations 0..4 are left out whatever they say.
        for i in 0..5 {
            log += &line(i, "100.0ms", Some(64));
        }
        // Steady state at 64 tokens: 6 and 8 ms; the draining tail at 3 tokens: 1 ms.
        for (i, ms) in [(5, "6.0ms"), (6, "8.0ms"), (7, "6.0ms"), (8, "8.0ms")] {
            log += &line(i, ms, Some(64));
        }
        for i in 9..12 {
            log += &line(i, "1.0ms", Some(3));
        }
        assert_eq!(worker_mean(&log), Some(7.0));
        // Without batch sizes: every usable line.
        let plain: String = (5..9).map(|i| line(i, "2.0ms", None)).collect();
        assert_eq!(worker_mean(&plain), Some(2.0));
        assert_eq!(worker_mean("no iteration log here\n"), None);
    }

    #[test]
    fn only_what_a_point_added_counts_and_workers_are_averaged() {
        let dir_tmp = tempfile::tempdir().unwrap();
        let dir = dir_tmp.path().to_path_buf();
        let logs = [dir.join("gen_server_0.log"), dir.join("gen_server_1.log")];
        std::fs::write(&logs[0], line(5, "50.0ms", Some(8))).unwrap();
        std::fs::write(&logs[1], "starting\n").unwrap();
        let before = ends(&logs);
        let append = |p: &Path, s: &str| {
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(p)
                .unwrap()
                .write_all(s.as_bytes())
                .unwrap();
        };
        assert_eq!(mean_since(&logs, &before), None, "nothing new yet");
        append(&logs[0], &line(6, "4.0ms", Some(8)));
        append(&logs[1], &line(6, "6.0ms", Some(8)));
        assert_eq!(mean_since(&logs, &before), Some(5.0));
    }
}
