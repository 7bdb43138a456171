//! Scoring a given continuation: the log-probability of each of its tokens after the prompt
//! (and the tokens before it), for groundedness checks and reranking.
//!
//! The prompt but its last token is prefilled as a generation's prompt is (prefix cache and
//! chunks included); then one run reads the prompt's last token and the continuation but its
//! last token, keeping the logits of all those positions (`num_logits_to_keep` = the
//! continuation's length): position `i` of that run predicts continuation token `i`.
//! Continuations longer than the prefill chunk are read in runs of at most that many tokens,
//! each keeping all its positions. The log-probabilities are the model's own
//! ([`super::logprobs`]): what a greedy or sampled generation of the same ids reports.

use super::logprobs::{check_top, token_logprob, TokenLogprob};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Most continuation tokens one run keeps logits for (bounds the logits buffer: 256 ×
/// 128,256 × 4 B = 131 MB for Llama 3) when the engine reads prompts in one run.
pub const MAX_SCORED_PER_RUN: usize = 256;

/// The log-probability of every token of `continuation` after `prompt` (with the `top`
/// most likely alternatives at each position, at most
/// [`super::logprobs::MAX_TOP_LOGPROBS`]).
pub fn score(
    engine: &Engine,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    continuation: &[u32],
    top: usize,
) -> Result<Vec<TokenLogprob>> {
    check_top(top)?;
    if prompt.is_empty() {
        return Err(Error::InvalidArgument(
            "the prompt is empty (the first token has nothing to be scored after)".into(),
        ));
    }
    if continuation.is_empty() {
        return Err(Error::InvalidArgument(
            "the continuation to score is empty".into(),
        ));
    }
    let model_vocab = engine.layout().logits_vocab.unwrap_or(usize::MAX);
    let embeddable = model_vocab.min(tokenizer.vocab_size());
    if let Some(&bad) = prompt
        .iter()
        .chain(continuation)
        .find(|&&id| id as usize >= embeddable)
    {
        return Err(Error::InvalidTokenId {
            id: bad.into(),
            vocab_size: embeddable,
        });
    }
    let total = prompt.len() + continuation.len();
    if let Some(context) = engine.context_length() {
        // The last continuation token is only predicted, never read.
        if total - 1 > context {
            return Err(Error::ContextOverflow(format!(
                "prompt ({}) and continuation ({}) need {} positions; the model's context is {context}",
                prompt.len(),
                continuation.len(),
                total - 1
            )));
        }
    }
    let _kv = engine.reserve_kv(total - 1)?;

    let mut sequence = engine.new_sequence();
    let (head, last) = prompt.split_at(prompt.len() - 1);
    if !head.is_empty() {
        engine.prefill(&mut sequence, head)?;
    }
    // Read: the prompt's last token, then every continuation token but the last.
    let mut read: Vec<u32> = Vec::with_capacity(continuation.len());
    read.extend_from_slice(last);
    read.extend_from_slice(&continuation[..continuation.len() - 1]);
    let run = match engine.prefill_chunk_tokens() {
        0 => MAX_SCORED_PER_RUN,
        chunk => chunk,
    };
    let valid = embeddable;
    let mut logits = Vec::new();
    let mut out = Vec::with_capacity(continuation.len());
    for (ids, targets) in read.chunks(run).zip(continuation.chunks(run)) {
        let vocab = engine.forward_keeping(&mut sequence, ids, ids.len(), &mut logits)?;
        for (row, &target) in logits.chunks_exact(vocab).zip(targets) {
            out.push(token_logprob(row, target, top, valid));
        }
    }
    Ok(out)
}
