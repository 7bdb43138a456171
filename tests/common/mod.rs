//! Shared helpers for the integration tests: where the fetched assets and goldens live.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The folder the fetch scripts write to (`SPHANA_LLM_ASSETS` overrides `assets/`).
pub fn assets_dir() -> PathBuf {
    std::env::var_os("SPHANA_LLM_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("assets"))
}

/// A fetched tokenizer directory; panics with the command to run when it is missing.
pub fn tokenizer_dir(name: &str) -> PathBuf {
    let dir = assets_dir().join("tokenizers").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run `python3 scripts/fetch_tokenizers.py` first (or `scripts/test.sh`)",
        dir.display()
    );
    dir
}

/// A committed golden JSON file.
pub fn golden(relative: &str) -> serde_json::Value {
    let path = repo_root().join("tests/golden").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The named inputs shared by all tokenizer goldens.
pub fn inputs() -> Vec<(String, String)> {
    golden("tokenizers/inputs.json")["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The 1 MiB multilingual text, read as raw bytes (it contains `\r\n`).
pub fn big_text() -> String {
    let path = assets_dir().join("texts/multilingual_1mb.txt");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `python3 scripts/fetch_tokenizers.py`",
            path.display()
        )
    });
    String::from_utf8(bytes).expect("big text is UTF-8")
}

/// Ids as JSON numbers → u32.
pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("id array")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

/// The ONNX Runtime library the generation tests use: `ORT_DYLIB_PATH`, else the 1.23.2
/// copy fetched by `scripts/fetch_onnxruntime.py`.
pub fn ort_library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let path = assets_dir().join("onnxruntime/1.23.2/libonnxruntime.so");
    assert!(
        path.is_file(),
        "{} is missing: run `python3 scripts/fetch_onnxruntime.py` (or `scripts/test.sh`)",
        path.display()
    );
    path
}

/// Load options pointing at the test ONNX Runtime.
pub fn load_options() -> sphana_llm::LoadOptions {
    sphana_llm::LoadOptions {
        ort_library_path: Some(ort_library()),
        ..Default::default()
    }
}

/// A built test model directory (`tiny-llama/fp32`, `smollm2-135m-instruct`, ...).
pub fn model_dir(name: &str) -> PathBuf {
    let dir = assets_dir().join("models").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: run `python3 scripts/make_tiny_models.py` and `python3 scripts/convert_smollm2.py` (or `scripts/test.sh`)",
        dir.display()
    );
    dir
}
