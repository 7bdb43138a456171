// One SafeHandle per native object. SafeHandle gives what the C API asks of its callers:
// the handle is freed exactly once (Dispose or the critical finalizer, never both), never
// while a P/Invoke that was passed the handle is still running (the marshaller holds a
// reference for the length of the call), and a closed handle is never passed to native
// code (the marshaller throws ObjectDisposedException instead).
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Sphana.Llm
{
    /// <summary>Owns a <c>SphanaLlmModel*</c>; released with <c>sphana_llm_free</c>.</summary>
    internal sealed class SafeLlmModelHandle : SafeHandle
    {
        private static long s_live;

        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeLlmModelHandle() : base(IntPtr.Zero, true)
        {
        }

        /// <summary>Handles created and not yet released (a test hook for leak checks).</summary>
        internal static long Live
        {
            get { return Interlocked.Read(ref s_live); }
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        /// <summary>Counts a handle the library returned successfully.</summary>
        internal void Track()
        {
            Interlocked.Increment(ref s_live);
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.sphana_llm_free(handle);
            Interlocked.Decrement(ref s_live);
            return true;
        }
    }

    /// <summary>Owns a <c>SphanaLlmStreamDecoder*</c>; released with <c>sphana_llm_stream_decoder_free</c>.</summary>
    internal sealed class SafeStreamDecoderHandle : SafeHandle
    {
        private static long s_live;

        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeStreamDecoderHandle() : base(IntPtr.Zero, true)
        {
        }

        internal static long Live
        {
            get { return Interlocked.Read(ref s_live); }
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        internal void Track()
        {
            Interlocked.Increment(ref s_live);
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.sphana_llm_stream_decoder_free(handle);
            Interlocked.Decrement(ref s_live);
            return true;
        }
    }

    /// <summary>Owns a <c>SphanaLlmCancellation*</c>; released with <c>sphana_llm_cancellation_free</c>.</summary>
    internal sealed class SafeCancellationHandle : SafeHandle
    {
        private static long s_live;

        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeCancellationHandle() : base(IntPtr.Zero, true)
        {
        }

        internal static long Live
        {
            get { return Interlocked.Read(ref s_live); }
        }

        public override bool IsInvalid
        {
            get { return handle == IntPtr.Zero; }
        }

        /// <summary>Creates a native cancellation flag.</summary>
        internal static SafeCancellationHandle Create()
        {
            SafeCancellationHandle cancel;
            int status = NativeMethods.sphana_llm_cancellation_new(out cancel);
            if (status != 0)
            {
                throw Result.Error(status, "sphana_llm_cancellation_new");
            }
            cancel.Track();
            return cancel;
        }

        internal void Track()
        {
            Interlocked.Increment(ref s_live);
        }

        /// <summary>
        /// Sets the flag; safe from any thread, including a CancellationToken callback: it never
        /// throws (a flag already released has nothing left to cancel).
        /// </summary>
        internal void TryCancel()
        {
            try
            {
                if (!IsClosed)
                {
                    NativeMethods.sphana_llm_cancellation_cancel(this);
                }
            }
            catch (ObjectDisposedException)
            {
                // Released between the check and the call: the generation is over.
            }
        }

        protected override bool ReleaseHandle()
        {
            NativeMethods.sphana_llm_cancellation_free(handle);
            Interlocked.Decrement(ref s_live);
            return true;
        }
    }
}
