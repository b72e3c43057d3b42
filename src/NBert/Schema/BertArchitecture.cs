namespace NBert.Schema;

/// <summary>The BERT architectures, named as transformers' classes (the <c>architectures</c> of config.json).</summary>
public enum BertArchitecture
{
    /// <summary>The body alone: embeddings, encoder and (usually) pooler; see <c>BertModel</c>.</summary>
    BertModel,
    /// <summary>Body with the masked-LM and next-sentence heads, as BERT was pre-trained; see <c>BertForPreTraining</c>.</summary>
    BertForPreTraining,
    /// <summary>Body with the masked-LM head (fill-mask); see <c>BertForMaskedLM</c>.</summary>
    BertForMaskedLM,
    /// <summary>Body with the next-sentence head; see <c>BertForNextSentencePrediction</c>.</summary>
    BertForNextSentencePrediction,
    /// <summary>Body with a linear classifier on the pooled output (text classification, regression); see
    /// <c>BertForSequenceClassification</c>.</summary>
    BertForSequenceClassification,
    /// <summary>Body with a linear classifier on every token (NER); see <c>BertForTokenClassification</c>.</summary>
    BertForTokenClassification,
    /// <summary>Body with start and end logits per token (extractive QA); see <c>BertForQuestionAnswering</c>.</summary>
    BertForQuestionAnswering,
}

/// <summary>How transformers initialises a parameter it did not load (<c>BertPreTrainedModel._init_weights</c>).</summary>
public enum Init
{
    /// <summary>Normal with mean 0 and standard deviation <see cref="BertConfig.InitializerRange"/> (linear weights,
    /// position and token-type embeddings).</summary>
    Normal,
    /// <summary>All zeros (biases, LayerNorm bias).</summary>
    Zeros,
    /// <summary>All ones (LayerNorm weight).</summary>
    Ones,
    /// <summary>As <see cref="Normal"/>, with the row of <see cref="BertConfig.PadTokenId"/> zeroed (word embeddings).</summary>
    EmbeddingWithPadding,
    /// <summary>DistilBERT's fixed sinusoidal positions (<c>sinusoidal_pos_embds</c>): sin(pos / 10000^(2⌊j/2⌋/dim)) in
    /// the even columns, cos in the odd ones.</summary>
    Sinusoidal,
}

/// <summary>One parameter: its transformers name (without the <c>bert.</c> prefix), shape and initialisation.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, Init Init)
{
    /// <summary>Embeddings and encoder: the body every architecture needs from a checkpoint.</summary>
    public bool IsEncoder => Name.StartsWith("embeddings.", StringComparison.Ordinal) || Name.StartsWith("embeddings_project.", StringComparison.Ordinal)
        || Name.StartsWith("encoder.", StringComparison.Ordinal);
}

/// <summary>Facts about each <see cref="BertArchitecture"/>: its name, parameters, size and pooler.</summary>
public static class BertArchitectures
{
    /// <summary>The architecture named exactly as its transformers class (<c>BertForMaskedLM</c>); an unknown name is a
    /// <see cref="NotSupportedException"/> that lists the supported ones.</summary>
    public static BertArchitecture Parse(string name) =>
        Enum.TryParse<BertArchitecture>(name, out var a) && Enum.IsDefined(a)
            ? a
            : throw new NotSupportedException($"Architecture '{name}' is not supported: {string.Join(", ", Enum.GetNames<BertArchitecture>())} are.");

    /// <summary>The architecture config.json names first, in the config's family (<c>DistilBertForMaskedLM</c> is
    /// <see cref="BertArchitecture.BertForMaskedLM"/> of a DistilBERT); <see cref="BertArchitecture.BertModel"/> when it
    /// names none. One NBert does not have is an <see cref="NBertException"/> naming the field.</summary>
    public static BertArchitecture FromConfig(BertConfig config)
    {
        if (config.Architectures.Count == 0) return BertArchitecture.BertModel;
        string name = config.Architectures[0];
        foreach (var a in Enum.GetValues<BertArchitecture>())
            if (FamilyNames.Supports(config.Family, a) && FamilyNames.ClassName(config.Family, a) == name) return a;
        var supported = Enum.GetValues<BertArchitecture>().Where(a => FamilyNames.Supports(config.Family, a)).Select(a => FamilyNames.ClassName(config.Family, a));
        throw new NBertException($"architectures names '{NBertException.Quote(name)}', which NBert does not have for model_type " +
            $"'{FamilyNames.ModelType(config.Family)}': {string.Join(", ", supported)} are supported.");
    }

    /// <summary>Whether config.json's first architecture is <paramref name="architecture"/> (in the config's family).</summary>
    public static bool Names(BertConfig config, BertArchitecture architecture) =>
        config.Architectures.Count > 0 && config.Architectures[0] == FamilyNames.ClassName(config.Family, architecture);

    /// <summary>How many parameters <paramref name="a"/> has for <paramref name="c"/>, counted without building
    /// anything; a double, because a hostile config can describe more than a long counts.</summary>
    public static double ParameterCount(BertConfig c, BertArchitecture a) => ParameterTerms(c, a).Sum(t => t.Count);

    /// <summary>The parameter count by the config field that scales each part, so that an error can name the
    /// field that makes a model too large.</summary>
    private static List<(string Field, double Count)> ParameterTerms(BertConfig c, BertArchitecture a)
    {
        // The same parts as Parameters below, counted: ELECTRA's pre-training head is the discriminator (no masked LM, no
        // next sentence), its generator's transform ends in the word table's width e, and the pooler is the family's.
        double h = c.HiddenSize, v = c.VocabSize, i = c.IntermediateSize, e = c.EmbeddingWidth;
        bool discriminator = a == BertArchitecture.BertForPreTraining && c.Family == ModelFamily.Electra;
        bool masked = (a is BertArchitecture.BertForPreTraining or BertArchitecture.BertForMaskedLM) && !discriminator;
        bool twoWay = a is BertArchitecture.BertForNextSentencePrediction or BertArchitecture.BertForQuestionAnswering
            || (a == BertArchitecture.BertForPreTraining && !discriminator);
        var terms = new List<(string, double)>
        {
            ("vocab_size", v * e + (masked ? v + (c.TieWordEmbeddings ? 0 : v * e) : 0)),
            ("max_position_embeddings", (double)c.MaxPositionEmbeddings * e),
            ("type_vocab_size", c.HasTokenTypes ? (double)c.TypeVocabSize * e : 0),
            ("num_hidden_layers", c.NumHiddenLayers * (4 * h * h + 2 * h * i + 9 * h + i)),
            ("hidden_size", 2 * e + (c.ProjectsEmbeddings ? e * h + h : 0) + (HasPooler(c, a) ? h * h + h : 0) + (masked ? h * e + 3 * e : 0)
                + (discriminator ? h * h + 2 * h + 1 : 0) + (twoWay ? 2 * h + 2 : 0)),
        };
        if (a is BertArchitecture.BertForSequenceClassification or BertArchitecture.BertForTokenClassification)
            terms.Add(("num_labels", c.NumLabels * (h + 1)));
        return terms;
    }

    /// <summary>
    /// Refuses, before anything is allocated, a model whose float32 parameters alone exceed the memory this
    /// process may use (a million layers, say), naming the config field that makes most of them.
    /// </summary>
    public static void EnsureFitsInMemory(BertConfig c, BertArchitecture a)
    {
        var terms = ParameterTerms(c, a);
        double count = terms.Sum(t => t.Count), bytes = 4 * count;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (bytes <= available) return;
        var (field, _) = terms.MaxBy(t => t.Count);
        string cause = field switch
        {
            "num_hidden_layers" => $"num_hidden_layers {c.NumHiddenLayers} (layers of hidden_size {c.HiddenSize}, intermediate_size {c.IntermediateSize})",
            "vocab_size" => $"vocab_size {c.VocabSize} (x hidden_size {c.HiddenSize})",
            "max_position_embeddings" => $"max_position_embeddings {c.MaxPositionEmbeddings} (x hidden_size {c.HiddenSize})",
            "type_vocab_size" => $"type_vocab_size {c.TypeVocabSize} (x hidden_size {c.HiddenSize})",
            "num_labels" => $"num_labels {c.NumLabels} (x hidden_size {c.HiddenSize})",
            _ => $"hidden_size {c.HiddenSize}",
        };
        throw new NBertException($"this config describes a {a} of {count:N0} parameters, {bytes / (1L << 30):N1} GiB as float32, " +
            $"more than the {available / (double)(1L << 30):N1} GiB of memory available; most of them come from {cause}.");
    }

    /// <summary>Whether the architecture uses the pooler (transformers builds the others with add_pooling_layer=False).</summary>
    public static bool HasPooler(BertArchitecture a) => a is BertArchitecture.BertModel or BertArchitecture.BertForPreTraining
        or BertArchitecture.BertForNextSentencePrediction or BertArchitecture.BertForSequenceClassification;

    /// <summary>Whether the architecture of <paramref name="c"/>'s family has the dense layer on the first token
    /// (<c>pooler.dense</c> by model name): BERT's pooler, DistilBERT's <c>pre_classifier</c> (sequence classification only).</summary>
    public static bool HasPooler(BertConfig c, BertArchitecture a) => c.Family switch
    {
        ModelFamily.DistilBert => a == BertArchitecture.BertForSequenceClassification,
        // RobertaModel's pooler; its sequence classifier's classifier.dense (the other heads are built without a pooler).
        ModelFamily.Roberta => a is BertArchitecture.BertModel or BertArchitecture.BertForSequenceClassification,
        // ElectraModel has no pooler: only the sequence classifier's classifier.dense fills the slot.
        ModelFamily.Electra => a == BertArchitecture.BertForSequenceClassification,
        _ => HasPooler(a),
    };

    /// <summary>
    /// The pooler rule, once: transformers' <c>add_pooling_layer</c> for a model of <paramref name="a"/> whose parameters
    /// (by model name) are <paramref name="names"/>. Every head is built with one (the pre-training, next-sentence and
    /// sequence-classification heads use it); a <see cref="BertArchitecture.BertModel"/> has one only when its
    /// checkpoint does (sentence-transformers' models and many ONNX exports have none), rather than a random one.
    /// </summary>
    public static bool AddPoolingLayer(BertArchitecture a, IEnumerable<string> names) =>
        a != BertArchitecture.BertModel || names.Any(n => n.StartsWith("pooler.", StringComparison.Ordinal));

    /// <summary>Every parameter of an architecture, in transformers' order. <paramref name="addPoolingLayer"/> false
    /// leaves out the pooler of a <see cref="BertArchitecture.BertModel"/> (transformers'
    /// <c>BertModel(config, add_pooling_layer=False)</c>); the heads that use the pooler always have it.</summary>
    public static List<ParameterSpec> Parameters(BertConfig c, BertArchitecture a, bool addPoolingLayer = true)
    {
        if (!addPoolingLayer && a != BertArchitecture.BertModel)
            throw new ArgumentException($"Only BertModel can be built without a pooling layer; {a} uses it.", nameof(addPoolingLayer));
        if (!FamilyNames.Supports(c.Family, a))
            throw new NBertException($"{FamilyNames.ClassName(c.Family, a)} does not exist: model_type '{FamilyNames.ModelType(c.Family)}' has no such head.");
        int h = c.HiddenSize, e = c.EmbeddingWidth;
        var specs = new List<ParameterSpec>
        {
            new("embeddings.word_embeddings.weight", [c.VocabSize, e], Init.EmbeddingWithPadding),
            new("embeddings.position_embeddings.weight", [c.MaxPositionEmbeddings, e],
                c.SinusoidalPositions ? Init.Sinusoidal : c.PositionsFromPadding ? Init.EmbeddingWithPadding : Init.Normal),
        };
        if (c.HasTokenTypes) specs.Add(new("embeddings.token_type_embeddings.weight", [c.TypeVocabSize, e], Init.Normal));
        void LayerNorm(string prefix, int width)
        {
            specs.Add(new($"{prefix}.weight", [width], Init.Ones));
            specs.Add(new($"{prefix}.bias", [width], Init.Zeros));
        }
        void Linear(string prefix, int outputs, int inputs)
        {
            specs.Add(new($"{prefix}.weight", [outputs, inputs], Init.Normal));
            specs.Add(new($"{prefix}.bias", [outputs], Init.Zeros));
        }
        LayerNorm("embeddings.LayerNorm", e);
        // ELECTRA's embeddings_project, from embedding_size to hidden_size (ElectraModel has it only when they differ).
        if (c.ProjectsEmbeddings) Linear("embeddings_project", h, e);
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            string l = $"encoder.layer.{i}";
            Linear($"{l}.attention.self.query", h, h);
            Linear($"{l}.attention.self.key", h, h);
            Linear($"{l}.attention.self.value", h, h);
            Linear($"{l}.attention.output.dense", h, h);
            LayerNorm($"{l}.attention.output.LayerNorm", h);
            Linear($"{l}.intermediate.dense", c.IntermediateSize, h);
            Linear($"{l}.output.dense", h, c.IntermediateSize);
            LayerNorm($"{l}.output.LayerNorm", h);
        }
        if (HasPooler(c, a) && addPoolingLayer) Linear("pooler.dense", h, h);
        if (a == BertArchitecture.BertForPreTraining && c.Family == ModelFamily.Electra)
        {
            // ElectraForPreTraining: the discriminator, dense + hidden_act + dense_prediction, one logit per token.
            Linear("discriminator_predictions.dense", h, h);
            Linear("discriminator_predictions.dense_prediction", 1, h);
            return specs;
        }
        if (a is BertArchitecture.BertForPreTraining or BertArchitecture.BertForMaskedLM)
        {
            // The transform ends in the word embeddings' width, the decoder's (ELECTRA's generator: embedding_size).
            Linear("cls.predictions.transform.dense", e, h);
            LayerNorm("cls.predictions.transform.LayerNorm", e);
            if (!c.TieWordEmbeddings) specs.Add(new("cls.predictions.decoder.weight", [c.VocabSize, e], Init.Normal));
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

    /// <summary>The name a parameter has in a transformers BERT checkpoint of this architecture.</summary>
    public static string CheckpointName(string parameter, BertArchitecture architecture) =>
        FamilyNames.CheckpointName(parameter, architecture, ModelFamily.Bert);
}
