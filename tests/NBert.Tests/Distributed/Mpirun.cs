using System.Diagnostics;

namespace NBert.Tests.Distributed;

/// <summary>Starts programs under Open MPI's mpirun on this machine (loopback), with a time limit after which mpirun and
/// every rank are killed, so a hang fails the test instead of stalling the run.</summary>
internal static class Mpirun
{
    public const string InstallCommand = "apt-get update && apt-get install -y openmpi-bin";

    /// <summary>mpirun's path on PATH, or null.</summary>
    public static string? Executable { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);

    /// <summary>CI sets CI=true: there, a missing mpirun is a failure (.ci/run installs it), never a skip.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>tests/NBert.MpiCheck's program, built beside the tests in the same configuration.</summary>
    public static string MpiCheck
    {
        get
        {
            // .../tests/NBert.Tests/bin/<Configuration>/<tfm>/ -> .../tests/NBert.MpiCheck/bin/<Configuration>/<tfm>/NBert.MpiCheck.dll
            var tfm = new DirectoryInfo(AppContext.BaseDirectory);
            var configuration = tfm.Parent!;
            string path = Path.Combine(configuration.Parent!.Parent!.Parent!.FullName, "NBert.MpiCheck", "bin", configuration.Name, tfm.Name, "NBert.MpiCheck.dll");
            Assert.True(File.Exists(path), $"{path} is missing: build tests/NBert.Tests (it builds tests/NBert.MpiCheck).");
            return path;
        }
    }

    /// <summary>nbert.dll, built beside the tests.</summary>
    public static string Nbert => Path.Combine(AppContext.BaseDirectory, "nbert.dll");

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet <paramref name="dll"/> args</c>; past <paramref name="timeout"/>
    /// the whole process tree is killed and the test fails.</summary>
    public static (int Code, string Out, string Err, TimeSpan Elapsed) Run(int ranks, TimeSpan timeout, string dll, params string[] args)
    {
        Assert.True(Executable is not null, $"mpirun is not installed, and CI=true requires it: {InstallCommand}");
        var start = new ProcessStartInfo(Executable!) { RedirectStandardOutput = true, RedirectStandardError = true };
        // As root (CI containers) mpirun refuses to start without --allow-run-as-root; --oversubscribe lets 2 ranks
        // share fewer cores; --bind-to none keeps them from being pinned to the same core.
        foreach (string a in new[] { "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture),
            Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", dll })
            start.ArgumentList.Add(a);
        foreach (var a in args) start.ArgumentList.Add(a);
        // Containers often forbid the cross-memory attach Open MPI's shared-memory transport tries first.
        start.Environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none";
        start.Environment["TERM"] = "dumb";
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {Path.GetFileName(dll)} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:F0} s (killed).\n" +
                $"stdout:\n{output.Result}\nstderr:\n{error.Result}");
        }
        process.WaitForExit();
        return (process.ExitCode, output.Result, error.Result, clock.Elapsed);
    }
}

/// <summary>A test that needs mpirun: skipped where it is missing (with the command that installs it), except in CI
/// (CI=true), where it runs and fails.</summary>
internal sealed class MpiFactAttribute : FactAttribute
{
    public MpiFactAttribute()
    {
        if (Mpirun.Executable is null && !Mpirun.InCi)
            Skip = $"mpirun is not installed (Open MPI): {Mpirun.InstallCommand}";
    }
}

/// <summary>A theory that needs mpirun, skipped or failed as <see cref="MpiFactAttribute"/>.</summary>
internal sealed class MpiTheoryAttribute : TheoryAttribute
{
    public MpiTheoryAttribute()
    {
        if (Mpirun.Executable is null && !Mpirun.InCi)
            Skip = $"mpirun is not installed (Open MPI): {Mpirun.InstallCommand}";
    }
}
