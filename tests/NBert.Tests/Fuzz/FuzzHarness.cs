using System.Diagnostics;
using Xunit.Abstractions;

namespace NBert.Tests.Fuzz;

/// <summary>
/// Runs seeded cases against a loader. Each case writes its (mutated) files, then loads them: the loader
/// must either load or refuse with <see cref="NBertException"/> (or <see cref="FileNotFoundException"/>),
/// and must not allocate more than the input could justify (64 bytes per input byte, plus 16 MiB for
/// fixed tables), measured on the loading thread. Anything else is a defect, reported with the case's
/// seed so that it can be replayed alone.
/// </summary>
/// <remarks>NBERT_FUZZ_SCALE multiplies the number of cases (a longer search), NBERT_FUZZ_SEED changes the seeds,
/// NBERT_FUZZ_REPLAY=SEED runs the one case of that seed with its full stack trace.</remarks>
internal sealed class FuzzHarness(ITestOutputHelper output)
{
    private const long FixedAllowance = 16 << 20, PerInputByte = 64;

    public static int Scale => int.TryParse(Environment.GetEnvironmentVariable("NBERT_FUZZ_SCALE"), out int s) && s > 0 ? s : 1;
    private static int BaseSeed => int.TryParse(Environment.GetEnvironmentVariable("NBERT_FUZZ_SEED"), out int s) ? s : 0;

    /// <param name="loader">The loader's name, for the report.</param>
    /// <param name="cases">Cases at scale 1.</param>
    /// <param name="prepare">Writes one case's files from its random source; returns the bytes of input the load reads.</param>
    /// <param name="load">Loads (and uses) what <paramref name="prepare"/> wrote.</param>
    public void Run(string loader, int cases, Func<Random, long> prepare, Action load)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("NBERT_FUZZ_REPLAY"), out int replay))
        {
            // One case, its exception left to propagate with the whole stack trace.
            prepare(new Random(replay));
            try { load(); } catch (Exception e) when (e is NBertException) { output.WriteLine($"refused: {e.Message}"); }
            return;
        }
        cases *= Scale;
        int loaded = 0, refused = 0;
        var defects = new List<(int Seed, string Kind, string Message)>();
        var clock = Stopwatch.StartNew();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < cases; i++)
        {
            int seed = unchecked(BaseSeed * 1_000_003 + loader.Length * 7919 + i);
            long input = prepare(new Random(seed));
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                load();
                loaded++;
            }
            catch (Exception e) when (e is NBertException)
            {
                refused++;
            }
            catch (Exception e)
            {
                var frame = new StackTrace(e, false).GetFrames().FirstOrDefault(f => f.GetMethod()?.DeclaringType?.Namespace?.StartsWith("NBert", StringComparison.Ordinal) == true);
                string place = $"{e.GetType().Name} at {frame?.GetMethod()?.DeclaringType?.Name}.{frame?.GetMethod()?.Name}";
                defects.Add((seed, place, FirstLine(e.Message)));
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before, allowed = FixedAllowance + PerInputByte * input;
            if (allocated > allowed) defects.Add((seed, "allocation", $"allocated {allocated:N0} bytes for {input:N0} bytes of input (allowed {allowed:N0})"));
        }
        // The process's CPU time: this loader's own when it runs alone, otherwise that of everything running beside it too.
        output.WriteLine($"fuzz {loader}: {cases} cases, {loaded} loaded, {refused} refused, {defects.Count} defects, " +
            $"{clock.Elapsed.TotalSeconds:F1} s, process CPU {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds:F1} s");
        // One line per kind of defect (its type and place), with the first seed that shows it.
        var kinds = defects.GroupBy(d => d.Kind).Select(g => $"{g.Count()} x {g.Key}: {g.First().Message} (seed {g.First().Seed})").ToList();
        foreach (var k in kinds) output.WriteLine("  " + k);
        Assert.True(defects.Count == 0, $"{loader}: {defects.Count} of {cases} cases failed another way than NBertException:\n{string.Join("\n", kinds)}");
        // Both outcomes must occur: a set-up that breaks every case (a companion file not copied) would otherwise pass
        // as thousands of refusals, and one whose mutations never land as thousands of loads.
        Assert.True(loaded > 0 && refused > 0, $"{loader}: {loaded} of {cases} cases loaded and {refused} were refused; the fuzzer tests nothing unless both happen");
    }

    private static string FirstLine(string s)
    {
        int n = s.IndexOfAny(['\r', '\n']);
        s = n < 0 ? s : s[..n];
        return s.Length <= 160 ? s : s[..157] + "...";
    }
}
