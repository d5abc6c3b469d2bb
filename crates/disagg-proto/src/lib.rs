//! Wire types shared by the router, the bench and the sim.
//!
//! Nothing here knows about processes or sockets: these are the bytes and JSON shapes that
//! cross the wire between an OpenAI-style client, a PD router and context/generation engines.
//! See `shared/design/PROTOCOLS.md` for the facts each type encodes.

pub mod auth;
pub mod dialect;
pub mod error;
pub mod lengths;
pub mod llm_args;
pub mod openai;
pub mod ready;
pub mod sse;
pub mod trtllm;

pub use dialect::{Dialect, Policy};
pub use error::{ApiError, error_message};
