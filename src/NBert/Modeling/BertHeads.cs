using NBert.Tensors;
using NBert.Schema;

namespace NBert.Modeling;

/// <summary>The bare encoder: <c>last_hidden_state</c> and, when it has a pooling layer
/// (<see cref="BertPreTrainedModel.HasPoolingLayer"/>), <c>pooler_output</c>.</summary>
public sealed class BertModel : BertPreTrainedModel
{
    internal BertModel(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertModel, p) { }

    /// <summary>Loads a model by directory or name as a BertModel: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertModel FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertModel)FromPretrained(nameOrPath, BertArchitecture.BertModel, seed, configure);

    /// <summary>Runs the encoder: last_hidden_state, pooler_output, and optionally every layer's hidden states and attentions.</summary>
    public new BaseModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (BaseModelOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions) =>
        new BaseModelOutput(RunBody(inputs, withPooler: HasPoolingLayer, outputHiddenStates, outputAttentions));
}

/// <summary>Shared by the heads: the masked-LM head that pre-training and masked-LM models both have.</summary>
public abstract class BertHeadModel : BertPreTrainedModel
{
    private protected BertHeadModel(BertConfig c, BertArchitecture a, IReadOnlyDictionary<string, FloatTensor> p) : base(c, a, p) { }

    /// <summary>
    /// Masked-LM logits [positions, vocab] at the given token positions (indices into batch·sequence) only:
    /// what fill-mask needs, without the vocabulary-sized product at every other position.
    /// </summary>
    public float[] PredictionLogitsAt(ModelInputs inputs, IReadOnlyList<int> positions)
    {
        if (Architecture is not (BertArchitecture.BertForPreTraining or BertArchitecture.BertForMaskedLM))
            throw new InvalidOperationException($"{Architecture} has no masked-LM head.");
        EnsureArray("the prediction logits (positions x vocab_size)", (long)positions.Count * Config.VocabSize);
        var hidden = RunBody(inputs, withPooler: false, outputHiddenStates: false, outputAttentions: false).LastHiddenState!.Data;
        int h = Config.HiddenSize;
        var rows = new float[positions.Count * h];
        for (int i = 0; i < positions.Count; i++) hidden.AsSpan(positions[i] * h, h).CopyTo(rows.AsSpan(i * h));
        return PredictionLogits(new FloatTensor(rows, positions.Count, 1, h));
    }

    /// <summary>The masked-LM head (<c>cls.predictions</c>): dense, activation, LayerNorm, then the decoder
    /// (the word embeddings when tied) plus <c>cls.predictions.bias</c>: [rows, vocab].</summary>
    private protected float[] PredictionLogits(FloatTensor hidden)
    {
        int rows = hidden.Shape[0] * hidden.Shape[1];
        var t = Dense(hidden.Data, rows, "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias");
        Activate(t);
        Kernels.LayerNorm(t, P("cls.predictions.transform.LayerNorm.weight").Data, P("cls.predictions.transform.LayerNorm.bias").Data,
            (float)Config.LayerNormEps);
        string decoder = Config.TieWordEmbeddings ? "embeddings.word_embeddings.weight" : "cls.predictions.decoder.weight";
        return Dense(t, rows, decoder, "cls.predictions.bias");
    }
}

/// <summary>Pre-training heads: <c>prediction_logits</c> [batch, sequence, vocab] and
/// <c>seq_relationship_logits</c> [batch, 2].</summary>
public sealed class BertForPreTraining : BertHeadModel
{
    internal BertForPreTraining(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForPreTraining, p) { }

    /// <summary>Loads a model by directory or name as a BertForPreTraining: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForPreTraining FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForPreTraining)FromPretrained(nameOrPath, BertArchitecture.BertForPreTraining, seed, configure);

    /// <summary>Runs the model: masked-LM logits at every position and the next-sentence logits.</summary>
    public new BertForPreTrainingOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (BertForPreTrainingOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        var pooled = body.PoolerOutput!;
        return new BertForPreTrainingOutput(body)
        {
            PredictionLogits = new FloatTensor(PredictionLogits(body.LastHiddenState!), inputs.Batch, inputs.SequenceLength, Config.VocabSize),
            SeqRelationshipLogits = new FloatTensor(Dense(pooled.Data, inputs.Batch, "cls.seq_relationship.weight", "cls.seq_relationship.bias"), inputs.Batch, 2),
        };
    }
}

/// <summary>Masked language model: <c>logits</c> [batch, sequence, vocab].</summary>
public sealed class BertForMaskedLM : BertHeadModel
{
    internal BertForMaskedLM(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForMaskedLM, p) { }

    /// <summary>Loads a model by directory or name as a BertForMaskedLM: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForMaskedLM FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForMaskedLM)FromPretrained(nameOrPath, BertArchitecture.BertForMaskedLM, seed, configure);

    /// <summary>Runs the model: vocabulary logits at every position.</summary>
    public new MaskedLMOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (MaskedLMOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        return new MaskedLMOutput(body) { Logits = new FloatTensor(PredictionLogits(body.LastHiddenState!), inputs.Batch, inputs.SequenceLength, Config.VocabSize) };
    }
}

/// <summary>Next sentence prediction: <c>logits</c> [batch, 2] (index 0: B follows A).</summary>
public sealed class BertForNextSentencePrediction : BertHeadModel
{
    internal BertForNextSentencePrediction(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForNextSentencePrediction, p) { }

    /// <summary>Loads a model by directory or name as a BertForNextSentencePrediction: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForNextSentencePrediction FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForNextSentencePrediction)FromPretrained(nameOrPath, BertArchitecture.BertForNextSentencePrediction, seed, configure);

    /// <summary>Runs the model: next-sentence logits, [batch, 2].</summary>
    public new NextSentencePredictorOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (NextSentencePredictorOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        return new NextSentencePredictorOutput(body) { Logits = new FloatTensor(Dense(body.PoolerOutput!.Data, inputs.Batch, "cls.seq_relationship.weight", "cls.seq_relationship.bias"), inputs.Batch, 2) };
    }
}

/// <summary>Sequence classification or regression on the pooled output: <c>logits</c> [batch, num_labels].</summary>
public sealed class BertForSequenceClassification : BertHeadModel
{
    internal BertForSequenceClassification(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForSequenceClassification, p) { }

    /// <summary>Loads a model by directory or name as a BertForSequenceClassification: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForSequenceClassification FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForSequenceClassification)FromPretrained(nameOrPath, BertArchitecture.BertForSequenceClassification, seed, configure);

    /// <summary>Runs the model: label logits per sequence, [batch, labels].</summary>
    public new SequenceClassifierOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (SequenceClassifierOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        return new SequenceClassifierOutput(body) { Logits = new FloatTensor(Dense(body.PoolerOutput!.Data, inputs.Batch, "classifier.weight", "classifier.bias"), inputs.Batch, Config.NumLabels) };
    }
}

/// <summary>Token classification (NER): <c>logits</c> [batch, sequence, num_labels].</summary>
public sealed class BertForTokenClassification : BertHeadModel
{
    internal BertForTokenClassification(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForTokenClassification, p) { }

    /// <summary>Loads a model by directory or name as a BertForTokenClassification: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForTokenClassification FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForTokenClassification)FromPretrained(nameOrPath, BertArchitecture.BertForTokenClassification, seed, configure);

    /// <summary>Runs the model: label logits per token, [batch, sequence, labels].</summary>
    public new TokenClassifierOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (TokenClassifierOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        int rows = inputs.Batch * inputs.SequenceLength;
        return new TokenClassifierOutput(body) { Logits = new FloatTensor(Dense(body.LastHiddenState!.Data, rows, "classifier.weight", "classifier.bias"), inputs.Batch, inputs.SequenceLength, Config.NumLabels) };
    }
}

/// <summary>Extractive question answering: <c>start_logits</c> and <c>end_logits</c> [batch, sequence].</summary>
public sealed class BertForQuestionAnswering : BertHeadModel
{
    internal BertForQuestionAnswering(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForQuestionAnswering, p) { }

    /// <summary>Loads a model by directory or name as a BertForQuestionAnswering: a checkpoint of another head gives its encoder, and this
    /// head is initialised as transformers does (with the warning). <paramref name="configure"/> changes the config first
    /// (new labels, say); <paramref name="seed"/> seeds a new head.</summary>
    public static BertForQuestionAnswering FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        (BertForQuestionAnswering)FromPretrained(nameOrPath, BertArchitecture.BertForQuestionAnswering, seed, configure);

    /// <summary>Runs the model: answer start and end logits per token, [batch, sequence] each.</summary>
    public new QuestionAnsweringModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (QuestionAnsweringModelOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        int rows = inputs.Batch * inputs.SequenceLength;
        var both = Dense(body.LastHiddenState!.Data, rows, "qa_outputs.weight", "qa_outputs.bias");
        var start = new float[rows];
        var end = new float[rows];
        for (int i = 0; i < rows; i++)
        {
            start[i] = both[2 * i];
            end[i] = both[2 * i + 1];
        }
        return new QuestionAnsweringModelOutput(body)
        {
            StartLogits = new FloatTensor(start, inputs.Batch, inputs.SequenceLength),
            EndLogits = new FloatTensor(end, inputs.Batch, inputs.SequenceLength),
        };
    }
}
