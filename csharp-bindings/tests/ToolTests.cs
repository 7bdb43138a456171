// Tool calling on SmolLM2 with Qwen3's chat template (SmolLM2's own renders no tools; both are ChatML): the
// rendering carries the tools, a required call parses (the tests' own MiniJson) and follows its tool's schema,
// an automatic reply keeps its text, and bad tool lists are refused with the model still usable.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace Sphana.Llm.Tests
{
    internal static class ToolTests
    {
        internal static void Register(List<KeyValuePair<string, Action>> tests)
        {
            Add(tests, "tools_are_rendered_by_the_template", Rendering);
            Add(tests, "a_required_call_parses_and_follows_its_tools_schema", RequiredCall);
            Add(tests, "an_automatic_reply_keeps_its_text_and_content", AutoReply);
            Add(tests, "tool_errors_name_the_problem_and_the_model_still_works", ToolErrors);
        }

        private static void Add(List<KeyValuePair<string, Action>> tests, string name, Action test)
        {
            tests.Add(new KeyValuePair<string, Action>(name, test));
        }

        /// <summary>Two tools with every value bounded.</summary>
        internal const string ToolsJson =
            "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Current weather in a city.\", " +
            "\"parameters\": {\"type\": \"object\", \"properties\": {\"location\": {\"type\": \"string\", \"maxLength\": 40}, " +
            "\"unit\": {\"enum\": [\"celsius\", \"fahrenheit\"]}}, \"required\": [\"location\", \"unit\"]}}}, " +
            "{\"type\": \"function\", \"function\": {\"name\": \"get_document\", \"description\": \"Opens a document by id.\", " +
            "\"parameters\": {\"type\": \"object\", \"properties\": {\"document_id\": {\"type\": \"integer\", \"minimum\": 1, " +
            "\"maximum\": 100000}}, \"required\": [\"document_id\"]}}}]";

        /// <summary>SmolLM2 with a tokenizer directory that has Qwen3's chat template (chat_template.jinja).</summary>
        private static LlmModel Model
        {
            get { return Fixtures.Get("smol-qwen3-chat", LoadWithQwen3Template); }
        }

        private static LlmModel LoadWithQwen3Template()
        {
            string smol = Paths.Model("smollm2-135m-instruct");
            string dir = Path.Combine(Path.GetTempPath(), "sphana-llm-cs-tools-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                File.Copy(Path.Combine(smol, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
                File.Copy(Path.Combine(smol, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
                var qwen = (Dictionary<string, object>)MiniJson.Parse(File.ReadAllText(
                    Path.Combine(Paths.Tokenizer("qwen3-chat"), "tokenizer_config.json")));
                // chat_template.jinja next to tokenizer_config.json takes precedence over its chat_template.
                File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), (string)qwen["chat_template"]);
                LlmLoadOptions options = Fixtures.Options();
                options.TokenizerPath = dir;
                return LlmModel.Load(smol, options);
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        private static List<ChatMessage> Ask(string question)
        {
            return new List<ChatMessage> { ChatMessage.User(question) };
        }

        private static void Rendering()
        {
            string text = Model.ApplyChatTemplateWithTools(Ask("Weather in Rome?"), ToolsJson);
            Check.True(text.Contains("<tools>") && text.Contains("\"get_weather\"") && text.Contains("\"get_document\""),
                "the tools are in the prompt: " + text);
            Check.True(text.EndsWith("<|im_start|>assistant\n"), "the generation prompt ends it");
            Check.True(!Model.ApplyChatTemplate(Ask("Weather in Rome?")).Contains("<tools>"), "no tools, no tool block");
        }

        private static void RequiredCall()
        {
            foreach (string question in new[] { "What is the weather like in Lisbon?", "Please open document 7." })
            {
                GenerationResult result = Model.CompleteChatWithTools(Ask(question), ToolsJson, ToolChoice.Required,
                    new GenerationOptions { MaxTokens = 100 });
                Check.Equal(1, result.ToolCalls.Count, "one call: " + result.Text);
                Check.Equal("", result.Content, "a required reply is only the call");
                Check.True(result.Text.StartsWith("<tool_call>") && result.Text.Contains("</tool_call>"), "the call's text: " + result.Text);
                ToolCall call = result.ToolCalls[0];
                var arguments = MiniJson.Parse(call.ArgumentsJson) as Dictionary<string, object>;
                Check.True(arguments != null, "the arguments parse as a JSON object: " + call.ArgumentsJson);
                if (call.Name == "get_weather")
                {
                    Check.Equal(2, arguments.Count, "location and unit only: " + call.ArgumentsJson);
                    Check.True(J.Str(arguments, "location").Length <= 40, "location within maxLength");
                    Check.True(new[] { "celsius", "fahrenheit" }.Contains(J.Str(arguments, "unit")), "unit from the enum");
                }
                else
                {
                    Check.Equal("get_document", call.Name, "a tool of the list");
                    Check.Equal(1, arguments.Count, "document_id only: " + call.ArgumentsJson);
                    Check.True(arguments["document_id"] is double || arguments["document_id"] is long || arguments["document_id"] is int,
                        "document_id is a number: " + call.ArgumentsJson);
                }
                Check.True(result.ConstraintMs > 0, "the call was constrained");
            }
        }

        private static void AutoReply()
        {
            var options = new GenerationOptions { MaxTokens = 40 };
            GenerationResult result = Model.CompleteChatWithTools(Ask("Say hello."), ToolsJson, ToolChoice.Auto, options);
            Check.Equal(Model.Decode(result.TokenIds.ToArray()), result.Text, "the text is the decoded ids");
            if (result.ToolCalls.Count == 0)
            {
                Check.Equal(result.Text.Trim(), result.Content, "a text reply is its own content");
            }
            Check.Equal(0.0, result.ConstraintMs, "an automatic reply is not constrained");
            // Without tools the result has none, and Content is the text.
            GenerationResult plain = Model.CompleteChat(Ask("Say hello."), options);
            Check.Equal(0, plain.ToolCalls.Count, "no tools, no calls");
            Check.Equal(plain.Text, plain.Content, "without tools Content is the text");
        }

        private static void ToolErrors()
        {
            List<ChatMessage> question = Ask("Weather in Oslo?");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => Model.CompleteChatWithTools(question, "[{\"name\": ", ToolChoice.Auto), "tools that are not JSON", "not valid JSON");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => Model.ApplyChatTemplateWithTools(question, "{}"), "tools that are not an array", "array");
            Check.Native(SphanaLlmStatus.InvalidArgument,
                () => Model.CompleteChatWithTools(question, ToolsJson, ToolChoice.Required,
                    new GenerationOptions { MaxTokens = 8, JsonObject = true }), "a required call with a constraint", "constraint");
            Check.Native(SphanaLlmStatus.Unsupported,
                () => Fixtures.Smol.CompleteChatWithTools(question, ToolsJson, ToolChoice.Auto), "SmolLM2's own template has no tools");
            Check.Throws<ArgumentException>(() => Model.CompleteChatWithTools(question, "[\0]", ToolChoice.Auto), "a NUL in the tools");
            Check.Throws<ArgumentNullException>(() => Model.ApplyChatTemplateWithTools(question, null), "null tools");
            Check.Throws<ArgumentException>(() => Model.CompleteChatWithTools(question, ToolsJson, (ToolChoice)7), "an undefined choice");
            GenerationResult after = Model.CompleteChat(question, new GenerationOptions { MaxTokens = 4 });
            Check.Equal(4, after.GeneratedTokens, "the model still works");
        }
    }
}
