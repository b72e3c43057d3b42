using System.Runtime.CompilerServices;
using NBert.Cli;
using NBert.Hub;
using NBert.Pipelines;
using NBert.Tests.Server;

namespace NBert.Tests.Hub;

/// <summary>Issue 26 (1): a model's name is resolved once per command, with the command line's Hub settings; the
/// loaders and pipelines take the <see cref="ResolvedModel"/> without resolving again.</summary>
public sealed class ResolveOnceTests(FakeHubFixture fixture) : HubTest(fixture)
{
    private static (int Code, string Out, string Err, int Resolutions) RunCounting(HubSettings? settings, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var counter = new StrongBox<int>();
        ModelResolver.Counter.Value = counter;
        try
        {
            int code = Program.Run(args, new StringReader(""), output, error, settings);
            return (code, output.ToString(), error.ToString(), counter.Value);
        }
        finally
        {
            ModelResolver.Counter.Value = null;
        }
    }

    [Theory]
    [InlineData("fill-mask", "pretraining", new[] { "Paris is the [MASK] of France." })]
    [InlineData("classify", "seqcls", new[] { "A fine film." })]
    [InlineData("ner", "tokcls", new[] { "Barack Obama was born in Hawaii." })]
    [InlineData("qa", "qa", new[] { "Who was born?", "Barack Obama was born in Hawaii." })]
    [InlineData("nsp", "pretraining", new[] { "He went home.", "It was late." })]
    [InlineData("embed", "encoder_only", new[] { "A sentence." })]
    [InlineData("inspect", "seqcls", new string[0])]
    public void Each_command_resolves_its_model_once(string command, string model, string[] texts)
    {
        var r = RunCounting(null, [command, "--model", Model(model), .. texts]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(1, r.Resolutions);
    }

    [Fact]
    public void Tokenize_resolves_the_tokenizer_only_and_downloads_no_weights()
    {
        string repo = UniqueRepo("tokenize-only");
        Hub.AddModel(repo, Model("seqcls"));
        var output = new StringWriter();
        var error = new StringWriter();
        var counter = new StrongBox<int>();
        ModelResolver.Counter.Value = counter;
        int code;
        try
        {
            code = Program.Run(["tokenize", "--model", repo], new StringReader("{\"text\": \"Hello world\"}\n"), output, error, Settings());
        }
        finally
        {
            ModelResolver.Counter.Value = null;
        }
        Assert.True(code == 0, error.ToString());
        Assert.Contains("\"input_ids\"", output.ToString());
        Assert.Equal(1, counter.Value);
        var fetched = Hub.RequestsFor(repo).Select(q => q.File).Where(f => f.Length > 0).Distinct().ToList();
        Assert.DoesNotContain("model.safetensors", fetched);
        Assert.Contains(fetched, f => f is "tokenizer.json" or "vocab.txt");
    }

    [Fact]
    public void A_resolved_hub_model_names_its_repository_and_commit_and_the_embeddings_report_it()
    {
        string repo = UniqueRepo("resolved");
        string commit = Hub.AddModel(repo, Model("encoder_only"));
        var resolved = ModelResolver.ResolveModel(repo, Settings());
        Assert.Equal(repo, resolved.Repo);
        Assert.Equal(commit, resolved.Commit);
        Assert.Equal("main", resolved.Revision);
        Assert.Equal(repo, resolved.ModelId);
        Assert.True(File.Exists(Path.Combine(resolved.Directory, "model.safetensors")));
        using var embedder = SentenceEmbeddings.FromPretrained(resolved);
        Assert.Equal(repo, embedder.ModelId); // not the snapshot directory's name (its commit)
        Assert.Equal(repo, embedder.Metadata.DefaultModelId);
    }

    [Fact]
    public async Task The_server_resolves_with_the_hub_settings_it_is_given()
    {
        string repo = UniqueRepo("served");
        Hub.AddModel(repo, Model("encoder_only"));
        // Not the environment's Hub: only these settings know the fake one.
        await using var server = await RunningServer.Start(repo, o => o with { Hub = Settings() });
        var info = await server.Get("/info");
        Assert.Equal(repo, info.Json["model_id"]!.GetValue<string>());
    }
}
