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
        return PreTrainingLogitsAt(inputs, positions).MaskedLm;
    }

    /// <summary>The masked-LM head (<c>cls.predictions</c>, <see cref="Heads{T}.MaskedLm"/>) on [rows, h]: [rows, vocab].</summary>
    private protected float[] PredictionLogits(FloatTensor hidden)
    {
        int rows = hidden.Shape[0] * hidden.Shape[1], width = Layout.MaskedLm!.Transform.Outputs;
        EnsureArray("the prediction logits (rows x vocab_size)", (long)rows * Config.VocabSize);
        var logits = new float[rows * Config.VocabSize];
        float[] transformed = new float[rows * width], normed = new float[rows * width];
        Heads<float>.MaskedLm(Weights, Layout.MaskedLm!, Config, hidden.Data, rows, transformed, transformed, normed, default, default, logits);
        return logits;
    }

    /// <summary>
    /// Pre-training's outputs where its loss and metrics need them: masked-LM logits [positions, vocab] at
    /// <paramref name="positions"/> (indices into batch·sequence) and, with a next-sentence head, its logits [batch, 2],
    /// from one pass through the body.
    /// </summary>
    internal (float[] MaskedLm, float[]? NextSentence) PreTrainingLogitsAt(ModelInputs inputs, IReadOnlyList<int> positions)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        EnsureArray("the prediction logits (positions x vocab_size)", (long)positions.Count * Config.VocabSize);
        bool nsp = Layout.NextSentence is not null;
        var body = RunBody(inputs, withPooler: nsp, outputHiddenStates: false, outputAttentions: false);
        int h = Config.HiddenSize;
        var rows = new float[positions.Count * h];
        Heads<float>.Gather(body.LastHiddenState!.Data, positions, h, rows);
        var mlm = PredictionLogits(new FloatTensor(rows, positions.Count, 1, h));
        return (mlm, nsp ? Dense(Layout.NextSentence!, body.PoolerOutput!.Data, inputs.Batch) : null);
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
        FromPretrained(nameOrPath, BertArchitecture.BertForPreTraining, seed, configure) as BertForPreTraining
            ?? throw new NBertException($"{nameOrPath} is an ELECTRA model, whose pre-training head is the discriminator: load it with ElectraForPreTraining.FromPretrained.");

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
            SeqRelationshipLogits = new FloatTensor(Dense(Layout.NextSentence!, pooled.Data, inputs.Batch), inputs.Batch, 2),
        };
    }
}

/// <summary>ELECTRA's discriminator (transformers' <c>ElectraForPreTraining</c>): <c>logits</c> [batch, sequence], one per
/// token, whether it was replaced. <see cref="BertArchitecture.BertForPreTraining"/> of an ELECTRA config.</summary>
public sealed class ElectraForPreTraining : BertPreTrainedModel
{
    internal ElectraForPreTraining(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForPreTraining, p)
    {
        if (c.Family != ModelFamily.Electra)
            throw new ArgumentException($"ElectraForPreTraining needs an ELECTRA config (model_type 'electra'), not '{FamilyNames.ModelType(c.Family)}'.");
    }

    /// <summary>Loads an ELECTRA discriminator by directory or name: a checkpoint of another head gives its encoder, and the
    /// discriminator is initialised as transformers does (with the warning).</summary>
    public static ElectraForPreTraining FromPretrained(string nameOrPath, int seed = 0, Func<BertConfig, BertConfig>? configure = null) =>
        FromPretrained(nameOrPath, BertArchitecture.BertForPreTraining, seed, configure) as ElectraForPreTraining
            ?? throw new NBertException($"{nameOrPath} is not an ELECTRA model (model_type 'electra'): load its pre-training head with BertForPreTraining.FromPretrained.");

    /// <summary>Runs the model: the discriminator's logit per token, [batch, sequence].</summary>
    public new ElectraForPreTrainingOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        (ElectraForPreTrainingOutput)Run(inputs, outputHiddenStates, outputAttentions);

    private protected override ModelOutput ForwardCore(ModelInputs inputs, bool outputHiddenStates, bool outputAttentions)
    {
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        int m = inputs.Batch * inputs.SequenceLength, h = Config.HiddenSize;
        var logits = new float[m];
        float[] dense = new float[m * h];
        Heads<float>.Discriminator(Weights, Layout.Discriminator!, Config.Activation, body.LastHiddenState!.Data, m, dense, dense, logits);
        return new ElectraForPreTrainingOutput(body) { Logits = new FloatTensor(logits, inputs.Batch, inputs.SequenceLength) };
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
        return new NextSentencePredictorOutput(body) { Logits = new FloatTensor(Dense(Layout.NextSentence!, body.PoolerOutput!.Data, inputs.Batch), inputs.Batch, 2) };
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
        return new SequenceClassifierOutput(body) { Logits = new FloatTensor(Dense(Layout.Classifier!, body.PoolerOutput!.Data, inputs.Batch), inputs.Batch, Config.NumLabels) };
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
        return new TokenClassifierOutput(body) { Logits = new FloatTensor(Dense(Layout.Classifier!, body.LastHiddenState!.Data, rows), inputs.Batch, inputs.SequenceLength, Config.NumLabels) };
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
        var both = Dense(Layout.QaOutputs!, body.LastHiddenState!.Data, rows);
        var start = new float[rows];
        var end = new float[rows];
        QuestionAnsweringLogits.Split<float>(both, start, end);
        return new QuestionAnsweringModelOutput(body)
        {
            StartLogits = new FloatTensor(start, inputs.Batch, inputs.SequenceLength),
            EndLogits = new FloatTensor(end, inputs.Batch, inputs.SequenceLength),
        };
    }
}
