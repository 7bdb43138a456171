//! Format 2: a SentencePiece `tokenizer.model` (protobuf), run by the `sentencepiece` crate.
//!
//! SentencePiece itself never recognises control-token text such as `<s>` in its input.
//! With special-token parsing on, sphana-llm splits the text at the model's control and
//! unknown pieces (leftmost, longest match first), encodes each plain segment on its own
//! (each gets SentencePiece's dummy prefix, as HF's legacy slow tokenizers do) and puts the
//! control ids in between. Decoding with specials kept writes control pieces as their text
//! and decodes the runs between them with SentencePiece.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::{AhoCorasick, MatchKind};
use sentencepiece::SentencePieceProcessor;

use super::Encoding;
use crate::error::{Error, Result};

/// `ModelProto.SentencePiece.Type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// A minimal reader for the protobuf wire format, enough to list a model's pieces.
struct ProtoReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum ProtoValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> ProtoReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// The next `(field number, value)`, `Ok(None)` at the end, `Err` on malformed input.
    fn next_field(&mut self) -> std::result::Result<Option<(u64, ProtoValue<'a>)>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint().ok_or("truncated field key")?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".into());
        }
        let value = match key & 7 {
            0 => ProtoValue::Varint(self.varint().ok_or("truncated varint")?),
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                if self.buf.len() - self.pos < width {
                    return Err("truncated fixed-width field".into());
                }
                self.pos += width;
                ProtoValue::Fixed
            }
            2 => {
                let len = self.varint().ok_or("truncated length")?;
                let len = usize::try_from(len).map_err(|_| "length overflow")?;
                if self.buf.len() - self.pos < len {
                    return Err("length-delimited field runs past the end".into());
                }
                let bytes = &self.buf[self.pos..self.pos + len];
                self.pos += len;
                ProtoValue::Bytes(bytes)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((field, value)))
    }
}

/// Lists `(piece text, type)` of a serialized `ModelProto`, validating its structure.
pub(crate) fn parse_model_pieces(
    bytes: &[u8],
) -> std::result::Result<Vec<(String, PieceType)>, String> {
    let mut pieces = Vec::new();
    let mut reader = ProtoReader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        if field != 1 {
            continue;
        }
        let ProtoValue::Bytes(piece_bytes) = value else {
            return Err("field `pieces` is not a message".into());
        };
        let mut piece_reader = ProtoReader::new(piece_bytes);
        let mut text = None;
        let mut kind = PieceType::Normal;
        while let Some((f, v)) = piece_reader.next_field()? {
            match (f, v) {
                (1, ProtoValue::Bytes(b)) => {
                    text =
                        Some(String::from_utf8(b.to_vec()).map_err(|_| "piece text is not UTF-8")?)
                }
                (3, ProtoValue::Varint(t)) => {
                    kind =
                        PieceType::from_proto(t).ok_or_else(|| format!("unknown piece type {t}"))?
                }
                _ => {}
            }
        }
        let text = text.ok_or("a piece has no text")?;
        // SentencePiece's C++ indexes pieces as NUL-terminated keys (darts-clone) and
        // throws a C++ exception for one holding a NUL, which would abort the process.
        if text.contains('\0') {
            return Err(format!(
                "piece {} contains a NUL byte, which SentencePiece cannot index",
                pieces.len()
            ));
        }
        pieces.push((text, kind));
    }
    if pieces.is_empty() {
        return Err("no pieces".into());
    }
    Ok(pieces)
}

/// A loaded SentencePiece model.
pub(crate) struct SpmTokenizer {
    processor: SentencePieceProcessor,
    pieces: Vec<(String, PieceType)>,
    piece_ids: HashMap<String, u32>,
    /// Control and unknown pieces, for special-token parsing (pattern index → id).
    special_matcher: Option<(AhoCorasick, Vec<u32>)>,
}

impl SpmTokenizer {
    /// Loads a serialized `ModelProto`; `path` is used in error messages only.
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let pieces = parse_model_pieces(bytes)
            .map_err(|e| Error::invalid_model(path, format!("not a SentencePiece model: {e}")))?;
        let processor = SentencePieceProcessor::from_serialized_proto(bytes).map_err(|e| {
            Error::invalid_model(path, format!("SentencePiece rejected the model: {e}"))
        })?;
        if processor.len() != pieces.len() {
            return Err(Error::invalid_model(
                path,
                "SentencePiece piece count disagrees with the file",
            ));
        }
        let piece_ids = pieces
            .iter()
            .enumerate()
            .map(|(id, (text, _))| (text.clone(), id as u32))
            .collect();
        let (patterns, ids): (Vec<&str>, Vec<u32>) = pieces
            .iter()
            .enumerate()
            .filter(|(_, (text, kind))| {
                !text.is_empty() && matches!(kind, PieceType::Control | PieceType::Unknown)
            })
            .map(|(id, (text, _))| (text.as_str(), id as u32))
            .unzip();
        let special_matcher = if patterns.is_empty() {
            None
        } else {
            let matcher = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .map_err(|e| Error::Internal(format!("special-token matcher: {e}")))?;
            Some((matcher, ids))
        };
        Ok(Self {
            processor,
            pieces,
            piece_ids,
            special_matcher,
        })
    }

    fn encode_plain(
        &self,
        text: &str,
        base: usize,
        ids: &mut Vec<u32>,
        offsets: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let pieces = self
            .processor
            .encode(text)
            .map_err(|e| Error::Internal(format!("SentencePiece failed to encode: {e}")))?;
        for p in pieces {
            ids.push(p.id);
            offsets.push((base + p.span.0 as usize, base + p.span.1 as usize));
        }
        Ok(())
    }

    /// Ids and byte offsets of `text` (no BOS/EOS: the caller adds those).
    pub(crate) fn encode(&self, text: &str, parse_special: bool) -> Result<Encoding> {
        let mut ids = Vec::new();
        let mut offsets = Vec::new();
        match (&self.special_matcher, parse_special) {
            (Some((matcher, special_ids)), true) => {
                let mut last = 0;
                for m in matcher.find_iter(text) {
                    self.encode_plain(&text[last..m.start()], last, &mut ids, &mut offsets)?;
                    ids.push(special_ids[m.pattern().as_usize()]);
                    offsets.push((m.start(), m.end()));
                    last = m.end();
                }
                self.encode_plain(&text[last..], last, &mut ids, &mut offsets)?;
            }
            _ => self.encode_plain(text, 0, &mut ids, &mut offsets)?,
        }
        Ok(Encoding { ids, offsets })
    }

    /// Text for in-range `ids`.
    pub(crate) fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let decode_run = |run: &[u32]| -> Result<String> {
            if run.is_empty() {
                return Ok(String::new());
            }
            self.processor
                .decode_piece_ids(run)
                .map_err(|e| Error::Internal(format!("SentencePiece failed to decode: {e}")))
        };
        let mut text = String::new();
        let mut run = Vec::new();
        for &id in ids {
            let (piece, kind) = &self.pieces[id as usize];
            if *kind == PieceType::Control {
                if !skip_special {
                    text.push_str(&decode_run(&run)?);
                    run.clear();
                    text.push_str(piece);
                }
            } else {
                run.push(id);
            }
        }
        text.push_str(&decode_run(&run)?);
        Ok(text)
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub(crate) fn token_to_id(&self, token: &str) -> Option<u32> {
        self.piece_ids.get(token).copied()
    }

    pub(crate) fn id_to_token(&self, id: u32) -> Option<String> {
        self.pieces.get(id as usize).map(|(t, _)| t.clone())
    }

    /// Every piece with its type, by id.
    pub(crate) fn pieces(&self) -> &[(String, PieceType)] {
        &self.pieces
    }

    /// Control and unknown pieces, with their text.
    pub(crate) fn special_tokens(&self) -> Vec<(u32, String)> {
        self.pieces
            .iter()
            .enumerate()
            .filter(|(_, (_, k))| matches!(k, PieceType::Control | PieceType::Unknown))
            .map(|(id, (t, _))| (id as u32, t.clone()))
            .collect()
    }

    pub(crate) fn bos_id(&self) -> Option<u32> {
        self.processor.bos_id()
    }

    pub(crate) fn eos_id(&self) -> Option<u32> {
        self.processor.eos_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_reader_rejects_truncation() {
        // field 1, length 5, but only 2 bytes follow.
        assert!(parse_model_pieces(&[0x0a, 0x05, 0x0a, 0x01]).is_err());
        assert!(parse_model_pieces(&[]).is_err());
        // A well-formed model with one piece "a" of type CONTROL.
        let ok = [0x0a, 0x05, 0x0a, 0x01, b'a', 0x18, 0x03];
        assert_eq!(
            parse_model_pieces(&ok).unwrap(),
            vec![("a".to_string(), PieceType::Control)]
        );
    }

    #[test]
    fn pieces_with_nul_are_rejected_before_sentencepiece_sees_them() {
        // A piece "\0" made SentencePiece's trie builder throw through the C ABI (fuzz
        // regression fuzz/regressions/load_files/sentencepiece-nul-piece).
        let nul = [0x0a, 0x05, 0x0a, 0x01, 0, 0x18, 0x01];
        let err = parse_model_pieces(&nul).unwrap_err();
        assert!(err.contains("NUL"), "{err}");
        let inner = [0x0a, 0x07, 0x0a, 0x03, b'a', 0, b'b', 0x18, 0x01];
        assert!(parse_model_pieces(&inner).is_err());
    }
}
