//! Versioned structs across header versions: a caller built against an earlier
//! `SphanaLlmLoadOptions` layout (before `tokenizer_path`, before `max_decode_batch`, before
//! `eos_token_ids`) still loads, the `*_init`
//! functions fill older and newer layouts without overrunning them, and unknown sizes
//! are rejected with a message.

#[path = "support/capi.rs"]
mod capi;
mod common;

use std::ffi::{c_char, CString};
use std::ptr::null_mut;

use capi::last_error;
use sphana_llm::ffi::*;

const OLD_LOAD_OPTIONS_SIZE: usize = std::mem::offset_of!(SphanaLlmLoadOptions, tokenizer_path);
/// The layout before `max_decode_batch`.
const LOAD_OPTIONS_SIZE_2: usize = std::mem::offset_of!(SphanaLlmLoadOptions, max_decode_batch);
/// The layout before `eos_token_ids` and `context_length`.
const LOAD_OPTIONS_SIZE_3: usize = std::mem::offset_of!(SphanaLlmLoadOptions, eos_token_ids);
/// The layout before `prefill_chunk_tokens`.
const LOAD_OPTIONS_SIZE_4: usize = std::mem::offset_of!(SphanaLlmLoadOptions, prefill_chunk_tokens);

#[test]
fn an_older_load_options_layout_still_loads() {
    older_load_options_layout_loads(OLD_LOAD_OPTIONS_SIZE);
    older_load_options_layout_loads(LOAD_OPTIONS_SIZE_2);
    older_load_options_layout_loads(LOAD_OPTIONS_SIZE_3);
    older_load_options_layout_loads(LOAD_OPTIONS_SIZE_4);
}

fn older_load_options_layout_loads(old_size: usize) {
    // A caller's buffer sized for the earlier layout, filled by the version-safe init.
    let mut buffer = vec![0xAAu8; old_size + 16];
    let options = buffer.as_mut_ptr().cast::<SphanaLlmLoadOptions>();
    assert_eq!(
        unsafe { sphana_llm_load_options_init(options, old_size) },
        SPHANA_LLM_OK
    );
    assert!(
        buffer[old_size..].iter().all(|&b| b == 0xAA),
        "init wrote past the caller's struct"
    );
    assert_eq!(
        u32::from_ne_bytes(buffer[..4].try_into().unwrap()) as usize,
        old_size
    );

    // Garbage after the old layout must not be read as the fields it lacks.
    let dir = CString::new(common::tokenizer_dir("llama3.2").to_str().unwrap()).unwrap();
    let mut model = null_mut();
    let status = unsafe { sphana_llm_load(dir.as_ptr(), buffer.as_ptr().cast(), &mut model) };
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    let mut vocab = 0usize;
    assert_eq!(
        unsafe { sphana_llm_vocab_size(model, &mut vocab) },
        SPHANA_LLM_OK
    );
    assert_eq!(vocab, 128_256);
    sphana_llm_free(model);
}

#[test]
fn init_fills_the_current_and_newer_layouts_and_rejects_unknown_sizes() {
    let ours = std::mem::size_of::<SphanaLlmLoadOptions>();
    let mut buffer = vec![0xAAu8; ours + 32];
    let options = buffer.as_mut_ptr().cast::<SphanaLlmLoadOptions>();
    assert_eq!(
        unsafe { sphana_llm_load_options_init(options, ours + 8) },
        SPHANA_LLM_OK
    );
    assert!(
        buffer[ours..ours + 8].iter().all(|&b| b == 0),
        "a newer layout's unknown fields are zeroed"
    );
    assert!(buffer[ours + 8..].iter().all(|&b| b == 0xAA));
    let defaults = sphana_llm_load_options_default();
    let filled = unsafe { options.read_unaligned() };
    assert_eq!(filled.max_input_bytes, defaults.max_input_bytes);
    assert_eq!(filled.session_count, defaults.session_count);

    let status = unsafe { sphana_llm_load_options_init(options, OLD_LOAD_OPTIONS_SIZE - 3) };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("struct_size"), "{}", last_error());
    assert_eq!(
        unsafe { sphana_llm_load_options_init(null_mut(), ours) },
        SPHANA_LLM_ERR_INVALID_ARGUMENT
    );

    let mut params = std::mem::MaybeUninit::<SphanaLlmGenerateParams>::uninit();
    let size = std::mem::size_of::<SphanaLlmGenerateParams>();
    assert_eq!(
        unsafe { sphana_llm_generate_params_init(params.as_mut_ptr(), size) },
        SPHANA_LLM_OK
    );
    let params = unsafe { params.assume_init() };
    assert_eq!(
        params.max_new_tokens,
        sphana_llm_generate_params_default().max_new_tokens
    );
    assert_eq!(params.struct_size as usize, size);

    // A struct_size between two fields is rejected when loading, too.
    let mut odd = sphana_llm_load_options_default();
    odd.struct_size = (OLD_LOAD_OPTIONS_SIZE + 4) as u32;
    let dir = CString::new(common::tokenizer_dir("llama3.2").to_str().unwrap()).unwrap();
    let mut model = null_mut();
    let status = unsafe { sphana_llm_load(dir.as_ptr() as *const c_char, &odd, &mut model) };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(model.is_null());
}
