using System.Diagnostics;
using NBert.Tokenization;

namespace NBert.Server;

/// <summary>Time an input waited in the queue and the time of the forward pass (or pipeline run) it was part of.</summary>
internal readonly record struct Timing(TimeSpan Queue, TimeSpan Inference);

/// <summary>One queued piece of work: the batching loop completes, fails or drops it.</summary>
internal abstract class Work(CancellationToken aborted)
{
    public long Arrival;
    public long QueuedAt;
    /// <summary>The request's abort token: a client that has gone away is dropped before its work runs.</summary>
    public CancellationToken Aborted { get; } = aborted;
    public abstract void Fail(Exception e);
    public abstract void Drop();
}

/// <summary>One input of an encoder model (embedding or classifier), tokenized on arrival.</summary>
internal sealed class EncoderWork(TokenEncoding encoding, EncoderOutput output, CancellationToken aborted) : Work(aborted)
{
    public TokenEncoding Encoding { get; } = encoding;
    public EncoderOutput Output { get; } = output;
    public TaskCompletionSource<(object Value, Timing Timing)> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public override void Fail(Exception e) => Done.TrySetException(e);
    public override void Drop() => Done.TrySetCanceled(Aborted);
}

/// <summary>One request of a pipeline route; requests with the same <see cref="Group"/> (route and parameters) run together.</summary>
internal sealed class PipelineWork(string group, IReadOnlyList<object> inputs, Func<IReadOnlyList<object>, IReadOnlyList<object>> run,
    CancellationToken aborted) : Work(aborted)
{
    public string Group { get; } = group;
    public IReadOnlyList<object> Inputs { get; } = inputs;
    public Func<IReadOnlyList<object>, IReadOnlyList<object>> Run { get; } = run;
    public TaskCompletionSource<(IReadOnlyList<object> Values, Timing Timing)> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public override void Fail(Exception e) => Done.TrySetException(e);
    public override void Drop() => Done.TrySetCanceled(Aborted);
}

/// <summary>
/// Dynamic batching, after text-embeddings-inference's queue (core/src/queue.rs, infer.rs): requests are tokenized
/// on arrival and queued; one loop, on its own thread, repeatedly takes a batch, runs the model once for it and
/// completes each request. Work whose client has disconnected is dropped before it runs.
/// <para>
/// An encoder batch always holds the oldest waiting input (nothing waits forever). Around it, the loop takes a run
/// of the waiting inputs sorted by length, growing it by whichever neighbour, shorter or longer, adds the least
/// padding, while the batch padded to its longest stays within <c>--max-batch-tokens</c> (TEI's rule for padded
/// models) and <c>--max-batch-requests</c>. Pipeline requests with the same route and parameters run as one
/// pipeline call. A forward pass gives a row the same bits whatever it is batched with, so an answer never depends
/// on its neighbours.
/// </para>
/// </summary>
internal sealed class BatchingQueue
{
    private readonly ServedModel _model;
    private readonly Metrics _metrics;
    private readonly int _maxBatchTokens;
    private readonly int _maxBatchRequests;
    private readonly object _lock = new();
    private readonly List<Work> _waiting = [];
    private readonly Thread _thread;
    private long _arrivals;
    private bool _stopping;

    /// <summary>The logging of the application the routes were mapped into; null keeps the loop's own (the context it
    /// was started in: the CLI's standard error for nbert serve).</summary>
    internal Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Runs on the loop's thread after a batch is chosen and before it runs (tests hold the loop with it).</summary>
    internal Action? BeforeBatch { get; set; }

    public BatchingQueue(ServedModel model, Metrics metrics, int maxBatchTokens, int? maxBatchRequests)
    {
        _model = model;
        _metrics = metrics;
        _maxBatchTokens = maxBatchTokens;
        _maxBatchRequests = maxBatchRequests ?? int.MaxValue;
        _thread = new Thread(Loop) { IsBackground = true, Name = "nbert batching loop" };
        _thread.Start();
    }

    /// <summary>The work waiting now, oldest first (what the tests look at).</summary>
    internal Work[] Waiting()
    {
        lock (_lock) return [.. _waiting];
    }

    /// <summary>Whether the loop is taking work (false once stopping).</summary>
    public bool IsRunning => _thread.IsAlive && !Volatile.Read(ref _stopping);

    public void Add(Work work)
    {
        lock (_lock)
        {
            if (_stopping) throw ServerError.ShuttingDown();
            work.Arrival = _arrivals++;
            work.QueuedAt = Stopwatch.GetTimestamp();
            _waiting.Add(work);
            _metrics.Set("te_queue_size", _waiting.Count);
            Monitor.Pulse(_lock);
        }
    }

    /// <summary>Stops the loop after the batch in progress (without waiting for it: a stop must end in bounded time);
    /// whatever still waits fails as unhealthy.</summary>
    public void Stop()
    {
        lock (_lock)
        {
            _stopping = true;
            foreach (var w in _waiting) w.Fail(ServerError.ShuttingDown());
            _waiting.Clear();
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Waits at most <paramref name="timeout"/> for the loop to end after <see cref="Stop"/>; true when it has.</summary>
    public bool WaitStopped(TimeSpan timeout) => _thread.Join(timeout);

    private void Loop()
    {
        while (true)
        {
            List<Work> batch;
            lock (_lock)
            {
                while (true)
                {
                    if (_stopping) return;
                    DropAbandoned();
                    if (_waiting.Count > 0) break;
                    Monitor.Wait(_lock);
                }
                batch = Take();
                var taken = batch.ToHashSet(); // one pass, not batch x queue under the lock
                _waiting.RemoveAll(taken.Contains);
                _metrics.Set("te_queue_size", _waiting.Count);
            }
            BeforeBatch?.Invoke();
            // The batch's warnings (a fill-mask target not in the vocabulary) go to the host's logging when it has one.
            using (LoggerFactory is { } host ? NBertLogging.Use(host) : null)
            {
                if (batch[0] is EncoderWork) RunEncoder(batch.Cast<EncoderWork>().ToList());
                else RunPipeline(batch.Cast<PipelineWork>().ToList());
            }
        }
    }

    /// <summary>Removes work whose client has gone away (TEI's <c>te_request_failure{err="dropped"}</c>).</summary>
    private void DropAbandoned() =>
        _waiting.RemoveAll(w =>
        {
            if (!w.Aborted.IsCancellationRequested) return false;
            w.Drop();
            _metrics.Count("te_request_failure", "err=\"dropped\"");
            return true;
        });

    private List<Work> Take()
    {
        var oldest = _waiting[0];
        if (oldest is PipelineWork p)
            return _waiting.OfType<PipelineWork>().Where(w => w.Group == p.Group).Take(_maxBatchRequests).Cast<Work>().ToList();
        var sorted = _waiting.OfType<EncoderWork>().OrderBy(w => w.Encoding.Length).ThenBy(w => w.Arrival).ToList();
        int lo = sorted.IndexOf((EncoderWork)oldest), hi = lo, longest = oldest is EncoderWork e ? e.Encoding.Length : 0;
        while (hi - lo + 1 < _maxBatchRequests)
        {
            long count = hi - lo + 1;
            bool downFits = lo > 0 && (count + 1) * longest <= _maxBatchTokens;
            int upLength = hi + 1 < sorted.Count ? sorted[hi + 1].Encoding.Length : 0;
            bool upFits = hi + 1 < sorted.Count && (count + 1) * upLength <= _maxBatchTokens;
            if (!downFits && !upFits) break;
            // Padding added: a shorter row is padded up to the longest; a longer row pads every row already in.
            long downPadding = downFits ? longest - sorted[lo - 1].Encoding.Length : long.MaxValue;
            long upPadding = upFits ? (upLength - longest) * count : long.MaxValue;
            if (downPadding <= upPadding) lo--;
            else longest = sorted[++hi].Encoding.Length;
        }
        return sorted.GetRange(lo, hi - lo + 1).Cast<Work>().ToList();
    }

    private void RunEncoder(List<EncoderWork> batch)
    {
        long start = Stopwatch.GetTimestamp();
        object[] results;
        try
        {
            results = _model.RunEncoder(batch.Select(w => w.Encoding).ToList(), batch.Select(w => w.Output).ToList());
        }
        catch (Exception e)
        {
            foreach (var w in batch) w.Fail(ServerError.Inference(e.Message));
            return;
        }
        var inference = Stopwatch.GetElapsedTime(start);
        _metrics.Observe("te_batch_next_size", batch.Count);
        _metrics.Observe("te_batch_next_tokens", batch.Sum(w => w.Encoding.Length));
        for (int i = 0; i < batch.Count; i++)
            batch[i].Done.TrySetResult((results[i], new Timing(Stopwatch.GetElapsedTime(batch[i].QueuedAt, start), inference)));
    }

    private void RunPipeline(List<PipelineWork> batch)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            var values = batch[0].Run(batch.SelectMany(w => w.Inputs).ToList());
            var inference = Stopwatch.GetElapsedTime(start);
            _metrics.Observe("te_batch_next_size", values.Count);
            int at = 0;
            foreach (var w in batch)
            {
                w.Done.TrySetResult((values.Skip(at).Take(w.Inputs.Count).ToList(), new Timing(Stopwatch.GetElapsedTime(w.QueuedAt, start), inference)));
                at += w.Inputs.Count;
            }
        }
        catch (ArgumentException) when (batch.Count > 1)
        {
            // One request's input was refused: run each alone, so that only that request fails.
            foreach (var w in batch) RunPipeline([w]);
        }
        catch (ArgumentException e)
        {
            batch[0].Fail(ServerError.Refused(e));
        }
        catch (Exception e)
        {
            foreach (var w in batch) w.Fail(ServerError.Inference(e.Message));
        }
    }
}
