//! The Llama 3 byte-level BPE fast path against the general `tokenizers` pipeline (its
//! oracle) on arbitrary UTF-8: identical ids and offsets, for the Llama 3.2 `tokenizer.json`
//! and the Llama 3 tiktoken `tokenizer.model`, with every combination of add-special and
//! parse-special. Any difference is a bug in the fast path.
//!
//! Input: byte 0 picks the tokenizer (bit 0) and the options (bits 1-2); the rest is the
//! text. Bytes that are not UTF-8 are replaced by U+FFFD (the C ABI rejects them before
//! either path runs), so every input is a text.

use std::sync::OnceLock;

use super::super::assets;
use sphana_llm::{EncodeOptions, LoadOptions, Model};

fn models() -> &'static [Model; 2] {
    static MODELS: OnceLock<[Model; 2]> = OnceLock::new();
    MODELS.get_or_init(|| {
        ["llama3.2", "llama3-tiktoken"].map(|name| {
            let dir = assets().join("tokenizers").join(name);
            let model = Model::load(&dir, &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", dir.display()));
            assert!(
                model.tokenizer().has_fast_path(),
                "{name} takes the fast path"
            );
            model
        })
    })
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let model = &models()[usize::from(selector & 1)];
    let options = EncodeOptions {
        add_special: selector & 2 != 0,
        parse_special: selector & 4 != 0,
    };
    let text = String::from_utf8_lossy(text);
    let tokenizer = model.tokenizer();
    let fast = tokenizer
        .encode_with_offsets(&text, options)
        .expect("fast path");
    let general = tokenizer
        .encode_with_general_path(&text, options)
        .expect("general path");
    assert_eq!(
        fast.ids, general.ids,
        "ids differ for {text:?} with {options:?}"
    );
    assert_eq!(
        fast.offsets, general.offsets,
        "offsets differ for {text:?} with {options:?}"
    );
}
