using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Sphana.Llm
{
    /// <summary>
    /// Explicit UTF-8 marshalling. .NET strings are UTF-16; every string crosses into the library
    /// as <see cref="Encoding.UTF8"/> bytes (a lone surrogate becomes U+FFFD, as Encoding.UTF8 does)
    /// and comes back by copying bytes out of native memory and decoding them.
    /// </summary>
    internal static class Utf8
    {
        private static readonly UTF8Encoding Encoding = new UTF8Encoding(false, false);

        internal static byte[] Encode(string text)
        {
            return Encoding.GetBytes(text);
        }

        internal static int ByteCount(string text)
        {
            return Encoding.GetByteCount(text);
        }

        /// <summary>Writes the UTF-8 bytes of <paramref name="text"/> at <paramref name="offset"/>; returns their count.</summary>
        internal static int EncodeInto(string text, byte[] bytes, int offset)
        {
            return Encoding.GetBytes(text, 0, text.Length, bytes, offset);
        }

        /// <summary>UTF-8 bytes plus a terminating NUL, for C parameters that are NUL-terminated.</summary>
        internal static byte[] EncodeNulTerminated(string text)
        {
            int length = Encoding.GetByteCount(text);
            var bytes = new byte[length + 1];
            Encoding.GetBytes(text, 0, text.Length, bytes, 0);
            return bytes;
        }

        internal static string Decode(byte[] bytes, int count)
        {
            return count == 0 ? string.Empty : Encoding.GetString(bytes, 0, count);
        }

        /// <summary>Copies <paramref name="length"/> bytes at <paramref name="text"/> and decodes them.</summary>
        internal static string FromNative(IntPtr text, int length)
        {
            if (text == IntPtr.Zero || length == 0)
            {
                return string.Empty;
            }
            var bytes = new byte[length];
            Marshal.Copy(text, bytes, 0, length);
            return Encoding.GetString(bytes);
        }

        /// <summary>Reads a NUL-terminated UTF-8 string (NULL gives "").</summary>
        internal static string FromNativeNulTerminated(IntPtr text)
        {
            if (text == IntPtr.Zero)
            {
                return string.Empty;
            }
            int length = 0;
            while (Marshal.ReadByte(text, length) != 0)
            {
                length++;
            }
            return FromNative(text, length);
        }
    }

    /// <summary>
    /// Converts UTF-8 byte offsets into a string's UTF-16 code-unit offsets (what
    /// <see cref="string.Substring(int, int)"/> takes), by walking the string from the last position
    /// asked for: O(1) amortised for the nearly increasing offsets a tokenizer reports, no table.
    /// The byte lengths are those of <see cref="Utf8.Encode"/>: a surrogate pair is 4 bytes and 2
    /// units, a lone surrogate is U+FFFD (3 bytes, 1 unit).
    /// </summary>
    internal sealed class Utf16OffsetMap
    {
        private readonly string _text;
        private int _unit;   // a code-point boundary in _text ...
        private long _byte;  // ... and its UTF-8 byte offset

        internal Utf16OffsetMap(string text)
        {
            _text = text;
        }

        /// <summary>
        /// The UTF-16 offset of UTF-8 offset <paramref name="byteOffset"/>. An offset inside a code point
        /// is rounded down to its start, or up to its end when <paramref name="roundUp"/>.
        /// </summary>
        internal int ToUtf16(long byteOffset, bool roundUp)
        {
            while (_byte > byteOffset)
            {
                int units;
                int bytes = CodePointBefore(_unit, out units);
                _unit -= units;
                _byte -= bytes;
            }
            while (_byte < byteOffset && _unit < _text.Length)
            {
                int units;
                int bytes = CodePointAt(_unit, out units);
                if (_byte + bytes > byteOffset)
                {
                    return roundUp ? _unit + units : _unit;
                }
                _unit += units;
                _byte += bytes;
            }
            if (_byte < byteOffset)
            {
                throw new ArgumentOutOfRangeException("byteOffset", "byte offset past the end of the text");
            }
            return _unit;
        }

        private int CodePointAt(int index, out int units)
        {
            char c = _text[index];
            if (char.IsHighSurrogate(c) && index + 1 < _text.Length && char.IsLowSurrogate(_text[index + 1]))
            {
                units = 2;
                return 4;
            }
            units = 1;
            return Utf8Length(c);
        }

        private int CodePointBefore(int index, out int units)
        {
            char c = _text[index - 1];
            if (char.IsLowSurrogate(c) && index >= 2 && char.IsHighSurrogate(_text[index - 2]))
            {
                units = 2;
                return 4;
            }
            units = 1;
            return Utf8Length(c);
        }

        private static int Utf8Length(char c)
        {
            if (c < 0x80)
            {
                return 1;
            }
            if (c < 0x800)
            {
                return 2;
            }
            return 3; // the BMP, and a lone surrogate encoded as U+FFFD
        }
    }
}
