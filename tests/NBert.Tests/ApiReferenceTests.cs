using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using NBert.Modeling;

namespace NBert.Tests;

/// <summary>
/// docs/api-reference.md is generated from the library's public types and their XML docs: every public type with its
/// summary and its public members with theirs. The test regenerates it and fails when the committed file is stale;
/// <c>NBERT_UPDATE_DOCS=1 dotnet test --filter ApiReference</c> writes it.
/// </summary>
public sealed class ApiReferenceTests
{
    [Fact]
    public void The_api_reference_is_generated_from_the_current_public_api()
    {
        string generated = Generate();
        string path = Path.Combine(Fixtures.RepoRoot, "docs", "api-reference.md");
        if (Environment.GetEnvironmentVariable("NBERT_UPDATE_DOCS") == "1") File.WriteAllText(path, generated);
        Assert.True(File.Exists(path) && File.ReadAllText(path) == generated,
            "docs/api-reference.md is not the public API's: regenerate it with NBERT_UPDATE_DOCS=1 dotnet test tests/NBert.Tests --filter ApiReference");
    }

    private static string Generate()
    {
        var assembly = typeof(BertPreTrainedModel).Assembly;
        var docs = XDocument.Load(Path.ChangeExtension(assembly.Location, ".xml")).Descendants("member")
            .ToDictionary(m => (string)m.Attribute("name")!, m => Summary(m.Element("summary")));
        var sb = new StringBuilder();
        sb.Append("# NBert API reference\n\nGenerated from the public types of the `NBert` package and their XML documentation ")
          .Append("(`tests/NBert.Tests/ApiReferenceTests.cs`); `docs/api.md` is the guided tour.\n");
        foreach (var ns in assembly.GetExportedTypes().GroupBy(t => t.Namespace!).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            sb.Append($"\n## {ns.Key}\n");
            foreach (var type in ns.OrderBy(t => t.FullName, StringComparer.Ordinal))
            {
                string id = type.FullName!.Replace('+', '.');
                sb.Append($"\n### {Name(type)}\n\n{docs.GetValueOrDefault("T:" + id, "")}\n");
                var members = type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                    .Where(m => m is not MethodInfo { IsSpecialName: true } && m is not Type && !(m is MethodInfo mi && mi.Name is "Equals" or "GetHashCode" or "ToString" or "PrintMembers" or "<Clone>$" or "Deconstruct"))
                    .Select(m => (Line: Signature(m), Doc: Doc(docs, id, m))).Where(m => m.Line is not null)
                    .DistinctBy(m => m.Line).OrderBy(m => m.Line, StringComparer.Ordinal);
                foreach (var (line, doc) in members) sb.Append($"- `{line}`{(doc.Length > 0 ? ": " + doc : "")}\n");
            }
        }
        return sb.ToString();
    }

    private static string Summary(XElement? summary) =>
        summary is null ? "" : Regex.Replace(string.Concat(summary.Nodes().Select(n => n is XElement e
            ? (string?)e.Attribute("cref") is { } cref ? $"`{ShortName(cref)}`"
            : (string?)e.Attribute("name") is { } name ? $"`{name}`" : $"`{e.Value}`"
            : n.ToString())), @"\s+", " ").Trim();

    /// <summary>"M:NBert.NBertWarnings.Capture(System.Action{System.String})" as "Capture".</summary>
    private static string ShortName(string cref)
    {
        string name = cref.Split('(')[0];
        name = name[(name.LastIndexOf('.') + 1)..];
        return name.Split('`')[0];
    }

    private static string Name(Type t) => t.IsGenericType ? $"{t.Name[..t.Name.IndexOf('`')]}<{string.Join(", ", t.GetGenericArguments().Select(a => a.Name))}>" : t.Name;

    private static string? Signature(MemberInfo m) => m switch
    {
        ConstructorInfo c => $"new({Parameters(c)})",
        MethodInfo mi => $"{(mi.IsStatic ? "static " : "")}{mi.Name}({Parameters(mi)})",
        PropertyInfo p => $"{p.Name}",
        FieldInfo f when f.DeclaringType!.IsEnum => f.IsStatic ? f.Name : null,
        FieldInfo f => f.Name,
        EventInfo e => $"event {e.Name}",
        _ => null,
    };

    private static string Parameters(MethodBase m) => string.Join(", ", m.GetParameters().Select(p => p.Name));

    private static string Doc(Dictionary<string, string> docs, string typeId, MemberInfo m)
    {
        string prefix = m switch { PropertyInfo => "P:", FieldInfo => "F:", EventInfo => "E:", _ => "M:" };
        string name = m is ConstructorInfo ? "#ctor" : m.Name;
        string key = $"{prefix}{typeId}.{name}";
        return docs.GetValueOrDefault(key) ?? docs.FirstOrDefault(d => d.Key.StartsWith(key + "(", StringComparison.Ordinal) || d.Key.StartsWith(key + "``", StringComparison.Ordinal)).Value ?? "";
    }
}
