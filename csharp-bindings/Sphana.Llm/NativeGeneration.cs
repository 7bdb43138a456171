using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Sphana.Llm
{
    /// <summary>What a generation starts from: UTF-8 text, token ids, or a conversation for the chat template.</summary>
    internal sealed class PromptInput
    {
        private PromptInput(byte[] text, int[] ids, EncodedChat chat, EncodedTools tools)
        {
            Text = text;
            Ids = ids;
            Chat = chat;
            Tools = tools;
        }

        internal readonly byte[] Text;
        internal readonly int[] Ids;
        internal readonly EncodedChat Chat;
        /// <summary>With <see cref="Chat"/>: the tools (the call goes to sphana_llm_generate_chat_tools), or null.</summary>
        internal readonly EncodedTools Tools;

        internal static PromptInput FromText(byte[] text)
        {
            return new PromptInput(text, null, null, null);
        }

        internal static PromptInput FromIds(int[] ids)
        {
            return new PromptInput(null, ids, null, null);
        }

        internal static PromptInput FromChat(EncodedChat chat)
        {
            return new PromptInput(null, null, chat, null);
        }

        internal static PromptInput FromChat(EncodedChat chat, EncodedTools tools)
        {
            return new PromptInput(null, null, chat, tools);
        }
    }

    /// <summary>
    /// One call of <c>sphana_llm_generate</c> / <c>sphana_llm_generate_from_ids</c> / <c>sphana_llm_generate_chat</c>:
    /// pins what the C struct points
    /// at, routes the text callback to managed code without letting an exception cross the native frames, and
    /// turns the outputs into a <see cref="GenerationResult"/>.
    /// </summary>
    internal static class NativeGeneration
    {
        /// <summary>
        /// The one callback handed to the library. It lives in a static field for the life of the process, so it
        /// can never be collected during a native call; the per-call state travels in user_data as a GCHandle.
        /// </summary>
        private static readonly NativeMethods.TextCallback s_onText = OnText;

        private sealed class CallbackState
        {
            internal CallbackState(Action<string> onText)
            {
                Sink = onText;
            }

            internal readonly Action<string> Sink;

            /// <summary>The first exception the managed callback threw; rethrown after the native call returns.</summary>
            internal ExceptionDispatchInfo Error;
        }

        internal static GenerationResult Run(SafeLlmModelHandle model, PromptInput prompt,
            GenerationOptions options, Action<string> onText, SafeCancellationHandle cancel, int idBufferSize,
            Func<int, string> tokenText)
        {
            NativeMethods.GenerateParams parameters = (options ?? new GenerationOptions()).ToNative();
            IList<string> stopStrings = options == null ? null : options.StopStrings;
            string constraintText = null;
            int constraintKind = options == null ? 0 : options.GetConstraint(out constraintText);
            var ids = new int[idBufferSize];
            int top = (int)parameters.top_logprobs;
            bool wantLogprobs = options != null && (options.Logprobs || top > 0);
            float[] logprobs = wantLogprobs ? new float[idBufferSize] : null;
            int[] topIds = top > 0 ? new int[checked(idBufferSize * top)] : null;
            float[] topLogprobs = top > 0 ? new float[checked(idBufferSize * top)] : null;
            var stats = new NativeMethods.GenerateStats();
            stats.struct_size = (uint)Marshal.SizeOf(typeof(NativeMethods.GenerateStats));
            var state = new CallbackState(onText);
            var pins = new List<GCHandle>();
            GCHandle stateHandle = default(GCHandle);
            bool cancelReferenced = false;
            IntPtr nativeText = IntPtr.Zero;
            var nativeCalls = new NativeMethods.ToolCalls();
            IReadOnlyList<ToolCall> toolCalls = null;
            string content = null;
            SphanaLlmException failure = null;
            string text = null;
            try
            {
                if (stopStrings != null && stopStrings.Count > 0)
                {
                    var pointers = new IntPtr[stopStrings.Count];
                    for (int i = 0; i < pointers.Length; i++)
                    {
                        if (stopStrings[i] == null)
                        {
                            throw new ArgumentException("StopStrings[" + i + "] is null", "options");
                        }
                        GCHandle pin = GCHandle.Alloc(Utf8.EncodeNulTerminated(stopStrings[i]), GCHandleType.Pinned);
                        pins.Add(pin);
                        pointers[i] = pin.AddrOfPinnedObject();
                    }
                    GCHandle array = GCHandle.Alloc(pointers, GCHandleType.Pinned);
                    pins.Add(array);
                    parameters.stop_strings = array.AddrOfPinnedObject();
                    parameters.stop_string_count = NativeMethods.Size(pointers.Length);
                }
                if (constraintKind != 0)
                {
                    // The struct and its NUL-terminated text are pinned like the stop strings, freed with them.
                    var constraint = new NativeMethods.Constraint[1];
                    constraint[0].struct_size = (uint)Marshal.SizeOf(typeof(NativeMethods.Constraint));
                    constraint[0].kind = constraintKind;
                    if (constraintText != null)
                    {
                        constraint[0].text = Pin(Utf8.EncodeNulTerminated(constraintText), pins);
                    }
                    parameters.constraint = Pin(constraint, pins);
                }
                if (ids.Length > 0)
                {
                    GCHandle pin = GCHandle.Alloc(ids, GCHandleType.Pinned);
                    pins.Add(pin);
                    parameters.out_token_ids = pin.AddrOfPinnedObject();
                    parameters.out_token_ids_capacity = NativeMethods.Size(ids.Length);
                }
                if (logprobs != null && logprobs.Length > 0)
                {
                    parameters.out_logprobs = Pin(logprobs, pins);
                    parameters.out_logprobs_capacity = NativeMethods.Size(logprobs.Length);
                    if (top > 0)
                    {
                        parameters.out_top_logprob_ids = Pin(topIds, pins);
                        parameters.out_top_logprobs = Pin(topLogprobs, pins);
                    }
                }
                if (cancel != null)
                {
                    // The struct holds the raw handle, which the marshaller does not see: keep it alive by hand.
                    cancel.DangerousAddRef(ref cancelReferenced);
                    parameters.cancel = cancel.DangerousGetHandle();
                }
                stateHandle = GCHandle.Alloc(state);
                NativeMethods.TextCallback callback = onText == null ? null : s_onText;
                int status;
                string function;
                if (prompt.Chat != null && prompt.Tools != null)
                {
                    GCHandle chatPin;
                    NativeMethods.ChatMessage[] messages = prompt.Chat.Pin(out chatPin);
                    if (chatPin.IsAllocated)
                    {
                        pins.Add(chatPin);
                    }
                    NativeMethods.ChatTools tools = prompt.Tools.ToNative(Pin(prompt.Tools.Json, pins));
                    function = "sphana_llm_generate_chat_tools";
                    status = NativeMethods.sphana_llm_generate_chat_tools(model, messages, NativeMethods.Size(messages.Length),
                        ref tools, ref parameters, callback, GCHandle.ToIntPtr(stateHandle), out nativeText, ref stats,
                        ref nativeCalls);
                    if (status == 0)
                    {
                        toolCalls = EncodedTools.ReadCalls(nativeCalls, out content);
                    }
                }
                else if (prompt.Chat != null)
                {
                    GCHandle chatPin;
                    NativeMethods.ChatMessage[] messages = prompt.Chat.Pin(out chatPin);
                    if (chatPin.IsAllocated)
                    {
                        pins.Add(chatPin);
                    }
                    function = "sphana_llm_generate_chat";
                    status = NativeMethods.sphana_llm_generate_chat(model, messages, NativeMethods.Size(messages.Length),
                        ref parameters, callback, GCHandle.ToIntPtr(stateHandle), out nativeText, ref stats);
                }
                else if (prompt.Ids != null)
                {
                    function = "sphana_llm_generate_from_ids";
                    status = NativeMethods.sphana_llm_generate_from_ids(model, prompt.Ids, NativeMethods.Size(prompt.Ids.Length),
                        ref parameters, callback, GCHandle.ToIntPtr(stateHandle), out nativeText, ref stats);
                }
                else
                {
                    function = "sphana_llm_generate";
                    status = NativeMethods.sphana_llm_generate(model, prompt.Text, NativeMethods.Size(prompt.Text.Length),
                        ref parameters, callback, GCHandle.ToIntPtr(stateHandle), out nativeText, ref stats);
                }
                if (status != 0)
                {
                    failure = Result.Error(status, function); // same thread, nothing called in between
                }
                else
                {
                    // text_len, not strlen: the model may have generated U+0000.
                    text = Utf8.FromNative(nativeText, checked((int)NativeMethods.Long(stats.text_len)));
                }
                GC.KeepAlive(callback);
            }
            finally
            {
                if (nativeText != IntPtr.Zero)
                {
                    NativeMethods.sphana_llm_string_free(nativeText);
                }
                NativeMethods.sphana_llm_tool_calls_free(ref nativeCalls);
                if (stateHandle.IsAllocated)
                {
                    stateHandle.Free();
                }
                if (cancelReferenced)
                {
                    cancel.DangerousRelease();
                }
                foreach (GCHandle pin in pins)
                {
                    pin.Free();
                }
            }
            if (state.Error != null)
            {
                // What the caller's code threw is what stopped the generation: it wins.
                state.Error.Throw();
            }
            if (failure != null)
            {
                throw failure;
            }
            long generated = NativeMethods.Long(stats.generated_tokens);
            int kept = (int)Math.Min(generated, ids.Length);
            if (kept != ids.Length)
            {
                Array.Resize(ref ids, kept);
            }
            IReadOnlyList<TokenLogprob> tokenLogprobs = logprobs == null
                ? (IReadOnlyList<TokenLogprob>)new TokenLogprob[0]
                : TokenLogprob.FromNative(ids, logprobs, topIds, topLogprobs, top, kept, tokenText);
            return new GenerationResult(text, ids, tokenLogprobs, stats, toolCalls, content);
        }

        /// <summary>Pins <paramref name="array"/> for the call (freed with the other pins).</summary>
        private static IntPtr Pin(Array array, List<GCHandle> pins)
        {
            GCHandle pin = GCHandle.Alloc(array, GCHandleType.Pinned);
            pins.Add(pin);
            return pin.AddrOfPinnedObject();
        }

        /// <summary>Runs on the generating thread, inside the native call: must not throw.</summary>
        private static int OnText(IntPtr text, UIntPtr length, IntPtr userData)
        {
            CallbackState state = null;
            try
            {
                state = (CallbackState)GCHandle.FromIntPtr(userData).Target;
                if (state.Error != null)
                {
                    return 1;
                }
                long n = NativeMethods.Long(length);
                if (n > 0)
                {
                    state.Sink(Utf8.FromNative(text, checked((int)n)));
                }
                return 0;
            }
            catch (Exception e)
            {
                if (state != null && state.Error == null)
                {
                    state.Error = ExceptionDispatchInfo.Capture(e);
                }
                return 1; // stop: finish reason Cancelled, then Run rethrows
            }
        }
    }
}
