// Per-call cost of tokenizing a short chat message from C#: the wrapper's Tokenize and CountTokens against
// a bare P/Invoke of sphana_llm_tokenize (pinned, preallocated arrays) and an empty P/Invoke, so the
// marshalling cost can be told apart from the tokenizing. Run by scripts/bench/bench_csharp.sh on Mono and CoreCLR.
//
//   TokenizeBench.exe <tokenizer dir> [calls per round = 200000] [rounds = 7]
using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Sphana.Llm;

internal static class TokenizeBench
{
    private const string Message =
        "Could you summarise the attached quarterly report in three short bullet points for me, please? Thanks!";

    [DllImport("sphana_llm", CallingConvention = CallingConvention.Cdecl)]
    private static extern uint sphana_llm_abi_version();

    [DllImport("sphana_llm", CallingConvention = CallingConvention.Cdecl)]
    private static extern int sphana_llm_load(byte[] path, IntPtr options, out IntPtr model);

    [DllImport("sphana_llm", CallingConvention = CallingConvention.Cdecl)]
    private static extern void sphana_llm_free(IntPtr model);

    [DllImport("sphana_llm", CallingConvention = CallingConvention.Cdecl)]
    private static extern unsafe int sphana_llm_tokenize(IntPtr model, byte* text, UIntPtr textLen, uint flags,
        int* ids, UIntPtr capacity, out UIntPtr count);

    private delegate void Body(int calls);

    private static double Median(Body body, int calls, int rounds)
    {
        body(calls / 10); // warm-up
        var perCall = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            var watch = Stopwatch.StartNew();
            body(calls);
            perCall[r] = watch.Elapsed.TotalMilliseconds * 1000.0 / calls;
        }
        Array.Sort(perCall);
        return perCall[rounds / 2];
    }

    private static unsafe int Main(string[] args)
    {
        if (args.Length < 1)
        {
            Console.Error.WriteLine("usage: TokenizeBench.exe <tokenizer dir> [calls] [rounds]");
            return 2;
        }
        string dir = args[0];
        int calls = args.Length > 1 ? int.Parse(args[1]) : 200000;
        int rounds = args.Length > 2 ? int.Parse(args[2]) : 7;
        string runtime = Type.GetType("Mono.Runtime") != null ? "Mono" : "CoreCLR " + Environment.Version;

        using (LlmModel model = LlmModel.Load(dir))
        {
            int[] expected = model.Tokenize(Message, false);
            byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(Message);
            byte[] path = System.Text.Encoding.UTF8.GetBytes(dir + "\0");
            IntPtr raw;
            if (sphana_llm_load(path, IntPtr.Zero, out raw) != 0)
            {
                Console.Error.WriteLine("sphana_llm_load failed");
                return 1;
            }
            var ids = new int[64];
            fixed (byte* text = utf8)
            fixed (int* idsPtr = ids)
            {
                UIntPtr count;
                if (sphana_llm_tokenize(raw, text, (UIntPtr)utf8.Length, 0, idsPtr, (UIntPtr)ids.Length, out count) != 0
                    || (int)count != expected.Length)
                {
                    Console.Error.WriteLine("bare P/Invoke disagrees with the wrapper");
                    return 1;
                }
                for (int i = 0; i < expected.Length; i++)
                {
                    if (ids[i] != expected[i])
                    {
                        Console.Error.WriteLine("bare P/Invoke disagrees with the wrapper at " + i);
                        return 1;
                    }
                }
                IntPtr t = (IntPtr)text;
                IntPtr p = (IntPtr)idsPtr;
                IntPtr h = raw;
                int length = utf8.Length;
                double empty = Median(n => { for (int i = 0; i < n; i++) sphana_llm_abi_version(); }, calls, rounds);
                double bare = Median(n =>
                {
                    UIntPtr c;
                    for (int i = 0; i < n; i++)
                    {
                        sphana_llm_tokenize(h, (byte*)t, (UIntPtr)length, 0, (int*)p, (UIntPtr)64, out c);
                    }
                }, calls, rounds);
                double wrapper = Median(n => { for (int i = 0; i < n; i++) model.Tokenize(Message, false); }, calls, rounds);
                double counting = Median(n => { for (int i = 0; i < n; i++) model.CountTokens(Message, false); }, calls, rounds);
                double tokenizing = bare - empty;
                Console.WriteLine("{0}: {1} bytes, {2} tokens, median of {3} x {4} calls (microseconds per call)",
                    runtime, utf8.Length, expected.Length, rounds, calls);
                Console.WriteLine("  empty P/Invoke (sphana_llm_abi_version)        {0,8:F3}", empty);
                Console.WriteLine("  bare P/Invoke sphana_llm_tokenize (pinned)     {0,8:F3}", bare);
                Console.WriteLine("  LlmModel.Tokenize (UTF-8 encode, int[] result) {0,8:F3}", wrapper);
                Console.WriteLine("  LlmModel.CountTokens                           {0,8:F3}", counting);
                Console.WriteLine("  tokenizing (bare - empty)                      {0,8:F3}", tokenizing);
                Console.WriteLine("  marshalling in Tokenize (wrapper - tokenizing) {0,8:F3}  = {1:F2}x the tokenizing",
                    wrapper - tokenizing, (wrapper - tokenizing) / tokenizing);
                Console.WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture,
                    "RESULT {{\"runtime\": \"{0}\", \"empty_us\": {1:F4}, \"bare_us\": {2:F4}, \"tokenize_us\": {3:F4}, \"count_us\": {4:F4} }}",
                    runtime, empty, bare, wrapper, counting));
            }
            sphana_llm_free(raw);
        }
        return 0;
    }
}
