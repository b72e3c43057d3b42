using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using NBert.Pipelines;

namespace NBert.Tests;

/// <summary>The README's C# blocks compile (as console programs with the SDK's implicit usings), and the first runs
/// against the fixture classifier, printing each text's label and probability.</summary>
public sealed class ReadmeTests
{
    private static readonly string[] ImplicitUsings =
        ["System", "System.Collections.Generic", "System.IO", "System.Linq", "System.Net.Http", "System.Threading", "System.Threading.Tasks"];

    /// <summary>ASP.NET Core's implicit usings (Microsoft.NET.Sdk.Web), for NBert.Server's readme.</summary>
    private static readonly string[] WebUsings =
        ["Microsoft.AspNetCore.Builder", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Http", "Microsoft.AspNetCore.Routing",
         "Microsoft.Extensions.Configuration", "Microsoft.Extensions.DependencyInjection", "Microsoft.Extensions.Hosting", "Microsoft.Extensions.Logging"];

    /// <summary>Every C# block of a readme (the repository's by default), in order.</summary>
    private static List<string> Blocks(string readme = "README.md") => Regex.Matches(File.ReadAllText(Path.Combine(Fixtures.RepoRoot, readme)), "```csharp\n(.*?)```", RegexOptions.Singleline)
        .Select(m => m.Groups[1].Value).ToList();

    /// <summary>Compiles a block as a console program: the usings of every block before it (the README reads top down),
    /// the SDK's implicit ones, and stand-ins for what the prose around it names (texts, context, inputs, labels).</summary>
    private static CSharpCompilation Compile(IReadOnlyList<string> blocks, int index, string? code = null, IEnumerable<string>? implicitUsings = null)
    {
        code ??= blocks[index];
        var usings = blocks.Take(index + 1).SelectMany(b => Regex.Matches(b, @"using ([A-Za-z.]+);").Select(m => m.Groups[1].Value))
            .Concat(implicitUsings ?? ImplicitUsings).Distinct();
        string body = Regex.Replace(code, @"^using [A-Za-z.]+;[ \t]*(using [A-Za-z.]+;)?\s*$", "", RegexOptions.Multiline);
        (string Name, string Declaration)[] standIns =
        [
            ("texts", "string[] texts = [\"a text\"];"), ("context", "string context = \"a context\";"),
            ("tokenizer", "var tokenizer = BertTokenizer.FromPretrained(\"minilm\");"),
            ("inputs", "ModelInputs inputs = tokenizer.EncodeInputs(texts);"), ("labels", "int[] labels = [0];"),
        ];
        bool Used(string name) => Regex.IsMatch(body, $@"\b{name}\b") && !Regex.IsMatch(body, $@"(var|\w) {name} =");
        var needed = standIns.Where(s => Used(s.Name)).Select(s => s.Name).ToHashSet();
        if (needed.Contains("inputs")) needed.UnionWith(["tokenizer", "texts"]); // inputs' stand-in is made from them
        string prelude = string.Concat(standIns.Where(s => needed.Contains(s.Name)).Select(s => s.Declaration + "\n"));
        var options = new CSharpParseOptions(LanguageVersion.Latest);
        var trees = new[]
        {
            CSharpSyntaxTree.ParseText(prelude + body, options),
            CSharpSyntaxTree.ParseText(string.Concat(usings.Select(u => $"global using {u};\n")), options),
        };
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Append(typeof(TextClassification).Assembly.Location).Append(typeof(Microsoft.Extensions.AI.Embedding).Assembly.Location)
            .Append(typeof(NBert.Server.TextEmbeddingsInference).Assembly.Location)
            .Distinct().Select(p => MetadataReference.CreateFromFile(p));
        return CSharpCompilation.Create($"ReadmeBlock{index}", trees, references, new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
    }

    [Fact]
    public void Every_csharp_block_compiles()
    {
        var blocks = Blocks();
        Assert.True(blocks.Count >= 8, $"{blocks.Count} C# blocks");
        for (int i = 0; i < blocks.Count; i++)
        {
            var errors = Compile(blocks, i).GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            Assert.True(errors.Count == 0, $"README C# block {i + 1}:\n{blocks[i]}\n{string.Join("\n", errors)}");
        }
    }

    /// <summary>The packages' own readmes (nuget.org shows them): their C# compiles too, the server's as an ASP.NET Core
    /// app (the Web SDK's implicit usings).</summary>
    [Theory]
    [InlineData("src/NBert/README.md", false)]
    [InlineData("src/NBert.Server/README.md", true)]
    public void Every_csharp_block_of_a_package_readme_compiles(string readme, bool web)
    {
        var blocks = Blocks(readme);
        Assert.NotEmpty(blocks);
        for (int i = 0; i < blocks.Count; i++)
        {
            var errors = Compile(blocks, i, implicitUsings: web ? [.. ImplicitUsings, .. WebUsings] : null)
                .GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            Assert.True(errors.Count == 0, $"{readme} C# block {i + 1}:\n{blocks[i]}\n{string.Join("\n", errors)}");
        }
    }

    [Fact]
    public void The_first_csharp_example_compiles_and_prints_each_texts_label_and_probability()
    {
        var blocks = Blocks();
        Assert.Contains("BertForSequenceClassification.FromPretrained(\"models/sentiment-minilm\")", blocks[0]);
        string model = Fixtures.Path("model", "seqcls");
        var compilation = Compile(blocks, 0, blocks[0].Replace("\"models/sentiment-minilm\"", JsonSerializer.Serialize(model)));
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
