using NBert.IO;
using NBert.Modeling;

namespace NBert.Tests.IO;

/// <summary>The built-in all-MiniLM-L6-v2: converted once from its NuGet package into a cache that is
/// checked, repaired and safe under concurrent first use. One collection: the tests share the cache root.</summary>
[Collection("BuiltinModel")]
public sealed class BuiltinModelTests : TempDirectoryTest
{
    // Each test converts into its own cache root: the process-wide default is shared with other test classes.
    private string Resolve(string name) => BuiltinModels.Resolve(name, Temp("cache"));

    [Fact]
    public void Minilm_is_converted_once_and_then_loaded_from_the_cache()
    {
        string dir = Resolve("minilm");
        Assert.Equal(Path.Combine(Temp("cache"), "all-MiniLM-L6-v2"), dir);
        var written = File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors"));
        Assert.Equal(dir, Resolve("all-MiniLM-L6-v2"));
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors")));
        var model = BertPreTrainedModel.FromPretrained(dir);
        Assert.Equal((6, 384, 12), (model.Config.NumHiddenLayers, model.Config.HiddenSize, model.Config.NumAttentionHeads));
        Assert.Empty(Directory.GetDirectories(Temp("cache"), ".*")); // no temporary directory left
        // A directory, or a name that is not built in, resolves to itself.
        Assert.Equal(Fixtures.Path("model", "qa"), Resolve(Fixtures.Path("model", "qa")));
        Assert.Equal("some/other/model", Resolve("some/other/model"));
    }

    [Fact]
    public void A_damaged_cache_is_rebuilt()
    {
        string dir = Resolve("minilm");
        using (var f = File.OpenWrite(Path.Combine(dir, "model.safetensors"))) f.SetLength(1000);
        Assert.Equal(dir, Resolve("minilm"));
        using var st = new SafeTensorsFile(Path.Combine(dir, "model.safetensors"));
        Assert.Contains(st.Tensors, t => t.Name == "embeddings.word_embeddings.weight");
    }

    [Fact]
    public void Concurrent_first_uses_all_get_one_valid_cache()
    {
        var dirs = new string[4];
        Parallel.For(0, dirs.Length, new ParallelOptions { MaxDegreeOfParallelism = dirs.Length }, i => dirs[i] = Resolve("minilm"));
        Assert.Single(dirs.Distinct());
        Assert.Empty(BertPreTrainedModel.FromPretrained(dirs[0]).LoadReport!.Initialized);
        Assert.Empty(Directory.GetDirectories(Temp("cache"), ".*"));
    }

    [Fact]
    public void The_cli_names_it_minilm()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = NBert.Cli.Program.Run(["embed", "--model", "minilm", "--normalize", "--json", "A man is eating food."], new StringReader(""), output, error);
        Assert.True(code == 0, error.ToString());
        var vector = System.Text.Json.Nodes.JsonNode.Parse(output.ToString())!["embedding"]!.AsArray();
        Assert.Equal(384, vector.Count);
    }
}
