using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace NBert.Tasks;

/// <summary>
/// The one reader of data files, for every loader and command that reads data: gzip by the <c>.gz</c> extension,
/// streamed a line at a time (a corpus of any size runs in memory bounded by its longest line), strict UTF-8, and each
/// bad line named by file and line number ("train.jsonl.gz:17: ..."). A line longer than <see cref="MaxLineBytes"/>
/// is refused when its first <see cref="MaxLineBytes"/> bytes have been read, never loaded whole.
/// </summary>
public static class DataFiles
{
    /// <summary>The longest line a data file may have: 8 MiB of UTF-8 (the line break not counted). TEI's default
    /// request limit is 2 MB; a longer line is a mistake (a file without line breaks, a binary file) far more often
    /// than data.</summary>
    public const int MaxLineBytes = 8 * 1024 * 1024;

    /// <summary>The format's extension, lower case, under an optional <c>.gz</c> (".jsonl" for "x.jsonl.gz").</summary>
    public static string FormatExtension(string path) =>
        Path.GetExtension(IsGzip(path) ? path[..^3] : path).ToLowerInvariant();

    private static bool IsGzip(string path) => path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);

    /// <summary>The file's bytes, decompressed when it ends in <c>.gz</c>.</summary>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    public static Stream OpenRead(string path) =>
        File.Exists(path) ? Decompressed(File.OpenRead(path), path) : throw new MissingFileException($"{path}: no such file.", path);

    /// <summary><paramref name="stream"/> (the bytes of <paramref name="path"/>), decompressed when the path ends in
    /// <c>.gz</c>; disposing the result disposes <paramref name="stream"/>.</summary>
    public static Stream Decompressed(Stream stream, string path)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(path);
        return IsGzip(path) ? new GZipStream(stream, CompressionMode.Decompress) : stream;
    }

    /// <summary>The file as text (UTF-8 unless a byte-order mark says otherwise), decompressed when it ends in <c>.gz</c>:
    /// for formats whose records may span lines (CSV). The caller disposes it.</summary>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    public static StreamReader OpenText(string path) => new(OpenRead(path));

    /// <summary>Each line of the file (decompressed when it ends in <c>.gz</c>) with its number from 1, read lazily, the
    /// line break (<c>\n</c> or <c>\r\n</c>) and a leading byte-order mark removed.</summary>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    /// <exception cref="NBertException">A line is not valid UTF-8, or longer than <paramref name="maxLineBytes"/> (the
    /// message names the file and the line).</exception>
    public static IEnumerable<(string Text, int Number)> Lines(string path, int maxLineBytes = MaxLineBytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, 1);
        return Read(path, maxLineBytes);

        static IEnumerable<(string, int)> Read(string path, int maxLineBytes)
        {
            using var stream = OpenRead(path);
            foreach (var line in Lines(stream, path, maxLineBytes)) yield return line;
        }
    }

    /// <summary>As <see cref="Lines(string, int)"/>, from a stream (standard input, say) that messages call
    /// <paramref name="name"/>. The stream is not disposed.</summary>
    /// <exception cref="NBertException">As <see cref="Lines(string, int)"/>.</exception>
    public static IEnumerable<(string Text, int Number)> Lines(Stream stream, string name, int maxLineBytes = MaxLineBytes)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineBytes, 1);
        return Split(stream, name, maxLineBytes);
    }

    private static IEnumerable<(string, int)> Split(Stream stream, string name, int maxLineBytes)
    {
        // The buffer grows only as far as the longest line needs (at most maxLineBytes and one read more), and goes back
        // to the pool at the end: the memory a file takes is its longest line's, whatever its size.
        const int ReadSize = 1 << 16;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ReadSize * 2);
        try
        {
            int start = 0, end = 0, number = 0, searched = 0; // searched: bytes before it hold no line break of this line
            bool atEnd = false;
            while (true)
            {
                int from = Math.Max(start, searched);
                int newline = Array.IndexOf(buffer, (byte)'\n', from, end - from);
                if (newline >= 0 || (atEnd && end > start))
                {
                    int length = (newline >= 0 ? newline : end) - start;
                    number++;
                    if (length > 0 && buffer[start + length - 1] == (byte)'\r') length--;
                    if (length > maxLineBytes) throw TooLong(name, number, maxLineBytes);
                    string text = Decode(buffer, start, length, name, number);
                    start = newline >= 0 ? newline + 1 : end;
                    yield return (text, number);
                    continue;
                }
                if (atEnd) yield break;
                searched = end;
                if (end - start > maxLineBytes + 1) throw TooLong(name, number + 1, maxLineBytes); // +1: a '\r' before the '\n'
                if (start > 0)
                {
                    Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                    end -= start;
                    searched -= start;
                    start = 0;
                }
                if (buffer.Length - end < ReadSize)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(buffer.Length * 2, end + ReadSize), maxLineBytes + 2 + ReadSize));
                    Buffer.BlockCopy(buffer, 0, larger, 0, end);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                // A read at a time: the bytes taken past a line that is too long stay under one read.
                int read = stream.Read(buffer, end, Math.Min(buffer.Length - end, ReadSize));
                if (read == 0) atEnd = true;
                end += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static NBertException TooLong(string name, int number, int maxLineBytes) =>
        new($"{name}:{number}: the line is longer than {maxLineBytes:N0} bytes, the most a line of data may have (is the file missing its line breaks?).");

    private static string Decode(byte[] buffer, int start, int length, string name, int number)
    {
        var bytes = new ReadOnlySpan<byte>(buffer, start, length);
        if (number == 1 && bytes.StartsWith(Encoding.UTF8.Preamble)) bytes = bytes[3..];
        if (!Utf8.IsValid(bytes))
        {
            // Where: the first byte that does not decode, counted from the line's start.
            var status = Utf8.ToUtf16(bytes, new char[bytes.Length], out int valid, out _, replaceInvalidSequences: false);
            throw new NBertException($"{name}:{number}: not valid UTF-8 (byte {valid + 1} of the line, {status}): save the file as UTF-8.");
        }
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The JSON object on each non-blank line, with its "file:line"; read lazily, one line at a time.</summary>
    /// <exception cref="NBertException">A line is not a JSON object, not UTF-8, or too long (the message names file and line).</exception>
    public static IEnumerable<(JsonElement Object, string Where)> JsonObjects(string path)
    {
        foreach (var (line, number) in Lines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{path}:{number}";
            yield return (ParseObject(line, where), where);
        }
    }

    /// <summary>One line's JSON object, or an <see cref="NBertException"/> that says where it is.</summary>
    private static JsonElement ParseObject(string line, string where)
    {
        JsonElement e;
        try
        {
            using var document = JsonDocument.Parse(line);
            e = document.RootElement.Clone(); // the document's pooled buffers go back now, not when the GC finds them
        }
        catch (JsonException x)
        {
            throw new NBertException($"{where}: not a JSON object ({NBertException.Quote(x.Message, 160)}).", x);
        }
        return e.ValueKind == JsonValueKind.Object ? e : throw new NBertException($"{where}: not a JSON object.");
    }
}
