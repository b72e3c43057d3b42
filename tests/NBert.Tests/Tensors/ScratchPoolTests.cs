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
    public void Free_arrays_wait_while_passes_come_and_are_dropped_once_none_came_for_the_idle_time()
    {
        var busy = new ScratchPool<float>(TimeSpan.FromHours(1));
        busy.Return(busy.Rent(1 << 20));
        Assert.Equal(0, busy.ReleaseIfIdle()); // just returned: kept
        Assert.Equal((1, 4L * ((1 << 20) + (1 << 17))), busy.Free); // an eighth over the length asked

        // The timer drops them without being asked, and the next pass allocates afresh.
        var pool = new ScratchPool<float>(TimeSpan.FromMilliseconds(200));
        var first = pool.Rent(1000);
        pool.Return(first);
        Assert.Equal(1, pool.Free.Count);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (pool.Free.Count > 0 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Equal((0, 0L), pool.Free);
        Assert.NotSame(first, pool.Rent(1000));
    }
}
