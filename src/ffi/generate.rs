//! Generation: `sphana_llm_generate`, its id-prompt variant, cancellation and stats.

use std::ffi::{c_char, c_void};

use once_cell::sync::Lazy;

use super::common::*;
use super::model::{model_arg, read_versioned_struct, write_versioned_struct, SphanaLlmModel};
use super::tokenize::ids_arg;
use crate::error::{Error, Result};
use crate::generation::{CancelToken, Constraint, FinishReason, Flow, GenerateParams, Generation};

/// Finish reason: the model produced an end-of-sequence id.
pub const SPHANA_LLM_FINISH_EOS: i32 = 0;
/// Finish reason: the text reached one of the stop strings (not included in the text).
pub const SPHANA_LLM_FINISH_STOP_STRING: i32 = 1;
/// Finish reason: `max_new_tokens` tokens were generated.
pub const SPHANA_LLM_FINISH_LENGTH: i32 = 2;
/// Finish reason: cancelled by `sphana_llm_cancellation_cancel` or by the text callback.
pub const SPHANA_LLM_FINISH_CANCELLED: i32 = 3;
/// Finish reason: the model's context window (config.json `max_position_embeddings`) is full.
pub const SPHANA_LLM_FINISH_CONTEXT_FULL: i32 = 4;
/// Finish reason: `max_new_tokens` tokens were generated before the text matched the
/// constraint (`SphanaLlmGenerateParams.constraint`); the partial text is returned.
pub const SPHANA_LLM_FINISH_CONSTRAINT_INCOMPLETE: i32 = 5;

/// Constraint kind: a JSON Schema (`text`: the schema as JSON; the draft 2020-12 subset
/// llguidance supports — an unsupported keyword is refused, not ignored). The JSON is compact
/// (`", "` between items, `": "` after keys, no other whitespace) unless the schema has an
/// `"x-guidance"` object with llguidance's JSON options, e.g. `{"whitespace_flexible": true}`.
pub const SPHANA_LLM_CONSTRAINT_JSON_SCHEMA: i32 = 1;
/// Constraint kind: a regular expression the whole text must match (`text`; Rust `regex`
/// syntax without look-around or back-references).
pub const SPHANA_LLM_CONSTRAINT_REGEX: i32 = 2;
/// Constraint kind: a Lark grammar (`text`; llguidance's dialect, start rule `start`).
pub const SPHANA_LLM_CONSTRAINT_LARK: i32 = 3;
/// Constraint kind: any JSON object (`text` must be NULL or empty).
pub const SPHANA_LLM_CONSTRAINT_JSON_OBJECT: i32 = 4;
/// Most bytes a constraint's `text` may have.
pub const SPHANA_LLM_MAX_CONSTRAINT_BYTES: u32 = 262144;
const _: () =
    assert!(SPHANA_LLM_MAX_CONSTRAINT_BYTES as usize == crate::generation::MAX_CONSTRAINT_BYTES);

/// What a generation's text must match (structured output through llguidance). Point
/// `SphanaLlmGenerateParams.constraint` at one; it is read during the call only. Before a
/// token is sampled every token the constraint forbids gets probability 0 (before
/// penalties, temperature, top-k/p and min-p); special tokens are never allowed inside the
/// text; the model's end-of-sequence ids are allowed only where the text is a complete
/// match, and the generation ends (`SPHANA_LLM_FINISH_EOS`) as soon as the constraint allows
/// nothing more. An invalid schema, regex or grammar is `SPHANA_LLM_ERR_INVALID_ARGUMENT`
/// with a message naming the problem, before anything runs. The first constrained
/// generation of a handle builds its token trie (tens to hundreds of milliseconds for a
/// 128k vocabulary), once.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmConstraint {
    /// `sizeof(SphanaLlmConstraint)` as the caller compiled it.
    pub struct_size: u32,
    /// One of `SPHANA_LLM_CONSTRAINT_*`.
    pub kind: i32,
    /// The schema, regex or grammar: NUL-terminated UTF-8, at most
    /// `SPHANA_LLM_MAX_CONSTRAINT_BYTES` bytes. NULL only for `SPHANA_LLM_CONSTRAINT_JSON_OBJECT`.
    pub text: *const c_char,
}

impl SphanaLlmConstraint {
    const EMPTY: Self = Self {
        struct_size: std::mem::size_of::<Self>() as u32,
        kind: 0,
        text: std::ptr::null(),
    };
}

/// Receives generated text as it becomes available: `len` bytes of complete UTF-8 at
/// `text` (also NUL-terminated), valid only during the call. Never part of a stop string.
/// Return 0 to continue, non-zero to stop (finish reason CANCELLED). Called on the thread
/// that called `sphana_llm_generate`.
pub type SphanaLlmTextCallback =
    Option<unsafe extern "C" fn(text: *const c_char, len: usize, user_data: *mut c_void) -> i32>;

/// An opaque cancellation flag: create it, pass it in `SphanaLlmGenerateParams.cancel`,
/// and call `sphana_llm_cancellation_cancel` from any thread to end the generation within
/// one token. Once cancelled it stays cancelled.
pub struct SphanaLlmCancellation {
    _opaque: [u8; 0],
}

/// Generation parameters. Start from `sphana_llm_generate_params_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SphanaLlmGenerateParams {
    /// `sizeof(SphanaLlmGenerateParams)` as the caller compiled it.
    pub struct_size: u32,
    /// Most tokens to generate (default 256). The EOS that ends generation is not counted.
    pub max_new_tokens: u32,
    /// Softmax temperature; 0 (default) is greedy decoding. Must be finite and >= 0.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 (default) disables.
    pub top_k: u32,
    /// Nucleus sampling mass in (0, 1]; 1 (default) disables.
    pub top_p: f32,
    /// Drop tokens less likely than min_p x the most likely; in [0, 1), 0 (default) disables.
    pub min_p: f32,
    /// Repetition penalty over prompt and generated ids (> 0); 1 (default) disables.
    pub repetition_penalty: f32,
    /// Seed of the sampling RNG (default 0): the same seed gives the same output.
    pub seed: u64,
    /// `stop_string_count` NUL-terminated UTF-8 strings (at most 64, each 1..=1024 bytes);
    /// generation ends when the text contains one. May be NULL when the count is 0.
    pub stop_strings: *const *const c_char,
    /// Number of stop strings.
    pub stop_string_count: usize,
    /// Non-zero: special-token text in the prompt (e.g. "<|im_start|>") becomes the special
    /// id. Default 0, so prompt text cannot inject control tokens.
    pub parse_special: u32,
    /// Non-zero (default): add BOS etc. to a text prompt as the tokenizer's configuration says.
    /// Ignored by `sphana_llm_generate_from_ids`.
    pub add_special: u32,
    /// Non-zero: keep generating past end-of-sequence ids (benchmarks). Default 0.
    pub ignore_eos: u32,
    /// Optional cancellation flag (NULL: none).
    pub cancel: *const SphanaLlmCancellation,
    /// Optional buffer for the generated ids (NULL: not wanted); the first
    /// `out_token_ids_capacity` ids are written; `SphanaLlmGenerateStats.generated_tokens`
    /// tells how many there were in all.
    pub out_token_ids: *mut i32,
    /// Capacity of `out_token_ids`.
    pub out_token_ids_capacity: usize,
    /// Optional buffer for each generated token's log-probability (NULL: not wanted): the
    /// natural log of its probability under the model at its position — the log-softmax of
    /// the raw logits, before temperature, penalties, top-k/p and min-p, so the same for
    /// greedy and sampled generation and equal to what `sphana_llm_score` gives for the same
    /// ids. The first `out_logprobs_capacity` tokens are written. (Added after the third
    /// release, with the fields up to `top_logprobs`.)
    pub out_logprobs: *mut f32,
    /// With `top_logprobs` > 0: room for `out_logprobs_capacity × top_logprobs` ids; token
    /// `i`'s most likely alternatives go to `[i × top_logprobs, (i + 1) × top_logprobs)`,
    /// most likely first (ties: lower id first); slots beyond the tokenizer's vocabulary get
    /// -1. May be NULL when `top_logprobs` is 0.
    pub out_top_logprob_ids: *mut i32,
    /// With `top_logprobs` > 0: their log-probabilities, laid out as `out_top_logprob_ids`
    /// (-infinity in unused slots). May be NULL when `top_logprobs` is 0.
    pub out_top_logprobs: *mut f32,
    /// Tokens the log-probability buffers hold room for.
    pub out_logprobs_capacity: usize,
    /// Alternatives per token, 0 (default) to `SPHANA_LLM_MAX_TOP_LOGPROBS`.
    pub top_logprobs: u32,
    /// Speculative decoding by prompt lookup: at most this many tokens per step are drafted
    /// from an earlier occurrence of the text's latest n-gram in the prompt or the answer
    /// and verified in one model run; 0 turns it off, at most
    /// `SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS`; default `SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS`.
    /// The output stays the one without it: the same ids for greedy decoding on float
    /// models, and for sampling the same ids for the same seed (every position is sampled
    /// from the model's distribution in order; a draft token is kept only when it equals
    /// that sample). INT8 models quantized with `DynamicQuantizeLinear` pick one activation
    /// scale per run, so their logits (and rarely their ids) differ slightly from one-token
    /// steps. With continuous batching, rows with drafts of different lengths are verified in
    /// one batched run (shorter rows padded, the padding masked out). Each drafted token
    /// costs about one prompt token of compute, so a draft pays off when its tokens are
    /// often right (answers that copy from the prompt). `SphanaLlmGenerateStats.draft_tokens` and
    /// `accepted_draft_tokens` tell how it went. (Added after the fourth release, with
    /// `prompt_lookup_ngram`.)
    pub prompt_lookup_tokens: usize,
    /// Longest n-gram prompt lookup matches, 1 to `SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM`
    /// (default 3).
    pub prompt_lookup_ngram: usize,
    /// Optional constraint on the generated text (NULL, default: none); see
    /// `SphanaLlmConstraint`. `SphanaLlmGenerateStats.constraint_ms` tells what compiling it
    /// cost. (Added after the fifth release.)
    pub constraint: *const SphanaLlmConstraint,
}

/// Default of `SphanaLlmGenerateParams.prompt_lookup_tokens` (0: off).
pub const SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS: u32 = 0;
/// Most tokens `SphanaLlmGenerateParams.prompt_lookup_tokens` may ask for.
pub const SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS: u32 = 64;
/// Longest n-gram `SphanaLlmGenerateParams.prompt_lookup_ngram` may ask for.
pub const SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM: u32 = 16;
const _: () = {
    use crate::generation::prompt_lookup as lookup;
    assert!(
        SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS as usize
            == crate::generation::DEFAULT_PROMPT_LOOKUP_TOKENS
    );
    assert!(SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS as usize == lookup::MAX_PROMPT_LOOKUP_TOKENS);
    assert!(SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM as usize == lookup::MAX_PROMPT_LOOKUP_NGRAM);
};

/// Most alternatives per token (`SphanaLlmGenerateParams.top_logprobs`, `sphana_llm_score`).
pub const SPHANA_LLM_MAX_TOP_LOGPROBS: u32 = 20;
const _: () = assert!(SPHANA_LLM_MAX_TOP_LOGPROBS as usize == crate::generation::MAX_TOP_LOGPROBS);

/// Figures of one generation, written to the caller's struct (set `struct_size` first;
/// only the fields that fit in it are written).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SphanaLlmGenerateStats {
    /// `sizeof(SphanaLlmGenerateStats)` as the caller compiled it.
    pub struct_size: u32,
    /// One of `SPHANA_LLM_FINISH_*`.
    pub finish_reason: i32,
    /// Tokens in the prompt (after BOS etc.).
    pub prompt_tokens: usize,
    /// Tokens generated (not counting the EOS that ended generation).
    pub generated_tokens: usize,
    /// Milliseconds of the prompt's forward pass.
    pub prefill_ms: f64,
    /// Milliseconds of all later steps.
    pub decode_ms: f64,
    /// Milliseconds inside ONNX Runtime's `session.run`, prefill included.
    pub session_run_ms: f64,
    /// Length in bytes of the whole generated text (`*out_text` without its terminating
    /// NUL). The text holds a NUL byte wherever the model generated U+0000, so read
    /// `*out_text` with this length rather than `strlen`. (Added after the first release:
    /// a caller whose `struct_size` ends before this field does not get it.)
    pub text_len: usize,
    /// Decode steps that shared one `session.run` with other generations on the same
    /// handle (continuous batching; see `SphanaLlmLoadOptions.max_decode_batch`). (Added
    /// after the first release.)
    pub batched_steps: usize,
    /// Prompt positions whose KV cache came from the handle's prefix cache instead of the
    /// prefill (see `SphanaLlmLoadOptions.prefix_cache_bytes`); 0 when it is off. (Added
    /// after the third release.)
    pub cached_tokens: usize,
    /// Tokens drafted by prompt lookup (`SphanaLlmGenerateParams.prompt_lookup_tokens`).
    /// (Added after the fourth release, with `accepted_draft_tokens`.)
    pub draft_tokens: usize,
    /// Drafted tokens that were accepted; each saved one decode step.
    pub accepted_draft_tokens: usize,
    /// Milliseconds spent compiling `SphanaLlmGenerateParams.constraint` (with the handle's
    /// one-time token trie on its first constrained generation); 0 without one. (Added after
    /// the fifth release.)
    pub constraint_ms: f64,
}

static CANCELLATIONS: Lazy<Registry<CancelToken>> = Lazy::new(|| Registry::new("cancellation"));

/// Fills `*params` with the default generation parameters for a struct of `struct_size`
/// bytes (`sizeof(SphanaLlmGenerateParams)` of the caller's header) and sets its
/// `struct_size`: the version-safe alternative to `sphana_llm_generate_params_default()`.
/// Returns `SPHANA_LLM_OK` or `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL, unknown size).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_generate_params_init(
    params: *mut SphanaLlmGenerateParams,
    struct_size: usize,
) -> i32 {
    guard(|| {
        non_null(params, "params")?;
        // SAFETY: the caller provides `struct_size` writable bytes.
        unsafe {
            write_versioned_struct(
                params,
                struct_size,
                "SphanaLlmGenerateParams",
                sphana_llm_generate_params_default(),
                &generate_params_older_sizes(),
            )
        }
    })
}

/// The default generation parameters (`struct_size` already set): greedy, 256 tokens.
/// Returned by value in this header's layout; `sphana_llm_generate_params_init` is safe
/// across header versions.
#[no_mangle]
pub extern "C" fn sphana_llm_generate_params_default() -> SphanaLlmGenerateParams {
    let d = GenerateParams::default();
    SphanaLlmGenerateParams {
        struct_size: std::mem::size_of::<SphanaLlmGenerateParams>() as u32,
        max_new_tokens: d.max_new_tokens as u32,
        temperature: d.temperature,
        top_k: d.top_k as u32,
        top_p: d.top_p,
        min_p: d.min_p,
        repetition_penalty: d.repetition_penalty,
        seed: d.seed,
        stop_strings: std::ptr::null(),
        stop_string_count: 0,
        parse_special: u32::from(d.parse_special),
        add_special: u32::from(d.add_special),
        ignore_eos: u32::from(d.ignore_eos),
        cancel: std::ptr::null(),
        out_token_ids: std::ptr::null_mut(),
        out_token_ids_capacity: 0,
        out_logprobs: std::ptr::null_mut(),
        out_top_logprob_ids: std::ptr::null_mut(),
        out_top_logprobs: std::ptr::null_mut(),
        out_logprobs_capacity: 0,
        top_logprobs: 0,
        prompt_lookup_tokens: d.prompt_lookup_tokens,
        prompt_lookup_ngram: d.prompt_lookup_ngram,
        constraint: std::ptr::null(),
    }
}

/// Layouts of `SphanaLlmGenerateParams` before this one (its size then).
pub(crate) fn generate_params_older_sizes() -> [usize; 3] {
    [
        std::mem::offset_of!(SphanaLlmGenerateParams, out_logprobs),
        std::mem::offset_of!(SphanaLlmGenerateParams, prompt_lookup_tokens),
        std::mem::offset_of!(SphanaLlmGenerateParams, constraint),
    ]
}

/// Creates a cancellation flag. Free it with `sphana_llm_cancellation_free` (a generation
/// using it keeps it alive until it returns).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_cancellation_new(
    out_cancel: *mut *mut SphanaLlmCancellation,
) -> i32 {
    guard(|| {
        non_null(out_cancel, "out_cancel")?;
        let handle = CANCELLATIONS.insert(CancelToken::new());
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_cancel, handle as *mut SphanaLlmCancellation) };
        Ok(())
    })
}

/// Cancels: every generation using this flag ends within one token with finish reason
/// `SPHANA_LLM_FINISH_CANCELLED`; later generations with it end at once. Any thread.
#[no_mangle]
pub extern "C" fn sphana_llm_cancellation_cancel(cancel: *mut SphanaLlmCancellation) -> i32 {
    guard(|| {
        CANCELLATIONS.get(cancel as usize)?.cancel();
        Ok(())
    })
}

/// Frees a cancellation flag. NULL is a no-op.
#[no_mangle]
pub extern "C" fn sphana_llm_cancellation_free(cancel: *mut SphanaLlmCancellation) {
    guard_void(|| CANCELLATIONS.remove(cancel as usize));
}

/// What the C params carry besides the Rust params.
struct CallOutputs {
    token_ids: *mut i32,
    token_ids_capacity: usize,
    logprobs: LogprobOutputs,
}

/// Caller buffers for log-probabilities: `capacity` tokens, `top` alternatives each.
struct LogprobOutputs {
    logprobs: *mut f32,
    top_ids: *mut i32,
    top_logprobs: *mut f32,
    capacity: usize,
    top: usize,
}

impl LogprobOutputs {
    const NONE: LogprobOutputs = LogprobOutputs {
        logprobs: std::ptr::null_mut(),
        top_ids: std::ptr::null_mut(),
        top_logprobs: std::ptr::null_mut(),
        capacity: 0,
        top: 0,
    };

    /// Checks the buffers against their documented contract.
    fn check(&self) -> Result<()> {
        crate::generation::logprobs::check_top(self.top)?;
        if self.capacity != 0 && self.logprobs.is_null() && self.top == 0 {
            return Err(Error::InvalidArgument(
                "out_logprobs is NULL and top_logprobs is 0, but out_logprobs_capacity is not 0"
                    .into(),
            ));
        }
        if self.top > 0 && self.capacity > 0 {
            non_null(self.top_ids, "out_top_logprob_ids")?;
            non_null(self.top_logprobs, "out_top_logprobs")?;
        }
        Ok(())
    }

    /// Writes the first `capacity` tokens' figures.
    ///
    /// # Safety
    /// The buffers hold what [`LogprobOutputs::check`] accepted.
    unsafe fn write(&self, tokens: &[crate::generation::TokenLogprob]) {
        for (i, t) in tokens.iter().take(self.capacity).enumerate() {
            if !self.logprobs.is_null() {
                // SAFETY: room for `capacity` floats.
                unsafe { self.logprobs.add(i).write(t.logprob) };
            }
            for slot in 0..self.top {
                let (id, logprob) = t
                    .top
                    .get(slot)
                    .map_or((-1, f32::NEG_INFINITY), |a| (a.id as i32, a.logprob));
                let at = i * self.top + slot;
                // SAFETY: room for `capacity × top` of each.
                unsafe {
                    self.top_ids.add(at).write(id);
                    self.top_logprobs.add(at).write(logprob);
                }
            }
        }
    }
}

/// # Safety
/// `params` must be NULL or valid as documented.
unsafe fn params_from_c(
    params: *const SphanaLlmGenerateParams,
) -> Result<(GenerateParams, CallOutputs)> {
    if params.is_null() {
        return Ok((
            GenerateParams::default(),
            CallOutputs {
                token_ids: std::ptr::null_mut(),
                token_ids_capacity: 0,
                logprobs: LogprobOutputs::NONE,
            },
        ));
    }
    // SAFETY: forwarded contract.
    let p = unsafe {
        read_versioned_struct(
            params,
            "SphanaLlmGenerateParams",
            sphana_llm_generate_params_default(),
            &generate_params_older_sizes(),
        )
    }?;
    if p.out_token_ids.is_null() && p.out_token_ids_capacity != 0 {
        return Err(Error::InvalidArgument(
            "out_token_ids is NULL but its capacity is not 0".into(),
        ));
    }
    if p.stop_string_count > crate::generation::MAX_STOP_STRINGS {
        return Err(Error::InvalidArgument(format!(
            "at most {} stop strings (got {})",
            crate::generation::MAX_STOP_STRINGS,
            p.stop_string_count
        )));
    }
    let stop_strings = if p.stop_string_count == 0 {
        Vec::new()
    } else {
        non_null(p.stop_strings, "stop_strings")?;
        // SAFETY: the caller passes `stop_string_count` string pointers.
        let ptrs = unsafe { std::slice::from_raw_parts(p.stop_strings, p.stop_string_count) };
        ptrs.iter()
            .enumerate()
            // SAFETY: each entry is a NUL-terminated string per the contract.
            .map(|(i, &s)| {
                unsafe { cstr_arg(s, "stop_strings[i]") }
                    .map(str::to_owned)
                    .map_err(|e| match e {
                        Error::InvalidArgument(_) => {
                            Error::InvalidArgument(format!("stop_strings[{i}] is NULL"))
                        }
                        Error::InvalidUtf8 { valid_up_to, .. } => Error::InvalidUtf8 {
                            what: format!("stop_strings[{i}]"),
                            valid_up_to,
                        },
                        other => other,
                    })
            })
            .collect::<Result<_>>()?
    };
    let cancel = if p.cancel.is_null() {
        None
    } else {
        Some((*CANCELLATIONS.get(p.cancel as usize)?).clone())
    };
    let logprobs = LogprobOutputs {
        logprobs: p.out_logprobs,
        top_ids: p.out_top_logprob_ids,
        top_logprobs: p.out_top_logprobs,
        capacity: p.out_logprobs_capacity,
        top: p.top_logprobs as usize,
    };
    logprobs.check()?;
    let params = GenerateParams {
        logprobs: !logprobs.logprobs.is_null() || logprobs.top > 0,
        top_logprobs: logprobs.top,
        max_new_tokens: p.max_new_tokens as usize,
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        min_p: p.min_p,
        repetition_penalty: p.repetition_penalty,
        seed: p.seed,
        stop_strings,
        parse_special: p.parse_special != 0,
        add_special: p.add_special != 0,
        ignore_eos: p.ignore_eos != 0,
        cancel,
        prompt_lookup_tokens: p.prompt_lookup_tokens,
        prompt_lookup_ngram: p.prompt_lookup_ngram,
        // SAFETY: forwarded contract.
        constraint: unsafe { constraint_from_c(p.constraint) }?,
    };
    params.validate()?;
    Ok((
        params,
        CallOutputs {
            token_ids: p.out_token_ids,
            token_ids_capacity: p.out_token_ids_capacity,
            logprobs,
        },
    ))
}

/// Reads `SphanaLlmGenerateParams.constraint`.
///
/// # Safety
/// `constraint` must be NULL or point to a struct of its declared `struct_size` whose `text`
/// is NULL or NUL-terminated.
unsafe fn constraint_from_c(constraint: *const SphanaLlmConstraint) -> Result<Option<Constraint>> {
    if constraint.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    let c = unsafe {
        read_versioned_struct(
            constraint,
            "SphanaLlmConstraint",
            SphanaLlmConstraint::EMPTY,
            &[],
        )
    }?;
    let text = if c.text.is_null() {
        None
    } else {
        // SAFETY: NUL-terminated per the contract.
        Some(unsafe { cstr_arg(c.text, "constraint.text") }?.to_owned())
    };
    let needs_text = |make: fn(String) -> Constraint| {
        text.clone()
            .map(make)
            .ok_or_else(|| Error::InvalidArgument("SphanaLlmConstraint.text is NULL".into()))
    };
    Ok(Some(match c.kind {
        SPHANA_LLM_CONSTRAINT_JSON_SCHEMA => needs_text(Constraint::JsonSchema)?,
        SPHANA_LLM_CONSTRAINT_REGEX => needs_text(Constraint::Regex)?,
        SPHANA_LLM_CONSTRAINT_LARK => needs_text(Constraint::Lark)?,
        SPHANA_LLM_CONSTRAINT_JSON_OBJECT => {
            if text.as_deref().is_some_and(|t| !t.is_empty()) {
                return Err(Error::InvalidArgument(
                    "SPHANA_LLM_CONSTRAINT_JSON_OBJECT takes no text (pass a JSON Schema as SPHANA_LLM_CONSTRAINT_JSON_SCHEMA)".into(),
                ));
            }
            Constraint::JsonObject
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "SphanaLlmConstraint.kind {other} is not one of SPHANA_LLM_CONSTRAINT_*"
            )))
        }
    }))
}

fn finish_code(reason: FinishReason) -> i32 {
    match reason {
        FinishReason::Eos => SPHANA_LLM_FINISH_EOS,
        FinishReason::StopString => SPHANA_LLM_FINISH_STOP_STRING,
        FinishReason::Length => SPHANA_LLM_FINISH_LENGTH,
        FinishReason::Cancelled => SPHANA_LLM_FINISH_CANCELLED,
        FinishReason::ContextFull => SPHANA_LLM_FINISH_CONTEXT_FULL,
        FinishReason::ConstraintIncomplete => SPHANA_LLM_FINISH_CONSTRAINT_INCOMPLETE,
    }
}

/// Checks the stats out-struct before any work is done.
///
/// # Safety
/// `out_stats` must be NULL or point to a struct of its declared `struct_size`.
unsafe fn check_stats(out_stats: *mut SphanaLlmGenerateStats) -> Result<()> {
    if out_stats.is_null() {
        return Ok(());
    }
    // SAFETY: non-NULL; every versioned struct starts with its u32 size.
    let declared = unsafe { out_stats.cast::<u32>().read_unaligned() } as usize;
    if declared < std::mem::size_of::<u32>() * 2 {
        return Err(Error::InvalidArgument(format!(
            "SphanaLlmGenerateStats.struct_size is {declared}; set it to sizeof(SphanaLlmGenerateStats)"
        )));
    }
    Ok(())
}

/// Runs a generation and writes the C outputs. `*out_text` is written last of what can fail:
/// on an error it is NULL.
///
/// # Safety
/// All pointers as documented for `sphana_llm_generate`.
pub(crate) unsafe fn run_generation(
    model: *const SphanaLlmModel,
    params: *const SphanaLlmGenerateParams,
    on_text: SphanaLlmTextCallback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
    out_stats: *mut SphanaLlmGenerateStats,
    run: impl FnOnce(&crate::Model, &GenerateParams, &mut dyn FnMut(&str) -> Flow) -> Result<Generation>,
) -> Result<()> {
    if !out_text.is_null() {
        // SAFETY: non-NULL out-pointer.
        unsafe { write_out(out_text, std::ptr::null_mut()) };
    }
    // SAFETY: forwarded contract.
    unsafe { check_stats(out_stats) }?;
    let model = model_arg(model)?;
    // SAFETY: forwarded contract.
    let (params, outputs) = unsafe { params_from_c(params) }?;
    let mut chunk = Vec::new();
    let mut callback = |text: &str| -> Flow {
        fail_point("on_text");
        let Some(f) = on_text else {
            return Flow::Continue;
        };
        chunk.clear();
        chunk.extend_from_slice(text.as_bytes());
        chunk.push(0);
        // SAFETY: the caller's callback, given a NUL-terminated buffer valid for the call.
        let status = unsafe { f(chunk.as_ptr().cast(), text.len(), user_data) };
        if status == 0 {
            Flow::Continue
        } else {
            Flow::Stop
        }
    };
    let generation = run(&model, &params, &mut callback)?;
    if !outputs.token_ids.is_null() {
        let n = generation.token_ids.len().min(outputs.token_ids_capacity);
        for (i, &id) in generation.token_ids[..n].iter().enumerate() {
            // SAFETY: the caller provided room for `token_ids_capacity` ids.
            unsafe { outputs.token_ids.add(i).write(id as i32) };
        }
    }
    // SAFETY: checked by params_from_c.
    unsafe { outputs.logprobs.write(&generation.logprobs) };
    if !out_text.is_null() {
        let text = malloc_string(&generation.text)?;
        // SAFETY: non-NULL out-pointer.
        unsafe { write_out(out_text, text) };
    }
    if !out_stats.is_null() {
        let s = &generation.stats;
        // SAFETY: checked by check_stats.
        let declared = unsafe { out_stats.cast::<u32>().read_unaligned() };
        let stats = SphanaLlmGenerateStats {
            struct_size: declared,
            finish_reason: finish_code(s.finish_reason),
            prompt_tokens: s.prompt_tokens,
            generated_tokens: s.generated_tokens,
            prefill_ms: s.prefill_ms,
            decode_ms: s.decode_ms,
            session_run_ms: s.session_run_ms,
            text_len: generation.text.len(),
            batched_steps: s.batched_steps,
            cached_tokens: s.cached_tokens,
            draft_tokens: s.draft_tokens,
            accepted_draft_tokens: s.accepted_draft_tokens,
            constraint_ms: s.constraint_ms,
        };
        let bytes = (declared as usize).min(std::mem::size_of::<SphanaLlmGenerateStats>());
        // SAFETY: the caller's struct holds `declared` bytes; we copy at most that many.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&stats as *const SphanaLlmGenerateStats).cast::<u8>(),
                out_stats.cast::<u8>(),
                bytes,
            )
        };
    }
    Ok(())
}

/// Generates a continuation of a UTF-8 text prompt.
///
/// `prompt`: `prompt_len` bytes of UTF-8 (not NUL-terminated); tokenized with BOS as
/// `params->add_special` says and special-token text parsed only if `params->parse_special`.
/// `params`: NULL for the defaults (greedy, 256 tokens). `on_text`: NULL or a callback that
/// receives the text as it is generated (see `SphanaLlmTextCallback`); the chunks concatenate
/// to `*out_text`. `out_text`: NULL or receives the whole text, NUL-terminated, malloc'd by
/// the library (free with `sphana_llm_string_free`; NULL on failure); a model can generate
/// U+0000, so the text may hold NUL bytes: its length is `out_stats->text_len`.
/// `out_stats`: NULL or receives the figures.
///
/// Returns `SPHANA_LLM_OK` (also when cancelled or stopped: see the finish reason);
/// `SPHANA_LLM_ERR_UNSUPPORTED` (tokenizer-only model); `SPHANA_LLM_ERR_CONTEXT_OVERFLOW` (the
/// prompt does not fit); `SPHANA_LLM_ERR_INVALID_ARGUMENT` (bad handle, params out of range,
/// NULL stop string, a prompt that tokenizes to no ids — an empty text without BOS); `SPHANA_LLM_ERR_INVALID_UTF8`; `SPHANA_LLM_ERR_LIMIT_EXCEEDED`;
/// `SPHANA_LLM_ERR_RUNTIME` (ONNX Runtime failed during a step).
///
/// Thread-safe: many threads may generate on one handle at once. Each generation has its own
/// KV cache. Their decode steps are batched: one `session.run` computes the next token of up
/// to `max_decode_batch` concurrent generations (see `SphanaLlmLoadOptions`); prompts run on
/// the model's `session_count` sessions.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_generate(
    model: *const SphanaLlmModel,
    prompt: *const c_char,
    prompt_len: usize,
    params: *const SphanaLlmGenerateParams,
    on_text: SphanaLlmTextCallback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
    out_stats: *mut SphanaLlmGenerateStats,
) -> i32 {
    guard(|| {
        // SAFETY: caller contract for every pointer.
        unsafe {
            run_generation(
                model,
                params,
                on_text,
                user_data,
                out_text,
                out_stats,
                |m, p, cb| {
                    m.check_input_len(prompt_len)?;
                    let prompt = utf8_arg(prompt, prompt_len, "prompt")?;
                    m.generate(prompt, p, cb)
                },
            )
        }
    })
}

/// Like `sphana_llm_generate` with a prompt given as `prompt_count` token ids (nothing is
/// added to them). Ids must be inside the vocabulary (`SPHANA_LLM_ERR_INVALID_TOKEN_ID`).
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_generate_from_ids(
    model: *const SphanaLlmModel,
    prompt_ids: *const i32,
    prompt_count: usize,
    params: *const SphanaLlmGenerateParams,
    on_text: SphanaLlmTextCallback,
    user_data: *mut c_void,
    out_text: *mut *mut c_char,
    out_stats: *mut SphanaLlmGenerateStats,
) -> i32 {
    guard(|| {
        // SAFETY: caller contract for every pointer.
        unsafe {
            run_generation(
                model,
                params,
                on_text,
                user_data,
                out_text,
                out_stats,
                |m, p, cb| {
                    let ids = ids_arg(prompt_ids, prompt_count, m.tokenizer().vocab_size())?;
                    m.generate_from_ids(&ids, p, cb)
                },
            )
        }
    })
}

/// Scores a given continuation: writes the log-probability of each of the
/// `continuation_count` ids after the `prompt_count` prompt ids (and the continuation ids
/// before it) — the same figures a generation of those ids reports in
/// `SphanaLlmGenerateParams.out_logprobs` — computed in one run over the continuation
/// (after a prefill of the prompt, which uses the prefix cache if it is on). For
/// groundedness checks and reranking: the sum is the log-probability of the whole
/// continuation. Nothing is added to either id list.
///
/// `out_logprobs`: room for `continuation_count` floats. `top_logprobs`: alternatives per
/// position (0 to `SPHANA_LLM_MAX_TOP_LOGPROBS`); when it is > 0, `out_top_logprob_ids` and
/// `out_top_logprobs` each hold room for `continuation_count × top_logprobs` values, laid
/// out as in `SphanaLlmGenerateParams` (may be NULL when it is 0). The buffers are written
/// only on success.
///
/// Returns `SPHANA_LLM_OK`; `SPHANA_LLM_ERR_INVALID_ARGUMENT` (bad handle, NULL buffer, an
/// empty prompt or continuation, `top_logprobs` too large); `SPHANA_LLM_ERR_INVALID_TOKEN_ID`;
/// `SPHANA_LLM_ERR_CONTEXT_OVERFLOW`; `SPHANA_LLM_ERR_KV_MEMORY`; `SPHANA_LLM_ERR_UNSUPPORTED`
/// (tokenizer-only model); `SPHANA_LLM_ERR_RUNTIME`. Thread-safe, like generation.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_score(
    model: *const SphanaLlmModel,
    prompt_ids: *const i32,
    prompt_count: usize,
    continuation_ids: *const i32,
    continuation_count: usize,
    top_logprobs: u32,
    out_logprobs: *mut f32,
    out_top_logprob_ids: *mut i32,
    out_top_logprobs: *mut f32,
) -> i32 {
    guard(|| {
        let model = model_arg(model)?;
        non_null(out_logprobs, "out_logprobs")?;
        let outputs = LogprobOutputs {
            logprobs: out_logprobs,
            top_ids: out_top_logprob_ids,
            top_logprobs: out_top_logprobs,
            capacity: continuation_count,
            top: top_logprobs as usize,
        };
        outputs.check()?;
        let vocab = model.tokenizer().vocab_size();
        // SAFETY: caller contract for the id arrays.
        let prompt = unsafe { ids_arg(prompt_ids, prompt_count, vocab) }?;
        // SAFETY: as above.
        let continuation = unsafe { ids_arg(continuation_ids, continuation_count, vocab) }?;
        let scored = model.score(&prompt, &continuation, outputs.top)?;
        // SAFETY: checked above; room for `continuation_count` tokens.
        unsafe { outputs.write(&scored) };
        Ok(())
    })
}

/// Writes the model's context length (the `context_length` load option, else config.json
/// `max_position_embeddings`; 0 when unknown: then only `max_new_tokens` limits a
/// generation) to `*out_length`. `SPHANA_LLM_ERR_UNSUPPORTED` for a tokenizer-only model.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_context_length(
    model: *const SphanaLlmModel,
    out_length: *mut usize,
) -> i32 {
    guard(|| {
        non_null(out_length, "out_length")?;
        let model = model_arg(model)?;
        let engine = model
            .engine()
            .ok_or_else(|| Error::Unsupported("the model was loaded tokenizer-only".into()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_length, engine.context_length().unwrap_or(0)) };
        Ok(())
    })
}

/// Writes how many concurrent generations on this handle share one decode step to
/// `*out_batch`: the `max_decode_batch` load option, or 1 for a model that cannot be batched
/// (no KV cache, `attention_mask` or `position_ids`). Generations beyond it take turns.
/// `SPHANA_LLM_ERR_UNSUPPORTED` for a tokenizer-only model. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_max_decode_batch(
    model: *const SphanaLlmModel,
    out_batch: *mut usize,
) -> i32 {
    guard(|| {
        non_null(out_batch, "out_batch")?;
        let model = model_arg(model)?;
        let engine = model
            .engine()
            .ok_or_else(|| Error::Unsupported("the model was loaded tokenizer-only".into()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_batch, engine.max_decode_batch()) };
        Ok(())
    })
}

/// The graph computes logits for every prompt position: it could not be rewritten (or the
/// rewrite was turned off); `sphana_llm_logits_positions` says why.
pub const SPHANA_LLM_LOGITS_ALL_POSITIONS: i32 = 0;
/// The graph was rewritten at load (in memory; the file is unchanged) so the language-model
/// head runs on the last position only: the kept logits are what the unmodified graph
/// computes (bit-identical for quantize_dynamic INT8 heads, within float rounding otherwise).
pub const SPHANA_LLM_LOGITS_REWRITTEN: i32 = 1;
/// The export has its own `num_logits_to_keep` / `logits_to_keep` input, which is used.
pub const SPHANA_LLM_LOGITS_NATIVE: i32 = 2;

/// Writes whether the model computes logits only for the positions generation uses to
/// `*out_kind`: one of `SPHANA_LLM_LOGITS_*`. When `text_buf` is non-NULL it also receives
/// a description (NUL-terminated UTF-8: the head that was sliced, the model's own input, or
/// why the graph was left unchanged) and `*out_len` its length without the NUL; a `capacity`
/// too small returns `SPHANA_LLM_ERR_BUFFER_TOO_SMALL` with `*out_len` (and `*out_kind`) set.
/// `text_buf` NULL with capacity 0: only the kind, and the text's length in `*out_len` when
/// `out_len` is non-NULL. Thread-safe. Errors: `SPHANA_LLM_ERR_INVALID_ARGUMENT` (NULL
/// `out_kind`, forged handle, `text_buf` without `out_len`, NULL `text_buf` with a
/// capacity); `SPHANA_LLM_ERR_UNSUPPORTED` for a tokenizer-only model.
#[no_mangle]
pub unsafe extern "C" fn sphana_llm_logits_positions(
    model: *const SphanaLlmModel,
    out_kind: *mut i32,
    text_buf: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> i32 {
    use crate::engine::logits_rewrite::LogitsPositions;
    guard(|| {
        non_null(out_kind, "out_kind")?;
        let kind_only = text_buf.is_null() && capacity == 0;
        if !kind_only {
            check_buffer(text_buf, capacity, out_len, "text_buf", "out_len")?;
        }
        let model = model_arg(model)?;
        let engine = model
            .engine()
            .ok_or_else(|| Error::Unsupported("the model was loaded tokenizer-only".into()))?;
        let positions = engine.logits_positions();
        let kind = match positions {
            LogitsPositions::AllPositions(_) => SPHANA_LLM_LOGITS_ALL_POSITIONS,
            LogitsPositions::Rewritten(_) => SPHANA_LLM_LOGITS_REWRITTEN,
            LogitsPositions::Native(_) => SPHANA_LLM_LOGITS_NATIVE,
        };
        let text = positions.to_string();
        // SAFETY: checked non-NULL.
        unsafe { write_out(out_kind, kind) };
        if kind_only {
            if !out_len.is_null() {
                // SAFETY: non-NULL, caller-provided.
                unsafe { write_out(out_len, text.len()) };
            }
            return Ok(());
        }
        // SAFETY: buffer checked above.
        unsafe { fill_text(&text, text_buf, capacity, out_len) }
    })
}
