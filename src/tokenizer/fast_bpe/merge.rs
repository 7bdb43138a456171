//! The rank merge: tiktoken's lowest-rank-first byte-pair merging of one piece.

use super::Ranks;
use crate::tokenizer::Encoding;

/// The rank (id) of `bytes`, or `u32::MAX` when it is not in the vocabulary.
#[inline]
pub(super) fn rank(ranks: &Ranks, bytes: &[u8]) -> u32 {
    ranks.get(bytes).copied().unwrap_or(u32::MAX)
}

/// tiktoken's byte-pair merge: repeatedly join the adjacent pair whose concatenation
/// has the lowest rank (leftmost on ties) until no joined pair is in the vocabulary.
pub(super) fn merge_piece(
    ranks: &Ranks,
    piece: &[u8],
    base: usize,
    text: &str,
    out: &mut Encoding,
    with_offsets: bool,
    parts: &mut Vec<(usize, u32)>,
) {
    parts.clear();
    // parts[k] = (start of part k, rank of joining part k with part k + 1)
    for k in 0..piece.len() - 1 {
        parts.push((k, rank(ranks, &piece[k..k + 2])));
    }
    parts.push((piece.len() - 1, u32::MAX));
    parts.push((piece.len(), u32::MAX));
    loop {
        let (mut best, mut best_rank) = (usize::MAX, u32::MAX);
        for (k, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < best_rank {
                best_rank = rank;
                best = k;
            }
        }
        if best_rank == u32::MAX {
            break;
        }
        let joined_rank = |parts: &[(usize, u32)], k: usize| -> u32 {
            if k + 3 < parts.len() {
                rank(ranks, &piece[parts[k].0..parts[k + 3].0])
            } else {
                u32::MAX
            }
        };
        if best > 0 {
            parts[best - 1].1 = joined_rank(parts, best - 1);
        }
        parts[best].1 = joined_rank(parts, best);
        parts.remove(best + 1);
    }
    for w in parts.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        // Every part is a vocabulary entry: single bytes always are, and joins only
        // happen when the joined bytes are.
        out.ids.push(rank(ranks, &piece[a..b]));
        if with_offsets {
            // Like `tokenizers`, a token holding part of a character spans the whole character.
            let mut s = base + a;
            while !text.is_char_boundary(s) {
                s -= 1;
            }
            let mut e = base + b;
            while !text.is_char_boundary(e) {
                e += 1;
            }
            out.offsets.push((s, e));
        }
    }
}
