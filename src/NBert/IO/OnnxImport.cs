using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Google.Protobuf;
using NBert.Tensors;
using Onnx;
using NBert.Schema;

namespace NBert.IO;

/// <summary>
/// Recovers a transformers BERT checkpoint from an ONNX export of <c>BertModel</c>, whichever exporter wrote it (IR and
/// opset versions are only noted). Named initializers keep their names, less any prefix before <c>embeddings.</c>,
/// <c>encoder.</c> or <c>pooler.</c> (<c>bert.</c> of a head's export). Linear weights are found through the nodes that
/// use them: a MatMul reads [in, out] and a Gemm [out, in] unless <c>transB</c> is 0; an unnamed one is named from the
/// bias its output is added to (<c>X.bias</c> makes <c>X.weight</c>), and every weight is stored as transformers'
/// [out, in]. What the weights do not say is read off the graph: the head count from the reshape into
/// [batch, sequence, heads, head size], else from the attention's scale (a Div by √d or a Mul by 1/√d on the scores,
/// or by d^-1/4 on the query and the key before their product); the activation from its ops; LayerNorm's epsilon from
/// the Add before its Sqrt or a LayerNormalization's attribute. An export without <c>pooler.dense</c> weights is a
/// BertModel without a pooling layer. Where the exporter applies the attention mask does not matter: NBert applies
/// transformers' mask itself.
/// </summary>
public static class OnnxImport
{
    /// <summary>The imported model: its config, parameters by transformers name, and what was inferred how.</summary>
    public sealed record Result(BertConfig Config, Dictionary<string, FloatTensor> Parameters, IReadOnlyList<string> Notes)
    {
        /// <summary>Whether the export has a pooler (<c>pooler.dense</c>); without one the model is a BertModel
        /// without a pooling layer.</summary>
        public bool HasPooler => BertArchitectures.AddPoolingLayer(BertArchitecture.BertModel, Parameters.Keys);
    }

    /// <summary>Reads an ONNX export of a BERT encoder: its config and its parameters by transformers name.</summary>
    /// <param name="onnxPath">The .onnx file (weights inside it: external data is refused).</param>
    /// <param name="heads">The number of attention heads, for a graph that does not show it.</param>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    /// <exception cref="NBertException">The file is not ONNX, or not a BERT export NBert can read; the message names the file and says why.</exception>
    public static Result Read(string onnxPath, int? heads = null)
    {
        if (!File.Exists(onnxPath)) throw new MissingFileException($"{onnxPath}: no such ONNX file.", onnxPath);
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
            var result = Import(model.Graph, heads);
            string opsets = string.Join(", ", model.OpsetImport.Select(o => $"{(o.Domain is { Length: > 0 } d ? d : "ai.onnx")} {o.Version}"));
            string producer = model.ProducerName is { Length: > 0 } p ? $" from {NBertException.Quote(p)} {NBertException.Quote(model.ProducerVersion)}" : "";
            return result with { Notes = [$"ONNX IR version {model.IrVersion}, opset {opsets}{producer}", .. result.Notes] };
        }
        catch (NBertException e)
        {
            throw new NBertException($"{onnxPath}: {e.Message}", e);
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or ArgumentException or FormatException or OverflowException)
        {
            throw new NBertException($"{onnxPath}: {e.Message}", e);
        }
    }

    /// <summary>Imports an ONNX BERT and writes an ordinary checkpoint directory (config.json,
    /// model.safetensors, vocab.txt, tokenizer_config.json) that NBert and transformers load.</summary>
    public static Result ToDirectory(string onnxPath, string vocabPath, string directory, int? heads = null, bool doLowerCase = true)
    {
        if (!File.Exists(vocabPath)) throw new MissingFileException($"{vocabPath}: no such vocabulary.", vocabPath);
        var result = Read(onnxPath, heads);
        using var files = new StagedFiles(directory);
        files.Copy("vocab.txt", vocabPath);
        files.WriteAllText("tokenizer_config.json",
            $"{{\n  \"do_lower_case\": {(doLowerCase ? "true" : "false")},\n  \"model_max_length\": {result.Config.MaxPositionEmbeddings}\n}}\n");
        Checkpoint.StageModel(files, result.Config, BertArchitecture.BertModel,
            BertArchitectures.Parameters(result.Config, BertArchitecture.BertModel, result.HasPooler), result.Parameters);
        files.Commit();
        return result;
    }

    /// <summary>Fused or quantised operators: their weights are packed in layouts that are not BERT's parameters.</summary>
    private static readonly HashSet<string> Unsupported = new(StringComparer.Ordinal)
    {
        "Attention", "MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization", "BiasGelu", "FusedMatMul",
        "MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear", "QLinearMatMul", "MatMulNBits", "QAttention",
    };

    /// <summary>The parameter name an initializer stands for: the name from <c>embeddings.</c>, <c>encoder.</c> or
    /// <c>pooler.</c> on (so <c>bert.encoder...</c> is <c>encoder...</c>); null for anything else.</summary>
    private static string? ParameterName(string name)
    {
        if (!name.EndsWith(".weight", StringComparison.Ordinal) && !name.EndsWith(".bias", StringComparison.Ordinal)) return null;
        foreach (var section in (ReadOnlySpan<string>)["embeddings.", "encoder.", "pooler."])
        {
            if (name.StartsWith(section, StringComparison.Ordinal)) return name;
            int at = name.IndexOf("." + section, StringComparison.Ordinal);
            if (at >= 0) return name[(at + 1)..];
        }
        return null;
    }

    private static Result Import(GraphProto graph, int? heads)
    {
        if (graph.Node.FirstOrDefault(n => Unsupported.Contains(n.OpType)) is { } fused)
            throw new InvalidOperationException($"the graph uses the fused or quantised operator '{NBertException.Quote(fused.OpType)}' " +
                $"(node '{NBertException.Quote(fused.Name)}'), whose weights are not BERT's parameters: import the plain float export " +
                "(before ONNX Runtime's transformer optimisation or quantisation).");
        var initializers = graph.Initializer.ToDictionary(t => t.Name);
        var consumers = new Dictionary<string, List<NodeProto>>();
        foreach (var node in graph.Node)
            foreach (var input in node.Input)
                (consumers.TryGetValue(input, out var list) ? list : consumers[input] = new()).Add(node);
        var constants = new Dictionary<string, TensorProto>();
        foreach (var n in graph.Node)
            if (n.OpType == "Constant" && n.Output.Count > 0 && n.Attribute.FirstOrDefault(a => a.T is not null) is { } value)
                constants.TryAdd(n.Output[0], value.T);
        var producers = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node)
            foreach (var o in n.Output) producers.TryAdd(o, n);
        var notes = new List<string>();

        var parameters = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        var renamed = new List<string>();
        var headWeights = new List<string>(); // a head's (classifier, ...): not BertModel's
        foreach (var t in initializers.Values)
            if (ParameterName(t.Name) is not { } name)
            {
                if (t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal)) headWeights.Add(t.Name);
            }
            else
            {
                if (name != t.Name) renamed.Add(t.Name);
                if (!parameters.TryAdd(name, ToTensor(t)))
                    throw new InvalidOperationException($"two initializers stand for '{NBertException.Quote(name)}'.");
            }
        if (renamed.Count > 0) notes.Add($"{renamed.Count} initializer names shortened to transformers' (such as {NBertException.Quote(renamed[0])})");

        // Linear weights, from the nodes that multiply by them; stored as transformers' [out, in].
        int recovered = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Node.Where(n => n.OpType is "MatMul" or "Gemm"))
        {
            if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight) || weight.Dims.Count != 2 || !seen.Add(weight.Name)) continue;
            bool gemm = node.OpType == "Gemm";
            bool stored = gemm && node.Attribute.Any(a => a.Name == "transB" && a.I == 1); // [out, in] already
            string? name;
            if (weight.Name.EndsWith(".weight", StringComparison.Ordinal)) name = ParameterName(weight.Name);
            else
            {
                string? bias = gemm ? node.Input.ElementAtOrDefault(2)
                    : consumers.GetValueOrDefault(node.Output.FirstOrDefault() ?? "")?.Where(n => n.OpType == "Add").SelectMany(n => n.Input)
                        .FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && initializers.ContainsKey(i));
                if (bias is null || !bias.EndsWith(".bias", StringComparison.Ordinal))
                    throw new InvalidOperationException($"the {node.OpType} of weight '{NBertException.Quote(weight.Name)}' feeds no Add of a named bias, so its parameter name cannot be recovered.");
                name = ParameterName(bias) is { } b ? b[..^".bias".Length] + ".weight" : null;
                if (name is not null) recovered++;
                else headWeights.Add(bias[..^".bias".Length] + ".weight");
            }
            if (name is null) continue; // a head's weight (classifier, ...): not BertModel's
            var tensor = ToTensor(weight);
            parameters[name] = stored ? tensor : Transpose(tensor);
        }
        if (recovered > 0) notes.Add($"{recovered} unnamed linear weights named from their biases");

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

        var graphInfo = new GraphInfo(consumers, producers, constants, initializers);
        int headCount;
        if (heads is int given)
        {
            headCount = given;
            notes.Add($"{headCount} heads, as given");
        }
        else if (graphInfo.HeadsFromReshape(hidden) is int reshaped)
        {
            headCount = reshaped;
            notes.Add($"{headCount} heads, from the reshape of the attention into heads of {hidden / headCount}");
        }
        else if (graphInfo.HeadSizeFromScale(graph, hidden) is (int size, string how))
        {
            headCount = hidden / size;
            notes.Add($"{headCount} heads, from the attention's {how}");
        }
        else throw new InvalidOperationException("the number of attention heads is not in the graph: give it (--heads N).");

        var ops = graph.Node.Select(n => n.OpType).ToHashSet();
        var gelu = graph.Node.FirstOrDefault(n => n.OpType is "Gelu" or "FastGelu");
        string act = ops.Contains("Erf") ? "gelu"
            : gelu is not null ? (gelu.OpType == "FastGelu" || gelu.Attribute.Any(a => a.Name == "approximate" && a.S.ToStringUtf8() == "tanh") ? "gelu_new" : "gelu")
            : ops.Contains("Tanh") && ops.Contains("Pow") && graph.Node.Count(n => n.OpType == "Tanh") > 1 ? "gelu_new"
            : ops.Contains("Sigmoid") ? "silu" : ops.Contains("Relu") ? "relu" : "gelu";
        notes.Add($"hidden_act {act}, from the graph's ops");
        double eps = graph.Node.Where(n => n.OpType == "Add" && consumers.GetValueOrDefault(n.Output.FirstOrDefault() ?? "")?.Any(c => c.OpType == "Sqrt") == true)
            .Select(n => n.Input.Select(graphInfo.Scalar).FirstOrDefault(v => v is > 0 and < 1e-3))
            .FirstOrDefault(v => v is not null)
            ?? graph.Node.Where(n => n.OpType == "LayerNormalization")
                .Select(n => (double?)(n.Attribute.FirstOrDefault(a => a.Name == "epsilon") is { } a ? RoundTrip(a.F) : 1e-5)).FirstOrDefault()
            ?? 1e-12;
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
        bool pooler = BertArchitectures.AddPoolingLayer(BertArchitecture.BertModel, parameters.Keys);
        notes.Add(pooler ? "pooler: pooler.dense" : "no pooler (the export has no pooler.dense): a BertModel without a pooling layer");
        var specs = BertArchitectures.Parameters(config, BertArchitecture.BertModel, pooler);
        foreach (var spec in specs)
            if (!parameters.TryGetValue(spec.Name, out var t) || !t.Shape.SequenceEqual(spec.Shape))
                throw new InvalidOperationException($"the export has no '{spec.Name}' of shape [{string.Join(", ", spec.Shape)}].");
        var bert = specs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var other = parameters.Keys.Where(k => !bert.Contains(k)).ToList();
        foreach (var k in other) parameters.Remove(k);
        if (other.Concat(headWeights).Order(StringComparer.Ordinal).ToList() is { Count: > 0 } ignored)
            notes.Add($"{ignored.Count} weights that are not BertModel's ignored: {string.Join(", ", ignored.Take(5).Select(n => NBertException.Quote(n)))}{(ignored.Count > 5 ? ", ..." : "")}");
        return new Result(config, parameters, notes);
    }

    /// <summary>The graph's nodes by what they read and write, and its constant values.</summary>
    private sealed record GraphInfo(Dictionary<string, List<NodeProto>> Consumers, Dictionary<string, NodeProto> Producers,
        Dictionary<string, TensorProto> Constants, Dictionary<string, TensorProto> Initializers)
    {
        /// <summary>A small constant's values (a Constant node's or an initializer's), as doubles; null for anything else.</summary>
        public double[]? Values(string name)
        {
            var t = Constants.GetValueOrDefault(name) ?? Initializers.GetValueOrDefault(name);
            if (t is null || t.Dims.Count > 1 || t.Dims.Count == 1 && t.Dims[0] is < 1 or > 8) return null;
            int count = t.Dims.Count == 0 ? 1 : (int)t.Dims[0];
            var raw = t.RawData.Span;
            switch ((TensorProto.Types.DataType)t.DataType)
            {
                case TensorProto.Types.DataType.Float:
                    if (t.FloatData.Count == count) return t.FloatData.Select(v => RoundTrip(v)).ToArray();
                    return raw.Length == 4 * count ? MemoryMarshal.Cast<byte, float>(raw).ToArray().Select(v => RoundTrip(v)).ToArray() : null;
                case TensorProto.Types.DataType.Double:
                    if (t.DoubleData.Count == count) return t.DoubleData.ToArray();
                    return raw.Length == 8 * count ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : null;
                case TensorProto.Types.DataType.Int64:
                    if (t.Int64Data.Count == count) return t.Int64Data.Select(v => (double)v).ToArray();
                    return raw.Length == 8 * count ? MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => (double)v).ToArray() : null;
                case TensorProto.Types.DataType.Int32:
                    if (t.Int32Data.Count == count) return t.Int32Data.Select(v => (double)v).ToArray();
                    return raw.Length == 4 * count ? MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (double)v).ToArray() : null;
                default:
                    return null;
            }
        }

        public double? Scalar(string name) => Values(name) is [double v] ? v : null;

        /// <summary>The head count from a Reshape into [batch, sequence, heads, head size] (a constant shape, or a Concat
        /// of constants), where heads × head size is the hidden size; the count most reshapes agree on.</summary>
        public int? HeadsFromReshape(int hidden)
        {
            var found = new List<int>();
            foreach (var reshape in Consumers.Values.SelectMany(n => n).Where(n => n.OpType == "Reshape").Distinct())
            {
                if (reshape.Input.Count < 2) continue;
                double[]? shape = Values(reshape.Input[1]);
                if (shape is null && Producers.GetValueOrDefault(reshape.Input[1]) is { OpType: "Concat", Input.Count: 4 } concat)
                    shape = [.. concat.Input.Select(i => Values(i) is [double v] ? v : double.NaN)];
                if (shape is [_, _, double heads, double size] && heads >= 1 && size >= 1 && heads * size == hidden)
                    found.Add((int)heads);
            }
            return found.Count == 0 ? null : found.GroupBy(h => h).MaxBy(g => g.Count())!.Key;
        }

        /// <summary>The head size from the attention's scale: a scalar Div or Mul from which a Softmax is reached within a
        /// few nodes. After the query-key product the scale is 1/√d; before it (on the query and the key, as
        /// scaled_dot_product_attention is exported) each side carries d^-1/4.</summary>
        public (int Size, string How)? HeadSizeFromScale(GraphProto graph, int hidden)
        {
            foreach (var node in graph.Node.Where(n => n.OpType is "Div" or "Mul" && n.Input.Count == 2 && n.Output.Count > 0))
            {
                double? v = Scalar(node.Input[1]) ?? Scalar(node.Input[0]);
                if (v is not > 0 || ReachesSoftmax(node.Output[0]) is not bool beforeProduct) continue;
                double scale = node.OpType == "Div" ? 1 / v.Value : v.Value; // what the scores are multiplied by
                double d = beforeProduct ? Math.Pow(scale, -4) : Math.Pow(scale, -2);
                int size = (int)Math.Round(d);
                if (size >= 1 && Math.Abs(d - size) < 1e-3 * size && hidden % size == 0)
                    return (size, $"{(node.OpType == "Div" ? "division" : "multiplication")} by {v.Value:G6} {(beforeProduct ? "of the query and the key" : "of the scores")} (head size {size})");
            }
            return null;
        }

        /// <summary>Whether a Softmax is reached from <paramref name="output"/> through at most three MatMul, Add, Where,
        /// Transpose or Cast nodes: null when not, else whether a MatMul (the query-key product) came first.</summary>
        private bool? ReachesSoftmax(string output)
        {
            var frontier = new List<(string Name, bool ThroughMatMul)> { (output, false) };
            for (int hop = 0; hop < 4 && frontier.Count > 0; hop++)
            {
                var next = new List<(string, bool)>();
                foreach (var (name, throughMatMul) in frontier)
                    foreach (var c in Consumers.GetValueOrDefault(name) ?? [])
                    {
                        if (c.OpType == "Softmax") return throughMatMul;
                        if (c.OpType is "MatMul" or "Add" or "Where" or "Transpose" or "Cast" && c.Output.Count > 0)
                            next.Add((c.Output[0], throughMatMul || c.OpType == "MatMul"));
                    }
                frontier = next;
            }
            return null;
        }
    }

    /// <summary>The shortest decimal that round-trips the float32 (1e-12, not 9.99999996e-13): what the exporter wrote.</summary>
    private static double RoundTrip(float v) =>
        double.Parse(v.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    private static FloatTensor Param(Dictionary<string, FloatTensor> p, string name) =>
        p.GetValueOrDefault(name) ?? throw new InvalidOperationException($"no '{name}' in the export.");

    /// <summary>An initializer as float32: float32 as it is, float16 and bfloat16 (half-precision exports) widened.</summary>
    private static FloatTensor ToTensor(TensorProto t)
    {
        var type = (TensorProto.Types.DataType)t.DataType;
        if (type is not (TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16))
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' is not float32, float16 or bfloat16 (data type {t.DataType}).");
        if (t.Dims.Any(d => d is < 0 or > int.MaxValue))
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' has dimensions [{string.Join(", ", t.Dims)}].");
        var shape = t.Dims.Select(d => (int)d).ToArray();
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' is stored outside the file (external data), which is not supported.");
        float[] data;
        if (type == TensorProto.Types.DataType.Float)
        {
            if (t.FloatData.Count == 0 && t.RawData.Length % 4 != 0)
                throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' has {t.RawData.Length} raw bytes, not a whole number of float32 values.");
            data = t.FloatData.Count > 0 ? t.FloatData.ToArray() : MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        }
        else
        {
            // 16-bit values: in raw_data, or one per int32_data entry (ONNX's rule for 16-bit types).
            if (t.Int32Data.Count == 0 && t.RawData.Length % 2 != 0)
                throw new InvalidOperationException($"initializer '{NBertException.Quote(t.Name)}' has {t.RawData.Length} raw bytes, not a whole number of 16-bit values.");
            var bits = t.Int32Data.Count > 0 ? t.Int32Data.Select(v => (ushort)v).ToArray() : MemoryMarshal.Cast<byte, ushort>(t.RawData.Span).ToArray();
            data = type == TensorProto.Types.DataType.Float16
                ? bits.Select(b => (float)BitConverter.UInt16BitsToHalf(b)).ToArray()
                : bits.Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray();
        }
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
        throw new NBertException($"{assemblyPath}: no embedded resource ending in '{suffix}' (a damaged package?).");
    }
}
