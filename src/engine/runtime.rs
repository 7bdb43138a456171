//! The process-wide ONNX Runtime: loaded once (dynamically, from a path) and shared by
//! every model. ONNX Runtime allows only one environment per process.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The loaded ONNX Runtime library.
#[derive(Clone)]
pub struct Runtime {
    /// The process's environment (kept alive here: `ort` holds only a weak reference).
    pub(crate) environment: Environment,
    /// The absolute path the library was loaded from.
    pub library_path: PathBuf,
    /// The library's version string, e.g. "1.23.2".
    pub version: String,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// The file name looked for next to `libsphana_llm.so`.
pub const ORT_LIBRARY_FILE_NAME: &str = "libonnxruntime.so";

/// The directory holding the binary that contains this code (`libsphana_llm.so`, or the
/// executable when linked statically).
fn own_directory() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let symbol = own_directory as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid out-pointer.
    let found = unsafe { libc::dladdr(symbol, &mut info) } != 0;
    if !found || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let file = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(file.to_bytes()));
    std::fs::canonicalize(path)
        .ok()?
        .parent()
        .map(Path::to_path_buf)
}

/// Where ONNX Runtime is loaded from: the explicit path, else `ORT_DYLIB_PATH`, else
/// `libonnxruntime.so` next to this library.
pub fn resolve_library_path(explicit: Option<&Path>) -> Result<PathBuf> {
    let (candidate, source) = if let Some(path) = explicit {
        (path.to_path_buf(), "the ort_library_path option")
    } else if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        (PathBuf::from(path), "ORT_DYLIB_PATH")
    } else {
        let dir = own_directory().ok_or_else(|| {
            Error::Runtime(
                "cannot locate libsphana_llm.so to look for libonnxruntime.so beside it; set ort_library_path or ORT_DYLIB_PATH".into(),
            )
        })?;
        (
            dir.join(ORT_LIBRARY_FILE_NAME),
            "the directory of libsphana_llm.so",
        )
    };
    std::fs::canonicalize(&candidate).map_err(|e| {
        Error::Runtime(format!(
            "ONNX Runtime library {} (from {source}) cannot be opened: {e}; set ort_library_path or ORT_DYLIB_PATH to libonnxruntime.so (1.23 or newer)",
            candidate.display()
        ))
    })
}

/// Loads ONNX Runtime once per process and returns it. A later call naming a different
/// library than the one already loaded is an error (a process can hold only one).
pub fn runtime(explicit: Option<&Path>) -> Result<Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(runtime) = slot.as_ref() {
        if let Some(path) = explicit {
            let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            if wanted != runtime.library_path {
                return Err(Error::Runtime(format!(
                    "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
                    runtime.library_path.display(),
                    wanted.display()
                )));
            }
        }
        return Ok(runtime.clone());
    }
    let path = resolve_library_path(explicit)?;
    let builder = ort::init_from(&path).map_err(|e| {
        Error::Runtime(format!(
            "cannot load ONNX Runtime from {}: {e}",
            path.display()
        ))
    })?;
    let environment = builder
        .with_name("sphana-llm")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::Runtime(format!("cannot create the ONNX Runtime environment: {e}")))?;
    let version = library_version(&path)?;
    let runtime = Runtime {
        environment,
        library_path: path,
        version,
    };
    *slot = Some(runtime.clone());
    Ok(runtime)
}

/// The version string of the ONNX Runtime library at `path` (already loaded by `ort`).
fn library_version(path: &Path) -> Result<String> {
    let fail = |why: &str| Error::Runtime(format!("{}: {why}", path.display()));
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| fail("path contains NUL"))?;
    // SAFETY: RTLD_NOLOAD only returns a handle to the already-loaded library (refcount +1,
    // released below); the symbol is ONNX Runtime's documented entry point.
    unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return Err(fail("not loaded"));
        }
        let symbol = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
        let version = if symbol.is_null() {
            Err(fail("does not export OrtGetApiBase"))
        } else {
            let get_base: unsafe extern "C" fn() -> *const ort::sys::OrtApiBase =
                std::mem::transmute(symbol);
            let base = get_base();
            if base.is_null() {
                Err(fail("OrtGetApiBase returned NULL"))
            } else {
                Ok(std::ffi::CStr::from_ptr(((*base).GetVersionString)())
                    .to_string_lossy()
                    .into_owned())
            }
        };
        libc::dlclose(handle);
        version
    }
}
