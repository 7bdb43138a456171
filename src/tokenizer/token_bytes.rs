//! The bytes each token id stands for: what constrained decoding matches a grammar against
//! (`generation::constraint`).
//!
//! Decoding one id on its own is not enough: a byte-level token may hold half of a UTF-8
//! character, and decoders strip or replace characters. The table here gives the exact
//! bytes a token contributes in the middle of a text, read from the vocabulary and the
//! tokenizer's own decoder description:
//!
//! * byte-level BPE (GPT-2, Llama 3, SmolLM2, Qwen; the tiktoken rank file is rebuilt as
//!   one): every character of the token string maps back to one byte;
//! * SentencePiece-style vocabularies (a SentencePiece model, or a `tokenizer.json` whose
//!   decoder replaces `▁` and falls back to bytes: Llama 2, Mistral, Gemma): `▁` is a
//!   space and `<0xNN>` pieces are the byte `NN`.
//!
//! Special (control) tokens, unknown/unused pieces and ids the vocabulary leaves unassigned
//! have no bytes (`None`): a grammar can never produce them. Decoder steps that act on the
//! whole text only (`Strip` of a leading space, SentencePiece's dummy prefix) are not part
//! of a token's bytes.

use rustc_hash::FxHashMap;

use super::byte_level::char_to_byte_map;
use super::hf_json::HfTokenizer;
use super::sentencepiece::{PieceType, SpmTokenizer};
use crate::error::{Error, Result};

/// How a vocabulary string becomes bytes.
enum PieceDecoding {
    /// Byte-level BPE: each character is one byte (GPT-2's reversible map).
    ByteLevel(FxHashMap<char, u8>),
    /// SentencePiece-style pieces: `spaces` are replaced by a space, `<0xNN>` is the byte
    /// `NN` when `byte_fallback`.
    Pieces {
        spaces: Vec<String>,
        byte_fallback: bool,
    },
}

impl PieceDecoding {
    /// Reads a `tokenizers` decoder (as its JSON form); `None` for decoders whose tokens are
    /// not plain byte strings (WordPiece, CTC, ...).
    fn from_decoder(decoder: &serde_json::Value) -> Option<Self> {
        let kind = decoder.get("type").and_then(|t| t.as_str())?;
        match kind {
            "ByteLevel" => Some(Self::ByteLevel(char_to_byte_map())),
            "Metaspace" => Some(Self::Pieces {
                spaces: vec![decoder
                    .get("replacement")
                    .and_then(|r| r.as_str())
                    .unwrap_or("\u{2581}")
                    .to_owned()],
                byte_fallback: false,
            }),
            "Sequence" => {
                let steps = decoder.get("decoders").and_then(|d| d.as_array())?;
                let mut spaces = Vec::new();
                let mut byte_fallback = false;
                let mut byte_level = false;
                for step in steps {
                    match step.get("type").and_then(|t| t.as_str()) {
                        Some("ByteLevel") => byte_level = true,
                        Some("ByteFallback") => byte_fallback = true,
                        Some("Metaspace") => spaces.push(
                            step.get("replacement")
                                .and_then(|r| r.as_str())
                                .unwrap_or("\u{2581}")
                                .to_owned(),
                        ),
                        Some("Replace") => {
                            let to_space =
                                step.get("content").and_then(|c| c.as_str()) == Some(" ");
                            let pattern = step
                                .get("pattern")
                                .and_then(|p| p.get("String"))
                                .and_then(|s| s.as_str());
                            match pattern {
                                Some(p) if to_space && !p.is_empty() => spaces.push(p.to_owned()),
                                // Any other replacement changes token text in ways a byte
                                // table cannot express.
                                _ => return None,
                            }
                        }
                        // Whole-text steps: joining pieces, stripping the leading space.
                        Some("Fuse") | Some("Strip") => {}
                        _ => return None,
                    }
                }
                match (byte_level, spaces.is_empty() && !byte_fallback) {
                    (true, true) => Some(Self::ByteLevel(char_to_byte_map())),
                    (false, false) => Some(Self::Pieces {
                        spaces,
                        byte_fallback,
                    }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The bytes of one vocabulary string.
    fn bytes(&self, token: &str) -> Vec<u8> {
        match self {
            Self::ByteLevel(map) => {
                // As `tokenizers` does: a string with a character outside the map (an added
                // token's text) stands for its own UTF-8.
                let mapped: Option<Vec<u8>> = token.chars().map(|c| map.get(&c).copied()).collect();
                mapped.unwrap_or_else(|| token.as_bytes().to_vec())
            }
            Self::Pieces {
                spaces,
                byte_fallback,
            } => {
                if *byte_fallback {
                    if let Some(byte) = byte_piece(token) {
                        return vec![byte];
                    }
                }
                let mut text = token.to_owned();
                for s in spaces {
                    text = text.replace(s.as_str(), " ");
                }
                text.into_bytes()
            }
        }
    }
}

/// `<0xNN>` → the byte `NN`.
fn byte_piece(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The byte table of an HF tokenizer: one entry per id below `vocab_size`.
pub(crate) fn hf_table(
    hf: &HfTokenizer,
    vocab_size: usize,
    is_special: impl Fn(u32) -> bool,
) -> Result<Vec<Option<Vec<u8>>>> {
    let decoder = hf.decoder_json().ok_or_else(|| {
        Error::Unsupported(
            "constrained decoding needs the token bytes, and this tokenizer.json has no decoder"
                .into(),
        )
    })?;
    let decoding = PieceDecoding::from_decoder(&decoder).ok_or_else(|| {
        Error::Unsupported(format!(
            "constrained decoding needs a byte-level or SentencePiece-style tokenizer; this \
             tokenizer.json's decoder is {}",
            serde_json::to_string(&decoder).unwrap_or_default()
        ))
    })?;
    Ok((0..vocab_size as u32)
        .map(|id| {
            if is_special(id) {
                return None;
            }
            hf.id_to_token(id).map(|t| decoding.bytes(&t))
        })
        .collect())
}

/// The byte table of a SentencePiece model: one entry per piece.
pub(crate) fn spm_table(spm: &SpmTokenizer) -> Vec<Option<Vec<u8>>> {
    spm.pieces()
        .iter()
        .map(|(text, kind)| match kind {
            PieceType::Normal | PieceType::UserDefined => {
                Some(text.replace('\u{2581}', " ").into_bytes())
            }
            PieceType::Byte => byte_piece(text).map(|b| vec![b]),
            PieceType::Control | PieceType::Unknown | PieceType::Unused => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_pieces_parse_only_their_exact_form() {
        assert_eq!(byte_piece("<0x0A>"), Some(10));
        assert_eq!(byte_piece("<0xff>"), Some(255));
        assert_eq!(byte_piece("<0x1>"), None);
        assert_eq!(byte_piece("<0x123>"), None);
        assert_eq!(byte_piece("<0xZZ>"), None);
        assert_eq!(byte_piece("0x0A"), None);
    }

    #[test]
    fn decoders_are_read_or_refused() {
        let gemma = serde_json::json!({"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]});
        let d = PieceDecoding::from_decoder(&gemma).expect("gemma-style");
        assert_eq!(d.bytes("\u{2581}hello\u{2581}world"), b" hello world");
        assert_eq!(d.bytes("<0xE2>"), [0xe2]);
        let gpt2 = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false});
        let d = PieceDecoding::from_decoder(&gpt2).expect("byte-level");
        assert_eq!(d.bytes("\u{120}the"), b" the");
        // GPT-2's map: 0xE2 is printable and stands for itself, 0x82 is not and moves
        // to U+0124.
        assert_eq!(d.bytes("\u{e2}\u{124}"), [0xe2, 0x82], "half a character");
        assert_eq!(d.bytes("<|a b|>"), b"<|a b|>", "unmapped: its own text");
        for refused in [
            serde_json::json!({"type": "WordPiece", "prefix": "##"}),
            serde_json::json!({"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"Regex": "x"}, "content": " "}]}),
            serde_json::json!({"type": "Sequence", "decoders": [{"type": "CTC"}]}),
            serde_json::json!({"type": "Sequence", "decoders": []}),
        ] {
            assert!(PieceDecoding::from_decoder(&refused).is_none(), "{refused}");
        }
    }
}
