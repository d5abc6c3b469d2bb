//! SGLang: the router adds `bootstrap_host`, `bootstrap_port` and `bootstrap_room` to one body
//! and sends it to prefill and decode at once (PROTOCOLS.md §3). The role decides the half.
//!
//! The sim's bootstrap port is its HTTP port: a decode sim fetches the record from
//! `http://bootstrap_host:bootstrap_port/kv/{room}`, waiting for the prefill to finish.

use disagg_proto::ApiError;

use super::{HandOff, Produce};
use crate::SimRole;
use crate::handoff::{Consume, Expect};
use crate::request::Kind;

/// The bootstrap fields of a request body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bootstrap {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) room: Option<u64>,
}

pub(crate) fn kind(role: SimRole) -> Kind {
    match role {
        // An aggregated SGLang server ignores bootstrap fields.
        SimRole::Both => Kind::Aggregated,
        SimRole::Context => Kind::ContextOnly,
        SimRole::Generation => Kind::GenerationOnly,
    }
}

pub(crate) fn hand_off(kind: Kind, b: &Bootstrap) -> Result<HandOff, ApiError> {
    let half = match kind {
        Kind::Aggregated => return Ok(HandOff::None),
        Kind::ContextOnly => "prefill",
        Kind::GenerationOnly => "decode",
    };
    let missing = |field: &str| {
        ApiError::bad_request(format!(
            "{half} request without {field}: a PD router must add bootstrap_host, \
             bootstrap_port and bootstrap_room to the body it sends to both legs"
        ))
    };
    let room = b.room.ok_or_else(|| missing("bootstrap_room"))?;
    if kind == Kind::ContextOnly {
        return Ok(HandOff::Produce(Produce::Sglang { room }));
    }
    let host = b.host.as_deref().ok_or_else(|| missing("bootstrap_host"))?;
    let port = b.port.ok_or_else(|| missing("bootstrap_port"))?;
    Ok(HandOff::Consume(Consume {
        peer: crate::ready::authority(host, port),
        key: room,
        wait: true,
        what: format!("bootstrap_room {room}"),
        expect: Expect::default(),
    }))
}
