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
    /// process: its own thread pool, its own environment (this one's, without the user's Hugging Face variables, with
    /// <paramref name="environment"/> over it). A run that takes more than 3 minutes is killed and fails the test.</summary>
    public static (int Code, string Out, string Err) RunProcess(IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        RunProcessAsync(environment, args).GetAwaiter().GetResult();

    /// <inheritdoc cref="RunProcess"/>
    public static async Task<(int Code, string Out, string Err)> RunProcessAsync(IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "nbert.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (string name in new[] { "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE" })
            start.Environment.Remove(name);
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>()) start.Environment[k] = v;
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true); // never leave a stuck nbert behind
            throw new TimeoutException($"nbert {string.Join(' ', args)} did not finish in 3 minutes.");
        }
        return (process.ExitCode, await output, await error);
    }
}
