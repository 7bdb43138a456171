//! The re-layout plan of one batched step: which cache row each batch row comes from, the
//! padding, and which resident rows are parked. Pure arithmetic over memberships and
//! lengths, unit-tested without a model; [`super::kv_rows`] does the copying it asks for.

use std::collections::HashSet;

use super::state::Caches;

/// How the caches of a batch that is not the resident batch are laid out.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Relayout {
    /// For each batch row (in batch order): (index into the sources, row there).
    pub(super) rows: Vec<(usize, usize)>,
    /// Positions each batch row holds (its kept positions: a re-layout drops holes).
    pub(super) lens: Vec<usize>,
    /// The longest row: every row is right-aligned to it, padding on the left.
    pub(super) width: usize,
    /// Rows of the resident batch (source 0) whose members are active but not stepping
    /// now: (row, member, positions). They are copied out and parked.
    pub(super) park: Vec<(usize, u64, usize)>,
    /// `Some(source)` when the batch is one member whose cache is already a single row of
    /// the right width (a lone generation's first step): that source is used as it is.
    pub(super) reuse: Option<usize>,
}

/// Whether `batch` (the members stepping) is exactly the resident batch, so the step runs on
/// the resident caches in place, rows in the resident order — unless a row holds more holes
/// than `hole_limit` allows for its kept length, which a re-layout then drops.
pub(super) fn runs_in_place<K>(
    batch: &[u64],
    resident: Option<&Caches<K>>,
    hole_limit: impl Fn(usize) -> usize,
) -> bool {
    resident.is_some_and(|r| {
        r.members.len() == batch.len()
            && batch.iter().all(|m| r.members.contains(m))
            && (0..r.members.len()).all(|row| r.holes(row) <= hole_limit(r.kept(row)))
    })
}

/// The layout of `batch` (members in batch order) from `sources`: the old resident batch
/// first when `resident_first`, then parked and joining caches. Fails when a member's cache
/// is in no source.
pub(super) fn plan<K>(
    batch: &[u64],
    sources: &[Caches<K>],
    resident_first: bool,
    active: &HashSet<u64>,
) -> std::result::Result<Relayout, String> {
    let rows = batch
        .iter()
        .map(|&member| {
            sources
                .iter()
                .enumerate()
                .find_map(|(s, c)| c.row_of(member).map(|row| (s, row)))
                .ok_or_else(|| {
                    format!("internal error: the KV cache of generation {member} is missing")
                })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let mut park = Vec::new();
    if let Some(resident) = sources.first().filter(|_| resident_first) {
        for (row, &member) in resident.members.iter().enumerate() {
            if !batch.contains(&member) && active.contains(&member) {
                park.push((row, member, resident.kept(row)));
            }
        }
    }
    let lens: Vec<usize> = rows.iter().map(|&(s, r)| sources[s].kept(r)).collect();
    let width = lens.iter().copied().max().unwrap_or(0);
    let reuse = match rows[..] {
        [(s, 0)]
            if sources[s].members.len() == 1
                && sources[s].width == width
                && sources[s].holes(0) == 0 =>
        {
            Some(s)
        }
        _ => None,
    };
    Ok(Relayout {
        rows,
        lens,
        width,
        park,
        reuse,
    })
}

/// The `attention_mask` of a step over right-aligned rows of `lens` positions (holes where
/// `masks[r]`, if not empty, says 0) in a cache of `width`, row `r` feeding `fed[r]` tokens
/// padded to `new`: `[rows, width + new]`, 0 on each row's left padding, on its holes and on
/// the padding after its new tokens.
pub(crate) fn attention_mask(
    lens: &[usize],
    masks: &[Vec<i64>],
    width: usize,
    fed: &[usize],
    new: usize,
) -> Vec<i64> {
    let total = width + new;
    let mut mask = vec![0i64; lens.len() * total];
    for (row, (&len, &fed)) in lens.iter().zip(fed).enumerate() {
        let line = &mut mask[row * total..(row + 1) * total];
        match masks.get(row) {
            Some(m) if !m.is_empty() => line[width - len..width].copy_from_slice(m),
            _ => line[width - len..width].fill(1),
        }
        line[width..width + fed].fill(1);
    }
    mask
}

/// The `position_ids` of a step, `[rows, new]`: row `r`'s new tokens continue from its kept
/// length `kept[r]` (padding and holes do not count), so a row gets the positions it would
/// get alone.
pub(crate) fn position_ids(kept: &[usize], new: usize) -> Vec<i64> {
    kept.iter()
        .flat_map(|&k| (k..k + new).map(|p| p as i64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(members: &[u64], lens: &[usize], width: usize) -> Caches<()> {
        Caches {
            members: members.to_vec(),
            lens: lens.to_vec(),
            width,
            masks: vec![Vec::new(); members.len()],
            kv: Vec::new(),
        }
    }

    fn active(members: &[u64]) -> HashSet<u64> {
        members.iter().copied().collect()
    }

    #[test]
    fn the_resident_batch_runs_in_place_in_any_arrival_order() {
        let resident = caches(&[3, 1, 2], &[5, 7, 2], 7);
        assert!(runs_in_place(&[1, 2, 3], Some(&resident), |_| 4));
        assert!(
            !runs_in_place(&[1, 2], Some(&resident), |_| 4),
            "a member missing"
        );
        assert!(
            !runs_in_place(&[1, 2, 3, 4], Some(&resident), |_| 4),
            "a member joining"
        );
        assert!(!runs_in_place::<()>(&[1], None, |_| 4));
    }

    #[test]
    fn a_row_with_too_many_holes_is_re_laid_out_without_them() {
        let mut resident = caches(&[3, 1], &[5, 7], 7);
        resident.discard(1, 2).unwrap();
        assert_eq!(resident.masks[1], [1, 1, 1, 1, 1, 0, 0]);
        assert_eq!((resident.holes(1), resident.kept(1)), (2, 5));
        resident.discard(1, 1).unwrap();
        assert_eq!(resident.masks[1], [1, 1, 1, 1, 0, 0, 0]);
        assert!(runs_in_place(&[1, 3], Some(&resident), |_| 3));
        assert!(
            !runs_in_place(&[1, 3], Some(&resident), |_| 2),
            "3 holes > 2"
        );
        assert!(
            !runs_in_place(&[1, 3], Some(&resident), |kept| kept / 2),
            "3 holes > 4 kept / 2"
        );
        assert!(resident.discard(1, 5).is_err(), "only 4 kept");
        assert!(resident.discard(9, 1).is_err(), "no such row");
        assert_eq!(resident.kept(1), 4, "a refused discard changes nothing");
        // The plan sizes rows by what they keep.
        let sources = [resident];
        let plan = plan(&[1], &sources, true, &active(&[1, 3])).unwrap();
        assert_eq!((plan.lens.clone(), plan.width), (vec![4], 4));
        assert_eq!(plan.park, [(0, 3, 5)], "3 is parked with its 5 positions");
        assert_eq!(plan.reuse, None);
    }

    #[test]
    fn a_joining_member_is_padded_to_the_longest_row() {
        // Resident batch [1, 2]; member 3 joins with its 9-token prefill cache.
        let sources = [caches(&[1, 2], &[4, 6], 6), caches(&[3], &[9], 9)];
        let plan = plan(&[2, 3, 1], &sources, true, &active(&[1, 2, 3])).unwrap();
        assert_eq!(plan.rows, [(0, 1), (1, 0), (0, 0)]);
        assert_eq!(plan.lens, [6, 9, 4]);
        assert_eq!(plan.width, 9);
        assert!(plan.park.is_empty());
        assert_eq!(plan.reuse, None);
    }

    #[test]
    fn an_absent_active_member_is_parked_and_a_finished_one_dropped() {
        // Resident [1, 2, 3]: 1 steps, 2 is active but late, 3 has finished.
        let sources = [caches(&[1, 2, 3], &[4, 6, 5], 6)];
        let plan = plan(&[1], &sources, true, &active(&[1, 2])).unwrap();
        assert_eq!(plan.park, [(1, 2, 6)]);
        assert_eq!(
            (plan.rows, plan.lens, plan.width),
            (vec![(0, 0)], vec![4], 4)
        );
        assert_eq!(plan.reuse, None, "row 0 of a 3-row cache is copied out");
    }

    #[test]
    fn a_returning_member_comes_back_from_its_parked_cache() {
        let sources = [caches(&[1], &[8], 8), caches(&[2], &[6], 6)];
        let plan = plan(&[1, 2], &sources, true, &active(&[1, 2])).unwrap();
        assert_eq!(plan.rows, [(0, 0), (1, 0)]);
        assert_eq!(plan.width, 8);
        // Without a resident batch nothing is parked, whatever source 0 is.
        let plan = super::plan(&[2], &sources, false, &active(&[1, 2])).unwrap();
        assert!(plan.park.is_empty());
    }

    #[test]
    fn a_lone_first_step_uses_its_prefill_cache_as_it_is() {
        let sources = [caches(&[5], &[12], 12)];
        assert_eq!(
            plan(&[5], &sources, false, &active(&[5])).unwrap().reuse,
            Some(0)
        );
        // A single row narrower than its tensor (left padding from an earlier batch) is
        // re-laid out to its own width.
        let sources = [caches(&[5], &[10], 12)];
        assert_eq!(
            plan(&[5], &sources, false, &active(&[5])).unwrap().reuse,
            None
        );
    }

    #[test]
    fn a_member_without_a_cache_is_an_error() {
        let sources = [caches(&[1], &[3], 3)];
        let message = plan(&[1, 4], &sources, false, &active(&[1, 4])).unwrap_err();
        assert!(message.contains("generation 4"), "{message}");
    }

    #[test]
    fn padding_is_masked_and_positions_ignore_it() {
        let none = vec![Vec::new(); 3];
        assert_eq!(
            attention_mask(&[2, 4, 1], &none, 4, &[1, 1, 1], 1),
            [0, 0, 1, 1, 1, /**/ 1, 1, 1, 1, 1, /**/ 0, 0, 0, 1, 1]
        );
        assert_eq!(position_ids(&[2, 4, 1], 1), [2, 4, 1]);
        assert_eq!(attention_mask(&[3], &none, 3, &[1], 1), [1, 1, 1, 1]);
    }

    #[test]
    fn holes_and_the_padding_after_short_drafts_are_masked() {
        // Row 0: 3 positions, the middle one a hole, feeds 3 tokens; row 1: 4 positions,
        // feeds 1 token padded to 3.
        let masks = vec![vec![1, 0, 1], Vec::new()];
        assert_eq!(
            attention_mask(&[3, 4], &masks, 4, &[3, 1], 3),
            [0, 1, 0, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 0, 0]
        );
        // Kept lengths 2 and 4: positions continue from there.
        assert_eq!(position_ids(&[2, 4], 3), [2, 3, 4, 4, 5, 6]);
    }
}
