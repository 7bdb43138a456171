using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Sphana.Llm
{
    /// <summary>
    /// One message of a conversation for <see cref="LlmModel.ApplyChatTemplate"/> and the <c>GenerateChat</c>/<c>CompleteChat</c>
    /// methods: a role ("system", "user", "assistant", or whatever else the model's template knows) and its text.
    /// Immutable.
    /// </summary>
    /// <remarks>
    /// The content is always plain text to the model: special-token text in it (e.g. "&lt;|im_end|&gt;" or
    /// "&lt;|eot_id|&gt;") is tokenized as ordinary characters, so retrieved documents and user input cannot end their
    /// turn or start another. Only the markers the chat template itself writes become special ids.
    /// </remarks>
    public sealed class ChatMessage
    {
        /// <summary>Creates a message.</summary>
        /// <param name="role">The role, e.g. "user"; must not be empty.</param>
        /// <param name="content">The text ("" is allowed).</param>
        public ChatMessage(string role, string content)
        {
            if (role == null)
            {
                throw new ArgumentNullException("role");
            }
            if (role.Length == 0)
            {
                throw new ArgumentException("the role must not be empty", "role");
            }
            if (content == null)
            {
                throw new ArgumentNullException("content");
            }
            Role = role;
            Content = content;
        }

        /// <summary>The role: "system", "user", "assistant", ...</summary>
        public string Role { get; private set; }

        /// <summary>The message text.</summary>
        public string Content { get; private set; }

        /// <summary>A "system" message (instructions; templates that have a default system prompt replace it by this).</summary>
        /// <param name="content">The text.</param>
        /// <returns>The message.</returns>
        public static ChatMessage System(string content)
        {
            return new ChatMessage("system", content);
        }

        /// <summary>A "user" message.</summary>
        /// <param name="content">The text.</param>
        /// <returns>The message.</returns>
        public static ChatMessage User(string content)
        {
            return new ChatMessage("user", content);
        }

        /// <summary>An "assistant" message (an earlier reply of the model, for multi-turn conversations).</summary>
        /// <param name="content">The text.</param>
        /// <returns>The message.</returns>
        public static ChatMessage Assistant(string content)
        {
            return new ChatMessage("assistant", content);
        }

        /// <summary>"role: content".</summary>
        /// <returns>The message as text.</returns>
        public override string ToString()
        {
            return Role + ": " + Content;
        }
    }

    /// <summary>
    /// A conversation encoded once into one UTF-8 buffer (roles and contents back to back), ready to be pinned
    /// for a call. Encoding happens when a public method is called, so a later change to the caller's list does
    /// not affect an async call or a stream already created.
    /// </summary>
    internal sealed class EncodedChat
    {
        private readonly byte[] _bytes;
        private readonly int[] _spans; // per message: role offset, role length, content offset, content length

        private EncodedChat(byte[] bytes, int[] spans)
        {
            _bytes = bytes;
            _spans = spans;
        }

        internal int Count
        {
            get { return _spans.Length / 4; }
        }

        /// <exception cref="ArgumentNullException"><paramref name="messages"/> is null.</exception>
        /// <exception cref="ArgumentException">An entry is null.</exception>
        internal static EncodedChat Encode(IReadOnlyList<ChatMessage> messages)
        {
            if (messages == null)
            {
                throw new ArgumentNullException("messages");
            }
            int count = messages.Count;
            var copy = new ChatMessage[count];
            long total = 0;
            for (int i = 0; i < count; i++)
            {
                ChatMessage message = messages[i];
                if (message == null)
                {
                    throw new ArgumentException("messages[" + i + "] is null", "messages");
                }
                copy[i] = message;
                total += Utf8.ByteCount(message.Role) + (long)Utf8.ByteCount(message.Content);
            }
            if (total > int.MaxValue)
            {
                throw new ArgumentException("the messages hold more than 2 GiB of UTF-8 text", "messages");
            }
            var bytes = new byte[total];
            var spans = new int[count * 4];
            int offset = 0;
            for (int i = 0; i < count; i++)
            {
                spans[4 * i] = offset;
                spans[4 * i + 1] = Utf8.EncodeInto(copy[i].Role, bytes, offset);
                offset += spans[4 * i + 1];
                spans[4 * i + 2] = offset;
                spans[4 * i + 3] = Utf8.EncodeInto(copy[i].Content, bytes, offset);
                offset += spans[4 * i + 3];
            }
            return new EncodedChat(bytes, spans);
        }

        /// <summary>
        /// Pins the text and returns the C structs pointing into it; free <paramref name="pin"/> (when allocated)
        /// after the native call.
        /// </summary>
        internal NativeMethods.ChatMessage[] Pin(out GCHandle pin)
        {
            pin = default(GCHandle);
            var messages = new NativeMethods.ChatMessage[Count];
            if (_bytes.Length == 0)
            {
                return messages; // no messages: nothing to point at
            }
            pin = GCHandle.Alloc(_bytes, GCHandleType.Pinned);
            long start = pin.AddrOfPinnedObject().ToInt64();
            for (int i = 0; i < messages.Length; i++)
            {
                messages[i].role = new IntPtr(start + _spans[4 * i]);
                messages[i].role_len = NativeMethods.Size(_spans[4 * i + 1]);
                messages[i].content = new IntPtr(start + _spans[4 * i + 2]);
                messages[i].content_len = NativeMethods.Size(_spans[4 * i + 3]);
            }
            return messages;
        }
    }
}
