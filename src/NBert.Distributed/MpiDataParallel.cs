using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using NBert.Training;

namespace NBert.Distributed;

/// <summary>
/// Data-parallel training on MPI: the <see cref="IDataParallel"/> that <see cref="TrainerOptions.DataParallel"/> takes, over
/// the processes of an <c>mpirun</c>. Gradients are summed with MPI_Allreduce in buckets of at most
/// <see cref="BucketBytes"/> (DDP's <c>bucket_cap_mb</c>, 25 MB by default): the trainer keeps all gradients in one flat
/// buffer, so a bucket fuses many parameters' gradients into one message, and the transport never needs a second
/// buffer as large as the model. A failing rank ends all of them with MPI_Abort.
/// </summary>
/// <example><code>
/// using var world = MpiWorld.Start();
/// var options = new FineTuningOptions { BatchSize = 16, DataParallel = world.Size > 1 ? new MpiDataParallel(world) : null };
/// </code></example>
public sealed class MpiDataParallel : IDataParallel
{
    /// <summary>25 MiB, PyTorch DDP's default bucket_cap_mb.</summary>
    public const int DefaultBucketBytes = 25 << 20;
    private readonly Stopwatch _communication = new();

    /// <summary>Training over the processes of <paramref name="world"/>.</summary>
    public MpiDataParallel(MpiWorld world)
    {
        ArgumentNullException.ThrowIfNull(world);
        World = world;
    }

    /// <summary>The MPI processes.</summary>
    public MpiWorld World { get; }
    /// <summary>The most bytes of gradients one MPI_Allreduce carries.</summary>
    public int BucketBytes
    {
        get;
        init => field = value >= sizeof(float) ? value : throw new ArgumentOutOfRangeException(nameof(BucketBytes), $"A bucket holds at least one float, not {value} bytes.");
    } = DefaultBucketBytes;
    /// <summary>Time spent in the collectives so far (gradient allreduce included), for the share of a step spent communicating.</summary>
    public TimeSpan CommunicationTime => _communication.Elapsed;

    /// <inheritdoc/>
    public int Rank => World.Rank;
    /// <inheritdoc/>
    public int WorldSize => World.Size;

    /// <inheritdoc/>
    public void AllreduceSum(Span<float> values)
    {
        _communication.Start();
        try
        {
            int bucket = BucketBytes / sizeof(float);
            for (int offset = 0; offset < values.Length; offset += bucket)
                World.AllreduceSum(values.Slice(offset, Math.Min(bucket, values.Length - offset)));
        }
        finally
        {
            _communication.Stop();
        }
    }

    /// <inheritdoc/>
    public void AllreduceSum(Span<double> values)
    {
        _communication.Start();
        try
        {
            World.AllreduceSum(values);
        }
        finally
        {
            _communication.Stop();
        }
    }

    /// <inheritdoc/>
    public void Broadcast(Span<byte> bytes, int root)
    {
        _communication.Start();
        try
        {
            World.Broadcast(bytes, root);
        }
        finally
        {
            _communication.Stop();
        }
    }

    /// <inheritdoc/>
    [DoesNotReturn]
    public void Fail(Exception error) => Fail(error, ExitCodeOf(error));

    /// <summary>Writes <c>nbert: rank R/N: message</c> to standard error and ends every rank with <paramref name="exitCode"/> (MPI_Abort).</summary>
    [DoesNotReturn]
    public void Fail(Exception error, int exitCode)
    {
        ArgumentNullException.ThrowIfNull(error);
        Console.Error.WriteLine($"nbert: rank {Rank}/{WorldSize}: {error.Message} Stopping every rank (MPI_Abort).");
        World.Abort(exitCode);
    }

    /// <summary>The exit code for an error, as the nbert CLI's: 2 for bad input (<see cref="NBertException"/>, a file
    /// problem, a wrong argument), 130 for a cancelled run, 1 otherwise.</summary>
    public static int ExitCodeOf(Exception error) => error switch
    {
        OperationCanceledException => 130,
        NBertException or IOException or UnauthorizedAccessException or ArgumentException => 2,
        _ => 1,
    };
}
