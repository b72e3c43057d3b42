using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using NBert.Tasks;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary>Issue 26 (3) and 29 (10): every command that reads data reads it through <see cref="DataFiles"/>:
/// <c>.gz</c> decompressed, invalid UTF-8 refused with its line number (as the server refuses it), a line over
/// <see cref="DataFiles.MaxLineBytes"/> refused.</summary>
public sealed class InputReaderCommandTests : TempDirectoryTest
{
    private static readonly string Model = Fixtures.Path("model", "pretraining");

    private string Gzip(string name, byte[] bytes)
    {
        string path = Temp(name);
        using var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest);
        gz.Write(bytes);
        return path;
    }

    [Fact]
    public void A_jsonl_gz_input_is_decompressed()
    {
        string plain = Temp("in.jsonl");
        File.WriteAllText(plain, "{\"text\": \"first text\"}\n{\"text\": \"second text\"}\n");
        string gz = Gzip("in.jsonl.gz", File.ReadAllBytes(plain));
        var fromPlain = Run("embed", "--model", Model, "--json", "--input", plain);
        var fromGz = Run("embed", "--model", Model, "--json", "--input", gz);
        Assert.True(fromGz.Code == 0, fromGz.Err);
        Assert.Equal(2, fromGz.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Equal(fromPlain.Out, fromGz.Out);
    }

    [Fact]
    public void A_gz_corpus_is_decompressed_for_similarity()
    {
        string gz = Gzip("corpus.txt.gz", "the man went to the store\n\npenguins are flightless birds\n"u8.ToArray());
        var r = Run("similarity", "--model", Model, "--query", "penguins are flightless birds", "--corpus", gz, "--top-k", "1", "--json");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(3, (int)JsonNode.Parse(r.Out.Trim())!["line"]!);
    }

    [Theory]
    [InlineData("embed")]
    [InlineData("tokenize")]
    public void Invalid_utf8_in_input_is_refused_with_its_line_number(string command)
    {
        string path = Temp("bad.jsonl");
        File.WriteAllBytes(path, [.. "{\"text\": \"fine\"}\n{\"text\": \"caf"u8, 0xE9, .. "\"}\n"u8]);
        var r = command == "embed"
            ? Run("embed", "--model", Model, "--json", "--input", path)
            : Run("tokenize", "--model", Model, "--input", path);
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        Assert.Contains($"{path}:2: not valid UTF-8", r.Err);
        Assert.DoesNotContain("\uFFFD", r.Out);
    }

    [Fact]
    public void Invalid_utf8_in_a_corpus_is_refused_with_its_line_number()
    {
        string path = Temp("corpus.txt");
        File.WriteAllBytes(path, [.. "one\ntwo\n"u8, 0xFF, .. "three\n"u8]);
        var r = Run("similarity", "--model", Model, "--query", "q", "--corpus", path);
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        Assert.Contains($"{path}:3: not valid UTF-8", r.Err);
    }

    [Fact]
    public void A_line_over_the_documented_maximum_is_refused()
    {
        string path = Temp("long.jsonl");
        using (var file = File.Create(path))
        {
            file.Write("{\"text\": \"short\"}\n{\"text\": \""u8);
            file.Write(Encoding.ASCII.GetBytes(new string('a', DataFiles.MaxLineBytes)));
            file.Write("\"}\n"u8);
        }
        var r = Run("embed", "--model", Model, "--json", "--input", path);
        Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
        Assert.Contains($"{path}:2: the line is longer than {DataFiles.MaxLineBytes:N0} bytes", r.Err);
        Assert.Single(r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // the line before it still answered
    }
}
