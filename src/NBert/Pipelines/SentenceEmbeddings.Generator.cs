using System.Numerics.Tensors;
using Microsoft.Extensions.AI;

namespace NBert.Pipelines;

/// <summary>
/// <see cref="SentenceEmbeddings"/> as Microsoft.Extensions.AI's embedding generator, so that anything written
/// against <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> (vector stores, RAG pipelines, middleware such as
/// caching or telemetry) runs on NBert with no service behind it.
/// </summary>
public sealed partial class SentenceEmbeddings : IEmbeddingGenerator<string, Embedding<float>>
{
    /// <summary>The provider "NBert", the model id and the embedding dimension.</summary>
    public EmbeddingGeneratorMetadata Metadata => new("NBert", providerUri: null, ModelId, Dimension);

    /// <summary>
    /// Embeds <paramref name="values"/> in batches of <see cref="Pipeline.BatchSize"/> (sorted by length), on
    /// the thread pool, checking <paramref name="cancellationToken"/> before each batch. <c>Usage</c> counts the tokens
    /// read (special tokens included). <see cref="EmbeddingGenerationOptions.Dimensions"/> keeps the first N components
    /// (Matryoshka truncation), normalised again when the pipeline normalises. <see cref="EmbeddingGenerationOptions.ModelId"/>
    /// may name the model by its id, the name it was loaded by or a built-in's alias (<c>minilm</c>); another model is refused.
    /// Inputs longer than the model takes are truncated with a warning, or refused (<see cref="Pipeline.TruncateLongInputs"/>).
    /// </summary>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToArray();
        if (texts.Any(t => t is null)) throw new ArgumentException("A value to embed is null.", nameof(values));
        if (options?.ModelId is { } requested && !IsNamed(requested))
            throw new ArgumentException($"This generator embeds with '{ModelId}'{(LoadedAs is not null && LoadedAs != ModelId ? $" (loaded as '{LoadedAs}')" : "")}, not '{requested}'.", nameof(options));
        int dimensions = options?.Dimensions ?? Dimension;
        if (dimensions < 1 || dimensions > Dimension)
            throw new ArgumentOutOfRangeException(nameof(options), $"Dimensions must be between 1 and {Dimension}, not {dimensions}.");

        var (vectors, tokens) = await Task.Run(() => (Embed(texts, out long n, cancellationToken), n), cancellationToken).ConfigureAwait(false);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(vectors.Length)
        {
            Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens },
        };
        foreach (var v in vectors)
        {
            var kept = dimensions == v.Length ? v : Truncate(v, dimensions);
            result.Add(new Embedding<float>(kept) { ModelId = ModelId, CreatedAt = created });
        }
        return result;
    }

    private float[] Truncate(float[] vector, int dimensions)
    {
        var kept = vector[..dimensions];
        if (Options.Normalize && TensorPrimitives.Norm(kept) is var norm && norm > 0) TensorPrimitives.Divide(kept, norm, kept);
        return kept;
    }

    /// <summary>This generator's <see cref="EmbeddingGeneratorMetadata"/>, itself (or its tokenizer or model) when asked
    /// for a type it is; null otherwise or for a keyed request.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(Tokenizer)) return Tokenizer;
        return serviceType.IsInstanceOfType(Model) ? Model : null;
    }
}
