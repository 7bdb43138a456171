//! Incremental decoding: feed ids one at a time, get back only complete UTF-8 text.
//!
//! Decoding a token on its own is wrong for most tokenizers (leading-space rules,
//! byte-level pieces of one character spread over several tokens). The decoder decodes a
//! short window — the ids of the previous emission as context, then the ids not yet fully
//! emitted — and emits the part of the window's text past what it already emitted, up to
//! any trailing U+FFFD (an incomplete character, or a byte-fallback run still growing).
//! The concatenation of everything emitted equals decoding all ids at once.
//!
//! Text is held back by bytes, not by a count of ids: in byte-level vocabularies one token
//! often ends one character and starts the next, so a chain of any length of tokens can
//! each end mid-character. (Holding back at most 4 ids, as this decoder once did, emitted a
//! U+FFFD in the middle of such a chain and then dropped the character it stood for.)

use std::sync::Arc;

use super::Tokenizer;
use crate::error::Result;

/// After this many ids without a clean end (only invalid bytes or skipped special
/// tokens do that), the window is emitted as it is and restarted, so every step stays cheap.
const MAX_PENDING_IDS: usize = 64;

/// Streaming detokenizer for one sequence. Not shared between threads; cheap to create
/// and to clone (a clone is a snapshot that can be advanced independently).
#[derive(Clone)]
pub struct StreamDecoder {
    tokenizer: Arc<Tokenizer>,
    skip_special: bool,
    /// The window: the context (`ids[..read_offset]`, the ids of the last full emission)
    /// and the ids whose text is not all out yet.
    ids: Vec<u32>,
    read_offset: usize,
    /// The prefix of `decode(ids)` already emitted (always ends at a character boundary).
    emitted: String,
}

impl StreamDecoder {
    /// A decoder over `tokenizer`; special tokens are dropped when `skip_special`.
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special: bool) -> Self {
        Self {
            tokenizer,
            skip_special,
            ids: Vec::new(),
            read_offset: 0,
            emitted: String::new(),
        }
    }

    /// The tokenizer this decoder uses.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// Adds one id; returns the text that became complete (possibly empty).
    /// An out-of-range id is an error and leaves the decoder unchanged.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.tokenizer.check_ids(&[id])?;
        self.ids.push(id);
        match self.emit(false) {
            Ok(text) => Ok(text),
            Err(e) => {
                self.ids.pop();
                Err(e)
            }
        }
    }

    /// Returns any text still held back (incomplete characters come out as U+FFFD)
    /// and resets the decoder for a new sequence.
    pub fn flush(&mut self) -> Result<String> {
        let text = self.emit(true)?;
        self.reset();
        Ok(text)
    }

    /// Forgets all ids.
    pub fn reset(&mut self) {
        self.ids.clear();
        self.read_offset = 0;
        self.emitted.clear();
    }

    fn emit(&mut self, force: bool) -> Result<String> {
        let pending = self.ids.len() - self.read_offset;
        if pending == 0 {
            return Ok(String::new());
        }
        let full = self.tokenizer.decode(&self.ids, self.skip_special)?;
        let stuck = pending >= MAX_PENDING_IDS;
        let end = if force || stuck {
            full.len()
        } else {
            full.trim_end_matches('\u{fffd}').len()
        };
        // `full` starts with what was emitted, unless a decoder rewrote earlier text
        // (rare): then emit only what lies past it.
        let new_text = full
            .get(self.emitted.len().min(end)..end)
            .unwrap_or_default()
            .to_owned();
        if end < full.len() {
            // Part of the pending ids' text is out; the rest waits for more ids.
            self.emitted.push_str(&new_text);
        } else if full.ends_with('\u{fffd}') {
            // Forced out with an incomplete tail: later ids cannot complete it any more.
            self.ids.clear();
            self.read_offset = 0;
            self.emitted.clear();
        } else if !new_text.is_empty() || stuck {
            // All out: the ids of this emission become the next window's context. When
            // their text has no visible character (a lone "▁", skipped special tokens), the
            // context reaches back to earlier ids: decoders apply start-of-text rules to
            // the window (SentencePiece drops all leading whitespace), which must not reach
            // the ids that follow.
            let mut start = self.read_offset;
            let mut context = self
                .tokenizer
                .decode(&self.ids[start..], self.skip_special)?;
            while start > 0 && context.chars().all(char::is_whitespace) {
                start -= 1;
                context = self
                    .tokenizer
                    .decode(&self.ids[start..], self.skip_special)?;
            }
            self.ids.drain(..start);
            self.read_offset = self.ids.len();
            self.emitted = context;
        }
        // Else nothing new (skipped special tokens): keep the context as it is.
        Ok(new_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::EncodeOptions;

    /// A byte-level BPE whose merges make each token end one character and start the next
    /// (as the micro model's tokenizer does for "日本語のテキスト"): 12 such tokens in a row.
    #[test]
    fn a_long_chain_of_tokens_ending_mid_character_streams_exactly() {
        // Byte-level alphabet (GPT-2's byte-to-char map) plus merges that make the tokens
        // [b0] [b1 b2 b3] [b4 b5 b6] ...: with 3-byte characters, every token but the last
        // ends with the first byte of the next character.
        let text = "日本語のテキスト。日本語";
        let bytes = text.as_bytes();
        let map = byte_chars();
        let mut vocab: Vec<String> = (0u8..=255).map(|b| map[b as usize].to_string()).collect();
        let mut merges = Vec::new();
        let mut add = |a: String, b: String, vocab: &mut Vec<String>| {
            let merged = format!("{a}{b}");
            if !vocab.contains(&merged) {
                merges.push(format!("{a} {b}"));
                vocab.push(merged.clone());
            }
            merged
        };
        for chunk in bytes[1..].chunks(3) {
            let mut token = map[chunk[0] as usize].to_string();
            for &b in &chunk[1..] {
                token = add(token, map[b as usize].to_string(), &mut vocab);
            }
        }
        let vocab_json: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), serde_json::Value::from(id)))
            .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
            "model": {"type": "BPE", "vocab": vocab_json, "merges": merges, "dropout": null,
                      "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false}
        });
        let dir = std::env::temp_dir().join(format!("sphana-stream-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, json.to_string()).unwrap();
        let tokenizer = Arc::new(Tokenizer::from_path(&path, None).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        let ids = tokenizer.encode(text, EncodeOptions::default()).unwrap();
        assert_eq!(ids.len(), 13, "{ids:?}");
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        for k in 1..ids.len() {
            let partial = tokenizer.decode(&ids[..k], false).unwrap();
            assert!(
                partial.ends_with('\u{fffd}'),
                "{k} tokens end cleanly: {partial:?}"
            );
        }
        let mut decoder = StreamDecoder::new(Arc::clone(&tokenizer), false);
        let mut streamed = String::new();
        for &id in &ids {
            let piece = decoder.push(id).unwrap();
            assert!(
                !piece.contains('\u{fffd}'),
                "emitted a partial character: {piece:?}"
            );
            streamed.push_str(&piece);
        }
        streamed.push_str(&decoder.flush().unwrap());
        assert_eq!(streamed, text);
    }

    /// SentencePiece drops all leading whitespace of a decode: a lone "▁" token as the whole
    /// context made the next token's space disappear ("a  b" streamed as "a b"). Found by
    /// fuzz/fuzz_targets/stream_decode.rs on ALBERT's model.
    #[test]
    fn a_whitespace_only_token_keeps_the_following_space() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/tokenizers/albert-spm");
        if !path.is_dir() {
            eprintln!(
                "{} is missing: skipped (scripts/setup.sh fetches it)",
                path.display()
            );
            return;
        }
        let tokenizer = Arc::new(Tokenizer::from_path(&path, None).unwrap());
        // "jac", "▁deficiencies", "▁", "▁name": decodes to "jac deficiencies  name".
        let ids = [17920, 29998, 13, 204];
        let whole = tokenizer.decode(&ids, false).unwrap();
        assert_eq!(whole, "jac deficiencies  name");
        let mut decoder = StreamDecoder::new(Arc::clone(&tokenizer), false);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&decoder.push(id).unwrap());
        }
        streamed.push_str(&decoder.flush().unwrap());
        assert_eq!(streamed, whole);
    }

    fn byte_chars() -> Vec<char> {
        let mut bs: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
            .chain(0xa1..=0xac)
            .chain(0xae..=0xff)
            .collect();
        let mut cs = bs.clone();
        let mut n = 0;
        for b in 0..256u32 {
            if !bs.contains(&b) {
                bs.push(b);
                cs.push(256 + n);
                n += 1;
            }
        }
        let mut map = vec![' '; 256];
        for (b, c) in bs.into_iter().zip(cs) {
            map[b as usize] = char::from_u32(c).unwrap();
        }
        map
    }
}
