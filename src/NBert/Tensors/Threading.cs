namespace NBert.Tensors;

/// <summary>How many threads the engine uses (like <c>torch.set_num_threads</c>); all cores by default.</summary>
public static class Threading
{
    private static int _maxThreads = Environment.ProcessorCount;

    /// <summary>The most threads one operation (a GEMM, a row-wise kernel, an AdamW update) runs on; process-wide, read at
    /// the start of each operation. Defaults to <see cref="Environment.ProcessorCount"/>; 1 runs everything on the calling thread.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to less than 1.</exception>
    public static int MaxThreads
    {
        get => _maxThreads;
        set => _maxThreads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), $"MaxThreads must be at least 1, not {value}.");
    }

    /// <summary>Runs body(firstRow, endRow) over row chunks on the engine's threads (elementwise work
    /// between GEMMs would otherwise run on one core).</summary>
    internal static void ForRows(int rows, Action<int, int> body)
    {
        int threads = MaxThreads;
        if (threads <= 1 || rows < 32)
        {
            body(0, rows);
            return;
        }
        int parts = Math.Min(rows, threads * 4);
        WorkerPool.Shared.Run(parts, threads, p => body((int)((long)rows * p / parts), (int)((long)rows * (p + 1) / parts)));
    }
}
