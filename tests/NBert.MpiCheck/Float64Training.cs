using System.Globalization;
using System.Runtime.InteropServices;
using NBert.Distributed;
using NBert.Modeling;
using NBert.Schema;
using NBert.Tasks;
using NBert.Tokenization;
using NBert.Training;

/// <summary>
/// A data-parallel run in float64, which the <see cref="Trainer"/> (float32) cannot take: the same pieces it trains with
/// (<see cref="Trainer.LocalMicroBatches"/> for which micro-batches a rank takes and how they are numbered,
/// <see cref="Trainer.Permutation"/>, <see cref="Trainer.DeriveSeed"/> for the MLM masks, and the per-rank
/// <c>TrainingStep.Run</c> that divides each loss by the step's micro-batches over all ranks), with the gradients and loss
/// sums reduced over MPI as the trainer's Reduce does. Run alone with accumulation N, or on N ranks with accumulation 1:
/// the weights must agree to float64 rounding.
/// </summary>
internal static class Float64Training
{
    private const int Steps = 5, BatchSize = 4, Seed = 3;

    public static void Run(MpiWorld world, string task, string modelDirectory, string outFile, int accumulation, Action<string> say)
    {
        var tokenizer = BertTokenizer.FromPretrained(modelDirectory);
        bool pretraining = task switch
        {
            "pretraining" => true,
            "classification" => false,
            _ => throw new ArgumentException($"unknown task {task}"),
        };
        BertPreTrainedModel pretrained = pretraining
            ? BertPreTrainedModel.FromPretrained(modelDirectory, BertArchitecture.BertForPreTraining)
            : BertPreTrainedModel.FromPretrained(modelDirectory, BertArchitecture.BertForSequenceClassification, Seed, c => c with { Id2Label = ["bad", "good"] });
        var (count, batch) = pretraining ? PretrainingData(tokenizer) : ClassificationData(tokenizer);

        // Dropout is off (TrainingStep.Dropout), so the per-rank streams (seed + rank) draw nothing; rank 0's weights go to all.
        var model = TrainingModel<double>.From(pretrained, Seed + world.Rank);
        world.Broadcast(model.Values.AsSpan(), 0);
        double[] initial = (double[])model.Values.Clone();
        var step = new TrainingStep<double>(model, new AdamWOptions { WeightDecay = 0.01 }, LearningRateSchedule.Create(SchedulerType.Linear, 1e-3, 1, Steps))
        {
            Dropout = false,
            MaxGradNorm = 1.0,
        };
        int perStep = accumulation * world.Size, stepsPerEpoch = ((count + BatchSize - 1) / BatchSize + perStep - 1) / perStep;
        for (int t = 0; t < Steps; t++)
        {
            int epoch = t / stepsPerEpoch;
            var mine = Trainer.LocalMicroBatches(Trainer.Permutation(Seed, epoch, count), BatchSize, accumulation, world.Size, world.Rank, t % stepsPerEpoch, t,
                out int microBatches);
            var batches = mine.Select(m => batch(m.Items, m.Number)).ToList();
            var r = step.Run(batches, microBatches, world.Size == 1 ? null : totals =>
            {
                world.AllreduceSum(model.Gradients.AsSpan());
                world.AllreduceSum(totals);
                return totals;
            });
            say(string.Create(CultureInfo.InvariantCulture, $"step {t + 1} loss {r.Loss:R} micro-batches {microBatches}"));
        }
        double moved = model.Values.Zip(initial, (a, b) => Math.Abs(a - b)).Max();
        say(string.Create(CultureInfo.InvariantCulture, $"moved {moved:R}"));
        if (world.Rank == 0) File.WriteAllBytes(outFile, MemoryMarshal.AsBytes(model.Values.AsSpan()).ToArray());
    }

    /// <summary>Sentence-pair instances of a generated corpus, masked as <c>nbert pretrain</c> masks: from the seed and the
    /// micro-batch's number alone.</summary>
    private static (int, Func<int[], long, TrainingBatch>) PretrainingData(BertTokenizer tokenizer)
    {
        var r = new Random(1);
        string[] words = ["the", "people", "of", "this", "nation", "have", "shown", "great", "strength", "and", "courage", "in", "war", "peace"];
        var documents = Enumerable.Range(0, 60).Select(_ => Enumerable.Range(0, r.Next(2, 8))
            .Select(_ => string.Join(' ', Enumerable.Range(0, r.Next(4, 14)).Select(_ => words[r.Next(words.Length)])) + ".").ToList()).ToList();
        var instances = new InstanceBuilder(64, 0.1, true, Seed).Build(PretrainingCorpus.Tokenized(documents, tokenizer)).ToList();
        var collator = new MaskedLmCollator(tokenizer);
        return (instances.Count, (items, number) => collator.Collate(items.Select(i => instances[i]).ToList(), new Random(Trainer.DeriveSeed(Seed, number, 0x4D4C4D)), true));
    }

    /// <summary>40 short labelled texts: 10 micro-batches of 4.</summary>
    private static (int, Func<int[], long, TrainingBatch>) ClassificationData(BertTokenizer tokenizer)
    {
        var r = new Random(4);
        string[] words = ["was", "with", "that", "for", "on", "as", "in", "to"];
        var features = Enumerable.Range(0, 40).Select(i =>
        {
            var encoding = tokenizer.Encode((i % 2 == 0 ? "he " : "it ") + string.Join(' ', Enumerable.Range(0, r.Next(2, 9)).Select(_ => words[r.Next(words.Length)])));
            return new Feature { InputIds = encoding.InputIds, TokenTypeIds = encoding.TokenTypeIds, Label = i % 2, Example = i };
        }).ToList();
        return (features.Count, (items, _) => Feature.Collate(items.Select(i => features[i]).ToList(), tokenizer.PadTokenId));
    }
}
