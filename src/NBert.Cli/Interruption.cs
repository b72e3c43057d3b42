namespace NBert.Cli;

/// <summary>
/// Ctrl-C during training: the first press asks the trainer to stop before its next step (it writes a checkpoint that
/// <c>--resume</c> continues from); a second press ends the process at once, as Ctrl-C normally does.
/// </summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _source = new();

    public Interruption() => Console.CancelKeyPress += OnCancel;

    /// <summary>Cancelled by the first Ctrl-C.</summary>
    public CancellationToken Token => _source.Token;

    /// <summary>The exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.</summary>
    public const int ExitCode = 130;

    /// <summary>Says where a stopped training run can be continued from; returns <see cref="ExitCode"/>.</summary>
    public static int Stopped(TextWriter stdout, string outDir)
    {
        stdout.WriteLine(NBert.Training.Trainer.LatestCheckpoint(outDir) is { } checkpoint
            ? $"interrupted: {checkpoint} holds the run so far; the same command with --resume continues it."
            : "interrupted before the first step: nothing to resume.");
        return ExitCode;
    }

    private void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        if (_source.IsCancellationRequested) return; // the second press: let the process end
        e.Cancel = true;
        _source.Cancel();
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancel;
        _source.Dispose();
    }
}
