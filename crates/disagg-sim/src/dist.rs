//! A server spanning nodes (see [`crate::args::DistArgs`]): node rank 0 holds the rendezvous and
//! waits for every other node; the others join it. One line of JSON each way: the joining node
//! says who it is and what world it runs, node rank 0 answers `ok` or why not. The connections
//! stay open for the life of the group, so either side learns at once that the other went.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::args::DistArgs;
use crate::server::hostname;

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    node_rank: u32,
    nnodes: u32,
    world: String,
    host: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    host: String,
}

/// How often a joining node tries node rank 0 again while it is not there yet.
const RETRY: Duration = Duration::from_millis(200);

/// How long after a node leaves the others fail: a real engine learns it at its next
/// collective or from its watchdog, never before the node is gone, so the node that went
/// first is always first to be seen gone.
const PEER_LOSS_DELAY: Duration = Duration::from_secs(1);

fn fail(msg: String) -> SimError {
    SimError::Flags(msg)
}

/// The flags of a group, checked: `(host, port)` of the rendezvous.
pub(crate) fn address(d: &DistArgs) -> Result<(String, u16), SimError> {
    if d.node_rank >= d.nnodes {
        return Err(fail(format!(
            "--node-rank {} is not below --nnodes {}",
            d.node_rank, d.nnodes
        )));
    }
    let addr = d.dist_init_addr.as_deref().ok_or_else(|| {
        fail(format!(
            "--nnodes {} needs --dist-init-addr HOST:PORT (node rank 0's rendezvous)",
            d.nnodes
        ))
    })?;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .filter(|(h, p)| !h.is_empty() && *p != 0)
        .ok_or_else(|| {
            fail(format!(
                "--dist-init-addr {addr} is not HOST:PORT (an unfilled placeholder?)"
            ))
        })?;
    Ok((host.to_string(), port))
}

/// The other nodes of a group, joined to node rank 0; dropping it closes their connections.
pub(crate) struct Members(Vec<(u32, String, TcpStream)>, Vec<TcpListener>);

/// Node rank 0: binds the rendezvous port and waits until every other node has joined with
/// the same world, or fails.
pub(crate) fn host(d: &DistArgs) -> Result<Members, SimError> {
    let (_, port) = address(d)?;
    let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        fail(format!(
            "cannot bind the rendezvous port {port} of --dist-init-addr: {e} (the engine fails \
             the same way: Address already in use when another process holds it)"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(format!("rendezvous: {e}")))?;
    // The ports the engine derives from the rendezvous port, held while the group lives.
    let derived = d
        .derived_ports
        .iter()
        .map(|off| {
            let p = port.saturating_add(*off);
            TcpListener::bind(("0.0.0.0", p)).map_err(|e| {
                fail(format!(
                    "cannot bind port {p}, the rendezvous port {port} + {off}, which the engine \
                     derives from --dist-init-addr for its sockets to the other nodes: {e}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let me = hostname();
    let want = d.nnodes - 1;
    say_err!(
        "disagg-sim: node rank 0 of {}: waiting at :{port} for {want} node(s) to join",
        d.nnodes
    );
    let deadline = Instant::now() + d.dist_timeout;
    let mut members: Vec<(u32, String, TcpStream)> = Vec::new();
    while members.len() < want as usize {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let joined: Vec<String> = members.iter().map(|m| m.0.to_string()).collect();
                    return Err(fail(format!(
                        "node rank 0 waited {} at :{port} for the other {want} node(s); joined: \
                         [{}]. A node that cannot reach this host, or was never started, leaves \
                         the group incomplete",
                        humantime::format_duration(d.dist_timeout),
                        joined.join(", ")
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(fail(format!("rendezvous accept: {e}"))),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let hello: Option<Hello> = BufReader::new(&stream)
            .read_line(&mut line)
            .ok()
            .and_then(|_| serde_json::from_str(&line).ok());
        // Not one of ours (a port probe): not a member.
        let Some(hello) = hello else { continue };
        let problem = if hello.nnodes != d.nnodes {
            Some(format!(
                "node rank {} ({}) runs with {} nodes, node rank 0 with {}",
                hello.node_rank, hello.host, hello.nnodes, d.nnodes
            ))
        } else if hello.world != d.world {
            Some(format!(
                "node rank {} ({}) runs another world: `{}`; node rank 0 runs `{}`",
                hello.node_rank, hello.host, hello.world, d.world
            ))
        } else if hello.node_rank == 0 || hello.node_rank >= d.nnodes {
            Some(format!(
                "a node ({}, {peer}) joined as node rank {}, which is not 1 to {}",
                hello.host,
                hello.node_rank,
                d.nnodes - 1
            ))
        } else if let Some(m) = members.iter().find(|m| m.0 == hello.node_rank) {
            Some(format!(
                "two nodes joined as node rank {}: {} and {}",
                hello.node_rank, m.1, hello.host
            ))
        } else {
            None
        };
        let answer = Answer {
            error: problem.clone(),
            host: me.clone(),
        };
        let mut stream = stream;
        let _ = writeln!(
            stream,
            "{}",
            serde_json::to_string(&answer).unwrap_or_default()
        );
        if let Some(p) = problem {
            return Err(fail(format!("the group cannot form: {p}")));
        }
        say_err!(
            "disagg-sim: node rank {} joined from {} ({peer})",
            hello.node_rank,
            hello.host
        );
        let _ = stream.set_read_timeout(None);
        members.push((hello.node_rank, hello.host, stream));
    }
    Ok(Members(members, derived))
}

impl Members {
    /// From now on a node leaving the group ends this process, with its name: a real engine's
    /// next collective fails without it.
    pub(crate) fn watch(self) {
        // Held for the life of the process, as the engine holds them.
        std::mem::forget(self.1);
        for (rank, host, stream) in self.0 {
            std::thread::spawn(move || {
                let why = wait_closed(&stream);
                say_err!(
                    "disagg-sim: node rank {rank} ({host}) left the group ({why}); the engine \
                     cannot go on without it"
                );
                std::thread::sleep(PEER_LOSS_DELAY);
                std::process::exit(1);
            });
        }
    }
}

/// Blocks until the peer closes the connection (or it fails): what happened.
fn wait_closed(stream: &TcpStream) -> String {
    let mut r = BufReader::new(stream);
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(0) => return "its connection closed".into(),
            Ok(_) => continue,
            Err(e) => return format!("its connection failed: {e}"),
        }
    }
}

/// A node above rank 0: joins node rank 0 (trying until `--dist-timeout`), then returns the
/// open connection and node rank 0's host.
pub(crate) fn join(d: &DistArgs) -> Result<(TcpStream, String), SimError> {
    let (host, port) = address(d)?;
    let deadline = Instant::now() + d.dist_timeout;
    let stream = loop {
        let last = match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => {
                let mut err = String::from("no address");
                let mut got = None;
                for a in addrs {
                    match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                        Ok(s) => {
                            got = Some(s);
                            break;
                        }
                        Err(e) => err = format!("{a}: {e}"),
                    }
                }
                match got {
                    Some(s) => break s,
                    None => err,
                }
            }
            Err(e) => format!("cannot resolve {host}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "node rank {} cannot reach node rank 0's rendezvous at {host}:{port} after {} \
                 ({last}); a loopback or unresolvable host there reaches no other node",
                d.node_rank,
                humantime::format_duration(d.dist_timeout)
            )));
        }
        std::thread::sleep(RETRY);
    };
    let hello = Hello {
        node_rank: d.node_rank,
        nnodes: d.nnodes,
        world: d.world.clone(),
        host: hostname(),
    };
    let mut w = &stream;
    writeln!(w, "{}", serde_json::to_string(&hello).unwrap_or_default())
        .map_err(|e| fail(format!("rendezvous at {host}:{port}: {e}")))?;
    let _ = stream.set_read_timeout(Some(d.dist_timeout));
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| fail(format!("rendezvous at {host}:{port}: no answer: {e}")))?;
    let answer: Answer = serde_json::from_str(&line).map_err(|_| {
        fail(format!(
            "rendezvous at {host}:{port}: node rank 0 closed the connection without an answer"
        ))
    })?;
    if let Some(e) = answer.error {
        return Err(fail(format!("the group cannot form: {e}")));
    }
    let _ = stream.set_read_timeout(None);
    Ok((stream, answer.host))
}

/// A node above rank 0, joined: holds the connection until node rank 0 goes, then ends the
/// process (the role stops it with a signal when the run is over).
pub(crate) fn follow(stream: TcpStream, head: &str, d: &DistArgs) -> ! {
    let why = wait_closed(&stream);
    say_err!(
        "disagg-sim: node rank 0 ({head}, {}) left the group ({why}); node rank {} cannot go \
         on without it",
        d.dist_init_addr.as_deref().unwrap_or_default(),
        d.node_rank
    );
    std::thread::sleep(PEER_LOSS_DELAY);
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nnodes: u32, rank: u32, addr: &str, world: &str) -> DistArgs {
        DistArgs {
            nnodes,
            node_rank: rank,
            dist_init_addr: Some(addr.into()),
            dist_timeout: Duration::from_secs(5),
            world: world.into(),
            derived_ports: Vec::new(),
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn bad_flags_are_named() {
        let e = address(&args(2, 2, "h:1", "w")).unwrap_err().to_string();
        assert!(e.contains("--node-rank 2 is not below --nnodes 2"), "{e}");
        let e = address(&args(2, 1, "{dist_init_host}:{dist_init_port}", "w"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not HOST:PORT"), "{e}");
        let mut no = args(2, 0, "h:1", "w");
        no.dist_init_addr = None;
        assert!(
            address(&no)
                .unwrap_err()
                .to_string()
                .contains("--dist-init-addr")
        );
        assert_eq!(
            address(&args(2, 1, "[::1]:7", "w")).unwrap(),
            ("::1".into(), 7)
        );
    }

    #[test]
    fn a_group_forms_once_every_node_joined_and_a_node_leaving_is_seen() {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let head = {
            let a = args(3, 0, &addr, "m tp=8");
            std::thread::spawn(move || host(&a))
        };
        let joins: Vec<_> = [1, 2]
            .into_iter()
            .map(|r| {
                let a = args(3, r, &addr, "m tp=8");
                std::thread::spawn(move || join(&a))
            })
            .collect();
        let members = head.join().unwrap().expect("the group forms");
        let mut ranks: Vec<u32> = members.0.iter().map(|m| m.0).collect();
        ranks.sort();
        assert_eq!(ranks, [1, 2]);
        let joined: Vec<_> = joins
            .into_iter()
            .map(|j| j.join().unwrap().unwrap())
            .collect();
        // Node rank 0 going closes every member's connection.
        drop(members);
        for (stream, _) in &joined {
            assert!(wait_closed(stream).contains("closed"));
        }
    }

    #[test]
    fn a_node_of_another_world_or_rank_fails_the_group_on_both_sides() {
        for (rank, world, want) in [
            (1, "m tp=16", "runs another world"),
            (0, "m tp=8", "joined as node rank 0"),
        ] {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let a = args(2, 0, &addr, "m tp=8");
            let head = std::thread::spawn(move || host(&a));
            let b = args(2, rank, &addr, world);
            let member = join(&b).map(drop).unwrap_err().to_string();
            let head = head.join().unwrap().map(drop).unwrap_err().to_string();
            assert!(
                member.contains(want) && head.contains(want),
                "{member} / {head}"
            );
        }
    }

    #[test]
    fn node_rank_0_fails_when_a_port_derived_from_the_rendezvous_is_taken() {
        // A rendezvous port whose + 6 is held by another process, and whose + 5 was free a
        // moment ago (a port other tests took there would be named first, rightly).
        let (port, _held) = loop {
            let p = free_port();
            let five_free = TcpListener::bind(("0.0.0.0", p.saturating_add(5))).is_ok();
            if let (true, Ok(l)) = (
                five_free,
                TcpListener::bind(("0.0.0.0", p.saturating_add(6))),
            ) {
                break (p, l);
            }
        };
        let mut a = args(2, 0, &format!("127.0.0.1:{port}"), "w");
        a.derived_ports = vec![5, 6];
        let e = host(&a).map(drop).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "cannot bind port {}, the rendezvous port {port} + 6",
                port + 6
            )),
            "{e}"
        );
    }

    #[test]
    fn a_node_that_cannot_reach_node_rank_0_fails_after_the_timeout_naming_the_address() {
        let port = free_port();
        let mut a = args(2, 1, &format!("127.0.0.1:{port}"), "w");
        a.dist_timeout = Duration::from_millis(300);
        let t = Instant::now();
        let e = join(&a).map(drop).unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot reach"),
            "{e}"
        );
        // And node rank 0 alone fails once its timeout is over, naming who is missing.
        let mut h = args(2, 0, &format!("127.0.0.1:{}", free_port()), "w");
        h.dist_timeout = Duration::from_millis(300);
        let e = host(&h).map(drop).unwrap_err().to_string();
        assert!(e.contains("for the other 1 node(s); joined: []"), "{e}");
    }
}
