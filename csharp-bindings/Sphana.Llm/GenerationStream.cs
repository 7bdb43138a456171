using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Threading;

namespace Sphana.Llm
{
    /// <summary>
    /// The enumerable behind <see cref="LlmModel.GenerateStream(string, GenerationOptions, CancellationToken)"/>:
    /// each enumerator runs one generation on its own thread, which feeds the text pieces into a queue the
    /// consumer takes from.
    /// </summary>
    internal sealed class GenerationStream : IEnumerable<string>
    {
        private static int s_liveProducers;

        private readonly LlmModel _model;
        private readonly PromptInput _prompt;
        private readonly GenerationOptions _options;
        private readonly CancellationToken _cancellationToken;

        internal GenerationStream(LlmModel model, PromptInput prompt, GenerationOptions options,
            CancellationToken cancellationToken)
        {
            _model = model;
            _prompt = prompt;
            _options = options;
            _cancellationToken = cancellationToken;
        }

        /// <summary>Producer threads still running (a test hook: 0 once every enumerator was disposed or drained).</summary>
        internal static int LiveProducers
        {
            get { return Volatile.Read(ref s_liveProducers); }
        }

        public IEnumerator<string> GetEnumerator()
        {
            return new Enumerator(this);
        }

        IEnumerator IEnumerable.GetEnumerator()
        {
            return GetEnumerator();
        }

        private sealed class Enumerator : IEnumerator<string>
        {
            private readonly GenerationStream _stream;

            // Unbounded: the producer never blocks on the consumer, so an enumerator abandoned without Dispose
            // still lets its thread finish (after at most MaxTokens tokens) instead of leaking it.
            private readonly BlockingCollection<string> _queue = new BlockingCollection<string>(new ConcurrentQueue<string>());
            private SafeCancellationHandle _cancel;
            private CancellationTokenRegistration _registration;
            private Thread _producer;
            private ExceptionDispatchInfo _error;
            private GenerationResult _result;
            private string _current;
            private bool _started;
            private bool _finished;
            private bool _disposed;

            internal Enumerator(GenerationStream stream)
            {
                _stream = stream;
            }

            public string Current
            {
                get { return _current; }
            }

            object IEnumerator.Current
            {
                get { return _current; }
            }

            public bool MoveNext()
            {
                if (_disposed)
                {
                    throw new ObjectDisposedException(typeof(GenerationStream).FullName);
                }
                if (_finished)
                {
                    return false;
                }
                CancellationToken token = _stream._cancellationToken;
                if (token.IsCancellationRequested)
                {
                    // Pieces still queued are dropped: once the token is cancelled, the next MoveNext throws.
                    if (_started)
                    {
                        _cancel.TryCancel();
                        Finish();
                    }
                    _finished = true;
                    _current = null;
                    throw new OperationCanceledException(token);
                }
                if (!_started)
                {
                    Start();
                }
                string piece;
                if (_queue.TryTake(out piece, Timeout.Infinite))
                {
                    _current = piece;
                    return true;
                }
                // The producer completed the queue: the native call has returned.
                Finish();
                _current = null;
                if (_error != null)
                {
                    _error.Throw();
                }
                if (_result.FinishReason == FinishReason.Cancelled)
                {
                    _stream._cancellationToken.ThrowIfCancellationRequested();
                }
                return false;
            }

            public void Reset()
            {
                throw new NotSupportedException("a generation stream cannot be restarted; enumerate it again instead");
            }

            /// <summary>Stops a generation still running (within one token) and waits for its thread.</summary>
            public void Dispose()
            {
                if (_disposed)
                {
                    return;
                }
                _disposed = true;
                if (_started && !_finished)
                {
                    _cancel.TryCancel();
                    Finish();
                }
                _queue.Dispose();
            }

            private void Start()
            {
                _started = true;
                _cancel = SafeCancellationHandle.Create();
                CancellationToken token = _stream._cancellationToken;
                if (token.CanBeCanceled)
                {
                    _registration = token.Register(state => ((SafeCancellationHandle)state).TryCancel(), _cancel);
                }
                _producer = new Thread(Produce);
                _producer.IsBackground = true;
                _producer.Name = "Sphana.Llm generation stream";
                Interlocked.Increment(ref s_liveProducers);
                try
                {
                    _producer.Start();
                }
                catch
                {
                    Interlocked.Decrement(ref s_liveProducers);
                    _finished = true;
                    _registration.Dispose();
                    _cancel.Dispose();
                    throw;
                }
            }

            private void Produce()
            {
                try
                {
                    _result = _stream._model.RunWithCancellation(_stream._prompt, _stream._options,
                        piece => _queue.Add(piece), _cancel);
                }
                catch (Exception e)
                {
                    _error = ExceptionDispatchInfo.Capture(e);
                }
                finally
                {
                    _queue.CompleteAdding();
                    Interlocked.Decrement(ref s_liveProducers);
                }
            }

            private void Finish()
            {
                _producer.Join();
                _finished = true;
                _registration.Dispose();
                _cancel.Dispose();
            }
        }
    }
}
