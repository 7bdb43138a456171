// Every error path: a SphanaLlmException with the C status and the library's own message.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Llm.Tests
{
    internal static class ErrorTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "load_errors_map_to_exceptions", LoadErrors);
            Add(tests, "cuda_without_fallback_fails_and_with_fallback_runs", CudaFallback);
            Add(tests, "token_id_and_lookup_errors", TokenErrors);
            Add(tests, "generation_on_a_tokenizer_only_model_is_unsupported", TokenizerOnlyGeneration);
            Add(tests, "generation_parameter_errors", ParameterErrors);
            Add(tests, "a_kv_budget_too_small_for_the_generation_is_kv_memory", KvBudget);
            Add(tests, "context_overflow_and_context_full", ContextErrors);
            Add(tests, "limits_from_load_options", LimitErrors);
            Add(tests, "error_messages_are_per_thread", PerThreadMessages);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        private static void LoadErrors()
        {
            string missing = Path.Combine(Paths.Assets, "no-such-model-dir");
            Check.Native(SphanaLlmStatus.Io, () => LlmModel.Load(missing, Fixtures.Options()), "a missing directory", "no-such-model-dir");

            string dir = Path.Combine(Path.GetTempPath(), "sphana-llm-cs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                Check.Native(SphanaLlmStatus.Io, () => LlmModel.Load(dir, Fixtures.Options()), "a directory without a tokenizer");
                File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{ \"model\": [truncated");
                Check.Native(SphanaLlmStatus.InvalidModel, () => LlmModel.Load(dir, Fixtures.Options()), "a corrupt tokenizer.json");
                Check.Native(SphanaLlmStatus.InvalidModel, () => LlmModel.Load(Path.Combine(dir, "tokenizer.json"), Fixtures.Options()),
                    "a corrupt tokenizer.json given as a file");
            }
            finally
            {
                Directory.Delete(dir, true);
            }
            Check.Native(SphanaLlmStatus.Io,
                () => LlmModel.Load(Paths.Model("tiny-llama/fp32"), new LlmLoadOptions { OrtLibraryPath = Paths.OrtLibrary, OnnxFileName = "absent.onnx" }),
                "a missing ONNX file name", "absent.onnx");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => LlmModel.Load(Paths.Tokenizer("llama3.2"), new LlmLoadOptions { TokenizerFormat = (TokenizerFormat)42 }), "an unknown format");
            Check.Throws<ArgumentNullException>(() => LlmModel.Load(null), "a null path");
            Check.Throws<ArgumentOutOfRangeException>(() => LlmModel.Load(Paths.Tokenizer("llama3.2"), new LlmLoadOptions { MaxInputBytes = -1 }),
                "a negative limit");
        }

        private static void CudaFallback()
        {
            // The ONNX Runtime used here (the PyPI wheel) has no CUDA provider.
            var options = new LlmLoadOptions { OrtLibraryPath = Paths.OrtLibrary, ExecutionProvider = ExecutionProvider.Cuda };
            Check.Native(SphanaLlmStatus.Runtime, () => LlmModel.Load(Paths.Model("tiny-llama/fp32"), options), "CUDA without fallback", "CUDA");
            options.AllowCpuFallback = true;
            using (LlmModel model = LlmModel.Load(Paths.Model("tiny-llama/fp32"), options))
            {
                object prompt = GenerationTests.TinyPrompts("fp32")[0];
                int[] expected = J.Ints(prompt, "new_ids").Take(4).ToArray();
                Check.Ids(expected, model.Complete(J.Ints(prompt, "prompt_ids"), new GenerationOptions { MaxTokens = 4, IgnoreEos = true }).TokenIds.ToList(),
                    "ids after falling back to CPU");
            }
        }

        private static void TokenErrors()
        {
            LlmModel model = Fixtures.Llama32;
            int vocab = model.VocabSize;
            Check.Native(SphanaLlmStatus.InvalidTokenId, () => model.Decode(new[] { 9906, vocab }), "decoding the vocabulary size", vocab.ToString());
            Check.Native(SphanaLlmStatus.InvalidTokenId, () => model.Decode(new[] { -1 }), "decoding -1");
            Check.Native(SphanaLlmStatus.InvalidTokenId, () => model.IdToToken(vocab + 5), "IdToToken outside the vocabulary");
            Check.Native(SphanaLlmStatus.InvalidTokenId, () => model.IsSpecialToken(-7), "IsSpecialToken(-7)");
            Check.Native(SphanaLlmStatus.NotFound, () => model.TokenToId("surely-not-a-token"), "TokenToId of a missing token");
            using (StreamDecoder decoder = model.CreateStreamDecoder())
            {
                int[] crab = model.Tokenize("🦀", false);
                decoder.Push(crab[0]);
                Check.Native(SphanaLlmStatus.InvalidTokenId, () => decoder.Push(vocab), "a stream decoder fed an invalid id");
                string rest = string.Concat(crab.Skip(1).Select(decoder.Push));
                Check.Equal("🦀", rest, "the decoder was unchanged by the invalid id");
            }
            Check.Native(SphanaLlmStatus.InvalidTokenId, () => Fixtures.Tiny.Complete(new[] { 128000, 999999 }), "a prompt id outside the vocabulary");
            Check.Throws<ArgumentNullException>(() => model.Tokenize(null), "Tokenize(null)");
            Check.Throws<ArgumentNullException>(() => model.Decode(null), "Decode(null)");
        }

        private static void TokenizerOnlyGeneration()
        {
            LlmModel model = Fixtures.Llama32;
            Check.Native(SphanaLlmStatus.Unsupported, () => model.Generate("Hello"), "Generate");
            Check.Native(SphanaLlmStatus.Unsupported, () => model.Complete(new[] { 128000 }), "Complete from ids");
            Task<string> task = model.GenerateAsync("Hello");
            Check.Native(SphanaLlmStatus.Unsupported, () => task.Wait(), "GenerateAsync");
            Check.True(task.IsFaulted, "the task is faulted");
            Check.Native(SphanaLlmStatus.Unsupported, () => model.GenerateStream("Hello").ToList(), "GenerateStream");
            Check.Equal(0, GenerationStream.LiveProducers, "no producer thread left");
        }

        private static void KvBudget()
        {
            LlmLoadOptions options = Fixtures.Options();
            options.MaxKvCacheBytes = 4096;
            options.KvWaitMs = 0;
            using (LlmModel model = LlmModel.Load(Paths.Model("tiny-llama/fp32"), options))
            {
                Check.Native(SphanaLlmStatus.KvMemory, () => model.Generate("Hello world", new GenerationOptions { MaxTokens = 64 }),
                    "a generation larger than the budget", "max_kv_cache_bytes");
                // A few positions fit (the budget is counted in prompt + new tokens).
                Check.Equal(1, model.Complete(new[] { 9906 }, new GenerationOptions { MaxTokens = 1, IgnoreEos = true }).GeneratedTokens,
                    "a 2-position generation fits");
            }
            Check.Throws<ArgumentOutOfRangeException>(() => LlmModel.Load(Paths.Model("tiny-llama/fp32"), new LlmLoadOptions { MaxKvCacheBytes = -1 }),
                "a negative budget");
        }

        private static void ParameterErrors()
        {
            LlmModel model = Fixtures.Tiny;
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("", new GenerationOptions { AddSpecialTokens = false }),
                "an empty prompt", "empty");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Complete(new int[0]), "an empty id prompt");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", new GenerationOptions { Temperature = -1 }), "a negative temperature", "temperature");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", new GenerationOptions { Temperature = float.NaN }), "a NaN temperature");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", new GenerationOptions { TopP = 0 }), "top-p 0", "top_p");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", new GenerationOptions { MinP = 1 }), "min-p 1", "min_p");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", new GenerationOptions { RepetitionPenalty = 0 }), "repetition penalty 0");
            var tooMany = new GenerationOptions();
            for (int i = 0; i < 65; i++)
            {
                tooMany.StopStrings.Add("stop" + i);
            }
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", tooMany), "65 stop strings", "64");
            var empty = new GenerationOptions();
            empty.StopStrings.Add("");
            Check.Native(SphanaLlmStatus.InvalidArgument, () => model.Generate("Hi", empty), "an empty stop string");
            Check.Throws<ArgumentOutOfRangeException>(() => model.Generate("Hi", new GenerationOptions { MaxTokens = -1 }), "negative MaxTokens");
            Check.Throws<ArgumentNullException>(() => model.Generate(null), "a null prompt");
            Check.Throws<ArgumentNullException>(() => model.GenerateAsync(null), "a null prompt, async");
            var nullStop = new GenerationOptions();
            nullStop.StopStrings.Add(null);
            Check.Throws<ArgumentException>(() => model.Generate("Hi", nullStop), "a null stop string");
            Check.Equal(0L, SafeCancellationHandle.Live, "no cancellation flag leaked by the failures");
        }

        private static void ContextErrors()
        {
            using (LlmModel model = LlmModel.Load(Paths.Model("tiny-llama/short-context"), Fixtures.Options()))
            {
                Check.Equal((int?)64, model.ContextLength, "context length from config.json");
                object prompt = GenerationTests.TinyPrompts("short-context").First(p => J.Bool(p, "context_full"));
                GenerationResult result = model.Complete(J.Ints(prompt, "prompt_ids"), new GenerationOptions { MaxTokens = 100, IgnoreEos = true });
                Check.Equal(FinishReason.ContextFull, result.FinishReason, "finish reason");
                Check.Ids(J.Ints(prompt, "new_ids_within_context"), result.TokenIds.ToList(), "ids until the context is full");
                int[] tooLong = Enumerable.Range(1000, 64).ToArray();
                Check.Native(SphanaLlmStatus.ContextOverflow, () => model.Complete(tooLong, new GenerationOptions { MaxTokens = 4 }),
                    "a prompt longer than the context");
            }
        }

        private static void LimitErrors()
        {
            var options = new LlmLoadOptions { MaxInputBytes = 16, MaxBatchTexts = 2 };
            using (LlmModel model = LlmModel.Load(Paths.Tokenizer("llama2-spm"), options))
            {
                Check.Equal(TokenizerFormat.SentencePiece, model.TokenizerFormat, "format");
                Check.True(model.Tokenize("sixteen bytes!!!").Length > 0, "16 bytes are accepted");
                Check.Native(SphanaLlmStatus.LimitExceeded, () => model.Tokenize("seventeen bytes!!"), "17 bytes", "16");
                Check.Native(SphanaLlmStatus.LimitExceeded, () => model.CountTokens("seventeen bytes!!"), "17 bytes counted");
                Check.Native(SphanaLlmStatus.LimitExceeded, () => model.TokenizeBatch(new[] { "a", "b", "c" }), "3 texts in a batch");
                Check.Equal(2, model.TokenizeBatch(new[] { "a", "b" }).Length, "2 texts in a batch");
            }
        }

        private static void PerThreadMessages()
        {
            // Each thread fails with its own id at the same time; each exception names its own id, so the
            // message was read on the failing thread before anything else could overwrite it.
            LlmModel model = Fixtures.Llama32;
            var errors = new List<Exception>();
            var threads = Enumerable.Range(0, 6).Select(t => new Thread(() =>
            {
                try
                {
                    for (int i = 0; i < 200; i++)
                    {
                        int id = model.VocabSize + 1000 * t + i;
                        var e = Check.Native(SphanaLlmStatus.InvalidTokenId, () => model.Decode(new[] { id }), "thread " + t);
                        Check.True(e.NativeMessage.Contains(id.ToString()), "thread " + t + " message names id " + id + ": " + e.NativeMessage);
                        model.Tokenize("and a call that succeeds in between");
                    }
                }
                catch (Exception e)
                {
                    lock (errors)
                    {
                        errors.Add(e);
                    }
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            if (errors.Count > 0)
            {
                throw new AggregateException(errors);
            }
        }
    }
}
