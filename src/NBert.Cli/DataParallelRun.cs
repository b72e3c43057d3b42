using System.CommandLine;
using NBert.Distributed;

namespace NBert.Cli;

/// <summary>
/// A training command under mpirun: every process runs the command, rank 0 alone prints and writes, the trainer sums the
/// gradients over them (<see cref="MpiDataParallel"/>), and a rank that fails ends all of them (MPI_Abort) rather than
/// leaving the others blocked.
/// </summary>
internal static class DataParallelRun
{
    /// <summary>--distributed: MPI even where the environment does not show mpirun (another launcher, an MPI singleton).</summary>
    public static Option<bool> Option() => new("--distributed")
    {
        Description = "Data-parallel training over the processes of mpirun (automatic under Open MPI's mpirun: mpirun -np N nbert ...); --batch-size is per process",
    };

    /// <summary>Runs <paramref name="body"/> with the data-parallel group (null for one process) and the standard output
    /// to print to (nothing on ranks other than 0).</summary>
    public static int Run(bool distributed, TextWriter stdout, Func<MpiDataParallel?, TextWriter, int> body)
    {
        if (!distributed && !MpiWorld.IsLaunchedByMpirun) return body(null, stdout);
        var world = MpiWorld.Start(require: true);
        var group = world.Size > 1 ? new MpiDataParallel(world) : null;
        int code;
        try
        {
            code = body(group, world.Rank == 0 ? stdout : TextWriter.Null);
        }
        catch (Exception e) when (group is not null)
        {
            group.Fail(e, e is CliException ? Program.BadInput : MpiDataParallel.ExitCodeOf(e));
            throw; // not reached: Fail ends the process
        }
        world.Dispose();
        return code;
    }
}
