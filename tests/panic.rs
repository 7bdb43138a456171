//! A panic inside an entry point becomes `SPHANA_LLM_ERR_INTERNAL` with a message, and the
//! process — and every handle — goes on working.
//!
//! Panics are injected with the `test-hooks` feature (`sphana_llm::fault::test_hooks`), so
//! this file only builds with `cargo test --features test-hooks --test panic`
//! (`scripts/test.sh` runs it). Fail points: "entry" (inside every entry point's panic
//! guard), "session_run" (a generation step while it holds the model's only ONNX Runtime
//! session), "on_text" (while delivering generated text), "stream_push" (while holding a
//! streaming decoder's lock). After each injected panic the same handle must give the
//! same results as before; a lost session would deadlock the next generation, so
//! generations run on a watchdog.

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ffi::c_char;
use std::ptr::null_mut;
use std::sync::mpsc;
use std::time::Duration;

use capi::{generate, greedy, last_error, message, Generated, Handle, Prompt};
use micro::load;
use sphana_llm::fault::test_hooks::{disarm, panic_at};
use sphana_llm::ffi::*;

const HELLO: &[u8] = b"Hello world! The quick brown fox";

#[track_caller]
fn assert_internal(status: i32, point: &str) {
    let message = last_error();
    assert_eq!(
        status, SPHANA_LLM_ERR_INTERNAL,
        "status for a panic at {point}: {message}"
    );
    assert!(
        message.contains("panic") && message.contains(&format!("injected panic at {point}")),
        "message for a panic at {point}: {message:?}"
    );
}

/// Runs `f` on another thread; fails if it does not finish within a minute (a session
/// lost by a panic would block the next generation forever).
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what} did not finish: deadlock after a panic?"))
}

fn reference(m: Handle) -> Generated {
    watchdog("generate", move || {
        generate(m, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX)
    })
}

/// One tokenize call: its status and ids (none on failure).
fn tokenize(m: Handle, text: &[u8]) -> (i32, Vec<i32>) {
    match capi::tokenize_into(m, text, 0, 256) {
        Ok(ids) => (SPHANA_LLM_OK, ids),
        Err(status) => (status, Vec::new()),
    }
}

#[test]
fn panics_become_internal_errors_and_the_process_goes_on() {
    // The panic hook's report goes to stderr; keep it short.
    std::env::set_var("RUST_BACKTRACE", "0");
    let m = load(&micro::micro_dir(), |_| {});
    let want = reference(m);
    assert_eq!(want.status, SPHANA_LLM_OK, "{}", last_error());
    let (status, want_ids) = tokenize(m, HELLO);
    assert_eq!(status, SPHANA_LLM_OK);

    // ---- "entry": every kind of entry point ----
    panic_at("entry");
    assert_internal(tokenize(m, HELLO).0, "entry");
    assert_eq!(tokenize(m, HELLO), (SPHANA_LLM_OK, want_ids.clone()));

    panic_at("entry");
    let mut out = std::ptr::dangling_mut::<SphanaLlmModel>();
    let c = capi::cpath(&micro::micro_dir());
    let ort = micro::ort_cstring();
    let options = micro::options(&ort);
    assert_internal(
        unsafe { sphana_llm_load(c.as_ptr(), &options, &mut out) },
        "entry",
    );
    assert_eq!(
        out,
        std::ptr::dangling_mut::<SphanaLlmModel>(),
        "a failed load wrote *out_model"
    );

    panic_at("entry");
    let mut text = [0u8; 64];
    let mut len = 0;
    let status = unsafe {
        sphana_llm_decode(
            m.0,
            want_ids.as_ptr(),
            want_ids.len(),
            0,
            text.as_mut_ptr().cast(),
            64,
            &mut len,
        )
    };
    assert_internal(status, "entry");

    panic_at("entry");
    let g = generate(m, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX);
    assert_internal(g.status, "entry");
    assert!(g.text.is_none() && g.chunks.is_empty());

    panic_at("entry");
    let chat = [message("user", b"Hi")];
    let mut rendered: *mut c_char = std::ptr::dangling_mut::<c_char>();
    assert_internal(
        unsafe { sphana_llm_apply_chat_template(m.0, chat.as_ptr(), 1, 1, &mut rendered) },
        "entry",
    );

    panic_at("entry");
    let mut cancel = null_mut();
    assert_internal(unsafe { sphana_llm_cancellation_new(&mut cancel) }, "entry");
    assert!(cancel.is_null());

    // A void entry point: the panic is swallowed, the message set, the handle still live.
    let spare = load(&micro::micro_dir(), |_| {});
    panic_at("entry");
    sphana_llm_free(spare.0);
    assert!(
        last_error().contains("injected panic at entry"),
        "{}",
        last_error()
    );
    let mut vocab = 0;
    assert_eq!(
        unsafe { sphana_llm_vocab_size(spare.0, &mut vocab) },
        SPHANA_LLM_OK
    );
    sphana_llm_free(spare.0);
    assert_eq!(
        unsafe { sphana_llm_vocab_size(spare.0, &mut vocab) },
        SPHANA_LLM_ERR_INVALID_ARGUMENT
    );

    // ---- "session_run": the step holds the model's only session ----
    let g = watchdog("generate with a panic in session.run", move || {
        panic_at("session_run");
        let g = generate(m, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX);
        (g, last_error())
    });
    assert_eq!(g.0.status, SPHANA_LLM_ERR_INTERNAL, "{}", g.1);
    assert!(g.1.contains("injected panic at session_run"), "{}", g.1);
    assert!(g.0.text.is_none());
    assert_eq!(
        reference(m),
        want,
        "generation after a panic in session.run"
    );

    // ---- "on_text": while delivering text, with a cancellation flag in use ----
    let g = watchdog("generate with a panic in on_text", move || {
        let mut cancel = null_mut();
        assert_eq!(
            unsafe { sphana_llm_cancellation_new(&mut cancel) },
            SPHANA_LLM_OK
        );
        let mut p = greedy(8);
        p.cancel = cancel;
        panic_at("on_text");
        let g = generate(m, Prompt::Text(HELLO), Some(&mut p), usize::MAX);
        let message = last_error();
        // The flag is still usable and freeable.
        assert_eq!(sphana_llm_cancellation_cancel(cancel), SPHANA_LLM_OK);
        sphana_llm_cancellation_free(cancel);
        (g, message)
    });
    assert_eq!(g.0.status, SPHANA_LLM_ERR_INTERNAL, "{}", g.1);
    assert!(g.1.contains("injected panic at on_text"), "{}", g.1);
    assert_eq!(reference(m), want, "generation after a panic in on_text");

    // ---- "stream_push": the decoder's lock is poisoned, its state unchanged ----
    let mut d = null_mut();
    assert_eq!(
        unsafe { sphana_llm_stream_decoder_new(m.0, 0, &mut d) },
        SPHANA_LLM_OK
    );
    let mut streamed = Vec::new();
    for (i, &id) in want_ids.iter().enumerate() {
        if i == want_ids.len() / 2 {
            panic_at("stream_push");
            let mut buf = [0u8; 64];
            let mut len = 0;
            let status = unsafe {
                sphana_llm_stream_decoder_push(d, id, buf.as_mut_ptr().cast(), 64, &mut len)
            };
            assert_internal(status, "stream_push");
        }
        let mut buf = [0u8; 64];
        let mut len = 0;
        let status =
            unsafe { sphana_llm_stream_decoder_push(d, id, buf.as_mut_ptr().cast(), 64, &mut len) };
        assert_eq!(
            status,
            SPHANA_LLM_OK,
            "push after the panic: {}",
            last_error()
        );
        streamed.extend_from_slice(&buf[..len]);
    }
    let mut buf = [0u8; 64];
    let mut len = 0;
    assert_eq!(
        unsafe { sphana_llm_stream_decoder_flush(d, buf.as_mut_ptr().cast(), 64, &mut len) },
        SPHANA_LLM_OK
    );
    streamed.extend_from_slice(&buf[..len]);
    sphana_llm_stream_decoder_free(d);
    assert_eq!(streamed, HELLO, "the stream after a panic inside push");

    // ---- many threads panicking at once, the others unaffected ----
    let results: Vec<(i32, String, Generated)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    if i % 2 == 0 {
                        panic_at("entry");
                    }
                    let g = generate(m, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX);
                    disarm();
                    (g.status, last_error(), g)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (status, message, g)) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(*status, SPHANA_LLM_ERR_INTERNAL, "thread {i}: {message}");
        } else {
            assert_eq!(g, &want, "thread {i} (no panic)");
        }
    }

    // The process goes on: a fresh load works and the old handle is intact.
    let fresh = load(&micro::micro_dir(), |_| {});
    assert_eq!(reference(fresh), want);
    sphana_llm_free(fresh.0);
    assert_eq!(reference(m), want);
    assert_eq!(tokenize(m, HELLO), (SPHANA_LLM_OK, want_ids));
    sphana_llm_free(m.0);
}

/// A panic in the generation that runs a batched decode step (the leader) fails that step
/// for every generation in the batch — with an error, not a hang — and the handle goes on
/// batching correctly.
#[test]
fn a_panic_inside_a_batched_step_fails_the_batch_and_batching_goes_on() {
    use sphana_llm::{Flow, GenerateParams, Model};
    use std::sync::{Arc, Barrier};

    let model = Arc::new(
        Model::load(
            common::model_dir("tiny-llama/fp32"),
            &common::load_options(),
        )
        .unwrap(),
    );
    let golden = common::model_reference("tiny_llama");
    let prompts: Vec<(Vec<u32>, Vec<u32>)> = golden["variants"]["fp32"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (common::ids(&p["prompt_ids"]), common::ids(&p["new_ids"])))
        .collect();
    let run_all = |arm: bool| {
        let model = Arc::clone(&model);
        let prompts = prompts.clone();
        watchdog("concurrent generations", move || {
            let barrier = Arc::new(Barrier::new(prompts.len()));
            let threads: Vec<_> = prompts
                .into_iter()
                .map(|(prompt, expected)| {
                    let model = Arc::clone(&model);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        let params = GenerateParams {
                            max_new_tokens: expected.len(),
                            ignore_eos: true,
                            ..Default::default()
                        };
                        let mut first = true;
                        let result = model.generate_from_ids(&prompt, &params, &mut |_| {
                            if std::mem::take(&mut first) {
                                barrier.wait();
                                if arm {
                                    // The next session.run this thread performs panics.
                                    panic_at("session_run");
                                }
                            }
                            Flow::Continue
                        });
                        (result, expected)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
        })
    };

    let outcomes = run_all(true);
    let panicked = outcomes.iter().filter(|o| o.is_err()).count();
    assert!(panicked >= 1, "no generation reached the injected panic");
    for outcome in outcomes.into_iter().flatten() {
        let error = outcome
            .0
            .expect_err("a generation in a failed batch succeeded");
        assert!(
            error.to_string().contains("batched decode step failed"),
            "{error}"
        );
    }
    let outcomes = run_all(false);
    let mut batched = 0;
    for outcome in outcomes {
        let (result, expected) = outcome.expect("no panic armed");
        let generation = result.expect("generation after the panic");
        assert_eq!(generation.token_ids, expected);
        batched += generation.stats.batched_steps;
    }
    assert!(batched > 0, "the handle stopped batching after the panic");
}
