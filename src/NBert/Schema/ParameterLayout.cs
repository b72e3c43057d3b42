namespace NBert.Schema;

/// <summary>
/// Where one parameter lives in the flat buffers a training model keeps (values, gradients, optimiser moments, all in
/// the same <see cref="ParameterLayout"/>). <see cref="Name"/> is the model's name (without the <c>bert.</c> prefix),
/// <see cref="CheckpointName"/> the name transformers gives it in this architecture.
/// </summary>
public sealed record ParameterSlot(string Name, string CheckpointName, int[] Shape, int Offset, int Length)
{
    /// <summary>transformers' default parameter groups: no weight decay for biases and LayerNorm weights (told by the model
    /// name, which is BERT's in every family: DistilBERT's <c>sa_layer_norm.weight</c> is a LayerNorm weight too).</summary>
    public bool Decays => !Name.Contains("bias", StringComparison.Ordinal) && !Name.Contains("LayerNorm.weight", StringComparison.Ordinal);
}

/// <summary>A linear layer y = x · Wᵀ + b: its weight [<see cref="Outputs"/>, <see cref="Inputs"/>] and bias, each one
/// slot or several adjacent ones stacked along the outputs (query, key and value as one [3h, h] layer).</summary>
public sealed record LinearParameters(IReadOnlyList<ParameterSlot> Weights, IReadOnlyList<ParameterSlot> Biases, int Outputs, int Inputs)
{
    /// <summary>The weight's first value in the flat layout (the parts are adjacent).</summary>
    public int WeightOffset => Weights[0].Offset;
    /// <summary>The bias's first value in the flat layout (the parts are adjacent).</summary>
    public int BiasOffset => Biases[0].Offset;
}

/// <summary>A LayerNorm's weight (γ) and bias (β).</summary>
public sealed record NormParameters(ParameterSlot Weight, ParameterSlot Bias);

/// <summary>One encoder layer (<c>encoder.layer.N</c>): self-attention's query/key/value as one linear layer, its
/// output dense and LayerNorm, the intermediate (feed-forward) dense, the output dense and LayerNorm.</summary>
public sealed record EncoderLayerParameters(LinearParameters Qkv, LinearParameters AttentionOutput, NormParameters AttentionNorm,
    LinearParameters Intermediate, LinearParameters Output, NormParameters OutputNorm);

/// <summary>The embeddings: word, position and token-type tables (none in DistilBERT), then a LayerNorm, then (ELECTRA with
/// <c>embedding_size</c> != <c>hidden_size</c>) the <c>embeddings_project</c> linear layer to the hidden size.</summary>
public sealed record EmbeddingParameters(ParameterSlot Word, ParameterSlot Position, ParameterSlot? TokenType, NormParameters Norm)
{
    /// <summary>ELECTRA's <c>embeddings_project</c> [hidden_size, embedding_size]; null when the embeddings are already hidden_size wide.</summary>
    public LinearParameters? Projection { get; init; }
}

/// <summary>ELECTRA's discriminator (<c>discriminator_predictions</c>): <c>dense</c> [h, h], the config's activation, and
/// <c>dense_prediction</c> [1, h], on every token.</summary>
public sealed record DiscriminatorParameters(LinearParameters Dense, LinearParameters Prediction);

/// <summary>The masked-LM head (<c>cls.predictions</c>): transform dense, LayerNorm, and the decoder, whose weight is the
/// word embeddings when they are tied.</summary>
public sealed record MaskedLmParameters(LinearParameters Transform, NormParameters Norm, LinearParameters Decoder);

/// <summary>
/// The one list of a model's parameters: every parameter of an architecture (<see cref="BertArchitectures.Parameters"/>)
/// in transformers' order, except that each layer's query, key and value weights (then biases) are adjacent, so that
/// they are one [3h, h] linear layer in place; with each parameter's offset in one flat buffer, and the parameters
/// grouped by the step of the forward pass that uses them. The forward and backward passes reach parameters only
/// through this.
/// </summary>
public sealed class ParameterLayout
{
    /// <summary>The config the shapes come from.</summary>
    public BertConfig Config { get; }
    /// <summary>The architecture, which decides the heads and the checkpoint names.</summary>
    public BertArchitecture Architecture { get; }
    /// <summary>Every parameter in layout order.</summary>
    public IReadOnlyList<ParameterSlot> Slots { get; }
    /// <summary>Values in all: the length of a flat buffer for this layout.</summary>
    public int Length { get; }
    /// <summary>The embeddings.</summary>
    public EmbeddingParameters Embeddings { get; }
    /// <summary>The encoder layers, bottom up.</summary>
    public IReadOnlyList<EncoderLayerParameters> Layers { get; }
    /// <summary>The pooler's dense layer (then tanh); null without a pooling layer.</summary>
    public LinearParameters? Pooler { get; }
    /// <summary>The masked-LM head, for pre-training and masked LM.</summary>
    public MaskedLmParameters? MaskedLm { get; }
    /// <summary>The next-sentence head (<c>cls.seq_relationship</c>), for pre-training and next-sentence prediction.</summary>
    public LinearParameters? NextSentence { get; }
    /// <summary>The classifier (<c>classifier</c>) of sequence and token classification.</summary>
    public LinearParameters? Classifier { get; }
    /// <summary>Question answering's start and end logits (<c>qa_outputs</c>, [2, h]).</summary>
    public LinearParameters? QaOutputs { get; }
    /// <summary>ELECTRA's discriminator, for its pre-training head.</summary>
    public DiscriminatorParameters? Discriminator { get; }

    private readonly Dictionary<string, ParameterSlot> _byName;

    /// <summary>The layout of <paramref name="architecture"/> for <paramref name="config"/>; <paramref name="addPoolingLayer"/>
    /// false leaves out a <see cref="BertArchitecture.BertModel"/>'s pooler (see <see cref="BertArchitectures.Parameters"/>).</summary>
    public ParameterLayout(BertConfig config, BertArchitecture architecture, bool addPoolingLayer = true)
    {
        Config = config;
        Architecture = architecture;
        var specs = BertArchitectures.Parameters(config, architecture, addPoolingLayer);
        var ordered = new List<ParameterSpec>(specs.Count);
        foreach (var spec in specs)
        {
            if (spec.Name.EndsWith(".attention.self.query.weight", StringComparison.Ordinal))
            {
                string l = spec.Name[..^"query.weight".Length];
                foreach (var suffix in (ReadOnlySpan<string>)["query.weight", "key.weight", "value.weight", "query.bias", "key.bias", "value.bias"])
                    ordered.Add(specs.First(s => s.Name == l + suffix));
            }
            else if (!spec.Name.Contains(".attention.self.", StringComparison.Ordinal))
                ordered.Add(spec);
        }
        var slots = new List<ParameterSlot>(ordered.Count);
        int offset = 0;
        foreach (var spec in ordered)
        {
            int length = spec.Shape.Aggregate(1, (a, d) => checked(a * d));
            slots.Add(new ParameterSlot(spec.Name, FamilyNames.CheckpointName(spec.Name, architecture, config.Family), spec.Shape, offset, length));
            offset = checked(offset + length);
        }
        Slots = slots;
        Length = offset;
        _byName = slots.ToDictionary(s => s.Name, StringComparer.Ordinal);

        NormParameters Norm(string prefix) => new(this[prefix + ".weight"], this[prefix + ".bias"]);
        LinearParameters Linear(params string[] prefixes)
        {
            var weights = prefixes.Select(p => this[p + ".weight"]).ToArray();
            return new LinearParameters(weights, prefixes.Select(p => this[p + ".bias"]).ToArray(), weights.Sum(w => w.Shape[0]), weights[0].Shape[1]);
        }
        LinearParameters? Optional(string prefix) => _byName.ContainsKey(prefix + ".weight") ? Linear(prefix) : null;

        Embeddings = new EmbeddingParameters(this["embeddings.word_embeddings.weight"], this["embeddings.position_embeddings.weight"],
            _byName.GetValueOrDefault("embeddings.token_type_embeddings.weight"), Norm("embeddings.LayerNorm"))
        {
            Projection = Optional("embeddings_project"),
        };
        Layers = Enumerable.Range(0, config.NumHiddenLayers).Select(i =>
        {
            string l = $"encoder.layer.{i}";
            return new EncoderLayerParameters(
                Linear($"{l}.attention.self.query", $"{l}.attention.self.key", $"{l}.attention.self.value"),
                Linear($"{l}.attention.output.dense"), Norm($"{l}.attention.output.LayerNorm"),
                Linear($"{l}.intermediate.dense"), Linear($"{l}.output.dense"), Norm($"{l}.output.LayerNorm"));
        }).ToArray();
        Pooler = Optional("pooler.dense");
        if (_byName.ContainsKey("cls.predictions.bias"))
        {
            var decoder = config.TieWordEmbeddings ? Embeddings.Word : this["cls.predictions.decoder.weight"];
            MaskedLm = new MaskedLmParameters(Linear("cls.predictions.transform.dense"), Norm("cls.predictions.transform.LayerNorm"),
                new LinearParameters([decoder], [this["cls.predictions.bias"]], config.VocabSize, config.EmbeddingWidth));
        }
        NextSentence = Optional("cls.seq_relationship");
        Classifier = Optional("classifier");
        QaOutputs = Optional("qa_outputs");
        if (Optional("discriminator_predictions.dense") is { } dense)
            Discriminator = new DiscriminatorParameters(dense, Linear("discriminator_predictions.dense_prediction"));
    }

    /// <summary>A parameter's slot by the model's name (<c>encoder.layer.0.output.dense.weight</c>).</summary>
    /// <exception cref="KeyNotFoundException">No parameter has that name in this layout.</exception>
    public ParameterSlot this[string name] =>
        _byName.TryGetValue(name, out var s) ? s : throw new KeyNotFoundException($"No parameter '{name}' in {Architecture}.");

    /// <summary>Whether the layout has a parameter of that model name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);
}
