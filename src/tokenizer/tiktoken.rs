//! Format 3: a tiktoken rank file (Llama 3's original `tokenizer.model`): one
//! `base64(token bytes) rank` pair per line, no special tokens, no split pattern.
//!
//! The file does not say how to pre-tokenize, so only the vocabulary we know is accepted:
//! Llama 3's 128,000 ranks. We rebuild exactly what Meta's tokenizer does — byte-level
//! BPE over the ranks, Llama 3's split pattern, the 256 special tokens at ids
//! 128000–128255 with Llama 3.1/3.2 names, `<|begin_of_text|>` added in front — as a
//! `tokenizer.json`-equivalent pipeline, so the ids equal Llama 3.2's `tokenizer.json`.
//! Merges are derived from the ranks the way tiktoken applies them (lowest rank first),
//! and `ignore_merges` makes whole-piece vocabulary hits win, as tiktoken does.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use super::hf_json::HfTokenizer;
use crate::error::{Error, Result};

use super::byte_level::byte_to_char_map;
pub use super::byte_level::{llama3_special_tokens, LLAMA3_RANK_COUNT, LLAMA3_SPLIT_PATTERN};

/// True when `bytes` look like a tiktoken rank file (first line `base64 rank`).
pub(crate) fn looks_like_rank_file(bytes: &[u8]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(first) else {
        return false;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(token), Some(rank), None)
            if !token.is_empty()
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
                && !rank.is_empty()
                && rank.bytes().all(|b| b.is_ascii_digit())
    )
}

/// Parses the rank file into token bytes indexed by rank.
fn parse_ranks(bytes: &[u8], path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid_model(path, "tiktoken rank file is not UTF-8 text"))?;
    let mut tokens: Vec<Option<Vec<u8>>> = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| Error::invalid_model(path, format!("line {}: {why}", line_no + 1));
        let (token, rank) = line
            .split_once(' ')
            .ok_or_else(|| bad("expected `base64 rank`"))?;
        let token = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| bad("token is not valid base64"))?;
        let rank: usize = rank
            .trim()
            .parse()
            .map_err(|_| bad("rank is not a number"))?;
        if rank >= LLAMA3_RANK_COUNT {
            return Err(bad(&format!(
                "rank {rank} is outside Llama 3's {LLAMA3_RANK_COUNT} ranks; only Llama 3's rank file is supported"
            )));
        }
        if token.is_empty() {
            return Err(bad("empty token"));
        }
        if tokens.len() <= rank {
            tokens.resize(rank + 1, None);
        }
        if tokens[rank].replace(token).is_some() {
            return Err(bad(&format!("rank {rank} appears twice")));
        }
    }
    if tokens.len() != LLAMA3_RANK_COUNT || tokens.iter().any(Option::is_none) {
        let found = tokens.iter().filter(|t| t.is_some()).count();
        return Err(Error::invalid_model(
            path,
            format!(
                "tiktoken rank file has {found} ranks; only Llama 3's rank file ({LLAMA3_RANK_COUNT} ranks 0..{}) is supported, because the file carries no split pattern or special tokens",
                LLAMA3_RANK_COUNT - 1
            ),
        ));
    }
    Ok(tokens.into_iter().map(Option::unwrap_or_default).collect())
}

/// Builds the Llama 3 tokenizer from a rank file's bytes.
pub(crate) fn load_llama3(bytes: &[u8], path: &Path) -> Result<HfTokenizer> {
    let tokens = parse_ranks(bytes, path)?;
    let ranks: HashMap<&[u8], usize> = tokens
        .iter()
        .enumerate()
        .map(|(r, t)| (t.as_slice(), r))
        .collect();
    if ranks.len() != tokens.len() {
        return Err(Error::invalid_model(
            path,
            "the same token appears under two ranks",
        ));
    }
    for b in 0u8..=255 {
        if !ranks.contains_key(&[b][..]) {
            return Err(Error::invalid_model(
                path,
                format!("byte {b:#04x} has no rank"),
            ));
        }
    }
    let chars = byte_to_char_map();
    let to_text = |bytes: &[u8]| -> String { bytes.iter().map(|&b| chars[b as usize]).collect() };

    // Merges as HF's tiktoken converter writes them (this is how Llama 3's tokenizer.json
    // was made): every split of a token into two vocabulary tokens, ordered by the merged
    // token's rank, then the parts' ranks. BPE with these merges and `ignore_merges`
    // reproduces tiktoken's lowest-rank-first merging.
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut merges: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (rank, token) in tokens.iter().enumerate() {
        vocab.insert(to_text(token), json!(rank));
        for split in 1..token.len() {
            let (left, right) = token.split_at(split);
            if let (Some(&l), Some(&r)) = (ranks.get(left), ranks.get(right)) {
                merges.push((rank, l, r, split));
            }
        }
    }
    merges.sort_unstable();
    let merges: Vec<Value> = merges
        .iter()
        .map(|&(rank, _, _, split)| {
            let (left, right) = tokens[rank].split_at(split);
            json!([to_text(left), to_text(right)])
        })
        .collect();
    let specials = llama3_special_tokens();
    let added_tokens: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, content)| {
            json!({"id": LLAMA3_RANK_COUNT + i, "content": content, "single_word": false,
                   "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let bos = &specials[0];
    let definition = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT_PATTERN}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos.as_str(): {"id": bos, "ids": [LLAMA3_RANK_COUNT], "tokens": [bos]}}}
        ]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": true, "vocab": vocab, "merges": merges}
    });
    let serialized = serde_json::to_vec(&definition)
        .map_err(|e| Error::Internal(format!("serializing the Llama 3 pipeline: {e}")))?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&serialized)
        .map_err(|e| Error::Internal(format!("building the Llama 3 pipeline: {e}")))?;
    let fast = super::fast_bpe::for_llama3_ranks(&tokens, &specials)?;
    Ok(HfTokenizer::from_tokenizer(tokenizer, Some(fast)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_token_names_follow_llama_3_2() {
        let names = llama3_special_tokens();
        assert_eq!(names.len(), 256);
        assert_eq!(names[2], "<|reserved_special_token_0|>");
        assert_eq!(names[3], "<|reserved_special_token_1|>");
        assert_eq!(names[5], "<|reserved_special_token_2|>");
        assert_eq!(names[9], "<|eot_id|>");
        assert_eq!(names[11], "<|reserved_special_token_3|>");
        assert_eq!(names[255], "<|reserved_special_token_247|>");
    }

    #[test]
    fn rank_file_detection() {
        assert!(looks_like_rank_file(b"IQ== 0\nIg== 1\n"));
        assert!(!looks_like_rank_file(b"{\"model\": {}}"));
        assert!(!looks_like_rank_file(&[0x0a, 0x05, 0x0a]));
    }

    #[test]
    fn byte_map_is_a_bijection_onto_gpt2_chars() {
        let map = byte_to_char_map();
        let mut seen: Vec<char> = map.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        assert_eq!(map[b'a' as usize], 'a');
    }
}
