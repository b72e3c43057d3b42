namespace NBert.Tensors;

/// <summary>
/// The random numbers behind dropout: counter-based, so the whole state is (seed, position). A run
/// resumed from a checkpoint that stored <see cref="Position"/> draws exactly the masks an uninterrupted
/// run would have drawn. Each value is SplitMix64's mix of seed and counter.
/// Not thread-safe: <see cref="Take"/> advances <see cref="Position"/>; call it from one thread and hand the
/// reserved ranges to parallel <see cref="Fill"/> calls, which only read the seed.
/// </summary>
public sealed class DropoutRandom(ulong seed, ulong position = 0)
{
    /// <summary>The seed every value derives from (a run's <c>seed</c>, saved as <c>dropout_seed</c> in a checkpoint).</summary>
    public ulong Seed { get; } = seed;
    /// <summary>How many values have been drawn.</summary>
    public ulong Position { get; set; } = position;

    /// <summary>Reserves the next <paramref name="count"/> values and returns where they start, so that
    /// parallel parts can each fill their share with <see cref="Fill"/>.</summary>
    public ulong Take(long count)
    {
        ulong start = Position;
        Position += (ulong)count;
        return start;
    }

    /// <summary>keep[i] = false with probability p, true otherwise, from values start, start + 1, ...</summary>
    public void Fill(Span<bool> keep, double p, ulong start)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), $"A dropout probability must be in [0, 1), not {p}.");
        // A 64-bit uniform value below p·2⁶⁴ means "drop".
        ulong threshold = (ulong)(p * 18446744073709551616.0);
        for (int i = 0; i < keep.Length; i++) keep[i] = Mix(Seed, start + (ulong)i) >= threshold;
    }

    private static ulong Mix(ulong seed, ulong counter)
    {
        ulong z = seed + (counter + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
