//! One model handle shared by 16 threads through the C ABI.
//!
//! A single-threaded pass first computes every result (and is itself checked against the
//! Python-made goldens); then 16 threads run a random mix of tokenize (all flag
//! combinations), tokenize_with_offsets, tokenize_batch, decode, streaming decode and
//! lookups on the one handle, while other threads load and free their own handles and
//! one handle is freed while two threads are still using it. Every concurrent result
//! must equal the single-threaded one.

#[path = "support/capi.rs"]
mod capi;
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capi::{
    decode, last_error, stream, tokenize, tokenize_batch, tokenize_with_offsets, try_load_with,
    try_tokenize, Handle,
};
use sphana_llm::ffi::*;

const THREADS: usize = 16;
const OPS_PER_THREAD: usize = 600;
const FLAGS: [u32; 4] = [
    0,
    SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
    SPHANA_LLM_TOKENIZE_PARSE_SPECIAL,
    SPHANA_LLM_TOKENIZE_ADD_SPECIAL | SPHANA_LLM_TOKENIZE_PARSE_SPECIAL,
];

fn load(path: &Path) -> Result<Handle, String> {
    try_load_with(path, None)
        .map_err(|(status, e)| format!("load {}: {status}: {e}", path.display()))
}

/// Everything the threads compare against, per text and flag combination.
#[derive(Debug, Clone, PartialEq)]
struct Reference {
    ids: Vec<i32>,
    spans: Vec<(usize, usize)>,
    decoded: String,
    decoded_skip: String,
    streamed: String,
    streamed_skip: String,
}

fn reference(m: Handle, text: &str, flags: u32) -> Reference {
    let what = |e: i32| format!("{text:?} flags {flags}: status {e}: {}", last_error());
    let ids = tokenize(m, text.as_bytes(), flags).unwrap_or_else(|e| panic!("{}", what(e)));
    let (offset_ids, spans) =
        tokenize_with_offsets(m, text.as_bytes(), flags).unwrap_or_else(|e| panic!("{}", what(e)));
    assert_eq!(offset_ids, ids, "{text:?}: tokenize_with_offsets ids");
    let decoded = decode(m, &ids, 0).unwrap_or_else(|e| panic!("{}", what(e)));
    let decoded_skip =
        decode(m, &ids, SPHANA_LLM_DECODE_SKIP_SPECIAL).unwrap_or_else(|e| panic!("{}", what(e)));
    let streamed = stream(m, &ids, 0).unwrap_or_else(|e| panic!("{}", what(e)));
    let streamed_skip =
        stream(m, &ids, SPHANA_LLM_DECODE_SKIP_SPECIAL).unwrap_or_else(|e| panic!("{}", what(e)));
    assert_eq!(streamed, decoded, "{text:?}: streamed vs decoded");
    assert_eq!(
        streamed_skip, decoded_skip,
        "{text:?}: streamed vs decoded (skip)"
    );
    Reference {
        ids,
        spans,
        decoded,
        decoded_skip,
        streamed,
        streamed_skip,
    }
}

/// xorshift64*: deterministic per thread, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The texts: every golden input plus three slices of the 1 MiB multilingual text.
fn texts() -> Vec<(String, String)> {
    let mut texts = common::inputs();
    let big = common::big_text();
    for (i, start) in [0usize, 300_000, 700_000].into_iter().enumerate() {
        let mut s = start;
        while !big.is_char_boundary(s) {
            s += 1;
        }
        let mut e = s + 1500;
        while !big.is_char_boundary(e) {
            e += 1;
        }
        texts.push((format!("big_slice_{i}"), big[s..e].to_owned()));
    }
    texts
}

/// Golden ids of `name` for `paragraph` with ADD_SPECIAL, and their golden decode with
/// special tokens skipped (used by the loader threads).
fn golden_paragraph(name: &str) -> (Vec<i32>, String) {
    let golden = common::golden(&format!("tokenizers/{name}.json"));
    let case = golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["input"] == "paragraph" && c["add_special"] == true && c["parse_special"] == false
        })
        .unwrap();
    (
        common::ids(&case["ids"])
            .into_iter()
            .map(|id| id as i32)
            .collect(),
        case["decoded_skip_special"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn one_handle_many_threads() {
    let started = Instant::now();
    let model = load(&common::tokenizer_dir("llama3.2")).unwrap();
    let texts = texts();

    // ---- single-threaded reference, checked against the goldens ----
    let mut refs: HashMap<(usize, u32), Reference> = HashMap::new();
    for (t, (_, text)) in texts.iter().enumerate() {
        for flags in FLAGS {
            refs.insert((t, flags), reference(model, text, flags));
        }
    }
    let golden = common::golden("tokenizers/llama3.2.json");
    let index: HashMap<&str, usize> = texts
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();
    let mut checked = 0;
    for case in golden["cases"].as_array().unwrap() {
        let name = case["input"].as_str().unwrap();
        let add = case["add_special"].as_bool().unwrap();
        let parse = case["parse_special"].as_bool().unwrap();
        let flags = u32::from(add) * SPHANA_LLM_TOKENIZE_ADD_SPECIAL
            + u32::from(parse) * SPHANA_LLM_TOKENIZE_PARSE_SPECIAL;
        let r = &refs[&(index[name], flags)];
        let want: Vec<i32> = common::ids(&case["ids"])
            .into_iter()
            .map(|i| i as i32)
            .collect();
        assert_eq!(r.ids, want, "{name} flags {flags}: ids vs golden");
        assert_eq!(
            r.decoded,
            case["decoded"].as_str().unwrap(),
            "{name}: decoded"
        );
        assert_eq!(
            r.decoded_skip,
            case["decoded_skip_special"].as_str().unwrap(),
            "{name}: decoded_skip_special"
        );
        if let Some(offsets) = case.get("offsets").and_then(|o| o.as_array()) {
            let want: Vec<(usize, usize)> = offsets
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap() as usize,
                        p[1].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            assert_eq!(r.spans, want, "{name}: offsets vs golden");
        }
        checked += 1;
    }
    assert!(checked >= 80, "only {checked} golden cases");
    let mut eot = -1;
    assert_eq!(
        unsafe { sphana_llm_token_to_id(model.0, c"<|eot_id|>".as_ptr(), 10, &mut eot) },
        SPHANA_LLM_OK
    );
    assert_eq!(Some(eot as u64), golden["token_ids"]["<|eot_id|>"].as_u64());
    let golden_eos: Vec<i32> = common::ids(&golden["eos_ids"])
        .into_iter()
        .map(|i| i as i32)
        .collect();
    let reference_time = started.elapsed();

    // ---- everything at once ----
    let refs = Arc::new(refs);
    let texts = Arc::new(texts);
    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for t in 0..THREADS {
        let (refs, texts) = (Arc::clone(&refs), Arc::clone(&texts));
        let golden_eos = golden_eos.clone();
        workers.push(std::thread::spawn(move || -> Vec<String> {
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
            let mut bad = Vec::new();
            let mut report = |what: String| {
                if bad.len() < 20 {
                    bad.push(format!("thread {t}: {what}"));
                }
            };
            for op in 0..OPS_PER_THREAD {
                let ti = rng.below(texts.len());
                let flags = FLAGS[rng.below(4)];
                let (name, text) = &texts[ti];
                let r = &refs[&(ti, flags)];
                match rng.below(7) {
                    0 | 1 => match tokenize(model, text.as_bytes(), flags) {
                        Ok(ids) if ids == r.ids => {}
                        other => report(format!("tokenize {name} {flags}: {other:?}")),
                    },
                    2 => match tokenize_with_offsets(model, text.as_bytes(), flags) {
                        Ok((ids, spans)) if ids == r.ids && spans == r.spans => {}
                        other => report(format!("offsets {name} {flags}: {other:?}")),
                    },
                    3 => {
                        let picks: Vec<usize> = (0..1 + rng.below(6))
                            .map(|_| rng.below(texts.len()))
                            .collect();
                        let batch: Vec<&[u8]> =
                            picks.iter().map(|&i| texts[i].1.as_bytes()).collect();
                        match tokenize_batch(model, &batch, flags) {
                            Ok(all)
                                if all.len() == picks.len()
                                    && all
                                        .iter()
                                        .zip(&picks)
                                        .all(|(ids, &i)| *ids == refs[&(i, flags)].ids) => {}
                            other => report(format!("batch {picks:?} {flags}: {other:?}")),
                        }
                    }
                    4 => {
                        let skip = rng.below(2) == 1;
                        let want = if skip { &r.decoded_skip } else { &r.decoded };
                        let flags = if skip {
                            SPHANA_LLM_DECODE_SKIP_SPECIAL
                        } else {
                            0
                        };
                        match decode(model, &r.ids, flags) {
                            Ok(text) if &text == want => {}
                            other => report(format!("decode {name}: {other:?}")),
                        }
                    }
                    5 => {
                        let skip = rng.below(2) == 1;
                        let want = if skip { &r.streamed_skip } else { &r.streamed };
                        let flags = if skip {
                            SPHANA_LLM_DECODE_SKIP_SPECIAL
                        } else {
                            0
                        };
                        match stream(model, &r.ids, flags) {
                            Ok(text) if &text == want => {}
                            other => report(format!("stream {name}: {other:?}")),
                        }
                    }
                    _ => {
                        // Lookups, and a per-thread error message that no other thread may clobber.
                        let mut eos = [0i32; 8];
                        let mut n = 0;
                        let st =
                            unsafe { sphana_llm_eos_ids(model.0, eos.as_mut_ptr(), 8, &mut n) };
                        if st != SPHANA_LLM_OK || eos[..n] != golden_eos[..] {
                            report(format!("eos_ids: {st} {:?}", &eos[..n]));
                        }
                        let mut id = -1;
                        let st = unsafe {
                            sphana_llm_token_to_id(model.0, c"<|eot_id|>".as_ptr(), 10, &mut id)
                        };
                        if st != SPHANA_LLM_OK || id != eot {
                            report(format!("token_to_id: {st} {id}"));
                        }
                        let unique = format!("<|thread-{t}-op-{op}|>");
                        let st = unsafe {
                            sphana_llm_token_to_id(
                                model.0,
                                unique.as_ptr().cast(),
                                unique.len(),
                                &mut id,
                            )
                        };
                        std::thread::yield_now();
                        let message = last_error();
                        if st != SPHANA_LLM_ERR_NOT_FOUND || !message.contains(&unique) {
                            report(format!("last_error is not this thread's: {st} {message:?}"));
                        }
                    }
                }
            }
            bad
        }));
    }

    // Threads that load and free their own handles meanwhile.
    let mut loaders = Vec::new();
    for (i, name) in ["llama2-spm", "mistral-v1-spm"].into_iter().enumerate() {
        let (stop, loads) = (Arc::clone(&stop), Arc::clone(&loads));
        let (want, want_text) = golden_paragraph(name);
        let paragraph = texts
            .iter()
            .find(|(n, _)| n == "paragraph")
            .unwrap()
            .1
            .clone();
        loaders.push(std::thread::spawn(move || -> Vec<String> {
            let mut bad = Vec::new();
            let mut rounds = 0;
            while rounds < 2 || !stop.load(Ordering::Relaxed) {
                let h = match load(&common::tokenizer_dir(name)) {
                    Ok(h) => h,
                    Err(e) => {
                        bad.push(format!("loader {i}: {e}"));
                        break;
                    }
                };
                match tokenize(h, paragraph.as_bytes(), SPHANA_LLM_TOKENIZE_ADD_SPECIAL) {
                    Ok(ids) if ids == want => {}
                    other => bad.push(format!("loader {i} {name}: {other:?}")),
                }
                match stream(h, &want, SPHANA_LLM_DECODE_SKIP_SPECIAL) {
                    Ok(text) if text == want_text => {}
                    other => bad.push(format!("loader {i} {name} stream: {other:?}")),
                }
                sphana_llm_free(h.0);
                let mut n = 0;
                if unsafe { sphana_llm_vocab_size(h.0, &mut n) } != SPHANA_LLM_ERR_INVALID_ARGUMENT
                {
                    bad.push(format!("loader {i}: a freed handle still answers"));
                }
                rounds += 1;
                loads.fetch_add(1, Ordering::Relaxed);
            }
            bad
        }));
    }

    // A handle freed while two threads are still calling it: every call either succeeds
    // with the right ids or reports the freed handle; nothing else, no crash.
    let doomed = load(&common::tokenizer_dir("llama2-spm")).unwrap();
    let (want, _) = golden_paragraph("llama2-spm");
    let paragraph = texts
        .iter()
        .find(|(n, _)| n == "paragraph")
        .unwrap()
        .1
        .clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut users = Vec::new();
    for u in 0..2 {
        let (want, paragraph, calls) = (want.clone(), paragraph.clone(), Arc::clone(&calls));
        users.push(std::thread::spawn(move || -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match try_tokenize(
                    doomed,
                    paragraph.as_bytes(),
                    SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                ) {
                    Ok(ids) if ids == want => {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SPHANA_LLM_ERR_INVALID_ARGUMENT) if last_error().contains("not live") => {
                        return Vec::new()
                    }
                    other => {
                        return vec![format!(
                            "user {u} of the freed handle: {other:?} {}",
                            last_error()
                        )]
                    }
                }
                if Instant::now() > deadline {
                    return vec![format!(
                        "user {u}: the freed handle never reported being freed"
                    )];
                }
            }
        }));
    }
    while calls.load(Ordering::Relaxed) < 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    sphana_llm_free(doomed.0);

    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.join().expect("worker panicked"));
    }
    for u in users {
        failures.extend(u.join().expect("user of the freed handle panicked"));
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        failures.extend(l.join().expect("loader panicked"));
    }
    sphana_llm_free(model.0);
    println!(
        "reference {:.1?}; {THREADS} threads x {OPS_PER_THREAD} ops, {} loads, total {:.1?}",
        reference_time,
        loads.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        loads.load(Ordering::Relaxed) >= 4,
        "the loader threads barely ran"
    );
}
