//! The C ABI: a thin shell over the safe Rust API. `build.rs` runs cbindgen on this
//! module (and only this module) to write `include/sphana_llm.h`, arranged in sections in
//! the order a user meets the API (the section table is in `build.rs`); the `///` comments
//! here are the C user's manual.
//!
//! Every entry point: checks each pointer, validates UTF-8, never lets a panic cross the
//! boundary (it becomes `SPHANA_LLM_ERR_INTERNAL`), records a message for
//! `sphana_llm_last_error()` on failure, and may be called from any number of threads.
//! Handles are opaque tokens looked up in a registry, so a freed or forged handle is
//! reported as `SPHANA_LLM_ERR_INVALID_ARGUMENT` instead of touching freed memory.

// The safety contract of every `unsafe extern "C"` entry point is its C contract, written
// in its doc comment: pointers are NULL or valid for the sizes the caller passes.
#![allow(clippy::missing_safety_doc)]

mod chat;
mod common;
mod generate;
mod model;
mod structs;
mod tokenize;

pub use self::chat::*;
pub use self::common::*;
pub use self::generate::*;
pub use self::model::*;
pub use self::structs::*;
pub use self::tokenize::*;
