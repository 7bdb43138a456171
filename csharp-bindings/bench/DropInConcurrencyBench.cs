// Aggregate throughput of the Sphana drop-in as Sphana.Database configures it: a folder with only
// llm_generator.onnx and tokenizer.json, new LlmGeneratorModel(onnx, tokenizer.json, useGpu: true, 0,
// maxPoolSize: 1, false, logger), then the same RAG-shaped requests one at a time and four at once.
// Prints the tokens/s of each and the ratio (plus the batched decode steps), on whichever runtime runs it.
// Run by scripts/bench/bench_dropin.sh on Mono and CoreCLR.
//
//   DropInConcurrencyBench.exe <sphana folder> [max tokens = 64] [rounds = 3]
using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Sphana.Database.Infrastructure.Onnx;
using Sphana.Llm;

internal sealed class QuietLogger : ILogger<LlmGeneratorModel>
{
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception exception, Func<TState, Exception, string> formatter)
    {
        if (logLevel >= LogLevel.Warning)
        {
            Console.Error.WriteLine(logLevel + ": " + formatter(state, exception));
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

internal static class DropInConcurrencyBench
{
    // Plain completion prompts of the service's shape whose questions ask for a long answer, so every
    // request generates (close to) max tokens and the two runs compare like with like: the ratio
    // measures how decode steps share the weights, not how soon answers end. (Sphana's short factual
    // questions end at EOS after 0-30 tokens; then the prompts' prefill, which runs alone on the
    // session, and the ragged ends dominate, and four at once gave about 1.5x here.)
    private const string Context =
        "Answer the question based on the following context:\n\nContext (Score: 0.87): Paris is the capital and largest city of France. The Seine flows through it.\n\nQuestion: ";

    private static readonly string[] Prompts =
    {
        Context + "Write a long essay about Paris, its history, its monuments and its people.\nAnswer:",
        Context + "List twenty facts about the Seine river, one per line.\nAnswer:",
        Context + "Explain in detail, step by step, how water boils.\nAnswer:",
        Context + "Describe the history of the Eiffel Tower in many paragraphs.\nAnswer:",
    };

    private static int Main(string[] args)
    {
        string folder = args[0];
        int maxTokens = args.Length > 1 ? int.Parse(args[1]) : 64;
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 3;
        string runtime = Type.GetType("Mono.Runtime") != null ? "mono" : "coreclr";
        using (var generator = new LlmGeneratorModel(Path.Combine(folder, "llm_generator.onnx"), Path.Combine(folder, "tokenizer.json"),
            true, 0, 1, false, new QuietLogger()))
        {
            generator.GenerateAsync(Prompts[0], 8).Wait(); // warm-up
            double best1 = 0;
            double best4 = 0;
            int batched = 0;
            string lengths = "";
            for (int r = 0; r < rounds; r++)
            {
                // One at a time.
                var watch = Stopwatch.StartNew();
                int tokens = 0;
                foreach (string p in Prompts)
                {
                    tokens += generator.GenerateAsync(p, maxTokens).Result.GeneratedTokens;
                }
                best1 = Math.Max(best1, tokens / watch.Elapsed.TotalSeconds);

                // Four at once.
                watch = Stopwatch.StartNew();
                Task<GenerationResult>[] tasks = Prompts.Select(p => generator.GenerateAsync(p, maxTokens)).ToArray();
                Task.WaitAll(tasks);
                double seconds = watch.Elapsed.TotalSeconds;
                best4 = Math.Max(best4, tasks.Sum(t => t.Result.GeneratedTokens) / seconds);
                batched = tasks.Sum(t => t.Result.BatchedSteps);
                lengths = string.Join(" ", tasks.Select(t => t.Result.GeneratedTokens + "/" + t.Result.PromptTokens + " " + t.Result.FinishReason));
            }
            Console.WriteLine("{0}: one at a time {1:F1} tok/s, four at once {2:F1} tok/s: {3:F2}x ({4} batched decode steps in the last round; best of {5} rounds, {6} max tokens, max {7} at once)",
                runtime, best1, best4, best4 / best1, batched, rounds, maxTokens, generator.MaxConcurrentGenerations);
            Console.WriteLine("  generated/prompt tokens and finish of the four: " + lengths);
        }
        return 0;
    }
}
