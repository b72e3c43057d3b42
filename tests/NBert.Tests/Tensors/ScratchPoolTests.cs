using NBert.Tensors;

namespace NBert.Tests.Tensors;

/// <summary>Issue 29, item 8: the scratch of inference passes is reused across shapes and let go when idle.</summary>
public sealed class ScratchPoolTests
{
    [Fact]
    public void A_request_takes_the_smallest_free_array_that_is_long_enough()
    {
        var pool = new ScratchPool<float>(TimeSpan.FromHours(1));
        var large = pool.Rent(1000);
        var small = pool.Rent(100);
        Assert.True(large.Length >= 1000 && small.Length >= 100);
        pool.Return(large);
        pool.Return(small);
        Assert.Same(small, pool.Rent(90)); // not the large one
        Assert.Same(large, pool.Rent(500)); // a larger array serves a smaller shape: no set per size
        var fresh = pool.Rent(2000);
        Assert.NotSame(large, fresh);
        Assert.Equal(0, pool.Free.Count);
    }

    [Fact]
    public void At_most_MaxFree_arrays_wait_and_the_smallest_go_first()
    {
        var pool = new ScratchPool<float>(TimeSpan.FromHours(1));
        var arrays = Enumerable.Range(1, ScratchPool<float>.MaxFree + 3).Select(n => pool.Rent(n * 100)).ToList();
        foreach (var a in arrays) pool.Return(a);
        Assert.Equal(ScratchPool<float>.MaxFree, pool.Free.Count);
        Assert.Equal(arrays.Skip(3).Sum(a => (long)a.Length) * sizeof(float), pool.Free.Bytes);
    }

    [Fact]
    public void Free_arrays_are_dropped_once_no_pass_returned_one_for_the_idle_time()
    {
        var pool = new ScratchPool<float>(TimeSpan.FromMilliseconds(300));
        pool.Return(pool.Rent(1 << 20));
        Assert.Equal(0, pool.ReleaseIfIdle()); // just returned: kept
        Assert.Equal(1, pool.Free.Count);
        Thread.Sleep(400);
        Assert.True(pool.ReleaseIfIdle() >= 4L << 20);
        Assert.Equal((0, 0L), pool.Free);
        // The timer does it without being asked.
        pool.Return(pool.Rent(1000));
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (pool.Free.Count > 0 && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.Equal(0, pool.Free.Count);
    }
}
