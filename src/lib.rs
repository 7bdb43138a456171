//! sphana-llm: exact LLM tokenizers and text generation over ONNX Runtime, with a C ABI.
//!
//! The safe Rust API ([`Model`], [`tokenizer::Tokenizer`], ...) carries all logic; the
//! [`ffi`] module is a thin C shell over it (see `include/sphana_llm.h`).

pub mod chat;
pub mod engine;
pub mod error;
#[doc(hidden)]
pub mod fault;
pub mod ffi;
pub mod generation;
pub mod model;
pub mod model_config;
pub(crate) mod side_files;
pub mod tokenizer;
pub mod tools;

pub use chat::{ChatMessage, ChatOptions};
pub use engine::{EngineOptions, ExecutionProvider};
pub use error::{Error, Result, Status};
pub use generation::{
    CancelToken, Constraint, FinishReason, Flow, GenerateParams, GenerateStats, Generation,
    TokenLogprob, TopLogprob, MAX_CONSTRAINT_BYTES,
};
pub use model::{LoadOptions, Model};
pub use tokenizer::eos::EosSource;
pub use tokenizer::{EncodeOptions, Encoding, Tokenizer, TokenizerFormat};
pub use tools::{ToolCall, ToolCallFormat, ToolChatReply, ToolChoice, Tools};

/// The crate version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
