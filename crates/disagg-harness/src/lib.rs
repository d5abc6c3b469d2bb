//! disagg-harness
