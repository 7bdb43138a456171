//! The batcher's scheduling state: who is decoding, which steps are queued, whose results
//! are ready, and where every member's KV cache is (in the resident batch, parked alone, or
//! handed over with a first step). No ONNX here: the caches' tensors are a type parameter,
//! so the join/leave/park decisions are unit-tested without a model.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A KV cache held by the batcher: `kv` is `[rows, heads, width, dim]` per layer (key,
/// value), row `r` holding `lens[r]` positions right-aligned, some of which may be holes
/// (`masks`).
pub(super) struct Caches<K> {
    /// The member whose cache each row is.
    pub(super) members: Vec<u64>,
    /// Positions held by each row, holes included (the rest of the row, on the left, is
    /// padding).
    pub(super) lens: Vec<usize>,
    /// Positions of every row, padding included.
    pub(super) width: usize,
    /// Per row: empty when all its `lens[r]` positions count, else one entry per position,
    /// 1 for a position of the sequence and 0 for a hole (a rejected draft token, or the
    /// padding of a row that fed fewer tokens than its batch mates). Holes are masked out
    /// and take no position id; a re-layout drops them.
    pub(super) masks: Vec<Vec<i64>>,
    /// Key and value tensors, two per layer.
    pub(super) kv: Vec<K>,
}

impl<K> Caches<K> {
    /// A single-row cache of `len` positions without holes.
    pub(super) fn single(member: u64, len: usize, kv: Vec<K>) -> Self {
        Self {
            members: vec![member],
            lens: vec![len],
            width: len,
            masks: vec![Vec::new()],
            kv,
        }
    }

    /// The row of `member`, if this cache holds it.
    pub(super) fn row_of(&self, member: u64) -> Option<usize> {
        self.members.iter().position(|&m| m == member)
    }

    /// Holes in row `row`.
    pub(super) fn holes(&self, row: usize) -> usize {
        self.masks[row].iter().filter(|&&m| m == 0).count()
    }

    /// Positions of row `row` that are part of its sequence (holes not counted).
    pub(super) fn kept(&self, row: usize) -> usize {
        self.lens[row] - self.holes(row)
    }

    /// Turns the last `n` kept positions of `member`'s row into holes (its rejected draft
    /// tokens). Fails, changing nothing, when the row does not hold that many.
    pub(super) fn discard(&mut self, member: u64, n: usize) -> std::result::Result<(), String> {
        let row = self
            .row_of(member)
            .ok_or_else(|| format!("internal error: no KV cache row for generation {member}"))?;
        self.masks[row] = self.mask_after_discard(row, n)?;
        Ok(())
    }

    /// Row `row`'s mask (one entry per position, or empty: no holes) with its last `n` kept
    /// positions turned into holes.
    pub(super) fn mask_after_discard(
        &self,
        row: usize,
        n: usize,
    ) -> std::result::Result<Vec<i64>, String> {
        let mut mask = self.masks[row].clone();
        if n == 0 {
            return Ok(mask);
        }
        if n > self.kept(row) {
            return Err(format!(
                "internal error: cannot discard {n} of {} positions",
                self.kept(row)
            ));
        }
        if mask.is_empty() {
            mask = vec![1; self.lens[row]];
        }
        let mut left = n;
        for m in mask.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if *m == 1 {
                *m = 0;
                left -= 1;
            }
        }
        Ok(mask)
    }
}

/// One submitted step.
pub(super) struct Pending<K> {
    /// The generation that submitted it.
    pub(super) member: u64,
    /// The tokens appended by the step: one, or a token and the draft after it.
    pub(super) ids: Vec<u32>,
    /// Positions at the end of the member's row to turn into holes first (the rejected
    /// part of its previous step's draft).
    pub(super) discard: usize,
    /// The generation's prefill cache, handed over with its first step.
    pub(super) joining: Option<Caches<K>>,
}

/// What a step gives back to its generation.
pub(super) struct StepResult {
    /// How many of the submitted ids the step ran: all of them, or a prefix when the batch
    /// cut the draft ([`super::verify_width`]).
    pub(super) fed: usize,
    /// The logits of each position the step fed, float32, `fed × vocab`.
    pub(super) logits: Vec<f32>,
    /// The vocabulary width of `logits`.
    pub(super) vocab: usize,
    /// Time in `session.run` of the batch the step ran in.
    pub(super) run_time: Duration,
    /// Rows of that batch.
    pub(super) batch_size: usize,
}

/// What a leader's run produced.
pub(super) struct Outcome<K> {
    /// Each member's result, or the message of a failed step.
    pub(super) results: std::result::Result<Vec<(u64, StepResult)>, String>,
    /// The batch's caches after the step (`None` after a failure).
    pub(super) resident: Option<Caches<K>>,
    /// Caches of absent members taken out of the old resident batch.
    pub(super) parked: Vec<Caches<K>>,
}

/// What a leader takes out of the state to run one batch.
pub(super) struct Taken<K> {
    /// The steps to run, in arrival order.
    pub(super) batch: Vec<Pending<K>>,
    /// The last batch's caches.
    pub(super) resident: Option<Caches<K>>,
    /// The parked caches of members in `batch`.
    pub(super) parked: Vec<Caches<K>>,
    /// The generations decoding when the batch was taken.
    pub(super) active: HashSet<u64>,
}

/// The state of one batcher (behind its mutex).
pub(super) struct State<K> {
    /// Generations in their decode phase.
    active: HashSet<u64>,
    /// Submitted steps, oldest first.
    queue: Vec<Pending<K>>,
    /// Results waiting for their submitter (`Err`: the message of a failed step).
    done: HashMap<u64, std::result::Result<StepResult, String>>,
    /// The caches of the last batch, in its layout (taken by the leader while it runs).
    resident: Option<Caches<K>>,
    /// Caches of members that missed the last batch, one row each.
    parked: HashMap<u64, Caches<K>>,
    /// A batch is being gathered or run.
    pub(super) leading: bool,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        Self {
            active: HashSet::new(),
            queue: Vec::new(),
            done: HashMap::new(),
            resident: None,
            parked: HashMap::new(),
            leading: false,
        }
    }
}

impl<K> State<K> {
    /// A generation enters its decode phase.
    pub(super) fn join(&mut self, member: u64) {
        self.active.insert(member);
    }

    /// A generation ends: it is no longer waited for, and its parked cache is freed. A row
    /// it has in the resident batch is dropped at the next re-layout, or now when no member
    /// of that batch is still decoding.
    pub(super) fn leave(&mut self, member: u64) {
        self.active.remove(&member);
        self.parked.remove(&member);
        // The last batch's caches go when none of its members is left to step again (the
        // leader holds them while it runs: then they come back at the next re-layout).
        if self
            .resident
            .as_ref()
            .is_some_and(|r| r.members.iter().all(|m| !self.active.contains(m)))
        {
            self.resident = None;
        }
    }

    /// Where `member`'s cache is between steps: its parked cache, or its row of the
    /// resident batch (`None` while a leader holds that batch, or once it is gone).
    pub(super) fn cache_of(&self, member: u64) -> Option<(&Caches<K>, usize)> {
        if let Some(parked) = self.parked.get(&member) {
            return Some((parked, 0));
        }
        let resident = self.resident.as_ref()?;
        Some((resident, resident.row_of(member)?))
    }

    /// Queues a step.
    pub(super) fn submit(&mut self, step: Pending<K>) {
        self.queue.push(step);
    }

    /// The result of `member`'s step, once a leader has published it.
    pub(super) fn take_result(
        &mut self,
        member: u64,
    ) -> Option<std::result::Result<StepResult, String>> {
        self.done.remove(&member)
    }

    /// Whether a gathering leader has what it waits for: a step from every active
    /// generation, or a full batch.
    pub(super) fn gathered(&self, max_batch: usize) -> bool {
        self.queue.len() >= self.active.len().min(max_batch)
    }

    /// Takes the oldest `max_batch` steps with the caches they need: the resident batch
    /// (whole: the run re-lays it out if its membership changed) and the parked caches of
    /// the members stepping.
    pub(super) fn take_batch(&mut self, max_batch: usize) -> Taken<K> {
        let take = self.queue.len().min(max_batch);
        let batch: Vec<Pending<K>> = self.queue.drain(..take).collect();
        let parked = batch
            .iter()
            .filter_map(|p| self.parked.remove(&p.member))
            .collect();
        Taken {
            batch,
            resident: self.resident.take(),
            parked,
            active: self.active.clone(),
        }
    }

    /// Publishes a batch's outcome for `members` (the steps the leader took). `None` means
    /// the leader unwound: every member but the leader itself (`own`) gets an error, so no
    /// follower waits forever. Parked caches of members that left meanwhile are dropped.
    /// Ends the leadership.
    pub(super) fn publish(&mut self, members: &[u64], own: u64, outcome: Option<Outcome<K>>) {
        let (results, resident, parked) = match outcome {
            Some(o) => (Some(o.results), o.resident, o.parked),
            None => (None, None, Vec::new()),
        };
        for caches in parked {
            if let Some(&member) = caches.members.first() {
                if self.active.contains(&member) {
                    self.parked.insert(member, caches);
                }
            }
        }
        self.resident = resident;
        let complete = |outputs: &Vec<(u64, StepResult)>| {
            outputs.len() == members.len()
                && members.iter().all(|m| outputs.iter().any(|(o, _)| o == m))
        };
        match results {
            Some(Ok(outputs)) if complete(&outputs) => {
                for (member, output) in outputs {
                    self.done.insert(member, Ok(output));
                }
            }
            other => {
                let unwinding = other.is_none();
                let message = match other {
                    Some(Err(message)) => message,
                    Some(Ok(_)) => "a batched step returned the wrong number of rows".into(),
                    None => {
                        "the batched decode step failed (a panic in the generation that ran it)"
                            .into()
                    }
                };
                for &member in members {
                    if !(unwinding && member == own) {
                        self.done.insert(member, Err(message.clone()));
                    }
                }
            }
        }
        self.leading = false;
    }

    /// Members with a parked cache (for tests and checks).
    #[cfg(test)]
    fn parked_members(&self) -> Vec<u64> {
        let mut members: Vec<u64> = self.parked.keys().copied().collect();
        members.sort_unstable();
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache whose "tensors" name their member, so tests see which cache went where.
    fn cache(member: u64, len: usize) -> Caches<String> {
        Caches::single(member, len, vec![format!("kv{member}")])
    }

    fn step(member: u64, joining: Option<Caches<String>>) -> Pending<String> {
        Pending {
            member,
            ids: vec![member as u32 + 100],
            discard: 0,
            joining,
        }
    }

    fn ok(members: &[u64]) -> std::result::Result<Vec<(u64, StepResult)>, String> {
        Ok(members
            .iter()
            .map(|&m| {
                (
                    m,
                    StepResult {
                        fed: 1,
                        logits: vec![m as f32],
                        vocab: 1,
                        run_time: Duration::ZERO,
                        batch_size: members.len(),
                    },
                )
            })
            .collect())
    }

    #[test]
    fn a_leader_waits_for_every_active_generation_up_to_a_full_batch() {
        let mut state = State::<String>::default();
        for m in 0..3 {
            state.join(m);
        }
        assert!(!state.gathered(8));
        state.submit(step(0, None));
        state.submit(step(1, None));
        assert!(!state.gathered(8), "one of three still to submit");
        assert!(
            state.gathered(2),
            "a full batch of 2 does not wait for the third"
        );
        state.leave(2);
        assert!(
            state.gathered(8),
            "a generation that left is not waited for"
        );
    }

    #[test]
    fn take_batch_takes_the_oldest_steps_with_their_parked_caches() {
        let mut state = State::<String>::default();
        for m in 0..4 {
            state.join(m);
        }
        state.publish(
            &[],
            0,
            Some(Outcome {
                results: Ok(Vec::new()),
                resident: Some(cache(9, 5)),
                parked: vec![cache(1, 3), cache(3, 4)],
            }),
        );
        assert_eq!(state.parked_members(), [1, 3]);
        for m in [3, 0, 1, 2] {
            state.submit(step(m, None));
        }
        let taken = state.take_batch(2);
        let order: Vec<u64> = taken.batch.iter().map(|p| p.member).collect();
        assert_eq!(order, [3, 0], "arrival order, at most max_batch");
        assert_eq!(taken.parked.len(), 1);
        assert_eq!(taken.parked[0].members, [3]);
        assert_eq!(taken.resident.map(|r| r.members), Some(vec![9]));
        assert_eq!(state.parked_members(), [1], "member 1 stays parked");
        let rest = state.take_batch(8);
        assert_eq!(rest.batch.len(), 2);
        assert!(rest.resident.is_none(), "the resident batch is taken once");
    }

    #[test]
    fn publish_hands_every_member_its_result_and_keeps_the_new_layout() {
        let mut state = State::<String>::default();
        for m in [4, 7] {
            state.join(m);
        }
        state.leading = true;
        state.publish(
            &[4, 7],
            4,
            Some(Outcome {
                results: ok(&[7, 4]),
                resident: Some(Caches {
                    members: vec![7, 4],
                    lens: vec![3, 6],
                    width: 6,
                    masks: vec![Vec::new(); 2],
                    kv: vec!["batched".into()],
                }),
                parked: Vec::new(),
            }),
        );
        assert!(!state.leading);
        assert_eq!(state.take_result(4).unwrap().unwrap().logits, [4.0]);
        assert_eq!(state.take_result(7).unwrap().unwrap().batch_size, 2);
        assert!(state.take_result(4).is_none(), "a result is taken once");
        let resident = state.take_batch(8).resident.unwrap();
        assert_eq!(
            (resident.members, resident.lens, resident.width),
            (vec![7, 4], vec![3, 6], 6)
        );
    }

    #[test]
    fn a_missing_row_fails_the_whole_batch() {
        let mut state = State::<String>::default();
        state.publish(
            &[1, 2],
            1,
            Some(Outcome {
                results: ok(&[1]),
                resident: None,
                parked: Vec::new(),
            }),
        );
        for m in [1, 2] {
            let message = state.take_result(m).unwrap().err().unwrap();
            assert!(message.contains("wrong number of rows"), "{message}");
        }
    }

    #[test]
    fn a_failed_step_reaches_every_member() {
        let mut state = State::<String>::default();
        state.publish(
            &[1, 2],
            1,
            Some(Outcome {
                results: Err("session.run failed".into()),
                resident: None,
                parked: vec![cache(5, 2)],
            }),
        );
        for m in [1, 2] {
            assert_eq!(
                state.take_result(m).unwrap().err().unwrap(),
                "session.run failed"
            );
        }
        assert!(
            state.parked_members().is_empty(),
            "a cache parked for a member that is not active is dropped"
        );
    }

    #[test]
    fn an_unwinding_leader_fails_its_followers_but_not_itself() {
        let mut state = State::<String>::default();
        state.join(1);
        state.join(2);
        state.leading = true;
        state.publish(&[1, 2], 1, None);
        assert!(
            state.take_result(1).is_none(),
            "the leader's own panic reports itself"
        );
        assert!(state
            .take_result(2)
            .unwrap()
            .err()
            .unwrap()
            .contains("panic"));
        assert!(!state.leading, "the next step can lead");
    }

    #[test]
    fn the_resident_batch_goes_when_its_last_member_leaves() {
        let mut state = State::<String>::default();
        state.join(1);
        state.join(2);
        state.publish(
            &[],
            0,
            Some(Outcome {
                results: Ok(Vec::new()),
                resident: Some(Caches {
                    members: vec![1, 2],
                    lens: vec![3, 3],
                    width: 3,
                    masks: vec![Vec::new(); 2],
                    kv: vec!["batched".into()],
                }),
                parked: Vec::new(),
            }),
        );
        state.leave(1);
        assert!(state.resident.is_some(), "member 2 still steps on it");
        state.leave(2);
        assert!(state.resident.is_none(), "nobody is left to step on it");
    }

    #[test]
    fn leaving_frees_a_parked_cache_and_a_late_park_of_a_leaver_is_dropped() {
        let mut state = State::<String>::default();
        state.join(1);
        state.join(2);
        let parked = |caches| Outcome {
            results: Ok(Vec::new()),
            resident: None,
            parked: caches,
        };
        state.publish(&[], 0, Some(parked(vec![cache(1, 3)])));
        assert_eq!(state.parked_members(), [1]);
        state.leave(1);
        assert!(state.parked_members().is_empty());
        state.leave(2);
        state.publish(&[], 0, Some(parked(vec![cache(2, 3)])));
        assert!(state.parked_members().is_empty());
    }

    #[test]
    fn a_finished_members_cache_is_found_parked_or_in_the_resident_batch() {
        let mut state = State::<String>::default();
        for m in [1, 2, 3] {
            state.join(m);
        }
        state.publish(
            &[],
            0,
            Some(Outcome {
                results: Ok(Vec::new()),
                resident: Some(Caches {
                    members: vec![2, 1],
                    lens: vec![4, 6],
                    width: 6,
                    masks: vec![Vec::new(); 2],
                    kv: vec!["batched".into()],
                }),
                parked: vec![cache(3, 5)],
            }),
        );
        let (caches, row) = state.cache_of(1).unwrap();
        assert_eq!(
            (caches.kv[0].as_str(), row, caches.lens[row]),
            ("batched", 1, 6)
        );
        let (caches, row) = state.cache_of(3).unwrap();
        assert_eq!(
            (caches.kv[0].as_str(), row, caches.lens[row]),
            ("kv3", 0, 5)
        );
        assert!(state.cache_of(9).is_none(), "not a member");
        // While a leader holds the resident batch, its rows are out of reach.
        let _taken = state.take_batch(8);
        assert!(state.cache_of(1).is_none());
        assert!(state.cache_of(3).is_some(), "parked caches stay");
    }
}
