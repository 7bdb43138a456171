//! Log-probabilities and scoring through the C ABI: `SphanaLlmGenerateParams.out_logprobs`
//! and the top-alternative buffers, `sphana_llm_score`, the layout before those fields, and
//! bad buffers (refused with a message, nothing written).

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ptr::{null, null_mut};

use capi::{check, generate, greedy, last_error, Handle, Prompt};
use sphana_llm::ffi::*;

const SENTINEL: f32 = 12345.0;

/// What `score` returns: the status, the log-probabilities, the alternatives' ids and theirs.
type Scored = (i32, Vec<f32>, Vec<i32>, Vec<f32>);

/// A bad request: what it is, the call, the status it must get.
type Case<'a> = (&'a str, Box<dyn Fn() -> Scored + 'a>, i32);

fn model() -> Handle {
    micro::load(&common::model_dir("tiny-llama/fp32"), |_| {})
}

fn prompt() -> Vec<i32> {
    (0..20).map(|i| 1000 + i * 37).collect()
}

/// `sphana_llm_score` with fresh sentinel-filled buffers: the status, the log-probabilities
/// and the alternatives (ids, log-probabilities).
fn score(model: Handle, prompt: &[i32], continuation: &[i32], top: u32) -> Scored {
    let mut logprobs = vec![SENTINEL; continuation.len()];
    let mut top_ids = vec![-7i32; continuation.len() * top as usize];
    let mut top_logprobs = vec![SENTINEL; continuation.len() * top as usize];
    let status = unsafe {
        sphana_llm_score(
            model.0,
            prompt.as_ptr(),
            prompt.len(),
            continuation.as_ptr(),
            continuation.len(),
            top,
            logprobs.as_mut_ptr(),
            top_ids.as_mut_ptr(),
            top_logprobs.as_mut_ptr(),
        )
    };
    (status, logprobs, top_ids, top_logprobs)
}

#[test]
fn a_generations_logprobs_equal_the_score_of_its_ids() {
    let model = model();
    let n = 10usize;
    let mut logprobs = vec![SENTINEL; n];
    let mut top_ids = vec![-7i32; n * 3];
    let mut top_logprobs = vec![SENTINEL; n * 3];
    let mut params = greedy(n as u32);
    params.out_logprobs = logprobs.as_mut_ptr();
    params.out_top_logprob_ids = top_ids.as_mut_ptr();
    params.out_top_logprobs = top_logprobs.as_mut_ptr();
    params.out_logprobs_capacity = n;
    params.top_logprobs = 3;
    let g = generate(model, Prompt::Ids(&prompt()), Some(&mut params), usize::MAX);
    check(g.status, &[SPHANA_LLM_OK], "generate with logprobs");
    assert_eq!(g.ids.len(), n);
    let (status, scored, scored_top, scored_top_lp) = score(model, &prompt(), &g.ids, 3);
    check(status, &[SPHANA_LLM_OK], "score");
    for i in 0..n {
        assert!((logprobs[i] - scored[i]).abs() < 1e-4, "token {i}");
        assert!(logprobs[i] <= 0.0);
        // Greedy: the chosen id is the most likely one.
        assert_eq!(top_ids[i * 3], g.ids[i], "token {i}");
        assert!((top_logprobs[i * 3] - logprobs[i]).abs() < 1e-6);
        assert_eq!(&top_ids[i * 3..i * 3 + 3], &scored_top[i * 3..i * 3 + 3]);
        for k in 0..3 {
            assert!((top_logprobs[i * 3 + k] - scored_top_lp[i * 3 + k]).abs() < 1e-4);
        }
    }
    sphana_llm_free(model.0);
}

#[test]
fn a_smaller_capacity_gets_the_first_tokens_and_nothing_past_it() {
    let model = model();
    let mut logprobs = vec![SENTINEL; 8];
    let mut params = greedy(8);
    params.out_logprobs = logprobs.as_mut_ptr();
    params.out_logprobs_capacity = 3;
    let g = generate(model, Prompt::Ids(&prompt()), Some(&mut params), usize::MAX);
    check(g.status, &[SPHANA_LLM_OK], "generate");
    assert!(logprobs[..3].iter().all(|&l| l <= 0.0 && l.is_finite()));
    assert!(logprobs[3..].iter().all(|&l| l == SENTINEL));
    sphana_llm_free(model.0);
}

#[test]
fn the_layout_before_the_logprob_fields_still_generates() {
    let model = model();
    let want = generate(
        model,
        Prompt::Ids(&prompt()),
        Some(&mut greedy(6)),
        usize::MAX,
    );
    let old_size = std::mem::offset_of!(SphanaLlmGenerateParams, out_logprobs);
    // A caller's struct of the old size followed by garbage that must not be read.
    let mut buffer = vec![0xAAu8; std::mem::size_of::<SphanaLlmGenerateParams>()];
    let params = greedy(6);
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&params as *const SphanaLlmGenerateParams).cast::<u8>(),
            buffer.as_mut_ptr(),
            old_size,
        )
    };
    buffer[..4].copy_from_slice(&(old_size as u32).to_ne_bytes());
    let mut ids = vec![0i32; 6];
    let mut old = unsafe {
        buffer
            .as_ptr()
            .cast::<SphanaLlmGenerateParams>()
            .read_unaligned()
    };
    old.out_token_ids = ids.as_mut_ptr();
    old.out_token_ids_capacity = ids.len();
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&old as *const SphanaLlmGenerateParams).cast::<u8>(),
            buffer.as_mut_ptr(),
            old_size,
        )
    };
    let p = prompt();
    let status = unsafe {
        sphana_llm_generate_from_ids(
            model.0,
            p.as_ptr(),
            p.len(),
            buffer.as_ptr().cast(),
            None,
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    check(status, &[SPHANA_LLM_OK], "old layout");
    assert_eq!(ids, want.ids);
    sphana_llm_free(model.0);
}

#[test]
fn bad_buffers_and_requests_are_refused_and_write_nothing() {
    let model = model();
    let p = prompt();
    let c = [5i32, 6, 7];
    let cases: [Case<'_>; 4] = [
        (
            "21 alternatives",
            Box::new(|| score(model, &p, &c, 21)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
        ),
        (
            "empty continuation",
            Box::new(|| score(model, &p, &[], 0)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
        ),
        (
            "empty prompt",
            Box::new(|| score(model, &[], &c, 0)),
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
        ),
        (
            "id beyond the vocabulary",
            Box::new(|| score(model, &p, &[5, 1 << 30], 2)),
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
        ),
    ];
    for (what, run, want) in cases {
        let (status, logprobs, top_ids, top_logprobs) = run();
        assert_eq!(status, want, "{what}: {}", last_error());
        assert!(!last_error().is_empty());
        assert!(logprobs.iter().all(|&l| l == SENTINEL), "{what}");
        assert!(top_ids.iter().all(|&i| i == -7), "{what}");
        assert!(top_logprobs.iter().all(|&l| l == SENTINEL), "{what}");
    }
    // NULL buffers.
    let mut logprobs = [SENTINEL; 3];
    let status = unsafe {
        sphana_llm_score(
            model.0,
            p.as_ptr(),
            p.len(),
            c.as_ptr(),
            c.len(),
            0,
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("out_logprobs"), "{}", last_error());
    let status = unsafe {
        sphana_llm_score(
            model.0,
            p.as_ptr(),
            p.len(),
            c.as_ptr(),
            c.len(),
            2,
            logprobs.as_mut_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(
        last_error().contains("out_top_logprob_ids"),
        "{}",
        last_error()
    );
    assert!(logprobs.iter().all(|&l| l == SENTINEL));
    let status = unsafe {
        sphana_llm_score(
            null(),
            p.as_ptr(),
            p.len(),
            c.as_ptr(),
            c.len(),
            0,
            logprobs.as_mut_ptr(),
            null_mut(),
            null_mut(),
        )
    };
    assert_eq!(status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    // Generation: a capacity without buffers, too many alternatives.
    let mut params = greedy(4);
    params.out_logprobs_capacity = 4;
    let g = generate(model, Prompt::Ids(&p), Some(&mut params), usize::MAX);
    assert_eq!(g.status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("out_logprobs"), "{}", last_error());
    let mut params = greedy(4);
    params.top_logprobs = 21;
    let g = generate(model, Prompt::Ids(&p), Some(&mut params), usize::MAX);
    assert_eq!(g.status, SPHANA_LLM_ERR_INVALID_ARGUMENT);
    // The handle still scores.
    let (status, ..) = score(model, &p, &c, 1);
    check(status, &[SPHANA_LLM_OK], "score after the failures");
    sphana_llm_free(model.0);
}
