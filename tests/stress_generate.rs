//! Generation under concurrency, through the C ABI: 16 threads run a random mix of
//! generate (greedy, sampled, with stop strings, from ids, chat), generations cancelled
//! from another thread at a random moment, callbacks that stop early, tokenize / decode /
//! streaming decode / chat rendering, and load → generate → free of private handles, on
//! shared handles — while one thread keeps replacing a shared "victim" handle (load the
//! new one, publish it, free the old one) that the others are using.
//!
//! Every result is compared with a single-threaded run made first: greedy and seeded
//! sampling are deterministic, so a concurrent run must give the same ids, text and
//! chunks; a cancelled or early-stopped run must give a prefix of the reference. A call
//! on a victim handle that was freed meanwhile may only fail with INVALID_ARGUMENT
//! ("not live"). The whole run has a watchdog, so a deadlock fails instead of hanging.
//!
//! `STRESS_OPS` sets the operations per thread (default 250; RELIABILITY.md records
//! longer runs in release).

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use capi::{generate, greedy, last_error, message, Generated, Handle, Prompt};
use micro::load;
use sphana_llm::ffi::*;

const THREADS: usize = 16;

const PROMPTS: [&str; 4] = [
    "Hello world! The quick brown fox",
    "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    "日本語のテキスト。 Ça va? ✓",
    "def main():\n    return 42",
];
const LENGTHS: [u32; 3] = [1, 5, 16];

/// The parameter sets an operation may use (all deterministic).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Mode {
    Greedy,
    Sampled(u64),
    Stops,
}

fn params(mode: Mode, n: u32, stops: &[*const c_char; 2]) -> SphanaLlmGenerateParams {
    let mut p = greedy(n);
    match mode {
        Mode::Greedy => {}
        Mode::Sampled(seed) => {
            p.temperature = 0.9;
            p.top_k = 50;
            p.top_p = 0.95;
            p.min_p = 0.01;
            p.repetition_penalty = 1.2;
            p.seed = seed;
        }
        Mode::Stops => {
            p.stop_strings = stops.as_ptr();
            p.stop_string_count = 2;
        }
    }
    p
}

type Key = (usize, Mode, u32);

/// Single-threaded results every concurrent operation is checked against.
struct Reference {
    generations: HashMap<Key, Generated>,
    from_ids: Vec<(Vec<i32>, Generated)>,
    chat: Vec<Generated>,
    chat_text: Vec<String>,
    tokens: Vec<Vec<i32>>,
    /// The cancellable run: 200 tokens (context 256) from each prompt.
    long: Vec<Generated>,
    short_context: Generated,
}

fn stop_strings() -> ([CString; 2], [*const c_char; 2]) {
    let owned = [CString::new("e").unwrap(), CString::new("ö").unwrap()];
    let ptrs = [owned[0].as_ptr(), owned[1].as_ptr()];
    (owned, ptrs)
}

/// The prompts' ids (ADD_SPECIAL), in one call: a victim handle may be freed meanwhile.
fn tokenize(m: Handle, text: &[u8]) -> Result<Vec<i32>, i32> {
    capi::tokenize_into(m, text, SPHANA_LLM_TOKENIZE_ADD_SPECIAL, 512)
}

fn decode(m: Handle, ids: &[i32]) -> Result<String, i32> {
    capi::decode(m, ids, SPHANA_LLM_DECODE_SKIP_SPECIAL)
}

fn stream(m: Handle, ids: &[i32]) -> Result<String, i32> {
    capi::stream(m, ids, SPHANA_LLM_DECODE_SKIP_SPECIAL)
}

fn chat_messages(prompt: usize) -> [SphanaLlmChatMessage; 2] {
    [
        message("system", b"Answer briefly."),
        message("user", PROMPTS[prompt].as_bytes()),
    ]
}

fn apply_chat(m: Handle, prompt: usize) -> Result<String, i32> {
    let msgs = chat_messages(prompt);
    let mut out = null_mut();
    let status = unsafe { sphana_llm_apply_chat_template(m.0, msgs.as_ptr(), 2, 1, &mut out) };
    if status != SPHANA_LLM_OK {
        return Err(status);
    }
    let text = unsafe { std::ffi::CStr::from_ptr(out) }
        .to_str()
        .unwrap()
        .to_owned();
    unsafe { sphana_llm_string_free(out) };
    Ok(text)
}

impl Reference {
    fn new(m: Handle, short: Handle, short_prompt: &[i32]) -> Self {
        let (_owned, stops) = stop_strings();
        let mut generations = HashMap::new();
        for (prompt, text) in PROMPTS.iter().enumerate() {
            for mode in [
                Mode::Greedy,
                Mode::Sampled(1),
                Mode::Sampled(2),
                Mode::Stops,
            ] {
                for &n in &LENGTHS {
                    let g = generate(
                        m,
                        Prompt::Text(text.as_bytes()),
                        Some(&mut params(mode, n, &stops)),
                        usize::MAX,
                    );
                    assert_eq!(g.status, SPHANA_LLM_OK, "{}", last_error());
                    generations.insert((prompt, mode, n), g);
                }
            }
        }
        let tokens: Vec<Vec<i32>> = PROMPTS
            .iter()
            .map(|p| tokenize(m, p.as_bytes()).unwrap())
            .collect();
        let from_ids = tokens
            .iter()
            .map(|ids| {
                let ids = ids[1..].to_vec();
                let g = generate(m, Prompt::Ids(&ids), Some(&mut greedy(6)), usize::MAX);
                assert_eq!(g.status, SPHANA_LLM_OK);
                (ids, g)
            })
            .collect();
        let chat = (0..PROMPTS.len())
            .map(|p| {
                let g = generate(
                    m,
                    Prompt::Chat(&chat_messages(p)),
                    Some(&mut greedy(6)),
                    usize::MAX,
                );
                assert_eq!(g.status, SPHANA_LLM_OK);
                g
            })
            .collect();
        let chat_text = (0..PROMPTS.len())
            .map(|p| apply_chat(m, p).unwrap())
            .collect();
        let long = (0..PROMPTS.len())
            .map(|p| {
                let g = generate(
                    m,
                    Prompt::Text(PROMPTS[p].as_bytes()),
                    Some(&mut greedy(200)),
                    usize::MAX,
                );
                assert_eq!(g.status, SPHANA_LLM_OK);
                assert_eq!(g.generated_tokens, 200);
                g
            })
            .collect();
        let short_context = generate(
            short,
            Prompt::Ids(short_prompt),
            Some(&mut greedy(4)),
            usize::MAX,
        );
        assert_eq!(short_context.status, SPHANA_LLM_OK);
        Reference {
            generations,
            from_ids,
            chat,
            chat_text,
            tokens,
            long,
            short_context,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Shared {
    reference: Reference,
    /// Loaded with session_count 2.
    micro: Handle,
    short: Handle,
    short_prompt: Vec<i32>,
    /// The current victim handle (replaced and freed while in use).
    victim: AtomicUsize,
    ops: AtomicUsize,
    cancelled_early: AtomicUsize,
    victim_gone: AtomicUsize,
}

/// A result of a call on the victim handle: equal to the reference, or the handle was freed.
fn victim_ok(shared: &Shared, status: i32, same: bool, what: &str) {
    if status == SPHANA_LLM_ERR_INVALID_ARGUMENT && last_error().contains("not live") {
        shared.victim_gone.fetch_add(1, Ordering::Relaxed);
        return;
    }
    assert_eq!(
        status,
        SPHANA_LLM_OK,
        "{what} on the victim: {}",
        last_error()
    );
    assert!(same, "{what} on the victim differs from the reference");
}

fn one_op(shared: &Shared, rng: &mut Rng, thread: usize) {
    let r = &shared.reference;
    let m = shared.micro;
    let prompt = rng.below(PROMPTS.len());
    let (_owned, stops) = stop_strings();
    match rng.below(12) {
        0..=2 => {
            let mode = [
                Mode::Greedy,
                Mode::Sampled(1),
                Mode::Sampled(2),
                Mode::Stops,
            ][rng.below(4)];
            let n = LENGTHS[rng.below(LENGTHS.len())];
            let g = generate(
                m,
                Prompt::Text(PROMPTS[prompt].as_bytes()),
                Some(&mut params(mode, n, &stops)),
                usize::MAX,
            );
            assert_eq!(
                &g,
                &r.generations[&(prompt, mode, n)],
                "generate {prompt} {mode:?} {n}"
            );
        }
        3 => {
            let (ids, want) = &r.from_ids[prompt];
            let g = generate(m, Prompt::Ids(ids), Some(&mut greedy(6)), usize::MAX);
            assert_eq!(&g, want, "generate_from_ids {prompt}");
        }
        4 => {
            let g = generate(
                m,
                Prompt::Chat(&chat_messages(prompt)),
                Some(&mut greedy(6)),
                usize::MAX,
            );
            assert_eq!(g, r.chat[prompt], "generate_chat {prompt}");
            assert_eq!(apply_chat(m, prompt).unwrap(), r.chat_text[prompt]);
        }
        5 => {
            // Cancelled from another thread at a random moment.
            let mut cancel = null_mut();
            assert_eq!(
                unsafe { sphana_llm_cancellation_new(&mut cancel) },
                SPHANA_LLM_OK
            );
            let cancel_addr = cancel as usize;
            let delay = Duration::from_micros(rng.next() % 20_000);
            let g = std::thread::scope(|s| {
                s.spawn(move || {
                    std::thread::sleep(delay);
                    assert_eq!(
                        sphana_llm_cancellation_cancel(cancel_addr as *mut _),
                        SPHANA_LLM_OK
                    );
                });
                let mut p = greedy(200);
                p.cancel = cancel;
                generate(
                    m,
                    Prompt::Text(PROMPTS[prompt].as_bytes()),
                    Some(&mut p),
                    usize::MAX,
                )
            });
            sphana_llm_cancellation_free(cancel);
            let want = &r.long[prompt];
            assert_eq!(
                g.status,
                SPHANA_LLM_OK,
                "cancelled generate: {}",
                last_error()
            );
            if g.finish == SPHANA_LLM_FINISH_CANCELLED {
                shared.cancelled_early.fetch_add(1, Ordering::Relaxed);
                assert!(
                    want.ids.starts_with(&g.ids),
                    "cancelled ids are not a prefix"
                );
                assert!(
                    want.chunks.starts_with(&g.chunks),
                    "cancelled chunks are not a prefix"
                );
                assert_eq!(g.text.as_deref().unwrap(), g.chunks.concat());
            } else {
                assert_eq!(&g, want, "a generation the cancel came too late for");
            }
        }
        6 => {
            // The callback stops after k chunks.
            let want = &r.generations[&(prompt, Mode::Greedy, 16)];
            let k = 1 + rng.below(want.chunks.len().max(1));
            let g = generate(
                m,
                Prompt::Text(PROMPTS[prompt].as_bytes()),
                Some(&mut greedy(16)),
                k,
            );
            assert_eq!(g.status, SPHANA_LLM_OK);
            if k < want.chunks.len() {
                assert_eq!(g.finish, SPHANA_LLM_FINISH_CANCELLED);
                assert_eq!(g.chunks, want.chunks[..k], "callback stop after {k}");
            }
        }
        7 => {
            let ids = tokenize(m, PROMPTS[prompt].as_bytes()).unwrap();
            assert_eq!(ids, r.tokens[prompt]);
            assert_eq!(decode(m, &ids).unwrap(), PROMPTS[prompt]);
            assert_eq!(stream(m, &ids).unwrap(), PROMPTS[prompt]);
        }
        8 => {
            // A private handle: load, generate, free.
            let h = load(&micro::micro_dir(), |o| o.intra_op_threads = 1);
            let g = generate(
                h,
                Prompt::Text(PROMPTS[prompt].as_bytes()),
                Some(&mut greedy(5)),
                usize::MAX,
            );
            sphana_llm_free(h.0);
            assert_eq!(
                g,
                r.generations[&(prompt, Mode::Greedy, 5)],
                "private handle"
            );
        }
        9 => {
            // The victim: may be freed under us.
            let v = Handle(shared.victim.load(Ordering::Acquire) as *mut SphanaLlmModel);
            let want = &r.generations[&(prompt, Mode::Greedy, 5)];
            let g = generate(
                v,
                Prompt::Text(PROMPTS[prompt].as_bytes()),
                Some(&mut greedy(5)),
                usize::MAX,
            );
            victim_ok(shared, g.status, g == *want, "generate");
            let t = tokenize(v, PROMPTS[prompt].as_bytes());
            victim_ok(
                shared,
                t.as_ref().err().copied().unwrap_or(SPHANA_LLM_OK),
                t.as_ref().ok() == Some(&r.tokens[prompt]),
                "tokenize",
            );
        }
        10 if thread == 0 || rng.below(8) == 0 => {
            // Replace the victim: publish a new handle, then free the old one.
            let new = load(&micro::micro_dir(), |o| o.intra_op_threads = 1);
            let old = shared.victim.swap(new.0 as usize, Ordering::AcqRel);
            sphana_llm_free(old as *mut SphanaLlmModel);
        }
        10 => {
            let mut n = 0;
            assert_eq!(
                unsafe { sphana_llm_context_length(m.0, &mut n) },
                SPHANA_LLM_OK
            );
            assert_eq!(n, 256);
            let mut eos = [0i32; 4];
            assert_eq!(
                unsafe { sphana_llm_eos_ids(m.0, eos.as_mut_ptr(), 4, &mut n) },
                SPHANA_LLM_OK
            );
        }
        _ => {
            let g = generate(
                shared.short,
                Prompt::Ids(&shared.short_prompt),
                Some(&mut greedy(4)),
                usize::MAX,
            );
            assert_eq!(g, r.short_context, "tiny-llama short-context");
        }
    }
    shared.ops.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn generation_from_many_threads_equals_single_threaded() {
    let ops_per_thread: usize = std::env::var("STRESS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let micro_h = load(&micro::micro_dir(), |o| {
        o.session_count = 2;
        o.intra_op_threads = 1;
    });
    let short = load(&common::model_dir("tiny-llama/short-context"), |o| {
        o.intra_op_threads = 1
    });
    let golden = common::model_reference("tiny_llama");
    let short_prompt: Vec<i32> =
        common::ids(&golden["variants"]["short-context"]["prompts"][1]["prompt_ids"])
            .into_iter()
            .map(|id| id as i32)
            .collect();
    let reference = Reference::new(micro_h, short, &short_prompt);
    let victim = load(&micro::micro_dir(), |o| o.intra_op_threads = 1);
    let shared = Arc::new(Shared {
        reference,
        micro: micro_h,
        short,
        short_prompt,
        victim: AtomicUsize::new(victim.0 as usize),
        ops: AtomicUsize::new(0),
        cancelled_early: AtomicUsize::new(0),
        victim_gone: AtomicUsize::new(0),
    });

    let (tx, rx) = mpsc::channel();
    let runner = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        let mut rng = Rng(0x9e37_79b9_7f4a_7c15
                            ^ (t as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
                        for _ in 0..ops_per_thread {
                            one_op(&shared, &mut rng, t);
                        }
                    })
                })
                .collect();
            let failed = workers
                .into_iter()
                .map(|w| w.join())
                .filter(Result::is_err)
                .count();
            let _ = tx.send(failed);
        })
    };
    let watchdog = Duration::from_secs(60 * 20);
    let failed = rx
        .recv_timeout(watchdog)
        .unwrap_or_else(|_| panic!("no result within {watchdog:?}: deadlock?"));
    runner.join().unwrap();
    let ops = shared.ops.load(Ordering::Relaxed);
    let batched = capi::BATCHED_STEPS.load(Ordering::Relaxed);
    println!(
        "{ops} operations on {THREADS} threads; {} cancelled mid-way; {} calls found the victim freed; {batched} decode steps batched with other generations",
        shared.cancelled_early.load(Ordering::Relaxed),
        shared.victim_gone.load(Ordering::Relaxed)
    );
    assert_eq!(
        failed, 0,
        "{failed} worker threads failed (see their panics above)"
    );
    assert_eq!(ops, THREADS * ops_per_thread);
    // Generations on the shared handles batch their decode steps (continuous batching is the
    // default), so the exact-equality checks above covered batched generation too.
    assert!(batched > 0, "no decode step ran batched");
    sphana_llm_free(shared.victim.load(Ordering::Relaxed) as *mut SphanaLlmModel);
    sphana_llm_free(micro_h.0);
    sphana_llm_free(short.0);
}
