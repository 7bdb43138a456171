//! The fuzz targets (`targets`) and their shared helpers: where the assets are, loading
//! handles once per process, and the checks every C call must pass (a documented status, a
//! message on failure).
//!
//! Every target drives the C ABI (`sphana_llm::ffi`), exactly as a C host would. A panic
//! anywhere — including one the library would catch and turn into `SPHANA_LLM_ERR_INTERNAL`
//! — is a finding: under libFuzzer it aborts (a crash), under the replay test
//! (tests/fuzz_replay.rs, which compiles this file as a module) it is counted by
//! [`take_foreign_panics`] and fails that input.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use arbitrary::{self, Unstructured};
pub use sphana_llm::ffi::*;

pub mod targets;

/// The repository root: this file is compiled by the fuzz crate (manifest `fuzz/`) and by the
/// main crate's replay test (manifest at the root).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("fuzz_targets").is_dir() {
        manifest.parent().expect("fuzz/ has a parent").to_path_buf()
    } else {
        manifest.to_path_buf()
    }
}

/// The repository's `assets/` (or `SPHANA_LLM_ASSETS`).
pub fn assets() -> PathBuf {
    std::env::var_os("SPHANA_LLM_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"))
}

/// What `fuzz/make_seeds.py` wrote: the micro model and the small base files
/// (`SPHANA_FUZZ_WORK`, default `fuzz/work`).
pub fn work() -> PathBuf {
    let dir = std::env::var_os("SPHANA_FUZZ_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("fuzz/work"));
    assert!(
        dir.join("micro/model.onnx").is_file(),
        "{} is not prepared: run scripts/ci/fuzz.sh (it runs fuzz/make_seeds.py)",
        dir.display()
    );
    dir
}

/// `ORT_DYLIB_PATH`, else the 1.23.2 copy in the assets.
pub fn ort_library() -> CString {
    let path = std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| assets().join("onnxruntime/1.23.2/libonnxruntime.so"));
    CString::new(path.to_str().expect("UTF-8 path")).unwrap()
}

/// A model handle kept for the whole process (handles are documented thread-safe).
#[derive(Clone, Copy)]
pub struct Handle(pub *mut SphanaLlmModel);
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

pub fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(sphana_llm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Loads `path` for the harness itself; panics (a harness bug, not a finding) on failure.
pub fn load(path: &Path, configure: impl FnOnce(&mut SphanaLlmLoadOptions)) -> Handle {
    let ort = ort_library();
    let mut options = sphana_llm_load_options_default();
    options.ort_library_path = ort.as_ptr();
    options.intra_op_threads = 1;
    configure(&mut options);
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    let status = unsafe { sphana_llm_load(c.as_ptr(), &options, &mut model) };
    assert_eq!(
        status,
        SPHANA_LLM_OK,
        "harness: loading {}: {}",
        path.display(),
        last_error()
    );
    Handle(model)
}

/// Every status a call may return.
pub const ALL_STATUSES: [i32; 12] = [
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
];

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

/// Tokenizes into an exact-size buffer (size query first). `Err(status)` on failure.
pub fn tokenize(model: Handle, text: &[u8], flags: u32) -> Result<Vec<i32>, i32> {
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
    assert_eq!(
        status,
        SPHANA_LLM_OK,
        "tokenize after its size query: {}",
        last_error()
    );
    assert_eq!(m, n, "tokenize count changed between size query and fill");
    Ok(ids)
}

/// Decodes into an exact-size buffer (size query first).
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

/// The vocabulary size of a handle.
pub fn vocab_size(model: Handle) -> usize {
    let mut n = 0usize;
    assert_eq!(
        unsafe { sphana_llm_vocab_size(model.0, &mut n) },
        SPHANA_LLM_OK
    );
    n
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

/// NULL when `bytes` is empty and `null_if_empty`, else the slice's pointer.
pub fn ptr_or_null(bytes: &[u8], null_if_empty: bool) -> *const c_char {
    if bytes.is_empty() && null_if_empty {
        null()
    } else {
        bytes.as_ptr().cast()
    }
}

/// A private scratch directory for this process (files are rewritten for every input).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sphana-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Up to `max` bytes of the input (fewer when it runs out).
pub fn some_bytes<'a>(u: &mut Unstructured<'a>, max: usize) -> arbitrary::Result<&'a [u8]> {
    let n = u.int_in_range(0..=max)?.min(u.len());
    u.bytes(n)
}

static REPLAY: AtomicBool = AtomicBool::new(false);
static FOREIGN_PANICS: AtomicUsize = AtomicUsize::new(0);
static TOLERATED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
static HOOK: std::sync::Once = std::sync::Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| l.file()).unwrap_or("");
            let tolerated = TOLERATED
                .lock()
                .map(|t| t.iter().any(|f| file.contains(f)))
                .unwrap_or(false);
            if tolerated {
                return;
            }
            eprintln!("{info}");
            if REPLAY.load(Ordering::SeqCst) {
                FOREIGN_PANICS.fetch_add(1, Ordering::SeqCst);
            } else {
                eprintln!("{}", std::backtrace::Backtrace::force_capture());
                std::process::abort();
            }
        }));
    });
}

/// Replaces libfuzzer-sys's panic hook (abort on every panic) with one that lets through
/// panics raised inside the given source files — third-party code the library wraps in
/// `catch_unwind` on purpose — and aborts on every other (in replay mode: counts it). Call
/// at the start of each input. The list is process-wide.
pub fn tolerate_panics_in(files: &'static [&'static str]) {
    if let Ok(mut list) = TOLERATED.lock() {
        for f in files {
            if !list.contains(f) {
                list.push(f);
            }
        }
    }
    install_hook();
}

/// Replay mode (tests/fuzz_replay.rs): a panic outside the tolerated files is counted instead
/// of aborting the process, so the replay can name the input and go on.
pub fn enter_replay_mode() {
    REPLAY.store(true, Ordering::SeqCst);
    install_hook();
}

/// How many panics outside the tolerated files happened since the last call (replay mode).
pub fn take_foreign_panics() -> usize {
    FOREIGN_PANICS.swap(0, Ordering::SeqCst)
}
