using NBert.Modeling;
using NBert.Schema;
using Onnx;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.Cli;

/// <summary><c>nbert export-onnx</c>: the folder it writes, the round trip through <c>nbert import-onnx</c>, and its
/// refusals (exit code 2, naming the option).</summary>
public sealed class ExportOnnxCommandTests : TempDirectoryTest
{
    private static Dictionary<string, int> Operators(string onnx) =>
        ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx)).Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());

    [Fact]
    public void Export_writes_the_folder_and_import_onnx_gives_back_the_same_weights()
    {
        string model = Fixtures.Path("model", "seqcls"), output = Temp("onnx");
        var (code, stdout, stderr) = Run("export-onnx", "--model", model, "--out", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("BertForSequenceClassification as text-classification, float32, opset 17", stdout);
        Assert.Contains("outputs: logits", stdout);
        foreach (string file in new[] { "model.onnx", "config.json", "vocab.txt", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), $"{file} is missing");
        Assert.Equal(["negative", "neutral", "positive"], BertConfig.Load(Path.Combine(output, "config.json")).Id2Label);

        (code, _, stderr) = Run("import-onnx", Path.Combine(output, "model.onnx"), "--vocab", Path.Combine(output, "vocab.txt"), "--out", Temp("imported"));
        Assert.True(code == 0, stderr);
        var original = BertPreTrainedModel.FromPretrained(model);
        var imported = BertPreTrainedModel.FromPretrained(Temp("imported"));
        Assert.Equal(BertArchitecture.BertModel, imported.Architecture);
        foreach (var (name, t) in imported.Parameters)
            Assert.True(original.Parameters[name].Data.AsSpan().SequenceEqual(t.Data), $"{name} differs after export-onnx and import-onnx");
        Assert.Equal(original.Parameters.Keys.Count(k => !k.StartsWith("classifier.", StringComparison.Ordinal)), imported.Parameters.Count);
    }

    [Theory]
    [InlineData("roberta", "RobertaModel", ModelFamily.Roberta)]
    [InlineData("distilbert", "DistilBertModel", ModelFamily.DistilBert)]
    [InlineData("electra", "ElectraModel", ModelFamily.Electra)]
    public void Import_onnx_reads_a_familys_export_folder_back_to_that_family(string family, string className, ModelFamily expected)
    {
        string model = Fixtures.Path(family, "model"), output = Temp("onnx");
        var (code, _, stderr) = Run("export-onnx", "--model", model, "--out", output);
        Assert.True(code == 0, stderr);
        // The export folder is the tokenizer: RoBERTa's vocab.json and merges.txt, DistilBERT's and ELECTRA's vocab.txt,
        // each with its config.
        (code, string stdout, stderr) = Run("import-onnx", Path.Combine(output, "model.onnx"), "--tokenizer", output, "--out", Temp("imported"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"a {className}, 2 layers, hidden 16, 2 heads", stdout);
        Assert.Contains($"model_type {family}, from the", stdout);
        Assert.Equal(family == "electra", stdout.Contains("vocabulary 4000, embeddings 8 projected to 16", StringComparison.Ordinal));
        var original = BertPreTrainedModel.FromPretrained(model);
        var imported = BertPreTrainedModel.FromPretrained(Temp("imported"));
        Assert.Equal((expected, original.Config.PadTokenId, original.Config.MaxSequenceLength), (imported.Config.Family, imported.Config.PadTokenId, imported.Config.MaxSequenceLength));
        foreach (var (name, t) in original.Parameters)
            Assert.True(imported.Parameters[name].Data.AsSpan().SequenceEqual(t.Data), $"{name} differs after export-onnx and import-onnx");
        Assert.Equal(original.Parameters.Count, imported.Parameters.Count);
    }

    [Fact]
    public void Auto_exports_a_sentence_transformers_model_as_sentence_embeddings_and_int8_quantizes()
    {
        string model = PackageModel.ArcticXs.Builtin, output = Temp("arctic");
        var (code, stdout, stderr) = Run("export-onnx", "--model", model, "--out", output, "--quantize", "int8-all");
        Assert.True(code == 0, stderr);
        Assert.Contains("BertModel as sentence-embeddings, int8-all", stdout);
        Assert.Contains("outputs: token_embeddings, sentence_embedding", stdout);
        Assert.Contains("pooling: cls, normalised", stdout);
        Assert.True(File.Exists(Path.Combine(output, "modules.json")));
        Assert.True(File.Exists(Path.Combine(output, "1_Pooling", "config.json")));
        var ops = Operators(Path.Combine(output, "model.onnx"));
        Assert.Equal(6 * 6, ops["MatMulInteger"]);
        Assert.Equal(ops["MatMulInteger"], ops["DynamicQuantizeLinear"] + 6 * 2); // query, key and value share one
    }

    [Fact]
    public void A_non_empty_out_needs_overwrite_and_the_model_directory_is_refused()
    {
        string model = Fixtures.Path("model", "qa"), output = Temp("onnx");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var (code, _, stderr) = Run("export-onnx", "--model", model, "--out", output);
        Assert.Equal(2, code);
        Assert.Contains("already holds files", stderr);
        Assert.False(File.Exists(Path.Combine(output, "model.onnx")));
        (code, _, stderr) = Run("export-onnx", "--model", model, "--out", output, "--overwrite");
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(output, "model.onnx")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
        (code, _, stderr) = Run("export-onnx", "--model", model, "--out", model, "--overwrite");
        Assert.Equal(2, code);
        Assert.Contains("is the model directory", stderr);
    }

    [Theory]
    [InlineData("--task", "fill-mask", "--task fill-mask: The fill-mask export needs a masked-LM head")]
    [InlineData("--task", "summarization", "summarization")]
    [InlineData("--opset", "16", "--opset must be between 17")]
    [InlineData("--quantize", "int4", "int4")]
    public void Bad_options_exit_2_naming_them(string option, string value, string message)
    {
        var (code, _, stderr) = Run("export-onnx", "--model", Fixtures.Path("model", "qa"), "--out", Temp("onnx"), option, value);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.False(Directory.Exists(Temp("onnx")));
    }

    [Fact]
    public void A_missing_model_exits_2()
    {
        var (code, _, stderr) = Run("export-onnx", "--model", Temp("nothing-here"), "--out", Temp("onnx"));
        Assert.Equal(2, code);
        Assert.Contains("nothing-here", stderr);
    }
}
