namespace NBert.Training;

/// <summary>
/// Learning rate per optimiser step, as transformers' schedulers compute it (<c>get_constant_schedule_with_warmup</c>,
/// <c>get_linear_schedule_with_warmup</c>, <c>get_cosine_schedule_with_warmup</c>): base × a factor of the
/// step count, with the same arithmetic, so the values are identical. Step 0 is the first update.
/// </summary>
public sealed record LearningRateSchedule(string Kind, double BaseRate, int WarmupSteps, int TrainingSteps, double Cycles = 0.5)
{
    public static readonly string[] Kinds = ["constant", "linear", "cosine"];

    public static LearningRateSchedule Create(string kind, double baseRate, int warmupSteps, int trainingSteps)
    {
        if (!Kinds.Contains(kind)) throw new ArgumentException($"Unknown scheduler '{kind}': use {string.Join(", ", Kinds)}.", nameof(kind));
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), $"Warm-up steps must be non-negative, not {warmupSteps}.");
        if (!(baseRate >= 0)) throw new ArgumentOutOfRangeException(nameof(baseRate), $"The learning rate must be non-negative, not {baseRate}.");
        return new LearningRateSchedule(kind, baseRate, warmupSteps, trainingSteps);
    }

    /// <summary>The rate for update number <paramref name="step"/> (0-based).</summary>
    public double At(long step) => BaseRate * Factor(step);

    private double Factor(long step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        switch (Kind)
        {
            case "constant":
                return 1.0;
            case "linear":
                return Math.Max(0.0, (double)(TrainingSteps - step) / Math.Max(1, TrainingSteps - WarmupSteps));
            default:
                double progress = (double)(step - WarmupSteps) / Math.Max(1, TrainingSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * Cycles * 2.0 * progress)));
        }
    }
}
