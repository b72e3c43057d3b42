using NBert.Training;

namespace NBert.Tasks;

/// <summary>Held-out pre-training metrics: masked-LM loss, masked-token accuracy and NSP accuracy.</summary>
public static class PretrainingEvaluation
{
    /// <summary>Scores the model (dropout off) on <paramref name="instances"/>, masked the same way at every call
    /// (the masks come from <paramref name="seed"/>), so evaluations are comparable.</summary>
    public static Evaluation Evaluate(TrainingModel<float> model, IReadOnlyList<PretrainingInstance> instances, MaskedLmCollator collator,
        bool nextSentencePrediction, int batchSize, int seed)
    {
        double mlmLoss = 0, nspLoss = 0;
        long masked = 0, maskedRight = 0, pairs = 0, pairsRight = 0;
        int batches = 0;
        for (int start = 0; start < instances.Count; start += batchSize)
        {
            var part = instances.Skip(start).Take(batchSize).ToList();
            var batch = collator.Collate(part, new Random(Trainer.DeriveSeed(seed, start, 0xE7A1)), nextSentencePrediction);
            var loss = model.Forward(batch, training: false);
            mlmLoss += loss.MaskedLmLoss ?? 0;
            nspLoss += loss.NextSentenceLoss ?? 0;
            batches++;
            var logits = model.MaskedLmLogits;
            var positions = model.MaskedLmPositions;
            int vocab = model.Config.VocabSize;
            for (int r = 0; r < positions.Count; r++)
            {
                int best = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.Slice(r * vocab, vocab));
                masked++;
                if (best == batch.Labels![positions[r]]) maskedRight++;
            }
            if (nextSentencePrediction)
            {
                var nsp = model.Logits;
                for (int i = 0; i < part.Count; i++)
                {
                    pairs++;
                    if ((nsp[2 * i + 1] > nsp[2 * i] ? 1 : 0) == batch.NextSentenceLabel![i]) pairsRight++;
                }
            }
        }
        var metrics = new Dictionary<string, double>
        {
            ["mlm_loss"] = mlmLoss / Math.Max(1, batches),
            ["masked_accuracy"] = masked == 0 ? 0 : (double)maskedRight / masked,
        };
        if (nextSentencePrediction)
        {
            metrics["nsp_loss"] = nspLoss / Math.Max(1, batches);
            metrics["nsp_accuracy"] = pairs == 0 ? 0 : (double)pairsRight / pairs;
        }
        return new Evaluation(metrics, "masked_accuracy");
    }
}
