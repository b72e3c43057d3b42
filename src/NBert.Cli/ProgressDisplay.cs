using Spectre.Console;

namespace NBert.Cli;

/// <summary>How far a piece of work has come: <see cref="Done"/> of <see cref="Total"/> (null: not known, the bar
/// pulses), and a few words on where it is.</summary>
public readonly record struct ProgressStep(double Done, double? Total = null, string? Detail = null);

/// <summary>
/// The one progress display of every command (downloads, streamed inputs, embedding a corpus, training): Spectre.Console's
/// bars on standard error, drawn only when standard error is a terminal, so that a pipe or a file never gets them. A
/// command asks for a bar with <see cref="Bar"/> and reports to it as to any <see cref="IProgress{T}"/>; the display is
/// opened at the first bar and closed when the command line ends (<see cref="Program.Run"/>).
/// </summary>
public sealed class ProgressDisplay : IDisposable
{
    /// <summary>This command line's writer and display, in a holder so that a display opened deep in a command is the
    /// one <see cref="End"/> closes (in-process runs in parallel, the tests, each keep their own).</summary>
    private sealed class Holder(TextWriter? writer)
    {
        public readonly TextWriter? Writer = writer;
        public ProgressDisplay? Open;
    }

    private static readonly AsyncLocal<Holder?> Current = new();

    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _rendering;
    private readonly ProgressContext _context;

    private ProgressDisplay(TextWriter error)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(error), Ansi = AnsiSupport.Detect, ColorSystem = ColorSystemSupport.Detect, Interactive = InteractionSupport.Yes,
        });
        var ready = new TaskCompletionSource<ProgressContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        // Spectre draws while its callback runs: the callback waits for the command to end, and the bars are
        // reported to from the command's own thread meanwhile (a ProgressTask is safe to update from any thread).
        _rendering = Task.Run(() => console.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                ready.SetResult(context);
                await _done.Task;
                context.Refresh();
            }));
        _context = ready.Task.GetAwaiter().GetResult();
    }

    /// <summary>Progress of this command line goes to <paramref name="error"/> when it is a terminal (null: nowhere).</summary>
    public static void Use(TextWriter? error) => Current.Value = new Holder(error);

    /// <summary>Whether bars are drawn for this command line (standard error is a terminal).</summary>
    public static bool IsShown => Current.Value?.Writer is not null;

    /// <summary>A bar named <paramref name="description"/>; a reporter that shows nothing when standard error is not a
    /// terminal, or, for work that writes its results as it goes (<paramref name="besideOutput"/>), when standard output
    /// is the terminal too (the bars would be drawn over the results).</summary>
    public static IProgress<ProgressStep> Bar(string description, bool besideOutput = false)
    {
        if (Current.Value is not { Writer: { } writer } holder || (besideOutput && Program.IsTerminal)) return Nothing.Instance;
        holder.Open ??= new ProgressDisplay(writer);
        var task = holder.Open._context.AddTask(Markup.Escape(description), maxValue: 1);
        task.IsIndeterminate = true;
        return new Reporter(task, description);
    }

    /// <summary>Closes this command line's display, if one was opened.</summary>
    public static void End()
    {
        Current.Value?.Open?.Dispose();
        Current.Value = null;
    }

    public void Dispose()
    {
        _done.TrySetResult();
        _rendering.GetAwaiter().GetResult();
    }

    private sealed class Reporter(ProgressTask task, string description) : IProgress<ProgressStep>
    {
        public void Report(ProgressStep step)
        {
            task.IsIndeterminate = step.Total is null;
            task.MaxValue = step.Total is double total && total > 0 ? total : Math.Max(step.Done, 1);
            task.Value = step.Done;
            task.Description = Markup.Escape(step.Detail is null ? description : $"{description}: {step.Detail}");
        }
    }

    private sealed class Nothing : IProgress<ProgressStep>
    {
        public static readonly Nothing Instance = new();
        public void Report(ProgressStep step) { }
    }
}
