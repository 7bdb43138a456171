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
