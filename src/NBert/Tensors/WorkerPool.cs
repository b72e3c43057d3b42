using System.Diagnostics;

namespace NBert.Tensors;

/// <summary>
/// The engine's own worker threads. <c>Parallel.For</c> sometimes ran both halves of a split on the
/// calling thread, so two cores worked like one; these workers spin briefly after each job (jobs come
/// back to back in a forward pass) and then sleep. The caller takes part in every job. One job at a
/// time: a call made while a job runs (another thread's, or a nested one) runs its parts inline.
/// </summary>
internal sealed class WorkerPool
{
    public static WorkerPool Shared { get; } = new(Environment.ProcessorCount - 1);

    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 0.2 ms
    private readonly object _gate = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly int _workers;
    private Action<int>? _body;
    private int _parts, _next, _pending, _sleeping;
    private volatile int _generation;
    private Exception? _error;

    private WorkerPool(int workers)
    {
        _workers = Math.Max(0, workers);
        for (int i = 0; i < _workers; i++)
            new Thread(Loop) { IsBackground = true, Name = $"NBert worker {i + 1}" }.Start();
    }

    /// <summary>Runs body(0..parts-1), spread over the caller and up to <c>threads - 1</c> workers.</summary>
    public void Run(int parts, int threads, Action<int> body)
    {
        if (parts <= 1 || threads <= 1 || _workers == 0 || !Monitor.TryEnter(_gate))
        {
            for (int i = 0; i < parts; i++) body(i);
            return;
        }
        try
        {
            _error = null;
            _body = body;
            _parts = parts;
            Volatile.Write(ref _pending, parts); // before _next, so a late worker cannot claim a part of this job early
            Volatile.Write(ref _next, 0);
            _generation++;
            int sleepers = Volatile.Read(ref _sleeping);
            if (sleepers > 0) _wake.Release(Math.Min(sleepers, Math.Min(parts, threads) - 1));
            Work();
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            if (_error is { } e) throw new AggregateException(e);
        }
        finally
        {
            _body = null;
            Monitor.Exit(_gate);
        }
    }

    private void Work()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < Volatile.Read(ref _parts))
        {
            var body = _body;
            try
            {
                body?.Invoke(i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            Interlocked.Decrement(ref _pending);
        }
    }

    private void Loop()
    {
        int seen = 0;
        while (true)
        {
            long until = Stopwatch.GetTimestamp() + SpinTicks;
            while (_generation == seen)
            {
                if (Stopwatch.GetTimestamp() < until)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                Interlocked.Increment(ref _sleeping);
                if (_generation == seen) _wake.Wait(); // a release meant for an earlier job only makes this loop check again
                Interlocked.Decrement(ref _sleeping);
                until = Stopwatch.GetTimestamp() + SpinTicks;
            }
            seen = _generation;
            Work();
        }
    }
}
