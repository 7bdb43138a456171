using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm
{
    // Generation from a text prompt or from token ids: the text (Generate, GenerateAsync), the result with ids and
    // figures (Complete, CompleteAsync), or the text as it is produced (GenerateStream); and the generation core
    // that these and the chat methods (LlmModel.Chat.cs) route to.
    public sealed partial class LlmModel
    {
        /// <summary>Largest id buffer a generation allocates (ids beyond it are counted, not kept).</summary>
        private const int MaxIdBuffer = 1 << 22;

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
            return NativeGeneration.Run(handle, prompt, options, onText, cancel, IdBufferSize(options), TokenText);
        }

        /// <summary>One token's text on its own, special tokens included.</summary>
        private string TokenText(int id)
        {
            return Decode(new[] { id }, false);
        }

        /// <summary>
        /// The log-probability of each token of <paramref name="continuationIds"/> after <paramref name="promptIds"/>, with
        /// the <paramref name="topLogprobs"/> most likely alternatives at each position (0 to 20), computed in one run
        /// over the continuation (<c>sphana_llm_score</c>): for groundedness checks and reranking — the sum is the
        /// continuation's log-probability. The same figures a generation of those ids reports in
        /// <see cref="GenerationResult.Logprobs"/>. Nothing is added to either list. Thread-safe; blocks the caller.
        /// </summary>
        /// <exception cref="SphanaLlmException">Empty prompt or continuation, ids outside the vocabulary, too many
        /// alternatives, a context overflow, or a runtime failure.</exception>
        public IReadOnlyList<TokenLogprob> Score(IReadOnlyList<int> promptIds, IReadOnlyList<int> continuationIds,
            int topLogprobs = 0)
        {
            if (promptIds == null)
            {
                throw new ArgumentNullException("promptIds");
            }
            if (continuationIds == null)
            {
                throw new ArgumentNullException("continuationIds");
            }
            if (topLogprobs < 0)
            {
                throw new ArgumentOutOfRangeException("topLogprobs", topLogprobs, "topLogprobs must not be negative");
            }
            ThrowIfDisposed();
            int[] prompt = new int[promptIds.Count];
            for (int i = 0; i < prompt.Length; i++)
            {
                prompt[i] = promptIds[i];
            }
            int[] continuation = new int[continuationIds.Count];
            for (int i = 0; i < continuation.Length; i++)
            {
                continuation[i] = continuationIds[i];
            }
            var logprobs = new float[continuation.Length];
            int[] topIds = topLogprobs > 0 ? new int[checked(continuation.Length * topLogprobs)] : null;
            float[] topValues = topLogprobs > 0 ? new float[checked(continuation.Length * topLogprobs)] : null;
            int status = NativeMethods.sphana_llm_score(Handle, prompt, NativeMethods.Size(prompt.Length), continuation,
                NativeMethods.Size(continuation.Length), (uint)topLogprobs, logprobs, topIds, topValues);
            Result.Check(status, "sphana_llm_score");
            return TokenLogprob.FromNative(continuation, logprobs, topIds, topValues, topLogprobs, continuation.Length,
                TokenText);
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
    }
}
