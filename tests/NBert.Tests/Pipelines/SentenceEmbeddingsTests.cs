using NBert.IO;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Pipelines;

public sealed class SentenceEmbeddingsTests : TempDirectoryTest
{
    [Fact]
    public void MiniLm_sentence_embeddings_match_sentence_transformers_whatever_the_batch_size()
    {
        var texts = Fixtures.Json("minilm", "minilm_ref_public.json")["texts"]!.AsArray().Select(t => (string)t!).ToArray();
        using var reference = new SafeTensorsFile(Fixtures.Path("minilm", "minilm_ref_public.safetensors"));
        var expected = reference.ReadFloat32("sentence_embedding");
        var batched = SentenceEmbeddings.FromPretrained(MiniLmPackage.Import.Model, o => o with { Normalize = true }).WithBatchSize(5);
        var vectors = batched.Embed(texts);
        Assert.Equal(texts.Length, vectors.Length);
        for (int i = 0; i < texts.Length; i++)
        {
            // The reference is float64 on the package's own weights: every component within 1e-5.
            for (int j = 0; j < 384; j++)
                Assert.True(Math.Abs(vectors[i][j] - expected[i * 384 + j]) <= 1e-5, $"text {i} ({texts[i]}), component {j}: {vectors[i][j]} vs {expected[i * 384 + j]}");
            Assert.Equal(1f, System.Numerics.Tensors.TensorPrimitives.Norm(vectors[i]), 5);
        }
        // Batching by length changes nothing: one text at a time gives the same vectors.
        var single = new SentenceEmbeddings(batched.Tokenizer, batched.Model, batched.Options) { BatchSize = 1 }.Embed(texts);
        for (int i = 0; i < texts.Length; i++)
            Assert.True(SentenceEmbeddings.CosineSimilarity(single[i], vectors[i]) > 0.999999f);
        // And the search finds a text from its own embedding first.
        var hits = SentenceEmbeddings.Search(vectors[7], vectors, 3);
        Assert.Equal(7, hits[0].Index);
        Assert.Equal(1f, hits[0].Score, 5);
        Assert.True(hits[1].Score >= hits[2].Score);
    }

    [Fact]
    public void Pooling_modes_take_cls_mean_or_max_over_the_mask()
    {
        string dir = Fixtures.Path("model", "pretraining");
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(dir);
        var model = BertPreTrainedModel.FromPretrained(dir, BertArchitecture.BertModel);
        const string text = "The man went to the store.";
        var tokens = new SentenceEmbeddings(tokenizer, model).TokenEmbeddings(text);
        int n = tokens.Shape[0], h = tokens.Shape[1];
        float[] Embed(Pooling p) => new SentenceEmbeddings(tokenizer, model, new EmbeddingOptions { Pooling = p, Normalize = false }).Embed(text);
        Assert.Equal(tokens.Data.AsSpan(0, h).ToArray(), Embed(Pooling.Cls));
        var mean = Embed(Pooling.Mean);
        var max = Embed(Pooling.Max);
        for (int j = 0; j < h; j++)
        {
            var column = Enumerable.Range(0, n).Select(t => tokens.Data[t * h + j]).ToArray();
            Assert.Equal(column.Average(), mean[j], 5);
            Assert.Equal(column.Max(), max[j]);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => SentenceEmbeddings.Search(mean, [mean], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SentenceEmbeddings(tokenizer, model) { BatchSize = 0 });
    }

    [Fact]
    public void Configure_changes_only_what_it_names_and_saving_keeps_the_models_own_pooling()
    {
        using var arctic = SentenceEmbeddings.FromPretrained("arctic-xs", o => o with { Normalize = false });
        Assert.Equal((Pooling.Cls, false, 512), (arctic.Options.Pooling, arctic.Options.Normalize, arctic.MaxTokens));
        Assert.True(arctic.Options.Prompts.ContainsKey("query"));

        using var own = SentenceEmbeddings.FromPretrained("arctic-xs");
        own.SavePretrained(Temp("saved"));
        using var again = SentenceEmbeddings.FromPretrained(Temp("saved"));
        Assert.Equal((own.Options.Pooling, own.Options.Normalize, own.MaxTokens), (again.Options.Pooling, again.Options.Normalize, again.MaxTokens));
        Assert.Equal(own.Options.Prompts, again.Options.Prompts);
        Assert.Equal(own.Embed(["which birds cannot fly?"], "query")[0], again.Embed(["which birds cannot fly?"], "query")[0]);

        // A directory without sentence-transformers' files: mean pooling, not normalised, the model's own length limit.
        using var plain = SentenceEmbeddings.FromPretrained(Fixtures.Path("model", "encoder_only"));
        Assert.Equal((Pooling.Mean, false, 128), (plain.Options.Pooling, plain.Options.Normalize, plain.MaxTokens));
    }
}
