using NBert.Pipelines;

namespace NBert.Tests.Server;

/// <summary><c>serve</c> takes a DistilBERT, a RoBERTa and an ELECTRA as it takes a BERT: TEI's /predict gives the text-classification
/// pipeline's labels and scores, and /info names the classifier.</summary>
public sealed class FamilyServerTests
{
    [Theory]
    [InlineData("distilbert")]
    [InlineData("roberta")]
    [InlineData("electra")]
    public async Task A_family_classifier_serves_the_pipelines_answers(string family)
    {
        string model = Fixtures.Path(family, "seqcls");
        await using var server = await RunningServer.Start(model);
        var pipeline = TextClassification.FromPretrained(model);
        var expected = pipeline.Run("A fine film.", new TextClassificationOptions { TopK = null });
        var predictions = (await server.Post("/predict", new { inputs = "A fine film." })).Json.AsArray();
        Assert.Equal(expected.Select(x => (x.Label, x.Score)), predictions.Select(p => (p!["label"]!.GetValue<string>(), p["score"]!.GetValue<float>())));
        var info = (await server.Get("/info")).Json;
        Assert.NotNull(info["model_type"]!["classifier"]);
    }
}
