//! A PostgreSQL store that does not answer, or answers with a refusal: the caller gets a bounded
//! wait and the server's own reason, never a hang or a bare "db error". The refusals need the
//! PostgreSQL of `DISAGG_TEST_POSTGRES` (CI starts one); the silent server is a local socket.

use std::time::{Duration, Instant};

use disagg_store::Store;
use support::postgres_url;

mod support;

/// Something that takes connections on loopback and never says a word, as a stuck proxy does.
#[test]
fn a_server_that_takes_the_connection_and_never_answers_is_given_up_on() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, end) = std::sync::mpsc::channel::<()>();
    let held = std::thread::spawn(move || {
        // Hold the first connection open, silent, until the test is over.
        let (conn, _) = listener.accept().unwrap();
        let _ = end.recv();
        drop(conn);
    });
    let started = Instant::now();
    let e = Store::open(&format!(
        "postgresql://u:secret@127.0.0.1:{port}/db?connect_timeout=1"
    ))
    .err()
    .expect("a silent server is no store");
    let took = started.elapsed();
    let e = e.to_string();
    assert!(
        e.contains("no answer within 2 s") && !e.contains("secret"),
        "{e}"
    );
    assert!(took < Duration::from_secs(6), "gave up after {took:?}");
    drop(done);
    held.join().unwrap();
}

/// A wrong password and a missing database each say which, in the server's words.
#[test]
fn postgres_refusals_say_the_servers_reason() {
    let Some(url) = postgres_url() else { return };
    let (scheme_user, rest) = url.split_once('@').expect("user@host in the URL");
    let (scheme, user_pw) = scheme_user.split_once("://").unwrap();
    let user = user_pw.split(':').next().unwrap();
    let wrong_pw = format!("{scheme}://{user}:not-the-password@{rest}");
    let e = Store::open(&wrong_pw)
        .err()
        .expect("wrong password")
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    let (host, _db) = rest.rsplit_once('/').unwrap();
    let no_db = format!("{scheme_user}@{host}/no_such_database_here");
    let e = Store::open(&no_db)
        .err()
        .expect("missing database")
        .to_string();
    assert!(
        e.contains("no_such_database_here") && e.contains("does not exist"),
        "{e}"
    );
}
