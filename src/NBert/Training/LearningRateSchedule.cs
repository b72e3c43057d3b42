namespace NBert.Training;

/// <summary>The learning-rate schedules, as transformers' <c>lr_scheduler_type</c> names them (each with linear warm-up).</summary>
public enum SchedulerType
{
    /// <summary>The base rate after warm-up (<c>constant_with_warmup</c>; plain <c>constant</c> without warm-up steps).</summary>
    Constant,
    /// <summary>Linear decay from the base rate to 0 at the last step (transformers' default).</summary>
    Linear,
    /// <summary>Half a cosine from the base rate to 0 at the last step.</summary>
    Cosine,
}

/// <summary>
/// Learning rate per optimiser step, as transformers' schedulers compute it (<c>get_constant_schedule_with_warmup</c>,
/// <c>get_linear_schedule_with_warmup</c>, <c>get_cosine_schedule_with_warmup</c>): base × a factor of the
/// step count, with the same arithmetic, so the values are identical. Step 0 is the first update.
/// </summary>
public sealed record LearningRateSchedule(SchedulerType Kind, double BaseRate, int WarmupSteps, int TrainingSteps, double Cycles = 0.5)
{
    /// <summary>The schedules' names as transformers and the command line write them: constant, linear, cosine.</summary>
    public static readonly string[] Kinds = Enum.GetNames<SchedulerType>().Select(n => n.ToLowerInvariant()).ToArray();

    /// <summary>A schedule by its name (constant, linear, cosine), as the command line and checkpoints name it.</summary>
    public static SchedulerType Parse(string kind) =>
        Enum.TryParse<SchedulerType>(kind, ignoreCase: true, out var k) && Kinds.Contains(kind.ToLowerInvariant()) ? k
            : throw new ArgumentException($"Unknown scheduler '{kind}': use {string.Join(", ", Kinds)}.", nameof(kind));

    /// <summary>A schedule of <paramref name="trainingSteps"/> updates, the first <paramref name="warmupSteps"/> of them warming up.</summary>
    public static LearningRateSchedule Create(SchedulerType kind, double baseRate, int warmupSteps, int trainingSteps)
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), $"Unknown scheduler {kind}.");
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), $"Warm-up steps must be non-negative, not {warmupSteps}.");
        if (!(baseRate >= 0)) throw new ArgumentOutOfRangeException(nameof(baseRate), $"The learning rate must be non-negative, not {baseRate}.");
        return new LearningRateSchedule(kind, baseRate, warmupSteps, trainingSteps);
    }

    /// <summary>The schedule's name: constant, linear or cosine.</summary>
    public string Name => Kind.ToString().ToLowerInvariant();

    /// <summary>The rate for update number <paramref name="step"/> (0-based).</summary>
    public double At(long step) => BaseRate * Factor(step);

    private double Factor(long step)
    {
        if (step < WarmupSteps) return (double)step / Math.Max(1, WarmupSteps);
        switch (Kind)
        {
            case SchedulerType.Constant:
                return 1.0;
            case SchedulerType.Linear:
                return Math.Max(0.0, (double)(TrainingSteps - step) / Math.Max(1, TrainingSteps - WarmupSteps));
            default:
                double progress = (double)(step - WarmupSteps) / Math.Max(1, TrainingSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * Cycles * 2.0 * progress)));
        }
    }
}
