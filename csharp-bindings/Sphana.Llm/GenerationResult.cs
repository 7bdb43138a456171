using System.Collections.Generic;

namespace Sphana.Llm
{
    /// <summary>Why a generation ended (the C constants <c>SPHANA_LLM_FINISH_*</c>).</summary>
    public enum FinishReason
    {
        /// <summary>The model produced one of its end-of-sequence ids.</summary>
        Eos = 0,

        /// <summary>The text reached one of the stop strings (not included in the text).</summary>
        StopString = 1,

        /// <summary><see cref="GenerationOptions.MaxTokens"/> tokens were generated.</summary>
        Length = 2,

        /// <summary>Cancelled through the CancellationToken, or a text callback or stream consumer stopped it.</summary>
        Cancelled = 3,

        /// <summary>The model's context window (config.json <c>max_position_embeddings</c>) is full.</summary>
        ContextFull = 4,

        /// <summary>
        /// <see cref="GenerationOptions.MaxTokens"/> tokens were generated before the text matched the constraint
        /// (<see cref="GenerationOptions.JsonSchema"/>, <see cref="GenerationOptions.Regex"/>,
        /// <see cref="GenerationOptions.Grammar"/>, <see cref="GenerationOptions.JsonObject"/>); the text is the partial one.
        /// </summary>
        ConstraintIncomplete = 5,
    }

    /// <summary>The outcome of one generation: the text, the ids, why it ended, and the figures.</summary>
    public sealed class GenerationResult
    {
        internal GenerationResult(string text, int[] tokenIds, IReadOnlyList<TokenLogprob> logprobs,
            NativeMethods.GenerateStats stats, IReadOnlyList<ToolCall> toolCalls, string content)
        {
            Text = text;
            ToolCalls = toolCalls ?? new ToolCall[0];
            Content = content ?? text;
            TokenIds = tokenIds;
            Logprobs = logprobs;
            FinishReason = (FinishReason)stats.finish_reason;
            PromptTokens = checked((int)NativeMethods.Long(stats.prompt_tokens));
            GeneratedTokens = checked((int)NativeMethods.Long(stats.generated_tokens));
            PrefillMs = stats.prefill_ms;
            DecodeMs = stats.decode_ms;
            SessionRunMs = stats.session_run_ms;
            BatchedSteps = checked((int)NativeMethods.Long(stats.batched_steps));
            CachedTokens = checked((int)NativeMethods.Long(stats.cached_tokens));
            DraftTokens = checked((int)NativeMethods.Long(stats.draft_tokens));
            AcceptedDraftTokens = checked((int)NativeMethods.Long(stats.accepted_draft_tokens));
            ConstraintMs = stats.constraint_ms;
        }

        /// <summary>The generated text (special tokens and the stop string left out).</summary>
        public string Text { get; private set; }

        /// <summary>
        /// The tool calls read from the reply, in order, when the generation had tools
        /// (<see cref="LlmModel.CompleteChatWithTools"/>); empty when the model answered in text or had no tools.
        /// </summary>
        public IReadOnlyList<ToolCall> ToolCalls { get; private set; }

        /// <summary>
        /// With tools: the reply's text without the calls, trimmed (empty for a reply that is only calls). Without
        /// tools: <see cref="Text"/>.
        /// </summary>
        public string Content { get; private set; }

        /// <summary>The generated ids, without the EOS that ended generation.</summary>
        public IReadOnlyList<int> TokenIds { get; private set; }

        /// <summary>One per generated id when <see cref="GenerationOptions.Logprobs"/> (or
        /// <see cref="GenerationOptions.TopLogprobs"/>) asked for them; else empty.</summary>
        public IReadOnlyList<TokenLogprob> Logprobs { get; private set; }

        /// <summary>Why generation ended.</summary>
        public FinishReason FinishReason { get; private set; }

        /// <summary>Tokens in the prompt (after BOS etc.).</summary>
        public int PromptTokens { get; private set; }

        /// <summary>Tokens generated (not counting the EOS that ended generation).</summary>
        public int GeneratedTokens { get; private set; }

        /// <summary>Milliseconds of the prompt's forward pass.</summary>
        public double PrefillMs { get; private set; }

        /// <summary>Milliseconds of all later steps.</summary>
        public double DecodeMs { get; private set; }

        /// <summary>Milliseconds inside ONNX Runtime's <c>session.run</c>, prefill included.</summary>
        public double SessionRunMs { get; private set; }

        /// <summary>
        /// Decode steps that shared one <c>session.run</c> with other generations on the same model
        /// (continuous batching, see <see cref="LlmLoadOptions.MaxDecodeBatch"/>).
        /// </summary>
        public int BatchedSteps { get; private set; }

        /// <summary>Prompt positions whose KV cache came from the model's prefix cache instead of the prefill
        /// (<see cref="LlmLoadOptions.PrefixCacheBytes"/>); 0 when it is off.</summary>
        public int CachedTokens { get; private set; }

        /// <summary>Tokens drafted by prompt lookup (<see cref="GenerationOptions.PromptLookupTokens"/>).</summary>
        public int DraftTokens { get; private set; }

        /// <summary>Drafted tokens that were accepted; each saved one decode step.</summary>
        public int AcceptedDraftTokens { get; private set; }

        /// <summary>Milliseconds spent compiling the constraint (with the model's one-time token trie on its first
        /// constrained generation); 0 without one.</summary>
        public double ConstraintMs { get; private set; }

        /// <summary>Decode speed: tokens after the first per second of <see cref="DecodeMs"/> (0 when unknown).</summary>
        public double TokensPerSecond
        {
            get { return GeneratedTokens > 1 && DecodeMs > 0 ? (GeneratedTokens - 1) * 1000.0 / DecodeMs : 0; }
        }

        /// <summary>The text.</summary>
        public override string ToString()
        {
            return Text;
        }
    }
}
