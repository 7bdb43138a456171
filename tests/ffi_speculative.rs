//! Prompt lookup through the C ABI: `SphanaLlmGenerateParams.prompt_lookup_tokens` and
//! `prompt_lookup_ngram`, the draft figures in `SphanaLlmGenerateStats`, the layout before
//! those fields (read with the defaults, nothing after it read), and bad values (refused with
//! a message that names the field, nothing generated).

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ptr::null_mut;

use capi::{greedy, last_error, Handle};
use sphana_llm::ffi::*;

fn model() -> Handle {
    micro::load(&common::model_dir("tiny-llama/fp32"), |_| {})
}

/// A prompt that repeats itself, what the model says after it, and the prompt again.
fn echo_prompt(model: Handle) -> Vec<i32> {
    let phrase: Vec<i32> = (0..12).map(|i| 300 + (i * 37 + 202) % 5000).collect();
    let mut prompt: Vec<i32> = Vec::new();
    for round in 0..6 {
        prompt.extend_from_slice(&phrase);
        prompt.push(7002 + round);
    }
    prompt.extend_from_slice(&phrase[..5]);
    let (status, said, _) = run(model, &prompt, &greedy(24));
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    let mut echo = prompt.clone();
    echo.extend_from_slice(&said);
    echo.extend_from_slice(&prompt);
    echo
}

/// Generates from `prompt` with `params`: the status, the ids, the stats.
fn run(
    model: Handle,
    prompt: &[i32],
    params: *const SphanaLlmGenerateParams,
) -> (i32, Vec<i32>, SphanaLlmGenerateStats) {
    let mut ids = vec![-1i32; 256];
    let mut params = unsafe { params.read_unaligned() };
    let declared = params.struct_size;
    params.out_token_ids = ids.as_mut_ptr();
    params.out_token_ids_capacity = ids.len();
    params.struct_size = declared;
    let mut stats = SphanaLlmGenerateStats {
        struct_size: std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
        draft_tokens: 999,
        accepted_draft_tokens: 999,
        ..Default::default()
    };
    let status = unsafe {
        sphana_llm_generate_from_ids(
            model.0,
            prompt.as_ptr(),
            prompt.len(),
            &params,
            None,
            null_mut(),
            null_mut(),
            &mut stats,
        )
    };
    let n = if status == SPHANA_LLM_OK {
        stats.generated_tokens
    } else {
        0
    };
    ids.truncate(n);
    (status, ids, stats)
}

#[test]
fn prompt_lookup_keeps_the_ids_and_reports_its_drafts() {
    let model = model();
    let prompt = echo_prompt(model);
    let plain = greedy(40);
    assert_eq!(
        plain.prompt_lookup_tokens as u32, SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS,
        "the default"
    );
    let (status, want, stats) = run(model, &prompt, &plain);
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    assert_eq!((stats.draft_tokens, stats.accepted_draft_tokens), (0, 0));
    let mut fast = greedy(40);
    fast.prompt_lookup_tokens = 8;
    fast.prompt_lookup_ngram = 3;
    let (status, got, stats) = run(model, &prompt, &fast);
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    assert_eq!(got, want);
    assert!(stats.accepted_draft_tokens > 0);
    assert!(stats.accepted_draft_tokens <= stats.draft_tokens);
    sphana_llm_free(model.0);
}

#[test]
fn the_layout_before_prompt_lookup_reads_the_defaults_and_nothing_after_it() {
    let model = model();
    let prompt = echo_prompt(model);
    let (_, want, _) = run(model, &prompt, &greedy(20));
    let old_size = std::mem::offset_of!(SphanaLlmGenerateParams, prompt_lookup_tokens);
    // The old struct followed by garbage where the new fields are: 0xAA.. would be a huge
    // draft length, refused if it were read.
    let mut buffer = vec![0xAAu8; std::mem::size_of::<SphanaLlmGenerateParams>()];
    let params = greedy(20);
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&params as *const SphanaLlmGenerateParams).cast::<u8>(),
            buffer.as_mut_ptr(),
            old_size,
        )
    };
    buffer[..4].copy_from_slice(&(old_size as u32).to_ne_bytes());
    let old = buffer.as_ptr().cast::<SphanaLlmGenerateParams>();
    let (status, got, stats) = run(model, &prompt, old);
    assert_eq!(status, SPHANA_LLM_OK, "{}", last_error());
    assert_eq!(got, want);
    assert_eq!(stats.draft_tokens, 0, "the default: off");
    sphana_llm_free(model.0);
}

#[test]
fn bad_prompt_lookup_values_are_refused_with_a_message() {
    let model = model();
    let prompt = echo_prompt(model);
    for (tokens, ngram, field) in [
        (
            SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS as usize + 1,
            3,
            "prompt_lookup_tokens",
        ),
        (usize::MAX, 3, "prompt_lookup_tokens"),
        (8, 0, "prompt_lookup_ngram"),
        (
            8,
            SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM as usize + 1,
            "prompt_lookup_ngram",
        ),
    ] {
        let mut params = greedy(8);
        params.prompt_lookup_tokens = tokens;
        params.prompt_lookup_ngram = ngram;
        let (status, ids, stats) = run(model, &prompt, &params);
        assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT, "{tokens} {ngram}");
        assert!(last_error().contains(field), "{}", last_error());
        assert!(ids.is_empty());
        assert_eq!(stats.draft_tokens, 999, "stats untouched on error");
    }
    // The handle still works.
    let (status, ids, _) = run(model, &prompt, &greedy(4));
    assert_eq!((status, ids.len()), (SPHANA_LLM_OK, 4));
    sphana_llm_free(model.0);
}
