using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Pipelines;

namespace NBert.Tests.Cli;

/// <summary><c>--quantize int8</c> on the inference commands: the int8 model runs (its values are the library's int8
/// pipeline's, not float32's), and a value other than none or int8 is a usage error.</summary>
public sealed class QuantizeOptionTests
{
    private static string Model(string name) => Fixtures.Path("model", name);

    private static List<JsonNode> Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();

    [Theory]
    [InlineData("classify", "seqcls")]
    [InlineData("ner", "tokcls")]
    [InlineData("embed", "encoder_only")]
    [InlineData("fill-mask", "pretraining")]
    public void Int8_runs_the_quantized_model(string command, string model)
    {
        string text = command == "fill-mask" ? "My dog is [MASK]." : "Barack Obama was born in Hawaii.";
        var (code, float32, error) = Nbert.Run(command, "--model", Model(model), "--json", text);
        Assert.True(code == 0, error);
        (code, var int8, error) = Nbert.Run(command, "--model", Model(model), "--json", "--quantize", "int8", text);
        Assert.True(code == 0, error);
        Assert.NotEqual(float32, int8);
        if (command == "classify")
        {
            var pipeline = TextClassification.FromPretrained(Model(model));
            pipeline.Model.Quantize(Quantization.Int8);
            var expected = pipeline.Run(text)[0];
            var line = Lines(int8)[0].AsArray()[0]!;
            Assert.Equal(expected.Label, (string)line["label"]!);
            Assert.Equal(expected.Score, (float)line["score"]!, 1e-6f);
        }
        if (command == "embed")
        {
            var embedder = SentenceEmbeddings.FromPretrained(Model(model));
            embedder.Model.Quantize(Quantization.Int8);
            var expected = embedder.Embed(text);
            var actual = Lines(int8)[0]["embedding"]!.AsArray().Select(v => (float)v!).ToArray();
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Another_value_is_a_usage_error()
    {
        var (code, _, error) = Nbert.Run("classify", "--model", Model("seqcls"), "--quantize", "int4", "A fine film.");
        Assert.Equal(2, code);
        Assert.Contains("int4", error);
    }
}
