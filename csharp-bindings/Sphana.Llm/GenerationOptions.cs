using System;
using System.Collections.Generic;

namespace Sphana.Llm
{
    /// <summary>
    /// Generation parameters; mirrors <c>SphanaLlmGenerateParams</c>. A new instance holds the library's
    /// defaults: greedy decoding, 256 tokens, BOS added as the tokenizer says, special-token text in the
    /// prompt kept as plain text. Values out of range are rejected by the library with
    /// <see cref="SphanaLlmStatus.InvalidArgument"/>.
    /// </summary>
    public sealed class GenerationOptions
    {
        /// <summary>Creates options with the library's defaults.</summary>
        public GenerationOptions()
        {
            MaxTokens = 256;
            TopP = 1f;
            RepetitionPenalty = 1f;
            AddSpecialTokens = true;
            StopStrings = new List<string>();
            PromptLookupTokens = DefaultPromptLookupTokens;
            PromptLookupNgram = 3;
        }

        /// <summary>Most tokens to generate (default 256). The EOS that ends generation is not counted.</summary>
        public int MaxTokens { get; set; }

        /// <summary>Softmax temperature; 0 (default) is greedy decoding. Must be finite and &gt;= 0.</summary>
        public float Temperature { get; set; }

        /// <summary>Keep the k most likely tokens; 0 (default) disables.</summary>
        public int TopK { get; set; }

        /// <summary>Nucleus sampling mass in (0, 1]; 1 (default) disables.</summary>
        public float TopP { get; set; }

        /// <summary>Drop tokens less likely than MinP times the most likely; in [0, 1), 0 (default) disables.</summary>
        public float MinP { get; set; }

        /// <summary>Repetition penalty over prompt and generated ids (&gt; 0); 1 (default) disables.</summary>
        public float RepetitionPenalty { get; set; }

        /// <summary>Seed of the sampling RNG (default 0): the same seed gives the same output.</summary>
        public ulong Seed { get; set; }

        /// <summary>
        /// Generation ends when the text contains one of these (at most 64, each 1 to 1024 UTF-8 bytes);
        /// the stop string is not part of the result. Default: none.
        /// </summary>
        public IList<string> StopStrings { get; set; }

        /// <summary>
        /// Whether special-token text in a text prompt (e.g. "&lt;|im_start|&gt;") becomes the special id.
        /// Default false, so prompt text (retrieved documents, user input) cannot inject control tokens.
        /// For chat prompts prefer <see cref="LlmModel.GenerateChat"/> and friends, which parse only the template's own
        /// markers; turn this on only for a prompt whose every marker you wrote yourself. Ignored by the chat methods.
        /// </summary>
        public bool ParseSpecialTokens { get; set; }

        /// <summary>Whether to add BOS etc. to a text prompt as the tokenizer's configuration says (default true). Ignored for id
        /// prompts and by the chat methods (the template decides BOS).</summary>
        public bool AddSpecialTokens { get; set; }

        /// <summary>Keep generating past end-of-sequence ids (benchmarks). Default false.</summary>
        public bool IgnoreEos { get; set; }

        /// <summary>
        /// Report each generated token's log-probability in <see cref="GenerationResult.Logprobs"/>: the model's own
        /// distribution, before temperature and penalties (see <see cref="TokenLogprob"/>). Default false.
        /// </summary>
        public bool Logprobs { get; set; }

        /// <summary>Also report the most likely alternatives at each position, 0 (default) to
        /// <see cref="MaxTopLogprobs"/>; more than 0 turns <see cref="Logprobs"/> on.</summary>
        public int TopLogprobs { get; set; }

        /// <summary>Most alternatives per position (<c>SPHANA_LLM_MAX_TOP_LOGPROBS</c>).</summary>
        public const int MaxTopLogprobs = 20;

        /// <summary>
        /// Speculative decoding by prompt lookup: at most this many tokens per step are drafted from an earlier
        /// occurrence of the text's latest n-gram in the prompt or the answer (a RAG answer copies names, numbers and
        /// phrases from its context) and verified in one model run; 0 turns it off, at most
        /// <see cref="MaxPromptLookupTokens"/>, default <see cref="DefaultPromptLookupTokens"/>. The output stays the
        /// one without it: the same ids for greedy decoding on float models, and for sampling the same ids for the
        /// same seed. INT8 models (DynamicQuantizeLinear: one activation scale per run) may differ slightly. Works with
        /// continuous batching. <see cref="GenerationResult.DraftTokens"/> and
        /// <see cref="GenerationResult.AcceptedDraftTokens"/> tell how it went.
        /// </summary>
        public int PromptLookupTokens { get; set; }

        /// <summary>Longest n-gram prompt lookup matches, 1 to <see cref="MaxPromptLookupNgram"/> (default 3).</summary>
        public int PromptLookupNgram { get; set; }

        /// <summary>Default of <see cref="PromptLookupTokens"/> (<c>SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS</c>).</summary>
        public const int DefaultPromptLookupTokens = 0;

        /// <summary>Most draft tokens per step (<c>SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS</c>).</summary>
        public const int MaxPromptLookupTokens = 64;

        /// <summary>Longest n-gram (<c>SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM</c>).</summary>
        public const int MaxPromptLookupNgram = 16;

        /// <summary>The C struct (pointer fields are filled by the caller).</summary>
        internal NativeMethods.GenerateParams ToNative()
        {
            if (MaxTokens < 0)
            {
                throw new ArgumentOutOfRangeException("MaxTokens", MaxTokens, "MaxTokens must not be negative");
            }
            if (TopK < 0)
            {
                throw new ArgumentOutOfRangeException("TopK", TopK, "TopK must not be negative");
            }
            if (TopLogprobs < 0)
            {
                throw new ArgumentOutOfRangeException("TopLogprobs", TopLogprobs, "TopLogprobs must not be negative");
            }
            if (PromptLookupTokens < 0)
            {
                throw new ArgumentOutOfRangeException("PromptLookupTokens", PromptLookupTokens, "PromptLookupTokens must not be negative");
            }
            if (PromptLookupNgram < 0)
            {
                throw new ArgumentOutOfRangeException("PromptLookupNgram", PromptLookupNgram, "PromptLookupNgram must not be negative");
            }
            NativeMethods.GenerateParams native = NativeMethods.sphana_llm_generate_params_default();
            native.max_new_tokens = (uint)MaxTokens;
            native.temperature = Temperature;
            native.top_k = (uint)TopK;
            native.top_p = TopP;
            native.min_p = MinP;
            native.repetition_penalty = RepetitionPenalty;
            native.seed = Seed;
            native.parse_special = ParseSpecialTokens ? 1u : 0u;
            native.add_special = AddSpecialTokens ? 1u : 0u;
            native.ignore_eos = IgnoreEos ? 1u : 0u;
            native.top_logprobs = (uint)TopLogprobs;
            native.prompt_lookup_tokens = new UIntPtr((uint)PromptLookupTokens);
            native.prompt_lookup_ngram = new UIntPtr((uint)PromptLookupNgram);
            return native;
        }
    }
}
