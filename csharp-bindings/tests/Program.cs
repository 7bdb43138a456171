// The console test program of the C# wrapper and the drop-in. csharp-bindings/test.sh compiles it with
// mcs and runs it on Mono and on CoreCLR 3.1; it prints one line per test and a last line
// "<runtime>: N passed, M failed", and exits non-zero when a test failed.
//
// Usage: Sphana.Llm.Tests.exe [name-filter]   (env: SPHANA_LLM_REPO, SPHANA_LLM_ASSETS, ORT_DYLIB_PATH)
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;

namespace Sphana.Llm.Tests
{
    internal static class Program
    {
        /// <summary>
        /// A test running longer than this is reported and the process ends (a hang must not stall CI): 120 s, or
        /// the SPHANA_LLM_CS_TIMEOUT environment variable (seconds) for long recorded runs.
        /// </summary>
        private static readonly int TestTimeoutSeconds = EnvInt("SPHANA_LLM_CS_TIMEOUT", 120);

        /// <summary>An integer environment variable, or <paramref name="fallback"/> when it is not set.</summary>
        internal static int EnvInt(string name, int fallback)
        {
            string value = Environment.GetEnvironmentVariable(name);
            return string.IsNullOrEmpty(value) ? fallback : int.Parse(value);
        }

        private static string s_running;
        private static long s_runningSince;

        private static int Main(string[] args)
        {
            string filter = args.Length > 0 ? args[0] : null;
            var tests = new List<KeyValuePair<string, Action>>();
            TokenizerTests.Register(tests);
            GenerationTests.Register(tests);
            LifetimeTests.Register(tests);
            ErrorTests.Register(tests);
            ChatTests.Register(tests);
            ConstraintTests.Register(tests);
            ToolTests.Register(tests);
            DropInTests.Register(tests);

            string runtime = Type.GetType("Mono.Runtime") != null ? "mono" : "coreclr";
            Console.WriteLine("{0} {1}, libsphana_llm {2}, repository {3}", runtime, Environment.Version,
                LlmModel.NativeVersion, Paths.Repo);
            StartWatchdog();

            int passed = 0;
            int failed = 0;
            var total = Stopwatch.StartNew();
            foreach (KeyValuePair<string, Action> test in tests)
            {
                if (filter != null && test.Key.IndexOf(filter, StringComparison.OrdinalIgnoreCase) < 0)
                {
                    continue;
                }
                Volatile.Write(ref s_runningSince, Stopwatch.GetTimestamp());
                Volatile.Write(ref s_running, test.Key);
                var watch = Stopwatch.StartNew();
                try
                {
                    test.Value();
                    passed++;
                    Console.WriteLine("ok   {0} ({1} ms)", test.Key, watch.ElapsedMilliseconds);
                }
                catch (Exception e)
                {
                    failed++;
                    Console.WriteLine("FAIL {0} ({1} ms): {2}", test.Key, watch.ElapsedMilliseconds, e);
                }
                Volatile.Write(ref s_running, null);
            }
            Fixtures.DisposeAll();
            Console.WriteLine("{0} total: {1:F1} s", runtime, total.Elapsed.TotalSeconds);
            Console.WriteLine("{0}: {1} passed, {2} failed", runtime, passed, failed);
            return failed == 0 && passed > 0 ? 0 : 1;
        }

        private static void StartWatchdog()
        {
            var watchdog = new Thread(() =>
            {
                while (true)
                {
                    Thread.Sleep(1000);
                    string running = Volatile.Read(ref s_running);
                    long since = Volatile.Read(ref s_runningSince);
                    if (running != null && (Stopwatch.GetTimestamp() - since) / (double)Stopwatch.Frequency > TestTimeoutSeconds)
                    {
                        Console.WriteLine("FAIL {0}: still running after {1} s; stopping", running, TestTimeoutSeconds);
                        Console.WriteLine("0 passed, 1 failed");
                        Console.Out.Flush();
                        Environment.Exit(3);
                    }
                }
            });
            watchdog.IsBackground = true;
            watchdog.Start();
        }
    }

    /// <summary>Where the repository, the assets and the goldens are (as tests/common/mod.rs finds them).</summary>
    internal static class Paths
    {
        internal static readonly string Repo = FindRepo();

        internal static string Assets
        {
            get { return Environment.GetEnvironmentVariable("SPHANA_LLM_ASSETS") ?? Path.Combine(Repo, "assets"); }
        }

        internal static string Header
        {
            get { return Path.Combine(Repo, "include", "sphana_llm.h"); }
        }

        internal static string OrtLibrary
        {
            get
            {
                string fromEnv = Environment.GetEnvironmentVariable("ORT_DYLIB_PATH");
                return string.IsNullOrEmpty(fromEnv)
                    ? Path.Combine(Assets, "onnxruntime", "1.23.2", "libonnxruntime.so")
                    : fromEnv;
            }
        }

        internal static string Tokenizer(string name)
        {
            return Existing(Path.Combine(Assets, "tokenizers", name), "run `python3 scripts/setup/fetch_tokenizers.py`");
        }

        internal static string Model(string name)
        {
            return Existing(Path.Combine(Assets, "models", name),
                "run `python3 scripts/setup/make_tiny_models.py` and `python3 scripts/setup/convert_smollm2.py` (or scripts/setup.sh)");
        }

        internal static object Golden(string relative)
        {
            return MiniJson.Parse(File.ReadAllText(Path.Combine(Repo, "tests", "golden", relative), System.Text.Encoding.UTF8));
        }

        private static string Existing(string path, string hint)
        {
            if (!Directory.Exists(path))
            {
                throw new DirectoryNotFoundException(path + " is missing: " + hint);
            }
            return path;
        }

        private static string FindRepo()
        {
            string fromEnv = Environment.GetEnvironmentVariable("SPHANA_LLM_REPO");
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return Path.GetFullPath(fromEnv);
            }
            string dir = AppDomain.CurrentDomain.BaseDirectory;
            while (dir != null)
            {
                if (File.Exists(Path.Combine(dir, "Cargo.toml")) && File.Exists(Path.Combine(dir, "include", "sphana_llm.h")))
                {
                    return dir;
                }
                dir = Path.GetDirectoryName(dir.TrimEnd(Path.DirectorySeparatorChar));
            }
            throw new DirectoryNotFoundException("cannot find the repository root above " + AppDomain.CurrentDomain.BaseDirectory + "; set SPHANA_LLM_REPO");
        }
    }

    /// <summary>Models shared by the tests, loaded once.</summary>
    internal static class Fixtures
    {
        private static readonly object Lock = new object();
        private static readonly Dictionary<string, LlmModel> Loaded = new Dictionary<string, LlmModel>();

        internal static LlmLoadOptions Options()
        {
            return new LlmLoadOptions { OrtLibraryPath = Paths.OrtLibrary };
        }

        /// <summary>The Llama 3.2 tokenizer, tokenizer-only.</summary>
        internal static LlmModel Llama32
        {
            get { return Get("llama3.2", () => LlmModel.Load(Paths.Tokenizer("llama3.2"), Options())); }
        }

        /// <summary>The tiny random Llama-3.2-shaped decoder (fp32).</summary>
        internal static LlmModel Tiny
        {
            get { return Get("tiny", () => LlmModel.Load(Paths.Model("tiny-llama/fp32"), Options())); }
        }

        /// <summary>SmolLM2-135M-Instruct (fp32).</summary>
        internal static LlmModel Smol
        {
            get { return Get("smol", () => LlmModel.Load(Paths.Model("smollm2-135m-instruct"), Options())); }
        }

        internal static void DisposeAll()
        {
            lock (Lock)
            {
                foreach (LlmModel model in Loaded.Values)
                {
                    model.Dispose();
                }
                Loaded.Clear();
            }
        }

        /// <summary>The model loaded under <paramref name="key"/> (loaded by <paramref name="load"/> the first time; disposed at the end of the run).</summary>
        internal static LlmModel Get(string key, Func<LlmModel> load)
        {
            lock (Lock)
            {
                LlmModel model;
                if (!Loaded.TryGetValue(key, out model))
                {
                    model = load();
                    Loaded[key] = model;
                }
                return model;
            }
        }
    }

    /// <summary>Assertions that say what differed.</summary>
    internal static class Check
    {
        internal static void True(bool condition, string what)
        {
            if (!condition)
            {
                throw new Exception("expected: " + what);
            }
        }

        internal static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
            {
                throw new Exception(string.Format("{0}: expected <{1}>, got <{2}>", what, Show(expected), Show(actual)));
            }
        }

        internal static void Ids(IList<int> expected, IList<int> actual, string what)
        {
            int n = Math.Min(expected.Count, actual.Count);
            for (int i = 0; i < n; i++)
            {
                if (expected[i] != actual[i])
                {
                    throw new Exception(string.Format("{0}: first difference at {1}: expected {2}, got {3} (expected [{4}], got [{5}])",
                        what, i, expected[i], actual[i], string.Join(",", expected), string.Join(",", actual)));
                }
            }
            if (expected.Count != actual.Count)
            {
                throw new Exception(string.Format("{0}: expected {1} ids [{2}], got {3} [{4}]", what, expected.Count,
                    string.Join(",", expected), actual.Count, string.Join(",", actual)));
            }
        }

        /// <summary>Runs <paramref name="action"/>, which must throw a <typeparamref name="T"/> (or a subclass).</summary>
        internal static T Throws<T>(Action action, string what) where T : Exception
        {
            try
            {
                action();
            }
            catch (T e)
            {
                return e;
            }
            catch (AggregateException e)
            {
                var inner = e.GetBaseException() as T;
                if (inner != null)
                {
                    return inner;
                }
                throw new Exception(what + ": expected " + typeof(T).Name + ", got " + e, e);
            }
            catch (Exception e)
            {
                throw new Exception(what + ": expected " + typeof(T).Name + ", got " + e.GetType().Name + ": " + e.Message, e);
            }
            throw new Exception(what + ": expected " + typeof(T).Name + ", nothing was thrown");
        }

        /// <summary>A native error: the right status, and a message that is the library's own.</summary>
        internal static SphanaLlmException Native(SphanaLlmStatus status, Action action, string what, string messagePart = null)
        {
            SphanaLlmException e = Throws<SphanaLlmException>(action, what);
            Equal(status, e.Status, what + ": status");
            True(!string.IsNullOrEmpty(e.NativeMessage), what + ": a native message");
            True(e.Message.Contains(e.NativeMessage), what + ": Message carries the native message");
            True(e.Function.StartsWith("sphana_llm_"), what + ": the failing function is named (" + e.Function + ")");
            if (messagePart != null)
            {
                True(e.NativeMessage.IndexOf(messagePart, StringComparison.OrdinalIgnoreCase) >= 0,
                    what + ": message \"" + e.NativeMessage + "\" mentions \"" + messagePart + "\"");
            }
            return e;
        }

        private static string Show<T>(T value)
        {
            var s = value as string;
            return s != null ? s.Replace("\n", "\\n") : Convert.ToString(value);
        }
    }
}
