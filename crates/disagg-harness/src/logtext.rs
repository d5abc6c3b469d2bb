//! Reading roles' logs for reports without trusting their size or shape: an engine may write
//! gigabytes, a line of megabytes with no newline, or a progress bar redrawn with `\r` thousands
//! of times on one line. What a report quotes is bounded in bytes and memory; what a person
//! sees of a redrawn line is its last drawing, as a terminal shows it.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of a log's end [`tail`] reads.
pub const TAIL_BYTES: u64 = 64 * 1024;
/// The longest line a report quotes, in bytes (the rest is counted, not shown).
pub const LINE_BYTES: usize = 512;

/// One line as a report shows it: after its last `\r` (what a terminal left on screen), cut
/// to [`LINE_BYTES`] with the number of bytes left out. `raw` is what was kept of the line and
/// `total` the line's length from the start of `raw` (longer when the reader kept only a
/// prefix).
fn shown(raw: &[u8], total: usize) -> String {
    let (raw, total) = match raw.strip_suffix(b"\r") {
        Some(r) => (r, total - 1),
        None => (raw, total),
    };
    let start = raw.iter().rposition(|&b| b == b'\r').map_or(0, |i| i + 1);
    let visible = &raw[start..];
    let cut = visible.len().min(LINE_BYTES);
    // A cut in the middle of a UTF-8 sequence shows as one replacement character at the end.
    let lossy = String::from_utf8_lossy(&visible[..cut]);
    let text = printable(&lossy);
    let hidden = total - start - cut;
    if hidden > 0 {
        format!("{text}… [{hidden} more bytes]")
    } else {
        text.into_owned()
    }
}

/// `s` safe to print on a terminal or in Markdown: control characters (other than newline and
/// tab) and the bidirectional overrides an engine's error body may carry are shown as escapes
/// (`\u{1b}`), not acted on (a colour, a bell, text drawn right to left, a NUL that makes
/// `grep` call the saved console log binary).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if hidden(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// The first `bytes` bytes of a file as text (lossy UTF-8); `None` when it cannot be read.
pub fn head_text(path: &Path, bytes: u64) -> Option<String> {
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(bytes)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The last `bytes` bytes of a file as text (lossy UTF-8); `None` when it cannot be read.
pub fn tail_text(path: &Path, bytes: u64) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(bytes))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What each rank of a multi-rank step said last, from its log's last `bytes`: the lines of
/// rank R start `[rank R @ host] ` (see `role::shared::line_prefix`). Entry R is `(host, line)`
/// for rank R's last non-blank line, as a report shows it; `None` for a rank with no line there.
pub fn last_line_per_rank(path: &Path, ranks: u32, bytes: u64) -> Vec<Option<(String, String)>> {
    let mut last: Vec<Option<(String, String)>> = vec![None; ranks as usize];
    let Some(text) = tail_text(path, bytes) else {
        return last;
    };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("[rank ") else {
            continue;
        };
        let Some((rank, rest)) = rest.split_once(" @ ") else {
            continue;
        };
        let Some((host, said)) = rest.split_once("] ") else {
            continue;
        };
        let Some(slot) = rank.parse::<usize>().ok().and_then(|r| last.get_mut(r)) else {
            continue;
        };
        let said = shown(said.as_bytes(), said.len());
        if !said.trim().is_empty() {
            *slot = Some((host.to_string(), said.trim_end().to_string()));
        }
    }
    last
}

/// The last `n` lines of a file, read from its last [`TAIL_BYTES`] only (empty when it cannot
/// be read). A first line whose start lies before that window begins with `…`.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(TAIL_BYTES).read_to_end(&mut bytes).is_err()
    {
        return String::new();
    }
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if bytes.ends_with(b"\n") {
        lines.pop();
    }
    let first = lines.len().saturating_sub(n);
    lines[first..]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let line = shown(l, l.len());
            // The window began inside this line; past a `\r` its last drawing is whole.
            if i + first == 0 && from > 0 && !l.contains(&b'\r') {
                format!("…{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each line of `file` as [`shown`] would quote it, with its 1-based number, read as a stream:
/// memory stays bounded by a few [`LINE_BYTES`] whatever the file holds. `f` returns `true` to
/// stop.
pub fn each_line(file: &Path, mut f: impl FnMut(usize, String) -> bool) {
    let Ok(file) = std::fs::File::open(file) else {
        return;
    };
    let mut r = BufReader::new(file);
    let mut line = Line::default();
    let mut number = 0usize;
    loop {
        let (used, end, eof) = match r.fill_buf() {
            Ok([]) => (0, false, true),
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.add(&buf[..i]);
                    (i + 1, true, false)
                }
                None => {
                    line.add(buf);
                    (buf.len(), false, false)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => (0, false, true),
        };
        r.consume(used);
        if end || (eof && line.total > 0) {
            number += 1;
            if f(number, shown(&line.kept, line.total)) {
                return;
            }
            line = Line::default();
        }
        if eof {
            return;
        }
    }
}

/// What [`each_line`] keeps of the line being read: from its last `\r` on (a redraw replaces
/// what came before), at most a few times [`LINE_BYTES`], and how long that part really is.
#[derive(Default)]
struct Line {
    kept: Vec<u8>,
    total: usize,
}

impl Line {
    fn add(&mut self, more: &[u8]) {
        let more = match more.iter().rposition(|&b| b == b'\r') {
            // A redraw (not the `\r` of a `\r\n` ending): start again from it, keeping the
            // `\r` so that `shown` looks past it.
            Some(i) if i + 1 < more.len() => {
                self.kept.clear();
                self.total = 0;
                &more[i..]
            }
            _ => more,
        };
        self.total += more.len();
        let room = (4 * LINE_BYTES).saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&more[..more.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    #[test]
    fn control_bytes_and_bidi_overrides_are_shown_not_acted_on() {
        let nasty = "red \u{1b}[31mX\u{1b}[0m bell\u{7} nul\u{0} \u{202e}txet\ttab\nline";
        assert_eq!(
            printable(nasty),
            "red \\u{1b}[31mX\\u{1b}[0m bell\\u{7} nul\\u{0} \\u{202e}txet\ttab\nline"
        );
        assert!(matches!(
            printable("plain é ✓"),
            std::borrow::Cow::Borrowed(_)
        ));
        let f = file(b"ok\n\x1b[1mbold\x07\n");
        assert_eq!(tail(f.path(), 2), "ok\n\\u{1b}[1mbold\\u{7}");
    }

    #[test]
    fn a_tail_reads_the_end_only_and_cuts_long_lines() {
        // 400 MB would do the same; 8 MB of ordinary lines, then the last three.
        let mut text = "x".repeat(100).into_bytes();
        text.push(b'\n');
        let mut big = text.repeat(80_000);
        big.extend_from_slice(b"second to last\nTraceback (most recent call last)\n");
        big.extend_from_slice(&vec![b'y'; 30_000]);
        big.push(b'\n');
        let f = file(&big);
        let t = tail(f.path(), 3);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "second to last");
        assert_eq!(lines[1], "Traceback (most recent call last)");
        assert!(
            lines[2].starts_with(&"y".repeat(LINE_BYTES)),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].ends_with("… [29488 more bytes]"),
            "{}",
            &lines[2][500..]
        );
        assert!(t.len() < 1024, "{}", t.len());
    }

    #[test]
    fn one_huge_line_without_a_newline_is_quoted_in_bounds() {
        let f = file(&vec![b'z'; 30_000_000]);
        let t = tail(f.path(), 20);
        assert!(t.len() < 1024, "{}", t.len());
        assert!(t.starts_with("…zzz"), "{}", &t[..60]);
        assert!(t.ends_with("… [65024 more bytes]"), "{t}");
        let mut seen = Vec::new();
        each_line(f.path(), |n, l| {
            seen.push((n, l.len()));
            false
        });
        assert_eq!(seen.len(), 1);
        assert!(seen[0].1 < 1024, "{seen:?}");
    }

    #[test]
    fn a_progress_bar_shows_its_last_drawing() {
        let mut bar = Vec::new();
        for i in 0..=100_000 {
            bar.extend_from_slice(format!("\rLoading: {}%", i / 1000).as_bytes());
        }
        bar.extend_from_slice(b"\nTraceback (most recent call last)\nValueError: no\n");
        let f = file(&bar);
        assert_eq!(
            tail(f.path(), 3),
            "Loading: 100%\nTraceback (most recent call last)\nValueError: no"
        );
        let mut seen = Vec::new();
        each_line(f.path(), |n, l| {
            seen.push(format!("{n}:{l}"));
            false
        });
        assert_eq!(
            seen,
            [
                "1:Loading: 100%",
                "2:Traceback (most recent call last)",
                "3:ValueError: no"
            ]
        );
    }

    #[test]
    fn each_line_stops_when_asked_and_counts_lines() {
        let f = file(b"a\nb\r\nc\nd");
        let mut seen = Vec::new();
        each_line(f.path(), |n, l| {
            seen.push(format!("{n}:{l}"));
            n == 3
        });
        assert_eq!(seen, ["1:a", "2:b", "3:c"]);
        let mut all = 0;
        each_line(f.path(), |_, _| {
            all += 1;
            false
        });
        assert_eq!(all, 4, "a last line without a newline counts");
    }

    #[test]
    fn each_rank_s_last_words_are_found_apart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gen.log");
        std::fs::write(
            &log,
            "[rank 0 @ dgn1] disagg role GEN_0: node rank 0 holds the rendezvous\n\
             [rank 1 @ dgn2] disagg role GEN_0: node rank 1 joins node rank 0 at dgn1:5000\n\
             [rank 0 @ dgn1] Waiting for 1 more node(s) to join\n\
             [rank 1 @ dgn2] loading weights 10%\rloading weights 90%\n\
             [rank 1 @ dgn2]    \n\
             srun: error: something else\n",
        )
        .unwrap();
        let last = last_line_per_rank(&log, 3, TAIL_BYTES);
        assert_eq!(
            last,
            vec![
                Some(("dgn1".into(), "Waiting for 1 more node(s) to join".into())),
                Some(("dgn2".into(), "loading weights 90%".into())),
                None,
            ]
        );
        assert_eq!(
            last_line_per_rank(&dir.path().join("none"), 2, 10),
            vec![None, None]
        );
    }
}
