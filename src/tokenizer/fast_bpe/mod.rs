//! The fast path for Llama 3's byte-level BPE (tiktoken semantics), used for Llama 3.x
//! `tokenizer.json` files with `ignore_merges` and for the Llama 3 tiktoken rank file.
//!
//! Encodes directly on the input bytes: a hand-written scanner for Llama 3's split pattern
//! (no regex engine in the hot loop), a whole-piece vocabulary lookup, then tiktoken's
//! lowest-rank-first pair merging over the piece's bytes with an Fx hash of byte slices —
//! no allocation per piece, special tokens scanned only when asked for. Offsets come from
//! the piece boundaries.
//!
//! Equivalence with the general `tokenizers` pipeline is by construction and by test
//! (`tests/fast_path.rs`: goldens, ≥ 10 MB of generated text, a fuzz target): the character
//! classes the scanner uses (`\p{L}`, `\p{N}`, `\s`, and the case-insensitive letters of
//! the contractions) are read from the same Oniguruma engine `tokenizers` runs the pattern
//! with, so both paths agree on every code point.
//!
//! One file per job: `split` (the scanner), `merge` (the rank merge), `eligibility` (which
//! `tokenizer.json` files the fast path is exact for).

mod eligibility;
mod merge;
mod split;

use aho_corasick::{AhoCorasick, MatchKind};
use once_cell::sync::Lazy;
use rustc_hash::FxHashMap;

pub(crate) use self::eligibility::for_tokenizer_json;
use self::split::{Scanner, CLASSES};
use super::Encoding;
use crate::error::{Error, Result};

/// Byte sequence → id, with Fx hashing.
pub(crate) type Ranks = FxHashMap<Vec<u8>, u32>;

/// The fast encoder for one Llama 3-style vocabulary.
pub(crate) struct FastBpe {
    ranks: Ranks,
    /// Special tokens and their ids, matched only when special tokens are parsed.
    specials: Option<(AhoCorasick, Vec<u32>)>,
    /// The id the post-processor puts in front when special tokens are added.
    bos: Option<u32>,
}

impl FastBpe {
    /// Builds the encoder from the byte sequences of every vocabulary id (index = id for
    /// the first `ranked.len()` ids) and the special tokens (text, id).
    pub(crate) fn new(ranks: Ranks, specials: &[(String, u32)], bos: Option<u32>) -> Result<Self> {
        for b in 0u8..=255 {
            if !ranks.contains_key(&[b][..]) {
                return Err(Error::Internal(format!(
                    "fast BPE: byte {b:#04x} has no rank"
                )));
            }
        }
        let specials = if specials.is_empty() {
            None
        } else {
            let matcher = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(specials.iter().map(|(t, _)| t.as_str()))
                .map_err(|e| Error::Internal(format!("special-token matcher: {e}")))?;
            Some((matcher, specials.iter().map(|(_, id)| *id).collect()))
        };
        Lazy::force(&CLASSES);
        Ok(Self {
            ranks,
            specials,
            bos,
        })
    }

    /// Ids (and offsets when asked) of `text`.
    pub(crate) fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
        with_offsets: bool,
    ) -> Encoding {
        let mut out = Encoding {
            ids: Vec::with_capacity(text.len() / 3 + 2),
            offsets: Vec::new(),
        };
        if with_offsets {
            out.offsets.reserve(text.len() / 3 + 2);
        }
        if add_bos {
            if let Some(bos) = self.bos {
                out.ids.push(bos);
                if with_offsets {
                    out.offsets.push((0, 0));
                }
            }
        }
        let mut scratch = Vec::new();
        match (&self.specials, parse_special) {
            (Some((matcher, ids)), true) => {
                let mut last = 0;
                for m in matcher.find_iter(text) {
                    self.encode_ordinary(
                        text,
                        last,
                        m.start(),
                        &mut out,
                        with_offsets,
                        &mut scratch,
                    );
                    out.ids.push(ids[m.pattern().as_usize()]);
                    if with_offsets {
                        out.offsets.push((m.start(), m.end()));
                    }
                    last = m.end();
                }
                self.encode_ordinary(text, last, text.len(), &mut out, with_offsets, &mut scratch);
            }
            _ => self.encode_ordinary(text, 0, text.len(), &mut out, with_offsets, &mut scratch),
        }
        out
    }

    /// Encodes `text[start..end]` (char boundaries) without special-token parsing.
    fn encode_ordinary(
        &self,
        text: &str,
        start: usize,
        end: usize,
        out: &mut Encoding,
        with_offsets: bool,
        scratch: &mut Vec<(usize, u32)>,
    ) {
        let segment = &text.as_bytes()[..end];
        let scanner = Scanner::new(segment);
        let mut i = start;
        while i < end {
            let piece_end = scanner.piece_end(i);
            let piece = &segment[i..piece_end];
            if let Some(&id) = self.ranks.get(piece) {
                out.ids.push(id);
                if with_offsets {
                    out.offsets.push((i, piece_end));
                }
            } else {
                merge::merge_piece(&self.ranks, piece, i, text, out, with_offsets, scratch);
            }
            i = piece_end;
        }
    }
}

/// The fast encoder for Llama 3's tiktoken rank file (`tokens[rank]` = token bytes).
pub(crate) fn for_llama3_ranks(tokens: &[Vec<u8>], specials: &[String]) -> Result<FastBpe> {
    let ranks: Ranks = tokens
        .iter()
        .enumerate()
        .map(|(rank, t)| (t.clone(), rank as u32))
        .collect();
    let base = tokens.len() as u32;
    let specials: Vec<(String, u32)> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), base + i as u32))
        .collect();
    FastBpe::new(ranks, &specials, Some(base))
}
