//! Status codes, the thread-local error message, argument checks and the handle registry.

pub(crate) use crate::fault::fail_point;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};

/// Version of the C ABI described by this header. Bumped on any incompatible change.
pub const SPHANA_LLM_ABI_VERSION: u32 = 1;

/// Success.
pub const SPHANA_LLM_OK: i32 = 0;
/// An argument is invalid: a NULL pointer where one is required, an unknown flag bit,
/// a freed or foreign handle, a bad struct_size, a value out of its documented range.
pub const SPHANA_LLM_ERR_INVALID_ARGUMENT: i32 = -1;
/// Text passed in is not valid UTF-8.
pub const SPHANA_LLM_ERR_INVALID_UTF8: i32 = -2;
/// The output buffer is too small; the count/length output holds the size needed.
pub const SPHANA_LLM_ERR_BUFFER_TOO_SMALL: i32 = -3;
/// A file or directory is missing or unreadable.
pub const SPHANA_LLM_ERR_IO: i32 = -4;
/// A file is not a valid tokenizer, model or configuration (corrupt, truncated, wrong kind).
pub const SPHANA_LLM_ERR_INVALID_MODEL: i32 = -5;
/// A token id is negative or not in the vocabulary.
pub const SPHANA_LLM_ERR_INVALID_TOKEN_ID: i32 = -6;
/// A looked-up token does not exist.
pub const SPHANA_LLM_ERR_NOT_FOUND: i32 = -7;
/// The loaded model cannot do this (e.g. generation on a tokenizer-only load).
pub const SPHANA_LLM_ERR_UNSUPPORTED: i32 = -8;
/// A resource limit from the load options would be exceeded.
pub const SPHANA_LLM_ERR_LIMIT_EXCEEDED: i32 = -9;
/// The prompt does not fit the model's context window.
pub const SPHANA_LLM_ERR_CONTEXT_OVERFLOW: i32 = -10;
/// ONNX Runtime is missing, too old, or failed while running the model.
pub const SPHANA_LLM_ERR_RUNTIME: i32 = -11;
/// A bug in sphana-llm (for example a caught panic). The process can go on.
pub const SPHANA_LLM_ERR_INTERNAL: i32 = -12;
/// A generation's KV cache does not fit the handle's budget (`max_kv_cache_bytes`): its
/// worst case exceeds the whole budget, or other generations kept the room for longer than
/// `kv_wait_ms`. Nothing was generated; the handle is unaffected.
pub const SPHANA_LLM_ERR_KV_MEMORY: i32 = -13;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let sanitized: Vec<u8> = message
        .bytes()
        .map(|b| if b == 0 { b'?' } else { b })
        .collect();
    let c = CString::new(sanitized).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Runs an entry point's body: maps errors to status codes, records the message, and
/// turns a panic into `SPHANA_LLM_ERR_INTERNAL`.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(|| {
        fail_point("entry");
        body()
    })) {
        Ok(Ok(())) => SPHANA_LLM_OK,
        Ok(Err(error)) => {
            set_last_error(&error.to_string());
            error.status() as i32
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let error = Error::Internal(format!("panic: {what}"));
            set_last_error(&error.to_string());
            error.status() as i32
        }
    }
}

/// Like [`guard`] for functions that cannot report a status (free functions).
pub(crate) fn guard_void(body: impl FnOnce() -> Result<()>) {
    let _ = guard(body);
}

/// The message of this thread's most recent failed call, or "" when none has failed.
///
/// The returned string is owned by the library, stays valid until the next failing
/// call on the same thread, and must not be freed. Successful calls do not clear it.
/// Thread-safe: every thread has its own message.
#[no_mangle]
pub extern "C" fn sphana_llm_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The library version, e.g. "0.1.0". Static storage; never free it.
#[no_mangle]
pub extern "C" fn sphana_llm_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// The ABI version of the loaded library; compare with `SPHANA_LLM_ABI_VERSION`.
#[no_mangle]
pub extern "C" fn sphana_llm_abi_version() -> u32 {
    SPHANA_LLM_ABI_VERSION
}

/// Frees a string the library returned (e.g. `out_text` of generation). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_string_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: every string handed out by this library is allocated with malloc.
        unsafe { libc::free(text.cast()) }
    }
}

/// Requires a non-NULL pointer argument.
pub(crate) fn non_null<T>(ptr: *const T, name: &str) -> Result<()> {
    if ptr.is_null() {
        Err(Error::InvalidArgument(format!("`{name}` is NULL")))
    } else {
        Ok(())
    }
}

/// Borrows `len` bytes at `ptr` as UTF-8 (NULL is allowed only when `len` is 0).
///
/// # Safety
/// `ptr` must point to `len` readable bytes that outlive the returned borrow.
pub(crate) unsafe fn utf8_arg<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str> {
    if len == 0 {
        return Ok("");
    }
    non_null(ptr, name)?;
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "`{name}` length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        what: name.to_owned(),
        valid_up_to: e.valid_up_to(),
    })
}

/// Borrows a NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that outlives the borrow.
pub(crate) unsafe fn cstr_arg<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str> {
    non_null(ptr, name)?;
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        what: name.to_owned(),
        valid_up_to: e.valid_up_to(),
    })
}

/// Like [`cstr_arg`] but NULL means "not given".
///
/// # Safety
/// As [`cstr_arg`].
pub(crate) unsafe fn optional_cstr_arg<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { cstr_arg(ptr, name) }.map(Some)
    }
}

/// Writes `value` through an out-pointer that was checked to be non-NULL.
///
/// # Safety
/// `ptr` must be valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: forwarded contract.
    unsafe { ptr.write(value) }
}

/// Copies `items` into a caller buffer of `capacity` elements, reporting the count.
/// With too little room, writes only `*out_count` (the count needed) and fails.
///
/// # Safety
/// `out` must be valid for `capacity` writes (or NULL with capacity 0); `out_count` non-NULL.
pub(crate) unsafe fn fill_buffer<T: Copy>(
    items: &[T],
    out: *mut T,
    capacity: usize,
    out_count: *mut usize,
) -> Result<()> {
    // SAFETY: checked non-NULL by the caller.
    unsafe { write_out(out_count, items.len()) };
    if items.len() > capacity {
        return Err(Error::BufferTooSmall {
            needed: items.len(),
            capacity,
        });
    }
    if !items.is_empty() {
        // SAFETY: room for `capacity >= items.len()` elements, checked non-NULL by the caller.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len()) };
    }
    Ok(())
}

/// Checks the (buffer, capacity, count) triple used by every "fill my buffer" call.
pub(crate) fn check_buffer<T>(
    out: *const T,
    capacity: usize,
    out_count: *const usize,
    name: &str,
    count_name: &str,
) -> Result<()> {
    non_null(out_count, count_name)?;
    if out.is_null() && capacity != 0 {
        return Err(Error::InvalidArgument(format!(
            "`{name}` is NULL but capacity is {capacity}"
        )));
    }
    Ok(())
}

/// Copies `text` plus a NUL into a caller buffer of `capacity` bytes; `*out_len` gets the
/// text length without the NUL (so `capacity` must be at least `*out_len + 1`).
///
/// # Safety
/// As [`fill_buffer`].
pub(crate) unsafe fn fill_text(
    text: &str,
    out: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> Result<()> {
    // SAFETY: checked non-NULL by the caller.
    unsafe { write_out(out_len, text.len()) };
    if text.len() >= capacity {
        return Err(Error::BufferTooSmall {
            needed: text.len() + 1,
            capacity,
        });
    }
    // SAFETY: room for text.len() + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), out.cast::<u8>(), text.len());
        out.add(text.len()).write(0);
    }
    Ok(())
}

/// Copies `text` into a new malloc'd NUL-terminated string (free with `sphana_llm_string_free`).
pub(crate) fn malloc_string(text: &str) -> Result<*mut c_char> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    malloc_array(&bytes).map(|p| p.cast::<c_char>())
}

/// Copies a slice into a new malloc'd array (free with `libc::free`).
pub(crate) fn malloc_array<T: Copy>(items: &[T]) -> Result<*mut T> {
    let bytes = std::mem::size_of_val(items).max(1);
    // SAFETY: malloc'd block of `bytes` bytes, NULL checked, `items.len()` elements fit.
    unsafe {
        let ptr = libc::malloc(bytes).cast::<T>();
        if ptr.is_null() {
            return Err(Error::LimitExceeded(format!(
                "cannot allocate {bytes} bytes"
            )));
        }
        std::ptr::copy_nonoverlapping(items.as_ptr(), ptr, items.len());
        Ok(ptr)
    }
}

/// Live handles of one kind. A handle is an opaque number (never a real address and
/// never reused), so a freed, forged or wrong-kind handle is detected, and a handle freed
/// while another thread is still using it stays alive until that call returns.
pub(crate) struct Registry<T> {
    kind: &'static str,
    live: RwLock<HashMap<usize, Arc<T>>>,
}

/// Handle numbers are shared by all registries, so a handle of one kind is never a valid
/// handle of another kind.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(0x5a00_0001);

impl<T> Registry<T> {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            live: RwLock::new(HashMap::new()),
        }
    }

    /// Registers `value` and returns its handle number.
    pub(crate) fn insert(&self, value: T) -> usize {
        let handle = NEXT_HANDLE.fetch_add(2, Ordering::Relaxed);
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle, Arc::new(value));
        handle
    }

    /// The object behind `handle`, or an InvalidArgument error naming the kind.
    pub(crate) fn get(&self, handle: usize) -> Result<Arc<T>> {
        if handle == 0 {
            return Err(Error::InvalidArgument(format!(
                "{} handle is NULL",
                self.kind
            )));
        }
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&handle)
            .cloned()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} handle {handle:#x} is not live (already freed, or not a {} handle)",
                    self.kind, self.kind
                ))
            })
    }

    /// Unregisters `handle`; the object is dropped once no call is using it.
    pub(crate) fn remove(&self, handle: usize) -> Result<()> {
        if handle == 0 {
            return Ok(());
        }
        let removed = self
            .live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&handle);
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::InvalidArgument(format!(
                "{} handle {handle:#x} freed twice or never allocated",
                self.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Status;

    #[test]
    fn c_status_constants_match_the_rust_enum() {
        let pairs = [
            (SPHANA_LLM_OK, Status::Ok),
            (SPHANA_LLM_ERR_INVALID_ARGUMENT, Status::InvalidArgument),
            (SPHANA_LLM_ERR_INVALID_UTF8, Status::InvalidUtf8),
            (SPHANA_LLM_ERR_BUFFER_TOO_SMALL, Status::BufferTooSmall),
            (SPHANA_LLM_ERR_IO, Status::Io),
            (SPHANA_LLM_ERR_INVALID_MODEL, Status::InvalidModel),
            (SPHANA_LLM_ERR_INVALID_TOKEN_ID, Status::InvalidTokenId),
            (SPHANA_LLM_ERR_NOT_FOUND, Status::NotFound),
            (SPHANA_LLM_ERR_UNSUPPORTED, Status::Unsupported),
            (SPHANA_LLM_ERR_LIMIT_EXCEEDED, Status::LimitExceeded),
            (SPHANA_LLM_ERR_CONTEXT_OVERFLOW, Status::ContextOverflow),
            (SPHANA_LLM_ERR_RUNTIME, Status::Runtime),
            (SPHANA_LLM_ERR_INTERNAL, Status::Internal),
        ];
        for (c, rust) in pairs {
            assert_eq!(c, rust as i32, "{rust:?}");
        }
    }
}
