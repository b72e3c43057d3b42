using System.Text.Json;

namespace NBert.Cli;

/// <summary>JSON-lines input (<c>--input FILE</c>, or <c>-</c> for standard input): one object per line,
/// blank lines skipped; a bad line is reported with its number.</summary>
public static class JsonLinesInput
{
    /// <param name="parse">turns one line's object, and its line number, into an item.</param>
    public static List<T> Read<T>(string path, TextReader stdin, Func<JsonElement, int, T> parse) =>
        ReadChunks(path, stdin, parse, int.MaxValue).SelectMany(chunk => chunk).ToList();

    /// <summary>
    /// The same, streamed: items in chunks of <paramref name="chunkSize"/>, so any input size runs in constant
    /// memory. <paramref name="progress"/> gets the lines read and, for a file, the fraction of it read.
    /// </summary>
    public static IEnumerable<List<T>> ReadChunks<T>(string path, TextReader stdin, Func<JsonElement, int, T> parse, int chunkSize,
        Action<long, double?>? progress = null)
    {
        FileStream? file = null;
        TextReader reader;
        if (path == "-") reader = stdin;
        else if (Directory.Exists(path)) throw new CliException($"--input {path} is a directory: give a file of JSON lines, or - for standard input.");
        else if (!File.Exists(path)) throw new CliException($"input file '{path}' does not exist.");
        else reader = new StreamReader(file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16));
        try
        {
            var chunk = new List<T>(Math.Min(chunkSize, 1024));
            int number = 0;
            for (string? line; (line = reader.ReadLine()) is not null;)
            {
                number++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                CliException? bad = null;
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("expected a JSON object");
                    chunk.Add(parse(doc.RootElement, number));
                }
                catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
                {
                    bad = new CliException($"{Name(path)}, line {number}: {NBertException.Quote(e.Message, 160)}", e);
                }
                if (bad is not null)
                {
                    // The lines before the bad one are results the caller must still get: hand them over first.
                    if (chunk.Count > 0) yield return chunk;
                    throw bad;
                }
                if (chunk.Count == chunkSize)
                {
                    yield return chunk;
                    chunk = new List<T>(Math.Min(chunkSize, 1024));
                    progress?.Invoke(number, file is null || file.Length == 0 ? null : (double)file.Position / file.Length);
                }
            }
            if (chunk.Count > 0) yield return chunk;
            progress?.Invoke(number, file is null ? null : 1.0);
        }
        finally
        {
            if (!ReferenceEquals(reader, stdin)) reader.Dispose();
        }
    }

    public static string Name(string path) => path == "-" ? "standard input" : path;

    /// <summary>A string field; null when absent or null, an error when of another type.</summary>
    public static string? OptionalString(JsonElement e, string field) =>
        !e.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw new FormatException($"\"{field}\" must be a string, not {v.ValueKind.ToString().ToLowerInvariant()}");

    public static string RequiredString(JsonElement e, string field) =>
        OptionalString(e, field) ?? throw new FormatException($"missing \"{field}\" (expected {{\"{field}\": \"...\"}})");
}
