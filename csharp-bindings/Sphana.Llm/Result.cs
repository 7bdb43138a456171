namespace Sphana.Llm
{
    /// <summary>Turns a native status into an exception carrying the native message.</summary>
    internal static class Result
    {
        /// <summary>
        /// Throws for a failed status. Call it right after the native call, on the same thread and
        /// before any other call into the library: the message is per thread and per last failure.
        /// </summary>
        internal static void Check(int status, string function)
        {
            if (status != 0)
            {
                throw Error(status, function);
            }
        }

        /// <summary>The exception for a failed status (reads this thread's last error now).</summary>
        internal static SphanaLlmException Error(int status, string function)
        {
            return new SphanaLlmException((SphanaLlmStatus)status, NativeMethods.LastErrorMessage(), function);
        }
    }
}
