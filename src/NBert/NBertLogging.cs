using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace NBert;

/// <summary>
/// NBert's logging through Microsoft.Extensions.Logging, for an application that configures its logging the .NET way
/// (an ASP.NET Core host, a console app with <c>LoggerFactory.Create</c>). With a factory, the library logs its
/// warnings (<see cref="NBertWarnings"/>) at <see cref="LogLevel.Warning"/>, and its progress at
/// <see cref="LogLevel.Information"/>: each Hub download (<c>NBert.Hub</c>), and each training report and evaluation
/// (<c>NBert.Training</c>). Categories start with <c>NBert</c>, so one filter rule covers them. Without a factory
/// (the default) warnings go to <see cref="NBertWarnings.Handler"/>, standard error, and progress is not logged.
/// </summary>
public static class NBertLogging
{
    internal const string Category = "NBert";
    internal static readonly EventId Warning = new(1, "NBertWarning");
    internal static readonly EventId Progress = new(2, "NBertProgress");

    private static readonly AsyncLocal<object?> ScopedSink = new();

    /// <summary>The process-wide logger factory; null (the default) keeps warnings on standard error.</summary>
    public static ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Logs what this async flow (and the work it starts) does through <paramref name="loggerFactory"/>, until the
    /// returned object is disposed: for a host whose requests should log through its own factory without setting
    /// <see cref="LoggerFactory"/> for the whole process.</summary>
    public static IDisposable Use(ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        return Scope(loggerFactory);
    }

    /// <summary>What this flow's innermost <see cref="Use"/> or <see cref="NBertWarnings.Capture"/> set: a factory, a
    /// warning handler, or null.</summary>
    internal static object? Scoped => ScopedSink.Value;

    internal static IDisposable Scope(object sink)
    {
        var previous = ScopedSink.Value;
        ScopedSink.Value = sink;
        return new Restore(previous);
    }

    /// <summary>The logger of <paramref name="category"/>: this flow's factory, else the process's, else none.</summary>
    internal static ILogger Logger(string category) =>
        (ScopedSink.Value as ILoggerFactory ?? LoggerFactory)?.CreateLogger(category) ?? NullLogger.Instance;

    /// <summary>Logs a progress message (Information) under <paramref name="category"/>.</summary>
    internal static void Info(string category, string message)
    {
        var logger = Logger(category);
        if (logger.IsEnabled(LogLevel.Information)) logger.Log(LogLevel.Information, Progress, message, null, static (m, _) => m);
    }

    private sealed class Restore(object? previous) : IDisposable
    {
        public void Dispose() => ScopedSink.Value = previous;
    }
}
