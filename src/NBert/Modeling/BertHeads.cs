using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>The bare encoder: <c>last_hidden_state</c> and, when it has a pooling layer
/// (<see cref="BertPreTrainedModel.HasPoolingLayer"/>), <c>pooler_output</c>.</summary>
public sealed class BertModel : BertPreTrainedModel
{
    internal BertModel(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertModel, p) { }

    public static BertModel FromPretrained(string directory) => (BertModel)FromPretrained(directory, BertArchitecture.BertModel);

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false) =>
        RunBody(inputs, withPooler: HasPoolingLayer, outputHiddenStates, outputAttentions);
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

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
    {
        EnsureArray("the prediction logits (batch x sequence x vocab_size)", (long)inputs.Batch * inputs.SequenceLength * Config.VocabSize);
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        var pooled = body.PoolerOutput!;
        return body with
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

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
    {
        EnsureArray("the logits (batch x sequence x vocab_size)", (long)inputs.Batch * inputs.SequenceLength * Config.VocabSize);
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        return body with { Logits = new FloatTensor(PredictionLogits(body.LastHiddenState!), inputs.Batch, inputs.SequenceLength, Config.VocabSize) };
    }
}

/// <summary>Next sentence prediction: <c>logits</c> [batch, 2] (index 0: B follows A).</summary>
public sealed class BertForNextSentencePrediction : BertHeadModel
{
    internal BertForNextSentencePrediction(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForNextSentencePrediction, p) { }

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
    {
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        return body with { Logits = new FloatTensor(Dense(body.PoolerOutput!.Data, inputs.Batch, "cls.seq_relationship.weight", "cls.seq_relationship.bias"), inputs.Batch, 2) };
    }
}

/// <summary>Sequence classification or regression on the pooled output: <c>logits</c> [batch, num_labels].</summary>
public sealed class BertForSequenceClassification : BertHeadModel
{
    internal BertForSequenceClassification(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForSequenceClassification, p) { }

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
    {
        var body = RunBody(inputs, withPooler: true, outputHiddenStates, outputAttentions);
        return body with { Logits = new FloatTensor(Dense(body.PoolerOutput!.Data, inputs.Batch, "classifier.weight", "classifier.bias"), inputs.Batch, Config.NumLabels) };
    }
}

/// <summary>Token classification (NER): <c>logits</c> [batch, sequence, num_labels].</summary>
public sealed class BertForTokenClassification : BertHeadModel
{
    internal BertForTokenClassification(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForTokenClassification, p) { }

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
    {
        EnsureArray("the logits (batch x sequence x num_labels)", (long)inputs.Batch * inputs.SequenceLength * Config.NumLabels);
        var body = RunBody(inputs, withPooler: false, outputHiddenStates, outputAttentions);
        int rows = inputs.Batch * inputs.SequenceLength;
        return body with { Logits = new FloatTensor(Dense(body.LastHiddenState!.Data, rows, "classifier.weight", "classifier.bias"), inputs.Batch, inputs.SequenceLength, Config.NumLabels) };
    }
}

/// <summary>Extractive question answering: <c>start_logits</c> and <c>end_logits</c> [batch, sequence].</summary>
public sealed class BertForQuestionAnswering : BertHeadModel
{
    internal BertForQuestionAnswering(BertConfig c, IReadOnlyDictionary<string, FloatTensor> p) : base(c, BertArchitecture.BertForQuestionAnswering, p) { }

    public override ModelOutput Forward(ModelInputs inputs, bool outputHiddenStates = false, bool outputAttentions = false)
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
        return body with
        {
            StartLogits = new FloatTensor(start, inputs.Batch, inputs.SequenceLength),
            EndLogits = new FloatTensor(end, inputs.Batch, inputs.SequenceLength),
        };
    }
}
