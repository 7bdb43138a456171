//! The micro model (`scripts/setup/make_micro_model.py`: a ~400-token byte-level BPE, a chat
//! template and a 2-layer decoder with a 256-token context), built once per target
//! directory, and loading through the C ABI with the test ONNX Runtime. Include with
//! `#[path = "support/micro.rs"] mod micro;` after `mod common;` and
//! `#[path = "support/capi.rs"] mod capi;` (the C-ABI client it builds on).
#![allow(dead_code)]

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::capi::{cpath, try_load_with, Handle};
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

/// Load options pointing at the test ONNX Runtime (the CString must outlive the load).
pub fn options(ort: &CString) -> SphanaLlmLoadOptions {
    let mut o = sphana_llm_load_options_default();
    o.ort_library_path = ort.as_ptr();
    o
}

/// The test ONNX Runtime's path as a C string.
pub fn ort_cstring() -> CString {
    cpath(&super::common::ort_library())
}

/// Loads through the C ABI with the test ONNX Runtime, returning the status and message on
/// failure.
pub fn try_load(
    path: &Path,
    configure: impl FnOnce(&mut SphanaLlmLoadOptions),
) -> Result<Handle, (i32, String)> {
    let ort = ort_cstring();
    let mut o = options(&ort);
    configure(&mut o);
    try_load_with(path, Some(&o))
}

/// Loads through the C ABI; panics with the library's message on failure.
pub fn load(path: &Path, configure: impl FnOnce(&mut SphanaLlmLoadOptions)) -> Handle {
    try_load(path, configure)
        .unwrap_or_else(|(s, e)| panic!("loading {}: status {s}: {e}", path.display()))
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
