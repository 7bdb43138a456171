//! The library's error type and the closed set of status codes shared by Rust, C and C#.

use std::path::PathBuf;

/// Every way a call into sphana-llm can fail.
///
/// Each variant maps to exactly one [`Status`] code (see [`Error::status`]); the
/// `Display` text is what C callers read from `sphana_llm_last_error()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied argument is invalid (NULL pointer, unknown flag, bad value).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Text passed in is not valid UTF-8.
    #[error("invalid UTF-8 in {what} at byte {valid_up_to}")]
    InvalidUtf8 {
        /// Which argument held the bytes.
        what: String,
        /// Length of the longest valid prefix.
        valid_up_to: usize,
    },
    /// The caller's output buffer cannot hold the result; `needed` elements are required.
    #[error("buffer too small: {needed} elements needed, capacity is {capacity}")]
    BufferTooSmall {
        /// Elements (ids, bytes, ...) the result needs.
        needed: usize,
        /// Elements the caller provided room for.
        capacity: usize,
    },
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A file exists but is not a valid tokenizer / model / config of the expected kind.
    #[error("invalid model file {path}: {reason}")]
    InvalidModel {
        /// The offending file (or directory).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    InvalidTokenId {
        /// The rejected id.
        id: i64,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A token string or other looked-up item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation needs something the loaded model does not have
    /// (generation on a tokenizer-only load, chat without a template, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A configured resource limit would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The prompt does not fit the model's context window.
    #[error("context overflow: {0}")]
    ContextOverflow(String),
    /// ONNX Runtime could not be loaded or failed while running the model.
    #[error("onnx runtime: {0}")]
    Runtime(String),
    /// A bug in sphana-llm (a caught panic, a broken invariant).
    #[error("internal error: {0}")]
    Internal(String),
    /// A generation's KV cache does not fit the handle's KV-memory budget (the
    /// `max_kv_cache_bytes` load option), at once or within the wait limit.
    #[error("KV cache budget: {0}")]
    KvMemory(String),
}

/// Status codes returned by every C entry point. `Ok` is 0; failures are negative.
///
/// The numeric values are part of the ABI and never change meaning.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// See [`Error::InvalidArgument`].
    InvalidArgument = -1,
    /// See [`Error::InvalidUtf8`].
    InvalidUtf8 = -2,
    /// See [`Error::BufferTooSmall`].
    BufferTooSmall = -3,
    /// See [`Error::Io`].
    Io = -4,
    /// See [`Error::InvalidModel`].
    InvalidModel = -5,
    /// See [`Error::InvalidTokenId`].
    InvalidTokenId = -6,
    /// See [`Error::NotFound`].
    NotFound = -7,
    /// See [`Error::Unsupported`].
    Unsupported = -8,
    /// See [`Error::LimitExceeded`].
    LimitExceeded = -9,
    /// See [`Error::ContextOverflow`].
    ContextOverflow = -10,
    /// See [`Error::Runtime`].
    Runtime = -11,
    /// See [`Error::Internal`].
    Internal = -12,
    /// See [`Error::KvMemory`].
    KvMemory = -13,
}

impl Error {
    /// The status code this error maps to.
    pub fn status(&self) -> Status {
        match self {
            Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::InvalidUtf8 { .. } => Status::InvalidUtf8,
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::Io { .. } => Status::Io,
            Error::InvalidModel { .. } => Status::InvalidModel,
            Error::InvalidTokenId { .. } => Status::InvalidTokenId,
            Error::NotFound(_) => Status::NotFound,
            Error::Unsupported(_) => Status::Unsupported,
            Error::LimitExceeded(_) => Status::LimitExceeded,
            Error::ContextOverflow(_) => Status::ContextOverflow,
            Error::Runtime(_) => Status::Runtime,
            Error::Internal(_) => Status::Internal,
            Error::KvMemory(_) => Status::KvMemory,
        }
    }

    /// Shorthand for [`Error::InvalidModel`].
    pub(crate) fn invalid_model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidModel {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
