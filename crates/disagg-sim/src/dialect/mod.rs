//! The three wire dialects (PROTOCOLS.md §1–3): how a request says which half it is, and which
//! hand-off fields it carries. Everything after that (timing, tokens, faults) is shared.
//!
//! Adding a dialect: a module with `kind` (which half, from the body and `--role`) and
//! `hand_off` (what to store or fetch), a `Dialect` variant, and its context response shape in
//! `completions.rs` if it answers the prefill differently.

pub(crate) mod sglang;
pub(crate) mod trtllm;
pub(crate) mod vllm;

use crate::handoff::Consume;

/// What a request asks of the KV hand-off machinery.
#[derive(Debug, Clone)]
pub(crate) enum HandOff {
    /// Aggregated: no hand-off.
    None,
    /// Prefill here and keep a record for a generation server.
    Produce(Produce),
    /// Fetch a record from a context server, then decode.
    Consume(Consume),
}

/// How a context server keys its record and shapes its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Produce {
    /// A fresh `ctx_request_id`; the address goes into `encoded_opaque_state`.
    Trtllm,
    /// Fresh block ids; the address goes into `kv_transfer_params`.
    Vllm,
    /// The router's `bootstrap_room`; the answer is an ordinary completion.
    Sglang { room: u64 },
}
