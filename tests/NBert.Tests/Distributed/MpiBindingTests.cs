using System.Text.RegularExpressions;
using NBert.Distributed;

namespace NBert.Tests.Distributed;

/// <summary>The Open MPI binding under a real <c>mpirun -np 2</c> on loopback (tests/NBert.MpiCheck): each collective gives
/// every rank the same, right, values, and one failing rank ends them all quickly instead of leaving the other blocked.</summary>
public class MpiBindingTests
{
    // Past the limit mpirun and its ranks are killed and the test fails (a hang); it covers starting 2 .NET processes on a
    // loaded machine. How fast a failing rank ends the others is timed from its message (printed just before MPI_Abort) to
    // mpirun's exit: about 0.1 s here; 10 s bounds it on a loaded 2-core machine.
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60), AbortBound = TimeSpan.FromSeconds(10);

    /// <summary>The "rank R/2: ..." lines, by rank; both ranks must have reported.</summary>
    private static string[] Reports(string mode)
    {
        var (code, output, error, _) = Mpirun.Run(2, Limit, Mpirun.MpiCheck, mode);
        Assert.True(code == 0, $"exit {code}\n{output}\n{error}");
        var reports = new string[2];
        foreach (Match m in Regex.Matches(output, @"rank (\d)/2: (.*)")) reports[int.Parse(m.Groups[1].Value)] = m.Groups[2].Value.Trim();
        Assert.All(reports, r => Assert.False(r is null, $"a rank did not report:\n{output}\n{error}"));
        return reports;
    }

    [Fact]
    public void WithoutMpirunTheWorldIsOneProcessAndNothingIsLoaded()
    {
        Assert.False(MpiWorld.IsLaunchedByMpirun);
        var world = MpiWorld.Start();
        Assert.Equal((0, 1, false), (world.Rank, world.Size, world.IsMpi));
        var values = new[] { 1.5f, -2f };
        world.AllreduceSum(values);
        world.Broadcast(values);
        world.Barrier();
        Assert.Equal([1.5f, -2f], values); // a world of one: the sum over ranks is its own values
        Assert.Throws<ArgumentOutOfRangeException>(() => world.Broadcast(values, root: 1));
    }

    [MpiFact]
    public void RanksAndSize() => Assert.Equal(["mpi=True", "mpi=True"], Reports("info"));

    [MpiFact]
    public void AllreduceSumsFloatsInPlaceOnEveryRank()
    {
        // Rank r holds r + 0.25 i: the sum at i is 1 + 0.5 i (exact in float32).
        var expected = string.Join(",", new[] { 1f, 1.5f, 2f, 2.5f, 1 + 0.5f * 999 }.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal([expected, expected], Reports("allreduce-float"));
    }

    [MpiFact]
    public void AllreduceSumsDoublesInPlaceOnEveryRank()
    {
        // Rank r holds r * 1e-9 + i: float32 could not keep the 1e-9.
        var expected = string.Join(",", new[] { 0, 1, 2, 3, 999 }.Select(i => (1e-9 + 2.0 * i).ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal([expected, expected], Reports("allreduce-double"));
    }

    [MpiFact]
    public void BroadcastGivesEveryRankTheRootsValues()
    {
        // The root is rank 1: floats {1.5, -1}, doubles {1.125, pi}, bytes {2, 3}.
        const string expected = "1.5,-1;1.125,3.141592653589793;2,3";
        Assert.Equal([expected, expected], Reports("bcast"));
    }

    [MpiFact]
    public void NoRankLeavesTheBarrierBeforeEveryRankEnteredIt() =>
        Assert.Equal(["left-after-all-entered=True", "left-after-all-entered=True"], Reports("barrier"));

    [MpiFact]
    public void ARankThatThrowsEndsEveryRankWithANonZeroExitQuickly()
    {
        // Rank 0 waits in an allreduce that rank 1 never joins: without MPI_Abort it would hang until the time limit.
        var result = Mpirun.Run(2, Limit, Mpirun.MpiCheck, "throw");
        var (code, output, error, _) = result;
        Assert.NotEqual(0, code);
        Assert.Contains("rank 1 failed on purpose", output + error);
        Assert.DoesNotContain("allreduce returned", output);
        Assert.True(result.SinceErrorLine("^rank 1: .*failed on purpose") < AbortBound, $"mpirun ended {result.SinceErrorLine("^rank 1: ").TotalSeconds:F1} s after rank 1 failed");
    }

    [MpiFact]
    public void A_rank_failing_inside_the_trainer_ends_every_rank_with_its_message()
    {
        // Rank 1's batch function throws at step 3 (micro-batch 5: rank 1 takes 1, 3, 5) while rank 0 waits in the gradient allreduce: the trainer's
        // IDataParallel.Fail (MPI_Abort) must end both, with rank 1's reason.
        var result = Mpirun.Run(2, Limit, Mpirun.MpiCheck, "train-fail");
        var (code, output, error, _) = result;
        Assert.True(code == 1, $"exit {code}\n{output}\n{error}");
        Assert.Contains("nbert: rank 1/2: rank 1 failed on purpose at micro-batch 5", error);
        Assert.DoesNotContain("training finished", output);
        var ending = result.SinceErrorLine("^nbert: rank 1/2: ");
        Assert.True(ending < AbortBound, $"mpirun ended {ending.TotalSeconds:F1} s after rank 1 failed");
    }
}
