using System.Text.Json.Nodes;
using NBert.Cli;
using NBert.Tokenization;

namespace NBert.Tests.Cli;

public class TokenizeCommandTests
{
    private static readonly string Model = Fixtures.Path("tokenizer", "saved_uncased");

    private static (int Code, string Out, string Err) Run(string stdin, params string[] args) => Nbert.RunWithInput(stdin, args);

    private static JsonNode[] Lines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToArray();

    [Fact]
    public void Writes_one_json_line_per_input_line_in_order_with_the_library_encoding()
    {
        var (code, output, error) = Run("""
            {"text": "My dog is [MASK].", "text_pair": "Hello, World!"}

            {"text": "Café au lait 😀"}
            """, "tokenize", "--model", Model);
        Assert.True(code == 0, error);
        var lines = Lines(output);
        Assert.Equal(2, lines.Length);
        var tokenizer = BertTokenizer.FromPretrained(Model);
        var expected = tokenizer.Encode("My dog is [MASK].", "Hello, World!");
        Assert.Equal(expected.InputIds, Fixtures.Ints(lines[0]["input_ids"]));
        Assert.Equal(expected.TokenTypeIds, Fixtures.Ints(lines[0]["token_type_ids"]));
        Assert.Equal(expected.AttentionMask, Fixtures.Ints(lines[0]["attention_mask"]));
        Assert.Equal(expected.Tokens, lines[0]["tokens"]!.AsArray().Select(t => (string)t!));
        Assert.Equal(expected.Offsets, lines[0]["offsets"]!.AsArray().Select(o => ((int)o![0]!, (int)o[1]!)));
        Assert.Empty(lines[0]["overflow"]!.AsArray());
        Assert.Equal(["[CLS]", "cafe", "au", "lai", "##t", "[UNK]", "[SEP]"], lines[1]["tokens"]!.AsArray().Select(t => (string)t!));
    }

    [Fact]
    public void Stride_puts_further_windows_in_overflow_and_padding_longest_spans_the_whole_input()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                {"text": "Who?", "text_pair": "one two three four five six seven eight nine ten"}
                {"text": "short"}
                """);
            var (code, output, error) = Run("", "tokenize", "--model", Model, "--input", file, "--max-length", "10",
                "--truncation", "only_second", "--stride", "2", "--padding", "longest");
            Assert.True(code == 0, error);
            var lines = Lines(output);
            var overflow = lines[0]["overflow"]!.AsArray();
            Assert.Equal(2, overflow.Count);
            Assert.Equal(["[CLS]", "who", "?", "[SEP]", "four", "five", "six", "seven", "eight", "[SEP]"],
                overflow[0]!["tokens"]!.AsArray().Select(t => (string)t!));
            Assert.All(lines, l => Assert.Equal(10, l["input_ids"]!.AsArray().Count));
            Assert.Equal([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], Fixtures.Ints(lines[1]["attention_mask"]));
            Assert.Empty(lines[1]["overflow"]!.AsArray());
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void No_special_tokens_option_leaves_them_out()
    {
        var (code, output, _) = Run("""{"text": "Hello, World!"}""", "tokenize", "--model", Model, "--no-special-tokens");
        Assert.Equal(0, code);
        Assert.Equal([7592, 1010, 2088, 999], Fixtures.Ints(Lines(output)[0]["input_ids"]));
    }

    [Theory]
    [InlineData("{\"text\": \"ok\"}\n{\"text\": 3}", "line 2", "must be a string")]
    [InlineData("{\"text\": \"ok\"}\nnot json", "line 2", "")]
    [InlineData("{\"txt\": \"ok\"}", "line 1", "missing \"text\"")]
    [InlineData("[1, 2]", "line 1", "JSON object")]
    public void A_malformed_line_is_named_with_its_number_and_exits_2(string stdin, string where, string what)
    {
        var (code, output, error) = Run(stdin, "tokenize", "--model", Model);
        Assert.Equal(2, code);
        Assert.Empty(output);
        Assert.Contains(where, error);
        Assert.Contains(what, error);
    }

    [Theory]
    [InlineData("--model", "/no/such/model")]
    [InlineData("--padding", "wide")]
    [InlineData("--truncation", "both")]
    [InlineData("--max-length", "0")]
    [InlineData("--input", "/no/such/input.jsonl")]
    [InlineData("--stride", "2", "--truncation", "none")]
    public void Bad_options_exit_2_with_a_message(params string[] extra)
    {
        string[] args = extra[0] == "--model" ? ["tokenize", .. extra] : ["tokenize", "--model", Model, .. extra];
        var (code, _, error) = Run("""{"text": "x"}""", args);
        Assert.Equal(2, code);
        Assert.StartsWith("nbert: ", error);
    }

    [Fact]
    public void A_truncation_that_cannot_work_names_the_line()
    {
        var (code, _, error) = Run("{\"text\": \"fine\", \"text_pair\": \"b\"}\n{\"text\": \"a b c d e f g h\"}",
            "tokenize", "--model", Model, "--truncation", "only_second", "--max-length", "6");
        Assert.Equal(2, code);
        Assert.Contains("line 2", error);
        Assert.Contains("second text", error);
    }
}
