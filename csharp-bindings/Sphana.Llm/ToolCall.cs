using System;
using System.Collections.Generic;

namespace Sphana.Llm
{
    /// <summary>Whether the model may answer in text or must call one of the tools.</summary>
    public enum ToolChoice
    {
        /// <summary>The model decides; the calls it writes are read from its reply (<c>SPHANA_LLM_TOOL_CHOICE_AUTO</c>).</summary>
        Auto = 0,

        /// <summary>
        /// The reply is exactly one call of one of the tools, constrained so that it always parses and its arguments
        /// match the tool's <c>parameters</c> schema (an object schema that names its <c>properties</c> and says nothing
        /// of others gets only those) (<c>SPHANA_LLM_TOOL_CHOICE_REQUIRED</c>). Generation options must then carry no
        /// constraint of their own.
        /// </summary>
        Required = 1,
    }

    /// <summary>One tool call read from a reply: the tool's name and its arguments as JSON text.</summary>
    public sealed class ToolCall
    {
        internal ToolCall(string name, string argumentsJson)
        {
            Name = name;
            ArgumentsJson = argumentsJson;
        }

        /// <summary>The tool's (function's) name: one of the tools given.</summary>
        public string Name { get; private set; }

        /// <summary>The arguments: a JSON object, compact (parse it with the JSON library of your choice).</summary>
        public string ArgumentsJson { get; private set; }

        /// <summary>"name(arguments)".</summary>
        public override string ToString()
        {
            return Name + "(" + ArgumentsJson + ")";
        }
    }

    /// <summary>
    /// The tools of a chat (<c>SphanaLlmChatTools</c>): the definitions as JSON text and the choice, validated and
    /// encoded when the call starts.
    /// </summary>
    internal sealed class EncodedTools
    {
        private EncodedTools(byte[] json, ToolChoice choice)
        {
            Json = json;
            Choice = choice;
        }

        /// <summary>The NUL-terminated UTF-8 of the JSON array.</summary>
        internal readonly byte[] Json;
        internal readonly ToolChoice Choice;

        /// <exception cref="ArgumentNullException"><paramref name="toolsJson"/> is null.</exception>
        /// <exception cref="ArgumentException">It holds a NUL character, or <paramref name="choice"/> is not defined.</exception>
        internal static EncodedTools Encode(string toolsJson, ToolChoice choice)
        {
            if (toolsJson == null)
            {
                throw new ArgumentNullException("toolsJson");
            }
            if (toolsJson.IndexOf('\0') >= 0)
            {
                throw new ArgumentException("toolsJson contains a NUL character", "toolsJson");
            }
            if (choice != ToolChoice.Auto && choice != ToolChoice.Required)
            {
                throw new ArgumentException("toolChoice " + (int)choice + " is not a ToolChoice", "toolChoice");
            }
            return new EncodedTools(Utf8.EncodeNulTerminated(toolsJson), choice);
        }

        /// <summary>The C struct; <paramref name="json"/> is the pinned address of <see cref="Json"/>.</summary>
        internal NativeMethods.ChatTools ToNative(IntPtr json)
        {
            var tools = new NativeMethods.ChatTools();
            tools.struct_size = (uint)System.Runtime.InteropServices.Marshal.SizeOf(typeof(NativeMethods.ChatTools));
            tools.tool_choice = Choice == ToolChoice.Required
                ? NativeMethods.SPHANA_LLM_TOOL_CHOICE_REQUIRED
                : NativeMethods.SPHANA_LLM_TOOL_CHOICE_AUTO;
            tools.tools_json = json;
            return tools;
        }

        /// <summary>Copies the library's calls (the caller frees the struct).</summary>
        internal static IReadOnlyList<ToolCall> ReadCalls(NativeMethods.ToolCalls calls, out string content)
        {
            // The length, not strlen: the model may have generated U+0000.
            content = Utf8.FromNative(calls.content, checked((int)NativeMethods.Long(calls.content_len)));
            long count = NativeMethods.Long(calls.count);
            var list = new ToolCall[count];
            int size = System.Runtime.InteropServices.Marshal.SizeOf(typeof(NativeMethods.ToolCall));
            for (int i = 0; i < list.Length; i++)
            {
                var call = (NativeMethods.ToolCall)System.Runtime.InteropServices.Marshal.PtrToStructure(
                    new IntPtr(calls.calls.ToInt64() + (long)i * size), typeof(NativeMethods.ToolCall));
                list[i] = new ToolCall(Utf8.FromNativeNulTerminated(call.name), Utf8.FromNativeNulTerminated(call.arguments_json));
            }
            return list;
        }
    }
}
