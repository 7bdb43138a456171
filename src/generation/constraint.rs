//! Structured output: constraining a generation to a JSON Schema, a regular expression or a
//! Lark grammar, through `llguidance` (the engine onnxruntime-genai and llama.cpp use).
//!
//! A [`GrammarCompiler`] is built once per tokenizer (the token trie and llguidance's mask
//! slicer: tens to hundreds of milliseconds for a 128k vocabulary) from the exact bytes of
//! every token ([`crate::tokenizer::Tokenizer::token_bytes`]). Each constrained generation
//! compiles its [`Constraint`] into a [`ConstraintState`]: before each token is sampled the
//! state gives the set of ids the grammar allows next, and every other id's logit becomes
//! −∞ — before repetition penalty, temperature, top-k/top-p/min-p, so every sampler sees
//! only allowed tokens. Special tokens have no bytes and are never allowed inside the
//! text; the model's EOS ids are allowed only where the grammar may end; once the grammar
//! allows nothing more, generation ends without another forward pass.

use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{
    InferenceCapabilities, SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenizerEnv,
};
use llguidance::{Matcher, ParserFactory};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Largest constraint text (schema, regex or grammar) in bytes.
pub const MAX_CONSTRAINT_BYTES: usize = 256 * 1024;

/// What a generation's text must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// A JSON Schema (the draft 2020-12 subset llguidance supports; unsupported keywords are
    /// refused, not ignored). The JSON is compact unless the schema says otherwise: `", "`
    /// between items, `": "` after keys, no other whitespace. An `"x-guidance"` object in the
    /// schema overrides that (llguidance's `JsonCompileOptions`, e.g.
    /// `{"whitespace_flexible": true}`).
    JsonSchema(String),
    /// A regular expression the whole text must match (llguidance's syntax: Rust `regex`
    /// without look-around or back-references).
    Regex(String),
    /// A Lark grammar (llguidance's dialect; the start rule is `start`).
    Lark(String),
    /// Any JSON object (the schema `{"type": "object"}`).
    JsonObject,
}

/// The JSON layout a schema gets unless it says otherwise (see [`Constraint::JsonSchema`]).
fn default_json_options() -> serde_json::Value {
    serde_json::json!({
        "item_separator": ", ",
        "key_separator": ": ",
        "whitespace_flexible": false,
    })
}

impl Constraint {
    /// The constraint's text (empty for [`Constraint::JsonObject`]).
    pub fn text(&self) -> &str {
        match self {
            Self::JsonSchema(s) | Self::Regex(s) | Self::Lark(s) => s,
            Self::JsonObject => "",
        }
    }

    /// What kind of constraint this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::JsonSchema(_) => "JSON Schema",
            Self::Regex(_) => "regular expression",
            Self::Lark(_) => "Lark grammar",
            Self::JsonObject => "JSON object",
        }
    }

    /// Checks the size (the content is checked when it is compiled).
    pub(crate) fn validate(&self) -> Result<()> {
        let len = self.text().len();
        if len > MAX_CONSTRAINT_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the {} is {len} bytes; at most {MAX_CONSTRAINT_BYTES} bytes are accepted",
                self.kind()
            )));
        }
        if len == 0 && !matches!(self, Self::JsonObject) {
            return Err(Error::InvalidArgument(format!(
                "the {} is empty",
                self.kind()
            )));
        }
        Ok(())
    }

    /// The llguidance grammar of this constraint.
    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Self::JsonSchema(text) => {
                let mut schema: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "the JSON Schema is not valid JSON: {e} (line {}, column {})",
                        e.line(),
                        e.column()
                    ))
                })?;
                match &mut schema {
                    serde_json::Value::Object(map) => {
                        map.entry("x-guidance").or_insert_with(default_json_options);
                    }
                    serde_json::Value::Bool(_) => {}
                    other => {
                        return Err(Error::InvalidArgument(format!(
                            "a JSON Schema is an object or a boolean, not {}",
                            json_kind(other)
                        )))
                    }
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            Self::JsonObject => TopLevelGrammar::from_json_schema(serde_json::json!({
                "type": "object",
                "x-guidance": default_json_options(),
            })),
            Self::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Self::Lark(grammar) => TopLevelGrammar::from_lark(grammar.clone()),
        })
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// llguidance's view of our tokenizer: the trie of token bytes. The extra id at
/// `vocab_size` is a virtual end-of-text token: the grammar allowing it means "the text may
/// end here" (the model's own EOS ids are mapped onto it).
struct TrieEnv {
    trie: TokTrie,
}

impl TokenizerEnv for TrieEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Only used by llguidance for prompts and forced tokens, which we do not use; the
    /// trie's greedy split is a valid tokenization of the bytes.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        self.trie.greedy_tokenize(s)
    }
}

/// Compiles constraints for one tokenizer. Built once (see [`GrammarCompiler::new`]),
/// shared by every generation of the model; thread-safe.
pub struct GrammarCompiler {
    factory: ParserFactory,
    /// The tokenizer's ids; the virtual end token is this id.
    vocab_size: usize,
}

impl GrammarCompiler {
    /// Builds the token trie and llguidance's parser factory for `tokenizer`.
    /// [`Error::Unsupported`] for a tokenizer whose token bytes cannot be known.
    pub fn new(tokenizer: &Tokenizer) -> Result<Self> {
        let table = tokenizer.token_bytes()?;
        let vocab_size = table.len();
        let mut words: Vec<Vec<u8>> = table.into_iter().map(Option::unwrap_or_default).collect();
        // The virtual end token: no bytes, so the lexer never produces it.
        words.push(Vec::new());
        let end = vocab_size as u32;
        let info = TokRxInfo::new(vocab_size as u32 + 1, end);
        let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words)).map_err(|_| {
            Error::Unsupported("llguidance could not build a token trie for this vocabulary".into())
        })?;
        let env: TokEnv = std::sync::Arc::new(TrieEnv { trie });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities::default(),
            &llguidance::earley::SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| Error::Internal(format!("llguidance parser factory: {e}")))?;
        factory.quiet();
        *factory.limits_mut() = ParserLimits::default();
        Ok(Self {
            factory,
            vocab_size,
        })
    }

    /// Compiles `constraint`; an invalid one is an [`Error::InvalidArgument`] naming the
    /// problem. Nothing is generated before this succeeds.
    pub(crate) fn compile(&self, constraint: &Constraint) -> Result<ConstraintState> {
        constraint.validate()?;
        let grammar = constraint.grammar()?;
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| Error::InvalidArgument(format!("invalid {}: {e}", constraint.kind())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(Error::InvalidArgument(format!(
                "invalid {}: {e}",
                constraint.kind()
            )));
        }
        Ok(ConstraintState {
            matcher,
            mask: None,
            end: self.vocab_size as u32,
        })
    }
}

/// A model's [`GrammarCompiler`], built on its first constrained generation (and the
/// reason, when it cannot be built, given to every later one).
#[derive(Default)]
pub struct GrammarCompilerCell(
    once_cell::sync::OnceCell<std::result::Result<GrammarCompiler, String>>,
);

impl GrammarCompilerCell {
    /// The compiler for `tokenizer` (the one this cell's model uses), built on first use.
    pub fn get(&self, tokenizer: &Tokenizer) -> Result<&GrammarCompiler> {
        self.0
            .get_or_init(|| GrammarCompiler::new(tokenizer).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Unsupported(e.clone()))
    }
}

/// What the grammar allows at the next position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// Some tokens (and possibly the end).
    Tokens,
    /// Only the end of the text: the grammar is complete.
    EndOnly,
}

/// One generation's grammar state. `Send`: its next mask can be computed on another thread
/// while the model runs.
pub(crate) struct ConstraintState {
    matcher: Matcher,
    /// The allowed set at the next position, once computed.
    mask: Option<SimpleVob>,
    end: u32,
}

impl ConstraintState {
    /// Computes the allowed set for the next position (no-op when already known).
    pub(crate) fn prepare(&mut self) -> Result<()> {
        if self.mask.is_none() {
            let mask = self.matcher.compute_mask().map_err(|e| self.error(e))?;
            self.mask = Some(mask);
        }
        Ok(())
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Runtime(format!("the constraint failed: {e}"))
    }

    /// Sets every disallowed logit of `row` (the first ids are the tokenizer's; any beyond
    /// are never allowed) to −∞. The `eos` ids keep their logits where the grammar may end.
    pub(crate) fn apply(&mut self, row: &mut [f32], eos: &[u32]) -> Result<Allowed> {
        if self.matcher.is_stopped() {
            return Ok(Allowed::EndOnly);
        }
        self.prepare()?;
        let mask = self.mask.as_ref().expect("prepared");
        let can_end = mask.is_allowed(self.end);
        let kept_eos: Vec<(usize, f32)> = if can_end {
            eos.iter()
                .map(|&id| id as usize)
                .filter(|&id| id < row.len())
                .map(|id| (id, row[id]))
                .collect()
        } else {
            Vec::new()
        };
        let valid = (self.end as usize).min(row.len());
        let mut any = false;
        for (id, logit) in row[..valid].iter_mut().enumerate() {
            if mask.is_allowed(id as u32) {
                any = true;
            } else {
                *logit = f32::NEG_INFINITY;
            }
        }
        row[valid..].fill(f32::NEG_INFINITY);
        for (id, logit) in kept_eos {
            row[id] = logit;
        }
        match (any, can_end) {
            (true, _) => Ok(Allowed::Tokens),
            (false, true) => Ok(Allowed::EndOnly),
            (false, false) => Err(self.error("the grammar allows no token and cannot end here")),
        }
    }

    /// Advances past `id` (which the last mask allowed).
    pub(crate) fn consume(&mut self, id: u32) -> Result<()> {
        self.mask = None;
        self.matcher.consume_token(id).map_err(|e| self.error(e))
    }

    /// The longest prefix of `draft` the grammar accepts from here (speculative decoding
    /// drafts only what could be kept).
    pub(crate) fn valid_prefix(&mut self, draft: &[u32]) -> Result<usize> {
        self.matcher
            .validate_tokens(draft)
            .map_err(|e| self.error(e))
    }

    /// True once the grammar allows nothing more (the text is complete).
    pub(crate) fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// True when the text so far is a complete match (the grammar may end here).
    pub(crate) fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}
