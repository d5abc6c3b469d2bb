//! TensorRT-LLM's `encoded_opaque_state`: base64 bytes the context server hands the generation
//! server through the router. The sim puts its own address there, so a generation sim knows
//! where to fetch the KV record without extra configuration.

/// Marks the bytes as ours, so state from another engine is reported as such.
const TAG: &str = "disagg-sim/1 ";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The opaque state naming the context sim at `authority` (`host:port`).
pub(crate) fn encode_peer(authority: &str) -> String {
    base64_encode(format!("{TAG}{authority}").as_bytes())
}

/// The context sim's `host:port` from an opaque state, or why it cannot be read.
pub(crate) fn decode_peer(state: &str) -> Result<String, &'static str> {
    let bytes = base64_decode(state).ok_or("it is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8")?;
    let peer = text
        .strip_prefix(TAG)
        .ok_or("it was not made by a disagg sim")?;
    if peer.is_empty() || peer.contains(char::is_whitespace) {
        return Err("the address in it is malformed");
    }
    Ok(peer.to_string())
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict decoding: padded input only, so a truncated or edited state is caught.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.chunks(4).count();
    for (q, quad) in bytes.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())), Some(s.into()));
        }
        assert_eq!(base64_decode("Zg="), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
        assert_eq!(base64_decode("Z!=="), None);
    }

    #[test]
    fn peers_round_trip_and_foreign_state_is_named() {
        let s = encode_peer("127.0.0.1:4567");
        assert_eq!(decode_peer(&s), Ok("127.0.0.1:4567".to_string()));
        assert_eq!(
            decode_peer(&base64_encode(b"opaque engine bytes")),
            Err("it was not made by a disagg sim")
        );
        assert_eq!(decode_peer("%%%%"), Err("it is not valid base64"));
    }
}
