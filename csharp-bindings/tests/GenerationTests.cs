// Generation tests against tests/golden/models/tiny_llama.json and smollm2.json (made by ONNX Runtime's
// Python API): greedy ids, the SmolLM2 answer, streaming, cancellation, exceptions in consumers, threads.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm.Tests
{
    internal static class GenerationTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "tiny_greedy_ids_equal_golden", TinyGreedyIds);
            Add(tests, "tiny_stops_at_the_first_eos_of_the_set", TinyStopsAtEos);
            Add(tests, "smollm2_answers_paris_with_chatml_prompt", SmolAnswersParis);
            Add(tests, "smollm2_stream_pieces_join_to_the_full_text", SmolStreaming);
            Add(tests, "smollm2_prompt_read_in_chunks_gives_the_same_answer", SmolChunkedPrefill);
            Add(tests, "smollm2_repeated_prompt_comes_from_the_prefix_cache", SmolPrefixCache);
            Add(tests, "smollm2_stop_string_is_caught_and_not_emitted", SmolStopString);
            Add(tests, "smollm2_logprobs_pick_the_golden_ids_and_equal_the_score", SmolLogprobs);
            Add(tests, "smollm2_prompt_lookup_keeps_the_plain_ids", SmolPromptLookup);
            Add(tests, "seeded_sampling_is_reproducible", SeededSampling);
            Add(tests, "cancellation_token_ends_generation_mid_way", CancellationMidGeneration);
            Add(tests, "cancelled_before_start", CancelledBeforeStart);
            Add(tests, "exception_in_stream_consumer_stops_the_native_call", ExceptionInStreamConsumer);
            Add(tests, "exception_in_text_callback_propagates", ExceptionInCallback);
            Add(tests, "eight_threads_share_one_model", EightThreads);
            Add(tests, "concurrent_generations_are_batched_and_equal_the_golden", ConcurrentBatched);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        internal static List<object> TinyPrompts(string variant)
        {
            return J.List(J.Get(J.Get(Paths.Golden("models/tiny_llama.json"), "variants"), variant), "prompts");
        }

        private static GenerationOptions Greedy(int maxTokens, bool ignoreEos)
        {
            return new GenerationOptions { MaxTokens = maxTokens, IgnoreEos = ignoreEos };
        }

        /// <summary>A generation that would run for a long time unless stopped.</summary>
        internal static GenerationOptions Endless()
        {
            return new GenerationOptions { MaxTokens = 100000, IgnoreEos = true };
        }

        private static void TinyGreedyIds()
        {
            LlmModel model = Fixtures.Tiny;
            Check.True(model.CanGenerate, "the tiny model can generate");
            foreach (object prompt in TinyPrompts("fp32"))
            {
                int[] promptIds = J.Ints(prompt, "prompt_ids");
                int[] expected = J.Ints(prompt, "new_ids");
                GenerationResult result = model.Complete(promptIds, Greedy(expected.Length, true));
                Check.Ids(expected, result.TokenIds.ToList(), "greedy ids for a " + promptIds.Length + "-token prompt");
                Check.Equal(FinishReason.Length, result.FinishReason, "finish reason");
                Check.Equal(promptIds.Length, result.PromptTokens, "prompt tokens");
                Check.Equal(expected.Length, result.GeneratedTokens, "generated tokens");
                Check.Equal(model.Decode(expected), result.Text, "the text is the decoded ids");
                Check.True(result.PrefillMs > 0 && result.SessionRunMs > 0, "timings are filled in");
            }
        }

        private static void TinyStopsAtEos()
        {
            LlmModel model = Fixtures.Tiny;
            object golden = Paths.Golden("models/tiny_llama.json");
            Check.Ids(J.Ints(golden, "eos_token_ids"), model.EosTokenIds.ToList(), "the tiny model's EOS set");
            int checkedPrompts = 0;
            foreach (object prompt in TinyPrompts("fp32"))
            {
                if (J.Get(prompt, "first_eos_index") == null)
                {
                    continue;
                }
                int eosAt = J.Int(prompt, "first_eos_index");
                GenerationResult result = model.Complete(J.Ints(prompt, "prompt_ids"), Greedy(24, false));
                Check.Equal(FinishReason.Eos, result.FinishReason, "finish reason");
                Check.Ids(J.Ints(prompt, "new_ids").Take(eosAt).ToList(), result.TokenIds.ToList(), "ids up to the EOS");
                checkedPrompts++;
            }
            Check.True(checkedPrompts > 0, "the golden has a prompt that reaches EOS");
        }

        internal static object Smol()
        {
            return Paths.Golden("models/smollm2.json");
        }

        internal static GenerationOptions SmolOptions()
        {
            return new GenerationOptions { MaxTokens = 48, ParseSpecialTokens = true };
        }

        private static void SmolChunkedPrefill()
        {
            object golden = Smol();
            object reference = J.Get(J.Get(golden, "models"), "fp32");
            LlmLoadOptions options = Fixtures.Options();
            options.PrefillChunkTokens = 6;
            using (LlmModel chunked = LlmModel.Load(Paths.Model("smollm2-135m-instruct"), options))
            {
                string prompt = J.Str(golden, "prompt_text");
                Check.True(J.List(golden, "prompt_ids").Count > 12, "the prompt is read in several runs");
                GenerationResult result = chunked.Complete(prompt, SmolOptions());
                Check.Equal(J.Str(reference, "text"), result.Text, "the answer with the prompt read 6 tokens at a time");
            }
        }

        private static void SmolPrefixCache()
        {
            object golden = Smol();
            object reference = J.Get(J.Get(golden, "models"), "fp32");
            LlmLoadOptions options = Fixtures.Options();
            options.PrefixCacheBytes = 64L << 20;
            using (LlmModel cached = LlmModel.Load(Paths.Model("smollm2-135m-instruct"), options))
            {
                string prompt = J.Str(golden, "prompt_text");
                int promptTokens = J.List(golden, "prompt_ids").Count;
                GenerationResult first = cached.Complete(prompt, SmolOptions());
                Check.Equal(0, first.CachedTokens, "nothing cached before the first request");
                GenerationResult second = cached.Complete(prompt, SmolOptions());
                Check.Equal(promptTokens - 1, second.CachedTokens, "all but the last prompt token come from the cache");
                Check.Equal(J.Str(reference, "text"), second.Text, "the answer equals the reference");
            }
            Check.Equal(0, Fixtures.Smol.Complete(J.Str(golden, "prompt_text"), SmolOptions()).CachedTokens,
                "the default load has no prefix cache");
        }

        private static void SmolPromptLookup()
        {
            LlmModel model = Fixtures.Smol;
            // The golden prompt: the same ids as ONNX Runtime Python's greedy loop.
            object golden = Smol();
            GenerationOptions options = SmolOptions();
            Check.Equal(GenerationOptions.DefaultPromptLookupTokens, options.PromptLookupTokens, "the default");
            options.PromptLookupTokens = 8;
            GenerationResult golden8 = model.Complete(J.Str(golden, "prompt_text"), options);
            // The reference's ids end with the EOS that ended it (not part of a result's ids).
            List<int> reference = J.Ints(J.Get(J.Get(golden, "models"), "fp32"), "new_ids").ToList();
            Check.Ids(reference.Take(golden8.TokenIds.Count).ToList(), golden8.TokenIds.ToList(), "golden ids with prompt lookup");
            Check.True(golden8.TokenIds.Count >= reference.Count - 1, "as many ids as the reference");
            // A RAG question whose answer copies the context: drafts are accepted, the ids are the plain ones.
            var messages = new List<ChatMessage>
            {
                new ChatMessage("user", "Answer the question based on the following context: Context (Score: 0.87) " +
                    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named " +
                    "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889. " +
                    "Question: Who designed and built the Eiffel Tower? Answer:"),
            };
            var plainOptions = new GenerationOptions { MaxTokens = 60 };
            GenerationResult plain = model.CompleteChat(messages, plainOptions);
            Check.Equal(0, plain.DraftTokens, "no drafts when it is off");
            GenerationResult fast = model.CompleteChat(messages, new GenerationOptions { MaxTokens = 60, PromptLookupTokens = 8 });
            Check.Ids(plain.TokenIds.ToList(), fast.TokenIds.ToList(), "prompt lookup keeps the plain ids");
            Check.Equal(plain.Text, fast.Text, "and the text");
            Check.True(fast.AcceptedDraftTokens > 0 && fast.AcceptedDraftTokens <= fast.DraftTokens,
                "drafts accepted (" + fast.AcceptedDraftTokens + " of " + fast.DraftTokens + ")");
            foreach (int bad in new[] { GenerationOptions.MaxPromptLookupTokens + 1 })
            {
                try
                {
                    model.CompleteChat(messages, new GenerationOptions { MaxTokens = 4, PromptLookupTokens = bad });
                    throw new Exception("PromptLookupTokens " + bad + " was accepted");
                }
                catch (SphanaLlmException e)
                {
                    Check.Equal(SphanaLlmStatus.InvalidArgument, e.Status, "too many draft tokens: " + e.Message);
                }
            }
        }

        private static void SmolLogprobs()
        {
            object golden = Smol();
            object reference = J.Get(J.Get(golden, "models"), "fp32");
            LlmModel model = Fixtures.Smol;
            GenerationOptions options = SmolOptions();
            options.TopLogprobs = 3;
            GenerationResult result = model.Complete(J.Str(golden, "prompt_text"), options);
            List<int> expected = J.Ints(reference, "new_ids").ToList();
            Check.Equal(result.TokenIds.Count, result.Logprobs.Count, "one log-probability per generated id");
            for (int i = 0; i < result.Logprobs.Count; i++)
            {
                TokenLogprob t = result.Logprobs[i];
                Check.Equal(result.TokenIds[i], t.Id, "id " + i);
                Check.Equal(3, t.Top.Count, "three alternatives at " + i);
                // Greedy: ONNX Runtime Python's id is the most likely one.
                Check.Equal(expected[i], t.Top[0].Id, "the golden id is the top alternative at " + i);
                Check.True(t.Logprob <= 0 && t.Top[0].Logprob >= t.Top[1].Logprob && t.Top[1].Logprob >= t.Top[2].Logprob,
                    "ordered log-probabilities at " + i);
                Check.Equal(model.Decode(new[] { t.Id }, false), t.Text, "the token's text at " + i);
            }
            IReadOnlyList<TokenLogprob> scored = model.Score(J.Ints(golden, "prompt_ids"), result.TokenIds, 3);
            Check.Equal(result.Logprobs.Count, scored.Count, "one score per continuation id");
            for (int i = 0; i < scored.Count; i++)
            {
                Check.True(Math.Abs(scored[i].Logprob - result.Logprobs[i].Logprob) < 1e-4,
                    "score equals the generation's log-probability at " + i);
                Check.Equal(result.Logprobs[i].Top[1].Id, scored[i].Top[1].Id, "the same alternatives at " + i);
            }
            Check.Equal(0, model.Complete(J.Str(golden, "prompt_text"), SmolOptions()).Logprobs.Count,
                "no log-probabilities unless asked for");
            try
            {
                model.Score(J.Ints(golden, "prompt_ids"), new int[0]);
                throw new Exception("an empty continuation was scored");
            }
            catch (SphanaLlmException e)
            {
                Check.Equal(SphanaLlmStatus.InvalidArgument, e.Status, "an empty continuation: " + e.Message);
            }
        }

        private static void SmolAnswersParis()
        {
            object golden = Smol();
            object reference = J.Get(J.Get(golden, "models"), "fp32");
            LlmModel model = Fixtures.Smol;
            string prompt = J.Str(golden, "prompt_text");
            Check.Ids(J.Ints(golden, "prompt_ids"), model.Tokenize(prompt, true, true), "the ChatML prompt's ids");
            Check.Ids(J.Ints(golden, "eos_token_ids"), model.EosTokenIds.ToList(), "SmolLM2's EOS set");
            GenerationResult result = model.Complete(prompt, SmolOptions());
            List<int> expected = J.Ints(reference, "new_ids").ToList();
            Check.True(J.Bool(reference, "stopped_at_eos"), "the reference stopped at EOS");
            expected.RemoveAt(expected.Count - 1);
            Check.Equal(FinishReason.Eos, result.FinishReason, "finish reason");
            Check.Ids(expected, result.TokenIds.ToList(), "greedy ids");
            Check.Equal(J.Str(reference, "text"), result.Text, "answer text");
            Check.True(result.Text.Contains("Paris"), "the answer names Paris");
            Check.Equal(J.List(golden, "prompt_ids").Count, result.PromptTokens, "prompt tokens");
            Check.Equal(expected.Count, result.GeneratedTokens, "generated tokens");
            Check.Equal(J.Str(reference, "text"), model.Generate(prompt, SmolOptions()), "Generate returns the same text");
            Check.Equal((LogitsPositions?)LogitsPositions.Rewritten, model.LogitsPositions, "the head runs on the last position only");
            Check.True(model.LogitsPositionsDescription.Contains("MatMul"), "the description names the head: " + model.LogitsPositionsDescription);
        }

        private static void SmolStreaming()
        {
            object golden = Smol();
            string expected = J.Str(J.Get(J.Get(golden, "models"), "fp32"), "text");
            LlmModel model = Fixtures.Smol;
            string prompt = J.Str(golden, "prompt_text");

            var pieces = model.GenerateStream(prompt, SmolOptions()).ToList();
            Check.True(pieces.Count > 3, "several pieces (" + pieces.Count + ")");
            Check.True(pieces.All(p => p.Length > 0), "no empty pieces");
            Check.Equal(expected, string.Concat(pieces), "stream pieces join to the text");

            var callbackPieces = new List<string>();
            int callingThread = Thread.CurrentThread.ManagedThreadId;
            int callbackThread = -1;
            GenerationResult result = model.Complete(prompt, SmolOptions(), piece =>
            {
                callbackPieces.Add(piece);
                callbackThread = Thread.CurrentThread.ManagedThreadId;
            });
            Check.Equal(expected, result.Text, "Complete's text");
            Check.Equal(expected, string.Concat(callbackPieces), "callback pieces join to the text");
            Check.Equal(callingThread, callbackThread, "the callback runs on the calling thread");

            Task<string> task = model.GenerateAsync(prompt, SmolOptions());
            Check.Equal(expected, task.Result, "GenerateAsync's text");
            var asyncPieces = new StringBuilder();
            GenerationResult asyncResult = model.CompleteAsync(prompt, SmolOptions(), p => asyncPieces.Append(p)).Result;
            Check.Equal(expected, asyncResult.Text, "CompleteAsync's text");
            Check.Equal(expected, asyncPieces.ToString(), "CompleteAsync's pieces");
        }

        private static void SmolStopString()
        {
            object golden = Smol();
            string full = J.Str(J.Get(J.Get(golden, "models"), "fp32"), "text");
            const string stop = "ance is"; // spans several tokens of the reference answer
            Check.True(full.Contains(stop), "the reference answer contains the stop string");
            GenerationOptions options = SmolOptions();
            options.StopStrings.Add(stop);
            options.StopStrings.Add("never appears");
            var streamed = new StringBuilder();
            GenerationResult result = Fixtures.Smol.Complete(J.Str(golden, "prompt_text"), options, p => streamed.Append(p));
            Check.Equal(FinishReason.StopString, result.FinishReason, "finish reason");
            Check.Equal(full.Substring(0, full.IndexOf(stop, StringComparison.Ordinal)), result.Text, "text before the stop string");
            Check.Equal(result.Text, streamed.ToString(), "the stop string is never streamed");
        }

        private static void SeededSampling()
        {
            LlmModel model = Fixtures.Tiny;
            int[] prompt = J.Ints(TinyPrompts("fp32")[1], "prompt_ids");
            Func<ulong, IReadOnlyList<int>> run = seed => model.Complete(prompt, new GenerationOptions
            {
                MaxTokens = 16,
                Temperature = 1.5f,
                TopK = 50,
                TopP = 0.95f,
                MinP = 0.01f,
                RepetitionPenalty = 1.1f,
                Seed = seed,
                IgnoreEos = true,
            }).TokenIds;
            IReadOnlyList<int> first = run(7);
            Check.Ids(first.ToList(), run(7).ToList(), "same seed, same sample");
            Check.True(new ulong[] { 8, 9, 10, 11 }.Any(s => !run(s).SequenceEqual(first)), "different seeds give different samples");
        }

        private static void CancellationMidGeneration()
        {
            LlmModel model = Fixtures.Tiny;
            int[] prompt = J.Ints(TinyPrompts("fp32")[2], "prompt_ids");

            // CompleteAsync: cancel from this thread once three pieces arrived; the result says Cancelled.
            using (var cts = new CancellationTokenSource())
            using (var threePieces = new ManualResetEventSlim())
            {
                int pieces = 0;
                int piecesAtCancel = -1;
                Task<GenerationResult> task = model.CompleteAsync(prompt, Endless(), p =>
                {
                    if (Interlocked.Increment(ref pieces) == 3)
                    {
                        threePieces.Set();
                    }
                }, cts.Token);
                Check.True(threePieces.Wait(60000), "three pieces within a minute");
                var watch = Stopwatch.StartNew();
                cts.Cancel(); // sets the native flag before it returns
                piecesAtCancel = Volatile.Read(ref pieces);
                GenerationResult result = task.Result;
                Check.True(watch.ElapsedMilliseconds < 5000, "ended soon after the cancel (" + watch.ElapsedMilliseconds + " ms)");
                Check.Equal(FinishReason.Cancelled, result.FinishReason, "finish reason");
                Check.True(pieces - piecesAtCancel <= 2, "within one token: " + (pieces - piecesAtCancel) + " pieces after the cancel");
                Check.True(result.GeneratedTokens < 1000, "far fewer tokens than asked for (" + result.GeneratedTokens + ")");
                Check.Equal(result.GeneratedTokens, result.TokenIds.Count, "ids so far are kept");
            }

            // GenerateAsync: the task ends as cancelled.
            using (var cts = new CancellationTokenSource())
            {
                Task<string> task = model.GenerateAsync("Once upon a time", Endless(), cts.Token);
                Thread.Sleep(300);
                Check.True(!task.IsCompleted, "still generating after 300 ms");
                var watch = Stopwatch.StartNew();
                cts.Cancel();
                Check.Throws<OperationCanceledException>(() => task.Wait(), "awaiting a cancelled GenerateAsync");
                Check.True(task.IsCanceled, "the task is cancelled, not faulted (" + task.Status + ")");
                Check.True(watch.ElapsedMilliseconds < 5000, "ended soon after the cancel");
            }

            // GenerateStream: the consumer cancels; the next MoveNext throws OperationCanceledException.
            using (var cts = new CancellationTokenSource())
            {
                int seen = 0;
                int afterCancel = 0;
                Check.Throws<OperationCanceledException>(() =>
                {
                    foreach (string piece in model.GenerateStream(prompt, Endless(), cts.Token))
                    {
                        if (cts.IsCancellationRequested)
                        {
                            afterCancel++;
                        }
                        if (++seen == 3)
                        {
                            cts.Cancel();
                        }
                    }
                }, "a stream whose token was cancelled");
                Check.Equal(0, afterCancel, "pieces after the cancel");
                Check.Equal(3, seen, "pieces in all");
                Check.Equal(0, GenerationStream.LiveProducers, "no producer thread left");
            }
            Check.Equal(0L, SafeCancellationHandle.Live, "every native cancellation flag was freed");
        }

        private static void CancelledBeforeStart()
        {
            LlmModel model = Fixtures.Tiny;
            int[] prompt = J.Ints(TinyPrompts("fp32")[1], "prompt_ids");
            using (var cts = new CancellationTokenSource())
            {
                cts.Cancel();
                GenerationResult result = model.Complete(prompt, Endless(), null, cts.Token);
                Check.Equal(FinishReason.Cancelled, result.FinishReason, "Complete with a cancelled token");
                Check.Equal(0, result.GeneratedTokens, "nothing generated");
                Check.Throws<OperationCanceledException>(() => model.Generate("Hello", Endless(), cts.Token), "Generate with a cancelled token");
                Task<string> task = model.GenerateAsync("Hello", Endless(), cts.Token);
                Check.Throws<OperationCanceledException>(() => task.Wait(), "GenerateAsync with a cancelled token");
                Check.True(task.IsCanceled, "GenerateAsync's task is cancelled");
                Check.Throws<OperationCanceledException>(() => model.GenerateStream("Hello", Endless(), cts.Token).ToList(),
                    "GenerateStream with a cancelled token");
            }
        }

        private static void ExceptionInStreamConsumer()
        {
            LlmModel model = Fixtures.Tiny;
            object prompt = TinyPrompts("fp32")[0];
            var watch = Stopwatch.StartNew();
            int seen = 0;
            InvalidOperationException thrown = Check.Throws<InvalidOperationException>(() =>
            {
                foreach (string piece in model.GenerateStream(J.Ints(prompt, "prompt_ids"), Endless()))
                {
                    if (++seen == 2)
                    {
                        throw new InvalidOperationException("consumer failed");
                    }
                }
            }, "an exception thrown in the foreach body");
            Check.Equal("consumer failed", thrown.Message, "the consumer's own exception");
            Check.Equal(0, GenerationStream.LiveProducers, "the producer thread was stopped and joined");
            Check.True(watch.ElapsedMilliseconds < 20000, "the endless generation was stopped");

            // break is the same: stop and join.
            foreach (string piece in model.GenerateStream(J.Ints(prompt, "prompt_ids"), Endless()))
            {
                break;
            }
            Check.Equal(0, GenerationStream.LiveProducers, "no producer after break");

            // The model is still fine.
            int[] expected = J.Ints(prompt, "new_ids");
            Check.Ids(expected, model.Complete(J.Ints(prompt, "prompt_ids"), Greedy(expected.Length, true)).TokenIds.ToList(),
                "greedy ids after the failed consumers");
        }

        private static void ExceptionInCallback()
        {
            LlmModel model = Fixtures.Tiny;
            object prompt = TinyPrompts("fp32")[0];
            int calls = 0;
            var thrown = Check.Throws<FormatException>(() => model.Complete(J.Ints(prompt, "prompt_ids"), Endless(), piece =>
            {
                calls++;
                throw new FormatException("callback failed");
            }), "an exception thrown by onText");
            Check.Equal("callback failed", thrown.Message, "the callback's own exception");
            Check.Equal(1, calls, "the generation stopped at the first throw");
            Check.True(thrown.StackTrace.Contains("ExceptionInCallback"), "the original stack trace is kept");

            // Through CompleteAsync: the task faults with the same exception.
            Task<GenerationResult> task = model.CompleteAsync(J.Ints(prompt, "prompt_ids"), Endless(), piece =>
            {
                throw new ArgumentException("async callback failed");
            });
            Check.Equal("async callback failed", Check.Throws<ArgumentException>(() => task.Wait(), "CompleteAsync").Message, "message");

            int[] expected = J.Ints(prompt, "new_ids");
            Check.Ids(expected, model.Complete(J.Ints(prompt, "prompt_ids"), Greedy(expected.Length, true)).TokenIds.ToList(),
                "greedy ids after the failed callbacks");
        }

        private static void EightThreads()
        {
            LlmModel model = Fixtures.Tiny;
            List<object> prompts = TinyPrompts("fp32");
            object tokenizerGolden = Paths.Golden("tokenizers/llama3.2.json");
            Dictionary<string, string> inputs = TokenizerTests.Inputs();
            List<object> cases = J.List(tokenizerGolden, "cases").Where(c => J.Bool(c, "add_special")).ToList();
            const int steps = 8;
            var errors = new List<Exception>();
            var threads = new List<Thread>();
            using (var start = new ManualResetEventSlim())
            {
                for (int t = 0; t < 8; t++)
                {
                    int index = t;
                    var thread = new Thread(() =>
                    {
                        try
                        {
                            start.Wait();
                            for (int round = 0; round < 2; round++)
                            {
                                object prompt = prompts[(index + round) % prompts.Count];
                                int[] expected = J.Ints(prompt, "new_ids").Take(steps).ToArray();
                                IEnumerable<string> pieces = index % 2 == 0
                                    ? model.GenerateStream(J.Ints(prompt, "prompt_ids"), Greedy(steps, true))
                                    : new[] { model.Complete(J.Ints(prompt, "prompt_ids"), Greedy(steps, true)).Text };
                                Check.Equal(model.Decode(expected), string.Concat(pieces), "thread " + index + " text");
                                Check.Ids(expected, model.Complete(J.Ints(prompt, "prompt_ids"), Greedy(steps, true)).TokenIds.ToList(),
                                    "thread " + index + " ids");
                                object c = cases[(index * 7 + round) % cases.Count];
                                Check.Ids(J.Ints(c, "ids"), model.Tokenize(inputs[J.Str(c, "input")], true, J.Bool(c, "parse_special")),
                                    "thread " + index + " tokenize " + J.Str(c, "input"));
                            }
                        }
                        catch (Exception e)
                        {
                            lock (errors)
                            {
                                errors.Add(e);
                            }
                        }
                    });
                    thread.Start();
                    threads.Add(thread);
                }
                start.Set();
                foreach (Thread thread in threads)
                {
                    Check.True(thread.Join(90000), "thread finished");
                }
            }
            if (errors.Count > 0)
            {
                throw new AggregateException(errors.Count + " of 8 threads failed", errors);
            }
        }
    
        /// <summary>Runs the tiny model's golden prompts (and the first again) on four threads at once.</summary>
        private static int RunConcurrently(LlmModel model, string what)
        {
            List<object> prompts = TinyPrompts("fp32");
            prompts.Add(prompts[0]);
            var results = new GenerationResult[prompts.Count];
            var errors = new List<Exception>();
            var threads = new List<Thread>();
            using (var barrier = new Barrier(prompts.Count))
            {
                for (int t = 0; t < prompts.Count; t++)
                {
                    int index = t;
                    var thread = new Thread(() =>
                    {
                        try
                        {
                            int[] expected = J.Ints(prompts[index], "new_ids");
                            bool first = true;
                            GenerationOptions options = Greedy(expected.Length, true);
                            var pieces = new List<string>();
                            results[index] = model.Complete(J.Ints(prompts[index], "prompt_ids"), options, piece =>
                            {
                                if (first)
                                {
                                    // Every generation is in its decode phase before any goes on.
                                    barrier.SignalAndWait(30000);
                                    first = false;
                                }
                                pieces.Add(piece);
                            });
                            Check.Ids(expected, results[index].TokenIds.ToList(), what + ": ids of request " + index);
                            Check.Equal(model.Decode(expected), string.Concat(pieces), what + ": streamed text of request " + index);
                        }
                        catch (Exception e)
                        {
                            lock (errors)
                            {
                                errors.Add(e);
                            }
                        }
                    });
                    thread.Start();
                    threads.Add(thread);
                }
                foreach (Thread thread in threads)
                {
                    Check.True(thread.Join(90000), "thread finished");
                }
            }
            if (errors.Count > 0)
            {
                throw new AggregateException(errors.Count + " threads failed", errors);
            }
            return results.Sum(r => r.BatchedSteps);
        }

        private static void ConcurrentBatched()
        {
            // The generations run together (a barrier after each one's first piece); their ids and text must be
            // the golden's (ONNX Runtime's Python API, each prompt alone), and their steps must have been batched.
            int batched = 0;
            for (int round = 0; round < 3 && batched == 0; round++)
            {
                batched += RunConcurrently(Fixtures.Tiny, "default options");
            }
            Check.True(batched > 0, "concurrent generations shared decode steps (BatchedSteps)");
            using (LlmModel unbatched = LlmModel.Load(Paths.Model("tiny-llama/fp32"),
                new LlmLoadOptions { OrtLibraryPath = Paths.OrtLibrary, MaxDecodeBatch = 1 }))
            {
                Check.Equal(0, RunConcurrently(unbatched, "MaxDecodeBatch 1"), "no batched steps with MaxDecodeBatch 1");
                GenerationResult alone = unbatched.Complete(J.Ints(TinyPrompts("fp32")[0], "prompt_ids"), Greedy(4, true));
                Check.Equal(0, alone.BatchedSteps, "no batching with MaxDecodeBatch 1");
            }
        }
    }
}
