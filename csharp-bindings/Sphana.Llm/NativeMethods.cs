// All P/Invoke declarations of libsphana_llm, one per function of include/sphana_llm.h, and
// the C structs they take. Nothing here is public: the classes beside this file wrap it.
//
// Conventions kept by every caller in this assembly:
//  - text in is UTF-8 bytes from Encoding.UTF8 with an explicit length (plus a NUL where the
//    C API wants a NUL-terminated string); text out is read from native memory by hand;
//  - size_t is UIntPtr (the library is built for 64-bit Linux, but nothing here assumes it);
//  - a failing call is turned into a SphanaLlmException by Result.Check/Result.Error right
//    after it returns, on the same thread, because sphana_llm_last_error() is per thread.
using System;
using System.Runtime.InteropServices;

namespace Sphana.Llm
{
    internal static class NativeMethods
    {
        /// <summary>Resolved as libsphana_llm.so next to the assembly or on the loader path.</summary>
        internal const string Library = "sphana_llm";

        /// <summary>The ABI version these declarations were written for (SPHANA_LLM_ABI_VERSION).</summary>
        internal const uint AbiVersion = 1;

        // Flag bits (SPHANA_LLM_TOKENIZE_*, SPHANA_LLM_DECODE_*).
        internal const uint SPHANA_LLM_TOKENIZE_ADD_SPECIAL = 1u;
        internal const uint SPHANA_LLM_TOKENIZE_PARSE_SPECIAL = 2u;
        internal const uint SPHANA_LLM_DECODE_SKIP_SPECIAL = 1u;

        // Struct kinds for sphana_llm_struct_size (SPHANA_LLM_STRUCT_*).
        internal const uint SPHANA_LLM_STRUCT_LOAD_OPTIONS = 1u;
        internal const uint SPHANA_LLM_STRUCT_GENERATE_PARAMS = 2u;
        internal const uint SPHANA_LLM_STRUCT_GENERATE_STATS = 3u;
        internal const uint SPHANA_LLM_STRUCT_TOKEN_SPAN = 4u;
        internal const uint SPHANA_LLM_STRUCT_TOKEN_BATCH = 5u;
        internal const uint SPHANA_LLM_STRUCT_CHAT_MESSAGE = 6u;
        internal const uint SPHANA_LLM_STRUCT_CONSTRAINT = 7u;
        internal const uint SPHANA_LLM_STRUCT_CHAT_TOOLS = 8u;
        internal const uint SPHANA_LLM_STRUCT_TOOL_CALL = 9u;
        internal const uint SPHANA_LLM_STRUCT_TOOL_CALLS = 10u;

        // SphanaLlmChatTools.tool_choice (SPHANA_LLM_TOOL_CHOICE_*).
        internal const uint SPHANA_LLM_TOOL_CHOICE_AUTO = 0u;
        internal const uint SPHANA_LLM_TOOL_CHOICE_REQUIRED = 1u;

        // Constraint kinds of SphanaLlmConstraint.kind (SPHANA_LLM_CONSTRAINT_*).
        internal const int SPHANA_LLM_CONSTRAINT_JSON_SCHEMA = 1;
        internal const int SPHANA_LLM_CONSTRAINT_REGEX = 2;
        internal const int SPHANA_LLM_CONSTRAINT_LARK = 3;
        internal const int SPHANA_LLM_CONSTRAINT_JSON_OBJECT = 4;

        /// <summary>SphanaLlmTextCallback.</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate int TextCallback(IntPtr text, UIntPtr len, IntPtr userData);

        /// <summary>SphanaLlmGenerateParams (160 bytes on x86-64).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct GenerateParams
        {
            public uint struct_size;
            public uint max_new_tokens;
            public float temperature;
            public uint top_k;
            public float top_p;
            public float min_p;
            public float repetition_penalty;
            public ulong seed;
            public IntPtr stop_strings;
            public UIntPtr stop_string_count;
            public uint parse_special;
            public uint add_special;
            public uint ignore_eos;
            public IntPtr cancel;
            public IntPtr out_token_ids;
            public UIntPtr out_token_ids_capacity;
            public IntPtr out_logprobs;
            public IntPtr out_top_logprob_ids;
            public IntPtr out_top_logprobs;
            public UIntPtr out_logprobs_capacity;
            public uint top_logprobs;
            public UIntPtr prompt_lookup_tokens;
            public UIntPtr prompt_lookup_ngram;
            public IntPtr constraint;
        }

        /// <summary>
        /// SphanaLlmConstraint (16 bytes on x86-64): blittable, so a one-element array of it is pinned for the call
        /// and <see cref="GenerateParams.constraint"/> points at it; <c>text</c> points at pinned NUL-terminated UTF-8.
        /// </summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct Constraint
        {
            public uint struct_size;
            public int kind;
            public IntPtr text;
        }

        /// <summary>SphanaLlmChatTools: <c>tools_json</c> points at pinned NUL-terminated UTF-8.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ChatTools
        {
            public uint struct_size;
            public uint tool_choice;
            public IntPtr tools_json;
        }

        /// <summary>SphanaLlmToolCall (both strings owned by the library).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ToolCall
        {
            public IntPtr name;
            public IntPtr arguments_json;
        }

        /// <summary>SphanaLlmToolCalls, filled by sphana_llm_generate_chat_tools; freed with sphana_llm_tool_calls_free.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ToolCalls
        {
            public IntPtr calls;
            public UIntPtr count;
            public IntPtr content;
            public UIntPtr content_len;
        }

        /// <summary>SphanaLlmGenerateStats.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct GenerateStats
        {
            public uint struct_size;
            public int finish_reason;
            public UIntPtr prompt_tokens;
            public UIntPtr generated_tokens;
            public double prefill_ms;
            public double decode_ms;
            public double session_run_ms;
            public UIntPtr text_len;
            public UIntPtr batched_steps;
            public UIntPtr cached_tokens;
            public UIntPtr draft_tokens;
            public UIntPtr accepted_draft_tokens;
            public double constraint_ms;
        }

        /// <summary>SphanaLlmLoadOptions.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct LoadOptions
        {
            public uint struct_size;
            public int tokenizer_format;
            public IntPtr ort_library_path;
            public IntPtr onnx_file_name;
            public int intra_op_threads;
            public int execution_provider;
            public int device_id;
            public uint allow_cpu_fallback;
            public ulong max_input_bytes;
            public ulong max_batch_texts;
            public uint session_count;
            public IntPtr tokenizer_path;
            public uint max_decode_batch;
            public IntPtr eos_token_ids;
            public ulong eos_token_count;
            public ulong context_length;
            public ulong prefill_chunk_tokens;
            public ulong max_kv_cache_bytes;
            public ulong kv_wait_ms;
            public ulong prefix_cache_bytes;
        }

        /// <summary>SphanaLlmChatMessage: UTF-8 role and content with explicit lengths.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ChatMessage
        {
            public IntPtr role;
            public UIntPtr role_len;
            public IntPtr content;
            public UIntPtr content_len;
        }

        /// <summary>SphanaLlmTokenSpan: a byte range [start, end).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct TokenSpan
        {
            public UIntPtr start;
            public UIntPtr end;
        }

        /// <summary>SphanaLlmTokenBatch: library-owned arrays.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct TokenBatch
        {
            public IntPtr ids;
            public IntPtr starts;
            public UIntPtr text_count;
        }

        // ---- errors and versions -------------------------------------------------------------

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr sphana_llm_last_error();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr sphana_llm_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern uint sphana_llm_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_string_free(IntPtr text);

        /// <summary>
        /// The library's sizeof of a struct (a SPHANA_LLM_STRUCT_* kind). The tests compare every struct declared
        /// here with it. Loading does not call it: libraries of ABI version 1 built before it lack the symbol, and the
        /// versioned structs may legitimately be larger in a later library of the same ABI (struct_size tells it the
        /// caller's layout).
        /// </summary>
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_struct_size(uint kind, out UIntPtr size);

        // ---- loading and model facts ---------------------------------------------------------

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern LoadOptions sphana_llm_load_options_default();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_load(byte[] pathNul, ref LoadOptions options, out SafeLlmModelHandle model);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_free(IntPtr model);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_vocab_size(SafeLlmModelHandle model, out UIntPtr size);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_tokenizer_format(SafeLlmModelHandle model, out int format);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_bos_id(SafeLlmModelHandle model, out int id);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_eos_ids(SafeLlmModelHandle model, [Out] int[] ids, UIntPtr capacity, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_eos_source(SafeLlmModelHandle model, out int source, [Out] byte[] path, UIntPtr capacity, out UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_execution_provider(SafeLlmModelHandle model, out int provider);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_logits_positions(SafeLlmModelHandle model, out int kind, [Out] byte[] text, UIntPtr capacity, out UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_context_length(SafeLlmModelHandle model, out UIntPtr length);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_max_decode_batch(SafeLlmModelHandle model, out UIntPtr batch);

        // ---- tokenizing and decoding ---------------------------------------------------------

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_tokenize(SafeLlmModelHandle model, byte[] text, UIntPtr textLen, uint flags,
            [Out] int[] ids, UIntPtr capacity, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_tokenize_with_offsets(SafeLlmModelHandle model, byte[] text, UIntPtr textLen,
            uint flags, [Out] int[] ids, [Out] TokenSpan[] spans, UIntPtr capacity, out UIntPtr count);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_tokenize_batch(SafeLlmModelHandle model, IntPtr[] texts, UIntPtr[] textLens,
            UIntPtr textCount, uint flags, out TokenBatch batch);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_token_batch_free(ref TokenBatch batch);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_decode(SafeLlmModelHandle model, int[] ids, UIntPtr count, uint flags,
            [Out] byte[] text, UIntPtr capacity, out UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_token_to_id(SafeLlmModelHandle model, byte[] token, UIntPtr tokenLen, out int id);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_id_to_token(SafeLlmModelHandle model, int id, [Out] byte[] token,
            UIntPtr capacity, out UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_is_special(SafeLlmModelHandle model, int id, out int isSpecial);

        // ---- streaming decoder ---------------------------------------------------------------

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_stream_decoder_new(SafeLlmModelHandle model, uint flags,
            out SafeStreamDecoderHandle decoder);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_stream_decoder_push(SafeStreamDecoderHandle decoder, int id,
            [Out] byte[] text, UIntPtr capacity, out UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_stream_decoder_flush(SafeStreamDecoderHandle decoder,
            [Out] byte[] text, UIntPtr capacity, out UIntPtr len);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_stream_decoder_free(IntPtr decoder);

        // ---- generation ----------------------------------------------------------------------

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern GenerateParams sphana_llm_generate_params_default();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_cancellation_new(out SafeCancellationHandle cancel);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_cancellation_cancel(SafeCancellationHandle cancel);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_cancellation_free(IntPtr cancel);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_generate(SafeLlmModelHandle model, byte[] prompt, UIntPtr promptLen,
            ref GenerateParams parameters, TextCallback onText, IntPtr userData, out IntPtr outText,
            ref GenerateStats outStats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_score(SafeLlmModelHandle model, int[] promptIds, UIntPtr promptCount,
            int[] continuationIds, UIntPtr continuationCount, uint topLogprobs, [Out] float[] outLogprobs,
            [Out] int[] outTopLogprobIds, [Out] float[] outTopLogprobs);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_generate_from_ids(SafeLlmModelHandle model, int[] promptIds,
            UIntPtr promptCount, ref GenerateParams parameters, TextCallback onText, IntPtr userData, out IntPtr outText,
            ref GenerateStats outStats);

        // ---- chat templates ------------------------------------------------------------------
        // The ChatMessage[] is blittable, so the marshaller pins it for the call; the strings it points at are
        // pinned by the caller (EncodedChat).

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_apply_chat_template_with_len(SafeLlmModelHandle model, ChatMessage[] messages,
            UIntPtr count, uint addGenerationPrompt, out IntPtr outText, out UIntPtr outLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_generate_chat(SafeLlmModelHandle model, ChatMessage[] messages, UIntPtr count,
            ref GenerateParams parameters, TextCallback onText, IntPtr userData, out IntPtr outText, ref GenerateStats outStats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_apply_chat_template_tools(SafeLlmModelHandle model, ChatMessage[] messages,
            UIntPtr count, ref ChatTools tools, uint addGenerationPrompt, out IntPtr outText, out UIntPtr outLen);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int sphana_llm_generate_chat_tools(SafeLlmModelHandle model, ChatMessage[] messages,
            UIntPtr count, ref ChatTools tools, ref GenerateParams parameters, TextCallback onText, IntPtr userData,
            out IntPtr outText, ref GenerateStats outStats, ref ToolCalls outCalls);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void sphana_llm_tool_calls_free(ref ToolCalls calls);

        // ---- helpers -------------------------------------------------------------------------

        /// <summary>This thread's last error message (read right after a failing call).</summary>
        internal static string LastErrorMessage()
        {
            return Utf8.FromNativeNulTerminated(sphana_llm_last_error());
        }

        internal static UIntPtr Size(long value)
        {
            return new UIntPtr((ulong)value);
        }

        internal static long Long(UIntPtr value)
        {
            return checked((long)value.ToUInt64());
        }
    }
}
