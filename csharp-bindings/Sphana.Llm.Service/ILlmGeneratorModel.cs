using System.Threading;
using System.Threading.Tasks;

namespace Sphana.Database.Infrastructure.Onnx
{
    /// <summary>
    /// Interface for LLM answer generation: the contract of Sphana.Database, kept here so this project compiles
    /// on its own. When the service references this project, delete the service's own copy of this interface.
    /// </summary>
    public interface ILlmGeneratorModel
    {
        /// <summary>Generates the answer that continues <paramref name="prompt"/>.</summary>
        /// <param name="prompt">The complete prompt (context chunks, question, "Answer:").</param>
        /// <param name="maxTokens">Most tokens to generate.</param>
        /// <param name="cancellationToken">Ends the generation within one token.</param>
        /// <returns>The answer text.</returns>
        Task<string> GenerateAnswerAsync(string prompt, int maxTokens, CancellationToken cancellationToken = default(CancellationToken));
    }
}
