using System.Numerics;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tensors;

namespace NBert.Training;

/// <summary>The loss of one forward pass; for pre-training also its two parts.</summary>
public readonly record struct TrainingLoss(double Loss, double? MaskedLmLoss = null, double? NextSentenceLoss = null);

/// <summary>
/// Each head's loss from its logits, as transformers' forward with labels computes it. Separate from the heads, so
/// that training (which keeps the gradient: <c>dLogits</c> receives it) and evaluation (an inference pass's outputs,
/// <see cref="Of"/>; an empty <c>dLogits</c>) compute the same loss.
/// </summary>
public static class HeadLosses
{
    /// <summary>Masked-LM cross-entropy over rows of <paramref name="vocab"/> logits, one target per row.</summary>
    public static double MaskedLm<T>(ReadOnlySpan<T> logits, int vocab, ReadOnlySpan<int> targets, Span<T> dLogits) where T : unmanaged, IFloatingPointIeee754<T> =>
        Ops.CrossEntropy(logits, vocab, targets, dLogits);

    /// <summary>Cross-entropy of [rows, classes] logits against one label per row, -100 ignored: next sentence, single-label
    /// classification, token classification.</summary>
    public static double Classification<T>(ReadOnlySpan<T> logits, int classes, ReadOnlySpan<int> labels, Span<T> dLogits, string head)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if ((long)labels.Length * classes != logits.Length)
            throw new ArgumentException($"{head}: {labels.Length} labels for {logits.Length / Math.Max(1, classes)} rows.");
        return Ops.CrossEntropy(logits, classes, labels, dLogits);
    }

    /// <summary>Sequence classification by transformers' <c>problem_type</c> (inferred as transformers does when unset):
    /// single-label cross-entropy, regression's mean squared error, or multi-label binary cross-entropy on [batch, labels].</summary>
    public static double SequenceClassification<T>(BertConfig config, ReadOnlySpan<T> logits, TrainingBatch batch, Span<T> dLogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int classes = config.NumLabels, b = batch.Inputs.Batch;
        string problem = config.ProblemType ?? (classes == 1 ? "regression" : batch.Labels is not null ? "single_label_classification" : "multi_label_classification");
        if (problem == "single_label_classification")
            return Classification(logits, classes, batch.Labels ?? throw new ArgumentException("Single-label classification needs integer 'labels' [batch]."),
                dLogits, "classifier");
        var values = batch.LabelValues ?? batch.Labels?.Select(v => (float)v).ToArray() ?? throw new ArgumentException($"{problem} needs 'labels'.");
        if (values.Length != b * classes)
            throw new ArgumentException($"{problem}: {values.Length} label values for a batch of {b} with {classes} labels (need [batch, num_labels]).");
        var targets = Array.ConvertAll(values, v => T.CreateTruncating(v));
        return problem switch
        {
            "regression" => Ops.MeanSquaredError<T>(logits, targets, dLogits),
            "multi_label_classification" => Ops.BinaryCrossEntropyWithLogits<T>(logits, targets, dLogits),
            _ => throw new ArgumentException($"Unknown problem_type '{problem}': regression, single_label_classification or multi_label_classification."),
        };
    }

    /// <summary>
    /// ELECTRA's discriminator loss (<c>ElectraForPreTraining</c>): binary cross-entropy with logits between each token's
    /// logit and its label (1: replaced, 0: original), averaged over the active tokens, those whose attention mask is 1
    /// (every token without a mask), as transformers computes it. <paramref name="dLogits"/> [m], when not empty, receives
    /// the gradient at the active tokens (the others get none). No active token: 0.
    /// </summary>
    public static double Discriminator<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> labels, ReadOnlySpan<int> attentionMask, Span<T> dLogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (labels.Length != logits.Length)
            throw new ArgumentException($"ElectraForPreTraining's 'labels' need one value per token ({logits.Length}), not {labels.Length}.");
        var active = new List<int>(logits.Length);
        for (int t = 0; t < logits.Length; t++)
        {
            if (!attentionMask.IsEmpty && attentionMask[t] != 1) continue;
            if (labels[t] is not (0 or 1))
                throw new ArgumentException($"ElectraForPreTraining's label at token {t} is {labels[t]}: a discriminator's labels are 1 (replaced) or 0 (original).");
            active.Add(t);
        }
        if (active.Count == 0) return 0;
        var x = new T[active.Count];
        var y = new T[active.Count];
        var d = dLogits.IsEmpty ? null : new T[active.Count];
        for (int i = 0; i < active.Count; i++) (x[i], y[i]) = (logits[active[i]], T.CreateTruncating(labels[active[i]]));
        double loss = Ops.BinaryCrossEntropyWithLogits<T>(x, y, d);
        if (d is not null)
            for (int i = 0; i < active.Count; i++) dLogits[active[i]] += d[i];
        return loss;
    }

    /// <summary>Question answering: the mean of the start and end cross-entropies over each sequence's positions, a
    /// position outside the sequence clamped to s and then ignored, as transformers does.</summary>
    public static double QuestionAnswering<T>(ReadOnlySpan<T> start, ReadOnlySpan<T> end, TrainingBatch batch, Span<T> dStart, Span<T> dEnd)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int b = batch.Inputs.Batch, s = batch.Inputs.SequenceLength;
        if (batch.StartPositions is null || batch.EndPositions is null)
            throw new ArgumentException("BertForQuestionAnswering's loss needs 'start_positions' and 'end_positions'.");
        if (batch.StartPositions.Length != b || batch.EndPositions.Length != b)
            throw new ArgumentException($"start_positions and end_positions need one value per sequence ({b}).");
        var starts = batch.StartPositions.Select(p => Math.Clamp(p, 0, s)).ToArray();
        var ends = batch.EndPositions.Select(p => Math.Clamp(p, 0, s)).ToArray();
        return (Ops.CrossEntropy(start, s, starts, dStart, dloss: 0.5, ignoreIndex: s)
            + Ops.CrossEntropy(end, s, ends, dEnd, dloss: 0.5, ignoreIndex: s)) / 2;
    }

    /// <summary>
    /// The loss of an inference pass's <paramref name="output"/> against <paramref name="batch"/>'s labels: what
    /// evaluation reports, computed as training computes it. For the heads whose outputs evaluation scores: next
    /// sentence, sequence and token classification, question answering.
    /// </summary>
    /// <exception cref="ArgumentException">The head has no loss here, or the labels do not fit the outputs.</exception>
    public static double Of(BertPreTrainedModel model, ModelOutput output, TrainingBatch batch)
    {
        var c = model.Config;
        return model.Architecture switch
        {
            BertArchitecture.BertForSequenceClassification => SequenceClassification<float>(c, output.Logits!.Data, batch, default),
            BertArchitecture.BertForTokenClassification => Classification<float>(output.Logits!.Data, c.NumLabels,
                batch.Labels ?? throw new ArgumentException("BertForTokenClassification's loss needs 'labels' [batch, sequence]."), default, "classifier"),
            BertArchitecture.BertForNextSentencePrediction => Classification<float>(output.Logits!.Data, 2,
                batch.Labels ?? batch.NextSentenceLabel ?? throw new ArgumentException("BertForNextSentencePrediction's loss needs 'labels'."), default, "cls.seq_relationship"),
            BertArchitecture.BertForPreTraining when output is ElectraForPreTrainingOutput electra => Discriminator<float>(electra.Logits.Data,
                batch.Labels ?? throw new ArgumentException("ElectraForPreTraining's loss needs 'labels' [batch, sequence]."), batch.Inputs.AttentionMask, default),
            BertArchitecture.BertForQuestionAnswering => QuestionAnswering<float>(((QuestionAnsweringModelOutput)output).StartLogits!.Data,
                ((QuestionAnsweringModelOutput)output).EndLogits!.Data, batch, default, default),
            var a => throw new ArgumentException($"{a}'s loss is not computed from its outputs here: pre-training evaluation scores the masked positions only."),
        };
    }
}
