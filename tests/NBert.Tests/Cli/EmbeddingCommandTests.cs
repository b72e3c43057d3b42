using System.Text.Json.Nodes;
using NBert.Cli;

namespace NBert.Tests.Cli;

public sealed class EmbeddingCommandTests : TempDirectoryTest
{
    private static readonly string Model = Fixtures.Path("model", "pretraining");

    private static (int Code, string Out, string Err) Run(string stdin, params string[] args) => Nbert.RunWithInput(stdin, args);

    [Fact]
    public void Embed_writes_one_json_line_per_text_from_arguments_or_input()
    {
        var (code, output, error) = Run("", "embed", "--model", Model, "--normalize", "--json", "first text", "second text");
        Assert.True(code == 0, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!["embedding"]!.AsArray()).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.All(lines, v => Assert.Equal(32, v.Count));
        Assert.Equal(1.0, Math.Sqrt(lines[0].Sum(x => (double)x! * (double)x!)), 4);
        (code, output, _) = Run("{\"text\": \"from stdin\"}\n", "embed", "--model", Model, "--input", "-");
        Assert.Equal(0, code);
        Assert.Contains("from stdin", output);
        Assert.Contains("32", output);
    }

    [Fact]
    public void Similarity_ranks_the_corpus_lines_by_cosine()
    {
        File.WriteAllLines(Temp("corpus.txt"), ["the man went to the store", "", "penguins are flightless birds", "he bought a gallon of milk"]);
        var (code, output, error) = Run("", "similarity", "--model", Model, "--query", "penguins are flightless birds", "--corpus", Temp("corpus.txt"), "--top-k", "2", "--json");
        Assert.True(code == 0, error);
        var hits = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, hits.Length);
        Assert.Equal(3, (int)hits[0]["line"]!); // the query itself, on line 3 (blank lines are skipped, not renumbered)
        Assert.Equal(1.0, (double)hits[0]["score"]!, 4);
        Assert.True((double)hits[0]["score"]! >= (double)hits[1]["score"]!);
    }

    [Fact]
    public void Bad_input_exits_2_with_a_message()
    {
        Assert.Equal(2, Run("", "similarity", "--model", Model, "--query", "q", "--corpus", Temp("missing.txt")).Code);
        File.WriteAllText(Temp("empty.txt"), "\n\n");
        var r = Run("", "similarity", "--model", Model, "--query", "q", "--corpus", Temp("empty.txt"));
        Assert.Equal(2, r.Code);
        Assert.Contains("no non-empty line", r.Err);
        File.WriteAllText(Temp("one.txt"), "a\n");
        Assert.Equal(2, Run("", "similarity", "--model", Model, "--query", "q", "--corpus", Temp("one.txt"), "--top-k", "0").Code);
        Assert.Equal(2, Run("", "embed", "--model", Model, "--input", "-").Code);
        Assert.Equal(2, Run("", "embed", "--model", Temp("no-model"), "x").Code);
        Assert.Equal(2, Run("", "embed", "--model", Model, "--pooling", "sum", "x").Code);
    }
}
