// A small JSON reader for the goldens (the test build has no NuGet): objects become
// Dictionary<string, object>, arrays List<object>, numbers double, plus string, bool and null.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Sphana.Llm.Tests
{
    internal sealed class MiniJson
    {
        private readonly string _text;
        private int _at;

        private MiniJson(string text)
        {
            _text = text;
        }

        internal static object Parse(string text)
        {
            var reader = new MiniJson(text);
            object value = reader.Value();
            reader.Space();
            if (reader._at != text.Length)
            {
                throw reader.Error("trailing characters");
            }
            return value;
        }

        private object Value()
        {
            Space();
            if (_at >= _text.Length)
            {
                throw Error("unexpected end");
            }
            char c = _text[_at];
            switch (c)
            {
                case '{':
                    return Object();
                case '[':
                    return Array();
                case '"':
                    return String();
                case 't':
                    Expect("true");
                    return true;
                case 'f':
                    Expect("false");
                    return false;
                case 'n':
                    Expect("null");
                    return null;
                default:
                    return Number();
            }
        }

        private Dictionary<string, object> Object()
        {
            var result = new Dictionary<string, object>();
            _at++;
            Space();
            if (_text[_at] == '}')
            {
                _at++;
                return result;
            }
            while (true)
            {
                Space();
                string key = String();
                Space();
                Take(':');
                result[key] = Value();
                Space();
                if (_text[_at] == ',')
                {
                    _at++;
                    continue;
                }
                Take('}');
                return result;
            }
        }

        private List<object> Array()
        {
            var result = new List<object>();
            _at++;
            Space();
            if (_text[_at] == ']')
            {
                _at++;
                return result;
            }
            while (true)
            {
                result.Add(Value());
                Space();
                if (_text[_at] == ',')
                {
                    _at++;
                    continue;
                }
                Take(']');
                return result;
            }
        }

        private string String()
        {
            Take('"');
            var output = new StringBuilder();
            while (true)
            {
                char c = _text[_at++];
                if (c == '"')
                {
                    return output.ToString();
                }
                if (c != '\\')
                {
                    output.Append(c);
                    continue;
                }
                char e = _text[_at++];
                switch (e)
                {
                    case '"': output.Append('"'); break;
                    case '\\': output.Append('\\'); break;
                    case '/': output.Append('/'); break;
                    case 'b': output.Append('\b'); break;
                    case 'f': output.Append('\f'); break;
                    case 'n': output.Append('\n'); break;
                    case 'r': output.Append('\r'); break;
                    case 't': output.Append('\t'); break;
                    case 'u':
                        // One UTF-16 unit; a surrogate pair is two escapes in a row, so it composes by itself.
                        output.Append((char)int.Parse(_text.Substring(_at, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        _at += 4;
                        break;
                    default:
                        throw Error("bad escape");
                }
            }
        }

        private double Number()
        {
            int start = _at;
            while (_at < _text.Length && "+-0123456789.eE".IndexOf(_text[_at]) >= 0)
            {
                _at++;
            }
            if (start == _at)
            {
                throw Error("unexpected character");
            }
            return double.Parse(_text.Substring(start, _at - start), NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        private void Expect(string word)
        {
            if (string.CompareOrdinal(_text, _at, word, 0, word.Length) != 0)
            {
                throw Error("expected " + word);
            }
            _at += word.Length;
        }

        private void Take(char c)
        {
            if (_at >= _text.Length || _text[_at] != c)
            {
                throw Error("expected '" + c + "'");
            }
            _at++;
        }

        private void Space()
        {
            while (_at < _text.Length && char.IsWhiteSpace(_text[_at]))
            {
                _at++;
            }
        }

        private FormatException Error(string what)
        {
            return new FormatException("JSON: " + what + " at " + _at);
        }
    }

    /// <summary>Typed access to parsed JSON.</summary>
    internal static class J
    {
        internal static object Get(object node, string key)
        {
            var map = (Dictionary<string, object>)node;
            object value;
            if (!map.TryGetValue(key, out value))
            {
                throw new KeyNotFoundException("JSON key " + key);
            }
            return value;
        }

        internal static bool Has(object node, string key)
        {
            return ((Dictionary<string, object>)node).ContainsKey(key);
        }

        internal static string Str(object node, string key)
        {
            return (string)Get(node, key);
        }

        internal static bool Bool(object node, string key)
        {
            object value = Get(node, key);
            return value is bool && (bool)value;
        }

        internal static int Int(object node, string key)
        {
            return (int)(double)Get(node, key);
        }

        internal static List<object> List(object node, string key)
        {
            return (List<object>)Get(node, key);
        }

        internal static int[] Ints(object node, string key)
        {
            return Ints(Get(node, key));
        }

        internal static int[] Ints(object array)
        {
            var list = (List<object>)array;
            var result = new int[list.Count];
            for (int i = 0; i < result.Length; i++)
            {
                result[i] = (int)(double)list[i];
            }
            return result;
        }
    }
}
