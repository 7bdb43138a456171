//! Incremental decoding: feed ids one at a time, get back only complete UTF-8 text.
//!
//! Decoding a token on its own is wrong for most tokenizers (leading-space rules,
//! byte-level pieces of one character spread over several tokens). The decoder keeps a
//! short window of recent ids, decodes the window with and without the newest ids, and
//! emits the difference once it no longer ends in an incomplete character (U+FFFD).
//! The concatenation of everything emitted equals decoding all ids at once.

use std::sync::Arc;

use super::Tokenizer;
use crate::error::Result;

/// The longest run of ids held back waiting for a character to complete: a UTF-8
/// character has at most 4 bytes, so after this many byte-tokens it can never complete.
const MAX_PENDING_IDS: usize = 4;

/// Streaming detokenizer for one sequence. Not shared between threads; cheap to create
/// and to clone (a clone is a snapshot that can be advanced independently).
#[derive(Clone)]
pub struct StreamDecoder {
    tokenizer: Arc<Tokenizer>,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the window whose text has already been emitted up to `read_offset`.
    prefix_offset: usize,
    /// Ids before this index have been emitted.
    read_offset: usize,
}

impl StreamDecoder {
    /// A decoder over `tokenizer`; special tokens are dropped when `skip_special`.
    pub fn new(tokenizer: Arc<Tokenizer>, skip_special: bool) -> Self {
        Self {
            tokenizer,
            skip_special,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
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
        self.prefix_offset = 0;
        self.read_offset = 0;
    }

    fn emit(&mut self, force: bool) -> Result<String> {
        if self.read_offset == self.ids.len() {
            return Ok(String::new());
        }
        let prefix = self.tokenizer.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special,
        )?;
        let full = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        let pending = self.ids.len() - self.read_offset;
        let incomplete = full.ends_with('\u{fffd}') && pending < MAX_PENDING_IDS;
        if !force && (incomplete || full.len() <= prefix.len()) {
            return Ok(String::new());
        }
        let new_text = match full.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.to_owned(),
            // A decoder rewrote earlier text (rare): emit only what lies past the prefix.
            None => full.get(prefix.len()..).unwrap_or_default().to_owned(),
        };
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        // Keep the window short: the ids before `prefix_offset` are never decoded again.
        if self.prefix_offset > 64 {
            self.ids.drain(..self.prefix_offset);
            self.read_offset -= self.prefix_offset;
            self.prefix_offset = 0;
        }
        Ok(new_text)
    }
}
