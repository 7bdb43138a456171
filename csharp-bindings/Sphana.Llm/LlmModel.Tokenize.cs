using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;

namespace Sphana.Llm
{
    // Tokenizing and decoding: ids (one text or a parallel batch), counts, UTF-16 offsets, text from ids (at once
    // or streamed), and lookups in the vocabulary. The buffers the library writes into grow through NativeBuffer.
    public sealed partial class LlmModel
    {
        private const int BufferTooSmall = (int)SphanaLlmStatus.BufferTooSmall;

        /// <summary>Tokenizes text into ids.</summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. as the tokenizer's configuration says.</param>
        /// <param name="parseSpecialTokens">Turn special-token text such as "&lt;|eot_id|&gt;" into the special id. Off by
        /// default so that documents and user input cannot inject control tokens.</param>
        /// <returns>The ids.</returns>
        public int[] Tokenize(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            uint flags = TokenizeFlags(addSpecialTokens, parseSpecialTokens);
            int[] ids = null;
            long n = NativeBuffer.Fill(GuessTokenCount(bytes.Length), 0, "sphana_llm_tokenize", (int capacity, out long length) =>
            {
                ids = new int[capacity];
                UIntPtr count;
                int status = NativeMethods.sphana_llm_tokenize(handle, bytes, NativeMethods.Size(bytes.Length), flags, ids,
                    NativeMethods.Size(capacity), out count);
                length = NativeMethods.Long(count);
                return status;
            });
            return Trim(ids, (int)n);
        }

        /// <summary>Counts the tokens of a text (as <see cref="Tokenize"/> would produce them) without copying them out.</summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Count BOS/EOS etc. as the tokenizer's configuration adds them.</param>
        /// <param name="parseSpecialTokens">Count special-token text as the special id.</param>
        /// <returns>The number of tokens.</returns>
        public int CountTokens(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            UIntPtr count;
            int status = NativeMethods.sphana_llm_tokenize(handle, bytes, NativeMethods.Size(bytes.Length),
                TokenizeFlags(addSpecialTokens, parseSpecialTokens), null, UIntPtr.Zero, out count);
            if (status != BufferTooSmall)
            {
                Result.Check(status, "sphana_llm_tokenize");
            }
            return checked((int)NativeMethods.Long(count));
        }

        /// <summary>
        /// Tokenizes text and tells where each token is in it, in UTF-16 code units of <paramref name="text"/>
        /// (<c>text.Substring(span.Start, span.Length)</c>), e.g. to cut documents into chunks of N tokens.
        /// </summary>
        /// <param name="text">The text.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. (they get empty spans).</param>
        /// <param name="parseSpecialTokens">Turn special-token text into the special id.</param>
        /// <returns>One span per token, in order.</returns>
        public TokenSpan[] TokenizeWithOffsets(string text, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            SafeLlmModelHandle handle = Handle;
            byte[] bytes = Utf8.Encode(text);
            uint flags = TokenizeFlags(addSpecialTokens, parseSpecialTokens);
            int[] ids = null;
            NativeMethods.TokenSpan[] spans = null;
            long n = NativeBuffer.Fill(GuessTokenCount(bytes.Length), 0, "sphana_llm_tokenize_with_offsets",
                (int capacity, out long length) =>
                {
                    ids = new int[capacity];
                    spans = new NativeMethods.TokenSpan[capacity];
                    UIntPtr count;
                    int status = NativeMethods.sphana_llm_tokenize_with_offsets(handle, bytes, NativeMethods.Size(bytes.Length),
                        flags, ids, spans, NativeMethods.Size(capacity), out count);
                    length = NativeMethods.Long(count);
                    return status;
                });
            var map = new Utf16OffsetMap(text);
            var result = new TokenSpan[n];
            for (int i = 0; i < n; i++)
            {
                int start = map.ToUtf16(NativeMethods.Long(spans[i].start), false);
                int end = map.ToUtf16(NativeMethods.Long(spans[i].end), true);
                result[i] = new TokenSpan(ids[i], start, end);
            }
            return result;
        }

        /// <summary>Tokenizes many texts in parallel (one native worker per core) with the same flags.</summary>
        /// <param name="texts">The texts.</param>
        /// <param name="addSpecialTokens">Add BOS/EOS etc. to each text.</param>
        /// <param name="parseSpecialTokens">Turn special-token text into the special id.</param>
        /// <returns>The ids of each text, in order.</returns>
        public int[][] TokenizeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, bool parseSpecialTokens = false)
        {
            if (texts == null)
            {
                throw new ArgumentNullException("texts");
            }
            SafeLlmModelHandle handle = Handle;
            int count = texts.Count;
            var pins = new GCHandle[count];
            var pointers = new IntPtr[count];
            var lengths = new UIntPtr[count];
            NativeMethods.TokenBatch batch;
            int status;
            try
            {
                for (int i = 0; i < count; i++)
                {
                    if (texts[i] == null)
                    {
                        throw new ArgumentException("texts[" + i + "] is null", "texts");
                    }
                    byte[] bytes = Utf8.Encode(texts[i]);
                    pins[i] = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                    pointers[i] = pins[i].AddrOfPinnedObject();
                    lengths[i] = NativeMethods.Size(bytes.Length);
                }
                status = NativeMethods.sphana_llm_tokenize_batch(handle, pointers, lengths, NativeMethods.Size(count),
                    TokenizeFlags(addSpecialTokens, parseSpecialTokens), out batch);
                if (status != 0)
                {
                    throw Result.Error(status, "sphana_llm_tokenize_batch");
                }
            }
            finally
            {
                foreach (GCHandle pin in pins)
                {
                    if (pin.IsAllocated)
                    {
                        pin.Free();
                    }
                }
            }
            try
            {
                var starts = new IntPtr[count + 1];
                Marshal.Copy(batch.starts, starts, 0, count + 1);
                var result = new int[count][];
                for (int i = 0; i < count; i++)
                {
                    long start = starts[i].ToInt64();
                    int length = checked((int)(starts[i + 1].ToInt64() - start));
                    result[i] = new int[length];
                    if (length > 0)
                    {
                        Marshal.Copy(new IntPtr(batch.ids.ToInt64() + start * sizeof(int)), result[i], 0, length);
                    }
                }
                return result;
            }
            finally
            {
                NativeMethods.sphana_llm_token_batch_free(ref batch);
            }
        }

        // ---- decoding and the vocabulary ----------------------------------------------------

        /// <summary>Decodes ids to text.</summary>
        /// <param name="ids">The ids.</param>
        /// <param name="skipSpecialTokens">Leave special tokens (BOS, EOS, chat markers) out of the text.</param>
        /// <returns>The text.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.InvalidTokenId"/> for an id outside the vocabulary.</exception>
        public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = true)
        {
            if (ids == null)
            {
                throw new ArgumentNullException("ids");
            }
            SafeLlmModelHandle handle = Handle;
            int[] array = ToArray(ids);
            uint flags = skipSpecialTokens ? NativeMethods.SPHANA_LLM_DECODE_SKIP_SPECIAL : 0u;
            byte[] text = null;
            long n = NativeBuffer.Fill((int)Math.Min(array.Length * 8L + 16, int.MaxValue), 1, "sphana_llm_decode",
                (int capacity, out long length) =>
                {
                    text = new byte[capacity];
                    UIntPtr written;
                    int status = NativeMethods.sphana_llm_decode(handle, array, NativeMethods.Size(array.Length), flags, text,
                        NativeMethods.Size(capacity), out written);
                    length = NativeMethods.Long(written);
                    return status;
                });
            return Utf8.Decode(text, (int)n);
        }

        /// <summary>
        /// Creates a decoder that turns ids, one at a time, into text as soon as it is complete UTF-8 (for showing
        /// tokens as they are produced). One decoder serves one sequence at a time.
        /// </summary>
        /// <param name="skipSpecialTokens">Leave special tokens out of the text.</param>
        /// <returns>The decoder; dispose it when done (it keeps the native model alive until then).</returns>
        public StreamDecoder CreateStreamDecoder(bool skipSpecialTokens = true)
        {
            return new StreamDecoder(Handle, skipSpecialTokens);
        }

        /// <summary>The id of a token string as stored in the vocabulary (e.g. "&lt;|eot_id|&gt;", "Ġthe", "▁the").</summary>
        /// <param name="token">The vocabulary string.</param>
        /// <returns>Its id.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.NotFound"/> when there is no such token.</exception>
        public int TokenToId(string token)
        {
            int id;
            int status = LookUp(token, out id);
            if (status != 0)
            {
                throw Result.Error(status, "sphana_llm_token_to_id");
            }
            return id;
        }

        /// <summary>Like <see cref="TokenToId"/>, returning false instead of throwing when the token does not exist.</summary>
        /// <param name="token">The vocabulary string.</param>
        /// <param name="id">Its id, or -1.</param>
        /// <returns>Whether the token exists.</returns>
        public bool TryTokenToId(string token, out int id)
        {
            int status = LookUp(token, out id);
            if (status == (int)SphanaLlmStatus.NotFound)
            {
                id = -1;
                return false;
            }
            Result.Check(status, "sphana_llm_token_to_id");
            return true;
        }

        /// <summary>The vocabulary string of an id (e.g. 9906 is "Hello" in Llama 3).</summary>
        /// <param name="id">The id.</param>
        /// <returns>The string as stored in the vocabulary.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.InvalidTokenId"/> for an id outside the vocabulary.</exception>
        public string IdToToken(int id)
        {
            SafeLlmModelHandle handle = Handle;
            byte[] text = null;
            long n = NativeBuffer.Fill(64, 1, "sphana_llm_id_to_token", (int capacity, out long length) =>
            {
                text = new byte[capacity];
                UIntPtr written;
                int status = NativeMethods.sphana_llm_id_to_token(handle, id, text, NativeMethods.Size(capacity), out written);
                length = NativeMethods.Long(written);
                return status;
            });
            return Utf8.Decode(text, (int)n);
        }

        /// <summary>Whether an id is a special (control) token such as BOS, EOS or a chat marker.</summary>
        /// <param name="id">The id.</param>
        /// <returns>True for a special token.</returns>
        public bool IsSpecialToken(int id)
        {
            int special;
            Result.Check(NativeMethods.sphana_llm_is_special(Handle, id, out special), "sphana_llm_is_special");
            return special != 0;
        }

        private int LookUp(string token, out int id)
        {
            if (token == null)
            {
                throw new ArgumentNullException("token");
            }
            byte[] bytes = Utf8.Encode(token);
            return NativeMethods.sphana_llm_token_to_id(Handle, bytes, NativeMethods.Size(bytes.Length), out id);
        }

        private static uint TokenizeFlags(bool addSpecialTokens, bool parseSpecialTokens)
        {
            return (addSpecialTokens ? NativeMethods.SPHANA_LLM_TOKENIZE_ADD_SPECIAL : 0u)
                | (parseSpecialTokens ? NativeMethods.SPHANA_LLM_TOKENIZE_PARSE_SPECIAL : 0u);
        }

        /// <summary>A first buffer size that fits almost every text (a token is at least one byte, plus a few added).</summary>
        private static int GuessTokenCount(int bytes)
        {
            return bytes <= (1 << 20) ? bytes + 16 : bytes / 3 + 16;
        }
    }
}
