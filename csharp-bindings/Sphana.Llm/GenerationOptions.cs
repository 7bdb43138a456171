using System;
using System.Collections.Generic;

namespace Sphana.Llm
{
    /// <summary>
    /// Generation parameters; mirrors <c>SphanaLlmGenerateParams</c>. A new instance holds the library's
    /// defaults: greedy decoding, 256 tokens, BOS added as the tokenizer says, special-token text in the
    /// prompt kept as plain text, no constraint on the output. Values out of range are rejected by the library with
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

        /// <summary>
        /// Structured output: the generated text is JSON that matches this JSON Schema (the draft 2020-12 subset
        /// llguidance supports; an unsupported keyword is refused, not ignored). Before each token is sampled every
        /// token the schema forbids gets probability 0; the model's end-of-sequence ids are allowed only where the
        /// text is complete, and generation ends as soon as the schema allows nothing more. The JSON is compact
        /// (<c>", "</c> between items, <c>": "</c> after keys, no other whitespace) unless the schema has an
        /// <c>"x-guidance"</c> object with llguidance's JSON options, e.g. <c>{"whitespace_flexible": true}</c>.
        /// At most one of <see cref="JsonSchema"/>, <see cref="Regex"/>, <see cref="Grammar"/> and
        /// <see cref="JsonObject"/> may be set (else <see cref="ArgumentException"/>); an invalid schema is a
        /// <see cref="SphanaLlmException"/> with <see cref="SphanaLlmStatus.InvalidArgument"/> and a message naming
        /// the problem. When <see cref="MaxTokens"/> runs out first the result is the partial text with
        /// <see cref="FinishReason.ConstraintIncomplete"/>. Default null (no constraint).
        /// </summary>
        public string JsonSchema { get; set; }

        /// <summary>
        /// Structured output: the whole generated text matches this regular expression (Rust <c>regex</c> syntax,
        /// without look-around or back-references; no anchors needed). Works as <see cref="JsonSchema"/> does and
        /// excludes the other constraints. Default null (no constraint).
        /// </summary>
        public string Regex { get; set; }

        /// <summary>
        /// Structured output: the generated text is a sentence of this Lark grammar (llguidance's dialect, start rule
        /// <c>start</c>). Works as <see cref="JsonSchema"/> does and excludes the other constraints. Default null
        /// (no constraint).
        /// </summary>
        public string Grammar { get; set; }

        /// <summary>
        /// Structured output: the generated text is any JSON object. Works as <see cref="JsonSchema"/> does and
        /// excludes the other constraints. Default false.
        /// </summary>
        public bool JsonObject { get; set; }

        /// <summary>Most UTF-8 bytes of <see cref="JsonSchema"/>, <see cref="Regex"/> or <see cref="Grammar"/>
        /// (<c>SPHANA_LLM_MAX_CONSTRAINT_BYTES</c>).</summary>
        public const int MaxConstraintBytes = 262144;

        /// <summary>
        /// The constraint that is set: its <c>SPHANA_LLM_CONSTRAINT_*</c> kind (0 when none) and its text (null for
        /// <see cref="JsonObject"/>). Throws <see cref="ArgumentException"/> when more than one is set or the text
        /// holds a NUL character (the C API reads it as NUL-terminated).
        /// </summary>
        internal int GetConstraint(out string text)
        {
            int kind = 0;
            text = null;
            string set = null;
            Pick(ref kind, ref text, ref set, JsonSchema != null, NativeMethods.SPHANA_LLM_CONSTRAINT_JSON_SCHEMA, "JsonSchema", JsonSchema);
            Pick(ref kind, ref text, ref set, Regex != null, NativeMethods.SPHANA_LLM_CONSTRAINT_REGEX, "Regex", Regex);
            Pick(ref kind, ref text, ref set, Grammar != null, NativeMethods.SPHANA_LLM_CONSTRAINT_LARK, "Grammar", Grammar);
            Pick(ref kind, ref text, ref set, JsonObject, NativeMethods.SPHANA_LLM_CONSTRAINT_JSON_OBJECT, "JsonObject", null);
            if (text != null && text.IndexOf('\0') >= 0)
            {
                throw new ArgumentException(set + " contains a NUL character", "options");
            }
            return kind;
        }

        private static void Pick(ref int kind, ref string text, ref string set, bool isSet, int thisKind, string name,
            string thisText)
        {
            if (!isSet)
            {
                return;
            }
            if (set != null)
            {
                throw new ArgumentException("at most one constraint may be set; both " + set + " and " + name + " are", "options");
            }
            kind = thisKind;
            text = thisText;
            set = name;
        }

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
