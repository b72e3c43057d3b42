using Microsoft.Extensions.Logging;

namespace NBert;

/// <summary>
/// Where NBert's warnings go: things that are allowed but probably not meant, such as a head that a checkpoint lacks
/// and that was newly initialised (its answers mean nothing until it is trained) or checkpoint weights that were not
/// used. As transformers logs them, they go to standard error by default ("NBert warning: ..."). With a logger factory
/// (<see cref="NBertLogging.LoggerFactory"/>, or <see cref="NBertLogging.Use"/> for one operation) they are logged
/// through it instead, as warnings of the category <c>NBert</c>. Set <see cref="Handler"/> to route them elsewhere or
/// to null to silence them; <see cref="Capture"/> routes the warnings of one operation (and the work it starts) without
/// touching the rest of the process. The innermost <see cref="Capture"/> or <see cref="NBertLogging.Use"/> wins, then
/// <see cref="NBertLogging.LoggerFactory"/>, then <see cref="Handler"/>.
/// </summary>
public static class NBertWarnings
{
    /// <summary>The process-wide handler; null drops warnings. Standard error by default. Not used while
    /// <see cref="NBertLogging.LoggerFactory"/> is set.</summary>
    public static Action<string>? Handler { get; set; } = message => Console.Error.WriteLine($"NBert warning: {message}");

    /// <summary>Sends the warnings raised by this async flow to <paramref name="handler"/> instead of <see cref="Handler"/>,
    /// until the returned object is disposed.</summary>
    public static IDisposable Capture(Action<string> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return NBertLogging.Scope(handler);
    }

    /// <summary>Raises a warning, logged under <paramref name="category"/> when it goes to a logger.</summary>
    internal static void Raise(string message, string category = NBertLogging.Category)
    {
        switch (NBertLogging.Scoped)
        {
            case Action<string> handler:
                handler(message);
                return;
            case ILoggerFactory factory:
                Log(factory, category, message);
                return;
        }
        if (NBertLogging.LoggerFactory is { } global) Log(global, category, message);
        else Handler?.Invoke(message);
    }

    private static void Log(ILoggerFactory factory, string category, string message) =>
        factory.CreateLogger(category).Log(LogLevel.Warning, NBertLogging.Warning, message, null, static (m, _) => m);
}
