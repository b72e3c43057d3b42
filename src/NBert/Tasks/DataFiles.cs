using System.IO.Compression;
using System.Text.Json;

namespace NBert.Tasks;

/// <summary>Reading training data files: text that may be gzip (by the <c>.gz</c> extension), and JSON lines
/// whose every non-blank line must be an object, each with its "file:line" for error messages.</summary>
public static class DataFiles
{
    /// <summary>The format's extension, lower case, under an optional <c>.gz</c> (".jsonl" for "x.jsonl.gz").</summary>
    public static string FormatExtension(string path) =>
        Path.GetExtension(path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path).ToLowerInvariant();

    /// <summary>The file's bytes, decompressed when it ends in <c>.gz</c>.</summary>
    public static Stream OpenRead(string path)
    {
        Stream stream = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(stream, CompressionMode.Decompress) : stream;
    }

    /// <summary>The file as text (UTF-8 unless a byte-order mark says otherwise), decompressed when it ends in <c>.gz</c>.
    /// The caller disposes it.</summary>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    public static StreamReader OpenText(string path) => new(OpenRead(path));

    /// <summary>The JSON object on each non-blank line, with its "file:line"; read lazily, one line at a time.</summary>
    /// <exception cref="NBertException">A line is not a JSON object (the message names file and line).</exception>
    public static IEnumerable<(JsonElement Object, string Where)> JsonObjects(string path)
    {
        using var reader = OpenText(path);
        int lineNumber = 0;
        for (string? line; (line = reader.ReadLine()) is not null;)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{path}:{lineNumber}";
            JsonElement e;
            try
            {
                e = JsonDocument.Parse(line).RootElement;
            }
            catch (JsonException x)
            {
                throw new NBertException($"{where}: not a JSON object ({NBertException.Quote(x.Message, 160)}).", x);
            }
            if (e.ValueKind != JsonValueKind.Object) throw new NBertException($"{where}: not a JSON object.");
            yield return (e, where);
        }
    }
}
