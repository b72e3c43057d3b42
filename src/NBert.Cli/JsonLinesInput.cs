using System.Text;
using System.Text.Json;
using NBert.Tasks;

namespace NBert.Cli;

/// <summary>JSON-lines input (<c>--input FILE</c>, <c>FILE.gz</c>, or <c>-</c> for standard input): one object per line,
/// blank lines skipped, read through the library's one data reader (<see cref="DataFiles.Lines(Stream, string, int)"/>:
/// gzip, strict UTF-8, no line over <see cref="DataFiles.MaxLineBytes"/>); a bad line is reported with its number.</summary>
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
        Stream stream;
        if (path == "-") stream = Bytes(stdin);
        else if (Directory.Exists(path)) throw new CliException($"--input {path} is a directory: give a file of JSON lines, or - for standard input.");
        else if (!File.Exists(path)) throw new CliException($"input file '{path}' does not exist.");
        else stream = DataFiles.Decompressed(file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16), path);
        try
        {
            var chunk = new List<T>(Math.Min(chunkSize, 1024));
            using var lines = DataFiles.Lines(stream, Name(path)).GetEnumerator();
            int number = 0;
            while (true)
            {
                Exception? bad = null;
                try
                {
                    if (!lines.MoveNext()) break;
                    string line;
                    (line, number) = lines.Current;
                    if (string.IsNullOrWhiteSpace(line)) continue;
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FormatException("expected a JSON object");
                    chunk.Add(parse(doc.RootElement, number));
                }
                catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
                {
                    bad = new CliException($"{Name(path)}, line {number}: {NBertException.Quote(e.Message, 160)}", e);
                }
                catch (NBertException e) // not UTF-8, or a line too long: the reader names the line itself
                {
                    bad = e;
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
            if (path != "-") stream.Dispose();
        }
    }

    /// <summary>Standard input as bytes: the console's own stream when <paramref name="stdin"/> is the reader over it
    /// (so that invalid UTF-8 is seen, not replaced), else the text encoded as UTF-8 as it is read.</summary>
    private static Stream Bytes(TextReader stdin) => stdin is StreamReader { BaseStream: var stream } ? stream : new TextReaderStream(stdin);

    public static string Name(string path) => path == "-" ? "standard input" : path;

    /// <summary>A string field; null when absent or null, an error when of another type.</summary>
    public static string? OptionalString(JsonElement e, string field) =>
        !e.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw new FormatException($"\"{field}\" must be a string, not {v.ValueKind.ToString().ToLowerInvariant()}");

    public static string RequiredString(JsonElement e, string field) =>
        OptionalString(e, field) ?? throw new FormatException($"missing \"{field}\" (expected {{\"{field}\": \"...\"}})");

    /// <summary>A text reader read as a stream of UTF-8, a block at a time (the in-process tests give standard input as
    /// a <see cref="StringReader"/>).</summary>
    private sealed class TextReaderStream(TextReader reader) : Stream
    {
        private readonly char[] _chars = new char[4096];
        private readonly Encoder _encoder = new UTF8Encoding(false).GetEncoder();
        private byte[] _pending = [];
        private int _offset;

        public override int Read(byte[] buffer, int offset, int count)
        {
            while (_offset == _pending.Length)
            {
                int n = reader.Read(_chars, 0, _chars.Length);
                var bytes = new byte[_encoder.GetByteCount(_chars, 0, n, flush: n == 0)];
                _encoder.GetBytes(_chars, 0, n, bytes, 0, flush: n == 0);
                (_pending, _offset) = (bytes, 0);
                if (n == 0 && bytes.Length == 0) return 0;
            }
            int take = Math.Min(count, _pending.Length - _offset);
            Buffer.BlockCopy(_pending, _offset, buffer, offset, take);
            _offset += take;
            return take;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
