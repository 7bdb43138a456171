//! Tokenizing, decoding, streaming decoding and token lookups.

use std::ffi::c_char;
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use super::common::*;
use super::model::{model_arg, SphanaLlmModel};
use crate::error::{Error, Result};
use crate::tokenizer::stream::StreamDecoder;
use crate::tokenizer::EncodeOptions;

/// Tokenize flag: add BOS/EOS etc. as the tokenizer's configuration says
/// (the `tokenizer.json` post-processor, or `add_bos_token`/`add_eos_token`).
pub const SPHANA_LLM_TOKENIZE_ADD_SPECIAL: u32 = 1u32;
/// Tokenize flag: recognise special-token text such as "<|eot_id|>" in the input and
/// emit the special id. Without it such text is tokenized as ordinary text, which is how
/// retrieved documents and user input are kept from injecting control tokens.
pub const SPHANA_LLM_TOKENIZE_PARSE_SPECIAL: u32 = 2u32;
/// Decode flag: leave special tokens (BOS, EOS, chat markers) out of the text.
pub const SPHANA_LLM_DECODE_SKIP_SPECIAL: u32 = 1u32;

/// The byte range `[start, end)` of one token in the tokenized text.
/// Tokens added by `SPHANA_LLM_TOKENIZE_ADD_SPECIAL` have an empty range.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct SphanaLlmTokenSpan {
    /// Byte offset of the token's first byte.
    pub start: usize,
    /// Byte offset one past the token's last byte.
    pub end: usize,
}

/// The result of `sphana_llm_tokenize_batch`: the ids of text `i` are
/// `ids[starts[i]] .. ids[starts[i + 1] - 1]`. The arrays are owned by the library; release
/// them with `sphana_llm_token_batch_free`.
#[repr(C)]
pub struct SphanaLlmTokenBatch {
    /// All ids, text after text.
    pub ids: *mut i32,
    /// `text_count + 1` start positions into `ids`; `starts[text_count]` is the total.
    pub starts: *mut usize,
    /// Number of texts.
    pub text_count: usize,
}

/// An opaque streaming decoder: turns ids, one at a time, into complete UTF-8 text.
pub struct SphanaLlmStreamDecoder {
    _opaque: [u8; 0],
}

fn encode_options(flags: u32) -> Result<EncodeOptions> {
    let known = SPHANA_LLM_TOKENIZE_ADD_SPECIAL | SPHANA_LLM_TOKENIZE_PARSE_SPECIAL;
    if flags & !known != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown tokenize flags {:#x}",
            flags & !known
        )));
    }
    Ok(EncodeOptions {
        add_special: flags & SPHANA_LLM_TOKENIZE_ADD_SPECIAL != 0,
        parse_special: flags & SPHANA_LLM_TOKENIZE_PARSE_SPECIAL != 0,
    })
}

fn skip_special(flags: u32) -> Result<bool> {
    if flags & !SPHANA_LLM_DECODE_SKIP_SPECIAL != 0 {
        return Err(Error::InvalidArgument(format!(
            "unknown decode flags {flags:#x}"
        )));
    }
    Ok(flags & SPHANA_LLM_DECODE_SKIP_SPECIAL != 0)
}

fn to_c_ids(ids: &[u32]) -> Vec<i32> {
    ids.iter().map(|&id| id as i32).collect()
}

/// Reads caller ids, rejecting negative ones.
///
/// # Safety
/// `ids` must be valid for `count` reads (or NULL with count 0).
pub(crate) unsafe fn ids_arg(ids: *const i32, count: usize, vocab_size: usize) -> Result<Vec<u32>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    non_null(ids, "ids")?;
    // SAFETY: caller contract.
    let slice = unsafe { std::slice::from_raw_parts(ids, count) };
    slice
        .iter()
        .map(|&id| {
            u32::try_from(id).map_err(|_| Error::InvalidTokenId {
                id: id.into(),
                vocab_size,
            })
        })
        .collect()
}

/// Tokenizes UTF-8 text into ids.
///
/// `text`: `text_len` bytes of UTF-8, not NUL-terminated; may be NULL when `text_len` is 0.
/// `flags`: `SPHANA_LLM_TOKENIZE_ADD_SPECIAL` and/or `SPHANA_LLM_TOKENIZE_PARSE_SPECIAL`.
/// `out_ids`: room for `capacity` ids; may be NULL when `capacity` is 0.
/// `out_count`: receives the number of ids — also when the buffer is too small.
///
/// Ask for the size, then fill:
/// ```c
/// size_t n = 0;
/// sphana_llm_tokenize(m, text, len, flags, NULL, 0, &n);   // SPHANA_LLM_ERR_BUFFER_TOO_SMALL unless n == 0
/// int32_t *ids = malloc(n * sizeof *ids);
/// sphana_llm_tokenize(m, text, len, flags, ids, n, &n);    // SPHANA_LLM_OK
/// ```
/// Returns `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_BUFFER_TOO_SMALL` (nothing but `*out_count` written);
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT` (bad handle, NULL pointers, unknown flags);
/// `SPHANA_LLM_ERR_INVALID_UTF8`; `SPHANA_LLM_ERR_LIMIT_EXCEEDED` (text over max_input_bytes).
/// Thread-safe; many threads may tokenize on one handle at once.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_tokenize(
    model: *const SphanaLlmModel,
    text: *const c_char,
    text_len: usize,
    flags: u32,
    out_ids: *mut i32,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    guard(|| {
        check_buffer(out_ids, capacity, out_count, "out_ids", "out_count")?;
        let options = encode_options(flags)?;
        let model = model_arg(model)?;
        model.check_input_len(text_len)?;
        // SAFETY: caller contract for text.
        let text = unsafe { utf8_arg(text, text_len, "text") }?;
        let ids = to_c_ids(&model.tokenize(text, options)?);
        // SAFETY: buffer checked above.
        unsafe { fill_buffer(&ids, out_ids, capacity, out_count) }
    })
}

/// Like `sphana_llm_tokenize`, and also writes each token's byte range in `text` to
/// `out_spans` (same capacity as `out_ids`; both NULL when capacity is 0). Byte-level
/// tokens that hold part of a multi-byte character report the whole character's range.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_tokenize_with_offsets(
    model: *const SphanaLlmModel,
    text: *const c_char,
    text_len: usize,
    flags: u32,
    out_ids: *mut i32,
    out_spans: *mut SphanaLlmTokenSpan,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    guard(|| {
        check_buffer(out_ids, capacity, out_count, "out_ids", "out_count")?;
        check_buffer(out_spans, capacity, out_count, "out_spans", "out_count")?;
        let options = encode_options(flags)?;
        let model = model_arg(model)?;
        model.check_input_len(text_len)?;
        // SAFETY: caller contract for text.
        let text = unsafe { utf8_arg(text, text_len, "text") }?;
        let encoding = model.tokenize_with_offsets(text, options)?;
        let ids = to_c_ids(&encoding.ids);
        let spans: Vec<SphanaLlmTokenSpan> = encoding
            .offsets
            .iter()
            .map(|&(start, end)| SphanaLlmTokenSpan { start, end })
            .collect();
        // SAFETY: buffers checked above.
        unsafe {
            fill_buffer(&ids, out_ids, capacity, out_count)?;
            fill_buffer(&spans, out_spans, capacity, out_count)
        }
    })
}

/// Tokenizes `text_count` texts in parallel (one worker per core) with the same flags.
///
/// `texts[i]` holds `text_lens[i]` bytes of UTF-8 (NULL allowed for length 0).
/// On success `*out_batch` is filled with library-owned arrays (see `SphanaLlmTokenBatch`);
/// free them with `sphana_llm_token_batch_free`. On failure `*out_batch` is zeroed and the
/// message names the first failing text. Errors as `sphana_llm_tokenize`, plus
/// `SPHANA_LLM_ERR_LIMIT_EXCEEDED` when `text_count` is over max_batch_texts.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_tokenize_batch(
    model: *const SphanaLlmModel,
    texts: *const *const c_char,
    text_lens: *const usize,
    text_count: usize,
    flags: u32,
    out_batch: *mut SphanaLlmTokenBatch,
) -> i32 {
    guard(|| {
        non_null(out_batch, "out_batch")?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(
                out_batch,
                SphanaLlmTokenBatch {
                    ids: std::ptr::null_mut(),
                    starts: std::ptr::null_mut(),
                    text_count: 0,
                },
            )
        };
        let options = encode_options(flags)?;
        let model = model_arg(model)?;
        if text_count > model.options().max_batch_texts {
            return Err(Error::LimitExceeded(format!(
                "batch of {text_count} texts is larger than max_batch_texts ({})",
                model.options().max_batch_texts
            )));
        }
        let strs: Vec<&str> = if text_count == 0 {
            Vec::new()
        } else {
            non_null(texts, "texts")?;
            non_null(text_lens, "text_lens")?;
            // SAFETY: caller contract: `text_count` entries in each array.
            let (ptrs, lens) = unsafe {
                (
                    std::slice::from_raw_parts(texts, text_count),
                    std::slice::from_raw_parts(text_lens, text_count),
                )
            };
            ptrs.iter()
                .zip(lens)
                .enumerate()
                .map(|(i, (&ptr, &len))| {
                    model.check_input_len(len)?;
                    // SAFETY: caller contract for each text.
                    unsafe { utf8_arg(ptr, len, &format!("texts[{i}]")) }
                })
                .collect::<Result<_>>()?
        };
        let encoded = model.tokenize_batch(&strs, options)?;
        let mut starts = Vec::with_capacity(encoded.len() + 1);
        let mut all = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
        starts.push(0usize);
        for ids in &encoded {
            all.extend(ids.iter().map(|&id| id as i32));
            starts.push(all.len());
        }
        let ids_ptr = malloc_array(&all)?;
        let starts_ptr = match malloc_array(&starts) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: allocated just above with malloc.
                unsafe { libc::free(ids_ptr.cast()) };
                return Err(e);
            }
        };
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(
                out_batch,
                SphanaLlmTokenBatch {
                    ids: ids_ptr,
                    starts: starts_ptr,
                    text_count: encoded.len(),
                },
            )
        };
        Ok(())
    })
}

/// Frees the arrays of a batch result and zeroes it. NULL, or an already-freed (zeroed)
/// batch, is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_token_batch_free(batch: *mut SphanaLlmTokenBatch) {
    if batch.is_null() {
        return;
    }
    // SAFETY: caller passes a batch filled by sphana_llm_tokenize_batch (or zeroed).
    unsafe {
        let b = &mut *batch;
        libc::free(b.ids.cast());
        libc::free(b.starts.cast());
        b.ids = std::ptr::null_mut();
        b.starts = std::ptr::null_mut();
        b.text_count = 0;
    }
}

/// Decodes ids to UTF-8 text.
///
/// `ids`: `count` ids (NULL allowed when `count` is 0). `flags`: 0 or
/// `SPHANA_LLM_DECODE_SKIP_SPECIAL`. `out_text`: room for `capacity` bytes; on success the
/// text and a terminating NUL are written. `*out_len` receives the text length in bytes
/// without the NUL — also when the buffer is too small, so the needed capacity is
/// `*out_len + 1`.
///
/// Returns `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_BUFFER_TOO_SMALL`; `SPHANA_LLM_ERR_INVALID_TOKEN_ID`
/// (an id is negative or not below the vocabulary size; nothing written);
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_decode(
    model: *const SphanaLlmModel,
    ids: *const i32,
    count: usize,
    flags: u32,
    out_text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        check_buffer(out_text, capacity, out_len, "out_text", "out_len")?;
        let skip = skip_special(flags)?;
        let model = model_arg(model)?;
        // SAFETY: caller contract for ids.
        let ids = unsafe { ids_arg(ids, count, model.tokenizer().vocab_size()) }?;
        let text = model.tokenizer().decode(&ids, skip)?;
        // SAFETY: buffer checked above.
        unsafe { fill_text(&text, out_text, capacity, out_len) }
    })
}

/// Looks up the id of a token string as stored in the vocabulary (e.g. "<|eot_id|>",
/// "Ġthe", "▁the"). `token` is `token_len` bytes of UTF-8.
/// Returns `SPHANA_LLM_OK`, `SPHANA_LLM_ERR_NOT_FOUND`, `SPHANA_LLM_ERR_INVALID_UTF8` or
/// `SPHANA_LLM_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_token_to_id(
    model: *const SphanaLlmModel,
    token: *const c_char,
    token_len: usize,
    out_id: *mut i32,
) -> i32 {
    guard(|| {
        non_null(out_id, "out_id")?;
        let model = model_arg(model)?;
        // SAFETY: caller contract.
        let token = unsafe { utf8_arg(token, token_len, "token") }?;
        let id = model
            .tokenizer()
            .token_to_id(token)
            .ok_or_else(|| Error::NotFound(format!("token {token:?} is not in the vocabulary")))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_id, id as i32) };
        Ok(())
    })
}

/// Writes the vocabulary string of `id` (NUL-terminated) into `out_token`; `*out_len` gets
/// its length without the NUL, also when the buffer is too small.
/// Returns `SPHANA_LLM_OK`, `SPHANA_LLM_ERR_BUFFER_TOO_SMALL`, `SPHANA_LLM_ERR_INVALID_TOKEN_ID`
/// or `SPHANA_LLM_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_id_to_token(
    model: *const SphanaLlmModel,
    id: i32,
    out_token: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        check_buffer(out_token, capacity, out_len, "out_token", "out_len")?;
        let model = model_arg(model)?;
        let tokenizer = model.tokenizer();
        let invalid = || Error::InvalidTokenId {
            id: id.into(),
            vocab_size: tokenizer.vocab_size(),
        };
        let id = u32::try_from(id).map_err(|_| invalid())?;
        let token = tokenizer.id_to_token(id).ok_or_else(invalid)?;
        // SAFETY: buffer checked above.
        unsafe { fill_text(&token, out_token, capacity, out_len) }
    })
}

/// Writes 1 to `*out_is_special` when `id` is a special (control) token, else 0.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_is_special(
    model: *const SphanaLlmModel,
    id: i32,
    out_is_special: *mut i32,
) -> i32 {
    guard(|| {
        non_null(out_is_special, "out_is_special")?;
        let model = model_arg(model)?;
        let tokenizer = model.tokenizer();
        let id = u32::try_from(id).map_err(|_| Error::InvalidTokenId {
            id: id.into(),
            vocab_size: tokenizer.vocab_size(),
        })?;
        tokenizer.check_ids(&[id])?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_is_special, i32::from(tokenizer.is_special(id))) };
        Ok(())
    })
}

static DECODERS: Lazy<Registry<Mutex<StreamDecoder>>> =
    Lazy::new(|| Registry::new("stream decoder"));

/// Creates a streaming decoder for one sequence on `model`. `flags`: 0 or
/// `SPHANA_LLM_DECODE_SKIP_SPECIAL`. Free it with `sphana_llm_stream_decoder_free`.
/// The decoder keeps the model alive. A decoder serves one sequence at a time: calls on
/// one decoder are serialized internally, but interleaving two sequences gives wrong text.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_stream_decoder_new(
    model: *const SphanaLlmModel,
    flags: u32,
    out_decoder: *mut *mut SphanaLlmStreamDecoder,
) -> i32 {
    guard(|| {
        non_null(out_decoder, "out_decoder")?;
        let skip = skip_special(flags)?;
        let model = model_arg(model)?;
        let decoder = StreamDecoder::new(Arc::clone(model.tokenizer()), skip);
        let handle = DECODERS.insert(Mutex::new(decoder));
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_decoder, handle as *mut SphanaLlmStreamDecoder) };
        Ok(())
    })
}

fn stream_step(
    decoder: *mut SphanaLlmStreamDecoder,
    out_text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
    step: impl FnOnce(&mut StreamDecoder) -> Result<String>,
) -> i32 {
    guard(|| {
        check_buffer(out_text, capacity, out_len, "out_text", "out_len")?;
        let decoder = DECODERS.get(decoder as usize)?;
        let mut state = decoder.lock().unwrap_or_else(|p| p.into_inner());
        fail_point("stream_push");
        // Advance a copy, so a too-small buffer or a bad id leaves the decoder unchanged.
        let mut next = state.clone();
        let text = step(&mut next)?;
        // SAFETY: buffer checked above.
        unsafe { fill_text(&text, out_text, capacity, out_len) }?;
        *state = next;
        Ok(())
    })
}

/// Feeds one id; writes the text that became complete (often empty, never a partial
/// UTF-8 character) plus a NUL into `out_text`, and its length to `*out_len`.
/// One id rarely yields more than a few dozen bytes, but some vocabularies have tokens of
/// 128 bytes and more (runs of spaces): on `SPHANA_LLM_ERR_BUFFER_TOO_SMALL` the decoder is
/// unchanged and `*out_len + 1` bytes are needed, so retry the same id with a larger buffer.
/// On `SPHANA_LLM_ERR_INVALID_TOKEN_ID` the decoder is unchanged too.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_stream_decoder_push(
    decoder: *mut SphanaLlmStreamDecoder,
    id: i32,
    out_text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    stream_step(decoder, out_text, capacity, out_len, |d| {
        let id = u32::try_from(id).map_err(|_| Error::InvalidTokenId {
            id: id.into(),
            vocab_size: d.tokenizer().vocab_size(),
        })?;
        d.push(id)
    })
}

/// Writes whatever text is still held back (an incomplete character comes out as U+FFFD)
/// and resets the decoder for a new sequence.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_stream_decoder_flush(
    decoder: *mut SphanaLlmStreamDecoder,
    out_text: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    stream_step(decoder, out_text, capacity, out_len, StreamDecoder::flush)
}

/// Frees a streaming decoder. NULL is a no-op.
#[no_mangle]
pub extern "C" fn sphana_llm_stream_decoder_free(decoder: *mut SphanaLlmStreamDecoder) {
    guard_void(|| DECODERS.remove(decoder as usize));
}
