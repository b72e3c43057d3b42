using System.Numerics.Tensors;
using NBert.Modeling;
using NBert.Schema;

using NBert.Training;

namespace NBert.Tasks;

/// <summary>Runs a model over evaluation features in batches and scores it with each task's metrics.</summary>
public static class TaskEvaluation
{
    /// <summary>Inference passes over <paramref name="features"/> in order, with the loss transformers' forward would
    /// give for their labels (<see cref="HeadLosses.Of"/>): each feature's head outputs (classification: its logits;
    /// token classification: [tokens, labels] over its own tokens; QA: start and end logits over its own tokens) and the
    /// mean loss over batches. <paramref name="progress"/> hears how many features are done after each batch.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is below 1.</exception>
    public static (List<float[][]> Outputs, double Loss) Run(BertPreTrainedModel model, IReadOnlyList<Feature> features, int batchSize, int padId,
        IProgress<int>? progress = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var outputs = new List<float[][]>(features.Count);
        double loss = 0;
        int batches = 0;
        for (int start = 0; start < features.Count; start += batchSize)
        {
            var part = features.Skip(start).Take(batchSize).ToList();
            var batch = Feature.Collate(part, padId);
            var output = model.Forward(batch.Inputs);
            double batchLoss = HeadLosses.Of(model, output, batch);
            var heads = output is QuestionAnsweringModelOutput qa ? new[] { qa.StartLogits!.Data, qa.EndLogits!.Data } : new[] { output.Logits!.Data };
            // NaN in, NaN out: an accuracy beside a NaN loss would pass a broken model off as a scored one.
            if (!double.IsFinite(batchLoss) || heads.Any(h => !TensorPrimitives.IsFiniteAll<float>(h)))
                throw new NBertException(BertPreTrainedModel.NotFiniteMessage("outputs on the evaluation data", model.NonFiniteParameters()));
            loss += batchLoss;
            batches++;
            // Token-level heads give [sequence, ...] per feature: keep the real tokens (padding is at the end).
            bool tokenLevel = part[0].TokenLabels is not null || part[0].ContextOffsets is not null;
            for (int i = 0; i < part.Count; i++)
                outputs.Add(heads.Select(h =>
                {
                    int perFeature = h.Length / part.Count, perToken = tokenLevel ? perFeature / batch.Inputs.SequenceLength : perFeature;
                    return h.AsSpan(i * perFeature, tokenLevel ? part[i].Length * perToken : perFeature).ToArray();
                }).ToArray());
            progress?.Report(outputs.Count);
        }
        return (outputs, batches == 0 ? 0 : loss / batches);
    }

    /// <summary>
    /// Scores a sequence-classification model. Metrics: <c>loss</c>; single-label <c>accuracy</c> (the main metric) and
    /// <c>macro_f1</c>; regression <c>mse</c> (main, lower is better); multi-label exact-match <c>accuracy</c> and
    /// <c>macro_f1</c> (main), a label counting as predicted where its logit is positive.
    /// </summary>
    /// <exception cref="NBertException">The loss or the logits are NaN or infinite (the message names the broken parameters).</exception>
    public static Evaluation Classification(BertPreTrainedModel model, IReadOnlyList<Feature> features, ClassificationProblem problem, int batchSize, int padId,
        IProgress<int>? progress = null)
    {
        var (outputs, loss) = Run(model, features, batchSize, padId, progress);
        var logits = outputs.Select(o => o[0]).ToList();
        var metrics = new Dictionary<string, double> { ["loss"] = loss };
        switch (problem)
        {
            case ClassificationProblem.SingleLabel:
            {
                var gold = features.Select(f => f.Label).ToList();
                var predicted = logits.Select(l => TensorPrimitives.IndexOfMax<float>(l)).ToList();
                metrics["accuracy"] = ClassificationMetrics.Accuracy(gold, predicted);
                metrics["macro_f1"] = ClassificationMetrics.MacroF1(gold, predicted);
                return new Evaluation(metrics, "accuracy");
            }
            case ClassificationProblem.Regression:
                metrics["mse"] = features.Zip(logits, (f, l) => (double)(l[0] - f.Values![0]) * (l[0] - f.Values![0])).Average();
                return new Evaluation(metrics, "mse", HigherIsBetter: false);
            default:
            {
                // A label is predicted where its logit is positive (sigmoid above 0.5). Exact-match accuracy and
                // macro-F1 over the labels, each label a binary problem.
                int labels = features[0].Values!.Length;
                metrics["accuracy"] = features.Zip(logits, (f, l) => Enumerable.Range(0, labels).All(j => (l[j] > 0) == (f.Values![j] > 0.5f)) ? 1.0 : 0).Average();
                double f1 = 0;
                for (int j = 0; j < labels; j++)
                {
                    int tp = 0, fp = 0, fn = 0;
                    foreach (var (f, l) in features.Zip(logits))
                    {
                        bool g = f.Values![j] > 0.5f, p = l[j] > 0;
                        if (g && p) tp++; else if (p) fp++; else if (g) fn++;
                    }
                    f1 += 2 * tp + fp + fn == 0 ? 0 : 2.0 * tp / (2 * tp + fp + fn);
                }
                metrics["macro_f1"] = f1 / labels;
                return new Evaluation(metrics, "macro_f1");
            }
        }
    }

    /// <summary>Entity-level precision, recall and F1 (seqeval) over the labelled positions, as run_ner evaluates.</summary>
    public static Evaluation TokenClassification(BertPreTrainedModel model, IReadOnlyList<Feature> features, IReadOnlyList<string> labels, int batchSize, int padId,
        IProgress<int>? progress = null)
    {
        var (outputs, loss) = Run(model, features, batchSize, padId, progress);
        var logits = outputs.Select(o => o[0]).ToList();
        var gold = new List<IReadOnlyList<string>>();
        var predicted = new List<IReadOnlyList<string>>();
        int n = labels.Count, right = 0, total = 0;
        for (int i = 0; i < features.Count; i++)
        {
            var g = new List<string>();
            var p = new List<string>();
            var tokenLabels = features[i].TokenLabels!;
            for (int t = 0; t < tokenLabels.Length; t++)
            {
                if (tokenLabels[t] == -100) continue;
                int best = TensorPrimitives.IndexOfMax<float>(logits[i].AsSpan(t * n, n));
                g.Add(labels[tokenLabels[t]]);
                p.Add(labels[best]);
                total++;
                if (best == tokenLabels[t]) right++;
            }
            gold.Add(g);
            predicted.Add(p);
        }
        var s = SeqEval.Score(gold, predicted);
        return new Evaluation(new Dictionary<string, double>
        {
            ["loss"] = loss, ["precision"] = s.Precision, ["recall"] = s.Recall, ["f1"] = s.F1, ["accuracy"] = total == 0 ? 0 : (double)right / total,
        }, "f1");
    }

    /// <summary>Exact match and F1 (0 to 100, as the SQuAD script reports them) of the best span per question.</summary>
    public static (Evaluation Evaluation, List<string> Answers) QuestionAnswering(BertPreTrainedModel model, IReadOnlyList<QuestionExample> examples,
        IReadOnlyList<Feature> features, QuestionAnsweringData.Options options, bool allowImpossible, int batchSize, int padId, IProgress<int>? progress = null)
    {
        var (outputs, loss) = Run(model, features, batchSize, padId, progress);
        var split = outputs.Select(o => (o[0], o[1])).ToList();
        var answers = QuestionAnsweringData.Predict(examples, features, split, options, allowImpossible);
        double em = 0, f1 = 0;
        for (int i = 0; i < examples.Count; i++)
        {
            var (e, f) = SquadMetrics.Score(answers[i], examples[i].Answers.Select(a => a.Text).ToList());
            em += e;
            f1 += f;
        }
        int count = Math.Max(1, examples.Count);
        return (new Evaluation(new Dictionary<string, double> { ["loss"] = loss, ["exact_match"] = 100 * em / count, ["f1"] = 100 * f1 / count }, "f1"), answers);
    }
}
