using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NBert.Tests;

/// <summary>
/// The Hugging Face reference fixtures: <c>$NBERT_FIXTURES</c>, else the repository's copy in <c>tests/fixtures</c>
/// (see its ABOUT-THIS-COPY.md). A missing fixture fails the test that needs it; it is never skipped.
/// </summary>
public static class Fixtures
{
    public static string Root { get; } = Locate();

    public static string Path(params string[] parts)
    {
        string path = System.IO.Path.Combine([Root, .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"Fixture '{path}' is missing: tests/fixtures should hold it (tests/refresh-fixtures.sh copies ../shared/fixtures there), or NBERT_FIXTURES names another copy.", path);
        return path;
    }

    public static JsonNode Json(params string[] parts) => JsonNode.Parse(File.ReadAllText(Path(parts)))!;

    private static string Locate()
    {
        string? env = Environment.GetEnvironmentVariable("NBERT_FIXTURES");
        return !string.IsNullOrEmpty(env) ? env : System.IO.Path.Combine(RepoRoot, "tests", "fixtures");
    }

    /// <summary>The repository root (where NBert.sln is).</summary>
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "NBert.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new DirectoryNotFoundException("No NBert.sln above the test binaries.");
        }
    }

    /// <summary>Hugging Face's offsets count code points; ours are UTF-16 indices. Converts one to the other.</summary>
    public static (int, int) CodePointsToUtf16(string text, int start, int end)
    {
        int[] map = new int[text.Length + 1];
        int cp = 0;
        for (int i = 0; i < text.Length; i++)
        {
            map[cp] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            cp++;
        }
        map[cp] = text.Length;
        return (map[start], map[end]);
    }

    /// <summary>Reads the I64 tensors of a safetensors file as rows of ints (test-side reader of inputs).</summary>
    public static Dictionary<string, long[][]> ReadInt64Tensors(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var result = new Dictionary<string, long[][]>();
        foreach (var entry in header.RootElement.EnumerateObject())
        {
            if (entry.Name == "__metadata__" || entry.Value.GetProperty("dtype").GetString() != "I64") continue;
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            long begin = entry.Value.GetProperty("data_offsets")[0].GetInt64();
            int rows = shape.Length == 2 ? shape[0] : 1, cols = shape[^1];
            var data = new long[rows][];
            for (int r = 0; r < rows; r++)
            {
                data[r] = new long[cols];
                for (int c = 0; c < cols; c++)
                    data[r][c] = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)(8 + headerLength + begin + 8L * (r * cols + c))));
            }
            result[entry.Name] = data;
        }
        return result;
    }

    public static int[] Ints(JsonNode? node) => node!.AsArray().Select(x => (int)x!).ToArray();
}
