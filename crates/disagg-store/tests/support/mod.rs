//! What the store's tests share.

/// The PostgreSQL URL of the tests, or `None` (and a loud line) when there is none and CI does
/// not require one.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DISAGG_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            let required = std::env::var("DISAGG_REQUIRE_SLURM").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "DISAGG_REQUIRE_SLURM=1 but DISAGG_TEST_POSTGRES is not set: start one with `eval \"$(bash scripts/dev-postgres.sh up)\"`"
            );
            eprintln!(
                "POSTGRES TEST DID NOT RUN: set DISAGG_TEST_POSTGRES (scripts/dev-postgres.sh up)"
            );
            None
        }
    }
}
