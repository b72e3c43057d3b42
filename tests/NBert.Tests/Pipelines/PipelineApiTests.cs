using NBert.Pipelines;
using NBert.Modeling;

namespace NBert.Tests.Pipelines;

/// <summary>The pipelines' one shape (issue 17): a string or pair and a list, options records, results with
/// transformers' field names, safe from several threads, saved and loaded back.</summary>
public sealed class PipelineApiTests : TempDirectoryTest
{
    private static string Model(string name) => Fixtures.Path("model", name);

    [Fact]
    public void A_single_input_gives_the_same_result_as_the_list()
    {
        using var cls = TextClassification.FromPretrained(Model("seqcls"));
        Assert.Equal(cls.Run(["A fine film."])[0], cls.Run("A fine film."));
        Assert.Equal(cls.Run([("A question?", (string?)"An answer.")])[0], cls.Run("A question?", "An answer."));
        using var ner = TokenClassification.FromPretrained(Model("tokcls"));
        Assert.Equal(ner.Run(["John lives in Paris."])[0], ner.Run("John lives in Paris."));
        using var qa = QuestionAnswering.FromPretrained(Model("qa"));
        Assert.Equal(qa.Run([("Who?", "Rollo led them.")])[0], qa.Run("Who?", "Rollo led them."));
        using var fill = FillMask.FromPretrained(Model("pretraining"));
        Assert.Equal(fill.Run(["Paris is the [MASK] of France."])[0], fill.Run("Paris is the [MASK] of France."));
        Assert.Contains("RunEachMask", Assert.ThrowsAny<ArgumentException>(() => fill.Run("[MASK] and [MASK].")).Message);
        Assert.Equal(2, fill.RunEachMask("[MASK] and [MASK].").Count);
        using var nsp = NextSentence.FromPretrained(Model("pretraining"));
        Assert.Equal(nsp.Run([("He went home.", "It was late.")])[0], nsp.Run("He went home.", "It was late."));
    }

    [Fact]
    public void An_empty_list_compiles_for_every_pipeline_and_gives_no_results()
    {
        // cls.Run([]) fitted both of text classification's list overloads (CS0121) until the string list was preferred.
        using var cls = TextClassification.FromPretrained(Model("seqcls"));
        Assert.Empty(cls.Run([]));
        using var ner = TokenClassification.FromPretrained(Model("tokcls"));
        Assert.Empty(ner.Run([]));
        using var qa = QuestionAnswering.FromPretrained(Model("qa"));
        Assert.Empty(qa.Run([]));
        using var fill = FillMask.FromPretrained(Model("pretraining"));
        Assert.Empty(fill.Run([]));
        using var nsp = NextSentence.FromPretrained(Model("pretraining"));
        Assert.Empty(nsp.Run([]));
    }

    [Fact]
    public void Pipelines_called_from_eight_threads_at_once_give_the_sequential_results()
    {
        using var cls = TextClassification.FromPretrained(Model("seqcls"));
        using var ner = TokenClassification.FromPretrained(Model("tokcls"));
        using var qa = QuestionAnswering.FromPretrained(Model("qa"));
        using var embed = SentenceEmbeddings.FromPretrained(Model("encoder_only"));
        string[] texts = Enumerable.Range(0, 24).Select(i => $"Text number {i} about {string.Join(' ', Enumerable.Repeat("Paris", i % 7 + 1))}.").ToArray();
        var sequential = (cls.Run(texts), ner.Run(texts, new TokenClassificationOptions { Aggregation = Aggregation.Simple }),
            qa.Run(texts.Select(t => ("Where?", t)).ToList()), embed.Embed(texts));
        var parallel = new object[8];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => parallel[i] = (i % 4) switch
        {
            0 => cls.Run(texts),
            1 => ner.Run(texts, new TokenClassificationOptions { Aggregation = Aggregation.Simple }),
            2 => qa.Run(texts.Select(t => ("Where?", t)).ToList()),
            _ => embed.Embed(texts),
        });
        for (int i = 0; i < 8; i++)
            switch (parallel[i])
            {
                case IReadOnlyList<IReadOnlyList<LabelScore>> labels: Assert.Equal(sequential.Item1.SelectMany(x => x), labels.SelectMany(x => x)); break;
                case IReadOnlyList<IReadOnlyList<EntityPrediction>> entities: Assert.Equal(sequential.Item2.SelectMany(x => x), entities.SelectMany(x => x)); break;
                case IReadOnlyList<IReadOnlyList<QaAnswer>> answers: Assert.Equal(sequential.Item3.SelectMany(x => x), answers.SelectMany(x => x)); break;
                case float[][] vectors: Assert.Equal(sequential.Item4.SelectMany(x => x), vectors.SelectMany(x => x)); break;
                default: Assert.Fail($"unexpected {parallel[i]?.GetType()}"); break;
            }
    }

    [Fact]
    public void A_pipeline_saves_what_it_needs_to_load_again()
    {
        using var cls = TextClassification.FromPretrained(Model("seqcls"));
        cls.SavePretrained(Temp("saved"));
        using var again = TextClassification.FromPretrained(Temp("saved"));
        Assert.Equal(cls.Run("Was it good?", new TextClassificationOptions { TopK = null }), again.Run("Was it good?", new TextClassificationOptions { TopK = null }));
        Assert.True(File.Exists(Temp("saved/tokenizer.json")));
    }

    [Fact]
    public void A_pipeline_disposes_the_model_it_loaded_but_not_one_it_was_given()
    {
        var loaded = TextClassification.FromPretrained(Model("seqcls"));
        loaded.Dispose();
        Assert.Throws<ObjectDisposedException>(() => loaded.Run("x"));
        var given = new TextClassification(loaded.Tokenizer, NBert.Modeling.BertForSequenceClassification.FromPretrained(Model("seqcls")));
        given.Dispose();
        Assert.NotEmpty(given.Model.Forward(given.Tokenizer.EncodeInputs(["x"])).Logits!.Data);
        Assert.Throws<ArgumentException>(() => new TextClassification(loaded.Tokenizer, NBert.Modeling.BertModel.FromPretrained(Model("encoder_only"))));
    }
}
