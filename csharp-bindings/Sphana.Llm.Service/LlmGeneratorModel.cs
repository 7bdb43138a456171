using System;
using System.IO;
using System.Text;
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
    /// Thread-safe; register it as a singleton. At most <c>maxPoolSize</c> generations run at once (each on its
    /// own ONNX Runtime session); further requests wait for a slot, and a cancelled wait ends them.
    /// </remarks>
    public sealed class LlmGeneratorModel : ILlmGeneratorModel, IDisposable
    {
        private readonly LlmModel _model;
        private readonly SemaphoreSlim _slots;
        private readonly bool _logTokenizedText;
        private readonly ILogger<LlmGeneratorModel> _logger;

        /// <summary>Loads the model.</summary>
        /// <param name="modelPath">The decoder: an <c>*.onnx</c> file (its directory must also hold the tokenizer and,
        /// ideally, config.json and generation_config.json) or a model directory.</param>
        /// <param name="tokenizerPath">A <c>tokenizer.json</c> or <c>tokenizer.model</c> in the model's directory, or that
        /// directory, or null to let the library pick (tokenizer.json first).</param>
        /// <param name="useGpu">Run on ONNX Runtime's CUDA execution provider (falling back to CPU, with a warning in the
        /// log, when ONNX Runtime cannot enable CUDA).</param>
        /// <param name="gpuDeviceId">The CUDA device.</param>
        /// <param name="maxPoolSize">How many generations run at once; each gets its own ONNX Runtime session (and copy of
        /// the weights), as the old session pool did.</param>
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

            string directory;
            string onnxFile;
            ResolveModelPath(modelPath, out directory, out onnxFile);
            var options = new LlmLoadOptions
            {
                OnnxFileName = onnxFile,
                TokenizerFormat = ResolveTokenizer(tokenizerPath, directory),
                ExecutionProvider = useGpu ? ExecutionProvider.Cuda : ExecutionProvider.Cpu,
                DeviceId = gpuDeviceId,
                AllowCpuFallback = useGpu,
                SessionCount = Math.Max(1, maxPoolSize),
            };
            if (useGpu)
            {
                _logger.LogWarning("GPU requested (device {GpuDeviceId}): the model runs on CUDA when ONNX Runtime can enable it, else on CPU", gpuDeviceId);
            }
            _model = LlmModel.Load(directory, options);
            if (!_model.CanGenerate)
            {
                _model.Dispose();
                throw new InvalidOperationException("no ONNX model was found in " + directory + " (only a tokenizer)");
            }
            _slots = new SemaphoreSlim(options.SessionCount, options.SessionCount);
            _logger.LogInformation(
                "Loaded LLM from {ModelDirectory} ({OnnxFile}): {TokenizerFormat} tokenizer, vocabulary {VocabSize}, BOS={BOS}, EOS={EOS}, context {ContextLength}, {Sessions} session(s), libsphana_llm {Version}",
                directory, onnxFile ?? "model.onnx", _model.TokenizerFormat, _model.VocabSize,
                _model.BosTokenId.HasValue ? _model.BosTokenId.Value.ToString() : "none",
                string.Join(",", _model.EosTokenIds), _model.ContextLength.HasValue ? _model.ContextLength.Value.ToString() : "unknown",
                options.SessionCount, LlmModel.NativeVersion);
        }

        /// <summary>The loaded model, for token counting and chunking with the generator's own tokenizer.</summary>
        public LlmModel Model
        {
            get { return _model; }
        }

        /// <summary>
        /// Generates greedily from <paramref name="prompt"/> (BOS added as the tokenizer says, special-token text in the
        /// prompt kept as plain text) until an EOS id of the model or <paramref name="maxTokens"/> tokens.
        /// </summary>
        /// <param name="prompt">The complete prompt. Blank gives "" without running the model.</param>
        /// <param name="maxTokens">Most tokens to generate; 0 or less gives "".</param>
        /// <param name="cancellationToken">Ends the wait for a slot, or the generation within one token.</param>
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
                if (_logTokenizedText)
                {
                    int[] ids = _model.Tokenize(prompt);
                    _logger.LogInformation("Tokenized prompt into {TokenCount} tokens: [{Tokens}]", ids.Length, string.Join(", ", ids));
                    _logger.LogInformation("Decoded tokenized text: {DecodedText}", _model.Decode(ids, false));
                }
                // Chat templates: once LlmModel has the chat API (LlmModel.Chat.cs), an instruct model's prompt goes
                // here as a user message of the model's template, so that it answers and stops at its EOS instead of
                // continuing a plain completion. Until then the prompt is used as the service builds it.
                var options = new GenerationOptions { MaxTokens = maxTokens };
                GenerationResult result;
                try
                {
                    result = await _model.CompleteAsync(prompt, options, null, cancellationToken).ConfigureAwait(false);
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
        /// libsphana_llm reads the tokenizer from the model directory, so <paramref name="tokenizerPath"/> must be in it;
        /// it only tells which file to use when both tokenizer.json and tokenizer.model are there.
        /// </summary>
        private static TokenizerFormat ResolveTokenizer(string tokenizerPath, string modelDirectory)
        {
            if (string.IsNullOrEmpty(tokenizerPath))
            {
                return TokenizerFormat.Auto;
            }
            string full = System.IO.Path.GetFullPath(tokenizerPath);
            if (Directory.Exists(full))
            {
                CheckSameDirectory(full, modelDirectory, tokenizerPath);
                return TokenizerFormat.Auto;
            }
            CheckSameDirectory(System.IO.Path.GetDirectoryName(full), modelDirectory, tokenizerPath);
            string name = System.IO.Path.GetFileName(full);
            if (string.Equals(name, "tokenizer.json", StringComparison.OrdinalIgnoreCase))
            {
                return TokenizerFormat.HfJson;
            }
            if (string.Equals(name, "tokenizer.model", StringComparison.OrdinalIgnoreCase))
            {
                return File.Exists(full) && File.Exists(System.IO.Path.Combine(modelDirectory, "tokenizer.json"))
                    ? SniffTokenizerModel(full)
                    : TokenizerFormat.Auto;
            }
            throw new ArgumentException(
                "tokenizerPath must name tokenizer.json or tokenizer.model (the names libsphana_llm looks for in the model directory), not " + name,
                "tokenizerPath");
        }

        private static void CheckSameDirectory(string tokenizerDirectory, string modelDirectory, string tokenizerPath)
        {
            string a = System.IO.Path.GetFullPath(tokenizerDirectory).TrimEnd(System.IO.Path.DirectorySeparatorChar);
            string b = System.IO.Path.GetFullPath(modelDirectory).TrimEnd(System.IO.Path.DirectorySeparatorChar);
            if (!string.Equals(a, b, StringComparison.Ordinal))
            {
                throw new ArgumentException(
                    "the tokenizer (" + tokenizerPath + ") must be in the model's directory (" + modelDirectory +
                    "): libsphana_llm loads the tokenizer and the ONNX model from one directory", "tokenizerPath");
            }
        }

        /// <summary>A tiktoken rank file is text ("base64 rank" lines); a SentencePiece model is protobuf.</summary>
        private static TokenizerFormat SniffTokenizerModel(string path)
        {
            var head = new byte[256];
            int read;
            using (FileStream stream = File.OpenRead(path))
            {
                read = stream.Read(head, 0, head.Length);
            }
            string text = Encoding.ASCII.GetString(head, 0, read);
            int newline = text.IndexOf('\n');
            string line = newline < 0 ? text : text.Substring(0, newline);
            int space = line.IndexOf(' ');
            if (space <= 0)
            {
                return TokenizerFormat.SentencePiece;
            }
            for (int i = 0; i < line.Length; i++)
            {
                char c = line[i];
                bool base64 = char.IsLetterOrDigit(c) || c == '+' || c == '/' || c == '=';
                if (i == space ? c != ' ' : !(i < space ? base64 : char.IsDigit(c)))
                {
                    return TokenizerFormat.SentencePiece;
                }
            }
            return TokenizerFormat.Tiktoken;
        }
    }
}
