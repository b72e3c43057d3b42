using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using static NBert.NBertException;

namespace NBert.Schema;

/// <summary>
/// transformers' <c>BertConfig</c> (and the <c>PretrainedConfig</c> fields a BERT head uses), with the
/// same names in config.json and the same defaults. Unknown fields are kept and written back.
/// </summary>
public sealed partial record BertConfig
{
    /// <summary><c>vocab_size</c>: rows of the word embeddings (and columns of the masked-LM logits). Default 30522
    /// (bert-base-uncased).</summary>
    public int VocabSize { get; init; } = 30522;
    /// <summary><c>hidden_size</c>: the width of every hidden state, the last dimension of [batch, sequence, hidden].
    /// Default 768.</summary>
    public int HiddenSize { get; init; } = 768;
    /// <summary><c>num_hidden_layers</c>: encoder layers. Default 12.</summary>
    public int NumHiddenLayers { get; init; } = 12;
    /// <summary><c>num_attention_heads</c>: attention heads per layer; must divide <see cref="HiddenSize"/>. Default 12.</summary>
    public int NumAttentionHeads { get; init; } = 12;
    /// <summary><c>intermediate_size</c>: the width of each layer's feed-forward block. Default 3072.</summary>
    public int IntermediateSize { get; init; } = 3072;
    /// <summary>As written in config.json: gelu, gelu_new, gelu_pytorch_tanh, relu, silu (or swish).</summary>
    public string HiddenAct { get; init; } = "gelu";
    /// <summary><c>hidden_dropout_prob</c>: dropout on the embeddings and each sublayer's output while training (none at
    /// inference). Default 0.1.</summary>
    public double HiddenDropoutProb { get; init; } = 0.1;
    /// <summary><c>attention_probs_dropout_prob</c>: dropout on the attention probabilities while training. Default 0.1.</summary>
    public double AttentionProbsDropoutProb { get; init; } = 0.1;
    /// <summary><c>max_position_embeddings</c>: the longest sequence the model takes (a longer one is refused: truncate).
    /// Default 512.</summary>
    public int MaxPositionEmbeddings { get; init; } = 512;
    /// <summary><c>type_vocab_size</c>: how many token type ids (segments) there are; 2 for BERT's pairs.</summary>
    public int TypeVocabSize { get; init; } = 2;
    /// <summary><c>initializer_range</c>: standard deviation of the normal initialisation of parameters not loaded.
    /// Default 0.02.</summary>
    public double InitializerRange { get; init; } = 0.02;
    /// <summary><c>layer_norm_eps</c>: the epsilon of every LayerNorm. Default 1e-12.</summary>
    public double LayerNormEps { get; init; } = 1e-12;
    /// <summary><c>pad_token_id</c>: the padding id, whose word embedding is initialised to zeros. Default 0.</summary>
    public int PadTokenId { get; init; }
    /// <summary><c>position_embedding_type</c>: only <c>absolute</c> (the default) is supported.</summary>
    public string PositionEmbeddingType { get; init; } = "absolute";
    /// <summary>Dropout before the classifier; null means <see cref="HiddenDropoutProb"/>.</summary>
    public double? ClassifierDropout { get; init; }
    /// <summary>Label names by id (transformers' <c>id2label</c>); its count is the number of labels.</summary>
    public IReadOnlyList<string> Id2Label { get; init; } = ["LABEL_0", "LABEL_1"];
    /// <summary>null, <c>regression</c>, <c>single_label_classification</c> or <c>multi_label_classification</c>.</summary>
    public string? ProblemType { get; init; }
    /// <summary><c>architectures</c>: the transformers classes the checkpoint was saved from; the first decides what
    /// <c>BertPreTrainedModel.FromPretrained</c> builds (none: a
    /// <c>BertModel</c>).</summary>
    public IReadOnlyList<string> Architectures { get; init; } = [];
    /// <summary><c>tie_word_embeddings</c>: the masked-LM decoder shares the word embeddings' weight (so a checkpoint
    /// has no <c>cls.predictions.decoder.weight</c>). Default true.</summary>
    public bool TieWordEmbeddings { get; init; } = true;
    /// <summary>The other fields of config.json, kept so that saving loses nothing.</summary>
    public JsonObject Extra { get; init; } = new();
    /// <summary>The family (config.json's <c>model_type</c>): which checkpoint names and config fields the model has, and
    /// the few switches in which the one encoder differs by family (<see cref="ModelFamily"/>). Default BERT.</summary>
    public ModelFamily Family { get; init; } = ModelFamily.Bert;
    /// <summary>ELECTRA's <c>embedding_size</c>: the width of the embedding tables and their LayerNorm, projected to
    /// <see cref="HiddenSize"/> by <c>embeddings_project</c> when the two differ; null (every other family) means
    /// <see cref="HiddenSize"/>.</summary>
    public int? EmbeddingSize { get; init; }
    /// <summary>DistilBERT's <c>qa_dropout</c>: dropout before <c>qa_outputs</c> while training (BERT has none there). Default 0.1.</summary>
    public double QaDropout { get; init; } = 0.1;

    // ---- the switches by family (each the one place its difference is stated) ----

    /// <summary>Whether the embeddings add token type (segment) embeddings; DistilBERT has none (and ignores
    /// <c>token_type_ids</c>).</summary>
    public bool HasTokenTypes => Family != ModelFamily.DistilBert;

    /// <summary>The activation after the dense layer on the first token that sequence classification reads: BERT's pooler
    /// (tanh), DistilBERT's <c>pre_classifier</c> (ReLU), ELECTRA's <c>classifier.dense</c> (exact GELU, whatever
    /// <c>hidden_act</c> says: its <c>ElectraClassificationHead</c> calls <c>get_activation("gelu")</c>).</summary>
    public Activation PoolerActivation => Family switch
    {
        ModelFamily.DistilBert => Activation.Relu,
        ModelFamily.Electra => Activation.Gelu,
        _ => Activation.Tanh,
    };

    /// <summary>The width of the embedding tables and their LayerNorm: ELECTRA's <see cref="EmbeddingSize"/>, else
    /// <see cref="HiddenSize"/>.</summary>
    public int EmbeddingWidth => EmbeddingSize ?? HiddenSize;

    /// <summary>Whether the embeddings pass through ELECTRA's <c>embeddings_project</c> (a linear layer from
    /// <see cref="EmbeddingWidth"/> to <see cref="HiddenSize"/>) before the first layer: when the two widths differ.</summary>
    public bool ProjectsEmbeddings => EmbeddingWidth != HiddenSize;

    /// <summary>Whether dropout follows the attention's output layer (BERT's <c>BertSelfOutput</c>); DistilBERT's
    /// <c>out_lin</c> has none.</summary>
    public bool AttentionOutputDropout => Family != ModelFamily.DistilBert;

    /// <summary>DistilBERT's <c>sinusoidal_pos_embds</c>: the position table is initialised with fixed sines and cosines
    /// rather than at random (a trained checkpoint holds it either way).</summary>
    public bool SinusoidalPositions => Family == ModelFamily.DistilBert && Extra["sinusoidal_pos_embds"] is JsonValue v
        && v.GetValueKind() == JsonValueKind.True;

    /// <summary>The activation of the masked-LM head's transform: BERT's <c>hidden_act</c>, DistilBERT's <c>activation</c>,
    /// RoBERTa's and ELECTRA's exact GELU (<c>RobertaLMHead</c> calls <c>gelu</c>, <c>ElectraGeneratorPredictions</c>
    /// <c>get_activation("gelu")</c>, whatever the config says). The transform's output is <see cref="EmbeddingWidth"/> wide
    /// (ELECTRA's generator maps hidden_size back to embedding_size; the decoder is the word embeddings' shape).</summary>
    public Activation MaskedLmActivation => Family is ModelFamily.Roberta or ModelFamily.Electra ? Activation.Gelu : Activation;

    /// <summary>RoBERTa's position ids: <c>pad_token_id + 1</c> onwards over each sequence's tokens that are not padding,
    /// <c>pad_token_id</c> at padding (transformers' <c>create_position_ids_from_input_ids</c>); otherwise 0, 1, 2, ...</summary>
    public bool PositionsFromPadding => Family == ModelFamily.Roberta;

    /// <summary>The longest sequence the position table covers: <see cref="MaxPositionEmbeddings"/>, less RoBERTa's
    /// <c>pad_token_id + 1</c> offset (514 positions hold 512 tokens).</summary>
    public int MaxSequenceLength => PositionsFromPadding ? MaxPositionEmbeddings - PadTokenId - 1 : MaxPositionEmbeddings;

    /// <summary>The dropout on the first token before the sequence classifier's dense layer while training: RoBERTa's
    /// <c>RobertaClassificationHead</c> (and ELECTRA's <c>ElectraClassificationHead</c>) has one (then tanh, then the dropout before <c>out_proj</c>); BERT's pooler has none.</summary>
    public double PoolerInputDropout(BertArchitecture architecture) =>
        Family is ModelFamily.Roberta or ModelFamily.Electra && architecture == BertArchitecture.BertForSequenceClassification ? HeadDropout(architecture) : 0;

    /// <summary>The dropout probability before <paramref name="architecture"/>'s output layer while training, as transformers
    /// applies it: BERT's classifiers <c>classifier_dropout</c> (else <c>hidden_dropout_prob</c>) and none before
    /// <c>qa_outputs</c>; DistilBERT's <c>seq_classif_dropout</c>, <c>dropout</c> and <c>qa_dropout</c>.</summary>
    public double HeadDropout(BertArchitecture architecture) => (Family, architecture) switch
    {
        (ModelFamily.DistilBert, BertArchitecture.BertForSequenceClassification) => ClassifierDropout ?? 0.2,
        (ModelFamily.DistilBert, BertArchitecture.BertForTokenClassification) => HiddenDropoutProb,
        (ModelFamily.DistilBert, BertArchitecture.BertForQuestionAnswering) => QaDropout,
        (_, BertArchitecture.BertForSequenceClassification or BertArchitecture.BertForTokenClassification) => ClassifierDropout ?? HiddenDropoutProb,
        _ => 0,
    };

    /// <summary>transformers' <c>num_labels</c>: the count of <see cref="Id2Label"/>, the classifier's outputs.</summary>
    public int NumLabels => Id2Label.Count;

    /// <summary>Label ids by name (transformers' <c>label2id</c>), the inverse of <see cref="Id2Label"/> (a name given to
    /// several ids maps to the first).</summary>
    public IReadOnlyDictionary<string, int> Label2Id
    {
        get
        {
            var map = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < Id2Label.Count; i++) map.TryAdd(Id2Label[i], i);
            return map;
        }
    }

    /// <summary>The width of one attention head, <see cref="HiddenSize"/> / <see cref="NumAttentionHeads"/>
    /// (transformers' <c>attention_head_size</c>).</summary>
    public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>The activation <see cref="HiddenAct"/> names.</summary>
    public Activation Activation => Activations.TryGetValue(HiddenAct, out var a) ? a
        : throw new NBertException($"{Field("hidden_act")} '{Quote(HiddenAct)}' is not supported ({string.Join(", ", Activations.Keys)} are).");

    /// <summary>A field's name in this family's config.json (a DistilBERT's <c>hidden_size</c> is <c>dim</c>), for messages.</summary>
    internal string Field(string bertName) => Family != ModelFamily.DistilBert ? bertName : bertName switch
    {
        "hidden_size" => "dim",
        "num_hidden_layers" => "n_layers",
        "num_attention_heads" => "n_heads",
        "intermediate_size" => "hidden_dim",
        "hidden_act" => "activation",
        "hidden_dropout_prob" => "dropout",
        "attention_probs_dropout_prob" => "attention_dropout",
        _ => bertName,
    };

    private static readonly Dictionary<string, Activation> Activations = new(StringComparer.Ordinal)
    {
        ["gelu"] = Activation.Gelu, ["gelu_new"] = Activation.GeluTanh, ["gelu_pytorch_tanh"] = Activation.GeluTanh,
        ["gelu_fast"] = Activation.GeluTanh, ["relu"] = Activation.Relu, ["silu"] = Activation.Silu, ["swish"] = Activation.Silu,
        ["tanh"] = Activation.Tanh,
    };

    private static readonly string[] Known =
    [
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
        "initializer_range", "layer_norm_eps", "pad_token_id", "position_embedding_type", "classifier_dropout",
        "id2label", "label2id", "num_labels", "problem_type", "architectures", "tie_word_embeddings", "model_type",
    ];

    /// <summary>DistilBERT's own names for the fields it has (<c>DistilBertConfig</c>), and the ones it shares.</summary>
    private static readonly string[] KnownDistilBert =
    [
        "vocab_size", "dim", "n_layers", "n_heads", "hidden_dim", "activation", "dropout", "attention_dropout", "max_position_embeddings",
        "initializer_range", "pad_token_id", "seq_classif_dropout", "qa_dropout", "id2label", "label2id", "num_labels", "problem_type",
        "architectures", "tie_word_embeddings", "model_type",
    ];

    /// <summary>
    /// Checks that a model can be built and run from this config: positive sizes, each tensor small enough
    /// for one array, hidden_size a multiple of the heads, dropout probabilities in [0, 1], a positive
    /// finite layer_norm_eps (zero or less gives NaN outputs), a supported activation and position
    /// embedding. Throws <see cref="NBertException"/> naming the field.
    /// </summary>
    public void Validate()
    {
        void Positive(string name, int v)
        {
            if (v <= 0) throw new NBertException($"{name} must be positive, not {v}.");
        }
        void Probability(string name, double? v)
        {
            if (v is double p && !(p >= 0 && p <= 1))
                throw new NBertException($"{name} must be a probability between 0 and 1, not {p.ToString(CultureInfo.InvariantCulture)}.");
        }
        Positive("vocab_size", VocabSize);
        Positive(Field("hidden_size"), HiddenSize);
        Positive(Field("num_hidden_layers"), NumHiddenLayers);
        Positive(Field("num_attention_heads"), NumAttentionHeads);
        Positive(Field("intermediate_size"), IntermediateSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (EmbeddingSize is int e) Positive("embedding_size", e);
        if (HasTokenTypes) Positive(Field("type_vocab_size"), TypeVocabSize);
        if (NumLabels < 1) throw new NBertException("id2label must name at least one label.");
        if (HiddenSize % NumAttentionHeads != 0)
            throw new NBertException($"{Field("hidden_size")} {HiddenSize} is not a multiple of {Field("num_attention_heads")} {NumAttentionHeads}.");
        string width = EmbeddingSize is null ? Field("hidden_size") : "embedding_size";
        CheckArray("embeddings.word_embeddings.weight", "vocab_size", VocabSize, width, EmbeddingWidth);
        CheckArray("embeddings.position_embeddings.weight", "max_position_embeddings", MaxPositionEmbeddings, width, EmbeddingWidth);
        CheckArray("embeddings.token_type_embeddings.weight", Field("type_vocab_size"), TypeVocabSize, width, EmbeddingWidth);
        CheckArray("embeddings_project.weight", Field("hidden_size"), HiddenSize, width, EmbeddingWidth);
        CheckArray("the fused query, key and value weight", Field("hidden_size"), 3L * HiddenSize, Field("hidden_size"), HiddenSize);
        CheckArray("intermediate.dense.weight", Field("intermediate_size"), IntermediateSize, Field("hidden_size"), HiddenSize);
        CheckArray("classifier.weight", "num_labels", NumLabels, Field("hidden_size"), HiddenSize);
        Probability(Field("hidden_dropout_prob"), HiddenDropoutProb);
        Probability(Field("attention_probs_dropout_prob"), AttentionProbsDropoutProb);
        Probability(Family == ModelFamily.DistilBert ? "seq_classif_dropout" : "classifier_dropout", ClassifierDropout);
        Probability("qa_dropout", QaDropout);
        if (!(LayerNormEps > 0 && double.IsFinite(LayerNormEps)))
            throw new NBertException($"layer_norm_eps must be a positive number, not {LayerNormEps.ToString(CultureInfo.InvariantCulture)}: " +
                "LayerNorm would divide by zero or take the root of a negative number, and every output would be NaN.");
        if (!(InitializerRange >= 0 && double.IsFinite(InitializerRange)))
            throw new NBertException($"initializer_range must be a non-negative number, not {InitializerRange.ToString(CultureInfo.InvariantCulture)}.");
        if (PositionsFromPadding && PadTokenId < 0)
            throw new NBertException($"pad_token_id {PadTokenId} must not be negative: RoBERTa counts positions from it.");
        if (PositionsFromPadding && MaxSequenceLength < 1)
            throw new NBertException($"max_position_embeddings {MaxPositionEmbeddings} leaves no position for a token: RoBERTa's positions start at pad_token_id + 1 = {PadTokenId + 1}.");
        if (PadTokenId >= VocabSize)
            throw new NBertException($"pad_token_id {PadTokenId} is outside the vocabulary (vocab_size {VocabSize}).");
        if (PositionEmbeddingType != "absolute")
            throw new NBertException($"position_embedding_type '{Quote(PositionEmbeddingType)}' is not supported: only 'absolute' BERT is.");
        _ = Activation; // throws for an unknown hidden_act
    }

    /// <summary>Refuses a tensor of <paramref name="rows"/> x <paramref name="columns"/> values that no .NET
    /// array can hold, before anything is allocated, naming the two config fields that size it.</summary>
    internal static void CheckArray(string tensor, string rowField, long rows, string columnField, long columns)
    {
        if (rows * columns > Array.MaxLength)
            throw new NBertException($"{rowField} {rows} x {columnField} {columns} = {rows * columns:N0} values for {tensor}, " +
                $"more than one array holds ({Array.MaxLength:N0}): {rowField} or {columnField} is far too large.");
    }

    /// <summary>config.json as transformers writes it for the model's family (the kept unknown fields included).</summary>
    public string ToJson()
    {
        var root = Family == ModelFamily.DistilBert ? DistilBertJson() : BertJson();
        foreach (var (k, v) in Extra)
            if (!root.ContainsKey(k)) root[k] = v?.DeepClone();
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>id2label and label2id as transformers writes them.</summary>
    private (JsonObject Id2Label, JsonObject Label2Id) LabelMaps()
    {
        var id2label = new JsonObject();
        var label2id = new JsonObject();
        for (int i = 0; i < Id2Label.Count; i++)
        {
            id2label[i.ToString(CultureInfo.InvariantCulture)] = Id2Label[i];
            label2id[Id2Label[i]] = i;
        }
        return (id2label, label2id);
    }

    /// <summary>DistilBertConfig's fields, with its names (<c>dim</c>, <c>n_layers</c>, ...).</summary>
    private JsonObject DistilBertJson()
    {
        var root = new JsonObject();
        var (id2label, label2id) = LabelMaps();
        root["activation"] = HiddenAct;
        if (Architectures.Count > 0) root["architectures"] = new JsonArray(Architectures.Select(a => (JsonNode)a).ToArray());
        root["attention_dropout"] = AttentionProbsDropoutProb;
        root["dim"] = HiddenSize;
        root["dropout"] = HiddenDropoutProb;
        root["hidden_dim"] = IntermediateSize;
        root["id2label"] = id2label;
        root["initializer_range"] = InitializerRange;
        root["label2id"] = label2id;
        root["max_position_embeddings"] = MaxPositionEmbeddings;
        root["model_type"] = "distilbert";
        root["n_heads"] = NumAttentionHeads;
        root["n_layers"] = NumHiddenLayers;
        root["pad_token_id"] = PadTokenId;
        if (ProblemType is not null) root["problem_type"] = ProblemType;
        root["qa_dropout"] = QaDropout;
        root["seq_classif_dropout"] = ClassifierDropout ?? 0.2;
        root["sinusoidal_pos_embds"] = SinusoidalPositions;
        root["tie_weights_"] = Extra["tie_weights_"]?.DeepClone() ?? true;
        root["tie_word_embeddings"] = TieWordEmbeddings;
        root["vocab_size"] = VocabSize;
        return root;
    }

    private JsonObject BertJson()
    {
        var root = new JsonObject();
        if (Architectures.Count > 0) root["architectures"] = new JsonArray(Architectures.Select(a => (JsonNode)a).ToArray());
        root["attention_probs_dropout_prob"] = AttentionProbsDropoutProb;
        root["classifier_dropout"] = ClassifierDropout;
        root["hidden_act"] = HiddenAct;
        root["hidden_dropout_prob"] = HiddenDropoutProb;
        root["hidden_size"] = HiddenSize;
        var (id2label, label2id) = LabelMaps();
        root["id2label"] = id2label;
        root["initializer_range"] = InitializerRange;
        root["intermediate_size"] = IntermediateSize;
        root["label2id"] = label2id;
        root["layer_norm_eps"] = LayerNormEps;
        root["max_position_embeddings"] = MaxPositionEmbeddings;
        if (Family == ModelFamily.Electra) root["embedding_size"] = EmbeddingWidth;
        root["model_type"] = FamilyNames.ModelType(Family);
        root["num_attention_heads"] = NumAttentionHeads;
        root["num_hidden_layers"] = NumHiddenLayers;
        root["pad_token_id"] = PadTokenId;
        root["position_embedding_type"] = PositionEmbeddingType;
        if (ProblemType is not null) root["problem_type"] = ProblemType;
        root["tie_word_embeddings"] = TieWordEmbeddings;
        root["type_vocab_size"] = TypeVocabSize;
        root["vocab_size"] = VocabSize;
        return root;
    }

    /// <summary>Writes <see cref="ToJson"/> to the file <paramref name="path"/> (such as <c>dir/config.json</c>) under a
    /// temporary name, renamed when complete (<see cref="AtomicFile"/>).</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson() + "\n");
}
