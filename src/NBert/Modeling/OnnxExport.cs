using System.Reflection;
using System.Runtime.InteropServices;
using Google.Protobuf;
using NBert.IO;
using NBert.Schema;
using NBert.Tensors;
using NBert.Tokenization;
using Onnx;

namespace NBert.Modeling;

/// <summary>What an ONNX export computes, by optimum's task names; each has its own outputs.</summary>
public enum OnnxTask
{
    /// <summary>The model's own head: <see cref="OnnxExport.TaskFor"/>.</summary>
    Auto,
    /// <summary>The encoder: <c>last_hidden_state</c>, and <c>pooler_output</c> when the model has a pooling layer.</summary>
    FeatureExtraction,
    /// <summary>The masked-LM head: <c>logits</c> [batch, sequence, vocab].</summary>
    FillMask,
    /// <summary>The sequence classifier: <c>logits</c> [batch, labels].</summary>
    TextClassification,
    /// <summary>The token classifier: <c>logits</c> [batch, sequence, labels].</summary>
    TokenClassification,
    /// <summary>The span head: <c>start_logits</c> and <c>end_logits</c> [batch, sequence].</summary>
    QuestionAnswering,
    /// <summary>The next-sentence head: <c>logits</c> [batch, 2].</summary>
    NextSentence,
    /// <summary>Both pre-training heads: <c>prediction_logits</c> [batch, sequence, vocab] and <c>seq_relationship_logits</c> [batch, 2];
    /// for ELECTRA, its discriminator's <c>logits</c> [batch, sequence].</summary>
    PreTraining,
    /// <summary>The encoder with sentence-transformers' pooling and normalisation: <c>token_embeddings</c> [batch, sequence,
    /// hidden] and <c>sentence_embedding</c> [batch, hidden].</summary>
    SentenceEmbeddings,
}

/// <summary>Which linear layers an ONNX export quantizes to int8.</summary>
public enum OnnxQuantization
{
    /// <summary>None: float32 weights.</summary>
    None,
    /// <summary>The attention's four linear layers of every encoder layer, the pooler and the heads; the feed-forward layers
    /// stay float32. Quantizing those too costs all-MiniLM-L6-v2 the most: its sentence embeddings fall to cosine 0.974 of
    /// the float32 ones on a short text, against 0.994 with them kept.</summary>
    Int8,
    /// <summary>Every linear layer, as <c>quantize_dynamic</c> does by default: the smallest file.</summary>
    Int8All,
}

/// <summary>How <see cref="OnnxExport"/> writes a model.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>What the graph computes; <see cref="OnnxTask.Auto"/> (the default) follows the model's architecture.</summary>
    public OnnxTask Task { get; init; } = OnnxTask.Auto;
    /// <summary>The ONNX opset, 17 (the default, the first with LayerNormalization) to 21.</summary>
    public int Opset { get; init; } = 17;
    /// <summary>Float32 weights (the default), or dynamic int8 quantization in the form ONNX Runtime's <c>quantize_dynamic</c>
    /// writes (DynamicQuantizeLinear, MatMulInteger with int8 weights per output channel, then the scales).</summary>
    public OnnxQuantization Quantization { get; init; }
    /// <summary>The pooling and normalisation of <see cref="OnnxTask.SentenceEmbeddings"/> (null: mean pooling, not normalised).</summary>
    public EmbeddingOptions? Embedding { get; init; }
}

/// <summary>
/// Writes a model as ONNX, in the graph optimum exports for BERT: inputs <c>input_ids</c>, <c>attention_mask</c> and
/// <c>token_type_ids</c> (int64, [batch_size, sequence_length]); embeddings as Gather and Add, LayerNormalization, attention
/// as MatMul and Softmax with transformers' additive mask ((1 - mask) × float32's minimum), linear layers as MatMul and Add,
/// GELU through Erf; the parameters as initializers named by their transformers keys, in transformers' shapes (a linear
/// weight [out, in] is transposed by a Transpose node, which ONNX Runtime folds when it loads the file). A model past 2 GB
/// keeps its weights in <c>model.onnx_data</c> beside the file (ONNX external data). The graph is built from the model's
/// config and parameters, so <see cref="IO.OnnxImport"/> reads the float32 export back to the same weights.
/// </summary>
public static class OnnxExport
{
    /// <summary>The task <see cref="OnnxTask.Auto"/> stands for with a model: its head's (feature extraction for a
    /// BertModel).</summary>
    public static OnnxTask TaskFor(BertPreTrainedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Architecture switch
        {
            BertArchitecture.BertForPreTraining => OnnxTask.PreTraining,
            BertArchitecture.BertForMaskedLM => OnnxTask.FillMask,
            BertArchitecture.BertForNextSentencePrediction => OnnxTask.NextSentence,
            BertArchitecture.BertForSequenceClassification => OnnxTask.TextClassification,
            BertArchitecture.BertForTokenClassification => OnnxTask.TokenClassification,
            BertArchitecture.BertForQuestionAnswering => OnnxTask.QuestionAnswering,
            _ => OnnxTask.FeatureExtraction,
        };
    }

    /// <summary>The graph's output names for a task, in order.</summary>
    /// <exception cref="ArgumentException">The task needs a head the model does not have.</exception>
    public static IReadOnlyList<string> OutputNames(BertPreTrainedModel model, OnnxTask task)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Resolve(model, task) switch
        {
            OnnxTask.FeatureExtraction => model.HasPoolingLayer ? ["last_hidden_state", "pooler_output"] : ["last_hidden_state"],
            OnnxTask.QuestionAnswering => ["start_logits", "end_logits"],
            OnnxTask.PreTraining => model.Config.Family == ModelFamily.Electra ? ["logits"] : ["prediction_logits", "seq_relationship_logits"],
            OnnxTask.SentenceEmbeddings => ["token_embeddings", "sentence_embedding"],
            _ => ["logits"],
        };
    }

    /// <summary>Writes the model as ONNX to <paramref name="path"/> (and its weights to <c>PATH_data</c> beside it when
    /// they pass 2 GB).</summary>
    /// <exception cref="ArgumentException">The task needs a head the model does not have, or the options are out of range.</exception>
    public static void Save(BertPreTrainedModel model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        using var files = new StagedFiles(directory);
        Stage(model, files, Path.GetFileName(path), options ?? new(), ExternalDataThreshold);
        files.Commit();
    }

    /// <summary>
    /// Writes a folder as optimum does: <c>model.onnx</c> (with <c>model.onnx_data</c> past 2 GB), <c>config.json</c>, the
    /// tokenizer's files, and for <see cref="OnnxTask.SentenceEmbeddings"/> sentence-transformers' files (modules.json,
    /// 1_Pooling/config.json, ...), so that the folder says what it holds. Written as one unit.
    /// </summary>
    /// <exception cref="ArgumentException">The task needs a head the model does not have, or the options are out of range.</exception>
    public static void ToDirectory(BertPreTrainedModel model, BertTokenizer tokenizer, string directory, OnnxExportOptions? options = null) =>
        ToDirectory(model, tokenizer, directory, options ?? new(), ExternalDataThreshold);

    internal static void ToDirectory(BertPreTrainedModel model, BertTokenizer tokenizer, string directory, OnnxExportOptions options, long externalDataThreshold)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        model.EnsureTokenizerFits(tokenizer);
        var task = Resolve(model, options.Task);
        using var files = new StagedFiles(directory);
        tokenizer.SavePretrained(files);
        Stage(model, files, ModelFileName, options with { Task = task }, externalDataThreshold);
        files.WriteAllText("config.json", (model.Config with { Architectures = [FamilyNames.ClassName(model.Config.Family, model.Architecture)] }).ToJson() + "\n");
        if (task == OnnxTask.SentenceEmbeddings)
        {
            var embedding = options.Embedding ?? new EmbeddingOptions();
            int maxLength = Math.Min(embedding.MaxLength ?? model.Config.MaxSequenceLength, model.Config.MaxSequenceLength);
            SentenceTransformersConfig.Write(files, embedding, maxLength, model.Config.HiddenSize);
        }
        files.Commit();
    }

    /// <summary>The exported model's file name in a folder, as optimum names it.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>Past this many bytes of weights, they go to external data: protobuf refuses a message of 2 GB or more,
    /// and the graph itself needs some room.</summary>
    internal const long ExternalDataThreshold = (2L << 30) - (64L << 20);

    private static void Stage(BertPreTrainedModel model, StagedFiles files, string fileName, OnnxExportOptions options, long externalDataThreshold)
    {
        var proto = Build(model, options);
        string dataName = fileName + "_data";
        long total = proto.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        if (total > externalDataThreshold)
        {
            // Every initializer of 1 KiB or more moves out, each at an offset aligned to 4 KiB (so it can be memory-mapped).
            var moved = proto.Graph.Initializer.Where(t => t.RawData.Length >= 1024).ToList();
            long offset = 0;
            var offsets = new List<(TensorProto Tensor, long Offset, ByteString Data)>();
            foreach (var t in moved)
            {
                offsets.Add((t, offset, t.RawData));
                offset = (offset + t.RawData.Length + 4095) / 4096 * 4096;
            }
            files.Write(dataName, stream =>
            {
                long at = 0;
                foreach (var (_, start, data) in offsets)
                {
                    if (start > at) stream.Write(new byte[start - at]);
                    data.WriteTo(stream);
                    at = start + data.Length;
                }
            });
            foreach (var (t, start, data) in offsets)
            {
                t.RawData = ByteString.Empty;
                t.DataLocation = TensorProto.Types.DataLocation.External;
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = start.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = data.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            }
        }
        else files.RemoveOnCommit(dataName); // a stale data file of an earlier, larger export
        files.Write(fileName, proto.WriteTo);
    }

    private static OnnxTask Resolve(BertPreTrainedModel model, OnnxTask task)
    {
        if (task == OnnxTask.Auto) return TaskFor(model);
        if (!Enum.IsDefined(task)) throw new ArgumentException($"Unknown task {task}.", nameof(task));
        var a = model.Architecture;
        // BERT's pre-training head holds a masked-LM and a next-sentence head; ELECTRA's (its discriminator) neither.
        bool bertPreTraining = a == BertArchitecture.BertForPreTraining && model.Config.Family != ModelFamily.Electra;
        bool fits = task switch
        {
            OnnxTask.FeatureExtraction or OnnxTask.SentenceEmbeddings => true, // every head has the encoder
            OnnxTask.FillMask => a == BertArchitecture.BertForMaskedLM || bertPreTraining,
            OnnxTask.NextSentence => a == BertArchitecture.BertForNextSentencePrediction || bertPreTraining,
            OnnxTask.PreTraining => a == BertArchitecture.BertForPreTraining,
            OnnxTask.TextClassification => a == BertArchitecture.BertForSequenceClassification,
            OnnxTask.TokenClassification => a == BertArchitecture.BertForTokenClassification,
            _ => a == BertArchitecture.BertForQuestionAnswering,
        };
        if (!fits)
            throw new ArgumentException($"The {ToolName(task)} export needs {Needed(task)}, and the model is a {FamilyNames.ClassName(model.Config.Family, a)}: load the model as that head " +
                "(fine-tune one first), or export another task.", nameof(task));
        return task;
    }

    /// <summary>The task as optimum (and <c>nbert export-onnx --task</c>) names it.</summary>
    public static string ToolName(OnnxTask task) => task switch
    {
        OnnxTask.Auto => "auto",
        OnnxTask.FeatureExtraction => "feature-extraction",
        OnnxTask.FillMask => "fill-mask",
        OnnxTask.TextClassification => "text-classification",
        OnnxTask.TokenClassification => "token-classification",
        OnnxTask.QuestionAnswering => "question-answering",
        OnnxTask.NextSentence => "next-sentence",
        OnnxTask.PreTraining => "pretraining",
        OnnxTask.SentenceEmbeddings => "sentence-embeddings",
        _ => task.ToString(),
    };

    private static string Needed(OnnxTask task) => task switch
    {
        OnnxTask.FillMask => "a masked-LM head (BertForMaskedLM or BertForPreTraining)",
        OnnxTask.NextSentence => "a next-sentence head (BertForNextSentencePrediction or BertForPreTraining)",
        OnnxTask.PreTraining => "a pre-training head (BertForPreTraining, ElectraForPreTraining)",
        OnnxTask.TextClassification => "a sequence classification head (BertForSequenceClassification)",
        OnnxTask.TokenClassification => "a token classification head (BertForTokenClassification)",
        _ => "a question-answering head (BertForQuestionAnswering)",
    };

    /// <summary>The ONNX model for <paramref name="options"/> (the task resolved), weights inside.</summary>
    internal static ModelProto Build(BertPreTrainedModel model, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (model.Quantization != Quantization.None)
            throw new ArgumentException($"A {model.Quantization} model cannot be exported: quantizing released its float32 weights. Export the float32 model, " +
                "with OnnxExportOptions.Quantization for an int8 file.", nameof(model));
        if (!Enum.IsDefined(options.Quantization)) throw new ArgumentException($"Unknown quantization {options.Quantization}.", nameof(options));
        if (options.Opset is < 17 or > 21)
            throw new ArgumentException($"Opset {options.Opset} is not supported: 17 (the first with LayerNormalization) to 21 are.", nameof(options));
        var task = Resolve(model, options.Task);
        var g = new GraphBuilder(model, options);
        g.Body(task, options.Embedding ?? new EmbeddingOptions());
        var proto = new ModelProto
        {
            // The IR version each opset came with (ONNX's versioning table): a runtime that reads the opset reads the IR.
            IrVersion = options.Opset switch { <= 18 => 8, <= 20 => 9, _ => 10 },
            ProducerName = "nbert",
            ProducerVersion = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0",
            Graph = g.Graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
        return proto;
    }

    /// <summary>A [out, in] weight quantized by NBert's int8 rule (<see cref="Int8Quantization"/>: symmetric, per output
    /// channel, ±127), so the export holds the same integers and scales as NBert's int8 engine; returned transposed to
    /// [in, out], what MatMulInteger multiplies by, with the scale of each output channel.</summary>
    private static (sbyte[] Transposed, float[] Scales) QuantizeRows(string name, float[] w, int outputs, int inputs)
    {
        sbyte[] rows;
        float[] scales;
        try
        {
            (rows, scales) = Int8Quantization.QuantizeWeight(w, outputs, inputs);
        }
        catch (ArgumentException e)
        {
            throw new NBertException($"{name}: {e.Message}", e); // a NaN or infinity in the weights
        }
        var q = new sbyte[rows.Length];
        for (int o = 0; o < outputs; o++)
            for (int i = 0; i < inputs; i++) q[i * outputs + o] = rows[o * inputs + i];
        return (q, scales);
    }

    /// <summary>Builds the graph node by node, naming nodes by the module they belong to (as torch's exporter does).</summary>
    private sealed class GraphBuilder(BertPreTrainedModel model, OnnxExportOptions options)
    {
        public GraphProto Graph { get; } = new() { Name = "main_graph" };
        private readonly BertConfig c = model.Config;
        private readonly int opset = options.Opset;
        private readonly HashSet<string> initializers = new(StringComparer.Ordinal);
        private readonly HashSet<string> nodeNames = new(StringComparer.Ordinal);
        private readonly Dictionary<string, string> transposed = new(StringComparer.Ordinal);
        // One DynamicQuantizeLinear per quantized input (query, key and value share theirs), as quantize_dynamic writes.
        private readonly Dictionary<string, NodeProto> quantized = new(StringComparer.Ordinal);

        private static TypeProto Type(TensorProto.Types.DataType type, params object[] dims)
        {
            var shape = new TensorShapeProto();
            foreach (var d in dims)
                shape.Dim.Add(d is string name ? new TensorShapeProto.Types.Dimension { DimParam = name } : new TensorShapeProto.Types.Dimension { DimValue = (int)d });
            return new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } };
        }

        private void Input(string name) =>
            Graph.Input.Add(new ValueInfoProto { Name = name, Type = Type(TensorProto.Types.DataType.Int64, "batch_size", "sequence_length") });

        private void Output(string value, string name, params object[] dims)
        {
            // An output named as the task's; an Identity where the value already has another name.
            if (value != name) Node("Identity", [value], name, name);
            Graph.Output.Add(new ValueInfoProto { Name = name, Type = Type(TensorProto.Types.DataType.Float, dims) });
        }

        /// <summary>Adds a node; returns its (first) output, named after the node.</summary>
        private string Node(string op, string[] inputs, string scope, string? output = null, params AttributeProto[] attributes)
        {
            string name = $"{scope}/{op}";
            for (int n = 1; !nodeNames.Add(name); n++) name = $"{scope}/{op}_{n}";
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.AddRange(inputs);
            node.Output.Add(output ?? $"{name}_output_0");
            node.Attribute.AddRange(attributes);
            Graph.Node.Add(node);
            return node.Output[0];
        }

        private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };
        private static AttributeProto Ints(string name, params long[] values)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(values);
            return a;
        }
        private static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

        private string Tensor<T>(string name, TensorProto.Types.DataType type, ReadOnlySpan<T> values, params long[] shape) where T : struct
        {
            if (!initializers.Add(name)) return name;
            var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values)) };
            t.Dims.AddRange(shape);
            Graph.Initializer.Add(t);
            return name;
        }

        private string FloatScalar(string name, float value) => Tensor<float>(name, TensorProto.Types.DataType.Float, [value]);
        private string Int64s(string name, params long[] values) => Tensor(name, TensorProto.Types.DataType.Int64, (ReadOnlySpan<long>)values, values.Length);
        private string Int64Scalar(string name, long value) => Tensor<long>(name, TensorProto.Types.DataType.Int64, [value]);

        /// <summary>A parameter as an initializer named by its transformers key (with <c>bert.</c> in a head's model).</summary>
        private string Parameter(string name)
        {
            var t = model.ParametersToRead[name];
            return Tensor(FamilyNames.CheckpointName(name, model.Architecture, c.Family), TensorProto.Types.DataType.Float, (ReadOnlySpan<float>)t.Data,
                t.Shape.Select(d => (long)d).ToArray());
        }

        private string Unsqueeze(string x, long axis, string scope) => Node("Unsqueeze", [x, Int64s($"axes_{axis}", axis)], scope);

        /// <summary>y = x · Wᵀ + b for a transformers [out, in] weight: MatMul by the transposed weight and Add of the bias, or
        /// when <see cref="OnnxExportOptions.Quantization"/> covers it, quantize_dynamic's form.</summary>
        private string Linear(string x, string weight, string bias, string scope)
        {
            var w = model.ParametersToRead[weight];
            int outputs = w.Shape[0], inputs = w.Shape[1];
            string product;
            bool feedForward = weight.Contains(".intermediate.dense.", StringComparison.Ordinal) || weight.Contains(".output.dense.", StringComparison.Ordinal)
                && !weight.Contains(".attention.", StringComparison.Ordinal);
            if (options.Quantization == OnnxQuantization.Int8All || options.Quantization == OnnxQuantization.Int8 && !feedForward)
            {
                string key = FamilyNames.CheckpointName(weight, model.Architecture, c.Family);
                var (q, scales) = QuantizeRows(weight, w.Data, outputs, inputs);
                string qw = Tensor(key + "_quantized", TensorProto.Types.DataType.Int8, (ReadOnlySpan<sbyte>)q, inputs, outputs);
                string scale = Tensor(key + "_scale", TensorProto.Types.DataType.Float, (ReadOnlySpan<float>)scales, outputs);
                // Symmetric: every channel's zero point is 0 (MatMulInteger takes one per column of B).
                string zero = Tensor(key + "_zero_point", TensorProto.Types.DataType.Int8, (ReadOnlySpan<sbyte>)new sbyte[outputs], outputs);
                if (!quantized.TryGetValue(x, out var quantize))
                {
                    quantized[x] = quantize = new NodeProto { OpType = "DynamicQuantizeLinear", Name = $"{scope}/DynamicQuantizeLinear" };
                    nodeNames.Add(quantize.Name);
                    quantize.Input.Add(x);
                    quantize.Output.AddRange([$"{x}_quantized", $"{x}_scale", $"{x}_zero_point"]);
                    Graph.Node.Add(quantize);
                }
                string integer = Node("MatMulInteger", [quantize.Output[0], qw, quantize.Output[2], zero], scope);
                string asFloat = Node("Cast", [integer], scope, null, Int("to", (long)TensorProto.Types.DataType.Float));
                string scales2 = Node("Mul", [quantize.Output[1], scale], scope + "/scale");
                product = Node("Mul", [asFloat, scales2], scope);
            }
            else
            {
                string name = Parameter(weight);
                if (!transposed.TryGetValue(name, out var t))
                    transposed[name] = t = Node("Transpose", [name], scope + "/weight", null, Ints("perm", 1, 0));
                product = Node("MatMul", [x, t], scope);
            }
            return Node("Add", [product, Parameter(bias)], scope);
        }

        private string LayerNorm(string x, string prefix, string scope) =>
            Node("LayerNormalization", [x, Parameter(prefix + ".weight"), Parameter(prefix + ".bias")], scope, null,
                Int("axis", -1), Float("epsilon", (float)c.LayerNormEps));

        /// <summary>hidden_act as transformers' modules compute it, in the forms ONNX Runtime fuses (Gelu, FastGelu).</summary>
        private string Activation(string x, string scope, Schema.Activation? activation = null)
        {
            switch (activation ?? c.Activation)
            {
                case Schema.Activation.Gelu: // x · 0.5 · (1 + erf(x / √2))
                    string erf = Node("Erf", [Node("Div", [x, FloatScalar("sqrt_2", MathF.Sqrt(2f))], scope)], scope);
                    string one = Node("Add", [erf, FloatScalar("one", 1f)], scope);
                    return Node("Mul", [Node("Mul", [x, one], scope), FloatScalar("half", 0.5f)], scope);
                case Schema.Activation.GeluTanh: // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
                    string cube = Node("Pow", [x, FloatScalar("three", 3f)], scope);
                    string inner = Node("Add", [x, Node("Mul", [cube, FloatScalar("gelu_coefficient", 0.044715f)], scope)], scope);
                    string tanh = Node("Tanh", [Node("Mul", [inner, FloatScalar("sqrt_2_over_pi", 0.7978845608028654f)], scope)], scope);
                    return Node("Mul", [Node("Mul", [x, FloatScalar("half", 0.5f)], scope), Node("Add", [tanh, FloatScalar("one", 1f)], scope)], scope);
                case Schema.Activation.Relu:
                    return Node("Relu", [x], scope);
                case Schema.Activation.Tanh:
                    return Node("Tanh", [x], scope);
                default: // x · sigmoid(x)
                    return Node("Mul", [x, Node("Sigmoid", [x], scope)], scope);
            }
        }

        /// <summary>The inputs, the encoder and the task's head and outputs.</summary>
        public void Body(OnnxTask task, EmbeddingOptions embedding)
        {
            Input("input_ids");
            Input("attention_mask");
            if (c.HasTokenTypes) Input("token_type_ids"); // DistilBERT takes none, as its transformers export
            int h = c.HiddenSize, heads = c.NumAttentionHeads, d = c.HeadSize;

            // Embeddings: word + position + token type, LayerNorm. The positions 0..sequence-1 are counted along each row
            // (a cumulative sum of ones shaped as input_ids), so shape inference keeps [batch_size, sequence_length] on every
            // hidden state: ONNX Runtime fuses a residual Add and LayerNorm into SkipLayerNormalization only when it can see
            // the two inputs have one shape (a slice of transformers' position_ids buffer would make the length unknown).
            string words = Node("Gather", [Parameter("embeddings.word_embeddings.weight"), "input_ids"], "/embeddings/word_embeddings");
            string ones = Node("Add", [Node("Mul", ["input_ids", Int64Scalar("zero_int", 0)], "/embeddings"), Int64Scalar("one_int", 1)], "/embeddings");
            string positionIds = Node("Sub", [Node("CumSum", [ones, Int64Scalar("index_1", 1)], "/embeddings"), Int64Scalar("one_int", 1)], "/embeddings");
            if (c.PositionsFromPadding)
            {
                // RoBERTa: cumsum(ids != pad) · (ids != pad) + pad (transformers' create_position_ids_from_input_ids).
                string pad = Int64Scalar("padding_idx", c.PadTokenId);
                string real = Node("Cast", [Node("Not", [Node("Equal", ["input_ids", pad], "/embeddings")], "/embeddings")], "/embeddings", null,
                    Int("to", (long)TensorProto.Types.DataType.Int64));
                positionIds = Node("Add", [Node("Mul", [Node("CumSum", [real, Int64Scalar("index_1", 1)], "/embeddings"), real], "/embeddings"), pad], "/embeddings");
            }
            string position = Node("Gather", [Parameter("embeddings.position_embeddings.weight"), positionIds], "/embeddings/position_embeddings");
            string sum = c.HasTokenTypes
                ? Node("Add", [Node("Add", [words, Node("Gather", [Parameter("embeddings.token_type_embeddings.weight"), "token_type_ids"],
                    "/embeddings/token_type_embeddings")], "/embeddings"), position], "/embeddings")
                : Node("Add", [words, position], "/embeddings");
            string x = LayerNorm(sum, "embeddings.LayerNorm", "/embeddings/LayerNorm");
            // ELECTRA: embedding_size to hidden_size.
            if (c.ProjectsEmbeddings) x = Linear(x, "embeddings_project.weight", "embeddings_project.bias", "/embeddings_project");

            // transformers' extended mask: (1 - mask) × float32's minimum, [batch, 1, 1, sequence], added to every score.
            string mask4 = Node("Unsqueeze", [Unsqueeze("attention_mask", 1, "/mask"), Int64s("axes_2", 2)], "/mask");
            string maskFloat = Node("Cast", [mask4], "/mask", null, Int("to", (long)TensorProto.Types.DataType.Float));
            string additive = Node("Mul", [Node("Sub", [FloatScalar("one", 1f), maskFloat], "/mask"), FloatScalar("float_min", float.MinValue)], "/mask");

            string headShape = Int64s("head_shape", 0, 0, heads, d), hiddenShape = Int64s("hidden_shape", 0, 0, h);
            string sqrtD = FloatScalar("sqrt_head_size", MathF.Sqrt(d));
            for (int i = 0; i < c.NumHiddenLayers; i++)
            {
                string l = $"encoder.layer.{i}", s = $"/encoder/layer.{i}";
                string Heads(string part, long[] perm) =>
                    Node("Transpose", [Node("Reshape", [Linear(x, $"{l}.attention.self.{part}.weight", $"{l}.attention.self.{part}.bias", $"{s}/attention/self/{part}"), headShape],
                        $"{s}/attention/self/{part}")], $"{s}/attention/self/{part}", null, Ints("perm", perm));
                string q = Heads("query", [0, 2, 1, 3]), kT = Heads("key", [0, 2, 3, 1]), v = Heads("value", [0, 2, 1, 3]);
                string scope = $"{s}/attention/self";
                string scores = Node("Div", [Node("MatMul", [q, kT], scope), sqrtD], scope);
                string probabilities = Node("Softmax", [Node("Add", [scores, additive], scope)], scope, null, Int("axis", -1));
                string context = Node("Reshape", [Node("Transpose", [Node("MatMul", [probabilities, v], scope)], scope, null, Ints("perm", 0, 2, 1, 3)), hiddenShape], scope);
                string attended = Linear(context, $"{l}.attention.output.dense.weight", $"{l}.attention.output.dense.bias", $"{s}/attention/output/dense");
                string attention = LayerNorm(Node("Add", [attended, x], $"{s}/attention/output"), $"{l}.attention.output.LayerNorm", $"{s}/attention/output/LayerNorm");
                string inner = Activation(Linear(attention, $"{l}.intermediate.dense.weight", $"{l}.intermediate.dense.bias", $"{s}/intermediate/dense"),
                    $"{s}/intermediate/intermediate_act_fn");
                string output = Linear(inner, $"{l}.output.dense.weight", $"{l}.output.dense.bias", $"{s}/output/dense");
                x = LayerNorm(Node("Add", [output, attention], $"{s}/output"), $"{l}.output.LayerNorm", $"{s}/output/LayerNorm");
            }

            // The pooler: the first token's hidden state through dense and tanh (DistilBERT's pre_classifier: ReLU; ELECTRA's
            // classifier.dense: GELU).
            string Pooled() => Activation(Linear(Node("Gather", [x, Int64Scalar("index_0", 0)], "/pooler", null, Int("axis", 1)),
                "pooler.dense.weight", "pooler.dense.bias", "/pooler/dense"), "/pooler/activation", c.PoolerActivation);
            // ELECTRA's discriminator: dense, hidden_act, dense_prediction, one logit per token.
            string DiscriminatorLogits()
            {
                const string s = "/discriminator_predictions";
                string dense = Activation(Linear(x, "discriminator_predictions.dense.weight", "discriminator_predictions.dense.bias", s + "/dense"), s + "/activation");
                string logit = Linear(dense, "discriminator_predictions.dense_prediction.weight", "discriminator_predictions.dense_prediction.bias", s + "/dense_prediction");
                return Node("Squeeze", [logit, Int64s("axes_-1", -1)], s);
            }
            // The masked-LM head: dense, activation, LayerNorm, then the decoder (the word embeddings when tied) and its bias.
            string PredictionLogits()
            {
                const string s = "/cls/predictions";
                string t = LayerNorm(Activation(Linear(x, "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias", s + "/transform/dense"),
                    s + "/transform/transform_act_fn", c.MaskedLmActivation), "cls.predictions.transform.LayerNorm", s + "/transform/LayerNorm");
                return Linear(t, c.TieWordEmbeddings ? "embeddings.word_embeddings.weight" : "cls.predictions.decoder.weight", "cls.predictions.bias", s + "/decoder");
            }
            string SeqRelationship(string pooled) => Linear(pooled, "cls.seq_relationship.weight", "cls.seq_relationship.bias", "/cls/seq_relationship");

            const string B = "batch_size", S = "sequence_length";
            switch (task)
            {
                case OnnxTask.FeatureExtraction:
                    Output(x, "last_hidden_state", B, S, h);
                    if (model.HasPoolingLayer) Output(Pooled(), "pooler_output", B, h);
                    break;
                case OnnxTask.FillMask:
                    Output(PredictionLogits(), "logits", B, S, c.VocabSize);
                    break;
                case OnnxTask.PreTraining when c.Family == ModelFamily.Electra:
                    Output(DiscriminatorLogits(), "logits", B, S);
                    break;
                case OnnxTask.PreTraining:
                    Output(PredictionLogits(), "prediction_logits", B, S, c.VocabSize);
                    Output(SeqRelationship(Pooled()), "seq_relationship_logits", B, 2);
                    break;
                case OnnxTask.NextSentence:
                    Output(SeqRelationship(Pooled()), "logits", B, 2);
                    break;
                case OnnxTask.TextClassification:
                    Output(Linear(Pooled(), "classifier.weight", "classifier.bias", "/classifier"), "logits", B, c.NumLabels);
                    break;
                case OnnxTask.TokenClassification:
                    Output(Linear(x, "classifier.weight", "classifier.bias", "/classifier"), "logits", B, S, c.NumLabels);
                    break;
                case OnnxTask.QuestionAnswering:
                    string both = Linear(x, "qa_outputs.weight", "qa_outputs.bias", "/qa_outputs");
                    var split = new NodeProto { OpType = "Split", Name = "/Split" };
                    nodeNames.Add(split.Name);
                    split.Input.Add(both);
                    split.Output.AddRange(["/Split_output_0", "/Split_output_1"]);
                    split.Attribute.Add(Int("axis", -1));
                    if (opset >= 18) split.Attribute.Add(Int("num_outputs", 2)); // required from opset 18 when no split sizes are given
                    Graph.Node.Add(split);
                    Output(Node("Squeeze", [split.Output[0], Int64s("axes_-1", -1)], "/start"), "start_logits", B, S);
                    Output(Node("Squeeze", [split.Output[1], Int64s("axes_-1", -1)], "/end"), "end_logits", B, S);
                    break;
                default:
                    Output(x, "token_embeddings", B, S, h);
                    Output(SentenceEmbedding(x, embedding), "sentence_embedding", B, h);
                    break;
            }
        }

        /// <summary>sentence-transformers' Pooling module (cls, mean over the mask, max over the mask) and its Normalize module.</summary>
        private string SentenceEmbedding(string tokens, EmbeddingOptions embedding)
        {
            const string s = "/pooling";
            string pooled;
            string mask3 = Unsqueeze("attention_mask", 2, s); // [batch, sequence, 1]
            switch (embedding.Pooling)
            {
                case Pooling.Cls:
                    pooled = Node("Gather", [tokens, Int64Scalar("index_0", 0)], s, null, Int("axis", 1));
                    break;
                case Pooling.Mean: // sum(tokens × mask) / max(sum(mask), 1e-9)
                    string m = Node("Cast", [mask3], s, null, Int("to", (long)TensorProto.Types.DataType.Float));
                    string total = Node("ReduceSum", [Node("Mul", [tokens, m], s), Int64s("axes_1", 1)], s, null, Int("keepdims", 0));
                    string count = Node("ReduceSum", [m, Int64s("axes_1", 1)], s, null, Int("keepdims", 0));
                    pooled = Node("Div", [total, Node("Max", [count, FloatScalar("min_tokens", 1e-9f)], s)], s);
                    break;
                default: // padding set to -1e9, then the maximum over the sequence
                    string real = Node("Cast", [mask3], s, null, Int("to", (long)TensorProto.Types.DataType.Bool));
                    string filled = Node("Where", [real, tokens, FloatScalar("padding_value", -1e9f)], s);
                    pooled = opset >= 18
                        ? Node("ReduceMax", [filled, Int64s("axes_1", 1)], s, null, Int("keepdims", 0))
                        : Node("ReduceMax", [filled], s, null, Ints("axes", 1), Int("keepdims", 0));
                    break;
            }
            if (!embedding.Normalize) return pooled;
            // x / max(‖x‖₂, 1e-12), as torch.nn.functional.normalize.
            const string n = "/normalize";
            string squares = Node("ReduceSum", [Node("Mul", [pooled, pooled], n), Int64s("axes_-1", -1)], n, null, Int("keepdims", 1));
            return Node("Div", [pooled, Node("Max", [Node("Sqrt", [squares], n), FloatScalar("min_norm", 1e-12f)], n)], n);
        }
    }
}
