// Structured output on SmolLM2: GenerationOptions.JsonSchema / Regex / Grammar / JsonObject. The JSON answers are
// parsed with the tests' own reader (MiniJson), the regex answers matched in full with .NET's Regex.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;

namespace Sphana.Llm.Tests
{
    internal static class ConstraintTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "smollm2_json_schema_output_parses_and_follows_the_schema", SmolJsonSchema);
            Add(tests, "smollm2_json_object_output_parses", SmolJsonObject);
            Add(tests, "smollm2_regex_output_matches_in_full_streamed_or_not", SmolRegex);
            Add(tests, "smollm2_lark_grammar_output_is_a_sentence_of_it", SmolGrammar);
            Add(tests, "smollm2_constraint_cut_by_max_tokens_is_incomplete", SmolIncomplete);
            Add(tests, "constraint_errors_name_the_problem_and_the_model_still_works", ConstraintErrors);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        /// <summary>A city answer's schema: every value bounded, so the object always closes within a few dozen tokens.</summary>
        internal const string CitySchema =
            "{\"type\": \"object\", \"properties\": {" +
            "\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"London\", \"Berlin\", \"Madrid\"]}, " +
            "\"country\": {\"type\": \"string\", \"maxLength\": 24}, " +
            "\"is_capital\": {\"type\": \"boolean\"}}, " +
            "\"required\": [\"city\", \"country\", \"is_capital\"], \"additionalProperties\": false}";

        private static List<ChatMessage> Ask(string question)
        {
            return new List<ChatMessage> { ChatMessage.User(question) };
        }

        private static void SmolJsonSchema()
        {
            LlmModel model = Fixtures.Smol;
            var options = new GenerationOptions { MaxTokens = 64, JsonSchema = CitySchema };
            GenerationResult result = model.CompleteChat(
                Ask("What is the capital of France? Answer in JSON with the keys city, country and is_capital."), options);
            Check.Equal(FinishReason.Eos, result.FinishReason, "the object closed before MaxTokens (" + result.Text + ")");
            Check.True(result.Text.StartsWith("{") && result.Text.EndsWith("}"), "a JSON object: " + result.Text);
            var answer = MiniJson.Parse(result.Text) as Dictionary<string, object>;
            Check.True(answer != null, "the text parses as a JSON object: " + result.Text);
            Check.Equal(3, answer.Count, "exactly the schema's keys (additionalProperties false): " + result.Text);
            Check.True(new[] { "Paris", "London", "Berlin", "Madrid" }.Contains(J.Str(answer, "city")),
                "city is one of the enum: " + result.Text);
            Check.True(J.Str(answer, "country").Length <= 24, "country within maxLength: " + result.Text);
            Check.True(answer["is_capital"] is bool, "is_capital is a boolean: " + result.Text);
            Check.Equal("Paris", J.Str(answer, "city"), "SmolLM2 knows the capital of France");
            Check.True(result.ConstraintMs > 0, "compiling the schema is timed (" + result.ConstraintMs + " ms)");
            Check.Equal(model.Decode(result.TokenIds.ToArray()), result.Text, "the text is the decoded ids");
            // Without a constraint the figure is 0.
            GenerationResult plain = model.CompleteChat(Ask("Hello"), new GenerationOptions { MaxTokens = 4 });
            Check.Equal(0.0, plain.ConstraintMs, "no constraint, no constraint time");
        }

        private static void SmolJsonObject()
        {
            LlmModel model = Fixtures.Smol;
            var options = new GenerationOptions { MaxTokens = 96, JsonObject = true };
            GenerationResult result = model.CompleteChat(
                Ask("Reply with a JSON object whose key \"answer\" holds the capital of France."), options);
            Check.True(result.Text.StartsWith("{"), "a JSON object starts: " + result.Text);
            if (result.FinishReason == FinishReason.Eos)
            {
                Check.True(MiniJson.Parse(result.Text) is Dictionary<string, object>, "the text parses as a JSON object: " + result.Text);
            }
            else
            {
                Check.Equal(FinishReason.ConstraintIncomplete, result.FinishReason, "a cut object is incomplete: " + result.Text);
            }
            Check.True(result.ConstraintMs > 0, "compiling is timed");
        }

        private static void SmolRegex()
        {
            LlmModel model = Fixtures.Smol;
            const string pattern = "(19|20)[0-9]{2}";
            List<ChatMessage> question = Ask("In which year did the French Revolution begin? Answer with the year only.");
            var options = new GenerationOptions { MaxTokens = 16, Regex = pattern };
            var pieces = new StringBuilder();
            GenerationResult result = model.CompleteChat(question, options, piece => pieces.Append(piece));
            Check.True(Regex.IsMatch(result.Text, @"\A(?:" + pattern + @")\z"), "the whole text matches " + pattern + ": \"" + result.Text + "\"");
            Check.Equal(FinishReason.Eos, result.FinishReason, "the regex allows nothing after four digits");
            Check.Equal(result.Text, pieces.ToString(), "the streamed pieces join to the text");
            string streamed = string.Concat(model.GenerateChatStream(question, options));
            Check.Equal(result.Text, streamed, "GenerateChatStream gives the same constrained text");
            Check.Equal(result.Text, model.GenerateChatAsync(question, options).Result, "so does GenerateChatAsync");

            // A text prompt and a pattern with alternatives and a fixed tail.
            const string yesNo = "(Yes|No), because [a-z ]{1,40}\\.";
            GenerationResult reason = model.CompleteChat(Ask("Is Paris in France? Answer yes or no and say why."),
                new GenerationOptions { MaxTokens = 48, Regex = yesNo });
            Check.True(Regex.IsMatch(reason.Text, @"\A(?:" + yesNo + @")\z"), "the whole text matches " + yesNo + ": \"" + reason.Text + "\"");
        }

        private static void SmolGrammar()
        {
            LlmModel model = Fixtures.Smol;
            const string grammar = "start: \"The capital of France is \" city \".\"\ncity: \"Paris\" | \"London\" | \"Berlin\"\n";
            GenerationResult result = model.CompleteChat(Ask("What is the capital of France?"),
                new GenerationOptions { MaxTokens = 24, Grammar = grammar });
            Check.True(Regex.IsMatch(result.Text, @"\AThe capital of France is (Paris|London|Berlin)\.\z"), "a sentence of the grammar: \"" + result.Text + "\"");
            Check.Equal(FinishReason.Eos, result.FinishReason, "the grammar allows nothing after the full stop");
        }

        private static void SmolIncomplete()
        {
            LlmModel model = Fixtures.Smol;
            var options = new GenerationOptions { MaxTokens = 4, JsonSchema = CitySchema };
            GenerationResult result = model.CompleteChat(Ask("What is the capital of France? Answer in JSON."), options);
            Check.Equal(FinishReason.ConstraintIncomplete, result.FinishReason, "4 tokens cannot complete the object: " + result.Text);
            Check.Equal(4, result.GeneratedTokens, "all of MaxTokens was used");
            Check.True(result.Text.Length > 0 && result.Text.StartsWith("{"), "the partial text is returned: " + result.Text);
            Check.True("{\"city\": \"".StartsWith(result.Text) || result.Text.StartsWith("{\"city\": \""),
                "the partial text is a prefix of the compact object: " + result.Text);
            Check.Equal(FinishReason.ConstraintIncomplete,
                model.CompleteChat(Ask("Count to ten."), new GenerationOptions { MaxTokens = 3, Regex = "[a-z]{60}" }).FinishReason,
                "a regex needing more tokens than MaxTokens");
            // The text-only methods return the partial text too.
            string partial = model.GenerateChat(Ask("What is the capital of France? Answer in JSON."), options);
            Check.Equal(result.Text, partial, "GenerateChat returns the same partial text");
        }

        private static void ConstraintErrors()
        {
            LlmModel model = Fixtures.Smol;
            List<ChatMessage> question = Ask("What is the capital of France?");
            SphanaLlmException e = Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, Regex = "(unclosed[" }), "an invalid regex", "regular expression");
            Check.True(e.NativeMessage.Contains("unclosed"), "the message shows the problem: " + e.NativeMessage);
            Check.Equal("sphana_llm_generate_chat", e.Function, "the failing function");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.Generate("Hi", new GenerationOptions { MaxTokens = 8, Regex = "a(?=b)" }), "look-ahead in a regex", "look-around");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, JsonSchema = "{\"type\": " }),
                "a schema that is not JSON", "JSON");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, JsonSchema = "{\"type\": \"no-such-type\"}" }),
                "a schema with an unknown type", "no-such-type");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, Grammar = "start: undefined_rule\n" }),
                "a grammar with an undefined rule", "undefined_rule");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, Regex = "" }), "an empty regex", "empty");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.CompleteChat(question, new GenerationOptions { MaxTokens = 8, JsonSchema = new string(' ', GenerationOptions.MaxConstraintBytes + 1) }),
                "a schema over MaxConstraintBytes", GenerationOptions.MaxConstraintBytes.ToString());
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => model.GenerateChatStream(question, new GenerationOptions { MaxTokens = 8, Regex = "(" }).ToList(),
                "an invalid regex, streaming");
            Check.Equal(0, GenerationStream.LiveProducers, "no producer thread left");

            // Two constraints, or a NUL inside one, are the wrapper's ArgumentException, before any native call.
            var twoConstraints = new[]
            {
                new GenerationOptions { JsonSchema = CitySchema, Regex = "[0-9]+" },
                new GenerationOptions { Regex = "[0-9]+", Grammar = "start: \"a\"" },
                new GenerationOptions { JsonSchema = CitySchema, JsonObject = true },
                new GenerationOptions { Grammar = "start: \"a\"", JsonObject = true },
            };
            foreach (GenerationOptions two in twoConstraints)
            {
                ArgumentException a = Check.Throws<ArgumentException>(() => model.CompleteChat(question, two), "two constraints");
                Check.Equal(typeof(ArgumentException), a.GetType(), "the exception type");
                Check.Equal("options", a.ParamName, "the parameter named");
                Check.True(a.Message.Contains("at most one constraint"), "the message says why: " + a.Message);
            }
            Check.Throws<ArgumentException>(() => model.Generate("Hi", new GenerationOptions { JsonSchema = CitySchema, Regex = "x" }),
                "two constraints, text prompt");
            Check.Throws<ArgumentException>(() => model.GenerateChatAsync(question, new GenerationOptions { JsonObject = true, Regex = "x" }).Wait(),
                "two constraints, async");
            ArgumentException nul = Check.Throws<ArgumentException>(
                () => model.CompleteChat(question, new GenerationOptions { Regex = "a\0b" }), "a NUL inside the regex");
            Check.True(nul.Message.Contains("Regex"), "the message names the property: " + nul.Message);
            Check.Equal(0L, SafeCancellationHandle.Live, "no cancellation flag leaked by the failures");

            // The model still works, and gives its usual answer.
            object golden = GenerationTests.Smol();
            GenerationResult after = model.Complete(J.Str(golden, "prompt_text"), GenerationTests.SmolOptions());
            Check.Equal(J.Str(J.Get(J.Get(golden, "models"), "fp32"), "text"), after.Text, "the golden answer after the failures");
            Check.Equal(0.0, after.ConstraintMs, "no constraint time");
            const string sentence = "The capital of France is (Paris|London|Berlin)\\.";
            GenerationResult constrained = model.CompleteChat(question, new GenerationOptions { MaxTokens = 24, Regex = sentence });
            Check.True(Regex.IsMatch(constrained.Text, @"\A(?:" + sentence + @")\z"), "and a constrained generation after the failures: " + constrained.Text);
            Check.Equal(FinishReason.Eos, constrained.FinishReason, "complete");
        }
    }
}
