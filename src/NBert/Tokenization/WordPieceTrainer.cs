using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NBert.IO;

namespace NBert.Tokenization;

/// <summary>
/// Trains a WordPiece vocabulary as Hugging Face's <c>WordPieceTrainer</c> does: words from BERT's normalizer
/// and pre-tokenizer are counted; the alphabet starts the vocabulary (a word's first character as itself,
/// the others with the <c>##</c> prefix); then the most frequent adjacent pair of symbols, weighted by word
/// counts, is merged again and again (ties go to the pair of lower ids) until the vocabulary has the
/// requested size. Special tokens come first: [PAD], [UNK], [CLS], [SEP], [MASK].
/// </summary>
public sealed class WordPieceTrainer(int vocabSize, bool lowercase, int minFrequency = 0)
{
    /// <summary>The special tokens a trained vocabulary starts with, ids 0 to 4.</summary>
    public static readonly string[] SpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    private const string Prefix = "##";
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);
    private readonly BertNormalizer _normalizer = BertNormalizer.For(new BertNormalizerOptions(true, true, null, lowercase));

    /// <summary>Counts the words of a line of text.</summary>
    public void Add(string text)
    {
        string normalized = _normalizer.Normalize(text);
        var span = normalized.AsSpan();
        int start = -1;
        for (int i = 0; i < span.Length;)
        {
            byte cls = UnicodeRules.PreTokenClass(span, i, out int width);
            if (cls == UnicodeRules.Word)
            {
                if (start < 0) start = i;
            }
            else
            {
                if (start >= 0) Count(normalized[start..i]);
                start = -1;
                if (cls == UnicodeRules.Punct) Count(normalized.Substring(i, width));
            }
            i += width;
        }
        if (start >= 0) Count(normalized[start..]);
    }

    private void Count(string word) => _counts[word] = _counts.GetValueOrDefault(word) + 1;

    /// <summary>Distinct words counted so far.</summary>
    public int Words => _counts.Count;

    /// <summary>The vocabulary in id order.</summary>
    public List<string> Train()
    {
        var vocab = new List<string>(SpecialTokens);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocab.Count; i++) ids[vocab[i]] = i;
        int Id(string token)
        {
            if (!ids.TryGetValue(token, out int id))
            {
                id = vocab.Count;
                ids[token] = id;
                vocab.Add(token);
            }
            return id;
        }
        // The alphabet, sorted by code point, then each word as symbols.
        var words = _counts.Where(kv => kv.Value >= minFrequency).Select(kv => (Word: kv.Key, Count: kv.Value)).OrderBy(w => w.Word, StringComparer.Ordinal).ToList();
        foreach (var c in words.SelectMany(w => Symbols(w.Word)).Select(s => s.StartsWith(Prefix, StringComparison.Ordinal) ? s[Prefix.Length..] : s)
            .Distinct().OrderBy(s => char.ConvertToUtf32(s, 0)))
            Id(c);
        var symbols = words.Select(w => Symbols(w.Word).Select(Id).ToList()).ToList();
        var counts = words.Select(w => w.Count).ToArray();

        // Pair counts, where each pair occurs, and a max-heap of (count, pair) checked lazily against the counts.
        var pairCounts = new Dictionary<(int, int), long>();
        var where = new Dictionary<(int, int), HashSet<int>>();
        for (int w = 0; w < symbols.Count; w++)
            for (int i = 0; i + 1 < symbols[w].Count; i++)
            {
                var pair = (symbols[w][i], symbols[w][i + 1]);
                pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + counts[w];
                (where.TryGetValue(pair, out var set) ? set : where[pair] = []).Add(w);
            }
        var heap = new PriorityQueue<(int, int), (long Count, int A, int B)>(Comparer<(long Count, int A, int B)>.Create((x, y) =>
            x.Count != y.Count ? y.Count.CompareTo(x.Count) : x.A != y.A ? x.A.CompareTo(y.A) : x.B.CompareTo(y.B)));
        foreach (var (pair, count) in pairCounts) heap.Enqueue(pair, (count, pair.Item1, pair.Item2));

        while (vocab.Count < vocabSize && heap.TryDequeue(out var best, out var key))
        {
            if (pairCounts.GetValueOrDefault(best) != key.Count) continue; // stale entry
            if (key.Count <= 0 || key.Count < minFrequency) break;
            string right = vocab[best.Item2];
            int merged = Id(vocab[best.Item1] + (right.StartsWith(Prefix, StringComparison.Ordinal) ? right[Prefix.Length..] : right));
            var changed = new HashSet<(int, int)>();
            foreach (int w in where[best].ToList())
            {
                var s = symbols[w];
                long c = counts[w];
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    if (s[i] != best.Item1 || s[i + 1] != best.Item2) continue;
                    // Remove the pairs around the merged one, merge, add the new pairs.
                    if (i > 0) Adjust((s[i - 1], s[i]), -c, w);
                    if (i + 2 < s.Count) Adjust((s[i + 1], s[i + 2]), -c, w);
                    Adjust(best, -c, w);
                    s[i] = merged;
                    s.RemoveAt(i + 1);
                    if (i > 0) Adjust((s[i - 1], s[i]), c, w);
                    if (i + 1 < s.Count) Adjust((s[i], s[i + 1]), c, w);
                }
            }
            foreach (var pair in changed)
                if (pairCounts.GetValueOrDefault(pair) > 0) heap.Enqueue(pair, (pairCounts[pair], pair.Item1, pair.Item2));

            void Adjust((int, int) pair, long delta, int word)
            {
                pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + delta;
                if (delta > 0) (where.TryGetValue(pair, out var set) ? set : where[pair] = []).Add(word);
                changed.Add(pair);
            }
        }
        return vocab;
    }

    /// <summary>A word's characters (code points) as symbols: the first bare, the rest with the ## prefix.</summary>
    private static IEnumerable<string> Symbols(string word)
    {
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsSurrogatePair(word, i) ? 2 : 1;
            yield return i == 0 ? word.Substring(i, width) : Prefix + word.Substring(i, width);
            i += width;
        }
    }

    /// <summary>
    /// Writes <c>vocab.txt</c>, <c>tokenizer.json</c> and <c>tokenizer_config.json</c> as transformers saves a BERT
    /// tokenizer (each file to a temporary name, then renamed).
    /// </summary>
    public static void Save(IReadOnlyList<string> vocab, bool lowercase, string directory, int modelMaxLength = 512)
    {
        Directory.CreateDirectory(directory);
        AtomicFile.WriteAllText(Path.Combine(directory, "vocab.txt"), string.Join("\n", vocab) + "\n");
        int IdOf(string token) => vocab.Select((t, i) => (t, i)).First(x => x.t == token).i;
        var added = new JsonArray();
        var decoder = new JsonObject();
        foreach (var special in SpecialTokens)
        {
            int id = IdOf(special);
            added.Add(new JsonObject
            {
                ["id"] = id, ["content"] = special, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = special, ["lstrip"] = false, ["normalized"] = false, ["rstrip"] = false, ["single_word"] = false, ["special"] = true,
            };
        }
        JsonObject Special(string token, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = typeId } };
        JsonObject Sequence(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        var vocabObject = new JsonObject();
        for (int i = 0; i < vocab.Count; i++) vocabObject[vocab[i]] = i;
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null, ["lowercase"] = lowercase,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0)),
                ["pair"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0), Sequence("B", 1), Special("[SEP]", 1)),
                ["special_tokens"] = new JsonObject
                {
                    ["[CLS]"] = new JsonObject { ["id"] = "[CLS]", ["ids"] = new JsonArray(IdOf("[CLS]")), ["tokens"] = new JsonArray("[CLS]") },
                    ["[SEP]"] = new JsonObject { ["id"] = "[SEP]", ["ids"] = new JsonArray(IdOf("[SEP]")), ["tokens"] = new JsonArray("[SEP]") },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = Prefix, ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = Prefix, ["max_input_chars_per_word"] = 100, ["vocab"] = vocabObject,
            },
        };
        var indented = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString(indented));
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["clean_up_tokenization_spaces"] = false,
            ["cls_token"] = "[CLS]", ["do_lower_case"] = lowercase, ["mask_token"] = "[MASK]", ["model_max_length"] = modelMaxLength,
            ["pad_token"] = "[PAD]", ["sep_token"] = "[SEP]", ["strip_accents"] = null, ["tokenize_chinese_chars"] = true,
            ["tokenizer_class"] = "BertTokenizer", ["unk_token"] = "[UNK]",
        };
        AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(indented));
    }
}
