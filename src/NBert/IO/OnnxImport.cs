using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using Google.Protobuf;
using NBert.Tensors;
using Onnx;
using NBert.Schema;

namespace NBert.IO;

/// <summary>
/// Recovers a transformers checkpoint of a BERT-family base model (<c>BertModel</c>, <c>DistilBertModel</c>,
/// <c>RobertaModel</c>, <c>ElectraModel</c>) from an ONNX export of it or of one of its heads, whichever exporter wrote
/// it (IR and opset versions are only noted). Named initializers keep their family's names, less any prefix before the
/// body's sections (<c>embeddings.</c>, <c>embeddings_project.</c>, <c>encoder.</c>, <c>transformer.</c>,
/// <c>pooler.</c>): <c>bert.</c>, <c>distilbert.</c>, <c>roberta.</c> or <c>electra.</c> of a head's export. Linear
/// weights are found through the nodes that use them: a MatMul reads [in, out] and a Gemm [out, in] unless
/// <c>transB</c> is 0; an unnamed one is named from the bias its output is added to (<c>X.bias</c> makes
/// <c>X.weight</c>), and every weight is stored as transformers' [out, in]. What the weights do not say is read off the
/// graph: the head count from the reshape into [batch, sequence, heads, head size], else from the attention's scale (a
/// Div by √d or a Mul by 1/√d on the scores, or by d^-1/4 on the query and the key before their product); the
/// activation from the ops between the first layer's intermediate and output dense layers (else the whole graph's);
/// LayerNorm's epsilon from the Add before its Sqrt or a LayerNormalization's attribute; hidden_size from the layers'
/// query, and ELECTRA's <c>embedding_size</c> from the word table's width (projected by <c>embeddings_project</c> where
/// they differ). An export without a pooler's weights is a base model without a pooling layer. Where the exporter
/// applies the attention mask does not matter: NBert applies transformers' mask itself.
/// <para>
/// The family (config.json's <c>model_type</c>) is decided in one place, from what the graph says, in this order: (1)
/// the base model's prefix on the names, if any (<c>distilbert.</c>, <c>roberta.</c>, <c>electra.</c>, <c>bert.</c>:
/// transformers' <c>base_model_prefix</c>); any other prefix (<c>albert.</c>, ...) is refused; (2) the body's names:
/// the families whose checkpoint names (<see cref="FamilyNames"/>) cover every one of them
/// (<c>transformer.layer.N.attention.q_lin</c> is DistilBERT's alone, <c>embeddings_project</c> ELECTRA's; BERT,
/// RoBERTa and an ELECTRA without a projection share the rest); a body no family names is refused; (3) how the position
/// ids are computed: from the input ids compared with a constant (an Equal on <c>input_ids</c> whose result reaches a
/// CumSum, transformers' <c>create_position_ids_from_input_ids</c> as torch's exporter, optimum and NBert write it) is
/// RoBERTa's, positions from <c>pad_token_id + 1</c> with that constant as <c>pad_token_id</c>; counted from 0 (a slice
/// of the position buffer, a CumSum of ones) is BERT's, DistilBERT's or ELECTRA's. What is still tied goes to the first
/// family in <see cref="ModelFamily"/>'s order: a bare <c>ElectraModel</c> whose embedding size equals its hidden size
/// (no projection, no prefix) has BERT's names and positions and imports as the BERT (without a pooler) it computes;
/// with <c>electra.</c> on its names (a head's export) it is an ELECTRA. Evidence that disagrees (a <c>bert.</c> prefix
/// with positions from padding, DistilBERT's names with them) is refused naming both. A RoBERTa's
/// <c>type_vocab_size</c> is its token-type table's rows (1); a DistilBERT has none.
/// </para>
/// </summary>
public static class OnnxImport
{
    /// <summary>The imported model: its config (the family included), parameters by the model's names (BERT's, as
    /// <see cref="ParameterSlot.Name"/>), and what was inferred how.</summary>
    public sealed record Result(BertConfig Config, Dictionary<string, FloatTensor> Parameters, IReadOnlyList<string> Notes)
    {
        /// <summary>Whether the export has a pooler (<c>pooler.dense</c>); without one the model is a base model
        /// without a pooling layer.</summary>
        public bool HasPooler => BertArchitectures.AddPoolingLayer(BertArchitecture.BertModel, Parameters.Keys);
    }

    /// <summary>Reads an ONNX export of a BERT, DistilBERT, RoBERTa or ELECTRA encoder: its config (the family told as
    /// the class summary says) and its parameters by the model's names.</summary>
    /// <param name="onnxPath">The .onnx file (weights inside it: external data is refused).</param>
    /// <param name="heads">The number of attention heads, for a graph that does not show it.</param>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    /// <exception cref="NBertException">The file is not ONNX, or not an export NBert can read (a family it cannot tell among them); the message names the file and says why.</exception>
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

    /// <summary>Imports an ONNX export (see <see cref="Read"/>) and writes an ordinary checkpoint directory (config.json with
    /// the family's <c>model_type</c> and fields, model.safetensors under the family's names, the tokenizer's files) that
    /// NBert and transformers load.</summary>
    /// <param name="onnxPath">The .onnx file.</param>
    /// <param name="tokenizerPath">The model's tokenizer: a <c>vocab.txt</c> (WordPiece: BERT, DistilBERT, ELECTRA), a
    /// <c>tokenizer.json</c>, a <c>vocab.json</c> with <c>merges.txt</c> beside it (RoBERTa's byte-level BPE), or a folder
    /// holding them (such as the folder optimum or <c>nbert export-onnx</c> wrote, whose tokenizer_config.json is kept).</param>
    /// <param name="directory">The checkpoint directory to write.</param>
    /// <param name="heads">The number of attention heads, for a graph that does not show it.</param>
    /// <param name="doLowerCase">do_lower_case for a vocab.txt given alone.</param>
    /// <exception cref="MissingFileException">A file is missing, or the folder holds no tokenizer files.</exception>
    /// <exception cref="NBertException">The ONNX file cannot be imported (see <see cref="Read"/>).</exception>
    public static Result ToDirectory(string onnxPath, string tokenizerPath, string directory, int? heads = null, bool doLowerCase = true)
    {
        bool folder = Directory.Exists(tokenizerPath);
        if (!folder && !File.Exists(tokenizerPath)) throw new MissingFileException($"{tokenizerPath}: no such tokenizer file or folder.", tokenizerPath);
        // A file is written under the name its kind has in a model directory (any name but these two is a WordPiece vocabulary).
        string file = folder ? "" : Path.GetFileName(tokenizerPath) is "tokenizer.json" or "vocab.json" ? Path.GetFileName(tokenizerPath) : "vocab.txt";
        string merges = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!, "merges.txt");
        if (file == "vocab.json" && !File.Exists(merges))
            throw new MissingFileException($"{tokenizerPath}: a byte-level BPE vocabulary needs its merges.txt beside it, and there is none.", merges);
        var result = Read(onnxPath, heads);
        using var files = new StagedFiles(directory);
        bool hasConfig, wordPieceAlone; // its own tokenizer_config.json; a vocab.txt without tokenizer.json (do_lower_case then said here)
        if (folder)
        {
            if (!Checkpoint.StageTokenizerFiles(tokenizerPath, files))
                throw new MissingFileException($"{tokenizerPath}: the folder holds no tokenizer files ({string.Join(", ", Checkpoint.TokenizerFiles.Concat(Checkpoint.BpeTokenizerFiles))}).",
                    Path.Combine(tokenizerPath, "tokenizer.json"));
            hasConfig = File.Exists(Path.Combine(tokenizerPath, "tokenizer_config.json"));
            wordPieceAlone = !File.Exists(Path.Combine(tokenizerPath, "tokenizer.json")) && File.Exists(Path.Combine(tokenizerPath, "vocab.txt"));
        }
        else
        {
            files.Copy(file, tokenizerPath);
            if (file == "vocab.json") files.Copy("merges.txt", merges);
            (hasConfig, wordPieceAlone) = (false, file == "vocab.txt");
        }
        // Without the tokenizer's own config: the model's length (RoBERTa's positions hold pad_token_id + 1 fewer tokens),
        // and do_lower_case for a WordPiece vocabulary (a tokenizer.json says its normalisation itself).
        if (!hasConfig)
            files.WriteAllText("tokenizer_config.json", wordPieceAlone
                ? $"{{\n  \"do_lower_case\": {(doLowerCase ? "true" : "false")},\n  \"model_max_length\": {result.Config.MaxSequenceLength}\n}}\n"
                : $"{{\n  \"model_max_length\": {result.Config.MaxSequenceLength}\n}}\n");
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

    /// <summary>Each family's body, as a base model with a pooler names it in a checkpoint: checkpoint name, with the layer
    /// index written 0, to the model's name (<c>transformer.layer.0.attention.q_lin.weight</c> to
    /// <c>encoder.layer.0.attention.self.query.weight</c>). Built from <see cref="FamilyNames.CheckpointName"/>, the one
    /// mapping loading and saving use, so a family added there is read here. ELECTRA's is built with an embedding size
    /// other than its hidden size, so that its optional <c>embeddings_project</c> is among its names (an export without
    /// it has a subset of them).</summary>
    private static readonly IReadOnlyList<(ModelFamily Family, Dictionary<string, string> Names)> Bodies =
        Enum.GetValues<ModelFamily>().Select(f => (f, BertArchitectures.Parameters(
                new BertConfig { Family = f, NumHiddenLayers = 1, EmbeddingSize = f == ModelFamily.Electra ? 1 : null }, BertArchitecture.BertModel)
            .ToDictionary(s => FamilyNames.CheckpointName(s.Name, BertArchitecture.BertModel, f), s => s.Name, StringComparer.Ordinal))).ToList();

    /// <summary>The first name part of every family's body (<c>embeddings</c>, <c>embeddings_project</c>, <c>encoder</c>,
    /// <c>transformer</c>, <c>pooler</c>): a name is the body's from the first of these on.</summary>
    private static readonly string[] Sections = Bodies.SelectMany(b => b.Names.Keys).Select(n => n[..(n.IndexOf('.') + 1)]).Distinct().ToArray();

    /// <summary>An initializer's name split into the prefix before the body (<c>distilbert.</c> of a head's export, or
    /// "") and the body's name from its section on; null for a name outside the body (a head's) or not a parameter's.</summary>
    private static (string Prefix, string Body)? Split(string name)
    {
        if (!name.EndsWith(".weight", StringComparison.Ordinal) && !name.EndsWith(".bias", StringComparison.Ordinal)) return null;
        int at = -1;
        foreach (var section in Sections)
        {
            int i = name.StartsWith(section, StringComparison.Ordinal) ? 0 : name.IndexOf("." + section, StringComparison.Ordinal) is int j and >= 0 ? j + 1 : -1;
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        return at < 0 ? null : (name[..at], name[at..]);
    }

    /// <summary>A body name with its layer index written 0 (<c>encoder.layer.7.output.dense.bias</c> as
    /// <c>encoder.layer.0.output.dense.bias</c>), and the index; a name of no layer as it is, with index -1.</summary>
    private static (string Template, int Layer) LayerTemplate(string body, int initializerCount)
    {
        var parts = body.Split('.');
        for (int i = 1; i < parts.Length; i++)
        {
            if (parts[i - 1] != "layer" || parts[i].Length == 0 || !parts[i].All(char.IsAsciiDigit)) continue;
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer) || layer >= initializerCount)
                throw new InvalidOperationException($"initializer '{NBertException.Quote(body)}' does not name an encoder layer of this export.");
            parts[i] = "0";
            return (string.Join('.', parts), layer);
        }
        return (body, -1);
    }

    /// <summary>The model's name of a body name in <paramref name="family"/>'s checkpoints; null when the family has no such parameter.</summary>
    private static string? ModelName(string body, ModelFamily family, int initializerCount)
    {
        var (template, layer) = LayerTemplate(body, initializerCount);
        if (!Bodies.First(b => b.Family == family).Names.TryGetValue(template, out var name)) return null;
        const string FirstLayer = "encoder.layer.0.";
        return layer >= 0 && name.StartsWith(FirstLayer, StringComparison.Ordinal) ? $"encoder.layer.{layer}.{name[FirstLayer.Length..]}" : name;
    }

    /// <summary>
    /// The one place an import decides the family, from the evidence the class summary lists: the base model's prefix,
    /// the families whose names cover the body, and whether the position ids come from the input ids compared with
    /// padding (see <see cref="BertConfig.PositionsFromPadding"/>). Returns the family, RoBERTa's pad_token_id where the
    /// graph gives it, and a note saying why.
    /// </summary>
    private static (ModelFamily Family, int? PadTokenId, string Note) DecideFamily(IReadOnlyDictionary<string, string> prefixes, GraphProto graph, GraphInfo info, int initializerCount)
    {
        static string Names(IEnumerable<ModelFamily> families) => string.Join(", ", families.Select(FamilyNames.ModelType));
        var all = Enum.GetValues<ModelFamily>();
        // (1) The base model's prefix: the last part of what comes before the body (bert. in model.bert.encoder...).
        ModelFamily? byPrefix = null;
        foreach (var (body, prefix) in prefixes.Where(p => p.Value.Length > 0))
        {
            string model = prefix.TrimEnd('.').Split('.')[^1];
            if (all.Where(f => FamilyNames.BasePrefix(f) == model).Select(f => (ModelFamily?)f).FirstOrDefault() is not { } family)
                throw new InvalidOperationException($"the initializers are under '{NBertException.Quote(prefix)}' (such as '{NBertException.Quote(prefix + body)}'): " +
                    $"'{NBertException.Quote(model)}' is not the base model of a family NBert imports ({Names(all)}; a head's export names its body " +
                    $"{string.Join(", ", all.Select(f => FamilyNames.BasePrefix(f) + "."))}), so NBert cannot tell what computes these weights.");
            if (byPrefix is { } other && other != family)
                throw new InvalidOperationException($"the initializers name two base models, {FamilyNames.BasePrefix(other)}. and {FamilyNames.BasePrefix(family)}. " +
                    $"(such as '{NBertException.Quote(prefix + body)}'): one export holds one model.");
            byPrefix = family;
        }
        // (2) The families whose checkpoint names cover every name of the body.
        var byNames = all.Where(f => prefixes.Keys.All(body => ModelName(body, f, initializerCount) is not null)).ToList();
        if (byNames.Count == 0)
        {
            string unknown = prefixes.Keys.Order(StringComparer.Ordinal).First(body => all.All(f => ModelName(body, f, initializerCount) is null));
            throw new InvalidOperationException($"initializer '{NBertException.Quote(prefixes[unknown] + unknown)}' is not a parameter of any family NBert imports " +
                $"({Names(all)}), so NBert cannot tell what computes these weights.");
        }
        if (byPrefix is { } named && !byNames.Contains(named))
            throw new InvalidOperationException($"the initializers are under {FamilyNames.BasePrefix(named)}. but named as {Names(byNames)}'s are, not as {FamilyNames.ModelType(named)}'s: " +
                "NBert cannot tell which family this is.");
        var candidates = byPrefix is { } p1 ? [p1] : byNames;
        // (3) The position ids: from input_ids != constant (RoBERTa's padding offset), or counted from 0.
        int? pad = info.PaddingIdFromPositions(graph);
        static bool FromPadding(ModelFamily f) => new BertConfig { Family = f }.PositionsFromPadding;
        var fit = candidates.Where(f => FromPadding(f) == pad.HasValue).ToList();
        string names = byPrefix is { } p2 ? $"initializers under {FamilyNames.BasePrefix(p2)}."
            : byNames.Count > 1 ? $"initializer names ({Names(byNames)} alike)" : $"initializer names ({Names(byNames)}'s)";
        if (fit.Count == 0 && pad is int found)
            throw new InvalidOperationException($"the position ids are computed from the input ids compared with {found} (padding, as RoBERTa's), but the {names} " +
                "have no such positions: NBert cannot tell which family this is.");
        if (fit.Count == 0)
        {
            // A RoBERTa by its prefix whose positions the graph does not show as the exporters write them: transformers'
            // RobertaConfig default, said in the notes.
            var family = candidates[0];
            return (family, 1, $"model_type {FamilyNames.ModelType(family)}, from the {names}; the graph does not show how its positions are computed, " +
                "so pad_token_id 1 (transformers' default) is assumed");
        }
        var chosen = fit[0]; // families the graph cannot tell apart: the first in ModelFamily's order (BERT before those described against it)
        string how = pad is int id ? $"position ids from input_ids != {id} (pad_token_id {id}, positions from {id + 1})" : "position ids counted from 0";
        return (chosen, pad, $"model_type {FamilyNames.ModelType(chosen)}, from the {names} and the {how}");
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
        var graphInfo = new GraphInfo(consumers, producers, constants, initializers);
        var notes = new List<string>();

        // The body's weights by their name in the family's checkpoint (prefix removed); the family decides the model's names.
        var bodies = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        var prefixes = new Dictionary<string, string>(StringComparer.Ordinal);
        var renamed = new List<string>();
        var headWeights = new List<string>(); // a head's (classifier, ...): not the base model's
        foreach (var t in initializers.Values)
            if (Split(t.Name) is not var (prefix, body))
            {
                if (t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal)) headWeights.Add(t.Name);
            }
            else
            {
                if (prefix.Length > 0) renamed.Add(t.Name);
                prefixes[body] = prefix;
                if (!bodies.TryAdd(body, ToTensor(t)))
                    throw new InvalidOperationException($"two initializers stand for '{NBertException.Quote(body)}'.");
            }
        if (renamed.Count > 0) notes.Add($"{renamed.Count} initializer names shortened to the base model's (such as {NBertException.Quote(renamed[0])})");

        // Linear weights, from the nodes that multiply by them; stored as transformers' [out, in].
        int recovered = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Node.Where(n => n.OpType is "MatMul" or "Gemm"))
        {
            if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var weight) || weight.Dims.Count != 2 || !seen.Add(weight.Name)) continue;
            bool gemm = node.OpType == "Gemm";
            bool stored = gemm && node.Attribute.Any(a => a.Name == "transB" && a.I == 1); // [out, in] already
            (string Prefix, string Body)? name;
            if (weight.Name.EndsWith(".weight", StringComparison.Ordinal)) name = Split(weight.Name);
            else
            {
                string? bias = gemm ? node.Input.ElementAtOrDefault(2)
                    : consumers.GetValueOrDefault(node.Output.FirstOrDefault() ?? "")?.Where(n => n.OpType == "Add").SelectMany(n => n.Input)
                        .FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && initializers.ContainsKey(i));
                if (bias is null || !bias.EndsWith(".bias", StringComparison.Ordinal))
                    throw new InvalidOperationException($"the {node.OpType} of weight '{NBertException.Quote(weight.Name)}' feeds no Add of a named bias, so its parameter name cannot be recovered.");
                name = Split(bias[..^".bias".Length] + ".weight");
                if (name is not null) recovered++;
                else headWeights.Add(bias[..^".bias".Length] + ".weight");
            }
            if (name is not var (prefix, body)) continue; // a head's weight (classifier, ...): not the base model's
            var tensor = ToTensor(weight);
            prefixes[body] = prefix;
            bodies[body] = stored ? tensor : Transpose(tensor);
        }
        if (recovered > 0) notes.Add($"{recovered} unnamed linear weights named from their biases");
        if (bodies.Count == 0) throw new InvalidOperationException("no embeddings.word_embeddings.weight: not a BERT export.");

        var (family, padTokenId, familyNote) = DecideFamily(prefixes, graph, graphInfo, initializers.Count);
        notes.Add(familyNote);
        var parameters = new Dictionary<string, FloatTensor>(StringComparer.Ordinal);
        foreach (var (body, tensor) in bodies) parameters[ModelName(body, family, initializers.Count)!] = tensor;

        var words = parameters.GetValueOrDefault("embeddings.word_embeddings.weight")
            ?? throw new InvalidOperationException("no embeddings.word_embeddings.weight: not a BERT export.");
        if (words.Rank != 2) throw new InvalidOperationException($"embeddings.word_embeddings.weight has shape [{string.Join(", ", words.Shape)}], not [vocab, hidden].");
        // The embeddings' width is the word table's; the layers' (hidden_size) their query's. They differ only where the
        // family projects one to the other (ELECTRA's embedding_size); elsewhere the shapes checked below refuse it.
        int embedding = words.Shape[1];
        int hidden = parameters.GetValueOrDefault("encoder.layer.0.attention.self.query.bias") is { Rank: 1 } query ? query.Shape[0] : embedding;
        int layers = 0;
        foreach (var k in parameters.Keys.Where(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal)))
            layers = Math.Max(layers, int.Parse(k.Split('.')[2], System.Globalization.CultureInfo.InvariantCulture) + 1);

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

        // hidden_act from the ops between the first layer's intermediate dense and its output dense: a head's export may
        // hold another activation (ELECTRA's classifier and generator, RoBERTa's lm_head: exact GELU whatever hidden_act).
        // Only where that path is not found, from the whole graph's ops.
        string intermediate = FamilyNames.CheckpointName("encoder.layer.0.intermediate.dense.bias", BertArchitecture.BertModel, family);
        string? act = prefixes.TryGetValue(intermediate, out var intermediatePrefix) && graphInfo.AfterLinear(intermediatePrefix + intermediate) is { } between
            ? ActivationOf(between, wholeGraph: false) : null;
        if (act is not null) notes.Add($"hidden_act {act}, from the ops after '{NBertException.Quote(intermediatePrefix + intermediate[..^".bias".Length])}'");
        else
        {
            act = ActivationOf(graph.Node, wholeGraph: true) ?? "gelu";
            notes.Add($"hidden_act {act}, from the graph's ops");
        }
        double eps = graph.Node.Where(n => n.OpType == "Add" && consumers.GetValueOrDefault(n.Output.FirstOrDefault() ?? "")?.Any(c => c.OpType == "Sqrt") == true)
            .Select(n => n.Input.Select(graphInfo.Scalar).FirstOrDefault(v => v is > 0 and < 1e-3))
            .FirstOrDefault(v => v is not null)
            ?? graph.Node.Where(n => n.OpType == "LayerNormalization")
                .Select(n => (double?)(n.Attribute.FirstOrDefault(a => a.Name == "epsilon") is { } a ? RoundTrip(a.F) : 1e-5)).FirstOrDefault()
            ?? 1e-12;
        notes.Add($"layer_norm_eps {eps:G3}");

        var family0 = new BertConfig { Family = family };
        var config = family0 with
        {
            VocabSize = words.Shape[0],
            HiddenSize = hidden,
            // ELECTRA's embedding_size is written whether or not it differs from hidden_size (ElectraConfig has the field).
            EmbeddingSize = family == ModelFamily.Electra ? embedding : null,
            NumHiddenLayers = layers,
            NumAttentionHeads = headCount,
            IntermediateSize = Param(parameters, "encoder.layer.0.intermediate.dense.bias").Shape[0],
            HiddenAct = act,
            MaxPositionEmbeddings = Param(parameters, "embeddings.position_embeddings.weight").Shape[0],
            // RoBERTa's one token type is its table's one row; DistilBERT has no table (the field is not written).
            TypeVocabSize = family0.HasTokenTypes ? Param(parameters, "embeddings.token_type_embeddings.weight").Shape[0] : family0.TypeVocabSize,
            PadTokenId = padTokenId ?? family0.PadTokenId,
            LayerNormEps = eps,
            Architectures = [FamilyNames.ClassName(family, BertArchitecture.BertModel)],
        };
        config.Validate();
        BertArchitectures.EnsureFitsInMemory(config, BertArchitecture.BertModel);
        bool pooler = BertArchitectures.AddPoolingLayer(BertArchitecture.BertModel, parameters.Keys);
        string baseModel = FamilyNames.ClassName(family, BertArchitecture.BertModel);
        notes.Add(pooler ? "pooler: pooler.dense" : !BertArchitectures.HasPooler(config, BertArchitecture.BertModel) ? $"no pooler ({baseModel} has none)"
            : $"no pooler (the export has no pooler.dense): a {baseModel} without a pooling layer");
        var specs = BertArchitectures.Parameters(config, BertArchitecture.BertModel, pooler);
        foreach (var spec in specs)
            if (!parameters.TryGetValue(spec.Name, out var t) || !t.Shape.SequenceEqual(spec.Shape))
                throw new InvalidOperationException($"the export has no '{FamilyNames.CheckpointName(spec.Name, BertArchitecture.BertModel, family)}' of shape [{string.Join(", ", spec.Shape)}].");
        var bert = specs.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var other = parameters.Keys.Where(k => !bert.Contains(k)).ToList();
        foreach (var k in other) parameters.Remove(k);
        if (other.Select(k => FamilyNames.CheckpointName(k, BertArchitecture.BertModel, family)).Concat(headWeights).Order(StringComparer.Ordinal).ToList() is { Count: > 0 } ignored)
            notes.Add($"{ignored.Count} weights that are not {baseModel}'s ignored: {string.Join(", ", ignored.Take(5).Select(n => NBertException.Quote(n)))}{(ignored.Count > 5 ? ", ..." : "")}");
        return new Result(config, parameters, notes);
    }

    /// <summary>The activation its ops compute (Erf or a <c>Gelu</c> op: exact GELU; <c>FastGelu</c>,
    /// <c>approximate="tanh"</c> or Tanh with Pow: gelu_new; Sigmoid: SiLU; Relu), or null for none of them. In the whole
    /// graph one Tanh may be BERT's pooler's, so gelu_new's needs a second.</summary>
    private static string? ActivationOf(IEnumerable<NodeProto> nodes, bool wholeGraph)
    {
        var list = nodes.ToList();
        var ops = list.Select(n => n.OpType).ToHashSet();
        var gelu = list.FirstOrDefault(n => n.OpType is "Gelu" or "FastGelu");
        return ops.Contains("Erf") ? "gelu"
            : gelu is not null ? (gelu.OpType == "FastGelu" || gelu.Attribute.Any(a => a.Name == "approximate" && a.S.ToStringUtf8() == "tanh") ? "gelu_new" : "gelu")
            : ops.Contains("Tanh") && ops.Contains("Pow") && list.Count(n => n.OpType == "Tanh") > (wholeGraph ? 1 : 0) ? "gelu_new"
            : ops.Contains("Sigmoid") ? "silu" : ops.Contains("Relu") ? "relu" : null;
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

        /// <summary>The nodes between a linear layer, given by its bias (the Add or Gemm that reads it), and the next
        /// MatMul or Gemm its output reaches (the layer after the activation), that one excluded; null when the bias is
        /// read by no such node or no MatMul is reached within a few nodes.</summary>
        public List<NodeProto>? AfterLinear(string bias)
        {
            if (Consumers.GetValueOrDefault(bias)?.FirstOrDefault(n => n.OpType is "Add" or "Gemm" && n.Output.Count > 0) is not { } linear) return null;
            var between = new List<NodeProto>();
            var seen = new HashSet<NodeProto> { linear };
            var frontier = new List<string> { linear.Output[0] };
            bool reached = false;
            for (int hop = 0; hop < 12 && frontier.Count > 0; hop++)
            {
                var next = new List<string>();
                foreach (var node in frontier.SelectMany(o => Consumers.GetValueOrDefault(o) ?? []))
                {
                    if (node.OpType is "MatMul" or "Gemm") reached = true;
                    else if (seen.Add(node))
                    {
                        between.Add(node);
                        next.AddRange(node.Output);
                    }
                }
                frontier = next;
            }
            return reached && between.Count > 0 ? between : null;
        }

        /// <summary>RoBERTa's <c>padding_idx</c>, when the position ids are computed from the input ids compared with it: an
        /// Equal of the <c>input_ids</c> input (or the graph's first input, through Cast or Identity) and a whole constant,
        /// whose result reaches a CumSum within a few nodes (Not, Cast); null when the graph has none.</summary>
        public int? PaddingIdFromPositions(GraphProto graph)
        {
            var inputs = graph.Input.Select(i => i.Name).Where(n => !Initializers.ContainsKey(n)).ToList(); // IR < 4 lists initializers as inputs too
            string? ids = inputs.Contains("input_ids") ? "input_ids" : inputs.FirstOrDefault();
            if (ids is null) return null;
            bool FromIds(string name)
            {
                for (int hop = 0; hop < 4; hop++)
                {
                    if (name == ids) return true;
                    if (Producers.GetValueOrDefault(name) is { OpType: "Cast" or "Identity", Input.Count: > 0 } p) name = p.Input[0];
                    else return false;
                }
                return false;
            }
            foreach (var node in graph.Node.Where(n => n.OpType == "Equal" && n.Input.Count == 2 && n.Output.Count > 0))
            {
                int side = FromIds(node.Input[0]) ? 0 : FromIds(node.Input[1]) ? 1 : -1;
                if (side < 0 || Scalar(node.Input[1 - side]) is not double v || v < 0 || v > int.MaxValue || v != Math.Floor(v)) continue;
                var frontier = new List<string> { node.Output[0] };
                for (int hop = 0; hop < 4 && frontier.Count > 0; hop++)
                {
                    var users = frontier.SelectMany(o => Consumers.GetValueOrDefault(o) ?? []).ToList();
                    if (users.Any(u => u.OpType == "CumSum")) return (int)v;
                    frontier = users.Where(u => u.Output.Count > 0).Select(u => u.Output[0]).ToList();
                }
            }
            return null;
        }

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
