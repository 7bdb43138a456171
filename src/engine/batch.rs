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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::value::{DynValue, PrimitiveTensorElementType, Tensor, TensorElementType};

use super::layout::KvDtype;
use super::{ort_error, Engine, Sequence};
use crate::error::{Error, Result};

/// Longest a leader waits for the other running generations to submit their step before
/// it runs the batch without them (a slow text callback must not stall everyone).
pub const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Default for [`crate::LoadOptions::max_decode_batch`].
pub const DEFAULT_MAX_DECODE_BATCH: usize = 8;

/// A KV cache held by the batcher: `kv` is `[rows, heads, width, dim]` per layer (key, value),
/// row `r` holding `lens[r]` positions right-aligned.
struct Caches {
    members: Vec<u64>,
    lens: Vec<usize>,
    width: usize,
    kv: Vec<DynValue>,
}

/// One submitted step.
struct Pending {
    member: u64,
    id: u32,
    /// The generation's prefill cache, handed over with its first step.
    joining: Option<Caches>,
}

/// What a step gives back to its generation.
struct StepResult {
    logits: Vec<f32>,
    run_time: Duration,
    batch_size: usize,
}

#[derive(Default)]
struct State {
    /// Generations in their decode phase (registered through [`DecodeSlot`]).
    active: HashSet<u64>,
    /// Submitted steps, oldest first.
    queue: Vec<Pending>,
    /// Results waiting for their submitter (`Err`: the message of a failed step).
    done: HashMap<u64, std::result::Result<StepResult, String>>,
    /// The caches of the last batch, in its layout (taken by the leader while it runs).
    resident: Option<Caches>,
    /// Caches of members that missed the last batch, one row each.
    parked: HashMap<u64, Caches>,
    /// A batch is being gathered or run.
    leading: bool,
}

/// The decode-step combiner of one engine.
pub(crate) struct Batcher {
    max_batch: usize,
    next_member: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

impl Batcher {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            max_batch: max_batch.max(1),
            next_member: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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
}

impl<'e> DecodeSlot<'e> {
    pub(super) fn new(engine: &'e Engine) -> Self {
        let member = engine.batching_supported().then(|| {
            let batcher = &engine.batcher;
            let member = batcher.next_member.fetch_add(1, Ordering::Relaxed);
            batcher.lock().active.insert(member);
            member
        });
        Self {
            engine,
            member,
            joined: false,
        }
    }

    /// Runs one decode step: `id` appended to `sequence`, batched with the steps other
    /// generations on the same engine submit at the same time. On error the sequence must
    /// not be stepped again.
    pub fn step(&mut self, sequence: &mut Sequence, id: u32) -> Result<()> {
        let Some(member) = self.member else {
            return self.engine.forward(sequence, &[id]);
        };
        if sequence.past_len == 0 {
            return Err(Error::Internal(
                "a decode step before the prompt's forward pass".into(),
            ));
        }
        let joining = if self.joined {
            None
        } else {
            self.joined = true;
            Some(Caches {
                members: vec![member],
                lens: vec![sequence.past_len],
                width: sequence.past_len,
                kv: std::mem::take(&mut sequence.past),
            })
        };
        let batcher = &self.engine.batcher;
        let mut state = batcher.lock();
        state.queue.push(Pending {
            member,
            id,
            joining,
        });
        batcher.changed.notify_all();
        loop {
            if let Some(result) = state.done.remove(&member) {
                drop(state);
                let output = result.map_err(Error::Runtime)?;
                sequence.past_len += 1;
                sequence.logits = output.logits;
                sequence.run_time += output.run_time;
                if output.batch_size > 1 {
                    sequence.batched_steps += 1;
                }
                return Ok(());
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
            let take = state.queue.len().min(batcher.max_batch);
            let batch: Vec<Pending> = state.queue.drain(..take).collect();
            let resident = state.resident.take();
            let mut parked = Vec::new();
            for p in &batch {
                if let Some(caches) = state.parked.remove(&p.member) {
                    parked.push(caches);
                }
            }
            let active = state.active.clone();
            drop(state);
            let mut leader = Leader {
                batcher,
                members: batch.iter().map(|p| p.member).collect(),
                own: member,
                outcome: None,
            };
            leader.outcome = Some(run(self.engine, batch, resident, parked, &active));
            drop(leader);
            state = batcher.lock();
        }
    }

    /// Waits until every active generation has submitted (or the batch is full, or
    /// [`GATHER_WAIT`] has passed).
    fn gather<'s>(&self, mut state: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
        let batcher = &self.engine.batcher;
        let deadline = Instant::now() + GATHER_WAIT;
        loop {
            let wanted = state.active.len().min(batcher.max_batch);
            let now = Instant::now();
            if state.queue.len() >= wanted || now >= deadline {
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
        if let Some(member) = self.member {
            let batcher = &self.engine.batcher;
            let mut state = batcher.lock();
            state.active.remove(&member);
            state.parked.remove(&member);
            // A row in the resident batch is dropped at the next re-layout.
            drop(state);
            batcher.changed.notify_all();
        }
    }
}

/// What a leader's run produced.
struct Outcome {
    results: std::result::Result<Vec<(u64, StepResult)>, String>,
    /// The batch's caches after the step (`None` after a failure).
    resident: Option<Caches>,
    /// Caches of absent members taken out of the old resident batch.
    parked: Vec<Caches>,
}

/// Publishes a batch's outcome — or, if the leader unwinds, an error for every member, so
/// no follower waits forever.
struct Leader<'b> {
    batcher: &'b Batcher,
    members: Vec<u64>,
    /// The leader's own member id (no result is kept for it when it unwinds).
    own: u64,
    outcome: Option<Outcome>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut state = self.batcher.lock();
        let (results, resident, parked) = match self.outcome.take() {
            Some(o) => (Some(o.results), o.resident, o.parked),
            None => (None, None, Vec::new()),
        };
        for caches in parked {
            if let Some(&member) = caches.members.first() {
                if state.active.contains(&member) {
                    state.parked.insert(member, caches);
                }
            }
        }
        state.resident = resident;
        let complete = |outputs: &Vec<(u64, StepResult)>| {
            outputs.len() == self.members.len()
                && self
                    .members
                    .iter()
                    .all(|m| outputs.iter().any(|(o, _)| o == m))
        };
        match results {
            Some(Ok(outputs)) if complete(&outputs) => {
                for (member, output) in outputs {
                    state.done.insert(member, Ok(output));
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
                for &member in &self.members {
                    if !(unwinding && member == self.own) {
                        state.done.insert(member, Err(message.clone()));
                    }
                }
            }
        }
        state.leading = false;
        drop(state);
        self.batcher.changed.notify_all();
    }
}

/// Runs `batch` (in its order) from the caches it needs: the resident batch, parked caches
/// and the prefill caches of joining members. Keeps the resident layout when the batch is
/// exactly its members; otherwise builds a new layout and parks resident rows of active
/// members that are not in this batch.
fn run(
    engine: &Engine,
    batch: Vec<Pending>,
    resident: Option<Caches>,
    parked: Vec<Caches>,
    active: &HashSet<u64>,
) -> Outcome {
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

/// [`run`]'s work: lays the caches out, runs the step, and returns each member's result with
/// the batch's caches after it. Caches of absent members it parks go to `newly_parked` (kept
/// even when a later part of the step fails).
fn step_batch(
    engine: &Engine,
    batch: Vec<Pending>,
    resident: Option<Caches>,
    parked: Vec<Caches>,
    active: &HashSet<u64>,
    newly_parked: &mut Vec<Caches>,
) -> std::result::Result<(Vec<(u64, StepResult)>, Caches), String> {
    let layout = engine.layout();
    let dtype = layout.kv_dtype;
    // Row order: the resident order when the batch is the resident batch, else arrival.
    let same = resident.as_ref().is_some_and(|r| {
        r.members.len() == batch.len() && batch.iter().all(|p| r.members.contains(&p.member))
    });
    let mut batch = batch;
    let caches = if same {
        let resident = resident.expect("checked above");
        batch.sort_by_key(|p| {
            resident
                .members
                .iter()
                .position(|&m| m == p.member)
                .unwrap_or(usize::MAX)
        });
        resident
    } else {
        // Where each member's cache is: (source, row).
        let mut sources: Vec<Caches> = Vec::new();
        let had_resident = resident.is_some();
        if let Some(resident) = resident {
            sources.push(resident);
        }
        sources.extend(parked);
        for p in &mut batch {
            if let Some(joining) = p.joining.take() {
                sources.push(joining);
            }
        }
        let find = |member: u64| {
            sources.iter().enumerate().find_map(|(s, c)| {
                c.members
                    .iter()
                    .position(|&m| m == member)
                    .map(|row| (s, row))
            })
        };
        let rows = batch
            .iter()
            .map(|p| {
                find(p.member).ok_or_else(|| {
                    format!(
                        "internal error: the KV cache of generation {} is missing",
                        p.member
                    )
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        // Resident rows of active members that are not stepping now: park them.
        if let Some(resident) = had_resident.then(|| &sources[0]) {
            for (row, &member) in resident.members.iter().enumerate() {
                let stepping = batch.iter().any(|p| p.member == member);
                if stepping || !active.contains(&member) {
                    continue;
                }
                let len = resident.lens[row];
                let kv = relayout(layout, dtype, &sources[..1], &[(0, row)], &[len], len)
                    .map_err(|e| e.to_string())?;
                newly_parked.push(Caches {
                    members: vec![member],
                    lens: vec![len],
                    width: len,
                    kv,
                });
            }
        }
        let lens: Vec<usize> = rows.iter().map(|&(s, r)| sources[s].lens[r]).collect();
        let width = lens.iter().copied().max().unwrap_or(0);
        match rows[..] {
            // One generation whose cache is already a single row (a lone generation's
            // first step): use it as it is.
            [(s, 0)] if sources[s].members.len() == 1 && sources[s].width == width => {
                sources.swap_remove(s)
            }
            _ => Caches {
                members: batch.iter().map(|p| p.member).collect(),
                kv: relayout(layout, dtype, &sources, &rows, &lens, width)
                    .map_err(|e| e.to_string())?,
                lens,
                width,
            },
        }
    };
    let ids: Vec<u32> = batch.iter().map(|p| p.id).collect();
    let Caches {
        members,
        lens,
        width,
        kv,
    } = caches;
    let output = engine
        .run_batch(&ids, &lens, width, kv)
        .map_err(|e| e.to_string())?;
    let rows = ids.len();
    let results = members
        .iter()
        .copied()
        .zip(output.logits)
        .map(|(member, logits)| {
            (
                member,
                StepResult {
                    logits,
                    run_time: output.run_time,
                    batch_size: rows,
                },
            )
        })
        .collect();
    let resident = Caches {
        members,
        lens: lens.iter().map(|l| l + 1).collect(),
        width: width + 1,
        kv: output.present,
    };
    Ok((results, resident))
}

/// Builds `[rows.len(), heads, width, dim]` tensors (key and value per layer) from rows of
/// the `sources` caches: output row `i` takes row `rows[i].1` of `sources[rows[i].0]`, its
/// last `lens[i]` positions, right-aligned; padding is zero.
fn relayout(
    layout: &super::layout::DecoderLayout,
    dtype: KvDtype,
    sources: &[Caches],
    rows: &[(usize, usize)],
    lens: &[usize],
    width: usize,
) -> Result<Vec<DynValue>> {
    (0..layout.layers.len() * 2)
        .map(|k| {
            let parts: Vec<(&DynValue, usize, usize)> = rows
                .iter()
                .zip(lens)
                .map(|(&(s, r), &len)| (&sources[s].kv[k], r, len))
                .collect();
            match dtype {
                KvDtype::Float32 => {
                    copy_rows::<f32>(&parts, layout.kv_heads, layout.head_dim, width)
                }
                KvDtype::Float16 => {
                    copy_rows::<half::f16>(&parts, layout.kv_heads, layout.head_dim, width)
                }
            }
        })
        .collect()
}

/// Copies `(tensor, row, len)` parts — the last `len` positions of row `row` of a
/// `[rows, heads, w, dim]` tensor — right-aligned into a zeroed `[parts, heads, width, dim]`.
fn copy_rows<T: PrimitiveTensorElementType + Copy + Default + std::fmt::Debug + 'static>(
    parts: &[(&DynValue, usize, usize)],
    heads: usize,
    dim: usize,
    width: usize,
) -> Result<DynValue> {
    let mut data = vec![T::default(); parts.len() * heads * width * dim];
    for (out_row, &(value, row, len)) in parts.iter().enumerate() {
        let (shape, src) = value
            .try_extract_tensor::<T>()
            .map_err(ort_error("reading a KV cache"))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        let [src_rows, src_heads, src_width, src_dim] = dims[..] else {
            return Err(Error::Runtime(format!("a KV cache of shape {shape:?}")));
        };
        if row >= src_rows
            || src_heads != heads
            || src_dim != dim
            || len > src_width
            || len > width
            || src.len() != src_rows * heads * src_width * dim
        {
            return Err(Error::Runtime(format!(
                "a KV cache of shape {shape:?} does not hold row {row} of {len} positions"
            )));
        }
        for head in 0..heads {
            let end = ((row * heads + head) * src_width + src_width) * dim;
            let from = &src[end - len * dim..end];
            let out_end = ((out_row * heads + head) * width + width) * dim;
            data[out_end - len * dim..out_end].copy_from_slice(from);
        }
    }
    Ok(Tensor::from_array(([parts.len(), heads, width, dim], data))
        .map_err(ort_error("creating a batched KV cache"))?
        .into_dyn())
}

/// Row `row` of `[rows, 1, vocab]` logits as float32.
pub(super) fn row_logits(logits: &DynValue, row: usize, out: &mut Vec<f32>) -> Result<usize> {
    let bad = |shape: &dyn std::fmt::Debug| {
        Error::Runtime(format!(
            "logits of shape {shape:?} are not [batch, 1, vocab]"
        ))
    };
    macro_rules! take {
        ($t:ty, $convert:expr) => {{
            let (shape, data) = logits
                .try_extract_tensor::<$t>()
                .map_err(ort_error("reading logits"))?;
            let vocab = shape.last().map(|&v| v.max(0) as usize).unwrap_or(0);
            if shape.len() != 3 || vocab == 0 || data.len() < (row + 1) * vocab {
                return Err(bad(&shape));
            }
            let steps = shape[1].max(1) as usize;
            let end = (row + 1) * steps * vocab;
            out.clear();
            out.extend(data[end - vocab..end].iter().map($convert));
            Ok(vocab)
        }};
    }
    match logits.dtype() {
        ort::value::ValueType::Tensor {
            ty: TensorElementType::Float32,
            ..
        } => take!(f32, |&v| v),
        ort::value::ValueType::Tensor {
            ty: TensorElementType::Float16,
            ..
        } => take!(half::f16, |v: &half::f16| v.to_f32()),
        other => Err(Error::Runtime(format!(
            "logits have unsupported type {other:?}"
        ))),
    }
}
