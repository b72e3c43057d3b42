using System.Text;
using System.Text.RegularExpressions;
using NBert.Schema;

namespace NBert.Tasks;

/// <summary>Classification metrics as scikit-learn computes them.</summary>
public static class ClassificationMetrics
{
    /// <summary>The fraction of predictions equal to the gold labels (<c>accuracy_score</c>); 0 for no examples.</summary>
    /// <exception cref="ArgumentException">The two lists differ in length.</exception>
    public static double Accuracy(IReadOnlyList<int> gold, IReadOnlyList<int> predicted)
    {
        Check(gold, predicted);
        return gold.Count == 0 ? 0 : gold.Zip(predicted).Count(p => p.First == p.Second) / (double)gold.Count;
    }

    /// <summary>Macro-averaged F1 over the labels that occur in gold or predictions (<c>f1_score(average="macro")</c>):
    /// each label's 2tp / (2tp + fp + fn), 0 where that is 0/0.</summary>
    public static double MacroF1(IReadOnlyList<int> gold, IReadOnlyList<int> predicted)
    {
        Check(gold, predicted);
        var labels = gold.Concat(predicted).Distinct().ToList();
        if (labels.Count == 0) return 0;
        double sum = 0;
        foreach (int label in labels)
        {
            int tp = 0, fp = 0, fn = 0;
            for (int i = 0; i < gold.Count; i++)
            {
                bool g = gold[i] == label, p = predicted[i] == label;
                if (g && p) tp++;
                else if (p) fp++;
                else if (g) fn++;
            }
            sum += 2 * tp + fp + fn == 0 ? 0 : 2.0 * tp / (2 * tp + fp + fn);
        }
        return sum / labels.Count;
    }

    private static void Check<T>(IReadOnlyList<T> gold, IReadOnlyList<T> predicted)
    {
        if (gold.Count != predicted.Count) throw new ArgumentException($"{gold.Count} gold labels but {predicted.Count} predictions.");
    }
}

/// <summary>An entity: its type and the first and last token index.</summary>
public readonly record struct Entity(string Type, int Start, int End);

/// <summary>Entity-level precision, recall and F1.</summary>
public readonly record struct EntityScores(double Precision, double Recall, double F1, int Gold, int Predicted, int Correct);

/// <summary>
/// seqeval's default (lenient) entity extraction and micro-averaged scores. Sequences are joined with an
/// <c>O</c> between them, as seqeval does; a chunk starts at B (or I after O or another type) and ends
/// before O, B or another type. Tags are IOB2 (<c>B-PER</c>, <c>I-PER</c>, <c>O</c>); E- and S- are also read.
/// </summary>
public static class SeqEval
{
    /// <summary>The entities of several tag sequences, as seqeval reads a list of sentences: the sequences joined with an
    /// <c>O</c> after each, so an entity never spans two of them. Positions count in that joined sequence.</summary>
    public static List<Entity> Entities(IEnumerable<IReadOnlyList<string>> sequences)
    {
        var flat = new List<string>();
        foreach (var s in sequences)
        {
            flat.AddRange(s);
            flat.Add("O");
        }
        return Entities(flat);
    }

    /// <summary>The entities of one tag sequence (seqeval's <c>get_entities</c>), each with its first and last
    /// (inclusive) tag index. A tag without a type (<c>B</c>) has the type "_".</summary>
    public static List<Entity> Entities(IReadOnlyList<string> tags)
    {
        var result = new List<Entity>();
        char prevTag = 'O';
        string prevType = "";
        int begin = 0;
        for (int i = 0; i <= tags.Count; i++)
        {
            string chunk = i < tags.Count ? tags[i] : "O";
            char tag = chunk.Length > 0 ? chunk[0] : 'O';
            string rest = chunk.Length > 1 ? chunk[1..] : "";
            int dash = rest.IndexOf('-');
            string type = dash >= 0 ? rest[(dash + 1)..] : rest;
            if (type.Length == 0) type = "_";
            if (EndOfChunk(prevTag, tag, prevType, type)) result.Add(new Entity(prevType, begin, i - 1));
            if (StartOfChunk(prevTag, tag, prevType, type)) begin = i;
            prevTag = tag;
            prevType = type;
        }
        return result;
    }

    private static bool EndOfChunk(char prevTag, char tag, string prevType, string type) =>
        prevTag is 'E' or 'S'
        || (prevTag is 'B' or 'I' && tag is 'B' or 'S' or 'O')
        || (prevTag != 'O' && prevTag != '.' && prevType != type);

    private static bool StartOfChunk(char prevTag, char tag, string prevType, string type) =>
        tag is 'B' or 'S'
        || (prevTag is 'E' or 'S' or 'O' && tag is 'E' or 'I')
        || (tag != 'O' && tag != '.' && prevType != type);

    /// <summary>Micro-averaged entity precision, recall and F1 (seqeval's f1_score default).</summary>
    public static EntityScores Score(IReadOnlyList<IReadOnlyList<string>> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        if (gold.Count != predicted.Count) throw new ArgumentException($"{gold.Count} gold sequences but {predicted.Count} predicted.");
        for (int i = 0; i < gold.Count; i++)
            if (gold[i].Count != predicted[i].Count)
                throw new ArgumentException($"Sequence {i}: {gold[i].Count} gold tags but {predicted[i].Count} predicted.");
        var g = Entities(gold).ToHashSet();
        var p = Entities(predicted).ToHashSet();
        int correct = g.Intersect(p).Count();
        double precision = p.Count == 0 ? 0 : (double)correct / p.Count, recall = g.Count == 0 ? 0 : (double)correct / g.Count;
        double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
        return new EntityScores(precision, recall, f1, g.Count, p.Count, correct);
    }
}

/// <summary>Exact match and F1 as the official SQuAD evaluation script computes them (v2.0's, which for
/// answerable questions is v1.1's).</summary>
public static partial class SquadMetrics
{
    private const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    [GeneratedRegex(@"\b(a|an|the)\b")]
    private static partial Regex Articles();

    /// <summary>Lowercase, remove punctuation, remove articles, fold whitespace.</summary>
    public static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char ch in text.ToLowerInvariant())
            if (!Punctuation.Contains(ch)) sb.Append(ch);
        string noArticles = Articles().Replace(sb.ToString(), " ");
        return string.Join(' ', noArticles.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>1 when the two answers are equal after <see cref="Normalize"/>, else 0.</summary>
    public static double ExactMatch(string prediction, string gold) => Normalize(prediction) == Normalize(gold) ? 1 : 0;

    /// <summary>The F1 of the normalized answers' word overlap (counting repeated words): 2·P·R / (P + R), 0 with no common
    /// word; 1 when both are empty and 0 when only one is (an unanswerable question).</summary>
    public static double F1(string prediction, string gold)
    {
        var p = Normalize(prediction).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var g = Normalize(gold).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (p.Length == 0 || g.Length == 0) return p.Length == g.Length ? 1 : 0; // unanswerable: both empty
        var counts = g.GroupBy(t => t).ToDictionary(x => x.Key, x => x.Count());
        int same = 0;
        foreach (var t in p)
            if (counts.TryGetValue(t, out int c) && c > 0)
            {
                counts[t] = c - 1;
                same++;
            }
        if (same == 0) return 0;
        double precision = (double)same / p.Length, recall = (double)same / g.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>Both scores for one question, each the best over the gold answers (an unanswerable question's
    /// only gold answer is the empty string).</summary>
    public static (double ExactMatch, double F1) Score(string prediction, IReadOnlyList<string> golds)
    {
        var answers = golds.Count == 0 ? [""] : golds;
        return (answers.Max(g => ExactMatch(prediction, g)), answers.Max(g => F1(prediction, g)));
    }
}
