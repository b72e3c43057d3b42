using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace NBert.Tests;

/// <summary>
/// The library's namespaces are layers, and a layer uses only itself and the layers below it, so there is no
/// cycle and each can be read without the ones above. The check compiles the library's sources with Roslyn and
/// resolves every name in code (documentation crefs are not code), so a fully qualified name counts as much as a
/// using directive.
/// </summary>
public class LayeringTests
{
    /// <summary>Bottom to top. Hub sits on IO (it caches into files with IO's writers); nothing below uses it.</summary>
    internal static readonly string[] Layers =
    [
        "NBert", "NBert.Tensors", "NBert.Schema", "NBert.IO", "NBert.Hub", "NBert.Tokenization",
        "NBert.Modeling", "NBert.Training", "NBert.Tasks", "NBert.Pipelines",
    ];

    private static int Layer(string ns) =>
        Array.FindLastIndex(Layers, l => ns == l || ns.StartsWith(l + ".", StringComparison.Ordinal));

    [Fact]
    public void Every_reference_points_to_the_same_layer_or_one_below()
    {
        var (compilation, trees) = CompileLibrary();
        // CS8795: a [GeneratedRegex] partial method, whose body the source generator (not run here) writes.
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error && d.Id != "CS8795").Take(5).ToList();
        Assert.True(errors.Count == 0, "the library's sources do not compile on their own:\n" + string.Join("\n", errors));

        var upward = new SortedSet<string>(StringComparer.Ordinal);
        var edges = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var tree in trees)
        {
            var root = tree.GetCompilationUnitRoot();
            string? from = root.DescendantNodes().OfType<BaseNamespaceDeclarationSyntax>().FirstOrDefault()?.Name.ToString();
            if (from is null) continue;
            var model = compilation.GetSemanticModel(tree);
            foreach (var name in root.DescendantNodes().OfType<SimpleNameSyntax>())
            {
                var symbol = model.GetSymbolInfo(name).Symbol;
                string? to = symbol switch
                {
                    INamespaceSymbol n => n.ToDisplayString(),
                    ITypeSymbol t => t.ContainingNamespace?.ToDisplayString(),
                    { ContainingType: { } t } => t.ContainingNamespace?.ToDisplayString(),
                    _ => null,
                };
                if (to is null || !to.StartsWith("NBert", StringComparison.Ordinal) || to == from) continue;
                if (Layer(to) < 0) continue; // a namespace only partly typed so far (NBert in NBert.IO)
                edges.Add($"{from} -> {to}");
                if (Layer(to) > Layer(from))
                    upward.Add($"{from} -> {to}: '{name}' in {Path.GetFileName(tree.FilePath)} line {name.GetLocation().GetLineSpan().StartLinePosition.Line + 1}");
            }
        }
        Assert.True(edges.Count >= 20, $"only {edges.Count} edges found: the check is not seeing the code");
        Assert.True(upward.Count == 0, "upward references (layers, bottom to top: " + string.Join(" < ", Layers) + "):\n" + string.Join("\n", upward));
    }

    [Fact]
    public void Every_library_namespace_is_a_layer()
    {
        var (_, trees) = CompileLibrary();
        var namespaces = trees.Select(t => t.GetCompilationUnitRoot().DescendantNodes().OfType<BaseNamespaceDeclarationSyntax>().FirstOrDefault()?.Name.ToString())
            .OfType<string>().Distinct().ToList();
        Assert.All(namespaces, ns => Assert.Contains(ns, Layers));
    }

    private static (CSharpCompilation Compilation, IReadOnlyList<SyntaxTree> Trees) CompileLibrary()
    {
        string source = Path.Combine(Fixtures.RepoRoot, "src", "NBert");
        var options = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(p => !p.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !p.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(p => CSharpSyntaxTree.ParseText(File.ReadAllText(p), options, p))
            .Append(CSharpSyntaxTree.ParseText(string.Concat(new[] { "System", "System.IO", "System.Linq", "System.Collections.Generic", "System.Net.Http", "System.Threading", "System.Threading.Tasks" }
                .Select(u => $"global using global::{u};\n")), options))
            .ToList();
        // The framework, and the library's packages as copied beside the tests (not the library itself).
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll").Where(p => !Path.GetFileName(p).StartsWith("NBert", StringComparison.OrdinalIgnoreCase)
                && !Path.GetFileName(p).Equals("nbert.dll", StringComparison.OrdinalIgnoreCase)))
            .DistinctBy(Path.GetFileName).Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("LayeringCheck", trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
        return (compilation, trees.Where(t => t.FilePath.Length > 0).ToList());
    }
}
