//! Format 1: HF `tokenizer.json`, run by the `tokenizers` crate.
//!
//! Special-token parsing is a per-call switch in sphana-llm but a per-instance setting
//! in `tokenizers` (`encode_special_tokens`). We therefore keep two pipelines that share
//! one model (vocabulary, merges, BPE cache) through an `Arc`, so the switch costs no
//! second copy of the vocabulary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenizers::models::TrainerWrapper;
use tokenizers::{
    DecoderWrapper, Model, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Token, TokenizerImpl,
};

use super::fast_bpe::{self, FastBpe};
use super::Encoding;
use crate::error::{Error, Result};

/// A `tokenizers` model shared by the two pipelines.
#[derive(Clone)]
pub(crate) struct SharedModel(Arc<ModelWrapper>);

impl Model for SharedModel {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        self.0.tokenize(sequence)
    }
    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.0.token_to_id(token)
    }
    fn id_to_token(&self, id: u32) -> Option<String> {
        self.0.id_to_token(id)
    }
    fn get_vocab(&self) -> HashMap<String, u32> {
        self.0.get_vocab()
    }
    fn get_vocab_size(&self) -> usize {
        self.0.get_vocab_size()
    }
    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        self.0.save(folder, prefix)
    }
    fn get_trainer(&self) -> TrainerWrapper {
        self.0.get_trainer()
    }
}

type Pipeline = TokenizerImpl<
    SharedModel,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// A loaded HF tokenizer with both special-token modes.
pub(crate) struct HfTokenizer {
    /// Special-token text in the input becomes the special id.
    parsing_special: Pipeline,
    /// Special-token text in the input is tokenized as ordinary text.
    literal_special: Pipeline,
    /// The byte-level fast path, when it is provably the same tokenizer.
    fast: Option<FastBpe>,
}

impl HfTokenizer {
    /// Parses `tokenizer.json` bytes; `path` is used in error messages only.
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        // `tokenizers` panics (`expect`) on some malformed sections instead of returning an
        // error (found by fuzz/fuzz_targets/load_files.rs): a broken file is INVALID_MODEL,
        // not a caught panic reported as INTERNAL.
        let parsed =
            std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes)).map_err(|_| {
                Error::invalid_model(
                    path,
                    "not a valid tokenizer.json (the tokenizers parser gave up on a malformed section)",
                )
            })?;
        let tokenizer = parsed
            .map_err(|e| Error::invalid_model(path, format!("not a valid tokenizer.json: {e}")))?;
        if let Some(processor) = tokenizer.get_post_processor() {
            let value = serde_json::to_value(processor).map_err(|e| {
                Error::invalid_model(path, format!("unreadable post_processor: {e}"))
            })?;
            check_post_processor(&value).map_err(|why| Error::invalid_model(path, why))?;
        }
        Ok(Self::from_tokenizer(
            tokenizer,
            fast_bpe::for_tokenizer_json(bytes),
        ))
    }

    /// Wraps an already-built `tokenizers` pipeline (and its fast path, if any).
    pub(crate) fn from_tokenizer(tokenizer: tokenizers::Tokenizer, fast: Option<FastBpe>) -> Self {
        let inner = tokenizer.into_inner();
        let mut model = inner.get_model().clone();
        // `tokenizers` keeps the BPE cache in thread-locals keyed by model instance and never
        // frees an instance's entries when it is dropped, so each load -> tokenize -> free
        // cycle left up to 10,000 words behind in every thread that tokenized (tests/leaks.rs).
        // Turn it off: the byte-level fast path does not use it, and the general path is
        // what remains.
        model.resize_cache(0);
        let model = SharedModel(Arc::new(model));
        let build = |encode_special_as_text: bool| -> Pipeline {
            let mut p = TokenizerImpl::new(model.clone());
            if let Some(n) = inner.get_normalizer() {
                // Cannot fail: the normalizer was already accepted by `tokenizers`.
                let _ = p.with_normalizer(Some(n.clone()));
            }
            p.with_pre_tokenizer(inner.get_pre_tokenizer().cloned())
                .with_post_processor(inner.get_post_processor().cloned())
                .with_decoder(inner.get_decoder().cloned())
                .with_added_vocabulary(inner.get_added_vocabulary().clone());
            p.set_encode_special_tokens(encode_special_as_text);
            p
        };
        Self {
            parsing_special: build(false),
            literal_special: build(true),
            fast,
        }
    }

    fn pipeline(&self, parse_special: bool) -> &Pipeline {
        if parse_special {
            &self.parsing_special
        } else {
            &self.literal_special
        }
    }

    /// Token ids (and byte offsets when `with_offsets`) for `text`.
    pub(crate) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        with_offsets: bool,
    ) -> Result<Encoding> {
        if let Some(fast) = &self.fast {
            return Ok(fast.encode(text, add_special, parse_special, with_offsets));
        }
        self.encode_general(text, add_special, parse_special, with_offsets)
    }

    /// True when encoding takes the byte-level fast path.
    pub(crate) fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// The general `tokenizers` pipeline (the fast path's oracle).
    pub(crate) fn encode_general(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        with_offsets: bool,
    ) -> Result<Encoding> {
        let pipeline = self.pipeline(parse_special);
        let encoding = if with_offsets {
            pipeline.encode(text, add_special)
        } else {
            pipeline.encode_fast(text, add_special)
        }
        .map_err(|e| Error::Internal(format!("tokenizers failed to encode: {e}")))?;
        let offsets = if with_offsets {
            encoding.get_offsets().to_vec()
        } else {
            Vec::new()
        };
        Ok(Encoding {
            ids: encoding.get_ids().to_vec(),
            offsets,
        })
    }

    /// Text for `ids`, all of which the caller has checked to be in range.
    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.parsing_special
            .decode(ids, skip_special)
            .map_err(|e| Error::Internal(format!("tokenizers failed to decode: {e}")))
    }

    /// One more than the largest id, added tokens included (ids run from 0 to this minus
    /// one, possibly with holes). `tokenizers` counts entries instead, which is smaller than
    /// the id range when the vocabulary has holes, and would let valid output ids fail the
    /// range checks (fuzz regression `load_files/tokenizer-json-vocab-with-holes`).
    pub(crate) fn vocab_size(&self) -> usize {
        let largest = self
            .parsing_special
            .get_vocab(true)
            .into_values()
            .max()
            .map_or(0, |id| id as usize + 1);
        largest.max(self.parsing_special.get_vocab_size(true))
    }

    /// The id of a token string (model vocabulary or added token).
    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        self.parsing_special.token_to_id(token)
    }

    /// The token string of an id.
    pub(crate) fn id_to_token(&self, id: u32) -> Option<String> {
        self.parsing_special.id_to_token(id)
    }

    /// The decoder's description (its `tokenizer.json` form), if the tokenizer has one.
    pub(crate) fn decoder_json(&self) -> Option<serde_json::Value> {
        let decoder = self.parsing_special.get_decoder()?;
        serde_json::to_value(decoder).ok()
    }

    /// Ids of the added tokens marked `special`, with their text.
    pub(crate) fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut specials: Vec<(u32, String)> = self
            .parsing_special
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (id, t.content))
            .collect();
        specials.sort_unstable();
        specials
    }

    /// The id the post-processor puts first when special tokens are added, if any
    /// (e.g. `<|begin_of_text|>` for Llama 3): found by encoding the empty string.
    pub(crate) fn leading_special_id(&self) -> Option<u32> {
        let encoding = self.parsing_special.encode_fast("", true).ok()?;
        encoding.get_ids().first().copied()
    }
}

/// Rejects a `TemplateProcessing` post-processor whose templates name a special token its
/// `special_tokens` map does not define: `tokenizers` accepts such a file and then panics
/// (indexing the map) on the first encode with special tokens added (fuzz regression
/// `load_files/tokenizer-json-template-names-undefined-special-token`).
fn check_post_processor(value: &serde_json::Value) -> std::result::Result<(), String> {
    match value.get("type").and_then(|t| t.as_str()) {
        Some("TemplateProcessing") => {
            let defined = value.get("special_tokens").and_then(|m| m.as_object());
            for template in ["single", "pair"] {
                let pieces = value.get(template).and_then(|t| t.as_array());
                for piece in pieces.into_iter().flatten() {
                    let Some(id) = piece
                        .get("SpecialToken")
                        .and_then(|t| t.get("id"))
                        .and_then(|id| id.as_str())
                    else {
                        continue;
                    };
                    if !defined.is_some_and(|m| m.contains_key(id)) {
                        return Err(format!(
                            "the post_processor's {template} template names the special token {id:?}, which its special_tokens map does not define"
                        ));
                    }
                }
            }
            Ok(())
        }
        Some("Sequence") => value
            .get("processors")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .try_for_each(check_post_processor),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_size_covers_ids_past_holes() {
        // Three entries, ids up to 7: the size is the id range, not the entry count.
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"b":5,"c":7},"unk_token":"a"}}"#;
        let tokenizer = HfTokenizer::from_bytes(json.as_bytes(), Path::new("t.json")).unwrap();
        assert_eq!(tokenizer.vocab_size(), 8);
        assert_eq!(tokenizer.token_to_id("c"), Some(7));
        assert_eq!(tokenizer.id_to_token(3), None);
    }

    #[test]
    fn template_naming_an_undefined_special_token_is_rejected_at_load() {
        let json = |key: &str| {
            format!(
                r#"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
                "normalizer":null,"pre_tokenizer":null,"decoder":null,
                "post_processor":{{"type":"TemplateProcessing",
                  "single":[{{"SpecialToken":{{"id":"<s>","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}}],
                  "pair":[{{"Sequence":{{"id":"A","type_id":0}}}},{{"Sequence":{{"id":"B","type_id":1}}}}],
                  "special_tokens":{{"{key}":{{"id":"<s>","ids":[0],"tokens":["<s>"]}}}}}},
                "model":{{"type":"WordLevel","vocab":{{"<s>":0,"a":1}},"unk_token":"a"}}}}"#
            )
        };
        let good = HfTokenizer::from_bytes(json("<s>").as_bytes(), Path::new("t.json")).unwrap();
        assert_eq!(
            good.encode("a", true, false, false).unwrap().ids,
            vec![0, 1]
        );
        let err = HfTokenizer::from_bytes(json("<x>").as_bytes(), Path::new("t.json"))
            .err()
            .expect("an undefined special token is rejected");
        assert!(err.to_string().contains("does not define"), "{err}");
    }
}
