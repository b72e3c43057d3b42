using Google.Protobuf;
using NBert.IO;
using NBert.Modeling;
using Onnx;
using static NBert.Tests.Cli.Nbert;
using NBert.Schema;

namespace NBert.Tests.IO;

/// <summary>
/// A small ONNX BERT in the exporter's layout, built from the <c>model/encoder_only</c> fixture: named
/// embeddings, LayerNorm parameters and biases; unnamed [in, out] MatMul weights whose output feeds the Add
/// of the named bias; the attention's division by √d before the masked Softmax; Erf for exact GELU; LayerNorm's epsilon added
/// before its Sqrt. Small enough to import thousands of times (the fuzz tests do).
/// </summary>
internal static class TinyOnnx
{
    public static readonly Lazy<byte[]> Bytes = new(() => Build(new TinyExport()));

    /// <summary>The tiny export as another exporter would write it.</summary>
    public static byte[] Build(TinyExport variant)
    {
        string dir = Fixtures.Path("model", "encoder_only");
        var config = BertConfig.Load(Path.Combine(dir, "config.json"));
        using var weights = new SafeTensorsFile(Path.Combine(dir, "model.safetensors"));
        var graph = new GraphProto { Name = "tiny" };
        int unnamed = 0;
        TensorProto Tensor(string name, int[] shape, float[] values, bool half = false)
        {
            var t = new TensorProto { Name = name, DataType = (int)(half ? TensorProto.Types.DataType.Float16 : TensorProto.Types.DataType.Float) };
            t.Dims.AddRange(shape.Select(d => (long)d));
            t.RawData = half
                ? ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()))
                : ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            return t;
        }
        NodeProto Node(string op, string[] inputs, string output)
        {
            var n = new NodeProto { OpType = op, Name = $"{op}_{graph.Node.Count}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            graph.Node.Add(n);
            return n;
        }
        void Constant(string output, float value)
        {
            var n = new NodeProto { OpType = "Constant", Name = output };
            n.Output.Add(output);
            n.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = Tensor("", [], [value]) });
            graph.Node.Add(n);
        }
        void IntConstant(string output, long value)
        {
            var t = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64 };
            t.Dims.Add(1);
            t.Int64Data.Add(value);
            var n = new NodeProto { OpType = "Constant", Name = output };
            n.Output.Add(output);
            n.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t });
            graph.Node.Add(n);
        }
        foreach (var spec in BertArchitectures.Parameters(config, BertArchitecture.BertModel, variant.Pooler))
        {
            var info = weights.Info(spec.Name);
            var values = weights.ReadFloat32(spec.Name);
            string named = variant.Prefix + spec.Name;
            if (spec.Shape.Length == 2 && !spec.Name.StartsWith("embeddings.", StringComparison.Ordinal))
            {
                string prefix = spec.Name[..^".weight".Length];
                if (variant.Gemm)
                {
                    // A named [out, in] weight that Gemm reads transposed (transB = 1), the bias as its third input.
                    graph.Initializer.Add(Tensor(named, spec.Shape, values, variant.Float16));
                    Node("Gemm", [$"{prefix}.input", named, variant.Prefix + prefix + ".bias"], $"{prefix}.output")
                        .Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
                    continue;
                }
                // A linear weight: stored unnamed as [in, out] and found through the Add of its bias.
                int rows = spec.Shape[0], cols = spec.Shape[1];
                var transposed = new float[values.Length];
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) transposed[j * rows + i] = values[i * cols + j];
                string name = $"onnx::MatMul_{unnamed++}";
                graph.Initializer.Add(Tensor(name, [cols, rows], transposed, variant.Float16));
                Node("MatMul", [$"{prefix}.input", name], $"{prefix}.product");
                Node("Add", [variant.Prefix + prefix + ".bias", $"{prefix}.product"], $"{prefix}.output");
            }
            else
                graph.Initializer.Add(Tensor(named, info.Shape, values, variant.Float16));
        }
        switch (variant.Scale)
        {
            case "div": // transformers' eager attention: (Q Kᵀ) / √d, then the additive mask and the softmax
                Constant("sqrt_head_size", MathF.Sqrt(config.HeadSize));
                Node("MatMul", ["query", "key_t"], "scores");
                Node("Div", ["scores", "sqrt_head_size"], "scaled_scores");
                break;
            case "mul": // (Q Kᵀ) × 1/√d
                Constant("inverse_sqrt_head_size", 1 / MathF.Sqrt(config.HeadSize));
                Node("MatMul", ["query", "key_t"], "scores");
                Node("Mul", ["scores", "inverse_sqrt_head_size"], "scaled_scores");
                break;
            case "sdpa": // scaled_dot_product_attention's export: Q and Kᵀ each × d^-1/4 before their product
                Constant("quarter_scale", MathF.Pow(config.HeadSize, -0.25f));
                Node("Mul", ["query", "quarter_scale"], "query_scaled");
                Node("Mul", ["key_t", "quarter_scale"], "key_t_scaled");
                Node("MatMul", ["query_scaled", "key_t_scaled"], "scaled_scores");
                break;
            case "reshape": // no constant scale, but the reshape into [batch, sequence, heads, head size]
                IntConstant("heads", config.NumAttentionHeads);
                IntConstant("head_size", config.HeadSize);
                Node("Concat", ["batch", "sequence", "heads", "head_size"], "head_shape");
                Node("Reshape", ["query_flat", "head_shape"], "query");
                Node("MatMul", ["query", "key_t"], "scaled_scores");
                break;
        }
        Node("Add", ["scaled_scores", "additive_mask"], "masked_scores");
        Node("Softmax", ["masked_scores"], "probabilities");
        Node("Erf", ["gelu_input"], "gelu_erf");
        if (variant.LayerNormalization)
            Node("LayerNormalization", ["x", "gamma", "beta"], "normalized")
                .Attribute.Add(new AttributeProto { Name = "epsilon", Type = AttributeProto.Types.AttributeType.Float, F = (float)config.LayerNormEps });
        else
        {
            Constant("layer_norm_eps", (float)config.LayerNormEps);
            Node("Add", ["variance", "layer_norm_eps"], "variance_eps");
            Node("Sqrt", ["variance_eps"], "std");
        }
        var model = new ModelProto { IrVersion = variant.IrVersion, ProducerName = "nbert-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = variant.Opset });
        return model.ToByteArray();
    }
}

/// <summary>How an exporter may write the tiny BERT: with or without a pooler, a prefix on names (<c>bert.</c> of a head's
/// export), Gemm instead of MatMul + Add, half-precision weights, the attention's scale in one of its forms (<c>div</c>,
/// <c>mul</c>, <c>sdpa</c>, <c>reshape</c> for none but the heads' reshape, <c>none</c>), LayerNormalization as one op.</summary>
internal sealed record TinyExport(bool Pooler = true, string Prefix = "", bool Gemm = false, bool Float16 = false, string Scale = "div",
    bool LayerNormalization = false, long IrVersion = 8, long Opset = 14);

public sealed class OnnxImportTests : TempDirectoryTest
{
    [Fact]
    public void The_tiny_export_imports_to_the_fixtures_config_and_weights()
    {
        File.WriteAllBytes(Temp("tiny.onnx"), TinyOnnx.Bytes.Value);
        var result = OnnxImport.Read(Temp("tiny.onnx"));
        var expected = BertConfig.Load(Fixtures.Path("model", "encoder_only", "config.json"));
        var c = result.Config;
        Assert.Equal((expected.VocabSize, expected.HiddenSize, expected.NumHiddenLayers, expected.NumAttentionHeads, expected.IntermediateSize,
            expected.MaxPositionEmbeddings, expected.HiddenAct, expected.LayerNormEps),
            (c.VocabSize, c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.MaxPositionEmbeddings, c.HiddenAct, c.LayerNormEps));
        using var weights = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors"));
        foreach (var spec in BertArchitectures.Parameters(c, BertArchitecture.BertModel))
            Assert.Equal(weights.ReadFloat32(spec.Name), result.Parameters[spec.Name].Data);
    }

    public static readonly TheoryData<string> Exporters = ["no pooler", "bert. prefix", "gemm", "float16", "mul", "sdpa", "reshape", "layer normalization", "old ir"];

    private static TinyExport Variant(string name) => name switch
    {
        "no pooler" => new TinyExport(Pooler: false),
        "bert. prefix" => new TinyExport(Prefix: "bert."),
        "gemm" => new TinyExport(Gemm: true),
        "float16" => new TinyExport(Float16: true),
        "mul" => new TinyExport(Scale: "mul"),
        "sdpa" => new TinyExport(Scale: "sdpa"),
        "reshape" => new TinyExport(Scale: "reshape"),
        "layer normalization" => new TinyExport(LayerNormalization: true),
        _ => new TinyExport(IrVersion: 6, Opset: 11),
    };

    /// <summary>Each way an exporter may write the same BertModel gives the same config and weights (float16 weights:
    /// the fixture's rounded to half precision), and the model loads and runs; without a pooler it has none.</summary>
    [Theory, MemberData(nameof(Exporters))]
    public void Every_exporters_layout_imports_to_the_same_model(string exporter)
    {
        var variant = Variant(exporter);
        File.WriteAllBytes(Temp("tiny.onnx"), TinyOnnx.Build(variant));
        var result = OnnxImport.Read(Temp("tiny.onnx"));
        var expected = BertConfig.Load(Fixtures.Path("model", "encoder_only", "config.json"));
        var c = result.Config;
        Assert.Equal((expected.HiddenSize, expected.NumHiddenLayers, expected.NumAttentionHeads, expected.IntermediateSize, expected.HiddenAct, expected.LayerNormEps),
            (c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize, c.HiddenAct, c.LayerNormEps));
        Assert.Equal(variant.Pooler, result.HasPooler);
        Assert.Contains(result.Notes, n => n.StartsWith($"ONNX IR version {variant.IrVersion}, opset ai.onnx {variant.Opset}", StringComparison.Ordinal));
        using var weights = new SafeTensorsFile(Fixtures.Path("model", "encoder_only", "model.safetensors"));
        var specs = BertArchitectures.Parameters(c, BertArchitecture.BertModel, variant.Pooler);
        Assert.Equal(specs.Select(p => p.Name).Order(), result.Parameters.Keys.Order());
        foreach (var spec in specs)
        {
            var values = weights.ReadFloat32(spec.Name);
            Assert.Equal(variant.Float16 ? values.Select(v => (float)(Half)v).ToArray() : values, result.Parameters[spec.Name].Data);
        }
        File.WriteAllText(Temp("vocab.txt"), string.Join("\n", Enumerable.Range(0, c.VocabSize).Select(i => i switch { 0 => "[PAD]", 1 => "[UNK]", 2 => "[CLS]", 3 => "[SEP]", 4 => "[MASK]", _ => $"w{i}" })));
        OnnxImport.ToDirectory(Temp("tiny.onnx"), Temp("vocab.txt"), Temp("model"));
        var model = BertPreTrainedModel.FromPretrained(Temp("model"));
        Assert.Equal(variant.Pooler, model.HasPoolingLayer);
        Assert.Empty(model.LoadReport!.Initialized);
        Assert.Equal(variant.Pooler, model.Forward(new ModelInputs(1, 3, [2, 7, 3], null, null)).PoolerOutput is not null);
    }

    [Fact]
    public void The_head_count_comes_from_heads_when_the_graph_does_not_show_it()
    {
        File.WriteAllBytes(Temp("tiny.onnx"), TinyOnnx.Build(new TinyExport(Scale: "none")));
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(Temp("tiny.onnx")));
        Assert.Contains("give it (--heads N)", ex.Message);
        Assert.Equal(4, OnnxImport.Read(Temp("tiny.onnx"), heads: 4).Config.NumAttentionHeads);
    }

    [Fact]
    public void A_fused_or_quantised_graph_is_refused_saying_which_export_to_use()
    {
        string path = Changed(g => g.Node.Add(new NodeProto { OpType = "SkipLayerNormalization", Name = "fused_1", Domain = "com.microsoft" }));
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains("'SkipLayerNormalization'", ex.Message);
        Assert.Contains("plain float export", ex.Message);
    }

    [Fact]
    public void The_weights_of_a_head_are_ignored_with_a_note()
    {
        string path = Changed(g =>
        {
            var classifier = new TensorProto { Name = "classifier.weight", DataType = (int)TensorProto.Types.DataType.Float };
            classifier.Dims.Add(2);
            classifier.Dims.Add(32);
            classifier.RawData = ByteString.CopyFrom(new byte[2 * 32 * 4]);
            g.Initializer.Add(classifier);
            var bias = new TensorProto { Name = "classifier.bias", DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(new byte[8]) };
            bias.Dims.Add(2);
            g.Initializer.Add(bias);
            var gemm = new NodeProto { OpType = "Gemm", Name = "classifier" };
            gemm.Input.AddRange(["pooled", "classifier.weight", "classifier.bias"]);
            gemm.Output.Add("logits");
            g.Node.Add(gemm);
        });
        var result = OnnxImport.Read(path);
        Assert.DoesNotContain(result.Parameters.Keys, k => k.StartsWith("classifier", StringComparison.Ordinal));
        Assert.Contains(result.Notes, n => n.Contains("not BertModel's ignored", StringComparison.Ordinal) && n.Contains("classifier", StringComparison.Ordinal));
    }

    [Fact]
    public void An_empty_file_is_refused_as_no_onnx_model()
    {
        File.WriteAllBytes(Temp("empty.onnx"), []);
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(Temp("empty.onnx")));
        Assert.Contains(Temp("empty.onnx"), ex.Message);
        Assert.Contains("holds no graph (the file is empty)", ex.Message);
        File.WriteAllText(Temp("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
        var (code, _, error) = Run("import-onnx", Temp("empty.onnx"), "--vocab", Temp("vocab.txt"), "--out", Temp("out"));
        Assert.Equal(2, code);
        Assert.Contains("holds no graph", error);
        Assert.False(Directory.Exists(Temp("out")));
    }

    /// <summary>The RoBERTa sequence classifier's encoder exported by NBert (names under <c>roberta.</c>, positions from
    /// padding), its body prefix renamed.</summary>
    private string RobertaExportRenamed(string prefix)
    {
        string path = Temp("roberta.onnx");
        OnnxExport.Save(BertPreTrainedModel.FromPretrained(Fixtures.Path("roberta", "seqcls")), path, new OnnxExportOptions { Task = OnnxTask.FeatureExtraction });
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        foreach (var t in model.Graph.Initializer.Where(t => t.Name.StartsWith("roberta.", StringComparison.Ordinal)))
        {
            string renamed = prefix + t.Name["roberta.".Length..];
            foreach (var node in model.Graph.Node)
                for (int i = 0; i < node.Input.Count; i++)
                    if (node.Input[i] == t.Name) node.Input[i] = renamed;
            t.Name = renamed;
        }
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    [Fact]
    public void A_family_nbert_cannot_tell_is_refused_naming_the_file_and_the_evidence()
    {
        // Another model's base prefix (ALBERT's): NBert cannot tell what computes the weights.
        string path = RobertaExportRenamed("albert.");
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("'albert' is not the base model of a family NBert imports (bert, distilbert, roberta, electra;", ex.Message);
        File.WriteAllText(Temp("vocab.txt"), "[PAD]\n[UNK]\n");
        var (code, _, error) = Run("import-onnx", path, "--vocab", Temp("vocab.txt"), "--out", Temp("out"));
        Assert.Equal(2, code);
        Assert.Contains("cannot tell what computes these weights", error);
        Assert.False(Directory.Exists(Temp("out")));

        // BERT's prefix over positions computed from padding (RoBERTa's): the evidence disagrees.
        path = RobertaExportRenamed("bert.");
        ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains("position ids are computed from the input ids compared with 1", ex.Message);
        Assert.Contains("initializers under bert.", ex.Message);
        Assert.Contains("cannot tell which family", ex.Message);

        // A body parameter no family has (BERT's relative position embeddings): refused, not ignored.
        path = Changed(g =>
        {
            var extra = g.Initializer.Single(t => t.Name == "embeddings.position_embeddings.weight").Clone();
            extra.Name = "encoder.layer.0.attention.self.distance_embedding.weight";
            g.Initializer.Add(extra);
        });
        ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains("'encoder.layer.0.attention.self.distance_embedding.weight' is not a parameter of any family NBert imports", ex.Message);
    }

    [Fact]
    public void A_robertas_vocab_json_travels_with_its_merges_and_one_without_them_is_refused()
    {
        string onnx = Temp("roberta.onnx");
        OnnxExport.Save(BertPreTrainedModel.FromPretrained(Fixtures.Path("roberta", "model")), onnx);
        OnnxImport.ToDirectory(onnx, Fixtures.Path("roberta", "model", "vocab.json"), Temp("out"));
        Assert.True(File.Exists(Path.Combine(Temp("out"), "merges.txt")));
        var tokenizer = NBert.Tokenization.BertTokenizer.FromPretrained(Temp("out"));
        Assert.Equal(38, tokenizer.MaxInputLength); // 40 positions less pad_token_id + 1
        const string text = "The whale swam past Ishmael.";
        Assert.Equal(NBert.Tokenization.BertTokenizer.FromPretrained(Fixtures.Path("roberta", "model")).Encode(text).InputIds, tokenizer.Encode(text).InputIds);

        Directory.CreateDirectory(Temp("lone"));
        File.Copy(Fixtures.Path("roberta", "model", "vocab.json"), Path.Combine(Temp("lone"), "vocab.json"));
        var ex = Assert.Throws<MissingFileException>(() => OnnxImport.ToDirectory(onnx, Path.Combine(Temp("lone"), "vocab.json"), Temp("out2")));
        Assert.Contains("needs its merges.txt beside it", ex.Message);
        Assert.False(Directory.Exists(Temp("out2")));
    }

    [Fact]
    public void The_tiny_export_is_told_bert_by_its_names_and_its_positions()
    {
        File.WriteAllBytes(Temp("tiny.onnx"), TinyOnnx.Bytes.Value);
        var result = OnnxImport.Read(Temp("tiny.onnx"));
        Assert.Equal(ModelFamily.Bert, result.Config.Family);
        Assert.Contains("model_type bert, from the initializer names (bert, roberta alike) and the position ids counted from 0", result.Notes);
    }

    /// <summary>The tiny export with one change made to its parsed graph.</summary>
    private string Changed(Action<GraphProto> change)
    {
        var model = ModelProto.Parser.ParseFrom(TinyOnnx.Bytes.Value);
        change(model.Graph);
        string path = Temp("changed.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    public static readonly TheoryData<string, string> Broken = new()
    {
        { "rank-1 embeddings", "embeddings.word_embeddings.weight has shape [128000]" },
        { "huge layer index", "does not name an encoder layer" },
        { "external data", "external data" },
        { "short raw data", "not a whole number of float32 values" },
        { "dimension beyond an int", "has dimensions [4000, 8589934592]" },
        { "values that do not fill the shape", "holds 128000 values for shape [4000, 33]" },
        { "a Div with one input", "" },
        { "no MatMul bias", "feeds no Add of a named bias" },
        { "duplicate initializer", "same key" },
    };

    [Theory, MemberData(nameof(Broken))]
    public void A_broken_graph_is_refused_naming_the_file(string change, string message)
    {
        string path = Changed(g =>
        {
            var words = g.Initializer.Single(t => t.Name == "embeddings.word_embeddings.weight");
            switch (change)
            {
                case "rank-1 embeddings": words.Dims.Clear(); words.Dims.Add(4000 * 32); break;
                case "huge layer index":
                    var extra = g.Initializer.Single(t => t.Name == "encoder.layer.1.output.dense.bias").Clone();
                    extra.Name = "encoder.layer.99999999999.output.dense.bias";
                    g.Initializer.Add(extra);
                    break;
                case "external data": words.DataLocation = TensorProto.Types.DataLocation.External; break;
                case "short raw data": words.RawData = ByteString.CopyFrom(new byte[7]); break;
                case "dimension beyond an int": words.Dims[1] = 1L << 33; break;
                case "values that do not fill the shape": words.Dims[1] = 33; break;
                case "a Div with one input": g.Node.Single(n => n.OpType == "Div").Input.RemoveAt(1); break;
                case "no MatMul bias": g.Node.Remove(g.Node.First(n => n.OpType == "Add" && n.Input[0].EndsWith(".bias", StringComparison.Ordinal))); break;
                case "duplicate initializer": g.Initializer.Add(words.Clone()); break;
            }
        });
        var ex = Assert.Throws<NBertException>(() => OnnxImport.Read(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains(message, ex.Message);
    }
}
