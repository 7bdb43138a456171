// The drop-in LlmGeneratorModel, as Sphana.Database constructs and calls it.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Sphana.Database.Infrastructure.Onnx;

namespace Sphana.Llm.Tests
{
    internal sealed class CapturingLogger : ILogger<LlmGeneratorModel>
    {
        private readonly List<string> _lines = new List<string>();

        internal List<string> Lines
        {
            get
            {
                lock (_lines)
                {
                    return _lines.ToList();
                }
            }
        }

        /// <summary>Called with every message, on the logging thread (a test hook).</summary>
        internal Action<string> OnMessage { get; set; }

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception exception, Func<TState, Exception, string> formatter)
        {
            string line = logLevel + ": " + formatter(state, exception);
            lock (_lines)
            {
                _lines.Add(line);
            }
            Action<string> hook = OnMessage;
            if (hook != null)
            {
                hook(line);
            }
        }

        public bool IsEnabled(LogLevel logLevel)
        {
            return true;
        }

        public IDisposable BeginScope<TState>(TState state)
        {
            return null;
        }
    }

    internal static class DropInTests
    {
        /// <summary>The plain completion prompt Sphana.Database builds from retrieved chunks.</summary>
        internal const string ServicePrompt =
            "Answer the question based on the following context: Paris is the capital and largest city of France.\n" +
            "Question: What is the capital of France?\nAnswer:";

        private static LlmGeneratorModel s_generator;
        private static CapturingLogger s_logger;

        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "dropin_answers_the_capital_of_france", AnswersParis);
            Add(tests, "dropin_respects_max_tokens", RespectsMaxTokens);
            Add(tests, "dropin_respects_cancellation", RespectsCancellation);
            Add(tests, "dropin_accepts_the_service_path_shapes", PathShapes);
            Add(tests, "dropin_dispose", DisposeGenerator);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        private static LlmGeneratorModel Generator
        {
            get
            {
                if (s_generator == null)
                {
                    string dir = Paths.Model("smollm2-135m-instruct");
                    s_logger = new CapturingLogger();
                    // As Program.cs of Sphana.Database does: model file, tokenizer.json, no GPU, pool of 1, log tokens.
                    s_generator = new LlmGeneratorModel(Path.Combine(dir, "model.onnx"), Path.Combine(dir, "tokenizer.json"),
                        false, 0, 1, true, s_logger);
                }
                return s_generator;
            }
        }

        private static void AnswersParis()
        {
            ILlmGeneratorModel generator = Generator;
            // A plain completion prompt on an instruct model: "The answer is: Paris", then it repeats itself
            // until maxTokens, as the old implementation did (the chat template will fix that; see the README).
            string answer = generator.GenerateAnswerAsync(ServicePrompt, 12).Result;
            Check.True(answer.Contains("Paris"), "the answer names Paris: \"" + answer + "\"");
            Check.Equal(answer.Trim(), answer, "the answer is trimmed");
            List<string> lines = s_logger.Lines;
            Check.True(lines.Any(l => l.Contains("Loaded LLM from")), "the load was logged");
            Check.True(lines.Any(l => l.Contains("Tokenized prompt into")), "logTokenizedText logs the prompt's ids");
            Check.True(lines.Any(l => l.Contains("Decoded tokenized text: Answer the question")), "and its decoded text");
            Check.True(lines.Any(l => l.StartsWith("Information: Generated ")), "the generation was logged");
            Check.Equal("", generator.GenerateAnswerAsync("   ", 12).Result, "a blank prompt gives \"\" as before");
            Check.Equal("", generator.GenerateAnswerAsync(ServicePrompt, 0).Result, "maxTokens 0 gives \"\" as before");
        }

        private static void RespectsMaxTokens()
        {
            LlmGeneratorModel generator = Generator;
            GenerationResult full = generator.GenerateAsync(ServicePrompt, 12).Result;
            Check.Equal(12, full.GeneratedTokens, "12 tokens (the model repeats itself past the answer)");
            foreach (int maxTokens in new[] { 1, 3 })
            {
                GenerationResult result = generator.GenerateAsync(ServicePrompt, maxTokens).Result;
                Check.True(result.GeneratedTokens <= maxTokens, result.GeneratedTokens + " tokens for maxTokens " + maxTokens);
                Check.Equal(FinishReason.Length, result.FinishReason, "stopped by maxTokens");
                Check.Ids(full.TokenIds.Take(maxTokens).ToList(), result.TokenIds.ToList(), "greedy: a prefix of the longer answer");
                string answer = generator.GenerateAnswerAsync(ServicePrompt, maxTokens).Result;
                Check.True(full.Text.Trim().StartsWith(answer), "\"" + answer + "\" starts the full answer");
            }
        }

        private static void RespectsCancellation()
        {
            LlmGeneratorModel generator = Generator;
            using (var cts = new CancellationTokenSource())
            {
                cts.Cancel();
                Task<string> task = generator.GenerateAnswerAsync(ServicePrompt, 48, cts.Token);
                Check.Throws<OperationCanceledException>(() => task.Wait(), "a cancelled token");
            }
            // Cancel mid-generation: the service prompt makes this model repeat its answer until maxTokens (see
            // AnswersParis), so 2000 tokens would take minutes; 300 ms after the prompt was tokenized (logged just
            // before the generation starts) the token is cancelled, and the call must end at once.
            using (var cts = new CancellationTokenSource())
            {
                s_logger.OnMessage = line =>
                {
                    if (line.Contains("Decoded tokenized text"))
                    {
                        cts.CancelAfter(300);
                    }
                };
                try
                {
                    var watch = System.Diagnostics.Stopwatch.StartNew();
                    Task<GenerationResult> task = generator.GenerateAsync(ServicePrompt, 2000, cts.Token);
                    Check.Throws<OperationCanceledException>(() => task.Wait(), "cancelled while generating");
                    Check.True(task.IsCanceled, "the task is cancelled (" + task.Status + ")");
                    Check.True(watch.ElapsedMilliseconds < 30000, "ended soon after the cancel (" + watch.ElapsedMilliseconds + " ms)");
                }
                finally
                {
                    s_logger.OnMessage = null;
                }
                Check.True(s_logger.Lines.Any(l => l.Contains("(Cancelled)")), "the generation itself was cancelled (logged)");
            }
            // The slot was released: the next request runs.
            Check.True(generator.GenerateAnswerAsync(ServicePrompt, 8).Result.Contains("Paris"), "a request after the cancelled one");
        }

        private static void PathShapes()
        {
            string dir = Paths.Model("smollm2-135m-instruct");
            var logger = new CapturingLogger();
            using (var byDirectory = new LlmGeneratorModel(dir, dir, false, 0, 1, false, logger))
            {
                Check.True(byDirectory.GenerateAnswerAsync(ServicePrompt, 8).Result.Contains("Paris"), "model and tokenizer given as the directory");
                Check.True(logger.Lines.All(l => !l.Contains("Tokenized prompt")), "no token logging when logTokenizedText is false");
            }
            Check.Throws<ArgumentException>(
                () => new LlmGeneratorModel(Path.Combine(dir, "model.onnx"), Path.Combine(Paths.Tokenizer("llama3.2"), "tokenizer.json"), false, 0, 1, false, logger),
                "a tokenizer outside the model directory");
            Check.Native(SphanaLlmStatus.Io,
                () => new LlmGeneratorModel(Path.Combine(dir, "missing.onnx"), Path.Combine(dir, "tokenizer.json"), false, 0, 1, false, logger),
                "a missing model file", "missing.onnx");
            Check.Throws<InvalidOperationException>(
                () => new LlmGeneratorModel(Paths.Tokenizer("llama3.2"), null, false, 0, 1, false, logger), "a directory without a model");
        }

        private static void DisposeGenerator()
        {
            LlmGeneratorModel generator = Generator;
            generator.Dispose();
            Check.Throws<ObjectDisposedException>(() => generator.GenerateAnswerAsync(ServicePrompt, 8).Wait(), "after Dispose");
            s_generator = null;
        }
    }
}
