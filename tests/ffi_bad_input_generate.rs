//! Bad input at the generation and chat entry points (and loading models that cannot
//! generate), through the C ABI: the counterpart of `ffi_bad_input.rs` for
//! `sphana_llm_generate*`, `sphana_llm_apply_chat_template`, cancellation and
//! `sphana_llm_context_length`.
//!
//! Table-driven like `ffi_bad_input.rs`: before each case the thread's message is primed
//! with a unique failure, so a failing case must replace it with a message naming the
//! problem and a succeeding case must leave it alone; after each case the handles must
//! still generate exactly what they generated before any case ran.
//!
//! Models: the micro model (context 256, chat template; built by
//! `scripts/setup/make_micro_model.py`), tiny-llama `short-context` (context 64, no chat
//! template) and the Llama 3.2 tokenizer loaded tokenizer-only, plus broken model
//! directories written to a temp dir.

#[path = "support/capi.rs"]
mod capi;
mod common;
#[path = "support/micro.rs"]
mod micro;

use std::ffi::{c_char, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use capi::{generate, greedy, last_error, message, Generated, Handle, Prompt};
use micro::{load, try_load};
use sphana_llm::ffi::*;

/// The status of the void entry points (`*_free`): only the message is checked.
const VOID: i32 = i32::MIN;

struct Fixture {
    root: PathBuf,
    /// Micro model: context 256, vocab 400, a ChatML-like template.
    micro: Handle,
    /// The micro model with max_input_bytes = 32.
    micro_limited: Handle,
    /// tiny-llama short-context: context 64, no chat template.
    short: Handle,
    /// Llama 3.2 tokenizer only (it has a chat template).
    tok_only: Handle,
    /// The micro model with a chat template that raises for role "tool".
    raising: Handle,
    /// The micro model with a chat template that does not compile.
    broken_template: Handle,
    micro_vocab: usize,
    /// What the healthy handles generate before any case ran.
    micro_reference: Generated,
    short_reference: Generated,
    short_prompt: Vec<i32>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for h in [
            self.micro,
            self.micro_limited,
            self.short,
            self.tok_only,
            self.raising,
            self.broken_template,
        ] {
            sphana_llm_free(h.0);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const HELLO: &[u8] = b"Hello world! The quick brown fox";

fn micro_reference(m: Handle) -> Generated {
    generate(m, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX)
}

fn short_reference(m: Handle, prompt: &[i32]) -> Generated {
    generate(m, Prompt::Ids(prompt), Some(&mut greedy(8)), usize::MAX)
}

impl Fixture {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "sphana-llm-bad-generate-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&root).unwrap();
        let micro_dir = micro::micro_dir();
        let write_dir = |name: &str, files: &[(&str, Vec<u8>)]| -> PathBuf {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (file, bytes) in files {
                std::fs::write(dir.join(file), bytes).unwrap();
            }
            dir
        };
        let read = |dir: &std::path::Path, file: &str| std::fs::read(dir.join(file)).unwrap();
        let micro_files = |template: Option<&str>| -> Vec<(&'static str, Vec<u8>)> {
            let mut files = vec![
                ("tokenizer.json", read(&micro_dir, "tokenizer.json")),
                ("config.json", read(&micro_dir, "config.json")),
                (
                    "generation_config.json",
                    read(&micro_dir, "generation_config.json"),
                ),
                ("model.onnx", read(&micro_dir, "model.onnx")),
            ];
            if let Some(t) = template {
                let config = serde_json::json!({
                    "bos_token": "<|bos|>", "eos_token": "<|im_end|>", "chat_template": t
                });
                files.push(("tokenizer_config.json", config.to_string().into_bytes()));
            }
            files
        };

        let micro = load(&micro_dir, |_| {});
        let micro_limited = load(&micro_dir, |o| o.max_input_bytes = 32);
        let short = load(&common::model_dir("tiny-llama/short-context"), |_| {});
        let tok_only = load(&common::tokenizer_dir("llama3.2"), |_| {});
        let raising = load(
            &write_dir(
                "raising",
                &micro_files(Some(
                    "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('tools are not supported here') }}{% endif %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
                )),
            ),
            |_| {},
        );
        let broken_template = load(
            &write_dir(
                "broken_template",
                &micro_files(Some("{% for m in messages %}{{ m.content }")),
            ),
            |_| {},
        );

        // Load-time fixtures (loaded by the cases).
        write_dir(
            "not_a_decoder",
            &[
                ("tokenizer.json", read(&micro_dir, "tokenizer.json")),
                ("model.onnx", micro::identity_onnx()),
            ],
        );
        let mut garbage = b"\x08\x07\x12\x04junk".to_vec();
        garbage.extend((0..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
        write_dir(
            "garbage_onnx",
            &[
                ("tokenizer.json", read(&micro_dir, "tokenizer.json")),
                ("model.onnx", garbage),
            ],
        );
        // The micro decoder (400 logits) with Llama 3.2's 128256-id tokenizer.
        write_dir(
            "narrow_logits",
            &[
                (
                    "tokenizer.json",
                    read(&common::tokenizer_dir("llama3.2"), "tokenizer.json"),
                ),
                ("model.onnx", read(&micro_dir, "model.onnx")),
            ],
        );
        // tiny-llama's decoder (128256 logits) with GPT-2's 50257-id tokenizer.
        let wide = write_dir(
            "wide_logits",
            &[(
                "tokenizer.json",
                read(&common::tokenizer_dir("gpt2"), "tokenizer.json"),
            )],
        );
        std::os::unix::fs::symlink(
            common::model_dir("tiny-llama/fp32").join("model.onnx"),
            wide.join("model.onnx"),
        )
        .unwrap();
        // A decoder section with a raw control character in a string: `tokenizers` used to
        // panic (`expect("Helper")`) on it instead of returning an error.
        let mut panicky: serde_json::Value =
            serde_json::from_slice(&read(&micro_dir, "tokenizer.json")).unwrap();
        panicky["decoder"] = serde_json::json!({"type": "PLACEHOLDER"});
        let panicky = serde_json::to_string(&panicky)
            .unwrap()
            .replace("PLACEHOLDER", "Byte\u{1}Level");
        write_dir("panicky_json", &[("tokenizer.json", panicky.into_bytes())]);
        write_dir(
            "two_onnx",
            &[
                ("tokenizer.json", read(&micro_dir, "tokenizer.json")),
                ("a.onnx", read(&micro_dir, "model.onnx")),
                ("b.onnx", read(&micro_dir, "model.onnx")),
            ],
        );

        let mut micro_vocab = 0;
        assert_eq!(
            unsafe { sphana_llm_vocab_size(micro.0, &mut micro_vocab) },
            SPHANA_LLM_OK
        );
        let golden = common::model_reference("tiny_llama");
        let short_prompt: Vec<i32> =
            common::ids(&golden["variants"]["short-context"]["prompts"][1]["prompt_ids"])
                .into_iter()
                .map(|id| id as i32)
                .collect();
        let micro_reference = micro_reference(micro);
        assert_eq!(micro_reference.status, SPHANA_LLM_OK, "{}", last_error());
        assert_eq!(micro_reference.generated_tokens, 8);
        let short_reference = short_reference(short, &short_prompt);
        assert_eq!(short_reference.status, SPHANA_LLM_OK, "{}", last_error());
        Fixture {
            root,
            micro,
            micro_limited,
            short,
            tok_only,
            raising,
            broken_template,
            micro_vocab,
            micro_reference,
            short_reference,
            short_prompt,
        }
    }
}

/// What a case did: its status, and anything else it found wrong.
struct Outcome {
    status: i32,
    problems: Vec<String>,
}

impl From<i32> for Outcome {
    fn from(status: i32) -> Self {
        Outcome {
            status,
            problems: Vec::new(),
        }
    }
}

impl Outcome {
    fn check(mut self, ok: bool, problem: impl FnOnce() -> String) -> Self {
        if !ok {
            self.problems.push(problem());
        }
        self
    }
}

/// A failed generation must leave no text and call no callback.
impl From<Generated> for Outcome {
    fn from(g: Generated) -> Self {
        let status = g.status;
        Outcome::from(status)
            .check(status == SPHANA_LLM_OK || g.text.is_none(), || {
                "a failed generation returned text".to_owned()
            })
            .check(status == SPHANA_LLM_OK || g.chunks.is_empty(), || {
                "a failed generation called the callback".to_owned()
            })
    }
}

struct Case<'a> {
    name: &'static str,
    want: i32,
    keywords: Vec<String>,
    run: Box<dyn Fn() -> Outcome + 'a>,
}

fn case<'a>(
    name: &'static str,
    want: i32,
    keywords: &[&str],
    run: impl Fn() -> Outcome + 'a,
) -> Case<'a> {
    Case {
        name,
        want,
        keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        run: Box::new(run),
    }
}

fn params_with(change: impl FnOnce(&mut SphanaLlmGenerateParams)) -> SphanaLlmGenerateParams {
    let mut p = greedy(4);
    change(&mut p);
    p
}

/// Generates on the micro model from HELLO with the changed parameters.
fn micro_with(fx: &Fixture, change: impl FnOnce(&mut SphanaLlmGenerateParams)) -> Outcome {
    generate(
        fx.micro,
        Prompt::Text(HELLO),
        Some(&mut params_with(change)),
        usize::MAX,
    )
    .into()
}

/// A caller compiled against a newer header: our params plus one unknown field.
#[repr(C)]
struct NewerParams {
    known: SphanaLlmGenerateParams,
    unknown_field: u64,
}

fn newer_params(fx: &Fixture, unknown_field: u64) -> Outcome {
    let mut p = NewerParams {
        known: greedy(4),
        unknown_field,
    };
    p.known.struct_size = std::mem::size_of::<NewerParams>() as u32;
    let status = unsafe {
        sphana_llm_generate(
            fx.micro.0,
            HELLO.as_ptr().cast(),
            HELLO.len(),
            &p.known,
            None,
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    status.into()
}

fn load_case(path: &std::path::Path, configure: impl FnOnce(&mut SphanaLlmLoadOptions)) -> Outcome {
    match try_load(path, configure) {
        Ok(h) => {
            sphana_llm_free(h.0);
            SPHANA_LLM_OK.into()
        }
        Err((status, _)) => status.into(),
    }
}

fn new_cancel() -> *mut SphanaLlmCancellation {
    let mut c = null_mut();
    assert_eq!(
        unsafe { sphana_llm_cancellation_new(&mut c) },
        SPHANA_LLM_OK
    );
    c
}

#[allow(clippy::too_many_lines)]
fn cases(fx: &Fixture) -> Vec<Case<'_>> {
    let forged = 0x1234usize as *mut SphanaLlmModel;
    let long_text: Vec<u8> = b"one two three four five six seven eight nine ten ".repeat(40);
    let long_text = &*Box::leak(long_text.into_boxed_slice());
    let v: Vec<Case<'_>> = vec![
        // ---- handles ----
        case(
            "generate: NULL model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle is NULL"],
            move || generate(Handle(null_mut()), Prompt::Text(HELLO), None, usize::MAX).into(),
        ),
        case(
            "generate: forged model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["0x1234", "not live"],
            move || generate(Handle(forged), Prompt::Text(HELLO), None, usize::MAX).into(),
        ),
        case(
            "generate: freed model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let h = load(&micro::micro_dir(), |_| {});
                sphana_llm_free(h.0);
                generate(h, Prompt::Text(HELLO), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate: cancellation handle as a model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle", "not live"],
            move || {
                let c = new_cancel();
                let g = generate(Handle(c.cast()), Prompt::Text(HELLO), None, usize::MAX);
                sphana_llm_cancellation_free(c);
                g.into()
            },
        ),
        case(
            "generate: tokenizer-only model",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["tokenizer-only"],
            move || {
                generate(
                    fx.tok_only,
                    Prompt::Text(HELLO),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        // ---- prompts ----
        case(
            "generate: NULL prompt with length 5",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["prompt", "NULL"],
            move || {
                let status = unsafe {
                    sphana_llm_generate(
                        fx.micro.0,
                        null(),
                        5,
                        null(),
                        None,
                        null_mut(),
                        null_mut(),
                        null_mut(),
                    )
                };
                status.into()
            },
        ),
        case(
            "generate: invalid UTF-8 prompt",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["prompt", "UTF-8"],
            move || {
                generate(
                    fx.micro,
                    Prompt::Text(b"ok \xc3\x28 bad"),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate: empty prompt without BOS",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["prompt is empty"],
            move || {
                generate(
                    fx.micro,
                    Prompt::Text(b""),
                    Some(&mut params_with(|p| p.add_special = 0)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate: prompt over max_input_bytes",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_input_bytes", "32"],
            move || {
                generate(
                    fx.micro_limited,
                    Prompt::Text(&long_text[..33]),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate: prompt longer than the context",
            SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
            &["context", "64"],
            move || {
                generate(
                    fx.short,
                    Prompt::Text(long_text),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate_from_ids: prompt filling the whole context",
            SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
            &["64 tokens", "no room"],
            move || {
                let ids = vec![791i32; 64];
                generate(
                    fx.short,
                    Prompt::Ids(&ids),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate_from_ids: NULL ids with count 3",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["ids", "NULL"],
            move || {
                let status = unsafe {
                    sphana_llm_generate_from_ids(
                        fx.micro.0,
                        null(),
                        3,
                        null(),
                        None,
                        null_mut(),
                        null_mut(),
                        null_mut(),
                    )
                };
                status.into()
            },
        ),
        case(
            "generate_from_ids: no ids",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["prompt is empty"],
            move || generate(fx.micro, Prompt::Ids(&[]), Some(&mut greedy(2)), usize::MAX).into(),
        ),
        case(
            "generate_from_ids: negative id",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-3"],
            move || {
                generate(
                    fx.micro,
                    Prompt::Ids(&[1, -3, 2]),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate_from_ids: id equal to the vocabulary size",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["400"],
            move || {
                generate(
                    fx.micro,
                    Prompt::Ids(&[1, fx.micro_vocab as i32]),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        // ---- parameters ----
        case(
            "params: struct_size 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["struct_size is 0"],
            move || micro_with(fx, |p| p.struct_size = 0),
        ),
        case(
            "params: struct_size one byte short",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["SphanaLlmGenerateParams.struct_size is"],
            move || micro_with(fx, |p| p.struct_size -= 1),
        ),
        case(
            "params: larger struct, unknown field set",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["does not know"],
            move || newer_params(fx, 7),
        ),
        case(
            "params: larger struct, unknown field zero",
            SPHANA_LLM_OK,
            &[],
            move || newer_params(fx, 0),
        ),
        case(
            "params: implausibly large struct_size",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["implausibly large"],
            move || micro_with(fx, |p| p.struct_size = u32::MAX),
        ),
        case(
            "params: NaN temperature",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["temperature", "NaN"],
            move || micro_with(fx, |p| p.temperature = f32::NAN),
        ),
        case(
            "params: infinite temperature",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["temperature", "inf"],
            move || micro_with(fx, |p| p.temperature = f32::INFINITY),
        ),
        case(
            "params: negative temperature",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["temperature", "-0.5"],
            move || micro_with(fx, |p| p.temperature = -0.5),
        ),
        case(
            "params: top_p 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["top_p", "(0, 1]"],
            move || micro_with(fx, |p| p.top_p = 0.0),
        ),
        case(
            "params: top_p above 1",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["top_p", "1.5"],
            move || micro_with(fx, |p| p.top_p = 1.5),
        ),
        case(
            "params: top_p NaN",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["top_p", "NaN"],
            move || micro_with(fx, |p| p.top_p = f32::NAN),
        ),
        case(
            "params: min_p 1",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["min_p"],
            move || micro_with(fx, |p| p.min_p = 1.0),
        ),
        case(
            "params: repetition_penalty 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["repetition_penalty"],
            move || micro_with(fx, |p| p.repetition_penalty = 0.0),
        ),
        case(
            "params: repetition_penalty NaN",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["repetition_penalty", "NaN"],
            move || micro_with(fx, |p| p.repetition_penalty = f32::NAN),
        ),
        case(
            "params: NULL stop_strings with count 2",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stop_strings", "NULL"],
            move || micro_with(fx, |p| p.stop_string_count = 2),
        ),
        case(
            "params: NULL stop string",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stop_strings[1] is NULL"],
            move || {
                let stops = [c"end".as_ptr(), null()];
                micro_with(fx, |p| {
                    p.stop_strings = stops.as_ptr();
                    p.stop_string_count = 2;
                })
            },
        ),
        case(
            "params: empty stop string",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stop strings must be 1 to 1024 bytes", "0 bytes"],
            move || {
                let stops = [c"".as_ptr()];
                micro_with(fx, |p| {
                    p.stop_strings = stops.as_ptr();
                    p.stop_string_count = 1;
                })
            },
        ),
        case(
            "params: stop string of 1025 bytes",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["1025 bytes"],
            move || {
                let long = CString::new(vec![b's'; 1025]).unwrap();
                let stops = [long.as_ptr()];
                micro_with(fx, |p| {
                    p.stop_strings = stops.as_ptr();
                    p.stop_string_count = 1;
                })
            },
        ),
        case(
            "params: invalid UTF-8 stop string",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["stop_strings[1]", "UTF-8"],
            move || {
                // Regression: the message named `stop_strings[i]` instead of the index.
                let bad = CString::new(vec![b'a', 0xff]).unwrap();
                let stops = [c"fine".as_ptr(), bad.as_ptr()];
                micro_with(fx, |p| {
                    p.stop_strings = stops.as_ptr();
                    p.stop_string_count = 2;
                })
            },
        ),
        case(
            "params: 65 stop strings",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["at most 64 stop strings", "65"],
            move || {
                let stops = vec![c"stop".as_ptr(); 65];
                micro_with(fx, |p| {
                    p.stop_strings = stops.as_ptr();
                    p.stop_string_count = 65;
                })
            },
        ),
        case(
            "params: NULL out_token_ids with capacity 4",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_token_ids"],
            move || micro_with(fx, |p| p.out_token_ids_capacity = 4),
        ),
        case(
            "params: forged cancellation",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle", "0x1234", "not live"],
            move || micro_with(fx, |p| p.cancel = 0x1234usize as *const _),
        ),
        case(
            "params: freed cancellation",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle", "not live"],
            move || {
                let c = new_cancel();
                sphana_llm_cancellation_free(c);
                micro_with(fx, |p| p.cancel = c)
            },
        ),
        case(
            "params: model handle as cancellation",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle", "not live"],
            move || micro_with(fx, |p| p.cancel = fx.micro.0.cast()),
        ),
        case(
            "stats: struct_size 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["SphanaLlmGenerateStats.struct_size is 0"],
            move || {
                let mut stats = SphanaLlmGenerateStats::default();
                let mut out: *mut c_char = std::ptr::dangling_mut::<c_char>();
                let status = unsafe {
                    sphana_llm_generate(
                        fx.micro.0,
                        HELLO.as_ptr().cast(),
                        HELLO.len(),
                        &greedy(2),
                        None,
                        null_mut(),
                        &mut out,
                        &mut stats,
                    )
                };
                Outcome::from(status)
                    .check(out.is_null(), || "*out_text not set to NULL".to_owned())
            },
        ),
        // ---- succeeding edge cases ----
        case(
            "stats: struct_size 16 gets 16 bytes",
            SPHANA_LLM_OK,
            &[],
            move || {
                #[repr(C)]
                struct Short {
                    stats: SphanaLlmGenerateStats,
                }
                let mut s = Short {
                    stats: SphanaLlmGenerateStats {
                        struct_size: 16,
                        finish_reason: -1,
                        prompt_tokens: 7,
                        generated_tokens: 99,
                        prefill_ms: -1.0,
                        decode_ms: -1.0,
                        session_run_ms: -1.0,
                        text_len: 777,
                        batched_steps: 555,
                        cached_tokens: 444,
                        draft_tokens: 333,
                        accepted_draft_tokens: 222,
                        constraint_ms: 111.0,
                    },
                };
                let status = unsafe {
                    sphana_llm_generate(
                        fx.micro.0,
                        HELLO.as_ptr().cast(),
                        HELLO.len(),
                        &greedy(3),
                        None,
                        null_mut(),
                        null_mut(),
                        &mut s.stats,
                    )
                };
                Outcome::from(status)
                    .check(
                        s.stats.finish_reason == SPHANA_LLM_FINISH_LENGTH
                            && s.stats.prompt_tokens > 0,
                        || {
                            format!(
                                "first 16 bytes not written: {} {}",
                                s.stats.finish_reason, s.stats.prompt_tokens
                            )
                        },
                    )
                    .check(
                        s.stats.generated_tokens == 99
                            && s.stats.prefill_ms == -1.0
                            && s.stats.text_len == 777
                            && s.stats.batched_steps == 555
                            && s.stats.cached_tokens == 444
                            && s.stats.draft_tokens == 333
                            && s.stats.accepted_draft_tokens == 222
                            && s.stats.constraint_ms == 111.0,
                        || "wrote past struct_size 16".to_owned(),
                    )
            },
        ),
        case(
            "params: out_token_ids capacity 2 of 6 ids",
            SPHANA_LLM_OK,
            &[],
            move || {
                let mut ids = [-9i32; 8];
                let mut p = greedy(6);
                p.out_token_ids = ids.as_mut_ptr();
                p.out_token_ids_capacity = 2;
                let g = generate(fx.micro, Prompt::Text(HELLO), Some(&mut p), usize::MAX);
                Outcome::from(g.status)
                    .check(ids[..2] == fx.micro_reference.ids[..2], || {
                        format!("ids {ids:?}")
                    })
                    .check(ids[2..].iter().all(|&v| v == -9), || {
                        format!("wrote past capacity: {ids:?}")
                    })
                    .check(g.generated_tokens == 6, || {
                        format!("{} tokens", g.generated_tokens)
                    })
            },
        ),
        case(
            "params: NULL params use the defaults",
            SPHANA_LLM_OK,
            &[],
            move || {
                let g = generate(fx.micro, Prompt::Text(HELLO), None, usize::MAX);
                Outcome::from(g.status).check(g.generated_tokens <= 256 - g.prompt_tokens, || {
                    "past the context".into()
                })
            },
        ),
        case(
            "generate: every output pointer NULL",
            SPHANA_LLM_OK,
            &[],
            move || {
                unsafe {
                    sphana_llm_generate(
                        fx.micro.0,
                        HELLO.as_ptr().cast(),
                        HELLO.len(),
                        &greedy(2),
                        None,
                        null_mut(),
                        null_mut(),
                        null_mut(),
                    )
                }
                .into()
            },
        ),
        case("params: max_new_tokens 0", SPHANA_LLM_OK, &[], move || {
            let g = generate(
                fx.micro,
                Prompt::Text(HELLO),
                Some(&mut greedy(0)),
                usize::MAX,
            );
            Outcome::from(g.status)
                .check(
                    g.finish == SPHANA_LLM_FINISH_LENGTH && g.generated_tokens == 0,
                    || format!("{g:?}"),
                )
                .check(g.text.as_deref() == Some(""), || format!("{g:?}"))
        }),
        case(
            "params: UINT32_MAX max_new_tokens stops at the context",
            SPHANA_LLM_OK,
            &[],
            move || {
                let g = generate(
                    fx.short,
                    Prompt::Ids(&fx.short_prompt),
                    Some(&mut greedy(u32::MAX)),
                    usize::MAX,
                );
                Outcome::from(g.status)
                    .check(g.finish == SPHANA_LLM_FINISH_CONTEXT_FULL, || {
                        format!("finish {}", g.finish)
                    })
                    .check(g.prompt_tokens + g.generated_tokens == 64, || {
                        format!("{} + {} tokens", g.prompt_tokens, g.generated_tokens)
                    })
            },
        ),
        case(
            "params: UINT32_MAX top_k and a seed sample",
            SPHANA_LLM_OK,
            &[],
            move || {
                micro_with(fx, |p| {
                    p.top_k = u32::MAX;
                    p.temperature = 1.0;
                    p.top_p = 0.5;
                    p.min_p = 0.01;
                    p.repetition_penalty = 1.3;
                    p.seed = u64::MAX;
                })
            },
        ),
        case(
            "callback returning non-zero at once",
            SPHANA_LLM_OK,
            &[],
            move || {
                let g = generate(fx.micro, Prompt::Text(HELLO), Some(&mut greedy(50)), 1);
                Outcome::from(g.status)
                    .check(g.finish == SPHANA_LLM_FINISH_CANCELLED, || {
                        format!("finish {}", g.finish)
                    })
                    .check(g.chunks.len() == 1, || {
                        format!("{} chunks after asking to stop", g.chunks.len())
                    })
                    .check(g.text.as_deref() == Some(g.chunks[0].as_str()), || {
                        format!("text {:?} vs chunks {:?}", g.text, g.chunks)
                    })
                    .check(
                        fx.micro_reference
                            .text
                            .as_deref()
                            .unwrap_or("")
                            .starts_with(&g.chunks[0]),
                        || "the chunk is not the reference's start".into(),
                    )
            },
        ),
        case("cancel before start", SPHANA_LLM_OK, &[], move || {
            let c = new_cancel();
            assert_eq!(sphana_llm_cancellation_cancel(c), SPHANA_LLM_OK);
            let g = generate(
                fx.micro,
                Prompt::Text(HELLO),
                Some(&mut params_with(|p| p.cancel = c)),
                usize::MAX,
            );
            sphana_llm_cancellation_free(c);
            Outcome::from(g.status)
                .check(
                    g.finish == SPHANA_LLM_FINISH_CANCELLED && g.generated_tokens == 0,
                    || format!("{g:?}"),
                )
                .check(g.text.as_deref() == Some("") && g.chunks.is_empty(), || {
                    format!("{g:?}")
                })
        }),
        case("cancel after finish", SPHANA_LLM_OK, &[], move || {
            let c = new_cancel();
            let g = generate(
                fx.micro,
                Prompt::Text(HELLO),
                Some(&mut greedy(8).with_cancel(c)),
                usize::MAX,
            );
            let cancelled = sphana_llm_cancellation_cancel(c);
            let again = generate(
                fx.micro,
                Prompt::Text(HELLO),
                Some(&mut greedy(8).with_cancel(c)),
                usize::MAX,
            );
            sphana_llm_cancellation_free(c);
            Outcome::from(cancelled)
                .check(
                    g.status == SPHANA_LLM_OK && g.text == fx.micro_reference.text,
                    || format!("before cancel: {g:?}"),
                )
                .check(
                    again.status == SPHANA_LLM_OK
                        && again.finish == SPHANA_LLM_FINISH_CANCELLED
                        && again.generated_tokens == 0,
                    || format!("with the cancelled flag: {again:?}"),
                )
        }),
        // ---- cancellation handles ----
        case(
            "cancellation_new: NULL out_cancel",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_cancel"],
            move || unsafe { sphana_llm_cancellation_new(null_mut()) }.into(),
        ),
        case(
            "cancellation_cancel: NULL",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle is NULL"],
            move || sphana_llm_cancellation_cancel(null_mut()).into(),
        ),
        case(
            "cancellation_cancel: freed",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle", "not live"],
            move || {
                let c = new_cancel();
                sphana_llm_cancellation_free(c);
                sphana_llm_cancellation_cancel(c).into()
            },
        ),
        case(
            "cancellation_cancel: model handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["cancellation handle", "not live"],
            move || sphana_llm_cancellation_cancel(fx.micro.0.cast()).into(),
        ),
        case(
            "cancellation_free: double free",
            VOID,
            &["cancellation handle", "freed twice"],
            move || {
                let c = new_cancel();
                sphana_llm_cancellation_free(c);
                sphana_llm_cancellation_free(c);
                VOID.into()
            },
        ),
        // ---- chat ----
        case(
            "generate_chat: NULL messages with count 1",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["messages", "NULL"],
            move || {
                let status = unsafe {
                    sphana_llm_generate_chat(
                        fx.micro.0,
                        null(),
                        1,
                        null(),
                        None,
                        null_mut(),
                        null_mut(),
                        null_mut(),
                    )
                };
                status.into()
            },
        ),
        case(
            "generate_chat: NULL role with length 4",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["messages[1].role", "NULL"],
            move || {
                let mut m = [message("system", b"Be brief."), message("user", b"Hi")];
                m[1].role = null();
                generate(fx.micro, Prompt::Chat(&m), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate_chat: empty role",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["messages[0].role is empty"],
            move || {
                let m = [message("", b"Hi")];
                generate(fx.micro, Prompt::Chat(&m), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate_chat: invalid UTF-8 content",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["messages[1].content", "UTF-8"],
            move || {
                let m = [
                    message("system", b"ok"),
                    message("user", b"bad \xe2\x28\xa1"),
                ];
                generate(fx.micro, Prompt::Chat(&m), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate_chat: content over max_input_bytes",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_input_bytes"],
            move || {
                let m = [message("user", &long_text[..40])];
                generate(
                    fx.micro_limited,
                    Prompt::Chat(&m),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate_chat: conversation longer than the context",
            SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
            &["context is 256"],
            move || {
                let m = [message("user", long_text)];
                generate(fx.micro, Prompt::Chat(&m), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate_chat: model without a chat template",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["no chat template"],
            move || {
                let m = [message("user", b"Hi")];
                generate(fx.short, Prompt::Chat(&m), Some(&mut greedy(2)), usize::MAX).into()
            },
        ),
        case(
            "generate_chat: tokenizer-only model",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["tokenizer-only"],
            move || {
                let m = [message("user", b"Hi")];
                generate(
                    fx.tok_only,
                    Prompt::Chat(&m),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "generate_chat: the template raises",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["tools are not supported here"],
            move || {
                let m = [message("user", b"Hi"), message("tool", b"{}")];
                generate(
                    fx.raising,
                    Prompt::Chat(&m),
                    Some(&mut greedy(2)),
                    usize::MAX,
                )
                .into()
            },
        ),
        case(
            "apply_chat_template: template does not compile",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["does not compile"],
            move || {
                let m = [message("user", b"Hi")];
                let mut out = null_mut();
                let status = unsafe {
                    sphana_llm_apply_chat_template(fx.broken_template.0, m.as_ptr(), 1, 1, &mut out)
                };
                Outcome::from(status).check(out.is_null(), || "text on failure".into())
            },
        ),
        case(
            "apply_chat_template: NULL out_text",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_text"],
            move || {
                let m = [message("user", b"Hi")];
                unsafe { sphana_llm_apply_chat_template(fx.micro.0, m.as_ptr(), 1, 1, null_mut()) }
                    .into()
            },
        ),
        case(
            "apply_chat_template: freed model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let h = load(&common::tokenizer_dir("llama3.2"), |_| {});
                sphana_llm_free(h.0);
                let m = [message("user", b"Hi")];
                let mut out = std::ptr::dangling_mut::<c_char>();
                let status =
                    unsafe { sphana_llm_apply_chat_template(h.0, m.as_ptr(), 1, 1, &mut out) };
                Outcome::from(status).check(out.is_null(), || "*out_text not set to NULL".into())
            },
        ),
        case(
            "apply_chat_template: no messages",
            SPHANA_LLM_OK,
            &[],
            move || {
                let mut out = null_mut();
                let status =
                    unsafe { sphana_llm_apply_chat_template(fx.micro.0, null(), 0, 1, &mut out) };
                let text = if out.is_null() {
                    None
                } else {
                    Some(
                        unsafe { std::ffi::CStr::from_ptr(out) }
                            .to_string_lossy()
                            .into_owned(),
                    )
                };
                unsafe { sphana_llm_string_free(out) };
                Outcome::from(status).check(
                    text.as_deref() == Some("<|bos|><|im_start|>assistant\n"),
                    || format!("{text:?}"),
                )
            },
        ),
        case(
            "apply_chat_template_with_len: NUL byte in a message",
            SPHANA_LLM_OK,
            &[],
            move || {
                // Regression: the text was returned only NUL-terminated, so a C (or C#) caller
                // lost everything after a NUL in a message, the generation prompt included.
                let m = [message("user", b"a\0b")];
                let mut out = null_mut();
                let mut len = usize::MAX;
                let status = unsafe {
                    sphana_llm_apply_chat_template_with_len(
                        fx.micro.0,
                        m.as_ptr(),
                        1,
                        1,
                        &mut out,
                        &mut len,
                    )
                };
                let want = b"<|bos|><|im_start|>user\na\0b<|im_end|>\n<|im_start|>assistant\n";
                let got = if out.is_null() {
                    Vec::new()
                } else {
                    unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len + 1) }.to_vec()
                };
                unsafe { sphana_llm_string_free(out) };
                Outcome::from(status)
                    .check(len == want.len(), || {
                        format!("length {len}, want {}", want.len())
                    })
                    .check(
                        got.len() == want.len() + 1
                            && &got[..want.len()] == want
                            && got[want.len()] == 0,
                        || format!("text {:?}", String::from_utf8_lossy(&got)),
                    )
            },
        ),
        case(
            "apply_chat_template_with_len: NULL out_len",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_len"],
            move || {
                let m = [message("user", b"Hi")];
                let mut out = null_mut();
                let status = unsafe {
                    sphana_llm_apply_chat_template_with_len(
                        fx.micro.0,
                        m.as_ptr(),
                        1,
                        1,
                        &mut out,
                        null_mut(),
                    )
                };
                Outcome::from(status).check(out.is_null(), || "text on failure".into())
            },
        ),
        case(
            "apply_chat_template_with_len: bad template sets the length to 0",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["does not compile"],
            move || {
                let m = [message("user", b"Hi")];
                let mut out = null_mut();
                let mut len = 99;
                let status = unsafe {
                    sphana_llm_apply_chat_template_with_len(
                        fx.broken_template.0,
                        m.as_ptr(),
                        1,
                        1,
                        &mut out,
                        &mut len,
                    )
                };
                Outcome::from(status).check(out.is_null() && len == 0, || {
                    format!("out {out:p} len {len}")
                })
            },
        ),
        case(
            "generate: a generated NUL is counted in text_len",
            SPHANA_LLM_OK,
            &[],
            move || {
                // Regression: *out_text had no length, so a C caller lost the text after a
                // generated U+0000. The micro model generates one within 200 tokens of one of
                // these prompts; the text must then equal the callback's chunks, NUL included.
                let prompts: [&[u8]; 4] = [
                    b"Hello world! The quick brown fox",
                    b"def main():\n    return 42",
                    "日本語のテキスト。 Ça va? ✓".as_bytes(),
                    b"Zw\xc3\xb6lf Boxk\xc3\xa4mpfer",
                ];
                let mut outcome = Outcome::from(SPHANA_LLM_OK);
                let mut found = false;
                for prompt in prompts {
                    let g = generate(
                        fx.micro,
                        Prompt::Text(prompt),
                        Some(&mut greedy(200)),
                        usize::MAX,
                    );
                    let chunks = g.chunks.concat();
                    found |= chunks.contains('\0');
                    outcome = outcome
                        .check(g.status == SPHANA_LLM_OK, || format!("status {}", g.status))
                        .check(g.text.as_deref() == Some(chunks.as_str()), || {
                            format!("text {:?} vs chunks {chunks:?}", g.text)
                        });
                }
                outcome.check(found, || {
                    "no prompt generated a NUL: pick another prompt".into()
                })
            },
        ),
        case(
            "context_length: tokenizer-only model",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["tokenizer-only"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_context_length(fx.tok_only.0, &mut n) }.into()
            },
        ),
        case(
            "context_length: NULL out_length",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_length"],
            move || unsafe { sphana_llm_context_length(fx.micro.0, null_mut()) }.into(),
        ),
        // ---- loading models that cannot generate ----
        case(
            "load: ONNX model that is not a decoder",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["no `input_ids` input", "not a decoder", "x"],
            move || load_case(&fx.root.join("not_a_decoder"), |_| {}),
        ),
        case(
            "load: model.onnx of garbage bytes",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["garbage_onnx/model.onnx", "ONNX Runtime cannot load"],
            move || load_case(&fx.root.join("garbage_onnx"), |_| {}),
        ),
        case(
            "load: logits narrower than the tokenizer",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["400 logits", "128256", "do not belong together"],
            move || load_case(&fx.root.join("narrow_logits"), |_| {}),
        ),
        case(
            "load: tokenizer.json that makes the tokenizers parser panic",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["panicky_json/tokenizer.json", "not a valid tokenizer.json"],
            move || load_case(&fx.root.join("panicky_json"), |_| {}),
        ),
        case(
            "load: several ONNX files and no model.onnx",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["several ONNX files", "a.onnx", "b.onnx"],
            move || load_case(&fx.root.join("two_onnx"), |_| {}),
        ),
        case(
            "load: onnx_file_name of a missing file",
            SPHANA_LLM_ERR_IO,
            &["missing.onnx"],
            move || {
                load_case(&micro::micro_dir(), |o| {
                    o.onnx_file_name = c"missing.onnx".as_ptr()
                })
            },
        ),
        case(
            "load: session_count 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["session_count"],
            move || load_case(&micro::micro_dir(), |o| o.session_count = 0),
        ),
        case(
            "load: eos_token_ids holding a negative id",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["eos_token_ids", "-3"],
            move || {
                let ids = [2i32, -3];
                load_case(&micro::micro_dir(), |o| {
                    o.eos_token_ids = ids.as_ptr();
                    o.eos_token_count = 2;
                })
            },
        ),
        case(
            "load: eos_token_ids outside the vocabulary",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["EOS id 400", "vocabulary of 400"],
            move || {
                let ids = [400i32];
                load_case(&micro::micro_dir(), |o| {
                    o.eos_token_ids = ids.as_ptr();
                    o.eos_token_count = 1;
                })
            },
        ),
        case(
            "load: eos_token_count too large",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["eos_token_count", "4096"],
            move || {
                let ids = [1i32];
                load_case(&micro::micro_dir(), |o| {
                    o.eos_token_ids = ids.as_ptr();
                    o.eos_token_count = u64::MAX;
                })
            },
        ),
        case(
            "generate: a KV budget smaller than the generation is SPHANA_LLM_ERR_KV_MEMORY",
            SPHANA_LLM_ERR_KV_MEMORY,
            &["KV cache budget", "whole budget", "max_kv_cache_bytes"],
            move || {
                let h = match try_load(&micro::micro_dir(), |o| {
                    o.max_kv_cache_bytes = 1024;
                    o.kv_wait_ms = 60_000;
                }) {
                    Ok(h) => h,
                    Err((status, _)) => return status.into(),
                };
                let g = generate(h, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX);
                // Successful calls below leave this thread's message alone.
                // A budget that fits the generation lets it through on a fresh handle.
                let roomy = try_load(&micro::micro_dir(), |o| o.max_kv_cache_bytes = 64 << 20);
                let fits = roomy.map(|r| {
                    let ok = generate(r, Prompt::Text(HELLO), Some(&mut greedy(8)), usize::MAX);
                    sphana_llm_free(r.0);
                    ok
                });
                sphana_llm_free(h.0);
                Outcome::from(g.status)
                    .check(
                        g.text.is_none() && g.chunks.is_empty() && g.generated_tokens == 0,
                        || format!("something was generated: {g:?}"),
                    )
                    .check(
                        fits.as_ref()
                            .is_ok_and(|ok| ok.status == SPHANA_LLM_OK && ok.ids.len() == 8),
                        || format!("a roomy budget: {fits:?}"),
                    )
            },
        ),
        case(
            "load: kv_wait_ms 0 and a huge max_kv_cache_bytes load",
            SPHANA_LLM_OK,
            &[],
            move || match try_load(&micro::micro_dir(), |o| {
                o.max_kv_cache_bytes = u64::MAX;
                o.kv_wait_ms = 0;
            }) {
                Ok(h) => {
                    sphana_llm_free(h.0);
                    SPHANA_LLM_OK.into()
                }
                Err((status, _)) => status.into(),
            },
        ),
        case(
            "load: eos_token_ids set: the set and its source",
            SPHANA_LLM_OK,
            &[],
            move || {
                let ids = [3i32, 1];
                let h = match try_load(&micro::micro_dir(), |o| {
                    o.eos_token_ids = ids.as_ptr();
                    o.eos_token_count = 2;
                    o.context_length = 20;
                }) {
                    Ok(h) => h,
                    Err((status, _)) => return status.into(),
                };
                let mut got = [0i32; 4];
                let mut n = 0usize;
                let s1 = unsafe { sphana_llm_eos_ids(h.0, got.as_mut_ptr(), 4, &mut n) };
                let mut source = -1;
                let s2 =
                    unsafe { sphana_llm_eos_source(h.0, &mut source, null_mut(), 0, null_mut()) };
                let mut context = 0usize;
                let s3 = unsafe { sphana_llm_context_length(h.0, &mut context) };
                sphana_llm_free(h.0);
                Outcome::from(s1 | s2 | s3)
                    .check(got[..n] == [3, 1], || format!("eos {:?}", &got[..n]))
                    .check(source == SPHANA_LLM_EOS_SOURCE_LOAD_OPTION, || {
                        format!("source {source}")
                    })
                    .check(context == 20, || format!("context {context}"))
            },
        ),
        case(
            "logits_positions: NULL out_kind",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_kind"],
            move || {
                unsafe {
                    sphana_llm_logits_positions(fx.micro.0, null_mut(), null_mut(), 0, null_mut())
                }
                .into()
            },
        ),
        case(
            "logits_positions: NULL text_buf with a capacity",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["text_buf", "NULL"],
            move || {
                let mut kind = -7;
                let mut n = 0usize;
                Outcome::from(unsafe {
                    sphana_llm_logits_positions(fx.micro.0, &mut kind, null_mut(), 8, &mut n)
                })
                .check(kind == -7, || format!("out_kind written: {kind}"))
            },
        ),
        case(
            "logits_positions: tokenizer-only model",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["tokenizer-only"],
            move || {
                let mut kind = -7;
                Outcome::from(unsafe {
                    sphana_llm_logits_positions(fx.tok_only.0, &mut kind, null_mut(), 0, null_mut())
                })
                .check(kind == -7, || format!("out_kind written: {kind}"))
            },
        ),
        case(
            "logits_positions: a 4-byte buffer reports the length and the kind",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["needed", "capacity is 4"],
            move || {
                let mut kind = -7;
                let mut buf = [0 as std::ffi::c_char; 4];
                let mut n = 0usize;
                Outcome::from(unsafe {
                    sphana_llm_logits_positions(fx.micro.0, &mut kind, buf.as_mut_ptr(), 4, &mut n)
                })
                .check(kind == SPHANA_LLM_LOGITS_REWRITTEN && n > 4, || {
                    format!("kind {kind}, length {n}")
                })
            },
        ),
        case(
            "logits_positions: the micro model's head is rewritten",
            SPHANA_LLM_OK,
            &[],
            move || {
                let mut kind = -7;
                let mut buf = [0u8; 256];
                let mut n = 0usize;
                let status = unsafe {
                    sphana_llm_logits_positions(
                        fx.micro.0,
                        &mut kind,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut n,
                    )
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                Outcome::from(status).check(
                    kind == SPHANA_LLM_LOGITS_REWRITTEN && buf[n] == 0 && text.contains("MatMul"),
                    || format!("kind {kind}, text {text:?}"),
                )
            },
        ),
        case(
            "eos_source: NULL out_source",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_source"],
            move || {
                unsafe { sphana_llm_eos_source(fx.micro.0, null_mut(), null_mut(), 0, null_mut()) }
                    .into()
            },
        ),
        case(
            "eos_source: NULL path_buf with a capacity",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["path_buf", "NULL"],
            move || {
                let mut source = -7;
                let mut n = 0usize;
                Outcome::from(unsafe {
                    sphana_llm_eos_source(fx.micro.0, &mut source, null_mut(), 8, &mut n)
                })
                .check(source == -7, || format!("out_source written: {source}"))
            },
        ),
        case(
            "eos_source: path_buf without out_len",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_len"],
            move || {
                let mut source = -7;
                let mut buf = [0 as std::ffi::c_char; 8];
                unsafe {
                    sphana_llm_eos_source(fx.micro.0, &mut source, buf.as_mut_ptr(), 8, null_mut())
                }
                .into()
            },
        ),
        case(
            "eos_source: forged handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let mut source = -7;
                unsafe {
                    sphana_llm_eos_source(
                        0x1234usize as *const SphanaLlmModel,
                        &mut source,
                        null_mut(),
                        0,
                        null_mut(),
                    )
                }
                .into()
            },
        ),
        case(
            "eos_source: a path buffer too small (then one large enough)",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["needed", "capacity is 4"],
            move || {
                let mut source = -7;
                let mut n = 0usize;
                let mut small = [0x55 as std::ffi::c_char; 4];
                let s1 = unsafe {
                    sphana_llm_eos_source(fx.micro.0, &mut source, small.as_mut_ptr(), 4, &mut n)
                };
                let mut big = vec![0 as std::ffi::c_char; n + 1];
                let mut m = 0usize;
                let s2 = unsafe {
                    sphana_llm_eos_source(fx.micro.0, &mut source, big.as_mut_ptr(), n + 1, &mut m)
                };
                let path = unsafe { std::ffi::CStr::from_ptr(big.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                Outcome::from(s1)
                    .check(s2 == SPHANA_LLM_OK, || format!("second call {s2}"))
                    .check(small.iter().all(|&c| c == 0x55), || {
                        "small buffer written".into()
                    })
                    .check(m == n && path.len() == n, || {
                        format!("{n} vs {m}: {path:?}")
                    })
                    .check(
                        source == SPHANA_LLM_EOS_SOURCE_GENERATION_CONFIG
                            && path.ends_with("generation_config.json"),
                        || format!("source {source} {path:?}"),
                    )
            },
        ),
        case(
            "max_decode_batch: tokenizer-only model",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["tokenizer-only"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_max_decode_batch(fx.tok_only.0, &mut n) }.into()
            },
        ),
        case(
            "max_decode_batch: NULL out_batch",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_batch"],
            move || unsafe { sphana_llm_max_decode_batch(fx.micro.0, null_mut()) }.into(),
        ),
        case(
            "load: logits wider than the tokenizer",
            SPHANA_LLM_OK,
            &[],
            move || {
                // Padded vocabularies (Qwen's 151936 logits for 151665 ids) are normal: ids the
                // tokenizer lacks are never sampled.
                let h = match try_load(&fx.root.join("wide_logits"), |_| {}) {
                    Ok(h) => h,
                    Err((status, _)) => return status.into(),
                };
                let mut p = greedy(6);
                p.temperature = 1.0;
                p.seed = 3;
                let g = generate(h, Prompt::Text(b"Hello world"), Some(&mut p), usize::MAX);
                sphana_llm_free(h.0);
                Outcome::from(g.status).check(
                    g.ids.len() == 6 && g.ids.iter().all(|&id| (0..50257).contains(&id)),
                    || format!("ids {:?}", g.ids),
                )
            },
        ),
    ];
    let mut names: Vec<&str> = v.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), v.len(), "duplicate case names");
    v
}

trait WithCancel {
    fn with_cancel(self, c: *mut SphanaLlmCancellation) -> Self;
}

impl WithCancel for SphanaLlmGenerateParams {
    fn with_cancel(mut self, c: *mut SphanaLlmCancellation) -> Self {
        self.cancel = c;
        self
    }
}

/// Every handle still generates exactly what it did before any case ran.
fn healthy(fx: &Fixture) -> Result<(), String> {
    let g = micro_reference(fx.micro);
    if g != fx.micro_reference {
        return Err(format!("the micro model now generates {g:?}"));
    }
    let g = short_reference(fx.short, &fx.short_prompt);
    if g != fx.short_reference {
        return Err(format!("short-context now generates {g:?}"));
    }
    Ok(())
}

#[test]
fn generation_entry_points_reject_bad_input() {
    let fx = Fixture::new();
    healthy(&fx).expect("the handles work before any case");
    let cases = cases(&fx);
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        // Prime this thread's message with a failure no case can produce.
        let primer = format!("<|primer-{i}|>");
        let mut id = 0;
        let primed = unsafe {
            sphana_llm_token_to_id(fx.micro.0, primer.as_ptr().cast(), primer.len(), &mut id)
        };
        assert_eq!(primed, SPHANA_LLM_ERR_NOT_FOUND);
        let primed_message = last_error();

        let outcome = (c.run)();
        let message = last_error();
        let mut problems = outcome.problems;
        if outcome.status != c.want {
            problems.push(format!("status {}, expected {}", outcome.status, c.want));
        }
        if c.want == SPHANA_LLM_OK {
            if message != primed_message {
                problems.push(format!("a successful call set the message {message:?}"));
            }
        } else {
            if message.is_empty() || message == primed_message {
                problems.push("sphana_llm_last_error() was not set".to_owned());
            }
            for keyword in &c.keywords {
                if !message.contains(keyword.as_str()) {
                    problems.push(format!("message does not mention {keyword:?}"));
                }
            }
        }
        if let Err(e) = healthy(&fx) {
            problems.push(format!("afterwards: {e}"));
        }
        println!(
            "{:>3} {:<4} {}: {message}",
            i + 1,
            if problems.is_empty() { "ok" } else { "FAIL" },
            c.name
        );
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n    message: {message:?}\n    {}",
                c.name,
                problems.join("\n    ")
            ));
        }
    }
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
