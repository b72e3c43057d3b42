namespace NBert.Tensors;

/// <summary>How many threads the engine uses (like <c>torch.set_num_threads</c>); all cores by default.</summary>
public static class Threading
{
    private static int _maxThreads = Environment.ProcessorCount;

    public static int MaxThreads
    {
        get => _maxThreads;
        set => _maxThreads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), $"MaxThreads must be at least 1, not {value}.");
    }
}
