// The chunking method of csharp-bindings/README.md section 3, verbatim (TokenizerTests checks that the README still
// holds exactly this class, and runs it). Global namespace, as the snippet stands in the README.
using System.Collections.Generic;
using Sphana.Llm;

internal static class Chunking
{
    internal static List<string> Chunk(LlmModel model, string document, int maxTokens)
    {
        var chunks = new List<string>();
        if (document.Length == 0)
        {
            return chunks;
        }
        TokenSpan[] spans = model.TokenizeWithOffsets(document, addSpecialTokens: false);
        int start = 0;
        for (int i = maxTokens; i < spans.Length; i += maxTokens)
        {
            while (i < spans.Length && spans[i].Start <= start)
            {
                i++;
            }
            if (i == spans.Length)
            {
                break;
            }
            chunks.Add(document.Substring(start, spans[i].Start - start));
            start = spans[i].Start;
        }
        chunks.Add(document.Substring(start));
        return chunks;
    }
}
