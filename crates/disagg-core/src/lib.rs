//! disagg-core
