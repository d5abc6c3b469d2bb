//! vLLM with a NIXL-style connector: `kv_transfer_params` says which half (PROTOCOLS.md §2).
//!
//! Prefill gets `do_remote_decode: true` and answers with params naming its engine, blocks,
//! host and port; decode gets those params back (`do_remote_prefill: true`) and the same
//! `X-Request-Id`. Real vLLM silently redoes the prefill when a proxy drops the params; the sim
//! refuses instead, so the trap shows.

use disagg_proto::ApiError;
use serde::{Deserialize, Serialize};

use super::{HandOff, Produce};
use crate::SimRole;
use crate::handoff::{Consume, Expect};
use crate::request::Kind;

/// Tokens per KV block: how many block ids a prefill hands out.
pub(crate) const BLOCK_TOKENS: u64 = 16;

/// `kv_transfer_params`, both as the router sends it and as a prefill returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KvTransferParams {
    #[serde(default)]
    pub(crate) do_remote_decode: bool,
    #[serde(default)]
    pub(crate) do_remote_prefill: bool,
    #[serde(default)]
    pub(crate) remote_engine_id: Option<String>,
    #[serde(default)]
    pub(crate) remote_block_ids: Option<Vec<u64>>,
    #[serde(default)]
    pub(crate) remote_host: Option<String>,
    #[serde(default)]
    pub(crate) remote_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tp_size: Option<u32>,
}

impl KvTransferParams {
    /// What a prefill returns: everything decode needs to pull the blocks from us.
    pub(crate) fn for_decode(engine_id: String, blocks: Vec<u64>, host: &str, port: u16) -> Self {
        Self {
            do_remote_decode: false,
            do_remote_prefill: true,
            remote_engine_id: Some(engine_id),
            remote_block_ids: Some(blocks),
            remote_host: Some(host.to_string()),
            remote_port: Some(port),
            tp_size: Some(1),
        }
    }
}

pub(crate) fn kind(params: Option<&KvTransferParams>, role: SimRole) -> Result<Kind, ApiError> {
    match params {
        Some(p) if p.do_remote_decode => Ok(Kind::ContextOnly),
        Some(p) if p.do_remote_prefill => Ok(Kind::GenerationOnly),
        _ if role == SimRole::Generation => Err(ApiError::bad_request(
            "decode request without kv_transfer_params (do_remote_prefill: true): the proxy \
             did not forward the prefill response's kv_transfer_params, and real vLLM would \
             silently redo the prefill",
        )),
        _ => Ok(Kind::Aggregated),
    }
}

pub(crate) fn hand_off(kind: Kind, params: Option<&KvTransferParams>) -> Result<HandOff, ApiError> {
    match kind {
        Kind::Aggregated => Ok(HandOff::None),
        Kind::ContextOnly => Ok(HandOff::Produce(Produce::Vllm)),
        Kind::GenerationOnly => consume(params).map(HandOff::Consume),
    }
}

fn consume(params: Option<&KvTransferParams>) -> Result<Consume, ApiError> {
    let missing = |field: &str| {
        ApiError::bad_request(format!(
            "decode request's kv_transfer_params lack {field}; forward the prefill response's \
             kv_transfer_params unchanged"
        ))
    };
    let p = params.ok_or_else(|| missing("everything"))?;
    let host = p
        .remote_host
        .as_deref()
        .ok_or_else(|| missing("remote_host"))?;
    let port = p.remote_port.ok_or_else(|| missing("remote_port"))?;
    p.remote_engine_id
        .as_deref()
        .ok_or_else(|| missing("remote_engine_id"))?;
    let blocks = p
        .remote_block_ids
        .clone()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| missing("remote_block_ids"))?;
    Ok(Consume {
        peer: crate::ready::authority(host, port),
        key: blocks[0],
        wait: false,
        what: format!("remote_block_ids starting at {}", blocks[0]),
        expect: Expect {
            first_token: None,
            block_ids: Some(blocks),
        },
    })
}
