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

    /// <summary>Each overload is described by its own summary: every public method and constructor has an XML
    /// documentation entry under its exact id (the parameter types), which is what the reference shows for it; the
    /// two FineTuning.Classification overloads say different things.</summary>
    [Fact]
    public void Each_overload_has_its_own_documentation_and_line()
    {
        var assembly = typeof(BertPreTrainedModel).Assembly;
        var ids = XDocument.Load(Path.ChangeExtension(assembly.Location, ".xml")).Descendants("member").Select(m => (string)m.Attribute("name")!).ToHashSet();
        var missing = new List<string>();
        foreach (var type in assembly.GetExportedTypes())
        {
            string typeId = type.FullName!.Replace('+', '.');
            foreach (var m in type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly).OfType<MethodBase>())
            {
                if (m is MethodInfo { IsSpecialName: true } || m.Name is "Equals" or "GetHashCode" or "ToString" or "PrintMembers" or "<Clone>$" or "Deconstruct") continue;
                if (type.IsEnum || (type.IsSubclassOf(typeof(Delegate)))) continue;
                if (m is ConstructorInfo && m.GetParameters().Length == 0) continue; // the compiler's default constructor has no comment to carry
                if (!ids.Contains(DocId("M:", typeId, m))) missing.Add(DocId("M:", typeId, m));
            }
        }
        Assert.True(missing.Count == 0, "no documentation entry under these ids:\n" + string.Join("\n", missing));

        string reference = Generate();
        var classification = reference.Split('\n').Where(l => l.StartsWith("- `static Classification(BertPreTrainedModel model, BertTokenizer tokenizer, IEnumerable<", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, classification.Count);
        Assert.NotEqual(classification[0][classification[0].IndexOf("`: ", StringComparison.Ordinal)..], classification[1][classification[1].IndexOf("`: ", StringComparison.Ordinal)..]);
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
                var all = type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                    .Where(m => m is not MethodInfo { IsSpecialName: true } && m is not Type && !(m is MethodInfo mi && mi.Name is "Equals" or "GetHashCode" or "ToString" or "PrintMembers" or "<Clone>$" or "Deconstruct"))
                    .ToList();
                // Overloads (methods or constructors sharing a name) show their parameter types, so that each has a line of its own.
                var overloaded = all.OfType<MethodBase>().GroupBy(m => m.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToHashSet();
                var members = all.Select(m => (Line: Signature(m, m is MethodBase mb && overloaded.Contains(mb.Name)), Doc: Doc(docs, id, m))).Where(m => m.Line is not null)
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

    private static string? Signature(MemberInfo m, bool withTypes = false) => m switch
    {
        ConstructorInfo c => $"new({Parameters(c, withTypes)})",
        MethodInfo mi => $"{(mi.IsStatic ? "static " : "")}{mi.Name}({Parameters(mi, withTypes)})",
        PropertyInfo p => $"{p.Name}",
        FieldInfo f when f.DeclaringType!.IsEnum => f.IsStatic ? f.Name : null,
        FieldInfo f => f.Name,
        EventInfo e => $"event {e.Name}",
        _ => null,
    };

    private static string Parameters(MethodBase m, bool withTypes) =>
        string.Join(", ", m.GetParameters().Select(p => withTypes ? $"{CSharpName(p.ParameterType)} {p.Name}" : p.Name));

    /// <summary>A type as C# writes it, short: <c>IEnumerable&lt;(string, string)&gt;</c>, <c>int?</c>, <c>float[]</c>.</summary>
    private static string CSharpName(Type t)
    {
        if (t.IsByRef) return CSharpName(t.GetElementType()!);
        if (t.IsArray) return $"{CSharpName(t.GetElementType()!)}[{new string(',', t.GetArrayRank() - 1)}]";
        if (t.IsGenericParameter) return t.Name;
        if (Nullable.GetUnderlyingType(t) is { } underlying) return CSharpName(underlying) + "?";
        if (t.IsGenericType)
        {
            var args = t.GetGenericArguments().Select(CSharpName);
            return t.FullName?.StartsWith("System.ValueTuple`", StringComparison.Ordinal) == true || (t.IsGenericTypeDefinition is false && t.GetGenericTypeDefinition().FullName!.StartsWith("System.ValueTuple`", StringComparison.Ordinal))
                ? $"({string.Join(", ", args)})" : $"{t.Name[..t.Name.IndexOf('`')]}<{string.Join(", ", args)}>";
        }
        return Type.GetTypeCode(t) switch
        {
            TypeCode.String => "string", TypeCode.Int32 => "int", TypeCode.Int64 => "long", TypeCode.Single => "float", TypeCode.Double => "double",
            TypeCode.Boolean => "bool", TypeCode.Byte => "byte", TypeCode.Char => "char", TypeCode.Int16 => "short", TypeCode.UInt32 => "uint",
            TypeCode.UInt64 => "ulong", TypeCode.Decimal => "decimal",
            _ => t == typeof(object) ? "object" : t.Name,
        };
    }

    /// <summary>A member's XML documentation id, as the compiler writes it: <c>M:NBert.X.Run(System.String,System.Int32)</c>,
    /// <c>M:NBert.X.#ctor</c>, <c>P:NBert.X.Item(System.Int32)</c>.</summary>
    private static string DocId(string prefix, string typeId, MemberInfo m)
    {
        string name = m is ConstructorInfo ? "#ctor" : m.Name;
        ParameterInfo[] parameters = m switch { MethodBase b => b.GetParameters(), PropertyInfo p => p.GetIndexParameters(), _ => [] };
        string arity = m is MethodInfo { IsGenericMethodDefinition: true } g ? $"``{g.GetGenericArguments().Length}" : "";
        return $"{prefix}{typeId}.{name}{arity}{(parameters.Length == 0 ? "" : $"({string.Join(",", parameters.Select(p => TypeId(p.ParameterType)))})")}";
    }

    /// <summary>A parameter type in a documentation id: namespaces, <c>{}</c> for generic arguments, <c>`0</c> and
    /// <c>``0</c> for the type's and the method's type parameters, <c>@</c> for ref and out.</summary>
    private static string TypeId(Type t)
    {
        if (t.IsByRef) return TypeId(t.GetElementType()!) + "@";
        if (t.IsPointer) return TypeId(t.GetElementType()!) + "*";
        if (t.IsArray) return TypeId(t.GetElementType()!) + (t.GetArrayRank() == 1 ? "[]" : $"[{string.Join(",", Enumerable.Repeat("0:", t.GetArrayRank()))}]");
        if (t.IsGenericParameter) return (t.DeclaringMethod is null ? "`" : "``") + t.GenericParameterPosition;
        if (t.IsGenericType)
        {
            string definition = Regex.Replace(t.GetGenericTypeDefinition().FullName!, @"`\d+", "").Replace('+', '.');
            return $"{definition}{{{string.Join(",", t.GetGenericArguments().Select(TypeId))}}}";
        }
        return t.FullName!.Replace('+', '.');
    }

    private static string Doc(Dictionary<string, string> docs, string typeId, MemberInfo m)
    {
        string prefix = m switch { PropertyInfo => "P:", FieldInfo => "F:", EventInfo => "E:", _ => "M:" };
        if (docs.TryGetValue(DocId(prefix, typeId, m), out string? exact)) return exact;
        // A member without documentation of its own (inherited, or generated by the compiler): the first of its name.
        string key = $"{prefix}{typeId}.{(m is ConstructorInfo ? "#ctor" : m.Name)}";
        return docs.GetValueOrDefault(key) ?? docs.FirstOrDefault(d => d.Key.StartsWith(key + "(", StringComparison.Ordinal) || d.Key.StartsWith(key + "``", StringComparison.Ordinal)).Value ?? "";
    }
}
