using System.Globalization;
using System.Text.Json;
using CsvHelper;
using CsvHelper.Configuration;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Tasks;

/// <summary>What kind of sequence-classification problem a dataset is (transformers' problem_type).</summary>
public enum ClassificationProblem
{
    /// <summary>One class per example, cross-entropy loss (<c>single_label_classification</c>).</summary>
    SingleLabel,
    /// <summary>Any number of classes per example, a sigmoid and binary cross-entropy per class (<c>multi_label_classification</c>).</summary>
    MultiLabel,
    /// <summary>A number per example, mean squared error (<c>regression</c>; a one-label head).</summary>
    Regression,
}

/// <summary>One labelled text (or pair). <see cref="Label"/> is a name, an index (a JSON integer), a list of
/// names or indices (multi-label), or a number (regression); <see cref="Source"/> is "file:line".</summary>
public sealed record ClassificationExample(string Text, string? TextPair, JsonElement? Label, string Source);

/// <summary>Reading, label mapping and encoding of sequence-classification data: JSON lines or CSV with
/// <c>text</c>, optional <c>text_pair</c> and <c>label</c>.</summary>
public static partial class ClassificationData
{
    /// <summary>Reads JSON lines, or CSV/TSV by the extension; a further <c>.gz</c> is read as gzip.</summary>
    public static List<ClassificationExample> Read(string path)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such data file.", path);
        string ext = DataFiles.FormatExtension(path);
        return ext is ".csv" or ".tsv" ? ReadCsv(path, ext == ".tsv" ? "\t" : ",") : ReadJsonLines(path);
    }

    private static List<ClassificationExample> ReadJsonLines(string path)
    {
        var result = new List<ClassificationExample>();
        foreach (var (e, where) in DataFiles.JsonObjects(path))
        {
            string text = e.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!
                : throw new NBertException($"{where}: no string field \"text\".");
            string? pair = e.TryGetProperty("text_pair", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
            JsonElement? label = e.TryGetProperty("label", out var l) && l.ValueKind != JsonValueKind.Null ? l.Clone() : null;
            result.Add(new ClassificationExample(text, pair, label, where));
        }
        return result;
    }

    private static List<ClassificationExample> ReadCsv(string path, string delimiter)
    {
        var result = new List<ClassificationExample>();
        using var reader = DataFiles.OpenText(path);
        using var csv = new CsvReader(reader, new CsvConfiguration(CultureInfo.InvariantCulture) { Delimiter = delimiter, BadDataFound = null });
        if (!csv.Read() || !csv.ReadHeader()) throw new NBertException($"{path}: empty; the first line must name the columns (text, label).");
        var header = csv.HeaderRecord!;
        if (!header.Contains("text")) throw new NBertException($"{path}: no column \"text\" (columns: {string.Join(", ", header)}).");
        bool hasPair = header.Contains("text_pair"), hasLabel = header.Contains("label");
        while (csv.Read())
        {
            string where = $"{path}:{csv.Parser.RawRow}";
            if (csv.Parser.Count < header.Length)
                throw new NBertException($"{where}: {csv.Parser.Count} field{(csv.Parser.Count == 1 ? "" : "s")}, but the header names {header.Length} ({string.Join(", ", header)}).");
            string text = csv.GetField("text") ?? throw new NBertException($"{where}: no text.");
            string? pair = hasPair ? csv.GetField("text_pair") : null;
            JsonElement? label = null;
            if (hasLabel && csv.GetField("label") is { Length: > 0 } raw) label = CsvLabel(raw, where);
            result.Add(new ClassificationExample(text, string.IsNullOrEmpty(pair) ? null : pair, label, where));
        }
        return result;
    }

    /// <summary>A CSV label as JSON would hold it: a number written as JSON writes numbers (1, 0.5, -2e3), else a name.
    /// Something that reads as a number only loosely ("+1", "01", "1.", "NaN", "Infinity") is refused: it is not
    /// clear whether it names a class or gives a value.</summary>
    private static JsonElement CsvLabel(string raw, string where)
    {
        if (JsonNumber().IsMatch(raw))
        {
            var number = JsonDocument.Parse(raw).RootElement.Clone();
            return double.IsFinite(number.GetDouble()) ? number : throw new NBertException($"{where}: the label {raw} is too large for a number.");
        }
        if (double.TryParse(raw, NumberStyles.Float | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out _))
            throw new NBertException($"{where}: the label '{NBertException.Quote(raw)}' reads as a number only loosely: write it as 1, 0.5 or -2 for a value or an index, or use a name that is not a number.");
        return JsonSerializer.SerializeToElement(raw);
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")]
    private static partial System.Text.RegularExpressions.Regex JsonNumber();

    /// <summary>The problem the labels describe: lists are multi-label, non-integer numbers regression, else single-label.</summary>
    public static ClassificationProblem Problem(IEnumerable<ClassificationExample> examples)
    {
        var labels = examples.Where(e => e.Label is not null).Select(e => e.Label!.Value).ToList();
        if (labels.Any(l => l.ValueKind == JsonValueKind.Array)) return ClassificationProblem.MultiLabel;
        if (labels.Any(l => l.ValueKind == JsonValueKind.Number && !l.TryGetInt32(out _))) return ClassificationProblem.Regression;
        return ClassificationProblem.SingleLabel;
    }

    /// <summary>Label names in order: the names found in the data, sorted (indices stand for themselves).</summary>
    public static List<string> LabelNames(IEnumerable<ClassificationExample> examples)
    {
        var names = new SortedSet<string>(StringComparer.Ordinal);
        int maxIndex = -1;
        void Add(JsonElement l)
        {
            if (l.ValueKind == JsonValueKind.String) names.Add(l.GetString()!);
            else if (l.ValueKind == JsonValueKind.Number && l.TryGetInt32(out int i)) maxIndex = Math.Max(maxIndex, i);
            else if (l.ValueKind == JsonValueKind.Array) foreach (var x in l.EnumerateArray()) Add(x);
        }
        foreach (var e in examples)
            if (e.Label is { } l) Add(l);
        if (names.Count == 0) return Enumerable.Range(0, maxIndex + 1).Select(i => $"LABEL_{i}").ToList();
        return names.ToList();
    }

    /// <summary>The class index of a label: a name from <paramref name="labels"/>, or an index into it.</summary>
    public static int Index(JsonElement label, IReadOnlyList<string> labels, string where)
    {
        if (label.ValueKind == JsonValueKind.String)
        {
            string name = label.GetString()!;
            int at = IndexOf(labels, name);
            if (at >= 0) return at;
            if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) && parsed < labels.Count) return parsed;
            throw new NBertException($"{where}: unknown label '{name}' (labels: {string.Join(", ", labels)}).");
        }
        if (label.ValueKind == JsonValueKind.Number && label.TryGetInt32(out int i))
            return (uint)i < (uint)labels.Count ? i : throw new NBertException($"{where}: label index {i} is outside 0..{labels.Count - 1}.");
        throw new NBertException($"{where}: a label must be a name or an index, not {label.GetRawText()}.");
    }

    private static int IndexOf(IReadOnlyList<string> labels, string name)
    {
        for (int i = 0; i < labels.Count; i++)
            if (labels[i] == name) return i;
        return -1;
    }

    /// <summary>Tokenizes the examples (truncating longest-first to <paramref name="maxLength"/>) with their targets.
    /// Every bad label is found here, before any training.</summary>
    public static List<Feature> Encode(IReadOnlyList<ClassificationExample> examples, BertTokenizer tokenizer, int maxLength,
        IReadOnlyList<string> labels, ClassificationProblem problem)
    {
        var options = new EncodeOptions { MaxLength = maxLength, Truncation = TruncationStrategy.LongestFirst };
        var encodings = tokenizer.EncodeBatch(examples.Select(e => (e.Text, e.TextPair)).ToList(), options);
        var features = new List<Feature>(examples.Count);
        for (int i = 0; i < examples.Count; i++)
        {
            var e = examples[i];
            var label = e.Label ?? throw new NBertException($"{e.Source}: no label.");
            int single = -100;
            float[]? values = null;
            switch (problem)
            {
                case ClassificationProblem.SingleLabel:
                    single = Index(label, labels, e.Source);
                    break;
                case ClassificationProblem.Regression:
                    values = label.ValueKind == JsonValueKind.Number ? [(float)label.GetDouble()]
                        : throw new NBertException($"{e.Source}: a regression label must be a number, not {NBertException.Quote(label.GetRawText())}.");
                    if (!float.IsFinite(values[0]))
                        throw new NBertException($"{e.Source}: the regression label {label.GetRawText()} does not fit a float32 (at most about 3.4E+38).");
                    break;
                default:
                    values = new float[labels.Count];
                    if (label.ValueKind != JsonValueKind.Array)
                        throw new NBertException($"{e.Source}: a multi-label example needs a list of labels, not {label.GetRawText()}.");
                    foreach (var x in label.EnumerateArray()) values[Index(x, labels, e.Source)] = 1;
                    break;
            }
            features.Add(new Feature
            {
                InputIds = encodings[i].InputIds, TokenTypeIds = encodings[i].TokenTypeIds, Label = single, Values = values, Example = i,
            });
        }
        return features;
    }
}
