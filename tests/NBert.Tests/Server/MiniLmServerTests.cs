using System.Text.Json.Nodes;
using NBert.Tests.Cli;

namespace NBert.Tests.Server;

/// <summary>The built-in all-MiniLM-L6-v2 behind <c>nbert serve --model minilm</c>: its embeddings are <c>nbert embed</c>'s, to the bit.</summary>
public sealed class MiniLmServerTests
{
    private static string[] CliEmbeddings(bool normalize, string[] texts)
    {
        var (code, output, error) = Nbert.Run(["embed", "--model", "minilm", "--json", normalize ? "--normalize" : "--no-normalize", .. texts]);
        Assert.True(code == 0, error);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!["embedding"]!.ToJsonString()).ToArray();
    }

    [Fact]
    public async Task Embeddings_are_nbert_embeds_alone_or_batched_normalised_or_not()
    {
        string[] texts = ["A man is eating food.", "A man is riding a white horse on an enclosed ground.", "Hi"];
        await using var server = await RunningServer.Start("minilm");
        var info = (await server.Get("/info")).Json;
        Assert.Equal("{\"embedding\":{\"pooling\":\"mean\"}}", info["model_type"]!.ToJsonString());

        var raw = CliEmbeddings(normalize: false, texts);
        var normalized = CliEmbeddings(normalize: true, texts);
        var batch = (await server.Post("/embed", new { inputs = texts, normalize = false })).Json.AsArray();
        Assert.Equal(raw, batch.Select(v => v!.ToJsonString()));
        for (int i = 0; i < texts.Length; i++)
            Assert.Equal(normalized[i], (await server.Post("/embed", new { inputs = texts[i] })).Json[0]!.ToJsonString());
        var openAi = (await server.Post("/v1/embeddings", new { input = texts })).Json["data"]!.AsArray();
        Assert.Equal(normalized, openAi.Select(d => d!["embedding"]!.ToJsonString()));
    }
}
