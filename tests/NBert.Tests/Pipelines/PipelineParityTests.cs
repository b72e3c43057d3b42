using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Pipelines;

namespace NBert.Tests.Pipelines;

/// <summary>The pipelines against transformers' outputs in shared/fixtures/pipelines (scores within 1e-4, all else identical).</summary>
public class PipelineParityTests
{
    private const float Tolerance = 1e-4f;
    private static readonly JsonNode Expected = Fixtures.Json("pipelines", "expected_pipelines.json");

    private static string[] Inputs(string pipeline) => Expected[pipeline]!["inputs"]!.AsArray().Select(x => (string)x!).ToArray();

    [Fact]
    public void Fill_mask_matches_transformers()
    {
        var pipeline = FillMask.FromPretrained(Fixtures.Path("model", "pretraining"));
        var inputs = Inputs("fill-mask");
        var results = pipeline.RunEachMask(inputs, new FillMaskOptions { TopK = (int)Expected["fill-mask"]!["top_k"]! });
        var outputs = Expected["fill-mask"]!["outputs"]!.AsArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            // One mask: a list of candidates; several: a list per mask.
            var expected = outputs[i]!.AsArray();
            var perMask = expected[0] is JsonArray ? expected.Select(x => x!.AsArray()).ToList() : [expected];
            Assert.Equal(perMask.Count, results[i].Count);
            for (int m = 0; m < perMask.Count; m++)
            {
                Assert.Equal(perMask[m].Count, results[i][m].Count);
                for (int k = 0; k < perMask[m].Count; k++)
                {
                    var e = perMask[m][k]!;
                    var a = results[i][m][k];
                    Assert.Equal((int)e["token"]!, a.Token);
                    Assert.Equal((string)e["token_str"]!, a.TokenStr);
                    Assert.Equal((string)e["sequence"]!, a.Sequence);
                    Assert.InRange(a.Score, (float)e["score"]! - Tolerance, (float)e["score"]! + Tolerance);
                }
            }
        }
    }

    [Fact]
    public void Text_classification_matches_transformers_for_all_labels_and_the_top_one()
    {
        var pipeline = TextClassification.FromPretrained(Fixtures.Path("model", "seqcls"));
        var inputs = Inputs("text-classification").Select(t => (t, (string?)null)).ToList();
        void Compare(JsonArray expected, IReadOnlyList<IReadOnlyList<LabelScore>> actual)
        {
            for (int i = 0; i < expected.Count; i++)
            {
                var e = expected[i]!.AsArray();
                Assert.Equal(e.Count, actual[i].Count);
                for (int k = 0; k < e.Count; k++)
                {
                    Assert.Equal((string)e[k]!["label"]!, actual[i][k].Label);
                    Assert.InRange(actual[i][k].Score, (float)e[k]!["score"]! - Tolerance, (float)e[k]!["score"]! + Tolerance);
                }
            }
        }
        Compare(Expected["text-classification"]!["outputs"]!.AsArray(), pipeline.Run(inputs, new TextClassificationOptions { TopK = null }));
        Compare(Expected["text-classification"]!["top1"]!.AsArray(), pipeline.Run(inputs));
    }

    [Theory]
    [InlineData("none", Aggregation.None)]
    [InlineData("simple", Aggregation.Simple)]
    [InlineData("first", Aggregation.First)]
    [InlineData("average", Aggregation.Average)]
    [InlineData("max", Aggregation.Max)]
    public void Token_classification_matches_transformers_for_every_aggregation(string name, Aggregation aggregation)
    {
        var pipeline = TokenClassification.FromPretrained(Fixtures.Path("model", "tokcls"));
        var inputs = Inputs("token-classification");
        var results = pipeline.Run(inputs, new TokenClassificationOptions { Aggregation = aggregation });
        var expected = Expected["token-classification"]!["by_strategy"]![name]!.AsArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            var e = expected[i]!.AsArray();
            Assert.True(e.Count == results[i].Count, $"text {i}: {e.Count} entities expected, {results[i].Count} found");
            for (int k = 0; k < e.Count; k++)
            {
                var x = e[k]!;
                var a = results[i][k];
                Assert.Equal((string?)x["entity"], a.Entity);
                Assert.Equal((string?)x["entity_group"], a.EntityGroup);
                Assert.Equal((int?)x["index"], a.Index);
                Assert.Equal((string)x["word"]!, a.Word);
                Assert.Equal(((int)x["start"]!, (int)x["end"]!), (a.Start, a.End));
                Assert.InRange(a.Score, (float)x["score"]! - Tolerance, (float)x["score"]! + Tolerance);
            }
        }
    }

    [Fact]
    public void Feature_extraction_is_the_encoders_last_hidden_state()
    {
        var embeddings = SentenceEmbeddings.FromPretrained(Fixtures.Path("model", "encoder_only"));
        var inputs = Inputs("feature-extraction");
        var outputs = Expected["feature-extraction"]!["outputs"]!.AsArray();
        for (int i = 0; i < inputs.Length; i++)
        {
            var tokens = embeddings.TokenEmbeddings(inputs[i]);
            var e = outputs[i]!.AsArray();
            Assert.Equal(e.Count, tokens.Shape[0]);
            for (int t = 0; t < e.Count; t++)
                for (int j = 0; j < tokens.Shape[1]; j++)
                    Assert.InRange(tokens[t, j], (float)e[t]![j]! - Tolerance, (float)e[t]![j]! + Tolerance);
        }
    }
}
