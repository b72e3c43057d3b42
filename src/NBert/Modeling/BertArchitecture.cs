namespace NBert.Modeling;

/// <summary>The BERT architectures, named as transformers' classes (the <c>architectures</c> of config.json).</summary>
public enum BertArchitecture
{
    BertModel,
    BertForPreTraining,
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertForQuestionAnswering,
}

/// <summary>How transformers initialises a parameter it did not load.</summary>
public enum Init { Normal, Zeros, Ones, EmbeddingWithPadding }

/// <summary>One parameter: its transformers name (without the <c>bert.</c> prefix), shape and initialisation.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, Init Init)
{
    /// <summary>Embeddings and encoder: the body every architecture needs from a checkpoint.</summary>
    public bool IsEncoder => Name.StartsWith("embeddings.", StringComparison.Ordinal) || Name.StartsWith("encoder.", StringComparison.Ordinal);
}

public static class BertArchitectures
{
    public static BertArchitecture Parse(string name) =>
        Enum.TryParse<BertArchitecture>(name, out var a) && Enum.IsDefined(a)
            ? a
            : throw new NotSupportedException($"Architecture '{name}' is not supported: {string.Join(", ", Enum.GetNames<BertArchitecture>())} are.");

    /// <summary>The architecture config.json names first; <see cref="BertArchitecture.BertModel"/> when it names none.</summary>
    public static BertArchitecture FromConfig(BertConfig config) =>
        config.Architectures.Count == 0 ? BertArchitecture.BertModel : Parse(config.Architectures[0]);

    /// <summary>Whether the architecture uses the pooler (transformers builds the others with add_pooling_layer=False).</summary>
    public static bool HasPooler(BertArchitecture a) => a is BertArchitecture.BertModel or BertArchitecture.BertForPreTraining
        or BertArchitecture.BertForNextSentencePrediction or BertArchitecture.BertForSequenceClassification;

    public static bool HasPrefix(BertArchitecture a) => a != BertArchitecture.BertModel;

    /// <summary>Every parameter of an architecture, in transformers' order.</summary>
    public static List<ParameterSpec> Parameters(BertConfig c, BertArchitecture a)
    {
        int h = c.HiddenSize;
        var specs = new List<ParameterSpec>
        {
            new("embeddings.word_embeddings.weight", [c.VocabSize, h], Init.EmbeddingWithPadding),
            new("embeddings.position_embeddings.weight", [c.MaxPositionEmbeddings, h], Init.Normal),
            new("embeddings.token_type_embeddings.weight", [c.TypeVocabSize, h], Init.Normal),
        };
        void LayerNorm(string prefix)
        {
            specs.Add(new($"{prefix}.weight", [h], Init.Ones));
            specs.Add(new($"{prefix}.bias", [h], Init.Zeros));
        }
        void Linear(string prefix, int outputs, int inputs)
        {
            specs.Add(new($"{prefix}.weight", [outputs, inputs], Init.Normal));
            specs.Add(new($"{prefix}.bias", [outputs], Init.Zeros));
        }
        LayerNorm("embeddings.LayerNorm");
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string l = $"encoder.layer.{i}";
            Linear($"{l}.attention.self.query", h, h);
            Linear($"{l}.attention.self.key", h, h);
            Linear($"{l}.attention.self.value", h, h);
            Linear($"{l}.attention.output.dense", h, h);
            LayerNorm($"{l}.attention.output.LayerNorm");
            Linear($"{l}.intermediate.dense", c.IntermediateSize, h);
            Linear($"{l}.output.dense", h, c.IntermediateSize);
            LayerNorm($"{l}.output.LayerNorm");
        }
        if (HasPooler(a)) Linear("pooler.dense", h, h);
        if (a is BertArchitecture.BertForPreTraining or BertArchitecture.BertForMaskedLM)
        {
            Linear("cls.predictions.transform.dense", h, h);
            LayerNorm("cls.predictions.transform.LayerNorm");
            if (!c.TieWordEmbeddings) specs.Add(new("cls.predictions.decoder.weight", [c.VocabSize, h], Init.Normal));
            specs.Add(new("cls.predictions.bias", [c.VocabSize], Init.Zeros));
        }
        if (a is BertArchitecture.BertForPreTraining or BertArchitecture.BertForNextSentencePrediction)
            Linear("cls.seq_relationship", 2, h);
        if (a is BertArchitecture.BertForSequenceClassification or BertArchitecture.BertForTokenClassification)
            Linear("classifier", c.NumLabels, h);
        if (a is BertArchitecture.BertForQuestionAnswering)
            Linear("qa_outputs", 2, h);
        return specs;
    }
}
