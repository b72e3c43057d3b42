using System.Text.Json.Nodes;
using NBert.Cli;

namespace NBert.Tests.Cli;

public class BenchCommandTests
{
    [Fact]
    public void Bench_reports_tokenization_inference_and_training_speed()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(["bench", "--model", Fixtures.Path("model", "pretraining"), "--seconds", "0.05", "--json"], new StringReader(""), output, error);
        Assert.True(code == 0, error.ToString());
        var figures = JsonNode.Parse(output.ToString())!;
        foreach (var name in new[] { "tokenize_tokens_per_s", "inference_sequences_per_s", "training_step_ms" })
            Assert.True((double)figures[name]! > 0, name);
        Assert.Equal(2, Program.Run(["bench", "--model", Fixtures.Path("model", "pretraining"), "--seconds", "0"], new StringReader(""), new StringWriter(), new StringWriter()));
    }
}
