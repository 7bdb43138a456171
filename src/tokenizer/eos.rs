//! The end-of-generation (EOS) set: which ids end a generation, and where the set came from.
//!
//! Files name it first (load option, `generation_config.json`, `config.json`,
//! `tokenizer_config.json`, the tokenizer file's own end piece). A deployment that copies only
//! the ONNX file and `tokenizer.json` has none of those, so the set is then derived from the
//! vocabulary: every *special* token whose text is one of the end-of-turn or end-of-text
//! markers of the known model families ([`END_OF_GENERATION_TOKENS`]), as llama.cpp's
//! vocabulary loader does for its end-of-generation set. Ordinary (non-special) tokens with
//! such text never count, so a vocabulary whose `</s>` is plain text derives nothing from it.

use std::fmt;
use std::path::PathBuf;

/// Special-token texts that end a turn or a text, with the family that uses them.
pub const END_OF_GENERATION_TOKENS: &[(&str, &str)] = &[
    ("<|end_of_text|>", "Llama 3: end of text"),
    ("<|eom_id|>", "Llama 3.1+: end of message (tool call)"),
    ("<|eot_id|>", "Llama 3: end of turn"),
    ("<|im_end|>", "ChatML (Qwen, SmolLM2, ...): end of turn"),
    ("<|endoftext|>", "GPT-2, Qwen, SmolLM2, Phi: end of text"),
    ("<end_of_turn>", "Gemma: end of turn"),
    ("<eos>", "Gemma: end of sequence"),
    (
        "</s>",
        "SentencePiece (Llama 2, Mistral, ...): end of sequence",
    ),
    ("<|end|>", "Phi-3: end of turn"),
    ("<|return|>", "gpt-oss: end of the final answer"),
    ("<|call|>", "gpt-oss: tool call"),
    ("<｜end▁of▁sentence｜>", "DeepSeek: end of sentence"),
    ("<end_of_utterance>", "SmolVLM / Idefics: end of utterance"),
    ("<EOT>", "CodeLlama infilling: end of text"),
    ("▁<EOT>", "CodeLlama infilling: end of text"),
];

/// Where a model's EOS set came from, in the order the sources are consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EosSource {
    /// The `eos_token_ids` load option (overrides every file).
    LoadOption,
    /// `eos_token_id` of this `generation_config.json`.
    GenerationConfig(PathBuf),
    /// `eos_token_id` of this `config.json`.
    ModelConfig(PathBuf),
    /// `eos_token` of this `tokenizer_config.json`.
    TokenizerConfig(PathBuf),
    /// The tokenizer file's own end-of-sequence piece (SentencePiece's `</s>`).
    TokenizerFile(PathBuf),
    /// No file names one: the vocabulary's special end-of-turn / end-of-text tokens
    /// ([`END_OF_GENERATION_TOKENS`]).
    Vocabulary,
    /// Nothing names one and the vocabulary has none of the known end tokens: a generation
    /// runs until `max_new_tokens`, a stop string or the context length.
    None,
}

impl fmt::Display for EosSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EosSource::LoadOption => f.write_str("the eos_token_ids load option"),
            EosSource::GenerationConfig(p) => write!(f, "eos_token_id of {}", p.display()),
            EosSource::ModelConfig(p) => write!(f, "eos_token_id of {}", p.display()),
            EosSource::TokenizerConfig(p) => write!(f, "eos_token of {}", p.display()),
            EosSource::TokenizerFile(p) => {
                write!(f, "the end-of-sequence piece of {}", p.display())
            }
            EosSource::Vocabulary => f.write_str(
                "derived: no file names one, so the vocabulary's special end-of-turn/end-of-text tokens",
            ),
            EosSource::None => f.write_str(
                "none: no file names one and the vocabulary has no known end-of-turn/end-of-text token",
            ),
        }
    }
}

/// The ids of `specials` (special tokens with their text) whose text ends a turn or a text
/// in a known family, ascending.
pub fn derive_from_vocabulary(specials: &[(u32, String)]) -> Vec<u32> {
    let mut ids: Vec<u32> = specials
        .iter()
        .filter(|(_, text)| {
            END_OF_GENERATION_TOKENS
                .iter()
                .any(|(marker, _)| marker == text)
        })
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials(list: &[(u32, &str)]) -> Vec<(u32, String)> {
        list.iter().map(|(i, t)| (*i, (*t).to_owned())).collect()
    }

    #[test]
    fn llama3_derives_end_of_text_message_and_turn() {
        let v = specials(&[
            (128_000, "<|begin_of_text|>"),
            (128_001, "<|end_of_text|>"),
            (128_006, "<|start_header_id|>"),
            (128_008, "<|eom_id|>"),
            (128_009, "<|eot_id|>"),
        ]);
        assert_eq!(derive_from_vocabulary(&v), vec![128_001, 128_008, 128_009]);
    }

    #[test]
    fn only_exact_marker_texts_count() {
        let v = specials(&[(5, "<|im_start|>"), (6, "<|im_end|> "), (7, "</S>")]);
        assert!(derive_from_vocabulary(&v).is_empty());
    }
}
