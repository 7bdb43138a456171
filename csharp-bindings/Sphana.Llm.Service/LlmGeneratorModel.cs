using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Sphana.Llm;

namespace Sphana.Database.Infrastructure.Onnx
{
    /// <summary>
    /// LLM answer generation for Sphana.Database on libsphana_llm: the model's own tokenizer (exact, from
    /// tokenizer.json or tokenizer.model), greedy decoding with a KV cache, stopping on the model's real EOS set.
    /// A drop-in for the ONNX Runtime based class of the same name: same namespace, constructor and interface.
    /// </summary>
    /// <remarks>
    /// Thread-safe; register it as a singleton. Concurrent requests run at once and share decode steps (continuous
    /// batching: one <c>session.run</c> computes the next token of every running generation), up to
    /// <see cref="MaxConcurrentGenerations"/> = <c>maxPoolSize</c> sessions × the model's decode batch (8); further
    /// requests wait in a first-come queue, which a cancelled token leaves at once.
    /// </remarks>
    public sealed class LlmGeneratorModel : ILlmGeneratorModel, IDisposable
    {
        private readonly LlmModel _model;
        private readonly SemaphoreSlim _slots;
        private readonly int _maxConcurrent;
        private readonly bool _logTokenizedText;
        private readonly bool _useChatTemplate;
        private readonly ILogger<LlmGeneratorModel> _logger;

        /// <summary>Loads the model; prompts are used as plain completion prompts (<see cref="UseChatTemplate"/> false).</summary>
        /// <param name="modelPath">The decoder: an <c>*.onnx</c> file (its directory should also hold config.json and
        /// generation_config.json) or a model directory.</param>
        /// <param name="tokenizerPath">A tokenizer file (<c>tokenizer.json</c> or <c>tokenizer.model</c>) or a directory holding
        /// one, in the model's directory or anywhere else; or null for the model directory's (tokenizer.json first).</param>
        /// <param name="useGpu">Run on ONNX Runtime's CUDA execution provider, falling back to CPU when ONNX Runtime cannot
        /// enable CUDA; the provider actually used is logged at load (a warning after a fallback).</param>
        /// <param name="gpuDeviceId">The CUDA device.</param>
        /// <param name="maxPoolSize">ONNX Runtime sessions, each with its own copy of the weights, as the old session pool
        /// had. More than one lets a prompt be read while the other generations decode; generations do not need a
        /// session each: up to <see cref="MaxConcurrentGenerations"/> run at once and batch their decode steps.</param>
        /// <param name="logTokenizedText">Log each prompt's token ids and their decoded text.</param>
        /// <param name="logger">The logger.</param>
        /// <exception cref="SphanaLlmException">The model or tokenizer cannot be loaded (the message says why).</exception>
        public LlmGeneratorModel(
            string modelPath,
            string tokenizerPath,
            bool useGpu,
            int gpuDeviceId,
            int maxPoolSize,
            bool logTokenizedText,
            ILogger<LlmGeneratorModel> logger)
            : this(modelPath, tokenizerPath, useGpu, gpuDeviceId, maxPoolSize, logTokenizedText, logger, false)
        {
        }

        /// <summary>Loads the model, choosing whether prompts are wrapped in the model's chat template.</summary>
        /// <param name="modelPath">The decoder: an <c>*.onnx</c> file or a model directory.</param>
        /// <param name="tokenizerPath">A tokenizer file or directory, or null for the model directory's.</param>
        /// <param name="useGpu">Run on CUDA when ONNX Runtime can enable it, else on CPU (logged).</param>
        /// <param name="gpuDeviceId">The CUDA device.</param>
        /// <param name="maxPoolSize">ONNX Runtime sessions (copies of the weights); see the other constructor.</param>
        /// <param name="logTokenizedText">Log each prompt's token ids and their decoded text.</param>
        /// <param name="logger">The logger.</param>
        /// <param name="useChatTemplate">Send each prompt as a single user message through the model's chat template
        /// (see <see cref="UseChatTemplate"/>).</param>
        /// <exception cref="SphanaLlmException">The model or tokenizer cannot be loaded (the message says why).</exception>
        public LlmGeneratorModel(
            string modelPath,
            string tokenizerPath,
            bool useGpu,
            int gpuDeviceId,
            int maxPoolSize,
            bool logTokenizedText,
            ILogger<LlmGeneratorModel> logger,
            bool useChatTemplate)
        {
            if (modelPath == null)
            {
                throw new ArgumentNullException("modelPath");
            }
            if (logger == null)
            {
                throw new ArgumentNullException("logger");
            }
            _logger = logger;
            _logTokenizedText = logTokenizedText;
            _useChatTemplate = useChatTemplate;

            string directory;
            string onnxFile;
            ResolveModelPath(modelPath, out directory, out onnxFile);
            var options = new LlmLoadOptions
            {
                OnnxFileName = onnxFile,
                TokenizerPath = ResolveTokenizer(tokenizerPath, directory),
                ExecutionProvider = useGpu ? ExecutionProvider.Cuda : ExecutionProvider.Cpu,
                DeviceId = gpuDeviceId,
                AllowCpuFallback = useGpu,
                SessionCount = Math.Max(1, maxPoolSize),
            };
            _model = LlmModel.Load(directory, options);
            if (!_model.CanGenerate)
            {
                _model.Dispose();
                throw new InvalidOperationException("no ONNX model was found in " + directory + " (only a tokenizer)");
            }
            if (useChatTemplate && !HasChatTemplate(_model))
            {
                _model.Dispose();
                throw new InvalidOperationException("useChatTemplate was requested but the tokenizer of " + directory +
                    " has no chat template (tokenizer_config.json chat_template or chat_template.jinja)");
            }
            _maxConcurrent = options.SessionCount * Math.Max(1, _model.MaxDecodeBatch.GetValueOrDefault(1));
            _slots = new SemaphoreSlim(_maxConcurrent, _maxConcurrent);
            ExecutionProvider provider = _model.ExecutionProvider.GetValueOrDefault();
            _logger.LogInformation(
                "Loaded LLM from {ModelDirectory} ({OnnxFile}), tokenizer {Tokenizer}: {TokenizerFormat}, vocabulary {VocabSize}, BOS={BOS}, EOS={EOS} ({EosSource}), context {ContextLength}, {Sessions} session(s) on {ExecutionProvider}, up to {MaxConcurrent} generations at once (decode batch {DecodeBatch}), {PromptFormat} prompts, libsphana_llm {Version}",
                directory, onnxFile ?? "model.onnx", options.TokenizerPath ?? "from the model directory", _model.TokenizerFormat,
                _model.VocabSize, _model.BosTokenId.HasValue ? _model.BosTokenId.Value.ToString() : "none",
                _model.EosTokenIds.Count > 0 ? string.Join(",", _model.EosTokenIds) : "none", DescribeEosSource(_model),
                _model.ContextLength.HasValue ? _model.ContextLength.Value.ToString() : "unknown (no config.json)",
                options.SessionCount, provider, _maxConcurrent, _model.MaxDecodeBatch.GetValueOrDefault(1),
                useChatTemplate ? "chat-template" : "plain completion", LlmModel.NativeVersion);
            if (_model.EosTokenIds.Count == 0)
            {
                _logger.LogWarning(
                    "The LLM has no end-of-sequence token (no generation_config.json, config.json or tokenizer_config.json names one and its vocabulary has no known end-of-turn token): every answer runs to maxTokens");
            }
            if (useGpu)
            {
                if (provider == ExecutionProvider.Cuda)
                {
                    _logger.LogInformation("The LLM runs on CUDA device {GpuDeviceId}", gpuDeviceId);
                }
                else
                {
                    _logger.LogWarning(
                        "GPU requested (CUDA device {GpuDeviceId}) but ONNX Runtime could not enable CUDA: the LLM runs on {ExecutionProvider}. Check that the CUDA build of ONNX Runtime and its CUDA/cuDNN libraries are installed",
                        gpuDeviceId, provider);
                }
            }
        }

        /// <summary>
        /// Whether each prompt is sent as a single user message through the model's chat template (set by the constructor;
        /// default false). An instruct model (SmolLM2, Llama 3.x Instruct) then answers as an assistant and stops at its
        /// end-of-turn token, instead of continuing a plain completion prompt until <c>maxTokens</c>. Special-token text
        /// inside the prompt stays plain text either way.
        /// </summary>
        public bool UseChatTemplate
        {
            get { return _useChatTemplate; }
        }

        /// <summary>
        /// How many generations run at once: sessions × the model's decode batch (<see cref="LlmModel.MaxDecodeBatch"/>,
        /// 8 by default; 1 for a model that cannot be batched). Requests beyond it wait in a first-come queue.
        /// </summary>
        public int MaxConcurrentGenerations
        {
            get { return _maxConcurrent; }
        }

        /// <summary>The loaded model, for token counting and chunking with the generator's own tokenizer.</summary>
        public LlmModel Model
        {
            get { return _model; }
        }

        /// <summary>
        /// Generates greedily from <paramref name="prompt"/> (BOS added as the tokenizer says, special-token text in the
        /// prompt kept as plain text) until an EOS id of the model or <paramref name="maxTokens"/> tokens. With
        /// <see cref="UseChatTemplate"/> the prompt is the single user message of the model's chat template.
        /// </summary>
        /// <param name="prompt">The complete prompt. Blank gives "" without running the model.</param>
        /// <param name="maxTokens">Most tokens to generate; 0 or less gives "".</param>
        /// <param name="cancellationToken">Ends the wait in the queue, or the generation within one token.</param>
        /// <returns>The answer, trimmed.</returns>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        /// <exception cref="SphanaLlmException">The library failed (e.g. the prompt does not fit the context window).</exception>
        public async Task<string> GenerateAnswerAsync(string prompt, int maxTokens, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (string.IsNullOrWhiteSpace(prompt) || maxTokens <= 0)
            {
                return string.Empty;
            }
            GenerationResult result = await GenerateAsync(prompt, maxTokens, cancellationToken).ConfigureAwait(false);
            return result.Text.Trim();
        }

        /// <summary>Like <see cref="GenerateAnswerAsync"/>, returning the untrimmed text with the ids, finish reason and timings.</summary>
        /// <param name="prompt">The complete prompt.</param>
        /// <param name="maxTokens">Most tokens to generate.</param>
        /// <param name="cancellationToken">Ends the wait for a slot, or the generation within one token.</param>
        /// <returns>The result.</returns>
        /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
        public async Task<GenerationResult> GenerateAsync(string prompt, int maxTokens, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (prompt == null)
            {
                throw new ArgumentNullException("prompt");
            }
            cancellationToken.ThrowIfCancellationRequested();
            await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var options = new GenerationOptions { MaxTokens = maxTokens };
                GenerationResult result;
                try
                {
                    if (_useChatTemplate)
                    {
                        var messages = new[] { ChatMessage.User(prompt) };
                        if (_logTokenizedText)
                        {
                            LogChatPrompt(messages);
                        }
                        result = await _model.CompleteChatAsync(messages, options, null, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        if (_logTokenizedText)
                        {
                            int[] ids = _model.Tokenize(prompt);
                            _logger.LogInformation("Tokenized prompt into {TokenCount} tokens: [{Tokens}]", ids.Length, string.Join(", ", ids));
                            _logger.LogInformation("Decoded tokenized text: {DecodedText}", _model.Decode(ids, false));
                        }
                        result = await _model.CompleteAsync(prompt, options, null, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (SphanaLlmException e)
                {
                    _logger.LogError(e, "LLM generation failed");
                    throw;
                }
                _logger.LogInformation(
                    "Generated {TokenCount} tokens ({FinishReason}) from a {PromptTokens}-token prompt: prefill {PrefillMs:F0} ms, decode {DecodeMs:F0} ms",
                    result.GeneratedTokens, result.FinishReason, result.PromptTokens, result.PrefillMs, result.DecodeMs);
                if (result.FinishReason == FinishReason.Cancelled)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }
                return result;
            }
            finally
            {
                _slots.Release();
            }
        }

        /// <summary>Releases the native model (generations still running finish first).</summary>
        public void Dispose()
        {
            _model.Dispose();
        }

        /// <summary>An <c>*.onnx</c> file becomes its directory plus the file name; anything else is a model directory.</summary>
        private static void ResolveModelPath(string modelPath, out string directory, out string onnxFile)
        {
            if (!Directory.Exists(modelPath) && modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
            {
                string full = System.IO.Path.GetFullPath(modelPath);
                directory = System.IO.Path.GetDirectoryName(full);
                onnxFile = System.IO.Path.GetFileName(full);
            }
            else
            {
                directory = System.IO.Path.GetFullPath(modelPath);
                onnxFile = null;
            }
        }

        /// <summary>
        /// The tokenizer to load instead of the model directory's: null when <paramref name="tokenizerPath"/> is empty or is
        /// the model directory itself, else its full path (a file, whatever its name, or a directory holding
        /// tokenizer.json / tokenizer.model). libsphana_llm detects the file's format from its contents and reads its side
        /// files (tokenizer_config.json, generation_config.json) from the file's own directory.
        /// </summary>
        private static string ResolveTokenizer(string tokenizerPath, string modelDirectory)
        {
            if (string.IsNullOrEmpty(tokenizerPath))
            {
                return null;
            }
            string full = System.IO.Path.GetFullPath(tokenizerPath);
            if (Directory.Exists(full) && SamePath(full, modelDirectory))
            {
                return null;
            }
            return full;
        }

        private static bool SamePath(string a, string b)
        {
            char[] separators = { System.IO.Path.DirectorySeparatorChar, System.IO.Path.AltDirectorySeparatorChar };
            return string.Equals(System.IO.Path.GetFullPath(a).TrimEnd(separators), System.IO.Path.GetFullPath(b).TrimEnd(separators),
                StringComparison.Ordinal);
        }

        private static string DescribeEosSource(LlmModel model)
        {
            switch (model.EosSource)
            {
                case EosSource.LoadOption:
                    return "from the load options";
                case EosSource.Vocabulary:
                    return "derived from the vocabulary's end-of-turn tokens: no generation_config.json, config.json or tokenizer_config.json names one";
                case EosSource.None:
                    return "none found";
                default:
                    return "from " + model.EosSourcePath;
            }
        }

        private static bool HasChatTemplate(LlmModel model)
        {
            try
            {
                model.ApplyChatTemplate(new[] { ChatMessage.User("test") });
                return true;
            }
            catch (SphanaLlmException e) when (e.Status == SphanaLlmStatus.Unsupported)
            {
                return false;
            }
        }

        /// <summary>
        /// logTokenizedText for a chat prompt: the rendered template and its ids with the template's markers as special
        /// ids. The generation tokenizes message contents as plain text, so when the prompt itself holds marker text the
        /// count here differs from the generation's PromptTokens (logged after it).
        /// </summary>
        private void LogChatPrompt(ChatMessage[] messages)
        {
            string rendered = _model.ApplyChatTemplate(messages);
            int[] ids = _model.Tokenize(rendered, false, true);
            _logger.LogInformation("Tokenized prompt into {TokenCount} tokens: [{Tokens}]", ids.Length, string.Join(", ", ids));
            _logger.LogInformation("Decoded tokenized text: {DecodedText}", _model.Decode(ids, false));
        }
    }
}
