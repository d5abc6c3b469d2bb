//! What a context sim remembers about a prefill, and how a generation sim checks it.

use disagg_proto::ApiError;
use serde::{Deserialize, Serialize};

use super::KvLayout;

/// The "KV cache" of one prefilled request, as `GET /kv/{key}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KvRecord {
    pub(crate) prompt_token_ids: Vec<u32>,
    pub(crate) first_token: u32,
    /// vLLM: the prefill's `X-Request-Id`, which decode must repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
    /// vLLM: the `remote_block_ids` handed out with the prefill response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) block_ids: Option<Vec<u64>>,
    /// What shaped the context worker's KV, for the generation worker to check against its own
    /// (absent from an older sim's record: nothing to check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) layout: Option<KvLayout>,
}

/// A generation request's claim on a record: where it is, under which key, and what it must hold.
#[derive(Debug, Clone)]
pub(crate) struct Consume {
    /// The context sim's `host:port`.
    pub(crate) peer: String,
    pub(crate) key: u64,
    /// Wait for the record to appear (SGLang sends both legs at once).
    pub(crate) wait: bool,
    /// The key as the dialect names it, for messages: "ctx_request_id 7".
    pub(crate) what: String,
    pub(crate) expect: Expect,
}

/// Dialect-specific fields a record must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expect {
    /// trtllm: `first_gen_tokens[0]`.
    pub(crate) first_token: Option<u32>,
    /// vllm: `remote_block_ids`.
    pub(crate) block_ids: Option<Vec<u64>>,
    /// vllm: `remote_request_id`, the prefill's request id as it handed it out (vLLM 0.33
    /// finds the prefill's request by it, so the decode's own `X-Request-Id` may differ).
    pub(crate) remote_request_id: Option<String>,
}

impl Consume {
    /// Checks a fetched record against this worker's KV layout `this` and this request;
    /// `request_id` is its `X-Request-Id`.
    pub(crate) fn verify(
        &self,
        this: &KvLayout,
        record: &KvRecord,
        prompt: &[u32],
        request_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let what = &self.what;
        // The engines check their peer's layout before any KV moves, and fail the request
        // as a server error (the configuration is wrong, not the request).
        if let Some(ctx) = &record.layout {
            this.accept(ctx).map_err(|why| {
                ApiError::internal(format!("KV hand-off refused for {what}: {why}"))
            })?;
        }
        if record.prompt_token_ids != prompt {
            let at = record
                .prompt_token_ids
                .iter()
                .zip(prompt)
                .position(|(a, b)| a != b)
                .unwrap_or(record.prompt_token_ids.len().min(prompt.len()));
            return Err(ApiError::bad_request(format!(
                "KV hand-off mismatch for {what}: the prompt differs from the one prefilled \
                 ({} prompt tokens prefilled, {} in this request, first difference at \
                 position {at}); the router sent this request another request's params",
                record.prompt_token_ids.len(),
                prompt.len()
            )));
        }
        if let Some(first) = self.expect.first_token
            && first != record.first_token
        {
            return Err(ApiError::bad_request(format!(
                "KV hand-off mismatch for {what}: first_gen_tokens[0] is {first} but the \
                 prefill produced {}",
                record.first_token
            )));
        }
        if let Some(blocks) = &self.expect.block_ids
            && record.block_ids.as_ref() != Some(blocks)
        {
            return Err(ApiError::bad_request(format!(
                "KV hand-off mismatch for {what}: remote_block_ids {blocks:?} are not the \
                 blocks the prefill returned ({:?})",
                record.block_ids.as_deref().unwrap_or_default()
            )));
        }
        if let (Some(expected), Some(named)) = (&record.request_id, &self.expect.remote_request_id)
        {
            if named != expected {
                return Err(ApiError::bad_request(format!(
                    "KV hand-off mismatch for {what}: remote_request_id {named:?} is not the \
                     prefill's request ({expected:?}); forward its kv_transfer_params unchanged"
                )));
            }
        } else if let Some(expected) = &record.request_id
            && request_id != Some(expected.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "KV hand-off mismatch for {what}: the prefill was sent with X-Request-Id \
                 {expected:?} but this decode request has {}; send both with the same header",
                request_id.map_or("none".to_string(), |r| format!("{r:?}"))
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consume(expect: Expect) -> Consume {
        Consume {
            peer: "127.0.0.1:1".into(),
            key: 7,
            wait: false,
            what: "ctx_request_id 7".into(),
            expect,
        }
    }

    fn record() -> KvRecord {
        KvRecord {
            prompt_token_ids: vec![1, 2, 3],
            first_token: 42,
            request_id: Some("r-1".into()),
            block_ids: Some(vec![5]),
            layout: Some(this()),
        }
    }

    /// The generation worker's own layout in these tests, and the context worker's unless a
    /// test says otherwise.
    fn this() -> KvLayout {
        KvLayout {
            engine: crate::Dialect::Trtllm,
            model: "org/m".into(),
            cache_dtype: None,
            block_size: None,
            backend: None,
        }
    }

    #[test]
    fn every_mismatch_is_named() {
        let ok = Expect {
            first_token: Some(42),
            block_ids: Some(vec![5]),
            remote_request_id: None,
        };
        assert!(
            consume(ok.clone())
                .verify(&this(), &record(), &[1, 2, 3], Some("r-1"))
                .is_ok()
        );
        // vLLM 0.33 names the prefill's request in the params: the decode's own header may
        // differ, or be missing.
        let named = |id: &str| Expect {
            remote_request_id: Some(id.into()),
            ..ok.clone()
        };
        for rid in [None, Some("r-other")] {
            assert!(
                consume(named("r-1"))
                    .verify(&this(), &record(), &[1, 2, 3], rid)
                    .is_ok()
            );
        }
        let cases: [(Expect, &[u32], Option<&str>, &str); 5] = [
            (
                ok.clone(),
                &[1, 2, 4],
                Some("r-1"),
                "first difference at position 2",
            ),
            (
                Expect {
                    first_token: Some(41),
                    ..ok.clone()
                },
                &[1, 2, 3],
                Some("r-1"),
                "first_gen_tokens[0] is 41",
            ),
            (
                Expect {
                    block_ids: Some(vec![6]),
                    ..ok.clone()
                },
                &[1, 2, 3],
                Some("r-1"),
                "remote_block_ids [6]",
            ),
            (
                ok.clone(),
                &[1, 2, 3],
                None,
                "X-Request-Id \"r-1\" but this decode request has none",
            ),
            (
                named("r-2"),
                &[1, 2, 3],
                Some("r-1"),
                "remote_request_id \"r-2\" is not the prefill's request (\"r-1\")",
            ),
        ];
        for (expect, prompt, rid, needle) in cases {
            let err = consume(expect)
                .verify(&this(), &record(), prompt, rid)
                .expect_err(needle);
            assert_eq!(err.status, 400);
            assert!(err.message.contains(needle), "{}", err.message);
            assert!(err.message.contains("ctx_request_id 7"), "{}", err.message);
        }
    }

    /// A layout the engine refuses fails the hand-off before anything else is looked at, as a
    /// server error (the workers are misconfigured; the request is fine); a record without one
    /// (an older sim's) is taken.
    #[test]
    fn a_record_of_another_kv_layout_is_refused_as_the_engine_refuses_it() {
        let ok = Expect {
            first_token: Some(42),
            ..Expect::default()
        };
        let mut fp8 = record();
        fp8.layout = Some(KvLayout {
            cache_dtype: Some("fp8".into()),
            block_size: Some(64),
            ..this()
        });
        let mut mine = this();
        mine.cache_dtype = Some("bfloat16".into());
        let err = consume(ok.clone())
            .verify(&mine, &fp8, &[9], Some("r-1"))
            .expect_err("fp8 into bfloat16");
        assert_eq!(err.status, 500);
        assert!(
            err.message.starts_with(
                "KV hand-off refused for ctx_request_id 7: the context worker's KV cache dtype \
                 is fp8, this worker's is bfloat16 (kv_cache_config.dtype)"
            ) && err.message.ends_with(
                "(TensorRT-LLM: Disagg server does not currently support these cacheState)"
            ),
            "{}",
            err.message
        );
        let mut older = record();
        older.layout = None;
        consume(ok)
            .verify(&mine, &older, &[1, 2, 3], Some("r-1"))
            .expect("nothing to check");
    }
}
