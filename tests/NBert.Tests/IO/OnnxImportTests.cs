using Google.Protobuf;
using NBert.IO;
using NBert.Modeling;
using Onnx;
using static NBert.Tests.Cli.Nbert;

namespace NBert.Tests.IO;

/// <summary>
/// A small ONNX BERT in the exporter's layout, built from the <c>model/encoder_only</c> fixture: named
/// embeddings, LayerNorm parameters and biases; unnamed [in, out] MatMul weights whose output feeds the Add
/// of the named bias; the attention's division by √d before the masked Softmax; Erf for exact GELU; LayerNorm's epsilon added
/// before its Sqrt. Small enough to import thousands of times (the fuzz tests do).
/// </summary>
internal static class TinyOnnx
{
    public static readonly Lazy<byte[]> Bytes = new(Build);

    private static byte[] Build()
    {
        string dir = Fixtures.Path("model", "encoder_only");
        var config = BertConfig.Load(Path.Combine(dir, "config.json"));
        using var weights = new SafeTensorsFile(Path.Combine(dir, "model.safetensors"));
        var graph = new GraphProto { Name = "tiny" };
        int unnamed = 0;
        TensorProto Tensor(string name, int[] shape, float[] values)
        {
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            t.Dims.AddRange(shape.Select(d => (long)d));
            t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            return t;
        }
        void Node(string op, string[] inputs, string output)
        {
            var n = new NodeProto { OpType = op, Name = $"{op}_{graph.Node.Count}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            graph.Node.Add(n);
        }
        void Constant(string output, float value)
        {
            var n = new NodeProto { OpType = "Constant", Name = output };
            n.Output.Add(output);
            n.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = Tensor("", [], [value]) });
            graph.Node.Add(n);
        }
        foreach (var spec in BertArchitectures.Parameters(config, BertArchitecture.BertModel))
        {
            var info = weights.Info(spec.Name);
            var values = weights.ReadFloat32(spec.Name);
            if (spec.Shape.Length == 2 && !spec.Name.StartsWith("embeddings.", StringComparison.Ordinal))
            {
                // A linear weight: stored unnamed as [in, out] and found through the Add of its bias.
                int rows = spec.Shape[0], cols = spec.Shape[1];
                var transposed = new float[values.Length];
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) transposed[j * rows + i] = values[i * cols + j];
                string name = $"onnx::MatMul_{unnamed++}", prefix = spec.Name[..^".weight".Length];
                graph.Initializer.Add(Tensor(name, [cols, rows], transposed));
                Node("MatMul", [$"{prefix}.input", name], $"{prefix}.product");
                Node("Add", [$"{prefix}.bias", $"{prefix}.product"], $"{prefix}.output");
            }
            else
                graph.Initializer.Add(Tensor(spec.Name, info.Shape, values));
        }
        Constant("sqrt_head_size", MathF.Sqrt(config.HeadSize));
        Node("Div", ["scores", "sqrt_head_size"], "scaled_scores");
        Node("Add", ["scaled_scores", "additive_mask"], "masked_scores");
        Node("Softmax", ["masked_scores"], "probabilities");
        Node("Erf", ["gelu_input"], "gelu_erf");
        Constant("layer_norm_eps", (float)config.LayerNormEps);
        Node("Add", ["variance", "layer_norm_eps"], "variance_eps");
        Node("Sqrt", ["variance_eps"], "std");
        var model = new ModelProto { IrVersion = 8, ProducerName = "nbert-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 14 });
        return model.ToByteArray();
    }
}

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
