//! The ONNX decoder engine: session(s), input/output discovery and the KV cache.
//!
//! * [`runtime`] — loading ONNX Runtime once per process;
//! * [`layout`] — what the model's inputs and outputs are;
//! * [`batch`] — continuous batching of the decode steps of concurrent generations;
//! * `logits` — reading a row's last-position logits out of a run;
//! * [`logits_rewrite`] — the load-time graph rewrite that computes logits only for the
//!   positions used (over `onnx_proto`, a protobuf field walker);
//! * `pool` — the sessions, lent first come, first served;
//! * [`kv_budget`] — the most KV-cache bytes the generations on a handle may hold;
//! * [`prefix_cache`] — the KV cache of recent prompts, reused by prompts that start alike;
//! * this module — loading, one forward step of a sequence, the chunked prefill.

pub mod batch;
pub mod kv_budget;
pub mod layout;
mod logits;
pub mod logits_rewrite;
mod onnx_proto;
mod pool;
pub mod prefix_cache;
pub mod runtime;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynTensor, DynValue, Tensor};

use self::batch::{Batcher, DecodeSlot};
use self::kv_budget::{KvBudget, KvReservation};
use self::layout::DecoderLayout;
use self::logits_rewrite::LogitsPositions;
use self::pool::Pool;
use self::prefix_cache::{KvData, PrefixCache};
use self::runtime::Runtime;
use crate::error::{Error, Result};
use crate::model_config::ArchitectureConfig;

pub(crate) fn ort_error(context: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("{context}: {e}"))
}

/// Finds the ONNX file of a model directory: the named one, else `model.onnx`, else the
/// only `*.onnx`. `Ok(None)` when the directory has none (tokenizer-only load).
pub fn find_onnx_file(dir: &Path, name: Option<&str>) -> Result<Option<PathBuf>> {
    if let Some(name) = name {
        let path = dir.join(name);
        return if path.is_file() {
            Ok(Some(path))
        } else {
            Err(Error::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the ONNX file named in the load options does not exist",
                ),
            ))
        };
    }
    let default = dir.join("model.onnx");
    if default.is_file() {
        return Ok(Some(default));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::invalid_model(
            dir,
            format!(
                "several ONNX files and no model.onnx; choose one with onnx_file_name ({})",
                found
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA provider on [`EngineOptions::device_id`].
    Cuda,
}

/// What the engine is loaded with: the runtime, where and how the sessions run, batching and
/// the context length. [`crate::LoadOptions`] builds it ([`crate::LoadOptions::engine_options`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Path of `libonnxruntime.so`; `None`: `ORT_DYLIB_PATH`, then next to this library.
    pub ort_library_path: Option<PathBuf>,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime decide.
    pub intra_op_threads: usize,
    /// CPU or CUDA.
    pub execution_provider: ExecutionProvider,
    /// CUDA device ordinal.
    pub device_id: i32,
    /// When CUDA cannot be enabled, run on CPU instead of failing the load.
    pub allow_cpu_fallback: bool,
    /// ONNX Runtime sessions (each holds its own copy of the weights); at least 1.
    pub session_count: usize,
    /// Most concurrent generations whose decode steps share one `session.run`.
    pub max_decode_batch: usize,
    /// Context length overriding `config.json`'s `max_position_embeddings`.
    pub context_length: Option<usize>,
    /// Rewrite the graph so the head runs on the used positions only ([`logits_rewrite`]).
    pub rewrite_logits: bool,
    /// Longest prompt chunk one prefill run takes (0: the whole prompt in one run); see
    /// [`Engine::prefill`].
    pub prefill_chunk_tokens: usize,
    /// Most KV-cache bytes the generations on the engine may hold at once (`None`: no
    /// limit); see [`kv_budget`].
    pub max_kv_cache_bytes: Option<usize>,
    /// Longest a generation waits for room in the KV budget before it fails.
    pub kv_wait: Duration,
    /// Bytes of host memory for the prefix cache (0: off); see [`prefix_cache`].
    pub prefix_cache_bytes: usize,
}

/// Default for [`EngineOptions::prefill_chunk_tokens`] (chosen by measurement, BENCHMARKS.md).
pub const DEFAULT_PREFILL_CHUNK_TOKENS: usize = 256;

/// The chunk a prefill uses while other generations on the engine are decoding (when
/// `prefill_chunk_tokens` is larger): their tokens wait at most one such chunk (chosen by
/// measurement, BENCHMARKS.md).
pub const PREFILL_CHUNK_TOKENS_WHILE_DECODING: usize = 64;

/// Most holes (discarded draft positions, masked out) a sequence's KV cache keeps before
/// they are compacted away with one copy (chosen by measurement, BENCHMARKS.md); a shorter
/// sequence keeps at most a quarter of its length ([`kv_hole_limit`]).
pub const MAX_KV_HOLES: usize = 64;

/// The holes a cache of `kept` positions may hold before it is compacted: a quarter of
/// them, at least 8, at most [`MAX_KV_HOLES`] (so holes never cost more than a quarter of
/// the attention work).
pub fn kv_hole_limit(kept: usize) -> usize {
    (kept / 4).clamp(8, MAX_KV_HOLES)
}

/// The positions `runs` (start, length) of every head of a `[1, heads, width, dim]` cache
/// tensor, `kept` positions in all, as a `[1, heads, kept, dim]` buffer.
fn kv_keep_runs<T: Copy>(
    data: &[T],
    heads: usize,
    width: usize,
    dim: usize,
    runs: &[(usize, usize)],
    kept: usize,
) -> Result<Vec<T>> {
    if data.len() != heads * width * dim
        || runs.iter().map(|r| r.1).sum::<usize>() != kept
        || runs.iter().any(|&(s, l)| s + l > width)
    {
        return Err(Error::Internal(format!(
            "a KV cache of {} elements is not [1, {heads}, {width}, {dim}] with {kept} positions kept",
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(heads * kept * dim);
    for head in 0..heads {
        let base = head * width * dim;
        for &(start, len) in runs {
            out.extend_from_slice(&data[base + start * dim..base + (start + len) * dim]);
        }
    }
    Ok(out)
}

/// A loaded decoder.
pub struct Engine {
    pool: Pool<Session>,
    layout: DecoderLayout,
    context_length: Option<usize>,
    model_file: PathBuf,
    runtime: Runtime,
    provider: ExecutionProvider,
    session_count: usize,
    batcher: Batcher,
    logits_positions: LogitsPositions,
    prefill_chunk_tokens: usize,
    /// Generations past their prefill (holding a [`DecodeSlot`]).
    decoding: std::sync::atomic::AtomicUsize,
    kv_budget: KvBudget,
    prefix_cache: PrefixCache,
}

/// What [`Engine::run_batch`] returns.
pub(crate) struct BatchOutput {
    /// `present` KV tensors, `[rows, kv_heads, width + new_positions, head_dim]`, key then
    /// value per layer.
    pub(crate) present: Vec<DynValue>,
    /// Each row's logits: one row of `vocab` per token it fed.
    pub(crate) logits: Vec<Vec<f32>>,
    /// The width of a logits row.
    pub(crate) vocab: usize,
    /// Positions every row grew by (the most tokens a row fed).
    pub(crate) new_positions: usize,
    /// Time inside `session.run`.
    pub(crate) run_time: Duration,
}

/// The state of one sequence being generated: its KV cache (or, for models without
/// one, all ids so far) and timing.
pub struct Sequence {
    /// `present` tensors of the last step, fed back as `past` (key, value per layer).
    past: Vec<DynValue>,
    /// Positions in the cache, holes included.
    past_len: usize,
    /// Per cache position, 1 if it is part of the sequence and 0 for a hole (a discarded
    /// draft position, masked out); empty when there are no holes.
    mask: Vec<i64>,
    /// Zeros in `mask`.
    holes: usize,
    /// Every id fed so far (used by models without a KV cache).
    all_ids: Vec<i64>,
    /// Logits of the last position of the last step.
    logits: Vec<f32>,
    /// Time spent inside `session.run`.
    pub run_time: Duration,
    /// Decode steps that ran in one batch with other generations.
    pub batched_steps: usize,
}

impl Sequence {
    /// Tokens the model has seen so far (discarded positions not counted).
    pub fn len(&self) -> usize {
        self.past_len - self.holes
    }

    /// True before the first step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The last position's logits from the latest step.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Mutable logits (sampling edits them in place).
    pub fn logits_mut(&mut self) -> &mut [f32] {
        &mut self.logits
    }
}

impl Engine {
    /// Loads `file` with the given options; `config` supplies dimensions the graph leaves symbolic.
    pub fn load(
        file: &Path,
        options: &EngineOptions,
        config: Option<&ArchitectureConfig>,
    ) -> Result<Self> {
        let runtime = runtime::runtime(options.ort_library_path.as_deref())?;
        let session_count = options.session_count.max(1);
        let rewrite = if options.rewrite_logits {
            logits_rewrite::rewrite_file(file)
        } else {
            logits_rewrite::Rewrite {
                model: None,
                positions: LogitsPositions::AllPositions("the rewrite is turned off".into()),
            }
        };
        let mut sessions = Vec::with_capacity(session_count);
        let mut provider = options.execution_provider;
        for _ in 0..session_count {
            let (session, used) =
                Self::build_session(&runtime, file, rewrite.model.as_deref(), options)?;
            provider = used;
            sessions.push(session);
        }
        drop(rewrite.model);
        let logits_positions = rewrite.positions;
        let layout =
            DecoderLayout::discover(&sessions[0], file, config, logits_positions.input_name())?;
        Ok(Self {
            pool: Pool::new(sessions),
            layout,
            context_length: options
                .context_length
                .or_else(|| config.and_then(|c| c.max_position_embeddings)),
            model_file: file.to_path_buf(),
            runtime,
            provider,
            session_count,
            batcher: Batcher::new(options.max_decode_batch),
            logits_positions,
            prefill_chunk_tokens: options.prefill_chunk_tokens,
            decoding: std::sync::atomic::AtomicUsize::new(0),
            kv_budget: KvBudget::new(options.max_kv_cache_bytes, options.kv_wait),
            prefix_cache: PrefixCache::new(options.prefix_cache_bytes),
        })
    }

    /// One session of `file`, or of `rewritten` (the rewritten model, whose external data
    /// is read from the file's directory) when given.
    fn build_session(
        runtime: &Runtime,
        file: &Path,
        rewritten: Option<&[u8]>,
        options: &EngineOptions,
    ) -> Result<(Session, ExecutionProvider)> {
        let fail = ort_error("configuring the ONNX Runtime session");
        let base = || -> Result<ort::session::builder::SessionBuilder> {
            let mut builder = Session::builder(&runtime.environment)
                .map_err(&fail)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| fail(e.into()))?;
            if options.intra_op_threads > 0 {
                builder = builder
                    .with_intra_threads(options.intra_op_threads)
                    .map_err(|e| fail(e.into()))?;
            }
            Ok(builder)
        };
        let commit = |builder: ort::session::builder::SessionBuilder| {
            let cannot =
                |e| Error::invalid_model(file, format!("ONNX Runtime cannot load the model: {e}"));
            match rewritten {
                None => {
                    let mut builder = builder;
                    builder.commit_from_file(file).map_err(cannot)
                }
                Some(bytes) => {
                    let folder = file.parent().unwrap_or(Path::new("."));
                    let folder = folder.to_str().ok_or_else(|| {
                        Error::invalid_model(file, "the model's directory is not UTF-8")
                    })?;
                    let mut builder = builder
                        .with_config_entry(
                            "session.model_external_initializers_file_folder_path",
                            folder,
                        )
                        .map_err(|e| fail(e.into()))?;
                    builder.commit_from_memory(bytes).map_err(cannot)
                }
            }
        };
        match options.execution_provider {
            ExecutionProvider::Cpu => Ok((commit(base()?)?, ExecutionProvider::Cpu)),
            ExecutionProvider::Cuda => {
                let cuda = ort::ep::CUDA::default()
                    .with_device_id(options.device_id)
                    .build()
                    .error_on_failure();
                let attempt = base()?
                    .with_execution_providers([cuda])
                    .map_err(|e| e.into());
                match attempt {
                    Ok(builder) => Ok((commit(builder)?, ExecutionProvider::Cuda)),
                    Err(e) if options.allow_cpu_fallback => {
                        let _: ort::Error = e;
                        Ok((commit(base()?)?, ExecutionProvider::Cpu))
                    }
                    Err(e) => Err(Error::Runtime(format!(
                        "the CUDA execution provider (device {}) cannot be enabled: {e}; set allow_cpu_fallback to run on CPU instead",
                        options.device_id
                    ))),
                }
            }
        }
    }

    /// Whether the head runs on the used positions only, and how.
    pub fn logits_positions(&self) -> &LogitsPositions {
        &self.logits_positions
    }

    /// The model's interface.
    pub fn layout(&self) -> &DecoderLayout {
        &self.layout
    }

    /// Context length from `config.json`, if known.
    pub fn context_length(&self) -> Option<usize> {
        self.context_length
    }

    /// The ONNX file.
    pub fn model_file(&self) -> &Path {
        &self.model_file
    }

    /// The ONNX Runtime in use.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The execution provider actually in use (CPU after a permitted CUDA fallback).
    pub fn provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// Number of sessions (concurrent `session.run` calls).
    pub fn session_count(&self) -> usize {
        self.session_count
    }

    /// A new, empty sequence.
    pub fn new_sequence(&self) -> Sequence {
        Sequence {
            past: Vec::new(),
            past_len: 0,
            mask: Vec::new(),
            holes: 0,
            all_ids: Vec::new(),
            logits: Vec::new(),
            run_time: Duration::ZERO,
            batched_steps: 0,
        }
    }

    /// Most decode steps one `session.run` serves: `LoadOptions::max_decode_batch`, or 1
    /// when the model's interface does not allow batching (see [`batch`]).
    pub fn max_decode_batch(&self) -> usize {
        if self.batching_supported() {
            self.batcher.max_batch()
        } else {
            1
        }
    }

    /// Decode steps can be batched: the model has a KV cache, an attention mask (to hide
    /// the padding) and position ids (so each row keeps its own positions).
    pub(crate) fn batching_supported(&self) -> bool {
        self.batcher.max_batch() > 1
            && self.layout.has_kv_cache()
            && self.layout.has_attention_mask
            && self.layout.has_position_ids
    }

    /// Joins the engine's decode batch (call after the prompt's forward pass); decode
    /// steps then go through [`DecodeSlot::step`]. Leaves the batch when dropped.
    pub fn decode_slot(&self) -> DecodeSlot<'_> {
        DecodeSlot::new(self)
    }

    /// Runs one decode step for `ids.len()` sequences at once: row `r` appends `ids[r]` (one
    /// token, or a token and its draft) to a cache of `lens[r]` positions, right-aligned in
    /// `kv` (`[rows, kv_heads, width, head_dim]` per layer, key then value; the
    /// `width - lens[r]` leading positions are padding, and `masks[r]`, when not empty,
    /// marks holes with 0), of which `kept[r]` count for position ids. Rows feeding fewer
    /// tokens than the longest are padded after them (masked out). Returns the `present`
    /// tensors (`width + new_positions` positions), each row's logits (one row of `vocab`
    /// per token it fed) and the run time.
    pub(crate) fn run_batch(
        &self,
        ids: &[Vec<u32>],
        lens: &[usize],
        kept: &[usize],
        masks: &[Vec<i64>],
        width: usize,
        kv: Vec<DynValue>,
    ) -> Result<BatchOutput> {
        let layout = &self.layout;
        let rows = ids.len();
        let new = ids.iter().map(Vec::len).max().unwrap_or(0);
        if rows == 0
            || new == 0
            || ids.iter().any(Vec::is_empty)
            || lens.len() != rows
            || kept.len() != rows
            || masks.len() != rows
            || lens.iter().any(|&l| l == 0 || l > width)
            || lens
                .iter()
                .zip(masks)
                .any(|(&l, m)| !m.is_empty() && m.len() != l)
            || kv.len() != layout.layers.len() * 2
        {
            return Err(Error::Internal("malformed batched step".into()));
        }
        let total = width + new;
        let tensor_error = ort_error("creating input tensors");
        let fed: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mask = batch::plan::attention_mask(lens, masks, width, &fed, new);
        let mut input = Vec::with_capacity(rows * new);
        for row in ids {
            input.extend(row.iter().map(|&id| i64::from(id)));
            // Padding: the row's last token again (masked out; its logits are not read).
            let last = i64::from(*row.last().expect("checked non-empty"));
            input.resize(input.len() + new - row.len(), last);
        }
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(4 + kv.len());
        feeds.push((
            "input_ids".into(),
            Tensor::from_array(([rows, new], input))
                .map_err(&tensor_error)?
                .into(),
        ));
        feeds.push((
            "attention_mask".into(),
            Tensor::from_array(([rows, total], mask))
                .map_err(&tensor_error)?
                .into(),
        ));
        feeds.push((
            "position_ids".into(),
            Tensor::from_array(([rows, new], batch::plan::position_ids(kept, new)))
                .map_err(&tensor_error)?
                .into(),
        ));
        if layout.has_use_cache_branch {
            feeds.push((
                "use_cache_branch".into(),
                Tensor::from_array(([1usize], vec![true]))
                    .map_err(&tensor_error)?
                    .into(),
            ));
        }
        self.push_logits_to_keep(&mut feeds, new)?;
        self.push_past(&mut feeds, kv)?;
        let (logits_value, present, run_time) = self.run_session(feeds)?;
        let mut logits = Vec::with_capacity(rows);
        let mut vocab = 0;
        for (row, &n) in fed.iter().enumerate() {
            let mut row_logits = Vec::new();
            if new == 1 {
                self.read_logits(&logits_value, row, &mut row_logits)?;
                vocab = row_logits.len();
            } else {
                vocab = self::logits::row_last_logits(&logits_value, row, new, &mut row_logits)?;
                if let Some(expected) = layout.logits_vocab {
                    if vocab != expected {
                        return Err(Error::Runtime(format!(
                            "logits have width {vocab}, the graph declares {expected}"
                        )));
                    }
                }
                // The row's own tokens come first; the padding's logits are dropped.
                row_logits.truncate(n * vocab);
            }
            logits.push(row_logits);
        }
        Ok(BatchOutput {
            present,
            logits,
            vocab,
            new_positions: new,
            run_time,
        })
    }

    fn empty_past(&self) -> Result<Vec<DynValue>> {
        let allocator = Allocator::default();
        let shape = [1usize, self.layout.kv_heads, 0, self.layout.head_dim];
        (0..self.layout.layers.len() * 2)
            .map(|_| {
                DynTensor::new(&allocator, self.layout.kv_dtype.element_type(), shape)
                    .map(DynTensor::into_dyn)
                    .map_err(ort_error("allocating an empty KV cache"))
            })
            .collect()
    }

    /// Reads a prompt into an empty `sequence`, leaving the last position's logits, and
    /// returns how many positions came from the prefix cache ([`prefix_cache`]).
    ///
    /// The positions not cached are read in runs of at most `prefill_chunk_tokens` (one run
    /// when it is 0, for a model without a KV cache, or for a short prompt), and of at most
    /// [`PREFILL_CHUNK_TOKENS_WHILE_DECODING`] while other generations on the engine are
    /// decoding. Between runs the
    /// session goes back to the pool, so the decode steps of running generations (which
    /// wait in line for it) are not held up for the whole prompt, and attention works on
    /// `[chunk, length]` instead of `[length, length]`. Each chunk attends to the cache of
    /// the ones before it: the same computation as one run, up to float rounding (models
    /// quantized with `DynamicQuantizeLinear` pick one activation scale per run, so their
    /// results depend on the chunking and on what was cached).
    pub fn prefill(&self, sequence: &mut Sequence, prompt: &[u32]) -> Result<usize> {
        let layout = &self.layout;
        let cacheable =
            layout.has_kv_cache() && sequence.past_len == 0 && self.prefix_cache.enabled();
        let mut reused = 0;
        if cacheable {
            if let Some(hit) = self
                .prefix_cache
                .lookup(prompt, layout.kv_heads, layout.head_dim)
            {
                sequence.past = hit
                    .kv
                    .into_iter()
                    .map(|data| self.kv_tensor(data, hit.positions))
                    .collect::<Result<_>>()?;
                sequence.past_len = hit.positions;
                reused = hit.positions;
            }
        }
        let rest = &prompt[reused..];
        let chunk = self.prefill_chunk_tokens;
        if chunk == 0 || !layout.has_kv_cache() {
            self.forward(sequence, rest)?;
        } else {
            let mut start = 0;
            while start < rest.len() {
                // Smaller chunks while others decode: their next token waits for one chunk.
                let size = if self.decoding.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    chunk.min(PREFILL_CHUNK_TOKENS_WHILE_DECODING)
                } else {
                    chunk
                };
                let end = (start + size).min(rest.len());
                self.forward(sequence, &rest[start..end])?;
                start = end;
            }
        }
        if cacheable {
            self.prefix_cache
                .insert(prompt, || self.kv_to_host(&sequence.past).ok());
        }
        Ok(reused)
    }

    /// A `[1, kv_heads, positions, head_dim]` cache tensor from host data.
    fn kv_tensor(&self, data: KvData, positions: usize) -> Result<DynValue> {
        let shape = [
            1usize,
            self.layout.kv_heads,
            positions,
            self.layout.head_dim,
        ];
        let fail = ort_error("creating a KV cache from the prefix cache");
        Ok(match data {
            KvData::F32(v) => Tensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
            KvData::F16(v) => Tensor::from_array((shape, v)).map_err(fail)?.into_dyn(),
        })
    }

    /// Host copies of a sequence's cache tensors.
    fn kv_to_host(&self, past: &[DynValue]) -> Result<Vec<KvData>> {
        past.iter()
            .map(|value| {
                Ok(match self.layout.kv_dtype {
                    layout::KvDtype::Float32 => KvData::F32(
                        value
                            .try_extract_tensor::<f32>()
                            .map_err(ort_error("reading a KV cache"))?
                            .1
                            .to_vec(),
                    ),
                    layout::KvDtype::Float16 => KvData::F16(
                        value
                            .try_extract_tensor::<half::f16>()
                            .map_err(ort_error("reading a KV cache"))?
                            .1
                            .to_vec(),
                    ),
                })
            })
            .collect()
    }

    /// Bytes the prefix cache holds now, and its entries.
    pub fn prefix_cache_usage(&self) -> (usize, usize) {
        self.prefix_cache.usage()
    }

    /// Bytes of KV cache one position takes in every layer (key and value): 0 for a model
    /// without a cache.
    pub fn kv_bytes_per_position(&self) -> usize {
        let l = &self.layout;
        l.layers.len() * 2 * l.kv_heads * l.head_dim * l.kv_dtype.size()
    }

    /// Reserves the KV cache of a generation that may reach `positions` positions (see
    /// [`kv_budget`]): waits for room up to the handle's limit, else [`Error::KvMemory`].
    pub(crate) fn reserve_kv(&self, positions: usize) -> Result<KvReservation<'_>> {
        let per = self.kv_bytes_per_position();
        self.kv_budget.reserve(
            positions.saturating_mul(per),
            &format!("a generation of up to {positions} positions ({per} bytes each)"),
        )
    }

    /// The KV budget's limit (`None`: unlimited) and the bytes reserved now.
    pub fn kv_budget(&self) -> (Option<usize>, usize) {
        (self.kv_budget.limit(), self.kv_budget.used())
    }

    /// Longest prompt chunk of one prefill run (0: whole prompts).
    pub fn prefill_chunk_tokens(&self) -> usize {
        self.prefill_chunk_tokens
    }

    /// Runs the model on `new_ids` appended to `sequence`, leaving the last position's
    /// logits in the sequence and the updated cache in place. On error the sequence
    /// must not be used again.
    pub fn forward(&self, sequence: &mut Sequence, new_ids: &[u32]) -> Result<()> {
        let logits = self.run_forward(sequence, new_ids, 1)?;
        // Batch of one: row 0's last position.
        self.read_logits(&logits, 0, &mut sequence.logits)
    }

    /// Like [`Engine::forward`], and also writes the logits of the last `keep` positions of
    /// `new_ids` (`1..=new_ids.len()`) to `out`, `keep × vocab` floats in position order; the
    /// graph computes the head for those positions only when it takes `num_logits_to_keep`.
    /// Returns the vocabulary width.
    pub fn forward_keeping(
        &self,
        sequence: &mut Sequence,
        new_ids: &[u32],
        keep: usize,
        out: &mut Vec<f32>,
    ) -> Result<usize> {
        if keep == 0 || keep > new_ids.len() {
            return Err(Error::InvalidArgument(format!(
                "cannot keep the logits of {keep} of {} new positions",
                new_ids.len()
            )));
        }
        let logits = self.run_forward(sequence, new_ids, keep)?;
        self.read_logits(&logits, 0, &mut sequence.logits)?;
        let vocab = self::logits::row_last_logits(&logits, 0, keep, out)?;
        match self.layout.logits_vocab {
            Some(expected) if vocab != expected => Err(Error::Runtime(format!(
                "logits have width {vocab}, the graph declares {expected}"
            ))),
            _ => Ok(vocab),
        }
    }

    /// One run of `new_ids` on `sequence` asking for `keep` positions' logits; returns the
    /// logits output and leaves the updated cache in the sequence.
    fn run_forward(
        &self,
        sequence: &mut Sequence,
        new_ids: &[u32],
        keep: usize,
    ) -> Result<DynValue> {
        if new_ids.is_empty() {
            return Err(Error::InvalidArgument(
                "a step needs at least one token".into(),
            ));
        }
        let layout = &self.layout;
        let cached = layout.has_kv_cache();
        let past_len = sequence.past_len;
        let new_len = new_ids.len();
        let total = past_len + new_len;
        // Holes take no position: the new ids continue the sequence's own numbering.
        let first = (past_len - sequence.holes) as i64;
        let (input_ids, positions): (Vec<i64>, Vec<i64>) = if cached {
            (
                new_ids.iter().map(|&id| i64::from(id)).collect(),
                (first..first + new_len as i64).collect(),
            )
        } else {
            sequence
                .all_ids
                .extend(new_ids.iter().map(|&id| i64::from(id)));
            (sequence.all_ids.clone(), (0..total as i64).collect())
        };
        let step_len = input_ids.len();
        let tensor_error = ort_error("creating input tensors");
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(4 + layout.layers.len() * 2);
        inputs.push((
            "input_ids".into(),
            Tensor::from_array(([1usize, step_len], input_ids))
                .map_err(&tensor_error)?
                .into(),
        ));
        if layout.has_attention_mask {
            let mask = if sequence.mask.is_empty() {
                vec![1i64; total]
            } else {
                let mut mask = Vec::with_capacity(total);
                mask.extend_from_slice(&sequence.mask);
                mask.resize(total, 1);
                mask
            };
            inputs.push((
                "attention_mask".into(),
                Tensor::from_array(([1usize, total], mask))
                    .map_err(&tensor_error)?
                    .into(),
            ));
        }
        if layout.has_position_ids {
            inputs.push((
                "position_ids".into(),
                Tensor::from_array(([1usize, step_len], positions))
                    .map_err(&tensor_error)?
                    .into(),
            ));
        }
        if layout.has_use_cache_branch {
            inputs.push((
                "use_cache_branch".into(),
                Tensor::from_array(([1usize], vec![past_len > 0]))
                    .map_err(&tensor_error)?
                    .into(),
            ));
        }
        self.push_logits_to_keep(&mut inputs, keep)?;
        if cached {
            let past = if past_len == 0 {
                self.empty_past()?
            } else {
                std::mem::take(&mut sequence.past)
            };
            self.push_past(&mut inputs, past)?;
        }

        let (logits, present, run_time) = self.run_session(inputs)?;
        sequence.run_time += run_time;
        if cached {
            sequence.past = present;
        }
        sequence.past_len = total;
        if !sequence.mask.is_empty() {
            sequence.mask.resize(total, 1);
        }
        Ok(logits)
    }

    /// Forgets the last `n` positions of `sequence` (rejected draft tokens), so that later
    /// steps neither see nor number them. A model that takes an attention mask and position
    /// ids gets holes (masked out, no copy) until more than [`kv_hole_limit`] accumulate,
    /// then one compaction; any other model's cache is truncated at once. On error the sequence
    /// must not be used again.
    pub fn discard_last(&self, sequence: &mut Sequence, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if n > sequence.len() {
            return Err(Error::Internal(format!(
                "cannot discard {n} of {} positions",
                sequence.len()
            )));
        }
        if !self.layout.has_kv_cache() {
            sequence.past_len -= n;
            sequence.all_ids.truncate(sequence.past_len);
            return Ok(());
        }
        if sequence.mask.is_empty() {
            sequence.mask = vec![1; sequence.past_len];
        }
        let mut left = n;
        for slot in sequence.mask.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if *slot == 1 {
                *slot = 0;
                left -= 1;
            }
        }
        sequence.holes += n;
        let maskable = self.layout.has_attention_mask && self.layout.has_position_ids;
        if !maskable || sequence.holes > kv_hole_limit(sequence.len()) {
            self.compact(sequence)?;
        }
        Ok(())
    }

    /// Removes the holes of `sequence`'s cache (one copy of the positions kept); nothing to
    /// do when it has none.
    pub(crate) fn compact(&self, sequence: &mut Sequence) -> Result<()> {
        if sequence.holes == 0 {
            sequence.mask.clear();
            return Ok(());
        }
        let kept = sequence.past_len - sequence.holes;
        // Runs of kept positions: (start, length).
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (p, &m) in sequence.mask.iter().enumerate() {
            if m == 0 {
                continue;
            }
            match runs.last_mut() {
                Some((start, len)) if *start + *len == p => *len += 1,
                _ => runs.push((p, 1)),
            }
        }
        let (heads, dim) = (self.layout.kv_heads, self.layout.head_dim);
        let width = sequence.past_len;
        let fail = ort_error("compacting a KV cache");
        let mut compacted = Vec::with_capacity(sequence.past.len());
        for value in &sequence.past {
            let shape = [1usize, heads, kept, dim];
            compacted.push(match self.layout.kv_dtype {
                layout::KvDtype::Float32 => {
                    let (_, data) = value.try_extract_tensor::<f32>().map_err(&fail)?;
                    let out = kv_keep_runs(data, heads, width, dim, &runs, kept)?;
                    Tensor::from_array((shape, out)).map_err(&fail)?.into_dyn()
                }
                layout::KvDtype::Float16 => {
                    let (_, data) = value.try_extract_tensor::<half::f16>().map_err(&fail)?;
                    let out = kv_keep_runs(data, heads, width, dim, &runs, kept)?;
                    Tensor::from_array((shape, out)).map_err(&fail)?.into_dyn()
                }
            });
        }
        sequence.past = compacted;
        sequence.past_len = kept;
        sequence.holes = 0;
        sequence.mask.clear();
        Ok(())
    }

    /// Appends the scalar that asks for the last `keep` positions' logits only, when the
    /// graph takes one (see [`logits_rewrite`]).
    fn push_logits_to_keep<'a>(
        &self,
        feeds: &mut Vec<(Cow<'a, str>, SessionInputValue<'a>)>,
        keep: usize,
    ) -> Result<()> {
        if let Some(name) = &self.layout.logits_to_keep_input {
            let one = Tensor::from_array((Vec::<usize>::new(), vec![keep as i64]))
                .map_err(ort_error("creating input tensors"))?;
            feeds.push((name.clone().into(), one.into()));
        }
        Ok(())
    }

    /// Appends the `past_key_values.*` feeds (key, value per layer) from `kv`.
    fn push_past<'a>(
        &self,
        feeds: &mut Vec<(Cow<'a, str>, SessionInputValue<'a>)>,
        kv: Vec<DynValue>,
    ) -> Result<()> {
        let layers = &self.layout.layers;
        if kv.len() != layers.len() * 2 {
            return Err(Error::Internal(
                "KV cache does not match the model's layers".into(),
            ));
        }
        let names = layers
            .iter()
            .flat_map(|layer| [&layer.past_key, &layer.past_value]);
        for (name, value) in names.zip(kv) {
            feeds.push((name.clone().into(), value.into()));
        }
        Ok(())
    }

    /// Runs `feeds` on a pooled session: the logits, the `present.*` tensors (key, value per
    /// layer; none for a model without a KV cache) and the time inside `session.run`.
    fn run_session(
        &self,
        feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)>,
    ) -> Result<(DynValue, Vec<DynValue>, Duration)> {
        let mut pooled = self.pool.acquire();
        let session = pooled
            .get()
            .ok_or_else(|| Error::Internal("session pool returned no session".into()))?;
        crate::fault::fail_point("session_run");
        let started = Instant::now();
        let mut outputs = session.run(feeds).map_err(ort_error("running the model"))?;
        let run_time = started.elapsed();
        let logits = outputs
            .remove("logits")
            .ok_or_else(|| Error::Runtime("the model returned no logits".into()))?;
        let layers = &self.layout.layers;
        let mut present = Vec::with_capacity(layers.len() * 2);
        for name in layers
            .iter()
            .flat_map(|layer| [&layer.present_key, &layer.present_value])
        {
            present.push(
                outputs
                    .remove(name.as_str())
                    .ok_or_else(|| Error::Runtime(format!("the model returned no `{name}`")))?,
            );
        }
        Ok((logits, present, run_time))
    }

    /// Row `row`'s last-position logits as float32 into `out`, checked against the width the
    /// graph declares.
    fn read_logits(&self, logits: &DynValue, row: usize, out: &mut Vec<f32>) -> Result<()> {
        let vocab = self::logits::row_logits(logits, row, out)?;
        match self.layout.logits_vocab {
            Some(expected) if vocab != expected => Err(Error::Runtime(format!(
                "logits have width {vocab}, the graph declares {expected}"
            ))),
            _ => Ok(()),
        }
    }
}
