using System;
using System.Threading;

namespace Sphana.Llm
{
    // Chat templates: the place for the chat API.
    //
    // The C API is getting chat-template functions (rendering a model's tokenizer_config.json
    // chat_template over a list of messages). When they land, their C# side goes here, as part of
    // LlmModel:
    //   - the P/Invokes in NativeMethods.cs, next to the generation section;
    //   - a ChatMessage type (Role, Content) in ChatMessage.cs;
    //   - string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true);
    //   - Chat/ChatAsync/ChatStream overloads that render the template and generate with
    //     ParseSpecialTokens on for the template's markers only (message contents must stay plain text).
    // Until then a chat prompt is built by hand (see the README) and passed with ParseSpecialTokens = true.
    public sealed partial class LlmModel
    {
    }
}
