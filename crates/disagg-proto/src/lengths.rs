//! Token counts that the bench, the sim and the case check share: the range of lengths a random
//! workload draws from, and token counts as the engines' flags take them.

/// Inclusive bounds of the lengths drawn around `base` with `range_ratio` (the bench's random
/// workload: uniform in `[base·(1−r), base·(1+r)]`, never below 1).
pub fn bounds(base: u32, range_ratio: f64) -> (u32, u32) {
    let b = f64::from(base);
    let lo = (b * (1.0 - range_ratio)).floor().max(1.0) as u32;
    let hi = ((b * (1.0 + range_ratio)).floor() as u32).max(lo);
    (lo, hi)
}

/// A token count as the engines' flags take it: a whole number, or vLLM's human-readable form
/// (`32k` = 32000, `32K` = 32768; `1.5k` too). `None` for "no limit known without the GPU": vLLM's
/// `auto` and `-1` size it to the GPU's memory.
pub fn parse_count(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t == "auto" || t == "-1" {
        return Ok(None);
    }
    let bad = || format!("{s:?} is not a token count (e.g. 8192, 8k or 8K)");
    let (digits, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let scale: f64 = match c {
                'k' => 1e3,
                'm' => 1e6,
                'g' => 1e9,
                'K' => 1024.0,
                'M' => 1024.0 * 1024.0,
                'G' => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(bad()),
            };
            (&t[..i], scale)
        }
        _ => (t, 1.0),
    };
    let n = if scale == 1.0 {
        digits.parse::<u64>().map_err(|_| bad())?
    } else {
        let v: f64 = digits.parse().map_err(|_| bad())?;
        let n = v * scale;
        if !n.is_finite() || n < 0.0 || n.fract() != 0.0 {
            return Err(bad());
        }
        n as u64
    };
    if n == 0 {
        return Err(format!("{s:?}: a context length must be at least 1"));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_lengths_never_reach_zero() {
        assert_eq!(bounds(1, 0.9), (1, 1));
        assert_eq!(bounds(10, 0.5), (5, 15));
        assert_eq!(bounds(1000, 0.0), (1000, 1000));
    }

    #[test]
    fn token_counts_read_as_the_engines_read_them() {
        for (s, want) in [
            ("8192", Some(8192)),
            ("8k", Some(8000)),
            ("8K", Some(8192)),
            ("1.5k", Some(1500)),
            ("1m", Some(1_000_000)),
            ("auto", None),
            ("-1", None),
        ] {
            assert_eq!(parse_count(s), Ok(want), "{s}");
        }
        for s in ["", "0", "8x", "k", "1.5", "-2", "{max_model_len}"] {
            assert!(parse_count(s).is_err(), "{s}");
        }
    }
}
