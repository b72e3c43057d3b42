using System.Globalization;
using System.Text;

namespace NBert.Server;

/// <summary>
/// The server's Prometheus metrics under text-embeddings-inference's names (<c>te_request_count</c>,
/// <c>te_request_duration</c>, <c>te_batch_next_size</c>, <c>te_queue_size</c>, ...) with TEI's histogram
/// buckets, rendered in Prometheus' text format for <c>GET /metrics</c>. Small enough not to need a package.
/// </summary>
internal sealed class Metrics
{
    private readonly object _lock = new();
    private readonly SortedDictionary<string, SortedDictionary<string, double>> _counters = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, double> _gauges = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, Histogram> _histograms = new(StringComparer.Ordinal);

    private sealed class Histogram(double[] buckets)
    {
        public readonly double[] Buckets = buckets;
        public readonly long[] Counts = new long[buckets.Length];
        public double Sum;
        public long Count;
    }

    public Metrics(int maxInputLength)
    {
        // TEI's buckets (router/src/prometheus.rs): durations in seconds, 35 steps of x1.5 from 15 µs; input lengths,
        // batch sizes and batch tokens in powers of two.
        var durations = new double[35];
        double d = 0.00001;
        for (int i = 0; i < durations.Length; i++) durations[i] = d *= 1.5;
        foreach (var name in new[] { "te_request_duration", "te_request_tokenization_duration", "te_request_queue_duration", "te_request_inference_duration" })
            _histograms[name] = new Histogram(durations);
        _histograms["te_request_input_length"] = new Histogram(Powers(20).Where(x => x <= maxInputLength).ToArray());
        _histograms["te_batch_next_size"] = new Histogram(Powers(13));
        _histograms["te_batch_next_tokens"] = new Histogram(Powers(21));
        _gauges["te_queue_size"] = 0;
    }

    private static double[] Powers(int n) => Enumerable.Range(0, n).Select(i => Math.Pow(2, i)).ToArray();

    /// <summary>Adds one to a counter; <paramref name="label"/> is one <c>name=value</c> pair, or null.</summary>
    public void Count(string name, string? label = null)
    {
        lock (_lock)
        {
            if (!_counters.TryGetValue(name, out var series)) _counters[name] = series = new(StringComparer.Ordinal);
            series[label ?? ""] = series.GetValueOrDefault(label ?? "") + 1;
        }
    }

    public void Observe(string histogram, double value)
    {
        lock (_lock)
        {
            var h = _histograms[histogram];
            for (int i = 0; i < h.Buckets.Length; i++)
                if (value <= h.Buckets[i]) h.Counts[i]++;
            h.Sum += value;
            h.Count++;
        }
    }

    public void Set(string gauge, double value)
    {
        lock (_lock) _gauges[gauge] = value;
    }

    /// <summary>The current value of a counter series (what the tests read back).</summary>
    public double Value(string name, string? label = null)
    {
        lock (_lock) return _counters.TryGetValue(name, out var s) ? s.GetValueOrDefault(label ?? "") : 0;
    }

    /// <summary>A counter summed over all its series (every <c>err</c> of <c>te_request_failure</c>, say).</summary>
    public double Total(string name)
    {
        lock (_lock) return _counters.TryGetValue(name, out var s) ? s.Values.Sum() : 0;
    }

    public string Render()
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        string Number(double x) => double.IsPositiveInfinity(x) ? "+Inf" : x.ToString("G10", inv);
        lock (_lock)
        {
            foreach (var (name, series) in _counters)
            {
                sb.Append("# TYPE ").Append(name).Append(" counter\n");
                foreach (var (label, value) in series)
                    sb.Append(name).Append(label.Length > 0 ? $"{{{label}}}" : "").Append(' ').Append(Number(value)).Append('\n');
            }
            foreach (var (name, value) in _gauges)
                sb.Append("# TYPE ").Append(name).Append(" gauge\n").Append(name).Append(' ').Append(Number(value)).Append('\n');
            foreach (var (name, h) in _histograms)
            {
                sb.Append("# TYPE ").Append(name).Append(" histogram\n");
                for (int i = 0; i < h.Buckets.Length; i++)
                    sb.Append(name).Append("_bucket{le=\"").Append(Number(h.Buckets[i])).Append("\"} ").Append(h.Counts[i].ToString(inv)).Append('\n');
                sb.Append(name).Append("_bucket{le=\"+Inf\"} ").Append(h.Count.ToString(inv)).Append('\n');
                sb.Append(name).Append("_sum ").Append(Number(h.Sum)).Append('\n');
                sb.Append(name).Append("_count ").Append(h.Count.ToString(inv)).Append('\n');
            }
        }
        return sb.ToString();
    }
}
