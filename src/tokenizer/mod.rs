//! Tokenizers: one file per format, behind one [`Tokenizer`] type.
//!
//! * [`hf_json`] — HF `tokenizer.json` through the `tokenizers` crate;
//! * [`sentencepiece`] — a SentencePiece `tokenizer.model` through the `sentencepiece` crate;
//! * [`tiktoken`] — Llama 3's tiktoken rank file, rebuilt as byte-level BPE;
//! * [`stream`] — incremental decoding that only ever yields complete UTF-8;
//! * `fast_bpe` — the Llama 3 byte-level BPE fast path (split scanner, rank merge, eligibility
//!   check of a `tokenizer.json`, one file each); `byte_level` — the byte map and Llama 3
//!   constants the byte-level tokenizers share;
//! * [`config`] — `tokenizer_config.json` (special tokens, chat template);
//! * `token_bytes` — the exact bytes of every token, for constrained decoding;
//! * [`eos`] — the end-of-generation set and where it came from (derived from the vocabulary
//!   when no file names one).

pub(crate) mod byte_level;
pub mod config;
pub mod eos;
pub(crate) mod fast_bpe;
pub(crate) mod hf_json;
pub(crate) mod sentencepiece;
pub mod stream;
pub mod tiktoken;
pub(crate) mod token_bytes;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use self::config::TokenizerConfig;
use self::eos::EosSource;
use self::hf_json::HfTokenizer;
use self::sentencepiece::SpmTokenizer;
use crate::error::{Error, Result};
use crate::model_config::ModelConfig;

/// The on-disk tokenizer formats sphana-llm reads.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenizerFormat {
    /// HF `tokenizer.json`.
    HfJson = 1,
    /// SentencePiece `tokenizer.model` (protobuf).
    SentencePiece = 2,
    /// tiktoken rank file `tokenizer.model` (Llama 3).
    Tiktoken = 3,
}

impl TokenizerFormat {
    /// The format's C constant value mapped back, `None` for unknown values.
    pub fn from_i32(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::HfJson),
            2 => Some(Self::SentencePiece),
            3 => Some(Self::Tiktoken),
            _ => None,
        }
    }

    /// A short human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HfJson => "tokenizer.json",
            Self::SentencePiece => "sentencepiece",
            Self::Tiktoken => "tiktoken",
        }
    }
}

/// How a text is turned into ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add BOS/EOS (and whatever else) as the tokenizer's configuration says.
    pub add_special: bool,
    /// Recognise special-token text such as `<|eot_id|>` in the input. Off, such text is
    /// tokenized as ordinary text — the safe choice for untrusted input.
    pub parse_special: bool,
}

/// Token ids of one text, with each token's byte range in that text when asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoding {
    /// The token ids.
    pub ids: Vec<u32>,
    /// `(start, end)` byte offsets per token (empty unless offsets were requested).
    /// Tokens added by `add_special` have `(0, 0)`.
    pub offsets: Vec<(usize, usize)>,
}

enum Backend {
    Hf(Box<HfTokenizer>),
    SentencePiece {
        spm: SpmTokenizer,
        add_bos: bool,
        add_eos: bool,
    },
}

/// A loaded tokenizer. Immutable and thread-safe: share it with an `Arc`.
pub struct Tokenizer {
    backend: Backend,
    format: TokenizerFormat,
    vocab_size: usize,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    eos_source: EosSource,
    special_ids: HashSet<u32>,
    special_tokens: Vec<(u32, String)>,
    chat_template: Option<String>,
    bos_token_text: Option<String>,
    eos_token_text: Option<String>,
    source: PathBuf,
}

/// Finds the tokenizer file in `dir`, honouring a forced format.
fn find_tokenizer_file(dir: &Path, forced: Option<TokenizerFormat>) -> Result<PathBuf> {
    let json = dir.join("tokenizer.json");
    let model = dir.join("tokenizer.model");
    let candidates: &[&PathBuf] = match forced {
        Some(TokenizerFormat::HfJson) => &[&json],
        Some(_) => &[&model],
        None => &[&json, &model],
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .map(|p| (*p).clone())
        .ok_or_else(|| {
            let names: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no tokenizer file found (looked for {})", names.join(", ")),
                ),
            )
        })
}

/// Detects a tokenizer file's format from its content.
pub fn detect_format(bytes: &[u8]) -> Option<TokenizerFormat> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Some(TokenizerFormat::HfJson);
    }
    if tiktoken::looks_like_rank_file(bytes) {
        return Some(TokenizerFormat::Tiktoken);
    }
    if sentencepiece::parse_model_pieces(bytes).is_ok() {
        return Some(TokenizerFormat::SentencePiece);
    }
    None
}

impl Tokenizer {
    /// Loads a tokenizer from a model directory or a single tokenizer file.
    ///
    /// In a directory, `tokenizer.json` wins over `tokenizer.model`; `forced` picks a
    /// format instead. The side files (`tokenizer_config.json`, `generation_config.json`,
    /// `config.json`) are read from the directory (or the file's directory).
    pub fn from_path(path: &Path, forced: Option<TokenizerFormat>) -> Result<Self> {
        let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let (dir, file) = if metadata.is_dir() {
            (path.to_path_buf(), find_tokenizer_file(path, forced)?)
        } else {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (dir, path.to_path_buf())
        };
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let tokenizer_config = TokenizerConfig::read(&dir)?;
        let model_config = ModelConfig::read(&dir)?;
        Self::from_bytes(&bytes, &file, forced, &tokenizer_config, &model_config)
    }

    /// Builds a tokenizer from a file's bytes and its already-read side files.
    pub fn from_bytes(
        bytes: &[u8],
        file: &Path,
        forced: Option<TokenizerFormat>,
        tokenizer_config: &TokenizerConfig,
        model_config: &ModelConfig,
    ) -> Result<Self> {
        let format = match (detect_format(bytes), forced) {
            (Some(detected), Some(forced)) if detected != forced => {
                return Err(Error::invalid_model(
                    file,
                    format!(
                        "format {} was forced but the file is {}",
                        forced.name(),
                        detected.name()
                    ),
                ))
            }
            (Some(detected), _) => detected,
            // Not recognisable: let the forced format's loader say what is wrong.
            (None, Some(forced)) => forced,
            (None, None) if bytes.first() == Some(&0x0a) => {
                let reason = sentencepiece::parse_model_pieces(bytes)
                    .err()
                    .unwrap_or_default();
                return Err(Error::invalid_model(
                    file,
                    format!("looks like a SentencePiece model but is not a valid one: {reason}"),
                ));
            }
            (None, None) => {
                return Err(Error::invalid_model(
                    file,
                    "not a tokenizer.json, SentencePiece model or tiktoken rank file",
                ))
            }
        };
        let backend = match format {
            TokenizerFormat::HfJson => Backend::Hf(Box::new(HfTokenizer::from_bytes(bytes, file)?)),
            TokenizerFormat::Tiktoken => Backend::Hf(Box::new(tiktoken::load_llama3(bytes, file)?)),
            TokenizerFormat::SentencePiece => {
                let spm = SpmTokenizer::from_bytes(bytes, file)?;
                let add_bos = tokenizer_config
                    .add_bos_token
                    .unwrap_or(spm.bos_id().is_some());
                let add_eos = tokenizer_config.add_eos_token.unwrap_or(false);
                Backend::SentencePiece {
                    spm,
                    add_bos,
                    add_eos,
                }
            }
        };
        let mut tokenizer = Tokenizer {
            backend,
            format,
            vocab_size: 0,
            bos_id: None,
            eos_ids: Vec::new(),
            eos_source: EosSource::None,
            special_ids: HashSet::new(),
            special_tokens: Vec::new(),
            chat_template: tokenizer_config.chat_template.clone(),
            bos_token_text: tokenizer_config.bos_token.clone().flatten(),
            eos_token_text: tokenizer_config.eos_token.clone(),
            source: file.to_path_buf(),
        };
        tokenizer.vocab_size = match &tokenizer.backend {
            Backend::Hf(hf) => hf.vocab_size(),
            Backend::SentencePiece { spm, .. } => spm.vocab_size(),
        };
        tokenizer.special_tokens = match &tokenizer.backend {
            Backend::Hf(hf) => hf.special_tokens(),
            Backend::SentencePiece { spm, .. } => spm.special_tokens(),
        };
        tokenizer.special_ids = tokenizer.special_tokens.iter().map(|(id, _)| *id).collect();
        tokenizer.resolve_bos_eos(file, tokenizer_config, model_config)?;
        Ok(tokenizer)
    }

    /// BOS: `tokenizer_config.json`'s `bos_token` when the key is present (`null`: none),
    /// else the tokenizer itself (the post-processor's leading special token, SentencePiece's BOS piece).
    /// EOS set, the first that names one: `generation_config.json` → `config.json` →
    /// `tokenizer_config.json`'s `eos_token` → the tokenizer file's own end piece (SentencePiece)
    /// → the vocabulary's special end-of-turn/end-of-text tokens ([`eos::derive_from_vocabulary`]).
    fn resolve_bos_eos(
        &mut self,
        file: &Path,
        tokenizer_config: &TokenizerConfig,
        model_config: &ModelConfig,
    ) -> Result<()> {
        let lookup = |name: &Option<String>, what: &str| -> Result<Option<u32>> {
            match name {
                None => Ok(None),
                Some(text) => self.token_to_id(text).map(Some).ok_or_else(|| {
                    Error::invalid_model(
                        tokenizer_config
                            .path
                            .clone()
                            .unwrap_or_else(|| file.to_path_buf()),
                        format!("{what} {text:?} is not in the vocabulary"),
                    )
                }),
            }
        };
        let config_bos = match &tokenizer_config.bos_token {
            Some(declared) => Some(lookup(declared, "bos_token")?),
            None => None,
        };
        let config_eos = lookup(&tokenizer_config.eos_token, "eos_token")?;
        let (native_bos, native_eos) = match &self.backend {
            Backend::Hf(hf) => {
                let leading = hf
                    .leading_special_id()
                    .filter(|id| self.special_ids.contains(id));
                (leading, None)
            }
            Backend::SentencePiece { spm, .. } => (spm.bos_id(), spm.eos_id()),
        };
        self.bos_id = config_bos.unwrap_or(native_bos);
        let tokenizer_config_path = || {
            tokenizer_config
                .path
                .clone()
                .unwrap_or_else(|| file.to_path_buf())
        };
        (self.eos_ids, self.eos_source) = if let Some((ids, source)) = &model_config.eos_token_ids {
            (ids.clone(), source.clone())
        } else if let Some(id) = config_eos {
            (
                vec![id],
                EosSource::TokenizerConfig(tokenizer_config_path()),
            )
        } else if let Some(id) = native_eos {
            (vec![id], EosSource::TokenizerFile(file.to_path_buf()))
        } else {
            let derived = eos::derive_from_vocabulary(&self.special_tokens);
            let source = if derived.is_empty() {
                EosSource::None
            } else {
                EosSource::Vocabulary
            };
            (derived, source)
        };
        for &id in self.bos_id.iter().chain(&self.eos_ids) {
            if id as usize >= self.vocab_size {
                return Err(Error::invalid_model(
                    file,
                    format!(
                        "the configuration names special token id {id}, outside the tokenizer's vocabulary of {}",
                        self.vocab_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Token ids for `text`.
    pub fn encode(&self, text: &str, options: EncodeOptions) -> Result<Vec<u32>> {
        Ok(self.encode_inner(text, options, false)?.ids)
    }

    /// Token ids for `text` with each token's byte range in `text`.
    pub fn encode_with_offsets(&self, text: &str, options: EncodeOptions) -> Result<Encoding> {
        self.encode_inner(text, options, true)
    }

    /// Encodes many texts in parallel (rayon's global pool); results keep the input order.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: EncodeOptions,
    ) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.encode(t.as_ref(), options))
            .collect()
    }

    fn encode_inner(
        &self,
        text: &str,
        options: EncodeOptions,
        with_offsets: bool,
    ) -> Result<Encoding> {
        match &self.backend {
            Backend::Hf(hf) => hf.encode(
                text,
                options.add_special,
                options.parse_special,
                with_offsets,
            ),
            Backend::SentencePiece {
                spm,
                add_bos,
                add_eos,
            } => {
                let Encoding {
                    ids: body,
                    offsets: body_offsets,
                } = spm.encode(text, options.parse_special)?;
                let bos = (options.add_special && *add_bos)
                    .then_some(self.bos_id)
                    .flatten();
                let eos = (options.add_special && *add_eos)
                    .then(|| self.eos_ids.first().copied())
                    .flatten();
                let mut ids = Vec::with_capacity(body.len() + 2);
                ids.extend(bos);
                ids.extend_from_slice(&body);
                ids.extend(eos);
                let offsets = if with_offsets {
                    let mut offsets = Vec::with_capacity(ids.len());
                    offsets.extend(bos.map(|_| (0, 0)));
                    offsets.extend_from_slice(&body_offsets);
                    offsets.extend(eos.map(|_| (text.len(), text.len())));
                    offsets
                } else {
                    Vec::new()
                };
                Ok(Encoding { ids, offsets })
            }
        }
    }

    /// True when encoding takes the byte-level fast path (Llama 3-style BPE; see
    /// [`fast_bpe`](self)); it gives the same ids and offsets as the general pipeline.
    pub fn has_fast_path(&self) -> bool {
        matches!(&self.backend, Backend::Hf(hf) if hf.has_fast_path())
    }

    /// Encodes with the general `tokenizers` / `sentencepiece` pipeline even when a fast
    /// path exists: the oracle the fast path is tested and benchmarked against.
    pub fn encode_with_general_path(&self, text: &str, options: EncodeOptions) -> Result<Encoding> {
        match &self.backend {
            Backend::Hf(hf) => {
                hf.encode_general(text, options.add_special, options.parse_special, true)
            }
            Backend::SentencePiece { .. } => self.encode_inner(text, options, true),
        }
    }

    /// Checks that every id is inside the vocabulary.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            Some(&id) => Err(Error::InvalidTokenId {
                id: id.into(),
                vocab_size: self.vocab_size,
            }),
            None => Ok(()),
        }
    }

    /// Text of `ids`; special tokens are left out when `skip_special`.
    /// An id outside the vocabulary is an [`Error::InvalidTokenId`].
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.check_ids(ids)?;
        match &self.backend {
            Backend::Hf(hf) => hf.decode(ids, skip_special),
            Backend::SentencePiece { spm, .. } => spm.decode(ids, skip_special),
        }
    }

    /// The id of a token string (vocabulary entries and added/special tokens).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.backend {
            Backend::Hf(hf) => hf.token_to_id(token),
            Backend::SentencePiece { spm, .. } => spm.token_to_id(token),
        }
    }

    /// The token string of an id (as stored in the vocabulary, e.g. `Ġthe` or `▁the`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match &self.backend {
            Backend::Hf(hf) => hf.id_to_token(id),
            Backend::SentencePiece { spm, .. } => spm.id_to_token(id),
        }
    }

    /// Number of ids, including added and special tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The bytes each id stands for inside a text, by id (what constrained decoding matches
    /// grammars against): `None` for special tokens, unknown/unused pieces and unassigned
    /// ids. Byte-level tokens may hold part of a UTF-8 character. [`Error::Unsupported`]
    /// for a `tokenizer.json` whose decoder is neither byte-level nor SentencePiece-style.
    pub fn token_bytes(&self) -> Result<Vec<Option<Vec<u8>>>> {
        match &self.backend {
            Backend::Hf(hf) => token_bytes::hf_table(hf, self.vocab_size, |id| self.is_special(id)),
            Backend::SentencePiece { spm, .. } => Ok(token_bytes::spm_table(spm)),
        }
    }

    /// The beginning-of-sequence id, if the tokenizer has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence ids: generation stops on any of them.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Where [`Tokenizer::eos_ids`] came from.
    pub fn eos_source(&self) -> &EosSource {
        &self.eos_source
    }

    /// Replaces the EOS set (the model directory's configuration or the `eos_token_ids` load
    /// option outranks the tokenizer's own files). Every id must be in the vocabulary.
    pub(crate) fn set_eos(&mut self, ids: Vec<u32>, source: EosSource) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            let reason = format!(
                "EOS id {bad} is outside the tokenizer's vocabulary of {}",
                self.vocab_size
            );
            return Err(match &source {
                EosSource::GenerationConfig(path) | EosSource::ModelConfig(path) => {
                    Error::invalid_model(path, reason)
                }
                _ => Error::InvalidArgument(format!("{reason} ({source})")),
            });
        }
        self.eos_ids = ids;
        self.eos_source = source;
        Ok(())
    }

    /// True for special (control) tokens.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// All special tokens with their text, by id.
    pub fn special_tokens(&self) -> &[(u32, String)] {
        &self.special_tokens
    }

    /// The format that was loaded.
    pub fn format(&self) -> TokenizerFormat {
        self.format
    }

    /// The Jinja chat template from `tokenizer_config.json`, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// `bos_token` as written in `tokenizer_config.json` (what chat templates print).
    pub fn bos_token_text(&self) -> Option<&str> {
        self.bos_token_text.as_deref()
    }

    /// `eos_token` as written in `tokenizer_config.json`.
    pub fn eos_token_text(&self) -> Option<&str> {
        self.eos_token_text.as_deref()
    }

    /// The tokenizer file this was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}
