//! The C-ABI client the tests and the fuzz targets share: calling the entry points the way
//! a C host does (size queries, caller buffers, stream decoders, generation with a
//! callback), and the checks every call must pass (a documented status, a message on
//! failure, NUL-terminated UTF-8 out). Only `std` and `sphana_llm::ffi`: it knows nothing of
//! where the test assets are. Include with `#[path = "support/capi.rs"] mod capi;` (the fuzz
//! crate includes it from `fuzz/src/lib.rs`).
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr::{null, null_mut};

use sphana_llm::ffi::*;

/// Every status a call may return except `SPHANA_LLM_ERR_INTERNAL` (which is always a bug).
pub const ALL_STATUSES: [i32; 13] = [
    SPHANA_LLM_OK,
    SPHANA_LLM_ERR_INVALID_ARGUMENT,
    SPHANA_LLM_ERR_INVALID_UTF8,
    SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
    SPHANA_LLM_ERR_IO,
    SPHANA_LLM_ERR_INVALID_MODEL,
    SPHANA_LLM_ERR_INVALID_TOKEN_ID,
    SPHANA_LLM_ERR_NOT_FOUND,
    SPHANA_LLM_ERR_UNSUPPORTED,
    SPHANA_LLM_ERR_LIMIT_EXCEEDED,
    SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
    SPHANA_LLM_ERR_RUNTIME,
    SPHANA_LLM_ERR_KV_MEMORY,
];

/// This thread's last error message.
pub fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(sphana_llm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A NUL-terminated copy of a (UTF-8) path.
pub fn cpath(path: &Path) -> CString {
    CString::new(path.to_str().expect("UTF-8 path")).unwrap()
}

/// A NUL-terminated copy of arbitrary bytes with interior NULs dropped.
pub fn c_string(bytes: &[u8]) -> CString {
    CString::new(
        bytes
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .collect::<Vec<u8>>(),
    )
    .unwrap()
}

/// A model handle that may cross threads (the C API documents handles as thread-safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle(pub *mut SphanaLlmModel);
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

/// `sphana_llm_load(path, options)`: the handle, or the status and message.
pub fn try_load_with(
    path: &Path,
    options: Option<&SphanaLlmLoadOptions>,
) -> Result<Handle, (i32, String)> {
    let c = cpath(path);
    let mut model = null_mut();
    let options = options.map_or(null(), |o| o as *const SphanaLlmLoadOptions);
    match unsafe { sphana_llm_load(c.as_ptr(), options, &mut model) } {
        SPHANA_LLM_OK => Ok(Handle(model)),
        status => Err((status, last_error())),
    }
}

/// A call's status must be one of `allowed` (INTERNAL never is), and a failure must leave
/// a message. Returns the status.
#[track_caller]
pub fn check(status: i32, allowed: &[i32], what: &str) -> i32 {
    assert!(
        allowed.contains(&status),
        "{what}: status {status} not among {allowed:?}: {}",
        last_error()
    );
    if status != SPHANA_LLM_OK {
        assert!(
            !last_error().is_empty(),
            "{what}: status {status} without a message"
        );
    }
    status
}

/// `len` bytes at `buf` followed by a NUL, valid UTF-8: what every text output must be.
#[track_caller]
pub fn check_text(buf: &[u8], len: usize, what: &str) -> String {
    assert!(
        len < buf.len(),
        "{what}: length {len} with capacity {}",
        buf.len()
    );
    assert_eq!(buf[len], 0, "{what}: no NUL after the text");
    String::from_utf8(buf[..len].to_vec())
        .unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
}

/// Reads a malloc'd library string and frees it.
///
/// # Safety
/// `ptr` is NULL or a string returned by the library.
pub unsafe fn take_string(ptr: *mut c_char, what: &str) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .unwrap_or_else(|e| panic!("{what}: output is not UTF-8: {e}"))
        .to_owned();
    unsafe { sphana_llm_string_free(ptr) };
    Some(text)
}

/// Tokenizes into an exact-size buffer: a size query (capacity 0), then the fill, which
/// must succeed with the same count (the handle must stay valid meanwhile). `Err(status)`
/// when the query fails.
pub fn tokenize(model: Handle, text: &[u8], flags: u32) -> Result<Vec<i32>, i32> {
    tokenize_sized(model, text, flags, true)
}

/// [`tokenize`] for a handle that another thread may free meanwhile: a failing fill is
/// returned as `Err(status)` too.
pub fn try_tokenize(model: Handle, text: &[u8], flags: u32) -> Result<Vec<i32>, i32> {
    tokenize_sized(model, text, flags, false)
}

fn tokenize_sized(model: Handle, text: &[u8], flags: u32, strict: bool) -> Result<Vec<i32>, i32> {
    let mut n = 0usize;
    let status = unsafe {
        sphana_llm_tokenize(
            model.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            null_mut(),
            0,
            &mut n,
        )
    };
    if status != SPHANA_LLM_OK && status != SPHANA_LLM_ERR_BUFFER_TOO_SMALL {
        return Err(status);
    }
    let mut ids = vec![0i32; n];
    let mut m = 0usize;
    let status = unsafe {
        sphana_llm_tokenize(
            model.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            if n == 0 { null_mut() } else { ids.as_mut_ptr() },
            n,
            &mut m,
        )
    };
    if !strict && status != SPHANA_LLM_OK {
        return Err(status);
    }
    assert_eq!(
        status,
        SPHANA_LLM_OK,
        "tokenize after its size query: {}",
        last_error()
    );
    assert_eq!(m, n, "tokenize count changed between size query and fill");
    Ok(ids)
}

/// Tokenizes in one call into a buffer of `capacity` ids (no size query, so a success
/// leaves the thread's message alone). `Err(status)` on failure.
pub fn tokenize_into(
    model: Handle,
    text: &[u8],
    flags: u32,
    capacity: usize,
) -> Result<Vec<i32>, i32> {
    let mut ids = vec![0i32; capacity];
    let mut n = 0usize;
    let status = unsafe {
        sphana_llm_tokenize(
            model.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            ids.as_mut_ptr(),
            capacity,
            &mut n,
        )
    };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    ids.truncate(n);
    Ok(ids)
}

/// Ids and their `[start, end)` byte spans.
pub type IdsAndSpans = (Vec<i32>, Vec<(usize, usize)>);

/// `sphana_llm_tokenize_with_offsets` into buffers of `text.len() + 4` entries.
pub fn tokenize_with_offsets(model: Handle, text: &[u8], flags: u32) -> Result<IdsAndSpans, i32> {
    let cap = text.len() + 4;
    let mut ids = vec![0i32; cap];
    let mut spans = vec![SphanaLlmTokenSpan::default(); cap];
    let mut n = 0usize;
    let status = unsafe {
        sphana_llm_tokenize_with_offsets(
            model.0,
            text.as_ptr().cast(),
            text.len(),
            flags,
            ids.as_mut_ptr(),
            spans.as_mut_ptr(),
            cap,
            &mut n,
        )
    };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    ids.truncate(n);
    Ok((ids, spans[..n].iter().map(|s| (s.start, s.end)).collect()))
}

/// `sphana_llm_tokenize_batch`: each text's ids; the batch is freed.
pub fn tokenize_batch(model: Handle, texts: &[&[u8]], flags: u32) -> Result<Vec<Vec<i32>>, i32> {
    let ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr().cast()).collect();
    let lens: Vec<usize> = texts.iter().map(|t| t.len()).collect();
    let mut batch = SphanaLlmTokenBatch {
        ids: null_mut(),
        starts: null_mut(),
        text_count: 0,
    };
    let status = unsafe {
        sphana_llm_tokenize_batch(
            model.0,
            ptrs.as_ptr(),
            lens.as_ptr(),
            texts.len(),
            flags,
            &mut batch,
        )
    };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    let starts = unsafe { std::slice::from_raw_parts(batch.starts, batch.text_count + 1) };
    let all = unsafe { std::slice::from_raw_parts(batch.ids, starts[batch.text_count]) };
    let out = starts
        .windows(2)
        .map(|w| all[w[0]..w[1]].to_vec())
        .collect();
    unsafe { sphana_llm_token_batch_free(&mut batch) };
    Ok(out)
}

/// Decodes into an exact-size buffer: a size query (capacity 0 is always too small: the
/// NUL needs room), then the fill, which must succeed with the same length and give
/// NUL-terminated UTF-8. `Err(status)` when the query fails otherwise.
pub fn decode(model: Handle, ids: &[i32], flags: u32) -> Result<String, i32> {
    let mut len = 0usize;
    let status = unsafe {
        sphana_llm_decode(
            model.0,
            ids.as_ptr(),
            ids.len(),
            flags,
            null_mut(),
            0,
            &mut len,
        )
    };
    if status != SPHANA_LLM_ERR_BUFFER_TOO_SMALL {
        assert_ne!(status, SPHANA_LLM_OK, "decode into capacity 0 succeeded");
        return Err(status);
    }
    let mut buf = vec![0xa5u8; len + 1];
    let mut len2 = 0usize;
    let status = unsafe {
        sphana_llm_decode(
            model.0,
            ids.as_ptr(),
            ids.len(),
            flags,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len2,
        )
    };
    assert_eq!(
        status,
        SPHANA_LLM_OK,
        "decode after its size query: {}",
        last_error()
    );
    assert_eq!(
        len2, len,
        "decode length changed between size query and fill"
    );
    Ok(check_text(&buf, len, "decode"))
}

/// Decodes in one call into a buffer of `capacity` bytes (no size query). The bytes, without
/// the NUL; `Err(status)` on failure.
pub fn decode_into(
    model: Handle,
    ids: &[i32],
    flags: u32,
    capacity: usize,
) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; capacity];
    let mut len = 0usize;
    let status = unsafe {
        sphana_llm_decode(
            model.0,
            ids.as_ptr(),
            ids.len(),
            flags,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len,
        )
    };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    buf.truncate(len);
    Ok(buf)
}

/// Streams `ids` one at a time through a stream decoder, then flushes: the text. Every
/// piece must be complete UTF-8 (a broken one fails the test). `Err(status)` when a call
/// fails; the decoder is freed either way.
pub fn stream(model: Handle, ids: &[i32], flags: u32) -> Result<String, i32> {
    let mut decoder = null_mut();
    let status = unsafe { sphana_llm_stream_decoder_new(model.0, flags, &mut decoder) };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    let mut text = String::new();
    let mut result = Ok(());
    for id in ids.iter().map(|&id| Some(id)).chain([None]) {
        let mut out = [0u8; 512];
        let mut len = 0usize;
        let status = unsafe {
            match id {
                Some(id) => sphana_llm_stream_decoder_push(
                    decoder,
                    id,
                    out.as_mut_ptr().cast(),
                    out.len(),
                    &mut len,
                ),
                None => sphana_llm_stream_decoder_flush(
                    decoder,
                    out.as_mut_ptr().cast(),
                    out.len(),
                    &mut len,
                ),
            }
        };
        if status != SPHANA_LLM_OK {
            result = Err(status);
            break;
        }
        text.push_str(&check_text(&out, len, "stream decoder piece"));
    }
    sphana_llm_stream_decoder_free(decoder);
    result.map(|()| text)
}

/// The vocabulary size of a handle.
pub fn vocab_size(model: Handle) -> usize {
    let mut n = 0usize;
    assert_eq!(
        unsafe { sphana_llm_vocab_size(model.0, &mut n) },
        SPHANA_LLM_OK
    );
    n
}

/// What one generation returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub status: i32,
    pub text: Option<String>,
    pub ids: Vec<i32>,
    pub finish: i32,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// The chunks the callback received.
    pub chunks: Vec<String>,
}

/// The prompt of a generation call.
#[derive(Clone, Copy)]
pub enum Prompt<'a> {
    Text(&'a [u8]),
    Ids(&'a [i32]),
    Chat(&'a [SphanaLlmChatMessage]),
}

struct CallbackState {
    chunks: Vec<String>,
    /// Return non-zero once this many chunks were received.
    stop_after: usize,
}

unsafe extern "C" fn collect(text: *const c_char, len: usize, user: *mut std::ffi::c_void) -> i32 {
    let state = unsafe { &mut *user.cast::<CallbackState>() };
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    state
        .chunks
        .push(String::from_utf8(bytes.to_vec()).expect("callback chunk is UTF-8"));
    i32::from(state.chunks.len() >= state.stop_after)
}

/// Decode steps that ran batched with other generations, over every `generate` of this
/// process (`SphanaLlmGenerateStats.batched_steps`).
pub static BATCHED_STEPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Generates with `params` (NULL when `None`), collecting the text, ids (up to 512),
/// stats and callback chunks (`stop_after`: the callback asks to stop after that many).
pub fn generate(
    model: Handle,
    prompt: Prompt<'_>,
    params: Option<&mut SphanaLlmGenerateParams>,
    stop_after: usize,
) -> Generated {
    let mut ids = vec![0i32; 512];
    let params_ptr: *const SphanaLlmGenerateParams = match params {
        Some(p) => {
            if p.out_token_ids.is_null() && p.out_token_ids_capacity == 0 {
                p.out_token_ids = ids.as_mut_ptr();
                p.out_token_ids_capacity = ids.len();
            }
            p
        }
        None => std::ptr::null(),
    };
    let mut state = CallbackState {
        chunks: Vec::new(),
        stop_after,
    };
    let user = (&mut state as *mut CallbackState).cast();
    let mut out: *mut c_char = std::ptr::null_mut();
    let mut stats = SphanaLlmGenerateStats {
        struct_size: std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
        finish_reason: -1,
        ..Default::default()
    };
    let status = unsafe {
        match prompt {
            Prompt::Text(t) => sphana_llm_generate(
                model.0,
                t.as_ptr().cast(),
                t.len(),
                params_ptr,
                Some(collect),
                user,
                &mut out,
                &mut stats,
            ),
            Prompt::Ids(i) => sphana_llm_generate_from_ids(
                model.0,
                i.as_ptr(),
                i.len(),
                params_ptr,
                Some(collect),
                user,
                &mut out,
                &mut stats,
            ),
            Prompt::Chat(m) => sphana_llm_generate_chat(
                model.0,
                m.as_ptr(),
                m.len(),
                params_ptr,
                Some(collect),
                user,
                &mut out,
                &mut stats,
            ),
        }
    };
    let text = if out.is_null() {
        None
    } else {
        // The text may hold NUL bytes (a generated U+0000): read `text_len` bytes.
        let strlen = unsafe { CStr::from_ptr(out) }.to_bytes().len();
        assert!(
            stats.text_len >= strlen,
            "text_len {} < strlen {strlen}",
            stats.text_len
        );
        let bytes = unsafe { std::slice::from_raw_parts(out.cast::<u8>(), stats.text_len + 1) };
        assert_eq!(bytes[stats.text_len], 0, "no NUL after text_len bytes");
        let t = std::str::from_utf8(&bytes[..stats.text_len])
            .expect("generated text is UTF-8")
            .to_owned();
        unsafe { sphana_llm_string_free(out) };
        Some(t)
    };
    let n = if status == SPHANA_LLM_OK {
        stats.generated_tokens.min(ids.len())
    } else {
        0
    };
    ids.truncate(n);
    if status == SPHANA_LLM_OK {
        BATCHED_STEPS.fetch_add(stats.batched_steps, std::sync::atomic::Ordering::Relaxed);
    }
    Generated {
        status,
        text,
        ids,
        finish: stats.finish_reason,
        prompt_tokens: stats.prompt_tokens,
        generated_tokens: stats.generated_tokens,
        chunks: state.chunks,
    }
}

/// Greedy parameters for `n` tokens, ignoring EOS.
pub fn greedy(n: u32) -> SphanaLlmGenerateParams {
    let mut p = sphana_llm_generate_params_default();
    p.max_new_tokens = n;
    p.ignore_eos = 1;
    p
}

/// A chat message borrowing `role` and `content`.
pub fn message(role: &'static str, content: &[u8]) -> SphanaLlmChatMessage {
    SphanaLlmChatMessage {
        role: role.as_ptr().cast(),
        role_len: role.len(),
        content: content.as_ptr().cast(),
        content_len: content.len(),
    }
}
