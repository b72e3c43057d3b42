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
    public static Result Run(int ranks, TimeSpan timeout, string dll, params string[] args)
    {
        using var launch = Start(ranks, dll, args);
        return launch.Wait(timeout);
    }

    /// <summary>Starts <c>mpirun -np <paramref name="ranks"/> dotnet <paramref name="dll"/> args</c> and returns while it runs;
    /// <paramref name="environment"/> adds to or replaces variables of its environment (TERM is "dumb" unless it says otherwise).</summary>
    public static Launch Start(int ranks, string dll, string[] args, IReadOnlyDictionary<string, string>? environment = null)
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
        // Marks this launch's processes (mpirun passes its environment to the ranks), so a test can find a rank's process.
        string marker = Guid.NewGuid().ToString("N");
        start.Environment[Launch.MarkerVariable] = marker;
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return new Launch(start, ranks, dll, args, marker);
    }

    /// <summary>What a finished mpirun gave: its exit code, standard output and error, how long it ran, and when (since
    /// the start) each line of standard error arrived.</summary>
    public sealed record Result(int Code, string Out, string Err, TimeSpan Elapsed, IReadOnlyList<(TimeSpan At, string Line)> ErrorLines)
    {
        public void Deconstruct(out int code, out string output, out string error, out TimeSpan elapsed) => (code, output, error, elapsed) = (Code, Out, Err, Elapsed);

        /// <summary>From the first line of standard error that matches <paramref name="pattern"/> (a failing rank's message,
        /// printed just before MPI_Abort) to mpirun's exit: how long ending the others took, whatever the start cost.</summary>
        public TimeSpan SinceErrorLine(string pattern)
        {
            var line = ErrorLines.FirstOrDefault(l => System.Text.RegularExpressions.Regex.IsMatch(l.Line, pattern));
            Assert.True(line.Line is not null, $"no line of standard error matches {pattern}:\n{Err}");
            return Elapsed - line.At;
        }
    }

    /// <summary>A running mpirun.</summary>
    public sealed class Launch : IDisposable
    {
        public const string MarkerVariable = "NBERT_TEST_MPIRUN";
        private readonly Process _process;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly System.Text.StringBuilder _output = new(), _error = new();
        private readonly List<(TimeSpan, string)> _errorLines = [];
        private readonly string _what, _marker;

        internal Launch(ProcessStartInfo start, int ranks, string dll, string[] args, string marker)
        {
            (_what, _marker) = ($"mpirun -np {ranks} {Path.GetFileName(dll)} {string.Join(' ', args)}", marker);
            _process = new Process { StartInfo = start };
            _process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is not null) lock (_output) _output.Append(e.Data).Append('\n');
            };
            _process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (_error)
                {
                    _error.Append(e.Data).Append('\n');
                    _errorLines.Add((_clock.Elapsed, e.Data));
                }
            };
            _process.Start();
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public bool HasExited => _process.HasExited;

        /// <summary>Waits for mpirun to end; past <paramref name="timeout"/> (from now) kills its process tree and fails the test.</summary>
        public Result Wait(TimeSpan timeout)
        {
            if (!_process.WaitForExit(timeout))
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
                Assert.Fail($"{_what} did not finish in {timeout.TotalSeconds:F0} s (killed).\nstdout:\n{Text(_output)}\nstderr:\n{Text(_error)}");
            }
            _process.WaitForExit(); // the output read to its end
            var elapsed = _clock.Elapsed;
            lock (_error) return new Result(_process.ExitCode, Text(_output), Text(_error), elapsed, _errorLines.ToList());
        }

        private static string Text(System.Text.StringBuilder text)
        {
            lock (text) return text.ToString();
        }

        /// <summary>The process id of each rank of this launch running now (by the marker in its environment and its
        /// OMPI_COMM_WORLD_RANK), read from /proc.</summary>
        public Dictionary<int, int> RankProcesses()
        {
            var ranks = new Dictionary<int, int>();
            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
                string[] variables;
                try
                {
                    variables = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue; // ended meanwhile, or not ours
                }
                if (!variables.Contains($"{MarkerVariable}={_marker}")) continue;
                if (variables.FirstOrDefault(v => v.StartsWith("OMPI_COMM_WORLD_RANK=", StringComparison.Ordinal)) is { } rank)
                    ranks[int.Parse(rank["OMPI_COMM_WORLD_RANK=".Length..], System.Globalization.CultureInfo.InvariantCulture)] = pid;
            }
            return ranks;
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
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
