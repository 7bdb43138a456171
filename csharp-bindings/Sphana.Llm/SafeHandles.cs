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
    /// <summary>
    /// What the three handles share: NULL is invalid, release goes through the object's native free function,
    /// and each handle type counts its live handles (<typeparamref name="THandle"/> gives each type its own count).
    /// </summary>
    /// <typeparam name="THandle">The concrete handle type.</typeparam>
    internal abstract class NativeHandle<THandle> : SafeHandle where THandle : NativeHandle<THandle>
    {
        private static long s_live;

        /// <summary>Used through the subclasses' constructors, which the P/Invoke marshaller calls for <c>out</c> parameters.</summary>
        protected NativeHandle() : base(IntPtr.Zero, true)
        {
        }

        /// <summary>Handles of this type created and not yet released (a test hook for leak checks).</summary>
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

        /// <summary>
        /// Takes a handle the library just returned through an <c>out</c> parameter: throws for a failed
        /// <paramref name="status"/> (right after the call, so the thread's last error is the call's), else counts it.
        /// </summary>
        internal static THandle Adopt(int status, THandle handle, string function)
        {
            if (status != 0)
            {
                throw Result.Error(status, function);
            }
            handle.Track();
            return handle;
        }

        /// <summary>The native free function of this object.</summary>
        protected abstract void Free(IntPtr pointer);

        protected sealed override bool ReleaseHandle()
        {
            Free(handle);
            Interlocked.Decrement(ref s_live);
            return true;
        }
    }

    /// <summary>Owns a <c>SphanaLlmModel*</c>; released with <c>sphana_llm_free</c>.</summary>
    internal sealed class SafeLlmModelHandle : NativeHandle<SafeLlmModelHandle>
    {
        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeLlmModelHandle()
        {
        }

        protected override void Free(IntPtr pointer)
        {
            NativeMethods.sphana_llm_free(pointer);
        }
    }

    /// <summary>Owns a <c>SphanaLlmStreamDecoder*</c>; released with <c>sphana_llm_stream_decoder_free</c>.</summary>
    internal sealed class SafeStreamDecoderHandle : NativeHandle<SafeStreamDecoderHandle>
    {
        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeStreamDecoderHandle()
        {
        }

        protected override void Free(IntPtr pointer)
        {
            NativeMethods.sphana_llm_stream_decoder_free(pointer);
        }
    }

    /// <summary>Owns a <c>SphanaLlmCancellation*</c>; released with <c>sphana_llm_cancellation_free</c>.</summary>
    internal sealed class SafeCancellationHandle : NativeHandle<SafeCancellationHandle>
    {
        /// <summary>Used by the P/Invoke marshaller for <c>out</c> parameters.</summary>
        public SafeCancellationHandle()
        {
        }

        /// <summary>Creates a native cancellation flag.</summary>
        internal static SafeCancellationHandle Create()
        {
            SafeCancellationHandle cancel;
            int status = NativeMethods.sphana_llm_cancellation_new(out cancel);
            return Adopt(status, cancel, "sphana_llm_cancellation_new");
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

        protected override void Free(IntPtr pointer)
        {
            NativeMethods.sphana_llm_cancellation_free(pointer);
        }
    }
}
