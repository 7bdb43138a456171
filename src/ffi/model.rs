//! Loading and freeing models; load options; model facts (vocabulary, BOS/EOS).

use std::ffi::c_char;
use std::path::PathBuf;

use once_cell::sync::Lazy;

use super::common::*;
use crate::error::{Error, Result};
use crate::model::{
    ExecutionProvider, LoadOptions, Model, DEFAULT_MAX_BATCH_TEXTS, DEFAULT_MAX_INPUT_BYTES,
};
use crate::tokenizer::TokenizerFormat;

/// Detect the tokenizer format (`tokenizer.json` wins over `tokenizer.model`).
pub const SPHANA_LLM_FORMAT_AUTO: i32 = 0;
/// HF `tokenizer.json`.
pub const SPHANA_LLM_FORMAT_HF_JSON: i32 = 1;
/// SentencePiece `tokenizer.model` (protobuf).
pub const SPHANA_LLM_FORMAT_SENTENCEPIECE: i32 = 2;
/// tiktoken rank file `tokenizer.model` (Llama 3's original checkpoint format).
pub const SPHANA_LLM_FORMAT_TIKTOKEN: i32 = 3;

/// Run on ONNX Runtime's CPU execution provider.
pub const SPHANA_LLM_PROVIDER_CPU: i32 = 0;
/// Run on ONNX Runtime's CUDA execution provider (`device_id` selects the GPU).
pub const SPHANA_LLM_PROVIDER_CUDA: i32 = 1;

/// An opaque, thread-safe model handle. One handle may be used by any number of threads
/// at once; free it once, with `sphana_llm_free`, after every other call on it returned.
pub struct SphanaLlmModel {
    _opaque: [u8; 0],
}

/// Options for `sphana_llm_load`. Get the defaults from `sphana_llm_load_options_default()`
/// and change what you need; `struct_size` lets later library versions add fields:
/// a caller built against a newer header may pass a larger struct as long as the fields
/// this library does not know are zero.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmLoadOptions {
    /// `sizeof(SphanaLlmLoadOptions)` as the caller compiled it.
    pub struct_size: u32,
    /// One of `SPHANA_LLM_FORMAT_*`; default `SPHANA_LLM_FORMAT_AUTO`.
    pub tokenizer_format: i32,
    /// Absolute path of `libonnxruntime.so`, or NULL: then `ORT_DYLIB_PATH`, then
    /// `libonnxruntime.so` next to `libsphana_llm.so`. Only the first load in a process decides.
    pub ort_library_path: *const c_char,
    /// ONNX file name inside the model directory, or NULL: `model.onnx`, else the only `*.onnx`.
    pub onnx_file_name: *const c_char,
    /// ONNX Runtime intra-op threads; 0 (default) lets ONNX Runtime decide.
    pub intra_op_threads: i32,
    /// One of `SPHANA_LLM_PROVIDER_*`; default CPU.
    pub execution_provider: i32,
    /// CUDA device ordinal (default 0).
    pub device_id: i32,
    /// Non-zero: when CUDA cannot be enabled, run on CPU instead of failing the load. Default 0.
    pub allow_cpu_fallback: u32,
    /// Largest text in bytes one call accepts (default 256 MiB); larger is `SPHANA_LLM_ERR_LIMIT_EXCEEDED`.
    pub max_input_bytes: u64,
    /// Most texts one `sphana_llm_tokenize_batch` call accepts (default 65536).
    pub max_batch_texts: u64,
    /// ONNX Runtime sessions for the model (default 1). Each holds its own copy of the
    /// weights; with N sessions, N `session.run` calls (prompts, batched decode steps) can
    /// execute at once.
    pub session_count: u32,
    /// Tokenizer file or directory to use instead of the one in the model directory
    /// (NULL: the model directory's). Its side files (`tokenizer_config.json`, ...) are read
    /// from its own directory.
    pub tokenizer_path: *const c_char,
    /// Most concurrent generations on this handle whose decode steps share one
    /// `session.run` (continuous batching), default 8; 1 turns batching off. Applies to
    /// models with a KV cache, `attention_mask` and `position_ids`. Float models give each
    /// generation the same greedy output as alone; with a dynamically quantized (INT8) model
    /// one activation scale covers the whole batch, so results depend on the batch mates:
    /// set 1 when runs must be reproducible one by one. (Added after the first release.)
    pub max_decode_batch: u32,
    /// The ids that end a generation, overriding every file: `eos_token_count` ids at
    /// `eos_token_ids`, each in the vocabulary (the array is copied; it need not outlive the
    /// call). NULL (default): the set comes from the files, else from the vocabulary — see
    /// `sphana_llm_eos_source`. Non-NULL with a count of 0: no EOS at all. (Added after the
    /// second release.)
    pub eos_token_ids: *const i32,
    /// Number of ids at `eos_token_ids` (at most 4096); ignored when it is NULL.
    pub eos_token_count: u64,
    /// The context length in tokens (prompt + generated), overriding `config.json`'s
    /// `max_position_embeddings`; 0 (default): `config.json`'s, or unknown when there is none
    /// (then only `max_new_tokens` limits a generation).
    pub context_length: u64,
    /// Longest prompt chunk one prefill run reads (default 256; 0: the whole prompt in one
    /// run). Between chunks the decode steps of running generations on the handle get their
    /// turn, so a long prompt does not stall them for its whole prefill, and the prefill's
    /// attention memory grows with the chunk instead of the prompt. Float models compute the
    /// same as one run up to float rounding; models quantized with `DynamicQuantizeLinear`
    /// pick one activation scale per run, so their output depends on the chunking. (Added
    /// after the third release.)
    pub prefill_chunk_tokens: u64,
    /// Most bytes of KV cache the generations on this handle may hold at once; 0 (default):
    /// no limit. A generation reserves its worst case — (prompt + `max_new_tokens`, at most
    /// the context length) × layers × 2 × KV heads × head size × element size — before its
    /// prefill, and gives it back when it ends. One that does not fit waits for room up to
    /// `kv_wait_ms`, then fails with `SPHANA_LLM_ERR_KV_MEMORY`; one that exceeds the whole
    /// budget fails at once. The budget counts each cache once: while a decode step runs, its
    /// outputs exist beside its inputs, and a change of the batch's membership briefly holds
    /// a second copy of the rows it moves. (Added after the third release.)
    pub max_kv_cache_bytes: u64,
    /// Longest a generation waits for room in the KV budget, in milliseconds (default
    /// 30000; 0: fail at once). (Added after the third release.)
    pub kv_wait_ms: u64,
    /// Bytes of host memory for the prefix cache, 0 (default): off. The KV cache of recent
    /// prompts and of the answers generated after them is kept (least recently used first
    /// out) and a prompt that starts like one of them prefills only the rest: a second
    /// question on the same retrieved context, the next turn of a chat (which reuses the
    /// previous turn's prompt and answer). `SphanaLlmGenerateStats.cached_tokens` says how
    /// many positions were reused. Keeping a prompt costs a copy of its KV cache after its
    /// prefill, and one more when its generation ends. Float
    /// models compute what a cold prefill computes up to float rounding; INT8
    /// (`DynamicQuantizeLinear`) models' output depends on what was cached. Each handle has
    /// its own cache; it is separate from `max_kv_cache_bytes`. (Added after the third
    /// release.)
    pub prefix_cache_bytes: u64,
}

/// Most ids `SphanaLlmLoadOptions.eos_token_ids` may hold.
pub const SPHANA_LLM_MAX_EOS_IDS: u64 = 4096;

/// The default load options (`struct_size` already set), returned by value in this
/// header's layout: use it when the header you compile against matches the library
/// (`sphana_llm_abi_version()`); `sphana_llm_load_options_init` is safe across versions.
#[no_mangle]
pub extern "C" fn sphana_llm_load_options_default() -> SphanaLlmLoadOptions {
    SphanaLlmLoadOptions {
        struct_size: std::mem::size_of::<SphanaLlmLoadOptions>() as u32,
        tokenizer_format: SPHANA_LLM_FORMAT_AUTO,
        ort_library_path: std::ptr::null(),
        onnx_file_name: std::ptr::null(),
        intra_op_threads: 0,
        execution_provider: SPHANA_LLM_PROVIDER_CPU,
        device_id: 0,
        allow_cpu_fallback: 0,
        max_input_bytes: DEFAULT_MAX_INPUT_BYTES as u64,
        max_batch_texts: DEFAULT_MAX_BATCH_TEXTS as u64,
        session_count: 1,
        tokenizer_path: std::ptr::null(),
        max_decode_batch: crate::engine::batch::DEFAULT_MAX_DECODE_BATCH as u32,
        eos_token_ids: std::ptr::null(),
        eos_token_count: 0,
        context_length: 0,
        prefill_chunk_tokens: crate::engine::DEFAULT_PREFILL_CHUNK_TOKENS as u64,
        max_kv_cache_bytes: 0,
        kv_wait_ms: crate::engine::kv_budget::DEFAULT_KV_WAIT.as_millis() as u64,
        prefix_cache_bytes: crate::engine::prefix_cache::DEFAULT_PREFIX_CACHE_BYTES as u64,
    }
}

/// Reads a caller's versioned struct. The caller's `struct_size` must be this library's
/// size, or the size of an earlier published layout (`older_sizes`; the fields it lacks
/// keep their `defaults`), or larger with every byte past our struct zero (a newer header
/// whose new fields the caller left at their defaults).
///
/// # Safety
/// `ptr` must be valid for reads of the `struct_size` it declares.
pub(crate) unsafe fn read_versioned_struct<T: Copy>(
    ptr: *const T,
    name: &str,
    defaults: T,
    older_sizes: &[usize],
) -> Result<T> {
    // SAFETY: every versioned struct starts with a u32 struct_size.
    let declared = unsafe { ptr.cast::<u32>().read_unaligned() } as usize;
    let ours = std::mem::size_of::<T>();
    if declared < ours {
        if !older_sizes.contains(&declared) {
            return Err(Error::InvalidArgument(format!(
                "{name}.struct_size is {declared}, which is not a layout this library knows ({ours}, or earlier {older_sizes:?}); set it to sizeof({name}) (the struct's *_default() or *_init() function, where it has one, does)"
            )));
        }
        let mut value = defaults;
        // SAFETY: the caller declared `declared` readable bytes, a prefix of our layout made
        // of whole fields; they overwrite the same prefix of the defaults.
        unsafe {
            std::ptr::copy_nonoverlapping(
                ptr.cast::<u8>(),
                (&mut value as *mut T).cast::<u8>(),
                declared,
            );
        }
        return Ok(value);
    }
    if declared > ours {
        if declared - ours > 1 << 16 {
            return Err(Error::InvalidArgument(format!(
                "{name}.struct_size {declared} is implausibly large"
            )));
        }
        // SAFETY: the caller declared `declared` readable bytes.
        let tail =
            unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().add(ours), declared - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(Error::Unsupported(format!(
                "{name} sets fields this library version ({}) does not know",
                crate::VERSION
            )));
        }
    }
    // SAFETY: at least `ours` bytes are readable.
    Ok(unsafe { ptr.read_unaligned() })
}

/// Writes `defaults` into a caller's struct of `struct_size` bytes: our layout, an earlier
/// one (`older_sizes`), or a larger (newer) one whose extra bytes are zeroed.
///
/// # Safety
/// `out` must be valid for writes of `struct_size` bytes.
pub(crate) unsafe fn write_versioned_struct<T: Copy>(
    out: *mut T,
    struct_size: usize,
    name: &str,
    defaults: T,
    older_sizes: &[usize],
) -> Result<()> {
    let ours = std::mem::size_of::<T>();
    if struct_size < ours && !older_sizes.contains(&struct_size) {
        return Err(Error::InvalidArgument(format!(
            "struct_size {struct_size} is not a layout of {name} this library knows ({ours}, or earlier {older_sizes:?})"
        )));
    }
    if struct_size > ours + (1 << 16) {
        return Err(Error::InvalidArgument(format!(
            "struct_size {struct_size} is implausibly large"
        )));
    }
    let size = u32::try_from(struct_size)
        .map_err(|_| Error::InvalidArgument(format!("struct_size {struct_size} is too large")))?;
    // SAFETY: the caller provides `struct_size` writable bytes; we copy at most our size
    // and zero the rest, then store the caller's size in the leading struct_size field.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&defaults as *const T).cast::<u8>(),
            out.cast::<u8>(),
            struct_size.min(ours),
        );
        if struct_size > ours {
            std::ptr::write_bytes(out.cast::<u8>().add(ours), 0, struct_size - ours);
        }
        out.cast::<u32>().write_unaligned(size);
    }
    Ok(())
}

/// Sizes of earlier published `SphanaLlmLoadOptions` layouts: before `tokenizer_path`,
/// before `max_decode_batch`, before `eos_token_ids`, before `prefill_chunk_tokens`.
pub(crate) fn load_options_older_sizes() -> [usize; 4] {
    [
        std::mem::offset_of!(SphanaLlmLoadOptions, tokenizer_path),
        std::mem::offset_of!(SphanaLlmLoadOptions, max_decode_batch),
        std::mem::offset_of!(SphanaLlmLoadOptions, eos_token_ids),
        std::mem::offset_of!(SphanaLlmLoadOptions, prefill_chunk_tokens),
    ]
}

/// Fills `*options` with the default load options for a struct of `struct_size` bytes
/// (`sizeof(SphanaLlmLoadOptions)` of the header the caller compiled against) and sets its
/// `struct_size`. Unlike `sphana_llm_load_options_default()`, which returns this library's
/// layout by value, this is safe for a caller built against an older or newer header.
/// Returns `SPHANA_LLM_OK` or `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL, unknown size).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_load_options_init(
    options: *mut SphanaLlmLoadOptions,
    struct_size: usize,
) -> i32 {
    guard(|| {
        non_null(options, "options")?;
        // SAFETY: the caller provides `struct_size` writable bytes.
        unsafe {
            write_versioned_struct(
                options,
                struct_size,
                "SphanaLlmLoadOptions",
                sphana_llm_load_options_default(),
                &load_options_older_sizes(),
            )
        }
    })
}

/// Converts C load options to the Rust ones, validating every field.
///
/// # Safety
/// `options` must be NULL or valid as documented for `sphana_llm_load`.
unsafe fn load_options_from_c(options: *const SphanaLlmLoadOptions) -> Result<LoadOptions> {
    if options.is_null() {
        return Ok(LoadOptions::default());
    }
    // SAFETY: forwarded contract.
    let o = unsafe {
        read_versioned_struct(
            options,
            "SphanaLlmLoadOptions",
            sphana_llm_load_options_default(),
            &load_options_older_sizes(),
        )
    }?;
    let tokenizer_format = match o.tokenizer_format {
        SPHANA_LLM_FORMAT_AUTO => None,
        v => Some(TokenizerFormat::from_i32(v).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "tokenizer_format {v} is not a SPHANA_LLM_FORMAT_* value"
            ))
        })?),
    };
    let execution_provider = match o.execution_provider {
        SPHANA_LLM_PROVIDER_CPU => ExecutionProvider::Cpu,
        SPHANA_LLM_PROVIDER_CUDA => ExecutionProvider::Cuda,
        v => {
            return Err(Error::InvalidArgument(format!(
                "execution_provider {v} is not a SPHANA_LLM_PROVIDER_* value"
            )))
        }
    };
    let non_negative = |v: i32, name: &str| -> Result<usize> {
        usize::try_from(v).map_err(|_| Error::InvalidArgument(format!("{name} is negative ({v})")))
    };
    let positive = |v: u64, name: &str| -> Result<usize> {
        match usize::try_from(v) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::InvalidArgument(format!(
                "{name} must be at least 1 (got {v})"
            ))),
        }
    };
    Ok(LoadOptions {
        tokenizer_format,
        // SAFETY: forwarded contract for the string fields.
        ort_library_path: unsafe { optional_cstr_arg(o.ort_library_path, "ort_library_path") }?
            .map(PathBuf::from),
        // SAFETY: as above.
        onnx_file_name: unsafe { optional_cstr_arg(o.onnx_file_name, "onnx_file_name") }?
            .map(str::to_owned),
        intra_op_threads: non_negative(o.intra_op_threads, "intra_op_threads")?,
        execution_provider,
        device_id: non_negative(o.device_id, "device_id")? as i32,
        allow_cpu_fallback: o.allow_cpu_fallback != 0,
        max_input_bytes: positive(o.max_input_bytes, "max_input_bytes")?,
        max_batch_texts: positive(o.max_batch_texts, "max_batch_texts")?,
        session_count: positive(o.session_count.into(), "session_count")?,
        max_decode_batch: positive(o.max_decode_batch.into(), "max_decode_batch")?,
        // SAFETY: as above.
        tokenizer_path: unsafe { optional_cstr_arg(o.tokenizer_path, "tokenizer_path") }?
            .map(PathBuf::from),
        // SAFETY: the caller provides `eos_token_count` readable ids when non-NULL.
        eos_token_ids: unsafe { eos_ids_from_c(o.eos_token_ids, o.eos_token_count) }?,
        context_length: match o.context_length {
            0 => None,
            n => {
                Some(usize::try_from(n).map_err(|_| {
                    Error::InvalidArgument(format!("context_length {n} is too large"))
                })?)
            }
        },
        prefill_chunk_tokens: usize::try_from(o.prefill_chunk_tokens).map_err(|_| {
            Error::InvalidArgument(format!(
                "prefill_chunk_tokens {} is too large",
                o.prefill_chunk_tokens
            ))
        })?,
        max_kv_cache_bytes: match o.max_kv_cache_bytes {
            0 => None,
            n => Some(usize::try_from(n).map_err(|_| {
                Error::InvalidArgument(format!("max_kv_cache_bytes {n} is too large"))
            })?),
        },
        kv_wait: std::time::Duration::from_millis(o.kv_wait_ms),
        prefix_cache_bytes: usize::try_from(o.prefix_cache_bytes).map_err(|_| {
            Error::InvalidArgument(format!(
                "prefix_cache_bytes {} is too large",
                o.prefix_cache_bytes
            ))
        })?,
        ..LoadOptions::default()
    })
}

/// The `eos_token_ids` load option: NULL is "not set"; every id must be non-negative (the
/// vocabulary check happens at load, when the tokenizer is known).
///
/// # Safety
/// `ids` must be NULL or valid for reads of `count` ids.
unsafe fn eos_ids_from_c(ids: *const i32, count: u64) -> Result<Option<Vec<u32>>> {
    if ids.is_null() {
        return Ok(None);
    }
    if count > SPHANA_LLM_MAX_EOS_IDS {
        return Err(Error::InvalidArgument(format!(
            "eos_token_count {count} is larger than {SPHANA_LLM_MAX_EOS_IDS}"
        )));
    }
    // SAFETY: forwarded contract; count is small.
    let ids = unsafe { std::slice::from_raw_parts(ids, count as usize) };
    ids.iter()
        .map(|&id| {
            u32::try_from(id)
                .map_err(|_| Error::InvalidArgument(format!("eos_token_ids holds {id}")))
        })
        .collect::<Result<Vec<u32>>>()
        .map(Some)
}

pub(crate) static MODELS: Lazy<Registry<Model>> = Lazy::new(|| Registry::new("model"));

/// Looks up a model handle.
pub(crate) fn model_arg(model: *const SphanaLlmModel) -> Result<std::sync::Arc<Model>> {
    MODELS.get(model as usize)
}

/// Loads a model directory or a single tokenizer file.
///
/// `path`: NUL-terminated UTF-8 path of a model directory (tokenizer file(s), optional
/// `*.onnx` decoder, `config.json`, `generation_config.json`, `tokenizer_config.json`) or of
/// one tokenizer file (`tokenizer.json`, or a SentencePiece / tiktoken `tokenizer.model`).
/// A directory without an ONNX model loads tokenizer-only; generation then fails with
/// `SPHANA_LLM_ERR_UNSUPPORTED`.
/// `options`: NULL for the defaults, else see `SphanaLlmLoadOptions`.
/// `out_model`: receives the new handle; left untouched on failure.
///
/// Returns `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL path/out_model, bad
/// options); `SPHANA_LLM_ERR_INVALID_UTF8` (path); `SPHANA_LLM_ERR_IO` (missing path, no
/// tokenizer file); `SPHANA_LLM_ERR_INVALID_MODEL` (corrupt, truncated or unknown file
/// contents, configuration naming ids outside the vocabulary); `SPHANA_LLM_ERR_RUNTIME`
/// (ONNX Runtime missing or too old, model rejected by it); `SPHANA_LLM_ERR_UNSUPPORTED`.
///
/// Thread-safe. The handle must be released with `sphana_llm_free`.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_load(
    path: *const c_char,
    options: *const SphanaLlmLoadOptions,
    out_model: *mut *mut SphanaLlmModel,
) -> i32 {
    guard(|| {
        non_null(out_model, "out_model")?;
        // SAFETY: caller contract for `path` and `options`.
        let path = unsafe { cstr_arg(path, "path") }?;
        // SAFETY: as above.
        let options = unsafe { load_options_from_c(options) }?;
        let model = Model::load(path, &options)?;
        let handle = MODELS.insert(model);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_model, handle as *mut SphanaLlmModel) };
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. Calls still running on the handle in other threads
/// finish normally; the memory is released when the last one returns. Freeing a handle
/// twice is detected and ignored (the error message is set).
#[no_mangle]
pub extern "C" fn sphana_llm_free(model: *mut SphanaLlmModel) {
    guard_void(|| MODELS.remove(model as usize));
}

/// Writes the vocabulary size (all ids including added/special tokens) to `*out_size`.
///
/// Returns `SPHANA_LLM_OK` or `SPHANA_LLM_ERR_INVALID_ARGUMENT` (bad handle, NULL out_size).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_vocab_size(
    model: *const SphanaLlmModel,
    out_size: *mut usize,
) -> i32 {
    guard(|| {
        non_null(out_size, "out_size")?;
        let model = model_arg(model)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_size, model.tokenizer().vocab_size()) };
        Ok(())
    })
}

/// Writes the tokenizer format that was loaded (`SPHANA_LLM_FORMAT_*`) to `*out_format`.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_tokenizer_format(
    model: *const SphanaLlmModel,
    out_format: *mut i32,
) -> i32 {
    guard(|| {
        non_null(out_format, "out_format")?;
        let model = model_arg(model)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_format, model.tokenizer().format() as i32) };
        Ok(())
    })
}

/// Writes the execution provider the model runs on (`SPHANA_LLM_PROVIDER_*`) to
/// `*out_provider`: CPU after a permitted CUDA fallback. `SPHANA_LLM_ERR_UNSUPPORTED` for a
/// tokenizer-only model.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_execution_provider(
    model: *const SphanaLlmModel,
    out_provider: *mut i32,
) -> i32 {
    guard(|| {
        non_null(out_provider, "out_provider")?;
        let model = model_arg(model)?;
        let engine = model
            .engine()
            .ok_or_else(|| Error::Unsupported("the model was loaded tokenizer-only".into()))?;
        let provider = match engine.provider() {
            ExecutionProvider::Cpu => SPHANA_LLM_PROVIDER_CPU,
            ExecutionProvider::Cuda => SPHANA_LLM_PROVIDER_CUDA,
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_provider, provider) };
        Ok(())
    })
}

/// The EOS set came from the `eos_token_ids` load option.
pub const SPHANA_LLM_EOS_SOURCE_LOAD_OPTION: i32 = 1;
/// The EOS set came from a `generation_config.json` (`eos_token_id`).
pub const SPHANA_LLM_EOS_SOURCE_GENERATION_CONFIG: i32 = 2;
/// The EOS set came from a `config.json` (`eos_token_id`).
pub const SPHANA_LLM_EOS_SOURCE_CONFIG: i32 = 3;
/// The EOS set came from `tokenizer_config.json` (`eos_token`).
pub const SPHANA_LLM_EOS_SOURCE_TOKENIZER_CONFIG: i32 = 4;
/// The EOS set is the tokenizer file's own end piece (SentencePiece `</s>`).
pub const SPHANA_LLM_EOS_SOURCE_TOKENIZER_FILE: i32 = 5;
/// No file names an EOS: the set was derived from the vocabulary's special end-of-turn /
/// end-of-text tokens.
pub const SPHANA_LLM_EOS_SOURCE_VOCABULARY: i32 = 6;
/// No EOS: nothing names one and the vocabulary has none of the known end tokens.
pub const SPHANA_LLM_EOS_SOURCE_NONE: i32 = 0;

/// Writes where the EOS set (`sphana_llm_eos_ids`) came from to `*out_source`: one of
/// `SPHANA_LLM_EOS_SOURCE_*`. When `path_buf` is non-NULL it also receives the file's path
/// (NUL-terminated UTF-8; "" for the load option, the vocabulary or none) and `*out_len` its
/// length without the NUL; a `capacity` too small returns `SPHANA_LLM_ERR_BUFFER_TOO_SMALL`
/// with `*out_len` (and `*out_source`) set. `path_buf` NULL with capacity 0: only the source,
/// and the path's length in `*out_len` when `out_len` is non-NULL. Thread-safe; errors:
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL `out_source`, forged handle, `path_buf` without
/// `out_len`, NULL `path_buf` with a capacity).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_eos_source(
    model: *const SphanaLlmModel,
    out_source: *mut i32,
    path_buf: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    use crate::tokenizer::eos::EosSource;
    guard(|| {
        non_null(out_source, "out_source")?;
        let source_only = path_buf.is_null() && capacity == 0;
        if !source_only {
            check_buffer(path_buf, capacity, out_len, "path_buf", "out_len")?;
        }
        let model = model_arg(model)?;
        let source = model.tokenizer().eos_source();
        let (kind, path) = match source {
            EosSource::LoadOption => (SPHANA_LLM_EOS_SOURCE_LOAD_OPTION, None),
            EosSource::GenerationConfig(p) => (SPHANA_LLM_EOS_SOURCE_GENERATION_CONFIG, Some(p)),
            EosSource::ModelConfig(p) => (SPHANA_LLM_EOS_SOURCE_CONFIG, Some(p)),
            EosSource::TokenizerConfig(p) => (SPHANA_LLM_EOS_SOURCE_TOKENIZER_CONFIG, Some(p)),
            EosSource::TokenizerFile(p) => (SPHANA_LLM_EOS_SOURCE_TOKENIZER_FILE, Some(p)),
            EosSource::Vocabulary => (SPHANA_LLM_EOS_SOURCE_VOCABULARY, None),
            EosSource::None => (SPHANA_LLM_EOS_SOURCE_NONE, None),
        };
        let path = path
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_source, kind) };
        if source_only {
            if !out_len.is_null() {
                // SAFETY: non-NULL, caller-provided.
                unsafe { write_out(out_len, path.len()) };
            }
            return Ok(());
        }
        // SAFETY: buffer checked above.
        unsafe { fill_text(&path, path_buf, capacity, out_len) }
    })
}

/// Writes the beginning-of-sequence id to `*out_id`, or -1 when the tokenizer has none.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_bos_id(model: *const SphanaLlmModel, out_id: *mut i32) -> i32 {
    guard(|| {
        non_null(out_id, "out_id")?;
        let model = model_arg(model)?;
        let id = model.tokenizer().bos_id().map_or(-1, |id| id as i32);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_id, id) };
        Ok(())
    })
}

/// Copies the end-of-sequence ids (generation stops on any of them) into `out_ids`.
///
/// The set comes from, the first that names one: the `eos_token_ids` load option; the model
/// directory's `generation_config.json`, then its `config.json` (these win over a tokenizer
/// given with `tokenizer_path`); the tokenizer directory's `generation_config.json`,
/// `config.json`, `tokenizer_config.json` `eos_token`; the tokenizer file's own end piece
/// (SentencePiece `</s>`); else the vocabulary's special end-of-turn / end-of-text tokens
/// (Llama 3 `<|end_of_text|>` `<|eom_id|>` `<|eot_id|>`, ChatML `<|im_end|>` `<|endoftext|>`,
/// Gemma `<end_of_turn>` `<eos>`, `</s>`, Phi `<|end|>`, ...). `sphana_llm_eos_source` says
/// which. E.g. Llama 3.2 Instruct: 128001, 128008, 128009. It may be empty. `*out_count`
/// receives the number of ids; with
/// `capacity` too small the call returns `SPHANA_LLM_ERR_BUFFER_TOO_SMALL` and writes only
/// `*out_count` (pass NULL and 0 to ask for the count).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_eos_ids(
    model: *const SphanaLlmModel,
    out_ids: *mut i32,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    guard(|| {
        check_buffer(out_ids, capacity, out_count, "out_ids", "out_count")?;
        let model = model_arg(model)?;
        let ids: Vec<i32> = model
            .tokenizer()
            .eos_ids()
            .iter()
            .map(|&id| id as i32)
            .collect();
        // SAFETY: buffer checked above.
        unsafe { fill_buffer(&ids, out_ids, capacity, out_count) }
    })
}
