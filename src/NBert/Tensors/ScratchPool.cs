namespace NBert.Tensors;

/// <summary>
/// The large scratch arrays of inference passes (an encoder pass's activations: tens to hundreds of MB for a batch of
/// long inputs), reused from pass to pass and let go when the process has not run a pass for a while.
/// <see cref="System.Buffers.ArrayPool{T}.Shared"/> is the wrong home for them: it keeps a set per power-of-two size
/// (a burst of batches of varied shapes leaves several sets of hundreds of MB), per thread and per core, and trims only
/// during full collections, which an idle process does not run, so a server that once served long inputs stayed at
/// 1 GB or more. Here a request takes the smallest free array that is long enough (so one set serves the smaller
/// shapes too), at most <see cref="MaxFree"/> arrays wait, and <see cref="IdleRelease"/> after the last return they are
/// all dropped; when that drops at least <see cref="CollectAfter"/> bytes, a full collection gives the memory back to
/// the system at once instead of at the next collection, which an idle process may not have for hours.
/// </summary>
internal sealed class ScratchPool<T> where T : unmanaged
{
    /// <summary>The pool of the process's inference passes.</summary>
    public static ScratchPool<T> Shared { get; } = new(TimeSpan.FromSeconds(5));

    /// <summary>How many free arrays wait at most: a pass of the encoder takes 7, so two passes at once reuse theirs.</summary>
    public const int MaxFree = 16;
    /// <summary>Dropping at least this many bytes when idle is worth a full collection (about 1 ms for NBert's heap).</summary>
    public const long CollectAfter = 32L << 20;

    private readonly List<T[]> _free = [];
    private readonly Timer _timer;
    private long _lastReturn;

    public ScratchPool(TimeSpan idleRelease)
    {
        IdleRelease = idleRelease;
        _timer = new Timer(_ => ReleaseIfIdle(), null, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>How long after the last return the free arrays are dropped.</summary>
    public TimeSpan IdleRelease { get; }

    /// <summary>How many arrays wait, and their total bytes (for tests).</summary>
    internal (int Count, long Bytes) Free
    {
        get
        {
            lock (_free) return (_free.Count, _free.Sum(a => (long)a.Length) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>());
        }
    }

    /// <summary>An array of at least <paramref name="length"/> elements, not cleared.</summary>
    public T[] Rent(int length)
    {
        lock (_free)
        {
            int best = -1;
            for (int i = 0; i < _free.Count; i++)
                if (_free[i].Length >= length && (best < 0 || _free[i].Length < _free[best].Length)) best = i;
            if (best >= 0)
            {
                var found = _free[best];
                _free.RemoveAt(best);
                return found;
            }
        }
        // An eighth over the length, so that slightly longer batches of the same shape reuse it.
        return GC.AllocateUninitializedArray<T>((int)Math.Min(Array.MaxLength, length + (long)length / 8));
    }

    /// <summary>Takes back an array <see cref="Rent"/> gave; beyond <see cref="MaxFree"/>, the smallest is dropped.</summary>
    public void Return(T[] array)
    {
        lock (_free)
        {
            _free.Add(array);
            if (_free.Count > MaxFree) _free.Remove(_free.MinBy(a => a.Length)!);
            _lastReturn = Environment.TickCount64;
            _timer.Change(IdleRelease, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Drops every free array, if no array came back within <see cref="IdleRelease"/>; returns the bytes dropped.</summary>
    internal long ReleaseIfIdle()
    {
        long dropped;
        lock (_free)
        {
            long idle = Environment.TickCount64 - _lastReturn;
            if (idle < (long)IdleRelease.TotalMilliseconds)
            {
                _timer.Change(TimeSpan.FromMilliseconds((long)IdleRelease.TotalMilliseconds - idle), Timeout.InfiniteTimeSpan);
                return 0;
            }
            dropped = _free.Sum(a => (long)a.Length) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            _free.Clear();
        }
        if (dropped >= CollectAfter) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return dropped;
    }
}
