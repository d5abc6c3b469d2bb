//! SGLang: the router adds `bootstrap_host`, `bootstrap_port` and `bootstrap_room` to one body
//! and sends it to prefill and decode at once (PROTOCOLS.md §3). The role decides the half.
//!
//! The sim's bootstrap port is its HTTP port: a decode sim fetches the record from
//! `http://bootstrap_host:bootstrap_port/kv/{room}`, waiting for the prefill to finish.
//!
//! A batch (several prompts in one request) hands off each prompt in its own room. SGLang
//! takes the three fields as lists, one entry per prompt, or as one value for all: one host and
//! port for every prompt, and rooms `room + i` (`GenerateReqInput._normalize_bootstrap_params`
//! in `python/sglang/srt/managers/io_struct.py`).

use disagg_proto::ApiError;
use serde::Deserialize;

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

/// A bootstrap field as sent: one value, or one per prompt of a batch.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<Option<T>>),
}

/// The bootstrap fields of a request body, as sent.
#[derive(Debug, Clone, Default)]
#[cfg_attr(test, derive(Deserialize))]
pub(crate) struct Fields {
    pub(crate) bootstrap_host: Option<OneOrMany<String>>,
    pub(crate) bootstrap_port: Option<OneOrMany<u16>>,
    pub(crate) bootstrap_room: Option<OneOrMany<u64>>,
}

/// Each prompt's bootstrap fields: one for a single prompt, `n` for a batch of `n`.
///
/// A list is refused unless it has one entry per prompt of a batch. SGLang is laxer: it
/// indexes the lists per prompt, so a shorter one fails there with an IndexError and a longer
/// one has its extra entries ignored; a router that sends either has miscounted the batch.
pub(crate) fn per_item(f: Fields, batch: Option<usize>) -> Result<Vec<Bootstrap>, ApiError> {
    let hosts = spread("bootstrap_host", f.bootstrap_host, batch, |h, _| {
        Some(h.clone())
    })?;
    let ports = spread("bootstrap_port", f.bootstrap_port, batch, |p, _| Some(*p))?;
    let rooms = spread("bootstrap_room", f.bootstrap_room, batch, |r, i| {
        r.checked_add(i as u64)
    })?;
    Ok(hosts
        .into_iter()
        .zip(ports)
        .zip(rooms)
        .map(|((host, port), room)| Bootstrap { host, port, room })
        .collect())
}

/// One field's value for each prompt; `one(v, i)` is prompt `i`'s value when one `v` was sent
/// for the whole batch (`None`: out of range).
fn spread<T: Clone>(
    name: &str,
    sent: Option<OneOrMany<T>>,
    batch: Option<usize>,
    one: impl Fn(&T, usize) -> Option<T>,
) -> Result<Vec<Option<T>>, ApiError> {
    let n = batch.unwrap_or(1);
    match (sent, batch) {
        (None, _) => Ok(vec![None; n]),
        (Some(OneOrMany::One(v)), _) => (0..n)
            .map(|i| {
                one(&v, i).map(Some).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} + {i} (prompt {i} of the batch) is out of range"
                    ))
                })
            })
            .collect(),
        (Some(OneOrMany::Many(_)), None) => Err(ApiError::bad_request(format!(
            "{name} is a list, but the request holds one prompt: a list gives one value per \
             prompt of a batch; send one value"
        ))),
        (Some(OneOrMany::Many(list)), Some(n)) if list.len() != n => {
            Err(ApiError::bad_request(format!(
                "{name} has {} entries for a batch of {n} prompts: a PD router must send one \
                 per prompt (SGLang reads prompt i's at index i)",
                list.len()
            )))
        }
        (Some(OneOrMany::Many(list)), Some(_)) => Ok(list),
    }
}

/// SGLang's `--disaggregation-bootstrap-port` default.
pub(crate) const DEFAULT_BOOTSTRAP_PORT: u16 = 8998;

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
    // SGLang's fake transfer: nothing kept for a peer, nothing fetched (and no port needed).
    if b.host.as_deref() == Some(disagg_proto::dialect::SGLANG_FAKE_BOOTSTRAP_HOST) {
        return Ok(HandOff::None);
    }
    if kind == Kind::ContextOnly {
        return Ok(HandOff::Produce(Produce::Sglang { room }));
    }
    let host = b.host.as_deref().ok_or_else(|| missing("bootstrap_host"))?;
    // SGLang's scheduler fills a missing port in with the server's own
    // `--disaggregation-bootstrap-port`, whose default this is (a router sends `null` for a
    // prefill worker it knows no port of): decode then dials it, and finds the prefill there
    // or not.
    let port = b.port.unwrap_or(DEFAULT_BOOTSTRAP_PORT);
    // SGLang's decode joins them as `f"{host}:{port}"`: an IPv6 literal must come bracketed
    // (as its mini_lb wraps it), or the address it dials is no address at all.
    if host.contains(':') && !host.starts_with('[') {
        return Err(ApiError::bad_request(format!(
            "decode request with bootstrap_host {host}: an IPv6 address must be bracketed \
             ([{host}]), as SGLang's routers send it; SGLang joins it with the port as \
             {host}:{port}, which is no address"
        )));
    }
    Ok(HandOff::Consume(Consume {
        peer: crate::ready::authority(host, port),
        key: room,
        wait: true,
        what: format!("bootstrap_room {room}"),
        expect: Expect::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields {
        serde_json::from_str(json).expect("fields")
    }

    #[test]
    fn a_batch_takes_lists_of_its_size_or_one_value_for_all() {
        let b = per_item(
            fields(
                r#"{"bootstrap_host":["h","g"],"bootstrap_port":[1,null],"bootstrap_room":[7,9]}"#,
            ),
            Some(2),
        )
        .expect("lists of the batch's size");
        let got: Vec<_> = b
            .iter()
            .map(|b| (b.host.as_deref(), b.port, b.room))
            .collect();
        assert_eq!(
            got,
            vec![(Some("h"), Some(1), Some(7)), (Some("g"), None, Some(9))]
        );
        // One value for all: SGLang repeats host and port and numbers the rooms from it.
        let b = per_item(
            fields(r#"{"bootstrap_host":"h","bootstrap_port":8998,"bootstrap_room":40}"#),
            Some(3),
        )
        .expect("scalars");
        let rooms: Vec<_> = b.iter().map(|b| b.room).collect();
        assert_eq!(rooms, vec![Some(40), Some(41), Some(42)]);
        assert!(
            b.iter()
                .all(|b| b.host.as_deref() == Some("h") && b.port == Some(8998))
        );
        let single = per_item(fields(r#"{"bootstrap_room":5}"#), None).expect("one prompt");
        assert_eq!(
            (single.len(), single[0].room, single[0].host.clone()),
            (1, Some(5), None)
        );
    }

    #[test]
    fn lists_of_the_wrong_size_are_refused_by_name() {
        for (json, batch, want) in [
            (
                r#"{"bootstrap_room":[1,2]}"#,
                Some(3),
                "bootstrap_room has 2 entries for a batch of 3",
            ),
            (
                r#"{"bootstrap_host":["a","b","c"]}"#,
                Some(2),
                "bootstrap_host has 3 entries for a batch of 2",
            ),
            (
                r#"{"bootstrap_port":[1]}"#,
                None,
                "bootstrap_port is a list, but the request holds one prompt",
            ),
            (
                r#"{"bootstrap_room":18446744073709551615}"#,
                Some(2),
                "out of range",
            ),
        ] {
            let e = per_item(fields(json), batch).expect_err(json);
            assert_eq!(e.status, 400);
            assert!(e.message.contains(want), "{json}: {}", e.message);
        }
    }

    /// A decode request whose router knew no bootstrap port (`null`) dials SGLang's default,
    /// as SGLang's scheduler fills it in; a missing room or host is still refused.
    #[test]
    fn a_decode_without_a_bootstrap_port_dials_the_default() {
        let b = Bootstrap {
            host: Some("10.0.0.2".into()),
            port: None,
            room: Some(7),
        };
        match hand_off(Kind::GenerationOnly, &b) {
            Ok(HandOff::Consume(c)) => assert_eq!(c.peer, "10.0.0.2:8998"),
            _ => panic!("decode dials the default port"),
        }
        let no_room = Bootstrap { room: None, ..b };
        assert!(hand_off(Kind::GenerationOnly, &no_room).is_err());
    }

    /// An IPv6 bootstrap host comes bracketed, as SGLang's routers send it; bare, SGLang's
    /// decode would dial `::1:8998`, no address, and the sim refuses it.
    #[test]
    fn an_ipv6_bootstrap_host_must_be_bracketed() {
        let b = |host: &str| Bootstrap {
            host: Some(host.into()),
            port: Some(9000),
            room: Some(7),
        };
        match hand_off(Kind::GenerationOnly, &b("[::1]")) {
            Ok(HandOff::Consume(c)) => assert_eq!(c.peer, "[::1]:9000"),
            _ => panic!("a bracketed IPv6 host is dialled"),
        }
        let Err(e) = hand_off(Kind::GenerationOnly, &b("::1")) else {
            panic!("a bare IPv6 host is refused");
        };
        assert!(e.message.contains("must be bracketed ([::1])"), "{e:?}");
    }
}
