using System.Diagnostics.CodeAnalysis;

namespace NBert.Training;

/// <summary>
/// The processes of a data-parallel run, as the <see cref="Trainer"/> uses them (<see cref="TrainerOptions.DataParallel"/>):
/// every process trains the same model on its own micro-batches of each step, and after backward the gradients are summed
/// over all of them, so that every process takes the same optimiser step. The NBert.Distributed package implements it
/// on MPI (mpirun); the core library has no transport of its own.
/// </summary>
/// <remarks>Every method but <see cref="Fail"/> is collective: every process calls it, in the same order, with buffers of
/// the same length.</remarks>
public interface IDataParallel
{
    /// <summary>This process's rank, 0 to <see cref="WorldSize"/> - 1; rank 0 writes checkpoints, metrics and progress.</summary>
    int Rank { get; }
    /// <summary>The number of processes.</summary>
    int WorldSize { get; }
    /// <summary>Sums <paramref name="values"/> (the gradients) over all processes, in place.</summary>
    void AllreduceSum(Span<float> values);
    /// <summary>Sums <paramref name="values"/> (losses, counts) over all processes, in place.</summary>
    void AllreduceSum(Span<double> values);
    /// <summary>Every process's <paramref name="bytes"/> become those of process <paramref name="root"/>.</summary>
    void Broadcast(Span<byte> bytes, int root);
    /// <summary>Ends every process of the run after this one failed with <paramref name="error"/> (the others may be waiting
    /// in a collective it will never join): reports the error and stops all of them with a non-zero exit code.</summary>
    [DoesNotReturn]
    void Fail(Exception error);
}
