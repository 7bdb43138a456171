namespace Sphana.Llm
{
    /// <summary>
    /// The status codes of the C API. Each member has the value of the C constant whose name is
    /// <c>SPHANA_LLM_</c> or <c>SPHANA_LLM_ERR_</c> followed by the member name in upper snake case
    /// (<see cref="InvalidArgument"/> is <c>SPHANA_LLM_ERR_INVALID_ARGUMENT</c> = -1), the same set
    /// as the Rust <c>Status</c> enum.
    /// </summary>
    public enum SphanaLlmStatus
    {
        /// <summary>Success (<c>SPHANA_LLM_OK</c>).</summary>
        Ok = 0,

        /// <summary>An argument is invalid: a NULL pointer where one is required, an unknown flag bit, a freed
        /// or foreign handle, a bad struct_size, a value out of its documented range.</summary>
        InvalidArgument = -1,

        /// <summary>Text passed in is not valid UTF-8.</summary>
        InvalidUtf8 = -2,

        /// <summary>The output buffer is too small (handled inside this wrapper; never thrown).</summary>
        BufferTooSmall = -3,

        /// <summary>A file or directory is missing or unreadable.</summary>
        Io = -4,

        /// <summary>A file is not a valid tokenizer, model or configuration (corrupt, truncated, wrong kind).</summary>
        InvalidModel = -5,

        /// <summary>A token id is negative or not in the vocabulary.</summary>
        InvalidTokenId = -6,

        /// <summary>A looked-up token does not exist.</summary>
        NotFound = -7,

        /// <summary>The loaded model cannot do this (e.g. generation on a tokenizer-only load).</summary>
        Unsupported = -8,

        /// <summary>A resource limit from the load options would be exceeded.</summary>
        LimitExceeded = -9,

        /// <summary>The prompt does not fit the model's context window.</summary>
        ContextOverflow = -10,

        /// <summary>ONNX Runtime is missing, too old, or failed while running the model.</summary>
        Runtime = -11,

        /// <summary>A bug in sphana-llm (for example a caught panic). The process can go on.</summary>
        Internal = -12,

        /// <summary>The generation's KV cache does not fit the model's budget (<see cref="LlmLoadOptions.MaxKvCacheBytes"/>):
        /// its worst case exceeds the whole budget, or other generations kept the room longer than
        /// <see cref="LlmLoadOptions.KvWaitMs"/>. Nothing was generated; retry later or lower the token limit.</summary>
        KvMemory = -13,
    }
}
