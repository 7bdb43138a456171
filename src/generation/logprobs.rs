//! Log-probabilities of tokens: what a generation reports for each token it chose (with the
//! most likely alternatives, if asked) and what [`super::score`] reports for a given
//! continuation.
//!
//! The distribution is the model's own: the log-softmax of the raw logits of the position,
//! normalized over the whole logits row, before temperature, repetition penalty, top-k/p,
//! min-p or any other change sampling makes. So a generation's log-probabilities equal
//! [`super::score`] of the same ids, whatever the sampling settings. Alternatives are
//! only ids the tokenizer has (the sampler never picks the others either).

use crate::error::{Error, Result};

/// Most alternatives per token.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// A token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopLogprob {
    /// The token id.
    pub id: u32,
    /// Its natural-log probability.
    pub logprob: f32,
}

/// The log-probability of one token of a generation or a scored continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token id.
    pub id: u32,
    /// Its natural-log probability under the model at its position.
    pub logprob: f32,
    /// The most likely tokens at that position, most likely first (ties: lower id first);
    /// as many as were asked for (fewer only if the tokenizer has fewer ids).
    pub top: Vec<TopLogprob>,
}

/// Checks a requested number of alternatives.
pub(crate) fn check_top(top: usize) -> Result<()> {
    if top > MAX_TOP_LOGPROBS {
        return Err(Error::InvalidArgument(format!(
            "at most {MAX_TOP_LOGPROBS} alternatives per token (got {top})"
        )));
    }
    Ok(())
}

/// `log(sum(exp(row)))`, computed stably (in f64); NaN logits are skipped.
pub(crate) fn log_normalizer(row: &[f32]) -> f64 {
    let max = row
        .iter()
        .copied()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::from(max);
    }
    let sum: f64 = row
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| (f64::from(l) - f64::from(max)).exp())
        .sum();
    f64::from(max) + sum.ln()
}

/// `id`'s log-probability in `row` (raw logits of one position) with the `top` most likely
/// of the first `valid` ids.
pub(crate) fn token_logprob(row: &[f32], id: u32, top: usize, valid: usize) -> TokenLogprob {
    let norm = log_normalizer(row);
    let logprob = |l: f32| (f64::from(l) - norm) as f32;
    let chosen = row.get(id as usize).copied().unwrap_or(f32::NEG_INFINITY);
    TokenLogprob {
        id,
        logprob: logprob(chosen),
        top: top_ids(&row[..valid.min(row.len())], top)
            .into_iter()
            .map(|(id, l)| TopLogprob {
                id,
                logprob: logprob(l),
            })
            .collect(),
    }
}

/// The `n` largest logits of `row` with their ids, largest first (ties: lower id first; NaN
/// never chosen). One pass keeping a small sorted list: `n` is at most
/// [`MAX_TOP_LOGPROBS`].
fn top_ids(row: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return best;
    }
    for (i, &l) in row.iter().enumerate() {
        if l.is_nan() || (best.len() == n && l <= best[n - 1].1) {
            continue;
        }
        let at = best.partition_point(|&(_, b)| b >= l);
        best.insert(at, (i as u32, l));
        best.truncate(n);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_softmax(row: &[f32]) -> Vec<f64> {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let s: f64 = row.iter().map(|&l| (l as f64 - m).exp()).sum();
        row.iter().map(|&l| l as f64 - m - s.ln()).collect()
    }

    #[test]
    fn logprobs_are_the_log_softmax_of_the_whole_row() {
        let row = [2.0f32, -1.0, 0.5, 3.0, 3.0, -20.0];
        let want = log_softmax(&row);
        for id in 0..row.len() as u32 {
            let t = token_logprob(&row, id, 0, row.len());
            assert!((t.logprob as f64 - want[id as usize]).abs() < 1e-6);
            assert!(t.top.is_empty());
        }
        let probs: f64 = want.iter().map(|l| l.exp()).sum();
        assert!((probs - 1.0).abs() < 1e-12);
    }

    #[test]
    fn alternatives_come_most_likely_first_among_valid_ids() {
        let row = [2.0f32, -1.0, f32::NAN, 3.0, 3.0, 9.0];
        // Id 5 is beyond the tokenizer (valid = 5): never an alternative, still normalized.
        let t = token_logprob(&row, 0, 3, 5);
        let ids: Vec<u32> = t.top.iter().map(|a| a.id).collect();
        assert_eq!(ids, [3, 4, 0], "ties: lower id first");
        assert!(t.top[0].logprob >= t.top[1].logprob && t.top[1].logprob > t.top[2].logprob);
        assert!(t.top[0].logprob < -5.0, "id 5 holds most of the mass");
        // More alternatives than ids: all of them (the NaN is skipped).
        assert_eq!(token_logprob(&row, 0, 20, 5).top.len(), 4);
    }

    #[test]
    fn the_number_of_alternatives_is_bounded() {
        assert!(check_top(MAX_TOP_LOGPROBS).is_ok());
        assert!(check_top(MAX_TOP_LOGPROBS + 1).is_err());
    }
}
