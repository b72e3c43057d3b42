using System.Numerics;

namespace NBert.Training;

/// <summary>What one optimiser step did.</summary>
public readonly record struct StepResult(long Step, double Loss, double GradientNorm, double LearningRate, TrainingLoss Parts);

/// <summary>
/// One optimiser step as transformers' Trainer takes it: gradients of each micro-batch's loss divided by the
/// number of micro-batches (gradient accumulation), clipping to a global norm, the scheduled learning
/// rate, then AdamW.
/// </summary>
public sealed class TrainingStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The model the steps train, in place.</summary>
    public TrainingModel<T> Model { get; }
    /// <summary>The AdamW optimiser (its moments and step count are part of a checkpoint).</summary>
    public AdamW<T> Optimizer { get; }
    /// <summary>The learning rate of each step, from the optimiser's step count.</summary>
    public LearningRateSchedule Schedule { get; }
    /// <summary>Clip the global gradient norm to this; 0 or less: no clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Dropout on (train mode).</summary>
    public bool Dropout { get; init; } = true;

    /// <summary>Steps for <paramref name="model"/> with a new AdamW optimiser (zero moments, step 0).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The AdamW options are invalid (see <see cref="AdamWOptions.Validate"/>).</exception>
    public TrainingStep(TrainingModel<T> model, AdamWOptions options, LearningRateSchedule schedule)
    {
        Model = model;
        Optimizer = new AdamW<T>(model, options);
        Schedule = schedule;
    }

    /// <summary>Optimiser steps taken so far.</summary>
    public long Steps => Optimizer.Step;

    /// <summary>One update from <paramref name="microBatches"/> (one batch, or several accumulated).
    /// <paramref name="afterBackward"/>, when given, sees the gradients before clipping. The optimiser clears the gradients as
    /// it reads them, so they are 0 afterwards.</summary>
    public StepResult Run(IReadOnlyList<TrainingBatch> microBatches, Action? afterBackward = null)
    {
        if (microBatches.Count == 0) throw new ArgumentException("A step needs at least one batch.", nameof(microBatches));
        return Run(microBatches, microBatches.Count, afterBackward is null ? null : totals => { afterBackward(); return totals; });
    }

    /// <summary>
    /// One update from this process's share, <paramref name="local"/> (possibly none), of a step of
    /// <paramref name="microBatchesInStep"/> micro-batches: each loss is divided by <paramref name="microBatchesInStep"/>, so
    /// that summing the gradients over the processes gives exactly what one process accumulating them all would.
    /// <paramref name="reduce"/> gets the local totals [loss, MLM loss, NSP loss, micro-batches with MLM, with NSP] after
    /// backward, sums them and the gradients over the processes, and returns the sums (its array may be longer).
    /// </summary>
    internal StepResult Run(IReadOnlyList<TrainingBatch> local, int microBatchesInStep, Func<double[], double[]>? reduce)
    {
        Model.ZeroGradients();
        double scale = 1.0 / microBatchesInStep;
        var totals = new double[5];
        foreach (var batch in local)
        {
            var l = Model.Forward(batch, Dropout);
            Model.Backward(scale);
            totals[0] += l.Loss * scale;
            if (l.MaskedLmLoss is double m) { totals[1] += m * scale; totals[3]++; }
            if (l.NextSentenceLoss is double n) { totals[2] += n * scale; totals[4]++; }
        }
        // A reduce over processes reaches Model.Gradients, so the step after it treats every word-embedding row as written.
        if (reduce is not null) totals = reduce(totals);
        // clip_grad_norm_, its scaling done inside the update, which also clears the gradients: one pass over the buffers.
        double norm = Model.GradientNorm();
        double coefficient = MaxGradNorm > 0 ? MaxGradNorm / (norm + 1e-6) : 1;
        double lr = Schedule.At(Optimizer.Step);
        Optimizer.Update(Model, lr, coefficient < 1 ? coefficient : 1, clearGradients: true);
        double loss = totals[0];
        return new StepResult(Optimizer.Step, loss, norm, lr, new TrainingLoss(loss, totals[3] > 0 ? totals[1] : null, totals[4] > 0 ? totals[2] : null));
    }
}
