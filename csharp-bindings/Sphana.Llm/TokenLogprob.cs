using System.Collections.Generic;

namespace Sphana.Llm
{
    /// <summary>A token and its log-probability (one of a position's most likely alternatives).</summary>
    public sealed class TopLogprob
    {
        internal TopLogprob(int id, string text, float logprob)
        {
            Id = id;
            Text = text;
            Logprob = logprob;
        }

        /// <summary>The token id.</summary>
        public int Id { get; private set; }

        /// <summary>The token's text on its own (a replacement character where it holds part of a character).</summary>
        public string Text { get; private set; }

        /// <summary>Its natural-log probability.</summary>
        public float Logprob { get; private set; }
    }

    /// <summary>
    /// The log-probability of one generated or scored token under the model: the log-softmax of the raw logits of its
    /// position, before temperature, penalties, top-k/p and min-p — the same for greedy and sampled generation, and what
    /// <see cref="LlmModel.Score"/> gives for the same ids.
    /// </summary>
    public sealed class TokenLogprob
    {
        internal TokenLogprob(int id, string text, float logprob, IReadOnlyList<TopLogprob> top)
        {
            Id = id;
            Text = text;
            Logprob = logprob;
            Top = top;
        }

        /// <summary>The token id.</summary>
        public int Id { get; private set; }

        /// <summary>The token's text on its own (a replacement character where it holds part of a character).</summary>
        public string Text { get; private set; }

        /// <summary>Its natural-log probability at its position.</summary>
        public float Logprob { get; private set; }

        /// <summary>
        /// The most likely tokens at that position, most likely first (<see cref="GenerationOptions.TopLogprobs"/> of
        /// them; empty when none were asked for).
        /// </summary>
        public IReadOnlyList<TopLogprob> Top { get; private set; }

        /// <summary>
        /// Builds the list from the C buffers: <paramref name="count"/> tokens, <paramref name="top"/> alternatives each
        /// (slots with id -1 are unused).
        /// </summary>
        internal static IReadOnlyList<TokenLogprob> FromNative(IReadOnlyList<int> ids, float[] logprobs, int[] topIds,
            float[] topLogprobs, int top, int count, System.Func<int, string> text)
        {
            var list = new List<TokenLogprob>(count);
            for (int i = 0; i < count; i++)
            {
                var alternatives = new List<TopLogprob>(top);
                for (int k = 0; k < top; k++)
                {
                    int id = topIds[i * top + k];
                    if (id >= 0)
                    {
                        alternatives.Add(new TopLogprob(id, text(id), topLogprobs[i * top + k]));
                    }
                }
                list.Add(new TokenLogprob(ids[i], text(ids[i]), logprobs[i], alternatives));
            }
            return list;
        }
    }
}
