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

use aho_corasick::{AhoCorasick, MatchKind};
use once_cell::sync::Lazy;
use rustc_hash::FxHashMap;

use super::byte_level::char_to_byte_map;
use super::Encoding;
use crate::error::{Error, Result};

const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const SPACE: u8 = 4;

/// Per-code-point classes as Oniguruma (the engine `tokenizers` uses) sees them.
struct CharClasses {
    /// `blocks[cp >> 8]` indexes `leaves`.
    blocks: Vec<u16>,
    leaves: Vec<[u8; 256]>,
    /// Code points that `(?i:x)` matches, for the contraction letters s t r e v m l d.
    contraction_letters: [Vec<u32>; 8],
}

const CONTRACTION_LETTERS: [char; 8] = ['s', 't', 'r', 'e', 'v', 'm', 'l', 'd'];

impl CharClasses {
    fn build() -> Self {
        let mut classes = vec![0u8; 0x11_0000];
        // Every scalar value once, in order: a match's byte offsets map back to code points.
        let all: String = (0u32..0x11_0000).filter_map(char::from_u32).collect();
        let mut byte_to_cp = Vec::with_capacity(all.len() + 1);
        for c in all.chars() {
            for _ in 0..c.len_utf8() {
                byte_to_cp.push(c as u32);
            }
        }
        let mark = |pattern: &str, bit: u8, classes: &mut Vec<u8>| {
            let regex = onig::Regex::new(pattern).expect("class pattern compiles");
            for (start, end) in regex.find_iter(&all) {
                for &cp in byte_to_cp[start..end].iter() {
                    classes[cp as usize] |= bit;
                }
            }
        };
        mark(r"\p{L}+", LETTER, &mut classes);
        mark(r"\p{N}+", NUMBER, &mut classes);
        mark(r"\s+", SPACE, &mut classes);
        // One scan finds every char that case-folds to a contraction letter; each is then
        // assigned to its letter(s) with a per-letter match on that char alone.
        let any_letter = onig::Regex::new("(?i:[strevmld])").expect("letter pattern compiles");
        let candidates: Vec<u32> = any_letter
            .find_iter(&all)
            .map(|(s, _)| byte_to_cp[s])
            .collect();
        let contraction_letters = CONTRACTION_LETTERS.map(|letter| {
            let regex =
                onig::Regex::new(&format!("^(?i:{letter})$")).expect("letter pattern compiles");
            candidates
                .iter()
                .copied()
                .filter(|&cp| char::from_u32(cp).is_some_and(|c| regex.is_match(&c.to_string())))
                .collect()
        });
        let mut leaves: Vec<[u8; 256]> = Vec::new();
        let mut index: FxHashMap<[u8; 256], u16> = FxHashMap::default();
        let blocks = classes
            .chunks(256)
            .map(|chunk| {
                let leaf: [u8; 256] = chunk.try_into().expect("256 entries");
                *index.entry(leaf).or_insert_with(|| {
                    leaves.push(leaf);
                    (leaves.len() - 1) as u16
                })
            })
            .collect();
        Self {
            blocks,
            leaves,
            contraction_letters,
        }
    }

    #[inline]
    fn class(&self, cp: u32) -> u8 {
        self.leaves[self.blocks[(cp >> 8) as usize] as usize][(cp & 0xff) as usize]
    }
}

static CLASSES: Lazy<CharClasses> = Lazy::new(CharClasses::build);

/// Decodes the char at `i` of valid UTF-8: (code point, byte length).
#[inline]
fn char_at(t: &[u8], i: usize) -> (u32, usize) {
    let b0 = t[i] as u32;
    if b0 < 0x80 {
        (b0, 1)
    } else if b0 < 0xE0 {
        (((b0 & 0x1F) << 6) | (t[i + 1] as u32 & 0x3F), 2)
    } else if b0 < 0xF0 {
        (
            ((b0 & 0x0F) << 12) | ((t[i + 1] as u32 & 0x3F) << 6) | (t[i + 2] as u32 & 0x3F),
            3,
        )
    } else {
        (
            ((b0 & 0x07) << 18)
                | ((t[i + 1] as u32 & 0x3F) << 12)
                | ((t[i + 2] as u32 & 0x3F) << 6)
                | (t[i + 3] as u32 & 0x3F),
            4,
        )
    }
}

/// Splits text into Llama 3 pre-tokenizer pieces, exactly as the regex
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// with leftmost-first alternation would.
struct Scanner<'t> {
    t: &'t [u8],
    classes: &'static CharClasses,
}

impl Scanner<'_> {
    #[inline]
    fn class_at(&self, i: usize) -> (u32, u8, usize) {
        let (cp, len) = char_at(self.t, i);
        (cp, self.classes.class(cp), len)
    }

    /// End of the run of chars (from `i`) whose class has `bit`.
    #[inline]
    fn skip(&self, mut i: usize, bit: u8) -> usize {
        while i < self.t.len() {
            let (_, class, len) = self.class_at(i);
            if class & bit == 0 {
                break;
            }
            i += len;
        }
        i
    }

    /// Length of a contraction suffix (after the apostrophe) at `i`, if any.
    fn contraction(&self, i: usize) -> Option<usize> {
        let letter = |at: usize, which: usize| -> Option<usize> {
            if at >= self.t.len() {
                return None;
            }
            let (cp, len) = char_at(self.t, at);
            self.classes.contraction_letters[which]
                .contains(&cp)
                .then_some(len)
        };
        // 's 't 're 've 'm 'll 'd, in the pattern's order.
        const S: usize = 0;
        const T: usize = 1;
        const R: usize = 2;
        const E: usize = 3;
        const V: usize = 4;
        const M: usize = 5;
        const L: usize = 6;
        const D: usize = 7;
        for single in [S, T] {
            if let Some(n) = letter(i, single) {
                return Some(n);
            }
        }
        for first in [R, V] {
            if let Some(n) = letter(i, first) {
                if let Some(m) = letter(i + n, E) {
                    return Some(n + m);
                }
            }
        }
        if let Some(n) = letter(i, M) {
            return Some(n);
        }
        if let Some(n) = letter(i, L) {
            if let Some(m) = letter(i + n, L) {
                return Some(n + m);
            }
        }
        letter(i, D)
    }

    /// End of the piece that starts at `i` (< len).
    fn piece_end(&self, i: usize) -> usize {
        let t = self.t;
        let (c, class, len) = self.class_at(i);
        let j = i + len;
        // 's 't 're 've 'm 'll 'd
        if c == u32::from(b'\'') {
            if let Some(n) = self.contraction(j) {
                return j + n;
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if class & LETTER != 0 {
            return self.skip(j, LETTER);
        }
        let is_newline = c == u32::from(b'\r') || c == u32::from(b'\n');
        if !is_newline && class & (LETTER | NUMBER) == 0 && j < t.len() {
            let (_, next, next_len) = self.class_at(j);
            if next & LETTER != 0 {
                return self.skip(j + next_len, LETTER);
            }
        }
        // \p{N}{1,3}
        if class & NUMBER != 0 {
            let mut end = j;
            for _ in 0..2 {
                if end < t.len() {
                    let (_, next, next_len) = self.class_at(end);
                    if next & NUMBER != 0 {
                        end += next_len;
                        continue;
                    }
                }
                break;
            }
            return end;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let other = |class: u8| class & (LETTER | NUMBER | SPACE) == 0;
        let run_start = if c == u32::from(b' ') && j < t.len() && other(self.class_at(j).1) {
            Some(j)
        } else if other(class) {
            Some(i)
        } else {
            None
        };
        if let Some(start) = run_start {
            let mut end = start;
            while end < t.len() {
                let (_, next, next_len) = self.class_at(end);
                if !other(next) {
                    break;
                }
                end += next_len;
            }
            while end < t.len() && (t[end] == b'\r' || t[end] == b'\n') {
                end += 1;
            }
            return end;
        }
        // Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
        let run_end = self.skip(i, SPACE);
        if let Some(last_newline) = t[i..run_end]
            .iter()
            .rposition(|&b| b == b'\r' || b == b'\n')
        {
            return i + last_newline + 1;
        }
        if run_end == t.len() {
            return run_end;
        }
        // Followed by a non-space: leave the run's last char for the next piece
        // (unless the run is a single char).
        let mut last = run_end - 1;
        while t[last] & 0xC0 == 0x80 {
            last -= 1;
        }
        if last > i {
            last
        } else {
            run_end
        }
    }
}

/// Byte sequence → id, with Fx hashing.
type Ranks = FxHashMap<Vec<u8>, u32>;

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
        let scanner = Scanner {
            t: segment,
            classes: &CLASSES,
        };
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
                self.merge_piece(piece, i, text, out, with_offsets, scratch);
            }
            i = piece_end;
        }
    }

    #[inline]
    fn rank(&self, bytes: &[u8]) -> u32 {
        self.ranks.get(bytes).copied().unwrap_or(u32::MAX)
    }

    /// tiktoken's byte-pair merge: repeatedly join the adjacent pair whose concatenation
    /// has the lowest rank (leftmost on ties) until no joined pair is in the vocabulary.
    fn merge_piece(
        &self,
        piece: &[u8],
        base: usize,
        text: &str,
        out: &mut Encoding,
        with_offsets: bool,
        parts: &mut Vec<(usize, u32)>,
    ) {
        parts.clear();
        // parts[k] = (start of part k, rank of joining part k with part k + 1)
        for k in 0..piece.len() - 1 {
            parts.push((k, self.rank(&piece[k..k + 2])));
        }
        parts.push((piece.len() - 1, u32::MAX));
        parts.push((piece.len(), u32::MAX));
        loop {
            let (mut best, mut best_rank) = (usize::MAX, u32::MAX);
            for (k, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < best_rank {
                    best_rank = rank;
                    best = k;
                }
            }
            if best_rank == u32::MAX {
                break;
            }
            let joined_rank = |parts: &[(usize, u32)], k: usize| -> u32 {
                if k + 3 < parts.len() {
                    self.rank(&piece[parts[k].0..parts[k + 3].0])
                } else {
                    u32::MAX
                }
            };
            if best > 0 {
                parts[best - 1].1 = joined_rank(parts, best - 1);
            }
            parts[best].1 = joined_rank(parts, best);
            parts.remove(best + 1);
        }
        for w in parts.windows(2) {
            let (a, b) = (w[0].0, w[1].0);
            // Every part is a vocabulary entry: single bytes always are, and joins only
            // happen when the joined bytes are.
            out.ids.push(self.rank(&piece[a..b]));
            if with_offsets {
                // Like `tokenizers`, a token holding part of a character spans the whole character.
                let mut s = base + a;
                while !text.is_char_boundary(s) {
                    s -= 1;
                }
                let mut e = base + b;
                while !text.is_char_boundary(e) {
                    e += 1;
                }
                out.offsets.push((s, e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        let scanner = Scanner {
            t: text.as_bytes(),
            classes: &CLASSES,
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let end = scanner.piece_end(i);
            out.push(&text[i..end]);
            i = end;
        }
        out
    }

    #[test]
    fn scanner_follows_the_llama3_pattern() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(
            pieces("I'm can't they'LL"),
            ["I", "'m", " can", "'t", " they", "'LL"]
        );
        assert_eq!(pieces("1234567"), ["123", "456", "7"]);
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("x\n \n  y"), ["x", "\n \n", " ", " y"]);
        assert_eq!(pieces("end  "), ["end", "  "]);
        assert_eq!(pieces("(foo) !!\r\nbar"), ["(foo", ")", " !!\r\n", "bar"]);
        assert_eq!(pieces("\t\tfoo"), ["\t", "\tfoo"]);
        assert_eq!(pieces("日本語 テスト"), ["日本語", " テスト"]);
    }
}

/// The parts of a `tokenizer.json` that decide whether the fast path is exact for it.
#[derive(serde::Deserialize)]
struct JsonShape {
    normalizer: serde_json::Value,
    pre_tokenizer: serde_json::Value,
    post_processor: serde_json::Value,
    #[serde(default)]
    added_tokens: Vec<JsonAddedToken>,
    model: JsonModel,
}

#[derive(serde::Deserialize)]
struct JsonAddedToken {
    id: u32,
    content: String,
    special: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
}

#[derive(serde::Deserialize)]
struct JsonModel {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ignore_merges: bool,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    dropout: Option<f64>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    vocab: FxHashMap<String, u32>,
    merges: Vec<JsonMerge>,
}

/// One merge, written either as `"a b"` or as `["a", "b"]`; kept as (left, right).
struct JsonMerge(String, String);

impl<'de> serde::Deserialize<'de> for JsonMerge {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonMerge;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a merge as \"a b\" or [\"a\", \"b\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<JsonMerge, E> {
                let (l, r) = v
                    .split_once(' ')
                    .ok_or_else(|| E::custom("merge without a space"))?;
                Ok(JsonMerge(l.to_owned(), r.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<JsonMerge, A::Error> {
                let l: String = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                let r: String = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(3, &self));
                }
                Ok(JsonMerge(l, r))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The BOS id of a `TemplateProcessing` whose single-sequence template is `[BOS] $A` or
/// `$A`: `Some(Some(id))`, `Some(None)`, or `None` for anything else.
fn template_bos(processor: &serde_json::Value, added: &[JsonAddedToken]) -> Option<Option<u32>> {
    let single = processor.get("single")?.as_array()?;
    match single.as_slice() {
        [seq] if seq.get("Sequence").is_some() => Some(None),
        [special, seq] if seq.get("Sequence").is_some() => {
            let name = special.get("SpecialToken")?.get("id")?.as_str()?;
            let ids = processor
                .get("special_tokens")?
                .get(name)?
                .get("ids")?
                .as_array()?;
            match ids.as_slice() {
                [id] => {
                    let id = u32::try_from(id.as_u64()?).ok()?;
                    added.iter().any(|t| t.id == id).then_some(Some(id))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Builds the fast encoder for a `tokenizer.json` when — and only when — it is provably
/// the same tokenizer as tiktoken over its vocabulary with Llama 3's split pattern:
/// no normalizer, the Llama 3 split + byte-level pre-tokenizer, `ignore_merges`, a merge
/// list that holds exactly every split of every token into two tokens in the order of the
/// joined token's id, only special added tokens, and a `[BOS] $A` template. `None` otherwise.
pub(crate) fn for_tokenizer_json(bytes: &[u8]) -> Option<FastBpe> {
    let shape: JsonShape = serde_json::from_slice(bytes).ok()?;
    let model = &shape.model;
    if model.kind != "BPE"
        || !model.ignore_merges
        || model.byte_fallback
        || model.dropout.is_some()
        || model.continuing_subword_prefix.is_some()
        || model.end_of_word_suffix.is_some()
        || !shape.normalizer.is_null()
    {
        return None;
    }
    let expected_pre = serde_json::json!([
        {"type": "Split", "pattern": {"Regex": super::byte_level::LLAMA3_SPLIT_PATTERN}, "behavior": "Isolated", "invert": false},
    ]);
    let pre = shape.pre_tokenizer.get("pretokenizers")?.as_array()?;
    let [split, byte_level] = pre.as_slice() else {
        return None;
    };
    if *split != expected_pre[0]
        || byte_level.get("type")? != "ByteLevel"
        || byte_level.get("add_prefix_space")? != false
        || byte_level.get("use_regex")? != false
    {
        return None;
    }
    let template = match shape.post_processor.get("type")?.as_str()? {
        "TemplateProcessing" => &shape.post_processor,
        "Sequence" => {
            let processors = shape.post_processor.get("processors")?.as_array()?;
            let [byte_level, template] = processors.as_slice() else {
                return None;
            };
            if byte_level.get("type")? != "ByteLevel" || byte_level.get("trim_offsets")? != false {
                return None;
            }
            template
        }
        _ => return None,
    };
    if template.get("type")? != "TemplateProcessing" {
        return None;
    }
    let bos = template_bos(template, &shape.added_tokens)?;
    if shape
        .added_tokens
        .iter()
        .any(|t| !t.special || t.single_word || t.lstrip || t.rstrip)
    {
        return None;
    }

    // In byte-level vocabularies every byte is one char, so char splits are byte splits
    // and the checks can run on the vocabulary strings without decoding them.
    let vocab = &model.vocab;
    // The merges must be every two-token split of every token, ordered by the joined id.
    let mut expected = 0usize;
    for token in vocab.keys() {
        expected += token
            .char_indices()
            .skip(1)
            .filter(|&(k, _)| vocab.contains_key(&token[..k]) && vocab.contains_key(&token[k..]))
            .count();
    }
    if expected != model.merges.len() {
        return None;
    }
    let mut seen = rustc_hash::FxHashSet::default();
    let mut last_id = 0u32;
    let mut joined = String::new();
    for JsonMerge(left, right) in &model.merges {
        if !vocab.contains_key(left.as_str()) || !vocab.contains_key(right.as_str()) {
            return None;
        }
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let id = *vocab.get(joined.as_str())?;
        if id < last_id || !seen.insert((id, left.len())) {
            return None;
        }
        last_id = id;
    }
    let to_byte = char_to_byte_map();
    let mut ranks: Ranks = FxHashMap::with_capacity_and_hasher(vocab.len(), Default::default());
    for (token, &id) in vocab {
        let bytes: Option<Vec<u8>> = token.chars().map(|c| to_byte.get(&c).copied()).collect();
        ranks.insert(bytes?, id);
    }
    if ranks.len() != vocab.len() {
        return None;
    }
    let specials: Vec<(String, u32)> = shape
        .added_tokens
        .iter()
        .map(|t| (t.content.clone(), t.id))
        .collect();
    FastBpe::new(ranks, &specials, bos).ok()
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
