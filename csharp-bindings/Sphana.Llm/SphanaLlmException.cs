using System;

namespace Sphana.Llm
{
    /// <summary>
    /// A call into libsphana_llm failed. <see cref="Status"/> is the C status code and
    /// <see cref="NativeMessage"/> the message <c>sphana_llm_last_error()</c> gave for it, read on the
    /// failing thread right after the call.
    /// </summary>
    public class SphanaLlmException : Exception
    {
        /// <summary>Creates the exception for a failed native call.</summary>
        /// <param name="status">The status the call returned.</param>
        /// <param name="nativeMessage">The library's message for it.</param>
        /// <param name="function">The C function that failed, e.g. <c>sphana_llm_load</c>.</param>
        public SphanaLlmException(SphanaLlmStatus status, string nativeMessage, string function)
            : base(Format(status, nativeMessage, function))
        {
            Status = status;
            NativeMessage = nativeMessage ?? string.Empty;
            Function = function ?? string.Empty;
        }

        /// <summary>The C status code (one of <c>SPHANA_LLM_ERR_*</c>).</summary>
        public SphanaLlmStatus Status { get; private set; }

        /// <summary>The message from <c>sphana_llm_last_error()</c>, unchanged.</summary>
        public string NativeMessage { get; private set; }

        /// <summary>The C function that failed.</summary>
        public string Function { get; private set; }

        private static string Format(SphanaLlmStatus status, string nativeMessage, string function)
        {
            string message = string.IsNullOrEmpty(nativeMessage) ? "(no message)" : nativeMessage;
            return string.Format("{0} ({1}, from {2})", message, status, function);
        }
    }
}
