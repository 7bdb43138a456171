namespace Sphana.Llm
{
    /// <summary>
    /// The grow-and-retry loop of the C API's buffer convention, in one place: a call writes into the caller's
    /// buffer of <c>capacity</c> elements and reports the length of its output (ids, or text bytes without the NUL)
    /// also when that does not fit, in which case it returns <c>SPHANA_LLM_ERR_BUFFER_TOO_SMALL</c> and writes
    /// nothing else; the caller then retries with a buffer of the reported size.
    /// </summary>
    internal static class NativeBuffer
    {
        private const int BufferTooSmall = (int)SphanaLlmStatus.BufferTooSmall;

        /// <summary>
        /// One native call into a buffer of <paramref name="capacity"/> elements, which the delegate allocates (or
        /// keeps); <paramref name="length"/> receives the length the call reported.
        /// </summary>
        internal delegate int Call(int capacity, out long length);

        /// <summary>
        /// Runs <paramref name="call"/> with <paramref name="capacity"/>; while it answers BufferTooSmall with a
        /// length that does not fit (length + <paramref name="reserve"/> &gt; capacity), runs it again with exactly
        /// that capacity. Any other failure, a BufferTooSmall whose length already fits included, throws the
        /// <see cref="SphanaLlmException"/> of <paramref name="function"/>.
        /// </summary>
        /// <param name="capacity">The first capacity.</param>
        /// <param name="reserve">Elements needed beyond the reported length: 1 for text (its length leaves out the
        /// NUL the library writes after it), 0 for ids.</param>
        /// <param name="function">The C function, for the exception.</param>
        /// <param name="call">The native call.</param>
        /// <returns>The length the successful call reported.</returns>
        internal static long Fill(int capacity, int reserve, string function, Call call)
        {
            while (true)
            {
                long length;
                int status = call(capacity, out length);
                if (status == BufferTooSmall && length + reserve > capacity)
                {
                    capacity = checked((int)length + reserve);
                    continue;
                }
                Result.Check(status, function);
                return length;
            }
        }

        /// <summary>
        /// <see cref="Fill"/> for a text buffer that is kept between calls (the stream decoder's): every
        /// BufferTooSmall is retried, with at least twice the capacity (so each retry makes progress), else the
        /// reported length plus its NUL.
        /// </summary>
        /// <param name="capacity">The current capacity.</param>
        /// <param name="function">The C function, for the exception.</param>
        /// <param name="call">The native call.</param>
        /// <returns>The length the successful call reported.</returns>
        internal static long FillDoubling(int capacity, string function, Call call)
        {
            while (true)
            {
                long length;
                int status = call(capacity, out length);
                if (status == BufferTooSmall)
                {
                    capacity = System.Math.Max(checked((int)length + 1), capacity * 2);
                    continue;
                }
                Result.Check(status, function);
                return length;
            }
        }
    }
}
