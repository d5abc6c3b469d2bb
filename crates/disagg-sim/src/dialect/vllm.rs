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

/// `kv_transfer_params`, both as the router sends it and as a prefill returns it, with the
/// fields of vLLM 0.33's NixlConnector (pull mode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct KvTransferParams {
    #[serde(default)]
    pub(crate) do_remote_decode: bool,
    #[serde(default)]
    pub(crate) do_remote_prefill: bool,
    #[serde(default)]
    pub(crate) remote_engine_id: Option<String>,
    /// One list per KV-cache group (vLLM 0.33); older versions sent one flat list.
    #[serde(default)]
    pub(crate) remote_block_ids: Option<BlockIds>,
    #[serde(default)]
    pub(crate) remote_host: Option<String>,
    #[serde(default)]
    pub(crate) remote_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tp_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dcp_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pp_size: Option<u32>,
    /// Tokens whose KV the prefill holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_num_tokens: Option<u64>,
    /// When the prefill frees the blocks if nobody read them (its own clock, in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_blocks_expiry_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote_registration_generation: Option<u64>,
    /// `pull` (decode reads from prefill) or `push`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) transfer_mode: Option<String>,
}

/// `remote_block_ids`: per KV-cache group, or (before vLLM 0.33) one flat list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum BlockIds {
    Flat(Vec<u64>),
    Groups(Vec<Vec<u64>>),
}

impl BlockIds {
    /// Every block, group after group.
    fn flatten(&self) -> Vec<u64> {
        match self {
            BlockIds::Flat(b) => b.clone(),
            BlockIds::Groups(g) => g.concat(),
        }
    }
}

/// What a prefill hands decode: everything it needs to pull the blocks from us.
pub(crate) struct Handed<'a> {
    pub(crate) engine_id: String,
    pub(crate) blocks: Vec<u64>,
    pub(crate) request_id: Option<String>,
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) tokens: u64,
    pub(crate) expiry_secs: f64,
}

impl KvTransferParams {
    pub(crate) fn for_decode(h: Handed<'_>) -> Self {
        Self {
            do_remote_decode: false,
            do_remote_prefill: true,
            remote_engine_id: Some(h.engine_id),
            // One full-attention group, as vLLM 0.33 sends it.
            remote_block_ids: Some(BlockIds::Groups(vec![h.blocks])),
            remote_host: Some(h.host.to_string()),
            remote_port: Some(h.port),
            remote_request_id: h.request_id,
            tp_size: Some(1),
            dcp_size: Some(1),
            pp_size: Some(1),
            remote_num_tokens: Some(h.tokens),
            remote_blocks_expiry_time: Some(h.expiry_secs),
            remote_registration_generation: Some(0),
            transfer_mode: Some("pull".into()),
        }
    }
}

pub(crate) fn kind(params: Option<&KvTransferParams>, role: SimRole) -> Result<Kind, ApiError> {
    match params {
        Some(p) if p.do_remote_decode => Ok(Kind::ContextOnly),
        Some(p) if p.do_remote_prefill => Ok(Kind::GenerationOnly),
        // Params that ask for neither: vLLM's connectors load no remote KV for the request
        // (`get_num_new_matched_tokens` without `do_remote_prefill`) and keep none for a peer
        // (`request_finished` without `do_remote_decode`), so it runs here whole, on either
        // side. A client asks for that explicitly; a proxy that lost the prefill's params sends
        // none at all, which stays refused below.
        Some(_) => Ok(Kind::Aggregated),
        None if role == SimRole::Generation => Err(ApiError::bad_request(
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
        .as_ref()
        .map(BlockIds::flatten)
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
            remote_request_id: p.remote_request_id.clone(),
        },
    })
}
