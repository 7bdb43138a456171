//! Loading arbitrary, truncated and mutated files: `tokenizer.json`, SentencePiece and
//! tiktoken `tokenizer.model`, `config.json`, `generation_config.json`,
//! `tokenizer_config.json` (chat templates included) and `chat_template.jinja`.
//!
//! Input: byte 0 picks the file the rest of the input becomes, byte 1 holds options (forced
//! format, loading the file itself instead of its directory, adding valid side files). The
//! other files of the directory are the micro model's (fuzz/make_seeds.py). Kind 7 puts the
//! micro model's ONNX decoder next to a fuzzed config.json and generates a few tokens.
//!
//! Checks: documented statuses only (a load never fails with INTERNAL, never succeeds
//! with a handle that then misbehaves); a loaded handle answers every query, tokenizes,
//! decodes, stream-decodes, renders its chat template and frees cleanly.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::OnceLock;

use super::super::*;

struct Base {
    micro: PathBuf,
    scratch: PathBuf,
    ort: CString,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| Base {
        micro: work().join("micro"),
        scratch: scratch_dir("load"),
        ort: ort_library(),
    })
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// Exercises a loaded handle: every query must answer with a documented status.
fn exercise(m: Handle, generate: bool) {
    let what = "loaded handle";
    let vocab = vocab_size(m);
    let mut format = -1;
    check(
        unsafe { sphana_llm_tokenizer_format(m.0, &mut format) },
        &[SPHANA_LLM_OK],
        what,
    );
    assert!((1..=3).contains(&format), "format {format}");
    let mut bos = 0;
    check(
        unsafe { sphana_llm_bos_id(m.0, &mut bos) },
        &[SPHANA_LLM_OK],
        what,
    );
    assert!(
        bos == -1 || (bos >= 0 && (bos as usize) < vocab),
        "bos {bos} of {vocab}"
    );
    let mut eos = [0i32; 64];
    let mut n = 0usize;
    let status = unsafe { sphana_llm_eos_ids(m.0, eos.as_mut_ptr(), eos.len(), &mut n) };
    check(
        status,
        &[SPHANA_LLM_OK, SPHANA_LLM_ERR_BUFFER_TOO_SMALL],
        what,
    );
    if status == SPHANA_LLM_OK {
        for &id in &eos[..n] {
            assert!(id >= 0 && (id as usize) < vocab, "eos {id} of {vocab}");
        }
    }
    let text = "Hello <|im_start|> wörld ✓ \u{0}\t\r\n  123 <s></s>";
    for flags in 0..4 {
        match tokenize(m, text.as_bytes(), flags) {
            Ok(ids) => {
                assert!(ids.iter().all(|&id| id >= 0 && (id as usize) < vocab));
                for dflags in 0..2 {
                    let status = decode(m, &ids, dflags).err().unwrap_or(SPHANA_LLM_OK);
                    check(
                        status,
                        &[SPHANA_LLM_OK, SPHANA_LLM_ERR_INVALID_TOKEN_ID],
                        what,
                    );
                }
                let mut d = null_mut();
                check(
                    unsafe { sphana_llm_stream_decoder_new(m.0, 0, &mut d) },
                    &[SPHANA_LLM_OK],
                    what,
                );
                for &id in &ids {
                    let mut buf = [0u8; 512];
                    let mut len = 0;
                    let status = unsafe {
                        sphana_llm_stream_decoder_push(
                            d,
                            id,
                            buf.as_mut_ptr().cast(),
                            512,
                            &mut len,
                        )
                    };
                    check(
                        status,
                        &[SPHANA_LLM_OK, SPHANA_LLM_ERR_BUFFER_TOO_SMALL],
                        what,
                    );
                }
                sphana_llm_stream_decoder_free(d);
            }
            Err(status) => {
                check(
                    status,
                    &[
                        SPHANA_LLM_ERR_INVALID_MODEL,
                        SPHANA_LLM_ERR_INVALID_TOKEN_ID,
                    ],
                    what,
                );
            }
        }
    }
    // Every id of a small vocabulary (a sample of a large one) decodes or is a hole.
    let step = (vocab / 512).max(1);
    for id in (0..vocab).step_by(step) {
        let mut buf = [0u8; 1024];
        let mut len = 0;
        let status = unsafe {
            sphana_llm_id_to_token(m.0, id as i32, buf.as_mut_ptr().cast(), 1024, &mut len)
        };
        check(
            status,
            &[
                SPHANA_LLM_OK,
                SPHANA_LLM_ERR_INVALID_TOKEN_ID,
                SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            ],
            what,
        );
    }
    let messages = [
        SphanaLlmChatMessage {
            role: c"system".as_ptr(),
            role_len: 6,
            content: c"Be brief.".as_ptr(),
            content_len: 9,
        },
        SphanaLlmChatMessage {
            role: c"user".as_ptr(),
            role_len: 4,
            content: c"Hi <|im_end|>".as_ptr(),
            content_len: 13,
        },
    ];
    let mut out = null_mut();
    let status = unsafe { sphana_llm_apply_chat_template(m.0, messages.as_ptr(), 2, 1, &mut out) };
    check(
        status,
        &[
            SPHANA_LLM_OK,
            SPHANA_LLM_ERR_UNSUPPORTED,
            SPHANA_LLM_ERR_INVALID_MODEL,
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
        ],
        what,
    );
    assert_eq!(status == SPHANA_LLM_OK, !out.is_null());
    unsafe { take_string(out, "chat") };
    let mut context = 0usize;
    let status = unsafe { sphana_llm_context_length(m.0, &mut context) };
    check(status, &[SPHANA_LLM_OK, SPHANA_LLM_ERR_UNSUPPORTED], what);
    if generate {
        let mut params = sphana_llm_generate_params_default();
        params.max_new_tokens = 3;
        params.ignore_eos = 1;
        let mut out = null_mut();
        let mut stats = SphanaLlmGenerateStats {
            struct_size: std::mem::size_of::<SphanaLlmGenerateStats>() as u32,
            ..Default::default()
        };
        let status = unsafe {
            sphana_llm_generate(
                m.0,
                c"Hi".as_ptr(),
                2,
                &params,
                None,
                null_mut(),
                &mut out,
                &mut stats,
            )
        };
        check(
            status,
            &[
                SPHANA_LLM_OK,
                SPHANA_LLM_ERR_UNSUPPORTED,
                SPHANA_LLM_ERR_CONTEXT_OVERFLOW,
                SPHANA_LLM_ERR_RUNTIME,
                SPHANA_LLM_ERR_INVALID_ARGUMENT,
                SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            ],
            "generate",
        );
        if status == SPHANA_LLM_OK {
            assert!(stats.generated_tokens <= 3);
            if context > 0 {
                assert!(stats.prompt_tokens + stats.generated_tokens <= context);
            }
        }
        unsafe { take_string(out, "generate") };
    }
}

/// `tokenizers` deserialization `expect`s on some malformed sections; the library catches
/// those panics (INVALID_MODEL). Any other panic is a finding.
const TOLERATED: &[&str] = &[
    "tokenizers-0.23.2/src/decoders/mod.rs",
    "tokenizers-0.23.2/src/normalizers/mod.rs",
    "tokenizers-0.23.2/src/pre_tokenizers/mod.rs",
    "tokenizers-0.23.2/src/processors/mod.rs",
    "tokenizers-0.23.2/src/models/mod.rs",
];

fn run(data: &[u8]) {
    tolerate_panics_in(TOLERATED);
    if data.len() < 2 {
        return;
    }
    let (kind, options, content) = (data[0] % 8, data[1], &data[2..]);
    let b = base();
    let dir = &b.scratch;
    for entry in std::fs::read_dir(dir).unwrap() {
        let _ = std::fs::remove_file(entry.unwrap().path());
    }
    let micro = |name: &str| copy(&b.micro.join(name), &dir.join(name));
    let fuzzed = |name: &str| std::fs::write(dir.join(name), content).unwrap();
    let mut format = i32::from((options >> 2) & 3);
    let mut target = dir.clone();
    match kind {
        0 => {
            fuzzed("tokenizer.json");
            if options & 1 != 0 {
                micro("tokenizer_config.json");
            }
            if options & 2 != 0 {
                target = dir.join("tokenizer.json");
            }
        }
        1 | 2 => {
            fuzzed("tokenizer.model");
            if options & 2 != 0 {
                target = dir.join("tokenizer.model");
            }
        }
        3 => {
            micro("tokenizer.json");
            fuzzed("config.json");
            format = 0;
        }
        4 => {
            micro("tokenizer.json");
            fuzzed("generation_config.json");
            format = 0;
        }
        5 => {
            micro("tokenizer.json");
            fuzzed("tokenizer_config.json");
            format = 0;
        }
        6 => {
            micro("tokenizer.json");
            if options & 1 != 0 {
                micro("tokenizer_config.json");
            }
            fuzzed("chat_template.jinja");
            format = 0;
        }
        _ => {
            for name in [
                "tokenizer.json",
                "tokenizer_config.json",
                "generation_config.json",
                "model.onnx",
            ] {
                micro(name);
            }
            fuzzed("config.json");
            format = 0;
        }
    }
    let mut opts = sphana_llm_load_options_default();
    opts.ort_library_path = b.ort.as_ptr();
    opts.intra_op_threads = 1;
    opts.tokenizer_format = format;
    let path = CString::new(target.to_str().unwrap()).unwrap();
    let mut model = null_mut();
    let status = unsafe { sphana_llm_load(path.as_ptr(), &opts, &mut model) };
    check(
        status,
        &[
            SPHANA_LLM_OK,
            SPHANA_LLM_ERR_INVALID_MODEL,
            SPHANA_LLM_ERR_IO,
            SPHANA_LLM_ERR_UNSUPPORTED,
            SPHANA_LLM_ERR_RUNTIME,
        ],
        &format!("load kind {kind} options {options:#x}"),
    );
    if status == SPHANA_LLM_OK {
        exercise(Handle(model), kind == 7);
        sphana_llm_free(model);
    } else {
        assert!(model.is_null(), "a failed load wrote *out_model");
    }
}

/// Runs one fuzz input.
pub fn fuzz_one(data: &[u8]) {
    run(data);
}
