//! A loaded model: its tokenizer and, when the directory has an ONNX decoder, the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chat::{ChatFormatter, ChatMessage, ChatOptions};
pub use crate::engine::ExecutionProvider;
use crate::engine::{find_onnx_file, Engine, EngineOptions};
use crate::error::{Error, Result};
use crate::generation::constraint::GrammarCompilerCell;
use crate::generation::{generate, Flow, GenerateParams, Generation};
use crate::model_config::ModelConfig;
use crate::tokenizer::eos::EosSource;
use crate::tokenizer::{EncodeOptions, Encoding, Tokenizer, TokenizerFormat};
use crate::tools::{ToolCallFormat, ToolChatReply, ToolChoice, Tools};

/// Everything that can be set when loading a model. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Force a tokenizer format instead of detecting it (`None`: `tokenizer.json` wins).
    pub tokenizer_format: Option<TokenizerFormat>,
    /// Tokenizer file or directory to use instead of the model directory's (`None`: the
    /// model directory's). Its side files are read from its own directory.
    pub tokenizer_path: Option<PathBuf>,
    /// Path of `libonnxruntime.so`; `None`: `ORT_DYLIB_PATH`, then next to this library.
    pub ort_library_path: Option<PathBuf>,
    /// ONNX file name inside the model directory; `None`: `model.onnx`, else the only `*.onnx`.
    pub onnx_file_name: Option<String>,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime decide.
    pub intra_op_threads: usize,
    /// CPU or CUDA.
    pub execution_provider: ExecutionProvider,
    /// CUDA device ordinal.
    pub device_id: i32,
    /// When CUDA cannot be enabled, run on CPU instead of failing the load.
    pub allow_cpu_fallback: bool,
    /// ONNX Runtime sessions per model (each holds its own copy of the weights): how many
    /// `session.run` calls of concurrent generations can execute at the same time. Default 1.
    pub session_count: usize,
    /// Most concurrent generations whose decode steps share one `session.run` (continuous
    /// batching; default [`crate::engine::batch::DEFAULT_MAX_DECODE_BATCH`]). 1 runs every
    /// generation's steps on their own. Batching applies to models with a KV cache,
    /// `attention_mask` and `position_ids`; float models give the same greedy output as
    /// alone, dynamically quantized (INT8) ones depend on their batch mates.
    pub max_decode_batch: usize,
    /// Largest text (bytes) one tokenize/generate call accepts.
    pub max_input_bytes: usize,
    /// Most texts one batch-tokenize call accepts.
    pub max_batch_texts: usize,
    /// The ids that end a generation, overriding every file (`None`: from the files, else
    /// derived from the vocabulary; see [`crate::tokenizer::eos`]). `Some(vec![])` means no
    /// EOS at all: generations run to `max_new_tokens`, a stop string or the context length.
    pub eos_token_ids: Option<Vec<u32>>,
    /// The model's context length in tokens (prompt + generated), overriding `config.json`'s
    /// `max_position_embeddings`. `None` with no `config.json`: the length is unknown, and
    /// generation is limited only by `max_new_tokens` (a model run past the length it was
    /// trained for gives meaningless text, or fails inside ONNX Runtime).
    pub context_length: Option<usize>,
    /// Rewrite the decoder graph at load so the language-model head runs only on the
    /// positions whose logits are used (default `true`; see
    /// [`crate::engine::logits_rewrite`]). `false` loads the graph unchanged: every prompt
    /// position gets logits, as the export computes them.
    pub rewrite_logits: bool,
    /// Longest prompt chunk one prefill run reads (default
    /// [`crate::engine::DEFAULT_PREFILL_CHUNK_TOKENS`]; 0: the whole prompt in one run).
    /// Chunks let the decode steps of running generations go between them and bound the
    /// prefill's attention memory; see [`crate::engine::Engine::prefill`].
    pub prefill_chunk_tokens: usize,
    /// Most bytes of KV cache the generations on this model may hold at once (`None`, the
    /// default: no limit). A generation reserves its worst case (prompt + `max_new_tokens`,
    /// at most the context length, times [`crate::engine::Engine::kv_bytes_per_position`])
    /// before its prefill and waits up to `kv_wait` for room; see [`crate::engine::kv_budget`].
    pub max_kv_cache_bytes: Option<usize>,
    /// Longest a generation waits for room in the KV budget before it fails with
    /// [`Error::KvMemory`] (default [`crate::engine::kv_budget::DEFAULT_KV_WAIT`], 30 s).
    pub kv_wait: std::time::Duration,
    /// Bytes of host memory for the prefix cache: the KV cache of recent prompts and their
    /// answers, reused by prompts that start alike (default [`crate::engine::prefix_cache::DEFAULT_PREFIX_CACHE_BYTES`],
    /// 0: off). Separate from `max_kv_cache_bytes`; see [`crate::engine::prefix_cache`].
    pub prefix_cache_bytes: usize,
}

impl LoadOptions {
    /// The part of these options the engine is loaded with.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            ort_library_path: self.ort_library_path.clone(),
            intra_op_threads: self.intra_op_threads,
            execution_provider: self.execution_provider,
            device_id: self.device_id,
            allow_cpu_fallback: self.allow_cpu_fallback,
            session_count: self.session_count,
            max_decode_batch: self.max_decode_batch,
            context_length: self.context_length,
            rewrite_logits: self.rewrite_logits,
            prefill_chunk_tokens: self.prefill_chunk_tokens,
            max_kv_cache_bytes: self.max_kv_cache_bytes,
            kv_wait: self.kv_wait,
            prefix_cache_bytes: self.prefix_cache_bytes,
        }
    }
}

/// Default for [`LoadOptions::max_input_bytes`]: 256 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 256 << 20;
/// Default for [`LoadOptions::max_batch_texts`].
pub const DEFAULT_MAX_BATCH_TEXTS: usize = 1 << 16;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            tokenizer_format: None,
            tokenizer_path: None,
            ort_library_path: None,
            onnx_file_name: None,
            intra_op_threads: 0,
            execution_provider: ExecutionProvider::Cpu,
            device_id: 0,
            allow_cpu_fallback: false,
            session_count: 1,
            max_decode_batch: crate::engine::batch::DEFAULT_MAX_DECODE_BATCH,
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_batch_texts: DEFAULT_MAX_BATCH_TEXTS,
            eos_token_ids: None,
            context_length: None,
            rewrite_logits: true,
            prefill_chunk_tokens: crate::engine::DEFAULT_PREFILL_CHUNK_TOKENS,
            max_kv_cache_bytes: None,
            kv_wait: crate::engine::kv_budget::DEFAULT_KV_WAIT,
            prefix_cache_bytes: crate::engine::prefix_cache::DEFAULT_PREFIX_CACHE_BYTES,
        }
    }
}

/// A loaded model directory (or a single tokenizer file). Thread-safe; share with `Arc`.
pub struct Model {
    tokenizer: Arc<Tokenizer>,
    engine: Option<Engine>,
    /// The compiled chat template: `None` when the model has none, `Err` when it does not compile.
    chat: Option<std::result::Result<ChatFormatter, String>>,
    /// Compiles constraints (built on the first constrained generation).
    grammar: GrammarCompilerCell,
    options: LoadOptions,
    path: PathBuf,
}

impl Model {
    /// Loads `path`: a model directory or a single tokenizer file.
    ///
    /// A directory with an ONNX decoder (see [`LoadOptions::onnx_file_name`]) loads the
    /// engine too; without one, or for a single tokenizer file, the model is tokenizer-only
    /// and generation fails with [`Error::Unsupported`].
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let tokenizer_source = options.tokenizer_path.as_deref().unwrap_or(path);
        let mut tokenizer = Tokenizer::from_path(tokenizer_source, options.tokenizer_format)?;
        let onnx_file = if path.is_dir() {
            find_onnx_file(path, options.onnx_file_name.as_deref())?
        } else {
            None
        };
        // The model directory's configuration: for the engine, and (when the tokenizer comes
        // from elsewhere) for the EOS set, which is the model's, not the tokenizer's.
        let model_config =
            if onnx_file.is_some() || (path.is_dir() && options.tokenizer_path.is_some()) {
                Some(ModelConfig::read(path)?)
            } else {
                None
            };
        if let Some(ids) = &options.eos_token_ids {
            tokenizer.set_eos(ids.clone(), EosSource::LoadOption)?;
        } else if options.tokenizer_path.is_some() {
            if let Some((ids, source)) = model_config.as_ref().and_then(|c| c.eos_token_ids.clone())
            {
                tokenizer.set_eos(ids, source)?;
            }
        }
        let engine = match &onnx_file {
            Some(file) => {
                let architecture = model_config.as_ref().and_then(|c| c.architecture.as_ref());
                let engine = Engine::load(file, &options.engine_options(), architecture)?;
                check_vocabularies(&tokenizer, &engine, file)?;
                Some(engine)
            }
            None => None,
        };
        let tokenizer = Arc::new(tokenizer);
        let chat = tokenizer
            .chat_template()
            .map(|_| ChatFormatter::new(Arc::clone(&tokenizer)).map_err(|e| e.to_string()));
        Ok(Self {
            tokenizer,
            engine,
            chat,
            grammar: GrammarCompilerCell::default(),
            options: options.clone(),
            path: path.to_path_buf(),
        })
    }

    /// The decoder engine, or `None` for a tokenizer-only load.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    fn require_engine(&self) -> Result<&Engine> {
        self.engine.as_ref().ok_or_else(|| {
            Error::Unsupported(format!(
                "{} was loaded tokenizer-only (no ONNX model), so it cannot generate",
                self.path.display()
            ))
        })
    }

    fn chat_formatter(&self) -> Result<&ChatFormatter> {
        match &self.chat {
            Some(Ok(formatter)) => Ok(formatter),
            Some(Err(reason)) => Err(Error::invalid_model(self.tokenizer.source(), reason.clone())),
            None => Err(Error::Unsupported(format!(
                "the tokenizer {} has no chat template (tokenizer_config.json `chat_template` or chat_template.jinja next to it); use plain generation",
                self.tokenizer.source().display()
            ))),
        }
    }

    /// Renders `messages` with the model's chat template, as HF `apply_chat_template` does.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<String> {
        self.apply_chat_template_with_tools(messages, None, add_generation_prompt, options)
    }

    /// As [`Model::apply_chat_template`], with the tool definitions the template renders
    /// (`apply_chat_template(messages, tools=...)`). An assistant message whose content is
    /// only calls of these tools in the template's format (a reply's text given back) is
    /// rendered as those calls. [`Error::Unsupported`] when the template renders no tools.
    pub fn apply_chat_template_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Tools>,
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<String> {
        for m in messages {
            self.check_input_len(m.content.len())?;
        }
        self.chat_formatter()?
            .render(messages, tools, add_generation_prompt, options)
    }

    /// How the model's chat template writes tool calls; [`Error::Unsupported`] when it
    /// writes none the library reads.
    pub fn tool_call_format(&self) -> Result<ToolCallFormat> {
        self.chat_formatter()?.tool_format()
    }

    /// The prompt ids of a chat: the template's special-token text becomes special ids,
    /// message contents are tokenized as plain text (a document containing `<|eot_id|>`
    /// cannot end its turn). Returns the rendered text too.
    pub fn encode_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<(String, Vec<u32>)> {
        self.encode_chat_with_tools(messages, None, add_generation_prompt, options)
    }

    /// As [`Model::encode_chat`], with tools (see [`Model::apply_chat_template_with_tools`]).
    pub fn encode_chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&Tools>,
        add_generation_prompt: bool,
        options: &ChatOptions,
    ) -> Result<(String, Vec<u32>)> {
        for m in messages {
            self.check_input_len(m.content.len())?;
        }
        self.chat_formatter()?
            .encode(messages, tools, add_generation_prompt, options)
    }

    /// Renders the chat with `tools` and a generation prompt, generates the reply and reads
    /// the tool calls in it (the template family's format, [`Model::tool_call_format`]).
    /// With [`ToolChoice::Required`] the reply is constrained to exactly one call of one of
    /// the tools whose arguments match that tool's parameter schema (then `params` must not
    /// carry a constraint of its own). The text streams to `on_text` as it is generated,
    /// call text included. [`Error::Unsupported`] when the template has no known tool-call
    /// format.
    pub fn generate_chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &Tools,
        choice: ToolChoice,
        options: &ChatOptions,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<ToolChatReply> {
        let engine = self.require_engine()?;
        let format = self.tool_call_format()?;
        let constrained;
        let params = match choice {
            ToolChoice::Auto => params,
            ToolChoice::Required => {
                if params.constraint.is_some() {
                    return Err(Error::InvalidArgument(
                        "a required tool call constrains the reply itself; the generation parameters must not carry a constraint too".into(),
                    ));
                }
                constrained = GenerateParams {
                    constraint: Some(format.call_constraint(tools)),
                    ..params.clone()
                };
                &constrained
            }
        };
        let (_, ids) = self.encode_chat_with_tools(messages, Some(tools), true, options)?;
        let generation = generate::generate(
            engine,
            &self.tokenizer,
            &self.grammar,
            &ids,
            params,
            on_text,
        )?;
        let (tool_calls, content) = format.parse(&generation.text, tools);
        Ok(ToolChatReply {
            generation,
            tool_calls,
            content,
        })
    }

    /// Renders the chat with a generation prompt and generates the assistant's reply.
    /// `params.parse_special` and `params.add_special` do not apply (see [`Model::encode_chat`]).
    pub fn generate_chat(
        &self,
        messages: &[ChatMessage],
        options: &ChatOptions,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<Generation> {
        let engine = self.require_engine()?;
        let (_, ids) = self.encode_chat(messages, true, options)?;
        generate::generate(
            engine,
            &self.tokenizer,
            &self.grammar,
            &ids,
            params,
            on_text,
        )
    }

    /// Tokenizes `prompt` (BOS and special-token parsing as `params` say) and generates.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<Generation> {
        let engine = self.require_engine()?;
        let ids = self.tokenize(
            prompt,
            EncodeOptions {
                add_special: params.add_special,
                parse_special: params.parse_special,
            },
        )?;
        generate::generate(
            engine,
            &self.tokenizer,
            &self.grammar,
            &ids,
            params,
            on_text,
        )
    }

    /// Generates from prompt ids the caller built (no BOS is added).
    pub fn generate_from_ids(
        &self,
        prompt_ids: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> Flow,
    ) -> Result<Generation> {
        let engine = self.require_engine()?;
        self.tokenizer.check_ids(prompt_ids)?;
        generate::generate(
            engine,
            &self.tokenizer,
            &self.grammar,
            prompt_ids,
            params,
            on_text,
        )
    }

    /// The log-probability of each token of `continuation` after `prompt` (ids), with the
    /// `top` most likely alternatives at each position (at most
    /// [`crate::generation::MAX_TOP_LOGPROBS`]), in one run over the continuation; see
    /// [`crate::generation::score`].
    pub fn score(
        &self,
        prompt: &[u32],
        continuation: &[u32],
        top: usize,
    ) -> Result<Vec<crate::generation::TokenLogprob>> {
        let engine = self.require_engine()?;
        self.tokenizer.check_ids(prompt)?;
        self.tokenizer.check_ids(continuation)?;
        crate::generation::score::score(engine, &self.tokenizer, prompt, continuation, top)
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The options the model was loaded with.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// The path the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rejects inputs larger than [`LoadOptions::max_input_bytes`].
    pub fn check_input_len(&self, len: usize) -> Result<()> {
        if len > self.options.max_input_bytes {
            return Err(Error::LimitExceeded(format!(
                "input of {len} bytes is larger than max_input_bytes ({})",
                self.options.max_input_bytes
            )));
        }
        Ok(())
    }

    /// Token ids of `text` (see [`Tokenizer::encode`]), after the input-size check.
    pub fn tokenize(&self, text: &str, options: EncodeOptions) -> Result<Vec<u32>> {
        self.check_input_len(text.len())?;
        self.tokenizer.encode(text, options)
    }

    /// Token ids and byte offsets of `text`, after the input-size check.
    pub fn tokenize_with_offsets(&self, text: &str, options: EncodeOptions) -> Result<Encoding> {
        self.check_input_len(text.len())?;
        self.tokenizer.encode_with_offsets(text, options)
    }

    /// Token ids of many texts, in parallel, after the batch and input-size checks.
    pub fn tokenize_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: EncodeOptions,
    ) -> Result<Vec<Vec<u32>>> {
        if texts.len() > self.options.max_batch_texts {
            return Err(Error::LimitExceeded(format!(
                "batch of {} texts is larger than max_batch_texts ({})",
                texts.len(),
                self.options.max_batch_texts
            )));
        }
        for t in texts {
            self.check_input_len(t.as_ref().len())?;
        }
        self.tokenizer.encode_batch(texts, options)
    }
}

/// The model must be able to embed every id ordinary text can tokenize to: ids the
/// tokenizer has beyond the model's logits width must all be special tokens.
fn check_vocabularies(tokenizer: &Tokenizer, engine: &Engine, file: &Path) -> Result<()> {
    let Some(model_vocab) = engine.layout().logits_vocab else {
        return Ok(());
    };
    let tokenizer_vocab = tokenizer.vocab_size();
    let uncovered = (model_vocab..tokenizer_vocab).find(|&id| !tokenizer.is_special(id as u32));
    let named_special = tokenizer
        .bos_id()
        .into_iter()
        .chain(tokenizer.eos_ids().iter().copied());
    if let Some(id) = uncovered.map(|id| id as u32).or_else(|| {
        named_special
            .into_iter()
            .find(|&id| id as usize >= model_vocab)
    }) {
        return Err(Error::invalid_model(
            file,
            format!(
                "the model's vocabulary ({model_vocab} logits) does not cover the tokenizer's ({tokenizer_vocab} ids; id {id} has no logit): tokenizer and model do not belong together"
            ),
        ));
    }
    Ok(())
}
