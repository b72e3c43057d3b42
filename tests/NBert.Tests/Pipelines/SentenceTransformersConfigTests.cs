using System.Text.Json.Nodes;
using NBert.Modeling;
using NBert.Pipelines;
using NBert.Tokenization;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;
using NBert.Tasks;

namespace NBert.Tests.Pipelines;

/// <summary>
/// Each model's own pooling: sentence-transformers' files (modules.json, 1_Pooling/config.json, sentence_bert_config.json,
/// config_sentence_transformers.json), written for the built-ins and read for any model directory, by the embeddings API
/// and by <c>nbert embed</c> / <c>nbert similarity</c>.
/// </summary>
public sealed class SentenceTransformersConfigTests : TempDirectoryTest
{
    /// <summary>A copy of the tiny pretraining model with sentence-transformers' files as sentence-transformers writes them.</summary>
    private string StModel(string pooling, bool normalize, int? maxSeqLength = 64, string? extraModule = null)
    {
        string dir = Temp("st-model");
        Directory.CreateDirectory(Path.Combine(dir, "1_Pooling"));
        foreach (var f in Directory.GetFiles(Fixtures.Path("model", "pretraining"))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), overwrite: true);
        var modules = new JsonArray
        {
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" },
        };
        if (normalize) modules.Add(new JsonObject { ["idx"] = 2, ["name"] = "2", ["path"] = "2_Normalize", ["type"] = "sentence_transformers.models.Normalize" });
        if (extraModule is not null) modules.Add(new JsonObject { ["idx"] = 3, ["name"] = "3", ["path"] = "3_X", ["type"] = extraModule });
        File.WriteAllText(Path.Combine(dir, "modules.json"), modules.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "1_Pooling", "config.json"), $$"""
            {"word_embedding_dimension": 32, "pooling_mode_cls_token": {{(pooling == "cls" ? "true" : "false")}},
             "pooling_mode_mean_tokens": {{(pooling == "mean" ? "true" : "false")}}, "pooling_mode_max_tokens": {{(pooling == "max" ? "true" : "false")}},
             "pooling_mode_mean_sqrt_len_tokens": {{(pooling == "mean_sqrt_len" ? "true" : "false")}}, "pooling_mode_weightedmean_tokens": false,
             "pooling_mode_lasttoken": false, "include_prompt": true}
            """);
        if (maxSeqLength is int n) File.WriteAllText(Path.Combine(dir, "sentence_bert_config.json"), $$"""{"max_seq_length": {{n}}, "do_lower_case": false}""");
        return dir;
    }

    [Fact]
    public void The_builtins_carry_their_own_pooling()
    {
        var minilm = SentenceTransformersConfig.Read(PackageModel.MiniLm.Builtin)!;
        Assert.Equal((Pooling.Mean, true, 256), (minilm.Pooling, minilm.Normalize, minilm.MaxLength));
        Assert.Empty(minilm.Prompts);
        var arctic = SentenceTransformersConfig.Read(PackageModel.ArcticXs.Builtin)!;
        Assert.Equal((Pooling.Cls, true, 512), (arctic.Pooling, arctic.Normalize, arctic.MaxLength));
        Assert.Equal("Represent this sentence for searching relevant passages: ", arctic.Prompts["query"]);
        Assert.Null(arctic.DefaultPromptName);
        // The written files are sentence-transformers' own layout.
        var pooling = JsonNode.Parse(File.ReadAllText(Path.Combine(PackageModel.ArcticXs.Builtin, "1_Pooling", "config.json")))!;
        Assert.Equal(384, (int)pooling["word_embedding_dimension"]!);
        Assert.True((bool)pooling["pooling_mode_cls_token"]!);
        Assert.False((bool)pooling["pooling_mode_mean_tokens"]!);
        Assert.Equal(["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling", "sentence_transformers.models.Normalize"],
            JsonNode.Parse(File.ReadAllText(Path.Combine(PackageModel.ArcticXs.Builtin, "modules.json")))!.AsArray().Select(m => (string)m!["type"]!));
    }

    [Fact]
    public void A_directory_written_by_sentence_transformers_is_read_the_same_way()
    {
        string dir = StModel("max", normalize: false);
        var options = SentenceTransformersConfig.Read(dir)!;
        Assert.Equal((Pooling.Max, false, 64), (options.Pooling, options.Normalize, options.MaxLength));
        using var embedder = SentenceEmbeddings.FromPretrained(dir);
        Assert.Equal(options with { Prompts = embedder.Options.Prompts }, embedder.Options);
        // Max pooling without normalisation: what the same pipeline gives when told so explicitly.
        var tokenizer = BertTokenizer.FromPretrained(dir);
        var model = BertPreTrainedModel.FromPretrained(dir, BertArchitecture.BertModel);
        var told = new SentenceEmbeddings(tokenizer, model, new EmbeddingOptions { Pooling = Pooling.Max, Normalize = false, MaxLength = 64 });
        Assert.Equal(told.Embed("The man went to the store."), embedder.Embed("The man went to the store."));
        // A directory without the files has none: the defaults apply.
        Assert.Null(SentenceTransformersConfig.Read(Fixtures.Path("model", "pretraining")));
        Assert.Equal(new EmbeddingOptions().Pooling, SentenceEmbeddings.ModelOptions(Fixtures.Path("model", "pretraining")).Pooling);
    }

    [Theory]
    [InlineData("mean_sqrt_len", null, "pooling_mode_mean_sqrt_len_tokens is true")]
    [InlineData("none", null, "no pooling_mode_... is true")]
    [InlineData("cls", "sentence_transformers.models.Dense", "sentence_transformers.models.Dense")]
    public void What_nbert_does_not_compute_is_refused_naming_the_file_and_field(string pooling, string? extraModule, string message)
    {
        string dir = StModel(pooling, normalize: true, extraModule: extraModule);
        var ex = Assert.Throws<NBertException>(() => SentenceTransformersConfig.Read(dir));
        Assert.Contains(message, ex.Message);
        Assert.Contains(dir, ex.Message);
        var (code, _, error) = Run("embed", "--model", dir, "text");
        Assert.Equal(2, code);
        Assert.Contains(message, error);
    }

    [Fact]
    public void Bad_values_are_refused_naming_the_file()
    {
        string dir = StModel("cls", normalize: true);
        File.WriteAllText(Path.Combine(dir, "sentence_bert_config.json"), """{"max_seq_length": "long"}""");
        Assert.Contains("sentence_bert_config.json: max_seq_length must be a whole number", Assert.Throws<NBertException>(() => SentenceTransformersConfig.Read(dir)).Message);
        File.Delete(Path.Combine(dir, "sentence_bert_config.json"));
        File.WriteAllText(Path.Combine(dir, "config_sentence_transformers.json"), """{"prompts": {"query": "q: "}, "default_prompt_name": "passage"}""");
        Assert.Contains("default_prompt_name passage is not one of the prompts", Assert.Throws<NBertException>(() => SentenceTransformersConfig.Read(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "modules.json"), """{"not": "a list"}""");
        Assert.Contains("modules.json: not a list of modules", Assert.Throws<NBertException>(() => SentenceTransformersConfig.Read(dir)).Message);
        File.WriteAllText(Path.Combine(dir, "modules.json"), """[{"type": "sentence_transformers.models.Pooling", "path": "missing"}]""");
        Assert.Throws<MissingFileException>(() => SentenceTransformersConfig.Read(dir));
    }

    [Fact]
    public void Prompts_prefix_the_text_and_the_default_prompt_applies_when_none_is_named()
    {
        string dir = StModel("mean", normalize: true);
        File.WriteAllText(Path.Combine(dir, "config_sentence_transformers.json"), """{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "passage"}""");
        using var embedder = SentenceEmbeddings.FromPretrained(dir);
        var plain = new SentenceEmbeddings(embedder.Tokenizer, embedder.Model, embedder.Options with { DefaultPromptName = null });
        Assert.Equal(plain.Embed("query: penguins"), embedder.Embed(["penguins"], "query")[0]);
        Assert.Equal(plain.Embed("passage: penguins"), embedder.Embed("penguins"));
        Assert.Contains("no prompt 'other'", Assert.Throws<ArgumentException>(() => embedder.Embed(["x"], "other")).Message);
        var excluding = new SentenceEmbeddings(embedder.Tokenizer, embedder.Model, embedder.Options with { IncludePrompt = false });
        Assert.Contains("include_prompt false", Assert.Throws<NBertException>(() => excluding.Embed(["x"], "query")).Message);
    }

    [Fact]
    public void Embed_pools_as_the_model_says_unless_told_otherwise()
    {
        string dir = StModel("cls", normalize: true);
        static float[] Vector(string output) => JsonNode.Parse(output.Split('\n')[0])!["embedding"]!.AsArray().Select(v => (float)v!).ToArray();
        using var model = SentenceEmbeddings.FromPretrained(dir);
        var tokenizer = model.Tokenizer;
        float[] Expected(Pooling p, bool normalize) => new SentenceEmbeddings(tokenizer, model.Model, new EmbeddingOptions { Pooling = p, Normalize = normalize }).Embed("a text");

        var (code, output, error) = Run("embed", "--model", dir, "--json", "a text");
        Assert.True(code == 0, error);
        Assert.Equal(Expected(Pooling.Cls, true), Vector(output));
        Assert.Equal(Expected(Pooling.Cls, false), Vector(Run("embed", "--model", dir, "--no-normalize", "--json", "a text").Out));
        Assert.Equal(Expected(Pooling.Mean, true), Vector(Run("embed", "--model", dir, "--pooling", "mean", "--json", "a text").Out));
        // Without sentence-transformers' files: mean, not normalised (sentence-transformers' default for a plain model), unless --normalize.
        string plain = Fixtures.Path("model", "pretraining");
        Assert.Equal(Expected(Pooling.Mean, false), Vector(Run("embed", "--model", plain, "--json", "a text").Out));
        Assert.Equal(Expected(Pooling.Mean, true), Vector(Run("embed", "--model", plain, "--normalize", "--json", "a text").Out));
        (code, _, error) = Run("embed", "--model", dir, "--normalize", "--no-normalize", "a text");
        Assert.Equal(2, code);
        Assert.Contains("contradict", error);
        (code, _, error) = Run("embed", "--model", dir, "--prompt-name", "query", "a text");
        Assert.Equal(2, code);
        Assert.Contains("--prompt-name query: the model has no such prompt (it has none)", error);
    }

    [Fact]
    public void Arctic_xs_is_a_retrieval_model_whose_queries_carry_its_prompt()
    {
        // The README's promise: nbert embed --model arctic-xs gives the normalised [CLS] embedding of the float64 reference.
        var texts = Fixtures.Json("arctic", "arctic_ref.json")["texts"]!.AsArray().Select(t => (string)t!).ToList();
        int row = texts.IndexOf("A man is eating food.");
        using (var reference = new NBert.IO.SafeTensorsFile(Fixtures.Path("arctic", "arctic_ref.safetensors")))
        {
            var expected = reference.ReadFloat64("sentence_embedding").AsSpan(row * 384, 384).ToArray();
            var (code, output, error) = Run("embed", "--model", "arctic-xs", "--json", "A man is eating food.");
            Assert.True(code == 0, error);
            var vector = JsonNode.Parse(output)!["embedding"]!.AsArray().Select(v => (double)v!).ToArray();
            double worst = vector.Select((v, i) => Math.Abs(v - expected[i])).Max();
            Assert.True(worst <= 1e-5, $"nbert embed --model arctic-xs: max |difference| {worst:E2} from the float64 reference");
        }
        // similarity prefixes the query with arctic's query prompt, as its model card says: the same as --prompt-name query.
        File.WriteAllLines(Temp("corpus.txt"), ["Penguins are flightless birds of the southern hemisphere.", "The stock market fell today.", "A recipe for green tea ice cream."]);
        var (c, hits, err) = Run("similarity", "--model", "arctic-xs", "--query", "which birds cannot fly?", "--corpus", Temp("corpus.txt"), "--json");
        Assert.True(c == 0, err);
        var first = JsonNode.Parse(hits.Split('\n')[0])!;
        Assert.Equal(1, (int)first["line"]!);
        using var arctic = SentenceEmbeddings.FromPretrained("arctic-xs");
        var query = arctic.Embed(["which birds cannot fly?"], "query")[0];
        var document = arctic.Embed("Penguins are flightless birds of the southern hemisphere.");
        Assert.Equal(SentenceEmbeddings.CosineSimilarity(query, document), (float)first["score"]!, 5);
        Assert.Equal("Snowflake/snowflake-arctic-embed-xs", arctic.ModelId);
    }
}
