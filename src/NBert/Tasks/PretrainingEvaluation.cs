using NBert.Modeling;
using NBert.Training;

namespace NBert.Tasks;

/// <summary>Held-out pre-training metrics: masked-LM loss, masked-token accuracy and NSP accuracy.</summary>
public static class PretrainingEvaluation
{
    /// <summary>Scores the model (dropout off) on <paramref name="instances"/>, masked the same way at every call
    /// (the masks come from <paramref name="seed"/>), so evaluations are comparable.</summary>
    public static Evaluation Evaluate(BertPreTrainedModel model, IReadOnlyList<PretrainingInstance> instances, MaskedLmCollator collator,
        bool nextSentencePrediction, int batchSize, int seed)
    {
        double mlmLoss = 0, nspLoss = 0;
        long masked = 0, maskedRight = 0, pairs = 0, pairsRight = 0;
        int batches = 0;
        for (int start = 0; start < instances.Count; start += batchSize)
        {
            var part = instances.Skip(start).Take(batchSize).ToList();
            var batch = collator.Collate(part, new Random(Trainer.DeriveSeed(seed, start, 0xE7A1)), nextSentencePrediction);
            // The masked positions only: the vocabulary-sized product at the others would change nothing.
            var positions = Enumerable.Range(0, batch.Labels!.Length).Where(t => batch.Labels[t] != -100).ToList();
            var (logits, nspLogits) = ((BertHeadModel)model).PreTrainingLogitsAt(batch.Inputs, positions);
            int vocab = model.Config.VocabSize;
            mlmLoss += HeadLosses.MaskedLm<float>(logits, vocab, positions.Select(t => batch.Labels[t]).ToArray(), default);
            if (nextSentencePrediction)
                nspLoss += HeadLosses.Classification<float>(nspLogits!, 2, batch.NextSentenceLabel!, default, "cls.seq_relationship");
            batches++;
            for (int r = 0; r < positions.Count; r++)
            {
                int best = System.Numerics.Tensors.TensorPrimitives.IndexOfMax<float>(logits.AsSpan(r * vocab, vocab));
                masked++;
                if (best == batch.Labels[positions[r]]) maskedRight++;
            }
            if (nextSentencePrediction)
            {
                var nsp = nspLogits!;
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
