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
    private int _sleeping;
    private volatile int _generation;
    private volatile Job? _job;

    /// <summary>One call's work. Each job counts its own parts, so a worker that arrives late from an
    /// earlier job can only claim from that job's exhausted counter, never a part of the next one.</summary>
    private sealed class Job(Action<int> body, int parts)
    {
        public readonly Action<int> Body = body;
        public readonly int Parts = parts;
        public int Next;
        public int Pending = parts;
        public Exception? Error;
    }

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
            // Inline, with the same contract as a shared job: every part runs, the first failure comes after.
            var inline = new Job(body, parts);
            Work(inline);
            if (inline.Error is { } error) throw new AggregateException(error);
            return;
        }
        try
        {
            var job = new Job(body, parts);
            _job = job;
            _generation++;
            int sleepers = Volatile.Read(ref _sleeping);
            if (sleepers > 0) _wake.Release(Math.Min(sleepers, Math.Min(parts, threads) - 1));
            Work(job);
            // The workers' last parts are short: check often (SpinWait's backoff spun up to tens of microseconds between
            // checks, and yielded, after the parts were done).
            while (Volatile.Read(ref job.Pending) != 0) Thread.SpinWait(1);
            _job = null;
            if (job.Error is { } e) throw new AggregateException(e);
        }
        finally
        {
            Monitor.Exit(_gate);
        }
    }

    private static void Work(Job job)
    {
        int i;
        while ((i = Interlocked.Increment(ref job.Next) - 1) < job.Parts)
        {
            try
            {
                job.Body(i);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref job.Error, e, null);
            }
            Interlocked.Decrement(ref job.Pending);
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
            if (_job is { } job) Work(job);
        }
    }
}
