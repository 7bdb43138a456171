namespace Sphana.Llm
{
    /// <summary>
    /// One token of a text and where it is in that text, in UTF-16 code units (so
    /// <c>text.Substring(span.Start, span.Length)</c> is the token's text). A token holding part of a
    /// character (a byte-level piece of an emoji, say) spans the whole character; tokens added by
    /// <c>addSpecialTokens</c> have an empty span.
    /// </summary>
    public struct TokenSpan
    {
        /// <summary>Creates a span.</summary>
        public TokenSpan(int id, int start, int end)
        {
            _id = id;
            _start = start;
            _end = end;
        }

        private readonly int _id;
        private readonly int _start;
        private readonly int _end;

        /// <summary>The token id.</summary>
        public int Id
        {
            get { return _id; }
        }

        /// <summary>UTF-16 offset of the token's first code unit in the input string.</summary>
        public int Start
        {
            get { return _start; }
        }

        /// <summary>UTF-16 offset one past the token's last code unit.</summary>
        public int End
        {
            get { return _end; }
        }

        /// <summary><see cref="End"/> minus <see cref="Start"/>.</summary>
        public int Length
        {
            get { return End - Start; }
        }

        /// <summary>"id [start, end)".</summary>
        public override string ToString()
        {
            return string.Format("{0} [{1}, {2})", Id, Start, End);
        }
    }
}
