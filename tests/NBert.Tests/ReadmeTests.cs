using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NBert.Pipelines;

namespace NBert.Tests;

/// <summary>The README's first C# example is compiled (as a console program with the SDK's implicit usings) and run
/// against the fixture classifier: it must build and print each text's label and probability.</summary>
public sealed class ReadmeTests
{
    private static readonly string[] ImplicitUsings =
        ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"];

    [Fact]
    public void The_first_csharp_example_compiles_and_prints_each_texts_label_and_probability()
    {
        string readme = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "README.md"));
        string code = Regex.Match(readme, "```csharp\n(.*?)```", RegexOptions.Singleline).Groups[1].Value;
        Assert.Contains("BertForSequenceClassification.FromPretrained(\"models/sentiment-minilm\")", code);
        string model = Fixtures.Path("model", "seqcls");
        code = code.Replace("\"models/sentiment-minilm\"", JsonSerializer.Serialize(model));

        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(code, new CSharpParseOptions(LanguageVersion.Latest)),
            CSharpSyntaxTree.ParseText(string.Concat(ImplicitUsings.Select(u => $"global using {u};\n")), new CSharpParseOptions(LanguageVersion.Latest)),
        };
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(TextClassification).Assembly.Location).Distinct().Select(p => MetadataReference.CreateFromFile(p));
        var compilation = CSharpCompilation.Create("ReadmeExample", trees, references, new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        Assert.Empty(emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Warning));

        var output = new StringWriter();
        var console = Console.Out;
        Console.SetOut(output);
        try
        {
            var entry = Assembly.Load(image.ToArray()).EntryPoint!;
            entry.Invoke(null, entry.GetParameters().Length == 0 ? null : [Array.Empty<string>()]);
        }
        finally
        {
            Console.SetOut(console);
        }

        using var pipeline = TextClassification.FromPretrained(model);
        var expected = pipeline.Run(["I loved every minute of it.", "The food was cold."]).Select(r => $"{r[0].Label} {r[0].Score:F4}");
        Assert.Equal(expected, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }
}
