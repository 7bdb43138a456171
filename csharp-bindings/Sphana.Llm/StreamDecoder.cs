using System;

namespace Sphana.Llm
{
    /// <summary>
    /// Turns ids, one at a time, into text as soon as it is complete UTF-8 (a byte-level token holding half an
    /// emoji gives "" until the rest arrives). Create it with <see cref="LlmModel.CreateStreamDecoder"/>. One
    /// decoder serves one sequence at a time; calls are serialized, so sharing it between threads is safe but
    /// interleaving two sequences gives wrong text. It keeps the native model alive until disposed.
    /// </summary>
    public sealed class StreamDecoder : IDisposable
    {
        private readonly SafeStreamDecoderHandle _handle;
        private readonly object _lock = new object();
        private byte[] _buffer = new byte[64];

        internal StreamDecoder(SafeLlmModelHandle model, bool skipSpecialTokens)
        {
            SafeStreamDecoderHandle handle;
            int status = NativeMethods.sphana_llm_stream_decoder_new(model,
                skipSpecialTokens ? NativeMethods.SPHANA_LLM_DECODE_SKIP_SPECIAL : 0u, out handle);
            _handle = SafeStreamDecoderHandle.Adopt(status, handle, "sphana_llm_stream_decoder_new");
        }

        /// <summary>Feeds one id and returns the text that became complete (often "").</summary>
        /// <param name="id">The next id of the sequence.</param>
        /// <returns>New text, never part of a character.</returns>
        /// <exception cref="SphanaLlmException"><see cref="SphanaLlmStatus.InvalidTokenId"/> (the decoder is unchanged).</exception>
        public string Push(int id)
        {
            return Step(id, true);
        }

        /// <summary>Returns whatever text is still held back (an incomplete character as U+FFFD) and resets the decoder for a new sequence.</summary>
        /// <returns>The remaining text.</returns>
        public string Flush()
        {
            return Step(0, false);
        }

        /// <summary>Releases the native decoder; later calls throw <see cref="ObjectDisposedException"/>.</summary>
        public void Dispose()
        {
            _handle.Dispose();
        }

        private string Step(int id, bool push)
        {
            lock (_lock)
            {
                if (_handle.IsClosed)
                {
                    throw new ObjectDisposedException(typeof(StreamDecoder).FullName);
                }
                long n = NativeBuffer.FillDoubling(_buffer.Length,
                    push ? "sphana_llm_stream_decoder_push" : "sphana_llm_stream_decoder_flush",
                    (int capacity, out long length) =>
                    {
                        if (capacity != _buffer.Length)
                        {
                            _buffer = new byte[capacity];
                        }
                        UIntPtr written;
                        int status = push
                            ? NativeMethods.sphana_llm_stream_decoder_push(_handle, id, _buffer, NativeMethods.Size(_buffer.Length), out written)
                            : NativeMethods.sphana_llm_stream_decoder_flush(_handle, _buffer, NativeMethods.Size(_buffer.Length), out written);
                        length = NativeMethods.Long(written);
                        return status;
                    });
                return Utf8.Decode(_buffer, (int)n);
            }
        }
    }
}
