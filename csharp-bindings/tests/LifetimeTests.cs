// Handle lifetimes: Dispose versus the finalizer, use after Dispose, Dispose during a generation.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm.Tests
{
    internal static class LifetimeTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "finalizers_release_every_undisposed_handle", FinalizersReleaseHandles);
            Add(tests, "use_after_dispose_throws_object_disposed", UseAfterDispose);
            Add(tests, "dispose_during_a_generation_lets_it_finish", DisposeDuringGeneration);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        private static void FullCollect()
        {
            for (int i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }

        /// <summary>Creates native objects and drops them without Dispose (in its own frame, so nothing on the stack keeps them).</summary>
        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void Abandon(LlmModel shared, int count)
        {
            for (int i = 0; i < count; i++)
            {
                StreamDecoder decoder = shared.CreateStreamDecoder();
                decoder.Push(9906);
                // A model of its own (a SentencePiece tokenizer loads in milliseconds), with a decoder that outlives it.
                if (i % 20 == 0)
                {
                    LlmModel model = LlmModel.Load(Paths.Tokenizer("llama2-spm"), Fixtures.Options());
                    model.CreateStreamDecoder().Push(1);
                    model.Tokenize("hello");
                }
            }
        }

        private static void FinalizersReleaseHandles()
        {
            LlmModel shared = Fixtures.Llama32;
            FullCollect();
            long models = SafeLlmModelHandle.Live;
            long decoders = SafeStreamDecoderHandle.Live;
            // On a thread of its own, whose stack is gone when it ends: Mono scans stacks conservatively, and a
            // stale slot in this frame could keep one object alive.
            var creator = new Thread(() => Abandon(shared, 200));
            creator.Start();
            creator.Join();
            Check.True(SafeStreamDecoderHandle.Live >= decoders + 200, "200 decoders are live before the collection");
            Check.Equal(models + 10, SafeLlmModelHandle.Live, "10 models are live before the collection");
            for (int i = 0; i < 10 && (SafeStreamDecoderHandle.Live > decoders || SafeLlmModelHandle.Live > models); i++)
            {
                FullCollect();
            }
            Check.Equal(decoders, SafeStreamDecoderHandle.Live, "every abandoned decoder was freed by its finalizer");
            Check.Equal(models, SafeLlmModelHandle.Live, "every abandoned model was freed by its finalizer");
            // Nothing was freed twice or under a live object: the shared model still works.
            Check.Ids(new[] { 128000, 9906, 1917 }, shared.Tokenize("Hello world"), "the shared model after the finalizers ran");
            using (StreamDecoder decoder = shared.CreateStreamDecoder())
            {
                Check.Equal("Hello", decoder.Push(9906), "a new decoder after the finalizers ran");
            }
        }

        private static void UseAfterDispose()
        {
            LlmModel model = LlmModel.Load(Paths.Tokenizer("llama3.2"), Fixtures.Options());
            StreamDecoder survivor = model.CreateStreamDecoder();
            StreamDecoder decoder = model.CreateStreamDecoder();
            int vocab = model.VocabSize;
            model.Dispose();
            model.Dispose(); // twice is fine

            Check.Throws<ObjectDisposedException>(() => model.Tokenize("x"), "Tokenize");
            Check.Throws<ObjectDisposedException>(() => model.CountTokens("x"), "CountTokens");
            Check.Throws<ObjectDisposedException>(() => model.TokenizeWithOffsets("x"), "TokenizeWithOffsets");
            Check.Throws<ObjectDisposedException>(() => model.TokenizeBatch(new[] { "x" }), "TokenizeBatch");
            Check.Throws<ObjectDisposedException>(() => model.Decode(new[] { 1 }), "Decode");
            Check.Throws<ObjectDisposedException>(() => model.TokenToId("x"), "TokenToId");
            Check.Throws<ObjectDisposedException>(() => model.IdToToken(1), "IdToToken");
            Check.Throws<ObjectDisposedException>(() => model.IsSpecialToken(1), "IsSpecialToken");
            Check.Throws<ObjectDisposedException>(() => model.CreateStreamDecoder(), "CreateStreamDecoder");
            Check.Throws<ObjectDisposedException>(() => model.Generate("x"), "Generate");
            Check.Throws<ObjectDisposedException>(() => model.Complete(new[] { 1 }), "Complete");
            Check.Throws<ObjectDisposedException>(() => model.GenerateAsync("x"), "GenerateAsync");
            Check.Throws<ObjectDisposedException>(() => model.CompleteAsync("x"), "CompleteAsync");
            Check.Throws<ObjectDisposedException>(() => model.GenerateStream("x"), "GenerateStream");
            Check.Equal(vocab, model.VocabSize, "facts read at load stay readable");

            // A decoder keeps the native model alive after the LlmModel is disposed.
            Check.Equal("Hello", survivor.Push(9906), "a decoder outliving its model");
            survivor.Dispose();
            decoder.Dispose();
            decoder.Dispose();
            Check.Throws<ObjectDisposedException>(() => decoder.Push(1), "Push after Dispose");
            Check.Throws<ObjectDisposedException>(() => decoder.Flush(), "Flush after Dispose");
        }

        private static void DisposeDuringGeneration()
        {
            LlmModel model = LlmModel.Load(Paths.Model("tiny-llama/fp32"), Fixtures.Options());
            long live = SafeLlmModelHandle.Live;
            object prompt = GenerationTests.TinyPrompts("fp32")[0];
            int[] expected = J.Ints(prompt, "new_ids");
            using (var firstPiece = new ManualResetEventSlim())
            using (var disposed = new ManualResetEventSlim())
            {
                Task<GenerationResult> task = model.CompleteAsync(J.Ints(prompt, "prompt_ids"),
                    new GenerationOptions { MaxTokens = expected.Length, IgnoreEos = true }, piece =>
                    {
                        firstPiece.Set();
                        disposed.Wait(30000);
                    });
                Check.True(firstPiece.Wait(60000), "the generation started");
                model.Dispose();
                Check.Equal(live, SafeLlmModelHandle.Live, "not freed while the generation runs");
                disposed.Set();
                GenerationResult result = task.Result;
                Check.Equal(FinishReason.Length, result.FinishReason, "the running generation finished normally");
                Check.Ids(expected, result.TokenIds.ToList(), "and gave the golden ids");
            }
            Check.Equal(live - 1, SafeLlmModelHandle.Live, "freed once the generation returned");
            Check.Throws<ObjectDisposedException>(() => model.Complete(new[] { 1 }), "a new generation after Dispose");
        }
    }
}
