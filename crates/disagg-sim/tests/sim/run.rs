//! `run`'s failure paths: they return typed errors before serving, naming what went wrong.

use std::path::PathBuf;

use disagg_sim::{SimError, run};

use crate::support::parse_args;

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let err = run(parse_args(&["--host", "127.0.0.1", "--port", &port]))
        .await
        .expect_err("port is taken");
    assert!(matches!(err, SimError::Bind { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn an_unwritable_ready_file_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent-disagg-sim-dir/ctx.addr");
    let err = run(parse_args(&[
        "--ready-file",
        path.to_str().expect("utf-8 path"),
    ]))
    .await
    .expect_err("ready file cannot be written");
    assert!(matches!(err, SimError::ReadyFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("nonexistent-disagg-sim-dir"),
        "{err}"
    );
}

#[test]
fn fail_after_requests_must_be_positive() {
    let err =
        crate::support::try_parse_args(&["--fail-after-requests", "0"]).expect_err("0 is rejected");
    assert!(err.to_string().contains("--fail-after-requests"), "{err}");
}

#[test]
fn kv_bandwidth_must_be_positive() {
    for bad in ["0", "-1", "NaN", "fast"] {
        // `=` form, so "-1" is a value, not a flag.
        let flag = format!("--kv-bandwidth-gbs={bad}");
        let err = crate::support::try_parse_args(&[flag.as_str()]).expect_err("rejected");
        assert!(err.to_string().contains("--kv-bandwidth-gbs"), "{err}");
    }
}

#[test]
fn a_clock_step_over_100ms_is_refused_by_name() {
    let argv = |step: &str| -> Vec<String> {
        ["disagg", "sim", "--clock-step", step]
            .map(String::from)
            .to_vec()
    };
    let err = disagg_sim::check_argv(&argv("101ms")).expect_err("too coarse");
    assert!(
        err.contains("--clock-step") && err.contains("100ms"),
        "{err}"
    );
    for fine in ["0s", "250us", "100ms"] {
        assert_eq!(disagg_sim::check_argv(&argv(fine)), Ok(()), "{fine}");
    }
}
