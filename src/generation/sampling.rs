//! Choosing the next token from logits: greedy, or temperature / top-k / top-p / min-p
//! sampling, with HF-style repetition penalty. A seeded RNG makes sampling reproducible.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::GenerateParams;

/// Picks tokens for one sequence.
pub struct Sampler {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    /// Ids at or above this are never chosen (model vocab wider than the tokenizer's).
    valid_ids: usize,
    rng: SmallRng,
    candidates: Vec<(f32, u32)>,
    seen: Vec<bool>,
}

impl Sampler {
    /// A sampler for `params`, choosing only ids below `valid_ids`.
    pub fn new(params: &GenerateParams, valid_ids: usize) -> Self {
        Self {
            temperature: params.temperature,
            top_k: params.top_k,
            top_p: params.top_p,
            min_p: params.min_p,
            repetition_penalty: params.repetition_penalty,
            valid_ids,
            rng: SmallRng::seed_from_u64(params.seed),
            candidates: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// True when the choice is the arg-max (no randomness involved).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Applies the repetition penalty for every distinct id in `history` (prompt and
    /// generated ids): positive logits are divided by the penalty, negative ones multiplied.
    fn apply_repetition_penalty(&mut self, logits: &mut [f32], history: &[u32]) {
        if self.repetition_penalty == 1.0 {
            return;
        }
        self.seen.clear();
        self.seen.resize(logits.len(), false);
        for &id in history {
            let i = id as usize;
            if i < logits.len() && !self.seen[i] {
                self.seen[i] = true;
                let l = &mut logits[i];
                *l = if *l > 0.0 {
                    *l / self.repetition_penalty
                } else {
                    *l * self.repetition_penalty
                };
            }
        }
    }

    /// Chooses the next id from `logits` (edited in place) given the ids so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let valid = self.valid_ids.min(logits.len());
        let logits = &mut logits[..valid];
        self.apply_repetition_penalty(logits, history);
        if self.is_greedy() {
            return argmax(logits);
        }
        // Candidates sorted by logit, descending; only the top-k are fully sorted.
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (l, i as u32)),
        );
        let by_logit_desc =
            |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if self.top_k > 0 && self.top_k < self.candidates.len() {
            self.candidates
                .select_nth_unstable_by(self.top_k - 1, by_logit_desc);
            self.candidates.truncate(self.top_k);
        }
        self.candidates.sort_unstable_by(by_logit_desc);
        let Some(&(max_logit, best)) = self.candidates.first() else {
            return 0;
        };
        // Softmax over the candidates at the given temperature.
        let mut total = 0.0f64;
        for c in self.candidates.iter_mut() {
            let p = (((c.0 - max_logit) / self.temperature) as f64).exp();
            c.0 = p as f32;
            total += p;
        }
        if !(total.is_finite() && total > 0.0) {
            return best;
        }
        let mut keep = self.candidates.len();
        if self.min_p > 0.0 {
            // The first candidate has the highest probability.
            let threshold = self.candidates[0].0 as f64 / total * self.min_p as f64;
            keep = self
                .candidates
                .iter()
                .take_while(|c| c.0 as f64 / total >= threshold)
                .count()
                .max(1);
        }
        if self.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut n = 0;
            for c in &self.candidates[..keep] {
                cumulative += c.0 as f64 / total;
                n += 1;
                if cumulative >= self.top_p as f64 {
                    break;
                }
            }
            keep = n.max(1);
        }
        let kept = &self.candidates[..keep];
        let kept_total: f64 = kept.iter().map(|c| c.0 as f64).sum();
        let mut r = self.rng.random::<f64>() * kept_total;
        for c in kept {
            r -= c.0 as f64;
            if r <= 0.0 {
                return c.1;
            }
        }
        kept[kept.len() - 1].1
    }
}

/// Index of the largest logit (the first one on ties; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best_value = v;
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GenerateParams {
        GenerateParams::default()
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(&params(), 5);
        assert_eq!(s.sample(&mut [0.1, 3.0, 3.0, f32::NAN, -1.0], &[]), 1);
    }

    #[test]
    fn ids_beyond_the_tokenizer_are_never_chosen() {
        let mut s = Sampler::new(&params(), 2);
        assert_eq!(s.sample(&mut [0.0, 1.0, 9.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_follows_hf() {
        let mut p = params();
        p.repetition_penalty = 2.0;
        let mut s = Sampler::new(&p, 3);
        let mut logits = [4.0, 3.0, -1.0];
        // id 0: 4 / 2 = 2 < 3, so id 1 wins; id 2 (negative) gets more negative.
        assert_eq!(s.sample(&mut logits, &[0, 0, 2]), 1);
        assert_eq!(logits, [2.0, 3.0, -2.0]);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let mut p = params();
        p.temperature = 1.0;
        p.top_k = 3;
        p.seed = 42;
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        let run = || {
            let mut s = Sampler::new(&p, 50);
            (0..200)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        // The 3 largest logits (6.0) are at ids 6, 13, 20.
        assert!(a.iter().all(|id| [6, 13, 20].contains(id)), "{a:?}");
        assert!([6, 13, 20].iter().all(|id| a.contains(id)));
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let mut p = params();
        p.temperature = 1.0;
        p.top_p = 0.5;
        let mut s = Sampler::new(&p, 3);
        // probabilities ≈ [0.84, 0.11, 0.04]: top-p 0.5 keeps only id 0.
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [3.0, 1.0, 0.0], &[]), 0);
        }
        let mut p = params();
        p.temperature = 1.0;
        p.min_p = 0.2;
        let mut s = Sampler::new(&p, 3);
        // min-p 0.2 × 0.84 = 0.17 keeps only id 0.
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [3.0, 1.0, 0.0], &[]), 0);
        }
    }
}
