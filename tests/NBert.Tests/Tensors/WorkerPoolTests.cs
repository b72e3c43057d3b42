using NBert.Tensors;

namespace NBert.Tests.Tensors;

public class WorkerPoolTests
{
    /// <summary>
    /// Jobs back to back from several threads at once: every part of every job runs exactly once and
    /// nothing hangs. The pool once kept one part counter for all jobs, and a worker arriving late from a
    /// job could claim a part of the next one between its writes: about one full test run in nine hung.
    /// Jobs now own their counters; this test guards the property (it did not hit that narrow window).
    /// </summary>
    [Fact]
    public async Task Every_part_runs_exactly_once_under_concurrent_jobs()
    {
        var run = Task.Run(() => Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, caller =>
        {
            var rng = new Random(caller);
            for (int job = 0; job < 20000; job++)
            {
                int parts = rng.Next(2, 9);
                var counts = new int[parts];
                // A little work per part, so workers join jobs late, as they do between a model's GEMMs.
                int spin = rng.Next(0, 400);
                WorkerPool.Shared.Run(parts, threads: 2, i =>
                {
                    Thread.SpinWait(spin);
                    Interlocked.Increment(ref counts[i]);
                });
                Assert.All(counts, c => Assert.Equal(1, c));
            }
        }));
        var first = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(120)));
        Assert.True(first == run, "the worker pool hung");
        await run;
    }

    [Fact]
    public void An_exception_in_a_part_reaches_the_caller_after_the_other_parts_ran()
    {
        int ran = 0;
        var ex = Assert.Throws<AggregateException>(() => WorkerPool.Shared.Run(6, 2, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 3) throw new InvalidOperationException("part 3");
        }));
        Assert.Equal("part 3", ex.InnerException!.Message);
        Assert.Equal(6, ran);
    }
}
