using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static NBert.NBertException;

namespace NBert.Schema;

public sealed partial record BertConfig
{
    /// <summary>Reads config.json; an error (<see cref="NBertException"/>) names the file and the field.</summary>
    public static BertConfig Load(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no config.json.", path);
        var bytes = JsonFile.ReadUtf8(path);
        try
        {
            return Parse(System.Text.Encoding.UTF8.GetString(bytes.Span));
        }
        catch (NBertException e)
        {
            throw new NBertException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads the text of a config.json. Every field must have the JSON type transformers writes
    /// (null only where transformers allows None) and a value a model can run with (<see cref="Validate"/>);
    /// anything else is an <see cref="NBertException"/> naming the field.</summary>
    public static BertConfig Parse(string json)
    {
        try
        {
            var root = JsonNode.Parse(json, null, JsonFile.Options) as JsonObject
                ?? throw new NBertException("config.json is not a JSON object.");
            return Parse(new Fields(root));
        }
        catch (JsonException e)
        {
            throw new NBertException($"not valid JSON ({NBertException.Quote(e.Message, 160)})", e);
        }
        catch (InvalidOperationException e)
        {
            // A string System.Text.Json cannot turn into UTF-16 (an escaped lone surrogate).
            throw new NBertException($"a string cannot be read ({e.Message})", e);
        }
    }

    private static BertConfig Parse(Fields f)
    {
        var c = new BertConfig();
        string? modelType = f.OptionalString("model_type");
        var family = FamilyNames.FromModelType(modelType)
            ?? throw new NBertException($"model_type '{Quote(modelType!)}' is not supported: bert, distilbert, roberta and electra are.");
        var extra = new JsonObject();
        foreach (var (k, v) in f.Root)
            if (!(family == ModelFamily.DistilBert ? KnownDistilBert : Known).Contains(k) && !(family == ModelFamily.Electra && k == "embedding_size"))
                extra[k] = v?.DeepClone();
        string? ptype = f.OptionalString("problem_type");
        if (ptype is not (null or "regression" or "single_label_classification" or "multi_label_classification"))
            throw new NBertException($"problem_type '{Quote(ptype)}' is not one of regression, single_label_classification, multi_label_classification.");
        if (family == ModelFamily.DistilBert) return ParseDistilBert(f, extra, ptype);
        // ElectraConfig's defaults (electra-small's discriminator) where its fields are missing; BertConfig's otherwise.
        bool electra = family == ModelFamily.Electra;
        int hidden = f.Int("hidden_size", electra ? 256 : c.HiddenSize);
        c = c with
        {
            VocabSize = f.Int("vocab_size", c.VocabSize),
            HiddenSize = hidden,
            EmbeddingSize = electra ? f.Int("embedding_size", 128) : null,
            NumHiddenLayers = f.Int("num_hidden_layers", c.NumHiddenLayers),
            NumAttentionHeads = f.Int("num_attention_heads", electra ? 4 : c.NumAttentionHeads),
            IntermediateSize = f.Int("intermediate_size", electra ? 1024 : c.IntermediateSize),
            HiddenAct = f.String("hidden_act", c.HiddenAct),
            HiddenDropoutProb = f.Double("hidden_dropout_prob", c.HiddenDropoutProb),
            AttentionProbsDropoutProb = f.Double("attention_probs_dropout_prob", c.AttentionProbsDropoutProb),
            MaxPositionEmbeddings = f.Int("max_position_embeddings", c.MaxPositionEmbeddings),
            TypeVocabSize = f.Int("type_vocab_size", c.TypeVocabSize),
            InitializerRange = f.Double("initializer_range", c.InitializerRange),
            LayerNormEps = f.Double("layer_norm_eps", c.LayerNormEps),
            PadTokenId = f.OptionalInt("pad_token_id") ?? (family == ModelFamily.Roberta ? 1 : 0),
            PositionEmbeddingType = f.OptionalString("position_embedding_type") ?? c.PositionEmbeddingType,
            ClassifierDropout = f.OptionalDouble("classifier_dropout"),
            Id2Label = Labels(f, hidden),
            ProblemType = ptype,
            Architectures = f.OptionalStrings("architectures") ?? [],
            TieWordEmbeddings = f.Bool("tie_word_embeddings", true),
            Extra = extra,
            Family = family,
        };
        c.Validate();
        return c;
    }

    /// <summary>DistilBertConfig's fields (its own names, its defaults) as the one config: <c>dim</c> is the hidden size,
    /// <c>hidden_dim</c> the feed-forward width, <c>seq_classif_dropout</c> the classifier dropout; no token types, and
    /// LayerNorm's epsilon fixed at 1e-12 as DistilBERT's modeling code has it.</summary>
    private static BertConfig ParseDistilBert(Fields f, JsonObject extra, string? ptype)
    {
        int hidden = f.Int("dim", 768);
        _ = f.Bool("sinusoidal_pos_embds", false); // kept in Extra (see SinusoidalPositions); must be a boolean
        var c = new BertConfig
        {
            Family = ModelFamily.DistilBert,
            VocabSize = f.Int("vocab_size", 30522),
            HiddenSize = hidden,
            NumHiddenLayers = f.Int("n_layers", 6),
            NumAttentionHeads = f.Int("n_heads", 12),
            IntermediateSize = f.Int("hidden_dim", 3072),
            HiddenAct = f.String("activation", "gelu"),
            HiddenDropoutProb = f.Double("dropout", 0.1),
            AttentionProbsDropoutProb = f.Double("attention_dropout", 0.1),
            MaxPositionEmbeddings = f.Int("max_position_embeddings", 512),
            TypeVocabSize = 0,
            InitializerRange = f.Double("initializer_range", 0.02),
            LayerNormEps = 1e-12,
            PadTokenId = f.OptionalInt("pad_token_id") ?? 0,
            ClassifierDropout = f.Double("seq_classif_dropout", 0.2),
            QaDropout = f.Double("qa_dropout", 0.1),
            Id2Label = Labels(f, hidden),
            ProblemType = ptype,
            Architectures = f.OptionalStrings("architectures") ?? [],
            TieWordEmbeddings = f.Bool("tie_word_embeddings", true),
            Extra = extra,
        };
        c.Validate();
        return c;
    }

    /// <summary>id2label when given (keys "0".."n-1"), else num_labels (default 2) generic names, made only
    /// when read: a config can ask for many labels in a few bytes, and that alone allocates nothing.</summary>
    private static IReadOnlyList<string> Labels(Fields f, int hidden)
    {
        if (f.Has("id2label", out var node) && !Fields.IsNull(node))
        {
            if (node is not JsonObject map) throw new NBertException($"id2label must be an object of label names by id, not {Fields.Describe(node)}.");
            if (map.Count > 0)
            {
                var labels = new string[map.Count];
                foreach (var (k, v) in map)
                {
                    if (!int.TryParse(k, NumberStyles.None, CultureInfo.InvariantCulture, out int id) || id >= labels.Length || labels[id] is not null)
                        throw new NBertException($"id2label key '{Quote(k)}' is not one of 0..{labels.Length - 1} (each once).");
                    labels[id] = Fields.IsString(v) ? v!.GetValue<string>() : throw new NBertException($"id2label['{k}'] must be a label name, not {Fields.Describe(v)}.");
                }
                return labels;
            }
        }
        int n = f.OptionalInt("num_labels") ?? 2;
        if (n < 1) throw new NBertException($"num_labels must be positive, not {n}.");
        CheckArray("classifier.weight", "num_labels", n, "hidden_size", hidden);
        return new GenericLabels(n);
    }

    /// <summary>LABEL_0, LABEL_1, ...: transformers' names for labels a config does not name.</summary>
    private sealed class GenericLabels(int count) : IReadOnlyList<string>
    {
        public int Count => count;
        public string this[int index] => (uint)index < (uint)count ? $"LABEL_{index}" : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<string> GetEnumerator()
        {
            for (int i = 0; i < count; i++) yield return $"LABEL_{i}";
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Typed reads of config.json's fields: a value of the wrong JSON type is an error naming the field.</summary>
    private sealed class Fields(JsonObject root)
    {
        public JsonObject Root => root;

        /// <summary>Whether the field is there, with its value (C# null for JSON null).</summary>
        public bool Has(string name, out JsonNode? value) => root.TryGetPropertyValue(name, out value);

        public static bool IsNull(JsonNode? v) => v is null || v.GetValueKind() == JsonValueKind.Null;
        public static bool IsString(JsonNode? v) => v is JsonValue s && s.GetValueKind() == JsonValueKind.String;

        public int Int(string name, int fallback) => Has(name, out var v) ? AsInt(name, v) : fallback;
        public int? OptionalInt(string name) => Has(name, out var v) && !IsNull(v) ? AsInt(name, v) : null;
        public double Double(string name, double fallback) => Has(name, out var v) ? AsDouble(name, v) : fallback;
        public double? OptionalDouble(string name) => Has(name, out var v) && !IsNull(v) ? AsDouble(name, v) : null;
        public string String(string name, string fallback) => Has(name, out var v) ? AsString(name, v) : fallback;
        public string? OptionalString(string name) => Has(name, out var v) && !IsNull(v) ? AsString(name, v) : null;

        public bool Bool(string name, bool fallback) => !Has(name, out var v) ? fallback : IsNull(v) ? throw Wrong(name, "true or false", v) : v!.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Wrong(name, "true or false", v),
        };

        public string[]? OptionalStrings(string name)
        {
            if (!Has(name, out var v) || IsNull(v)) return null;
            if (v is not JsonArray a) throw Wrong(name, "a list of strings", v);
            return a.Select((x, i) => IsString(x) ? x!.GetValue<string>() : throw Wrong($"{name}[{i}]", "a string", x)).ToArray();
        }

        private static int AsInt(string name, JsonNode? v) =>
            v is JsonValue n && n.GetValueKind() == JsonValueKind.Number && n.TryGetValue(out int i) ? i : throw Wrong(name, "an integer", v);

        private static double AsDouble(string name, JsonNode? v) =>
            v is JsonValue n && n.GetValueKind() == JsonValueKind.Number && n.TryGetValue(out double d) && double.IsFinite(d) ? d
                : throw Wrong(name, "a finite number", v);

        private static string AsString(string name, JsonNode? v) => IsString(v) ? v!.GetValue<string>() : throw Wrong(name, "a string", v);

        private static NBertException Wrong(string name, string expected, JsonNode? v) => new($"{name} must be {expected}, not {Describe(v)}.");

        /// <summary>A JSON value as a message quotes it: null, or its text cut to a line.</summary>
        public static string Describe(JsonNode? v) => IsNull(v) ? "null" : Quote(v!.ToJsonString());
    }
}
