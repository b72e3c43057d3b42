using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using NBert.Tests.Cli;

namespace NBert.Tests.Server;

/// <summary>The built-in snowflake-arctic-embed-xs behind a server, started once for the class.</summary>
public sealed class ArcticXsServer : IAsyncLifetime
{
    internal RunningServer Server { get; private set; } = null!;
    public async Task InitializeAsync() => Server = await RunningServer.Start("arctic-xs");
    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// <c>nbert serve --model arctic-xs</c>, a retrieval model with a <c>query</c> prompt and a 512-token limit: TEI's
/// <c>prompt_name</c> gives <c>nbert embed --prompt-name</c>'s vectors, the model is named by its Hub id, and the longest
/// input <c>/tokenize</c> takes is tokenized in one pass.
/// </summary>
public sealed class ArcticXsServerTests(ArcticXsServer arctic) : IClassFixture<ArcticXsServer>
{
    private RunningServer Server => arctic.Server;

    private static string[] CliEmbeddings(params string[] args)
    {
        var (code, output, error) = Nbert.Run(["embed", "--model", "arctic-xs", "--json", .. args]);
        Assert.True(code == 0, error);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonNode.Parse(line)!["embedding"]!.ToJsonString()).ToArray();
    }

    [Fact]
    public async Task Prompt_name_gives_nbert_embeds_vectors_with_that_prompt()
    {
        string[] texts = ["which birds cannot fly?", "Penguins are flightless birds."];
        var queries = CliEmbeddings(["--prompt-name", "query", .. texts]);
        var plain = CliEmbeddings(texts);
        Assert.NotEqual(queries, plain);

        var prompted = (await Server.Post("/embed", new { inputs = texts, prompt_name = "query" })).Json.AsArray();
        Assert.Equal(queries, prompted.Select(v => v!.ToJsonString()));
        Assert.Equal(plain, (await Server.Post("/embed", new { inputs = texts })).Json.AsArray().Select(v => v!.ToJsonString()));
        Assert.Equal(queries[0], (await Server.Post("/embed", new { inputs = texts[0], prompt_name = "query" })).Json[0]!.ToJsonString());

        // /embed_all and /similarity take it too; /tokenize shows the prompted text's tokens, with its offsets.
        var all = (await Server.Post("/embed_all", new { inputs = texts[0], prompt_name = "query" })).Json[0]!.AsArray();
        var tokens = (await Server.Post("/tokenize", new { inputs = texts[0], prompt_name = "query" })).Json[0]!.AsArray();
        Assert.Equal(tokens.Count, all.Count);
        Assert.Equal("represent", tokens[1]!["text"]!.GetValue<string>().ToLowerInvariant());
        Assert.Equal(0, tokens[1]!["start"]!.GetValue<int>());
        var similarity = (await Server.Post("/similarity", new { inputs = new { source_sentence = texts[0], sentences = new[] { texts[1] } }, parameters = new { prompt_name = "query" } })).Json;
        // The cosine of the vectors as pooled (TEI's /similarity does not normalise first).
        var raw = CliEmbeddings(["--no-normalize", "--prompt-name", "query", .. texts]).Select(v => ServerRouteTests.Floats(JsonNode.Parse(v)!)).ToArray();
        Assert.Equal(NBert.Pipelines.SentenceEmbeddings.CosineSimilarity(raw[0], raw[1]), similarity[0]!.GetValue<float>());
    }

    [Fact]
    public async Task An_unknown_prompt_name_is_teis_validation_error_naming_the_models_prompts()
    {
        string message = (await Server.Post("/embed", new { inputs = "x", prompt_name = "passage" })).Error(413, "Validation");
        Assert.Equal("Input validation error: `prompt_name` is 'passage', which is not one of the model's prompts (query)", message);
        (await Server.Post("/embed_all", new { inputs = "x", prompt_name = "passage" })).Error(413, "Validation");
        (await Server.Post("/tokenize", new { inputs = "x", prompt_name = "passage" })).Error(413, "Validation");
        (await Server.Post("/similarity", new { inputs = new { source_sentence = "x", sentences = new[] { "y" } }, parameters = new { prompt_name = "passage" } })).Error(413, "Validation");
        var reply = await Server.Post("/embed", "{\"inputs\": \"x\", \"prompt_name\": 5}");
        Assert.StartsWith("Failed to deserialize the JSON body into the target type: prompt_name", reply.Error(422, "Tokenizer"));
    }

    [Fact]
    public async Task The_model_is_named_by_its_hub_id()
    {
        Assert.Equal("Snowflake/snowflake-arctic-embed-xs", (await Server.Get("/info")).Json["model_id"]!.GetValue<string>());
        Assert.Equal("Snowflake/snowflake-arctic-embed-xs", (await Server.Post("/v1/embeddings", new { input = "x" })).Json["model"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_longest_input_tokenize_takes_is_tokenized_in_one_pass_with_teis_character_offsets()
    {
        // 512 tokens x 250 characters: the most /tokenize takes. Emoji make UTF-16 offsets and characters differ.
        int limit = (await Server.Get("/info")).Json["max_input_length"]!.GetValue<int>() * 250;
        Assert.Equal(128_000, limit);
        var sb = new StringBuilder();
        for (int i = 0; sb.Length < limit * 2; i++) sb.Append(i % 3 == 0 ? "birds 😀 " : "fly, ");
        var runes = sb.ToString().EnumerateRunes().Take(limit).ToArray();
        string text = string.Concat(runes.Select(r => r.ToString()));
        Assert.Equal(limit, runes.Length);
        Assert.True(text.Length > limit);

        var clock = Stopwatch.StartNew();
        var reply = await Server.Post("/tokenize", new { inputs = text });
        var elapsed = clock.Elapsed;
        var tokens = reply.Json[0]!.AsArray();
        Assert.True(tokens.Count > 40_000, $"{tokens.Count} tokens");
        // TEI's offsets: start and stop count characters, and the token's text is the input's characters between them.
        foreach (var token in tokens.Where(t => !t!["special"]!.GetValue<bool>()))
        {
            int start = token!["start"]!.GetValue<int>(), stop = token["stop"]!.GetValue<int>();
            Assert.Equal(string.Concat(runes[start..stop].Select(r => r.ToString())), token["text"]!.GetValue<string>());
        }
        Assert.Equal(Array.FindLastIndex(runes, r => !Rune.IsWhiteSpace(r)) + 1, tokens[^2]!["stop"]!.GetValue<int>()); // the last token ends the text
        // Mapping each token's offsets by counting the text before it took 26 s for this text; one pass takes a
        // fraction of a second. The bound is generous for a busy machine, far below the quadratic cost.
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"/tokenize took {elapsed.TotalSeconds:F1} s for {limit} characters");
    }
}
