//! The sizes of the structs this library was built with, for bindings that check their
//! own declarations (the C# wrapper, the Python scripts) against the loaded library.

use std::mem::size_of;

use super::chat::{
    SphanaLlmChatMessage, SphanaLlmChatTools, SphanaLlmToolCall, SphanaLlmToolCalls,
};
use super::common::{guard, non_null};
use super::generate::{SphanaLlmConstraint, SphanaLlmGenerateParams, SphanaLlmGenerateStats};
use super::model::SphanaLlmLoadOptions;
use super::tokenize::{SphanaLlmTokenBatch, SphanaLlmTokenSpan};
use crate::error::Error;

/// `SphanaLlmLoadOptions`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_LOAD_OPTIONS: u32 = 1;
/// `SphanaLlmGenerateParams`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_GENERATE_PARAMS: u32 = 2;
/// `SphanaLlmGenerateStats`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_GENERATE_STATS: u32 = 3;
/// `SphanaLlmTokenSpan`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_TOKEN_SPAN: u32 = 4;
/// `SphanaLlmTokenBatch`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_TOKEN_BATCH: u32 = 5;
/// `SphanaLlmChatMessage`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_CHAT_MESSAGE: u32 = 6;
/// `SphanaLlmConstraint`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_CONSTRAINT: u32 = 7;
/// `SphanaLlmChatTools`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_CHAT_TOOLS: u32 = 8;
/// `SphanaLlmToolCall`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_TOOL_CALL: u32 = 9;
/// `SphanaLlmToolCalls`, for `sphana_llm_struct_size`.
pub const SPHANA_LLM_STRUCT_TOOL_CALLS: u32 = 10;

/// Writes to `*out_size` the size in bytes (`sizeof`) of a struct of this library's
/// version: `kind` is one of the `SPHANA_LLM_STRUCT_*` constants. A binding that declares
/// the structs itself (C#, Python ctypes) compares its own sizes with these at start-up.
/// Versioned structs also report their size in `struct_size` of their defaults; this
/// function covers every public struct, including those the library only writes.
///
/// Statuses: `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_INVALID_ARGUMENT` when `out_size` is NULL or
/// `kind` is not a known constant (`*out_size` is then left unchanged). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_struct_size(kind: u32, out_size: *mut usize) -> i32 {
    guard(|| {
        non_null(out_size, "out_size")?;
        let size = match kind {
            SPHANA_LLM_STRUCT_LOAD_OPTIONS => size_of::<SphanaLlmLoadOptions>(),
            SPHANA_LLM_STRUCT_GENERATE_PARAMS => size_of::<SphanaLlmGenerateParams>(),
            SPHANA_LLM_STRUCT_GENERATE_STATS => size_of::<SphanaLlmGenerateStats>(),
            SPHANA_LLM_STRUCT_TOKEN_SPAN => size_of::<SphanaLlmTokenSpan>(),
            SPHANA_LLM_STRUCT_TOKEN_BATCH => size_of::<SphanaLlmTokenBatch>(),
            SPHANA_LLM_STRUCT_CHAT_MESSAGE => size_of::<SphanaLlmChatMessage>(),
            SPHANA_LLM_STRUCT_CONSTRAINT => size_of::<SphanaLlmConstraint>(),
            SPHANA_LLM_STRUCT_CHAT_TOOLS => size_of::<SphanaLlmChatTools>(),
            SPHANA_LLM_STRUCT_TOOL_CALL => size_of::<SphanaLlmToolCall>(),
            SPHANA_LLM_STRUCT_TOOL_CALLS => size_of::<SphanaLlmToolCalls>(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown struct kind {other}: expected one of the SPHANA_LLM_STRUCT_* constants (1 to 10)"
                )))
            }
        };
        // SAFETY: checked non-NULL above; the caller provides a writable size_t.
        unsafe { out_size.write(size) };
        Ok(())
    })
}
