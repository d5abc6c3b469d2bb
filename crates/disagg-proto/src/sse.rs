//! Server-sent events as OpenAI-compatible servers use them: `data: <json>\n\n` frames,
//! closed by `data: [DONE]\n\n`.

use bytes::{Bytes, BytesMut};

/// The frame that ends every OpenAI-style stream.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// Wraps one JSON payload in an SSE `data:` frame.
pub fn frame(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// One event pulled out of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The payload of a `data:` line (usually JSON).
    Data(Bytes),
    /// `data: [DONE]`.
    Done,
}

/// Incremental parser: feed it chunks exactly as they come off the socket, in any split, and it
/// yields whole events. Only `data:` fields matter to OpenAI streams; comments (`:`) and other
/// fields are skipped.
#[derive(Debug, Default)]
pub struct Parser {
    buf: BytesMut,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns every event that is now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = find_event_end(&self.buf) {
            let (len, sep) = end;
            let raw = self.buf.split_to(len + sep).freeze();
            let body = raw.slice(..len);
            // One `data:` line (what OpenAI servers send) is a slice of what arrived; only an
            // event of several is joined into a buffer of its own.
            let mut data: Option<Bytes> = None;
            let mut joined: Option<BytesMut> = None;
            for line in body.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(rest) = line.strip_prefix(b"data:") {
                    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                    match (data.take(), joined.as_mut()) {
                        (None, None) => data = Some(body.slice_ref(rest)),
                        (Some(first), _) => {
                            let mut j = BytesMut::from(&first[..]);
                            j.extend_from_slice(b"\n");
                            j.extend_from_slice(rest);
                            joined = Some(j);
                        }
                        (None, Some(j)) => {
                            j.extend_from_slice(b"\n");
                            j.extend_from_slice(rest);
                        }
                    }
                }
            }
            if let Some(d) = data.or_else(|| joined.map(BytesMut::freeze)) {
                if &d[..] == b"[DONE]" {
                    events.push(Event::Done);
                } else {
                    events.push(Event::Data(d));
                }
            }
        }
        events
    }

    /// Bytes received that do not yet form a whole event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Finds the first blank line (`\n\n` or `\r\n\r\n`): returns (event length, separator length).
/// Only newlines are looked at (found with SIMD): every byte of every stream passes here.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    for i in memchr::memchr_iter(b'\n', buf) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some((i, 2)),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some((i, 3)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_parses_back_in_any_split() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&frame(br#"{"a":1}"#));
        wire.extend_from_slice(b": keep-alive comment\n\n");
        wire.extend_from_slice(&frame(br#"{"b":2}"#));
        wire.extend_from_slice(DONE_FRAME);
        for split in 1..wire.len() {
            let mut p = Parser::new();
            let mut got = p.push(&wire[..split]);
            got.extend(p.push(&wire[split..]));
            assert_eq!(
                got,
                vec![
                    Event::Data(Bytes::from_static(br#"{"a":1}"#)),
                    Event::Data(Bytes::from_static(br#"{"b":2}"#)),
                    Event::Done
                ],
                "split at {split}"
            );
            assert_eq!(p.pending(), 0);
        }
    }

    #[test]
    fn an_event_of_several_data_lines_is_joined_with_newlines() {
        let mut p = Parser::new();
        let got = p.push(b"data: {\"a\":\ndata: 1}\ndata:x\n\ndata: [DONE]\n\n");
        assert_eq!(
            got,
            vec![
                Event::Data(Bytes::from_static(b"{\"a\":\n1}\nx")),
                Event::Done
            ]
        );
    }

    #[test]
    fn crlf_separators_are_accepted() {
        let mut p = Parser::new();
        let got = p.push(b"data: {}\r\n\r\ndata: [DONE]\r\n\r\n");
        assert_eq!(
            got,
            vec![Event::Data(Bytes::from_static(b"{}")), Event::Done]
        );
    }
}
