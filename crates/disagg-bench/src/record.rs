//! Every request's monotonic timeline, kept for the per-request JSONL: offsets in nanoseconds
//! from the point's first scheduled send, so records are comparable within a point without
//! exposing the process's arbitrary `Instant` origin.

use std::time::Instant;

use crate::RequestRecord;
use crate::client::Outcome;

pub(crate) fn records(outcomes: &[Outcome]) -> Vec<RequestRecord> {
    let Some(origin) = outcomes.iter().map(|o| o.scheduled).min() else {
        return Vec::new();
    };
    let ns = |t: Instant| t.saturating_duration_since(origin).as_nanos() as u64;
    outcomes
        .iter()
        .map(|o| {
            let (chunk_ns, output_tokens, error) = match &o.result {
                Ok(ok) => (
                    ok.chunks.iter().map(|&c| ns(c)).collect(),
                    Some(ok.output_tokens),
                    None,
                ),
                // What a wrong-length answer carried is what the record must show.
                Err(crate::client::Failure::WrongLength { got, .. }) => (
                    o.partial.iter().map(|&c| ns(c)).collect(),
                    Some(*got),
                    Some(o.result.as_ref().unwrap_err().kind()),
                ),
                // A failed stream's chunks as far as they came: where it froze or broke.
                Err(f) => (
                    o.partial.iter().map(|&c| ns(c)).collect(),
                    None,
                    Some(f.kind()),
                ),
            };
            RequestRecord {
                index: o.index as u64,
                url_index: o.url_index,
                scheduled_ns: ns(o.scheduled),
                sent_ns: ns(o.sent),
                chunk_ns,
                end_ns: ns(o.end),
                input_tokens: o.input_tokens,
                output_tokens,
                requested_output_tokens: o.promised_output,
                error,
                error_message: match &o.result {
                    Err(crate::client::Failure::Status(_, message)) => message.clone(),
                    _ => None,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::{Failure, Success};

    #[test]
    fn offsets_count_from_the_first_scheduled_send() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let ok = Outcome {
            index: 0,
            scheduled: ms(5),
            sent: ms(7),
            end: ms(40),
            input_tokens: 3,
            url_index: 1,
            promised_output: Some(2),
            partial: Vec::new(),
            result: Ok(Success {
                chunks: vec![ms(20), ms(30)],
                output_tokens: 2,
                prompt_tokens: None,
                usage_reported: true,
                streamed: true,
                avg_decoded_tokens_per_iter: None,
                first_choice: None,
            }),
        };
        let failed = Outcome {
            index: 1,
            scheduled: ms(10),
            sent: ms(10),
            end: ms(12),
            promised_output: None,
            url_index: 0,
            result: Err(Failure::Status(503, Some("KV cache is full".into()))),
            // A stream that broke after a chunk keeps it.
            partial: vec![ms(11)],
            ..ok.clone()
        };
        let r = records(&[ok, failed]);
        assert_eq!(
            (r[0].scheduled_ns, r[0].sent_ns, r[0].end_ns),
            (0, 2_000_000, 35_000_000)
        );
        assert_eq!(r[0].chunk_ns, vec![15_000_000, 25_000_000]);
        assert_eq!(
            (r[0].output_tokens, r[0].requested_output_tokens),
            (Some(2), Some(2))
        );
        assert_eq!(r[1].error.as_deref(), Some("http_503"));
        assert_eq!(r[1].error_message.as_deref(), Some("KV cache is full"));
        assert_eq!(r[0].error_message, None);
        // The server's words reach requests.jsonl; a success carries no such key.
        let line = serde_json::to_string(&r[1]).unwrap();
        assert!(
            line.contains(r#""error_message":"KV cache is full""#),
            "{line}"
        );
        assert!(
            !serde_json::to_string(&r[0])
                .unwrap()
                .contains("error_message")
        );
        assert_eq!((r[1].index, r[1].scheduled_ns), (1, 5_000_000));
        assert_eq!(
            r[1].chunk_ns,
            vec![6_000_000],
            "the chunk that came before the failure"
        );
        assert!(r[1].output_tokens.is_none());
    }
}
