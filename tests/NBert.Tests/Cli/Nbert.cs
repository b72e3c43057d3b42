using NBert.Cli;

namespace NBert.Tests.Cli;

/// <summary>Runs the nbert command in process, as the CLI tests drive it: exit code, standard output, standard error.</summary>
internal static class Nbert
{
    public static (int Code, string Out, string Err) Run(params string[] args) => RunWithInput("", args);

    public static (int Code, string Out, string Err) RunWithInput(string stdin, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Program.Run(args, new StringReader(stdin), output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Runs nbert as its own process (the nbert.dll built beside the tests), for what only shows in a fresh
    /// process: its own thread pool, its own environment.</summary>
    public static (int Code, string Out, string Err) RunProcess(IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "nbert.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) start.Environment[k] = v;
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, output.Result, error.Result);
    }
}
