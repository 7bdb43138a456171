using System;

namespace Sphana.Llm
{
    /// <summary>Which tokenizer file format to load (the C constants <c>SPHANA_LLM_FORMAT_*</c>).</summary>
    public enum TokenizerFormat
    {
        /// <summary>Detect it: <c>tokenizer.json</c> wins over <c>tokenizer.model</c>.</summary>
        Auto = 0,

        /// <summary>HF <c>tokenizer.json</c>.</summary>
        HfJson = 1,

        /// <summary>SentencePiece <c>tokenizer.model</c> (protobuf).</summary>
        SentencePiece = 2,

        /// <summary>tiktoken rank file <c>tokenizer.model</c> (Llama 3's original checkpoint format).</summary>
        Tiktoken = 3,
    }

    /// <summary>Where ONNX Runtime runs the model (the C constants <c>SPHANA_LLM_PROVIDER_*</c>).</summary>
    public enum ExecutionProvider
    {
        /// <summary>ONNX Runtime's CPU execution provider.</summary>
        Cpu = 0,

        /// <summary>ONNX Runtime's CUDA execution provider (<see cref="LlmLoadOptions.DeviceId"/> picks the GPU).</summary>
        Cuda = 1,
    }

    /// <summary>Whether the model computes logits only for the positions generation uses (the C constants
    /// <c>SPHANA_LLM_LOGITS_*</c>).</summary>
    public enum LogitsPositions
    {
        /// <summary>Every prompt position gets logits: the graph could not be rewritten (<see cref="LlmModel.LogitsPositionsDescription"/> says why).</summary>
        AllPositions = 0,

        /// <summary>The graph was rewritten at load (in memory) so the language-model head runs on the last position only;
        /// the logits are what the unmodified graph computes.</summary>
        Rewritten = 1,

        /// <summary>The export has its own <c>num_logits_to_keep</c> / <c>logits_to_keep</c> input, which is used.</summary>
        Native = 2,
    }

    /// <summary>Where a model's EOS set came from (the C constants <c>SPHANA_LLM_EOS_SOURCE_*</c>).</summary>
    public enum EosSource
    {
        /// <summary>Nothing names an EOS and the vocabulary has no known end token: generations run to their token limit.</summary>
        None = 0,

        /// <summary>The <see cref="LlmLoadOptions.EosTokenIds"/> load option.</summary>
        LoadOption = 1,

        /// <summary><c>eos_token_id</c> of a <c>generation_config.json</c> (<see cref="LlmModel.EosSourcePath"/>).</summary>
        GenerationConfig = 2,

        /// <summary><c>eos_token_id</c> of a <c>config.json</c>.</summary>
        Config = 3,

        /// <summary><c>eos_token</c> of <c>tokenizer_config.json</c>.</summary>
        TokenizerConfig = 4,

        /// <summary>The tokenizer file's own end piece (SentencePiece <c>&lt;/s&gt;</c>).</summary>
        TokenizerFile = 5,

        /// <summary>
        /// Derived: no file names one, so the vocabulary's special end-of-turn / end-of-text tokens (Llama 3
        /// <c>&lt;|eot_id|&gt;</c> ..., ChatML <c>&lt;|im_end|&gt;</c>, Gemma <c>&lt;end_of_turn&gt;</c>, ...).
        /// </summary>
        Vocabulary = 6,
    }

    /// <summary>
    /// Options for <see cref="LlmModel.Load(string, LlmLoadOptions)"/>; mirrors <c>SphanaLlmLoadOptions</c>.
    /// A new instance holds the library's defaults.
    /// </summary>
    public sealed class LlmLoadOptions
    {
        /// <summary>Creates options with the library's defaults.</summary>
        public LlmLoadOptions()
        {
            TokenizerFormat = TokenizerFormat.Auto;
            ExecutionProvider = ExecutionProvider.Cpu;
            SessionCount = 1;
        }

        /// <summary>The tokenizer format; default <see cref="Llm.TokenizerFormat.Auto"/>.</summary>
        public TokenizerFormat TokenizerFormat { get; set; }

        /// <summary>
        /// Absolute path of <c>libonnxruntime.so</c>, or null (default): then the <c>ORT_DYLIB_PATH</c>
        /// environment variable, then <c>libonnxruntime.so</c> next to <c>libsphana_llm.so</c> (where the
        /// Microsoft.ML.OnnxRuntime package puts it in an application's output). Only the first load in
        /// a process decides.
        /// </summary>
        public string OrtLibraryPath { get; set; }

        /// <summary>The ONNX file inside the model directory, or null (default): <c>model.onnx</c>, else the only <c>*.onnx</c>.</summary>
        public string OnnxFileName { get; set; }

        /// <summary>ONNX Runtime intra-op threads; 0 (default) lets ONNX Runtime decide.</summary>
        public int IntraOpThreads { get; set; }

        /// <summary>The execution provider; default <see cref="Llm.ExecutionProvider.Cpu"/>.</summary>
        public ExecutionProvider ExecutionProvider { get; set; }

        /// <summary>CUDA device ordinal (default 0).</summary>
        public int DeviceId { get; set; }

        /// <summary>When CUDA cannot be enabled, run on CPU instead of failing the load (default false).</summary>
        public bool AllowCpuFallback { get; set; }

        /// <summary>Largest text in UTF-8 bytes that one call accepts, or null (default) for the library's 256 MiB.</summary>
        public long? MaxInputBytes { get; set; }

        /// <summary>Most texts one <see cref="LlmModel.TokenizeBatch"/> call accepts, or null (default) for the library's 65536.</summary>
        public long? MaxBatchTexts { get; set; }

        /// <summary>
        /// ONNX Runtime sessions for the model (default 1). Each holds its own copy of the weights; with N
        /// sessions N generations run a step at once, more interleave step by step.
        /// </summary>
        public int SessionCount { get; set; }

        /// <summary>
        /// A tokenizer file (<c>tokenizer.json</c>, or a SentencePiece / tiktoken <c>tokenizer.model</c>, whatever its
        /// name: the format is detected from the contents) or a directory holding one, to use instead of the model
        /// directory's; or null (default): the model directory's. Its side files (<c>tokenizer_config.json</c> with
        /// the chat template and BOS/EOS settings, <c>special_tokens_map.json</c>, ...) are read from its own directory.
        /// The vocabulary must fit the ONNX model's (checked at load).
        /// </summary>
        public string TokenizerPath { get; set; }

        /// <summary>
        /// Most concurrent generations on this model whose decode steps share one <c>session.run</c>
        /// (continuous batching), or null (default) for the library's 8; 1 turns batching off. Float models
        /// give every generation the same greedy output as alone; with a dynamically quantized (INT8) model
        /// one activation scale covers the whole batch, so results depend on the batch mates: set 1 when each
        /// run must be reproducible on its own.
        /// </summary>
        public int? MaxDecodeBatch { get; set; }

        /// <summary>
        /// The ids that end a generation, overriding every file; or null (default): from the model directory's
        /// <c>generation_config.json</c> / <c>config.json</c>, the tokenizer's files, else derived from the vocabulary
        /// (<see cref="LlmModel.EosSource"/> says which). An empty array means no EOS at all.
        /// </summary>
        public int[] EosTokenIds { get; set; }

        /// <summary>
        /// The context length in tokens (prompt + generated), overriding <c>config.json</c>'s
        /// <c>max_position_embeddings</c>; or null (default). Without either the length is unknown and only
        /// <see cref="GenerationOptions.MaxTokens"/> limits a generation.
        /// </summary>
        public int? ContextLength { get; set; }

        /// <summary>
        /// The longest prompt chunk one prefill run reads, or null (default: the library's, 256); 0 reads the whole
        /// prompt in one run. Between chunks the decode steps of running generations get their turn, so a long RAG
        /// prompt does not stall the answers streaming on the same model, and the prefill's attention memory grows
        /// with the chunk instead of the prompt. Float models compute the same as one run up to float rounding; INT8
        /// (<c>DynamicQuantizeLinear</c>) models pick one activation scale per run, so their output depends on it.
        /// </summary>
        public int? PrefillChunkTokens { get; set; }

        /// <summary>
        /// The most bytes of KV cache the generations on this model may hold at once, or null (default): no limit. A
        /// generation reserves its worst case (prompt + <see cref="GenerationOptions.MaxTokens"/>, at most the context
        /// length, times layers × 2 × KV heads × head size × element size) before its prefill and waits up to
        /// <see cref="KvWaitMs"/> for room; then it fails with <see cref="SphanaLlmStatus.KvMemory"/>, as does one whose
        /// worst case exceeds the whole budget. Bounds what many concurrent long generations can take from the host.
        /// </summary>
        public long? MaxKvCacheBytes { get; set; }

        /// <summary>How long a generation waits for room in the KV budget, in milliseconds, or null (default: 30000);
        /// 0 fails at once.</summary>
        public long? KvWaitMs { get; set; }

        /// <summary>
        /// Bytes of host memory for the prefix cache, or null (default: 0, off). The KV cache of recent prompts and of
        /// the answers generated after them is kept (least recently used first out) and a prompt that starts like one
        /// of them prefills only the rest — a second question on the same context, the next turn of a chat (reusing the
        /// previous turn's prompt and answer); <see cref="GenerationResult.CachedTokens"/> says how
        /// many positions were reused. Float models compute what a cold prefill computes up to float rounding; INT8
        /// models' output depends on what was cached.
        /// </summary>
        public long? PrefixCacheBytes { get; set; }

        /// <summary>The C struct, starting from <c>sphana_llm_load_options_default()</c>. Pointer fields (strings,
        /// <c>eos_token_ids</c>) are set by the caller, which pins them.</summary>
        internal NativeMethods.LoadOptions ToNative()
        {
            NativeMethods.LoadOptions native = NativeMethods.sphana_llm_load_options_default();
            native.tokenizer_format = (int)TokenizerFormat;
            native.intra_op_threads = IntraOpThreads;
            native.execution_provider = (int)ExecutionProvider;
            native.device_id = DeviceId;
            native.allow_cpu_fallback = AllowCpuFallback ? 1u : 0u;
            if (MaxInputBytes.HasValue)
            {
                native.max_input_bytes = NonNegative(MaxInputBytes.Value, "MaxInputBytes");
            }
            if (MaxBatchTexts.HasValue)
            {
                native.max_batch_texts = NonNegative(MaxBatchTexts.Value, "MaxBatchTexts");
            }
            native.session_count = (uint)NonNegative(SessionCount, "SessionCount");
            if (MaxDecodeBatch.HasValue)
            {
                native.max_decode_batch = (uint)NonNegative(MaxDecodeBatch.Value, "MaxDecodeBatch");
            }
            if (EosTokenIds != null)
            {
                native.eos_token_count = (ulong)EosTokenIds.Length;
            }
            if (ContextLength.HasValue)
            {
                native.context_length = NonNegative(ContextLength.Value, "ContextLength");
            }
            if (PrefillChunkTokens.HasValue)
            {
                native.prefill_chunk_tokens = NonNegative(PrefillChunkTokens.Value, "PrefillChunkTokens");
            }
            if (MaxKvCacheBytes.HasValue)
            {
                native.max_kv_cache_bytes = NonNegative(MaxKvCacheBytes.Value, "MaxKvCacheBytes");
            }
            if (KvWaitMs.HasValue)
            {
                native.kv_wait_ms = NonNegative(KvWaitMs.Value, "KvWaitMs");
            }
            if (PrefixCacheBytes.HasValue)
            {
                native.prefix_cache_bytes = NonNegative(PrefixCacheBytes.Value, "PrefixCacheBytes");
            }
            return native;
        }

        private static ulong NonNegative(long value, string name)
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(name, value, name + " must not be negative");
            }
            return (ulong)value;
        }
    }
}
