using System.Text.Json;
using System.Text.Unicode;

namespace NBert;

/// <summary>
/// Reading a JSON file the way every loader should: its bytes must be UTF-8 (System.Text.Json notices bad
/// bytes only when a string is read, and then throws InvalidOperationException), a key may appear only
/// once in an object (readers disagree on which of two wins), and every failure is an
/// <see cref="NBertException"/> that names the file.
/// </summary>
public static class JsonFile
{
    /// <summary>The options every loader parses with: duplicate keys refused.</summary>
    public static JsonDocumentOptions Options { get; } = new() { AllowDuplicateProperties = false };

    /// <summary>Parses <paramref name="path"/>; the caller disposes the document.</summary>
    public static JsonDocument Read(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such file.", path);
        var bytes = ReadUtf8(path);
        try
        {
            return JsonDocument.Parse(bytes, Options);
        }
        catch (JsonException e)
        {
            throw new NBertException($"{path}: not valid JSON ({NBertException.Quote(e.Message, 160)}).", e);
        }
    }

    /// <summary>The bytes of a UTF-8 text file, without the byte order mark an editor may have added.</summary>
    public static ReadOnlyMemory<byte> ReadUtf8(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        EnsureUtf8(path, bytes);
        return bytes.AsMemory(bytes.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0);
    }

    /// <summary>Refuses bytes that are not UTF-8, naming the file and the offset of the first bad byte.</summary>
    public static void EnsureUtf8(string path, ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes)) return;
        int valid = 0; // the first bad byte's offset, for the message
        while (System.Text.Rune.DecodeFromUtf8(bytes[valid..], out _, out int length) == System.Buffers.OperationStatus.Done) valid += length;
        throw new NBertException($"{path}: not valid UTF-8 (byte {valid}).");
    }
}
