using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;

namespace NBert.Modeling;

/// <summary>The activation functions BERT configs name (transformers' <c>ACT2FN</c> keys).</summary>
public enum Activation { Gelu, GeluTanh, Relu, Silu }

/// <summary>
/// transformers' <c>BertConfig</c> (and the <c>PretrainedConfig</c> fields a BERT head uses), with the
/// same names in config.json and the same defaults. Unknown fields are kept and written back.
/// </summary>
public sealed record BertConfig
{
    public int VocabSize { get; init; } = 30522;
    public int HiddenSize { get; init; } = 768;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int IntermediateSize { get; init; } = 3072;
    /// <summary>As written in config.json: gelu, gelu_new, gelu_pytorch_tanh, relu, silu (or swish).</summary>
    public string HiddenAct { get; init; } = "gelu";
    public double HiddenDropoutProb { get; init; } = 0.1;
    public double AttentionProbsDropoutProb { get; init; } = 0.1;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double InitializerRange { get; init; } = 0.02;
    public double LayerNormEps { get; init; } = 1e-12;
    public int PadTokenId { get; init; }
    public string PositionEmbeddingType { get; init; } = "absolute";
    /// <summary>Dropout before the classifier; null means <see cref="HiddenDropoutProb"/>.</summary>
    public double? ClassifierDropout { get; init; }
    /// <summary>Label names by id (transformers' <c>id2label</c>); its count is the number of labels.</summary>
    public IReadOnlyList<string> Id2Label { get; init; } = ["LABEL_0", "LABEL_1"];
    /// <summary>null, <c>regression</c>, <c>single_label_classification</c> or <c>multi_label_classification</c>.</summary>
    public string? ProblemType { get; init; }
    public IReadOnlyList<string> Architectures { get; init; } = [];
    public bool TieWordEmbeddings { get; init; } = true;
    /// <summary>The other fields of config.json, kept so that saving loses nothing.</summary>
    public JsonObject Extra { get; init; } = new();

    public int NumLabels => Id2Label.Count;
    public int HeadSize => HiddenSize / NumAttentionHeads;

    public Activation Activation => HiddenAct switch
    {
        "gelu" => Activation.Gelu,
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Activation.GeluTanh,
        "relu" => Activation.Relu,
        "silu" or "swish" => Activation.Silu,
        _ => throw new NotSupportedException($"hidden_act '{HiddenAct}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, silu are)."),
    };

    private static readonly string[] Known =
    [
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
        "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type", "classifier_dropout",
        "id2label", "label2id", "num_labels", "problem_type", "architectures", "tie_word_embeddings",
    ];

    /// <summary>Reads config.json; an error names the file and the field.</summary>
    public static BertConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no config.json.", path);
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException or ArgumentException)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
    }

    public static BertConfig Parse(string json)
    {
        var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("config.json is not a JSON object.");
        int Int(string name, int fallback) => root[name] is { } v ? v.GetValue<int>() : fallback;
        double Double(string name, double fallback) => root[name] is { } v ? v.GetValue<double>() : fallback;
        var c = new BertConfig();
        var extra = new JsonObject();
        foreach (var (k, v) in root)
            if (!Known.Contains(k)) extra[k] = v?.DeepClone();
        string? ptype = root["problem_type"]?.GetValue<string>();
        if (ptype is not (null or "regression" or "single_label_classification" or "multi_label_classification"))
            throw new FormatException($"problem_type '{ptype}' is not one of regression, single_label_classification, multi_label_classification.");
        c = c with
        {
            VocabSize = Int("vocab_size", c.VocabSize),
            HiddenSize = Int("hidden_size", c.HiddenSize),
            NumHiddenLayers = Int("num_hidden_layers", c.NumHiddenLayers),
            NumAttentionHeads = Int("num_attention_heads", c.NumAttentionHeads),
            IntermediateSize = Int("intermediate_size", c.IntermediateSize),
            HiddenAct = root["hidden_act"]?.GetValue<string>() ?? c.HiddenAct,
            HiddenDropoutProb = Double("hidden_dropout_prob", c.HiddenDropoutProb),
            AttentionProbsDropoutProb = Double("attention_probs_dropout_prob", c.AttentionProbsDropoutProb),
            MaxPositionEmbeddings = Int("max_position_embeddings", c.MaxPositionEmbeddings),
            TypeVocabSize = Int("type_vocab_size", c.TypeVocabSize),
            InitializerRange = Double("initializer_range", c.InitializerRange),
            LayerNormEps = Double("layer_norm_eps", c.LayerNormEps),
            PadTokenId = root["pad_token_id"] is { } p ? p.GetValue<int>() : 0,
            PositionEmbeddingType = root["position_embedding_type"]?.GetValue<string>() ?? c.PositionEmbeddingType,
            ClassifierDropout = root["classifier_dropout"] is { } cd ? cd.GetValue<double>() : null,
            Id2Label = Labels(root),
            ProblemType = ptype,
            Architectures = root["architectures"] is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToArray() : [],
            TieWordEmbeddings = root["tie_word_embeddings"]?.GetValue<bool>() ?? true,
            Extra = extra,
        };
        c.Validate();
        return c;
    }

    /// <summary>id2label when given (keys "0".."n-1"), else num_labels (default 2) generic names.</summary>
    private static string[] Labels(JsonObject root)
    {
        if (root["id2label"] is JsonObject map && map.Count > 0)
        {
            var labels = new string[map.Count];
            foreach (var (k, v) in map)
            {
                if (!int.TryParse(k, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id >= labels.Length || labels[id] is not null)
                    throw new FormatException($"id2label key '{k}' is not one of 0..{labels.Length - 1} (each once).");
                labels[id] = v?.GetValue<string>() ?? throw new FormatException($"id2label['{k}'] is null.");
            }
            return labels;
        }
        int n = root["num_labels"] is { } nl ? nl.GetValue<int>() : 2;
        if (n < 1) throw new FormatException($"num_labels must be positive, not {n}.");
        return Enumerable.Range(0, n).Select(i => $"LABEL_{i}").ToArray();
    }

    public void Validate()
    {
        void Positive(string name, int v)
        {
            if (v <= 0) throw new FormatException($"{name} must be positive, not {v}.");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("intermediate_size", IntermediateSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        Positive("type_vocab_size", TypeVocabSize);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new FormatException($"hidden_size {HiddenSize} is not a multiple of num_attention_heads {NumAttentionHeads}.");
        if (PositionEmbeddingType != "absolute")
            throw new NotSupportedException($"position_embedding_type '{PositionEmbeddingType}' is not supported: only 'absolute' BERT is.");
        _ = Activation; // throws for an unknown hidden_act
    }

    /// <summary>config.json as transformers writes it (the kept unknown fields included).</summary>
    public string ToJson()
    {
        var root = new JsonObject();
        if (Architectures.Count > 0) root["architectures"] = new JsonArray(Architectures.Select(a => (JsonNode)a).ToArray());
        root["attention_probs_dropout_prob"] = AttentionProbsDropoutProb;
        root["classifier_dropout"] = ClassifierDropout;
        root["hidden_act"] = HiddenAct;
        root["hidden_dropout_prob"] = HiddenDropoutProb;
        root["hidden_size"] = HiddenSize;
        var id2label = new JsonObject();
        var label2id = new JsonObject();
        for (int i = 0; i < Id2Label.Count; i++)
        {
            id2label[i.ToString(CultureInfo.InvariantCulture)] = Id2Label[i];
            label2id[Id2Label[i]] = i;
        }
        root["id2label"] = id2label;
        root["initializer_range"] = InitializerRange;
        root["intermediate_size"] = IntermediateSize;
        root["label2id"] = label2id;
        root["layer_norm_eps"] = LayerNormEps;
        root["max_position_embeddings"] = MaxPositionEmbeddings;
        root["model_type"] = "bert";
        root["num_attention_heads"] = NumAttentionHeads;
        root["num_hidden_layers"] = NumHiddenLayers;
        root["pad_token_id"] = PadTokenId;
        root["position_embedding_type"] = PositionEmbeddingType;
        if (ProblemType is not null) root["problem_type"] = ProblemType;
        root["tie_word_embeddings"] = TieWordEmbeddings;
        root["type_vocab_size"] = TypeVocabSize;
        root["vocab_size"] = VocabSize;
        foreach (var (k, v) in Extra)
            if (!root.ContainsKey(k)) root[k] = v?.DeepClone();
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson() + "\n");
}
