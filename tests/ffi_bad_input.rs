//! Bad input at every C entry point, called directly through `sphana_llm::ffi`.
//!
//! Table-driven: each case calls one entry point with one bad argument (NULL pointers,
//! invalid UTF-8, tiny buffers, freed/forged/wrong-kind handles, broken files and
//! options, out-of-range ids, limits) and must return the documented status with a
//! `sphana_llm_last_error()` that names the problem. Before every case the thread's
//! message is set to a unique "primer" (a failed lookup), so a case that forgets to set
//! its message is caught; cases that must succeed must leave the primer in place.
//! After every case a valid handle must still tokenize the golden paragraph exactly.

#[path = "support/capi.rs"]
mod capi;
mod common;

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use capi::{cpath, last_error, Handle};
use sphana_llm::ffi::*;

/// The status of the void entry points (`*_free`): only the message is checked.
const VOID: i32 = i32::MIN;

fn golden_case<'a>(
    golden: &'a serde_json::Value,
    input: &str,
    add: bool,
    parse: bool,
) -> &'a serde_json::Value {
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["input"] == input && c["add_special"] == add && c["parse_special"] == parse)
        .unwrap_or_else(|| panic!("no golden case {input}"))
}

fn golden_ids(golden: &serde_json::Value, input: &str, add: bool, parse: bool) -> Vec<i32> {
    common::ids(&golden_case(golden, input, add, parse)["ids"])
        .into_iter()
        .map(|id| id as i32)
        .collect()
}

/// Loads through the C ABI; panics with the library's message on failure.
fn load(path: &Path, options: Option<&SphanaLlmLoadOptions>) -> *mut SphanaLlmModel {
    match capi::try_load_with(path, options) {
        Ok(model) => model.0,
        Err((status, e)) => panic!("loading {}: status {status}: {e}", path.display()),
    }
}

/// Tokenizes in one call (a size query would set the thread's message, which the cases
/// that must succeed check is left alone).
fn tokenize(model: *const SphanaLlmModel, text: &[u8], flags: u32) -> Result<Vec<i32>, String> {
    capi::tokenize_into(Handle(model.cast_mut()), text, flags, 4096)
        .map_err(|status| format!("status {status}: {}", last_error()))
}

/// Decodes in one call, for the same reason.
fn decode(model: *const SphanaLlmModel, ids: &[i32], flags: u32) -> Result<Vec<u8>, String> {
    capi::decode_into(Handle(model.cast_mut()), ids, flags, 4096)
        .map_err(|status| format!("status {status}: {}", last_error()))
}

/// Everything the cases share. Dropping it frees the handles and removes the temp dir.
struct Fixture {
    root: PathBuf,
    /// Llama 3.2 tokenizer.json, loaded with NULL options.
    model: *mut SphanaLlmModel,
    /// Llama 2 SentencePiece with max_input_bytes = 14 and max_batch_texts = 2.
    limited: *mut SphanaLlmModel,
    vocab: usize,
    paragraph: String,
    paragraph_ids: Vec<i32>,
    emoji: String,
    emoji_ids: Vec<i32>,
    /// The llama2-spm golden ids of the 14-byte "leading_spaces" input.
    at_limit: (String, Vec<i32>),
    over_limit: String,
    /// Real tokenizer files loaded by path.
    llama_json: PathBuf,
    spm_file: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        sphana_llm_free(self.model);
        sphana_llm_free(self.limited);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Fixture {
    fn new() -> Self {
        let llama = common::golden("tokenizers/llama3.2.json");
        let llama2 = common::golden("tokenizers/llama2-spm.json");
        let inputs: std::collections::HashMap<String, String> =
            common::inputs().into_iter().collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "sphana-llm-ffi-bad-input-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&root).unwrap();

        let model = load(&common::tokenizer_dir("llama3.2"), None);
        let mut options = sphana_llm_load_options_default();
        let at_limit = inputs["leading_spaces"].clone();
        options.max_input_bytes = at_limit.len() as u64;
        options.max_batch_texts = 2;
        let limited = load(&common::tokenizer_dir("llama2-spm"), Some(&options));
        let mut vocab = 0usize;
        assert_eq!(
            unsafe { sphana_llm_vocab_size(model, &mut vocab) },
            SPHANA_LLM_OK
        );
        assert_eq!(vocab as u64, llama["vocab_size"].as_u64().unwrap());

        let fx = Fixture {
            root,
            model,
            limited,
            vocab,
            paragraph: inputs["paragraph"].clone(),
            paragraph_ids: golden_ids(&llama, "paragraph", true, false),
            emoji: inputs["emoji"].clone(),
            emoji_ids: golden_ids(&llama, "emoji", false, false),
            at_limit: (
                at_limit.clone(),
                golden_ids(&llama2, "leading_spaces", false, false),
            ),
            over_limit: inputs["contractions"].clone(),
            llama_json: common::tokenizer_dir("llama3.2").join("tokenizer.json"),
            spm_file: common::tokenizer_dir("llama2-spm").join("tokenizer.model"),
        };
        fx.write_fixtures();
        fx
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }

    /// The broken model directories the load cases use.
    fn write_fixtures(&self) {
        let asset = |name: &str, file: &str| {
            std::fs::read(common::tokenizer_dir(name).join(file))
                .unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
        };
        std::fs::create_dir_all(self.path("empty")).unwrap();

        // A PNG-ish blob where a tokenizer should be.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
        png.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        self.write("png/tokenizer.model", &png);
        self.write("empty_file/tokenizer.json", b"");

        let json = asset("llama3.2", "tokenizer.json");
        self.write("half_json/tokenizer.json", &json[..json.len() / 2]);

        let spm = asset("llama2-spm", "tokenizer.model");
        self.write("half_spm/tokenizer.model", &spm[..spm.len() / 2]);
        self.write("spm_only/tokenizer.model", &spm);

        // tiktoken cut in half, inside the base64 of a line (no rank after it).
        let rank_file = asset("llama3-tiktoken", "tokenizer.model");
        let half = rank_file.len() / 2;
        let line_start = half + rank_file[half..].iter().position(|&b| b == b'\n').unwrap() + 1;
        self.write(
            "half_tiktoken/tokenizer.model",
            &rank_file[..line_start + 2],
        );
        // The first 1000 ranks only: well-formed, but not Llama 3's rank file.
        let thousand = rank_file
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(999)
            .unwrap()
            .0;
        self.write("few_ranks/tokenizer.model", &rank_file[..=thousand]);

        // Real tokenizers with broken side files.
        self.write("bad_config_json/tokenizer.model", &spm);
        self.write(
            "bad_config_json/tokenizer_config.json",
            b"{\"bos_token\": \"<s>\",",
        );
        self.write("config_not_object/tokenizer.model", &spm);
        self.write("config_not_object/tokenizer_config.json", b"[1, 2, 3]");
        self.write("config_bad_bool/tokenizer.model", &spm);
        self.write(
            "config_bad_bool/tokenizer_config.json",
            b"{\"add_bos_token\": \"yes\"}",
        );
        self.write("config_unknown_eos/tokenizer.model", &spm);
        self.write(
            "config_unknown_eos/tokenizer_config.json",
            b"{\"eos_token\": \"<|no-such-eos|>\"}",
        );
        self.write("eos_outside_vocab/tokenizer.model", &spm);
        self.write(
            "eos_outside_vocab/generation_config.json",
            b"{\"bos_token_id\": 1, \"eos_token_id\": [2, 99999]}",
        );
        self.write("bad_model_config/tokenizer.model", &spm);
        self.write("bad_model_config/config.json", b"{\"vocab_size\": 32000,,}");
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

struct Case<'a> {
    name: &'static str,
    /// The documented status, `SPHANA_LLM_OK`, or [`VOID`].
    want: i32,
    /// Every one must appear in the message (failing cases only).
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

/// Load `path` with `options`; the out-pointer must stay untouched unless the load succeeds.
fn load_case(path: &[u8], options: Option<*const SphanaLlmLoadOptions>) -> Outcome {
    let c = CString::new(path).unwrap();
    let sentinel = 0x5eed_0001usize as *mut SphanaLlmModel;
    let mut out = sentinel;
    let status = unsafe { sphana_llm_load(c.as_ptr(), options.unwrap_or(null()), &mut out) };
    if status == SPHANA_LLM_OK {
        sphana_llm_free(out);
        return status.into();
    }
    Outcome::from(status).check(out == sentinel, || {
        format!("a failed load overwrote *out_model with {out:p}")
    })
}

fn load_path_case(path: &Path, options: Option<*const SphanaLlmLoadOptions>) -> Outcome {
    load_case(path.to_str().unwrap().as_bytes(), options)
}

fn options_with(change: impl FnOnce(&mut SphanaLlmLoadOptions)) -> SphanaLlmLoadOptions {
    let mut options = sphana_llm_load_options_default();
    change(&mut options);
    options
}

/// A caller compiled against a newer header: our struct plus one field we do not know.
#[repr(C)]
struct NewerLoadOptions {
    known: SphanaLlmLoadOptions,
    unknown_field: u64,
}

fn newer_options(unknown_field: u64) -> NewerLoadOptions {
    let mut newer = NewerLoadOptions {
        known: sphana_llm_load_options_default(),
        unknown_field,
    };
    newer.known.struct_size = std::mem::size_of::<NewerLoadOptions>() as u32;
    newer
}

#[allow(clippy::too_many_lines)]
fn cases(fx: &Fixture) -> Vec<Case<'_>> {
    let m = fx.model as *const SphanaLlmModel;
    let hello = b"Hello world";
    let bad_utf8: &[u8] = b"ok \xc3\x28 bad";
    let forged = 0x1234usize as *mut SphanaLlmModel;
    let llama_json: &Path = &fx.llama_json;
    let spm_file: &Path = &fx.spm_file;
    let invalid_utf8_c = b"/tmp/sphana-\xff\xfe-path\0";

    let mut v: Vec<Case<'_>> = vec![
        // ---- sphana_llm_load: arguments ----
        case(
            "load: NULL path",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["path", "NULL"],
            move || {
                let mut out = null_mut();
                unsafe { sphana_llm_load(null(), null(), &mut out) }.into()
            },
        ),
        case(
            "load: NULL out_model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_model"],
            move || {
                let c = cpath(&common::tokenizer_dir("llama2-spm"));
                unsafe { sphana_llm_load(c.as_ptr(), null(), null_mut()) }.into()
            },
        ),
        case(
            "load: invalid UTF-8 path",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["UTF-8", "path"],
            move || load_case(&invalid_utf8_c[..invalid_utf8_c.len() - 1], None),
        ),
        case(
            "load: missing directory",
            SPHANA_LLM_ERR_IO,
            &["cannot read", "no-such-model-dir"],
            move || load_path_case(&fx.path("no-such-model-dir"), None),
        ),
        case(
            "load: missing tokenizer file",
            SPHANA_LLM_ERR_IO,
            &["empty/tokenizer.model"],
            move || load_path_case(&fx.path("empty/tokenizer.model"), None),
        ),
        case(
            "load: directory without tokenizer files",
            SPHANA_LLM_ERR_IO,
            &["no tokenizer file", "tokenizer.json", "tokenizer.model"],
            move || load_path_case(&fx.path("empty"), None),
        ),
        case(
            "load: PNG bytes as tokenizer.model",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["png/tokenizer.model", "not a tokenizer"],
            move || load_path_case(&fx.path("png"), None),
        ),
        case(
            "load: empty tokenizer.json",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["empty_file/tokenizer.json"],
            move || load_path_case(&fx.path("empty_file"), None),
        ),
        case(
            "load: tokenizer.json cut in half",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["half_json/tokenizer.json", "not a valid tokenizer.json"],
            move || load_path_case(&fx.path("half_json"), None),
        ),
        case(
            "load: SentencePiece model cut in half",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["half_spm/tokenizer.model"],
            move || load_path_case(&fx.path("half_spm"), None),
        ),
        case(
            "load: forced SENTENCEPIECE on a half SentencePiece model",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["half_spm/tokenizer.model"],
            move || {
                let o = options_with(|o| o.tokenizer_format = SPHANA_LLM_FORMAT_SENTENCEPIECE);
                load_path_case(&fx.path("half_spm"), Some(&o as *const _))
            },
        ),
        case(
            "load: tiktoken rank file cut in half",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["half_tiktoken/tokenizer.model", "base64 rank"],
            move || load_path_case(&fx.path("half_tiktoken"), None),
        ),
        case(
            "load: tiktoken rank file with 1000 ranks",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["few_ranks/tokenizer.model", "1000 ranks"],
            move || load_path_case(&fx.path("few_ranks"), None),
        ),
        case(
            "load: forced TIKTOKEN on a SentencePiece file",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["forced", "tiktoken", "sentencepiece"],
            move || {
                let o = options_with(|o| o.tokenizer_format = SPHANA_LLM_FORMAT_TIKTOKEN);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load: forced SENTENCEPIECE on tokenizer.json",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["forced", "sentencepiece"],
            move || {
                let o = options_with(|o| o.tokenizer_format = SPHANA_LLM_FORMAT_SENTENCEPIECE);
                load_path_case(llama_json, Some(&o as *const _))
            },
        ),
        case(
            "load: forced HF_JSON in a directory with only tokenizer.model",
            SPHANA_LLM_ERR_IO,
            &["no tokenizer file", "tokenizer.json"],
            move || {
                let o = options_with(|o| o.tokenizer_format = SPHANA_LLM_FORMAT_HF_JSON);
                load_path_case(&fx.path("spm_only"), Some(&o as *const _))
            },
        ),
        // ---- sphana_llm_load: side files ----
        case(
            "load: tokenizer_config.json is invalid JSON",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["tokenizer_config.json", "invalid JSON"],
            move || load_path_case(&fx.path("bad_config_json"), None),
        ),
        case(
            "load: tokenizer_config.json is not an object",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["tokenizer_config.json", "object"],
            move || load_path_case(&fx.path("config_not_object"), None),
        ),
        case(
            "load: add_bos_token is not a boolean",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["add_bos_token", "boolean"],
            move || load_path_case(&fx.path("config_bad_bool"), None),
        ),
        case(
            "load: eos_token not in the vocabulary",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["<|no-such-eos|>", "vocabulary"],
            move || load_path_case(&fx.path("config_unknown_eos"), None),
        ),
        case(
            "load: generation_config.json eos id outside the vocabulary",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["99999", "vocabulary"],
            move || load_path_case(&fx.path("eos_outside_vocab"), None),
        ),
        case(
            "load: config.json is invalid JSON",
            SPHANA_LLM_ERR_INVALID_MODEL,
            &["config.json", "invalid JSON"],
            move || load_path_case(&fx.path("bad_model_config"), None),
        ),
        // ---- SphanaLlmLoadOptions ----
        case(
            "load options: struct_size too small",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["struct_size", "8"],
            move || {
                let o = options_with(|o| o.struct_size = 8);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: struct_size 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["struct_size"],
            move || {
                let o = options_with(|o| o.struct_size = 0);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: larger struct, unknown field set",
            SPHANA_LLM_ERR_UNSUPPORTED,
            &["SphanaLlmLoadOptions", "does not know"],
            move || {
                let newer = newer_options(7);
                load_path_case(spm_file, Some((&newer as *const NewerLoadOptions).cast()))
            },
        ),
        case(
            "load options: larger struct, unknown field zero",
            SPHANA_LLM_OK,
            &[],
            move || {
                let newer = newer_options(0);
                load_path_case(spm_file, Some((&newer as *const NewerLoadOptions).cast()))
            },
        ),
        case(
            "load options: implausibly large struct_size",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["struct_size", "implausibly"],
            move || {
                // The library must reject the size before reading past our struct.
                let o = options_with(|o| o.struct_size = 1 << 30);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: unknown tokenizer_format",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["tokenizer_format", "9"],
            move || {
                let o = options_with(|o| o.tokenizer_format = 9);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: unknown execution_provider",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["execution_provider"],
            move || {
                let o = options_with(|o| o.execution_provider = 7);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: negative intra_op_threads",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["intra_op_threads"],
            move || {
                let o = options_with(|o| o.intra_op_threads = -2);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: max_input_bytes 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["max_input_bytes"],
            move || {
                let o = options_with(|o| o.max_input_bytes = 0);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: max_batch_texts 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["max_batch_texts"],
            move || {
                let o = options_with(|o| o.max_batch_texts = 0);
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: ort_library_path invalid UTF-8",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["ort_library_path"],
            move || {
                let o = options_with(|o| o.ort_library_path = invalid_utf8_c.as_ptr().cast());
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        case(
            "load options: onnx_file_name invalid UTF-8",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["onnx_file_name"],
            move || {
                let o = options_with(|o| o.onnx_file_name = invalid_utf8_c.as_ptr().cast());
                load_path_case(spm_file, Some(&o as *const _))
            },
        ),
        // ---- handles ----
        case("free: double free", VOID, &["freed twice"], move || {
            let h = load(&common::tokenizer_dir("llama2-spm"), None);
            sphana_llm_free(h);
            sphana_llm_free(h);
            VOID.into()
        }),
        case("free: forged handle", VOID, &["0x1234"], move || {
            sphana_llm_free(forged);
            VOID.into()
        }),
        case(
            "free: stream decoder handle as a model",
            VOID,
            &["model handle"],
            move || {
                let mut d = null_mut();
                assert_eq!(
                    unsafe { sphana_llm_stream_decoder_new(m, 0, &mut d) },
                    SPHANA_LLM_OK
                );
                sphana_llm_free(d.cast());
                // The decoder must have survived the wrong-kind free.
                let mut out = [0 as c_char; 64];
                let mut len = 0;
                let pushed = unsafe {
                    sphana_llm_stream_decoder_push(
                        d,
                        fx.emoji_ids[0],
                        out.as_mut_ptr(),
                        64,
                        &mut len,
                    )
                };
                sphana_llm_stream_decoder_free(d);
                Outcome::from(VOID).check(pushed == SPHANA_LLM_OK, || {
                    format!("the decoder died after sphana_llm_free on it: status {pushed}")
                })
            },
        ),
        case(
            "vocab_size: freed handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let h = load(&common::tokenizer_dir("llama2-spm"), None);
                sphana_llm_free(h);
                let mut n = 0;
                unsafe { sphana_llm_vocab_size(h, &mut n) }.into()
            },
        ),
        case(
            "tokenize: freed handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle", "not live"],
            move || {
                let h = load(&common::tokenizer_dir("llama2-spm"), None);
                sphana_llm_free(h);
                let mut ids = [0i32; 16];
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        h,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0,
                        ids.as_mut_ptr(),
                        16,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "vocab_size: forged handle 0x1234",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["0x1234", "not live"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_vocab_size(forged, &mut n) }.into()
            },
        ),
        case(
            "vocab_size: a real pointer that is not a handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let local = [0u64; 8];
                let mut n = 0;
                unsafe { sphana_llm_vocab_size(local.as_ptr().cast(), &mut n) }.into()
            },
        ),
        case(
            "vocab_size: stream decoder handle as a model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle", "not live"],
            move || {
                let mut d = null_mut();
                assert_eq!(
                    unsafe { sphana_llm_stream_decoder_new(m, 0, &mut d) },
                    SPHANA_LLM_OK
                );
                let mut n = 0;
                let status = unsafe { sphana_llm_vocab_size(d.cast(), &mut n) };
                sphana_llm_stream_decoder_free(d);
                status.into()
            },
        ),
        case(
            "stream_decoder_push: model handle as a decoder",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stream decoder handle", "not live"],
            move || {
                let mut out = [0 as c_char; 64];
                let mut len = 0;
                unsafe {
                    sphana_llm_stream_decoder_push(
                        fx.model.cast(),
                        1,
                        out.as_mut_ptr(),
                        64,
                        &mut len,
                    )
                }
                .into()
            },
        ),
        case(
            "stream_decoder_push: freed decoder",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stream decoder handle", "not live"],
            move || {
                let mut d = null_mut();
                assert_eq!(
                    unsafe { sphana_llm_stream_decoder_new(m, 0, &mut d) },
                    SPHANA_LLM_OK
                );
                sphana_llm_stream_decoder_free(d);
                let mut out = [0 as c_char; 64];
                let mut len = 0;
                unsafe { sphana_llm_stream_decoder_push(d, 1, out.as_mut_ptr(), 64, &mut len) }
                    .into()
            },
        ),
        case(
            "stream_decoder_free: double free",
            VOID,
            &["stream decoder", "freed twice"],
            move || {
                let mut d = null_mut();
                assert_eq!(
                    unsafe { sphana_llm_stream_decoder_new(m, 0, &mut d) },
                    SPHANA_LLM_OK
                );
                sphana_llm_stream_decoder_free(d);
                sphana_llm_stream_decoder_free(d);
                VOID.into()
            },
        ),
        case(
            "stream decoder outlives its freed model",
            SPHANA_LLM_OK,
            &[],
            move || {
                // "The decoder keeps the model alive."
                let h = load(&common::tokenizer_dir("llama3.2"), None);
                let mut d = null_mut();
                assert_eq!(
                    unsafe { sphana_llm_stream_decoder_new(h, 0, &mut d) },
                    SPHANA_LLM_OK
                );
                sphana_llm_free(h);
                let mut text = Vec::new();
                let mut status = SPHANA_LLM_OK;
                for &id in &fx.emoji_ids {
                    let mut out = [0u8; 64];
                    let mut len = 0;
                    status = unsafe {
                        sphana_llm_stream_decoder_push(d, id, out.as_mut_ptr().cast(), 64, &mut len)
                    };
                    if status != SPHANA_LLM_OK {
                        break;
                    }
                    text.extend_from_slice(&out[..len]);
                }
                sphana_llm_stream_decoder_free(d);
                Outcome::from(status).check(text == fx.emoji.as_bytes(), || {
                    format!("streamed {:?}", String::from_utf8_lossy(&text))
                })
            },
        ),
        // ---- struct sizes ----
        case(
            "struct_size: NULL out_size",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_size"],
            move || {
                unsafe { sphana_llm_struct_size(SPHANA_LLM_STRUCT_GENERATE_STATS, null_mut()) }
                    .into()
            },
        ),
        case(
            "struct_size: unknown kind 0",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["unknown struct kind 0", "SPHANA_LLM_STRUCT_"],
            move || {
                let mut size = 77usize;
                let status = unsafe { sphana_llm_struct_size(0, &mut size) };
                Outcome::from(status).check(size == 77, || format!("a rejected call wrote {size}"))
            },
        ),
        case(
            "struct_size: unknown kind u32::MAX",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["unknown struct kind 4294967295"],
            move || {
                let mut size = 77usize;
                let status = unsafe { sphana_llm_struct_size(u32::MAX, &mut size) };
                Outcome::from(status).check(size == 77, || format!("a rejected call wrote {size}"))
            },
        ),
        case(
            "struct_size: every kind is the size of its struct",
            SPHANA_LLM_OK,
            &[],
            move || {
                let kinds = [
                    (
                        SPHANA_LLM_STRUCT_LOAD_OPTIONS,
                        std::mem::size_of::<SphanaLlmLoadOptions>(),
                    ),
                    (
                        SPHANA_LLM_STRUCT_GENERATE_PARAMS,
                        std::mem::size_of::<SphanaLlmGenerateParams>(),
                    ),
                    (
                        SPHANA_LLM_STRUCT_GENERATE_STATS,
                        std::mem::size_of::<SphanaLlmGenerateStats>(),
                    ),
                    (
                        SPHANA_LLM_STRUCT_TOKEN_SPAN,
                        std::mem::size_of::<SphanaLlmTokenSpan>(),
                    ),
                    (
                        SPHANA_LLM_STRUCT_TOKEN_BATCH,
                        std::mem::size_of::<SphanaLlmTokenBatch>(),
                    ),
                    (
                        SPHANA_LLM_STRUCT_CHAT_MESSAGE,
                        std::mem::size_of::<SphanaLlmChatMessage>(),
                    ),
                ];
                let mut outcome = Outcome::from(SPHANA_LLM_OK);
                for (kind, want) in kinds {
                    let mut size = 0usize;
                    let status = unsafe { sphana_llm_struct_size(kind, &mut size) };
                    outcome = outcome.check(status == SPHANA_LLM_OK && size == want, || {
                        format!("kind {kind}: status {status}, size {size}, want {want}")
                    });
                }
                outcome
            },
        ),
        // ---- model facts ----
        case(
            "vocab_size: NULL model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle is NULL"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_vocab_size(null(), &mut n) }.into()
            },
        ),
        case(
            "vocab_size: NULL out_size",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_size"],
            move || unsafe { sphana_llm_vocab_size(m, null_mut()) }.into(),
        ),
        case(
            "tokenizer_format: NULL out_format",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_format"],
            move || unsafe { sphana_llm_tokenizer_format(m, null_mut()) }.into(),
        ),
        case(
            "bos_id: NULL out_id",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_id"],
            move || unsafe { sphana_llm_bos_id(m, null_mut()) }.into(),
        ),
        case(
            "bos_id: forged handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let mut id = 0;
                unsafe { sphana_llm_bos_id(forged, &mut id) }.into()
            },
        ),
        case(
            "eos_ids: NULL out_count",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_count"],
            move || {
                let mut ids = [0i32; 8];
                unsafe { sphana_llm_eos_ids(m, ids.as_mut_ptr(), 8, null_mut()) }.into()
            },
        ),
        case(
            "eos_ids: NULL out_ids with capacity 3",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_ids", "NULL", "3"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_eos_ids(m, null_mut(), 3, &mut n) }.into()
            },
        ),
        case(
            "eos_ids: capacity 1 for 3 ids",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["3", "capacity is 1"],
            move || {
                let mut ids = [-9i32; 1];
                let mut n = 0;
                Outcome::from(unsafe { sphana_llm_eos_ids(m, ids.as_mut_ptr(), 1, &mut n) })
                    .check(n == 3, || format!("out_count {n}, want 3"))
                    .check(ids[0] == -9, || format!("buffer written: {}", ids[0]))
            },
        ),
        // ---- tokenize ----
        case(
            "tokenize: NULL model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle is NULL"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        null(),
                        hello.as_ptr().cast(),
                        hello.len(),
                        0,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: NULL text with length 5",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["`text` is NULL"],
            move || {
                let mut n = 0;
                unsafe { sphana_llm_tokenize(m, null(), 5, 0, null_mut(), 0, &mut n) }.into()
            },
        ),
        case(
            "tokenize: NULL out_count",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_count"],
            move || {
                let mut ids = [0i32; 16];
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0,
                        ids.as_mut_ptr(),
                        16,
                        null_mut(),
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: NULL out_ids with capacity 16",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_ids", "16"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0,
                        null_mut(),
                        16,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: invalid UTF-8 text",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["UTF-8", "text", "byte 3"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        bad_utf8.as_ptr().cast(),
                        bad_utf8.len(),
                        0,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: lone surrogate encoded in UTF-8",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["UTF-8"],
            move || {
                let text = b"a\xed\xa0\x80b";
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        text.as_ptr().cast(),
                        text.len(),
                        0,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: text with NUL bytes is ordinary text",
            SPHANA_LLM_OK,
            &[],
            move || {
                let text = b"a\0b\0\0c NUL\0";
                let ids = match tokenize(m, text, 0) {
                    Ok(ids) => ids,
                    Err(e) => return Outcome::from(SPHANA_LLM_ERR_INTERNAL).check(false, || e),
                };
                // Byte-level BPE writes byte 0x00 as the vocabulary entry "Ā" (U+0100).
                let mut nul_id = -1;
                let lookup = unsafe {
                    sphana_llm_token_to_id(m, "Ā".as_ptr().cast(), "Ā".len(), &mut nul_id)
                };
                let round_trip = decode(m, &ids, 0);
                Outcome::from(SPHANA_LLM_OK)
                    .check(lookup == SPHANA_LLM_OK && ids.contains(&nul_id), || {
                        format!("ids {ids:?} lack the NUL byte token {nul_id}")
                    })
                    .check(round_trip.as_deref() == Ok(&text[..]), || {
                        format!("decode gave {round_trip:?}")
                    })
            },
        ),
        case(
            "tokenize: capacity 0 asks for the size",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                let mut n = 0;
                Outcome::from(unsafe {
                    sphana_llm_tokenize(
                        m,
                        fx.paragraph.as_ptr().cast(),
                        fx.paragraph.len(),
                        SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                        null_mut(),
                        0,
                        &mut n,
                    )
                })
                .check(n == fx.paragraph_ids.len(), || {
                    format!("out_count {n}, golden {}", fx.paragraph_ids.len())
                })
            },
        ),
        case(
            "tokenize: capacity 1",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["capacity is 1"],
            move || {
                let mut ids = [-9i32; 1];
                let mut n = 0;
                Outcome::from(unsafe {
                    sphana_llm_tokenize(
                        m,
                        fx.paragraph.as_ptr().cast(),
                        fx.paragraph.len(),
                        SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                        ids.as_mut_ptr(),
                        1,
                        &mut n,
                    )
                })
                .check(n == fx.paragraph_ids.len(), || {
                    format!("out_count {n}, golden {}", fx.paragraph_ids.len())
                })
                .check(ids[0] == -9, || {
                    format!("a too-small buffer was written: {}", ids[0])
                })
            },
        ),
        case(
            "tokenize: unknown flag bit 0x4",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["flags", "0x4"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0x4,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: all flag bits set",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["flags"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        u32::MAX,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: text over max_input_bytes",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_input_bytes", "14"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        fx.limited,
                        fx.over_limit.as_ptr().cast(),
                        fx.over_limit.len(),
                        0,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: huge text_len is rejected before reading",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_input_bytes"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize(
                        m,
                        hello.as_ptr().cast(),
                        usize::MAX,
                        0,
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize: text of exactly max_input_bytes",
            SPHANA_LLM_OK,
            &[],
            move || {
                let (text, want) = &fx.at_limit;
                match tokenize(fx.limited, text.as_bytes(), 0) {
                    Ok(ids) => Outcome::from(SPHANA_LLM_OK)
                        .check(&ids == want, || format!("ids {ids:?}, golden {want:?}")),
                    Err(e) => Outcome::from(SPHANA_LLM_ERR_INTERNAL).check(false, || e),
                }
            },
        ),
        // ---- tokenize_with_offsets ----
        case(
            "tokenize_with_offsets: NULL out_spans with capacity 8",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_spans"],
            move || {
                let mut ids = [0i32; 8];
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize_with_offsets(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0,
                        ids.as_mut_ptr(),
                        null_mut(),
                        8,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize_with_offsets: capacity 0",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                let mut n = 0;
                Outcome::from(unsafe {
                    sphana_llm_tokenize_with_offsets(
                        m,
                        fx.paragraph.as_ptr().cast(),
                        fx.paragraph.len(),
                        SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
                        null_mut(),
                        null_mut(),
                        0,
                        &mut n,
                    )
                })
                .check(n == fx.paragraph_ids.len(), || format!("out_count {n}"))
            },
        ),
        case(
            "tokenize_with_offsets: invalid UTF-8",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["UTF-8"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize_with_offsets(
                        m,
                        bad_utf8.as_ptr().cast(),
                        bad_utf8.len(),
                        0,
                        null_mut(),
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        case(
            "tokenize_with_offsets: unknown flags",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["flags"],
            move || {
                let mut n = 0;
                unsafe {
                    sphana_llm_tokenize_with_offsets(
                        m,
                        hello.as_ptr().cast(),
                        hello.len(),
                        0x10,
                        null_mut(),
                        null_mut(),
                        0,
                        &mut n,
                    )
                }
                .into()
            },
        ),
        // ---- tokenize_batch ----
        case(
            "tokenize_batch: NULL out_batch",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_batch"],
            move || {
                let texts = [hello.as_ptr().cast::<c_char>()];
                let lens = [hello.len()];
                unsafe {
                    sphana_llm_tokenize_batch(m, texts.as_ptr(), lens.as_ptr(), 1, 0, null_mut())
                }
                .into()
            },
        ),
        case(
            "tokenize_batch: NULL texts",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["texts"],
            move || {
                let lens = [1usize, 2];
                batch_case(m, null(), lens.as_ptr(), 2, 0)
            },
        ),
        case(
            "tokenize_batch: NULL text_lens",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["text_lens"],
            move || {
                let texts = [hello.as_ptr().cast::<c_char>(); 2];
                batch_case(m, texts.as_ptr(), null(), 2, 0)
            },
        ),
        case(
            "tokenize_batch: NULL texts[0] with length 3",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["texts[0]"],
            move || {
                let texts = [null(), hello.as_ptr().cast::<c_char>()];
                let lens = [3usize, hello.len()];
                batch_case(m, texts.as_ptr(), lens.as_ptr(), 2, 0)
            },
        ),
        case(
            "tokenize_batch: invalid UTF-8 in texts[1]",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["texts[1]", "UTF-8"],
            move || {
                let texts = [hello.as_ptr().cast::<c_char>(), bad_utf8.as_ptr().cast()];
                let lens = [hello.len(), bad_utf8.len()];
                batch_case(m, texts.as_ptr(), lens.as_ptr(), 2, 0)
            },
        ),
        case(
            "tokenize_batch: unknown flags",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["flags"],
            move || {
                let texts = [hello.as_ptr().cast::<c_char>()];
                let lens = [hello.len()];
                batch_case(m, texts.as_ptr(), lens.as_ptr(), 1, 0x8)
            },
        ),
        case(
            "tokenize_batch: more texts than max_batch_texts",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_batch_texts", "3"],
            move || {
                let texts = [hello.as_ptr().cast::<c_char>(); 3];
                let lens = [5usize; 3];
                batch_case(fx.limited, texts.as_ptr(), lens.as_ptr(), 3, 0)
            },
        ),
        case(
            "tokenize_batch: a text over max_input_bytes",
            SPHANA_LLM_ERR_LIMIT_EXCEEDED,
            &["max_input_bytes"],
            move || {
                let texts = [
                    hello.as_ptr().cast::<c_char>(),
                    fx.over_limit.as_ptr().cast(),
                ];
                let lens = [hello.len(), fx.over_limit.len()];
                batch_case(fx.limited, texts.as_ptr(), lens.as_ptr(), 2, 0)
            },
        ),
        case(
            "tokenize_batch: freed handle",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["not live"],
            move || {
                let h = load(&common::tokenizer_dir("llama2-spm"), None);
                sphana_llm_free(h);
                let texts = [hello.as_ptr().cast::<c_char>()];
                let lens = [hello.len()];
                batch_case(h, texts.as_ptr(), lens.as_ptr(), 1, 0)
            },
        ),
        case(
            "token_batch_free: NULL and a zeroed batch are no-ops",
            SPHANA_LLM_OK,
            &[],
            move || {
                unsafe { sphana_llm_token_batch_free(null_mut()) };
                let mut batch = SphanaLlmTokenBatch {
                    ids: null_mut(),
                    starts: null_mut(),
                    text_count: 0,
                };
                unsafe { sphana_llm_token_batch_free(&mut batch) };
                SPHANA_LLM_OK.into()
            },
        ),
        // ---- decode ----
        case(
            "decode: NULL ids with count 3",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["`ids` is NULL"],
            move || {
                let mut buf = [0 as c_char; 16];
                let mut len = 0;
                unsafe { sphana_llm_decode(m, null(), 3, 0, buf.as_mut_ptr(), 16, &mut len) }.into()
            },
        ),
        case(
            "decode: NULL out_len",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_len"],
            move || {
                let ids = [1i32];
                let mut buf = [0 as c_char; 16];
                unsafe {
                    sphana_llm_decode(m, ids.as_ptr(), 1, 0, buf.as_mut_ptr(), 16, null_mut())
                }
                .into()
            },
        ),
        case(
            "decode: NULL out_text with capacity 16",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_text"],
            move || {
                let ids = [1i32];
                let mut len = 0;
                unsafe { sphana_llm_decode(m, ids.as_ptr(), 1, 0, null_mut(), 16, &mut len) }.into()
            },
        ),
        case(
            "decode: negative id",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-3"],
            move || decode_case(m, &[100, -3, 200], fx),
        ),
        case(
            "decode: i32::MIN id",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-2147483648"],
            move || decode_case(m, &[i32::MIN], fx),
        ),
        case(
            "decode: id equal to the vocabulary size",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["128256", "vocabulary size 128256"],
            move || decode_case(m, &[1, 128_256], fx),
        ),
        case(
            "decode: id far above the vocabulary",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["2147483647"],
            move || decode_case(m, &[i32::MAX], fx),
        ),
        case(
            "decode: unknown flags",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["decode flags"],
            move || {
                let ids = [1i32];
                let mut buf = [0 as c_char; 16];
                let mut len = 0;
                unsafe {
                    sphana_llm_decode(m, ids.as_ptr(), 1, 0x2, buf.as_mut_ptr(), 16, &mut len)
                }
                .into()
            },
        ),
        case(
            "decode: capacity 0",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                let mut len = 0;
                Outcome::from(unsafe {
                    sphana_llm_decode(
                        m,
                        fx.emoji_ids.as_ptr(),
                        fx.emoji_ids.len(),
                        0,
                        null_mut(),
                        0,
                        &mut len,
                    )
                })
                .check(len == fx.emoji.len(), || {
                    format!("out_len {len}, want {}", fx.emoji.len())
                })
            },
        ),
        case(
            "decode: no room for the NUL",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                let mut buf = vec![b'#'; fx.emoji.len()];
                let mut len = 0;
                Outcome::from(unsafe {
                    sphana_llm_decode(
                        m,
                        fx.emoji_ids.as_ptr(),
                        fx.emoji_ids.len(),
                        0,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut len,
                    )
                })
                .check(len == fx.emoji.len(), || {
                    format!("out_len {len}, want {}", fx.emoji.len())
                })
                .check(buf.iter().all(|&b| b == b'#'), || {
                    "a too-small buffer was written".to_owned()
                })
            },
        ),
        // ---- token_to_id / id_to_token / is_special ----
        case(
            "token_to_id: NULL token with length 3",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["`token` is NULL"],
            move || {
                let mut id = 0;
                unsafe { sphana_llm_token_to_id(m, null(), 3, &mut id) }.into()
            },
        ),
        case(
            "token_to_id: invalid UTF-8",
            SPHANA_LLM_ERR_INVALID_UTF8,
            &["token", "UTF-8"],
            move || {
                let mut id = 0;
                unsafe {
                    sphana_llm_token_to_id(m, bad_utf8.as_ptr().cast(), bad_utf8.len(), &mut id)
                }
                .into()
            },
        ),
        case(
            "token_to_id: unknown token",
            SPHANA_LLM_ERR_NOT_FOUND,
            &["<|not-a-token|>"],
            move || {
                let token = "<|not-a-token|>";
                let mut id = -5;
                Outcome::from(unsafe {
                    sphana_llm_token_to_id(m, token.as_ptr().cast(), token.len(), &mut id)
                })
                .check(id == -5, || format!("out_id written on failure: {id}"))
            },
        ),
        case(
            "token_to_id: NULL out_id",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_id"],
            move || {
                unsafe { sphana_llm_token_to_id(m, hello.as_ptr().cast(), 5, null_mut()) }.into()
            },
        ),
        case(
            "id_to_token: id -1",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-1"],
            move || {
                let mut buf = [0 as c_char; 64];
                let mut len = 0;
                unsafe { sphana_llm_id_to_token(m, -1, buf.as_mut_ptr(), 64, &mut len) }.into()
            },
        ),
        case(
            "id_to_token: id equal to the vocabulary size",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["128256"],
            move || {
                let mut buf = [0 as c_char; 64];
                let mut len = 0;
                unsafe {
                    sphana_llm_id_to_token(m, fx.vocab as i32, buf.as_mut_ptr(), 64, &mut len)
                }
                .into()
            },
        ),
        case(
            "id_to_token: capacity too small",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                let mut eot = -1;
                let name = "<|eot_id|>";
                assert_eq!(
                    unsafe {
                        sphana_llm_token_to_id(m, name.as_ptr().cast(), name.len(), &mut eot)
                    },
                    SPHANA_LLM_OK
                );
                let mut buf = [b'#' as c_char; 10];
                let mut len = 0;
                Outcome::from(unsafe {
                    sphana_llm_id_to_token(m, eot, buf.as_mut_ptr(), buf.len(), &mut len)
                })
                .check(len == name.len(), || {
                    format!("out_len {len}, want {}", name.len())
                })
                .check(buf.iter().all(|&b| b == b'#' as c_char), || {
                    "a too-small buffer was written".to_owned()
                })
            },
        ),
        case(
            "id_to_token: NULL out_len",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_len"],
            move || {
                let mut buf = [0 as c_char; 64];
                unsafe { sphana_llm_id_to_token(m, 1, buf.as_mut_ptr(), 64, null_mut()) }.into()
            },
        ),
        case(
            "is_special: id equal to the vocabulary size",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["128256"],
            move || {
                let mut special = -1;
                unsafe { sphana_llm_is_special(m, fx.vocab as i32, &mut special) }.into()
            },
        ),
        case(
            "is_special: negative id",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-7"],
            move || {
                let mut special = -1;
                unsafe { sphana_llm_is_special(m, -7, &mut special) }.into()
            },
        ),
        case(
            "is_special: NULL out_is_special",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_is_special"],
            move || unsafe { sphana_llm_is_special(m, 1, null_mut()) }.into(),
        ),
        // ---- streaming decoder ----
        case(
            "stream_decoder_new: NULL out_decoder",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_decoder"],
            move || unsafe { sphana_llm_stream_decoder_new(m, 0, null_mut()) }.into(),
        ),
        case(
            "stream_decoder_new: unknown flags",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["decode flags"],
            move || {
                let mut d = null_mut();
                unsafe { sphana_llm_stream_decoder_new(m, 0x40, &mut d) }.into()
            },
        ),
        case(
            "stream_decoder_new: forged model",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["model handle", "not live"],
            move || {
                let mut d = null_mut();
                unsafe { sphana_llm_stream_decoder_new(forged, 0, &mut d) }.into()
            },
        ),
        case(
            "stream_decoder_push: NULL decoder",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stream decoder handle is NULL"],
            move || {
                let mut out = [0 as c_char; 64];
                let mut len = 0;
                unsafe {
                    sphana_llm_stream_decoder_push(null_mut(), 1, out.as_mut_ptr(), 64, &mut len)
                }
                .into()
            },
        ),
        case(
            "stream_decoder_push: negative id leaves the decoder usable",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["-1"],
            move || {
                stream_case(fx, |d, out, len| unsafe {
                    sphana_llm_stream_decoder_push(d, -1, out.as_mut_ptr().cast(), out.len(), len)
                })
            },
        ),
        case(
            "stream_decoder_push: id equal to the vocabulary size",
            SPHANA_LLM_ERR_INVALID_TOKEN_ID,
            &["128256"],
            move || {
                stream_case(fx, |d, out, len| unsafe {
                    sphana_llm_stream_decoder_push(
                        d,
                        128_256,
                        out.as_mut_ptr().cast(),
                        out.len(),
                        len,
                    )
                })
            },
        ),
        case(
            "stream_decoder_push: capacity 0 leaves the decoder unchanged",
            SPHANA_LLM_ERR_BUFFER_TOO_SMALL,
            &["buffer too small"],
            move || {
                // Feeding the next id into no room must not consume it.
                stream_case(fx, |d, _out, len| unsafe {
                    sphana_llm_stream_decoder_push(d, fx.emoji_ids[3], null_mut(), 0, len)
                })
            },
        ),
        case(
            "stream_decoder_push: NULL out_len",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_len"],
            move || {
                stream_case(fx, |d, out, _len| unsafe {
                    sphana_llm_stream_decoder_push(
                        d,
                        1,
                        out.as_mut_ptr().cast(),
                        out.len(),
                        null_mut(),
                    )
                })
            },
        ),
        case(
            "stream_decoder_flush: NULL out_text with capacity 64",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["out_text"],
            move || {
                stream_case(fx, |d, _out, len| unsafe {
                    sphana_llm_stream_decoder_flush(d, null_mut(), 64, len)
                })
            },
        ),
        case(
            "stream_decoder_flush: forged decoder",
            SPHANA_LLM_ERR_INVALID_ARGUMENT,
            &["stream decoder handle", "not live"],
            move || {
                let mut out = [0 as c_char; 64];
                let mut len = 0;
                unsafe {
                    sphana_llm_stream_decoder_flush(
                        0x1234usize as *mut _,
                        out.as_mut_ptr(),
                        64,
                        &mut len,
                    )
                }
                .into()
            },
        ),
    ];
    // Every case name is unique, so the report points at exactly one.
    let mut names: Vec<&str> = v.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), v.len(), "duplicate case names");
    v.shrink_to_fit();
    v
}

/// Runs a batch call on a pre-filled garbage batch: on failure it must come back zeroed.
fn batch_case(
    model: *const SphanaLlmModel,
    texts: *const *const c_char,
    lens: *const usize,
    count: usize,
    flags: u32,
) -> Outcome {
    let mut batch = SphanaLlmTokenBatch {
        ids: 0x10usize as *mut i32,
        starts: 0x20usize as *mut usize,
        text_count: 99,
    };
    let status = unsafe { sphana_llm_tokenize_batch(model, texts, lens, count, flags, &mut batch) };
    if status == SPHANA_LLM_OK {
        unsafe { sphana_llm_token_batch_free(&mut batch) };
        return status.into();
    }
    Outcome::from(status).check(
        batch.ids.is_null() && batch.starts.is_null() && batch.text_count == 0,
        || "a failed tokenize_batch did not zero *out_batch".to_owned(),
    )
}

/// Decodes into a marked buffer: on failure nothing may be written.
fn decode_case(model: *const SphanaLlmModel, ids: &[i32], _fx: &Fixture) -> Outcome {
    let mut buf = [b'#' as c_char; 256];
    let mut len = 0;
    let status = unsafe {
        sphana_llm_decode(
            model,
            ids.as_ptr(),
            ids.len(),
            0,
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        )
    };
    Outcome::from(status).check(
        status == SPHANA_LLM_OK || buf.iter().all(|&b| b == b'#' as c_char),
        || "a failed decode wrote text".to_owned(),
    )
}

/// Streams the first 3 emoji ids, makes the bad call, then streams the rest: the whole
/// text must still come out exactly (the bad call changed nothing).
fn stream_case(
    fx: &Fixture,
    bad_call: impl FnOnce(*mut SphanaLlmStreamDecoder, &mut [u8; 64], *mut usize) -> i32,
) -> Outcome {
    let mut d = null_mut();
    assert_eq!(
        unsafe { sphana_llm_stream_decoder_new(fx.model, 0, &mut d) },
        SPHANA_LLM_OK
    );
    let mut text = Vec::new();
    let push = |id: i32, text: &mut Vec<u8>| -> i32 {
        let mut out = [0u8; 64];
        let mut len = 0;
        let status =
            unsafe { sphana_llm_stream_decoder_push(d, id, out.as_mut_ptr().cast(), 64, &mut len) };
        if status == SPHANA_LLM_OK {
            text.extend_from_slice(&out[..len]);
        }
        status
    };
    let mut problems = Vec::new();
    for &id in &fx.emoji_ids[..3] {
        if push(id, &mut text) != SPHANA_LLM_OK {
            problems.push(format!("push before the bad call failed: {}", last_error()));
        }
    }
    let mut out = [b'#'; 64];
    let mut len = 0usize;
    let status = bad_call(d, &mut out, &mut len);
    let message = last_error();
    for &id in &fx.emoji_ids[3..] {
        if push(id, &mut text) != SPHANA_LLM_OK {
            problems.push(format!("push after the bad call failed: {}", last_error()));
        }
    }
    let mut rest = [0u8; 64];
    let mut rest_len = 0;
    unsafe {
        sphana_llm_stream_decoder_flush(d, rest.as_mut_ptr().cast(), 64, &mut rest_len);
    }
    text.extend_from_slice(&rest[..rest_len.min(64)]);
    sphana_llm_stream_decoder_free(d);
    if text != fx.emoji.as_bytes() {
        problems.push(format!(
            "after the bad call the stream gave {:?}, want {:?}",
            String::from_utf8_lossy(&text),
            fx.emoji
        ));
    }
    if status != SPHANA_LLM_OK && out.iter().any(|&b| b != b'#') {
        problems.push("a failed stream call wrote text".to_owned());
    }
    // Later successful calls must not have cleared the bad call's message.
    if last_error() != message {
        problems.push(format!(
            "successful calls changed the message from {message:?} to {:?}",
            last_error()
        ));
    }
    Outcome { status, problems }
}

/// The valid handle must still tokenize the golden paragraph exactly.
fn healthy(fx: &Fixture) -> Result<(), String> {
    let ids = tokenize(
        fx.model,
        fx.paragraph.as_bytes(),
        SPHANA_LLM_TOKENIZE_ADD_SPECIAL,
    )?;
    if ids != fx.paragraph_ids {
        return Err(format!(
            "the valid handle now tokenizes the paragraph as {ids:?}"
        ));
    }
    let (text, want) = &fx.at_limit;
    let ids = tokenize(fx.limited, text.as_bytes(), 0)?;
    if &ids != want {
        return Err(format!(
            "the limited handle now tokenizes {text:?} as {ids:?}"
        ));
    }
    Ok(())
}

#[test]
fn every_entry_point_rejects_bad_input() {
    let fx = Fixture::new();
    healthy(&fx).expect("the valid handle works before any case");
    let cases = cases(&fx);
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        // Prime this thread's message with a failure no case can produce.
        let primer = format!("<|primer-{i}|>");
        let mut id = 0;
        let primed = unsafe {
            sphana_llm_token_to_id(fx.model, primer.as_ptr().cast(), primer.len(), &mut id)
        };
        assert_eq!(primed, SPHANA_LLM_ERR_NOT_FOUND);
        let primed_message = last_error();
        assert!(primed_message.contains(&primer), "{primed_message}");

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
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The header promises: "64 bytes of room always suffice for one id of the supported
/// tokenizers". Check it with the longest Llama 3 token, found independently by reading
/// the tiktoken rank file (rank = id in Llama 3).
/// A 128-byte token (Llama 3 has runs of spaces that long) does not fit a 64-byte buffer:
/// BUFFER_TOO_SMALL reports the size, leaves the decoder unchanged, and the retry succeeds.
#[test]
fn stream_push_of_the_longest_token_reports_its_size_and_retries() {
    use base64::Engine as _;
    let ranks =
        std::fs::read_to_string(common::tokenizer_dir("llama3-tiktoken").join("tokenizer.model"))
            .unwrap();
    let (longest, rank) = ranks
        .lines()
        .map(|line| {
            let (token, rank) = line.split_once(' ').unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap();
            (bytes, rank.parse::<i32>().unwrap())
        })
        .max_by_key(|(bytes, _)| bytes.len())
        .unwrap();
    assert!(
        longest.len() >= 64,
        "the longest Llama 3 token has {} bytes",
        longest.len()
    );
    let model = load(&common::tokenizer_dir("llama3.2"), None);
    let mut d = null_mut();
    assert_eq!(
        unsafe { sphana_llm_stream_decoder_new(model, 0, &mut d) },
        SPHANA_LLM_OK
    );
    let mut small = [0u8; 64];
    let mut len = 0usize;
    let status = unsafe {
        sphana_llm_stream_decoder_push(d, rank, small.as_mut_ptr().cast(), small.len(), &mut len)
    };
    assert_eq!(status, SPHANA_LLM_ERR_BUFFER_TOO_SMALL, "{}", last_error());
    assert_eq!(len, longest.len());
    let mut big = vec![0u8; len + 1];
    let status = unsafe {
        sphana_llm_stream_decoder_push(d, rank, big.as_mut_ptr().cast(), big.len(), &mut len)
    };
    let message = last_error();
    sphana_llm_stream_decoder_free(d);
    sphana_llm_free(model);
    assert_eq!(status, SPHANA_LLM_OK, "{message}");
    assert_eq!(&big[..len], &longest[..], "the retry emits the token once");
}
