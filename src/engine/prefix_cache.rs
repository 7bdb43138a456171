//! The prefix cache: the KV cache of recent prompts and of the answers generated after
//! them, kept in host memory within a byte budget (least recently used first out), so a
//! prompt that starts like an earlier one (the same system prompt, the same retrieved
//! context, the next turn of a chat whose earlier turns are the previous prompt and answer)
//! prefills only what differs.
//!
//! A prompt goes in after its prefill ([`super::Engine::prefill`]); when its generation
//! ends, the prompt and the answer ids fed back replace it
//! ([`super::batch::DecodeSlot::finish`]). An entry is token ids and their KV tensors (`[1, kv_heads, positions, head_dim]`
//! per layer, key then value). A new prompt reuses the longest common prefix with any entry,
//! up to all but its last token (whose logits the prefill must produce): those positions are
//! copied into the new sequence's cache and the rest is prefilled on top. Positions depend
//! only on the tokens before them, so a float model computes what a cold prefill computes,
//! up to float rounding; a model quantized with `DynamicQuantizeLinear` picks its activation
//! scale per run and gives results that depend on what was cached (as with chunked prefill).
//!
//! Each engine has its own cache, so one handle's entries never serve another model. The
//! budget is separate from the KV budget of running generations (`kv_budget`).

use std::sync::Mutex;

/// Default for [`super::EngineOptions::prefix_cache_bytes`]: 0, off. Keeping a prompt costs a
/// host copy of its KV cache after every prefill (about 1 % of the prefill's time) and the
/// memory of the budget; it pays off where prompts share long prefixes (chat turns, a fixed
/// system prompt or context).
pub const DEFAULT_PREFIX_CACHE_BYTES: usize = 0;

/// Prompts shorter than this are not worth an entry.
pub const MIN_CACHED_TOKENS: usize = 16;

/// One layer tensor's elements, `[1, heads, positions, dim]` row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KvData {
    /// Float32 elements.
    F32(Vec<f32>),
    /// Float16 elements.
    F16(Vec<half::f16>),
}

impl KvData {
    fn bytes(&self) -> usize {
        match self {
            KvData::F32(v) => v.len() * 4,
            KvData::F16(v) => v.len() * 2,
        }
    }

    /// The first `keep` of `positions` positions of every head.
    pub(crate) fn prefix(&self, heads: usize, positions: usize, dim: usize, keep: usize) -> KvData {
        fn take<T: Copy>(
            v: &[T],
            heads: usize,
            positions: usize,
            dim: usize,
            keep: usize,
        ) -> Vec<T> {
            let mut out = Vec::with_capacity(heads * keep * dim);
            for h in 0..heads {
                let start = h * positions * dim;
                out.extend_from_slice(&v[start..start + keep * dim]);
            }
            out
        }
        match self {
            KvData::F32(v) => KvData::F32(take(v, heads, positions, dim, keep)),
            KvData::F16(v) => KvData::F16(take(v, heads, positions, dim, keep)),
        }
    }
}

/// A cached prompt.
struct Entry {
    tokens: Vec<u32>,
    kv: Vec<KvData>,
    bytes: usize,
    last_used: u64,
}

struct State {
    entries: Vec<Entry>,
    used: usize,
    clock: u64,
}

/// The prefix cache of one engine.
pub(crate) struct PrefixCache {
    budget: usize,
    state: Mutex<State>,
}

/// What a lookup found: the reused positions and their KV (already cut to that length).
pub(crate) struct Hit {
    /// Positions reused.
    pub(crate) positions: usize,
    /// `[1, heads, positions, dim]` per layer tensor, key then value.
    pub(crate) kv: Vec<KvData>,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixCache {
    /// A cache of at most `budget` bytes (0: off).
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Mutex::new(State {
                entries: Vec::new(),
                used: 0,
                clock: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the cache keeps anything.
    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Bytes held now and the entries' count.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.used, state.entries.len())
    }

    /// The longest cached prefix of `prompt`, at most `prompt.len() - 1` positions and at
    /// least [`MIN_CACHED_TOKENS`], copied out (`heads`/`dim` describe the tensors).
    pub(crate) fn lookup(&self, prompt: &[u32], heads: usize, dim: usize) -> Option<Hit> {
        if !self.enabled() || prompt.len() <= MIN_CACHED_TOKENS {
            return None;
        }
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        let (best, len) = state
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt).min(prompt.len() - 1)))
            .max_by_key(|&(_, len)| len)?;
        if len < MIN_CACHED_TOKENS {
            return None;
        }
        let entry = &mut state.entries[best];
        entry.last_used = clock;
        let positions = entry.tokens.len();
        let kv = entry
            .kv
            .iter()
            .map(|t| t.prefix(heads, positions, dim, len))
            .collect();
        Some(Hit { positions: len, kv })
    }

    /// Keeps `tokens` with their KV (`[1, heads, tokens.len(), dim]` per layer), evicting
    /// the least recently used entries to fit; an entry this prompt extends is replaced, and
    /// a prompt an entry already covers only refreshes it. Returns whether it was stored.
    pub(crate) fn insert(&self, tokens: &[u32], kv: impl FnOnce() -> Option<Vec<KvData>>) -> bool {
        if !self.enabled() || tokens.len() < MIN_CACHED_TOKENS {
            return false;
        }
        let mut state = self.lock();
        state.clock += 1;
        let clock = state.clock;
        if let Some(e) = state
            .entries
            .iter_mut()
            .find(|e| e.tokens.starts_with(tokens))
        {
            e.last_used = clock;
            return false;
        }
        let Some(kv) = kv() else {
            return false;
        };
        let bytes = kv.iter().map(KvData::bytes).sum::<usize>() + tokens.len() * 4;
        if bytes > self.budget {
            return false;
        }
        // Entries this prompt extends are superseded by it.
        let mut freed = 0;
        state.entries.retain(|e| {
            let superseded = tokens.starts_with(&e.tokens);
            if superseded {
                freed += e.bytes;
            }
            !superseded
        });
        state.used -= freed;
        while state.used + bytes > self.budget {
            let Some(oldest) = (0..state.entries.len()).min_by_key(|&i| state.entries[i].last_used)
            else {
                break;
            };
            let e = state.entries.swap_remove(oldest);
            state.used -= e.bytes;
        }
        state.used += bytes;
        state.entries.push(Entry {
            tokens: tokens.to_vec(),
            kv,
            bytes,
            last_used: clock,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One layer, key and value, 1 head, dim 1: element = position (key) or -position.
    fn kv(len: usize) -> Vec<KvData> {
        vec![
            KvData::F32((0..len).map(|p| p as f32).collect()),
            KvData::F32((0..len).map(|p| -(p as f32)).collect()),
        ]
    }

    fn tokens(range: std::ops::Range<u32>) -> Vec<u32> {
        range.collect()
    }

    #[test]
    fn the_longest_prefix_is_reused_but_never_the_last_token() {
        let cache = PrefixCache::new(1 << 20);
        assert!(cache.insert(&tokens(0..40), || Some(kv(40))));
        let mut prompt = tokens(0..30);
        prompt.extend([999, 1000]);
        let hit = cache.lookup(&prompt, 1, 1).unwrap();
        assert_eq!(hit.positions, 30);
        assert_eq!(hit.kv[0], KvData::F32((0..30).map(|p| p as f32).collect()));
        // The same prompt again: all but the last token.
        assert_eq!(cache.lookup(&tokens(0..40), 1, 1).unwrap().positions, 39);
        // Too little in common.
        assert!(cache.lookup(&[5; 40], 1, 1).is_none());
    }

    #[test]
    fn prefix_keeps_the_first_positions_of_every_head() {
        // 2 heads, 3 positions, dim 2: element = head * 100 + position * 10 + d.
        let data: Vec<f32> = (0..2)
            .flat_map(|h| {
                (0..3).flat_map(move |p| (0..2).map(move |d| (h * 100 + p * 10 + d) as f32))
            })
            .collect();
        let cut = KvData::F32(data).prefix(2, 3, 2, 2);
        assert_eq!(
            cut,
            KvData::F32(vec![0., 1., 10., 11., 100., 101., 110., 111.])
        );
    }

    #[test]
    fn least_recently_used_entries_go_first_and_extensions_replace() {
        // Each 20-token entry: 2 × 20 × 4 B of KV + 80 B of ids = 240 B.
        let cache = PrefixCache::new(500);
        assert!(cache.insert(&tokens(0..20), || Some(kv(20))));
        assert!(cache.insert(&tokens(100..120), || Some(kv(20))));
        assert_eq!(cache.usage(), (480, 2));
        // Touch the first: the second is now the oldest.
        assert!(cache.lookup(&tokens(0..20), 1, 1).is_some());
        assert!(cache.insert(&tokens(200..220), || Some(kv(20))));
        assert_eq!(cache.usage().1, 2);
        assert!(cache.lookup(&tokens(100..120), 1, 1).is_none(), "evicted");
        assert!(cache.lookup(&tokens(0..20), 1, 1).is_some(), "kept");
        // A prompt extending the first replaces it (the next turn of a chat).
        assert!(cache.insert(&tokens(0..25), || Some(kv(25))));
        assert_eq!(cache.lookup(&tokens(0..25), 1, 1).unwrap().positions, 24);
        assert!(cache.usage().0 <= 500);
        // A prompt an entry covers stores nothing new (and does not copy its KV).
        assert!(!cache.insert(&tokens(0..22), || panic!("no copy needed")));
    }

    #[test]
    fn off_short_and_oversized_prompts_are_not_kept() {
        let off = PrefixCache::new(0);
        assert!(!off.insert(&tokens(0..40), || Some(kv(40))));
        assert!(off.lookup(&tokens(0..40), 1, 1).is_none());
        let small = PrefixCache::new(100);
        assert!(
            !small.insert(&tokens(0..40), || Some(kv(40))),
            "larger than the budget"
        );
        assert!(!small.insert(&tokens(0..8), || Some(kv(8))), "too short");
        assert_eq!(small.usage(), (0, 0));
    }
}
