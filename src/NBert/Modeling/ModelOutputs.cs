using NBert.Tensors;

namespace NBert.Modeling;

/// <summary>
/// A model's outputs, named as transformers names them. What a model does not compute is null here; each head's
/// <c>Forward</c> returns its own output type (<see cref="SequenceClassifierOutput"/> and the others below), whose
/// properties for what that head always computes are not nullable.
/// </summary>
public record ModelOutput
{
    /// <summary>The encoder's last layer, [batch, sequence, hidden].</summary>
    public FloatTensor? LastHiddenState { get; init; }
    /// <summary>The pooler's output: the [CLS] token's hidden state through dense + tanh, [batch, hidden]; null for a
    /// <see cref="BertModel"/> without a pooling layer (<see cref="BertPreTrainedModel.HasPoolingLayer"/>) and for heads that do not use it.</summary>
    public FloatTensor? PoolerOutput { get; init; }
    /// <summary>With <c>outputHiddenStates</c>: the embedding output, then each layer's output ([batch, sequence, hidden] each).</summary>
    public IReadOnlyList<FloatTensor>? HiddenStates { get; init; }
    /// <summary>With <c>outputAttentions</c>: each layer's attention probabilities [batch, heads, sequence, sequence].</summary>
    public IReadOnlyList<FloatTensor>? Attentions { get; init; }
    /// <summary>Pre-training: masked-LM logits [batch, sequence, vocab].</summary>
    public FloatTensor? PredictionLogits { get; init; }
    /// <summary>Pre-training: next-sentence logits [batch, 2] (index 0: B follows A).</summary>
    public FloatTensor? SeqRelationshipLogits { get; init; }
    /// <summary>A head's logits: [batch, labels] (sequence classification, next sentence), [batch, sequence, labels]
    /// (token classification) or [batch, sequence, vocab] (masked LM).</summary>
    public FloatTensor? Logits { get; init; }
    /// <summary>Question answering: the answer's start logits, [batch, sequence].</summary>
    public FloatTensor? StartLogits { get; init; }
    /// <summary>Question answering: the answer's end logits, [batch, sequence].</summary>
    public FloatTensor? EndLogits { get; init; }

    /// <summary>Every tensor with transformers' name (<c>hidden_states.0</c>, <c>attentions.1</c>, ...).</summary>
    public IEnumerable<(string Name, FloatTensor Tensor)> Named()
    {
        if (LastHiddenState is not null) yield return ("last_hidden_state", LastHiddenState);
        if (PoolerOutput is not null) yield return ("pooler_output", PoolerOutput);
        for (int i = 0; i < (HiddenStates?.Count ?? 0); i++) yield return ($"hidden_states.{i}", HiddenStates![i]);
        for (int i = 0; i < (Attentions?.Count ?? 0); i++) yield return ($"attentions.{i}", Attentions![i]);
        if (PredictionLogits is not null) yield return ("prediction_logits", PredictionLogits);
        if (SeqRelationshipLogits is not null) yield return ("seq_relationship_logits", SeqRelationshipLogits);
        if (Logits is not null) yield return ("logits", Logits);
        if (StartLogits is not null) yield return ("start_logits", StartLogits);
        if (EndLogits is not null) yield return ("end_logits", EndLogits);
    }
}

/// <summary><see cref="BertModel"/>'s outputs (transformers' <c>BaseModelOutputWithPooling</c>).</summary>
public sealed record BaseModelOutput : ModelOutput
{
    /// <summary>The outputs of the body that every head runs first.</summary>
    public BaseModelOutput(ModelOutput body) : base(body) { }

    /// <inheritdoc cref="ModelOutput.LastHiddenState"/>
    public new FloatTensor LastHiddenState { get => base.LastHiddenState!; init => base.LastHiddenState = value; }
}

/// <summary><see cref="BertForPreTraining"/>'s outputs (transformers' <c>BertForPreTrainingOutput</c>).</summary>
public sealed record BertForPreTrainingOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public BertForPreTrainingOutput(ModelOutput body) : base(body) { }

    /// <inheritdoc cref="ModelOutput.PredictionLogits"/>
    public new FloatTensor PredictionLogits { get => base.PredictionLogits!; init => base.PredictionLogits = value; }
    /// <inheritdoc cref="ModelOutput.SeqRelationshipLogits"/>
    public new FloatTensor SeqRelationshipLogits { get => base.SeqRelationshipLogits!; init => base.SeqRelationshipLogits = value; }
}

/// <summary><see cref="ElectraForPreTraining"/>'s outputs (transformers' <c>ElectraForPreTrainingOutput</c>).</summary>
public sealed record ElectraForPreTrainingOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public ElectraForPreTrainingOutput(ModelOutput body) : base(body) { }

    /// <summary>The discriminator's logit per token, [batch, sequence]: above 0 means the token was replaced (sigmoid gives
    /// the probability).</summary>
    public new FloatTensor Logits { get => base.Logits!; init => base.Logits = value; }
}

/// <summary><see cref="BertForMaskedLM"/>'s outputs (transformers' <c>MaskedLMOutput</c>): logits [batch, sequence, vocab].</summary>
public sealed record MaskedLMOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public MaskedLMOutput(ModelOutput body) : base(body) { }

    /// <summary>Vocabulary logits at every position, [batch, sequence, vocab].</summary>
    public new FloatTensor Logits { get => base.Logits!; init => base.Logits = value; }
}

/// <summary><see cref="BertForNextSentencePrediction"/>'s outputs (transformers' <c>NextSentencePredictorOutput</c>).</summary>
public sealed record NextSentencePredictorOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public NextSentencePredictorOutput(ModelOutput body) : base(body) { }

    /// <summary>Next-sentence logits, [batch, 2]; index 0 means B follows A.</summary>
    public new FloatTensor Logits { get => base.Logits!; init => base.Logits = value; }
}

/// <summary><see cref="BertForSequenceClassification"/>'s outputs (transformers' <c>SequenceClassifierOutput</c>).</summary>
public sealed record SequenceClassifierOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public SequenceClassifierOutput(ModelOutput body) : base(body) { }

    /// <summary>One row of label logits per sequence, [batch, labels]: <c>Logits.Softmax()</c> gives probabilities,
    /// <c>Logits.ArgMax()</c> the label ids (names in the config's <see cref="Schema.BertConfig.Id2Label"/>).</summary>
    public new FloatTensor Logits { get => base.Logits!; init => base.Logits = value; }
}

/// <summary><see cref="BertForTokenClassification"/>'s outputs (transformers' <c>TokenClassifierOutput</c>).</summary>
public sealed record TokenClassifierOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public TokenClassifierOutput(ModelOutput body) : base(body) { }

    /// <summary>Label logits per token, [batch, sequence, labels].</summary>
    public new FloatTensor Logits { get => base.Logits!; init => base.Logits = value; }
}

/// <summary><see cref="BertForQuestionAnswering"/>'s outputs (transformers' <c>QuestionAnsweringModelOutput</c>).</summary>
public sealed record QuestionAnsweringModelOutput : ModelOutput
{
    /// <summary>The head's outputs beside the body's.</summary>
    public QuestionAnsweringModelOutput(ModelOutput body) : base(body) { }

    /// <inheritdoc cref="ModelOutput.StartLogits"/>
    public new FloatTensor StartLogits { get => base.StartLogits!; init => base.StartLogits = value; }
    /// <inheritdoc cref="ModelOutput.EndLogits"/>
    public new FloatTensor EndLogits { get => base.EndLogits!; init => base.EndLogits = value; }
}
