//! Wire types shared by the router, the bench and the sim.
//!
//! Nothing here knows about processes or sockets: these are the bytes and JSON shapes that
//! cross the wire between an OpenAI-style client, a PD router and context/generation engines.
//! See `shared/design/PROTOCOLS.md` for the facts each type encodes.

/// `println!` that never panics: a console that is a closed pipe (`| head`, a log shipper
/// that died) or a file on a full disk loses the line, not the process, whose files say what
/// must be kept. Every crate's console goes through these three.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// [`say!`] for stderr (`eprintln!`, which panics the same way).
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// [`say!`] without the newline (`print!`), flushed.
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = write!(out, $($arg)*);
        let _ = out.flush();
    }};
}

pub mod auth;
pub mod dialect;
pub mod engine_flags;
pub mod error;
pub mod lengths;
pub mod llm_args;
pub mod openai;
pub mod ready;
pub mod sse;
pub mod trtllm;

pub use dialect::{Dialect, Policy};
pub use error::{ApiError, error_message};
