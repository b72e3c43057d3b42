namespace NBert;

/// <summary>
/// Where NBert's warnings go: things that are allowed but probably not meant, such as a head that a checkpoint lacks
/// and that was newly initialised (its answers mean nothing until it is trained) or checkpoint weights that were not
/// used. As transformers logs them, they go to standard error by default ("NBert warning: ..."). Set
/// <see cref="Handler"/> to route them elsewhere (a logger) or to null to silence them; <see cref="Capture"/> routes
/// the warnings of one operation (and the work it starts) without touching the rest of the process.
/// </summary>
public static class NBertWarnings
{
    private static readonly AsyncLocal<Action<string>?> Scoped = new();

    /// <summary>The process-wide handler; null drops warnings. Standard error by default.</summary>
    public static Action<string>? Handler { get; set; } = message => Console.Error.WriteLine($"NBert warning: {message}");

    /// <summary>Sends the warnings raised by this async flow to <paramref name="handler"/> instead of <see cref="Handler"/>,
    /// until the returned object is disposed.</summary>
    public static IDisposable Capture(Action<string> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var previous = Scoped.Value;
        Scoped.Value = handler;
        return new Restore(previous);
    }

    /// <summary>Raises a warning.</summary>
    internal static void Raise(string message) => (Scoped.Value ?? Handler)?.Invoke(message);

    private sealed class Restore(Action<string>? previous) : IDisposable
    {
        public void Dispose() => Scoped.Value = previous;
    }
}
