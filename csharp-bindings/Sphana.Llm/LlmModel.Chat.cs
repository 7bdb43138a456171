using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm
{
    // Chat templates: rendering a conversation with the model's own template (tokenizer_config.json
    // chat_template or chat_template.jinja), and generating the assistant's reply to it. The generation
    // methods mirror Generate/GenerateAsync/GenerateStream/Complete/CompleteAsync, with the same
    // cancellation and exception rules; they go through the same generation core (Run, GenerateText,
    // OnWorker, Stream) with a PromptInput that holds the encoded conversation.
    public sealed partial class LlmModel
    {
        /// <summary>
        /// Renders a conversation with the model's chat template, exactly as HF <c>transformers</c>'
        /// <c>apply_chat_template(messages, tokenize=False, add_generation_prompt=...)</c> does (templates that
        /// print today's date, such as Llama 3.x's, get the current UTC date). Works on tokenizer-only models too.
        /// </summary>
        /// <remarks>
        /// The text is for showing, logging and counting. To generate from a conversation use
        /// <see cref="GenerateChat"/> / <see cref="CompleteChat"/> rather than passing this text to
        /// <see cref="Generate(string, GenerationOptions, CancellationToken)"/> with
        /// <see cref="GenerationOptions.ParseSpecialTokens"/>: they turn only the template's own markers into special
        /// ids, whereas parsing the rendered text would also turn marker text inside the messages into control tokens.
        /// </remarks>
        /// <param name="messages">The conversation, oldest first.</param>
        /// <param name="addGenerationPrompt">End with the header of an assistant turn (e.g. "&lt;|im_start|&gt;assistant\n"),
        /// as for generating the reply; false renders the conversation as it is.</param>
        /// <returns>The prompt text, special-token markers included.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.Unsupported"/> (the model has no chat template),
        /// <see cref="SphanaLlmStatus.InvalidArgument"/> (the template refused the conversation, e.g. an unsupported role
        /// order), <see cref="SphanaLlmStatus.InvalidModel"/> (the template does not compile),
        /// <see cref="SphanaLlmStatus.LimitExceeded"/> (a message over <see cref="LlmLoadOptions.MaxInputBytes"/>).</exception>
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
        {
            EncodedChat chat = EncodedChat.Encode(messages);
            SafeLlmModelHandle handle = Handle;
            GCHandle pin;
            NativeMethods.ChatMessage[] native = chat.Pin(out pin);
            IntPtr text = IntPtr.Zero;
            try
            {
                UIntPtr length;
                int status = NativeMethods.sphana_llm_apply_chat_template_with_len(handle, native, NativeMethods.Size(native.Length),
                    addGenerationPrompt ? 1u : 0u, out text, out length);
                if (status != 0)
                {
                    throw Result.Error(status, "sphana_llm_apply_chat_template_with_len");
                }
                // The length, not strlen: a message may hold U+0000, and so the text.
                return Utf8.FromNative(text, checked((int)NativeMethods.Long(length)));
            }
            finally
            {
                if (text != IntPtr.Zero)
                {
                    NativeMethods.sphana_llm_string_free(text);
                }
                if (pin.IsAllocated)
                {
                    pin.Free();
                }
            }
        }

        /// <summary>
        /// Generates the assistant's reply to a conversation rendered with the model's chat template, and returns its
        /// text. Message contents are plain text to the model: marker text in them (e.g. "&lt;|im_end|&gt;") cannot end a
        /// turn; only the template's own markers become special ids.
        /// </summary>
        /// <param name="messages">The conversation, oldest first (usually ending with a user message).</param>
        /// <param name="options">Generation options, or null for greedy decoding of up to 256 tokens.
        /// <see cref="GenerationOptions.ParseSpecialTokens"/> and <see cref="GenerationOptions.AddSpecialTokens"/> do not
        /// apply: the template decides BOS and markers.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The reply (special tokens and the EOS that ended it left out).</returns>
        /// <exception cref="OperationCanceledException">The token ended the generation.</exception>
        /// <exception cref="SphanaLlmException">As <see cref="ApplyChatTemplate"/>, plus the generation errors
        /// (<see cref="SphanaLlmStatus.Unsupported"/> for a tokenizer-only model, <see cref="SphanaLlmStatus.ContextOverflow"/>, ...).</exception>
        public string GenerateChat(IReadOnlyList<ChatMessage> messages, GenerationOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return GenerateText(ChatPrompt(messages), options, cancellationToken);
        }

        /// <summary><see cref="GenerateChat"/> on a dedicated worker thread; the task ends as cancelled when the token ends the generation.</summary>
        /// <param name="messages">The conversation (copied now: changing the list afterwards does not affect this call).</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The reply.</returns>
        public Task<string> GenerateChatAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            PromptInput prompt = ChatPrompt(messages);
            ThrowIfDisposed();
            return OnWorker(() => GenerateText(prompt, options, cancellationToken), cancellationToken);
        }

        /// <summary>
        /// Generates the reply to a conversation and returns its text, ids, finish reason and figures
        /// (<see cref="GenerationResult.PromptTokens"/> counts the rendered conversation). Cancellation does not throw:
        /// the result has <see cref="FinishReason.Cancelled"/> and the text so far.
        /// </summary>
        /// <param name="messages">The conversation, oldest first.</param>
        /// <param name="options">Generation options, or null for the defaults (ParseSpecialTokens/AddSpecialTokens do not apply).</param>
        /// <param name="onText">Receives the text as it is generated, on the generating thread. An exception it throws
        /// stops the generation and is rethrown by this method.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result.</returns>
        public GenerationResult CompleteChat(IReadOnlyList<ChatMessage> messages, GenerationOptions options = null,
            Action<string> onText = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(ChatPrompt(messages), options, onText, cancellationToken);
        }

        /// <summary><see cref="CompleteChat"/> on a dedicated worker thread (cancellation gives a Cancelled result, not a cancelled task).</summary>
        /// <param name="messages">The conversation (copied now).</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated, on the worker thread.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result.</returns>
        public Task<GenerationResult> CompleteChatAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions options = null,
            Action<string> onText = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            PromptInput prompt = ChatPrompt(messages);
            ThrowIfDisposed();
            return OnWorker(() => Run(prompt, options, onText, cancellationToken), CancellationToken.None);
        }

        /// <summary>
        /// Generates the reply to a conversation on a dedicated thread and yields its text as it becomes available, like
        /// <see cref="GenerateStream(string, GenerationOptions, CancellationToken)"/>: each enumeration runs one
        /// generation, and leaving the loop early cancels it and waits for its thread.
        /// </summary>
        /// <param name="messages">The conversation (copied now).</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="cancellationToken">Ends the generation within one token; the next <c>MoveNext</c> then throws
        /// <see cref="OperationCanceledException"/>.</param>
        /// <returns>The text pieces.</returns>
        public IEnumerable<string> GenerateChatStream(IReadOnlyList<ChatMessage> messages, GenerationOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Stream(ChatPrompt(messages), options, cancellationToken);
        }

        /// <summary>
        /// Renders a conversation with the model's chat template and tool definitions, exactly as HF
        /// <c>transformers</c>' <c>apply_chat_template(messages, tools=..., tokenize=False, add_generation_prompt=...)</c>
        /// does. Tool results go back as messages with role "tool"; an assistant message that called tools is given back
        /// as the reply's <see cref="GenerationResult.Text"/>, which renders as the calls it holds.
        /// </summary>
        /// <param name="messages">The conversation, oldest first.</param>
        /// <param name="toolsJson">The tool definitions: a JSON array in the OpenAI/HF shape, each
        /// <c>{"type": "function", "function": {"name": ..., "description": ..., "parameters": {JSON Schema}}}</c>
        /// (at most <see cref="MaxToolsBytes"/> bytes of UTF-8).</param>
        /// <param name="addGenerationPrompt">End with the header of an assistant turn.</param>
        /// <returns>The prompt text, special-token markers included.</returns>
        /// <exception cref="ArgumentException"><paramref name="toolsJson"/> holds a NUL character.</exception>
        /// <exception cref="SphanaLlmException">As <see cref="ApplyChatTemplate"/>, plus
        /// <see cref="SphanaLlmStatus.InvalidArgument"/> for tool JSON that is not an array of definitions (the message
        /// names what is wrong) and <see cref="SphanaLlmStatus.Unsupported"/> when the template renders no tools.</exception>
        public string ApplyChatTemplateWithTools(IReadOnlyList<ChatMessage> messages, string toolsJson,
            bool addGenerationPrompt = true)
        {
            EncodedChat chat = EncodedChat.Encode(messages);
            EncodedTools tools = EncodedTools.Encode(toolsJson, ToolChoice.Auto);
            SafeLlmModelHandle handle = Handle;
            GCHandle pin;
            NativeMethods.ChatMessage[] native = chat.Pin(out pin);
            GCHandle jsonPin = GCHandle.Alloc(tools.Json, GCHandleType.Pinned);
            IntPtr text = IntPtr.Zero;
            try
            {
                NativeMethods.ChatTools nativeTools = tools.ToNative(jsonPin.AddrOfPinnedObject());
                UIntPtr length;
                int status = NativeMethods.sphana_llm_apply_chat_template_tools(handle, native,
                    NativeMethods.Size(native.Length), ref nativeTools, addGenerationPrompt ? 1u : 0u, out text, out length);
                if (status != 0)
                {
                    throw Result.Error(status, "sphana_llm_apply_chat_template_tools");
                }
                return Utf8.FromNative(text, checked((int)NativeMethods.Long(length)));
            }
            finally
            {
                if (text != IntPtr.Zero)
                {
                    NativeMethods.sphana_llm_string_free(text);
                }
                jsonPin.Free();
                if (pin.IsAllocated)
                {
                    pin.Free();
                }
            }
        }

        /// <summary>Most bytes of UTF-8 a tool list may have (<c>SPHANA_LLM_MAX_TOOLS_BYTES</c>).</summary>
        public const int MaxToolsBytes = 262144;

        /// <summary>
        /// Generates the reply to a conversation rendered with tool definitions, and reads the tool calls in it in the
        /// template family's format (Llama 3.x: the reply is <c>{"name": ..., "parameters": {...}}</c>; Qwen/Hermes:
        /// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c> blocks) into
        /// <see cref="GenerationResult.ToolCalls"/>, the rest of the text into <see cref="GenerationResult.Content"/>.
        /// With <see cref="ToolChoice.Required"/> the reply is one call whose arguments match the tool's schema. Otherwise
        /// as <see cref="CompleteChat"/> (streaming sends the whole reply, call text included).
        /// </summary>
        /// <param name="messages">The conversation, oldest first (tool results as "tool" messages).</param>
        /// <param name="toolsJson">The tool definitions (see <see cref="ApplyChatTemplateWithTools"/>).</param>
        /// <param name="toolChoice">Whether the model must call a tool.</param>
        /// <param name="options">Generation options, or null for the defaults; with <see cref="ToolChoice.Required"/> they
        /// must carry no constraint (<see cref="GenerationOptions.JsonSchema"/> etc.).</param>
        /// <param name="onText">Receives the text as it is generated, on the generating thread.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result, with its tool calls.</returns>
        /// <exception cref="ArgumentException"><paramref name="toolsJson"/> holds a NUL character.</exception>
        /// <exception cref="SphanaLlmException">As <see cref="CompleteChat"/> and <see cref="ApplyChatTemplateWithTools"/>;
        /// <see cref="SphanaLlmStatus.Unsupported"/> also when the template's tool-call format is not one the library reads;
        /// <see cref="SphanaLlmStatus.InvalidArgument"/> for a required call with a constraint in the options.</exception>
        public GenerationResult CompleteChatWithTools(IReadOnlyList<ChatMessage> messages, string toolsJson,
            ToolChoice toolChoice = ToolChoice.Auto, GenerationOptions options = null, Action<string> onText = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return Run(ChatPrompt(messages, toolsJson, toolChoice), options, onText, cancellationToken);
        }

        /// <summary><see cref="CompleteChatWithTools"/> on a dedicated worker thread (cancellation gives a Cancelled result).</summary>
        /// <param name="messages">The conversation (copied now).</param>
        /// <param name="toolsJson">The tool definitions.</param>
        /// <param name="toolChoice">Whether the model must call a tool.</param>
        /// <param name="options">Generation options, or null for the defaults.</param>
        /// <param name="onText">Receives the text as it is generated, on the worker thread.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The result, with its tool calls.</returns>
        public Task<GenerationResult> CompleteChatWithToolsAsync(IReadOnlyList<ChatMessage> messages, string toolsJson,
            ToolChoice toolChoice = ToolChoice.Auto, GenerationOptions options = null, Action<string> onText = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            PromptInput prompt = ChatPrompt(messages, toolsJson, toolChoice);
            ThrowIfDisposed();
            return OnWorker(() => Run(prompt, options, onText, cancellationToken), CancellationToken.None);
        }

        private static PromptInput ChatPrompt(IReadOnlyList<ChatMessage> messages, string toolsJson, ToolChoice toolChoice)
        {
            return PromptInput.FromChat(EncodedChat.Encode(messages), EncodedTools.Encode(toolsJson, toolChoice));
        }

        /// <summary>The conversation, validated and encoded now (later changes to the list do not affect the call).</summary>
        private static PromptInput ChatPrompt(IReadOnlyList<ChatMessage> messages)
        {
            return PromptInput.FromChat(EncodedChat.Encode(messages));
        }
    }
}
