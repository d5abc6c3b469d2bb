//! The KV hand-off between a context sim and a generation sim, done for real over HTTP.
//!
//! ```text
//!  context sim                                   generation sim
//!  prefill ─▶ store.insert(key, KvRecord)        parse hand-off params ─▶ Consume {peer, key}
//!             GET /kv/{key}[?wait_ms=N] ◀─────── fetch::fetch (takes the record)
//!             (expired after --kv-ttl)           verify against the request, charge
//!                                                kv_bytes / bandwidth, then decode
//! ```
//! The key is per dialect: `ctx_request_id` (trtllm), the first of the returned
//! `remote_block_ids` (vllm), `bootstrap_room` (sglang). The peer address travels in the params
//! the router must forward: `encoded_opaque_state` (trtllm), `remote_host`/`remote_port` (vllm),
//! `bootstrap_host`/`bootstrap_port` (sglang). A router that drops or mangles them therefore
//! fails the request with a message naming the field, instead of producing silently wrong
//! numbers.

pub(crate) mod fetch;
pub(crate) mod layout;
pub(crate) mod opaque;
pub(crate) mod record;
pub(crate) mod store;

pub(crate) use layout::KvLayout;
pub(crate) use record::{Consume, Expect, KvRecord};
pub(crate) use store::KvStore;
