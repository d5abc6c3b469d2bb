//! End-to-end tests of the sim over real HTTP on 127.0.0.1 (port 0), in-process.
//!
//! One test binary with one module per concern, to keep link time low.

mod batching;
mod context_len;
mod direct;
mod disaggregated;
mod errors;
mod faults;
mod handoff;
mod health;
mod run;
mod sglang;
mod streaming;
mod support;
mod through_router;
mod trtllm;
mod vllm;
