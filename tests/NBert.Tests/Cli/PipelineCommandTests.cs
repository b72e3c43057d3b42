using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.Cli;
using NBert.Pipelines;

namespace NBert.Tests.Cli;

public sealed class PipelineCommandTests : TempDirectoryTest
{
    private static string Model(string name) => Fixtures.Path("model", name);

    private static (int Code, string Out, string Err) Run(string stdin, params string[] args) => Nbert.RunWithInput(stdin, args);

    private static List<JsonNode> Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();

    [Fact]
    public void Json_lines_hold_exactly_the_pipelines_values()
    {
        var texts = new[] { "My dog is [MASK].", "[MASK] is the best [MASK] in the world." };
        var (code, stdout, error) = Run("", ["fill-mask", "--model", Model("pretraining"), "--json", .. texts]);
        Assert.True(code == 0, error);
        var expected = FillMask.FromPretrained(Model("pretraining")).RunEachMask(texts);
        var lines = Lines(stdout);
        Assert.Equal(2, lines.Count);
        Assert.Equal(5, lines[0].AsArray().Count);               // one mask: a list of candidates
        Assert.Equal(2, lines[1].AsArray().Count);               // two masks: a list per mask
        Assert.Equal(expected[0][0][0].Token, (int)lines[0][0]!["token"]!);
        Assert.Equal(expected[1][1][0].Sequence, (string)lines[1][1]![0]!["sequence"]!);

        (code, stdout, error) = Run("", "classify", "--model", Model("seqcls"), "--json", "--top-k", "all", "A fine film.");
        Assert.True(code == 0, error);
        Assert.Equal(["positive", "neutral", "negative"], Lines(stdout)[0].AsArray().Select(x => (string)x!["label"]!));

        (code, stdout, error) = Run("", "ner", "--model", Model("tokcls"), "--json", "--aggregation", "none", "Barack Obama was born in Hawaii.");
        Assert.True(code == 0, error);
        Assert.Equal("bar", (string)Lines(stdout)[0][0]!["word"]!);
        Assert.Equal(1, (int)Lines(stdout)[0][0]!["index"]!);

        (code, stdout, error) = Run("", "qa", "--model", Model("qa"), "--json", "Who led them?", "Rollo led the Norse raiders.");
        Assert.True(code == 0, error);
        var answer = Lines(stdout)[0];
        Assert.Equal("Rollo led the Norse raiders."[(int)answer["start"]!..(int)answer["end"]!], (string)answer["answer"]!);

        (code, stdout, error) = Run("", "nsp", "--model", Model("pretraining"), "--json", "He went home.", "It was late.");
        Assert.True(code == 0, error);
        float p = NextSentence.FromPretrained(Model("pretraining")).Run("He went home.", "It was late.").Score;
        Assert.Equal(p, (float)Lines(stdout)[0]["score"]!, 6);
    }

    [Fact]
    public void Json_lines_input_streams_in_order_with_a_summary_on_stderr()
    {
        var r = new Random(1);
        string[] words = ["the", "movie", "was", "fine", "and", "dull", "great", "acting"];
        var texts = Enumerable.Range(0, 700).Select(i => string.Join(' ', Enumerable.Range(0, r.Next(1, 30)).Select(_ => words[r.Next(words.Length)]))).ToList();
        File.WriteAllLines(Temp("in.jsonl"), texts.Select(t => JsonSerializer.Serialize(new { text = t, text_pair = "a pair" })));
        var (code, stdout, error) = Run("", "classify", "--model", Model("seqcls"), "--input", Temp("in.jsonl"), "--json");
        Assert.True(code == 0, error);
        var lines = Lines(stdout);
        Assert.Equal(700, lines.Count);
        // In input order, whatever order the length batching ran them in.
        var direct = TextClassification.FromPretrained(Model("seqcls")).Run([(texts[699], "a pair"), (texts[0], "a pair")]);
        Assert.Equal(direct[0][0].Score, (float)lines[699][0]!["score"]!, 6);
        Assert.Equal(direct[1][0].Score, (float)lines[0][0]!["score"]!, 6);
        Assert.Contains("700 inputs in", error);

        // The same through standard input, as a table.
        (code, stdout, error) = Run(File.ReadAllText(Temp("in.jsonl")), "classify", "--model", Model("seqcls"), "--input", "-");
        Assert.True(code == 0, error);
        Assert.Contains("│ 700 │", stdout);
        Assert.Contains("positive", stdout);
    }

    [Fact]
    public void Bad_input_exits_2_with_a_message()
    {
        var (code, _, error) = Run("", "fill-mask", "--model", Model("pretraining"), "No mask here.");
        Assert.Equal(2, code);
        Assert.Contains("[MASK]", error);
        (code, _, error) = Run("", "classify", "--model", Temp("no-model"), "text");
        Assert.Equal(2, code);
        Assert.Contains("no-model", error);
        (code, _, error) = Run("{\"text\": \"ok\"}\n{\"txt\": 1}\n", "ner", "--model", Model("tokcls"), "--input", "-");
        Assert.Equal(2, code);
        Assert.Contains("line 2", error);
        (code, _, error) = Run("", "qa", "--model", Model("qa"), "only a question?");
        Assert.Equal(2, code);
        Assert.Contains("CONTEXT", error);
        (code, _, error) = Run("", "classify", "--model", Model("seqcls"), "--top-k", "0", "x");
        Assert.Equal(2, code);
        Assert.Contains("--top-k", error);
    }
}
