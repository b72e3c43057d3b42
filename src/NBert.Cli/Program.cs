using System.CommandLine;
using System.Text;
using NBert.Cli.Commands;
using NBert.Hub;
using Spectre.Console;

namespace NBert.Cli;

/// <summary>The <c>nbert</c> command. Exit codes: 0 done, 2 bad input or usage (the message names the file,
/// field, line or option and says what to fix), 70 an internal error (a bug to report; EX_SOFTWARE).</summary>
public static class Program
{
    public const int Ok = 0, BadInput = 2, InternalError = 70;

    /// <summary>Whether standard output is a terminal (colours and live progress) rather than a file or pipe.</summary>
    public static bool IsTerminal { get; private set; }

    /// <summary>Whether standard error is a terminal (live progress there).</summary>
    public static bool IsErrorTerminal { get; private set; }

    public static int Main(string[] args)
    {
        // Under Open MPI's mpirun a rank's standard output is a pseudo-terminal whose bytes mpirun copies to its own
        // standard output, most often a file or a pipe: not the user's terminal. Seeing a terminal, .NET's console would
        // write terminfo's keypad_xmit (ESC[?1h ESC=, for reading keys) to it on its first use, before `bench --json`'s
        // JSON, and Spectre would add colours. So a rank has no terminal: TERM goes (before anything touches the console,
        // which reads it once) and the output is plain.
        bool relayedByMpirun = NBert.Distributed.MpiWorld.IsLaunchedByMpirun;
        if (relayedByMpirun) Environment.SetEnvironmentVariable("TERM", null);
        IsTerminal = !relayedByMpirun && !System.Console.IsOutputRedirected;
        IsErrorTerminal = !relayedByMpirun && !System.Console.IsErrorRedirected;
        // Buffered UTF-8 standard output: JSON lines can be many megabytes.
        using var stdout = new StreamWriter(System.Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
        var stdin = new StreamReader(System.Console.OpenStandardInput(), new UTF8Encoding(false));
        int code = Run(args, stdin, stdout, System.Console.Error);
        stdout.Flush();
        return code;
    }

    /// <summary>The parser's message with .NET type names said in words ("as expected type 'System.Int32'" is "a whole number").</summary>
    private static string Readable(string message) =>
        System.Text.RegularExpressions.Regex.Replace(message, @" as expected type '(System\.Nullable`1\[)?System\.(\w+)\]?'", m => m.Groups[2].Value switch
        {
            "Int32" or "Int64" => ": expected a whole number (within the option's range)",
            "Double" or "Single" => ": expected a number",
            "Boolean" => ": expected true or false",
            var other => $": expected a {other}",
        });

    /// <summary>A Spectre console over <paramref name="output"/>: tables everywhere, colours only on a terminal.</summary>
    public static IAnsiConsole Console(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = IsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = IsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        // Into a file or a pipe, lines are not wrapped at 80 columns (a suggested command must stay one line).
        if (!IsTerminal) console.Profile.Width = 1000;
        return console;
    }

    /// <summary>Runs a command line against the given streams (the tests call this in process). Model names on the
    /// Hub use <paramref name="hub"/>, by default the settings of the environment (HF_ENDPOINT, HF_HUB_CACHE, ...).</summary>
    public static int Run(string[] args, TextReader input, TextWriter output, TextWriter error, HubSettings? hub = null)
    {
        HubCommands.Use(hub, IsErrorTerminal ? error : null);
        ProgressDisplay.Use(IsErrorTerminal ? error : null);
        var root = new RootCommand("nbert: BERT and transfer learning for .NET, with Hugging Face's behaviour.")
        {
            QuickstartCommand.Create(output),
            TokenizeCommand.Create(input, output),
            ModelCommands.Forward(output),
            ModelCommands.Init(output),
            ModelCommands.Inspect(output),
            ModelCommands.ImportOnnx(output),
            ExportOnnxCommand.Create(output),
            EmbeddingCommands.Embed(input, output, error),
            EmbeddingCommands.Similarity(output, error),
            TrainingCommands.Overfit(output),
            FineTuneCommands.FineTune(output),
            FineTuneCommands.Evaluate(output),
            PretrainCommand.Create(output),
            VocabCommand.Create(output),
            PipelineCommands.FillMask(input, output, error),
            PipelineCommands.Classify(input, output, error),
            PipelineCommands.Ner(input, output, error),
            PipelineCommands.Qa(input, output, error),
            PipelineCommands.Nsp(input, output, error),
            BenchCommand.Create(output),
            HubCommands.Download(output),
            HubCommands.Cache(output),
            ServeCommand.Create(output, error),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) error.WriteLine($"nbert: {Readable(e.Message)}");
            error.WriteLine("Run 'nbert --help' or 'nbert COMMAND --help' for usage.");
            return BadInput;
        }
        // The library's warnings (a newly initialised head, unused weights) go to this run's standard error.
        using var warnings = NBertWarnings.Capture(message => error.WriteLine($"nbert: warning: {message}"));
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            ProgressDisplay.End(); // the bars end before the message
            return Fail(e, error);
        }
        finally
        {
            ProgressDisplay.End();
        }
    }

    /// <summary>
    /// The one map from an exception to a message and an exit code. Bad input is what the library says is bad input
    /// (<see cref="NBertException"/> and its subtypes: Hub errors, diverged training, ...), what the command line
    /// says is (<see cref="CliException"/>), and what the file system says about the files given (a file that is not
    /// there, unreadable, or a corrupt gzip stream): exit code 2 with the message. Anything else, an
    /// <see cref="ArgumentException"/> from the library included, is a bug: exit code 70.
    /// </summary>
    public static int Fail(Exception e, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(error);
        if (e is CliException or NBertException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            error.WriteLine($"nbert: {e.Message}");
            return BadInput;
        }
        // The last resort: no kind of bad input may end here. The stack trace only on request.
        error.WriteLine($"nbert: internal error: {e.GetType().Name}: {e.Message}");
        error.WriteLine(Environment.GetEnvironmentVariable("NBERT_DEBUG") is { Length: > 0 }
            ? e.ToString()
            : "This is a bug in nbert: please report it with the command line that caused it (NBERT_DEBUG=1 prints the stack trace).");
        return InternalError;
    }
}

/// <summary>A problem with what the user gave (a file, an option, a line of input): exit code 2.</summary>
public sealed class CliException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>An exception's message for people: an <see cref="ArgumentException"/>'s without the
    /// " (Parameter 'options')" that .NET appends, which names the code's parameter, not what the user gave.</summary>
    public static string Reason(Exception e) =>
        e is ArgumentException { ParamName: { } name } a && a.Message.EndsWith($" (Parameter '{name}')", StringComparison.Ordinal)
            ? a.Message[..^$" (Parameter '{name}')".Length] : e.Message;
}
