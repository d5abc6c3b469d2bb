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
        let mut events = Vec::new();
        self.push_into(Bytes::copy_from_slice(chunk), &mut events);
        events
    }

    /// Adds a chunk as it came off the socket and appends every event now complete to
    /// `events`. Events are slices of the chunk itself when it holds them whole (what a server
    /// that writes an event per frame sends): no copy, and `events` can be reused from chunk to
    /// chunk; only an event split across chunks is gathered.
    pub fn push_into(&mut self, chunk: Bytes, events: &mut Vec<Event>) {
        let data = if self.buf.is_empty() {
            chunk
        } else {
            self.buf.extend_from_slice(&chunk);
            self.buf.split().freeze()
        };
        let mut start = 0;
        while let Some((len, sep)) = find_event_end(&data[start..]) {
            if let Some(event) = event(data.slice(start..start + len)) {
                events.push(event);
            }
            start += len + sep;
        }
        if start < data.len() {
            self.buf.extend_from_slice(&data[start..]);
        }
    }

    /// Bytes received that do not yet form a whole event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// The event of one block of lines (without its blank line), if it has `data:`.
fn event(body: Bytes) -> Option<Event> {
    // One `data:` line (what OpenAI servers send) is a slice of what arrived; only an event of
    // several is joined into a buffer of its own.
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
    let d = data.or_else(|| joined.map(BytesMut::freeze))?;
    Some(if &d[..] == b"[DONE]" {
        Event::Done
    } else {
        Event::Data(d)
    })
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
    fn whole_events_are_slices_of_the_chunk_and_a_split_one_is_gathered() {
        let chunk = Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\"");
        let mut p = Parser::new();
        let mut events = Vec::new();
        p.push_into(chunk.clone(), &mut events);
        match &events[..] {
            // The same memory as the chunk's: nothing was copied.
            [Event::Data(d)] => assert_eq!(d.as_ptr(), chunk[6..].as_ptr()),
            other => panic!("one event, got {other:?}"),
        }
        assert_eq!(p.pending(), 10);
        events.clear();
        p.push_into(Bytes::from_static(b":2}\n\ndata: [DONE]\n\n"), &mut events);
        assert_eq!(
            events,
            vec![Event::Data(Bytes::from_static(br#"{"b":2}"#)), Event::Done]
        );
        assert_eq!(p.pending(), 0);
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
