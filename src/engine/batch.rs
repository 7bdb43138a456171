//! Continuous batching of decode steps: the generations running on one engine submit their
//! next token here, and one `session.run` serves all of them.
//!
//! There is no scheduler thread. A generation that submits a step while no batch is being
//! run becomes the *leader*: it waits (at most [`GATHER_WAIT`]) until every generation in
//! its decode phase has submitted, takes up to `max_batch` steps in arrival order, runs them
//! as one left-padded batch (each row's KV cache right-aligned, padding masked out through
//! `attention_mask`, its own `position_ids`), and hands every row its logits and new cache.
//! Generations join after their (solo) prefill and leave when they finish, between steps.
//!
//! Float models give each row the logits it would get alone up to float rounding, so greedy
//! output matches a solo run; models quantized with `DynamicQuantizeLinear` compute one
//! activation scale per tensor, i.e. per batch, and their results depend on the batch mates.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::value::{DynValue, PrimitiveTensorElementType, Tensor, TensorElementType};

use super::layout::KvDtype;
use super::{ort_error, Engine, Sequence, StepInput, StepOutput};
use crate::error::{Error, Result};

/// Longest a leader waits for the other running generations to submit their step before
/// it runs the batch without them (a slow text callback must not stall everyone).
pub const GATHER_WAIT: Duration = Duration::from_millis(2);

/// Default for [`crate::LoadOptions::max_decode_batch`].
pub const DEFAULT_MAX_DECODE_BATCH: usize = 8;

type StepResult = std::result::Result<StepOutput, String>;

struct Pending {
    ticket: u64,
    input: StepInput,
}

#[derive(Default)]
struct State {
    /// Generations in their decode phase (registered through [`DecodeSlot`]).
    active: usize,
    /// Submitted steps, oldest first.
    queue: Vec<Pending>,
    /// Results waiting for their submitter.
    done: HashMap<u64, StepResult>,
    next_ticket: u64,
    /// A batch is being gathered or run.
    leading: bool,
}

/// The decode-step combiner of one engine.
pub(crate) struct Batcher {
    max_batch: usize,
    state: Mutex<State>,
    changed: Condvar,
}

impl Batcher {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            max_batch: max_batch.max(1),
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
/// end. Dropping it leaves the batch.
pub struct DecodeSlot<'e> {
    engine: &'e Engine,
    batching: bool,
}

impl<'e> DecodeSlot<'e> {
    pub(super) fn new(engine: &'e Engine) -> Self {
        let batching = engine.batching_supported();
        if batching {
            engine.batcher.lock().active += 1;
        }
        Self { engine, batching }
    }

    /// Runs one decode step: `id` appended to `sequence`, batched with the steps other
    /// generations on the same engine submit at the same time.
    pub fn step(&mut self, sequence: &mut Sequence, id: u32) -> Result<()> {
        if !self.batching || sequence.past_len == 0 {
            return self.engine.forward(sequence, &[id]);
        }
        let batcher = &self.engine.batcher;
        let input = StepInput {
            past: std::mem::take(&mut sequence.past),
            past_len: sequence.past_len,
            id,
        };
        let mut state = batcher.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push(Pending { ticket, input });
        batcher.changed.notify_all();
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                drop(state);
                let output = result.map_err(Error::Runtime)?;
                sequence.past = output.present;
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
            drop(state);
            let mut leader = Leader {
                batcher,
                tickets: batch.iter().map(|p| p.ticket).collect(),
                own_ticket: ticket,
                results: None,
            };
            let inputs = batch.into_iter().map(|p| p.input).collect();
            leader.results = Some(self.engine.run_steps(inputs).map_err(|e| e.to_string()));
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
            let wanted = state.active.min(batcher.max_batch);
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
        if self.batching {
            let batcher = &self.engine.batcher;
            batcher.lock().active -= 1;
            batcher.changed.notify_all();
        }
    }
}

/// Publishes a batch's results — or, if the leader unwinds, an error for every member, so
/// no follower waits forever.
struct Leader<'b> {
    batcher: &'b Batcher,
    tickets: Vec<u64>,
    /// The leader's own step (no result is kept for it when it unwinds).
    own_ticket: u64,
    results: Option<std::result::Result<Vec<StepOutput>, String>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut state = self.batcher.lock();
        match self.results.take() {
            Some(Ok(outputs)) if outputs.len() == self.tickets.len() => {
                for (&ticket, output) in self.tickets.iter().zip(outputs) {
                    state.done.insert(ticket, Ok(output));
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
                for &ticket in &self.tickets {
                    if !(unwinding && ticket == self.own_ticket) {
                        state.done.insert(ticket, Err(message.clone()));
                    }
                }
            }
        }
        state.leading = false;
        drop(state);
        self.batcher.changed.notify_all();
    }
}

/// Copies each row's KV tensor `[1, heads, len_i, dim]` right-aligned into a zeroed
/// `[rows, heads, max_len, dim]` tensor.
pub(super) fn merge_kv(
    dtype: KvDtype,
    parts: &[(&DynValue, usize)],
    heads: usize,
    dim: usize,
    max_len: usize,
) -> Result<DynValue> {
    match dtype {
        KvDtype::Float32 => merge_kv_typed::<f32>(parts, heads, dim, max_len),
        KvDtype::Float16 => merge_kv_typed::<half::f16>(parts, heads, dim, max_len),
    }
}

fn merge_kv_typed<T: PrimitiveTensorElementType + Copy + Default + std::fmt::Debug + 'static>(
    parts: &[(&DynValue, usize)],
    heads: usize,
    dim: usize,
    max_len: usize,
) -> Result<DynValue> {
    let rows = parts.len();
    let mut data = vec![T::default(); rows * heads * max_len * dim];
    for (row, &(value, len)) in parts.iter().enumerate() {
        let (shape, src) = value
            .try_extract_tensor::<T>()
            .map_err(ort_error("reading a KV cache"))?;
        if shape.len() != 4 || src.len() != heads * len * dim {
            return Err(Error::Internal(format!(
                "KV cache of shape {shape:?} does not hold {len} positions"
            )));
        }
        let offset = max_len - len;
        for head in 0..heads {
            let from = &src[head * len * dim..(head + 1) * len * dim];
            let start = ((row * heads + head) * max_len + offset) * dim;
            data[start..start + len * dim].copy_from_slice(from);
        }
    }
    Ok(Tensor::from_array(([rows, heads, max_len, dim], data))
        .map_err(ort_error("creating a batched KV cache"))?
        .into_dyn())
}

/// Takes row `row`'s last `len` positions out of a batched `[rows, heads, total, dim]` KV
/// tensor as `[1, heads, len, dim]`.
pub(super) fn split_kv(
    dtype: KvDtype,
    batched: &DynValue,
    row: usize,
    len: usize,
) -> Result<DynValue> {
    match dtype {
        KvDtype::Float32 => split_kv_typed::<f32>(batched, row, len),
        KvDtype::Float16 => split_kv_typed::<half::f16>(batched, row, len),
    }
}

fn split_kv_typed<T: PrimitiveTensorElementType + Copy + std::fmt::Debug + 'static>(
    batched: &DynValue,
    row: usize,
    len: usize,
) -> Result<DynValue> {
    let (shape, src) = batched
        .try_extract_tensor::<T>()
        .map_err(ort_error("reading a batched KV cache"))?;
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let [rows, heads, total, dim] = dims[..] else {
        return Err(Error::Runtime(format!(
            "the model returned a KV cache of shape {shape:?}"
        )));
    };
    if row >= rows || len > total || src.len() != rows * heads * total * dim {
        return Err(Error::Runtime(format!(
            "the model returned a KV cache of shape {shape:?} for row {row} of {len} positions"
        )));
    }
    let mut data = Vec::with_capacity(heads * len * dim);
    for head in 0..heads {
        let end = ((row * heads + head) * total + total) * dim;
        data.extend_from_slice(&src[end - len * dim..end]);
    }
    Ok(Tensor::from_array(([1usize, heads, len, dim], data))
        .map_err(ort_error("creating a KV cache"))?
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
