//! Prompt-lookup drafting for speculative decoding: the next tokens are guessed by finding
//! the sequence's latest n-gram earlier in the prompt or the answer and proposing what
//! followed it there. A RAG answer copies names, numbers and phrases from its retrieved
//! context, so such guesses are often right; one run over the guesses then verifies them
//! all (see `generate`).
//!
//! How many tokens to draft adapts to how many were accepted: +2 after a fully accepted
//! draft, down to one more than the accepted part after a partial one. While other
//! generations share the batch, after [`MISSES_BEFORE_PAUSE`] drafts in a row with nothing
//! accepted drafting pauses for a number of tokens that doubles with every further miss (up
//! to [`LONGEST_PAUSE`]): there a verification run is compute-bound and a failing draft
//! slows every row. Alone, a generation never pauses: a memory-bound step over a few more
//! positions costs about what a one-token step does, and a pause only misses the next copied
//! span (chosen by measurement, BENCHMARKS.md).

/// Longest n-gram looked up by default ([`super::GenerateParams::prompt_lookup_ngram`]).
pub const DEFAULT_PROMPT_LOOKUP_NGRAM: usize = 3;
/// Longest n-gram a request may ask for.
pub const MAX_PROMPT_LOOKUP_NGRAM: usize = 16;
/// Most draft tokens a request may ask for per step.
pub const MAX_PROMPT_LOOKUP_TOKENS: usize = 64;
/// Drafts in a row with no token accepted before drafting pauses (in a shared batch).
pub const MISSES_BEFORE_PAUSE: usize = 8;
/// Longest pause, in generated tokens.
pub const LONGEST_PAUSE: usize = 8;

/// The drafting state of one generation.
#[derive(Debug, Clone)]
pub struct PromptLookup {
    max_tokens: usize,
    ngram: usize,
    /// Tokens the next draft may have (adapted).
    budget: usize,
    /// Drafts in a row that had no token accepted.
    misses: usize,
    /// Tokens still to generate before drafting again.
    pause: usize,
}

impl PromptLookup {
    /// Drafts of at most `max_tokens` tokens (0: never) from suffixes of at most `ngram`
    /// tokens (at least 1).
    pub fn new(max_tokens: usize, ngram: usize) -> Self {
        Self {
            max_tokens,
            ngram: ngram.max(1),
            budget: max_tokens,
            misses: 0,
            pause: 0,
        }
    }

    /// The draft for the tokens after `history` (prompt and generated ids, the last one
    /// included), at most `limit` tokens: what followed the latest earlier occurrence of
    /// the longest suffix of `history` (n-gram of `ngram` tokens down to 1) that occurred
    /// before. `shared`: other generations run in the same batch (only then do misses
    /// pause drafting). Empty when drafting is off, paused, or nothing matches.
    pub fn draft(&mut self, history: &[u32], limit: usize, shared: bool) -> Vec<u32> {
        if self.pause > 0 {
            self.pause -= 1;
            if shared {
                return Vec::new();
            }
        }
        let want = self.budget.min(self.max_tokens).min(limit);
        if want == 0 {
            return Vec::new();
        }
        let len = history.len();
        for n in (1..=self.ngram.min(len.saturating_sub(1))).rev() {
            let suffix = &history[len - n..];
            // Latest occurrence that ends before the suffix itself starts to overlap it.
            let found = (0..len - n)
                .rev()
                .find(|&start| &history[start..start + n] == suffix);
            if let Some(start) = found {
                let from = start + n;
                let to = (from + want).min(len);
                return history[from..to].to_vec();
            }
        }
        Vec::new()
    }

    /// Records that `accepted` of the `drafted` tokens of the last draft were accepted.
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        if accepted >= drafted {
            self.budget = (self.budget + 2).min(self.max_tokens);
        } else {
            self.budget = (accepted + 1).max(1);
        }
        if accepted == 0 {
            self.misses += 1;
            if self.misses >= MISSES_BEFORE_PAUSE {
                let doublings = (self.misses - MISSES_BEFORE_PAUSE).min(16) as u32;
                self.pause = (2usize << doublings).min(LONGEST_PAUSE);
            }
        } else {
            self.misses = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_suffix_match_proposes_what_followed_its_latest_occurrence() {
        let mut lookup = PromptLookup::new(4, 3);
        // "1 2 3 9 9" earlier, "7 2 3 5 6" later: the suffix "2 3" matches both, the latest wins.
        let history = [1, 2, 3, 9, 9, 7, 2, 3, 5, 6, 4, 2, 3];
        assert_eq!(lookup.draft(&history, 10, true), [5, 6, 4, 2]);
        // A 3-gram match beats a later 2-gram one.
        let history = [1, 2, 3, 8, 8, 0, 2, 3, 5, 5, 1, 2, 3];
        assert_eq!(lookup.draft(&history, 10, true), [8, 8, 0, 2]);
    }

    #[test]
    fn drafts_respect_the_limit_and_the_end_of_the_history() {
        let mut lookup = PromptLookup::new(8, 2);
        let history = [5, 6, 7, 5, 6];
        assert_eq!(lookup.draft(&history, 10, true), [7, 5, 6], "up to the end");
        assert_eq!(lookup.draft(&history, 2, true), [7, 5], "at most the limit");
        assert!(lookup.draft(&history, 0, true).is_empty());
        assert!(
            lookup.draft(&[1, 2, 3], 5, true).is_empty(),
            "nothing repeats"
        );
        assert!(
            lookup.draft(&[4], 5, true).is_empty(),
            "one token: no earlier occurrence"
        );
        assert!(
            PromptLookup::new(0, 3).draft(&history, 10, true).is_empty(),
            "off"
        );
    }

    #[test]
    fn the_draft_length_adapts_and_failing_drafts_pause_drafting() {
        let history: Vec<u32> = (0..40).map(|i| i % 10).collect();
        let mut lookup = PromptLookup::new(8, 3);
        assert_eq!(lookup.draft(&history, 100, true).len(), 8);
        lookup.record(8, 2);
        assert_eq!(lookup.draft(&history, 100, true).len(), 3, "accepted + 1");
        lookup.record(3, 3);
        assert_eq!(
            lookup.draft(&history, 100, true).len(),
            5,
            "+2 after a full accept"
        );
        lookup.record(5, 0);
        assert_eq!(
            lookup.draft(&history, 100, true).len(),
            1,
            "a miss: one token"
        );
        for _ in 1..MISSES_BEFORE_PAUSE - 1 {
            lookup.record(1, 0);
            assert_eq!(lookup.draft(&history, 100, true).len(), 1, "still drafting");
        }
        lookup.record(1, 0);
        for _ in 0..2 {
            assert!(lookup.draft(&history, 100, true).is_empty(), "paused");
        }
        assert_eq!(lookup.draft(&history, 100, true).len(), 1, "the pause ends");
        lookup.record(1, 0);
        for _ in 0..4 {
            assert!(
                lookup.draft(&history, 100, true).is_empty(),
                "the pause doubles"
            );
        }
        assert_eq!(lookup.draft(&history, 100, true).len(), 1);
        for _ in 0..5 {
            lookup.record(1, 0);
            let paused = std::iter::repeat_with(|| lookup.draft(&history, 100, true))
                .take_while(|d| d.is_empty())
                .count();
            assert!(paused <= LONGEST_PAUSE, "at most {LONGEST_PAUSE}");
        }
        lookup.record(1, 1);
        assert_eq!(
            lookup.draft(&history, 100, true).len(),
            3,
            "a hit ends the pauses"
        );
    }

    #[test]
    fn alone_failing_drafts_never_pause() {
        let history: Vec<u32> = (0..40).map(|i| i % 10).collect();
        let mut lookup = PromptLookup::new(8, 3);
        for _ in 0..4 * MISSES_BEFORE_PAUSE {
            assert_eq!(lookup.draft(&history, 100, false).len().min(1), 1);
            lookup.record(1, 0);
        }
        // The misses still count: in a shared batch the pause applies at once.
        assert!(lookup.draft(&history, 100, true).is_empty());
    }
}
