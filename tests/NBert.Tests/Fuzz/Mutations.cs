using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;

namespace NBert.Tests.Fuzz;

/// <summary>
/// Seeded mutations of file contents, as a fuzzer makes them: byte-level edits for any file, and
/// structure-aware edits of JSON (a value replaced by one of another type or an extreme one, a key
/// removed or repeated) and of line files. Everything comes from the <see cref="Random"/> passed in, so a
/// case is reproduced from its seed.
/// </summary>
internal static class Mutations
{
    /// <summary>Values that break loaders: wrong types, extremes, and text System.Text.Json cannot represent
    /// as a node (written into the serialised JSON as it is).</summary>
    private static readonly string[] InterestingJson =
    [
        "null", "true", "false", "0", "-1", "1", "-7", "2", "255", "256", "65536", "2147483647", "2147483648", "-2147483648",
        "4294967295", "1500000000", "2000000000", "99999999999", "9223372036854775807", "1e308", "1e999", "-1e999", "1.5e9", "0.5", "-0.0", "1e-320",
        "\"\"", "\"x\"", "\"\\ud800\"", "\"\\u0000\"", "\"[UNK]\"", "\"[CLS]\"", "\"WordPiece\"", "\"BertModel\"", "\"gelu\"",
        "[]", "{}", "[null]", "[1, 2]", "[-1]", "[2147483647, 2147483647, 2147483647]", "{\"content\": null}", "{\"id\": 5}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "\"" + new string('a', 5000) + "\"",
    ];

    private static readonly byte[] InterestingBytes = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0xc3, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']',
        (byte)',', (byte)':', (byte)'\n', (byte)'\r', (byte)'0', (byte)'9', (byte)'-', (byte)'.', (byte)'e', (byte)'\\'];

    private static readonly long[] InterestingIntegers = [0, 1, -1, 2, 8, 255, 256, 0x7fff, 0xffff, int.MaxValue, int.MinValue, uint.MaxValue,
        1L << 31, 1L << 32, 1L << 40, long.MaxValue, long.MinValue, 100 << 20];

    /// <summary>One to four byte-level edits, each at a random place in [<paramref name="from"/>, <paramref name="to"/>) when given.</summary>
    public static byte[] Bytes(Random r, byte[] input, int from = 0, int? to = null)
    {
        var data = new List<byte>(input);
        int edits = 1 + r.Next(4);
        for (int e = 0; e < edits; e++)
        {
            int end = Math.Min(to ?? data.Count, data.Count), start = Math.Min(from, end);
            int at = start + (end > start ? r.Next(end - start) : 0);
            switch (r.Next(9))
            {
                case 0 when at < data.Count: data[at] ^= (byte)(1 << r.Next(8)); break;
                case 1 when at < data.Count: data[at] = InterestingBytes[r.Next(InterestingBytes.Length)]; break;
                case 2 when at < data.Count: data.RemoveRange(at, Math.Min(1 + r.Next(16), data.Count - at)); break;
                case 3: data.InsertRange(at, Enumerable.Range(0, 1 + r.Next(8)).Select(_ => (byte)r.Next(256))); break;
                case 4 when at < data.Count:
                {
                    int length = Math.Min(1 + r.Next(64), data.Count - at);
                    data.InsertRange(Math.Min(at + length, data.Count), data.GetRange(at, length));
                    break;
                }
                case 5: data.RemoveRange(at, data.Count - at); break; // truncate
                case 6:
                {
                    // A little-endian integer (4 or 8 bytes) where a length or offset may be.
                    var value = new byte[8];
                    BinaryPrimitives.WriteInt64LittleEndian(value, InterestingIntegers[r.Next(InterestingIntegers.Length)]);
                    int width = r.Next(2) == 0 ? 4 : 8;
                    for (int i = 0; i < width && at + i < data.Count; i++) data[at + i] = value[i];
                    break;
                }
                case 7 when at < data.Count:
                {
                    // Overwrite with bytes copied from elsewhere in the file.
                    int source = r.Next(data.Count), length = Math.Min(1 + r.Next(32), Math.Min(data.Count - at, data.Count - source));
                    var copy = data.GetRange(source, length);
                    for (int i = 0; i < length; i++) data[at + i] = copy[i];
                    break;
                }
                default:
                    data.InsertRange(at, Encoding.UTF8.GetBytes(InterestingJson[r.Next(InterestingJson.Length)]));
                    break;
            }
        }
        return [.. data];
    }

    /// <summary>One to three structure-aware edits of a JSON document, serialised; the result may repeat a key
    /// or hold numbers and strings no JSON node can represent.</summary>
    public static byte[] Json(Random r, JsonNode document)
    {
        var root = document.DeepClone();
        var raw = new Dictionary<string, string>();
        int edits = 1 + r.Next(3);
        for (int e = 0; e < edits; e++)
        {
            var (parent, key, node) = Pick(r, root);
            if (parent is null) continue;
            switch (r.Next(10))
            {
                case < 5:
                {
                    // A value of another type or an extreme one, spliced in as text after serialisation.
                    string marker = $"\u0001{raw.Count}\u0001";
                    raw[JsonValue.Create(marker).ToJsonString()] = InterestingJson[r.Next(InterestingJson.Length)];
                    Set(parent, key, JsonValue.Create(marker));
                    break;
                }
                case 5: Remove(parent, key); break;
                case 6 when node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number:
                {
                    double x = double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
                    double[] changed = [x + 1, x - 1, -x, x * 2, x * 1e9, Math.Round(x) + 0.5];
                    Set(parent, key, JsonValue.Create(changed[r.Next(changed.Length)]));
                    break;
                }
                case 7 when parent is JsonObject o:
                {
                    // The same key twice: readers disagree on which one wins.
                    string marker = $"\u0001{raw.Count}\u0001";
                    raw[JsonValue.Create(marker).ToJsonString() + ":0"] = $"{JsonValue.Create(key)!.ToJsonString()}: {InterestingJson[r.Next(InterestingJson.Length)]}, " +
                        $"{JsonValue.Create(key)!.ToJsonString()}: {node?.ToJsonString() ?? "null"}";
                    o.Remove(key!);
                    o[marker] = 0;
                    break;
                }
                case 8 when node is JsonObject or JsonArray:
                    if (node is JsonObject obj) obj.Clear(); else ((JsonArray)node).Clear();
                    break;
                default:
                    // A copy of another part of the document in this place.
                    var (_, _, other) = Pick(r, root);
                    Set(parent, key, other?.DeepClone());
                    break;
            }
        }
        string text = root.ToJsonString();
        foreach (var (marker, value) in raw) text = text.Replace(marker, value);
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>A random node: its container, its key (property name, or index as text), and itself.</summary>
    private static (JsonNode? Parent, string? Key, JsonNode? Node) Pick(Random r, JsonNode root)
    {
        JsonNode? parent = null, node = root;
        string? key = null;
        while (node is JsonObject or JsonArray && (parent is null || r.Next(10) < 7))
        {
            if (node is JsonObject o && o.Count > 0)
            {
                var p = o.ElementAt(r.Next(o.Count));
                (parent, key, node) = (o, p.Key, p.Value);
            }
            else if (node is JsonArray a && a.Count > 0)
            {
                int i = r.Next(a.Count);
                (parent, key, node) = (a, i.ToString(System.Globalization.CultureInfo.InvariantCulture), a[i]);
            }
            else break;
        }
        return (parent, key, node);
    }

    private static void Set(JsonNode parent, string? key, JsonNode? value)
    {
        if (parent is JsonObject o) o[key!] = value;
        else if (parent is JsonArray a) a[int.Parse(key!, System.Globalization.CultureInfo.InvariantCulture)] = value;
    }

    private static void Remove(JsonNode parent, string? key)
    {
        if (parent is JsonObject o) o.Remove(key!);
        else if (parent is JsonArray a) a.RemoveAt(int.Parse(key!, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>One to three edits of a line file: lines removed, repeated, swapped, emptied or replaced by
    /// odd ones, line endings changed, a byte order mark or bytes that are not UTF-8.</summary>
    public static byte[] Lines(Random r, string[] lines)
    {
        var list = new List<string>(lines);
        string ending = "\n";
        string[] odd = ["", " ", "##", "[UNK] ", "\t[CLS]", "a b", "\u0000", "\uFEFF", new string('x', 300), "[MASK]", "##\u00e9", "\u4e2d", "\ud83d\ude00", "\r"];
        int edits = 1 + r.Next(3);
        for (int e = 0; e < edits && list.Count > 0; e++)
        {
            int at = r.Next(list.Count);
            switch (r.Next(8))
            {
                case 0: list.RemoveAt(at); break;
                case 1: list.Insert(at, list[r.Next(list.Count)]); break;
                case 2: (list[at], list[^1]) = (list[^1], list[at]); break;
                case 3: list[at] = odd[r.Next(odd.Length)]; break;
                case 4: list.Insert(at, odd[r.Next(odd.Length)]); break;
                case 5: ending = r.Next(2) == 0 ? "\r\n" : "\r"; break;
                case 6: list.RemoveRange(at, list.Count - at); break;
                default: list.RemoveAll(l => l is "[UNK]" or "[CLS]" or "[SEP]" && r.Next(2) == 0); break;
            }
        }
        var bytes = Encoding.UTF8.GetBytes(string.Join(ending, list) + (r.Next(2) == 0 ? ending : ""));
        return r.Next(6) switch
        {
            0 => [0xEF, 0xBB, 0xBF, .. bytes],
            1 => Bytes(r, bytes),
            _ => bytes,
        };
    }
}
