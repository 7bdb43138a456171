//! The byte-level BPE pieces every byte-level tokenizer shares (as `tokenizers` keeps
//! `bytes_char` in `pre_tokenizers/byte_level.rs`): GPT-2's byte <-> printable-character map,
//! and Llama 3's split pattern and special-token names. A leaf: it imports no other
//! tokenizer module.

use rustc_hash::FxHashMap;

/// Number of ranks in Llama 3's rank file.
pub const LLAMA3_RANK_COUNT: usize = 128_000;

/// Llama 3's pre-tokenizer split pattern.
pub const LLAMA3_SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The 256 special tokens of Llama 3.1/3.2 (ids 128000..=128255), in id order.
pub fn llama3_special_tokens() -> Vec<String> {
    let named: [(usize, &str); 8] = [
        (0, "<|begin_of_text|>"),
        (1, "<|end_of_text|>"),
        (4, "<|finetune_right_pad_id|>"),
        (6, "<|start_header_id|>"),
        (7, "<|end_header_id|>"),
        (8, "<|eom_id|>"),
        (9, "<|eot_id|>"),
        (10, "<|python_tag|>"),
    ];
    let mut reserved = 0;
    (0..256)
        .map(|i| match named.iter().find(|(n, _)| *n == i) {
            Some((_, name)) => (*name).to_string(),
            None => {
                let name = format!("<|reserved_special_token_{reserved}|>");
                reserved += 1;
                name
            }
        })
        .collect()
}

/// GPT-2's reversible byte → printable character map used by byte-level BPE.
pub(crate) fn byte_to_char_map() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next_extra = 256u32;
    for b in 0u32..256 {
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let c = if printable {
            b
        } else {
            let c = next_extra;
            next_extra += 1;
            c
        };
        map[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    map
}

/// GPT-2's byte → printable char map (as `tokenizers`' ByteLevel uses), inverted.
pub(crate) fn char_to_byte_map() -> FxHashMap<char, u8> {
    byte_to_char_map()
        .iter()
        .enumerate()
        .map(|(byte, &c)| (c, byte as u8))
        .collect()
}
