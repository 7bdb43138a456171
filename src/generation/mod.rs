//! Text generation: one file per concern.
//!
//! * [`sampling`] — choosing the next token;
//! * [`stopping`] — stop strings across token boundaries;
//! * [`generate`] — the loop: prefill, decode steps, streaming text, finish reasons;
//! * [`prompt_lookup`] — drafting tokens for speculative decoding;
//! * [`logprobs`] — the model's log-probabilities of tokens;
//! * [`score`] — log-probabilities of a given continuation in one run;
//! * [`constraint`] — structured output (JSON Schema, regex, Lark) through llguidance.

pub mod constraint;
pub mod generate;
pub mod logprobs;
pub mod prompt_lookup;
pub mod sampling;
pub mod score;
pub mod stopping;

pub use constraint::{Constraint, GrammarCompiler, MAX_CONSTRAINT_BYTES};
pub use logprobs::{TokenLogprob, TopLogprob, MAX_TOP_LOGPROBS};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Parameters of one generation. `Default` gives greedy decoding of up to 256 tokens.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Most tokens to generate (the EOS that ends generation is not counted).
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (arg-max).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one; 0 disables.
    pub min_p: f32,
    /// HF-style repetition penalty over prompt and generated ids; 1 disables.
    pub repetition_penalty: f32,
    /// Seed of the sampling RNG: the same seed gives the same output.
    pub seed: u64,
    /// Generation ends when the text contains any of these; the stop string is not returned.
    pub stop_strings: Vec<String>,
    /// Recognise special-token text (e.g. `<|im_start|>`) in the prompt. Off by default,
    /// so untrusted prompt text cannot inject control tokens.
    pub parse_special: bool,
    /// Add BOS etc. to the prompt as the tokenizer's configuration says. On by default.
    pub add_special: bool,
    /// Keep generating past EOS ids (benchmarks, tests).
    pub ignore_eos: bool,
    /// Cancels the generation from another thread.
    pub cancel: Option<CancelToken>,
    /// Report each generated token's log-probability ([`Generation::logprobs`]): the
    /// model's own distribution, before temperature and penalties ([`logprobs`]).
    pub logprobs: bool,
    /// Also report the most likely alternatives at each position, at most
    /// [`MAX_TOP_LOGPROBS`]; more than 0 turns `logprobs` on.
    pub top_logprobs: usize,
    /// Speculative decoding by prompt lookup ([`prompt_lookup`]): at most this many
    /// tokens drafted per step from an earlier occurrence of the latest n-gram in the prompt
    /// or answer, and verified in one run (0: off; at most
    /// [`prompt_lookup::MAX_PROMPT_LOOKUP_TOKENS`]). The output is the one without it:
    /// token for token for greedy decoding on float models, and for sampling the same
    /// token for the same seed (each position is sampled from the model's distribution in
    /// order and a draft token is kept only when it equals the sample). Models quantized
    /// with `DynamicQuantizeLinear` pick one activation scale per run, so their logits, and
    /// possibly their ids, differ slightly from one-token steps.
    pub prompt_lookup_tokens: usize,
    /// Longest n-gram the lookup matches (1 to
    /// [`prompt_lookup::MAX_PROMPT_LOOKUP_NGRAM`]).
    pub prompt_lookup_ngram: usize,
    /// What the text must match ([`constraint`]): a JSON Schema, a regular expression, a
    /// Lark grammar or any JSON object. The model's distribution is masked to the tokens the
    /// grammar allows before any sampling step; generation ends when the grammar is
    /// complete (finish reason `Eos`), or with `ConstraintIncomplete` when
    /// `max_new_tokens` runs out first. Log-probabilities stay the model's own (unmasked).
    pub constraint: Option<Constraint>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop_strings: Vec::new(),
            parse_special: false,
            add_special: true,
            ignore_eos: false,
            cancel: None,
            logprobs: false,
            top_logprobs: 0,
            prompt_lookup_tokens: DEFAULT_PROMPT_LOOKUP_TOKENS,
            prompt_lookup_ngram: prompt_lookup::DEFAULT_PROMPT_LOOKUP_NGRAM,
            constraint: None,
        }
    }
}

/// Default for [`GenerateParams::prompt_lookup_tokens`] (chosen by measurement,
/// BENCHMARKS.md).
pub const DEFAULT_PROMPT_LOOKUP_TOKENS: usize = 0;

/// Most stop strings one call accepts.
pub const MAX_STOP_STRINGS: usize = 64;
/// Longest stop string in bytes.
pub const MAX_STOP_STRING_BYTES: usize = 1024;

impl GenerateParams {
    /// Rejects values outside their documented ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!(
                "temperature must be a finite number >= 0 (got {})",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1] (got {})", self.top_p));
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return bad(format!("min_p must be in [0, 1) (got {})", self.min_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!(
                "repetition_penalty must be a finite number > 0 (got {})",
                self.repetition_penalty
            ));
        }
        logprobs::check_top(self.top_logprobs)?;
        if self.prompt_lookup_tokens > prompt_lookup::MAX_PROMPT_LOOKUP_TOKENS {
            return bad(format!(
                "prompt_lookup_tokens must be at most {} (got {})",
                prompt_lookup::MAX_PROMPT_LOOKUP_TOKENS,
                self.prompt_lookup_tokens
            ));
        }
        if !(1..=prompt_lookup::MAX_PROMPT_LOOKUP_NGRAM).contains(&self.prompt_lookup_ngram) {
            return bad(format!(
                "prompt_lookup_ngram must be 1 to {} (got {})",
                prompt_lookup::MAX_PROMPT_LOOKUP_NGRAM,
                self.prompt_lookup_ngram
            ));
        }
        if let Some(c) = &self.constraint {
            c.validate()?;
        }
        if self.stop_strings.len() > MAX_STOP_STRINGS {
            return bad(format!(
                "at most {MAX_STOP_STRINGS} stop strings (got {})",
                self.stop_strings.len()
            ));
        }
        if let Some(s) = self
            .stop_strings
            .iter()
            .find(|s| s.is_empty() || s.len() > MAX_STOP_STRING_BYTES)
        {
            return bad(format!(
                "stop strings must be 1 to {MAX_STOP_STRING_BYTES} bytes (got {} bytes)",
                s.len()
            ));
        }
        Ok(())
    }
}

/// Why generation ended.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an EOS id, or its constraint's grammar was complete and allowed
    /// nothing more.
    Eos = 0,
    /// The text reached a stop string.
    StopString = 1,
    /// `max_new_tokens` were generated.
    Length = 2,
    /// The caller cancelled (cancel token, or the text callback asked to stop).
    Cancelled = 3,
    /// The model's context window is full.
    ContextFull = 4,
    /// `max_new_tokens` were generated before the constraint's grammar was complete: the
    /// text is the partial match so far.
    ConstraintIncomplete = 5,
}

/// Figures of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateStats {
    /// Tokens in the prompt (after BOS etc. were added).
    pub prompt_tokens: usize,
    /// Tokens generated (not counting an EOS that ended generation).
    pub generated_tokens: usize,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Milliseconds for the prompt's forward pass (time to first token's logits).
    pub prefill_ms: f64,
    /// Milliseconds for all later steps.
    pub decode_ms: f64,
    /// Milliseconds spent inside ONNX Runtime's `session.run`, prefill included.
    pub session_run_ms: f64,
    /// Decode steps that shared one `session.run` with other generations (continuous
    /// batching, see `LoadOptions::max_decode_batch`).
    pub batched_steps: usize,
    /// Prompt positions whose KV cache came from the prefix cache instead of the prefill
    /// (see `LoadOptions::prefix_cache_bytes`).
    pub cached_tokens: usize,
    /// Tokens drafted by prompt lookup ([`GenerateParams::prompt_lookup_tokens`]).
    pub draft_tokens: usize,
    /// Drafted tokens that were accepted (each saved one decode step).
    pub accepted_draft_tokens: usize,
    /// Milliseconds compiling the constraint before the prefill (0 without one); the
    /// model's first constrained generation also builds its token trie here.
    pub constraint_ms: f64,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated text (special tokens left out, stop string not included).
    pub text: String,
    /// The generated ids (the EOS that ended generation not included).
    pub token_ids: Vec<u32>,
    /// One per generated id when [`GenerateParams::logprobs`] (or `top_logprobs`) asked for
    /// them, else empty.
    pub logprobs: Vec<TokenLogprob>,
    /// Figures.
    pub stats: GenerateStats,
}

/// A flag another thread sets to end a generation within one token.
/// Once cancelled it stays cancelled: a generation started with it ends at once.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What a text callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep generating.
    Continue,
    /// End generation now (finish reason `Cancelled`).
    Stop,
}
