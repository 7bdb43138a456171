//! The micro model (`scripts/setup/make_micro_model.py`: a ~400-token byte-level BPE, a chat
//! template and a 2-layer decoder with a 256-token context), built once per target
//! directory, and small helpers the hardening tests share. Include with
//! `#[path = "support/micro.rs"] mod micro;` (after `mod common;`).
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sphana_llm::ffi::*;

/// `<target-dir>/<profile>`: the test binary lives in its `deps/` folder.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is not in <target>/<profile>/deps")
        .to_path_buf()
}

/// The micro model directory, built on first use (about 2 s with Python).
pub fn micro_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = super::common::repo_root();
        let script = root.join("scripts/setup/make_micro_model.py");
        let onnx_llama = root.join("scripts/setup/onnx_llama.py");
        // Keyed by the scripts' sizes and mtimes, so an edited script rebuilds the model.
        let stamp = [&script, &onnx_llama]
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).unwrap();
                format!(
                    "{}-{}",
                    m.len(),
                    m.modified()
                        .unwrap()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                )
            })
            .collect::<Vec<_>>()
            .join("-");
        let dir = profile_dir().join(format!("micro-llama-{stamp}"));
        if dir.join("model.onnx").is_file() {
            return dir;
        }
        let tmp = profile_dir().join(format!("micro-llama-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("python3")
            .arg(&script)
            .arg(&tmp)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{} failed (needs numpy, onnx, tokenizers: scripts/setup.sh):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Another test binary may have won the race: either copy is the same.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(dir.join("model.onnx").is_file());
        dir
    })
    .clone()
}

pub fn last_error() -> String {
    // SAFETY: the library returns a valid NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(sphana_llm_last_error()) }
        .to_string_lossy()
        .into_owned()
}

pub fn cpath(path: &Path) -> CString {
    CString::new(path.to_str().expect("UTF-8 path")).unwrap()
}

/// A model handle that may cross threads (the C API documents handles as thread-safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handle(pub *mut SphanaLlmModel);
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

/// Load options pointing at the test ONNX Runtime (the CString must outlive the load).
pub fn options(ort: &CString) -> SphanaLlmLoadOptions {
    let mut o = sphana_llm_load_options_default();
    o.ort_library_path = ort.as_ptr();
    o
}

pub fn ort_cstring() -> CString {
    cpath(&super::common::ort_library())
}

/// Loads through the C ABI, returning the status and message on failure.
pub fn try_load(
    path: &Path,
    configure: impl FnOnce(&mut SphanaLlmLoadOptions),
) -> Result<Handle, (i32, String)> {
    let ort = ort_cstring();
    let mut o = options(&ort);
    configure(&mut o);
    let c = cpath(path);
    let mut model = std::ptr::null_mut();
    match unsafe { sphana_llm_load(c.as_ptr(), &o, &mut model) } {
        SPHANA_LLM_OK => Ok(Handle(model)),
        status => Err((status, last_error())),
    }
}

/// Loads through the C ABI; panics with the library's message on failure.
pub fn load(path: &Path, configure: impl FnOnce(&mut SphanaLlmLoadOptions)) -> Handle {
    try_load(path, configure)
        .unwrap_or_else(|(s, e)| panic!("loading {}: status {s}: {e}", path.display()))
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

/// A minimal ONNX model that is not a decoder: `y = Identity(x)` on a float tensor [4].
/// Hand-encoded protobuf (ModelProto), so no Python is needed.
pub fn identity_onnx() -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn field(tag: u64, wire: u64, out: &mut Vec<u8>) {
        varint(tag << 3 | wire, out);
    }
    fn bytes(tag: u64, data: &[u8], out: &mut Vec<u8>) {
        field(tag, 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    fn int(tag: u64, v: u64, out: &mut Vec<u8>) {
        field(tag, 0, out);
        varint(v, out);
    }
    let value_info = |name: &str| {
        // TensorShapeProto.dim { dim_value: 4 }
        let mut dim = Vec::new();
        int(1, 4, &mut dim);
        let mut shape = Vec::new();
        bytes(1, &dim, &mut shape);
        // TypeProto.Tensor { elem_type: FLOAT, shape }
        let mut tensor = Vec::new();
        int(1, 1, &mut tensor);
        bytes(2, &shape, &mut tensor);
        let mut ty = Vec::new();
        bytes(1, &tensor, &mut ty);
        let mut vi = Vec::new();
        bytes(1, name.as_bytes(), &mut vi);
        bytes(2, &ty, &mut vi);
        vi
    };
    let mut node = Vec::new();
    bytes(1, b"x", &mut node);
    bytes(2, b"y", &mut node);
    bytes(4, b"Identity", &mut node);
    let mut graph = Vec::new();
    bytes(1, &node, &mut graph);
    bytes(2, b"not_a_decoder", &mut graph);
    bytes(11, &value_info("x"), &mut graph);
    bytes(12, &value_info("y"), &mut graph);
    let mut opset = Vec::new();
    bytes(1, b"", &mut opset);
    int(2, 18, &mut opset);
    let mut model = Vec::new();
    int(1, 8, &mut model); // ir_version
    bytes(7, &graph, &mut model);
    bytes(8, &opset, &mut model);
    model
}
