using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Runtime.InteropServices;
using System.Threading;

// The model itself: loading, the ABI check, its facts and its lifetime. The rest of the class is split by concern:
// LlmModel.Tokenize.cs (tokenizing, decoding, the vocabulary), LlmModel.Generate.cs (generation from text or ids,
// and the generation core every generation method routes to), LlmModel.Chat.cs (chat templates).
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
        private readonly Llm.LogitsPositions? _logitsPositions;
        private readonly string _logitsPositionsDescription;

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
                _logitsPositions = ReadLogitsPositions(handle, out _logitsPositionsDescription);
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

        /// <summary>
        /// Whether the decoder computes logits only for the positions generation uses (by default the graph is rewritten at
        /// load so the head runs on the last position only), or null for a tokenizer-only model.
        /// </summary>
        public Llm.LogitsPositions? LogitsPositions
        {
            get { return _logitsPositions; }
        }

        /// <summary>A description of <see cref="LogitsPositions"/>: the head that was sliced, the model's own input, or why
        /// the graph was left unchanged; null for a tokenizer-only model.</summary>
        public string LogitsPositionsDescription
        {
            get { return _logitsPositionsDescription; }
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

        /// <summary>
        /// Releases the native model. Calls already running on other threads finish normally; later calls throw
        /// <see cref="ObjectDisposedException"/>. Stream decoders created from this model keep working until disposed.
        /// </summary>
        public void Dispose()
        {
            _handle.Dispose();
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

        private static Llm.LogitsPositions ReadLogitsPositions(SafeLlmModelHandle handle, out string description)
        {
            int kind;
            UIntPtr length;
            Result.Check(NativeMethods.sphana_llm_logits_positions(handle, out kind, null, UIntPtr.Zero, out length),
                "sphana_llm_logits_positions");
            var bytes = new byte[checked((int)NativeMethods.Long(length)) + 1];
            Result.Check(NativeMethods.sphana_llm_logits_positions(handle, out kind, bytes, NativeMethods.Size(bytes.Length), out length),
                "sphana_llm_logits_positions");
            description = Utf8.Decode(bytes, checked((int)NativeMethods.Long(length)));
            return (Llm.LogitsPositions)kind;
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

        // ---- array helpers shared by the partial files ----------------------------------------

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
