//! The fuzz targets (`targets`) and their shared helpers: where the assets are, loading
//! handles once per process, and the checks every C call must pass (a documented status, a
//! message on failure).
//!
//! Every target drives the C ABI (`sphana_llm::ffi`), exactly as a C host would. A panic
//! anywhere — including one the library would catch and turn into `SPHANA_LLM_ERR_INTERNAL`
//! — is a finding: under libFuzzer it aborts (a crash), under the replay test
//! (tests/fuzz_replay.rs, which compiles this file as a module) it is counted by
//! [`take_foreign_panics`] and fails that input.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::ptr::null;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub use arbitrary::{self, Unstructured};
pub use sphana_llm::ffi::*;

/// The C-ABI client shared with the tests (last error, checked tokenize/decode/stream calls,
/// handles): one copy, in `tests/support/capi.rs`.
#[path = "../../tests/support/capi.rs"]
mod capi;
pub mod targets;

pub use capi::*;

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

/// Loads `path` for the harness itself; panics (a harness bug, not a finding) on failure.
pub fn load(path: &Path, configure: impl FnOnce(&mut SphanaLlmLoadOptions)) -> Handle {
    let ort = ort_library();
    let mut options = sphana_llm_load_options_default();
    options.ort_library_path = ort.as_ptr();
    options.intra_op_threads = 1;
    configure(&mut options);
    try_load_with(path, Some(&options)).unwrap_or_else(|(status, e)| {
        panic!("harness: loading {}: status {status}: {e}", path.display())
    })
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
