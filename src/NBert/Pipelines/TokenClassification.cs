using System.Numerics.Tensors;
using System.Text.Json.Serialization;
using NBert.Modeling;
using NBert.Tokenization;
using NBert.Schema;

namespace NBert.Pipelines;

/// <summary>How token predictions become entities (transformers' <c>aggregation_strategy</c>).</summary>
public enum Aggregation
{
    /// <summary>Every token on its own, with <c>entity</c> and <c>index</c> (<c>"none"</c>).</summary>
    None,
    /// <summary>Each token keeps its own best label; adjacent tokens of one type are grouped into an
    /// <c>entity_group</c> (<c>"simple"</c>).</summary>
    Simple,
    /// <summary>Pieces are fused into words that take the label of their first piece, then grouped (<c>"first"</c>).</summary>
    First,
    /// <summary>Pieces are fused into words scored by the average of their pieces' scores, then grouped (<c>"average"</c>).</summary>
    Average,
    /// <summary>Pieces are fused into words that take the scores of their most confident piece, then grouped (<c>"max"</c>).</summary>
    Max,
}

/// <summary>A token (<see cref="Entity"/>, <see cref="Index"/>) or a group of them (<see cref="EntityGroup"/>),
/// with transformers' field names; <see cref="Start"/> and <see cref="End"/> index the text.</summary>
public sealed record EntityPrediction(
    [property: JsonPropertyName("entity"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Entity,
    [property: JsonPropertyName("entity_group"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? EntityGroup,
    [property: JsonPropertyName("score")] float Score,
    [property: JsonPropertyName("index"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Index,
    [property: JsonPropertyName("word")] string Word,
    [property: JsonPropertyName("start")] int Start,
    [property: JsonPropertyName("end")] int End);

/// <summary>Options of <see cref="TokenClassification"/>, with transformers' defaults.</summary>
public sealed record TokenClassificationOptions
{
    /// <summary>How token predictions become entities (<c>aggregation_strategy</c>); <see cref="Aggregation.None"/> gives every token.</summary>
    public Aggregation Aggregation { get; init; } = Aggregation.None;
    /// <summary>Process texts longer than the model's maximum in windows overlapping by this many tokens (<c>stride</c>);
    /// null truncates them instead.</summary>
    public int? Stride { get; init; }
    /// <summary>Labels left out of the results (<c>ignore_labels</c>).</summary>
    public IReadOnlyList<string> IgnoreLabels { get; init; } = ["O"];
}

/// <summary>
/// transformers' <c>token-classification</c> (NER) pipeline: softmax per token; with aggregation, pieces are
/// fused into words (a piece whose text is shorter than its token is a continuation), words scored by their
/// first, average or max piece, and B-/I- tags of one type grouped; <c>O</c> is left out. Texts longer than
/// the model's maximum are processed in windows overlapping by <c>stride</c> tokens, and entities found twice
/// are merged (the longer, then the higher-scoring, wins).
/// </summary>
public sealed class TokenClassification : Pipeline
{
    /// <summary>A pipeline over a tokenizer and a <see cref="BertForTokenClassification"/>.</summary>
    public TokenClassification(BertTokenizer tokenizer, BertPreTrainedModel model)
        : base(tokenizer, Require(model, "token-classification", BertArchitecture.BertForTokenClassification)) { }

    /// <summary>Loads a token-classification model and its tokenizer by directory or name.</summary>
    public static TokenClassification FromPretrained(string nameOrPath) => FromPretrained(Hub.ModelResolver.ResolveModel(nameOrPath));

    /// <summary>Loads a token-classification model and its tokenizer from files resolved already.</summary>
    public static TokenClassification FromPretrained(Hub.ResolvedModel model) =>
        Load(model, BertArchitecture.BertForTokenClassification, (t, m) => new TokenClassification(t, m));

    /// <summary>The entities (or tokens, without aggregation) of one text, in text order.</summary>
    public IReadOnlyList<EntityPrediction> Run(string text, TokenClassificationOptions? options = null) => Single(() => Run([text], options)[0], text);

    private sealed record PreEntity(string Word, float[] Scores, int Start, int End, int Index, bool IsSubword);

    /// <summary>The entities (or tokens, without aggregation) of each text, in the order given.</summary>
    public IReadOnlyList<IReadOnlyList<EntityPrediction>> Run(IReadOnlyList<string> texts, TokenClassificationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var o = options ?? new TokenClassificationOptions();
        var (aggregation, stride) = (o.Aggregation, o.Stride);
        int max = MaxLength;
        if (stride is int st && (st < 0 || st >= max - 2)) throw new ArgumentOutOfRangeException(nameof(options), $"stride must be in 0..{max - 3}, not {st}.");
        var encodeOptions = new EncodeOptions
        {
            MaxLength = max, Truncation = TruncationStrategy.LongestFirst, Stride = stride ?? 0, ReturnOverflowingTokens = stride is not null,
        };
        // Every window of every text is one model input.
        var windows = new List<(int Text, TokenEncoding Encoding)>();
        var encoded = Tokenizer.EncodeBatch(texts, encodeOptions);
        for (int i = 0; i < texts.Count; i++)
            foreach (var w in new[] { encoded[i] }.Concat(encoded[i].Overflowing)) windows.Add((i, w));
        var entities = texts.Select(_ => new List<EntityPrediction>()).ToArray();
        var windowCount = new int[texts.Count];
        int labels = Model.Config.NumLabels;
        int? unkId = Tokenizer.TokenToId(Tokenizer.UnkToken);
        var perWindow = new List<EntityPrediction>[windows.Count];
        Batches.Run(Model, Tokenizer, windows.Select(w => w.Encoding).ToList(), BatchSize, (rows, padded, output) =>
        {
            int s = padded[0].Length;
            for (int r = 0; r < rows.Length; r++)
            {
                var (text, e) = windows[rows[r]];
                var pre = new List<PreEntity>();
                for (int t = 0; t < e.Length; t++)
                {
                    if (e.SpecialTokensMask[t] == 1) continue;
                    var scores = Batches.Softmax(output.Logits!.Data.AsSpan((r * s + t) * labels, labels));
                    var (start, end) = e.Offsets[t];
                    string word = e.Tokens[t], reference = texts[text][start..end];
                    bool subword = word.Length != reference.Length;
                    if (e.InputIds[t] == unkId) (word, subword) = (reference, false);
                    pre.Add(new PreEntity(word, scores, start, end, t, subword));
                }
                perWindow[rows[r]] = Aggregate(pre, aggregation)
                    .Where(x => !o.IgnoreLabels.Contains(x.Entity ?? "") && !o.IgnoreLabels.Contains(x.EntityGroup ?? "")).ToList();
            }
        });
        for (int w = 0; w < windows.Count; w++)
        {
            entities[windows[w].Text].AddRange(perWindow[w]);
            windowCount[windows[w].Text]++;
        }
        return entities.Select((list, i) => windowCount[i] > 1 ? MergeOverlapping(list) : list).ToList();
    }

    private List<EntityPrediction> Aggregate(List<PreEntity> pre, Aggregation aggregation)
    {
        var labels = Model.Config.Id2Label;
        List<EntityPrediction> entities;
        if (aggregation is Aggregation.None or Aggregation.Simple)
            entities = pre.Select(p =>
            {
                int best = TensorPrimitives.IndexOfMax<float>(p.Scores);
                return new EntityPrediction(labels[best], null, p.Scores[best], p.Index, p.Word, p.Start, p.End);
            }).ToList();
        else
        {
            entities = [];
            var group = new List<PreEntity>();
            foreach (var p in pre)
            {
                if (group.Count > 0 && !p.IsSubword)
                {
                    entities.Add(AggregateWord(group, aggregation));
                    group = [];
                }
                group.Add(p);
            }
            if (group.Count > 0) entities.Add(AggregateWord(group, aggregation));
        }
        return aggregation == Aggregation.None ? entities : Group(entities);
    }

    private EntityPrediction AggregateWord(List<PreEntity> pieces, Aggregation aggregation)
    {
        float[] scores = aggregation switch
        {
            Aggregation.First => pieces[0].Scores,
            Aggregation.Max => pieces.OrderByDescending(p => p.Scores.Max()).First().Scores, // the first of equal maxima, as Python's max
            _ => Enumerable.Range(0, pieces[0].Scores.Length).Select(j => pieces.Average(p => p.Scores[j])).Select(x => (float)x).ToArray(),
        };
        int best = TensorPrimitives.IndexOfMax<float>(scores);
        return new EntityPrediction(Model.Config.Id2Label[best], null, scores[best], null,
            Tokenizer.ConvertTokensToString(pieces.Select(p => p.Word)), pieces[0].Start, pieces[^1].End);
    }

    /// <summary>Consecutive entities of one type join a group unless the next starts with B-.</summary>
    private List<EntityPrediction> Group(List<EntityPrediction> entities)
    {
        var groups = new List<EntityPrediction>();
        var current = new List<EntityPrediction>();
        foreach (var e in entities)
        {
            if (current.Count > 0)
            {
                var (bi, tag) = Tag(e.Entity!);
                var (_, lastTag) = Tag(current[^1].Entity!);
                if (tag != lastTag || bi == 'B')
                {
                    groups.Add(GroupOf(current));
                    current = [];
                }
            }
            current.Add(e);
        }
        if (current.Count > 0) groups.Add(GroupOf(current));
        return groups;
    }

    private EntityPrediction GroupOf(List<EntityPrediction> entities)
    {
        string name = entities[0].Entity!;
        int dash = name.IndexOf('-');
        return new EntityPrediction(null, dash >= 0 ? name[(dash + 1)..] : name, (float)entities.Average(e => e.Score), null,
            Tokenizer.ConvertTokensToString(entities.Select(e => e.Word)), entities[0].Start, entities[^1].End);
    }

    private static (char BI, string Tag) Tag(string entity) =>
        entity.StartsWith("B-", StringComparison.Ordinal) ? ('B', entity[2..]) : entity.StartsWith("I-", StringComparison.Ordinal) ? ('I', entity[2..]) : ('I', entity);

    /// <summary>Entities from overlapping windows: sorted by start; of two that overlap, the longer (then the higher-scoring) stays.</summary>
    private static List<EntityPrediction> MergeOverlapping(List<EntityPrediction> entities)
    {
        if (entities.Count == 0) return entities;
        var sorted = entities.OrderBy(e => e.Start).ToList(); // stable, as Python's sorted
        var result = new List<EntityPrediction>();
        var previous = sorted[0];
        foreach (var e in sorted)
        {
            if (previous.Start <= e.Start && e.Start < previous.End)
            {
                int length = e.End - e.Start, previousLength = previous.End - previous.Start;
                if (length > previousLength || (length == previousLength && e.Score > previous.Score)) previous = e;
            }
            else
            {
                result.Add(previous);
                previous = e;
            }
        }
        result.Add(previous);
        return result;
    }
}
