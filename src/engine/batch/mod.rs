//! Continuous batching of decode steps: the generations running on one engine submit their
//! next token here, and one `session.run` serves all of them.
//!
//! There is no scheduler thread. A generation that submits a step while no batch is being
//! run becomes the *leader*: it waits (at most [`GATHER_WAIT`]) until every generation in
//! its decode phase has submitted, takes up to `max_batch` steps in arrival order and runs
//! them as one left-padded batch: each row's KV cache right-aligned to the longest,
//! padding masked out through `attention_mask`, each row with its own `position_ids`.
//! Generations join after their (solo) prefill and leave when they finish, between steps.
//!
//! While in the batch, a generation's KV cache belongs to the batcher. The caches of the
//! last batch stay *resident* in the batched layout the model returned (`present` of one
//! step is `past` of the next, with no copy) as long as the same generations keep stepping
//! together; when the membership changes, the rows are re-laid out once (joining caches
//! copied in, departed rows dropped, absent ones parked on their own until they return).
//!
//! Float models give each row the logits it would get alone up to float rounding, so greedy
//! output matches a solo run; models quantized with `DynamicQuantizeLinear` compute one
//! activation scale per tensor, i.e. per batch, and their results depend on the batch mates.
//!
//! * [`state`] — the scheduling state (join, leave, gather, take a batch, publish results);
//! * [`plan`] — which cache rows a batch runs on, the padding, what is parked;
//! * [`kv_rows`] — copying cache rows into a new layout;
//! * this module — the threads' side: submitting a step, leading a batch, running it.

mod kv_rows;
pub(crate) mod plan;
mod state;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::value::DynValue;

use self::kv_rows::{relayout, row_to_host};
use self::state::{Caches, Outcome, Pending, State, StepResult};
use super::{kv_hole_limit, Engine, Sequence};
use crate::error::{Error, Result};

/// Longest a leader waits for the other running generations to submit their step before
/// it runs the batch without them (a slow text callback must not stall everyone).
pub const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Default for [`crate::LoadOptions::max_decode_batch`].
pub const DEFAULT_MAX_DECODE_BATCH: usize = 8;

/// Most positions a batched run of several rows feeds when drafts are verified in it: every
/// row runs `max(1, this / rows)` positions at most (its token and the start of its draft;
/// rows with shorter drafts are padded to the longest). One row alone is not cut. On a CPU
/// a one-row run over a few positions costs about what a one-token step does (memory-bound),
/// but a run over several rows × a long draft is compute-bound, and padded or rejected
/// positions slow every row; chosen by measurement (BENCHMARKS.md).
pub const VERIFY_POSITIONS_PER_BATCH: usize = 16;

/// The positions each row of a batched run of `rows` rows may feed
/// ([`VERIFY_POSITIONS_PER_BATCH`]); `usize::MAX` for one row.
pub(crate) fn verify_width(rows: usize) -> usize {
    if rows <= 1 {
        usize::MAX
    } else {
        (VERIFY_POSITIONS_PER_BATCH / rows).max(1)
    }
}

/// The decode-step combiner of one engine.
pub(crate) struct Batcher {
    max_batch: usize,
    next_member: AtomicU64,
    state: Mutex<State<DynValue>>,
    changed: Condvar,
}

impl Batcher {
    /// A batcher that runs at most `max_batch` steps together (at least 1).
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            max_batch: max_batch.max(1),
            next_member: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// The most steps one batch runs.
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn lock(&self) -> MutexGuard<'_, State<DynValue>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A generation's membership in its engine's batch, from the end of its prefill to its
/// end. Dropping it leaves the batch (and frees the cache the batcher holds for it).
pub struct DecodeSlot<'e> {
    engine: &'e Engine,
    /// `None` when the engine cannot batch: steps then run alone.
    member: Option<u64>,
    joined: bool,
    /// Positions at the end of the batcher's row of this generation to turn into holes
    /// with the next step (see [`DecodeSlot::discard`]).
    discard: usize,
}

impl<'e> DecodeSlot<'e> {
    pub(super) fn new(engine: &'e Engine) -> Self {
        engine
            .decoding
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let member = engine.batching_supported().then(|| {
            let batcher = &engine.batcher;
            let member = batcher.next_member.fetch_add(1, Ordering::Relaxed);
            batcher.lock().join(member);
            member
        });
        Self {
            engine,
            member,
            joined: false,
            discard: 0,
        }
    }

    /// Runs one decode step: `id` appended to `sequence`, batched with the steps other
    /// generations on the same engine submit at the same time; the logits are left in the
    /// sequence. On error the sequence must not be stepped again.
    pub fn step(&mut self, sequence: &mut Sequence, id: u32) -> Result<()> {
        let mut logits = Vec::new();
        self.submit(sequence, vec![id], &mut logits)?;
        sequence.logits = logits;
        Ok(())
    }

    /// Runs `ids` (a token and the draft after it) appended to `sequence` in one step,
    /// batched like [`DecodeSlot::step`] (rows feeding fewer tokens are padded, the padding
    /// masked out). A batch of several rows may run only a prefix of `ids`
    /// ([`VERIFY_POSITIONS_PER_BATCH`]; at least the first). Writes the logits of each
    /// position it ran to `out`, `fed × vocab` floats in order, and returns the vocabulary
    /// width and `fed`. On error the sequence must not be stepped again.
    pub fn step_many(
        &mut self,
        sequence: &mut Sequence,
        ids: &[u32],
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize)> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "a step needs at least one token".into(),
            ));
        }
        self.submit(sequence, ids.to_vec(), out)
    }

    /// Forgets the last `n` positions of `sequence` (the rejected part of a draft): later
    /// steps neither see nor number them (see [`Engine::discard_last`]; in the batch the
    /// row gets holes with the next step). On error the sequence must not be used again.
    pub fn discard(&mut self, sequence: &mut Sequence, n: usize) -> Result<()> {
        if !self.joined {
            return self.engine.discard_last(sequence, n);
        }
        if n > sequence.past_len {
            return Err(Error::Internal(format!(
                "cannot discard {n} of {} positions",
                sequence.past_len
            )));
        }
        sequence.past_len -= n;
        self.discard += n;
        Ok(())
    }

    /// Whether other generations share this one's batch now (its steps may then run with
    /// them; see [`crate::generation::prompt_lookup`] for what drafting makes of it).
    pub fn shared(&self) -> bool {
        self.member.is_some()
            && self
                .engine
                .decoding
                .load(std::sync::atomic::Ordering::Relaxed)
                > 1
    }

    /// Submits a step of `ids` to the batcher (or runs it alone when the engine cannot
    /// batch) and waits for its logits, `fed × vocab` into `out` (`fed`: the ids the step
    /// ran, a prefix of `ids`); returns the width and `fed`.
    fn submit(
        &mut self,
        sequence: &mut Sequence,
        ids: Vec<u32>,
        out: &mut Vec<f32>,
    ) -> Result<(usize, usize)> {
        let Some(member) = self.member else {
            let vocab = self
                .engine
                .forward_keeping(sequence, &ids, ids.len(), out)?;
            return Ok((vocab, ids.len()));
        };
        if sequence.is_empty() {
            return Err(Error::Internal(
                "a decode step before the prompt's forward pass".into(),
            ));
        }
        let joining = if self.joined {
            None
        } else {
            // While in the batch the sequence counts its kept positions only; the
            // batcher's row keeps the holes.
            self.engine.compact(sequence)?;
            self.joined = true;
            Some(Caches::single(
                member,
                sequence.past_len,
                std::mem::take(&mut sequence.past),
            ))
        };
        let batcher = &self.engine.batcher;
        let mut state = batcher.lock();
        state.submit(Pending {
            member,
            ids,
            discard: std::mem::take(&mut self.discard),
            joining,
        });
        batcher.changed.notify_all();
        loop {
            if let Some(result) = state.take_result(member) {
                drop(state);
                let output = result.map_err(Error::Runtime)?;
                sequence.past_len += output.fed;
                *out = output.logits;
                sequence.run_time += output.run_time;
                if output.batch_size > 1 {
                    sequence.batched_steps += 1;
                }
                return Ok((output.vocab, output.fed));
            }
            if state.leading {
                state = batcher
                    .changed
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.leading = true;
            state = self.gather(state);
            let taken = state.take_batch(batcher.max_batch);
            drop(state);
            let mut leader = Leader {
                batcher,
                members: taken.batch.iter().map(|p| p.member).collect(),
                own: member,
                outcome: None,
            };
            leader.outcome = Some(run(
                self.engine,
                taken.batch,
                taken.resident,
                taken.parked,
                &taken.active,
            ));
            drop(leader);
            state = batcher.lock();
        }
    }

    /// Ends the generation. When the engine keeps a prefix cache, `tokens` (the ids whose KV
    /// `sequence` holds: the prompt and what was generated, up to the last id fed) go into it
    /// with their cache, so a prompt that continues this conversation (the next chat turn)
    /// reuses the answer too. A member's row is copied out under the batcher's lock (one row
    /// of host memory, no model run, holes left out); it is skipped when another
    /// generation's batch holds the resident caches at that moment (a cache miss later,
    /// never a wrong result).
    pub fn finish(self, sequence: &mut Sequence, tokens: &[u32]) {
        let engine = self.engine;
        if !engine.prefix_cache.enabled()
            || !engine.layout().has_kv_cache()
            || tokens.len() != sequence.len()
        {
            return;
        }
        if !self.joined && engine.compact(sequence).is_err() {
            return;
        }
        let kv = || match self.member {
            Some(member) if self.joined => {
                let state = engine.batcher.lock();
                let (caches, row) = state.cache_of(member)?;
                let mask = caches.mask_after_discard(row, self.discard).ok()?;
                if caches.kept(row) - self.discard != tokens.len() {
                    return None;
                }
                row_to_host(engine.layout(), caches, row, &mask, tokens.len()).ok()
            }
            _ => engine.kv_to_host(&sequence.past).ok(),
        };
        engine.prefix_cache.insert(tokens, kv);
    }

    /// Waits until every active generation has submitted (or the batch is full, or
    /// [`GATHER_WAIT`] has passed).
    fn gather<'s>(
        &self,
        mut state: MutexGuard<'s, State<DynValue>>,
    ) -> MutexGuard<'s, State<DynValue>> {
        let batcher = &self.engine.batcher;
        let deadline = Instant::now() + GATHER_WAIT;
        loop {
            let now = Instant::now();
            if state.gathered(batcher.max_batch) || now >= deadline {
                return state;
            }
            state = batcher
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for DecodeSlot<'_> {
    fn drop(&mut self) {
        self.engine
            .decoding
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(member) = self.member {
            let batcher = &self.engine.batcher;
            batcher.lock().leave(member);
            batcher.changed.notify_all();
        }
    }
}

/// Publishes a batch's outcome — or, if the leader unwinds, an error for every member, so
/// no follower waits forever.
struct Leader<'b> {
    batcher: &'b Batcher,
    members: Vec<u64>,
    /// The leader's own member id (no result is kept for it when it unwinds).
    own: u64,
    outcome: Option<Outcome<DynValue>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.batcher
            .lock()
            .publish(&self.members, self.own, self.outcome.take());
        self.batcher.changed.notify_all();
    }
}

/// Runs `batch` (in its order) from the caches it needs: the resident batch, parked caches
/// and the prefill caches of joining members. Keeps the resident layout when the batch is
/// exactly its members; otherwise builds a new layout and parks resident rows of active
/// members that are not in this batch.
fn run(
    engine: &Engine,
    batch: Vec<Pending<DynValue>>,
    resident: Option<Caches<DynValue>>,
    parked: Vec<Caches<DynValue>>,
    active: &HashSet<u64>,
) -> Outcome<DynValue> {
    let mut newly_parked = Vec::new();
    match step_batch(engine, batch, resident, parked, active, &mut newly_parked) {
        Ok((results, resident)) => Outcome {
            results: Ok(results),
            resident: Some(resident),
            parked: newly_parked,
        },
        Err(message) => Outcome {
            results: Err(message),
            resident: None,
            parked: newly_parked,
        },
    }
}

/// The results of a batched step, one per member, with the batch's caches after it.
type StepOutput = (Vec<(u64, StepResult)>, Caches<DynValue>);

/// [`run`]'s work: lays the caches out ([`plan::plan`], [`relayout`]), runs the step, and
/// returns each member's result with the batch's caches after it. Caches of absent members
/// it parks go to `newly_parked` (kept even when a later part of the step fails).
fn step_batch(
    engine: &Engine,
    mut batch: Vec<Pending<DynValue>>,
    mut resident: Option<Caches<DynValue>>,
    mut parked: Vec<Caches<DynValue>>,
    active: &HashSet<u64>,
    newly_parked: &mut Vec<Caches<DynValue>>,
) -> std::result::Result<StepOutput, String> {
    let layout = engine.layout();
    // The rejected drafts of the members' previous steps become holes first.
    for pending in batch.iter_mut().filter(|p| p.discard > 0) {
        let member = pending.member;
        let holder = resident
            .iter_mut()
            .chain(parked.iter_mut())
            .chain(pending.joining.iter_mut())
            .find(|c| c.row_of(member).is_some())
            .ok_or_else(|| {
                format!("internal error: the KV cache of generation {member} is missing")
            })?;
        holder.discard(member, pending.discard)?;
        pending.discard = 0;
    }
    let members: Vec<u64> = batch.iter().map(|p| p.member).collect();
    let caches = if plan::runs_in_place(&members, resident.as_ref(), kv_hole_limit) {
        // Row order: the resident order.
        let resident = resident.expect("runs_in_place checked it");
        batch.sort_by_key(|p| resident.row_of(p.member).unwrap_or(usize::MAX));
        resident
    } else {
        // Sources: the old resident batch first, then parked and joining caches.
        let resident_first = resident.is_some();
        let mut sources: Vec<Caches<DynValue>> = resident.into_iter().collect();
        sources.extend(parked);
        sources.extend(batch.iter_mut().filter_map(|p| p.joining.take()));
        let plan = plan::plan(&members, &sources, resident_first, active)?;
        for &(row, member, len) in &plan.park {
            let kv = relayout(layout, &sources[..1], &[(0, row)], &[len], len)
                .map_err(|e| e.to_string())?;
            newly_parked.push(Caches::single(member, len, kv));
        }
        match plan.reuse {
            Some(s) => sources.swap_remove(s),
            None => Caches {
                kv: relayout(layout, &sources, &plan.rows, &plan.lens, plan.width)
                    .map_err(|e| e.to_string())?,
                masks: vec![Vec::new(); members.len()],
                members,
                lens: plan.lens,
                width: plan.width,
            },
        }
    };
    // Drafts are cut to what a run of this many rows verifies at a profit.
    let positions = verify_width(batch.len());
    let ids: Vec<Vec<u32>> = batch
        .into_iter()
        .map(|mut p| {
            p.ids.truncate(positions);
            p.ids
        })
        .collect();
    let kept: Vec<usize> = (0..caches.members.len()).map(|r| caches.kept(r)).collect();
    let Caches {
        members,
        lens,
        width,
        masks,
        kv,
    } = caches;
    let output = engine
        .run_batch(&ids, &lens, &kept, &masks, width, kv)
        .map_err(|e| e.to_string())?;
    let rows = ids.len();
    let new = output.new_positions;
    let results = members
        .iter()
        .copied()
        .zip(output.logits)
        .zip(&ids)
        .map(|((member, logits), fed)| {
            (
                member,
                StepResult {
                    fed: fed.len(),
                    logits,
                    vocab: output.vocab,
                    run_time: output.run_time,
                    batch_size: rows,
                },
            )
        })
        .collect();
    // Each row grew by `new` positions: its own tokens, then padding (holes).
    let masks = masks
        .into_iter()
        .zip(&lens)
        .zip(&ids)
        .map(|((mut mask, &len), fed)| {
            if mask.is_empty() && fed.len() == new {
                return mask;
            }
            mask.resize(len, 1);
            mask.resize(len + fed.len(), 1);
            mask.resize(len + new, 0);
            mask
        })
        .collect();
    let resident = Caches {
        members,
        lens: lens.iter().map(|l| l + new).collect(),
        width: width + new,
        masks,
        kv: output.present,
    };
    Ok((results, resident))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_several_rows_verifies_a_bounded_number_of_positions() {
        assert_eq!(verify_width(1), usize::MAX, "one row is not cut");
        assert_eq!(verify_width(2), VERIFY_POSITIONS_PER_BATCH / 2);
        for rows in 2..=64 {
            let width = verify_width(rows);
            assert!(width >= 1, "every row runs its token");
            assert!(
                width == 1 || rows * width <= VERIFY_POSITIONS_PER_BATCH,
                "{rows} rows × {width}"
            );
        }
    }
}
