//! The split scanner: Llama 3's pre-tokenizer pattern as a hand-written scanner over the
//! input bytes, with the character classes (`\p{L}`, `\p{N}`, `\s`, the case-insensitive
//! contraction letters) read from the Oniguruma engine `tokenizers` runs the pattern with.

use once_cell::sync::Lazy;
use rustc_hash::FxHashMap;

const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const SPACE: u8 = 4;

/// Per-code-point classes as Oniguruma (the engine `tokenizers` uses) sees them.
pub(super) struct CharClasses {
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

pub(super) static CLASSES: Lazy<CharClasses> = Lazy::new(CharClasses::build);

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
pub(super) struct Scanner<'t> {
    t: &'t [u8],
    classes: &'static CharClasses,
}

impl<'t> Scanner<'t> {
    /// A scanner over `t` (valid UTF-8) with the Oniguruma character classes.
    pub(super) fn new(t: &'t [u8]) -> Self {
        Self {
            t,
            classes: &CLASSES,
        }
    }

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
    pub(super) fn piece_end(&self, i: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        let scanner = Scanner::new(text.as_bytes());
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
