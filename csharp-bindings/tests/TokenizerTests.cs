// Tokenizer tests against tests/golden/tokenizers/llama3.2.json (made by HF `tokenizers`), and the checks
// that the C# constants and struct layouts are the C header's.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Sphana.Llm.Tests
{
    internal static class TokenizerTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "constants_and_status_codes_match_the_c_header", ConstantsMatchHeader);
            Add(tests, "struct_layouts_and_defaults_match_the_library", StructLayoutsMatchLibrary);
            Add(tests, "llama32_tokenize_equals_golden_ids_for_all_inputs_and_flags", TokenizeEqualsGolden);
            Add(tests, "llama32_decode_equals_golden_text", DecodeEqualsGolden);
            Add(tests, "llama32_tokenize_batch_equals_golden_ids", TokenizeBatchEqualsGolden);
            Add(tests, "readme_chunking_snippet_covers_the_text_without_empty_chunks", ReadmeChunkingSnippet);
            Add(tests, "utf16_offsets_equal_golden_byte_offsets_converted", OffsetsEqualGolden);
            Add(tests, "utf16_offsets_of_added_tokens_and_lone_surrogates", OffsetsEdgeCases);
            Add(tests, "utf16_offset_map_agrees_with_encoding_on_random_text", OffsetMapOnRandomText);
            Add(tests, "stream_decoder_emits_whole_characters_of_multibyte_text", StreamDecoding);
            Add(tests, "vocabulary_bos_eos_and_special_token_lookups", VocabularyLookups);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        internal static Dictionary<string, string> Inputs()
        {
            var inputs = new Dictionary<string, string>();
            foreach (object input in J.List(Paths.Golden("tokenizers/inputs.json"), "inputs"))
            {
                inputs[J.Str(input, "name")] = J.Str(input, "text");
            }
            return inputs;
        }

        private static List<object> Cases(out object golden)
        {
            golden = Paths.Golden("tokenizers/llama3.2.json");
            return J.List(golden, "cases");
        }

        private static string Flags(object c)
        {
            return string.Format("{0} add={1} parse={2}", J.Str(c, "input"), J.Bool(c, "add_special"), J.Bool(c, "parse_special"));
        }

        private static void ConstantsMatchHeader()
        {
            var defines = new Dictionary<string, long>();
            foreach (string line in File.ReadAllLines(Paths.Header))
            {
                Match m = Regex.Match(line, @"^#define (SPHANA_LLM_\w+) (-?\d+)u?\s*$");
                if (m.Success)
                {
                    defines[m.Groups[1].Value] = long.Parse(m.Groups[2].Value);
                }
            }
            Check.True(defines.Count >= 28, "the header's #defines were found (" + defines.Count + ")");
            int checkedCount = 0;
            checkedCount += MatchEnum<SphanaLlmStatus>(defines, "SPHANA_LLM_ERR_", "SPHANA_LLM_OK");
            checkedCount += MatchEnum<FinishReason>(defines, "SPHANA_LLM_FINISH_", null);
            checkedCount += MatchEnum<TokenizerFormat>(defines, "SPHANA_LLM_FORMAT_", null);
            checkedCount += MatchEnum<ExecutionProvider>(defines, "SPHANA_LLM_PROVIDER_", null);
            checkedCount += MatchEnum<EosSource>(defines, "SPHANA_LLM_EOS_SOURCE_", null);
            checkedCount += MatchEnum<LogitsPositions>(defines, "SPHANA_LLM_LOGITS_", null);
            Check.Equal(defines["SPHANA_LLM_ABI_VERSION"], (long)NativeMethods.AbiVersion, "SPHANA_LLM_ABI_VERSION");
            Check.Equal((long)NativeMethods.AbiVersion, (long)LlmModel.NativeAbiVersion, "the loaded library's ABI version");
            Check.Equal(defines["SPHANA_LLM_TOKENIZE_ADD_SPECIAL"], (long)NativeMethods.SPHANA_LLM_TOKENIZE_ADD_SPECIAL, "TOKENIZE_ADD_SPECIAL");
            Check.Equal(defines["SPHANA_LLM_TOKENIZE_PARSE_SPECIAL"], (long)NativeMethods.SPHANA_LLM_TOKENIZE_PARSE_SPECIAL, "TOKENIZE_PARSE_SPECIAL");
            Check.Equal(defines["SPHANA_LLM_DECODE_SKIP_SPECIAL"], (long)NativeMethods.SPHANA_LLM_DECODE_SKIP_SPECIAL, "DECODE_SKIP_SPECIAL");
            Check.Equal(defines["SPHANA_LLM_MAX_TOP_LOGPROBS"], (long)GenerationOptions.MaxTopLogprobs, "MAX_TOP_LOGPROBS");
            Check.Equal(defines["SPHANA_LLM_DEFAULT_PROMPT_LOOKUP_TOKENS"], (long)GenerationOptions.DefaultPromptLookupTokens, "DEFAULT_PROMPT_LOOKUP_TOKENS");
            Check.Equal(defines["SPHANA_LLM_MAX_PROMPT_LOOKUP_TOKENS"], (long)GenerationOptions.MaxPromptLookupTokens, "MAX_PROMPT_LOOKUP_TOKENS");
            Check.Equal(defines["SPHANA_LLM_MAX_PROMPT_LOOKUP_NGRAM"], (long)GenerationOptions.MaxPromptLookupNgram, "MAX_PROMPT_LOOKUP_NGRAM");
            Check.Equal(defines["SPHANA_LLM_MAX_CONSTRAINT_BYTES"], (long)GenerationOptions.MaxConstraintBytes, "MAX_CONSTRAINT_BYTES");
            Check.Equal(14 + 6 + 4 + 2 + 7 + 3, checkedCount, "constants compared");
            // The constraint kinds: each SPHANA_LLM_CONSTRAINT_* is a NativeMethods constant of that value.
            int constraintKinds = 0;
            foreach (KeyValuePair<string, long> constant in defines.Where(d => d.Key.StartsWith("SPHANA_LLM_CONSTRAINT_")))
            {
                FieldInfo field = typeof(NativeMethods).GetField(constant.Key, BindingFlags.Static | BindingFlags.NonPublic);
                Check.True(field != null, "NativeMethods has a constant for " + constant.Key);
                Check.Equal(constant.Value, (long)(int)field.GetValue(null), "value of " + constant.Key);
                constraintKinds++;
            }
            Check.Equal(4, constraintKinds, "SPHANA_LLM_CONSTRAINT_* constants compared");
            // The struct kinds of sphana_llm_struct_size: each SPHANA_LLM_STRUCT_* is a NativeMethods constant of that value.
            int structKinds = 0;
            foreach (KeyValuePair<string, long> constant in defines.Where(d => d.Key.StartsWith("SPHANA_LLM_STRUCT_")))
            {
                FieldInfo field = typeof(NativeMethods).GetField(constant.Key, BindingFlags.Static | BindingFlags.NonPublic);
                Check.True(field != null, "NativeMethods has a constant for " + constant.Key);
                Check.Equal(constant.Value, (long)(uint)field.GetValue(null), "value of " + constant.Key);
                structKinds++;
            }
            Check.Equal(10, structKinds, "SPHANA_LLM_STRUCT_* constants compared");
            // The tool choices: ToolChoice's members are the SPHANA_LLM_TOOL_CHOICE_* values.
            Check.Equal(defines["SPHANA_LLM_TOOL_CHOICE_AUTO"], (long)ToolChoice.Auto, "TOOL_CHOICE_AUTO");
            Check.Equal(defines["SPHANA_LLM_TOOL_CHOICE_REQUIRED"], (long)ToolChoice.Required, "TOOL_CHOICE_REQUIRED");
            Check.Equal((long)NativeMethods.SPHANA_LLM_TOOL_CHOICE_REQUIRED, (long)ToolChoice.Required, "NativeMethods TOOL_CHOICE_REQUIRED");
            Check.Equal(defines["SPHANA_LLM_MAX_TOOLS_BYTES"], (long)LlmModel.MaxToolsBytes, "MAX_TOOLS_BYTES");
            string version = LlmModel.NativeVersion;
            Check.True(Regex.IsMatch(version, @"^\d+\.\d+\.\d+"), "a version string (" + version + ")");
        }

        /// <summary>Every C constant with the prefix is an enum member of the same value, and the other way round.</summary>
        private static int MatchEnum<T>(Dictionary<string, long> defines, string prefix, string okName)
        {
            var members = new Dictionary<string, long>();
            foreach (object value in Enum.GetValues(typeof(T)))
            {
                members[Enum.GetName(typeof(T), value).ToUpperInvariant()] = Convert.ToInt64(value);
            }
            var constants = defines.Where(d => d.Key.StartsWith(prefix) || d.Key == okName).ToList();
            Check.Equal(members.Count, constants.Count, typeof(T).Name + ": as many members as " + prefix + "* constants");
            foreach (KeyValuePair<string, long> constant in constants)
            {
                string name = constant.Key == okName ? "OK" : constant.Key.Substring(prefix.Length).Replace("_", "");
                long value;
                Check.True(members.TryGetValue(name, out value), typeof(T).Name + " has a member for " + constant.Key);
                Check.Equal(constant.Value, value, typeof(T).Name + " value of " + constant.Key);
            }
            return constants.Count;
        }

        private static void StructLayoutsMatchLibrary()
        {
            NativeMethods.GenerateParams generateDefaults = NativeMethods.sphana_llm_generate_params_default();
            Check.Equal((int)generateDefaults.struct_size, Marshal.SizeOf(typeof(NativeMethods.GenerateParams)), "sizeof(SphanaLlmGenerateParams)");
            NativeMethods.LoadOptions loadDefaults = NativeMethods.sphana_llm_load_options_default();
            Check.Equal((int)loadDefaults.struct_size, Marshal.SizeOf(typeof(NativeMethods.LoadOptions)), "sizeof(SphanaLlmLoadOptions)");

            var structs = new Dictionary<string, Type>
            {
                { "SphanaLlmGenerateParams", typeof(NativeMethods.GenerateParams) },
                { "SphanaLlmGenerateStats", typeof(NativeMethods.GenerateStats) },
                { "SphanaLlmLoadOptions", typeof(NativeMethods.LoadOptions) },
                { "SphanaLlmTokenSpan", typeof(NativeMethods.TokenSpan) },
                { "SphanaLlmTokenBatch", typeof(NativeMethods.TokenBatch) },
                { "SphanaLlmChatMessage", typeof(NativeMethods.ChatMessage) },
                { "SphanaLlmConstraint", typeof(NativeMethods.Constraint) },
                { "SphanaLlmChatTools", typeof(NativeMethods.ChatTools) },
                { "SphanaLlmToolCall", typeof(NativeMethods.ToolCall) },
                { "SphanaLlmToolCalls", typeof(NativeMethods.ToolCalls) },
            };

            // Every struct the wrapper declares has the size the loaded library was built with.
            var kinds = new Dictionary<string, uint>
            {
                { "SphanaLlmGenerateParams", NativeMethods.SPHANA_LLM_STRUCT_GENERATE_PARAMS },
                { "SphanaLlmGenerateStats", NativeMethods.SPHANA_LLM_STRUCT_GENERATE_STATS },
                { "SphanaLlmLoadOptions", NativeMethods.SPHANA_LLM_STRUCT_LOAD_OPTIONS },
                { "SphanaLlmTokenSpan", NativeMethods.SPHANA_LLM_STRUCT_TOKEN_SPAN },
                { "SphanaLlmTokenBatch", NativeMethods.SPHANA_LLM_STRUCT_TOKEN_BATCH },
                { "SphanaLlmChatMessage", NativeMethods.SPHANA_LLM_STRUCT_CHAT_MESSAGE },
                { "SphanaLlmConstraint", NativeMethods.SPHANA_LLM_STRUCT_CONSTRAINT },
                { "SphanaLlmChatTools", NativeMethods.SPHANA_LLM_STRUCT_CHAT_TOOLS },
                { "SphanaLlmToolCall", NativeMethods.SPHANA_LLM_STRUCT_TOOL_CALL },
                { "SphanaLlmToolCalls", NativeMethods.SPHANA_LLM_STRUCT_TOOL_CALLS },
            };
            Check.Equal(structs.Count, kinds.Count, "a struct kind for every C# mirror");
            foreach (KeyValuePair<string, Type> mirror in structs)
            {
                uint kind;
                Check.True(kinds.TryGetValue(mirror.Key, out kind), "a struct kind for " + mirror.Key);
                UIntPtr size;
                Check.Equal(0, NativeMethods.sphana_llm_struct_size(kind, out size), "sphana_llm_struct_size(" + mirror.Key + ")");
                Check.Equal((long)size.ToUInt64(), (long)Marshal.SizeOf(mirror.Value), "sizeof(" + mirror.Key + "): library and C#");
            }

            // Every C struct of the header, field by field: same names, same offsets, same size (x86-64 rules).
            string header = Regex.Replace(File.ReadAllText(Paths.Header), @"/\*.*?\*/", "", RegexOptions.Singleline);
            MatchCollection definitions = Regex.Matches(header, @"typedef struct (\w+) \{(.*?)\} \1;", RegexOptions.Singleline);
            Check.Equal(structs.Count, definitions.Count, "C structs in the header with a C# mirror");
            foreach (Match definition in definitions)
            {
                string name = definition.Groups[1].Value;
                Type type;
                Check.True(structs.TryGetValue(name, out type), "a C# mirror of " + name);
                CompareLayout(name, definition.Groups[2].Value, type);
            }
            Check.Equal(IntPtr.Zero, loadDefaults.tokenizer_path, "default tokenizer_path");

            // A new GenerationOptions / LlmLoadOptions means exactly the library's defaults.
            NativeMethods.GenerateParams fromOptions = new GenerationOptions().ToNative();
            Check.Equal(generateDefaults.max_new_tokens, fromOptions.max_new_tokens, "default max tokens");
            Check.Equal(generateDefaults.temperature, fromOptions.temperature, "default temperature");
            Check.Equal(generateDefaults.top_k, fromOptions.top_k, "default top-k");
            Check.Equal(generateDefaults.top_p, fromOptions.top_p, "default top-p");
            Check.Equal(generateDefaults.min_p, fromOptions.min_p, "default min-p");
            Check.Equal(generateDefaults.repetition_penalty, fromOptions.repetition_penalty, "default repetition penalty");
            Check.Equal(generateDefaults.seed, fromOptions.seed, "default seed");
            Check.Equal(generateDefaults.parse_special, fromOptions.parse_special, "default parse_special");
            Check.Equal(generateDefaults.add_special, fromOptions.add_special, "default add_special");
            Check.Equal(generateDefaults.ignore_eos, fromOptions.ignore_eos, "default ignore_eos");
            Check.Equal(IntPtr.Zero, generateDefaults.constraint, "the library's default: no constraint");
            Check.Equal(IntPtr.Zero, fromOptions.constraint, "default constraint");
            string constraintText;
            Check.Equal(0, new GenerationOptions().GetConstraint(out constraintText), "a new GenerationOptions sets no constraint");
            NativeMethods.LoadOptions fromLoad = new LlmLoadOptions().ToNative();
            Check.Equal(loadDefaults.tokenizer_format, fromLoad.tokenizer_format, "default format");
            Check.Equal(loadDefaults.intra_op_threads, fromLoad.intra_op_threads, "default intra-op threads");
            Check.Equal(loadDefaults.execution_provider, fromLoad.execution_provider, "default provider");
            Check.Equal(loadDefaults.device_id, fromLoad.device_id, "default device");
            Check.Equal(loadDefaults.allow_cpu_fallback, fromLoad.allow_cpu_fallback, "default fallback");
            Check.Equal(loadDefaults.max_input_bytes, fromLoad.max_input_bytes, "default max input bytes");
            Check.Equal(loadDefaults.max_batch_texts, fromLoad.max_batch_texts, "default max batch texts");
            Check.Equal(loadDefaults.session_count, fromLoad.session_count, "default session count");
        }

        /// <summary>Lays out the C fields with natural alignment and compares with the marshaller's layout of the mirror.</summary>
        private static void CompareLayout(string name, string body, Type type)
        {
            var sizes = new Dictionary<string, int>
            {
                { "uint32_t", 4 }, { "int32_t", 4 }, { "float", 4 }, { "uint64_t", 8 }, { "int64_t", 8 }, { "double", 8 },
                { "size_t", IntPtr.Size },
            };
            FieldInfo[] fields = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            string[] declarations = body.Split(';').Select(d => d.Trim()).Where(d => d.Length > 0).ToArray();
            Check.Equal(declarations.Length, fields.Length, name + ": field count");
            int offset = 0;
            int align = 1;
            for (int i = 0; i < declarations.Length; i++)
            {
                Match m = Regex.Match(declarations[i], @"^(.*?)(\w+)$", RegexOptions.Singleline);
                string cType = m.Groups[1].Value.Trim();
                string field = m.Groups[2].Value;
                int size;
                if (cType.Contains("*"))
                {
                    size = IntPtr.Size;
                }
                else
                {
                    Check.True(sizes.TryGetValue(cType.Replace("const ", ""), out size), name + "." + field + ": known C type " + cType);
                }
                offset = (offset + size - 1) / size * size;
                align = Math.Max(align, size);
                Check.Equal(field, fields[i].Name, name + ": field " + i);
                Check.Equal(offset, (int)Marshal.OffsetOf(type, field), name + "." + field + " offset");
                Check.Equal(size, Marshal.SizeOf(fields[i].FieldType), name + "." + field + " size");
                offset += size;
            }
            Check.Equal((offset + align - 1) / align * align, Marshal.SizeOf(type), "sizeof(" + name + ")");
        }

        private static void TokenizeEqualsGolden()
        {
            object golden;
            List<object> cases = Cases(out golden);
            Dictionary<string, string> inputs = Inputs();
            LlmModel model = Fixtures.Llama32;
            int checkedCases = 0;
            foreach (object c in cases)
            {
                string text = inputs[J.Str(c, "input")];
                bool add = J.Bool(c, "add_special");
                bool parse = J.Bool(c, "parse_special");
                int[] expected = J.Ints(c, "ids");
                Check.Ids(expected, model.Tokenize(text, add, parse), "ids of " + Flags(c));
                Check.Equal(expected.Length, model.CountTokens(text, add, parse), "count of " + Flags(c));
                checkedCases++;
            }
            Check.Equal(4 * inputs.Count, checkedCases, "cases: every input with every flag combination");
        }

        private static void DecodeEqualsGolden()
        {
            object golden;
            LlmModel model = Fixtures.Llama32;
            foreach (object c in Cases(out golden))
            {
                int[] ids = J.Ints(c, "ids");
                Check.Equal(J.Str(c, "decoded"), model.Decode(ids, false), "decoded " + Flags(c));
                Check.Equal(J.Str(c, "decoded_skip_special"), model.Decode(ids, true), "decoded (skip special) " + Flags(c));
            }
        }

        /// <summary>
        /// The README's chunking method (tests/ReadmeChunking.cs holds it verbatim): on text whose characters split across
        /// byte-level tokens (emoji, CJK), every chunk is non-empty, the chunks join to the document, and each cut is at a
        /// token start.
        /// </summary>
        private static void ReadmeChunkingSnippet()
        {
            string source = File.ReadAllText(Path.Combine(Paths.Repo, "csharp-bindings", "tests", "ReadmeChunking.cs"));
            string method = source.Substring(source.IndexOf("internal static class Chunking", StringComparison.Ordinal));
            string readme = File.ReadAllText(Path.Combine(Paths.Repo, "csharp-bindings", "README.md"));
            Check.True(readme.Contains(method), "csharp-bindings/README.md holds tests/ReadmeChunking.cs's class verbatim");

            LlmModel model = Fixtures.Llama32;
            string document = "Emoji 😀😃🎉 split across tokens; 日本語のテキスト、中文文本。 Paris is the capital of France.";
            TokenSpan[] spans = model.TokenizeWithOffsets(document, false);
            var starts = new HashSet<int>(spans.Select(t => t.Start));
            for (int maxTokens = 1; maxTokens <= 6; maxTokens++)
            {
                List<string> chunks = Chunking.Chunk(model, document, maxTokens);
                Check.True(chunks.All(c => c.Length > 0), maxTokens + ": no empty chunk");
                Check.Equal(document, string.Concat(chunks), maxTokens + ": the chunks join to the document");
                int at = 0;
                foreach (string chunk in chunks)
                {
                    Check.True(starts.Contains(at), maxTokens + ": a chunk starts at a token start (" + at + ")");
                    Check.True(!char.IsLowSurrogate(document[at]), maxTokens + ": never inside a surrogate pair");
                    at += chunk.Length;
                }
            }
            Check.Equal(0, Chunking.Chunk(model, "", 3).Count, "an empty document has no chunks");
        }

        private static void TokenizeBatchEqualsGolden()
        {
            object golden;
            List<object> cases = Cases(out golden);
            Dictionary<string, string> inputs = Inputs();
            LlmModel model = Fixtures.Llama32;
            foreach (bool add in new[] { false, true })
            {
                List<object> selected = cases.Where(c => J.Bool(c, "add_special") == add && J.Bool(c, "parse_special")).ToList();
                int[][] batch = model.TokenizeBatch(selected.Select(c => inputs[J.Str(c, "input")]).ToList(), add, true);
                Check.Equal(selected.Count, batch.Length, "batch size");
                for (int i = 0; i < selected.Count; i++)
                {
                    Check.Ids(J.Ints(selected[i], "ids"), batch[i], "batch ids of " + Flags(selected[i]));
                }
            }
            Check.Equal(0, model.TokenizeBatch(new string[0]).Length, "an empty batch");
        }

        private static void OffsetsEqualGolden()
        {
            object golden;
            List<object> cases = Cases(out golden);
            Dictionary<string, string> inputs = Inputs();
            LlmModel model = Fixtures.Llama32;
            int withOffsets = 0;
            foreach (object c in cases)
            {
                if (!J.Has(c, "offsets"))
                {
                    continue;
                }
                string name = J.Str(c, "input");
                string text = inputs[name];
                byte[] utf8 = Encoding.UTF8.GetBytes(text);
                List<object> offsets = J.List(c, "offsets");
                TokenSpan[] spans = model.TokenizeWithOffsets(text, J.Bool(c, "add_special"), J.Bool(c, "parse_special"));
                Check.Ids(J.Ints(c, "ids"), spans.Select(s => s.Id).ToList(), "ids with offsets of " + Flags(c));
                for (int i = 0; i < spans.Length; i++)
                {
                    int[] bytes = J.Ints(offsets[i]);
                    // Converted here independently: the UTF-16 length of the text's first N bytes.
                    int start = Encoding.UTF8.GetString(utf8, 0, bytes[0]).Length;
                    int end = Encoding.UTF8.GetString(utf8, 0, bytes[1]).Length;
                    string where = string.Format("{0} token {1} (bytes {2}..{3})", name, i, bytes[0], bytes[1]);
                    Check.Equal(start, spans[i].Start, where + ": start");
                    Check.Equal(end, spans[i].End, where + ": end");
                    Check.Equal(Encoding.UTF8.GetString(utf8, bytes[0], bytes[1] - bytes[0]),
                        text.Substring(spans[i].Start, spans[i].Length), where + ": Substring of the span");
                }
                withOffsets++;
            }
            Check.Equal(inputs.Count, withOffsets, "every input has golden offsets");
            Check.True(inputs["emoji"].Any(char.IsSurrogate) && inputs["cjk"].Any(char.IsSurrogate),
                "the emoji and CJK inputs contain surrogate pairs");
        }

        private static void OffsetsEdgeCases()
        {
            LlmModel model = Fixtures.Llama32;
            // BOS added by addSpecialTokens has an empty span; the rest still cover the text.
            string text = "Hi 👋 日本";
            TokenSpan[] spans = model.TokenizeWithOffsets(text, true);
            Check.Equal(128000, spans[0].Id, "BOS first");
            Check.Equal(0, spans[0].Length, "BOS span is empty");
            Check.Equal(text.Length, spans[spans.Length - 1].End, "the last token ends at the end");
            // A lone surrogate goes in as U+FFFD (3 UTF-8 bytes) and still maps to its one UTF-16 unit.
            string broken = "a\uD800b😀c";
            spans = model.TokenizeWithOffsets(broken, false);
            int covered = 0;
            foreach (TokenSpan span in spans)
            {
                Check.True(span.Start >= 0 && span.End <= broken.Length && span.Start <= span.End, "span inside the text: " + span);
                Check.True(span.Start <= covered, "no gap before " + span);
                covered = Math.Max(covered, span.End);
            }
            Check.Equal(broken.Length, covered, "the spans cover the whole text");
            Check.Ids(model.Tokenize("a\uFFFDb😀c", false), spans.Select(s => s.Id).ToList(), "a lone surrogate tokenizes as U+FFFD");
            Check.Equal(0, model.TokenizeWithOffsets("", false).Length, "empty text");
        }

        /// <summary>
        /// The byte-to-UTF-16 conversion against Encoding.UTF8 itself, for every byte offset of random text (ASCII,
        /// 2-, 3- and 4-byte characters, lone surrogates), asked in random order so the cursor moves both ways.
        /// </summary>
        private static void OffsetMapOnRandomText()
        {
            var random = new Random(12345);
            string[] pieces = { "a", " ", "é", "ж", "日", "€", "😀", "🇯🇵", "𠀀", "\uD800", "\uDC00", "\r\n" };
            for (int round = 0; round < 50; round++)
            {
                var builder = new StringBuilder();
                int count = random.Next(0, 60);
                for (int i = 0; i < count; i++)
                {
                    builder.Append(pieces[random.Next(pieces.Length)]);
                }
                string text = builder.ToString();
                byte[] utf8 = Encoding.UTF8.GetBytes(text);
                Func<int, bool> boundary = b => b == utf8.Length || (utf8[b] & 0xC0) != 0x80;
                var map = new Utf16OffsetMap(text);
                foreach (int b in Enumerable.Range(0, utf8.Length + 1).OrderBy(x => random.Next()))
                {
                    int floor = b;
                    while (!boundary(floor))
                    {
                        floor--;
                    }
                    int ceiling = b;
                    while (!boundary(ceiling))
                    {
                        ceiling++;
                    }
                    string where = "round " + round + ", byte " + b + " of " + utf8.Length;
                    Check.Equal(Encoding.UTF8.GetString(utf8, 0, floor).Length, map.ToUtf16(b, false), where + " rounded down");
                    Check.Equal(Encoding.UTF8.GetString(utf8, 0, ceiling).Length, map.ToUtf16(b, true), where + " rounded up");
                }
            }
        }

        private static void StreamDecoding()
        {
            object golden;
            List<object> cases = Cases(out golden);
            Dictionary<string, string> inputs = Inputs();
            LlmModel model = Fixtures.Llama32;
            foreach (string name in new[] { "emoji", "cjk", "mixed_script", "combining_marks", "accents" })
            {
                object c = cases.First(x => J.Str(x, "input") == name && J.Bool(x, "add_special") && !J.Bool(x, "parse_special"));
                int[] ids = J.Ints(c, "ids");
                using (StreamDecoder decoder = model.CreateStreamDecoder(false))
                {
                    var text = new StringBuilder();
                    int emptyPieces = 0;
                    foreach (int id in ids)
                    {
                        string piece = decoder.Push(id);
                        Check.True(piece.IndexOf('\uFFFD') < 0, name + ": no partial character in a piece");
                        Check.True(piece.Length == 0 || !char.IsHighSurrogate(piece[piece.Length - 1]), name + ": no split surrogate pair");
                        if (piece.Length == 0)
                        {
                            emptyPieces++;
                        }
                        text.Append(piece);
                    }
                    text.Append(decoder.Flush());
                    Check.Equal(J.Str(c, "decoded"), text.ToString(), name + ": streamed text equals the golden decode");
                    if (name == "emoji")
                    {
                        Check.True(emptyPieces > 0, "emoji: some byte-level tokens held back until their character was complete");
                    }
                }
                using (StreamDecoder decoder = model.CreateStreamDecoder())
                {
                    var text = new StringBuilder();
                    foreach (int id in ids)
                    {
                        text.Append(decoder.Push(id));
                    }
                    text.Append(decoder.Flush());
                    Check.Equal(J.Str(c, "decoded_skip_special"), text.ToString(), name + ": streamed text, special tokens skipped");
                    Check.Equal(inputs[name], model.Decode(ids), name + ": Decode gives back the input");
                }
            }
            // Half a character then Flush: U+FFFD, and the decoder is reset for the next sequence.
            using (StreamDecoder decoder = model.CreateStreamDecoder())
            {
                int[] crab = model.Tokenize("🦀", false);
                Check.True(crab.Length > 1, "the crab emoji is several byte-level tokens");
                Check.Equal("", decoder.Push(crab[0]), "half an emoji gives nothing yet");
                Check.Equal("\uFFFD", decoder.Flush(), "flushing half an emoji");
                var again = new StringBuilder();
                foreach (int id in crab)
                {
                    again.Append(decoder.Push(id));
                }
                Check.Equal("🦀", again.ToString(), "after Flush the decoder starts a new sequence");
            }
        }

        private static void VocabularyLookups()
        {
            object golden = Paths.Golden("tokenizers/llama3.2.json");
            LlmModel model = Fixtures.Llama32;
            Check.Equal(J.Int(golden, "vocab_size"), model.VocabSize, "vocabulary size");
            Check.Equal((int?)J.Int(golden, "bos_id"), model.BosTokenId, "BOS id");
            Check.Ids(J.Ints(golden, "eos_ids"), model.EosTokenIds.ToList(), "EOS ids");
            Check.Equal(TokenizerFormat.HfJson, model.TokenizerFormat, "format");
            Check.True(!model.CanGenerate, "a tokenizer directory loads tokenizer-only");
            Check.Equal((int?)null, model.ContextLength, "no context length without a model");
            var tokens = (Dictionary<string, object>)J.Get(golden, "token_ids");
            foreach (KeyValuePair<string, object> token in tokens)
            {
                int id = (int)(double)token.Value;
                Check.Equal(id, model.TokenToId(token.Key), "id of " + token.Key);
                Check.Equal(token.Key, model.IdToToken(id), "token of " + id);
                bool special = token.Key.StartsWith("<|");
                Check.Equal(special, model.IsSpecialToken(id), "is " + token.Key + " special");
            }
            int missing;
            Check.True(!model.TryTokenToId("no such token, surely", out missing), "TryTokenToId of a missing token");
            Check.Equal(-1, missing, "missing id");
            int found;
            Check.True(model.TryTokenToId("<|eot_id|>", out found) && found == 128009, "TryTokenToId of <|eot_id|>");
        }
    }
}
