//! The byte-level BPE fast path against the general `tokenizers` pipeline (its oracle):
//! identical ids and offsets on the golden inputs and on ≥ 10 MB of generated text covering
//! every Unicode plane and category, long whitespace and digit runs, contractions in odd
//! cases, and every special token — with and without special-token parsing.

mod common;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sphana_llm::{EncodeOptions, LoadOptions, Model};

fn load(name: &str) -> Model {
    let model = Model::load(common::tokenizer_dir(name), &LoadOptions::default()).unwrap();
    assert!(
        model.tokenizer().has_fast_path(),
        "{name} should take the fast path"
    );
    model
}

const OPTIONS: [EncodeOptions; 4] = [
    EncodeOptions {
        add_special: false,
        parse_special: false,
    },
    EncodeOptions {
        add_special: true,
        parse_special: false,
    },
    EncodeOptions {
        add_special: false,
        parse_special: true,
    },
    EncodeOptions {
        add_special: true,
        parse_special: true,
    },
];

fn assert_same(model: &Model, text: &str, options: EncodeOptions, what: &str) {
    let tok = model.tokenizer();
    let fast = tok.encode_with_offsets(text, options).unwrap();
    let general = tok.encode_with_general_path(text, options).unwrap();
    if fast != general {
        let at = fast
            .ids
            .iter()
            .zip(&general.ids)
            .position(|(a, b)| a != b)
            .unwrap_or(fast.ids.len().min(general.ids.len()));
        let span = general
            .offsets
            .get(at)
            .or(fast.offsets.get(at))
            .copied()
            .unwrap_or((0, 0));
        let from = span.0.saturating_sub(40);
        let context: String = text.get(from..).unwrap_or("").chars().take(80).collect();
        panic!(
            "{what} {options:?}: fast path differs at token {at} (fast {:?}, general {:?}) near {context:?}; offsets fast {:?} general {:?}",
            fast.ids.get(at..at + 5),
            general.ids.get(at..at + 5),
            fast.offsets.get(at..at + 5),
            general.offsets.get(at..at + 5)
        );
    }
}

#[test]
fn golden_inputs_match_the_general_path() {
    for name in ["llama3.2", "llama3-tiktoken"] {
        let model = load(name);
        for (input, text) in common::inputs() {
            for options in OPTIONS {
                assert_same(&model, &text, options, &format!("{name}/{input}"));
            }
        }
        let big = common::big_text();
        assert_same(&model, &big, OPTIONS[0], &format!("{name}/1 MiB text"));
    }
}

/// Deterministic text generator covering what the split pattern and BPE care about.
struct TextGen {
    rng: SmallRng,
    specials: Vec<String>,
}

impl TextGen {
    fn any_scalar(&mut self) -> char {
        loop {
            // Weight the planes: most text is in the BMP, but every plane appears.
            let cp = match self.rng.random_range(0..10) {
                0 => self.rng.random_range(0x10000..0x110000),
                1 => self.rng.random_range(0x80..0x800),
                _ => self.rng.random_range(0x800..0x10000),
            };
            if let Some(c) = char::from_u32(cp) {
                return c;
            }
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn chunk(&mut self, out: &mut String) {
        const WORDS: &[&str] = &[
            "the",
            "The",
            "HELLO",
            "world",
            "naïve",
            "café",
            "Straße",
            "ǅemal",
            "ΑΒΓ",
            "объект",
            "العربية",
            "हिन्दी",
            "ไทย",
            "日本語",
            "中文",
            "한국어",
            "😀",
            "👨‍👩‍👧‍👦",
            "🇫🇷",
            "x\u{301}",
            "ﬁ",
            "①",
            "½",
            "Ⅻ",
        ];
        const SPACES: &[&str] = &[
            " ", "  ", "\t", "\n", "\r\n", "\r", "\u{a0}", "\u{3000}", "\u{2028}", "\u{85}",
            "\u{b}", "\u{c}", "\u{180e}", "\u{200b}", " \n ", "\n\n\n", "   \t  ",
        ];
        const DIGITS: &[&str] = &["0", "7", "٣", "९", "１", "²", "𝟘"];
        const CONTRACTIONS: &[&str] = &[
            "'s", "'S", "'ſ", "'t", "'T", "'re", "'RE", "'rE", "'ve", "'VE", "'m", "'M", "'ll",
            "'LL", "'lL", "'d", "'D", "'", "''", "'x", "'K",
        ];
        const PUNCT: &[&str] = &[
            ".", ",", "!?", "...", "(", ")", "[]", "{}", "<", ">", "<|", "|>", "--", "—", "«", "»",
            "\"", "@#$%", "\\", "/", "_", "`", "~", "´", "¨",
        ];
        match self.rng.random_range(0..12) {
            0 => {
                for _ in 0..self.rng.random_range(1..12) {
                    out.push(self.any_scalar());
                }
            }
            1 => {
                for _ in 0..self.rng.random_range(1..40) {
                    let s = self.pick(SPACES);
                    out.push_str(s);
                }
            }
            2 => {
                let d = self.pick(DIGITS);
                for _ in 0..self.rng.random_range(1..30) {
                    out.push_str(d);
                }
            }
            3 => {
                let c = self.pick(CONTRACTIONS);
                out.push_str(c);
            }
            4 => {
                let i = self.rng.random_range(0..self.specials.len());
                out.push_str(&self.specials[i].clone());
            }
            5 | 6 => {
                let p = self.pick(PUNCT);
                out.push_str(p);
            }
            7 => {
                // A long run of one letter or one CJK char (long BPE pieces).
                let c = if self.rng.random_bool(0.5) {
                    'a'
                } else {
                    '語'
                };
                for _ in 0..self.rng.random_range(20..200) {
                    out.push(c);
                }
            }
            _ => {
                let w = self.pick(WORDS);
                out.push_str(w);
            }
        }
    }
}

#[test]
fn ten_megabytes_of_generated_text_match_the_general_path() {
    for name in ["llama3.2", "llama3-tiktoken"] {
        let model = load(name);
        let specials: Vec<String> = model
            .tokenizer()
            .special_tokens()
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        assert_eq!(specials.len(), 256);
        let mut generator = TextGen {
            rng: SmallRng::seed_from_u64(0x5eed_0001),
            specials,
        };
        let target = if name == "llama3.2" {
            10 << 20
        } else {
            2 << 20
        };
        let mut total = 0usize;
        let mut round = 0usize;
        while total < target {
            let mut text = String::new();
            while text.len() < 64 << 10 {
                generator.chunk(&mut text);
            }
            let options = OPTIONS[round % OPTIONS.len()];
            assert_same(&model, &text, options, &format!("{name} chunk {round}"));
            total += text.len();
            round += 1;
        }
        // Every special token is matched the same way with parsing on.
        let all: String = model
            .tokenizer()
            .special_tokens()
            .iter()
            .map(|(_, t)| format!("x{t} y"))
            .collect();
        assert_same(
            &model,
            &all,
            OPTIONS[3],
            &format!("{name} all special tokens"),
        );
    }
}
