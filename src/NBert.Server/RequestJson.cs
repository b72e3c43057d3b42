using System.Text.Json;
using NBert.Tokenization;

namespace NBert.Server;

/// <summary>An input given as text, or as token ids (TEI's <c>InputType</c>).</summary>
internal sealed record TextInput(string? Text, int[]? Ids)
{
    public int Chars => Text is null ? Ids!.Length : ServedModel.CountChars(Text);
}

/// <summary>
/// Reading the request bodies: the fields, types and defaults of TEI's request structs (router/src/http/types.rs).
/// A missing field or a wrong type is answered 422, as serde and axum answer it; unknown fields are ignored.
/// </summary>
internal static class RequestJson
{
    private static ServerError Wrong(string field, string expected) => ServerError.WrongJson($"{field}: expected {expected}");

    public static JsonElement Object(JsonElement e, string field = "body") =>
        e.ValueKind == JsonValueKind.Object ? e : throw Wrong(field, "an object");

    /// <summary>The field, or null when it is absent or null.</summary>
    public static JsonElement? Optional(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public static JsonElement Required(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) ? v : throw ServerError.WrongJson($"missing field `{name}`");

    /// <summary>
    /// Refuses a body with a string that is not text: an escaped lone surrogate (<c>"\ud800"</c>), which JSON's syntax
    /// allows but no character is. TEI's JSON reader refuses it while parsing (400); System.Text.Json only when the
    /// string is read, so every string and name is read here once, and the error names where it is.
    /// </summary>
    public static void CheckText(JsonElement e, string path = "$")
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String:
                try
                {
                    e.GetString();
                }
                catch (InvalidOperationException)
                {
                    throw ServerError.NotJson($"{path}: a string with a lone surrogate (\\ud800-\\udfff not in a pair), which is not text");
                }
                break;
            case JsonValueKind.Array:
                int i = 0;
                foreach (var item in e.EnumerateArray()) CheckText(item, $"{path}[{i++}]");
                break;
            case JsonValueKind.Object:
                foreach (var property in e.EnumerateObject())
                {
                    string name;
                    try
                    {
                        name = property.Name;
                    }
                    catch (InvalidOperationException)
                    {
                        throw ServerError.NotJson($"{path}: a field name with a lone surrogate (\\ud800-\\udfff not in a pair), which is not text");
                    }
                    CheckText(property.Value, $"{path}.{name}");
                }
                break;
        }
    }

    /// <summary>The string field, or null when it is absent or null.</summary>
    public static string? OptionalString(JsonElement o, string name) => Optional(o, name) is { } v ? String(v, name) : null;

    public static string String(JsonElement e, string field) =>
        e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(field, "a string");

    public static bool Bool(JsonElement o, string name, bool fallback) => Optional(o, name) switch
    {
        null => fallback,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw Wrong(name, "a boolean"),
    };

    public static bool? OptionalBool(JsonElement o, string name) => Optional(o, name) is null ? null : Bool(o, name, false);

    /// <summary>A whole number at least <paramref name="min"/>, or null when absent.</summary>
    public static int? Int(JsonElement o, string name, int min = 0) => Optional(o, name) switch
    {
        null => null,
        { } v when v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i >= min => i,
        _ => throw Wrong(name, $"a whole number of at least {min}"),
    };

    /// <summary><c>truncation_direction</c>: "right" (the default) or "left" (TEI's serde names, Right and Left, also taken).</summary>
    public static TruncationSide Direction(JsonElement o) => Optional(o, "truncation_direction") switch
    {
        null => TruncationSide.Right,
        { ValueKind: JsonValueKind.String } v when v.GetString() is "right" or "Right" => TruncationSide.Right,
        { ValueKind: JsonValueKind.String } v when v.GetString() is "left" or "Left" => TruncationSide.Left,
        _ => throw Wrong("truncation_direction", "\"right\" or \"left\""),
    };

    /// <summary>Token ids: an array of whole numbers from 0.</summary>
    public static int[] Ids(JsonElement e, string field)
    {
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(field, "an array of token ids");
        var ids = new int[e.GetArrayLength()];
        int i = 0;
        foreach (var x in e.EnumerateArray())
            ids[i++] = x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id) && id >= 0 ? id : throw Wrong(field, "token ids (whole numbers from 0)");
        return ids;
    }

    private static bool IsIds(JsonElement e) => e.ValueKind == JsonValueKind.Array && e.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number);

    /// <summary>
    /// TEI's <c>Input</c>: a string or token ids (<paramref name="single"/>), or an array of them. As serde's untagged
    /// enum tries a single input first, an array of numbers is one input's ids, and <c>[]</c> is an empty input.
    /// </summary>
    public static List<TextInput> Inputs(JsonElement e, string field, out bool single)
    {
        single = e.ValueKind == JsonValueKind.String || IsIds(e);
        if (e.ValueKind == JsonValueKind.String) return [new TextInput(e.GetString(), null)];
        if (single) return [new TextInput(null, Ids(e, field))];
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(field, "a string, token ids, or an array of them");
        return e.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? new TextInput(x.GetString(), null)
            : IsIds(x) ? new TextInput(null, Ids(x, field)) : throw Wrong(field, "a string, token ids, or an array of them")).ToList();
    }

    /// <summary>A string, or an array of strings (<c>/tokenize</c>, the pipelines' texts).</summary>
    public static List<string> Texts(JsonElement e, string field, out bool single)
    {
        single = e.ValueKind == JsonValueKind.String;
        if (single) return [e.GetString()!];
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(field, "a string or an array of strings");
        return e.EnumerateArray().Select(x => String(x, field)).ToList();
    }

    /// <summary>
    /// TEI's <c>PredictInput</c>: <c>"text"</c> or <c>["text"]</c> or <c>["a", "b"]</c> (one input, single or pair;
    /// <paramref name="single"/>), or a batch <c>[["text"], ["a", "b"], ...]</c>.
    /// </summary>
    public static List<(string Text, string? Pair)> Sequences(JsonElement e, out bool single)
    {
        const string expected = "a string, a pair of strings [string, string] or a batch of mixed strings and pairs [[string], [string, string], ...]";
        single = true;
        if (e.ValueKind == JsonValueKind.String) return [(e.GetString()!, null)];
        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() == 0) throw Wrong("inputs", expected);
        var items = e.EnumerateArray().ToList();
        if (items[0].ValueKind == JsonValueKind.String)
        {
            if (items.Count > 2 || items.Any(x => x.ValueKind != JsonValueKind.String)) throw Wrong("inputs", expected);
            return [(items[0].GetString()!, items.Count == 2 ? items[1].GetString() : null)];
        }
        single = false;
        return items.Select(x => x.ValueKind == JsonValueKind.Array && x.GetArrayLength() is 1 or 2 && x.EnumerateArray().All(y => y.ValueKind == JsonValueKind.String)
            ? (x[0].GetString()!, x.GetArrayLength() == 2 ? x[1].GetString() : null)
            : throw Wrong("inputs", expected)).ToList();
    }
}
