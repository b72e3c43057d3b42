using Microsoft.Extensions.AI;
using NBert.IO;
using NBert.Pipelines;

namespace NBert.Tests.Pipelines;

/// <summary><see cref="SentenceEmbeddings"/> as Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/>,
/// with the built-in model, against sentence-transformers' embeddings in the MiniLM fixture.</summary>
public sealed class EmbeddingGeneratorTests
{
    private static readonly string[] Texts = Fixtures.Json("minilm", "minilm_ref_public.json")["texts"]!.AsArray().Select(t => (string)t!).ToArray();

    [Fact]
    public async Task The_built_in_model_generates_the_reference_embeddings_with_usage_and_metadata()
    {
        using IEmbeddingGenerator<string, Embedding<float>> generator = SentenceEmbeddings.FromPretrained("minilm").WithBatchSize(7);
        var embeddings = await generator.GenerateAsync(Texts);

        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        var expected = reference.ReadFloat32("sentence_embedding");
        Assert.Equal(Texts.Length, embeddings.Count);
        for (int i = 0; i < Texts.Length; i++)
        {
            var v = embeddings[i].Vector.Span;
            Assert.Equal(384, v.Length);
            for (int j = 0; j < 384; j++)
                Assert.True(Math.Abs(v[j] - expected[i * 384 + j]) <= 1e-5, $"text {i}, component {j}: {v[j]} vs {expected[i * 384 + j]}");
            Assert.Equal(BuiltinModels.MiniLmModel.HubId, embeddings[i].ModelId);
        }
        // Usage: every token the model read, [CLS] and [SEP] included, padding not (none of these texts is truncated).
        long tokens = reference.ReadInt64("attention_mask").Sum();
        Assert.Equal(tokens, embeddings.Usage!.InputTokenCount);
        Assert.Equal(tokens, embeddings.Usage.TotalTokenCount);

        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal(("NBert", BuiltinModels.MiniLmModel.HubId, 384), (metadata.ProviderName, metadata.DefaultModelId, metadata.DefaultModelDimensions));
        Assert.Same(generator, generator.GetService<SentenceEmbeddings>());
        Assert.Null(generator.GetService<EmbeddingGeneratorMetadata>(serviceKey: "other"));
        Assert.Null(generator.GetService<HttpClient>());
    }

    [Fact]
    public async Task Dimensions_keep_the_leading_components_normalised_and_a_foreign_model_id_is_refused()
    {
        using var generator = SentenceEmbeddings.FromPretrained("minilm");
        var full = (await generator.GenerateAsync(["A short text."]))[0].Vector.ToArray();
        var cut = (await generator.GenerateAsync(["A short text."], new EmbeddingGenerationOptions { Dimensions = 64 }))[0].Vector.ToArray();
        Assert.Equal(64, cut.Length);
        float norm = System.Numerics.Tensors.TensorPrimitives.Norm(full.AsSpan(0, 64));
        for (int j = 0; j < 64; j++) Assert.Equal(full[j] / norm, cut[j], 6);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { Dimensions = 385 }));
        await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { ModelId = "text-embedding-3-small" }));
        var same = await generator.GenerateAsync(["A short text."], new EmbeddingGenerationOptions { ModelId = BuiltinModels.MiniLmModel.HubId });
        Assert.Equal(full, same[0].Vector.ToArray());
    }

    [Fact]
    public async Task Cancellation_stops_the_work_between_batches()
    {
        using var generator = SentenceEmbeddings.FromPretrained("minilm").WithBatchSize(1);
        using (var cancelled = new CancellationTokenSource())
        {
            cancelled.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => generator.GenerateAsync(Texts, cancellationToken: cancelled.Token));
        }
        // 2,400 texts one at a time take many seconds: a cancellation 200 ms in must stop the call, not let it finish.
        var many = Enumerable.Repeat(Texts, 100).SelectMany(t => t).ToArray();
        using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => generator.GenerateAsync(many, cancellationToken: soon.Token));
    }
}
