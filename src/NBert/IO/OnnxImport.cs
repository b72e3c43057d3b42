using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Google.Protobuf;
using NBert.Modeling;
using NBert.Tensors;
using Onnx;

namespace NBert.IO;

/// <summary>
/// Recovers a transformers BERT checkpoint from an ONNX export of <c>BertModel</c>. Named initializers
/// keep their names. The exporter leaves linear weights unnamed ([in, out], as MatMul reads them): the
/// MatMul whose output feeds the Add of bias <c>X.bias</c> holds <c>X.weight</c>, transposed back to
/// [out, in]. What the weights do not say is read off the graph: the head size from the attention's
/// division by √d, the activation from its ops, LayerNorm's epsilon from the Add before its Sqrt.
/// </summary>
public static class OnnxImport
{
    /// <summary>The imported model: its config, parameters by transformers name, and what was inferred how.</summary>
    public sealed record Result(BertConfig Config, Dictionary<string, FloatTensor> Parameters, IReadOnlyList<string> Notes);

    public static Result Read(string onnxPath, int? heads = null)
    {
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"{onnxPath}: no such ONNX file.", onnxPath);
        ModelProto model;
        try
        {
            // Parsed from the bytes, not a stream: a length field then cannot ask for more than the file holds.
            model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnxPath));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new NBertException($"{onnxPath}: not an ONNX model ({e.Message}).", e);
        }
        // Protobuf reads an empty file (or any bytes without a graph field) as an empty message.
        if (model.Graph is null || model.Graph.Node.Count == 0 && model.Graph.Initializer.Count == 0)
            throw new NBertException($"{onnxPath}: not an ONNX model: it holds no graph{(new FileInfo(onnxPath).Length == 0 ? " (the file is empty)" : "")}.");
        try
        {
            return Import(model.Graph, heads);
        }
        catch (NBertException e)
        {
            throw new NBertException($"{onnxPath}: {e.Message}", e);
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or ArgumentException or FormatException)
        {
            throw new NBertException($"{onnxPath}: {e.Message}", e);
        }
    }

    /// <summary>Imports an ONNX BERT and writes an ordinary checkpoint directory (config.json,
    /// model.safetensors, vocab.txt, tokenizer_config.json) that NBert and transformers load.</summary>
    public static Result ToDirectory(string onnxPath, string vocabPath, string directory, int? heads = null, bool doLowerCase = true)
    {
        if (!File.Exists(vocabPath)) throw new FileNotFoundException($"{vocabPath}: no such vocabulary.", vocabPath);
        var result = Read(onnxPath, heads);
        var model = BertPreTrainedModel.Create(result.Config, BertArchitecture.BertModel, result.Parameters, null);
        using var files = new StagedFiles(directory);
        files.Copy("vocab.txt", vocabPath);
        files.WriteAllText("tokenizer_config.json",
            $"{{\n  \"do_lower_case\": {(doLowerCase ? "true" : "false")},\n  \"model_max_length\": {result.Config.MaxPositionEmbeddings}\n}}\n");
        model.SavePretrained(files);
        files.Commit();
        return result;
    }

    private static Result Import(GraphProto graph, int? heads)
    {
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var node in graph.Node)
            foreach (var input in node.Input)
                (consumers.TryGetValue(input, out var list) ? list : consumers[input] = new()).Add(node);
        var constants = graph.Node.Where(n => n.OpType == "Constant" && n.Attribute.Count > 0 && n.Attribute[0].T is not null)
            .ToDictionary(n => n.Output[0], n => n.Attribute[0].T);
        var producers = graph.Node.SelectMany(n => n.Output.Select(o => (o, n))).ToDictionary(x => x.o, x => x.n);
        var notes = new List<string>();

        var parameters = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        foreach (var t in initializers.Values)
            if (t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal))
                parameters[t.Name] = ToTensor(t);
        int recovered = 0;
        foreach (var matmul in graph.Node.Where(n => n.OpType == "MatMul"))
        {
            var weight = matmul.Input.Select(i => initializers.GetValueOrDefault(i)).FirstOrDefault(t => t is { Dims.Count: 2 });
            if (weight is null || parameters.ContainsKey(weight.Name)) continue;
            var bias = consumers.GetValueOrDefault(matmul.Output[0])?.Where(n => n.OpType == "Add")
                .SelectMany(n => n.Input).FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && initializers.ContainsKey(i))
                ?? throw new InvalidOperationException($"the MatMul of weight '{weight.Name}' feeds no Add of a named bias, so its parameter name cannot be recovered.");
            string name = bias[..^".bias".Length] + ".weight";
            parameters[name] = Transpose(ToTensor(weight));
            recovered++;
        }
        notes.Add($"{recovered} unnamed MatMul weights named from their biases and transposed to [out, in]");

        var words = parameters.GetValueOrDefault("embeddings.word_embeddings.weight")
            ?? throw new InvalidOperationException("no embeddings.word_embeddings.weight: not a BERT export.");
        if (words.Rank != 2) throw new InvalidOperationException($"embeddings.word_embeddings.weight has shape [{string.Join(", ", words.Shape)}], not [vocab, hidden].");
        int hidden = words.Shape[1];
        int layers = 0;
        foreach (var k in parameters.Keys.Where(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal)))
        {
            var parts = k.Split('.');
            if (parts.Length < 4 || !int.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer)
                || layer >= parameters.Count)
                throw new InvalidOperationException($"initializer '{NBertException.Quote(k)}' does not name an encoder layer of this export.");
            layers = Math.Max(layers, layer + 1);
        }

        // √(head size): the scalar the attention scores are divided by.
        int? headSize = graph.Node.Where(n => n.OpType == "Div")
            .Select(n => Scalar(n.Input[1], constants, initializers))
            .Where(v => v is > 1 and < 64 && Math.Abs(Math.Round(v.Value * v.Value) - v.Value * v.Value) < 1e-3)
            .Select(v => (int?)Math.Round(v!.Value * v.Value)).FirstOrDefault(d => hidden % d!.Value == 0);
        int headCount = heads ?? (headSize is int d ? hidden / d
            : throw new InvalidOperationException("the number of attention heads is not in the graph: give it (--heads N)."));
        notes.Add(heads is null ? $"{headCount} heads, from the attention's division by √{headSize}" : $"{headCount} heads, as given");

        var ops = graph.Node.Select(n => n.OpType).ToHashSet();
        string act = ops.Contains("Erf") ? "gelu" : ops.Contains("Tanh") && ops.Contains("Pow") && graph.Node.Count(n => n.OpType == "Tanh") > 1 ? "gelu_new"
            : ops.Contains("Sigmoid") ? "silu" : ops.Contains("Relu") ? "relu" : "gelu";
        notes.Add($"hidden_act {act}, from the graph's ops");
        double eps = graph.Node.Where(n => n.OpType == "Add" && consumers.GetValueOrDefault(n.Output[0])?.Any(c => c.OpType == "Sqrt") == true)
            .Select(n => n.Input.Select(i => Scalar(i, constants, initializers)).FirstOrDefault(v => v is > 0 and < 1e-3))
            .FirstOrDefault(v => v is not null) ?? 1e-12;
        notes.Add($"layer_norm_eps {eps:G3}");

        var config = new BertConfig
        {
            VocabSize = words.Shape[0],
            HiddenSize = hidden,
            NumHiddenLayers = layers,
            NumAttentionHeads = headCount,
            IntermediateSize = Param(parameters, "encoder.layer.0.intermediate.dense.bias").Shape[0],
            HiddenAct = act,
            MaxPositionEmbeddings = Param(parameters, "embeddings.position_embeddings.weight").Shape[0],
            TypeVocabSize = Param(parameters, "embeddings.token_type_embeddings.weight").Shape[0],
            LayerNormEps = eps,
            Architectures = [nameof(BertArchitecture.BertModel)],
        };
        config.Validate();
        BertArchitectures.EnsureFitsInMemory(config, BertArchitecture.BertModel);
        foreach (var spec in BertArchitectures.Parameters(config, BertArchitecture.BertModel))
            if (!parameters.TryGetValue(spec.Name, out var t) || !t.Shape.SequenceEqual(spec.Shape))
                throw new InvalidOperationException($"the export has no '{spec.Name}' of shape [{string.Join(", ", spec.Shape)}].");
        return new Result(config, parameters, notes);
    }

    private static FloatTensor Param(Dictionary<string, FloatTensor> p, string name) =>
        p.GetValueOrDefault(name) ?? throw new InvalidOperationException($"no '{name}' in the export.");

    private static double? Scalar(string name, Dictionary<string, TensorProto> constants, Dictionary<string, TensorProto> initializers)
    {
        var t = constants.GetValueOrDefault(name) ?? initializers.GetValueOrDefault(name);
        if (t is null || t.Dims.Aggregate(1L, (a, d) => a * d) != 1 || t.DataType != (int)TensorProto.Types.DataType.Float) return null;
        float v = t.FloatData.Count > 0 ? t.FloatData[0] : BitConverter.ToSingle(t.RawData.Span);
        // The shortest decimal that round-trips the float32 (1e-12, not 9.99999996e-13): what the exporter wrote.
        return double.Parse(v.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static FloatTensor ToTensor(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidOperationException($"initializer '{t.Name}' is not float32 (data type {t.DataType}).");
        if (t.Dims.Any(d => d is < 0 or > int.MaxValue))
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' has dimensions [{string.Join(", ", t.Dims)}].");
        var shape = t.Dims.Select(d => (int)d).ToArray();
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' is stored outside the file (external data), which is not supported.");
        if (t.FloatData.Count == 0 && t.RawData.Length % 4 != 0)
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' has {t.RawData.Length} raw bytes, not a whole number of float32 values.");
        var data = t.FloatData.Count > 0 ? t.FloatData.ToArray() : MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        long elements = shape.Contains(0) ? 0 : 1;
        foreach (int d in shape) elements = elements > data.Length ? elements : elements * d; // stops growing once past the data
        if (elements != data.Length)
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' holds {data.Length} values for shape [{string.Join(", ", shape)}].");
        return new FloatTensor(data, shape);
    }

    private static FloatTensor Transpose(FloatTensor t)
    {
        int rows = t.Shape[0], cols = t.Shape[1];
        var data = new float[t.Data.Length];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) data[j * rows + i] = t.Data[i * cols + j];
        return new FloatTensor(data, cols, rows);
    }
}

/// <summary>Reads resources embedded in a .NET assembly file without loading it (so none of its
/// dependencies, native or not, is needed).</summary>
public static class AssemblyResources
{
    /// <summary>The bytes of the manifest resource whose name ends with <paramref name="suffix"/>.</summary>
    public static byte[] Read(string assemblyPath, string suffix)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        if (!pe.HasMetadata) throw new NBertException($"{assemblyPath}: not a .NET assembly.");
        var metadata = pe.GetMetadataReader();
        int rva = pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress;
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            if (!metadata.GetString(resource.Name).EndsWith(suffix, StringComparison.Ordinal) || !resource.Implementation.IsNil) continue;
            var reader = pe.GetSectionData(rva + (int)resource.Offset).GetReader();
            return reader.ReadBytes(reader.ReadInt32());
        }
        throw new FileNotFoundException($"{assemblyPath}: no embedded resource ending in '{suffix}'.");
    }
}
