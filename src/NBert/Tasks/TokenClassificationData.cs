using System.Text;
using System.Text.Json;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Tasks;

/// <summary>A sentence of words with a tag each (IOB2 names such as B-PER, I-PER, O). <see cref="Source"/> is
/// "file:line" of the sentence; <see cref="Lines"/>, for CoNLL files, the line of each word.</summary>
public sealed record TaggedSentence(string[] Words, string[] Tags, string Source, int[]? Lines = null)
{
    /// <summary>Where word <paramref name="w"/> is: its own line in a CoNLL file, else the sentence's.</summary>
    public string WordSource(int w) => Lines is null ? Source : $"{Source[..Source.LastIndexOf(':')]}:{Lines[w]}";
}

/// <summary>
/// Token-classification data: CoNLL files (a word per line, its tag in the last column, blank lines between
/// sentences, -DOCSTART- lines skipped) or JSON lines <c>{"tokens": [...], "tags": [...]}</c>. Tags are names,
/// or indices into the label list in JSON lines.
/// </summary>
public static class TokenClassificationData
{
    /// <summary>Reads JSON lines (<c>.jsonl</c>, <c>.json</c>) or else CoNLL; a further <c>.gz</c> is read as gzip.</summary>
    /// <param name="path">The data file.</param>
    /// <param name="labels">The label names by id, which integer tags (as in a dataset's <c>ner_tags</c>) index; not needed for tag names.</param>
    /// <exception cref="MissingFileException">There is no such file.</exception>
    /// <exception cref="NBertException">A malformed line, tokens and tags of different counts, or an integer tag without
    /// <paramref name="labels"/>; the message names file and line.</exception>
    public static List<TaggedSentence> Read(string path, IReadOnlyList<string>? labels = null)
    {
        if (!File.Exists(path)) throw new MissingFileException($"{path}: no such data file.", path);
        string ext = DataFiles.FormatExtension(path);
        return ext is ".jsonl" or ".json" ? ReadJsonLines(path, labels) : ReadConll(path);
    }

    private static List<TaggedSentence> ReadConll(string path)
    {
        var result = new List<TaggedSentence>();
        var words = new List<string>();
        var tags = new List<string>();
        var lines = new List<int>();
        int lineNumber = 0, start = 1;
        void Flush()
        {
            if (words.Count > 0) result.Add(new TaggedSentence(words.ToArray(), tags.ToArray(), $"{path}:{start}", lines.ToArray()));
            words.Clear();
            tags.Clear();
            lines.Clear();
        }
        foreach (var (raw, number) in DataFiles.Lines(path))
        {
            lineNumber = number;
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith("-DOCSTART-", StringComparison.Ordinal))
            {
                Flush();
                start = lineNumber + 1;
                continue;
            }
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) throw new NBertException($"{path}:{lineNumber}: expected a word and its tag, got '{line}'.");
            if (words.Count == 0) start = lineNumber;
            words.Add(parts[0]);
            tags.Add(parts[^1]);
            lines.Add(lineNumber);
        }
        Flush();
        return result;
    }

    private static List<TaggedSentence> ReadJsonLines(string path, IReadOnlyList<string>? labels)
    {
        var result = new List<TaggedSentence>();
        foreach (var (e, where) in DataFiles.JsonObjects(path))
        {
            if (!e.TryGetProperty("tokens", out var tokens) || tokens.ValueKind != JsonValueKind.Array)
                throw new NBertException($"{where}: expected {{\"tokens\": [...], \"tags\": [...]}}.");
            if (!e.TryGetProperty("tags", out var tagList) && !e.TryGetProperty("ner_tags", out tagList) || tagList.ValueKind != JsonValueKind.Array)
                throw new NBertException($"{where}: no list \"tags\".");
            var words = tokens.EnumerateArray().Select(t => t.ValueKind == JsonValueKind.String ? t.GetString()!
                : throw new NBertException($"{where}: tokens must be strings.")).ToArray();
            var tags = tagList.EnumerateArray().Select(t => t.ValueKind switch
            {
                JsonValueKind.String => t.GetString()!,
                JsonValueKind.Number when labels is not null && t.TryGetInt32(out int i) && (uint)i < (uint)labels.Count => labels[i],
                JsonValueKind.Number => throw new NBertException($"{where}: tag index {t.GetRawText()} needs a label list (--labels) that has it."),
                _ => throw new NBertException($"{where}: a tag must be a name or an index."),
            }).ToArray();
            if (words.Length != tags.Length) throw new NBertException($"{where}: {words.Length} tokens but {tags.Length} tags.");
            result.Add(new TaggedSentence(words, tags, where));
        }
        return result;
    }

    /// <summary>Tag names in order: B- and I- of each type sorted by type, then O first, as a stable default.</summary>
    public static List<string> LabelNames(IEnumerable<TaggedSentence> sentences)
    {
        var tags = new SortedSet<string>(sentences.SelectMany(s => s.Tags), StringComparer.Ordinal);
        var result = new List<string>();
        if (tags.Remove("O")) result.Add("O");
        result.AddRange(tags.OrderBy(t => t.Length > 2 ? t[2..] : t, StringComparer.Ordinal).ThenBy(t => t, StringComparer.Ordinal));
        return result;
    }

    /// <summary>
    /// Tokenizes each sentence as pre-split words and puts each word's label on its first piece and -100 on
    /// the rest (transformers' run_ner), or, with <paramref name="labelAllTokens"/>, the word's label on every
    /// piece with B- turned into I- after the first. The word ids beside each feature say which word each token is.
    /// </summary>
    public static List<(Feature Feature, int?[] WordIds)> Encode(IReadOnlyList<TaggedSentence> sentences, BertTokenizer tokenizer, int maxLength,
        IReadOnlyList<string> labels, bool labelAllTokens = false)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < labels.Count; i++) index[labels[i]] = i;
        int ToId(string tag, TaggedSentence s, int w) => index.TryGetValue(tag, out int id) ? id
            : throw new NBertException($"{s.WordSource(w)}: unknown tag '{NBertException.Quote(tag)}' (labels: {string.Join(", ", labels)}).");
        foreach (var s in sentences)
            for (int w = 0; w < s.Tags.Length; w++) ToId(s.Tags[w], s, w); // every bad tag before any tokenizing

        var texts = new List<string>(sentences.Count);
        var spans = new List<int[]>(sentences.Count);
        foreach (var s in sentences)
        {
            var sb = new StringBuilder();
            var starts = new int[s.Words.Length];
            for (int w = 0; w < s.Words.Length; w++)
            {
                if (w > 0) sb.Append(' ');
                starts[w] = sb.Length;
                sb.Append(s.Words[w]);
            }
            texts.Add(sb.ToString());
            spans.Add(starts);
        }
        var encodings = tokenizer.EncodeBatch(texts, new EncodeOptions { MaxLength = maxLength, Truncation = TruncationStrategy.LongestFirst });
        var result = new List<(Feature, int?[])>(sentences.Count);
        for (int i = 0; i < sentences.Count; i++)
        {
            var e = encodings[i];
            var starts = spans[i];
            var words = new int?[e.Length];
            var tokenLabels = new int[e.Length];
            int? previous = null;
            for (int t = 0; t < e.Length; t++)
            {
                int? word = null;
                if (e.SequenceIds[t] is not null)
                {
                    // The input word whose text holds this token's first character.
                    int at = Array.BinarySearch(starts, e.Offsets[t].Start);
                    word = at >= 0 ? at : ~at - 1;
                }
                words[t] = word;
                if (word is not int wd) tokenLabels[t] = -100;
                else if (wd != previous) tokenLabels[t] = ToId(sentences[i].Tags[wd], sentences[i], wd);
                else if (labelAllTokens)
                {
                    string tag = sentences[i].Tags[wd];
                    string inside = tag.StartsWith("B-", StringComparison.Ordinal) ? "I-" + tag[2..] : tag;
                    tokenLabels[t] = index.TryGetValue(inside, out int id) ? id : ToId(tag, sentences[i], wd);
                }
                else tokenLabels[t] = -100;
                previous = word;
            }
            result.Add((new Feature { InputIds = e.InputIds, TokenTypeIds = e.TokenTypeIds, TokenLabels = tokenLabels, Example = i }, words));
        }
        return result;
    }
}
