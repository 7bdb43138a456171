using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm
{
    /// <summary>
    /// A loaded tokenizer, and the ONNX decoder model when the directory has one. Thread-safe: one
    /// instance is meant to be shared by every request of a process (register it as a singleton).
    /// </summary>
    /// <remarks>
    /// <para>Loading a directory without an <c>*.onnx</c> file, or a single tokenizer file, gives a
    /// tokenizer-only model: cheap, for counting and chunking; generation on it throws
    /// <see cref="SphanaLlmException"/> with <see cref="SphanaLlmStatus.Unsupported"/>.</para>
    /// <para>Cancellation: the methods that return only text (<see cref="Generate(string, GenerationOptions, CancellationToken)"/>,
    /// <see cref="GenerateAsync(string, GenerationOptions, CancellationToken)"/>, <see cref="GenerateStream(string, GenerationOptions, CancellationToken)"/>)
    /// throw <see cref="OperationCanceledException"/> when their token ends the generation, as .NET code expects.
    /// The methods that return a <see cref="GenerationResult"/> (<c>Complete</c>, <c>CompleteAsync</c>) never throw for
    /// cancellation: they return the text so far with <see cref="FinishReason.Cancelled"/>. Either way the native
    /// generation ends within one token of the cancellation. The chat methods (<c>GenerateChat</c>, <c>GenerateChatAsync</c>,
    /// <c>GenerateChatStream</c>, <c>CompleteChat</c>, <c>CompleteChatAsync</c>) follow the same rules.</para>
    /// <para>Errors from the library are <see cref="SphanaLlmException"/>; null arguments are
    /// <see cref="ArgumentNullException"/>; any method after <see cref="Dispose"/> throws
    /// <see cref="ObjectDisposedException"/>. Disposing while other threads are still generating is safe: their
    /// calls finish normally and the native model is freed when the last one returns.</para>
    /// </remarks>
    public sealed partial class LlmModel : IDisposable
    {
        private const int BufferTooSmall = (int)SphanaLlmStatus.BufferTooSmall;

        /// <summary>Largest id buffer a generation allocates (ids beyond it are counted, not kept).</summary>
        private const int MaxIdBuffer = 1 << 22;

        private static int s_abiChecked;

        private readonly SafeLlmModelHandle _handle;
        private readonly string _path;
        private readonly int _vocabSize;
        private readonly int? _bosTokenId;
        private readonly ReadOnlyCollection<int> _eosTokenIds;
        private readonly EosSource _eosSource;
        private readonly string _eosSourcePath;
        private readonly TokenizerFormat _tokenizerFormat;
        private readonly bool _canGenerate;
        private readonly int? _contextLength;
        private readonly int? _maxDecodeBatch;
        private readonly Llm.ExecutionProvider? _executionProvider;

        private LlmModel(SafeLlmModelHandle handle, string path)
        {
            _handle = handle;
            _path = path;

            UIntPtr size;
            Result.Check(NativeMethods.sphana_llm_vocab_size(handle, out size), "sphana_llm_vocab_size");
            _vocabSize = checked((int)NativeMethods.Long(size));

            int format;
            Result.Check(NativeMethods.sphana_llm_tokenizer_format(handle, out format), "sphana_llm_tokenizer_format");
            _tokenizerFormat = (TokenizerFormat)format;

            int bos;
            Result.Check(NativeMethods.sphana_llm_bos_id(handle, out bos), "sphana_llm_bos_id");
            _bosTokenId = bos < 0 ? (int?)null : bos;

            _eosTokenIds = new ReadOnlyCollection<int>(ReadEosIds(handle));
            _eosSource = ReadEosSource(handle, out _eosSourcePath);

            UIntPtr context;
            int status = NativeMethods.sphana_llm_context_length(handle, out context);
            if (status == (int)SphanaLlmStatus.Unsupported)
            {
                _canGenerate = false;
            }
            else
            {
                Result.Check(status, "sphana_llm_context_length");
                _canGenerate = true;
                int provider;
                Result.Check(NativeMethods.sphana_llm_execution_provider(handle, out provider), "sphana_llm_execution_provider");
                _executionProvider = (Llm.ExecutionProvider)provider;
                long length = NativeMethods.Long(context);
                _contextLength = length == 0 ? (int?)null : checked((int)Math.Min(length, int.MaxValue));
                UIntPtr batch;
                Result.Check(NativeMethods.sphana_llm_max_decode_batch(handle, out batch), "sphana_llm_max_decode_batch");
                _maxDecodeBatch = checked((int)NativeMethods.Long(batch));
            }
        }

        /// <summary>
        /// Loads a model directory (tokenizer file(s), optional <c>*.onnx</c> decoder, <c>config.json</c>,
        /// <c>generation_config.json</c>, <c>tokenizer_config.json</c>) or a single tokenizer file
        /// (<c>tokenizer.json</c>, or a SentencePiece / tiktoken <c>tokenizer.model</c>).
        /// </summary>
        /// <param name="path">The directory or file.</param>
        /// <param name="options">Load options, or null for the defaults.</param>
        /// <returns>The model; dispose it when done.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.Io"/> (missing path, no tokenizer file),
        /// <see cref="SphanaLlmStatus.InvalidModel"/> (corrupt files), <see cref="SphanaLlmStatus.Runtime"/> (ONNX Runtime
        /// missing, too old, or rejecting the model; CUDA unavailable), <see cref="SphanaLlmStatus.InvalidArgument"/> (bad options).</exception>
        public static LlmModel Load(string path, LlmLoadOptions options = null)
        {
            if (path == null)
            {
                throw new ArgumentNullException("path");
            }
            EnsureAbi();
            NativeMethods.LoadOptions native = (options ?? new LlmLoadOptions()).ToNative();
            var pins = new List<GCHandle>(3);
            SafeLlmModelHandle handle;
            try
            {
                if (options != null)
                {
                    native.ort_library_path = PinPath(options.OrtLibraryPath, pins);
                    native.onnx_file_name = PinPath(options.OnnxFileName, pins);
                    native.tokenizer_path = PinPath(options.TokenizerPath, pins);
                    if (options.EosTokenIds != null)
                    {
                        // A non-NULL pointer even for an empty array: "no EOS at all" differs from "not set".
                        GCHandle ids = GCHandle.Alloc(options.EosTokenIds.Length == 0 ? new int[1] : (int[])options.EosTokenIds.Clone(),
                            GCHandleType.Pinned);
                        pins.Add(ids);
                        native.eos_token_ids = ids.AddrOfPinnedObject();
                    }
                }
                int status = NativeMethods.sphana_llm_load(Utf8.EncodeNulTerminated(path), ref native, out handle);
                handle = SafeLlmModelHandle.Adopt(status, handle, "sphana_llm_load");
            }
            finally
            {
                foreach (GCHandle pin in pins)
                {
                    pin.Free();
                }
            }
            try
            {
                return new LlmModel(handle, path);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>A NUL-terminated UTF-8 copy of <paramref name="path"/>, pinned until the caller frees the handles (NULL for null).</summary>
        private static IntPtr PinPath(string path, List<GCHandle> pins)
        {
            if (path == null)
            {
                return IntPtr.Zero;
            }
            GCHandle pin = GCHandle.Alloc(Utf8.EncodeNulTerminated(path), GCHandleType.Pinned);
            pins.Add(pin);
            return pin.AddrOfPinnedObject();
        }

        /// <summary>The native library's version, e.g. "0.1.0".</summary>
        public static string NativeVersion
        {
            get { return Utf8.FromNativeNulTerminated(NativeMethods.sphana_llm_version()); }
        }

        /// <summary>The native library's ABI version; this wrapper needs <c>SPHANA_LLM_ABI_VERSION</c> 1.</summary>
        public static int NativeAbiVersion
        {
            get { return (int)NativeMethods.sphana_llm_abi_version(); }
        }

        /// <summary>The path this model was loaded from.</summary>
        public string Path
        {
            get { return _path; }
        }

        /// <summary>Vocabulary size: all ids, added and special tokens included.</summary>
        public int VocabSize
        {
            get { return _vocabSize; }
        }

        /// <summary>The beginning-of-sequence id, or null when the tokenizer has none.</summary>
        public int? BosTokenId
        {
            get { return _bosTokenId; }
        }

        /// <summary>
        /// The end-of-sequence ids generation stops on, from the first source that names them: the
        /// <see cref="LlmLoadOptions.EosTokenIds"/> option; the model directory's <c>generation_config.json</c>, then its
        /// <c>config.json</c>; the tokenizer directory's <c>generation_config.json</c>, <c>config.json</c>,
        /// <c>tokenizer_config.json</c>; the tokenizer file's own end piece; else derived from the vocabulary's special
        /// end-of-turn / end-of-text tokens (a folder with only the ONNX file and Llama 3.2's <c>tokenizer.json</c>:
        /// 128001, 128008, 128009). <see cref="EosSource"/> says which. May be empty.
        /// </summary>
        public IReadOnlyList<int> EosTokenIds
        {
            get { return _eosTokenIds; }
        }

        /// <summary>Where <see cref="EosTokenIds"/> came from.</summary>
        public EosSource EosSource
        {
            get { return _eosSource; }
        }

        /// <summary>The file <see cref="EosTokenIds"/> came from, or null (load option, vocabulary, none).</summary>
        public string EosSourcePath
        {
            get { return _eosSourcePath; }
        }

        /// <summary>The tokenizer format that was loaded.</summary>
        public TokenizerFormat TokenizerFormat
        {
            get { return _tokenizerFormat; }
        }

        /// <summary>Whether an ONNX model was loaded (false: tokenizer-only).</summary>
        public bool CanGenerate
        {
            get { return _canGenerate; }
        }

        /// <summary>
        /// The execution provider the model actually runs on, or null for a tokenizer-only model. After a CUDA request
        /// with <see cref="LlmLoadOptions.AllowCpuFallback"/> this is <see cref="Llm.ExecutionProvider.Cpu"/> when ONNX
        /// Runtime could not enable CUDA: check it to know (and say) where the model runs.
        /// </summary>
        public Llm.ExecutionProvider? ExecutionProvider
        {
            get { return _executionProvider; }
        }

        /// <summary>The context length (the <see cref="LlmLoadOptions.ContextLength"/> option, else config.json
        /// <c>max_position_embeddings</c>), or null when unknown or tokenizer-only.</summary>
        public int? ContextLength
        {
            get { return _contextLength; }
        }

        /// <summary>
        /// How many concurrent generations share one decode step (<see cref="LlmLoadOptions.MaxDecodeBatch"/>, or 1
        /// for a model that cannot be batched); null for a tokenizer-only model. More generations take turns.
        /// </summary>
        public int? MaxDecodeBatch
        {
            get { return _maxDecodeBatch; }
        }

        private SafeLlmModelHandle Handle
        {
            get
            {
                ThrowIfDisposed();
                return _handle;
            }
        }

        /// <summary>Fails fast; the P/Invoke marshaller also refuses a handle closed in between.</summary>
        private void ThrowIfDisposed()
        {
            if (_handle.IsClosed)
            {
                throw new ObjectDisposedException(typeof(LlmModel).FullName);
            }
        }

        // ---- tokenizing ----------------------------------------------------------------------

        /// <summary>Tokenizes text into ids.</summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. as the tokenizer's configuration says.</param>
        /// <param name="parseSpecialTokens">Turn special-token text such as "&lt;|eot_id|&gt;" into the special id. Off by
        /// default so that documents and user input cannot inject control tokens.</param>
        /// <returns>The ids.</returns>
        public int[] Tokenize(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            uint flags = TokenizeFlags(addSpecialTokens, parseSpecialTokens);
            int[] ids = null;
            long n = NativeBuffer.Fill(GuessTokenCount(bytes.Length), 0, "sphana_llm_tokenize", (int capacity, out long length) =>
            {
                ids = new int[capacity];
                UIntPtr count;
                int status = NativeMethods.sphana_llm_tokenize(handle, bytes, NativeMethods.Size(bytes.Length), flags, ids,
                    NativeMethods.Size(capacity), out count);
                length = NativeMethods.Long(count);
                return status;
            });
            return Trim(ids, (int)n);
        }

        /// <summary>Counts the tokens of a text (as <see cref="Tokenize"/> would produce them) without copying them out.</summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Count BOS/EOS etc. as the tokenizer's configuration adds them.</param>
        /// <param name="parseSpecialTokens">Count special-token text as the special id.</param>
        /// <returns>The number of tokens.</returns>
        public int CountTokens(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            UIntPtr count;
            int status = NativeMethods.sphana_llm_tokenize(handle, bytes, NativeMethods.Size(bytes.Length),
                TokenizeFlags(addSpecialTokens, parseSpecialTokens), null, UIntPtr.Zero, out count);
            if (status != BufferTooSmall)
            {
                Result.Check(status, "sphana_llm_tokenize");
            }
            return checked((int)NativeMethods.Long(count));
        }

        /// <summary>
        /// Tokenizes text and tells where each token is in it, in UTF-16 code units of <paramref name="text"/>
        /// (<c>text.Substring(span.Start, span.Length)</c>), e.g. to cut documents into chunks of N tokens.
        /// </summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. (they get empty spans).</param>
        /// <param name="parseSpecialTokens">Turn special-token text into the special id.</param>
        /// <returns>One span per token, in order.</returns>
        public TokenSpan[] TokenizeWithOffsets(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            uint flags = TokenizeFlags(addSpecialTokens, parseSpecialTokens);
            int[] ids = null;
            NativeMethods.TokenSpan[] spans = null;
            long n = NativeBuffer.Fill(GuessTokenCount(bytes.Length), 0, "sphana_llm_tokenize_with_offsets",
                (int capacity, out long length) =>
                {
                    ids = new int[capacity];
                    spans = new NativeMethods.TokenSpan[capacity];
                    UIntPtr count;
                    int status = NativeMethods.sphana_llm_tokenize_with_offsets(handle, bytes, NativeMethods.Size(bytes.Length),
                        flags, ids, spans, NativeMethods.Size(capacity), out count);
                    length = NativeMethods.Long(count);
                    return status;
                });
            var map = new Utf16OffsetMap(text);
            var result = new TokenSpan[n];
            for (int i = 0; i < n; i++)
            {
                int start = map.ToUtf16(NativeMethods.Long(spans[i].start), false);
                int end = map.ToUtf16(NativeMethods.Long(spans[i].end), true);
                result[i] = new TokenSpan(ids[i], start, end);
            }
            return result;
        }

        /// <summary>Tokenizes many texts in parallel (one native worker per core) with the same flags.</summary>
        /// <param name="texts">The texts.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. to each text.</param>
        /// <param name="parseSpecialTokens">Turn special-token text into the special id.</param>
        /// <returns>The ids of each text, in order.</returns>
        public int[][] TokenizeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (texts == null)
            {
                throw new ArgumentNullException("texts");
            }
            SafeLlmModelHandle handle = Handle;
            int count = texts.Count;
            var pins = new GCHandle[count];
            var pointers = new IntPtr[count];
            var lengths = new UIntPtr[count];
            NativeMethods.TokenBatch batch;
            int status;
            try
            {
                for (int i = 0; i < count; i++)
                {
                    if (texts[i] == null)
                    {
                        throw new ArgumentException("texts[" + i + "] is null", "texts");
                    }
                    byte[] bytes = Utf8.Encode(texts[i]);
                    pins[i] = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                    pointers[i] = pins[i].AddrOfPinnedObject();
                    lengths[i] = NativeMethods.Size(bytes.Length);
                }
                status = NativeMethods.sphana_llm_tokenize_batch(handle, pointers, lengths, NativeMethods.Size(count),
                    TokenizeFlags(addSpecialTokens, parseSpecialTokens), out batch);
                if (status != 0)
                {
                    throw Result.Error(status, "sphana_llm_tokenize_batch");
                }
            }
            finally
            {
                foreach (GCHandle pin in pins)
                {
                    if (pin.IsAllocated)
                    {
                        pin.Free();
                    }
                }
            }
            try
            {
                var starts = new IntPtr[count + 1];
                Marshal.Copy(batch.starts, starts, 0, count + 1);
                var result = new int[count][];
                for (int i = 0; i < count; i++)
                {
                    long start = starts[i].ToInt64();
                    int length = checked((int)(starts[i + 1].ToInt64() - start));
                    result[i] = new int[length];
                    if (length > 0)
                    {
                        Marshal.Copy(new IntPtr(batch.ids.ToInt64() + start * sizeof(int)), result[i], 0, length);
                    }
                }
                return result;
            }
            finally
            {
                NativeMethods.sphana_llm_token_batch_free(ref batch);
            }
        }

        // ---- decoding and the vocabulary ----------------------------------------------------

        /// <summary>Decodes ids to text.</summary>
        /// <param name="ids">The ids.</param>
        /// <param name="skipSpecialTokens">Leave special tokens (BOS, EOS, chat markers) out of the text.</param>
        /// <returns>The text.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.InvalidTokenId"/> for an id outside the vocabulary.</exception>
        public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = true)
        {
            if (ids == null)
            {
                throw new ArgumentNullException("ids");
            }
            SafeLlmModelHandle handle = Handle;
            int[] array = ToArray(ids);
            uint flags = skipSpecialTokens ? NativeMethods.SPHANA_LLM_DECODE_SKIP_SPECIAL : 0u;
            byte[] text = null;
            long n = NativeBuffer.Fill((int)Math.Min(array.Length * 8L + 16, int.MaxValue), 1, "sphana_llm_decode",
                (int capacity, out long length) =>
                {
                    text = new byte[capacity];
                    UIntPtr written;
                    int status = NativeMethods.sphana_llm_decode(handle, array, NativeMethods.Size(array.Length), flags, text,
                        NativeMethods.Size(capacity), out written);
                    length = NativeMethods.Long(written);
                    return status;
                });
            return Utf8.Decode(text, (int)n);
        }

        /// <summary>
        /// Creates a decoder that turns ids, one at a time, into text as soon as it is complete UTF-8 (for showing
        /// tokens as they are produced). One decoder serves one sequence at a time.
        /// </summary>
        /// <param name="skipSpecialTokens">Leave special tokens out of the text.</param>
        /// <returns>The decoder; dispose it when done (it keeps the native model alive until then).</returns>
        public StreamDecoder CreateStreamDecoder(bool skipSpecialTokens = true)
        {
            return new StreamDecoder(Handle, skipSpecialTokens);
        }

        /// <summary>The id of a token string as stored in the vocabulary (e.g. "&lt;|eot_id|&gt;", "Ġthe", "▁the").</summary>
        /// <param name="token">The vocabulary string.</param>
        /// <returns>Its id.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.NotFound"/> when there is no such token.</exception>
        public int TokenToId(string token)
        {
            int id;
            int status = LookUp(token, out id);
            if (status != 0)
            {
                throw Result.Error(status, "sphana_llm_token_to_id");
            }
            return id;
        }

        /// <summary>Like <see cref="TokenToId"/>, returning false instead of throwing when the token does not exist.</summary>
        /// <param name="token">The vocabulary string.</param>
        /// <param name="id">Its id, or -1.</param>
        /// <returns>Whether the token exists.</returns>
        public bool TryTokenToId(string token, out int id)
        {
            int status = LookUp(token, out id);
            if (status == (int)SphanaLlmStatus.NotFound)
            {
                id = -1;
                return false;
            }
            Result.Check(status, "sphana_llm_token_to_id");
            return true;
        }

        /// <summary>The vocabulary string of an id (e.g. 9906 is "Hello" in Llama 3).</summary>
        /// <param name="id">The id.</param>
        /// <returns>The string as stored in the vocabulary.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.InvalidTokenId"/> for an id outside the vocabulary.</exception>
        public string IdToToken(int id)
        {
            SafeLlmModelHandle handle = Handle;
            byte[] text = null;
            long n = NativeBuffer.Fill(64, 1, "sphana_llm_id_to_token", (int capacity, out long length) =>
            {
                text = new byte[capacity];
                UIntPtr written;
                int status = NativeMethods.sphana_llm_id_to_token(handle, id, text, NativeMethods.Size(capacity), out written);
                length = NativeMethods.Long(written);
                return status;
            });
            return Utf8.Decode(text, (int)n);
        }

        /// <summary>Whether an id is a special (control) token such as BOS, EOS or a chat marker.</summary>
        /// <param name="id">The id.</param>
        /// <returns>True for a special token.</returns>
        public bool IsSpecialToken(int id)
        {
            int special;
            Result.Check(NativeMethods.sphana_llm_is_special(Handle, id, out special), "sphana_llm_is_special");
            return special != 0;
        }

        // ---- generation ----------------------------------------------------------------------

        /// <summary>Generates a continuation of a text prompt and returns its text.</summary>
        /// <param name="prompt">The prompt (see <see cref="GenerationOptions.ParseSpecialTokens"/> for chat-formatted prompts).</param>
        /// <param name="options">Generation options, or null for greedy decoding of up to 256 tokens.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The generated text.</returns>
        /// <exception cref="OperationCanceledException">The token ended the generation.</exception>
        public string Generate(string prompt, GenerationOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPrompt(prompt);
            return GenerateText(TextPrompt(prompt), options, cancellationToken);
        }

        /// <summary>
        /// <see cref="Generate(string, GenerationOptions, CancellationToken)"/> on a dedicated worker thread, so the
        /// caller's thread (and the thread pool) is never blocked by the model.
        /// </summary>
        /// <param name="prompt">The prompt.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="cancellationToken">Ends the generation within one token; the task then ends as cancelled.</param>
        /// <returns>The generated text.</returns>
        public Task<string> GenerateAsync(string prompt, GenerationOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPrompt(prompt);
            ThrowIfDisposed();
            return OnWorker(() => GenerateText(TextPrompt(prompt), options, cancellationToken), cancellationToken);
        }

        /// <summary>
        /// Generates a continuation of a text prompt and returns the text, ids, finish reason and figures.
        /// Cancellation does not throw: the result has <see cref="FinishReason.Cancelled"/> and the text so far.
        /// </summary>
        /// <param name="prompt">The prompt.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated, on the generating thread; the pieces join to
        /// <see cref="GenerationResult.Text"/>. An exception it throws stops the generation and is rethrown by this method.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result.</returns>
        public GenerationResult Complete(string prompt, GenerationOptions options = null, Action<string> onText = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPrompt(prompt);
            return Run(TextPrompt(prompt), options, onText, cancellationToken);
        }

        /// <summary>Like <see cref="Complete(string, GenerationOptions, Action{string}, CancellationToken)"/> with a prompt of token ids (nothing is added to them).</summary>
        /// <param name="promptIds">The prompt ids (all inside the vocabulary).</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result.</returns>
        public GenerationResult Complete(IReadOnlyList<int> promptIds, GenerationOptions options = null, Action<string> onText = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPromptIds(promptIds);
            return Run(PromptInput.FromIds(ToArray(promptIds)), options, onText, cancellationToken);
        }

        /// <summary><see cref="Complete(string, GenerationOptions, Action{string}, CancellationToken)"/> on a dedicated worker thread.</summary>
        /// <param name="prompt">The prompt.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated, on the worker thread.</param>
        /// <param name="cancellationToken">Ends the generation within one token (the result says Cancelled; the task is not cancelled).</param>
        /// <returns>The result.</returns>
        public Task<GenerationResult> CompleteAsync(string prompt, GenerationOptions options = null, Action<string> onText = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPrompt(prompt);
            ThrowIfDisposed();
            return OnWorker(() => Run(TextPrompt(prompt), options, onText, cancellationToken), CancellationToken.None);
        }

        /// <summary><see cref="Complete(IReadOnlyList{int}, GenerationOptions, Action{string}, CancellationToken)"/> on a dedicated worker thread.</summary>
        /// <param name="promptIds">The prompt ids.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated, on the worker thread.</param>
        /// <param name="cancellationToken">Ends the generation within one token (the result says Cancelled).</param>
        /// <returns>The result.</returns>
        public Task<GenerationResult> CompleteAsync(IReadOnlyList<int> promptIds, GenerationOptions options = null,
            Action<string> onText = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPromptIds(promptIds);
            PromptInput input = PromptInput.FromIds(CopyToArray(promptIds));
            ThrowIfDisposed();
            return OnWorker(() => Run(input, options, onText, cancellationToken), CancellationToken.None);
        }

        /// <summary>
        /// Generates on a dedicated thread and yields the text as it becomes available (complete UTF-8 only; the pieces
        /// join to what <see cref="Generate(string, GenerationOptions, CancellationToken)"/> returns). Each enumeration
        /// runs one generation. Leaving the loop early (break, an exception, disposing the enumerator) cancels the
        /// generation and waits for its thread to end.
        /// </summary>
        /// <param name="prompt">The prompt.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="cancellationToken">Ends the generation within one token; the next <c>MoveNext</c> then throws
        /// <see cref="OperationCanceledException"/> (pieces not yet taken are dropped).</param>
        /// <returns>The text pieces.</returns>
        public IEnumerable<string> GenerateStream(string prompt, GenerationOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPrompt(prompt);
            return Stream(TextPrompt(prompt), options, cancellationToken);
        }

        /// <summary>Like <see cref="GenerateStream(string, GenerationOptions, CancellationToken)"/> with a prompt of token ids.</summary>
        /// <param name="promptIds">The prompt ids.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The text pieces.</returns>
        public IEnumerable<string> GenerateStream(IReadOnlyList<int> promptIds, GenerationOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckPromptIds(promptIds);
            return Stream(PromptInput.FromIds(CopyToArray(promptIds)), options, cancellationToken);
        }

        /// <summary>
        /// Releases the native model. Calls already running on other threads finish normally; later calls throw
        /// <see cref="ObjectDisposedException"/>. Stream decoders created from this model keep working until disposed.
        /// </summary>
        public void Dispose()
        {
            _handle.Dispose();
        }

        // ---- internals -----------------------------------------------------------------------

        // Every generation method (text, ids or chat; sync, async or streaming) comes down to the core below:
        // Run (the result, with a cancellation flag made from the token), GenerateText (the text, throwing for the
        // token's cancellation), OnWorker (the async methods' thread), Stream (the streaming methods' enumerable,
        // whose producer calls RunWithCancellation). All reach RunNative, and NativeGeneration makes the one native call.

        /// <summary>One generation, with an optional native cancellation flag created here from the token.</summary>
        private GenerationResult Run(PromptInput prompt, GenerationOptions options, Action<string> onText,
            CancellationToken cancellationToken)
        {
            SafeLlmModelHandle handle = Handle;
            if (!cancellationToken.CanBeCanceled)
            {
                return RunNative(handle, prompt, options, onText, null);
            }
            using (SafeCancellationHandle cancel = SafeCancellationHandle.Create())
            {
                CancellationTokenRegistration registration = cancellationToken.Register(
                    state => ((SafeCancellationHandle)state).TryCancel(), cancel);
                try
                {
                    return RunNative(handle, prompt, options, onText, cancel);
                }
                finally
                {
                    // Waits for a callback already running, so the flag is not freed under it.
                    registration.Dispose();
                }
            }
        }

        /// <summary>Used by <see cref="GenerationStream"/>, which owns its cancellation flag.</summary>
        internal GenerationResult RunWithCancellation(PromptInput prompt, GenerationOptions options,
            Action<string> onText, SafeCancellationHandle cancel)
        {
            return RunNative(Handle, prompt, options, onText, cancel);
        }

        private GenerationResult RunNative(SafeLlmModelHandle handle, PromptInput prompt, GenerationOptions options,
            Action<string> onText, SafeCancellationHandle cancel)
        {
            return NativeGeneration.Run(handle, prompt, options, onText, cancel, IdBufferSize(options));
        }

        /// <summary>The text of one generation; a cancellation the token caused throws <see cref="OperationCanceledException"/>.</summary>
        private string GenerateText(PromptInput prompt, GenerationOptions options, CancellationToken cancellationToken)
        {
            GenerationResult result = Run(prompt, options, null, cancellationToken);
            if (result.FinishReason == FinishReason.Cancelled)
            {
                cancellationToken.ThrowIfCancellationRequested();
            }
            return result.Text;
        }

        /// <summary>
        /// Runs <paramref name="work"/> on a dedicated thread (never a thread-pool thread the model would block).
        /// <paramref name="taskToken"/> is the token the task itself observes: the text methods pass theirs, so the task
        /// ends as cancelled; the result methods pass none, so cancellation gives a Cancelled result instead.
        /// </summary>
        private static Task<T> OnWorker<T>(Func<T> work, CancellationToken taskToken)
        {
            return Task.Factory.StartNew(work, taskToken, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach,
                TaskScheduler.Default);
        }

        /// <summary>The streaming methods' enumerable; each enumeration runs one generation on its own thread.</summary>
        private IEnumerable<string> Stream(PromptInput prompt, GenerationOptions options, CancellationToken cancellationToken)
        {
            ThrowIfDisposed();
            return new GenerationStream(this, prompt, options, cancellationToken);
        }

        private static PromptInput TextPrompt(string prompt)
        {
            return PromptInput.FromText(Utf8.Encode(prompt));
        }

        private int IdBufferSize(GenerationOptions options)
        {
            long size = options == null ? 256 : Math.Max(0, options.MaxTokens);
            if (_contextLength.HasValue && _contextLength.Value < size)
            {
                size = _contextLength.Value;
            }
            return (int)Math.Min(size, MaxIdBuffer);
        }

        private static void CheckPrompt(string prompt)
        {
            if (prompt == null)
            {
                throw new ArgumentNullException("prompt");
            }
        }

        private static void CheckPromptIds(IReadOnlyList<int> promptIds)
        {
            if (promptIds == null)
            {
                throw new ArgumentNullException("promptIds");
            }
        }

        private int LookUp(string token, out int id)
        {
            if (token == null)
            {
                throw new ArgumentNullException("token");
            }
            byte[] bytes = Utf8.Encode(token);
            return NativeMethods.sphana_llm_token_to_id(Handle, bytes, NativeMethods.Size(bytes.Length), out id);
        }

        private static int[] ReadEosIds(SafeLlmModelHandle handle)
        {
            int[] ids = null;
            long n = NativeBuffer.Fill(8, 0, "sphana_llm_eos_ids", (int capacity, out long length) =>
            {
                ids = new int[capacity];
                UIntPtr count;
                int status = NativeMethods.sphana_llm_eos_ids(handle, ids, NativeMethods.Size(capacity), out count);
                length = NativeMethods.Long(count);
                return status;
            });
            return Trim(ids, (int)n);
        }

        private static EosSource ReadEosSource(SafeLlmModelHandle handle, out string path)
        {
            int source;
            UIntPtr length;
            Result.Check(NativeMethods.sphana_llm_eos_source(handle, out source, null, UIntPtr.Zero, out length), "sphana_llm_eos_source");
            int n = checked((int)NativeMethods.Long(length));
            path = null;
            if (n > 0)
            {
                var bytes = new byte[n + 1];
                Result.Check(NativeMethods.sphana_llm_eos_source(handle, out source, bytes, NativeMethods.Size(bytes.Length), out length),
                    "sphana_llm_eos_source");
                path = Utf8.Decode(bytes, n);
            }
            return (EosSource)source;
        }

        private static uint TokenizeFlags(bool addSpecialTokens, bool parseSpecialTokens)
        {
            return (addSpecialTokens ? NativeMethods.SPHANA_LLM_TOKENIZE_ADD_SPECIAL : 0u)
                | (parseSpecialTokens ? NativeMethods.SPHANA_LLM_TOKENIZE_PARSE_SPECIAL : 0u);
        }

        /// <summary>A first buffer size that fits almost every text (a token is at least one byte, plus a few added).</summary>
        private static int GuessTokenCount(int bytes)
        {
            return bytes <= (1 << 20) ? bytes + 16 : bytes / 3 + 16;
        }

        private static int[] Trim(int[] ids, int count)
        {
            if (count == ids.Length)
            {
                return ids;
            }
            var trimmed = new int[count];
            Array.Copy(ids, trimmed, count);
            return trimmed;
        }

        private static int[] ToArray(IReadOnlyList<int> ids)
        {
            var array = ids as int[];
            if (array != null)
            {
                return array;
            }
            array = new int[ids.Count];
            for (int i = 0; i < array.Length; i++)
            {
                array[i] = ids[i];
            }
            return array;
        }

        /// <summary>A copy the caller cannot change while another thread reads it.</summary>
        private static int[] CopyToArray(IReadOnlyList<int> ids)
        {
            var array = new int[ids.Count];
            for (int i = 0; i < array.Length; i++)
            {
                array[i] = ids[i];
            }
            return array;
        }

        private static void EnsureAbi()
        {
            if (Volatile.Read(ref s_abiChecked) != 0)
            {
                return;
            }
            uint abi = NativeMethods.sphana_llm_abi_version();
            if (abi != NativeMethods.AbiVersion)
            {
                throw new NotSupportedException(string.Format(
                    "libsphana_llm has ABI version {0}; this Sphana.Llm needs version {1}", abi, NativeMethods.AbiVersion));
            }
            Volatile.Write(ref s_abiChecked, 1);
        }
    }
}
